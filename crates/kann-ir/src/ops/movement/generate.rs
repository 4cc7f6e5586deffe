//! Ops that generate data from shapes or scalars: Shape, Size,
//! ConstantOfShape, Range, EyeLike.

use super::super::{const_f64s, const_i64s, required, InferInput, InferResult};
use super::to_dim;
use crate::TensorInfo;
use kann_tensor::{DType, Shape, Tensor};

/// The clamped `start..end` range of Shape over an input of `rank`.
pub fn shape_range(rank: usize, start: i64, end: Option<i64>) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |v: i64| (if v < 0 { v.saturating_add(r) } else { v }).clamp(0, r) as usize;
    let (s, e) = (clamp(start), clamp(end.unwrap_or(r)));
    (s, e.max(s))
}

pub(super) fn shape(inputs: &[Option<InferInput>], start: i64, end: Option<i64>) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let (s, e) = shape_range(x.info.rank(), start, end);
    Ok(vec![TensorInfo::new(DType::I64, Shape::from([e - s]))])
}

pub(super) fn size(inputs: &[Option<InferInput>]) -> InferResult {
    required(inputs, 0, "data")?;
    Ok(vec![TensorInfo::new(DType::I64, Shape::scalar())])
}

pub(super) fn constant_of_shape(inputs: &[Option<InferInput>], value: &Tensor) -> InferResult {
    let shape = const_i64s(inputs, 0, "input")?.ok_or("missing required input #0 (input)")?;
    let dims = shape.iter().map(|&s| to_dim(s, "shape entry")).collect::<Result<Vec<_>, _>>()?;
    if value.len() != 1 {
        return Err(format!("value must hold one element, found shape {}", value.shape()));
    }
    Ok(vec![TensorInfo::new(value.dtype(), Shape::new(dims))])
}

/// Number of elements of `Range(start, limit, delta)`:
/// `max(ceil((limit - start) / delta), 0)`.
pub fn range_len(start: f64, limit: f64, delta: f64) -> Result<usize, String> {
    if delta == 0.0 || !(start.is_finite() && limit.is_finite() && delta.is_finite()) {
        return Err(format!("Range({start}, {limit}, {delta}) does not have a finite length"));
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if n > kann_tensor::MAX_ELEMENTS as f64 {
        return Err(format!("Range({start}, {limit}, {delta}) is too long"));
    }
    Ok(n as usize)
}

/// Exact length of an integer range.
pub(crate) fn range_len_int(start: i64, limit: i64, delta: i64) -> Result<usize, String> {
    if delta == 0 {
        return Err("Range delta must not be 0".into());
    }
    let (span, step) = (limit as i128 - start as i128, delta as i128);
    let n = if (span > 0) == (step > 0) && span != 0 { (span.abs() + step.abs() - 1) / step.abs() } else { 0 };
    usize::try_from(n).ok().filter(|&n| n <= kann_tensor::MAX_ELEMENTS).ok_or_else(|| format!("Range({start}, {limit}, {delta}) is too long"))
}

pub(super) fn range(inputs: &[Option<InferInput>]) -> InferResult {
    let names = ["start", "limit", "delta"];
    let first = required(inputs, 0, "start")?;
    let dtype = first.info.dtype;
    if dtype == DType::Bool {
        return Err("Range of bool is not supported".into());
    }
    for (i, name) in names.iter().enumerate() {
        let inp = required(inputs, i, name)?;
        if inp.info.dtype != dtype || inp.info.numel() != 1 {
            return Err(format!("{name} must be a scalar of dtype {dtype}, found {}", inp.info));
        }
    }
    let n = if dtype.is_int() {
        let v: Vec<i64> = (0..3).map(|i| const_i64s(inputs, i, names[i]).map(|v| v.unwrap_or_default()[0])).collect::<Result<_, _>>()?;
        range_len_int(v[0], v[1], v[2])?
    } else {
        let v: Vec<f64> = (0..3).map(|i| const_f64s(inputs, i, names[i]).map(|v| v.unwrap_or_default()[0])).collect::<Result<_, _>>()?;
        range_len(v[0], v[1], v[2])?
    };
    Ok(vec![TensorInfo::new(dtype, Shape::from([n]))])
}

pub(super) fn eye_like(inputs: &[Option<InferInput>], dtype: Option<DType>) -> InferResult {
    let x = required(inputs, 0, "input")?;
    if x.info.rank() != 2 {
        return Err(format!("input must be 2-D, found shape {}", x.info.shape));
    }
    Ok(vec![TensorInfo::new(dtype.unwrap_or(x.info.dtype), x.info.shape.clone())])
}
