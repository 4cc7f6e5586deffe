//! The channel-blocked depthwise path with AVX2: 8 channels at once, one
//! per lane of a ymm register.
//!
//! The same scheme as `blocked.rs` (a group's input planes transposed into
//! a zero-padded channel-minor plane, `kh · kw` vector multiply-adds per
//! output position, the result transposed back), sized for AVX2's 16
//! registers: the 16-lane path held each position in two registers, so a
//! row block of 7 positions spilled, and its narrow rows ran the portable
//! moves (5-11 GFLOP/s on 14×14 and 7×7 planes on Zen 3). Here an output
//! position is one register, a row block is 7 or 8 positions (7 when it
//! cuts the row whole: 7-, 14- and 28-wide rows), the transposes are 8×8 in
//! registers, and a Relu or Clip runs on the accumulators before they are
//! stored.

use super::{activate, DepthwiseConv};
use crate::packed::Isa;
use crate::Activation;
use crate::avx2::transpose8;
use std::arch::x86_64::*;

/// Channels of a group: the lanes of a ymm register.
pub(super) const LANES: usize = 8;

/// The most output positions a plane may have to take this path: up to
/// 56×56 it measured faster than the plane-at-once path on Zen 3 (144
/// channels 56×56 3×3 324 → 268 µs, 96 channels 112×112 3×3/2 387 → 297;
/// 32 channels 112×112 3×3 the same, with 800 KiB more scratch).
const MAX_OUTPUTS: usize = 56 * 56;

/// The most positions of a row block (its accumulators stay in registers).
const MAX_PIX: usize = 8;

/// The scratch layout of one group.
#[derive(Clone, Copy, Debug)]
pub(super) struct Blocked8 {
    /// The padded input extent any tap reads `[hp, wp]`.
    padded: [usize; 2],
    /// Positions of a row block: 7 when it divides the row, else 8.
    pix: usize,
}

impl Blocked8 {
    pub(super) fn new(k: &DepthwiseConv) -> Blocked8 {
        let [_, [oh, ow], kern, s, d, _] = k.dims();
        let extent = |a: usize| ([oh, ow][a].max(1) - 1) * s[a] + (kern[a].max(1) - 1) * d[a] + 1;
        Blocked8 { padded: [extent(0), extent(1)], pix: if ow % 7 == 0 { 7 } else { MAX_PIX } }
    }

    /// Whether `k` takes this path: AVX2 at run time, a channel multiplier
    /// of 1, at least one whole group of channels, output planes of at
    /// most [`MAX_OUTPUTS`] positions, 1 to 49 taps.
    pub(super) fn fits(k: &DepthwiseConv) -> bool {
        k.run_isa() == Isa::Avx2 && Self::fits_geometry(k)
    }

    /// [`Self::fits`] but for the CPU: what the scratch is sized for (an
    /// artifact generated where AVX2 is missing may run where it is not).
    pub(super) fn fits_geometry(k: &DepthwiseConv) -> bool {
        let [_, [oh, ow], [kh, kw], ..] = k.dims();
        k.isa == Isa::Avx2 && k.in_channels == k.out_channels && k.out_channels >= LANES as u64 && (1..=MAX_OUTPUTS).contains(&(oh * ow)) && (1..=49).contains(&(kh * kw))
    }

    /// Floats of the scratch: the padded input (with the slack a last row
    /// block reads past its row), the outputs, the weights.
    pub(super) fn floats(&self, k: &DepthwiseConv) -> usize {
        let [_, [oh, ow], [kh, kw], [_, sw], ..] = k.dims();
        LANES * (self.padded_len(sw) + oh * ow + kh * kw)
    }

    /// Vectors of the padded input, slack included.
    fn padded_len(&self, sw: usize) -> usize {
        self.padded[0] * self.padded[1] + MAX_PIX * sw
    }
}

