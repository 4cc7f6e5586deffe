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

#[cfg(test)]
mod tests {
    use super::super::movement::tests::{check_op, f32_in, ints, Arg};
    use kann_ir::ops::resample::{CoordMode, NearestMode, ResampleOp, Resize, ResizeMode};
    use kann_ir::Op;
    use kann_tensor::{DType, Shape, Tensor};

    fn floats(v: &[f32]) -> Arg {
        Arg::Const(Tensor::from_f32(Shape::from([v.len()]), v.to_vec()).unwrap())
    }

    fn check(r: Resize, x: Arg, scales: &[f32], sizes: &[i64]) {
        let roi = if r.coord == CoordMode::TfCropAndResize { floats(&[0.0, 0.0, 0.2, 0.1, 1.0, 1.0, 0.9, 1.2]) } else { Arg::Absent };
        let scales = if scales.is_empty() { Arg::Absent } else { floats(scales) };
        let sizes = if sizes.is_empty() { Arg::Absent } else { ints(sizes) };
        check_op(Op::Resample(ResampleOp::Resize(r)), &[x, roi, scales, sizes], 1);
    }

    const COORDS: [CoordMode; 6] =
        [CoordMode::HalfPixel, CoordMode::HalfPixelSymmetric, CoordMode::PytorchHalfPixel, CoordMode::AlignCorners, CoordMode::Asymmetric, CoordMode::TfCropAndResize];

    #[test]
    fn nearest_every_mode_and_dtype() {
        let modes = [NearestMode::RoundPreferFloor, NearestMode::RoundPreferCeil, NearestMode::Floor, NearestMode::Ceil];
        for (i, coord) in COORDS.into_iter().chain([CoordMode::TfHalfPixelForNn]).enumerate() {
            for (j, nearest) in modes.into_iter().enumerate() {
                let r = Resize { nearest, extrapolation_value: 3.0, ..Resize::new(ResizeMode::Nearest, coord) };
                let dtype = [DType::F32, DType::I64, DType::U8][(i + j) % 3];
                check(r.clone(), Arg::In(dtype, vec![1, 2, 3, 4]), &[1.0, 1.0, 2.0, 1.5], &[]);
                check(r, Arg::In(dtype, vec![1, 2, 4, 5]), &[], &[1, 2, 3, 2]);
            }
        }
    }

    #[test]
    fn linear_and_cubic_every_coordinate_mode() {
        for coord in COORDS {
            for mode in [ResizeMode::Linear, ResizeMode::Cubic] {
                let r = Resize { extrapolation_value: -1.0, ..Resize::new(mode, coord) };
                check(r.clone(), f32_in(&[1, 2, 3, 4]), &[1.0, 1.0, 2.0, 1.5], &[]);
                check(r.clone(), f32_in(&[2, 1, 5, 6]), &[], &[2, 1, 3, 4]);
                let r = Resize { exclude_outside: true, ..r };
                check(r, f32_in(&[1, 1, 4, 4]), &[1.0, 1.0, 1.7, 0.6], &[]);
            }
        }
    }

    #[test]
    fn antialias_axes_and_trilinear() {
        let r = Resize { antialias: true, ..Resize::new(ResizeMode::Linear, CoordMode::HalfPixel) };
        check(r, f32_in(&[1, 1, 8, 9]), &[1.0, 1.0, 0.4, 0.3], &[]);
        let r = Resize { axes: Some(vec![-2, -1]), ..Resize::new(ResizeMode::Linear, CoordMode::AlignCorners) };
        check(r, f32_in(&[1, 3, 4, 4]), &[], &[7, 5]);
        check(Resize::new(ResizeMode::Linear, CoordMode::HalfPixel), f32_in(&[2, 3, 4]), &[2.0, 0.5, 1.5], &[]);
        check(Resize::new(ResizeMode::Nearest, CoordMode::Asymmetric), f32_in(&[1, 16, 32, 32]), &[1.0, 1.0, 2.0, 2.0], &[]);
    }
}
