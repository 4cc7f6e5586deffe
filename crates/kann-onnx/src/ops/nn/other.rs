//! Matrix products, normalisations, softmax and quantisation.

use super::FLOAT_TYPES;
use crate::node::NodeCx;
use crate::registry::{Imported, Registry, MAX_OPSET};
use crate::tensor::dtype_from_onnx;
use crate::ImportError;
use kann_ir::ops::nn::{BatchNorm, BatchNormTraining, DequantizeLinear, Gemm, GroupNorm, InstanceNorm, LayerNorm, LpNorm, Lrn, MeanVarianceNorm, NnOp, QuantizeLinear, RmsNorm, Softmax, SoftmaxKind};
use kann_ir::Op;
use kann_tensor::DType;

pub(super) fn register(r: &mut Registry) {
    r.add("Gemm", gemm, "f32 f16 bf16 f64 i32 i64", "");
    r.add("MatMul", |_| nn(NnOp::MatMul), "f32 f16 bf16 f64 i32 i64", "");
    r.add_range("MatMulInteger", 10, MAX_OPSET, |_| nn(NnOp::MatMulInteger), "u8 i8 → i32", "");
    r.add_range("QLinearMatMul", 10, MAX_OPSET, |_| nn(NnOp::QLinearMatMul), "u8 i8 (float scales)", "");
    r.add("BatchNormalization", batch_norm, FLOAT_TYPES, "spatial=0, is_test=0, saved_mean/saved_var outputs (opsets < 14)");
    r.add("InstanceNormalization", instance_norm, FLOAT_TYPES, "");
    r.add_range("LayerNormalization", 17, MAX_OPSET, layer_norm, FLOAT_TYPES, "");
    r.add_range("GroupNormalization", 18, MAX_OPSET, group_norm, FLOAT_TYPES, "");
    r.add_range("RMSNormalization", 23, MAX_OPSET, rms_norm, FLOAT_TYPES, "");
    r.add("LpNormalization", lp_norm, FLOAT_TYPES, "p other than 1 and 2");
    r.add_range("MeanVarianceNormalization", 9, MAX_OPSET, mvn, FLOAT_TYPES, "");
    r.add("LRN", lrn, FLOAT_TYPES, "");
    r.add("Softmax", |cx| softmax(cx, SoftmaxKind::Softmax), FLOAT_TYPES, "");
    r.add("LogSoftmax", |cx| softmax(cx, SoftmaxKind::LogSoftmax), FLOAT_TYPES, "");
    r.add("Hardmax", |cx| softmax(cx, SoftmaxKind::Hardmax), FLOAT_TYPES, "");
    r.add_range("QuantizeLinear", 10, MAX_OPSET, quantize, "f32 f16 bf16 f64 i32 → u8 i8", "block_size≠0, outputs other than u8/i8 (int4, int16, float8)");
    r.add_range("DynamicQuantizeLinear", 11, MAX_OPSET, |_| nn(NnOp::DynamicQuantizeLinear), "f32 → u8", "");
    r.add_range("DequantizeLinear", 10, MAX_OPSET, dequantize, "u8 i8 i32 → f32 f16 bf16 f64", "block_size≠0, inputs other than u8/i8/i32");
}

fn nn(op: NnOp) -> Result<Imported, ImportError> {
    Ok(Op::Nn(op).into())
}

/// A float attribute as f64.
fn attr_f64(cx: &NodeCx, name: &str, default: f32) -> Result<f64, ImportError> {
    Ok(cx.attr_f(name, default)? as f64)
}

fn gemm(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let g = Gemm { alpha: attr_f64(cx, "alpha", 1.0)?, beta: attr_f64(cx, "beta", 1.0)?, trans_a: cx.attr_i("transA", 0)? != 0, trans_b: cx.attr_i("transB", 0)? != 0 };
    // Opset < 7's `broadcast` flag: C always broadcasts from opset 7 on.
    cx.ignore("broadcast");
    nn(NnOp::Gemm(g))
}

fn batch_norm(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    cx.ignore("consumed_inputs");
    if let Some(0) = cx.attr_i_opt("is_test")? {
        return Err(cx.unsupported("is_test", 0));
    }
    let spatial = cx.attr_i("spatial", 1)?;
    if spatial != 1 {
        return Err(cx.unsupported("spatial", spatial));
    }
    let named = cx.node.output.iter().rposition(|o| !o.is_empty()).map_or(1, |i| i + 1);
    // From opset 14 the `training_mode` attribute selects training; before,
    // naming the statistics outputs did.
    let training = if cx.opset >= 14 { cx.attr_i("training_mode", 0)? != 0 } else { named > 1 };
    let epsilon = attr_f64(cx, "epsilon", 1e-5)?;
    if !training {
        cx.ignore("momentum");
        if named > 1 {
            return Err(cx.error("the running mean and variance outputs need training_mode=1"));
        }
        return nn(NnOp::BatchNorm(BatchNorm { epsilon }));
    }
    if cx.n_outputs() > 3 {
        return Err(cx.unsupported("outputs", "saved_mean/saved_var (training outputs of opsets < 14)"));
    }
    let momentum = attr_f64(cx, "momentum", 0.9)?;
    nn(NnOp::BatchNormTraining(BatchNormTraining { epsilon, momentum, outputs: cx.n_outputs() }))
}

