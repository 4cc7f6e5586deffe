//! The AVX2 twin of AVX-512's [`super::strided`] for the classic
//! down-sampling MaxPools (horizontal stride 2, window width 2 or 3, no
//! horizontal dilation: the 3×3/2 and 2×2/2 pools of AlexNet, GoogLeNet,
//! SqueezeNet and ResNet): each output vector of 8 comes straight from X,
//! the window's rows reduced vertically over three consecutive 8-column
//! vectors of input (the third starts the next output vector, so it is
//! carried), then the even columns, the odd ones and (width 3) the even
//! ones one further picked by in-lane shuffles and a cross-lane permute.
//!
//! The general row path stored every vertical reduction, reduced it
//! horizontally at every column and picked the strided outputs one by one
//! (SqueezeNet's 3×3/2 pools ran 2-3× ONNX Runtime's; 64 planes 112×112
//! 3×3/2 372-397 → 134-195 µs on Zen 3). At stride 1 (the Inception
//! modules' 3×3/1 branches) reading each output's columns this way, the
//! vertical reduction redone at every column offset, ran slower than the
//! row path (192 planes 28×28 113-125 → 181 µs) and stays there.
//!
//! Columns outside the input read `-inf` (a masked load blended over the
//! neutral value), so the horizontal padding and `ceil_mode` windows need
//! no special case; a window with no row inside the input gives `-inf`.
//!
//! AveragePools of the same shapes (DenseNet's 2×2/2 transitions,
//! ShuffleNet's padded 3×3/2) run the same way on sums (neutral `0`), each
//! divided by its window's rows times its columns inside the input (with
//! `count_include_pad`, inside the padded input): the row path took 2.5-5×
//! ONNX Runtime's.

use super::{max_nan_avx2, Pool2d, PoolKind};
use std::arch::x86_64::*;

impl Pool2d {
    /// Whether [`plane`] runs this pool: AVX2 its ISA (and this CPU's), a
    /// MaxPool with horizontal stride 2, width 2 or 3, dilation 1; or an
    /// AveragePool of that width whose every window holds a tap of the
    /// input (no vertical dilation: its divisor counts whole rows).
    pub(super) fn takes_strided_avx2(&self) -> bool {
        let (h, w) = (self.axis(0), self.axis(1));
        // The first window ends, and the last one starts, inside the input.
        let taps = |a: &super::Axis| a.pb < (a.k - 1) * a.d + 1 && a.s * (a.out - 1) < a.size + a.pb;
        let kind = match self.kind {
            PoolKind::Max => true,
            PoolKind::Average { .. } => h.d == 1 && taps(&h) && taps(&w),
            PoolKind::Lp { .. } => false,
        };
        self.run_isa() == crate::packed::Isa::Avx2 && kind && w.s == 2 && matches!(w.k, 2 | 3) && w.d == 1
    }
}

/// Lanes `l` of a vector starting at input column `c` with `0 <= c + l < size`
/// (all bits set in those lanes).
#[target_feature(enable = "avx2")]
#[inline]
fn inside(c: isize, size: usize) -> __m256i {
    let lo = (-c).clamp(0, 8) as i32;
    let hi = (size as isize - c).clamp(0, 8) as i32;
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane), _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo - 1)))
}

/// One output plane `y` from input plane `x`.
///
/// # Safety
/// The CPU has AVX2 ([`Pool2d::takes_strided_avx2`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn plane(k: &Pool2d, x: &[f32], y: &mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe {
        match (k.kernel[1] == 3, k.kind == PoolKind::Max) {
            (true, true) => plane_with::<3, false>(k, x, y),
            (false, true) => plane_with::<2, false>(k, x, y),
            (true, false) => plane_with::<3, true>(k, x, y),
            (false, false) => plane_with::<2, true>(k, x, y),
        }
    }
}

