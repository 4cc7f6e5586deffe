//! N-d f32 convolution (1-D, 2-D, 3-D…) with groups, strides, dilations,
//! explicit padding and a fused epilogue (bias, residual, activation).
//!
//! The portable kernel is direct: one output channel plane at a time, it
//! adds `w * x` row segments into the plane for every input channel of the
//! group and every kernel offset. The bounds of each segment along the last
//! spatial axis (where the padding cuts it) are computed once per kernel
//! offset, so the innermost loop is a plain multiply-add over contiguous
//! output positions. Work items are output planes (`N * M`): a part owns
//! whole planes `[b, oc, ...]`.
//!
//! Inputs: X `[N, C, in...]`, W (packed by [`pack_conv_weights`]), then
//! B `[M]` if `epilogue.bias`, then the residual (Y's shape) if
//! `epilogue.residual`. Output: Y `[N, M, out...]`.

use crate::kernel::{expect_io, KernelImpl};
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Geometry of a forward convolution; all spatial vectors have one entry per spatial axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv {
    pub batch: u64,
    pub in_channels: u64,
    pub out_channels: u64,
    pub group: u64,
    /// Input spatial extents.
    pub input: Vec<u64>,
    pub kernel: Vec<u64>,
    pub strides: Vec<u64>,
    pub dilations: Vec<u64>,
    /// Padding before each axis (the padding after only shapes `output`).
    pub pad_begin: Vec<u64>,
    /// Output spatial extents.
    pub output: Vec<u64>,
    pub epilogue: Epilogue,
}

/// Packs W `[M, C/group, k...]` into the layout the portable kernel reads,
/// which is the ONNX layout itself (fast kernels will add their own packings).
pub fn pack_conv_weights(w: &[f32]) -> Vec<f32> {
    w.to_vec()
}

/// Product of extents as usize.
pub(crate) fn product(d: &[u64]) -> usize {
    d.iter().map(|&v| v as usize).product()
}

/// Row-major multi-index of `flat` in `dims`.
pub(crate) fn unravel(mut flat: usize, dims: &[u64]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for a in (0..dims.len()).rev() {
        let d = (dims[a] as usize).max(1);
        idx[a] = flat % d;
        flat /= d;
    }
    idx
}

/// For one kernel offset on the last axis: the output positions `lo..hi`
/// that read inside the input, and the input position read at `lo`.
#[derive(Clone, Copy, Debug)]
struct Segment {
    lo: usize,
    hi: usize,
    start: usize,
}

/// Where output rows (multi-indices over all spatial axes but the last)
/// meet input rows for each kernel offset over those axes.
struct Geometry {
    /// Output rows per plane.
    rows: usize,
    /// Kernel offsets over the axes but the last.
    k_outer: usize,
    /// `[k_outer][rows]`: the input row read, if inside the input.
    outer: Vec<Option<usize>>,
    /// Per last-axis kernel offset.
    last: Vec<Segment>,
}

/// The window geometry between an iterated grid and the other grid:
/// position `it * stride - pad_begin + k * dilation` of the other grid meets
/// position `it` of the iterated one. (A convolution iterates its output and
/// reads its input; a transposed one iterates its input and writes its output.)
struct Window<'a> {
    iter: &'a [u64],
    other: &'a [u64],
    kernel: &'a [u64],
    strides: &'a [u64],
    dilations: &'a [u64],
    pad_begin: &'a [i64],
}

impl Window<'_> {
    fn geometry(&self) -> Geometry {
        let a = self.kernel.len() - 1;
        let rows = product(&self.iter[..a]);
        let k_outer = product(&self.kernel[..a]);
        let mut outer = Vec::with_capacity(k_outer * rows);
        for ko in 0..k_outer {
            let kk = unravel(ko, &self.kernel[..a]);
            for r in 0..rows {
                let rr = unravel(r, &self.iter[..a]);
                let mut flat = Some(0usize);
                for ax in 0..a {
                    let pos = (rr[ax] as u64 * self.strides[ax] + kk[ax] as u64 * self.dilations[ax]) as i64 - self.pad_begin[ax];
                    flat = flat.filter(|_| pos >= 0 && pos < self.other[ax] as i64).map(|f| f * self.other[ax] as usize + pos as usize);
                }
                outer.push(flat);
            }
        }
        let (s, iw, ow) = (self.strides[a] as i64, self.iter[a] as i64, self.other[a] as i64);
        let last = (0..self.kernel[a])
            .map(|kx| {
                // Iterated position o meets other position o * s + off.
                let off = (kx * self.dilations[a]) as i64 - self.pad_begin[a];
                let lo = ceil_div(-off, s).max(0);
                let hi = ceil_div(ow - off, s).min(iw);
                if lo < hi {
                    Segment { lo: lo as usize, hi: hi as usize, start: (lo * s + off) as usize }
                } else {
                    Segment { lo: 0, hi: 0, start: 0 }
                }
            })
            .collect();
        Geometry { rows, k_outer, outer, last }
    }
}

