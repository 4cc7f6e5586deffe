//! The register-row depthwise path for narrow planes (AVX-512): output rows
//! of up to 32 columns (stride 1) or 16 columns (stride 2) are computed
//! straight from the input plane, one vector per 16 output columns; wider
//! rows run strip by strip.
//!
//! Each tap's contribution to an output row is one masked load of the
//! input row at the tap's column offset (stride 1), or one two-source
//! permute picking the even lanes of two vectors (stride 2: loaded once for
//! all taps from the row's first 32 columns when a 16-column row reads
//! only those, else per tap from its offset, unmasked inside the row): the
//! lanes whose input column falls in the padding are masked to zero, and
//! rows in the vertical padding read a row of zeros, so there is no padded
//! copy, no transpose and no per-element test. Eight output rows are
//! accumulated at once (independent chains that cover the multiply-add
//! latency) with the kernel row's taps unrolled (kernel widths 1, 3, 5 and
//! 7); bias and residual are added in registers, the activation runs over
//! the finished plane while it is in L1.
//!
//! This replaces the channel-blocked path (two 16×16 transposes per group)
//! and the plane-at-once path (a padded copy per plane) on MobileNet's and
//! EfficientNet's 28×28, 14×14 and 7×7 stages.

use super::{activate, DepthwiseConv};
use crate::packed::Isa;
use crate::{Activation, Epilogue};

/// Lanes of a vector.
const LANES: usize = 16;

/// Output rows accumulated together.
const ROWS: usize = 8;

/// The most strips (of 32 outputs at stride 1, 16 at stride 2) a row may have.
const MAX_STRIPS: usize = 8;

/// Floats of the zero row that rows in the vertical padding read: every
/// column a tap's masked load may touch.
const ZERO_ROW: usize = 512;

/// Whether `k` takes this path: AVX-512 at run time, nonempty output, a
/// kernel 1, 3, 5 or 7 wide, and stride 1 with rows of at most
/// [`MAX_STRIPS`] strips of 32 outputs, or stride 2, at most 3 tap columns
/// and rows of at most [`MAX_STRIPS`] strips of 16 outputs (all of whose
/// taps read inside the zero row).
pub(super) fn fits(k: &DepthwiseConv) -> bool {
    let [_, [oh, ow], [kh, kw], [_, sw], [_, dw], _] = k.dims();
    let shape_ok = oh > 0 && ow > 0 && kh > 0 && [1, 3, 5, 7].contains(&kw);
    // Outputs at most half a vector wide with 5 or more tap columns, and
    // stride 2 with 5 or more, measured faster on the channel-blocked path
    // (full lanes; 7×7 5×5 1152 channels 68 vs 75 µs, 14×14 5×5/2 672
    // channels 64 vs 70 µs).
    let cols_ok = match sw {
        1 => ow <= MAX_STRIPS * 2 * LANES && ow + (kw - 1) * dw <= ZERO_ROW && (ow > LANES / 2 || kw <= 3),
        2 => ow <= MAX_STRIPS * LANES && 2 * (ow - 1) + (kw - 1) * dw + 2 * LANES <= ZERO_ROW && kw <= 3,
        _ => false,
    };
    shape_ok && cols_ok && k.run_isa() == Isa::Avx512
}

/// Whether `k` (column stride 2) takes this path over split rows: each
/// input row stored as its even columns, then its odd ones (what the fused
/// pointwise-depthwise kernel packs for free). A stride-2 tap then reads
/// consecutive floats of one half, as a stride-1 tap does: one masked load,
/// no permute (the 112×112 → 56×56 band of MobileNetV2's first expand
/// layer: 46 against 26 cycles an output vector). AVX-512 at run time,
/// nonempty output, a kernel 1, 3, 5 or 7 wide, rows of at most
/// [`MAX_STRIPS`] strips of 32 outputs, every row inside the zero row.
pub(super) fn fits_split(k: &DepthwiseConv) -> bool {
    let [[_, iw], [oh, ow], [kh, kw], [_, sw], ..] = k.dims();
    oh > 0 && ow > 0 && kh > 0 && [1, 3, 5, 7].contains(&kw) && sw == 2 && ow <= MAX_STRIPS * 2 * LANES && iw + LANES <= ZERO_ROW && k.run_isa() == Isa::Avx512
}

