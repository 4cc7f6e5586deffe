//! The AVX2 path of [`Pool2d`] for the down-sampling MaxPools of stride 2
//! (2×2 or 3×3 windows, at most one row and column of padding before) over
//! planes whose output rows are at most 32 wide: SqueezeNet's, GoogLeNet's
//! and AlexNet's 3×3/2 pools on 55×55 to 13×13 maps, VGG's 2×2/2 ones on
//! 28×28 and 14×14. An output row is a fixed number of vectors (a constant
//! of the code), so the whole row is computed in registers: the window's
//! input rows are loaded as `2·O + 1` vectors each (`O` output vectors),
//! reduced vertically, and each output vector picks the even columns, the
//! odd ones and (width 3) the evens one further from two or three of them.
//! The masks of the vectors that cross the row's ends are the same for
//! every row and computed once a plane.
//!
//! The general strided path ([`super::strided_avx2`]) did the same vector by
//! vector with a mask, a branch and a call per vector, set up again on
//! every row: on SqueezeNet's 27×27 and 55×55 planes it ran 2.5-2.8× ONNX
//! Runtime's pools (124 and 178 µs against 44 and 72, one core of Zen 3).
//! Alternated with it (Zen 3, hot input): 256 planes 27×27 0.40-0.62×,
//! 128 × 55×55 0.79×, 256 × 13×13 0.50-0.51×, 832 × 14×14 2×2 0.45-0.48×,
//! 480 × 28×28 padded 0.62-0.78×.
//!
//! Columns outside the input read `-inf` (a masked load blended over it):
//! the padding and `ceil_mode` windows need no special case. Rows outside
//! are left out of the reduction; a window with no row inside gives `-inf`.
//! NaN propagates as in the reference.

use super::strided_avx2::deal;
use super::{max_nan_avx2, Pool2d, PoolKind};
use std::arch::x86_64::*;

/// Most output vectors of a row (32 columns).
const MAX_OUT_VECTORS: usize = 4;

impl Pool2d {
    /// Whether [`plane`] runs this pool: AVX2 its ISA (and this CPU's), a
    /// MaxPool of a 2×2 or 3×3 window at stride 2, dilation 1, at most one
    /// row or column of padding before, and output rows of at most 32.
    pub(super) fn takes_small_strided_avx2(&self) -> bool {
        let (h, w) = (self.axis(0), self.axis(1));
        let axis_ok = |a: &super::Axis| a.s == 2 && a.d == 1 && matches!(a.k, 2 | 3) && a.pb <= 1 && a.pb < a.k;
        self.run_isa() == crate::packed::Isa::Avx2
            && self.kind == PoolKind::Max
            && axis_ok(&h)
            && axis_ok(&w)
            && h.k == w.k
            && (1..=8 * MAX_OUT_VECTORS).contains(&w.out)
    }
}

/// Lanes `l` of the vector of padded columns `8j..8j + 8` (input columns
/// `8j − pb + l`) that lie inside a row of `size` (all bits set in those).
#[target_feature(enable = "avx2,fma")]
fn inside(j: usize, pb: usize, size: usize) -> __m256i {
    let first = 8 * j as i32 - pb as i32;
    let column = _mm256_add_epi32(_mm256_set1_epi32(first), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_and_si256(_mm256_cmpgt_epi32(column, _mm256_set1_epi32(-1)), _mm256_cmpgt_epi32(_mm256_set1_epi32(size as i32), column))
}

/// One output plane `y` from input plane `x`.
///
/// # Safety
/// The CPU has AVX2 and FMA ([`Pool2d::takes_small_strided_avx2`]).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn plane(k: &Pool2d, x: &[f32], y: &mut [f32]) {
    // SAFETY: the caller's contract, with the window width and the row's
    // output vectors as constants.
    unsafe {
        match (k.kernel[1] == 3, k.axis(1).out.div_ceil(8)) {
            (true, 1) => plane_with::<3, 1, 3>(k, x, y),
            (true, 2) => plane_with::<3, 2, 5>(k, x, y),
            (true, 3) => plane_with::<3, 3, 7>(k, x, y),
            (true, _) => plane_with::<3, 4, 9>(k, x, y),
            (false, 1) => plane_with::<2, 1, 3>(k, x, y),
            (false, 2) => plane_with::<2, 2, 5>(k, x, y),
            (false, 3) => plane_with::<2, 3, 7>(k, x, y),
            (false, _) => plane_with::<2, 4, 9>(k, x, y),
        }
    }
}