/// The geometry vectors must all have one entry per spatial axis.
fn check_axes(lens: &[usize]) -> Result<(), String> {
    if lens[0] == 0 || lens.iter().any(|&l| l != lens[0]) {
        return Err(format!("convolution geometry needs one value per spatial axis, found lengths {lens:?}"));
    }
    Ok(())
}

impl Conv {
    fn spatial(&self) -> usize {
        self.kernel.len()
    }

    /// The same convolution over planes seen as one row, when it is
    /// pointwise (1x1 kernel, stride 1, no padding): rows then need no
    /// separate handling.
    fn flattened(&self) -> Option<Conv> {
        let pointwise = self.kernel.iter().all(|&k| k == 1) && self.strides.iter().all(|&s| s == 1) && self.pad_begin.iter().all(|&p| p == 0) && self.input == self.output;
        (pointwise && self.spatial() > 1).then(|| Conv {
            input: vec![self.input.iter().product()],
            kernel: vec![1],
            strides: vec![1],
            dilations: vec![1],
            pad_begin: vec![0],
            output: vec![self.output.iter().product()],
            ..self.clone()
        })
    }

    fn geometry(&self) -> Geometry {
        let pad_begin: Vec<i64> = self.pad_begin.iter().map(|&p| p as i64).collect();
        Window { iter: &self.output, other: &self.input, kernel: &self.kernel, strides: &self.strides, dilations: &self.dilations, pad_begin: &pad_begin }.geometry()
    }
}

/// `ceil(a / b)` for `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

/// Output planes a convolution computes together.
const OC_BLOCK: usize = 4;

/// Accumulator floats kept hot at once (16 KiB, half a typical L1 cache).
const L1_ACC_FLOATS: usize = 4096;

/// For each of the OC_BLOCK planes `q` of `blk` (each `plane` long):
/// `plane_q[at + j] += w[q] * x[j * stride]` for `j < len`.
#[inline]
fn axpy_block(blk: &mut [f32], plane: usize, at: usize, len: usize, w: [f32; OC_BLOCK], x: &[f32], stride: usize) {
    let mut planes = blk.chunks_exact_mut(plane);
    let (Some(p0), Some(p1), Some(p2), Some(p3)) = (planes.next(), planes.next(), planes.next(), planes.next()) else { return };
    let (d0, d1, d2, d3) = (&mut p0[at..at + len], &mut p1[at..at + len], &mut p2[at..at + len], &mut p3[at..at + len]);
    if stride == 1 {
        let x = &x[..len];
        for j in 0..len {
            let xv = x[j];
            d0[j] += w[0] * xv;
            d1[j] += w[1] * xv;
            d2[j] += w[2] * xv;
            d3[j] += w[3] * xv;
        }
    } else {
        for (j, xv) in x.iter().step_by(stride).take(len).enumerate() {
            d0[j] += w[0] * xv;
            d1[j] += w[1] * xv;
            d2[j] += w[2] * xv;
            d3[j] += w[3] * xv;
        }
    }
}

/// Input channels summed in f32 before their sum joins the f64 total:
/// short f32 sums keep the rounding error far below that of one long one.
const CI_FLUSH: usize = 16;

