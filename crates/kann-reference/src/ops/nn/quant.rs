//! `QuantizeLinear` and `DequantizeLinear`.

use super::{at, finish, input, round_to, saturate, values_or};
use crate::EvalError;
use kann_ir::ops::nn::quant::scale_axis;
use kann_ir::ops::nn::{DequantizeLinear, QuantizeLinear};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

/// For each element of `x`, the index of its scale / zero point.
fn param_index(x: &Tensor, scale: &Tensor, axis: i64) -> Result<impl Fn(usize) -> usize, EvalError> {
    let dims = x.dims().to_vec();
    let a = scale_axis(&dims, scale.dims(), axis)?;
    let (len, inner) = match a {
        None => (1, 1),
        Some(a) => (dims[a].max(1), dims[a + 1..].iter().product::<usize>().max(1)),
    };
    Ok(move |i: usize| (i / inner) % len)
}

pub fn quantize(q: &QuantizeLinear, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (x, scale) = (input(inputs, 0, "x")?, input(inputs, 1, "y_scale")?);
    let pick = param_index(x, scale, q.axis)?;
    let (sv, zv) = (scale.to_f64_vec(), values_or(inputs, 2, 0.0));
    // The division is computed in the `precision` type, by default the scale's.
    let d = q.precision.unwrap_or(scale.dtype());
    let y: Vec<f64> = x.to_f64_vec().into_iter().enumerate().map(|(i, v)| {
        let k = pick(i);
        saturate(out.dtype, round_to(d, round_to(d, v) / sv[k]).round_ties_even() + at(&zv, k))
    }).collect();
    finish(out, &y)
}

pub fn dequantize(q: &DequantizeLinear, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (x, scale) = (input(inputs, 0, "x")?, input(inputs, 1, "x_scale")?);
    let pick = param_index(x, scale, q.axis)?;
    let (sv, zv) = (scale.to_f64_vec(), values_or(inputs, 2, 0.0));
    let y: Vec<f64> = x.to_f64_vec().into_iter().enumerate().map(|(i, v)| {
        let k = pick(i);
        (v - at(&zv, k)) * sv[k]
    }).collect();
    finish(out, &y)
}
