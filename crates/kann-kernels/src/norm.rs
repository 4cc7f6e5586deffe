//! f32 normalisations: LRN, BatchNormalization (inference),
//! InstanceNormalization and LayerNormalization. Statistics are summed in
//! f64 so they stay accurate over large planes.
//!
//! LRN, BatchNorm and InstanceNorm work on `[N, C, plane]` data and split
//! by the `N * C` planes; LayerNorm splits by rows (`prod(dims[..axis])`).

use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::Activation;
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[cfg(target_arch = "x86_64")]
mod lrn_avx2;

/// `LRN`: `y = x / (bias + alpha / size * sum of x² over the channel window)^beta`,
/// the window spanning channels `c - (size-1)/2 ..= c + size/2`.
/// Input X, output Y, both `[N, C, plane]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lrn {
    pub batch: u64,
    pub channels: u64,
    /// Elements per channel plane.
    pub plane: u64,
    pub size: u64,
    pub alpha: f32,
    pub beta: f32,
    pub bias: f32,
    /// AVX2 (also what an AVX-512 target runs: the square roots, not the
    /// width, bound it) or portable; portable where the CPU lacks AVX2
    /// (program format v14).
    pub isa: Isa,
}

/// The widest LRN window the AVX2 planes take (wider ones, rare, run portable).
#[cfg(target_arch = "x86_64")]
const MAX_SIMD_WINDOW: usize = 16;

impl Lrn {
    /// Whether the planes run on AVX2 (asked for and present).
    fn simd(&self) -> bool {
        self.isa != Isa::Generic && Isa::Avx2.available()
    }
}

impl KernelImpl for Lrn {
    fn name(&self) -> String {
        match self.isa {
            Isa::Generic => "f32_lrn_direct_generic".into(),
            isa => format!("f32_lrn_simd_{}", isa.name()),
        }
    }

    fn work_items(&self) -> u64 {
        self.batch * self.channels
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        if self.size == 0 {
            return Err("LRN size must be positive".into());
        }
        Ok(())
    }

    fn scratch_bytes(&self, _items: u64) -> usize {
        self.plane as usize * 4
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        let (c, plane) = (self.channels as usize, self.plane as usize);
        let (before, after) = ((self.size as usize - 1) / 2, self.size as usize / 2);
        let scale = self.alpha / self.size as f32;
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: inputs are not written during the step (the run contract).
        let x = unsafe { io.inputs[0].f32() };
        // SAFETY: this part owns planes p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * plane..p1 * plane) };
        // SAFETY: any bit pattern is a valid f32; the slice is only reinterpreted.
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(pre.is_empty() && scratch.len() >= plane, "LRN scratch is not 4-byte aligned or too small");
        let sq = &mut scratch[..plane];
        for (item, yp) in (p0..p1).zip(y.chunks_mut(plane.max(1))) {
            let (b, ch) = (item / c, item % c);
            let window = ch.saturating_sub(before)..=(ch + after).min(c - 1);
            #[cfg(target_arch = "x86_64")]
            if self.simd() && window.clone().count() <= MAX_SIMD_WINDOW {
                // The window's planes on the stack: a frame allocates nothing.
                let mut planes = [&x[..0]; MAX_SIMD_WINDOW];
                for (p, k) in planes.iter_mut().zip(window.clone()) {
                    *p = &x[(b * c + k) * plane..][..plane];
                }
                let taken = window.count();
                // SAFETY: the CPU has AVX2 and FMA (simd()); every plane holds `plane` floats.
                unsafe { lrn_avx2::plane(&planes[..taken], &x[item * plane..][..plane], yp, self.bias, scale, self.beta) };
                continue;
            }
            sq.fill(0.0);
            for k in window {
                let xk = &x[(b * c + k) * plane..][..plane];
                sq.iter_mut().zip(xk).for_each(|(s, &v)| *s += v * v);
            }
            // The base becomes `(bias + scale * sum)^-beta` in place.
            sq.iter_mut().for_each(|s| *s = self.bias + scale * *s);
            inverse_power(sq, self.beta);
            let xp = &x[item * plane..][..plane];
            yp.iter_mut().zip(xp).zip(sq.iter()).for_each(|((o, &v), &d)| *o = v * d);
        }
    }
}

