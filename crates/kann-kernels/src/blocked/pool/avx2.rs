//! The AVX2 path: a block's output rows straight from its input plane. A
//! pixel's 8 channels are one ymm register, so a tap is one load and one
//! `vmaxps` or `vaddps`, and an output pixel one store.
//!
//! The common windows (2×2/2, 3×3/1, 3×3/2, dilation 1: the kernel width
//! and column stride as constants, and the number of window rows inside
//! the input) run by columns: each input column a row's windows read is
//! reduced over the window rows once, into a register, and each window
//! from its columns, the ones the next window shares kept in registers (a
//! 3×3/2 window loads 6 vectors instead of 9, a 3×3/1 one 3). Columns in
//! the padding or past it are the neutral value (`-inf`, 0), so the
//! border pixels run the same way with a check per column; the others
//! load with none. Other geometries, and rows with no window row inside
//! the input, visit each window's taps inside the input one by one, in
//! kernel order as the portable path.
//!
//! `vmaxps` returns its second operand when either is NaN, so a running
//! maximum kept there keeps a NaN it holds; a NaN among the other operands
//! is caught by an unordered compare, whose all-ones mask (itself a NaN)
//! is or-ed into the result; one compare checks two operands.

use super::{Axis, BlockedPool, Span};
use crate::blocked::BLOCK;
use std::arch::x86_64::*;
use std::ops::Range;

/// The window rows of an output row that lie inside the input: `n` rows,
/// the first one's column 0 at `x`, the next `step` floats apart.
#[derive(Clone, Copy)]
struct Rows {
    x: *const f32,
    step: usize,
    n: usize,
}

/// One output row: its window rows, the columns' geometry and the pixels
/// `y` (`[ow][8]`).
struct Line<'a> {
    k: &'a BlockedPool,
    w: Axis,
    /// The outputs whose every tap lies inside the input row ([`Axis::interior`]).
    inner: Range<usize>,
    rows: Rows,
    /// What the window rows count in an average's divisor.
    row_count: usize,
    y: *mut f32,
}

/// A row run by columns (`unsafe`: it needs AVX2).
type LineFn = unsafe fn(&Line);

/// The row function for `rows` window rows (at least one) of windows
/// `KW` wide at column stride `SW`.
fn by_rows<const KW: usize, const SW: usize, const MAX: bool>(rows: usize) -> LineFn {
    match rows {
        1 => by_columns::<KW, SW, MAX, 1>,
        2 => by_columns::<KW, SW, MAX, 2>,
        3 => by_columns::<KW, SW, MAX, 3>,
        _ => by_columns::<KW, SW, MAX, 0>,
    }
}

/// Output rows `oys` of one block: `x` its input plane `[ih][iw][8]`, `y`
/// those rows `[oys.len()][ow][8]`.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn rows(k: &BlockedPool, x: &[f32], oys: Range<usize>, y: &mut [f32]) {
    let [h, w] = k.axes();
    let inner = w.interior();
    // Every load below stays inside x and every store inside y: window
    // rows by their spans (checked as they are made), columns by their
    // spans, the interior (checked here) or a check per column.
    assert!(x.len() >= h.size * w.size * BLOCK && oys.end <= h.out && y.len() >= oys.len() * w.out * BLOCK, "blocked pool rows out of bounds");
    assert!(inner.is_empty() || (inner.start * w.s >= w.pb && (inner.end - 1) * w.s + w.k.saturating_sub(1) * w.d < w.size + w.pb), "blocked pool interior");
    let max = k.is_max();
    let by_columns: Option<fn(usize) -> LineFn> = match (w.k, w.s, w.d, max) {
        (2, 2, 1, true) => Some(by_rows::<2, 2, true>),
        (2, 2, 1, false) => Some(by_rows::<2, 2, false>),
        (3, 1, 1, true) => Some(by_rows::<3, 1, true>),
        (3, 1, 1, false) => Some(by_rows::<3, 1, false>),
        (3, 2, 1, true) => Some(by_rows::<3, 2, true>),
        (3, 2, 1, false) => Some(by_rows::<3, 2, false>),
        _ => None,
    };
    for (r, oy) in oys.enumerate() {
        let sp = h.span(oy);
        assert!(sp.n == 0 || sp.first + (sp.n - 1) * h.d < h.size, "blocked pool window rows");
        let rows = Rows { x: x[sp.first * w.size * BLOCK..].as_ptr(), step: h.d * w.size * BLOCK, n: sp.n };
        let line = Line { k, w, inner: inner.clone(), rows, row_count: k.count(sp), y: y[r * w.out * BLOCK..][..w.out * BLOCK].as_mut_ptr() };
        match by_columns {
            // SAFETY: the window rows are inside x (their span), the
            // columns inside the rows as the function checks them, the
            // pixels inside y's row; the CPU has AVX2.
            Some(pick) if rows.n > 0 => unsafe { pick(rows.n)(&line) },
            // SAFETY: as above.
            _ => unsafe { by_taps_line(&line) },
        }
    }
}

