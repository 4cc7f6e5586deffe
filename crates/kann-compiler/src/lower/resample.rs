//! Lowering of the resample family: Resize. The IR computes the geometry
//! (output shape, per-axis taps) exactly as the reference uses it; here it
//! becomes either a [`Remap`] (nearest, where every output reads one input
//! element or the extrapolation value: any dtype) or a tap-based f32
//! [`Resize`] kernel (linear, cubic, antialiased, and nearest with
//! `exclude_outside` reaching outside the input).

use super::movement::{scalar_bytes, strides, view_or_copy};
use super::{elem_type, require_f32, LowerCx, LowerResult, Operand};
use kann_ir::ops::resample::{ResampleOp, Resize as IrResize, ResizeMode, Taps};
use kann_ir::{Node, NodeId};
use kann_kernels::movement::{Remap, RemapAxis, RemapOp, FILL};
use kann_kernels::resample::{Resize, ResizeAxis};
use kann_kernels::Kernel;
use kann_tensor::{Shape, Tensor};

pub(super) fn lower(cx: &mut LowerCx, id: NodeId, node: &Node, op: &ResampleOp) -> LowerResult {
    match op {
        ResampleOp::Resize(r) => resize(cx, id, node, r),
        _ => Err(format!("the compiler does not lower {} yet", op.name())),
    }
}

/// Refuses a non-constant optional input `i` (it decides the geometry).
fn require_const(cx: &LowerCx, node: &Node, i: usize, what: &str) -> LowerResult {
    match cx.optional_input(node, i) {
        Some(v) if cx.constant(v).is_none() => Err(format!("input '{what}' must be a constant")),
        _ => Ok(()),
    }
}

fn resize(cx: &mut LowerCx, id: NodeId, node: &Node, r: &IrResize) -> LowerResult {
    let x = cx.input(node, 0)?;
    let y = node.outputs[0];
    for (i, what) in [(2, "scales"), (3, "sizes")] {
        require_const(cx, node, i, what)?;
    }
    let input = |i: usize| cx.optional_input(node, i).and_then(|v| cx.constant(v));
    let roi = if r.coord == kann_ir::ops::resample::CoordMode::TfCropAndResize {
        require_const(cx, node, 1, "roi")?;
        input(1).map(Tensor::to_f64_vec)
    } else {
        None
    };
    let dims = cx.info(x).shape.to_vec();
    let plan = r.plan(&dims, roi, input(2).map(Tensor::to_f64_vec), input(3).map(Tensor::to_i64_vec))?;
    if plan.out_dims != cx.info(y).shape.dims() {
        return Err(format!("the resize plan gives shape {:?} but inference said {}", plan.out_dims, cx.info(y).shape));
    }
    let taps: Vec<Option<Vec<Taps>>> = (0..dims.len())
        .map(|a| if r.is_identity(&plan, &dims, a) { None } else { Some(r.axis_taps(dims[a], plan.out_dims[a], plan.scales[a], plan.roi[a])) })
        .collect();
    let st = strides(&dims);
    let single = taps.iter().flatten().flatten().all(|t| t.as_ref().is_none_or(|v| v.len() == 1));
    if r.mode == ResizeMode::Nearest && single {
        return nearest(cx, id, node, r, &dims, &st, &taps);
    }
    require_f32(cx, x, "input X of an interpolating Resize")?;
    let axes = taps
        .iter()
        .enumerate()
        .map(|(a, t)| match t {
            None => ResizeAxis::identity(dims[a] as u64, st[a] as u64),
            Some(t) => ResizeAxis::from_taps(t, st[a] as u64),
        })
        .collect();
    let mode = match r.mode {
        ResizeMode::Nearest => "nearest",
        ResizeMode::Linear => "linear",
        ResizeMode::Cubic => "cubic",
    };
    let k = Resize { mode: mode.into(), axes, extrapolation: r.extrapolation_value as f32 };
    let flops = 2 * k.axes.iter().map(|a| a.taps as u64).product::<u64>() * cx.info(y).numel() as u64;
    cx.push(id, Kernel::Resize(k), vec![Operand::Value(x)], vec![Operand::Value(y)], flops);
    Ok(())
}

/// Nearest: a gather with one table per resized axis.
fn nearest(cx: &mut LowerCx, id: NodeId, node: &Node, r: &IrResize, dims: &[usize], st: &[i64], taps: &[Option<Vec<Taps>>]) -> LowerResult {
    let (x, y) = (cx.input(node, 0)?, node.outputs[0]);
    let dtype = cx.info(y).dtype;
    let value = Tensor::from_f64(dtype, Shape::from([1]), &[r.extrapolation_value]).map_err(|e| e.to_string())?;
    let fill = scalar_bytes(&value, dtype)?;
    let axes = taps
        .iter()
        .enumerate()
        .map(|(a, t)| match t {
            None => RemapAxis::affine(dims[a] as u64, 0, st[a]),
            Some(t) => RemapAxis::table(t.iter().map(|p| p.as_ref().and_then(|v| v.first()).map_or(FILL, |&(j, _)| j as i64 * st[a])).collect()),
        })
        .collect();
    let k = Remap::new(elem_type(dtype), RemapOp::ResizeNearest, axes, fill);
    if cx.info(x).numel() == cx.info(y).numel() && k.is_identity(cx.info(x).numel() as u64) {
        return view_or_copy(cx, id, y, x);
    }
    cx.push(id, Kernel::Remap(k), vec![Operand::Value(x)], vec![Operand::Value(y)], 0);
    Ok(())
}
