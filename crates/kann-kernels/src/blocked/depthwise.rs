//! Depthwise 2-D f32 convolution on channel-blocked activations (NCHW8c):
//! X `[N][C/8][H][W][8]`, Y `[N][C/8][oh][ow][8]`, channel multiplier 1.
//!
//! A block's 8 channels are already the 8 lanes of a vector, pixel by
//! pixel: what `depthwise/blocked8.rs` gets by transposing NCHW planes into
//! a padded channel-minor scratch plane and back, this kernel reads and
//! writes in place (see `blocked/depthwise/avx2.rs`), with no scratch at all.
//!
//! Work items are the channel blocks of every image (`N · C/8`); item `i`
//! reads X's block `i`, writes Y's block `i` (so a part's output is
//! contiguous), and uses the weights and bias of channel block `i % (C/8)`.
//!
//! Inputs: X, W packed by [`pack_blocked_depthwise_weights`], then B `[C]`
//! if `epilogue.bias`, then the residual (Y's shape and layout) if
//! `epilogue.residual`. `y = act(bias + Σ w·x + residual)`.

#[cfg(target_arch = "x86_64")]
mod avx2;

use crate::blocked::BLOCK;
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A depthwise convolution on NCHW8c tensors; geometry as
/// [`crate::depthwise::DepthwiseConv`] with `in == out == channels`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockedDepthwise {
    pub batch: u64,
    /// A multiple of [`BLOCK`] (in and out: multiplier 1).
    pub channels: u64,
    /// `[h, w]`.
    pub input: [u64; 2],
    pub output: [u64; 2],
    pub kernel: [u64; 2],
    pub strides: [u64; 2],
    pub dilations: [u64; 2],
    /// The padding before each axis; the padding after is implied by `output`.
    pub pad_begin: [u64; 2],
    pub epilogue: Epilogue,
    pub isa: Isa,
}

/// Packs W `[C, 1, kh, kw]` (ONNX) as `[C/8][kh·kw][8]`: a block's taps,
/// each one vector of its 8 channels' weights.
pub fn pack_blocked_depthwise_weights(w: &[f32], channels: usize, taps: usize) -> Vec<f32> {
    assert!(channels % BLOCK == 0 && w.len() >= channels * taps, "blocked depthwise weights: {channels} channels × {taps} taps");
    let mut out = vec![0.0; channels * taps];
    for (ch, taps_of) in w.chunks_exact(taps.max(1)).take(channels).enumerate() {
        for (t, &v) in taps_of.iter().enumerate() {
            out[((ch / BLOCK) * taps + t) * BLOCK + ch % BLOCK] = v;
        }
    }
    out
}

/// The geometry as usize pairs: input, output, kernel, strides, dilations, padding.
type Dims = [[usize; 2]; 6];

/// One work item's inputs: its block of X `[ih][iw][8]`, of the weights
/// `[kh·kw][8]`, of the bias `[8]` and of the residual `[oh][ow][8]`.
struct Item<'a> {
    x: &'a [f32],
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    residual: Option<&'a [f32]>,
}

impl BlockedDepthwise {
    fn dims(&self) -> Dims {
        let u = |v: [u64; 2]| v.map(|e| e as usize);
        [u(self.input), u(self.output), u(self.kernel), u(self.strides), u(self.dilations), u(self.pad_begin)]
    }

    /// Whether the items run the AVX2 path: an AVX2 or AVX-512 kernel (the
    /// latter runs the same 8-lane code) on a CPU with AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    fn fast(&self) -> bool {
        matches!(self.isa, Isa::Avx2 | Isa::Avx512) && Isa::Avx2.available()
    }

    /// One item's output block `y` (`[oh][ow][8]`), on the AVX2 path where it runs.
    fn item(&self, it: &Item, y: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.fast() {
            // SAFETY: the CPU has AVX2 and FMA (checked by fast).
            return unsafe { avx2::item(self, it, y) };
        }
        portable_item(self, it, y)
    }
}