/// [`plane`] for window width `KW` (2 or 3), averages when `AVG`.
///
/// # Safety
/// As [`plane`]; `KW` is the pool's width.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn plane_with<const KW: usize, const AVG: bool>(k: &Pool2d, x: &[f32], y: &mut [f32]) {
    let (h, w) = (k.axis(0), k.axis(1));
    assert!(w.s == 2 && w.k == KW && w.d == 1, "pool2d strided instance");
    let padded = matches!(k.kind, PoolKind::Average { count_include_pad: true });
    assert!(x.len() >= h.size * w.size && y.len() >= h.out * w.out, "pool2d plane sizes");
    for oy in 0..h.out {
        let span = h.span(oy);
        let row = x[(span.first * w.size).min(x.len())..].as_ptr();
        let yr = &mut y[oy * w.out..][..w.out];
        let pitch = h.d * w.size;
        // An average's row factor: 1 / the window's rows inside (≥ 1, see
        // takes_strided_avx2), or inside the padded input.
        let rows = 1.0 / if padded { span.padded } else { span.n }.max(1) as f32;
        let cols = Columns { pb: w.pb, lo: if padded { -(w.pb as isize) } else { 0 }, hi: w.size + if padded { w.pe } else { 0 } };
        // SAFETY: rows first + t·d < size for t < span.n (the span); AVX2 (the caller's contract).
        unsafe {
            match span.n {
                0 => yr.fill(f32::NEG_INFINITY),
                1 => out_row::<KW, 1, AVG>(row, pitch, w.size, cols, rows, yr),
                2 => out_row::<KW, 2, AVG>(row, pitch, w.size, cols, rows, yr),
                3 => out_row::<KW, 3, AVG>(row, pitch, w.size, cols, rows, yr),
                n => out_row_any::<KW, AVG>(row, pitch, n, w.size, cols, rows, yr),
            }
        }
    }
}

/// The columns of a row's windows: `pb` of padding before the input, and
/// the extent `lo..hi` an average's divisor counts (the input's, or with
/// `count_include_pad` the padded input's).
#[derive(Clone, Copy)]
struct Columns {
    pb: usize,
    lo: isize,
    hi: usize,
}

/// One output row from the `N` input rows `pitch` apart from `row`, each
/// `size` wide, with `cols` (`rows`: an average's row factor).
///
/// # Safety
/// The rows are valid for `size` floats each; AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn out_row<const KW: usize, const N: usize, const AVG: bool>(row: *const f32, pitch: usize, size: usize, cols: Columns, rows: f32, y: &mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe { out_row_with::<KW, AVG>(size, cols, rows, y, |c, mask| fold_rows::<AVG>(N, |t| load::<AVG>(row.wrapping_add(t * pitch), c, mask))) }
}

/// [`out_row`] for any number `n >= 4` of rows.
///
/// # Safety
/// As [`out_row`] with `n` rows.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn out_row_any<const KW: usize, const AVG: bool>(row: *const f32, pitch: usize, n: usize, size: usize, cols: Columns, rows: f32, y: &mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe { out_row_with::<KW, AVG>(size, cols, rows, y, |c, mask| fold_rows::<AVG>(n, |t| load::<AVG>(row.wrapping_add(t * pitch), c, mask))) }
}

/// The 8 floats of a row from column `c`: all of them when `mask` is
/// `None`, else those under the mask and the neutral value (`-inf`, or
/// `0` for sums) in the other lanes.
///
/// # Safety
/// The lanes read lie inside the row.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load<const AVG: bool>(row: *const f32, c: isize, mask: Option<__m256i>) -> __m256 {
    let at = row.wrapping_offset(c);
    // SAFETY: the caller's contract; masked-off lanes are not read (and load as 0).
    unsafe {
        match mask {
            None => _mm256_loadu_ps(at),
            Some(m) if AVG => _mm256_maskload_ps(at, m),
            Some(m) => _mm256_blendv_ps(_mm256_set1_ps(f32::NEG_INFINITY), _mm256_maskload_ps(at, m), _mm256_castsi256_ps(m)),
        }
    }
}

