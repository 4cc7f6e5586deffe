//! Convolutions, matrix products, normalisations, pooling, softmax and
//! quantisation. One sub-module per group of related ops; this module holds
//! the family enum and dispatches to them.

pub mod attention;
pub mod conv;
pub mod einsum;
pub mod extra;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod quant;
pub mod recurrent;
pub mod softmax;

pub use attention::{Attention, AttentionDims};
pub use einsum::{Einsum, EinsumPlan};
pub use extra::{BatchNormTraining, DeformConv, MaxUnpool, RoiAlign, RotaryDims, RotaryEmbedding};
pub use conv::{AutoPad, Conv, ConvAttrs, ConvTranspose, Window, WindowPlan};
pub use matmul::Gemm;
pub use norm::{BatchNorm, GroupNorm, InstanceNorm, LayerNorm, LpNorm, Lrn, MeanVarianceNorm, RmsNorm};
pub use pool::{GlobalPool, Pool, PoolKind};
pub use quant::{DequantizeLinear, QuantizeLinear};
pub use softmax::{Softmax, SoftmaxKind};
pub use recurrent::{Activation, Direction, Recurrent, RecurrentDims, RecurrentKind};

use super::{InferInput, InferResult};
use crate::TensorInfo;

#[derive(Debug, Clone, PartialEq)]
pub enum NnOp {
    Conv(Conv),
    ConvTranspose(ConvTranspose),
    /// `ConvInteger`: integer convolution with zero points, i32 output.
    ConvInteger(ConvAttrs),
    /// `QLinearConv`: quantised convolution with scales and zero points.
    QLinearConv(ConvAttrs),
    Gemm(Gemm),
    MatMul,
    /// `MatMulInteger`: integer matrix product with zero points, i32 output.
    MatMulInteger,
    /// `QLinearMatMul`: quantised matrix product.
    QLinearMatMul,
    BatchNorm(BatchNorm),
    InstanceNorm(InstanceNorm),
    LayerNorm(LayerNorm),
    GroupNorm(GroupNorm),
    RmsNorm(RmsNorm),
    LpNorm(LpNorm),
    MeanVarianceNorm(MeanVarianceNorm),
    Lrn(Lrn),
    Pool(Pool),
    GlobalPool(GlobalPool),
    Softmax(Softmax),
    QuantizeLinear(QuantizeLinear),
    DequantizeLinear(DequantizeLinear),
    /// `DynamicQuantizeLinear`: u8 quantisation with the scale and zero point computed from x.
    DynamicQuantizeLinear,
    Attention(Attention),
    RotaryEmbedding(RotaryEmbedding),
    Einsum(Einsum),
    MaxUnpool(MaxUnpool),
    RoiAlign(RoiAlign),
    DeformConv(DeformConv),
    BatchNormTraining(BatchNormTraining),
    /// `Det`: determinants of square matrices.
    Det,
    /// `RNN`, `GRU`, `LSTM`.
    Recurrent(Recurrent),
}

impl NnOp {
    pub fn name(&self) -> &'static str {
        match self {
            NnOp::Conv(_) => "Conv",
            NnOp::ConvTranspose(_) => "ConvTranspose",
            NnOp::ConvInteger(_) => "ConvInteger",
            NnOp::QLinearConv(_) => "QLinearConv",
            NnOp::Gemm(_) => "Gemm",
            NnOp::MatMul => "MatMul",
            NnOp::MatMulInteger => "MatMulInteger",
            NnOp::QLinearMatMul => "QLinearMatMul",
            NnOp::BatchNorm(_) => "BatchNormalization",
            NnOp::InstanceNorm(_) => "InstanceNormalization",
            NnOp::LayerNorm(_) => "LayerNormalization",
            NnOp::GroupNorm(_) => "GroupNormalization",
            NnOp::RmsNorm(_) => "RMSNormalization",
            NnOp::LpNorm(_) => "LpNormalization",
            NnOp::MeanVarianceNorm(_) => "MeanVarianceNormalization",
            NnOp::Lrn(_) => "LRN",
            NnOp::Pool(p) => p.name(),
            NnOp::GlobalPool(p) => p.name(),
            NnOp::Softmax(s) => s.kind.name(),
            NnOp::QuantizeLinear(_) => "QuantizeLinear",
            NnOp::DequantizeLinear(_) => "DequantizeLinear",
            NnOp::DynamicQuantizeLinear => "DynamicQuantizeLinear",
            NnOp::Attention(_) => "Attention",
            NnOp::RotaryEmbedding(_) => "RotaryEmbedding",
            NnOp::Einsum(_) => "Einsum",
            NnOp::MaxUnpool(_) => "MaxUnpool",
            NnOp::RoiAlign(_) => "RoiAlign",
            NnOp::DeformConv(_) => "DeformConv",
            NnOp::BatchNormTraining(_) => "BatchNormalization",
            NnOp::Det => "Det",
            NnOp::Recurrent(r) => r.kind.name(),
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        match self {
            NnOp::Conv(c) => c.infer(inputs),
            NnOp::ConvTranspose(c) => c.infer(inputs),
            NnOp::ConvInteger(c) => conv::infer_conv_integer(c, inputs),
            NnOp::QLinearConv(c) => conv::infer_qlinear_conv(c, inputs),
            NnOp::Gemm(g) => g.infer(inputs),
            NnOp::MatMul => matmul::infer_matmul(inputs),
            NnOp::MatMulInteger => matmul::infer_matmul_integer(inputs),
            NnOp::QLinearMatMul => matmul::infer_qlinear_matmul(inputs),
            NnOp::BatchNorm(b) => b.infer(inputs),
            NnOp::InstanceNorm(n) => n.infer(inputs),
            NnOp::LayerNorm(n) => n.infer(inputs),
            NnOp::GroupNorm(n) => n.infer(inputs),
            NnOp::RmsNorm(n) => n.infer(inputs),
            NnOp::LpNorm(n) => n.infer(inputs),
            NnOp::MeanVarianceNorm(n) => n.infer(inputs),
            NnOp::Lrn(n) => n.infer(inputs),
            NnOp::Pool(p) => p.infer(inputs),
            NnOp::GlobalPool(p) => p.infer(inputs),
            NnOp::Softmax(s) => s.infer(inputs),
            NnOp::QuantizeLinear(q) => q.infer(inputs),
            NnOp::DequantizeLinear(q) => q.infer(inputs),
            NnOp::DynamicQuantizeLinear => quant::infer_dynamic_quantize(inputs),
            NnOp::Attention(a) => a.infer(inputs),
            NnOp::RotaryEmbedding(r) => r.infer(inputs),
            NnOp::Einsum(e) => e.infer(inputs),
            NnOp::MaxUnpool(m) => m.infer(inputs),
            NnOp::RoiAlign(r) => r.infer(inputs),
            NnOp::DeformConv(d) => d.infer(inputs),
            NnOp::BatchNormTraining(b) => b.infer(inputs),
            NnOp::Det => extra::infer_det(inputs),
            NnOp::Recurrent(r) => r.infer(inputs),
        }
    }