/// Moves the f32 partial sums at `span` of each plane of `blk` into
/// `total` (one `span`-long run per plane), leaving zeros to accumulate the
/// next channels into, or after the `last` channel the rounded totals.
fn flush(blk: &mut [f32], plane: usize, span: Range<usize>, total: &mut [f64], last: bool) {
    for (p, t) in blk.chunks_mut(plane.max(1)).zip(total.chunks_mut(span.len().max(1))) {
        for (v, t) in p[span.clone()].iter_mut().zip(t.iter_mut()) {
            *t += f64::from(*v);
            *v = if last { *t as f32 } else { 0.0 };
        }
    }
}

/// `dst[i] += w * src[i * stride]`.
#[inline]
pub(crate) fn axpy_strided(dst: &mut [f32], w: f32, src: &[f32], stride: usize) {
    if stride == 1 {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d += w * x;
        }
    } else {
        for (d, &x) in dst.iter_mut().zip(src.iter().step_by(stride)) {
            *d += w * x;
        }
    }
}

impl KernelImpl for Conv {
    fn name(&self) -> String {
        format!("f32_conv{}d_direct_generic", self.spatial())
    }

    fn work_items(&self) -> u64 {
        self.batch * self.out_channels
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        check_axes(&[self.kernel.len(), self.input.len(), self.strides.len(), self.dilations.len(), self.pad_begin.len(), self.output.len()])?;
        if self.group == 0 || self.in_channels % self.group != 0 || self.out_channels % self.group != 0 || self.strides.contains(&0) {
            return Err(format!("conv groups or strides are invalid: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        // A pointwise convolution runs as a 1-D one over whole planes.
        let flat = self.flattened();
        let k = flat.as_ref().unwrap_or(self);
        let (c, m, g) = (k.in_channels as usize, k.out_channels as usize, k.group as usize);
        let (cg, mg) = (c / g, m / g);
        let (in_plane, out_plane, ksize) = (product(&k.input), product(&k.output), product(&k.kernel));
        let a = k.spatial() - 1;
        let (iw, ow, kw, s) = (k.input[a] as usize, k.output[a] as usize, k.kernel[a] as usize, k.strides[a] as usize);
        let geo = k.geometry();
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, w) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        let mut next = 2;
        // SAFETY: as above.
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[next].f32() });
        next += usize::from(self.epilogue.bias);
        // SAFETY: as above.
        let residual = self.epilogue.residual.then(|| unsafe { io.inputs[next].f32() });
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: this part owns output planes p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * out_plane..p1 * out_plane) };
        // The f64 totals of one row chunk (see `chunk` below for the bound).
        let mut acc64 = vec![0.0f64; L1_ACC_FLOATS.max(OC_BLOCK * ow)];
        let mut item = p0;
        while item < p1 {
            let (b, oc) = (item / m, item % m);
            let grp = oc / mg;
            // A block of up to OC_BLOCK planes of one sample and group: each
            // input row segment is read once for all of them.
            let nb = OC_BLOCK.min(p1 - item).min(mg - oc % mg);
            let blk = &mut y[(item - p0) * out_plane..][..nb * out_plane];
            blk.fill(0.0);
            // A few rows at a time, so the accumulated rows stay in the L1
            // cache while every tap of every input channel adds into them.
            let chunk = (L1_ACC_FLOATS / (nb * ow).max(1)).clamp(1, geo.rows.max(1));
            for r0 in (0..geo.rows).step_by(chunk) {
                let rows = r0..(r0 + chunk).min(geo.rows);
                let span = r0 * ow..rows.end * ow;
                let total = &mut acc64[..nb * span.len()];
                for (q, t) in total.chunks_mut(span.len().max(1)).enumerate() {
                    t.fill(bias.map_or(0.0, |bv| f64::from(bv[oc + q])));
                }
                for ci in 0..cg {
                    let xp = &x[(b * c + grp * cg + ci) * in_plane..][..in_plane];
                    for ko in 0..geo.k_outer {
                        for (kx, seg) in geo.last.iter().enumerate().filter(|(_, seg)| seg.lo < seg.hi) {
                            let tap = ko * kw + kx;
                            let wv: [f32; OC_BLOCK] = std::array::from_fn(|q| if q < nb { w[((oc + q) * cg + ci) * ksize + tap] } else { 0.0 });
                            for r in rows.clone() {
                                let Some(src) = geo.outer[ko * geo.rows + r] else { continue };
                                let x_seg = &xp[src * iw + seg.start..(src + 1) * iw];
                                let (at, len) = (r * ow + seg.lo, seg.hi - seg.lo);
                                if nb == OC_BLOCK {
                                    axpy_block(blk, out_plane, at, len, wv, x_seg, s);
                                } else {
                                    for (q, &wq) in wv.iter().enumerate().take(nb) {
                                        axpy_strided(&mut blk[q * out_plane + at..][..len], wq, x_seg, s);
                                    }
                                }
                            }
                        }
                    }
                    if (ci + 1) % CI_FLUSH == 0 || ci + 1 == cg {
                        flush(blk, out_plane, span.clone(), total, ci + 1 == cg);
                    }
                }
                if cg == 0 {
                    flush(blk, out_plane, span.clone(), total, true);
                }
            }
            for (q, plane) in blk.chunks_mut(out_plane.max(1)).enumerate() {
                let res = residual.map(|rv| &rv[(item + q) * out_plane..][..out_plane]);
                finish(plane, res, self.epilogue);
            }
            item += nb;
        }
    }
}