/// The portable twin: one item's output block `y` (`[oh][ow][8]`), every
/// tap bounds-checked.
fn portable_item(k: &BlockedDepthwise, it: &Item, y: &mut [f32]) {
    let [[ih, iw], [oh, ow], [kh, kw], [sh, sw], [dh, dw], [ph, pw]] = k.dims();
    let inside = |o: usize, s: usize, t: usize, d: usize, p: usize, n: usize| (o * s + t * d).checked_sub(p).filter(|&i| i < n);
    for oy in 0..oh {
        for ox in 0..ow {
            let mut acc = [0.0f32; BLOCK];
            if let Some(b) = it.bias {
                acc.copy_from_slice(&b[..BLOCK]);
            }
            for ky in 0..kh {
                let Some(iy) = inside(oy, sh, ky, dh, ph, ih) else { continue };
                for kx in 0..kw {
                    let Some(ix) = inside(ox, sw, kx, dw, pw, iw) else { continue };
                    let xv = &it.x[(iy * iw + ix) * BLOCK..][..BLOCK];
                    let wv = &it.w[(ky * kw + kx) * BLOCK..][..BLOCK];
                    for ((a, &w), &x) in acc.iter_mut().zip(wv).zip(xv) {
                        *a += w * x;
                    }
                }
            }
            let at = (oy * ow + ox) * BLOCK;
            if let Some(r) = it.residual {
                for (a, &rv) in acc.iter_mut().zip(&r[at..at + BLOCK]) {
                    *a += rv;
                }
            }
            y[at..at + BLOCK].copy_from_slice(&acc);
        }
        crate::epilogue::activate_in_place(k.epilogue.activation, &mut y[oy * ow * BLOCK..][..ow * BLOCK]);
    }
}

