//! Gather, GatherElements, GatherND, ScatterND, ScatterElements, OneHot.

use super::{for_each_index, input};
use crate::util::strides;
use crate::EvalError;
use kann_ir::ops::movement::{gather_nd_geometry, Reduction};
use kann_ir::ops::norm_axis;
use kann_ir::TensorInfo;
use kann_tensor::{Shape, Tensor};

/// Index `i` (negative counts from the end) checked against an axis of size `d`.
fn norm_index(i: i64, d: usize) -> Result<usize, EvalError> {
    let j = if i < 0 { i + d as i64 } else { i };
    if (0..d as i64).contains(&j) {
        Ok(j as usize)
    } else {
        Err(EvalError::Op(format!("index {i} is out of range for an axis of size {d}")))
    }
}

/// One value per multi-index of `shape` (row-major), stopping at the first error.
fn per_index(shape: &[usize], mut f: impl FnMut(usize, &[usize]) -> Result<usize, EvalError>) -> Result<Vec<usize>, EvalError> {
    let mut out = Vec::with_capacity(shape.iter().product());
    let mut err = None;
    for_each_index(shape, |o| {
        if err.is_none() {
            match f(out.len(), o) {
                Ok(v) => out.push(v),
                Err(e) => err = Some(e),
            }
        }
    });
    err.map_or(Ok(out), Err)
}

pub(super) fn gather(inputs: &[Option<&Tensor>], axis: i64, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let idx = input(inputs, 1)?.to_i64_vec();
    let dims = x.dims();
    let axis = norm_axis(axis, dims.len())?;
    let d = dims[axis];
    let (outer, inner): (usize, usize) = (dims[..axis].iter().product(), dims[axis + 1..].iter().product());
    let picks = idx.iter().map(|&i| norm_index(i, d)).collect::<Result<Vec<_>, _>>()?;
    let mut index = Vec::with_capacity(out.numel());
    for o in 0..outer {
        for &j in &picks {
            let base = (o * d + j) * inner;
            index.extend(base..base + inner);
        }
    }
    Ok(x.gather_flat(out.shape.clone(), &index)?)
}

/// Flat data positions that element-wise indices (GatherElements,
/// ScatterElements) address: the index's own coordinates with the one on
/// `axis` replaced by the index value.
fn element_targets(data: &[usize], idx: &Tensor, axis: usize) -> Result<Vec<usize>, EvalError> {
    let values = idx.to_i64_vec();
    let st = strides(data);
    per_index(idx.dims(), |f, o| {
        let mut flat = 0;
        for (a, &c) in o.iter().enumerate() {
            let c = if a == axis { norm_index(values[f], data[a])? } else { c };
            flat += c * st[a];
        }
        Ok(flat)
    })
}

pub(super) fn gather_elements(inputs: &[Option<&Tensor>], axis: i64, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let axis = norm_axis(axis, x.rank())?;
    let index = element_targets(x.dims(), input(inputs, 1)?, axis)?;
    Ok(x.gather_flat(out.shape.clone(), &index)?)
}

/// For each index tuple of GatherND/ScatterND, the flat data offset of the
/// slice it selects.
fn nd_offsets(data: &[usize], idx: &Tensor, batch_dims: usize) -> Result<(Vec<usize>, usize), EvalError> {
    let g = gather_nd_geometry(data, idx.dims(), batch_dims)?;
    let values = idx.to_i64_vec();
    let st = strides(data);
    let batch_size: usize = data[batch_dims..].iter().product();
    let mut offsets = Vec::with_capacity(g.batch * g.lookups);
    for b in 0..g.batch {
        for l in 0..g.lookups {
            let tuple = &values[(b * g.lookups + l) * g.depth..][..g.depth];
            let mut off = b * batch_size;
            for (k, &i) in tuple.iter().enumerate() {
                off += norm_index(i, data[batch_dims + k])? * st[batch_dims + k];
            }
            offsets.push(off);
        }
    }
    Ok((offsets, g.slice))
}

