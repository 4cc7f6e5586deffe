//! The channel-blocked depthwise path for small planes (MobileNet's and
//! EfficientNet's 14×14 and 7×7 stages): 16 channels at once, one channel
//! per lane.
//!
//! On a 7×7 plane the plane-at-once path computes 4 vectors of outputs a
//! channel and spends most of its ~100 ns on the per-plane fill, the
//! per-row finish and the call. Here a group of 16 channels of one image is
//! transposed into a zero-padded channel-minor plane
//! (`padded[r][c][lane]`), every output position is then `kh · kw` vector
//! multiply-adds of a tap's 16 weights with the 16 channels' inputs (no
//! shuffles, weights in registers), and the result is transposed back into
//! the 16 output planes, where the residual and the activation run over
//! the group's planes as one contiguous run.
//!
//! The moves and the multiply-adds are AVX-512F intrinsics, with a portable
//! twin over `[f32; 16]` arrays; AVX2 runs the 8-lane twin of this path
//! (`blocked8.rs`).

use super::{activate, DepthwiseConv};
use crate::packed::Isa;
use crate::Epilogue;

/// Channels of a group: the lanes.
pub(super) const LANES: usize = 16;

/// The most output positions a plane may have to take this path (beyond,
/// the plane-at-once path amortises its per-plane work).
const MAX_OUTPUTS: usize = 28 * 28;

/// The most kernel taps (a register of weights each).
const MAX_TAPS: usize = 49;

/// Output positions of a row computed together: independent accumulator
/// chains to cover the multiply-add latency.
const PIX: usize = 8;

/// The scratch layout of one group.
#[derive(Clone, Copy, Debug)]
pub(super) struct Blocked {
    /// The padded input extent any tap reads `[hp, wp]`.
    padded: [usize; 2],
}

type Lanes = [f32; LANES];

impl Blocked {
    pub(super) fn new(k: &DepthwiseConv) -> Blocked {
        let [_, [oh, ow], kern, s, d, _] = k.dims();
        let extent = |a: usize| ([oh, ow][a].max(1) - 1) * s[a] + (kern[a].max(1) - 1) * d[a] + 1;
        Blocked { padded: [extent(0), extent(1)] }
    }

    /// Whether `k` takes this path: a channel multiplier of 1, small
    /// (nonempty) output planes, a kernel of 1 to [`MAX_TAPS`] taps, and at
    /// least one whole group of channels.
    pub(super) fn fits(k: &DepthwiseConv) -> bool {
        let [_, [oh, ow], [kh, kw], ..] = k.dims();
        k.in_channels == k.out_channels && k.out_channels >= LANES as u64 && (1..=MAX_OUTPUTS).contains(&(oh * ow)) && (1..=MAX_TAPS).contains(&(kh * kw))
    }

    /// Floats of the scratch: the padded input (with the slack a last
    /// block of [`PIX`] positions reads past its row), the outputs, the weights.
    pub(super) fn floats(&self, k: &DepthwiseConv) -> usize {
        let [_, [oh, ow], [kh, kw], [_, sw], ..] = k.dims();
        LANES * (self.padded_len(sw) + oh * ow + kh * kw)
    }

    /// Vectors of the padded input, slack included.
    fn padded_len(&self, sw: usize) -> usize {
        self.padded[0] * self.padded[1] + PIX * sw
    }
}

