//! Depthwise 2-D f32 convolution (NCHW): every output channel reads one
//! input channel (`group == C`, output channel `oc` reads input channel
//! `oc / multiplier`), with any kernel size, strides, dilations, explicit
//! padding and the fused epilogue (bias, residual, activation).
//!
//! Work items are output planes (`N · M`), as [`crate::conv::Conv`]. An
//! output row is a sum over the kernel taps of `w · (a contiguous run of an
//! input row)`: the columns each horizontal tap reads inside the input are
//! computed once per kernel, so every tap is one multiply-add over a
//! contiguous run of output columns (the padding columns are skipped, never
//! tested per element). For a stride `s > 1` the input row is first split
//! into its `s` phases (`phase[p][j] = row[j·s + p]`, in the scratch), after
//! which each tap again reads a contiguous run of one phase.
//!
//! The row loop is one `#[inline(always)]` body compiled three times: with
//! AVX-512F, with AVX2+FMA (`#[target_feature]`, chosen from the kernel's
//! [`Isa`] and checked at run time) and portable; the compiler vectorises
//! the contiguous multiply-adds and the piecewise-linear activations for
//! each instruction set.
//!
//! Inputs: X `[N, C, H, W]`, W `[M, 1, kh, kw]` (packed by
//! [`pack_dwconv_weights`]), then B `[M]` if `epilogue.bias`, then the
//! residual (Y's shape) if `epilogue.residual`. Output: Y `[N, M, oh, ow]`.

mod blocked;
#[cfg(target_arch = "x86_64")]
mod blocked8;
mod narrow;
mod planar;

use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A depthwise 2-D convolution; geometry as [`crate::conv::Conv`] with two
/// spatial axes `[h, w]` and `group == in_channels`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthwiseConv {
    pub batch: u64,
    pub in_channels: u64,
    /// A multiple of `in_channels` (the channel multiplier).
    pub out_channels: u64,
    pub input: [u64; 2],
    pub kernel: [u64; 2],
    pub strides: [u64; 2],
    pub dilations: [u64; 2],
    pub pad_begin: [u64; 2],
    pub output: [u64; 2],
    pub epilogue: Epilogue,
    pub isa: Isa,
}

/// Packs W `[M, 1, kh, kw]`: each output channel's `kh · kw` taps, row-major,
/// which is the ONNX layout itself.
pub fn pack_dwconv_weights(w: &[f32]) -> Vec<f32> {
    w.to_vec()
}

/// `ceil(a / b)` for `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

/// One horizontal tap: output columns `lo..hi` read phase `phase` of the
/// input row from position `at` on (contiguously).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    lo: usize,
    hi: usize,
    phase: usize,
    at: usize,
}

/// The horizontal taps of a kernel row: output column `o` of tap `kx` reads
/// input column `o · s + kx · d − p`, which is inside the row for `lo..hi`.
fn horizontal_taps(iw: usize, ow: usize, kw: usize, s: usize, d: usize, p: usize) -> Vec<Tap> {
    (0..kw)
        .map(|kx| {
            let off = (kx * d) as i64 - p as i64;
            let lo = ceil_div(-off, s as i64).max(0);
            let hi = ceil_div(iw as i64 - off, s as i64).min(ow as i64);
            if lo >= hi {
                return Tap { lo: 0, hi: 0, phase: 0, at: 0 };
            }
            let first = (lo * s as i64 + off) as usize;
            Tap { lo: lo as usize, hi: hi as usize, phase: first % s, at: first / s }
        })
        .collect()
}

/// Everything one output plane's rows need besides the data.
struct Plane<'a> {
    /// The input plane `[ih, iw]`.
    x: &'a [f32],
    /// The channel's `kh · kw` taps.
    w: &'a [f32],
    bias: f32,
    /// The residual plane `[oh, ow]`, if any.
    residual: Option<&'a [f32]>,
}

/// Columns `q..q + dst.len()` of the split form of `row` (its even
/// columns, then its odd ones: what [`DepthwiseConv::register_planes_split`]
/// reads) into `dst`.
pub(crate) fn split_row_part(row: &[f32], q: usize, dst: &mut [f32]) {
    narrow::split_part(row, q, dst)
}

