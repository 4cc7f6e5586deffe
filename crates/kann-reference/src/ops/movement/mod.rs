//! Data-movement ops. Each one computes, for every output element, the flat
//! index of the input element it copies, and builds the result with
//! [`Tensor::gather_flat`], so one code path serves every dtype. Elements
//! that come from no input (padding, zeroed triangles) take a fill value
//! appended after the input's data.

mod col2im;
mod indexing;
mod layout;
mod slicing;

use crate::util::strides;
use crate::EvalError;
use kann_ir::ops::movement::{range_len, shape_range, MovementOp};
use kann_ir::TensorInfo;
use kann_tensor::{DType, Shape, Tensor};

pub fn eval(op: &MovementOp, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let out = outputs.first().ok_or("no output type")?;
    let t = match op {
        MovementOp::Reshape { .. } | MovementOp::Flatten { .. } | MovementOp::Squeeze | MovementOp::Unsqueeze => input(inputs, 0)?.clone().reshape(out.shape.clone())?,
        MovementOp::Transpose { perm } => layout::transpose(input(inputs, 0)?, perm.as_deref(), out)?,
        MovementOp::Expand => layout::expand(input(inputs, 0)?, out)?,
        MovementOp::Tile => layout::tile(input(inputs, 0)?, out)?,
        MovementOp::DepthToSpace { blocksize, mode } => layout::depth_to_space(input(inputs, 0)?, *blocksize, *mode, out)?,
        MovementOp::SpaceToDepth { blocksize, mode } => layout::space_to_depth(input(inputs, 0)?, *blocksize, *mode, out)?,
        MovementOp::Concat { axis } => slicing::concat(inputs, *axis, out)?,
        MovementOp::Split { axis, uneven, .. } => return slicing::split(inputs, *axis, *uneven, outputs),
        MovementOp::Slice => slicing::slice(inputs, out)?,
        MovementOp::Pad { mode } => slicing::pad(inputs, *mode, out)?,
        MovementOp::CenterCropPad { axes } => slicing::center_crop_pad(inputs, axes.as_deref(), out)?,
        MovementOp::Compress { axis } => slicing::compress(inputs, *axis, out)?,
        MovementOp::ReverseSequence { batch_axis, time_axis } => slicing::reverse_sequence(inputs, *batch_axis, *time_axis, out)?,
        MovementOp::Trilu { upper } => slicing::trilu(inputs, *upper, out)?,
        MovementOp::Gather { axis } => indexing::gather(inputs, *axis, out)?,
        MovementOp::GatherElements { axis } => indexing::gather_elements(inputs, *axis, out)?,
        MovementOp::GatherNd { batch_dims } => indexing::gather_nd(inputs, *batch_dims, out)?,
        MovementOp::ScatterNd { reduction } => indexing::scatter_nd(inputs, *reduction, out)?,
        MovementOp::ScatterElements { axis, reduction } => indexing::scatter_elements(inputs, *axis, *reduction, out)?,
        MovementOp::OneHot { axis } => indexing::one_hot(inputs, *axis, out)?,
        MovementOp::Shape { start, end } => shape(input(inputs, 0)?, *start, *end, out)?,
        MovementOp::Size => Tensor::scalar_i64(input(inputs, 0)?.len() as i64),
        MovementOp::ConstantOfShape { value } => value.gather_flat(out.shape.clone(), &vec![0; out.numel()])?,
        MovementOp::Range => range(inputs, out)?,
        MovementOp::EyeLike { k, .. } => eye_like(*k, out)?,
        MovementOp::Col2Im { dilations, pads, strides } => col2im::col2im(inputs, dilations.as_deref(), pads.as_deref(), strides.as_deref(), out)?,
        MovementOp::TensorScatter { axis, circular } => col2im::tensor_scatter(inputs, *axis, *circular, out)?,
        MovementOp::Unique { axis, sorted } => return col2im::unique(inputs, *axis, *sorted, outputs),
    };
    Ok(vec![t])
}

/// Input `i`, which must be present.
fn input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Result<&'a Tensor, EvalError> {
    inputs.get(i).copied().flatten().ok_or_else(|| EvalError::Op(format!("missing input #{i}")))
}

/// Integer values of optional input `i`.
fn opt_i64s(inputs: &[Option<&Tensor>], i: usize) -> Option<Vec<i64>> {
    inputs.get(i).copied().flatten().map(Tensor::to_i64_vec)
}

/// Calls `f` with every multi-index of `shape`, in row-major order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx);
        let mut d = shape.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// `x` gathered so that output element `o` copies the input element at
