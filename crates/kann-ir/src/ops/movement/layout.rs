//! Ops that reinterpret or permute the layout: Reshape, Flatten, Transpose,
//! Squeeze, Unsqueeze, Expand, Tile, DepthToSpace, SpaceToDepth.

use super::super::{broadcast, const_i64s, norm_axis, required, InferInput, InferResult};
use super::to_dim;
use crate::TensorInfo;
use kann_tensor::Shape;

/// Element count of `dims`, refusing overflow.
pub(crate) fn checked_numel(dims: &[usize]) -> Result<usize, String> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| format!("shape {dims:?} is too large"))
}

fn same_dtype(x: &TensorInfo, dims: Vec<usize>) -> InferResult {
    Ok(vec![TensorInfo::new(x.dtype, Shape::new(dims))])
}

/// Reshape's output dims: `0` copies the input dim (unless `allowzero`),
/// one `-1` takes what is left.
pub fn reshape_dims(input: &[usize], shape: &[i64], allowzero: bool) -> Result<Vec<usize>, String> {
    let numel = checked_numel(input)?;
    let mut out = Vec::with_capacity(shape.len());
    let mut inferred = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 => {
                if inferred.replace(i).is_some() {
                    return Err("shape holds more than one -1".into());
                }
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(i).ok_or_else(|| format!("shape[{i}] = 0 copies an input dim, but the input has rank {}", input.len()))?),
            s => out.push(to_dim(s, "a shape entry other than -1")?),
        }
    }
    if let Some(i) = inferred {
        let known = checked_numel(&out)?;
        if known == 0 || numel % known != 0 {
            return Err(format!("cannot reshape {input:?} to {shape:?}: the -1 dimension is not determined"));
        }
        out[i] = numel / known;
    }
    if checked_numel(&out)? != numel {
        return Err(format!("cannot reshape {input:?} ({numel} elements) to {out:?}"));
    }
    Ok(out)
}

pub(super) fn reshape(inputs: &[Option<InferInput>], allowzero: bool) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let shape = const_i64s(inputs, 1, "shape")?.ok_or("missing required input #1 (shape)")?;
    same_dtype(x.info, reshape_dims(x.info.shape.dims(), &shape, allowzero)?)
}

pub(super) fn flatten(inputs: &[Option<InferInput>], axis: i64) -> InferResult {
    let x = required(inputs, 0, "input")?;
    let dims = x.info.shape.dims();
    let r = dims.len() as i64;
    if axis < -r || axis > r {
        return Err(format!("axis {axis} is out of range for rank {r}"));
    }
    let axis = if axis < 0 { axis + r } else { axis } as usize;
    same_dtype(x.info, vec![checked_numel(&dims[..axis])?, checked_numel(&dims[axis..])?])
}

/// Transpose's permutation: `perm` validated, or the reversed axes.
pub fn transpose_perm(perm: Option<&[i64]>, rank: usize) -> Result<Vec<usize>, String> {
    let Some(perm) = perm else { return Ok((0..rank).rev().collect()) };
    if perm.len() != rank {
        return Err(format!("perm {perm:?} has {} entries for an input of rank {rank}", perm.len()));
    }
    let mut seen = vec![false; rank];
    let mut out = Vec::with_capacity(rank);
    for &p in perm {
        let a = norm_axis(p, rank)?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(format!("perm {perm:?} repeats axis {p}"));
        }
        out.push(a);
    }
    Ok(out)
}

pub(super) fn transpose(inputs: &[Option<InferInput>], perm: Option<&[i64]>) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let dims = x.info.shape.dims();
    let perm = transpose_perm(perm, dims.len())?;
    same_dtype(x.info, perm.iter().map(|&p| dims[p]).collect())
}

/// Normalises `axes` against `rank`, refusing repeats.
fn unique_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out: Vec<usize> = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(a, rank)?;
        if out.contains(&n) {
            return Err(format!("axes {axes:?} repeat axis {a}"));
        }
        out.push(n);
    }
    Ok(out)
}

pub(super) fn squeeze(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let dims = x.info.shape.dims();
    let out = match const_i64s(inputs, 1, "axes")? {
        None => dims.iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let axes = unique_axes(&axes, dims.len())?;
            if let Some(&a) = axes.iter().find(|&&a| dims[a] != 1) {
                return Err(format!("cannot squeeze axis {a} of size {}", dims[a]));
            }
            dims.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
        }
    };
    same_dtype(x.info, out)
}

pub(super) fn unsqueeze(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let axes = const_i64s(inputs, 1, "axes")?.ok_or("missing required input #1 (axes)")?;
    let dims = x.info.shape.dims();
    let rank = dims.len() + axes.len();
    let axes = unique_axes(&axes, rank)?;
    let mut rest = dims.iter();
    let out = (0..rank).map(|i| if axes.contains(&i) { 1 } else { rest.next().copied().unwrap_or(1) }).collect();
    same_dtype(x.info, out)
}

pub(super) fn expand(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "input")?;
    let shape = const_i64s(inputs, 1, "shape")?.ok_or("missing required input #1 (shape)")?;
    let shape = shape.iter().map(|&s| to_dim(s, "shape entry")).collect::<Result<Vec<_>, _>>()?;
    same_dtype(x.info, broadcast(x.info.shape.dims(), &shape)?)
}

pub(super) fn tile(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "input")?;
    let repeats = const_i64s(inputs, 1, "repeats")?.ok_or("missing required input #1 (repeats)")?;
    let dims = x.info.shape.dims();
    if repeats.len() != dims.len() {
        return Err(format!("repeats has {} entries for an input of rank {}", repeats.len(), dims.len()));
    }
    let mut out = Vec::with_capacity(dims.len());
    for (&d, &r) in dims.iter().zip(&repeats) {
        out.push(d.checked_mul(to_dim(r, "repeats entry")?).ok_or("tiled shape is too large")?);
    }
    same_dtype(x.info, out)
}

/// `[N, C, H, W]` of a rank-4 input with a positive block size.
fn nchw(x: &TensorInfo, blocksize: usize) -> Result<[usize; 4], String> {
    if blocksize == 0 {
        return Err("blocksize must be positive".into());
    }
    match x.shape.dims() {
        &[n, c, h, w] => Ok([n, c, h, w]),
        d => Err(format!("input must have rank 4 (N, C, H, W), found shape {d:?}")),
    }
}

pub(super) fn depth_to_space(inputs: &[Option<InferInput>], b: usize) -> InferResult {
    let x = required(inputs, 0, "input")?;
    let [n, c, h, w] = nchw(x.info, b)?;
    let bb = b.checked_mul(b).ok_or("blocksize is too large")?;
    if c % bb != 0 {
        return Err(format!("channels {c} are not a multiple of blocksize² = {bb}"));
    }
    same_dtype(x.info, vec![n, c / bb, h.checked_mul(b).ok_or("too large")?, w.checked_mul(b).ok_or("too large")?])
}

pub(super) fn space_to_depth(inputs: &[Option<InferInput>], b: usize) -> InferResult {
    let x = required(inputs, 0, "input")?;
    let [n, c, h, w] = nchw(x.info, b)?;
    if h % b != 0 || w % b != 0 {
        return Err(format!("height {h} and width {w} must be multiples of blocksize {b}"));
    }
    same_dtype(x.info, vec![n, c.checked_mul(b * b).ok_or("too large")?, h / b, w / b])
}
