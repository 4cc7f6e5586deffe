//! Packing of A (the weights) into the row panels the microkernels read,
//! done once at generate.
//!
//! Layout: K is cut into blocks of equal depth (at most the `kc_max` given,
//! [`KC`] or less, see [`super::k_block`]; no shallow
//! last block, see [`block_depth`]); block after block, each holds every
//! panel of `MR` rows for its `kc` columns: `[K block][panel][kc][MR]`,
//! rows past M zero. The GEMM reads a block's panels one after another, so
//! the weights stream from memory in address order (the hardware
//! prefetchers follow one run). With K at most `KC` (one block) this is
//! `[panel][K][MR]`.

use super::{Isa, KC};

/// Depth of the K blocks of a depth-`k` product whose blocks are at most
/// `kc_max` deep: all equal, the last one no shallower.
pub fn block_depth(k: usize, kc_max: usize) -> usize {
    k.div_ceil(k.div_ceil(kc_max.max(1)).max(1)).max(1)
}

/// Packs row-major `a[m×k]` into the layout above for `isa`'s `MR`, in K
/// blocks at most `kc_max` deep (see [`super::k_block`]).
pub fn pack_a(a: &[f32], m: usize, k: usize, isa: Isa, kc_max: usize) -> Vec<f32> {
    assert_eq!(a.len(), m * k, "pack_a: {} values for a {m}x{k} matrix", a.len());
    assert!(kc_max <= KC, "K blocks of {kc_max} do not fit the GEMM's scratch");
    let (mr, panels, depth) = (isa.mr(), m.div_ceil(isa.mr()), block_depth(k, kc_max));
    let mut out = vec![0.0f32; panels * k * mr];
    for k0 in (0..k).step_by(depth) {
        let kc = depth.min(k - k0);
        let block = &mut out[k0 * panels * mr..][..panels * kc * mr];
        for (p, panel) in block.chunks_exact_mut(kc * mr).enumerate() {
            for i in 0..mr.min(m - p * mr) {
                let row = &a[(p * mr + i) * k + k0..][..kc];
                for (kk, &v) in row.iter().enumerate() {
                    panel[kk * mr + i] = v;
                }
            }
        }
    }
    out
}

/// Floats [`pack_a`] produces for `m × k`.
pub fn packed_a_len(m: usize, k: usize, isa: Isa) -> usize {
    m.div_ceil(isa.mr()) * k * isa.mr()
}

/// A matrix packed by [`pack_a`], seen from one of its panels on (a GEMM
/// over some of its rows).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PackedA<'a> {
    data: &'a [f32],
    k: usize,
    mr: usize,
    /// Panels of the whole matrix.
    panels: usize,
    depth: usize,
    /// The panel this view starts at.
    first: usize,
}

impl<'a> PackedA<'a> {
    /// The packing of an `m × k` matrix for `isa` in `data`, by [`pack_a`]
    /// with the same `kc_max`.
    pub fn new(data: &'a [f32], m: usize, k: usize, isa: Isa, kc_max: usize) -> Self {
        assert_eq!(data.len(), packed_a_len(m, k, isa), "packed A of a {m}x{k} matrix");
        PackedA { data, k, mr: isa.mr(), panels: m.div_ceil(isa.mr()), depth: block_depth(k, kc_max), first: 0 }
    }

    /// The view from panel `p` (of this view) on: the first `p` panels skipped.
    pub fn after_panels(self, p: usize) -> Self {
        assert!(self.first + p <= self.panels, "panel {p} past the packed matrix");
        PackedA { first: self.first + p, ..self }
    }

    /// The matrix's depth K.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Panels from this view's first to the matrix's end.
    pub fn panels(&self) -> usize {
        self.panels - self.first
    }

    /// The K blocks: `(k0, kc)` in order.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, usize)> {
        let (k, depth) = (self.k, self.depth);
        (0..k).step_by(depth).map(move |k0| (k0, depth.min(k - k0)))
    }

    /// Columns `k0..k0 + kc` of panel `p` (of this view), `kc * MR` floats
    /// in a run: `k0..k0 + kc` lies inside one K block.
    pub fn panel(&self, p: usize, k0: usize, kc: usize) -> &'a [f32] {
        let b0 = k0 / self.depth * self.depth;
        let block_kc = self.depth.min(self.k - b0);
        assert!(p < self.panels() && k0 + kc <= b0 + block_kc, "panel {p} columns {k0}..{} cross a K block", k0 + kc);
        &self.data[(b0 * self.panels + (self.first + p) * block_kc + (k0 - b0)) * self.mr..][..kc * self.mr]
    }
}