/// [`plane`] for windows `KW` wide (and high), `O` output vectors a row
/// from `V = 2·O + 1` vectors of padded input columns.
///
/// # Safety
/// As [`plane`]; the pool's output rows are `8·(O−1) < out <= 8·O` wide.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn plane_with<const KW: usize, const O: usize, const V: usize>(k: &Pool2d, x: &[f32], y: &mut [f32]) {
    let (h, w) = (k.axis(0), k.axis(1));
    assert!(V == 2 * O + 1 && w.out.div_ceil(8) == O && h.k == KW && w.k == KW && w.pb <= 1, "pool2d small strided instance");
    assert!(x.len() >= h.size * w.size && y.len() >= h.out * w.out, "pool2d plane sizes");
    let neutral = _mm256_set1_ps(f32::NEG_INFINITY);
    // Per vector of padded columns: None when wholly inside the row, else
    // the lanes inside (a vector past the row's end has none).
    let masks: [Option<__m256i>; V] = std::array::from_fn(|j| {
        let first = 8 * j as isize - w.pb as isize;
        (first < 0 || first + 8 > w.size as isize).then(|| inside(j, w.pb, w.size))
    });
    // The vectors of padded columns of input row `r`.
    let load_row = |r: usize| -> [__m256; V] {
        let row = x[r * w.size..].as_ptr();
        std::array::from_fn(|j| {
            let at = row.wrapping_offset(8 * j as isize - w.pb as isize);
            // SAFETY: unmasked vectors lie inside the row; masked-off lanes are not read.
            unsafe {
                match masks[j] {
                    None => _mm256_loadu_ps(at),
                    Some(m) => _mm256_blendv_ps(neutral, _mm256_maskload_ps(at, m), _mm256_castsi256_ps(m)),
                }
            }
        })
    };
    for oy in 0..h.out {
        // The window's rows inside the plane.
        let top = (2 * oy) as isize - h.pb as isize;
        let rows = (0..KW as isize).map(|t| top + t).filter(|&r| r >= 0 && (r as usize) < h.size);
        let mut v = [neutral; V];
        for (n, r) in rows.enumerate() {
            let next = load_row(r as usize);
            v = if n == 0 { next } else { std::array::from_fn(|j| max_nan_avx2(v[j], next[j])) };
        }
        let out = y[oy * w.out..].as_mut_ptr();
        for q in 0..O {
            let (v0, v1, v2) = (v[2 * q], v[2 * q + 1], v[2 * q + 2]);
            // Padded columns 16q + 2l (evens) and 16q + 2l + 1 (odds).
            let evens = deal::<false>(v0, v1);
            let mut m = max_nan_avx2(evens, deal::<true>(v0, v1));
            if KW == 3 {
                // Columns 16q + 2l + 2: the evens one lane on, v2's first entering.
                let across = _mm256_permute2f128_ps::<0x21>(evens, v2);
                let further = _mm256_castsi256_ps(_mm256_alignr_epi8::<4>(_mm256_castps_si256(across), _mm256_castps_si256(evens)));
                m = max_nan_avx2(m, further);
            }
            // SAFETY: outputs 8q.. of row oy (at most w.out − 8q of them) lie inside y.
            unsafe {
                if 8 * (q + 1) <= w.out {
                    _mm256_storeu_ps(out.add(8 * q), m);
                } else {
                    crate::avx2::store_first(out.add(8 * q), m, w.out - 8 * q);
                }
            }
        }
    }
}