/// Transposed N-d convolution: X `[N, C, in...]`, W `[C, M/group, k...]`
/// (packed by [`pack_conv_weights`]), then B `[M]` if `epilogue.bias`, then
/// the residual if `epilogue.residual`; Y `[N, M, out...]`. Each input
/// element scatters `x * w` into the output plane; work items are output
/// planes, so a part scatters only into planes it owns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvTranspose {
    pub batch: u64,
    pub in_channels: u64,
    pub out_channels: u64,
    pub group: u64,
    pub input: Vec<u64>,
    pub kernel: Vec<u64>,
    pub strides: Vec<u64>,
    pub dilations: Vec<u64>,
    /// Padding before each output axis (negative: the output extends beyond the full result).
    pub pad_begin: Vec<i64>,
    pub output: Vec<u64>,
    pub epilogue: Epilogue,
}

impl KernelImpl for ConvTranspose {
    fn name(&self) -> String {
        format!("f32_convtranspose{}d_direct_generic", self.kernel.len())
    }

    fn work_items(&self) -> u64 {
        self.batch * self.out_channels
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        check_axes(&[self.kernel.len(), self.input.len(), self.strides.len(), self.dilations.len(), self.pad_begin.len(), self.output.len()])?;
        if self.group == 0 || self.in_channels % self.group != 0 || self.out_channels % self.group != 0 || self.strides.contains(&0) {
            return Err(format!("conv transpose groups or strides are invalid: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (c, m, g) = (self.in_channels as usize, self.out_channels as usize, self.group as usize);
        let (cg, mg) = (c / g, m / g);
        let (in_plane, out_plane, ksize) = (product(&self.input), product(&self.output), product(&self.kernel));
        let a = self.kernel.len() - 1;
        let (iw, ow, kw, s) = (self.input[a] as usize, self.output[a] as usize, self.kernel[a] as usize, self.strides[a] as usize);
        let win = Window { iter: &self.input, other: &self.output, kernel: &self.kernel, strides: &self.strides, dilations: &self.dilations, pad_begin: &self.pad_begin };
        let geo = win.geometry();
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, w) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        // SAFETY: as above.
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        // SAFETY: as above.
        let residual = self.epilogue.residual.then(|| unsafe { io.inputs[2 + usize::from(self.epilogue.bias)].f32() });
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: this part owns output planes p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * out_plane..p1 * out_plane) };
        for (item, acc) in (p0..p1).zip(y.chunks_mut(out_plane.max(1))) {
            let (b, oc) = (item / m, item % m);
            let (grp, mo) = (oc / mg, oc % mg);
            acc.fill(bias.map_or(0.0, |bv| bv[oc]));
            for ci in 0..cg {
                let ic = grp * cg + ci;
                let xp = &x[(b * c + ic) * in_plane..][..in_plane];
                let wk = &w[(ic * mg + mo) * ksize..][..ksize];
                for ko in 0..geo.k_outer {
                    for r in 0..geo.rows {
                        let Some(dst) = geo.outer[ko * geo.rows + r] else { continue };
                        let x_row = &xp[r * iw..][..iw];
                        let y_row = &mut acc[dst * ow..][..ow];
                        for (&wv, seg) in wk[ko * kw..][..kw].iter().zip(&geo.last) {
                            for (t, &xv) in x_row[seg.lo..seg.hi].iter().enumerate() {
                                y_row[seg.start + t * s] += wv * xv;
                            }
                        }
                    }
                }
            }
            let res = residual.map(|rv| &rv[item * out_plane..][..out_plane]);
            finish(acc, res, self.epilogue);
        }
    }
}