/// Runs channels `c0..c0 + n` (`n <= LANES`) of one image: `x` holds their
/// input planes, `w` their taps, `bias` their biases (or none), `residual`
/// their residual planes (or none), `y` their output planes. `fresh` when
/// the scratch's padding may be dirty (a first group).
#[allow(clippy::too_many_arguments)]
pub(super) fn group(k: &DepthwiseConv, lay: &Blocked, x: &[f32], w: &[f32], bias: Option<&[f32]>, residual: Option<&[f32]>, y: &mut [f32], scratch: &mut [f32], fresh: bool) {
    match k.run_isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (checked by run_isa).
        Isa::Avx512 => unsafe { group_avx512(k, lay, x, w, bias, residual, y, scratch, fresh) },
        _ => group_body(k, lay, x, w, bias, residual, y, scratch, fresh, &PORTABLE),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn group_avx512(k: &DepthwiseConv, lay: &Blocked, x: &[f32], w: &[f32], bias: Option<&[f32]>, residual: Option<&[f32]>, y: &mut [f32], scratch: &mut [f32], fresh: bool) {
    // The closures inherit this function's target features.
    let moves = Moves {
        accumulate: |k, lay, t, p, b, o| simd::accumulate(k, lay, t, p, b, o),
        gather_row: |x, plane, n, at, dst| simd::gather_row(x, plane, n, at, dst),
        scatter: |o, plane, n, y| simd::scatter(o, plane, n, y),
    };
    group_body(k, lay, x, w, bias, residual, y, scratch, fresh, &moves)
}

/// `out[p · 16 + lane]` = bias + the taps' products at output position
/// `p`, from the weights `[tap][16]` (`taps`) and the padded input
/// `[r][c][16]`: `(k, layout, taps, padded, bias, out)`.
type Accumulate = fn(&DepthwiseConv, &Blocked, &[f32], &[f32], &Lanes, &mut [f32]);

/// The layout changes and the multiply-adds of a group, per ISA.
struct Moves {
    accumulate: Accumulate,
    /// `dst[j · 16 + lane] = x[lane · plane + at + j]` for the `n` channels
    /// (lanes past them left as they are), `j < dst.len() / 16`.
    gather_row: fn(&[f32], usize, usize, usize, &mut [f32]),
    /// `y[lane · plane + p] = out[p · 16 + lane]` for the `n` channels, `p < plane`.
    scatter: fn(&[f32], usize, usize, &mut [f32]),
}

const PORTABLE: Moves = Moves { accumulate: accumulate_portable, gather_row: gather_row_portable, scatter: scatter_portable };

/// See `Moves::accumulate`: [`PIX`] positions of a row at a time (the
/// last block's extra positions read the row's next inputs or the slack,
/// and are not stored).
fn accumulate_portable(k: &DepthwiseConv, lay: &Blocked, taps: &[f32], padded: &[f32], b: &Lanes, out: &mut [f32]) {
    let [_, [oh, ow], [kh, kw], [sh, sw], [dh, dw], _] = k.dims();
    let wp = lay.padded[1];
    let (taps, padded, out) = (lanes_of(taps), lanes_of(padded), lanes_of_mut(out));
    for oy in 0..oh {
        for ox in (0..ow).step_by(PIX) {
            let mut acc = [*b; PIX];
            for ky in 0..kh {
                let row = (oy * sh + ky * dh) * wp + ox * sw;
                for kx in 0..kw {
                    let wv = taps[ky * kw + kx];
                    let at = &padded[row + kx * dw..][..(PIX - 1) * sw + 1];
                    for (j, a) in acc.iter_mut().enumerate() {
                        let xv = &at[j * sw];
                        for l in 0..LANES {
                            a[l] += wv[l] * xv[l];
                        }
                    }
                }
            }
            let n_out = PIX.min(ow - ox);
            out[oy * ow + ox..][..n_out].copy_from_slice(&acc[..n_out]);
        }
    }
}

fn gather_row_portable(x: &[f32], plane: usize, n: usize, at: usize, dst: &mut [f32]) {
    for lane in 0..n {
        let src = &x[lane * plane + at..][..dst.len() / LANES];
        for (j, &v) in src.iter().enumerate() {
            dst[j * LANES + lane] = v;
        }
    }
}

fn scatter_portable(out: &[f32], plane: usize, n: usize, y: &mut [f32]) {
    for (lane, dst) in y.chunks_exact_mut(plane).take(n).enumerate() {
        for (p, d) in dst.iter_mut().enumerate() {
            *d = out[p * LANES + lane];
        }
    }
}

/// Transpose in, multiply-add, transpose out, then residual and activation.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn group_body(k: &DepthwiseConv, lay: &Blocked, x: &[f32], w: &[f32], bias: Option<&[f32]>, residual: Option<&[f32]>, y: &mut [f32], scratch: &mut [f32], fresh: bool, moves: &Moves) {
    let [[ih, iw], [oh, ow], [kh, kw], [_, sw], _, [ph, pw]] = k.dims();
    let [hp, wp] = lay.padded;
    let n = y.len() / (oh * ow).max(1);
    let (padded, rest) = scratch.split_at_mut(LANES * lay.padded_len(sw));
    let (out, rest) = rest.split_at_mut(LANES * oh * ow);
    let taps = &mut rest[..LANES * kh * kw];
    if fresh {
        padded.fill(0.0);
    }
    // Channel-minor input: padded[(r · wp + c) · 16 + lane] (padding stays zero).
    let rows = ih.min(hp.saturating_sub(ph));
    let cols = iw.min(wp.saturating_sub(pw));
    for iy in 0..rows {
        let dst = &mut padded[((iy + ph) * wp + pw) * LANES..][..cols * LANES];
        (moves.gather_row)(x, ih * iw, n, iy * iw, dst);
    }
    // Lanes past the group's channels keep zeros (weights and inputs).
    for t in 0..kh * kw {
        for lane in 0..LANES {
            taps[t * LANES + lane] = if lane < n { w[lane * kh * kw + t] } else { 0.0 };
        }
    }
    let b: Lanes = std::array::from_fn(|lane| bias.map_or(0.0, |b| if lane < n { b[lane] } else { 0.0 }));
    (moves.accumulate)(k, lay, taps, padded, &b, out);

    // Back to planes.
    (moves.scatter)(out, oh * ow, n, y);
    if let Some(r) = residual {
        for (d, &rv) in y.iter_mut().zip(r) {
            *d += rv;
        }
    }
    activate(y, Epilogue { activation: k.epilogue.activation, ..Epilogue::default() });
}

