//! Index-driven ops: Gather, GatherElements, GatherND, ScatterND,
//! ScatterElements, OneHot.

use super::super::{check_dtype, const_f64s, norm_axis, required, InferInput, InferResult, NUMERIC};
use super::{layout::checked_numel, INDEX_TYPES};
use crate::TensorInfo;
use kann_tensor::Shape;

fn same_dtype(x: &TensorInfo, dims: Vec<usize>) -> InferResult {
    Ok(vec![TensorInfo::new(x.dtype, Shape::new(dims))])
}

pub(super) fn gather(inputs: &[Option<InferInput>], axis: i64) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let idx = required(inputs, 1, "indices")?;
    check_dtype(idx.info, INDEX_TYPES, "indices")?;
    let dims = x.info.shape.dims();
    let axis = norm_axis(axis, dims.len())?;
    let mut out = dims[..axis].to_vec();
    out.extend_from_slice(idx.info.shape.dims());
    out.extend_from_slice(&dims[axis + 1..]);
    same_dtype(x.info, out)
}

pub(super) fn gather_elements(inputs: &[Option<InferInput>], axis: i64) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let idx = required(inputs, 1, "indices")?;
    check_dtype(idx.info, INDEX_TYPES, "indices")?;
    let axis = norm_axis(axis, x.info.rank())?;
    same_rank_within(x.info, idx.info, axis, "indices")?;
    same_dtype(x.info, idx.info.shape.to_vec())
}

/// `idx` has `data`'s rank and fits inside it on every axis but `axis`.
fn same_rank_within(data: &TensorInfo, idx: &TensorInfo, axis: usize, what: &str) -> Result<(), String> {
    let (d, i) = (data.shape.dims(), idx.shape.dims());
    if d.len() != i.len() || d.iter().zip(i).enumerate().any(|(a, (x, y))| a != axis && y > x) {
        return Err(format!("{what} of shape {i:?} does not fit data of shape {d:?} outside axis {axis}"));
    }
    Ok(())
}

/// Geometry of GatherND (and ScatterND with `batch_dims` 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherNdGeometry {
    /// Product of the batch dims.
    pub batch: usize,
    /// Index tuples per batch entry.
    pub lookups: usize,
    /// Length of one index tuple (indices' last dim).
    pub depth: usize,
    /// Elements of the slice one tuple selects.
    pub slice: usize,
    /// Shape of the gathered result.
    pub out_dims: Vec<usize>,
}

/// Checks GatherND's shapes and computes its geometry.
pub fn gather_nd_geometry(data: &[usize], indices: &[usize], batch_dims: usize) -> Result<GatherNdGeometry, String> {
    let (r, q) = (data.len(), indices.len());
    if r == 0 || q == 0 || batch_dims >= r.min(q) {
        return Err(format!("batch_dims {batch_dims} needs data rank ({r}) and indices rank ({q}) above it"));
    }
    if data[..batch_dims] != indices[..batch_dims] {
        return Err(format!("the batch dims of data {data:?} and indices {indices:?} differ"));
    }
    let depth = indices[q - 1];
    if depth > r - batch_dims {
        return Err(format!("index tuples of length {depth} are too long for data of shape {data:?} with batch_dims {batch_dims}"));
    }
    let mut out_dims = indices[..q - 1].to_vec();
    out_dims.extend_from_slice(&data[batch_dims + depth..]);
    Ok(GatherNdGeometry {
        batch: checked_numel(&data[..batch_dims])?,
        lookups: checked_numel(&indices[batch_dims..q - 1])?,
        depth,
        slice: checked_numel(&data[batch_dims + depth..])?,
        out_dims,
    })
}

pub(super) fn gather_nd(inputs: &[Option<InferInput>], batch_dims: usize) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let idx = required(inputs, 1, "indices")?;
    check_dtype(idx.info, &[kann_tensor::DType::I64], "indices")?;
    let g = gather_nd_geometry(x.info.shape.dims(), idx.info.shape.dims(), batch_dims)?;
    same_dtype(x.info, g.out_dims)
}

pub(super) fn scatter_nd(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let idx = required(inputs, 1, "indices")?;
    let upd = required(inputs, 2, "updates")?;
    check_dtype(idx.info, &[kann_tensor::DType::I64], "indices")?;
    let g = gather_nd_geometry(x.info.shape.dims(), idx.info.shape.dims(), 0)?;
    if upd.info.dtype != x.info.dtype || upd.info.shape.dims() != g.out_dims {
        return Err(format!("updates must be {}{:?}, found {}", x.info.dtype, g.out_dims, upd.info));
    }
    same_dtype(x.info, x.info.shape.to_vec())
}

pub(super) fn scatter_elements(inputs: &[Option<InferInput>], axis: i64) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let idx = required(inputs, 1, "indices")?;
    let upd = required(inputs, 2, "updates")?;
    check_dtype(idx.info, INDEX_TYPES, "indices")?;
    let axis = norm_axis(axis, x.info.rank())?;
    same_rank_within(x.info, idx.info, axis, "indices")?;
    if upd.info.dtype != x.info.dtype || upd.info.shape != idx.info.shape {
        return Err(format!("updates must be {} of the indices' shape {}, found {}", x.info.dtype, idx.info.shape, upd.info));
    }
    same_dtype(x.info, x.info.shape.to_vec())
}

/// OneHot's depth from its (constant) input.
pub(super) fn one_hot_depth(inputs: &[Option<InferInput>]) -> Result<usize, String> {
    let depth = const_f64s(inputs, 1, "depth")?.ok_or("missing required input #1 (depth)")?;
    match depth.as_slice() {
        &[d] if d >= 1.0 && d <= (1u64 << 40) as f64 => Ok(d as usize),
        d => Err(format!("depth must be one value >= 1, found {d:?}")),
    }
}

pub(super) fn one_hot(inputs: &[Option<InferInput>], axis: i64) -> InferResult {
    let idx = required(inputs, 0, "indices")?;
    let values = required(inputs, 2, "values")?;
    check_dtype(idx.info, NUMERIC, "indices")?;
    if values.info.numel() != 2 {
        return Err(format!("values must hold 2 elements [off, on], found shape {}", values.info.shape));
    }
    let depth = one_hot_depth(inputs)?;
    let dims = idx.info.shape.dims();
    let axis = norm_axis(axis, dims.len() + 1)?;
    let mut out = dims.to_vec();
    out.insert(axis, depth);
    Ok(vec![TensorInfo::new(values.info.dtype, Shape::new(out))])
}