/// Adds the residual (if any) and applies the activation in place.
pub(crate) fn finish(acc: &mut [f32], residual: Option<&[f32]>, e: Epilogue) {
    if let Some(r) = residual {
        acc.iter_mut().zip(r).for_each(|(v, &r)| *v += r);
    }
    if e.activation != crate::Activation::None {
        acc.iter_mut().for_each(|v| *v = e.activation.apply(*v));
    }
}

/// Test helpers shared by the nn kernels' tests.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::{Io, KernelImpl, RawBuf};

    /// The same 2-D convolution as the portable kernel's geometry (the
    /// reference the SIMD convolutions are checked against).
    pub trait Portable {
        fn portable(&self) -> super::Conv;
    }

    macro_rules! portable_2d {
        ($($t:ty),*) => {$(
            impl Portable for $t {
                fn portable(&self) -> super::Conv {
                    super::Conv {
                        batch: self.batch,
                        in_channels: self.in_channels,
                        out_channels: self.out_channels,
                        group: self.group,
                        input: self.input.to_vec(),
                        kernel: self.kernel.to_vec(),
                        strides: self.strides.to_vec(),
                        dilations: self.dilations.to_vec(),
                        pad_begin: self.pad_begin.to_vec(),
                        output: self.output.to_vec(),
                        epilogue: self.epilogue,
                    }
                }
            }
        )*};
    }
    portable_2d!(crate::conv_gemm::ConvGemm, crate::conv_direct::ConvDirect, crate::conv_grouped::ConvGrouped);

    /// A small deterministic generator of values in [-1, 1).
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }

        pub fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.next()).collect()
        }

        pub fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// The fastest of 7 runs of `k` as one part over `inputs`, in µs (the
    /// buffers and scratch made once): the kernels' ignored timing tests.
    pub fn time_kernel(k: &impl KernelImpl, inputs: &mut [Vec<f32>], out_len: usize) -> f64 {
        let mut out = vec![0.0f32; out_len];
        let ins: Vec<RawBuf> = inputs.iter_mut().map(|v| RawBuf::from_f32(v)).collect();
        let outs = [RawBuf::from_f32(&mut out)];
        let io = Io { inputs: &ins, outputs: &outs };
        let mut scratch = vec![0u8; k.scratch_bytes(k.work_items())];
        // KANN_TIME_REPS=N runs each kernel N times (for a profiler);
        // KANN_TIME_HALF runs the first half of its work items (one of two clusters' part);
        // KANN_TIME_MEDIAN returns the median run instead of the best.
        let reps = std::env::var("KANN_TIME_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
        let items = if std::env::var("KANN_TIME_HALF").is_ok() { k.work_items().div_ceil(2) } else { k.work_items() };
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let t = std::time::Instant::now();
                // SAFETY: the buffers live through the call; one part at a time.
                unsafe { k.run(&io, 0..items, &mut scratch) };
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        // KANN_TIME_MEDIAN: the median instead of the best run.
        if std::env::var("KANN_TIME_MEDIAN").is_ok() {
            times[times.len() / 2]
        } else {
            times[0]
        }
    }

    /// Runs `k` as `n_parts` separate parts over NaN-filled outputs of
    /// `out_lens` f32 each and returns the outputs.
    pub fn run_parts(k: &impl KernelImpl, inputs: &[Vec<f32>], out_lens: &[usize], n_parts: u64) -> Vec<Vec<f32>> {
        k.check(inputs.len(), out_lens.len()).unwrap();
        let mut ins: Vec<Vec<f32>> = inputs.to_vec();
        let mut outs: Vec<Vec<f32>> = out_lens.iter().map(|&n| vec![f32::NAN; n]).collect();
        let in_bufs: Vec<RawBuf> = ins.iter_mut().map(|v| RawBuf::from_f32(v)).collect();
        let out_bufs: Vec<RawBuf> = outs.iter_mut().map(|v| RawBuf::from_f32(v)).collect();
        let items = k.work_items();
        let io = Io { inputs: &in_bufs, outputs: &out_bufs };
        for p in 0..n_parts {
            let part = items * p / n_parts..items * (p + 1) / n_parts;
            let mut scratch = vec![0u8; k.scratch_bytes(part.end - part.start)];
            // SAFETY: the buffers live through the call; parts run one after another.
            unsafe { k.run(&io, part, &mut scratch) };
        }
        outs
    }

    /// Asserts closeness with a relative-absolute tolerance.
    pub fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let ok = (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_nan() && w.is_nan()) || g == w;
            assert!(ok, "element {i}: got {g}, want {w}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::Activation;

    /// Naive convolution straight from the definition.
    fn naive(k: &Conv, x: &[f32], w: &[f32], b: Option<&[f32]>, res: Option<&[f32]>) -> Vec<f32> {
        let (c, m, g) = (k.in_channels as usize, k.out_channels as usize, k.group as usize);
        let (cg, mg) = (c / g, m / g);
        let (in_plane, out_plane, ksize) = (product(&k.input), product(&k.output), product(&k.kernel));
        let mut y = vec![0.0; k.batch as usize * m * out_plane];
        for (i, v) in y.iter_mut().enumerate() {
            let (bo, o) = (i / out_plane, i % out_plane);
            let (bb, oc) = (bo / m, bo % m);
            let oi = unravel(o, &k.output);
            let mut acc = b.map_or(0.0, |b| b[oc]);
            for ci in 0..cg {
                for kf in 0..ksize {
                    let ki = unravel(kf, &k.kernel);
                    let mut flat = 0i64;
                    let mut inside = true;
                    for a in 0..ki.len() {
                        let p = (oi[a] as u64 * k.strides[a] + ki[a] as u64 * k.dilations[a]) as i64 - k.pad_begin[a] as i64;
                        inside &= p >= 0 && p < k.input[a] as i64;
                        flat = flat * k.input[a] as i64 + p;
                    }
                    if inside {
                        let xc = bb * c + (oc / mg) * cg + ci;
                        acc += w[(oc * cg + ci) * ksize + kf] * x[xc * in_plane + flat as usize];
                    }
                }
            }
            *v = k.epilogue.activation.apply(acc + res.map_or(0.0, |r| r[i]));
        }
        y
    }

    fn random_case(rng: &mut Rng) {
        let nsp = 1 + rng.below(3) as usize;
        let group = 1 + rng.below(3);
        let (cg, mg) = (1 + rng.below(3), 1 + rng.below(9));
        let mut k = Conv {
            batch: 1 + rng.below(2),
            in_channels: cg * group,
            out_channels: mg * group,
            group,
            input: vec![],
            kernel: vec![],
            strides: vec![],
            dilations: vec![],
            pad_begin: vec![],
            output: vec![],
            epilogue: Epilogue { bias: rng.below(2) == 1, residual: rng.below(2) == 1, activation: Activation::Relu },
        };
        for _ in 0..nsp {
            let (kk, s, d, pb, pe) = (1 + rng.below(3), 1 + rng.below(2), 1 + rng.below(2), rng.below(2), rng.below(3));
            let eff = (kk - 1) * d + 1;
            let inp = eff.saturating_sub(pb + pe) + rng.below(5);
            let total = inp + pb + pe;
            k.input.push(inp);
            k.kernel.push(kk);
            k.strides.push(s);
            k.dilations.push(d);
            k.pad_begin.push(pb);
            k.output.push((total - eff) / s + 1);
        }
        let x = rng.vec(k.batch as usize * k.in_channels as usize * product(&k.input));
        let w = rng.vec(k.out_channels as usize * cg as usize * product(&k.kernel));
        let out_len = k.batch as usize * k.out_channels as usize * product(&k.output);
        let b = rng.vec(k.out_channels as usize);
        let r = rng.vec(out_len);
        let want = naive(&k, &x, &w, k.epilogue.bias.then_some(&b[..]), k.epilogue.residual.then_some(&r[..]));
        let mut inputs = vec![x, pack_conv_weights(&w)];
        if k.epilogue.bias {
            inputs.push(b);
        }
        if k.epilogue.residual {
            inputs.push(r);
        }
        for parts in [1, 2, 3] {
            let got = run_parts(&k, &inputs, &[out_len], parts);
            assert_close(&got[0], &want, 1e-5);
        }
    }

    #[test]
    fn matches_naive_on_random_geometries() {
        let mut rng = Rng(7);
        for _ in 0..300 {
            random_case(&mut rng);
        }
    }

    #[test]
    fn transposed_matches_naive_scatter() {
        let mut rng = Rng(13);
        for _ in 0..200 {
            let nsp = 1 + rng.below(3) as usize;
            let group = 1 + rng.below(2);
            let (cg, mg) = (1 + rng.below(3), 1 + rng.below(3));
            let mut k = ConvTranspose {
                batch: 1 + rng.below(2),
                in_channels: cg * group,
                out_channels: mg * group,
                group,
                input: vec![],
                kernel: vec![],
                strides: vec![],
                dilations: vec![],
                pad_begin: vec![],
                output: vec![],
                epilogue: Epilogue { bias: rng.below(2) == 1, residual: false, activation: Activation::None },
            };
            for _ in 0..nsp {
                let (i, kk, s, d) = (1 + rng.below(4), 1 + rng.below(3), 1 + rng.below(3), 1 + rng.below(2));
                let pb = rng.below(3) as i64 - 1;
                let full = (s * (i - 1) + (kk - 1) * d + 1) as i64;
                let out = (full - pb - rng.below(2) as i64).max(1);
                k.input.push(i);
                k.kernel.push(kk);
                k.strides.push(s);
                k.dilations.push(d);
                k.pad_begin.push(pb);
                k.output.push(out as u64);
            }
            let x = rng.vec(k.batch as usize * k.in_channels as usize * product(&k.input));
            let w = rng.vec(k.in_channels as usize * mg as usize * product(&k.kernel));
            let b = rng.vec(k.out_channels as usize);
            let (in_plane, out_plane, ksize) = (product(&k.input), product(&k.output), product(&k.kernel));
            let mut want = vec![0.0; k.batch as usize * k.out_channels as usize * out_plane];
            for (pl, yp) in want.chunks_mut(out_plane).enumerate() {
                let (bb, oc) = (pl / k.out_channels as usize, pl % k.out_channels as usize);
                let (grp, mo) = (oc / mg as usize, oc % mg as usize);
                yp.fill(if k.epilogue.bias { b[oc] } else { 0.0 });
                for ci in 0..cg as usize {
                    let ic = grp * cg as usize + ci;
                    for i in 0..in_plane {
                        let ii = unravel(i, &k.input);
                        for kf in 0..ksize {
                            let ki = unravel(kf, &k.kernel);
                            let mut flat = Some(0usize);
                            for a in 0..nsp {
                                let p = (ii[a] as u64 * k.strides[a] + ki[a] as u64 * k.dilations[a]) as i64 - k.pad_begin[a];
                                flat = flat.filter(|_| p >= 0 && p < k.output[a] as i64).map(|f| f * k.output[a] as usize + p as usize);
                            }
                            if let Some(f) = flat {
                                yp[f] += x[(bb * k.in_channels as usize + ic) * in_plane + i] * w[(ic * mg as usize + mo) * ksize + kf];
                            }
                        }
                    }
                }
            }
            let mut inputs = vec![x, pack_conv_weights(&w)];
            if k.epilogue.bias {
                inputs.push(b);
            }
            for parts in [1, 3] {
                assert_close(&run_parts(&k, &inputs, &[want.len()], parts)[0], &want, 1e-5);
            }
        }
    }

    #[test]
    fn pointwise_matches_naive() {
        let mut rng = Rng(17);
        for nsp in [1usize, 2, 3] {
            for group in [1u64, 2] {
                let input: Vec<u64> = (0..nsp).map(|_| 1 + rng.below(4)).collect();
                let k = Conv {
                    batch: 2,
                    in_channels: 3 * group,
                    out_channels: 5 * group,
                    group,
                    input: input.clone(),
                    kernel: vec![1; nsp],
                    strides: vec![1; nsp],
                    dilations: vec![1 + rng.below(2); nsp],
                    pad_begin: vec![0; nsp],
                    output: input,
                    epilogue: Epilogue { bias: true, residual: true, activation: Activation::Relu },
                };
                let x = rng.vec(2 * 3 * group as usize * product(&k.input));
                let w = rng.vec(5 * 3 * group as usize);
                let out_len = 2 * 5 * group as usize * product(&k.output);
                let (b, r) = (rng.vec(5 * group as usize), rng.vec(out_len));
                let want = naive(&k, &x, &w, Some(&b), Some(&r));
                for parts in [1, 3] {
                    let got = run_parts(&k, &[x.clone(), w.clone(), b.clone(), r.clone()], &[out_len], parts);
                    assert_close(&got[0], &want, 1e-5);
                }
            }
        }
    }

    #[test]
    fn depthwise_with_padding() {
        let k = Conv {
            batch: 1,
            in_channels: 2,
            out_channels: 2,
            group: 2,
            input: vec![3, 3],
            kernel: vec![3, 3],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            pad_begin: vec![1, 1],
            output: vec![3, 3],
            epilogue: Epilogue::default(),
        };
        let x: Vec<f32> = (0..18).map(|v| v as f32).collect();
        let w = vec![1.0; 18];
        let got = run_parts(&k, &[x, w], &[18], 2);
        // The centre sums the whole first plane 0..9 = 36; the second plane's centre sums 9..18 = 117.
        assert_eq!(got[0][4], 36.0);
        assert_eq!(got[0][13], 117.0);
        assert_eq!(got[0][0], 0.0 + 1.0 + 3.0 + 4.0);
    }
}

#[cfg(test)]
mod speed {
    use super::testutil::*;
    use super::*;

    /// VGG-19 and ResNet-50 layers, single-threaded: (channels, extent).
    /// Run with `--ignored --nocapture`.
    #[test]
    #[ignore]
    fn vgg_layers() {
        for (ch, hw, kk) in [(64u64, 224u64, 3u64), (256, 56, 3), (512, 14, 3), (256, 56, 1), (2048, 7, 1)] {
            let k = Conv {
                batch: 1,
                in_channels: ch,
                out_channels: ch,
                group: 1,
                input: vec![hw, hw],
                kernel: vec![kk, kk],
                strides: vec![1, 1],
                dilations: vec![1, 1],
                pad_begin: vec![kk / 2, kk / 2],
                output: vec![hw, hw],
                epilogue: Epilogue { bias: true, residual: false, activation: crate::Activation::Relu },
            };
            let (c, p, taps) = (ch as usize, (hw * hw) as usize, (kk * kk) as usize);
            let mut rng = Rng(1);
            let inputs = [rng.vec(c * p), rng.vec(c * c * taps), rng.vec(c)];
            let t = std::time::Instant::now();
            let y = run_parts(&k, &inputs, &[c * p], 1);
            let s = t.elapsed().as_secs_f64();
            // Accuracy of output plane 0 before the activation against an f64 sum.
            let (x, w, bias) = (&inputs[0], &inputs[1], &inputs[2]);
            let (hw_, kk_) = (hw as i64, kk as i64);
            let mut worst = 0.0f64;
            for (o, &got) in y[0].iter().enumerate().take(p) {
                let (oy, ox) = ((o / hw as usize) as i64, (o % hw as usize) as i64);
                let mut acc = f64::from(bias[0]);
                for ci in 0..c {
                    for t in 0..taps as i64 {
                        let (iy, ix) = (oy + t / kk_ - kk_ / 2, ox + t % kk_ - kk_ / 2);
                        if iy >= 0 && iy < hw_ && ix >= 0 && ix < hw_ {
                            acc += f64::from(w[ci * taps + t as usize]) * f64::from(x[ci * p + (iy * hw_ + ix) as usize]);
                        }
                    }
                }
                if acc > 0.0 {
                    worst = worst.max((f64::from(got) - acc).abs() / acc.abs().max(1.0));
                }
            }
            println!("  max error relative to max(|y|, 1): {worst:.2e}");
            println!("{ch}x{hw} {kk}x{kk}: {:.3} s, {:.2} GFLOP/s", s, 2.0 * (c * c * taps * p) as f64 / s / 1e9);
        }
    }
}
