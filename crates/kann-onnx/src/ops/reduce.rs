//! Reductions (ReduceSum, ReduceMean…), ArgMax/ArgMin, TopK, CumSum, NonZero.

use crate::node::NodeCx;
use crate::registry::{Imported, Registry};
use crate::ImportError;
use kann_ir::ops::reduce::{ArgKind, ArgReduce, CumSum, Loss, LossKind, LossReduction, Reduce, ReduceKind, ReduceOp, TopK};
use kann_ir::Op;
use kann_tensor::Tensor;

const REDUCE_DTYPES: &str = "f32 f16 bf16 f64 i32 i64";
const MINMAX_DTYPES: &str = "f32 f16 bf16 f64 i8 u8 i32 i64 bool";

pub(super) fn register(r: &mut Registry) {
    r.add("ReduceSum", |cx| reduce(cx, ReduceKind::Sum), REDUCE_DTYPES, "non-constant axes");
    r.add("ReduceMean", |cx| reduce(cx, ReduceKind::Mean), REDUCE_DTYPES, "non-constant axes");
    r.add("ReduceMax", |cx| reduce(cx, ReduceKind::Max), MINMAX_DTYPES, "non-constant axes");
    r.add("ReduceMin", |cx| reduce(cx, ReduceKind::Min), MINMAX_DTYPES, "non-constant axes");
    r.add("ReduceProd", |cx| reduce(cx, ReduceKind::Prod), REDUCE_DTYPES, "non-constant axes");
    r.add("ReduceL1", |cx| reduce(cx, ReduceKind::L1), REDUCE_DTYPES, "non-constant axes");
    r.add("ReduceL2", |cx| reduce(cx, ReduceKind::L2), REDUCE_DTYPES, "non-constant axes");
    r.add("ReduceLogSum", |cx| reduce(cx, ReduceKind::LogSum), REDUCE_DTYPES, "non-constant axes");
    r.add("ReduceLogSumExp", |cx| reduce(cx, ReduceKind::LogSumExp), REDUCE_DTYPES, "non-constant axes");
    r.add("ReduceSumSquare", |cx| reduce(cx, ReduceKind::SumSquare), REDUCE_DTYPES, "non-constant axes");
    r.add("ArgMax", |cx| arg(cx, ArgKind::Max), "numeric", "");
    r.add("ArgMin", |cx| arg(cx, ArgKind::Min), "numeric", "");
    r.add("TopK", topk, "numeric", "K not constant");
    r.add_range("CumSum", 11, crate::registry::MAX_OPSET, cumsum, "f32 f16 bf16 f64 i32 i64", "");
    r.add_range("CumProd", 26, crate::registry::MAX_OPSET, cumprod, "f32 f16 bf16 f64 i32 i64", "");
    r.add_range("NegativeLogLikelihoodLoss", 12, crate::registry::MAX_OPSET, |cx| loss(cx, LossKind::NegativeLogLikelihood), "f32 f16 bf16 f64", "");
    r.add_range("SoftmaxCrossEntropyLoss", 12, crate::registry::MAX_OPSET, |cx| loss(cx, LossKind::SoftmaxCrossEntropy), "f32 f16 bf16 f64", "");
    r.add_range("NonZero", 9, crate::registry::MAX_OPSET, nonzero, "all", "non-constant input");
}

/// Reductions: `axes` is an attribute until opset 13 (ReduceSum) or 18 (the
/// others), then input #1 with `noop_with_empty_axes`.
fn reduce(cx: &mut NodeCx, kind: ReduceKind) -> Result<Imported, ImportError> {
    let axes_as_input_since = if kind == ReduceKind::Sum { 13 } else { 18 };
    let keepdims = cx.attr_i("keepdims", 1)? != 0;
    let mut noop_with_empty_axes = false;
    if cx.opset >= axes_as_input_since {
        noop_with_empty_axes = cx.attr_i("noop_with_empty_axes", 0)? != 0;
    } else {
        if cx.n_inputs() > 1 {
            return Err(cx.error(format!("{} takes one input before opset {axes_as_input_since}", kind.name())));
        }
        if let Some(axes) = cx.attr_ints("axes")? {
            cx.set_const_input(1, Tensor::vec_i64(axes), "axes");
        }
    }
    Ok(Op::Reduce(ReduceOp::Reduce(Reduce { kind, keepdims, noop_with_empty_axes })).into())
}

/// Normalises `axis` against input #0's rank when it is known.
fn normalised_axis(cx: &NodeCx, axis: i64) -> i64 {
    match cx.input_info(0) {
        Some(info) if axis < 0 && axis >= -(info.rank() as i64) => axis + info.rank() as i64,
        _ => axis,
    }
}

/// ArgMax / ArgMin: `select_last_index` exists from opset 12.
fn arg(cx: &mut NodeCx, kind: ArgKind) -> Result<Imported, ImportError> {
    let axis = normalised_axis(cx, cx.attr_i("axis", 0)?);
    let keepdims = cx.attr_i("keepdims", 1)? != 0;
    let select_last_index = if cx.opset >= 12 { cx.attr_i("select_last_index", 0)? != 0 } else { false };
    Ok(Op::Reduce(ReduceOp::Arg(ArgReduce { kind, axis, keepdims, select_last_index })).into())
}

/// TopK: `k` is an attribute before opset 10, then input #1; `largest` and
/// `sorted` exist from opset 11.
fn topk(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let axis = normalised_axis(cx, cx.attr_i("axis", -1)?);
    if cx.opset < 10 {
        let k = cx.attr_i_opt("k")?.ok_or_else(|| cx.error("TopK before opset 10 needs the attribute 'k'"))?;
        cx.set_const_input(1, Tensor::vec_i64(vec![k]), "k");
    }
    let (largest, sorted) = if cx.opset >= 11 { (cx.attr_i("largest", 1)? != 0, cx.attr_i("sorted", 1)? != 0) } else { (true, true) };
    Ok(Op::Reduce(ReduceOp::TopK(TopK { axis, largest, sorted })).into())
}

/// `exclusive` / `reverse` of CumSum and CumProd.
fn cumulative(cx: &NodeCx) -> Result<CumSum, ImportError> {
    let exclusive = cx.attr_i("exclusive", 0)? != 0;
    let reverse = cx.attr_i("reverse", 0)? != 0;
    Ok(CumSum { exclusive, reverse })
}

fn cumsum(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    Ok(Op::Reduce(ReduceOp::CumSum(cumulative(cx)?)).into())
}

fn cumprod(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    Ok(Op::Reduce(ReduceOp::CumProd(cumulative(cx)?)).into())
}

/// NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss (the same attributes
/// in every opset: `reduction`, default mean, and optional `ignore_index`).
fn loss(cx: &mut NodeCx, kind: LossKind) -> Result<Imported, ImportError> {
    let reduction = match cx.attr_s("reduction")?.as_deref().unwrap_or("mean") {
        "none" => LossReduction::None,
        "sum" => LossReduction::Sum,
        "mean" => LossReduction::Mean,
        other => return Err(cx.unsupported("reduction", other)),
    };
    let ignore_index = cx.attr_i_opt("ignore_index")?;
    Ok(Op::Reduce(ReduceOp::Loss(Loss { kind, reduction, ignore_index })).into())
}

fn nonzero(_cx: &mut NodeCx) -> Result<Imported, ImportError> {
    Ok(Op::Reduce(ReduceOp::NonZero).into())
}
