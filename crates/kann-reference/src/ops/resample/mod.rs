//! Resize, written from the ONNX spec: the interpolation is separable, so
//! each resized axis is resampled in turn (in f64) with the taps the IR
//! computes; `nearest` without extrapolation gathers elements exactly.
//! Integer outputs of linear / cubic interpolation round to nearest.

use crate::EvalError;
use kann_ir::ops::resample::{ResampleOp, Resize, ResizeMode, ResizePlan, Taps};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

mod grid;

pub fn eval(op: &ResampleOp, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let x = inputs.first().copied().flatten().ok_or("missing input #0")?;
    let out = outputs.first().ok_or("missing output type")?;
    let input = |i: usize| inputs.get(i).copied().flatten();
    let r = match op {
        ResampleOp::Resize(r) => r,
        ResampleOp::GridSample(g) => return Ok(vec![grid::grid_sample(g, x, input(1).ok_or("missing input grid")?, out)?]),
        ResampleOp::AffineGrid(a) => return Ok(vec![grid::affine_grid(a, x, input(1).ok_or("missing input size")?, out)?]),
    };
    let plan = r.plan(x.dims(), input(1).map(|t| t.to_f64_vec()), input(2).map(|t| t.to_f64_vec()), input(3).map(|t| t.to_i64_vec()))?;
    if plan.out_dims != out.shape.dims() {
        return Err(format!("resize gives shape {:?} but inference said {}", plan.out_dims, out.shape).into());
    }
    Ok(vec![resize(r, x, &plan, out)?])
}

/// Taps of every axis that changes (`None` for unchanged axes).
fn all_taps(r: &Resize, dims: &[usize], plan: &ResizePlan) -> Vec<Option<Vec<Taps>>> {
    (0..dims.len())
        .map(|a| if r.is_identity(plan, dims, a) { None } else { Some(r.axis_taps(dims[a], plan.out_dims[a], plan.scales[a], plan.roi[a])) })
        .collect()
}

fn resize(r: &Resize, x: &Tensor, plan: &ResizePlan, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let taps = all_taps(r, x.dims(), plan);
    if r.mode == ResizeMode::Nearest {
        if let Some(index) = nearest_index(x.dims(), &plan.out_dims, &taps) {
            return Ok(x.gather_flat(out.shape.clone(), &index)?);
        }
    }
    let mut dims = x.dims().to_vec();
    let mut data = x.to_f64_vec();
    for (a, t) in taps.iter().enumerate() {
        if let Some(t) = t {
            data = resample_axis(&data, &dims, a, t, r.extrapolation_value);
            dims[a] = t.len();
        }
    }
    if out.dtype.is_int() {
        // Integer outputs round to nearest (ties to even) and saturate.
        data.iter_mut().for_each(|v| *v = v.round_ties_even());
    }
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &data)?)
}

/// For `nearest` where every output reads exactly one input element: the
/// flat source index of each output element (`None` if some output takes
/// the extrapolation value instead).
fn nearest_index(in_dims: &[usize], out_dims: &[usize], taps: &[Option<Vec<Taps>>]) -> Option<Vec<usize>> {
    // Per axis, the source position of each output position.
    let mut source: Vec<Vec<usize>> = Vec::with_capacity(in_dims.len());
    for (a, t) in taps.iter().enumerate() {
        match t {
            None => source.push((0..in_dims[a]).collect()),
            Some(t) => source.push(t.iter().map(|p| p.as_ref().and_then(|v| (v.len() == 1).then(|| v[0].0))).collect::<Option<Vec<_>>>()?),
        }
    }
    let in_strides = crate::util::strides(in_dims);
    let n: usize = out_dims.iter().product();
    let mut index = Vec::with_capacity(n);
    let mut idx = vec![0usize; out_dims.len()];
    for _ in 0..n {
        index.push(idx.iter().enumerate().map(|(a, &i)| source[a][i] * in_strides[a]).sum());
        for d in (0..out_dims.len()).rev() {
            idx[d] += 1;
            if idx[d] < out_dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Some(index)
}

/// Resamples axis `a` of `data` (shape `dims`) with one tap list per output
/// position.
fn resample_axis(data: &[f64], dims: &[usize], a: usize, taps: &[Taps], extrapolation: f64) -> Vec<f64> {
    let outer: usize = dims[..a].iter().product();
    let inner: usize = dims[a + 1..].iter().product();
    let len = dims[a];
    let mut out = Vec::with_capacity(outer * taps.len() * inner);
    for o in 0..outer {
        for t in taps {
            for i in 0..inner {
                out.push(match t {
                    None => extrapolation,
                    Some(t) => t.iter().map(|&(j, w)| w * data[(o * len + j) * inner + i]).sum(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_ir::ops::resample::{CoordMode, NearestMode};
    use kann_tensor::{DType, Shape};

    fn op(mode: ResizeMode, coord: CoordMode) -> ResampleOp {
        ResampleOp::Resize(Resize { nearest: NearestMode::Floor, ..Resize::new(mode, coord) })
    }

    fn run(op: &ResampleOp, x: &Tensor, scales: &[f32], out: &[usize]) -> Vec<f32> {
        let s = Tensor::from_f32(Shape::from([scales.len()]), scales.to_vec()).unwrap();
        let info = TensorInfo::new(DType::F32, Shape::from(out));
        eval(op, &[Some(x), None, Some(&s)], &[info]).unwrap()[0].as_f32().unwrap().to_vec()
    }

    #[test]
    fn nearest_asymmetric_repeats() {
        let x = Tensor::from_f32(Shape::from([1, 2]), vec![1., 2.]).unwrap();
        let y = run(&op(ResizeMode::Nearest, CoordMode::Asymmetric), &x, &[1.0, 2.0], &[1, 4]);
        assert_eq!(y, vec![1., 1., 2., 2.]);
    }

    #[test]
    fn linear_half_pixel_upsample() {
        let x = Tensor::from_f32(Shape::from([2]), vec![0., 4.]).unwrap();
        let y = run(&op(ResizeMode::Linear, CoordMode::HalfPixel), &x, &[2.0], &[4]);
        assert_eq!(y, vec![0., 1., 3., 4.]);
    }

    #[test]
    fn align_corners_hits_the_ends() {
        let x = Tensor::from_f32(Shape::from([2]), vec![0., 4.]).unwrap();
        let y = run(&op(ResizeMode::Linear, CoordMode::AlignCorners), &x, &[2.5], &[5]);
        assert_eq!(y, vec![0., 1., 2., 3., 4.]);
    }
}