/// `v = v^-beta` for every value, with square roots for the usual betas
/// (0.75, as AlexNet and GoogLeNet use, 0.5 and 1) so the loop vectorises.
fn inverse_power(v: &mut [f32], beta: f32) {
    if beta == 0.75 {
        v.iter_mut().for_each(|b| *b = 1.0 / (b.sqrt() * b.sqrt().sqrt()));
    } else if beta == 0.5 {
        v.iter_mut().for_each(|b| *b = 1.0 / b.sqrt());
    } else if beta == 1.0 {
        v.iter_mut().for_each(|b| *b = 1.0 / *b);
    } else {
        v.iter_mut().for_each(|b| *b = b.powf(-beta));
    }
}

/// `BatchNormalization` (inference): `y = act((x - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + B[c])`.
/// Inputs X `[N, C, plane]`, scale, B, mean, var (`[C]` each); output Y.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm {
    pub batch: u64,
    pub channels: u64,
    pub plane: u64,
    pub epsilon: f32,
    /// The activation fused after it (pre-activation networks: BN → Relu → Conv).
    pub activation: Activation,
}

impl KernelImpl for BatchNorm {
    fn name(&self) -> String {
        let act = self.activation.name();
        if act.is_empty() {
            "f32_batchnorm_direct_generic".into()
        } else {
            format!("f32_batchnorm_{act}_direct_generic")
        }
    }

    fn work_items(&self) -> u64 {
        self.batch * self.channels
    }

    fn in_place_ok(&self) -> bool {
        true
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 5..6, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (c, plane) = (self.channels as usize, self.plane as usize);
        // SAFETY: the parameter inputs are not written during the step.
        let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| unsafe { io.inputs[i].f32() });
        let in_place = io.inputs[0].same_as(&io.outputs[0]);
        for item in part.start as usize..part.end as usize {
            let ch = item % c;
            let k = f64::from(scale[ch]) / (f64::from(var[ch]) + f64::from(self.epsilon)).sqrt();
            let shift = f64::from(bias[ch]) - f64::from(mean[ch]) * k;
            let (k, shift) = (k as f32, shift as f32);
            // SAFETY: this part owns plane `item` (the run contract).
            let yp = unsafe { io.outputs[0].f32_part(item * plane..(item + 1) * plane) };
            // One vector pass for the scaling and the activation: DenseNet-121's
            // 62 batch-norm steps 1.56x faster than a scalar pass and the
            // activation's (in turns in one process, Zen 3).
            let f = crate::vmath::Func::AffineAct { k, shift, act: self.activation };
            if in_place {
                crate::vmath::map_in_place(crate::vmath::best_isa(), f, yp);
            } else {
                // SAFETY: X is not written during the step.
                let xp = unsafe { &io.inputs[0].f32()[item * plane..][..plane] };
                crate::vmath::map_row(crate::vmath::best_isa(), f, xp, yp);
            }
        }
    }
}

/// Mean and population variance, in f64.
fn moments(v: &[f32]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

/// `InstanceNormalization`: each plane normalised by its own mean and
/// variance, then `* scale[c] + B[c]`. Inputs X `[N, C, plane]`, scale, B; output Y.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceNorm {
    pub batch: u64,
    pub channels: u64,
    pub plane: u64,
    pub epsilon: f32,
}

impl KernelImpl for InstanceNorm {
    fn name(&self) -> String {
        "f32_instancenorm_direct_generic".into()
    }

    fn work_items(&self) -> u64 {
        self.batch * self.channels
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 3..4, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (c, plane) = (self.channels as usize, self.plane as usize);
        // SAFETY: inputs are not written during the step.
        let [x, scale, bias] = [0, 1, 2].map(|i| unsafe { io.inputs[i].f32() });
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: this part owns planes p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * plane..p1 * plane) };
        for (item, yp) in (p0..p1).zip(y.chunks_mut(plane.max(1))) {
            let xp = &x[item * plane..][..plane];
            let (mean, var) = moments(xp);
            let k = f64::from(scale[item % c]) / (var + f64::from(self.epsilon)).sqrt();
            let b = f64::from(bias[item % c]);
            yp.iter_mut().zip(xp).for_each(|(o, &v)| *o = ((f64::from(v) - mean) * k + b) as f32);
        }
    }
}