impl KernelImpl for BlockedDepthwise {
    fn name(&self) -> String {
        format!("f32_dwconv2d_nchw8c_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.batch * (self.channels / BLOCK as u64)
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        if self.channels == 0 || self.channels % BLOCK as u64 != 0 || self.kernel.contains(&0) || self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err(format!("blocked depthwise conv channels (a multiple of {BLOCK}), kernel, strides or dilations are invalid: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let [[ih, iw], [oh, ow], [kh, kw], ..] = self.dims();
        let blocks = self.channels as usize / BLOCK;
        let (in_block, out_block, taps) = (ih * iw * BLOCK, oh * ow * BLOCK, kh * kw);
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, w) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        // SAFETY: as above.
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        let r_at = 2 + usize::from(self.epilogue.bias);
        // SAFETY: as above.
        let residual = self.epilogue.residual.then(|| unsafe { io.inputs[r_at].f32() });
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: this part owns output blocks p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * out_block..p1 * out_block) };
        if out_block == 0 {
            return;
        }
        for (i, y_block) in (p0..p1).zip(y.chunks_exact_mut(out_block)) {
            let c = i % blocks;
            let it = Item {
                x: &x[i * in_block..][..in_block],
                w: &w[c * taps * BLOCK..][..taps * BLOCK],
                bias: bias.map(|b| &b[c * BLOCK..][..BLOCK]),
                residual: residual.map(|r| &r[i * out_block..][..out_block]),
            };
            self.item(&it, y_block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocked::testutil::per_image;
    use crate::blocked::{to_blocked, to_planar};
    use crate::conv::testutil::*;
    use crate::conv::{pack_conv_weights, Conv};
    use crate::depthwise::DepthwiseConv;
    use crate::Activation;


    /// The portable grouped convolution with the same geometry (NCHW).
    fn as_conv(k: &BlockedDepthwise) -> Conv {
        Conv {
            batch: k.batch,
            in_channels: k.channels,
            out_channels: k.channels,
            group: k.channels,
            input: k.input.to_vec(),
            kernel: k.kernel.to_vec(),
            strides: k.strides.to_vec(),
            dilations: k.dilations.to_vec(),
            pad_begin: k.pad_begin.to_vec(),
            output: k.output.to_vec(),
            epilogue: k.epilogue,
        }
    }

    /// One axis: input, kernel, stride, dilation, padding before, output;
    /// kernel 1..7, stride 1..3, dilation 1..2, any padding below the
    /// kernel, inputs up to `extra` past the kernel's reach.
    fn random_axis(rng: &mut Rng, extra: u64) -> [u64; 6] {
        let (k, s, d) = (1 + rng.below(7), 1 + rng.below(3), 1 + rng.below(2));
        let (pb, pe) = (rng.below(k), rng.below(k));
        let eff = (k - 1) * d + 1;
        let inp = eff.saturating_sub(pb + pe).max(1) + rng.below(extra + 1);
        [inp, k, s, d, pb, (inp + pb + pe - eff) / s + 1]
    }

    fn geometry(batch: u64, channels: u64, h: [u64; 6], w: [u64; 6], epilogue: Epilogue) -> BlockedDepthwise {
        BlockedDepthwise {
            batch,
            channels,
            input: [h[0], w[0]],
            kernel: [h[1], w[1]],
            strides: [h[2], w[2]],
            dilations: [h[3], w[3]],
            pad_begin: [h[4], w[4]],
            output: [h[5], w[5]],
            epilogue,
            isa: Isa::Generic,
        }
    }

    /// NCHW inputs of `k` (X, W `[C,1,kh,kw]`, bias, residual) and Y's length.
    fn planar_inputs(rng: &mut Rng, k: &BlockedDepthwise) -> (Vec<Vec<f32>>, usize) {
        let c = k.channels as usize;
        let (n, ihw, ohw, taps) = (k.batch as usize, (k.input[0] * k.input[1]) as usize, (k.output[0] * k.output[1]) as usize, (k.kernel[0] * k.kernel[1]) as usize);
        let mut v = vec![rng.vec(n * c * ihw), rng.vec(c * taps)];
        if k.epilogue.bias {
            v.push(rng.vec(c));
        }
        if k.epilogue.residual {
            v.push(rng.vec(n * c * ohw));
        }
        (v, n * c * ohw)
    }

    /// The same inputs for the blocked kernel: X and the residual blocked, W packed.
    fn blocked_inputs(k: &BlockedDepthwise, planar: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let c = k.channels as usize;
        let (ihw, ohw, taps) = ((k.input[0] * k.input[1]) as usize, (k.output[0] * k.output[1]) as usize, (k.kernel[0] * k.kernel[1]) as usize);
        let mut v = planar.to_vec();
        v[0] = per_image(&planar[0], c, ihw, to_blocked);
        v[1] = pack_blocked_depthwise_weights(&planar[1], c, taps);
        if k.epilogue.residual {
            let last = v.len() - 1;
            v[last] = per_image(&planar[last], c, ohw, to_blocked);
        }
        v
    }

    /// `k` with every ISA, in 1-3 parts, against the portable conv: an
    /// AVX-512 kernel runs the AVX2 path on a CPU without AVX-512, any runs
    /// the portable one on a CPU without AVX2.
    fn check_against_conv(k: &BlockedDepthwise, rng: &mut Rng) {
        let (ins, out_len) = planar_inputs(rng, k);
        let mut conv_ins = ins.clone();
        conv_ins[1] = pack_conv_weights(&ins[1]);
        let want = run_parts(&as_conv(k), &conv_ins, &[out_len], 1);
        let blocked = blocked_inputs(k, &ins);
        let (c, ohw) = (k.channels as usize, (k.output[0] * k.output[1]) as usize);
        for isa in Isa::ALL {
            let k = BlockedDepthwise { isa, ..k.clone() };
            for parts in [1, 2, 3] {
                let got = run_parts(&k, &blocked, &[out_len], parts);
                assert_close(&per_image(&got[0], c, ohw, to_planar), &want[0], 1e-5);
            }
        }
    }

    #[test]
    fn matches_portable_conv_on_random_geometries() {
        // Planes 1×1 to about 40×40, channels 8-40, batch 1-2, every
        // activation, with and without bias and residual.
        let mut rng = Rng(31);
        for _ in 0..25 {
            for act in crate::packed::tests::all_activations() {
                let c = [8, 16, 24, 40][rng.below(4) as usize];
                let (h, w) = (random_axis(&mut rng, 20), random_axis(&mut rng, 36));
                let e = Epilogue { bias: rng.below(2) == 1, residual: rng.below(2) == 1, activation: act };
                check_against_conv(&geometry(1 + rng.below(2), c, h, w, e), &mut rng);
            }
        }
    }

    #[test]
    fn common_kernels_every_row_width() {
        // The specialised rows (3 and 5 wide at stride 1, 3 wide at stride
        // 2) and the generic ones beside them: row widths 1-40 (every row
        // block size, overlapping last blocks, no interior), any padding.
        let mut rng = Rng(37);
        for (i, (kw, sw)) in [(3u64, 1u64), (5, 1), (3, 2), (5, 2), (7, 1)].into_iter().enumerate() {
            for ow in 1..=40u64 {
                let (pb, pe) = (rng.below(kw), rng.below(kw));
                let iw = ((ow - 1) * sw + kw).saturating_sub(pb + pe).max(1);
                let w = [iw, kw, sw, 1, pb, (iw + pb + pe - kw) / sw + 1];
                let h = random_axis(&mut rng, 6);
                let e = Epilogue { bias: ow % 2 == 0, residual: ow % 3 == 0, activation: crate::blocked::testutil::activation(ow as usize + i) };
                check_against_conv(&geometry(1, 8 * (1 + rng.below(2)), h, w, e), &mut rng);
            }
        }
    }

    #[test]
    fn large_mobilenet_planes() {
        // 112×112 3×3 at strides 1 and 2 with padding 1, and a 5×5 56×56 one.
        let mut rng = Rng(41);
        for (hw, kk, s, act) in [(112u64, 3u64, 1u64, Activation::Clip { min: 0.0, max: 6.0 }), (112, 3, 2, Activation::Silu), (56, 5, 1, Activation::Relu)] {
            let p = kk / 2;
            let a = [hw, kk, s, 1, p, (hw + 2 * p - kk) / s + 1];
            let e = Epilogue { bias: true, residual: s == 1, activation: act };
            check_against_conv(&geometry(2, 16, a, a, e), &mut rng);
        }
    }

    #[test]
    fn packs_weights_per_block_and_tap() {
        // 16 channels of 2 taps: w[c][t] = 10c + t.
        let w: Vec<f32> = (0..16).flat_map(|c| (0..2).map(move |t| (10 * c + t) as f32)).collect();
        let p = pack_blocked_depthwise_weights(&w, 16, 2);
        assert_eq!(&p[..8], &[0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]);
        assert_eq!(&p[8..16], &[1.0, 11.0, 21.0, 31.0, 41.0, 51.0, 61.0, 71.0]);
        assert_eq!(p[16], 80.0);
        assert_eq!(p[31], 151.0);
    }

    #[test]
    fn names_and_check() {
        let a = [5, 3, 1, 1, 1, 5];
        let k = BlockedDepthwise { isa: Isa::Avx2, ..geometry(1, 16, a, a, Epilogue::default()) };
        assert_eq!(k.name(), "f32_dwconv2d_nchw8c_avx2");
        assert_eq!(k.work_items(), 2);
        assert!(k.check(2, 1).is_ok());
        assert!(k.check(3, 1).is_err());
        assert!(BlockedDepthwise { channels: 12, ..k.clone() }.check(2, 1).is_err());
        assert!(BlockedDepthwise { strides: [0, 1], ..k }.check(2, 1).is_err());
    }

    /// Median of `runs` alternating timings of two closures, in µs.
    fn alternate(runs: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = std::time::Instant::now();
            a();
            ta.push(t.elapsed().as_secs_f64() * 1e6);
            let t = std::time::Instant::now();
            b();
            tb.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        (median(ta), median(tb))
    }

    /// This kernel against the NCHW [`DepthwiseConv`] (which transposes) on
    /// the MobileNetV2 and EfficientNet shapes, bias and ReLU6, one part
    /// (`cargo test --release -p kann-kernels --lib blocked_dw_timing -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn blocked_dw_timing() {
        use crate::buf::RawBuf;
        let isa = [Isa::Avx512, Isa::Avx2, Isa::Generic].into_iter().find(|i| i.available()).unwrap();
        println!("shape (c, hw, k, s)     nchw8c µs   nchw µs   nchw/nchw8c  ({})", isa.name());
        let shapes = [(32u64, 112u64, 3u64, 1u64), (96, 112, 3, 2), (144, 56, 3, 1), (144, 56, 3, 2), (192, 28, 3, 1), (192, 28, 3, 2), (384, 14, 3, 1), (576, 14, 3, 1), (576, 14, 3, 2), (960, 7, 3, 1), (240, 28, 5, 1), (672, 14, 5, 1)];
        for (c, hw, kk, s) in shapes {
            let p = kk / 2;
            let a = [hw, kk, s, 1, p, (hw + 2 * p - kk) / s + 1];
            let e = Epilogue { bias: true, residual: false, activation: Activation::Clip { min: 0.0, max: 6.0 } };
            let k = BlockedDepthwise { isa, ..geometry(1, c, a, a, e) };
            let dw = DepthwiseConv {
                batch: 1,
                in_channels: c,
                out_channels: c,
                input: k.input,
                kernel: k.kernel,
                strides: k.strides,
                dilations: k.dilations,
                pad_begin: k.pad_begin,
                output: k.output,
                epilogue: e,
                isa,
            };
            let (mut planar, out_len) = planar_inputs(&mut Rng(1), &k);
            let mut blocked = blocked_inputs(&k, &planar);
            planar[1] = crate::depthwise::pack_dwconv_weights(&planar[1]);
            let (mut y_b, mut y_p) = (vec![0.0f32; out_len], vec![0.0f32; out_len]);
            let b_in: Vec<RawBuf> = blocked.iter_mut().map(|v| RawBuf::from_f32(v)).collect();
            let p_in: Vec<RawBuf> = planar.iter_mut().map(|v| RawBuf::from_f32(v)).collect();
            let (b_out, p_out) = ([RawBuf::from_f32(&mut y_b)], [RawBuf::from_f32(&mut y_p)]);
            let (b_io, p_io) = (Io { inputs: &b_in, outputs: &b_out }, Io { inputs: &p_in, outputs: &p_out });
            let mut b_scratch = vec![0u8; k.scratch_bytes(k.work_items())];
            let mut p_scratch = vec![0u8; dw.scratch_bytes(dw.work_items())];
            let (tb, tp) = alternate(
                41,
                // SAFETY: the buffers live through the calls; one part at a time.
                || unsafe { k.run(&b_io, 0..k.work_items(), &mut b_scratch) },
                // SAFETY: as above.
                || unsafe { dw.run(&p_io, 0..dw.work_items(), &mut p_scratch) },
            );
            println!("({c:4}, {hw:3}, {kk}, {s})       {tb:9.1} {tp:9.1}   {:6.2}×", tp / tb);
        }
    }
}
