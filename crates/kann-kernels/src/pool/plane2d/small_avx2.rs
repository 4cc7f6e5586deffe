//! The AVX2 path of [`Pool2d`] for the "same" 3×3 pools of stride 1 over
//! planes at most 32 wide (the Inception modules' pool branches on 28×28,
//! 14×14 and 7×7 maps, max or average): a plane's rows are 1 to 4 vectors,
//! each row's horizontal reductions come from its vectors and their
//! neighbours shifted in by one lane (no buffer, no per-row offsets), and
//! each output row reduces three consecutive rows of those, carried from
//! row to row in registers. The general row path spent its time setting up
//! rows and bands: GoogLeNet's 832-plane 7×7 max pools took ~200 µs, 2.9×
//! ONNX Runtime's; Inception v2's average pools 2.5-3×.
//!
//! Columns past the row read the neutral value (`-inf` for max, `0` for
//! sums: a masked load, blended), so the padding needs no special case;
//! NaN propagates as in the reference. An average multiplies each sum by
//! the reciprocal of its window's count: 9, or without `count_include_pad`
//! the rows times the columns of the window inside the plane.

use super::{max_nan_avx2, Pool2d, PoolKind};
use std::arch::x86_64::*;

/// Most vectors of a row.
const MAX_VECTORS: usize = 4;

impl Pool2d {
    /// Whether [`plane`] runs this pool: AVX2 its ISA (and this CPU's), a
    /// MaxPool or AveragePool of a 3×3 window at stride 1, dilation 1, one row and column
    /// of padding on every side (output the input's size), at most 32
    /// columns.
    pub(super) fn takes_small_avx2(&self) -> bool {
        let (h, w) = (self.axis(0), self.axis(1));
        let same = |a: &super::Axis| a.k == 3 && a.s == 1 && a.d == 1 && a.pb == 1 && a.pe == 1 && a.out == a.size;
        let kind = matches!(self.kind, PoolKind::Max | PoolKind::Average { .. });
        self.run_isa() == crate::packed::Isa::Avx2 && kind && same(&h) && same(&w) && (1..=8 * MAX_VECTORS).contains(&w.size)
    }
}

/// Lanes `l < n` of a vector (all bits set in those lanes).
#[target_feature(enable = "avx2")]
#[inline]
fn first(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// One output plane `y` from input plane `x`.
///
/// # Safety
/// The CPU has AVX2 ([`Pool2d::takes_small_avx2`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn plane(k: &Pool2d, x: &[f32], y: &mut [f32]) {
    // SAFETY: the caller's contract, with the row's vector count as a constant.
    unsafe {
        match (k.axis(1).size.div_ceil(8), k.kind == PoolKind::Max) {
            (1, true) => plane_with::<1, false>(k, x, y),
            (2, true) => plane_with::<2, false>(k, x, y),
            (3, true) => plane_with::<3, false>(k, x, y),
            (_, true) => plane_with::<4, false>(k, x, y),
            (1, false) => plane_with::<1, true>(k, x, y),
            (2, false) => plane_with::<2, true>(k, x, y),
            (3, false) => plane_with::<3, true>(k, x, y),
            (_, false) => plane_with::<4, true>(k, x, y),
        }
    }
}

/// [`plane`] for rows of `V` vectors, sums when `AVG` (maxima otherwise).
///
/// # Safety
/// As [`plane`]; rows are `8·(V−1) < w <= 8·V` wide.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn plane_with<const V: usize, const AVG: bool>(k: &Pool2d, x: &[f32], y: &mut [f32]) {
    let (rows, w) = (k.axis(0).size, k.axis(1).size);
    assert!(w.div_ceil(8) == V && x.len() >= rows * w && y.len() >= rows * w, "pool2d small plane sizes");
    let tail = first(w - 8 * (V - 1));
    let neutral = _mm256_set1_ps(if AVG { 0.0 } else { f32::NEG_INFINITY });
    let combine = |a: __m256, b: __m256| if AVG { _mm256_add_ps(a, b) } else { max_nan_avx2(a, b) };
    // An average's divisor: 9, or the window's rows inside times its columns inside.
    let whole = matches!(k.kind, PoolKind::Average { count_include_pad: true });
    let inside = |i: usize, n: usize| if whole { 3.0 } else { (1 + usize::from(i > 0) + usize::from(i + 1 < n)) as f32 };
    let col_scale: [__m256; V] = std::array::from_fn(|j| {
        let lanes: [f32; 8] = std::array::from_fn(|l| 1.0 / inside(8 * j + l, w));
        // SAFETY: 8 floats.
        unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
    });
    // Row r's horizontal reductions (rows outside the plane: neutral).
    let across = |r: usize| -> [__m256; V] {
        let row = x[r * w..].as_ptr();
        // SAFETY: the row's w floats; the last vector's lanes past w are not read.
        let v: [__m256; V] = std::array::from_fn(|j| unsafe {
            if j + 1 < V {
                _mm256_loadu_ps(row.add(8 * j))
            } else {
                _mm256_blendv_ps(neutral, _mm256_maskload_ps(row.add(8 * j), tail), _mm256_castsi256_ps(tail))
            }
        });
        std::array::from_fn(|j| {
            let (before, after) = (if j > 0 { v[j - 1] } else { neutral }, if j + 1 < V { v[j + 1] } else { neutral });
            // Column c - 1 in lane c: the previous vector's last lane shifted in.
            let prev = _mm256_castsi256_ps(_mm256_alignr_epi8::<12>(_mm256_castps_si256(v[j]), _mm256_castps_si256(_mm256_permute2f128_ps::<0x21>(before, v[j]))));
            // Column c + 1 in lane c: the next vector's first lane shifted in.
            let next = _mm256_castsi256_ps(_mm256_alignr_epi8::<4>(_mm256_castps_si256(_mm256_permute2f128_ps::<0x21>(v[j], after)), _mm256_castps_si256(v[j])));
            combine(combine(prev, v[j]), next)
        })
    };
    let mut above = [neutral; V];
    let mut here = across(0);
    for r in 0..rows {
        let below = if r + 1 < rows { across(r + 1) } else { [neutral; V] };
        let out = y[r * w..].as_mut_ptr();
        let row_scale = _mm256_set1_ps(1.0 / inside(r, rows));
        for j in 0..V {
            let mut m = combine(combine(above[j], here[j]), below[j]);
            if AVG {
                m = _mm256_mul_ps(_mm256_mul_ps(m, col_scale[j]), row_scale);
            }
            // SAFETY: output row r's w floats; the last vector's lanes past w are not written.
            unsafe {
                if j + 1 < V {
                    _mm256_storeu_ps(out.add(8 * j), m);
                } else {
                    crate::avx2::store_first(out.add(8 * j), m, w - 8 * (V - 1));
                }
            }
        }
        (above, here) = (here, below);
    }
}
