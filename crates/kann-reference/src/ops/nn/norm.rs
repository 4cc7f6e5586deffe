//! Normalisations, with statistics in f64.

use super::{at, finish, input, values_or};
use crate::util::broadcast_index;
use crate::EvalError;
use kann_ir::ops::nn::{BatchNorm, GroupNorm, InstanceNorm, LayerNorm, LpNorm, Lrn, MeanVarianceNorm, RmsNorm};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

/// Mean and (population) variance.
fn moments(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var)
}

/// Extent of one channel's plane in `[N, C, ...]` data.
fn plane(x: &Tensor) -> usize {
    x.dims()[2..].iter().product()
}

pub fn batch_norm(b: &BatchNorm, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| values_or(inputs, i, f64::NAN));
    let (c, plane) = (x.dims()[1].max(1), plane(x).max(1));
    let mut y = x.to_f64_vec();
    for (i, p) in y.chunks_mut(plane).enumerate() {
        let ch = i % c;
        let (m, s) = (at(&mean, ch), (at(&var, ch) + b.epsilon).sqrt());
        let (g, bb) = (at(&scale, ch), at(&bias, ch));
        p.iter_mut().for_each(|v| *v = (*v - m) / s * g + bb);
    }
    finish(out, &y)
}

pub fn instance_norm(n: &InstanceNorm, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "input")?;
    let (scale, bias) = (values_or(inputs, 1, f64::NAN), values_or(inputs, 2, f64::NAN));
    let (c, plane) = (x.dims()[1].max(1), plane(x).max(1));
    let mut y = x.to_f64_vec();
    for (i, p) in y.chunks_mut(plane).enumerate() {
        let (mean, var) = moments(p);
        let k = at(&scale, i % c) / (var + n.epsilon).sqrt();
        let b = at(&bias, i % c);
        p.iter_mut().for_each(|v| *v = (*v - mean) * k + b);
    }
    finish(out, &y)
}

pub fn layer_norm(n: &LayerNorm, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let x = input(inputs, 0, "X")?;
    let axis = n.first_axis(x.rank())?;
    let row: usize = x.dims()[axis..].iter().product();
    let scale = input(inputs, 1, "Scale")?;
    let (sv, si) = (scale.to_f64_vec(), broadcast_index(scale.dims(), x.dims()));
    let bias = inputs.get(2).copied().flatten().map(|b| (b.to_f64_vec(), broadcast_index(b.dims(), x.dims())));
    let mut y = x.to_f64_vec();
    let (mut means, mut inv_stds) = (vec![], vec![]);
    for (r, p) in y.chunks_mut(row.max(1)).enumerate() {
        let (mean, var) = moments(p);
        let inv = 1.0 / (var + n.epsilon).sqrt();
        for (j, v) in p.iter_mut().enumerate() {
            let i = r * row + j;
            *v = (*v - mean) * inv * sv[si[i]] + bias.as_ref().map_or(0.0, |(b, bi)| b[bi[i]]);
        }
        means.push(mean);
        inv_stds.push(inv);
    }
    let mut result = vec![finish(outputs.first().ok_or("no output type")?, &y)?];
    for (o, v) in outputs.iter().skip(1).zip([means, inv_stds]) {
        result.push(finish(o, &v)?);
    }
    Ok(result)
}

pub fn group_norm(n: &GroupNorm, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let (scale, bias) = (values_or(inputs, 1, f64::NAN), values_or(inputs, 2, f64::NAN));
    let (c, plane) = (x.dims()[1], plane(x));
    let groups = n.num_groups.max(1);
    let cg = c / groups;
    let per_group = n.per_group_affine && scale.len() == groups;
    let mut y = x.to_f64_vec();
    for (i, block) in y.chunks_mut((cg * plane).max(1)).enumerate() {
        let (mean, var) = moments(block);
        let inv = 1.0 / (var + n.epsilon).sqrt();
        let g = i % groups;
        for (j, v) in block.iter_mut().enumerate() {
            let ch = g * cg + j / plane.max(1);
            let k = if per_group { g } else { ch };
            *v = (*v - mean) * inv * at(&scale, k) + at(&bias, k);
        }
    }
    finish(out, &y)
}

