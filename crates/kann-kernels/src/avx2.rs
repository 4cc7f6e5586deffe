//! Small AVX2 helpers the kernels share.
//!
//! A masked store (`vmaskmovps` to memory) costs Zen 3 6-8 ns a store when
//! they come back to back, against 0.7 ns for a whole-vector store and
//! 2-3 ns for the same floats as one 4-, one 2- and one 1-float store
//! (measured in a loop of stores of 7 floats). Edge vectors of rows (a
//! 55-float row's last 7, a 27-float row's last 3) are stored the split
//! way. Masked loads cost no more than plain ones and stay.

use std::arch::x86_64::*;

/// Stores the first `n` (≤ 8) lanes of `v` at `p` as at most three
/// plain stores (4, 2 and 1 floats); nothing past `p + n` is touched.
///
/// # Safety
/// `p` is valid for writing `n` floats; the CPU has AVX2.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn store_first(p: *mut f32, v: __m256, n: usize) {
    // SAFETY: each store writes floats below p + n (the caller's contract).
    unsafe {
        if n >= 8 {
            _mm256_storeu_ps(p, v);
            return;
        }
        let (mut q, mut left, mut x) = (p, n, _mm256_castps256_ps128(v));
        if left >= 4 {
            _mm_storeu_ps(q, x);
            x = _mm256_extractf128_ps::<1>(v);
            q = q.add(4);
            left -= 4;
        }
        if left >= 2 {
            _mm_storel_epi64(q as *mut __m128i, _mm_castps_si128(x));
            x = _mm_movehl_ps(x, x);
            q = q.add(2);
            left -= 2;
        }
        if left == 1 {
            _mm_store_ss(q, x);
        }
    }
}

/// `t[j][i] = r[i][j]` for 8 rows of 8.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    // s[q] (rows 0..4) and s[4 + q] (rows 4..8): element q of each row, columns q | q + 4.
    let s = [
        _mm256_shuffle_ps::<0b01_00_01_00>(t[0], t[2]),
        _mm256_shuffle_ps::<0b11_10_11_10>(t[0], t[2]),
        _mm256_shuffle_ps::<0b01_00_01_00>(t[1], t[3]),
        _mm256_shuffle_ps::<0b11_10_11_10>(t[1], t[3]),
        _mm256_shuffle_ps::<0b01_00_01_00>(t[4], t[6]),
        _mm256_shuffle_ps::<0b11_10_11_10>(t[4], t[6]),
        _mm256_shuffle_ps::<0b01_00_01_00>(t[5], t[7]),
        _mm256_shuffle_ps::<0b11_10_11_10>(t[5], t[7]),
    ];
    [
        _mm256_permute2f128_ps::<0x20>(s[0], s[4]),
        _mm256_permute2f128_ps::<0x20>(s[1], s[5]),
        _mm256_permute2f128_ps::<0x20>(s[2], s[6]),
        _mm256_permute2f128_ps::<0x20>(s[3], s[7]),
        _mm256_permute2f128_ps::<0x31>(s[0], s[4]),
        _mm256_permute2f128_ps::<0x31>(s[1], s[5]),
        _mm256_permute2f128_ps::<0x31>(s[2], s[6]),
        _mm256_permute2f128_ps::<0x31>(s[3], s[7]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_exactly_the_first_lanes() {
        if !is_x86_feature_detected!("avx2") || !is_x86_feature_detected!("fma") {
            return;
        }
        for n in 0..=8 {
            let mut buf = [-1.0f32; 10];
            // SAFETY: AVX2 checked; buf holds 1 + n ≤ 9 floats from index 1.
            unsafe { store_first(buf.as_mut_ptr().add(1), _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0), n) };
            let want: Vec<f32> = (0..10).map(|i| if (1..=n).contains(&i) { (i - 1) as f32 } else { -1.0 }).collect();
            assert_eq!(buf.to_vec(), want, "{n} lanes");
        }
    }
}
