//! `Conv`, `ConvTranspose`, `ConvInteger`, `QLinearConv` and the pools.

use super::FLOAT_TYPES;
use crate::node::NodeCx;
use crate::registry::{Imported, Registry};
use crate::ImportError;
use kann_ir::ops::nn::{AutoPad, Conv, ConvAttrs, ConvTranspose, GlobalPool, NnOp, Pool, PoolKind, Window};
use kann_ir::Op;

const WINDOW_LIMITS: &str = "negative pads; kernel, stride, dilation or pad values > 2^24";

pub(super) fn register(r: &mut Registry) {
    r.add("Conv", conv, FLOAT_TYPES, WINDOW_LIMITS);
    r.add("ConvTranspose", conv_transpose, FLOAT_TYPES, WINDOW_LIMITS);
    r.add_range("ConvInteger", 10, crate::registry::MAX_OPSET, conv_integer, "u8 i8 → i32", WINDOW_LIMITS);
    r.add_range("QLinearConv", 10, crate::registry::MAX_OPSET, qlinear_conv, "u8 i8 (f32 scales)", WINDOW_LIMITS);
    r.add("MaxPool", |cx| pool(cx, PoolKind::Max), "f32 f16 bf16 f64 i8 u8", WINDOW_LIMITS);
    r.add("AveragePool", |cx| pool(cx, PoolKind::Average { count_include_pad: false }), FLOAT_TYPES, WINDOW_LIMITS);
    r.add("LpPool", |cx| pool(cx, PoolKind::Lp { p: 2.0 }), FLOAT_TYPES, "p < 1; negative pads; kernel, stride, dilation or pad values > 2^24");
    r.add("GlobalMaxPool", |cx| global_pool(cx, PoolKind::Max), FLOAT_TYPES, "");
    r.add("GlobalAveragePool", |cx| global_pool(cx, PoolKind::Average { count_include_pad: false }), FLOAT_TYPES, "");
    r.add("GlobalLpPool", |cx| global_pool(cx, PoolKind::Lp { p: 2.0 }), FLOAT_TYPES, "p < 1");
}

fn nn(op: NnOp) -> Result<Imported, ImportError> {
    Ok(Op::Nn(op).into())
}

/// A list attribute of non-negative (or, with `positive`, positive) ints.
pub(super) fn sizes(cx: &NodeCx, name: &str, positive: bool) -> Result<Vec<usize>, ImportError> {
    let v = cx.attr_ints(name)?.unwrap_or_default();
    let min = if positive { 1 } else { 0 };
    if let Some(bad) = v.iter().find(|&&x| x < min) {
        return if positive { Err(cx.error(format!("attribute '{name}' = {v:?} must be positive (found {bad})"))) } else { Err(cx.unsupported(name, format!("{v:?} (negative values)"))) };
    }
    Ok(v.into_iter().map(|x| x as usize).collect())
}

/// The window attributes; `ceil_mode` only for pools.
pub(super) fn window(cx: &NodeCx, pooling: bool) -> Result<Window, ImportError> {
    let auto_pad = match cx.attr_s("auto_pad")?.as_deref() {
        None | Some("") | Some("NOTSET") => AutoPad::NotSet,
        Some("SAME_UPPER") => AutoPad::SameUpper,
        Some("SAME_LOWER") => AutoPad::SameLower,
        Some("VALID") => AutoPad::Valid,
        Some(other) => return Err(cx.unsupported("auto_pad", other)),
    };
    Ok(Window {
        kernel_shape: sizes(cx, "kernel_shape", true)?,
        strides: sizes(cx, "strides", true)?,
        dilations: sizes(cx, "dilations", true)?,
        pads: sizes(cx, "pads", false)?,
        auto_pad,
        ceil_mode: pooling && cx.attr_i("ceil_mode", 0)? != 0,
    })
}

pub(super) fn group(cx: &NodeCx) -> Result<usize, ImportError> {
    let g = cx.attr_i("group", 1)?;
    if g < 1 {
        return Err(cx.error(format!("group must be positive, found {g}")));
    }
    Ok(g as usize)
}

fn conv_attrs(cx: &NodeCx) -> Result<ConvAttrs, ImportError> {
    Ok(ConvAttrs { window: window(cx, false)?, group: group(cx)? })
}

fn conv(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    nn(NnOp::Conv(Conv { attrs: conv_attrs(cx)? }))
}

fn conv_integer(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    nn(NnOp::ConvInteger(conv_attrs(cx)?))
}

fn qlinear_conv(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    nn(NnOp::QLinearConv(conv_attrs(cx)?))
}

fn conv_transpose(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let window = window(cx, false)?;
    let output_padding = sizes(cx, "output_padding", false)?;
    let output_shape = sizes(cx, "output_shape", true)?;
    nn(NnOp::ConvTranspose(ConvTranspose { window, group: group(cx)?, output_padding, output_shape }))
}

fn pool(cx: &mut NodeCx, kind: PoolKind) -> Result<Imported, ImportError> {
    let window = window(cx, true)?;
    if window.kernel_shape.is_empty() {
        return Err(cx.error("kernel_shape is required"));
    }
    let kind = match kind {
        PoolKind::Average { .. } => PoolKind::Average { count_include_pad: cx.attr_i("count_include_pad", 0)? != 0 },
        PoolKind::Lp { .. } => PoolKind::Lp { p: lp_norm(cx)? },
        PoolKind::Max => PoolKind::Max,
    };
    let (column_major_indices, with_indices) = if kind == PoolKind::Max {
        let order = cx.attr_i("storage_order", 0)?;
        if !(0..=1).contains(&order) {
            return Err(cx.unsupported("storage_order", order));
        }
        (order == 1, cx.n_outputs() >= 2)
    } else {
        (false, false)
    };
    nn(NnOp::Pool(Pool { kind, window, column_major_indices, with_indices }))
}

/// LpPool's `p` (an int from opset 2; default 2).
fn lp_norm(cx: &NodeCx) -> Result<f64, ImportError> {
    let p = cx.attr_i("p", 2)?;
    if p < 1 {
        return Err(cx.unsupported("p", p));
    }
    Ok(p as f64)
}

fn global_pool(cx: &mut NodeCx, kind: PoolKind) -> Result<Imported, ImportError> {
    let kind = match kind {
        PoolKind::Lp { .. } => PoolKind::Lp { p: lp_norm(cx)? },
        k => k,
    };
    nn(NnOp::GlobalPool(GlobalPool { kind }))
}