pub fn lrn(l: &Lrn, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let (c, plane) = (x.dims()[1], plane(x));
    let xv = x.to_f64_vec();
    let (before, after) = ((l.size - 1) / 2, l.size / 2);
    let mut y = vec![0.0; xv.len()];
    for (i, v) in y.iter_mut().enumerate() {
        let (ch, pos, base) = ((i / plane) % c, i % plane, (i / (plane * c)) * plane * c);
        let lo = ch.saturating_sub(before);
        let hi = (ch + after).min(c - 1);
        let sq: f64 = (lo..=hi).map(|k| xv[base + k * plane + pos].powi(2)).sum();
        *v = xv[i] / (l.bias + l.alpha / l.size as f64 * sq).powf(l.beta);
    }
    finish(out, &y)
}

/// For each element of a `dims` tensor, the index of its group when the
/// `axes` are reduced (the flat index over the kept axes), and the group count.
fn groups(dims: &[usize], axes: &[usize]) -> (Vec<usize>, usize) {
    let kept: Vec<usize> = dims.iter().enumerate().map(|(a, &d)| if axes.contains(&a) { 1 } else { d }).collect();
    let n_groups = kept.iter().product();
    let n: usize = dims.iter().product();
    let ids = (0..n)
        .map(|i| {
            let idx = crate::util::unravel(i, dims);
            idx.iter().zip(&kept).fold(0, |f, (&i, &k)| f * k + if k == 1 { 0 } else { i })
        })
        .collect();
    (ids, n_groups)
}

/// Per-group sums of `f(x)`.
fn group_sums(x: &[f64], ids: &[usize], n_groups: usize, f: impl Fn(f64) -> f64) -> Vec<f64> {
    let mut s = vec![0.0; n_groups];
    for (&v, &g) in x.iter().zip(ids) {
        s[g] += f(v);
    }
    s
}

pub fn rms_norm(n: &RmsNorm, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let axis = kann_ir::ops::norm_axis(n.axis, x.rank())?;
    let row: usize = x.dims()[axis..].iter().product();
    let scale = input(inputs, 1, "scale")?;
    let (sv, si) = (scale.to_f64_vec(), broadcast_index(scale.dims(), x.dims()));
    let mut y = x.to_f64_vec();
    for (r, p) in y.chunks_mut(row.max(1)).enumerate() {
        let inv = 1.0 / (p.iter().map(|v| v * v).sum::<f64>() / row as f64 + n.epsilon).sqrt();
        for (j, v) in p.iter_mut().enumerate() {
            *v *= inv * sv[si[r * row + j]];
        }
    }
    finish(out, &y)
}

pub fn lp_norm(n: &LpNorm, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "input")?;
    let axis = kann_ir::ops::norm_axis(n.axis, x.rank())?;
    let (ids, ng) = groups(x.dims(), &[axis]);
    let xv = x.to_f64_vec();
    let norms: Vec<f64> = if n.p == 1 {
        group_sums(&xv, &ids, ng, f64::abs)
    } else {
        group_sums(&xv, &ids, ng, |v| v * v).into_iter().map(f64::sqrt).collect()
    };
    // A zero vector stays zero (as the ONNX reference has it), not NaN.
    let y: Vec<f64> = xv.iter().zip(&ids).map(|(v, &g)| if norms[g] == 0.0 { 0.0 } else { v / norms[g] }).collect();
    finish(out, &y)
}

pub fn mean_variance_norm(n: &MeanVarianceNorm, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let axes = n.axes(x.rank())?;
    let (ids, ng) = groups(x.dims(), &axes);
    let count = (x.len() / ng.max(1)).max(1) as f64;
    let xv = x.to_f64_vec();
    let mean: Vec<f64> = group_sums(&xv, &ids, ng, |v| v).into_iter().map(|s| s / count).collect();
    let mean_sq: Vec<f64> = group_sums(&xv, &ids, ng, |v| v * v).into_iter().map(|s| s / count).collect();
    // The ONNX function: (X - E[X]) / (sqrt(E[X²] - E[X]²) + 1e-9).
    let y: Vec<f64> = xv.iter().zip(&ids).map(|(v, &g)| (v - mean[g]) / ((mean_sq[g] - mean[g] * mean[g]).max(0.0).sqrt() + 1e-9)).collect();
    finish(out, &y)
}