/// `a` and `b` combined: summed when `AVG`, else their NaN-propagating maximum.
#[target_feature(enable = "avx2")]
#[inline]
fn combine<const AVG: bool>(a: __m256, b: __m256) -> __m256 {
    if AVG {
        _mm256_add_ps(a, b)
    } else {
        max_nan_avx2(a, b)
    }
}

/// `f(0), …, f(n − 1)` combined, `n >= 1`.
#[target_feature(enable = "avx2")]
#[inline]
fn fold_rows<const AVG: bool>(n: usize, f: impl Fn(usize) -> __m256) -> __m256 {
    super::rows::fold_pairs(n, f, |a, b| combine::<AVG>(a, b))
}

/// The even lanes of `lo` then those of `hi` (`ODD`: the odd lanes).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn deal<const ODD: bool>(lo: __m256, hi: __m256) -> __m256 {
    // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then its 64-bit lanes 0 2 1 3.
    let s = if ODD { _mm256_shuffle_ps::<0xDD>(lo, hi) } else { _mm256_shuffle_ps::<0x88>(lo, hi) };
    _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(s)))
}

/// One output row of a `size`-wide input with `cols.pb` columns of padding,
/// `column(c, mask)` giving the window rows' reduction of the 8 input
/// columns from column `c` (masked as [`load`] when the vector is not
/// wholly inside the row). An average multiplies each output by `rows`
/// and 1 / its window's columns in `cols.lo..cols.hi`.
///
/// # Safety
/// `column` reads only as [`load`] allows; AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn out_row_with<const KW: usize, const AVG: bool>(size: usize, cols: Columns, rows: f32, y: &mut [f32], column: impl Fn(isize, Option<__m256i>) -> __m256) {
    let at = |c: isize| {
        let whole = c >= 0 && c as usize + 8 <= size;
        column(c, if whole { None } else { Some(inside(c, size)) })
    };
    let out = y.len();
    let mut c = -(cols.pb as isize);
    let mut v0 = at(c);
    for j in (0..out).step_by(8) {
        // Outputs j..j + 8 read columns c..c + 16 (width 3: c + 16 too,
        // lane 0 of v2); v2 starts the next outputs.
        let (v1, v2) = (at(c + 8), at(c + 16));
        let evens = deal::<false>(v0, v1);
        let pairs = combine::<AVG>(evens, deal::<true>(v0, v1));
        let mut v = if KW == 3 {
            // Columns c + 2, c + 4, …, c + 16: the evens shifted by one lane, v2's first entering.
            let across = _mm256_permute2f128_ps::<0x21>(evens, v2);
            let next = _mm256_castsi256_ps(_mm256_alignr_epi8::<4>(_mm256_castps_si256(across), _mm256_castps_si256(evens)));
            combine::<AVG>(pairs, next)
        } else {
            pairs
        };
        if AVG {
            // Output j + l's window covers columns c + 2l .. c + 2l + KW.
            let start = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32(c as i32), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)));
            let end = _mm256_min_ps(_mm256_add_ps(start, _mm256_set1_ps(KW as f32)), _mm256_set1_ps(cols.hi as f32));
            let count = _mm256_sub_ps(end, _mm256_max_ps(start, _mm256_set1_ps(cols.lo as f32)));
            v = _mm256_mul_ps(v, _mm256_div_ps(_mm256_set1_ps(rows), count));
        }
        v0 = v2;
        c += 16;
        // SAFETY: outputs j.. (at most out - j of them) lie inside y.
        unsafe {
            if out - j >= 8 {
                _mm256_storeu_ps(y.as_mut_ptr().add(j), v);
            } else {
                crate::avx2::store_first(y.as_mut_ptr().add(j), v, out - j);
            }
        }
    }
}
