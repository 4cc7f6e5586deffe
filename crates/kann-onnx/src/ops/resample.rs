//! Resize and Upsample. Upsample (opsets 7–9) and Resize-10 become a Resize
//! with asymmetric coordinates and floor rounding for `nearest`, their scales
//! moved to input #2 (`X, roi, scales, sizes`).

use crate::node::NodeCx;
use crate::registry::{Imported, Registry, MAX_OPSET};
use crate::ImportError;
use kann_ir::ops::resample::{AffineGrid, GridMode, GridPadding, GridSample, AspectPolicy, CoordMode, NearestMode, ResampleOp, Resize, ResizeMode};
use kann_ir::Op;
use kann_tensor::{Shape, Tensor};

pub(super) fn register(r: &mut Registry) {
    r.add_range("Upsample", 7, 9, upsample, "all (linear: numeric)", "mode other than nearest/linear/bilinear");
    r.add_range("Resize", 10, MAX_OPSET, resize, "all (linear/cubic: numeric)", "non-constant scales/sizes/roi");
    r.add_range("GridSample", 16, MAX_OPSET, grid_sample, "f32 f16 bf16 f64", "");
    r.add_range("AffineGrid", 20, MAX_OPSET, affine_grid, "f32 f16 bf16 f64", "non-constant size");
}

/// A Resize with the legacy (Upsample / Resize-10) semantics.
fn legacy(mode: ResizeMode) -> Resize {
    Resize { nearest: NearestMode::Floor, ..Resize::new(mode, CoordMode::Asymmetric) }
}

/// `mode` of Upsample and Resize-10: nearest (default) or (bi)linear.
fn legacy_mode(cx: &NodeCx) -> Result<ResizeMode, ImportError> {
    match cx.attr_s("mode")?.as_deref().unwrap_or("nearest") {
        "nearest" => Ok(ResizeMode::Nearest),
        "linear" | "bilinear" => Ok(ResizeMode::Linear),
        other => Err(cx.unsupported("mode", other)),
    }
}

/// Upsample-7 has a `scales` attribute; Upsample-9 a `scales` input.
fn upsample(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let op = legacy(legacy_mode(cx)?);
    let x = cx.inputs.first().copied().flatten();
    if cx.opset < 9 {
        let scales = cx.attr_floats("scales")?.ok_or_else(|| cx.error("Upsample-7 needs the attribute 'scales'"))?;
        cx.inputs = vec![x];
        let t = Tensor::from_f32(Shape::from([scales.len()]), scales).map_err(|e| cx.error(e))?;
        cx.set_const_input(2, t, "scales");
    } else {
        let scales = cx.inputs.get(1).copied().flatten().ok_or_else(|| cx.error("Upsample-9 needs the 'scales' input"))?;
        cx.inputs = vec![x, None, Some(scales)];
    }
    Ok(Op::Resample(ResampleOp::Resize(op)).into())
}

fn resize(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    if cx.opset < 11 {
        let op = legacy(legacy_mode(cx)?);
        let x = cx.inputs.first().copied().flatten();
        let scales = cx.inputs.get(1).copied().flatten().ok_or_else(|| cx.error("Resize-10 needs the 'scales' input"))?;
        cx.inputs = vec![x, None, Some(scales)];
        return Ok(Op::Resample(ResampleOp::Resize(op)).into());
    }
    let mode = match cx.attr_s("mode")?.as_deref().unwrap_or("nearest") {
        "nearest" => ResizeMode::Nearest,
        "linear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic,
        other => return Err(cx.unsupported("mode", other)),
    };
    let coord = coord_mode(cx)?;
    let nearest = match cx.attr_s("nearest_mode")?.as_deref().unwrap_or("round_prefer_floor") {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        other => return Err(cx.unsupported("nearest_mode", other)),
    };
    let cubic_coeff_a = cx.attr_f("cubic_coeff_a", -0.75)? as f64;
    let exclude_outside = cx.attr_i("exclude_outside", 0)? != 0;
    let extrapolation_value = cx.attr_f("extrapolation_value", 0.0)? as f64;
    let (axes, keep_aspect_ratio, antialias) = if cx.opset >= 18 { opset18_attrs(cx)? } else { (None, AspectPolicy::Stretch, false) };
    let op = Resize { mode, coord, nearest, cubic_coeff_a, exclude_outside, extrapolation_value, axes, keep_aspect_ratio, antialias };
    Ok(Op::Resample(ResampleOp::Resize(op)).into())
}

