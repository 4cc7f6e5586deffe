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

/// `DynamicQuantizeLinear`, in f32 like the ONNX reference: the range
/// `[min(0, min x), max(0, max x)]` maps onto `[0, 255]`.
pub fn dynamic_quantize(inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let x = input(inputs, 0, "x")?.to_f32_vec();
    let max = x.iter().copied().fold(0.0f32, f32::max);
    let min = x.iter().copied().fold(0.0f32, f32::min);
    let scale = if max == min { 1.0 } else { max - min } / 255.0f32;
    let zp = (-min / scale).clamp(0.0, 255.0).round_ties_even();
    let y: Vec<f64> = x.iter().map(|&v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as f64).collect();
    let [yi, si, zi] = [0, 1, 2].map(|i| outputs.get(i).ok_or("DynamicQuantizeLinear has three outputs"));
    Ok(vec![finish(yi?, &y)?, finish(si?, &[scale as f64])?, finish(zi?, &[zp as f64])?])
}