/// `LayerNormalization` over rows of `row` elements: `(x - mean) * inv_std *
/// scale[j] + B[j]`; with `rms` (`RMSNormalization`) the mean is not
/// subtracted and `inv_std = 1 / sqrt(mean(x²) + epsilon)`. Inputs X, Scale `[row]`, optional B `[row]` (both
/// already broadcast to a row by the lowering). Outputs Y, then optionally
/// Mean and InvStdDev (one f32 per row).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerNorm {
    pub rows: u64,
    pub row: u64,
    pub epsilon: f32,
    pub has_bias: bool,
    /// 1 (Y), 2 (+ Mean) or 3 (+ InvStdDev).
    pub outputs: u8,
    pub rms: bool,
}

impl KernelImpl for LayerNorm {
    fn name(&self) -> String {
        if self.rms { "f32_rmsnorm_direct_generic" } else { "f32_layernorm_direct_generic" }.into()
    }

    fn work_items(&self) -> u64 {
        self.rows
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.has_bias);
        if !(1..=3).contains(&self.outputs) {
            return Err(format!("LayerNorm has 1 to 3 outputs, not {}", self.outputs));
        }
        expect_io(n_inputs, n_outputs, want..want + 1, self.outputs as usize)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let row = self.row as usize;
        let (r0, r1) = (part.start as usize, part.end as usize);
        // SAFETY: inputs are not written during the step.
        let (x, scale) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        // SAFETY: as above.
        let bias = self.has_bias.then(|| unsafe { io.inputs[2].f32() });
        // SAFETY: this part owns rows r0..r1 of Y and of the statistics (the run contract).
        let y = unsafe { io.outputs[0].f32_part(r0 * row..r1 * row) };
        // SAFETY: as above.
        let mut stats: Vec<&mut [f32]> = (1..self.outputs as usize).map(|o| unsafe { io.outputs[o].f32_part(r0..r1) }).collect();
        for (r, yr) in (r0..r1).zip(y.chunks_mut(row.max(1))) {
            let xr = &x[r * row..][..row];
            let (mean, var) = if self.rms {
                (0.0, xr.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / row as f64)
            } else {
                moments(xr)
            };
            let inv = 1.0 / (var + f64::from(self.epsilon)).sqrt();
            for (j, (o, &v)) in yr.iter_mut().zip(xr).enumerate() {
                let b = bias.map_or(0.0, |b| f64::from(b[j]));
                *o = ((f64::from(v) - mean) * inv * f64::from(scale[j]) + b) as f32;
            }
            for (s, value) in stats.iter_mut().zip([mean, inv]) {
                s[r - r0] = value as f32;
            }
        }
    }
}

/// `GroupNormalization`: the channels of each sample fall in `groups`
/// groups of consecutive channels, each normalised by its own statistics,
/// then `* scale + bias` per channel (or per group with `per_group_affine`).
/// Inputs X `[N, C, plane]`, scale, bias; output Y. Work items are the
/// `N * groups` blocks of `C / groups` planes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupNorm {
    pub batch: u64,
    pub channels: u64,
    pub groups: u64,
    pub plane: u64,
    pub epsilon: f32,
    pub per_group_affine: bool,
}

impl KernelImpl for GroupNorm {
    fn name(&self) -> String {
        "f32_groupnorm_direct_generic".into()
    }