/// `coordinate_transformation_mode`, with the values each opset allows.
fn coord_mode(cx: &NodeCx) -> Result<CoordMode, ImportError> {
    let name = cx.attr_s("coordinate_transformation_mode")?.unwrap_or_else(|| "half_pixel".into());
    Ok(match name.as_str() {
        "half_pixel" => CoordMode::HalfPixel,
        "half_pixel_symmetric" if cx.opset >= 19 => CoordMode::HalfPixelSymmetric,
        "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
        "align_corners" => CoordMode::AlignCorners,
        "asymmetric" => CoordMode::Asymmetric,
        "tf_half_pixel_for_nn" if cx.opset < 13 => CoordMode::TfHalfPixelForNn,
        "tf_crop_and_resize" => CoordMode::TfCropAndResize,
        other => return Err(cx.unsupported("coordinate_transformation_mode", format!("{other} (at opset {})", cx.opset))),
    })
}

/// Opset 18's `axes`, `keep_aspect_ratio_policy` and `antialias`.
fn opset18_attrs(cx: &NodeCx) -> Result<(Option<Vec<i64>>, AspectPolicy, bool), ImportError> {
    let mut axes = cx.attr_ints("axes")?;
    if let (Some(a), Some(info)) = (axes.as_mut(), cx.input_info(0)) {
        let rank = info.rank() as i64;
        a.iter_mut().filter(|v| **v < 0 && **v >= -rank).for_each(|v| *v += rank);
    }
    let policy = match cx.attr_s("keep_aspect_ratio_policy")?.as_deref().unwrap_or("stretch") {
        "stretch" => AspectPolicy::Stretch,
        "not_larger" => AspectPolicy::NotLarger,
        "not_smaller" => AspectPolicy::NotSmaller,
        other => return Err(cx.unsupported("keep_aspect_ratio_policy", other)),
    };
    let antialias = cx.attr_i("antialias", 0)? != 0;
    Ok((axes, policy, antialias))
}

/// GridSample: 4-D input with modes bilinear / nearest / bicubic until
/// opset 20, then N-D with modes linear / nearest / cubic.
fn grid_sample(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let modern = cx.opset >= 20;
    let default_mode = if modern { "linear" } else { "bilinear" };
    let mode = match cx.attr_s("mode")?.as_deref().unwrap_or(default_mode) {
        "nearest" => GridMode::Nearest,
        "bilinear" if !modern => GridMode::Linear,
        "bicubic" if !modern => GridMode::Cubic,
        "linear" if modern => GridMode::Linear,
        "cubic" if modern => GridMode::Cubic,
        other => return Err(cx.unsupported("mode", format!("{other} (at opset {})", cx.opset))),
    };
    let padding = match cx.attr_s("padding_mode")?.as_deref().unwrap_or("zeros") {
        "zeros" => GridPadding::Zeros,
        "border" => GridPadding::Border,
        "reflection" => GridPadding::Reflection,
        other => return Err(cx.unsupported("padding_mode", other)),
    };
    let align_corners = cx.attr_i("align_corners", 0)? != 0;
    if !modern {
        if let Some(info) = cx.input_info(0) {
            if info.rank() != 4 {
                return Err(cx.error(format!("GridSample before opset 20 takes a 4-D input, found {info}")));
            }
        }
    }
    Ok(Op::Resample(ResampleOp::GridSample(GridSample { mode, padding, align_corners })).into())
}

fn affine_grid(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let align_corners = cx.attr_i("align_corners", 0)? != 0;
    Ok(Op::Resample(ResampleOp::AffineGrid(AffineGrid { align_corners })).into())
}