/// One group of the channel-blocked paths: its channels' input planes,
/// taps, biases and residual planes, and the range of its output planes in
/// the part's output.
struct Group<'a> {
    x: &'a [f32],
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    residual: Option<&'a [f32]>,
    y: Range<usize>,
}

/// The geometry as usize pairs: input, output, kernel, strides, dilations, padding.
type Dims = [[usize; 2]; 6];

impl DepthwiseConv {
    pub(crate) fn dims(&self) -> Dims {
        let u = |v: [u64; 2]| v.map(|e| e as usize);
        [u(self.input), u(self.output), u(self.kernel), u(self.strides), u(self.dilations), u(self.pad_begin)]
    }

    /// Floats of the phase rows: `s` phases of `ceil(iw / s)` columns.
    fn phase_floats(&self) -> usize {
        let (s, iw) = (self.strides[1] as usize, self.input[1] as usize);
        if s > 1 {
            s * iw.div_ceil(s)
        } else {
            0
        }
    }

    /// Whether one plane of this geometry runs the plane-at-once path
    /// (what [`Self::one_plane`] needs).
    pub(crate) fn planar(&self) -> bool {
        planar::Layout::fits(self)
    }

    /// Whether this geometry runs the register-row path on this CPU
    /// (AVX-512, narrow or stride-1 rows; see `depthwise/narrow.rs`).
    pub fn register_rows(&self) -> bool {
        narrow::fits(self)
    }

    /// Whether this geometry (column stride 2) runs the register-row path
    /// over split input rows on this CPU: each row stored as its even
    /// columns, then its odd ones (see [`split_row_part`]).
    pub fn register_rows_split(&self) -> bool {
        narrow::fits_split(self)
    }

    /// Scratch floats [`Self::one_plane`] needs.
    pub(crate) fn one_plane_floats(&self) -> usize {
        planar::Layout::new(self).floats()
    }

    /// One output plane `y` (`[oh, ow]`) of this geometry from the input
    /// plane `x` (`[ih, iw]`), with channel taps `w` and `bias` (no
    /// residual), on the plane-at-once path ([`Self::planar`] holds). The
    /// scratch's padding is zeroed when `fresh` (the scratch last served
    /// another geometry, or never).
    pub(crate) fn one_plane(&self, x: &[f32], w: &[f32], bias: f32, y: &mut [f32], scratch: &mut [f32], fresh: bool) {
        let lay = planar::Layout::new(self);
        let scratch = &mut scratch[..lay.floats()];
        if fresh {
            scratch.fill(0.0);
        }
        planar::plane(self, &lay, &Plane { x, w, bias, residual: None }, y, scratch, true);
    }