/// Runs channels `c0..c0 + n` (`n <= LANES`) of one image: `x` holds their
/// input planes, `w` their taps, `bias` their biases (or none), `residual`
/// their residual planes (or none), `y` their output planes. `fresh` when
/// the scratch's padding may be dirty (a first group).
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn group(k: &DepthwiseConv, lay: &Blocked8, x: &[f32], w: &[f32], bias: Option<&[f32]>, residual: Option<&[f32]>, y: &mut [f32], scratch: &mut [f32], fresh: bool) {
    let [[ih, iw], [oh, ow], [kh, kw], [_, sw], _, [ph, pw]] = k.dims();
    let [hp, wp] = lay.padded;
    let n = y.len() / (oh * ow).max(1);
    assert!((1..=LANES).contains(&n), "a depthwise group has 1 to 8 channels");
    let (padded, rest) = scratch.split_at_mut(LANES * lay.padded_len(sw));
    let (out, rest) = rest.split_at_mut(LANES * oh * ow);
    let taps = &mut rest[..LANES * kh * kw];
    if fresh {
        padded.fill(0.0);
    }
    // Channel-minor input: padded[(r · wp + c) · 8 + lane]; the padding
    // stays zero, and so do the lanes past the group's channels.
    let rows = ih.min(hp.saturating_sub(ph));
    let cols = iw.min(wp.saturating_sub(pw));
    for iy in 0..rows {
        gather_row(x, ih * iw, n, iy * iw, &mut padded[((iy + ph) * wp + pw) * LANES..][..cols * LANES]);
    }
    for t in 0..kh * kw {
        for lane in 0..LANES {
            taps[t * LANES + lane] = if lane < n { w[lane * kh * kw + t] } else { 0.0 };
        }
    }
    let mut b = [0.0f32; LANES];
    if let Some(bias) = bias {
        b[..n].copy_from_slice(&bias[..n]);
    }
    // A Relu or Clip without a residual runs on the accumulators.
    let act = k.epilogue.activation;
    let clamp = match act {
        Activation::Relu if residual.is_none() => Some((0.0, f32::INFINITY)),
        Activation::Clip { min, max } if residual.is_none() => Some((min, max)),
        _ => None,
    };
    if lay.pix == 7 {
        accumulate::<7>(k, lay, taps, padded, &b, clamp, out);
    } else {
        accumulate::<MAX_PIX>(k, lay, taps, padded, &b, clamp, out);
    }
    scatter(out, oh * ow, n, y);
    if let Some(r) = residual {
        for (d, &rv) in y.iter_mut().zip(r) {
            *d += rv;
        }
    }
    if clamp.is_none() {
        activate(y, crate::Epilogue { activation: act, ..Default::default() });
    }
}

/// `out[p · 8 + lane]` = bias + the taps' products at output position `p`
/// (clamped to `clamp` when given), from the weights `[tap][8]` and the
/// padded input `[r][c][8]`, `P` positions of a row at a time (a last
/// block's extra positions read the row's next inputs or the slack, and
/// are not stored).
#[target_feature(enable = "avx2,fma")]
fn accumulate<const P: usize>(k: &DepthwiseConv, lay: &Blocked8, taps: &[f32], padded: &[f32], b: &[f32; LANES], clamp: Option<(f32, f32)>, out: &mut [f32]) {
    const { assert!(P <= MAX_PIX, "the padded input's slack is MAX_PIX positions") };
    let [_, [oh, ow], [kh, kw], [sh, sw], [dh, dw], _] = k.dims();
    let wp = lay.padded[1];
    // Every read below stays inside the padded input and its slack (the
    // last row block reads at most (P − 1)·sw past its row's last
    // position); checked once here instead of per load.
    let last = ((oh - 1) * sh + (kh - 1) * dh) * wp + (ow - 1) / P * P * sw + (kw - 1) * dw;
    assert!(padded.len() >= LANES * (last + (P - 1) * sw + 1) && taps.len() >= LANES * kh * kw && out.len() >= LANES * oh * ow);
    let (t, p, o) = (taps.as_ptr(), padded.as_ptr(), out.as_mut_ptr());
    let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
    // SAFETY: 8 floats of b.
    let (bias, lo, hi) = unsafe { (_mm256_loadu_ps(b.as_ptr()), _mm256_set1_ps(lo), _mm256_set1_ps(hi)) };
    for oy in 0..oh {
        for ox in (0..ow).step_by(P) {
            let mut acc = [bias; P];
            for ky in 0..kh {
                let row = (oy * sh + ky * dh) * wp + ox * sw;
                // SAFETY: taps ky·kw.. ky·kw + kw and positions row + kx·dw + j·sw, inside (asserted above).
                unsafe {
                    let (wk, at) = (t.add(ky * kw * LANES), p.add(row * LANES));
                    match (kw, sw, dw) {
                        (3, 1, 1) => row_taps::<P, 3, 1>(&mut acc, wk, at),
                        (5, 1, 1) => row_taps::<P, 5, 1>(&mut acc, wk, at),
                        _ => {
                            for kx in 0..kw {
                                let wv = _mm256_loadu_ps(wk.add(kx * LANES));
                                let at = at.add(kx * dw * LANES);
                                for (j, a) in acc.iter_mut().enumerate() {
                                    *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(at.add(j * sw * LANES)), *a);
                                }
                            }
                        }
                    }
                }
            }
            if clamp.is_some() {
                for a in &mut acc {
                    *a = _mm256_min_ps(_mm256_max_ps(*a, lo), hi);
                }
            }
            for (j, a) in acc.iter().enumerate().take(ow - ox) {
                // SAFETY: position oy·ow + ox + j < oh·ow (asserted above).
                unsafe { _mm256_storeu_ps(o.add((oy * ow + ox + j) * LANES), *a) };
            }
        }
    }
}

