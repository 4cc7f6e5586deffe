//! The AVX-512 path of [`Pool2d`] for the classic down-sampling MaxPools:
//! horizontal stride 2, window width 2 or 3, no horizontal dilation (the
//! 3×3/2 pools of AlexNet, GoogLeNet, SqueezeNet and ResNet, the 2×2/2 pools
//! of VGG). Each output vector comes straight from X with no band buffer:
//! the window's rows are reduced vertically over three consecutive
//! 16-column vectors of input (the third is the next output vector's
//! first, so it is carried), then the even columns, the odd ones and (width
//! 3) the even ones one further are picked by lane permutes. The general
//! row path stored every vertical reduction and read it back, with a
//! window-row loop per vector; this one keeps everything in registers.
//!
//! Columns outside the input read `-inf` (a masked load over the neutral
//! value), so the horizontal padding and `ceil_mode` windows need no
//! special case; a window with no row inside the input gives `-inf`.

use super::{max_nan_avx512, Pool2d, PoolKind};
use std::arch::x86_64::*;

impl Pool2d {
    /// Whether [`plane`] runs this pool: AVX-512 on this CPU, a MaxPool
    /// with horizontal stride 2, width 2 or 3, dilation 1.
    pub(super) fn takes_strided(&self) -> bool {
        let w = self.axis(1);
        self.run_isa() == crate::packed::Isa::Avx512 && self.kind == PoolKind::Max && w.s == 2 && matches!(w.k, 2 | 3) && w.d == 1
    }
}

/// Lanes `l` of a vector starting at input column `c` with `0 <= c + l < size`.
#[inline]
fn inside(c: isize, size: usize) -> __mmask16 {
    let lo = (-c).clamp(0, 16) as u32;
    let hi = (size as isize - c).clamp(0, 16) as u32;
    if hi <= lo {
        0
    } else {
        (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
    }
}

/// One output plane `y` from input plane `x`.
///
/// # Safety
/// The CPU has AVX-512F ([`Pool2d::takes_strided`]).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn plane(k: &Pool2d, x: &[f32], y: &mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe {
        if k.kernel[1] == 3 {
            plane_with::<3>(k, x, y)
        } else {
            plane_with::<2>(k, x, y)
        }
    }
}

/// [`plane`] for window width `KW` (2 or 3).
///
/// # Safety
/// As [`plane`]; `KW` is the pool's width.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn plane_with<const KW: usize>(k: &Pool2d, x: &[f32], y: &mut [f32]) {
    let (h, w) = (k.axis(0), k.axis(1));
    assert!(w.s == 2 && w.k == KW && w.d == 1, "pool2d strided instance");
    assert!(x.len() >= h.size * w.size && y.len() >= h.out * w.out, "pool2d plane sizes");
    for oy in 0..h.out {
        let span = h.span(oy);
        let row = x[(span.first * w.size).min(x.len())..].as_ptr();
        let yr = &mut y[oy * w.out..][..w.out];
        let pitch = h.d * w.size;
        // SAFETY: rows first + t·d < size for t < span.n (the span); AVX-512F (the caller's contract).
        unsafe {
            match span.n {
                0 => yr.fill(f32::NEG_INFINITY),
                1 => out_row::<KW, 1>(row, pitch, w.size, w.pb, yr),
                2 => out_row::<KW, 2>(row, pitch, w.size, w.pb, yr),
                3 => out_row::<KW, 3>(row, pitch, w.size, w.pb, yr),
                n => out_row_any::<KW>(row, pitch, n, w.size, w.pb, yr),
            }
        }
    }
}

/// One output row from the `N` input rows `pitch` apart from `row`, each
/// `size` wide, with `pb` columns of padding before them.
///
/// # Safety
/// The rows are valid for `size` floats each; AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn out_row<const KW: usize, const N: usize>(row: *const f32, pitch: usize, size: usize, pb: usize, y: &mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe { out_row_with::<KW>(size, pb, y, |c, mask| fold_rows(N, |t| load(row.wrapping_add(t * pitch), c, mask))) }
}

/// [`out_row`] for any number `n >= 4` of rows.
///
/// # Safety
/// As [`out_row`] with `n` rows.
#[target_feature(enable = "avx512f")]
unsafe fn out_row_any<const KW: usize>(row: *const f32, pitch: usize, n: usize, size: usize, pb: usize, y: &mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe { out_row_with::<KW>(size, pb, y, |c, mask| fold_rows(n, |t| load(row.wrapping_add(t * pitch), c, mask))) }
}

/// The 16 floats of a row from column `c`: all of them when `mask` is
/// `None`, else those under the mask and `-inf` in the other lanes.
///
/// # Safety
/// The lanes read lie inside the row.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load(row: *const f32, c: isize, mask: Option<__mmask16>) -> __m512 {
    let at = row.wrapping_offset(c);
    // SAFETY: the caller's contract; masked-off lanes are not read.
    unsafe {
        match mask {
            None => _mm512_loadu_ps(at),
            Some(m) => _mm512_mask_loadu_ps(_mm512_set1_ps(f32::NEG_INFINITY), m, at),
        }
    }
}

/// The NaN-propagating maximum of `f(0), …, f(n − 1)`, `n >= 1`.
#[target_feature(enable = "avx512f")]
#[inline]
fn fold_rows(n: usize, f: impl Fn(usize) -> __m512) -> __m512 {
    super::rows::fold_pairs(n, f, |a, b| max_nan_avx512(a, b))
}

/// One output row of a `size`-wide input with `pb` columns of padding,
/// `column(c, mask)` giving the window rows' maximum of the 16 input
/// columns from column `c` (masked as [`load`] when the vector is not
/// wholly inside the row).
///
/// # Safety
/// `column` reads only as [`load`] allows; AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn out_row_with<const KW: usize>(size: usize, pb: usize, y: &mut [f32], column: impl Fn(isize, Option<__mmask16>) -> __m512) {
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let at = |c: isize| {
        let whole = c >= 0 && c as usize + 16 <= size;
        column(c, if whole { None } else { Some(inside(c, size)) })
    };
    let out = y.len();
    let mut c = -(pb as isize);
    let mut v0 = at(c);
    for j in (0..out).step_by(16) {
        // Outputs j..j + 16 read columns c..c + 32 (width 3: c + 32 too,
        // lane 0 of v2); v2 starts the next outputs.
        let (v1, v2) = (at(c + 16), at(c + 32));
        let pairs = max_nan_avx512(_mm512_permutex2var_ps(v0, evens, v1), _mm512_permutex2var_ps(v0, odds, v1));
        let v = if KW == 3 {
            // Columns c + 2, c + 4, …, c + 32: the even lanes of the pair shifted by two.
            let shift = |lo: __m512, hi: __m512| _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(hi), _mm512_castps_si512(lo), 2));
            max_nan_avx512(pairs, _mm512_permutex2var_ps(shift(v0, v1), evens, shift(v1, v2)))
        } else {
            pairs
        };
        // SAFETY: columns j.. under the mask < out, inside y.
        unsafe { _mm512_mask_storeu_ps(y.as_mut_ptr().add(j), super::rows::lanes(out - j), v) };
        v0 = v2;
        c += 32;
    }
}