/// the multi-index `source` writes; where `source` returns false the
/// element is `fill` (a one-element tensor) instead.
fn remap_fill(x: &Tensor, out: &TensorInfo, fill: &Tensor, mut source: impl FnMut(&[usize], &mut [usize]) -> bool) -> Result<Tensor, EvalError> {
    let st = strides(x.dims());
    let sentinel = x.len();
    let mut src = vec![0usize; x.rank()];
    let mut index = Vec::with_capacity(out.numel());
    let mut filled = false;
    for_each_index(out.shape.dims(), |o| {
        if source(o, &mut src) {
            index.push(src.iter().zip(&st).map(|(a, b)| a * b).sum());
        } else {
            filled = true;
            index.push(sentinel);
        }
    });
    if !filled {
        return Ok(x.gather_flat(out.shape.clone(), &index)?);
    }
    let fill = fill.cast(x.dtype());
    let joined = Tensor::concat_flat(x.dtype(), Shape::from([x.len() + fill.len()]), &[x, &fill])?;
    Ok(joined.gather_flat(out.shape.clone(), &index)?)
}

/// [`remap_fill`] where every output element has a source.
fn remap(x: &Tensor, out: &TensorInfo, mut source: impl FnMut(&[usize], &mut [usize])) -> Result<Tensor, EvalError> {
    remap_fill(x, out, &zero(x.dtype()), |o, src| {
        source(o, src);
        true
    })
}

/// A one-element zero of `dtype`.
fn zero(dtype: DType) -> Tensor {
    Tensor::zeros(dtype, Shape::from([1]))
}

fn shape(x: &Tensor, start: i64, end: Option<i64>, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (s, e) = shape_range(x.rank(), start, end);
    let dims: Vec<i64> = x.dims()[s..e].iter().map(|&d| d as i64).collect();
    Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &dims)?)
}

/// The single value of input `i` (a Range scalar).
fn scalar(inputs: &[Option<&Tensor>], i: usize) -> Result<Tensor, EvalError> {
    let t = input(inputs, i)?;
    if t.len() != 1 {
        return Err(EvalError::Op(format!("input #{i} must be a scalar, found shape {}", t.shape())));
    }
    Ok(t.clone())
}

fn range(inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let n = out.numel();
    let (s, l, d) = (scalar(inputs, 0)?, scalar(inputs, 1)?, scalar(inputs, 2)?);
    if out.dtype.is_int() {
        let (s, d) = (s.to_i64_vec()[0], d.to_i64_vec()[0]);
        let v: Vec<i64> = (0..n as i64).map(|i| s.wrapping_add(i.wrapping_mul(d))).collect();
        return Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &v)?);
    }
    let (s, l, d) = (s.to_f64_vec()[0], l.to_f64_vec()[0], d.to_f64_vec()[0]);
    if range_len(s, l, d)? != n {
        return Err(EvalError::Op(format!("Range({s}, {l}, {d}) does not have the inferred length {n}")));
    }
    let v: Vec<f64> = (0..n).map(|i| s + i as f64 * d).collect();
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &v)?)
}