    fn work_items(&self) -> u64 {
        self.batch * self.groups
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 3..4, 1)?;
        if self.groups == 0 || self.channels % self.groups != 0 {
            return Err(format!("{} groups do not divide {} channels", self.groups, self.channels));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (groups, plane) = (self.groups as usize, self.plane as usize);
        let cg = self.channels as usize / groups;
        let block = cg * plane;
        // SAFETY: inputs are not written during the step.
        let [x, scale, bias] = [0, 1, 2].map(|i| unsafe { io.inputs[i].f32() });
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: this part owns blocks p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * block..p1 * block) };
        for (item, yb) in (p0..p1).zip(y.chunks_mut(block.max(1))) {
            let xb = &x[item * block..][..block];
            let (mean, var) = moments(xb);
            let inv = 1.0 / (var + f64::from(self.epsilon)).sqrt();
            let g = item % groups;
            for (j, (o, &v)) in yb.iter_mut().zip(xb).enumerate() {
                let k = if self.per_group_affine { g } else { g * cg + j / plane };
                *o = ((f64::from(v) - mean) * inv * f64::from(scale[k]) + f64::from(bias[k])) as f32;
            }
        }
    }
}

/// `LpNormalization`: `x / ||x||_p` (p 1 or 2) along the middle axis of an
/// `[outer, len, inner]` view; a zero vector stays zero. Work items are the
/// `outer` blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LpNorm {
    pub outer: u64,
    pub len: u64,
    pub inner: u64,
    pub p: u8,
}

impl KernelImpl for LpNorm {
    fn name(&self) -> String {
        format!("f32_l{}norm_direct_generic", self.p)
    }