/// A row's pixels tap by tap ([`by_taps`]).
///
/// # Safety
/// `line`'s window rows are inside the input; AVX2.
#[target_feature(enable = "avx2,fma")]
unsafe fn by_taps_line(line: &Line) {
    let (k, w, max) = (line.k, line.w, line.k.is_max());
    for ox in 0..w.out {
        let cs = w.span(ox);
        assert!(cs.n == 0 || cs.first + (cs.n - 1) * w.d < w.size, "blocked pool window columns");
        let div = (!max).then(|| _mm256_set1_ps((line.row_count * k.count(cs)) as f32));
        // SAFETY: the window's rows and columns are inside the input (their
        // spans: the caller's contract, checked), pixel ox inside the row.
        unsafe { store(line.y.add(ox * BLOCK), by_taps(max, line.rows, cs, w.d), div) };
    }
}

/// Stores pixel `v` at `y`, divided by `div` for an average.
///
/// # Safety
/// 8 floats at `y`; AVX2.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store(y: *mut f32, v: __m256, div: Option<__m256>) {
    let v = match div {
        Some(n) => _mm256_div_ps(v, n),
        None => v,
    };
    // SAFETY: the caller's contract.
    unsafe { _mm256_storeu_ps(y, v) };
}

/// One window tap by tap in kernel order (rows, then the columns of `cs`,
/// `d` apart): the max (`-inf` with no tap) or the sum.
///
/// # Safety
/// Every tap is inside the input; AVX2.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn by_taps(max: bool, rows: Rows, cs: Span, d: usize) -> __m256 {
    let mut acc = _mm256_set1_ps(if max { f32::NEG_INFINITY } else { 0.0 });
    let mut nan = _mm256_setzero_ps();
    for r in 0..rows.n {
        for t in 0..cs.n {
            // SAFETY: the caller's contract.
            let v = unsafe { _mm256_loadu_ps(rows.x.add(r * rows.step + (cs.first + t * d) * BLOCK)) };
            if max {
                acc = _mm256_max_ps(v, acc);
                nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(nan, v);
            } else {
                acc = _mm256_add_ps(acc, v);
            }
        }
    }
    if max {
        _mm256_or_ps(acc, nan)
    } else {
        acc
    }
}

/// The max (NaN from any operand: see the module's notes) or the sum of `v`.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn reduce<const N: usize, const MAX: bool>(v: [__m256; N]) -> __m256 {
    const { assert!(N >= 1) };
    let mut acc = v[0];
    if !MAX {
        for &x in &v[1..] {
            acc = _mm256_add_ps(acc, x);
        }
        return acc;
    }
    // v[0] is kept by vmaxps as the running maximum; the others are checked in pairs.
    let mut nan: Option<__m256> = None;
    for pair in v[1..].chunks(2) {
        acc = pair.iter().fold(acc, |a, &x| _mm256_max_ps(x, a));
        let u = _mm256_cmp_ps::<_CMP_UNORD_Q>(pair[0], pair[pair.len() - 1]);
        nan = Some(nan.map_or(u, |n| _mm256_or_ps(n, u)));
    }
    nan.map_or(acc, |n| _mm256_or_ps(acc, n))
}