pub(super) fn gather_nd(inputs: &[Option<&Tensor>], batch_dims: usize, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let (offsets, slice) = nd_offsets(x.dims(), input(inputs, 1)?, batch_dims)?;
    let index: Vec<usize> = offsets.iter().flat_map(|&o| o..o + slice).collect();
    Ok(x.gather_flat(out.shape.clone(), &index)?)
}

pub(super) fn scatter_nd(inputs: &[Option<&Tensor>], reduction: Reduction, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let (offsets, slice) = nd_offsets(x.dims(), input(inputs, 1)?, 0)?;
    let targets: Vec<usize> = offsets.iter().flat_map(|&o| o..o + slice).collect();
    scatter(x, input(inputs, 2)?, &targets, reduction, out)
}

pub(super) fn scatter_elements(inputs: &[Option<&Tensor>], axis: i64, reduction: Reduction, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let axis = norm_axis(axis, x.rank())?;
    let targets = element_targets(x.dims(), input(inputs, 1)?, axis)?;
    scatter(x, input(inputs, 2)?, &targets, reduction, out)
}

/// A copy of `data` where update `u` is combined into element `targets[u]`,
/// in order.
fn scatter(data: &Tensor, updates: &Tensor, targets: &[usize], reduction: Reduction, out: &TensorInfo) -> Result<Tensor, EvalError> {
    if targets.len() != updates.len() {
        return Err(EvalError::Op(format!("{} updates for {} targets", updates.len(), targets.len())));
    }
    let n = data.len();
    if reduction == Reduction::None {
        let mut index: Vec<usize> = (0..n).collect();
        for (u, &t) in targets.iter().enumerate() {
            index[t] = n + u;
        }
        let joined = Tensor::concat_flat(data.dtype(), Shape::from([n + updates.len()]), &[data, updates])?;
        return Ok(joined.gather_flat(out.shape.clone(), &index)?);
    }
    if data.dtype().is_float() {
        let (mut v, u) = (data.to_f64_vec(), updates.to_f64_vec());
        for (&t, &x) in targets.iter().zip(&u) {
            v[t] = match reduction {
                Reduction::Add => v[t] + x,
                Reduction::Mul => v[t] * x,
                Reduction::Max => v[t].max(x),
                Reduction::Min => v[t].min(x),
                Reduction::None => x,
            };
        }
        return Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &v)?);
    }
    let (mut v, u) = (data.to_i64_vec(), updates.to_i64_vec());
    for (&t, &x) in targets.iter().zip(&u) {
        v[t] = match reduction {
            Reduction::Add => v[t].wrapping_add(x),
            Reduction::Mul => v[t].wrapping_mul(x),
            Reduction::Max => v[t].max(x),
            Reduction::Min => v[t].min(x),
            Reduction::None => x,
        };
    }
    Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &v)?)
}

pub(super) fn one_hot(inputs: &[Option<&Tensor>], axis: i64, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let idx = input(inputs, 0)?.to_i64_vec();
    let depth = input(inputs, 1)?.to_f64_vec().first().copied().ok_or("depth is empty")? as i64;
    let values = input(inputs, 2)?;
    let axis = norm_axis(axis, out.rank())?;
    let in_st = strides(&[&out.shape.dims()[..axis], &out.shape.dims()[axis + 1..]].concat());
    let picks = per_index(out.shape.dims(), |_, o| {
        let flat: usize = o.iter().enumerate().filter(|&(a, _)| a != axis).zip(&in_st).map(|((_, &c), s)| c * s).sum();
        let i = idx[flat];
        let i = if i < 0 { i + depth } else { i };
        Ok((i == o[axis] as i64) as usize)
    })?;
    let values = values.clone().reshape(Shape::from([2]))?;
    Ok(values.gather_flat(out.shape.clone(), &picks)?)
}
