//! `Einsum` by iterating over every combination of the equation's labels.

use super::{finish, input};
use crate::EvalError;
use kann_ir::ops::nn::Einsum;
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

pub fn einsum(e: &Einsum, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let tensors: Vec<&Tensor> = (0..inputs.len()).map(|i| input(inputs, i, "Inputs")).collect::<Result<_, _>>()?;
    let shapes: Vec<&[usize]> = tensors.iter().map(|t| t.dims()).collect();
    let plan = e.plan(&shapes)?;
    let values: Vec<Vec<f64>> = tensors.iter().map(|t| t.to_f64_vec()).collect();
    // Labels iterated: output labels first, then the summed ones.
    let mut labels = plan.output.clone();
    for l in plan.inputs.iter().flatten() {
        if !labels.contains(l) {
            labels.push(*l);
        }
    }
    let extents: Vec<usize> = labels.iter().map(|&l| plan.sizes[l]).collect();
    let out_len: usize = plan.output.iter().map(|&l| plan.sizes[l]).product();
    let inner: usize = extents[plan.output.len()..].iter().product();
    // Per input and axis: the position in `labels` and the stride (0 on a broadcast axis).
    let axes: Vec<Vec<(usize, usize)>> = plan
        .inputs
        .iter()
        .zip(&shapes)
        .map(|(ls, dims)| {
            let strides = crate::util::strides(dims);
            ls.iter().zip(dims.iter()).zip(strides).map(|((l, &d), s)| (labels.iter().position(|x| x == l).unwrap_or(0), if d == 1 { 0 } else { s })).collect()
        })
        .collect();
    let mut y = vec![0.0; out_len];
    let mut idx = vec![0usize; labels.len()];
    for _ in 0..out_len.saturating_mul(inner) {
        let o = idx[..plan.output.len()].iter().zip(&extents).fold(0, |acc, (&i, &d)| acc * d + i);
        let mut prod = 1.0;
        for (v, ax) in values.iter().zip(&axes) {
            let flat: usize = ax.iter().map(|&(p, s)| idx[p] * s).sum();
            prod *= v.get(flat).copied().unwrap_or(0.0);
        }
        y[o] += prod;
        // Next combination, last label fastest.
        for k in (0..idx.len()).rev() {
            idx[k] += 1;
            if idx[k] < extents[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    finish(out, &y)
}