impl PackedA<'_> {
    /// This view's first `panels` panels with each column `k` scaled by
    /// `scale[k]`, packed into `dst` in the same layout (those panels
    /// alone): `A · diag(scale)`, the weights of a product whose B rows
    /// are to be scaled.
    pub fn scaled_into<'b>(&self, panels: usize, scale: &[f32], dst: &'b mut [f32]) -> PackedA<'b> {
        let mr = self.mr;
        assert!(panels <= self.panels() && scale.len() >= self.k, "scaled A: {panels} panels, {} scales for depth {}", scale.len(), self.k);
        let dst = &mut dst[..panels * self.k * mr];
        for (k0, kc) in self.blocks() {
            for p in 0..panels {
                let src = self.panel(p, k0, kc);
                let out = &mut dst[(k0 * panels + p * kc) * mr..][..kc * mr];
                for ((o, s), &f) in out.chunks_exact_mut(mr).zip(src.chunks_exact(mr)).zip(&scale[k0..k0 + kc]) {
                    for (o, &v) in o.iter_mut().zip(s) {
                        *o = v * f;
                    }
                }
            }
        }
        PackedA { data: dst, k: self.k, mr, panels, depth: self.depth, first: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_interleave_rows_and_pad() {
        // 5 x 2 with MR = 4 (generic): two panels, the second with one row.
        let a: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let p = pack_a(&a, 5, 2, Isa::Generic, KC);
        assert_eq!(p.len(), packed_a_len(5, 2, Isa::Generic));
        assert_eq!(&p[..8], &[0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]);
        assert_eq!(&p[8..], &[8.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn deep_matrices_are_packed_block_after_block() {
        // 6 x 10, MR = 4, blocks at most 4 deep: three blocks of 4, 4, 2
        // columns, each holding both panels.
        let (m, k) = (6, 10);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32).collect();
        let p = pack_a(&a, m, k, Isa::Generic, 4);
        let view = PackedA::new(&p, m, k, Isa::Generic, 4);
        assert_eq!(view.blocks().collect::<Vec<_>>(), [(0, 4), (4, 4), (8, 2)]);
        // Block 1 (columns 4..8), panel 1 (rows 4, 5 and two zero rows).
        let want: Vec<f32> = (4..8).flat_map(|c| [(4 * k + c) as f32, (5 * k + c) as f32, 0.0, 0.0]).collect();
        assert_eq!(&p[(4 * 8 + 4 * 4)..][..16], &want[..]);
        assert_eq!(view.panel(1, 4, 4), &want[..]);
        // Every element where the view says it is.
        for (k0, kc) in view.blocks() {
            for pn in 0..2 {
                let got = view.after_panels(pn).panel(0, k0, kc);
                for kk in 0..kc {
                    for r in 0..4 {
                        let want = if pn * 4 + r < m { a[(pn * 4 + r) * k + k0 + kk] } else { 0.0 };
                        assert_eq!(got[kk * 4 + r], want, "panel {pn} row {r} column {}", k0 + kk);
                    }
                }
            }
        }
        // Part of a block is a run inside it.
        assert_eq!(view.panel(0, 5, 2), &p[(4 * 8 + 4) ..][..8]);
    }

    #[test]
    fn scaled_panels_are_the_packing_of_the_scaled_rows() {
        // 10 x 11, MR = 4, blocks of 4, 4, 3: panels 1 and 2 of a view
        // from panel 1, scaled, against packing rows 4..10 with scaled columns.
        let (m, k) = (10, 11);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.5 - 7.0).collect();
        let scale: Vec<f32> = (0..k).map(|c| 1.5 - 0.25 * c as f32).collect();
        let p = pack_a(&a, m, k, Isa::Generic, 4);
        let mut dst = vec![f32::NAN; 2 * k * 4 + 5];
        let scaled = PackedA::new(&p, m, k, Isa::Generic, 4).after_panels(1).scaled_into(2, &scale, &mut dst);
        let rows: Vec<f32> = (4 * k..m * k).map(|i| a[i] * scale[i % k]).collect();
        let want = pack_a(&rows, m - 4, k, Isa::Generic, 4);
        let want = PackedA::new(&want, m - 4, k, Isa::Generic, 4);
        assert_eq!(scaled.panels(), 2);
        for (k0, kc) in want.blocks() {
            for pn in 0..2 {
                assert_eq!(scaled.panel(pn, k0, kc), want.panel(pn, k0, kc), "panel {pn} block {k0}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "cross a K block")]
    fn a_run_may_not_cross_blocks() {
        let p = pack_a(&[0.0; 40], 4, 10, Isa::Generic, 4);
        let _ = PackedA::new(&p, 4, 10, Isa::Generic, 4).panel(0, 2, 4);
    }
}