/// One kernel row's taps for a row block of `P` outputs (`KW` taps,
/// column stride `SW`, dilation 1): each input position the block reads is
/// loaded once and multiplied into every output that reads it (up to `KW`
/// of them at stride 1), with the row's `KW` weight vectors in registers:
/// `(P − 1)·SW + KW` loads for `P·KW` products, where tap by tap every
/// product loaded its input. Each output still sums its taps in kernel
/// order. (5×5 at stride 1: 1.1-1.3× on 28×28 planes; at stride 2 the
/// weights and sums did not fit the registers: 0.45×.)
///
/// # Safety
/// `w` holds `KW` weight vectors; `at` the input positions
/// `0..(P − 1)·SW + KW` (8 floats each); AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn row_taps<const P: usize, const KW: usize, const SW: usize>(acc: &mut [__m256; P], w: *const f32, at: *const f32) {
    // SAFETY: the caller's contract.
    let wv: [__m256; KW] = std::array::from_fn(|kx| unsafe { _mm256_loadu_ps(w.add(kx * LANES)) });
    for i in 0..(P - 1) * SW + KW {
        // SAFETY: position i < (P − 1)·SW + KW (the caller's contract).
        let v = unsafe { _mm256_loadu_ps(at.add(i * LANES)) };
        for (j, a) in acc.iter_mut().enumerate() {
            // Output j reads position j·SW + kx for its tap kx.
            if i >= j * SW && i - j * SW < KW {
                *a = _mm256_fmadd_ps(wv[i - j * SW], v, *a);
            }
        }
    }
}

/// The mask of the first `n` (≤ 8) lanes, for masked loads.
#[target_feature(enable = "avx2,fma")]
fn first(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// `dst[j · 8 + lane] = x[lane · plane + at + j]` for the `n` channels
/// (zeros in the lanes past them), `j < dst.len() / 8`.
#[target_feature(enable = "avx2,fma")]
fn gather_row(x: &[f32], plane: usize, n: usize, at: usize, dst: &mut [f32]) {
    let cols = dst.len() / LANES;
    if cols == 0 {
        return;
    }
    assert!(x.len() >= (n - 1) * plane + at + cols, "depthwise gather reads past its planes");
    let (src, d) = (x.as_ptr(), dst.as_mut_ptr());
    // A whole group's whole 8-column steps, without the per-lane bounds.
    let whole = if n == LANES { cols / LANES * LANES } else { 0 };
    for j0 in (0..whole).step_by(LANES) {
        // SAFETY: columns j0..j0 + 8 of the 8 channels' rows (asserted above).
        let r: [__m256; LANES] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * plane + at + j0)) });
        for (j, v) in transpose8(r).into_iter().enumerate() {
            // SAFETY: position j0 + j < cols of dst.
            unsafe { _mm256_storeu_ps(d.add((j0 + j) * LANES), v) };
        }
    }
    for j0 in (whole..cols).step_by(LANES) {
        let cnt = LANES.min(cols - j0);
        let mask = first(cnt);
        let mut r = [_mm256_setzero_ps(); LANES];
        for (i, v) in r.iter_mut().enumerate().take(n) {
            // SAFETY: columns j0..j0 + cnt of channel i's row (asserted above);
            // masked lanes are not read.
            unsafe {
                let s = src.add(i * plane + at + j0);
                *v = if cnt == LANES { _mm256_loadu_ps(s) } else { _mm256_maskload_ps(s, mask) };
            }
        }
        for (j, v) in transpose8(r).into_iter().enumerate().take(cnt) {
            // SAFETY: position j0 + j < cols of dst.
            unsafe { _mm256_storeu_ps(d.add((j0 + j) * LANES), v) };
        }
    }
}

/// `y[lane · plane + p] = out[p · 8 + lane]` for the `n` channels, `p < plane`.
#[target_feature(enable = "avx2,fma")]
fn scatter(out: &[f32], plane: usize, n: usize, y: &mut [f32]) {
    assert!(out.len() >= plane * LANES && y.len() >= n * plane, "depthwise scatter sizes");
    let whole = plane / LANES * LANES;
    let (o, d) = (out.as_ptr(), y.as_mut_ptr());
    for p0 in (0..whole).step_by(LANES) {
        let mut r = [_mm256_setzero_ps(); LANES];
        for (p, v) in r.iter_mut().enumerate() {
            // SAFETY: position p0 + p < plane of out.
            *v = unsafe { _mm256_loadu_ps(o.add((p0 + p) * LANES)) };
        }
        let t = transpose8(r);
        if n == LANES {
            for (lane, v) in t.into_iter().enumerate() {
                // SAFETY: channel lane's positions p0..p0 + 8 (< plane) of y.
                unsafe { _mm256_storeu_ps(d.add(lane * plane + p0), v) };
            }
        } else {
            for (lane, v) in t.into_iter().enumerate().take(n) {
                // SAFETY: as above.
                unsafe { _mm256_storeu_ps(d.add(lane * plane + p0), v) };
            }
        }
    }
    for lane in 0..n {
        for p in whole..plane {
            y[lane * plane + p] = out[p * LANES + lane];
        }
    }
}
