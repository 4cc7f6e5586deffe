//! Reference evaluation of the nn family: plain loops in f64 (exact for the
//! integer ops), converted once to the output dtype. The convolution and
//! matrix-product loop nests are ordered so full-size CNNs run in seconds.

mod attention;
mod conv;
mod einsum;
mod extra;
mod matmul;
mod norm;
mod pool;
mod quant;
mod recurrent;
mod softmax;

use crate::EvalError;
use kann_ir::ops::nn::NnOp;
use kann_ir::TensorInfo;
use kann_tensor::{bf16, f16, DType, Tensor};

pub fn eval(op: &NnOp, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let out = outputs.first().ok_or("no output type")?;
    let one = |t: Result<Tensor, EvalError>| t.map(|t| vec![t]);
    match op {
        NnOp::Conv(c) => one(conv::conv(c, inputs, out)),
        NnOp::ConvTranspose(c) => one(conv::conv_transpose(c, inputs, out)),
        NnOp::ConvInteger(c) => one(conv::conv_integer(c, inputs, out)),
        NnOp::QLinearConv(c) => one(conv::qlinear_conv(c, inputs, out)),
        NnOp::Gemm(g) => one(matmul::gemm(g, inputs, out)),
        NnOp::MatMul => one(matmul::matmul(inputs, out)),
        NnOp::MatMulInteger => one(matmul::matmul_integer(inputs, out)),
        NnOp::QLinearMatMul => one(matmul::qlinear_matmul(inputs, out)),
        NnOp::BatchNorm(b) => one(norm::batch_norm(b, inputs, out)),
        NnOp::InstanceNorm(n) => one(norm::instance_norm(n, inputs, out)),
        NnOp::LayerNorm(n) => norm::layer_norm(n, inputs, outputs),
        NnOp::GroupNorm(n) => one(norm::group_norm(n, inputs, out)),
        NnOp::RmsNorm(n) => one(norm::rms_norm(n, inputs, out)),
        NnOp::LpNorm(n) => one(norm::lp_norm(n, inputs, out)),
        NnOp::MeanVarianceNorm(n) => one(norm::mean_variance_norm(n, inputs, out)),
        NnOp::Lrn(l) => one(norm::lrn(l, inputs, out)),
        NnOp::Pool(p) => pool::pool(p, inputs, outputs),
        NnOp::GlobalPool(p) => one(pool::global_pool(p, inputs, out)),
        NnOp::Softmax(s) => one(softmax::softmax(s, inputs, out)),
        NnOp::QuantizeLinear(q) => one(quant::quantize(q, inputs, out)),
        NnOp::DequantizeLinear(q) => one(quant::dequantize(q, inputs, out)),
        NnOp::DynamicQuantizeLinear => quant::dynamic_quantize(inputs, outputs),
        NnOp::Attention(a) => attention::attention(a, inputs, outputs),
        NnOp::RotaryEmbedding(r) => one(extra::rotary(r, inputs, out)),
        NnOp::Einsum(e) => one(einsum::einsum(e, inputs, out)),
        NnOp::MaxUnpool(m) => one(extra::max_unpool(m, inputs, out)),
        NnOp::RoiAlign(r) => one(extra::roi_align(r, inputs, out)),
        NnOp::DeformConv(d) => one(extra::deform_conv(d, inputs, out)),
        NnOp::BatchNormTraining(b) => extra::batch_norm_training(b, inputs, outputs),
        NnOp::Det => one(extra::det(inputs, out)),
        NnOp::Recurrent(r) => recurrent::recurrent(r, inputs, outputs),
    }
}

/// Input `i`, which must be present.
pub(crate) fn input<'a>(inputs: &[Option<&'a Tensor>], i: usize, what: &str) -> Result<&'a Tensor, EvalError> {
    inputs.get(i).copied().flatten().ok_or_else(|| EvalError::Op(format!("missing input #{i} ({what})")))
}

/// Input `i` as f64 values, or `default` (one value) when omitted.
pub(crate) fn values_or(inputs: &[Option<&Tensor>], i: usize, default: f64) -> Vec<f64> {
    inputs.get(i).copied().flatten().map(|t| t.to_f64_vec()).unwrap_or_else(|| vec![default])
}

/// Value `i` of a parameter holding one value (broadcast) or one per index.
pub(crate) fn at(v: &[f64], i: usize) -> f64 {
    if v.len() == 1 {
        v[0]
    } else {
        v.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// Builds the output tensor from f64 values.
pub(crate) fn finish(out: &TensorInfo, v: &[f64]) -> Result<Tensor, EvalError> {
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), v)?)
}

/// Rounds `v` to the precision of float dtype `d` (how numpy would compute in `d`).
pub(crate) fn round_to(d: DType, v: f64) -> f64 {
    match d {
        DType::F32 => v as f32 as f64,
        DType::F16 => f16::from_f64(v).to_f64(),
        DType::BF16 => bf16::from_f64(v).to_f64(),
        _ => v,
    }
}

/// Rounds half to even and saturates to the range of the integer dtype `d`.
pub(crate) fn saturate(d: DType, v: f64) -> f64 {
    let (lo, hi) = match d {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        _ => (f64::MIN, f64::MAX),
    };
    v.round_ties_even().clamp(lo, hi)
}

/// `ceil(t / s)` for positive `s` and any `t`.
pub(crate) fn ceil_div(t: i64, s: i64) -> i64 {
    -((-t).div_euclid(s))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_extra;
