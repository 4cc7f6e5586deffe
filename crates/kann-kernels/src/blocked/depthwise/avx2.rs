//! The AVX2+FMA path: one channel block's output plane straight from its
//! input plane, with no copies. A block's 8 channels are the 8 lanes of a
//! ymm register, pixel by pixel, so an output position is one register and
//! a tap one multiply-add of a weight vector and an input vector.
//!
//! A row runs in row blocks of `P` positions whose accumulators stay in
//! registers: the row cut into equal blocks of at most 8 (14 → 2×7, 28 →
//! 4×7), the last one moved back to end at the row's end when it would
//! pass it (overlapping the one before: it rewrites the same values).
//! Kernel rows outside the input are skipped (the padding adds nothing),
//! so no padded copy of X is needed. Blocks whose every horizontal tap
//! reads inside the input row load without checks; the ones at the
//! borders check each input column they would read and skip those in the
//! padding. (One position at a time, a border position was a chain of
//! dependent multiply-adds: on 14- and 28-wide rows the borders cost more
//! than the interior.)
//!
//! Bias, residual and a Relu or Clip run on the accumulators before the
//! store; other activations run on each stored row.

use super::{BlockedDepthwise, Item};
use crate::blocked::BLOCK;
use crate::Activation;
use std::arch::x86_64::*;
use std::ops::Range;

/// The most positions of a row block (with 3 or 5 weight vectors and an
/// input, 8 accumulators fill AVX2's 16 registers).
const MAX_PIX: usize = 8;

/// What a plane's rows share: the geometry, the block's data as pointers
/// (bounds checked once in [`plane`]) and the epilogue's vectors.
struct Ctx {
    x: *const f32,
    w: *const f32,
    /// The residual block, or null.
    r: *const f32,
    y: *mut f32,
    bias: __m256,
    lo: __m256,
    hi: __m256,
    /// Whether a Relu or Clip runs on the accumulators (`lo`, `hi`).
    clamp: bool,
    dims: super::Dims,
}

/// The output columns `lo..hi` of a row whose every horizontal tap reads
/// inside the input row (`lo == hi` when there are none).
fn interior(k: &BlockedDepthwise) -> (usize, usize) {
    let [[_, iw], [_, ow], [_, kw], [_, sw], [_, dw], [_, pw]] = k.dims();
    let lo = pw.div_ceil(sw).min(ow);
    // Column ox reads up to ox·sw − pw + reach, which must be < iw.
    let reach = (kw - 1) * dw;
    let hi = if iw + pw > reach { ((iw + pw - reach - 1) / sw + 1).min(ow) } else { 0 };
    (lo, hi.max(lo))
}

/// Positions of a row block: a row of `ow` cut into equal blocks of at
/// most `most`.
fn block_pix(ow: usize, most: usize) -> usize {
    ow.div_ceil(ow.div_ceil(most).max(1))
}

/// Runs one item: the output block `y` (`[oh][ow][8]`) of `it`.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn item(k: &BlockedDepthwise, it: &Item, y: &mut [f32]) {
    let [_, [_, ow], [_, kw], [_, sw], [_, dw], _] = k.dims();
    // Inputs reused from registers across taps where it measured best;
    // stride 2 in blocks of at most 7 (8 ran 2-4× slower: spills).
    match (kw, sw, dw) {
        (3, 1, 1) => by_pix::<3, 1>(k, it, y, block_pix(ow, MAX_PIX)),
        (5, 1, 1) => by_pix::<5, 1>(k, it, y, block_pix(ow, MAX_PIX)),
        (3, 2, 1) => by_pix::<3, 2>(k, it, y, block_pix(ow, 7)),
        _ => by_pix::<0, 0>(k, it, y, block_pix(ow, MAX_PIX)),
    }
}

/// [`plane`] with the row block size `pix` as a constant.
#[target_feature(enable = "avx2,fma")]
fn by_pix<const KW: usize, const SW: usize>(k: &BlockedDepthwise, it: &Item, y: &mut [f32], pix: usize) {
    match pix {
        0 | 1 => plane::<1, KW, SW>(k, it, y),
        2 => plane::<2, KW, SW>(k, it, y),
        3 => plane::<3, KW, SW>(k, it, y),
        4 => plane::<4, KW, SW>(k, it, y),
        5 => plane::<5, KW, SW>(k, it, y),
        6 => plane::<6, KW, SW>(k, it, y),
        7 => plane::<7, KW, SW>(k, it, y),
        _ => plane::<8, KW, SW>(k, it, y),
    }
}