    fn work_items(&self) -> u64 {
        self.outer
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        if !matches!(self.p, 1 | 2) {
            return Err(format!("LpNormalization p = {} is not supported (1 or 2)", self.p));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (len, inner) = (self.len as usize, self.inner as usize);
        let block = len * inner;
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: the input is not written during the step.
        let x = unsafe { io.inputs[0].f32() };
        // SAFETY: this part owns blocks p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * block..p1 * block) };
        for (o, yb) in (p0..p1).zip(y.chunks_mut(block.max(1))) {
            let xb = &x[o * block..][..block];
            for i in 0..inner {
                let vals = (0..len).map(|j| f64::from(xb[j * inner + i]));
                let norm = if self.p == 1 { vals.map(f64::abs).sum::<f64>() } else { vals.map(|v| v * v).sum::<f64>().sqrt() };
                for j in 0..len {
                    let v = f64::from(xb[j * inner + i]);
                    yb[j * inner + i] = if norm == 0.0 { 0.0 } else { (v / norm) as f32 };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;

    #[test]
    fn lrn_matches_formula() {
        let mut rng = Rng(9);
        // Windows of 1 to 6 channels and one wider than the SIMD planes
        // take (19, portable), planes with and without a vector tail.
        let sizes = (1..7u64).chain([19]);
        for (size, beta, plane) in sizes.flat_map(|s| [(s, 0.75f32, 3u64), (s, 0.5, 8), (s, 1.0, 13), (s, 0.6, 21), (s, 0.75, 40)]) {
            let channels = 5 + size / 4;
            let len = (2 * channels * plane) as usize;
            let x = rng.vec(len);
            let mut want = vec![0.0; len];
            let (c, pl) = (channels as usize, plane as usize);
            for (i, w) in want.iter_mut().enumerate() {
                let (b, ch, p) = (i / (c * pl), (i / pl) % c, i % pl);
                let lo = ch.saturating_sub(((size - 1) / 2) as usize);
                let hi = (ch + (size / 2) as usize).min(c - 1);
                let s: f32 = (lo..=hi).map(|k| x[(b * c + k) * pl + p].powi(2)).sum();
                *w = x[i] / (1.5 + 1e-2 / size as f32 * s).powf(beta);
            }
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let k = Lrn { batch: 2, channels, plane, size, alpha: 1e-2, beta, bias: 1.5, isa };
                for parts in [1, 3] {
                    assert_close(&run_parts(&k, std::slice::from_ref(&x), &[len], parts)[0], &want, 1e-5);
                }
            }
        }
    }

    #[test]
    fn lrn_names_its_isa() {
        let k = Lrn { batch: 1, channels: 4, plane: 9, size: 5, alpha: 1e-4, beta: 0.75, bias: 1.0, isa: Isa::Generic };
        assert_eq!(k.name(), "f32_lrn_direct_generic");
        assert_eq!(Lrn { isa: Isa::Avx2, ..k }.name(), "f32_lrn_simd_avx2");
    }

    /// Microseconds of GoogLeNet's and ZFNet's LRN layers, portable and
    /// AVX2 alternated; not a test of correctness:
    /// `cargo test --release -p kann-kernels --lib norm::tests::lrn_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn lrn_timing() {
        let mut rng = Rng(3);
        for (c, hw) in [(64u64, 56u64), (192, 56), (96, 55), (256, 13)] {
            let plane = hw * hw;
            let mut x = vec![rng.vec((c * plane) as usize)];
            let kernels: Vec<Lrn> = Isa::ALL.into_iter().filter(|i| i.available() && *i != Isa::Avx512).map(|isa| Lrn { batch: 1, channels: c, plane, size: 5, alpha: 1e-4, beta: 0.75, bias: 1.0, isa }).collect();
            let mut best = vec![f64::INFINITY; kernels.len()];
            for _ in 0..5 {
                for (k, b) in kernels.iter().zip(&mut best) {
                    *b = b.min(time_kernel(k, &mut x, (c * plane) as usize));
                }
            }
            let line: Vec<String> = kernels.iter().zip(&best).map(|(k, b)| format!("{} {b:.0} us", k.isa.name())).collect();
            println!("lrn {c}x{hw}x{hw}: {}", line.join(", "));
        }
    }

    #[test]
    fn batch_and_instance_norm() {
        let mut rng = Rng(2);
        let x = rng.vec(24);
        let (scale, bias, mean) = (rng.vec(3), rng.vec(3), rng.vec(3));
        let var: Vec<f32> = rng.vec(3).iter().map(|v| v.abs() + 0.1).collect();
        let bn = BatchNorm { batch: 2, channels: 3, plane: 4, epsilon: 1e-5, activation: Activation::None };
        let want: Vec<f32> = (0..24).map(|i| {
            let c = (i / 4) % 3;
            (x[i] - mean[c]) / (var[c] + 1e-5).sqrt() * scale[c] + bias[c]
        }).collect();
        let got = run_parts(&bn, &[x.clone(), scale.clone(), bias.clone(), mean, var], &[24], 3);
        assert_close(&got[0], &want, 1e-5);

        let inorm = InstanceNorm { batch: 2, channels: 3, plane: 4, epsilon: 1e-5 };
        let mut want = vec![0.0; 24];
        for p in 0..6 {
            let s = &x[p * 4..p * 4 + 4];
            let m = s.iter().sum::<f32>() / 4.0;
            let v = s.iter().map(|a| (a - m).powi(2)).sum::<f32>() / 4.0;
            for j in 0..4 {
                want[p * 4 + j] = (s[j] - m) / (v + 1e-5).sqrt() * scale[p % 3] + bias[p % 3];
            }
        }
        let got = run_parts(&inorm, &[x, scale, bias], &[24], 2);
        assert_close(&got[0], &want, 1e-4);
    }

    #[test]
    fn layer_norm_with_stats() {
        let mut rng = Rng(4);
        let x = rng.vec(12);
        let (scale, bias) = (rng.vec(4), rng.vec(4));
        let k = LayerNorm { rows: 3, row: 4, epsilon: 1e-5, has_bias: true, outputs: 3, rms: false };
        let got = run_parts(&k, &[x.clone(), scale.clone(), bias.clone()], &[12, 3, 3], 2);
        for r in 0..3 {
            let s = &x[r * 4..r * 4 + 4];
            let m = s.iter().sum::<f32>() / 4.0;
            let inv = 1.0 / (s.iter().map(|a| (a - m).powi(2)).sum::<f32>() / 4.0 + 1e-5).sqrt();
            let want: Vec<f32> = (0..4).map(|j| (s[j] - m) * inv * scale[j] + bias[j]).collect();
            assert_close(&got[0][r * 4..r * 4 + 4], &want, 1e-4);
            assert_close(&[got[1][r], got[2][r]], &[m, inv], 1e-4);
        }
    }
}
