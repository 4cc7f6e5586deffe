//! `BatchNormalization` (inference) with its fused activation on
//! channel-blocked activations: `y = act(x · k[c] + shift[c])`, `k` and
//! `shift` folded from scale, B, mean and var as [`crate::norm::BatchNorm`]
//! folds them (in f64), a block's eight of each in the lanes.
//!
//! Pre-activation networks (DenseNet: BN → ReLU → 1×1 convolution on each
//! dense layer's concatenated input) put one before nearly every
//! convolution; in NCHW each one cut a blocked region in two, with a
//! reorder on either side (DenseNet-121: 61 each way).
//!
//! Inputs X `[N][C/8][pixels][8]`, scale, B, mean, var (`[C]` each);
//! output Y in X's layout (may be X itself). Work items are each image's
//! blocks.

use super::BLOCK;
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::{Activation, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockedBatchNorm {
    pub batch: u64,
    /// A multiple of 8.
    pub channels: u64,
    pub pixels: u64,
    pub epsilon: f32,
    pub activation: Activation,
    pub isa: Isa,
}

impl KernelImpl for BlockedBatchNorm {
    fn name(&self) -> String {
        let act = self.activation.name();
        let act = if act.is_empty() { String::new() } else { format!("_{act}") };
        format!("f32_batchnorm{act}_nchw8c_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.batch * self.channels / BLOCK as u64
    }

    fn in_place_ok(&self) -> bool {
        true
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 5..6, 1)?;
        if self.channels == 0 || self.channels % BLOCK as u64 != 0 {
            return Err(format!("a blocked batch norm needs channels in multiples of {BLOCK}: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (c, pixels) = (self.channels as usize, self.pixels as usize);
        let blocks = c / BLOCK;
        // SAFETY: the parameter inputs are not written during the step.
        let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| unsafe { io.inputs[i].f32() });
        assert!([scale, bias, mean, var].iter().all(|p| p.len() >= c), "blocked batch norm parameters are too short");
        let in_place = io.inputs[0].same_as(&io.outputs[0]);
        let span = pixels * BLOCK;
        for item in part.start as usize..part.end as usize {
            let c0 = (item % blocks) * BLOCK;
            let mut k = [0.0f32; BLOCK];
            let mut shift = [0.0f32; BLOCK];
            for l in 0..BLOCK {
                // As the NCHW kernel folds them: in f64, then rounded.
                let kk = f64::from(scale[c0 + l]) / (f64::from(var[c0 + l]) + f64::from(self.epsilon)).sqrt();
                k[l] = kk as f32;
                shift[l] = (f64::from(bias[c0 + l]) - f64::from(mean[c0 + l]) * kk) as f32;
            }
            // SAFETY: this part owns block `item` (the run contract).
            let y = unsafe { io.outputs[0].f32_part(item * span..(item + 1) * span) };
            // SAFETY: X is not written during the step; in place, Y is read instead.
            let x = (!in_place).then(|| unsafe { &io.inputs[0].f32()[item * span..][..span] });
            // One pass for the affine map and a ReLU (DenseNet's); other
            // activations in a second pass over the block, still in cache.
            let relu = self.activation == Activation::Relu;
            affine_act(self.simd(), x, y, &k, &shift, relu);
            if !relu {
                crate::epilogue::activate_in_place(self.activation, y);
            }
        }
    }
}

impl BlockedBatchNorm {
    /// Whether the AVX2 loop runs (an AVX-512 artifact runs it too).
    fn simd(&self) -> bool {
        self.isa != Isa::Generic && Isa::Avx2.available()
    }
}

/// `y[p][l] = x[p][l] · k[l] + shift[l]` over a block's pixels (`x` is
/// `y` itself where it is `None`), then a ReLU if `relu`.
fn affine_act(simd: bool, x: Option<&[f32]>, y: &mut [f32], k: &[f32; BLOCK], shift: &[f32; BLOCK], relu: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: the CPU has AVX2 (`simd`).
        unsafe {
            match relu {
                true => affine_avx2::<true>(x, y, k, shift),
                false => affine_avx2::<false>(x, y, k, shift),
            }
        }
        return;
    }
    let _ = simd;
    match relu {
        true => affine::<true>(x, y, k, shift),
        false => affine::<false>(x, y, k, shift),
    }
}

/// The loop, written once: eight lanes a pixel, `k` and `shift` in
/// registers; the ReLU as the NCHW kernel's (`v > 0 ? v : 0`, NaN to 0).
#[inline(always)]
fn affine<const RELU: bool>(x: Option<&[f32]>, y: &mut [f32], k: &[f32; BLOCK], shift: &[f32; BLOCK]) {
    let f = |v: f32, l: usize| {
        let a = v * k[l] + shift[l];
        match RELU {
            true if a > 0.0 => a,
            true => 0.0,
            false => a,
        }
    };
    match x {
        Some(x) => {
            for (o, i) in y.chunks_exact_mut(BLOCK).zip(x.chunks_exact(BLOCK)) {
                o.iter_mut().zip(i).enumerate().for_each(|(l, (o, &v))| *o = f(v, l));
            }
        }
        None => {
            for o in y.chunks_exact_mut(BLOCK) {
                o.iter_mut().enumerate().for_each(|(l, o)| *o = f(*o, l));
            }
        }
    }
}

/// [`affine`] in AVX2 intrinsics: a pixel is one vector (a multiply and an
/// add, not fused: the NCHW kernel's roundings; the ReLU a `max` with 0,
/// which gives 0 for NaN as `v > 0 ? v : 0` does). Left to the compiler,
/// the loop was vectorised across pixels with transposes: 2-3× the NCHW
/// kernel's time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn affine_avx2<const RELU: bool>(x: Option<&[f32]>, y: &mut [f32], k: &[f32; BLOCK], shift: &[f32; BLOCK]) {
    use std::arch::x86_64::*;
    let n = y.len() / BLOCK * BLOCK;
    assert!(x.is_none_or(|x| x.len() >= n), "blocked batch norm input is too short");
    let src = x.map_or(y.as_ptr(), |x| x.as_ptr());
    let dst = y.as_mut_ptr();
    // SAFETY: `k` and `shift` hold 8 floats; `src` and `dst` hold `n`
    // (asserted); in place they are the same buffer, read before written.
    unsafe {
        let (kv, sv, zero) = (_mm256_loadu_ps(k.as_ptr()), _mm256_loadu_ps(shift.as_ptr()), _mm256_setzero_ps());
        for at in (0..n).step_by(BLOCK) {
            let mut v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(src.add(at)), kv), sv);
            if RELU {
                v = _mm256_max_ps(v, zero);
            }
            _mm256_storeu_ps(dst.add(at), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocked::testutil::{activation, per_image};
    use crate::blocked::{to_blocked, to_planar};
    use crate::conv::testutil::{run_parts, Rng};
    use crate::norm::BatchNorm;
    use crate::RawBuf;

    /// Against the NCHW kernel on random shapes, every activation, in 1-3
    /// parts, out of place and in place, NaN and infinities among the inputs.
    #[test]
    fn matches_the_nchw_batch_norm() {
        let mut rng = Rng(31);
        for case in 0..40 {
            let (n, c, pixels) = (1 + rng.below(2) as usize, 8 * (1 + rng.below(6) as usize), 1 + rng.below(40) as usize);
            let act = activation(case);
            let mut x = rng.vec(n * c * pixels);
            for (i, special) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY].into_iter().enumerate() {
                let at = (case * 7 + i * 13) % x.len();
                x[at] = special;
            }
            let params: Vec<Vec<f32>> = (0..4).map(|i| if i == 3 { rng.vec(c).iter().map(|v| v.abs() + 0.1).collect() } else { rng.vec(c) }).collect();
            let planar = BatchNorm { batch: n as u64, channels: c as u64, plane: pixels as u64, epsilon: 1e-5, activation: act };
            let mut ins = vec![x.clone()];
            ins.extend(params.iter().cloned());
            let want = run_parts(&planar, &ins, &[n * c * pixels], 1);
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let k = BlockedBatchNorm { batch: n as u64, channels: c as u64, pixels: pixels as u64, epsilon: 1e-5, activation: act, isa };
                let mut bins = vec![per_image(&x, c, pixels, to_blocked)];
                bins.extend(params.iter().cloned());
                let same = |got: &[f32], how: &str| {
                    let got = per_image(got, c, pixels, to_planar);
                    for (i, (g, w)) in got.iter().zip(&want[0]).enumerate() {
                        assert!(g == w || (g.is_nan() && w.is_nan()), "{isa:?} {act:?} case {case} {how} at {i}: {g} vs {w}");
                    }
                };
                for parts in [1, 2, 3] {
                    same(&run_parts(&k, &bins, &[n * c * pixels], parts)[0], "out of place");
                }
                // In place: Y is X's buffer.
                let mut bufs = bins.clone();
                let raw: Vec<RawBuf> = bufs.iter_mut().map(|v| RawBuf::from_f32(v)).collect();
                // SAFETY: the buffers outlive the call; one part.
                unsafe { k.run(&Io { inputs: &raw, outputs: &raw[..1] }, 0..k.work_items(), &mut []) };
                same(&bufs[0], "in place");
            }
        }
    }

    #[test]
    fn names_and_check() {
        let k = BlockedBatchNorm { batch: 1, channels: 16, pixels: 49, epsilon: 1e-5, activation: Activation::Relu, isa: Isa::Avx2 };
        assert_eq!(k.name(), "f32_batchnorm_relu_nchw8c_avx2");
        assert_eq!(k.work_items(), 2);
        assert!(k.check(5, 1).is_ok());
        assert!(BlockedBatchNorm { channels: 12, ..k }.check(5, 1).unwrap_err().contains("multiples of 8"));
    }
}

