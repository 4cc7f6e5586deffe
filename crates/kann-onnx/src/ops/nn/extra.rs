//! Import of `RotaryEmbedding`, `Einsum`, `MaxUnpool`, `RoiAlign`,
//! `DeformConv` and `Det`.

use super::conv::{group, sizes, window};
use super::FLOAT_TYPES;
use crate::node::NodeCx;
use crate::registry::{Imported, Registry, MAX_OPSET};
use crate::ImportError;
use kann_ir::ops::nn::{ConvAttrs, DeformConv, Einsum, MaxUnpool, NnOp, RoiAlign, RotaryEmbedding};
use kann_ir::Op;

pub(super) fn register(r: &mut Registry) {
    r.add_range("RotaryEmbedding", 23, MAX_OPSET, rotary, FLOAT_TYPES, "");
    r.add_range("Einsum", 12, MAX_OPSET, einsum, "f32 f16 bf16 f64 i8 u8 i32 i64", "");
    r.add_range("MaxUnpool", 9, MAX_OPSET, max_unpool, FLOAT_TYPES, "");
    r.add_range("RoiAlign", 10, MAX_OPSET, roi_align, FLOAT_TYPES, "");
    r.add_range("DeformConv", 19, MAX_OPSET, deform_conv, FLOAT_TYPES, "inputs other than 2-D");
    r.add_range("Det", 11, MAX_OPSET, |_| nn(NnOp::Det), FLOAT_TYPES, "");
}

fn nn(op: NnOp) -> Result<Imported, ImportError> {
    Ok(Op::Nn(op).into())
}

/// A non-negative int attribute as usize.
fn count(cx: &NodeCx, name: &str, default: i64) -> Result<usize, ImportError> {
    let v = cx.attr_i(name, default)?;
    usize::try_from(v).map_err(|_| cx.error(format!("{name} must be non-negative, found {v}")))
}

fn rotary(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let num_heads = match count(cx, "num_heads", 0)? {
        0 => None,
        h => Some(h),
    };
    let r = RotaryEmbedding { num_heads, rotary_dim: count(cx, "rotary_embedding_dim", 0)?, interleaved: cx.attr_i("interleaved", 0)? != 0 };
    nn(NnOp::RotaryEmbedding(r))
}

fn einsum(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let equation = cx.attr_s("equation")?.ok_or_else(|| cx.error("equation is required"))?;
    nn(NnOp::Einsum(Einsum { equation }))
}

fn max_unpool(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let kernel_shape = sizes(cx, "kernel_shape", true)?;
    if kernel_shape.is_empty() {
        return Err(cx.error("kernel_shape is required"));
    }
    let m = MaxUnpool { kernel_shape, strides: sizes(cx, "strides", true)?, pads: sizes(cx, "pads", false)? };
    nn(NnOp::MaxUnpool(m))
}

fn roi_align(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let max = match cx.attr_s("mode")?.as_deref() {
        None | Some("avg") => false,
        Some("max") => true,
        Some(other) => return Err(cx.unsupported("mode", other)),
    };
    // Opset 10 has no attribute and behaves as `output_half_pixel`.
    let default = if cx.opset < 16 { "output_half_pixel" } else { "half_pixel" };
    let half_pixel = match cx.attr_s("coordinate_transformation_mode")?.as_deref().unwrap_or(default) {
        "half_pixel" => true,
        "output_half_pixel" => false,
        other => return Err(cx.unsupported("coordinate_transformation_mode", other)),
    };
    let r = RoiAlign {
        max,
        half_pixel,
        output_height: count(cx, "output_height", 1)?,
        output_width: count(cx, "output_width", 1)?,
        sampling_ratio: count(cx, "sampling_ratio", 0)?,
        spatial_scale: cx.attr_f("spatial_scale", 1.0)? as f64,
    };
    nn(NnOp::RoiAlign(r))
}

fn deform_conv(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let attrs = ConvAttrs { window: window(cx, false)?, group: group(cx)? };
    let offset_group = count(cx, "offset_group", 1)?;
    if offset_group == 0 {
        return Err(cx.error("offset_group must be positive"));
    }
    nn(NnOp::DeformConv(DeformConv { attrs, offset_group }))
}