fn instance_norm(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    nn(NnOp::InstanceNorm(InstanceNorm { epsilon: attr_f64(cx, "epsilon", 1e-5)? }))
}

/// `stash_type`: the dtype statistics are kept in (computed in f64 anyway).
fn stash_type(cx: &NodeCx) -> Result<DType, ImportError> {
    let code = cx.attr_i("stash_type", 1)?;
    let d = dtype_from_onnx(code as i32, "stash_type").map_err(|_| cx.unsupported("stash_type", code))?;
    if !d.is_float() {
        return Err(cx.unsupported("stash_type", code));
    }
    Ok(d)
}

fn layer_norm(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let outputs = cx.n_outputs();
    if !(1..=3).contains(&outputs) {
        return Err(cx.error(format!("LayerNormalization has 1 to 3 outputs, the node names {outputs}")));
    }
    let ln = LayerNorm { axis: cx.attr_i("axis", -1)?, epsilon: attr_f64(cx, "epsilon", 1e-5)?, stash: stash_type(cx)?, outputs };
    nn(NnOp::LayerNorm(ln))
}

fn group_norm(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let groups = cx.attr_i_opt("num_groups")?.ok_or_else(|| cx.error("num_groups is required"))?;
    if groups < 1 {
        return Err(cx.error(format!("num_groups must be positive, found {groups}")));
    }
    stash_type(cx)?;
    let gn = GroupNorm { num_groups: groups as usize, epsilon: attr_f64(cx, "epsilon", 1e-5)?, per_group_affine: cx.opset < 21 };
    nn(NnOp::GroupNorm(gn))
}

fn rms_norm(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    stash_type(cx)?;
    nn(NnOp::RmsNorm(RmsNorm { axis: cx.attr_i("axis", -1)?, epsilon: attr_f64(cx, "epsilon", 1e-5)? }))
}

fn lp_norm(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let p = cx.attr_i("p", 2)?;
    if !matches!(p, 1 | 2) {
        return Err(cx.unsupported("p", p));
    }
    nn(NnOp::LpNorm(LpNorm { axis: cx.attr_i("axis", -1)?, p: p as u32 }))
}

fn mvn(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let axes = cx.attr_ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]);
    nn(NnOp::MeanVarianceNorm(MeanVarianceNorm { axes }))
}

fn lrn(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let size = cx.attr_i_opt("size")?.ok_or_else(|| cx.error("size is required"))?;
    if size < 1 {
        return Err(cx.error(format!("size must be positive, found {size}")));
    }
    let l = Lrn { size: size as usize, alpha: attr_f64(cx, "alpha", 1e-4)?, beta: attr_f64(cx, "beta", 0.75)?, bias: attr_f64(cx, "bias", 1.0)? };
    nn(NnOp::Lrn(l))
}

fn softmax(cx: &mut NodeCx, kind: SoftmaxKind) -> Result<Imported, ImportError> {
    // Before opset 13 the input is coerced to 2-D at `axis` (default 1).
    let flatten = cx.opset < 13;
    let axis = cx.attr_i("axis", if flatten { 1 } else { -1 })?;
    nn(NnOp::Softmax(Softmax { kind, axis, flatten }))
}

/// Refuses blocked quantisation.
fn block_size(cx: &NodeCx) -> Result<(), ImportError> {
    let b = cx.attr_i("block_size", 0)?;
    if b != 0 {
        return Err(cx.unsupported("block_size", b));
    }
    Ok(())
}

/// The `output_dtype` attribute (0: unset).
fn output_dtype(cx: &NodeCx) -> Result<Option<DType>, ImportError> {
    match cx.attr_i("output_dtype", 0)? {
        0 => Ok(None),
        code => dtype_from_onnx(code as i32, "output_dtype").map(Some).map_err(|_| cx.unsupported("output_dtype", code)),
    }
}

fn quantize(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    block_size(cx)?;
    // `saturate` only concerns float8 outputs, which kann refuses; integers always saturate.
    cx.ignore("saturate");
    let out = output_dtype(cx)?;
    if let Some(d) = out {
        if !matches!(d, DType::U8 | DType::I8) {
            return Err(cx.unsupported("output_dtype", d));
        }
    }
    let precision = match cx.attr_i("precision", 0)? {
        0 => None,
        code => match dtype_from_onnx(code as i32, "precision") {
            Ok(d) if d.is_float() => Some(d),
            _ => return Err(cx.unsupported("precision", code)),
        },
    };
    nn(NnOp::QuantizeLinear(QuantizeLinear { axis: cx.attr_i("axis", 1)?, output_dtype: out, precision }))
}

fn dequantize(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    block_size(cx)?;
    let out = output_dtype(cx)?;
    if let Some(d) = out {
        if !d.is_float() {
            return Err(cx.unsupported("output_dtype", d));
        }
    }
    nn(NnOp::DequantizeLinear(DequantizeLinear { axis: cx.attr_i("axis", 1)?, output_dtype: out }))
}