/// Rearranges columns `q..q + dst.len()` of the split form of `row` (its
/// even columns, then its odd ones) into `dst`.
pub(super) fn split_part(row: &[f32], q: usize, dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512.available() {
        let (e, o, first_odd) = halves(row.len(), q, dst);
        // SAFETY: the CPU has AVX-512F.
        unsafe {
            simd::every_other(&row[(2 * q).min(row.len())..], e);
            simd::every_other(&row[(2 * first_odd + 1).min(row.len())..], o);
        }
        return;
    }
    split_part_portable(row, q, dst);
}

/// `dst` (columns `q..` of a split row of `len` floats) cut where the odd
/// columns start, and the first odd column in it.
fn halves(len: usize, q: usize, dst: &mut [f32]) -> (&mut [f32], &mut [f32], usize) {
    let evens = len.div_ceil(2);
    let (e, o) = dst.split_at_mut(evens.saturating_sub(q).min(dst.len()));
    (e, o, q.max(evens) - evens)
}

/// [`split_part`] one float at a time.
fn split_part_portable(row: &[f32], q: usize, dst: &mut [f32]) {
    let (e, o, first_odd) = halves(row.len(), q, dst);
    for (i, d) in e.iter_mut().enumerate() {
        *d = row[2 * (q + i)];
    }
    for (i, d) in o.iter_mut().enumerate() {
        *d = row[2 * (first_odd + i) + 1];
    }
}

/// The `simd::$f` instance for `k`'s geometry: one per stride, row vectors,
/// kernel width and (stride 2) first-32-columns rows.
#[cfg(target_arch = "x86_64")]
macro_rules! instance {
    ($k:expr, $f:ident) => {
        instance!(@pick $k, $f, false)
    };
    // Split rows (see `fits_split`): the stride-1 taps.
    ($k:expr, $f:ident, split) => {
        instance!(@pick $k, $f, true)
    };
    (@pick $k:expr, $f:ident, $split:expr) => {{
        let k = $k;
        macro_rules! by_width {
            ($s:literal, $ch:literal, $head:literal) => {
                match k.kernel[1] {
                    1 => simd::$f::<$s, $ch, 1, $head>,
                    3 => simd::$f::<$s, $ch, 3, $head>,
                    5 => simd::$f::<$s, $ch, 5, $head>,
                    _ => simd::$f::<$s, $ch, 7, $head>,
                }
            };
        }
        match (k.strides[1], k.output[1] as usize > LANES) {
            (_, false) if $split => by_width!(1, 1, false),
            (_, true) if $split => by_width!(1, 2, false),
            (1, false) => by_width!(1, 1, false),
            (1, true) => by_width!(1, 2, false),
            _ if head_only(k) => by_width!(2, 1, true),
            _ => by_width!(2, 1, false),
        }
    }};
}

/// The planes of one part: output planes `items` (image-major, `y` holds
/// just them) from X, the packed taps `w`, the biases and the residual (the
/// whole tensors).
pub(super) fn planes(k: &DepthwiseConv, items: std::ops::Range<usize>, x: &[f32], w: &[f32], bias: Option<&[f32]>, residual: Option<&[f32]>, y: &mut [f32]) {
    assert!(fits(k), "the narrow depthwise path does not take {k:?}");
    #[cfg(target_arch = "x86_64")]
    {
        let run = instance!(k, planes);
        // SAFETY: fits checked that the CPU has AVX-512F and the geometry.
        unsafe { run(k, items, x, w, bias, residual, y) }
    }
}

/// Whether a stride-2 row is one strip whose taps all read its first 32
/// columns (the one below column 0 is padding).
fn head_only(k: &DepthwiseConv) -> bool {
    let [_, [_, ow], [_, kw], [_, sw], [_, dw], [_, pw]] = k.dims();
    sw == 2 && ow <= LANES && 2 * (ow - 1) + (kw - 1) * dw < 2 * LANES + pw
}