/// The output plane in row blocks of `P` positions; `KW` and `SW` are the
/// kernel width and column stride of a specialised row (dilation 1), or 0
/// for any.
#[target_feature(enable = "avx2,fma")]
fn plane<const P: usize, const KW: usize, const SW: usize>(k: &BlockedDepthwise, it: &Item, y: &mut [f32]) {
    const { assert!(P >= 1 && P <= MAX_PIX) };
    let dims = k.dims();
    let [[ih, iw], [oh, ow], [kh, kw], [sh, sw], [dh, dw], [ph, pw]] = dims;
    let (lo, hi) = interior(k);
    // Every read and write below stays inside these (checked once here,
    // not per load): rows by the kernel-row ranges, the columns of
    // interior blocks by `interior`, those of border blocks per load.
    assert!(it.x.len() >= ih * iw * BLOCK && it.w.len() >= kh * kw * BLOCK && y.len() >= oh * ow * BLOCK);
    assert!(it.bias.is_none_or(|b| b.len() >= BLOCK) && it.residual.is_none_or(|r| r.len() >= oh * ow * BLOCK));
    assert!(P <= ow && (lo == hi || (lo * sw >= pw && (hi - 1) * sw + (kw - 1) * dw < iw + pw)));
    assert!(KW == 0 || (KW == kw && SW == sw && dw == 1));
    let act = k.epilogue.activation;
    let (clamp, (l, h)) = match act {
        Activation::Relu => (true, (0.0, f32::INFINITY)),
        Activation::Clip { min, max } => (true, (min, max)),
        _ => (false, (0.0, 0.0)),
    };
    let c = Ctx {
        x: it.x.as_ptr(),
        w: it.w.as_ptr(),
        r: it.residual.map_or(std::ptr::null(), |r| r.as_ptr()),
        y: y.as_mut_ptr(),
        // SAFETY: 8 floats of the bias (asserted above).
        bias: it.bias.map_or(_mm256_setzero_ps(), |b| unsafe { _mm256_loadu_ps(b.as_ptr()) }),
        lo: _mm256_set1_ps(l),
        hi: _mm256_set1_ps(h),
        clamp,
        dims,
    };
    let in_registers = matches!(act, Activation::None | Activation::Relu | Activation::Clip { .. });
    for oy in 0..oh {
        let rows = kernel_rows(oy * sh, ph, ih, kh, dh);
        let mut ox = 0;
        while ox < ow {
            let at = ox.min(ow - P);
            if at >= lo && at + P <= hi {
                // SAFETY: the kernel rows are inside the input, the columns
                // of positions at..at + P ⊂ lo..hi too (asserted above).
                unsafe { block::<P, KW, SW, false>(&c, oy, at, rows.clone()) };
            } else {
                // SAFETY: the kernel rows are inside the input; the columns are checked.
                unsafe { block::<P, KW, SW, true>(&c, oy, at, rows.clone()) };
            }
            ox += P;
        }
        if !in_registers {
            crate::epilogue::activate_in_place(act, &mut y[oy * ow * BLOCK..][..ow * BLOCK]);
        }
    }
}

/// The kernel rows `ky` whose input row `top + ky·dh − ph` is inside `0..ih`.
fn kernel_rows(top: usize, ph: usize, ih: usize, kh: usize, dh: usize) -> Range<usize> {
    let first = if top >= ph { 0 } else { (ph - top).div_ceil(dh) }.min(kh);
    let end = if top >= ih + ph { 0 } else { (ih + ph - top).div_ceil(dh) }.min(kh);
    first..end.max(first)
}

/// Output positions `ox..ox + P` (< ow) of row `oy` over kernel rows
/// `rows`. With `EDGE`, each input column is checked and those outside the
/// row skipped; without, every one read must be inside.
///
/// # Safety
/// The kernel rows are inside the input; without `EDGE` the columns too
/// (`ox..ox + P` inside [`interior`]); AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block<const P: usize, const KW: usize, const SW: usize, const EDGE: bool>(c: &Ctx, oy: usize, ox: usize, rows: Range<usize>) {
    let [[_, iw], [_, ow], [_, kw], [sh, sw], [dh, dw], [ph, pw]] = c.dims;
    // The input column of the block's first position's first tap (maybe in the padding).
    let first = (ox * sw) as isize - pw as isize;
    let mut acc = [c.bias; P];
    for ky in rows {
        let iy = oy * sh + ky * dh - ph;
        // SAFETY: taps ky·kw.. ky·kw + kw; row iy is inside the input (the
        // caller's contract); its columns as the caller's contract says,
        // or checked (is_inside) before each load.
        unsafe {
            let (wk, row) = (c.w.add(ky * kw * BLOCK), c.x.add(iy * iw * BLOCK));
            let is_inside = |col: isize| !EDGE || (col >= 0 && (col as usize) < iw);
            let load = |col: isize| _mm256_loadu_ps(row.add(col as usize * BLOCK));
            if KW > 0 {
                // Each input column the block reads loaded once, multiplied into every output reading it.
                let wv: [__m256; KW] = std::array::from_fn(|kx| _mm256_loadu_ps(wk.add(kx * BLOCK)));
                for i in 0..(P - 1) * SW + KW {
                    let col = first + i as isize;
                    if !is_inside(col) {
                        continue;
                    }
                    let v = load(col);
                    for (j, a) in acc.iter_mut().enumerate() {
                        // Output j reads column j·SW + kx for its tap kx.
                        if i >= j * SW && i - j * SW < KW {
                            *a = _mm256_fmadd_ps(wv[i - j * SW], v, *a);
                        }
                    }
                }
            } else {
                for kx in 0..kw {
                    let wv = _mm256_loadu_ps(wk.add(kx * BLOCK));
                    for (j, a) in acc.iter_mut().enumerate() {
                        let col = first + (j * sw + kx * dw) as isize;
                        if is_inside(col) {
                            *a = _mm256_fmadd_ps(wv, load(col), *a);
                        }
                    }
                }
            }
        }
    }
    // SAFETY: positions ox..ox + P of row oy (< ow: the caller's contract).
    unsafe { finish(c, oy * ow + ox, acc) };
}

/// Stores output positions `pos..pos + P`: the residual added, then a Relu
/// or Clip.
///
/// # Safety
/// Positions `pos..pos + P` are inside the output (and the residual).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn finish<const P: usize>(c: &Ctx, pos: usize, acc: [__m256; P]) {
    for (j, mut v) in acc.into_iter().enumerate() {
        let at = (pos + j) * BLOCK;
        // SAFETY: the caller's contract.
        unsafe {
            if !c.r.is_null() {
                v = _mm256_add_ps(v, _mm256_loadu_ps(c.r.add(at)));
            }
            if c.clamp {
                v = _mm256_min_ps(_mm256_max_ps(v, c.lo), c.hi);
            }
            _mm256_storeu_ps(c.y.add(at), v);
        }
    }
}