/// Input column `col` reduced over the window rows, `N` of them (0: any
/// number but 0); a NaN among them leaves a NaN.
///
/// # Safety
/// The column is inside each of `rows`; AVX2.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn column<const MAX: bool, const N: usize>(rows: Rows, col: usize) -> __m256 {
    let p = rows.x.wrapping_add(col * BLOCK);
    // SAFETY: row r < rows.n of the column (the caller's contract).
    let at = |r: usize| unsafe { _mm256_loadu_ps(p.add(r * rows.step)) };
    match N {
        1 => at(0),
        2 => reduce::<2, MAX>([at(0), at(1)]),
        3 => reduce::<3, MAX>([at(0), at(1), at(2)]),
        _ => {
            let mut acc = at(0);
            let mut r = 1;
            while r + 1 < rows.n {
                acc = reduce::<3, MAX>([acc, at(r), at(r + 1)]);
                r += 2;
            }
            if r < rows.n {
                acc = reduce::<2, MAX>([acc, at(r)]);
            }
            acc
        }
    }
}

/// One output row whose windows are `KW` taps wide at column stride `SW`
/// (dilation 1) over `N` window rows (0: any number but 0): each input
/// column reduced over the window rows once ([`column`]), the ones the
/// next window shares kept. The border pixels check each column, the
/// interior ones none.
///
/// # Safety
/// `line`'s window rows are inside the input, `N` of them (or any number
/// but 0 for 0); AVX2.
#[target_feature(enable = "avx2,fma")]
unsafe fn by_columns<const KW: usize, const SW: usize, const MAX: bool, const N: usize>(line: &Line) {
    const { assert!(KW >= 1 && SW >= 1) };
    let (inner, out) = (line.inner.clone(), line.w.out);
    let mut c = [_mm256_setzero_ps(); KW];
    // SAFETY: the caller's contract; the interior pixels' columns inside
    // the row (Axis::interior, checked by rows), the others checked.
    unsafe {
        pixels::<KW, SW, MAX, N, true>(line, 0..inner.start, &mut c);
        pixels::<KW, SW, MAX, N, false>(line, inner.clone(), &mut c);
        pixels::<KW, SW, MAX, N, true>(line, inner.end..out, &mut c);
    }
}

/// Pixels `oxs` of [`by_columns`]'s row, `c` the previous pixel's columns
/// (`oxs` follows it). With `EDGE`, a column outside the input row is
/// the neutral value, and an average's divisor is the pixel's own.
///
/// # Safety
/// As [`by_columns`]; without `EDGE`, every pixel of `oxs` is interior.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn pixels<const KW: usize, const SW: usize, const MAX: bool, const N: usize, const EDGE: bool>(line: &Line, oxs: Range<usize>, c: &mut [__m256; KW]) {
    let w = line.w;
    let neutral = _mm256_set1_ps(if MAX { f32::NEG_INFINITY } else { 0.0 });
    // Every tap of an interior window is inside: the counts are the kernel's.
    let inner_div = _mm256_set1_ps((line.row_count * KW) as f32);
    for ox in oxs {
        let base = (ox * SW) as isize - w.pb as isize;
        for j in 0..KW {
            let col = base + j as isize;
            c[j] = if ox > 0 && j + SW < KW {
                c[j + SW]
            } else if !EDGE || (col >= 0 && (col as usize) < w.size) {
                // SAFETY: a column inside the row (checked, or interior).
                unsafe { column::<MAX, N>(line.rows, col as usize) }
            } else {
                neutral
            };
        }
        let v = reduce::<KW, MAX>(*c);
        let v = match (MAX, EDGE) {
            (true, _) => v,
            (false, false) => _mm256_div_ps(v, inner_div),
            (false, true) => _mm256_div_ps(v, _mm256_set1_ps((line.row_count * line.k.count(w.span(ox))) as f32)),
        };
        // SAFETY: pixel ox < ow of the row.
        unsafe { _mm256_storeu_ps(line.y.add(ox * BLOCK), v) };
    }
}