/// `v` as vectors of 16, mutably (its length is a multiple of 16).
#[inline(always)]
fn lanes_of_mut(v: &mut [f32]) -> &mut [Lanes] {
    // SAFETY: as `lanes_of`; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len() / LANES) }
}

/// `v` as vectors of 16 (its length is a multiple of 16).
#[inline(always)]
fn lanes_of(v: &[f32]) -> &[Lanes] {
    // SAFETY: [f32; 16] has f32's alignment and no padding; the length is
    // a whole number of vectors (the scratch is carved in multiples of 16).
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len() / LANES) }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! 16×16 transposes with AVX-512F shuffles (four stages of 16).
    use super::{Blocked, DepthwiseConv, LANES, PIX};
    use std::arch::x86_64::*;

    /// The mask of the first `n` (≤ 16) lanes.
    #[inline(always)]
    fn first(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    /// `t[j][i] = r[i][j]`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        // Pairs of rows interleaved within 128-bit lanes, then quads, then
        // the 128-bit lanes of 4 rows gathered, then of 16.
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 { _mm512_unpacklo_ps(a, b) } else { _mm512_unpackhi_ps(a, b) }
        });
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let (k, q) = (i / 4, i % 4);
            let (a, b) = (_mm512_castps_pd(t[4 * k + q / 2]), _mm512_castps_pd(t[4 * k + 2 + q / 2]));
            _mm512_castpd_ps(if q % 2 == 0 { _mm512_unpacklo_pd(a, b) } else { _mm512_unpackhi_pd(a, b) })
        });
        // u[4k + q]: rows 4k..4k+4, columns q, q+4, q+8, q+12 in its four lanes.
        let v: [__m512; 16] = std::array::from_fn(|i| {
            let (half, q, odd) = (i / 8, (i % 8) / 2, i % 2);
            let (a, b) = (u[8 * half + q], u[8 * half + 4 + q]);
            if odd == 0 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xDD>(a, b) }
        });
        // v[8h + 2q]: columns q (rows 8h..8h+4 | 8h+4..8h+8) and q+8;
        // v[8h + 2q + 1]: columns q+4 and q+12.
        let mut out = [_mm512_setzero_ps(); 16];
        for q in 0..4 {
            for odd in 0..2 {
                let (a, b) = (v[2 * q + odd], v[8 + 2 * q + odd]);
                out[q + 4 * odd] = _mm512_shuffle_f32x4::<0x88>(a, b);
                out[q + 4 * odd + 8] = _mm512_shuffle_f32x4::<0xDD>(a, b);
            }
        }
        out
    }

    /// See `Moves::accumulate`, with the accumulators of [`PIX`] positions
    /// in registers.
    #[target_feature(enable = "avx512f")]
    pub(super) fn accumulate(k: &DepthwiseConv, lay: &Blocked, taps: &[f32], padded: &[f32], b: &[f32; LANES], out: &mut [f32]) {
        let [_, [oh, ow], [kh, kw], [sh, sw], [dh, dw], _] = k.dims();
        let wp = lay.padded[1];
        // Every read below stays inside the padded input and its slack
        // (the last row block reads at most (PIX − 1)·sw past its row's
        // last position); checked once here instead of per load.
        let last_row = ((oh - 1) * sh + (kh - 1) * dh) * wp + (ow - 1) / PIX * PIX * sw + (kw - 1) * dw;
        assert!(padded.len() >= LANES * (last_row + (PIX - 1) * sw + 1) && taps.len() >= LANES * kh * kw && out.len() >= LANES * oh * ow);
        // SAFETY: 16 floats of b.
        let bias = unsafe { _mm512_loadu_ps(b.as_ptr()) };
        let (t, p) = (taps.as_ptr(), padded.as_ptr());
        for oy in 0..oh {
            for ox in (0..ow).step_by(PIX) {
                let mut acc = [bias; PIX];
                for ky in 0..kh {
                    let row = (oy * sh + ky * dh) * wp + ox * sw;
                    for kx in 0..kw {
                        // SAFETY: tap ky·kw + kx and positions row + kx·dw + j·sw, inside (asserted above).
                        unsafe {
                            let wv = _mm512_loadu_ps(t.add((ky * kw + kx) * LANES));
                            let at = p.add((row + kx * dw) * LANES);
                            for (j, a) in acc.iter_mut().enumerate() {
                                *a = _mm512_fmadd_ps(wv, _mm512_loadu_ps(at.add(j * sw * LANES)), *a);
                            }
                        }
                    }
                }
                for (j, a) in acc.iter().enumerate().take(ow - ox) {
                    let o = &mut out[(oy * ow + ox + j) * LANES..][..LANES];
                    // SAFETY: 16 floats of o.
                    unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *a) };
                }
            }
        }
    }

    /// See `Moves::gather_row`.
    #[target_feature(enable = "avx512f")]
    pub(super) fn gather_row(x: &[f32], plane: usize, n: usize, at: usize, dst: &mut [f32]) {
        let cols = dst.len() / LANES;
        for j0 in (0..cols).step_by(LANES) {
            let cnt = LANES.min(cols - j0);
            let r: [__m512; 16] = std::array::from_fn(|lane| {
                if lane < n {
                    let src = &x[lane * plane + at + j0..][..cnt];
                    // SAFETY: cnt floats of src; masked lanes are not read.
                    unsafe { _mm512_maskz_loadu_ps(first(cnt), src.as_ptr()) }
                } else {
                    _mm512_setzero_ps()
                }
            });
            let t = transpose16(r);
            for (j, v) in t.iter().enumerate().take(cnt) {
                let d = &mut dst[(j0 + j) * LANES..][..LANES];
                // SAFETY: 16 floats of d.
                unsafe { _mm512_storeu_ps(d.as_mut_ptr(), *v) };
            }
        }
    }

    /// See `Moves::scatter`.
    #[target_feature(enable = "avx512f")]
    pub(super) fn scatter(out: &[f32], plane: usize, n: usize, y: &mut [f32]) {
        for p0 in (0..plane).step_by(LANES) {
            let cnt = LANES.min(plane - p0);
            let r: [__m512; 16] = std::array::from_fn(|p| {
                if p < cnt {
                    // SAFETY: 16 floats of out at position p0 + p.
                    unsafe { _mm512_loadu_ps(out[(p0 + p) * LANES..][..LANES].as_ptr()) }
                } else {
                    _mm512_setzero_ps()
                }
            });
            let t = transpose16(r);
            for (lane, v) in t.iter().enumerate().take(n) {
                let d = &mut y[lane * plane + p0..][..cnt];
                // SAFETY: cnt floats of d; masked lanes are not written.
                unsafe { _mm512_mask_storeu_ps(d.as_mut_ptr(), first(cnt), *v) };
            }
        }
    }

    #[cfg(test)]
    #[test]
    fn transposes_16_by_16() {
        if !crate::packed::Isa::Avx512.available() {
            return;
        }
        let m: Vec<f32> = (0..256).map(|i| i as f32).collect();
        // SAFETY: the CPU has AVX-512F (checked above).
        let t = unsafe {
            let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(m[16 * i..].as_ptr()));
            transpose16(r)
        };
        for (j, v) in t.iter().enumerate() {
            let mut row = [0.0f32; 16];
            // SAFETY: as above; 16 floats of row.
            unsafe { _mm512_storeu_ps(row.as_mut_ptr(), *v) };
            for (i, &x) in row.iter().enumerate() {
                assert_eq!(x, m[16 * i + j], "t[{j}][{i}]");
            }
        }
    }
}
