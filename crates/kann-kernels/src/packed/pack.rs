//! Packing of A (the weights) into the row panels the microkernels read,
//! done once at generate.

use super::Isa;

/// Packs row-major `a[m×k]` into panels of `isa.mr()` rows:
/// `[ceil(m/MR)][k][MR]`, the rows past `m` zero.
pub fn pack_a(a: &[f32], m: usize, k: usize, isa: Isa) -> Vec<f32> {
    assert_eq!(a.len(), m * k, "pack_a: {} values for a {m}x{k} matrix", a.len());
    let mr = isa.mr();
    let mut out = vec![0.0f32; m.div_ceil(mr) * k * mr];
    for (p, panel) in out.chunks_exact_mut(k * mr).enumerate() {
        for i in 0..mr.min(m - p * mr) {
            let row = &a[(p * mr + i) * k..][..k];
            for (kk, &v) in row.iter().enumerate() {
                panel[kk * mr + i] = v;
            }
        }
    }
    out
}

/// Floats [`pack_a`] produces for `m × k`.
pub fn packed_a_len(m: usize, k: usize, isa: Isa) -> usize {
    m.div_ceil(isa.mr()) * k * isa.mr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_interleave_rows_and_pad() {
        // 5 x 2 with MR = 4 (generic): two panels, the second with one row.
        let a: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let p = pack_a(&a, 5, 2, Isa::Generic);
        assert_eq!(p.len(), packed_a_len(5, 2, Isa::Generic));
        assert_eq!(&p[..8], &[0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]);
        assert_eq!(&p[8..], &[8.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0]);
    }
}