fn eye_like(k: i64, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let cols = out.shape.dims().get(1).copied().ok_or("EyeLike needs a 2-D output")?;
    let v: Vec<i64> = (0..out.numel()).map(|f| ((f % cols) as i64 - (f / cols) as i64 == k) as i64).collect();
    Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &v)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_ir::ops::movement::{BlockMode, PadMode, Reduction};
    use kann_ir::InferInput;

    /// Infers `op` on constant `inputs` and evaluates it.
    fn run(op: MovementOp, inputs: &[Tensor]) -> Vec<Tensor> {
        let infos: Vec<TensorInfo> = inputs.iter().map(TensorInfo::of).collect();
        let infer: Vec<Option<InferInput>> = inputs.iter().zip(&infos).map(|(t, info)| Some(InferInput { info, value: Some(t) })).collect();
        let outs = op.infer(&infer).unwrap();
        let args: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let got = eval(&op, &args, &outs).unwrap();
        for (t, o) in got.iter().zip(&outs) {
            assert_eq!(&TensorInfo::of(t), o);
        }
        got
    }

    fn f32s(dims: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32(Shape::from(dims), v.to_vec()).unwrap()
    }

    fn iota(dims: &[usize]) -> Tensor {
        let n: usize = dims.iter().product();
        Tensor::from_i64(Shape::from(dims), (0..n as i64).collect()).unwrap()
    }

    fn i64s(t: &Tensor) -> Vec<i64> {
        t.to_i64_vec()
    }

    #[test]
    fn transpose_defaults_to_reversed_axes() {
        let y = run(MovementOp::Transpose { perm: None }, &[iota(&[2, 3])]);
        assert_eq!(y[0].dims(), &[3, 2]);
        assert_eq!(i64s(&y[0]), vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn reshape_copies_zero_and_infers_minus_one() {
        let y = run(MovementOp::Reshape { allowzero: false }, &[iota(&[2, 3, 4]), Tensor::vec_i64(vec![0, -1])]);
        assert_eq!(y[0].dims(), &[2, 12]);
    }

    #[test]
    fn slice_with_negative_step_and_clamping() {
        let x = iota(&[5]);
        let y = run(MovementOp::Slice, &[x, Tensor::vec_i64(vec![100]), Tensor::vec_i64(vec![-100]), Tensor::vec_i64(vec![0]), Tensor::vec_i64(vec![-2])]);
        assert_eq!(i64s(&y[0]), vec![4, 2, 0]);
    }

    #[test]
    fn pad_modes() {
        let x = iota(&[3]);
        let pads = Tensor::vec_i64(vec![2, 2]);
        let reflect = run(MovementOp::Pad { mode: PadMode::Reflect }, &[x.clone(), pads.clone()]);
        assert_eq!(i64s(&reflect[0]), vec![2, 1, 0, 1, 2, 1, 0]);
        let edge = run(MovementOp::Pad { mode: PadMode::Edge }, &[x.clone(), pads.clone()]);
        assert_eq!(i64s(&edge[0]), vec![0, 0, 0, 1, 2, 2, 2]);
        let wrap = run(MovementOp::Pad { mode: PadMode::Wrap }, &[x.clone(), pads.clone()]);
        assert_eq!(i64s(&wrap[0]), vec![1, 2, 0, 1, 2, 0, 1]);
        let constant = run(MovementOp::Pad { mode: PadMode::Constant }, &[x.clone(), Tensor::vec_i64(vec![1, -1]), Tensor::scalar_i64(9)]);
        assert_eq!(i64s(&constant[0]), vec![9, 0, 1]);
    }

    #[test]
    fn split_uneven_and_concat_round_trip() {
        let y = run(MovementOp::Split { axis: 0, outputs: 3, uneven: true }, &[iota(&[7])]);
        let sizes: Vec<usize> = y.iter().map(|t| t.len()).collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        let back = run(MovementOp::Concat { axis: -1 }, &y);
        assert_eq!(i64s(&back[0]), (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn gather_takes_negative_indices() {
        let idx = Tensor::vec_i64(vec![-1, 0]);
        let y = run(MovementOp::Gather { axis: 1 }, &[iota(&[2, 3]), idx]);
        assert_eq!(i64s(&y[0]), vec![2, 0, 5, 3]);
    }

    #[test]
    fn depth_to_space_dcr_and_crd_invert_space_to_depth() {
        let x = iota(&[1, 8, 2, 3]);
        for mode in [BlockMode::Dcr, BlockMode::Crd] {
            let d = run(MovementOp::DepthToSpace { blocksize: 2, mode }, std::slice::from_ref(&x));
            assert_eq!(d[0].dims(), &[1, 2, 4, 6]);
            let s = run(MovementOp::SpaceToDepth { blocksize: 2, mode }, &[d[0].clone()]);
            assert_eq!(s[0], x);
        }
        // DCR: output (c=0, h=0, w=1) comes from channel (0*2+1)*2+0 = 2.
        let d = run(MovementOp::DepthToSpace { blocksize: 2, mode: BlockMode::Dcr }, &[x]);
        assert_eq!(i64s(&d[0])[1], 2 * 6);
    }

    #[test]
    fn scatter_nd_adds_duplicates() {
        let data = f32s(&[4], &[1.0, 2.0, 3.0, 4.0]);
        let idx = Tensor::from_i64(Shape::from([3, 1]), vec![1, 1, -1]).unwrap();
        let upd = f32s(&[3], &[10.0, 20.0, 30.0]);
        let y = run(MovementOp::ScatterNd { reduction: Reduction::Add }, &[data, idx, upd]);
        assert_eq!(y[0].to_f32_vec(), vec![1.0, 32.0, 3.0, 34.0]);
    }

    #[test]
    fn one_hot_with_negative_index() {
        let idx = Tensor::vec_i64(vec![0, -1]);
        let y = run(MovementOp::OneHot { axis: -1 }, &[idx, Tensor::scalar_i64(3), f32s(&[2], &[0.0, 5.0])]);
        assert_eq!(y[0].to_f32_vec(), vec![5.0, 0.0, 0.0, 0.0, 0.0, 5.0]);
    }

    #[test]
    fn trilu_and_eye_like() {
        let y = run(MovementOp::Trilu { upper: false }, &[iota(&[3, 3]), Tensor::scalar_i64(-1)]);
        assert_eq!(i64s(&y[0]), vec![0, 0, 0, 3, 0, 0, 6, 7, 0]);
        let e = run(MovementOp::EyeLike { dtype: Some(DType::I32), k: 1 }, &[iota(&[2, 3])]);
        assert_eq!(i64s(&e[0]), vec![0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn range_counts_like_the_spec() {
        let y = run(MovementOp::Range, &[Tensor::scalar_i64(10), Tensor::scalar_i64(4), Tensor::scalar_i64(-3)]);
        assert_eq!(i64s(&y[0]), vec![10, 7]);
        let e = run(MovementOp::Range, &[Tensor::scalar_f32(1.0), Tensor::scalar_f32(0.0), Tensor::scalar_f32(1.0)]);
        assert!(e[0].is_empty());
    }
}
