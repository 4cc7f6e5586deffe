//! Windowed and global pooling.

use super::{finish, input};
use crate::util::unravel;
use crate::EvalError;
use kann_ir::ops::nn::{GlobalPool, Pool, PoolKind, WindowPlan};
use kann_ir::TensorInfo;
use kann_tensor::{DType, Shape, Tensor};

/// One output position's window: the in-plane flat indices of the input
/// elements it covers (in kernel order) and how many positions it covers
/// inside the explicitly padded input (the `count_include_pad` divisor).
struct Taps {
    inside: Vec<usize>,
    padded_count: usize,
}

/// The window of every output position of a plane.
fn windows(input: &[usize], plan: &WindowPlan) -> Vec<Taps> {
    let n_out: usize = plan.out.iter().product();
    (0..n_out)
        .map(|o| {
            let oi = unravel(o, &plan.out);
            let mut inside = vec![0usize];
            let mut padded_count = 1;
            for a in 0..input.len() {
                let start = oi[a] as i64 * plan.strides[a] as i64 - plan.pad_begin[a];
                let positions = (0..plan.kernel[a]).map(|k| start + (k * plan.dilations[a]) as i64);
                let (lo, hi) = (-plan.pad_begin[a], input[a] as i64 + plan.pad_end[a]);
                padded_count *= positions.clone().filter(|&p| p >= lo && p < hi).count();
                let valid: Vec<usize> = positions.filter(|&p| p >= 0 && p < input[a] as i64).map(|p| p as usize).collect();
                inside = inside.iter().flat_map(|&f| valid.iter().map(move |&p| f * input[a] + p)).collect();
            }
            Taps { inside, padded_count }
        })
        .collect()
}

/// An in-plane row-major flat index renumbered column-major (MaxPool `storage_order = 1`).
fn column_major(flat: usize, dims: &[usize]) -> usize {
    let idx = unravel(flat, dims);
    let mut f = 0;
    for a in (0..dims.len()).rev() {
        f = f * dims[a] + idx[a];
    }
    f
}

pub fn pool(p: &Pool, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let x = input(inputs, 0, "X")?;
    let plan = p.plan(x.dims())?;
    let sp = &x.dims()[2..];
    let in_plane: usize = sp.iter().product();
    let taps = windows(sp, &plan);
    let xv = x.to_f64_vec();
    let planes = x.dims()[0] * x.dims()[1];
    let mut y = Vec::with_capacity(planes * taps.len());
    let mut indices = Vec::new();
    for pl in 0..planes {
        let xp = &xv[pl * in_plane..(pl + 1) * in_plane];
        for t in &taps {
            let vals = t.inside.iter().map(|&i| xp[i]);
            let v = match p.kind {
                PoolKind::Max => {
                    let mut best = (f64::NEG_INFINITY, t.inside.first().copied().unwrap_or(0));
                    for (&i, v) in t.inside.iter().zip(vals) {
                        if v > best.0 || v.is_nan() && !best.0.is_nan() {
                            best = (v, i);
                        }
                    }
                    if p.with_indices {
                        let i = if p.column_major_indices { column_major(best.1, sp) } else { best.1 };
                        indices.push((pl * in_plane + i) as i64);
                    }
                    best.0
                }
                PoolKind::Average { count_include_pad } => {
                    let n = if count_include_pad { t.padded_count } else { t.inside.len() };
                    vals.sum::<f64>() / n as f64
                }
                PoolKind::Lp { p } => vals.map(|v| v.abs().powf(p)).sum::<f64>().powf(1.0 / p),
            };
            y.push(v);
        }
    }
    let out = outputs.first().ok_or("no output type")?;
    let mut result = vec![finish(out, &y)?];
    if p.with_indices {
        let shape = outputs.get(1).map(|o| o.shape.clone()).unwrap_or_else(|| Shape::from(out.shape.dims()));
        result.push(Tensor::from_i64_values(DType::I64, shape, &indices)?);
    }
    Ok(result)
}

pub fn global_pool(p: &GlobalPool, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let plane: usize = x.dims()[2..].iter().product();
    let xv = x.to_f64_vec();
    let y: Vec<f64> = xv
        .chunks(plane.max(1))
        .map(|c| match p.kind {
            PoolKind::Max => c.iter().copied().fold(f64::NEG_INFINITY, |m, v| if v > m || v.is_nan() { v } else { m }),
            PoolKind::Average { .. } => c.iter().sum::<f64>() / plane as f64,
            PoolKind::Lp { p } => c.iter().map(|v| v.abs().powf(p)).sum::<f64>().powf(1.0 / p),
        })
        .collect();
    finish(out, &y)
}