/// `count` planes of one geometry read from and written to strided places
/// (the fused pointwise-depthwise kernel's expanded rows): plane `i` from
/// `x[i · x_stride..]`, with taps `w[i · kh · kw..]` and `bias[i]`, into
/// `y + i · y_stride` (`oh · ow` floats); no residual.
///
/// # Safety
/// `fits(k)`; `y + i · y_stride` is valid for writing `oh · ow` floats for
/// every `i < count`, and overlaps none of the inputs.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn band(k: &DepthwiseConv, count: usize, x: &[f32], x_stride: usize, w: &[f32], bias: Option<&[f32]>, y: *mut f32, y_stride: usize) {
    assert!(fits(k), "the narrow depthwise path does not take {k:?}");
    #[cfg(target_arch = "x86_64")]
    {
        let run = instance!(k, band);
        // SAFETY: fits checked the CPU and the geometry; the caller vouches for y.
        unsafe { run(k, count, x, x_stride, w, bias, y, y_stride, false) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (count, x, x_stride, w, bias, y, y_stride);
}

/// [`band`] over split input rows (see [`fits_split`]).
///
/// # Safety
/// As [`band`], with `fits_split(k)`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn band_split(k: &DepthwiseConv, count: usize, x: &[f32], x_stride: usize, w: &[f32], bias: Option<&[f32]>, y: *mut f32, y_stride: usize) {
    assert!(fits_split(k), "the split-row depthwise path does not take {k:?}");
    #[cfg(target_arch = "x86_64")]
    {
        let run = instance!(k, band, split);
        // SAFETY: fits_split checked the CPU and the geometry; the caller vouches for y.
        unsafe { run(k, count, x, x_stride, w, bias, y, y_stride, true) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (count, x, x_stride, w, bias, y, y_stride);
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{activate, Activation, DepthwiseConv, Epilogue, LANES, MAX_STRIPS, ROWS, ZERO_ROW};

    /// Floats of finished planes an exponential activation runs over at once.
    const ACT_GROUP: usize = 4096;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// The row that rows in the vertical padding read (its middle: taps
    /// read up to a vector before a row's start).
    static ZEROS: [f32; ZERO_ROW + 2 * LANES] = [0.0; ZERO_ROW + 2 * LANES];

    /// `dst[i] = src[2 i]` (`src` holds them): the even lanes of two
    /// vectors at a time, the last ones through masked loads.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn every_other(src: &[f32], dst: &mut [f32]) {
        assert!(dst.is_empty() || 2 * (dst.len() - 1) < src.len(), "every_other reads past its source");
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let whole = dst.len() / LANES;
        for (i, out) in dst.chunks_mut(LANES).enumerate() {
            let at = 2 * LANES * i;
            // The source floats this chunk reads from: at.., up to 2 LANES.
            let avail = src.len() - at;
            // SAFETY: the loads read floats at.. inside src (masked past its end); the
            // store writes the chunk's floats.
            unsafe {
                let p = src.as_ptr().add(at);
                let (v0, v1) = if i < whole && avail >= 2 * LANES {
                    (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(LANES)))
                } else {
                    let m = |n: usize| if n >= LANES { 0xffff } else { ((1u32 << n) - 1) as __mmask16 };
                    (_mm512_maskz_loadu_ps(m(avail), p), _mm512_maskz_loadu_ps(m(avail.saturating_sub(LANES)), p.wrapping_add(LANES)))
                };
                let v = _mm512_permutex2var_ps(v0, evens, v1);
                if out.len() == LANES {
                    _mm512_storeu_ps(out.as_mut_ptr(), v);
                } else {
                    _mm512_mask_storeu_ps(out.as_mut_ptr(), ((1u32 << out.len()) - 1) as __mmask16, v);
                }
            }
        }
    }

    /// The mask of lanes `j < n` with `lo <= first + step · j < hi` (column
    /// `first + step · j` inside `lo..hi`).
    fn lanes_inside(n: usize, first: isize, step: isize, lo: isize, hi: isize) -> __mmask16 {
        // Lanes j0..j1: the smallest j with first + step·j >= lo, and the
        // smallest with first + step·j >= hi (step > 0).
        let at_least = |v: isize| ((v - first).max(0) as usize).div_ceil(step as usize).min(n.min(LANES));
        let (j0, j1) = (at_least(lo), at_least(hi));
        if j1 <= j0 {
            0
        } else {
            (((1u32 << j1) - 1) & !((1u32 << j0) - 1)) as __mmask16
        }
    }

    /// Per tap column and chunk of 16 outputs of a strip: which lanes read
    /// inside the row, and (stride 2) which lanes of the tap's two vectors
    /// do.
    struct Columns<const CH: usize, const KW: usize> {
        mask: [[__mmask16; CH]; KW],
        /// The tap's column offset from the strip's first output column
        /// (stride 2: of its first input column, the start of two vectors
        /// whose even lanes the tap reads).
        offset: [isize; KW],
        /// Stride 2: the lanes of the tap's two vectors inside the row.
        load: [[__mmask16; 2]; KW],
        /// Stride 2, a row of one strip whose taps all read its first 32
        /// columns: those two vectors are loaded once for all taps, each
        /// tap's column of lane j is `index[kx][j]`, inside the row under
        /// `mask[kx][0]`.
        first32: bool,
        index: [__m512i; KW],
        /// The lanes of the row's first two vectors inside it.
        head: [__mmask16; 2],
        /// Stride 2: every tap column of the strip lies inside the row.
        interior: bool,
        /// The lanes of each chunk that are outputs.
        store: [__mmask16; CH],
    }

    #[target_feature(enable = "avx512f")]
    /// `split`: the rows are split (see [`super::fits_split`]; `S` is 1,
    /// the taps' own).
    fn columns<const S: usize, const CH: usize, const KW: usize>(k: &DepthwiseConv, strip: usize, split: bool) -> Columns<CH, KW> {
        let [[_, iw], [_, ow], _, _, [_, dw], [_, pw]] = k.dims();
        // The strip's outputs: columns strip.. of the row.
        let (iw, s, ow) = (iw as isize, S as isize, ow - strip);
        let mut c = Columns { mask: [[0; CH]; KW], offset: [0; KW], load: [[0; 2]; KW], first32: false, index: [_mm512_setzero_si512(); KW], head: [0; 2], interior: true, store: [0; CH] };
        for (ch, m) in c.store.iter_mut().enumerate() {
            *m = lanes_inside(ow.saturating_sub(ch * LANES), 0, 1, 0, LANES as isize);
        }
        for kx in 0..KW {
            let off = (kx * dw) as isize - pw as isize;
            if split {
                // Output column j reads column 2j + off: in the half of its
                // parity, at j + floor(off / 2).
                let (parity, half) = (off.rem_euclid(2), off.div_euclid(2));
                let (start, len) = if parity == 0 { (0, (iw + 1) / 2) } else { ((iw + 1) / 2, iw / 2) };
                c.offset[kx] = start + half + strip as isize;
                for ch in 0..CH {
                    c.mask[kx][ch] = lanes_inside(ow.saturating_sub(ch * LANES), (strip + ch * LANES) as isize + half, 1, 0, len);
                }
                continue;
            }
            c.offset[kx] = off + (S * strip) as isize;
            for ch in 0..CH {
                let first = s * (strip + ch * LANES) as isize + off;
                c.mask[kx][ch] = lanes_inside(ow.saturating_sub(ch * LANES), first, s, 0, iw);
            }
            let first = c.offset[kx];
            c.load[kx] = [lanes_inside(LANES, first, 1, 0, iw), lanes_inside(LANES, first + LANES as isize, 1, 0, iw)];
            c.interior &= c.load[kx] == [0xffff; 2];
            let idx: [i32; LANES] = std::array::from_fn(|j| ((s * j as isize + off) & 31) as i32);
            // SAFETY: 16 i32 of idx.
            c.index[kx] = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
        }
        // (The first strip's column −1, read as column 31, is padding: masked off.)
        c.head = [lanes_inside(LANES, 0, 1, 0, iw), lanes_inside(LANES, LANES as isize, 1, 0, iw)];
        c.first32 = S == 2 && strip == 0 && super::head_only(k);
        c
    }

    /// See [`super::planes`], with `S` the column stride, `CH` the vectors
    /// of an output row and `KW` the kernel width.
    ///
    /// # Safety
    /// The CPU has AVX-512F and `k` fits the path.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn planes<const S: usize, const CH: usize, const KW: usize, const HEAD: bool>(
        k: &DepthwiseConv,
        items: Range<usize>,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let [[ih, iw], [oh, ow], [kh, kw], ..] = k.dims();
        assert_eq!(kw, KW);
        let (c, m) = (k.in_channels as usize, k.out_channels as usize);
        let (in_plane, out_plane) = (ih * iw, oh * ow);
        let strips: [Columns<CH, KW>; MAX_STRIPS] = strips::<S, CH, KW>(k, false);
        let strips = &strips[..ow.div_ceil(CH * LANES)];
        let (clamp, rest) = split_activation(k.epilogue.activation);
        let mult = m / c;
        // The image and output channel of the first plane, then counted on (no division per plane).
        let (mut b, mut oc) = (items.start / m, items.start % m);
        // An exponential activation runs over each finished plane while it
        // is in L1, small planes (under 64 floats: a 7×7) by groups of
        // ~16 KiB: on 49 floats its latency chain ran alone (960ch 7×7 SiLU
        // 55-58 -> 52 µs; grouping 14×14 planes cost 10 %).
        let group = if out_plane >= 64 { out_plane } else { ACT_GROUP };
        let mut pending = 0..0;
        for (j, item) in items.enumerate() {
            if oc == m {
                (b, oc) = (b + 1, 0);
            }
            let input = b * c + if mult == 1 { oc } else { oc / mult };
            let x_plane = &x[input * in_plane..][..in_plane];
            let taps = &w[oc * kh * kw..][..kh * kw];
            let res = residual.map(|rv| &rv[item * out_plane..][..out_plane]);
            let y_plane = &mut y[j * out_plane..][..out_plane];
            // SAFETY: the caller's contract (AVX-512F).
            unsafe { by_strips::<S, CH, KW, HEAD>(k, strips, x_plane, taps, bias.map_or(0.0, |bv| bv[oc]), res, clamp, y_plane) };
            pending.end = (j + 1) * out_plane;
            if rest != Activation::None && pending.len() >= group {
                activate(&mut y[pending.clone()], Epilogue { activation: rest, ..Epilogue::default() });
                pending.start = pending.end;
            }
            oc += 1;
        }
        if rest != Activation::None && !pending.is_empty() {
            activate(&mut y[pending], Epilogue { activation: rest, ..Epilogue::default() });
        }
    }

    #[test]
    fn lanes_inside_counts_the_lanes_one_by_one() {
        for n in [0, 1, 7, 16, 40] {
            for first in -40..40isize {
                for step in 1..4isize {
                    for (lo, hi) in [(0, 5), (0, 33), (3, 9), (-4, 100), (10, 10), (20, 1)] {
                        let want = (0..n.min(LANES)).filter(|&j| (lo..hi).contains(&(first + step * j as isize))).fold(0u16, |m, j| m | (1 << j));
                        assert_eq!(lanes_inside(n, first, step, lo, hi), want, "n {n} first {first} step {step} {lo}..{hi}");
                    }
                }
            }
        }
    }

    /// The strips of a row of `k` (rows wider than a strip of CH vectors run
    /// strip by strip); those past the row's are unused.
    #[target_feature(enable = "avx512f")]
    fn strips<const S: usize, const CH: usize, const KW: usize>(k: &DepthwiseConv, split: bool) -> [Columns<CH, KW>; MAX_STRIPS] {
        let (ow, strip) = (k.output[1] as usize, CH * LANES);
        let used = ow.div_ceil(strip);
        std::array::from_fn(|i| if i < used { columns::<S, CH, KW>(k, i * strip, split) } else { Columns { mask: [[0; CH]; KW], offset: [0; KW], load: [[0; 2]; KW], first32: false, index: [_mm512_setzero_si512(); KW], head: [0; 2], interior: false, store: [0; CH] } })
    }

    /// The clamp that ReLU and Clip run as in registers (`max` first: a NaN
    /// becomes the lower bound, as `f32::max` does), and the activation
    /// left to run over the finished plane.
    fn split_activation(a: Activation) -> (Option<(f32, f32)>, Activation) {
        match a {
            Activation::None => (None, Activation::None),
            Activation::Relu => (Some((0.0, f32::INFINITY)), Activation::None),
            Activation::Clip { min, max } => (Some((min, max)), Activation::None),
            other => (None, other),
        }
    }

    /// One plane, strip by strip (see [`plane`]). Always inlined (so not a
    /// target-feature function itself): a call per plane cost 5-10 % on
    /// 7×7 planes.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn by_strips<const S: usize, const CH: usize, const KW: usize, const HEAD: bool>(k: &DepthwiseConv, strips: &[Columns<CH, KW>], x: &[f32], w: &[f32], bias: f32, residual: Option<&[f32]>, clamp: Option<(f32, f32)>, y: &mut [f32]) {
        for (i, cols) in strips.iter().enumerate() {
            debug_assert_eq!(HEAD, cols.first32);
            // SAFETY: the caller's contract.
            unsafe { plane::<S, CH, KW, HEAD>(k, cols, i * CH * LANES, x, w, bias, residual, clamp, y) };
        }
    }

    /// See [`super::band`].
    ///
    /// # Safety
    /// As [`super::band`].
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    /// `split`: the input rows are split (see [`super::fits_split`]).
    pub(super) unsafe fn band<const S: usize, const CH: usize, const KW: usize, const HEAD: bool>(k: &DepthwiseConv, count: usize, x: &[f32], x_stride: usize, w: &[f32], bias: Option<&[f32]>, y: *mut f32, y_stride: usize, split: bool) {
        let [[ih, iw], [oh, ow], [kh, kw], ..] = k.dims();
        assert_eq!(kw, KW);
        let strips: [Columns<CH, KW>; MAX_STRIPS] = strips::<S, CH, KW>(k, split);
        let strips = &strips[..ow.div_ceil(CH * LANES)];
        let (clamp, rest) = split_activation(k.epilogue.activation);
        for i in 0..count {
            // SAFETY: the caller's contract.
            let y_plane = unsafe { std::slice::from_raw_parts_mut(y.add(i * y_stride), oh * ow) };
            // SAFETY: the caller's contract (AVX-512F).
            unsafe { by_strips::<S, CH, KW, HEAD>(k, strips, &x[i * x_stride..][..ih * iw], &w[i * kh * kw..][..kh * kw], bias.map_or(0.0, |bv| bv[i]), None, clamp, y_plane) };
            if rest != Activation::None {
                activate(y_plane, Epilogue { activation: rest, ..Epilogue::default() });
            }
        }
    }

    /// The output columns `strip..` (at most CH vectors) of the plane `y`
    /// (`[oh, ow]`) from the input plane `x` (`[ih, iw]`), the channel's taps
    /// `w`, `bias`, the residual plane and the clamp of the activation;
    /// `cols` are the strip's (column offsets include the strip's start).
    ///
    /// Blocks of output rows hold ROWS vectors of accumulators. Square
    /// stride-1 kernels without row dilation share each input row's tap
    /// vectors between the output rows that read it; the others load a
    /// row per (kernel row, output row). (Sharing stride-2 windows measured
    /// slower: their span does not stay a small unrolled body.)
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    fn plane<const S: usize, const CH: usize, const KW: usize, const HEAD: bool>(k: &DepthwiseConv, cols: &Columns<CH, KW>, strip: usize, x: &[f32], w: &[f32], bias: f32, residual: Option<&[f32]>, clamp: Option<(f32, f32)>, y: &mut [f32]) {
        let [[ih, iw], [oh, ow], [kh, _], [sh, _], [dh, _], [ph, _]] = k.dims();
        assert!(x.len() >= ih * iw && w.len() >= kh * KW && y.len() >= oh * ow && residual.is_none_or(|r| r.len() >= oh * ow));
        let zeros = ZEROS[LANES..].as_ptr();
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        // Input row iy, or the zero row outside the plane.
        let row = |iy: isize| {
            if (0..ih as isize).contains(&iy) {
                // SAFETY: a row of the plane (its length is asserted above).
                unsafe { x.as_ptr().add(iy as usize * iw) }
            } else {
                zeros
            }
        };
        // Tap column kx's vector ch of a row (lanes in the padding zero).
        let tap = |row: *const f32, kx: usize, ch: usize| {
            if S == 1 {
                // SAFETY: the mask keeps the lanes whose column is inside the row.
                unsafe { _mm512_maskz_loadu_ps(cols.mask[kx][ch], row.wrapping_offset(cols.offset[kx] + (ch * LANES) as isize)) }
            } else if HEAD {
                // SAFETY: the load masks keep the columns inside the row.
                let (v0, v1) = unsafe { (_mm512_maskz_loadu_ps(cols.head[0], row), _mm512_maskz_loadu_ps(cols.head[1], row.wrapping_add(LANES))) };
                _mm512_maskz_permutex2var_ps(cols.mask[kx][0], v0, cols.index[kx], v1)
            } else {
                // The tap's 32 columns from its offset, outside the row zero; its
                // columns are their even lanes.
                let at = row.wrapping_offset(cols.offset[kx]);
                // SAFETY: the load masks keep the columns inside the row (all of them: interior).
                let (v0, v1) = unsafe {
                    if cols.interior {
                        (_mm512_loadu_ps(at), _mm512_loadu_ps(at.wrapping_add(LANES)))
                    } else {
                        (_mm512_maskz_loadu_ps(cols.load[kx][0], at), _mm512_maskz_loadu_ps(cols.load[kx][1], at.wrapping_add(LANES)))
                    }
                };
                _mm512_permutex2var_ps(v0, evens, v1)
            }
        };
        let shared = S == 1 && sh == 1 && dh == 1 && kh == KW;
        // Rows of a block (a constant of each instance).
        let block = ROWS / CH;
        for oy0 in (0..oh).step_by(block) {
            let mut acc = [[_mm512_set1_ps(bias); CH]; ROWS];
            if shared {
                // Input row oy0 + t − ph feeds output rows oy0 + t − ky: its
                // tap vectors are loaded once for all of them. The tap
                // column is the outer loop so that the rows and kernel rows
                // (unrolled, accumulators named statically) stay a small body.
                let span = block + KW - 1;
                let window: [*const f32; ROWS + 6] = std::array::from_fn(|t| if t < span { row((oy0 + t) as isize - ph as isize) } else { zeros });
                for kx in 0..KW {
                    let wk: [__m512; KW] = std::array::from_fn(|ky| _mm512_set1_ps(w[ky * KW + kx]));
                    for (t, &at) in window.iter().enumerate().take(span) {
                        for ch in 0..CH {
                            let v = tap(at, kx, ch);
                            for (ky, &wv) in wk.iter().enumerate() {
                                if (ky..block + ky).contains(&t) {
                                    acc[t - ky][ch] = _mm512_fmadd_ps(wv, v, acc[t - ky][ch]);
                                }
                            }
                        }
                    }
                }
            } else {
                for ky in 0..kh {
                    // Rows past the plane's end read the zero row.
                    let rows: [*const f32; ROWS] = std::array::from_fn(|r| if r < block && oy0 + r < oh { row(((oy0 + r) * sh + ky * dh) as isize - ph as isize) } else { zeros });
                    for kx in 0..KW {
                        let wv = _mm512_set1_ps(w[ky * KW + kx]);
                        for r in 0..block {
                            for ch in 0..CH {
                                acc[r][ch] = _mm512_fmadd_ps(wv, tap(rows[r], kx, ch), acc[r][ch]);
                            }
                        }
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate().take(block.min(oh - oy0)) {
                let out = (oy0 + r) * ow + strip;
                for (ch, &a) in acc.iter().enumerate() {
                    let m = cols.store[ch];
                    let a = match residual {
                        // SAFETY: the store mask keeps the row's outputs, inside the residual plane.
                        Some(res) => _mm512_add_ps(a, unsafe { _mm512_maskz_loadu_ps(m, res.as_ptr().add(out + ch * LANES)) }),
                        None => a,
                    };
                    let a = match clamp {
                        Some((lo, hi)) => _mm512_min_ps(_mm512_max_ps(a, _mm512_set1_ps(lo)), _mm512_set1_ps(hi)),
                        None => a,
                    };
                    // SAFETY: as above, inside y.
                    unsafe { _mm512_mask_storeu_ps(y.as_mut_ptr().add(out + ch * LANES), m, a) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Activation;

    #[test]
    fn split_rows_take_the_even_columns_then_the_odd_ones() {
        for len in [0usize, 1, 2, 15, 16, 17, 31, 32, 33, 64, 111, 112, 113] {
            let row: Vec<f32> = (0..len).map(|i| i as f32).collect();
            let want: Vec<f32> = row.iter().step_by(2).chain(row.iter().skip(1).step_by(2)).copied().collect();
            for q in 0..len {
                for n in [1, 5, 16, 17, 40, len - q] {
                    let n = n.min(len - q);
                    let mut got = vec![f32::NAN; n];
                    split_part(&row, q, &mut got);
                    assert_eq!(got, want[q..q + n], "row of {len}, columns {q}..{}", q + n);
                    split_part_portable(&row, q, &mut got);
                    assert_eq!(got, want[q..q + n], "portable, row of {len}, columns {q}..{}", q + n);
                }
            }
        }
    }

    /// `cargo test --release -p kann-kernels narrow_timing -- --ignored --nocapture`:
    /// µs per layer of MobileNetV2's and EfficientNet's narrow shapes (ReLU6;
    /// SiLU with `NARROW_SILU=1`; one shape with `NARROW_SHAPE=i`).
    #[test]
    #[ignore]
    fn narrow_timing() {
        let only: Option<usize> = std::env::var("NARROW_SHAPE").ok().and_then(|v| v.parse().ok());
        let shapes = [(384usize, 14usize, 3u64, 1u64), (960, 7, 3, 1), (576, 14, 3, 2), (672, 14, 5, 2), (240, 28, 5, 1), (1152, 7, 5, 1)];
        for (i, &(c, hw, kk, s)) in shapes.iter().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            let p = kk / 2;
            let o = (hw as u64 + 2 * p - kk) / s + 1;
            let k = DepthwiseConv {
                batch: 1,
                in_channels: c as u64,
                out_channels: c as u64,
                input: [hw as u64; 2],
                kernel: [kk, kk],
                strides: [s, s],
                dilations: [1, 1],
                pad_begin: [p, p],
                output: [o, o],
                epilogue: Epilogue { bias: true, residual: false, activation: if std::env::var_os("NARROW_SILU").is_some() { Activation::Silu } else { Activation::Clip { min: 0.0, max: 6.0 } } },
                isa: Isa::Avx512,
            };
            if !fits(&k) {
                continue;
            }
            let x: Vec<f32> = (0..c * hw * hw).map(|i| (i % 7) as f32 * 0.1).collect();
            let w = vec![0.1f32; c * (kk * kk) as usize];
            let b = vec![0.5f32; c];
            let mut y = vec![0.0f32; c * (o * o) as usize];
            let mut best = f64::MAX;
            for _ in 0..if only.is_some() { 5000 } else { 500 } {
                let t = std::time::Instant::now();
                planes(&k, 0..c, &x, &w, Some(&b), None, &mut y);
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!("narrow {c} ch {hw}² k{kk} s{s}: {:.1} µs", best * 1e6);
        }
    }
}