/// Microseconds of the blocked batch norm + ReLU against the NCHW one, out of
/// place, alternated (median of 41):
/// `cargo test --release -p kann-kernels --lib blocked_batch_norm_timing -- --ignored --nocapture`.
#[cfg(test)]
#[test]
#[ignore]
fn blocked_batch_norm_timing() {
    use crate::conv::testutil::Rng;
    let isa = Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic);
    for [c, side] in [[256, 56], [512, 28], [1024, 14], [1024, 7]] {
        let pixels = side * side;
        let mut rng = Rng(5);
        let x = rng.vec(c * pixels);
        let params: Vec<Vec<f32>> = (0..4).map(|i| if i == 3 { vec![1.0; c] } else { rng.vec(c) }).collect();
        let planar = crate::norm::BatchNorm { batch: 1, channels: c as u64, plane: pixels as u64, epsilon: 1e-5, activation: Activation::Relu };
        let blocked = BlockedBatchNorm { batch: 1, channels: c as u64, pixels: pixels as u64, epsilon: 1e-5, activation: Activation::Relu, isa };
        let mut ins_b: Vec<Vec<f32>> = std::iter::once(x.clone()).chain(params.iter().cloned()).collect();
        let mut ins_p = ins_b.clone();
        let (tb, tp) = crate::blocked::testutil::alternate(&blocked, &mut ins_b, &planar, &mut ins_p, c * pixels);
        println!("{c} x {side}x{side}: blocked {tb:.1} us, NCHW {tp:.1} us: {:.2}", tb / tp);
    }
}