    pub fn flops(&self, inputs: &[Option<&TensorInfo>], outputs: &[TensorInfo]) -> u64 {
        let out = outputs.first().map(|o| o.numel() as u64).unwrap_or(0);
        let input = |i: usize| inputs.get(i).copied().flatten();
        match self {
            NnOp::Conv(c) => conv::conv_flops(c.attrs.group, input(1), out),
            NnOp::ConvInteger(c) => conv::conv_flops(c.group, input(1), out),
            NnOp::QLinearConv(c) => conv::conv_flops(c.group, input(3), out),
            NnOp::ConvTranspose(c) => conv::conv_transpose_flops(c.group, input(0), input(1)),
            NnOp::Gemm(g) => g.flops(input(0), input(1), out),
            NnOp::MatMul | NnOp::MatMulInteger => matmul::matmul_flops(input(0), out),
            NnOp::QLinearMatMul => matmul::matmul_flops(input(0), out),
            NnOp::Pool(p) => p.flops(out),
            NnOp::Softmax(_) | NnOp::LayerNorm(_) | NnOp::GroupNorm(_) | NnOp::InstanceNorm(_) | NnOp::MeanVarianceNorm(_) | NnOp::DynamicQuantizeLinear => out.saturating_mul(5),
            NnOp::Lrn(l) => out.saturating_mul((l.size as u64).saturating_mul(2).saturating_add(4)),
            NnOp::RmsNorm(_) | NnOp::LpNorm(_) => out.saturating_mul(4),
            NnOp::BatchNorm(_) | NnOp::QuantizeLinear(_) | NnOp::DequantizeLinear(_) => out.saturating_mul(2),
            NnOp::GlobalPool(_) => input(0).map(|i| i.numel() as u64).unwrap_or(0),
            NnOp::Attention(a) => a.flops(input(0), input(1), input(2), input(4)),
            NnOp::RotaryEmbedding(_) | NnOp::MaxUnpool(_) => out.saturating_mul(3),
            NnOp::BatchNormTraining(_) => input(0).map(|i| i.numel() as u64).unwrap_or(0).saturating_mul(6),
            NnOp::Einsum(e) => einsum_flops(e, inputs),
            NnOp::RoiAlign(r) => out.saturating_mul(8 * (r.sampling_ratio.max(2) as u64).pow(2)),
            NnOp::DeformConv(d) => conv::conv_flops(d.attrs.group, input(1), out).saturating_mul(3),
            NnOp::Recurrent(r) => r.flops(input(0), input(1), input(2)),
            NnOp::Det => input(0).map(|i| { let n = *i.shape.dims().last().unwrap_or(&0) as u64; (i.numel() as u64).saturating_mul(n) }).unwrap_or(0),
        }
    }
}

/// Two operations per input for every combination of the equation's labels.
fn einsum_flops(e: &Einsum, inputs: &[Option<&TensorInfo>]) -> u64 {
    let shapes: Option<Vec<&[usize]>> = inputs.iter().map(|i| i.map(|i| i.shape.dims())).collect();
    let Some(shapes) = shapes else { return 0 };
    let Ok(plan) = e.plan(&shapes) else { return 0 };
    let mut used: Vec<usize> = plan.inputs.iter().flatten().copied().collect();
    used.sort_unstable();
    used.dedup();
    let combos = used.iter().fold(1u64, |a, &l| a.saturating_mul(plan.sizes[l] as u64));
    combos.saturating_mul(2 * inputs.len() as u64)
}

/// Product of a list of extents.
pub(crate) fn product(dims: &[usize]) -> usize {
    dims.iter().product()
}