    /// `count` planes of this geometry (one channel each, no residual) on
    /// the register-row path ([`Self::register_rows`] holds): plane `i` from
    /// `x[i · x_stride..]`, with taps `w[i · kh · kw..]` and `bias[i]`, into
    /// `y + i · y_stride`. The row set-up is done once for all of them
    /// (per plane it cost as much as a small plane's taps).
    ///
    /// # Safety
    /// `y + i · y_stride` is valid for writing `oh · ow` floats for every
    /// `i < count` and overlaps none of the inputs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn register_planes(&self, count: usize, x: &[f32], x_stride: usize, w: &[f32], bias: Option<&[f32]>, y: *mut f32, y_stride: usize) {
        // SAFETY: the caller's contract.
        unsafe { narrow::band(self, count, x, x_stride, w, bias, y, y_stride) }
    }

    /// [`Self::register_planes`] over split input rows
    /// ([`Self::register_rows_split`] holds; rows of `iw` floats, the even
    /// columns first).
    ///
    /// # Safety
    /// As [`Self::register_planes`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn register_planes_split(&self, count: usize, x: &[f32], x_stride: usize, w: &[f32], bias: Option<&[f32]>, y: *mut f32, y_stride: usize) {
        // SAFETY: the caller's contract.
        unsafe { narrow::band_split(self, count, x, x_stride, w, bias, y, y_stride) }
    }

    /// The ISA the rows run with: the requested one when the CPU has it.
    fn run_isa(&self) -> Isa {
        if self.isa.available() {
            self.isa
        } else {
            Isa::Generic
        }
    }

    /// Computes one output plane `y` (`[oh, ow]`).
    fn plane(&self, p: &Plane, y: &mut [f32], taps: &[Tap], phases: &mut [f32]) {
        match self.run_isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (checked by run_isa).
            Isa::Avx512 => unsafe { plane_avx512(self, p, y, taps, phases) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 and FMA (checked by run_isa).
            Isa::Avx2 => unsafe { plane_avx2(self, p, y, taps, phases) },
            _ => plane_rows(self, p, y, taps, phases),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn plane_avx512(k: &DepthwiseConv, p: &Plane, y: &mut [f32], taps: &[Tap], phases: &mut [f32]) {
    plane_rows(k, p, y, taps, phases)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn plane_avx2(k: &DepthwiseConv, p: &Plane, y: &mut [f32], taps: &[Tap], phases: &mut [f32]) {
    plane_rows(k, p, y, taps, phases)
}

/// The rows of one output plane: bias, every tap, residual, activation.
#[inline(always)]
fn plane_rows(k: &DepthwiseConv, p: &Plane, y: &mut [f32], taps: &[Tap], phases: &mut [f32]) {
    let [[ih, iw], [_, ow], [kh, kw], [sh, sw], [dh, _], [ph, _]] = k.dims();
    let pw_len = iw.div_ceil(sw);
    for (oy, row) in y.chunks_exact_mut(ow).enumerate() {
        row.fill(p.bias);
        for ky in 0..kh {
            let iy = (oy * sh + ky * dh) as i64 - ph as i64;
            if iy < 0 || iy >= ih as i64 {
                continue;
            }
            let x_row = &p.x[iy as usize * iw..][..iw];
            let src: &[f32] = if sw == 1 {
                x_row
            } else {
                split_phases(x_row, sw, pw_len, phases);
                phases
            };
            let stride = if sw == 1 { iw } else { pw_len };
            for (t, &wv) in taps.iter().zip(&p.w[ky * kw..][..kw]) {
                let out = &mut row[t.lo..t.hi];
                let inp = &src[t.phase * stride + t.at..][..out.len()];
                for (o, &xv) in out.iter_mut().zip(inp) {
                    *o += wv * xv;
                }
            }
        }
        if let Some(r) = p.residual {
            for (o, &rv) in row.iter_mut().zip(&r[oy * ow..][..ow]) {
                *o += rv;
            }
        }
        activate(row, k.epilogue);
    }
}

/// `phases[q · len + j] = row[j · s + q]` (the tail of the last phases unused).
#[inline(always)]
fn split_phases(row: &[f32], s: usize, len: usize, phases: &mut [f32]) {
    for (q, dst) in phases.chunks_exact_mut(len.max(1)).take(s).enumerate() {
        for (d, &v) in dst.iter_mut().zip(row.iter().skip(q).step_by(s)) {
            *d = v;
        }
    }
}

/// Applies the activation to a row.
#[inline(always)]
fn activate(row: &mut [f32], e: Epilogue) {
    use crate::Activation as A;
    match e.activation {
        A::None => {}
        A::Relu => row.iter_mut().for_each(|v| *v = v.max(0.0)),
        A::Clip { min, max } => row.iter_mut().for_each(|v| *v = v.max(min).min(max)),
        act => crate::epilogue::activate_in_place(act, row),
    }
}

impl KernelImpl for DepthwiseConv {
    fn name(&self) -> String {
        format!("f32_dwconv2d_direct_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.batch * self.out_channels
    }

    fn scratch_bytes(&self, _items: u64) -> usize {
        let floats = if blocked::Blocked::fits(self) {
            blocked::Blocked::new(self).floats(self)
        } else if planar::Layout::fits(self) {
            planar::Layout::new(self).floats()
        } else {
            self.phase_floats()
        };
        // An AVX2 kernel runs the 8-lane path where the CPU has AVX2, the
        // others where it has not: room for either.
        #[cfg(target_arch = "x86_64")]
        let floats = if blocked8::Blocked8::fits_geometry(self) { floats.max(blocked8::Blocked8::new(self).floats(self)) } else { floats };
        4 * floats
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        if self.in_channels == 0 || self.out_channels % self.in_channels != 0 || self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err(format!("depthwise conv channels, strides or dilations are invalid: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        let [[ih, iw], [oh, ow], [kh, kw], [_, sw], [_, dw], [_, pw]] = self.dims();
        let (c, m) = (self.in_channels as usize, self.out_channels as usize);
        let (in_plane, out_plane, mult) = (ih * iw, oh * ow, m / c);
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, w) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        // SAFETY: as above.
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        let r_at = 2 + usize::from(self.epilogue.bias);
        // SAFETY: as above.
        let residual = self.epilogue.residual.then(|| unsafe { io.inputs[r_at].f32() });
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: this part owns output planes p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * out_plane..p1 * out_plane) };
        // The phases live in the cluster's scratch: no allocation while a frame runs.
        // SAFETY: any bit pattern is a valid f32; the slice is only reinterpreted.
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        if narrow::fits(self) {
            narrow::planes(self, p0..p1, x, w, bias, residual, y);
            return;
        }
        let groups = |lanes: usize, f: &mut dyn FnMut(Group, bool)| {
            // Groups of up to `lanes` consecutive channels of one image (multiplier 1).
            let mut item = p0;
            while item < p1 {
                let (b, oc) = (item / m, item % m);
                let n = lanes.min(m - oc).min(p1 - item);
                let group = Group {
                    x: &x[(b * c + oc) * in_plane..][..n * in_plane],
                    w: &w[oc * kh * kw..][..n * kh * kw],
                    bias: bias.map(|bv| &bv[oc..oc + n]),
                    residual: residual.map(|rv| &rv[item * out_plane..][..n * out_plane]),
                    y: (item - p0) * out_plane..(item - p0 + n) * out_plane,
                };
                f(group, item == p0);
                item += n;
            }
        };
        #[cfg(target_arch = "x86_64")]
        if blocked8::Blocked8::fits(self) {
            let lay = blocked8::Blocked8::new(self);
            assert!(pre.is_empty() && scratch.len() >= lay.floats(self), "depthwise scratch is not 4-byte aligned or too small");
            groups(blocked8::LANES, &mut |g, fresh| {
                // SAFETY: the CPU has AVX2 and FMA (checked by fits).
                unsafe { blocked8::group(self, &lay, g.x, g.w, g.bias, g.residual, &mut y[g.y], scratch, fresh) }
            });
            return;
        }
        if blocked::Blocked::fits(self) {
            let lay = blocked::Blocked::new(self);
            assert!(pre.is_empty() && scratch.len() >= lay.floats(self), "depthwise scratch is not 4-byte aligned or too small");
            groups(blocked::LANES, &mut |g, fresh| blocked::group(self, &lay, g.x, g.w, g.bias, g.residual, &mut y[g.y], scratch, fresh));
            return;
        }
        let planar = planar::Layout::fits(self).then(|| planar::Layout::new(self));
        let need = planar.map_or(self.phase_floats(), |l| l.floats());
        assert!(pre.is_empty() && scratch.len() >= need, "depthwise scratch is not 4-byte aligned or too small");
        let scratch = &mut scratch[..need];
        // Every plane fills the same (interior) positions of the phases: the padding is zeroed once.
        scratch.fill(0.0);
        let taps = if planar.is_none() { horizontal_taps(iw, ow, kw, sw, dw, pw) } else { Vec::new() };
        let mut filled = None;
        for (item, y_plane) in (p0..p1).zip(y.chunks_exact_mut(out_plane.max(1))) {
            let (b, oc) = (item / m, item % m);
            let input = b * c + oc / mult;
            let plane = Plane {
                x: &x[input * in_plane..][..in_plane],
                w: &w[oc * kh * kw..][..kh * kw],
                bias: bias.map_or(0.0, |bv| bv[oc]),
                residual: residual.map(|rv| &rv[item * out_plane..][..out_plane]),
            };
            match &planar {
                Some(lay) => planar::plane(self, lay, &plane, y_plane, scratch, filled.replace(input) != Some(input)),
                None => self.plane(&plane, y_plane, &taps, scratch),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;
    use crate::conv::{pack_conv_weights, Conv};
    use crate::Activation;

    const ACTIVATIONS: [Activation; 9] = [
        Activation::None,
        Activation::Relu,
        Activation::Clip { min: -0.2, max: 0.3 },
        Activation::LeakyRelu { alpha: 0.1 },
        Activation::Sigmoid,
        Activation::HardSigmoid { alpha: 0.2, beta: 0.5 },
        Activation::HardSwish,
        Activation::Silu,
        Activation::Tanh,
    ];

    /// The portable grouped convolution with the same geometry.
    fn as_conv(k: &DepthwiseConv) -> Conv {
        Conv {
            batch: k.batch,
            in_channels: k.in_channels,
            out_channels: k.out_channels,
            group: k.in_channels,
            input: k.input.to_vec(),
            kernel: k.kernel.to_vec(),
            strides: k.strides.to_vec(),
            dilations: k.dilations.to_vec(),
            pad_begin: k.pad_begin.to_vec(),
            output: k.output.to_vec(),
            epilogue: k.epilogue,
        }
    }

    /// A random depthwise geometry: kernel 1..7, stride 1..3, dilation 1..2,
    /// asymmetric padding, widths around the vector widths.
    fn random_geometry(rng: &mut Rng, isa: Isa, activation: Activation) -> DepthwiseConv {
        let c = 1 + rng.below(4);
        let mult = if rng.below(4) == 0 { 2 } else { 1 };
        let mut axis = |wide: bool| {
            let (k, s, d) = (1 + rng.below(7), 1 + rng.below(3), 1 + rng.below(2));
            let (pb, pe) = (rng.below(k), rng.below(k));
            let eff = (k - 1) * d + 1;
            let extra = if wide { pick_width(rng) } else { rng.below(6) };
            let inp = eff.saturating_sub(pb + pe).max(1) + extra;
            let out = (inp + pb + pe - eff) / s + 1;
            (inp, k, s, d, pb, out)
        };
        let (h, w) = (axis(false), axis(true));
        DepthwiseConv {
            batch: 1 + rng.below(2),
            in_channels: c,
            out_channels: c * mult,
            input: [h.0, w.0],
            kernel: [h.1, w.1],
            strides: [h.2, w.2],
            dilations: [h.3, w.3],
            pad_begin: [h.4, w.4],
            output: [h.5, w.5],
            epilogue: Epilogue { bias: rng.below(2) == 1, residual: rng.below(2) == 1, activation },
            isa,
        }
    }

    /// Extra widths around 8, 16 and 32 lanes (and their multiples).
    fn pick_width(rng: &mut Rng) -> u64 {
        let base = [0u64, 7, 8, 15, 16, 31, 32, 33, 47, 64][rng.below(10) as usize];
        base + rng.below(3)
    }

    fn inputs(rng: &mut Rng, k: &DepthwiseConv) -> (Vec<Vec<f32>>, usize) {
        let in_len = (k.batch * k.in_channels * k.input[0] * k.input[1]) as usize;
        let out_len = (k.batch * k.out_channels * k.output[0] * k.output[1]) as usize;
        let mut v = vec![rng.vec(in_len), rng.vec((k.out_channels * k.kernel[0] * k.kernel[1]) as usize)];
        if k.epilogue.bias {
            v.push(rng.vec(k.out_channels as usize));
        }
        if k.epilogue.residual {
            v.push(rng.vec(out_len));
        }
        (v, out_len)
    }

    #[test]
    fn matches_portable_conv_on_random_geometries_every_isa() {
        let mut rng = Rng(11);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for _ in 0..60 {
                for act in ACTIVATIONS {
                    let k = random_geometry(&mut rng, isa, act);
                    let (ins, out_len) = inputs(&mut rng, &k);
                    let conv = as_conv(&k);
                    let mut conv_ins = ins.clone();
                    conv_ins[1] = pack_conv_weights(&ins[1]);
                    let want = run_parts(&conv, &conv_ins, &[out_len], 1);
                    let mut dw_ins = ins.clone();
                    dw_ins[1] = pack_dwconv_weights(&ins[1]);
                    for parts in [1, 2, 3] {
                        let got = run_parts(&k, &dw_ins, &[out_len], parts);
                        assert_close(&got[0], &want[0], 1e-5);
                    }
                }
            }
        }
    }

    /// The planar path against the portable conv on one geometry, every ISA, 1–3 parts.
    fn check_against_conv(k: &DepthwiseConv, seed: u64) {
        let mut rng = Rng(seed);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            let k = DepthwiseConv { isa, ..k.clone() };
            let (ins, out_len) = inputs(&mut rng, &k);
            let mut conv_ins = ins.clone();
            conv_ins[1] = pack_conv_weights(&ins[1]);
            let want = run_parts(&as_conv(&k), &conv_ins, &[out_len], 1);
            for parts in [1, 2, 3] {
                let got = run_parts(&k, &ins, &[out_len], parts);
                assert_close(&got[0], &want[0], 1e-5);
            }
        }
    }

    #[test]
    fn kernels_too_wide_for_the_planar_path_run_the_rows() {
        let k = DepthwiseConv {
            batch: 1,
            in_channels: 3,
            out_channels: 6,
            input: [9, 40],
            kernel: [2, 17],
            strides: [1, 2],
            dilations: [2, 1],
            pad_begin: [1, 8],
            output: [8, 20],
            epilogue: Epilogue { bias: true, residual: true, activation: Activation::Silu },
            isa: Isa::Generic,
        };
        assert!(!planar::Layout::fits(&k));
        assert_eq!(k.scratch_bytes(6), 4 * k.phase_floats());
        check_against_conv(&k, 5);
    }

    #[test]
    fn planes_too_large_for_the_planar_path_run_the_rows() {
        let k = DepthwiseConv {
            batch: 1,
            in_channels: 2,
            out_channels: 2,
            input: [1030, 1030],
            kernel: [3, 3],
            strides: [2, 1],
            dilations: [1, 1],
            pad_begin: [1, 1],
            output: [515, 1030],
            epilogue: Epilogue { bias: true, residual: false, activation: Activation::Relu },
            isa: Isa::Generic,
        };
        assert!(!planar::Layout::fits(&k));
        check_against_conv(&k, 6);
    }

    #[test]
    fn mobilenet_like_planes_every_epilogue() {
        // The common shapes: 3×3 and 5×5, stride 1 and 2, "same" padding, small and odd planes.
        for (i, &(hw, kk, s)) in [(7u64, 3u64, 1u64), (14, 5, 2), (28, 3, 2), (15, 5, 1), (1, 3, 1), (40, 3, 2), (13, 7, 3)].iter().enumerate() {
            for (j, act) in ACTIVATIONS.into_iter().enumerate() {
                let p = kk / 2;
                let k = DepthwiseConv {
                    batch: 2,
                    in_channels: 3,
                    out_channels: 3,
                    input: [hw, hw],
                    kernel: [kk, kk],
                    strides: [s, s],
                    dilations: [1, 1],
                    pad_begin: [p, p],
                    output: [(hw + 2 * p - kk) / s + 1; 2],
                    epilogue: Epilogue { bias: j % 2 == 0, residual: j % 3 == 0, activation: act },
                    isa: Isa::Generic,
                };
                assert!(planar::Layout::fits(&k));
                check_against_conv(&k, (i * 10 + j) as u64);
            }
        }
    }

    #[test]
    fn channel_blocked_path_on_random_small_planes() {
        // 16-40 channels (whole and partial groups, groups cut by the part
        // boundaries), planes up to 28x28, every epilogue and geometry.
        let mut rng = Rng(17);
        let mut blocked = 0;
        for i in 0..40 {
            let mut k = random_geometry(&mut rng, Isa::Generic, ACTIVATIONS[i % ACTIVATIONS.len()]);
            let c = 16 + rng.below(25);
            (k.in_channels, k.out_channels) = (c, c);
            if k.output[0] * k.output[1] > 28 * 28 {
                continue;
            }
            assert!(blocked::Blocked::fits(&k), "{k:?}");
            blocked += 1;
            check_against_conv(&k, 100 + i as u64);
        }
        assert!(blocked >= 20, "only {blocked} geometries took the blocked path");
        // Empty output planes never take it (its loops assume a position).
        let empty = DepthwiseConv { output: [0, 5], ..random_geometry(&mut rng, Isa::Generic, Activation::None) };
        assert!(!blocked::Blocked::fits(&DepthwiseConv { in_channels: 16, out_channels: 16, ..empty }));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn eight_lane_blocked_path_on_random_planes() {
        // 8-40 channels (one partial group of 8 and more), planes up to
        // 56x56, every epilogue and geometry, 1-3 parts.
        let mut rng = Rng(23);
        let mut blocked = 0;
        for i in 0..40 {
            let mut k = random_geometry(&mut rng, Isa::Avx2, ACTIVATIONS[i % ACTIVATIONS.len()]);
            let c = 8 + rng.below(33);
            (k.in_channels, k.out_channels) = (c, c);
            if k.output[0] * k.output[1] > 56 * 56 {
                continue;
            }
            assert_eq!(blocked8::Blocked8::fits(&k), Isa::Avx2.available(), "{k:?}");
            blocked += 1;
            check_against_conv(&k, 200 + i as u64);
        }
        assert!(blocked >= 20, "only {blocked} geometries took the 8-lane path");
        // Fewer channels than a group, a channel multiplier, or no AVX2 never take it.
        let k = DepthwiseConv { in_channels: 7, out_channels: 7, ..random_geometry(&mut rng, Isa::Avx2, Activation::None) };
        assert!(!blocked8::Blocked8::fits(&k));
        assert!(!blocked8::Blocked8::fits(&DepthwiseConv { out_channels: 16, in_channels: 8, ..k.clone() }));
        assert!(!blocked8::Blocked8::fits(&DepthwiseConv { in_channels: 8, out_channels: 8, isa: Isa::Generic, ..k }));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn eight_lane_path_reuses_inputs_across_taps() {
        // The 3- and 5-wide stride-1 kernel rows (inputs loaded once for
        // every tap reading them): row blocks of 7 and 8 positions, short
        // last blocks, any padding, every epilogue, whole and partial groups.
        let mut rng = Rng(29);
        for (i, (kw, ow)) in [3u64, 5].into_iter().flat_map(|kw| [1u64, 6, 7, 8, 9, 14, 15, 17, 21, 28, 30].map(|ow| (kw, ow))).enumerate() {
            let mut k = random_geometry(&mut rng, Isa::Avx2, ACTIVATIONS[i % ACTIVATIONS.len()]);
            let c = 8 + rng.below(13);
            (k.in_channels, k.out_channels) = (c, c);
            let (pb, pe) = (rng.below(kw), rng.below(kw));
            let iw = (ow + kw - 1).saturating_sub(pb + pe).max(1);
            let ow = iw + pb + pe - (kw - 1);
            (k.input[1], k.kernel[1], k.strides[1], k.dilations[1], k.pad_begin[1], k.output[1]) = (iw, kw, 1, 1, pb, ow);
            if k.output[0] * ow > 56 * 56 {
                continue;
            }
            assert_eq!(blocked8::Blocked8::fits(&k), Isa::Avx2.available(), "{k:?}");
            check_against_conv(&k, 400 + i as u64);
        }
    }

    #[test]
    fn narrow_path_on_random_narrow_planes() {
        // Rows up to 32 outputs (stride 1) or 16 (stride 2), kernels 1, 3,
        // 5 and 7 wide, any rows, row strides and dilations, multipliers 1
        // and 2, every epilogue; on CPUs without AVX-512 the same
        // geometries check the other paths.
        let mut rng = Rng(23);
        let mut narrow_ones = 0;
        while narrow_ones < 80 {
            let act = ACTIVATIONS[narrow_ones % ACTIVATIONS.len()];
            let mut k = random_geometry(&mut rng, Isa::Avx512, act);
            let kw = [1, 3, 5, 7][rng.below(4) as usize];
            let sw = 1 + rng.below(2);
            let (pw, pe) = (rng.below(kw), rng.below(kw));
            let widest = [[34, 140], [33, 260]][sw as usize - 1][rng.below(2) as usize];
            let iw = (1 + rng.below(widest)).max(kw.saturating_sub(pw + pe));
            let ow = (iw + pw + pe - kw) / sw + 1;
            (k.kernel[1], k.strides[1], k.dilations[1], k.pad_begin[1], k.input[1], k.output[1]) = (kw, sw, 1, pw, iw, ow);
            if rng.below(3) == 0 {
                let c = 16 + rng.below(20);
                (k.in_channels, k.out_channels) = (c, c);
            }
            let fits = narrow::fits(&k);
            if fits || !Isa::Avx512.available() {
                narrow_ones += 1;
                check_against_conv(&k, 300 + narrow_ones as u64);
            }
        }
    }

    /// Timing of the MobileNetV2 / EfficientNet shapes (`cargo test --release -p kann-kernels
    /// dw_timing -- --ignored --nocapture`): GFLOP/s per shape and ISA.
    #[test]
    #[ignore]
    fn dw_timing() {
        use crate::buf::RawBuf;
        for &(c, hw, kk, s) in
            &[(32u64, 112u64, 3u64, 1u64), (96, 112, 3, 2), (144, 56, 3, 1), (192, 28, 3, 1), (192, 28, 3, 2), (384, 14, 3, 1), (576, 14, 3, 1), (576, 14, 3, 2), (960, 7, 3, 1), (240, 28, 5, 1), (672, 14, 5, 2), (1152, 7, 5, 1)]
        {
            // KANN_DW_ONLY=C,HW,K,S times one shape (many more runs, for a profiler).
            let only = std::env::var("KANN_DW_ONLY").ok();
            if only.as_ref().is_some_and(|o| *o != format!("{c},{hw},{kk},{s}")) {
                continue;
            }
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let p = kk / 2;
                let o = (hw + 2 * p - kk) / s + 1;
                let k = DepthwiseConv {
                    batch: 1,
                    in_channels: c,
                    out_channels: c,
                    input: [hw, hw],
                    kernel: [kk, kk],
                    strides: [s, s],
                    dilations: [1, 1],
                    pad_begin: [p, p],
                    output: [o, o],
                    epilogue: Epilogue { bias: true, residual: false, activation: Activation::Clip { min: 0.0, max: 6.0 } },
                    isa,
                };
                let (mut ins, out_len) = inputs(&mut Rng(1), &k);
                let mut out = vec![0.0f32; out_len];
                let in_bufs: Vec<RawBuf> = ins.iter_mut().map(|v| RawBuf::from_f32(v)).collect();
                let out_bufs = [RawBuf::from_f32(&mut out)];
                let io = Io { inputs: &in_bufs, outputs: &out_bufs };
                let mut scratch = vec![0u8; k.scratch_bytes(c)];
                let reps = if only.is_some() { 5000 } else { 20 };
                let mut best = f64::MAX;
                for _ in 0..reps {
                    let t = std::time::Instant::now();
                    // SAFETY: the buffers live through the call.
                    unsafe { k.run(&io, 0..c, &mut scratch) };
                    best = best.min(t.elapsed().as_secs_f64());
                }
                let flops = 2.0 * (c * o * o * kk * kk) as f64;
                println!("{c:4} ch {hw:3}² k{kk} s{s} {:8}: {:8.1} µs {:6.1} GFLOP/s", isa.name(), best * 1e6, flops / best * 1e-9);
            }
        }
    }

    #[test]
    fn hand_made_stride_two_with_padding() {
        // One 1×5 row, 1×3 kernel of ones, stride 2, padding 1: columns
        // (-1,0,1), (1,2,3), (3,4,5) → 0+1, 1+2+3, 3+4 with x = 0..5.
        let k = DepthwiseConv {
            batch: 1,
            in_channels: 1,
            out_channels: 1,
            input: [1, 5],
            kernel: [1, 3],
            strides: [1, 2],
            dilations: [1, 1],
            pad_begin: [0, 1],
            output: [1, 3],
            epilogue: Epilogue { bias: true, residual: false, activation: Activation::Relu },
            isa: Isa::Generic,
        };
        let got = run_parts(&k, &[vec![0.0, 1.0, 2.0, 3.0, 4.0], vec![1.0; 3], vec![-2.0]], &[3], 1);
        assert_eq!(got[0], vec![0.0, 4.0, 5.0]);
    }

    #[test]
    fn taps_cover_exactly_the_inside_columns() {
        // iw 5, ow 3, kernel 3, stride 2, dilation 1, padding 1.
        let t = horizontal_taps(5, 3, 3, 2, 1, 1);
        assert_eq!(t[0], Tap { lo: 1, hi: 3, phase: 1, at: 0 });
        assert_eq!(t[1], Tap { lo: 0, hi: 3, phase: 0, at: 0 });
        assert_eq!(t[2], Tap { lo: 0, hi: 2, phase: 1, at: 0 });
        // A tap entirely in the padding is empty.
        assert_eq!(horizontal_taps(1, 1, 3, 1, 1, 2)[0], Tap { lo: 0, hi: 0, phase: 0, at: 0 });
    }

    #[test]
    fn names_and_check() {
        let mut k = random_geometry(&mut Rng(3), Isa::Avx2, Activation::None);
        assert_eq!(k.name(), "f32_dwconv2d_direct_avx2");
        k.out_channels = k.in_channels * 2 + 1;
        assert!(k.check(2 + usize::from(k.epilogue.bias) + usize::from(k.epilogue.residual), 1).is_err());
    }
}
