//! Ops that cut, join or border the data: Concat, Split, Slice, Pad,
//! CenterCropPad, Compress, ReverseSequence, Trilu.

use super::super::{check_dtype, const_i64s, norm_axis, optional, required, InferInput, InferResult};
use super::{to_dim, PadMode, INDEX_TYPES};
use crate::TensorInfo;
use kann_tensor::Shape;

fn same_dtype(x: &TensorInfo, dims: Vec<usize>) -> InferResult {
    Ok(vec![TensorInfo::new(x.dtype, Shape::new(dims))])
}

pub(super) fn concat(inputs: &[Option<InferInput>], axis: i64) -> InferResult {
    let first = required(inputs, 0, "inputs")?;
    let rank = first.info.rank();
    let axis = norm_axis(axis, rank)?;
    let mut out = first.info.shape.to_vec();
    out[axis] = 0;
    for (i, inp) in inputs.iter().enumerate() {
        let inp = inp.ok_or_else(|| format!("input #{i} is omitted"))?;
        let d = inp.info.shape.dims();
        if inp.info.dtype != first.info.dtype {
            return Err(format!("input #{i} is {} but input #0 is {}", inp.info.dtype, first.info.dtype));
        }
        if d.len() != rank || d.iter().zip(&out).enumerate().any(|(a, (x, y))| a != axis && x != y) {
            return Err(format!("input #{i} has shape {d:?}, which does not match {:?} outside axis {axis}", first.info.shape.dims()));
        }
        out[axis] = out[axis].checked_add(d[axis]).ok_or("concatenated axis is too large")?;
    }
    same_dtype(first.info, out)
}

/// Sizes of Split's outputs along the axis of size `dim`: the `split`
/// input when given, else `outputs` equal chunks. With `uneven` (opset
/// 18's `num_outputs`) the chunks are `ceil(dim / outputs)` and the last
/// one takes the rest; otherwise `dim` must divide evenly.
pub fn split_sizes(dim: usize, split: Option<&[i64]>, outputs: usize, uneven: bool) -> Result<Vec<usize>, String> {
    if let Some(split) = split {
        if split.len() != outputs {
            return Err(format!("split has {} entries but the node has {outputs} outputs", split.len()));
        }
        let sizes = split.iter().map(|&s| to_dim(s, "split entry")).collect::<Result<Vec<_>, _>>()?;
        if sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) != Some(dim) {
            return Err(format!("split {split:?} does not add up to the axis size {dim}"));
        }
        return Ok(sizes);
    }
    if outputs == 0 {
        return Err("Split has no outputs".into());
    }
    if !uneven && dim % outputs != 0 {
        return Err(format!("axis size {dim} does not split into {outputs} equal parts"));
    }
    // Chunks of ceil(dim / outputs); the last takes what is left.
    let chunk = dim.div_ceil(outputs);
    let rest = (outputs - 1).checked_mul(chunk).and_then(|used| dim.checked_sub(used));
    let last = rest.ok_or_else(|| format!("axis size {dim} cannot be split into {outputs} chunks of {chunk} with a smaller last one"))?;
    let mut sizes = vec![chunk; outputs - 1];
    sizes.push(last);
    Ok(sizes)
}

pub(super) fn split(inputs: &[Option<InferInput>], axis: i64, outputs: usize, uneven: bool) -> InferResult {
    let x = required(inputs, 0, "input")?;
    let axis = norm_axis(axis, x.info.rank())?;
    let split = const_i64s(inputs, 1, "split")?;
    let sizes = split_sizes(x.info.shape[axis], split.as_deref(), outputs, uneven)?;
    Ok(sizes
        .into_iter()
        .map(|s| {
            let mut d = x.info.shape.to_vec();
            d[axis] = s;
            TensorInfo::new(x.info.dtype, Shape::new(d))
        })
        .collect())
}

/// One axis of a slice: elements `start + i * step` for `i < len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceAxis {
    pub start: i64,
    pub step: i64,
    pub len: usize,
}

/// Resolves Slice's inputs into one [`SliceAxis`] per input axis, clamping
/// starts and ends as the spec says.
pub fn slice_plan(dims: &[usize], starts: &[i64], ends: &[i64], axes: Option<&[i64]>, steps: Option<&[i64]>) -> Result<Vec<SliceAxis>, String> {
    let n = starts.len();
    if ends.len() != n || axes.is_some_and(|a| a.len() != n) || steps.is_some_and(|s| s.len() != n) {
        return Err("starts, ends, axes and steps must have the same length".into());
    }
    let mut plan: Vec<SliceAxis> = dims.iter().map(|&d| SliceAxis { start: 0, step: 1, len: d }).collect();
    let mut seen = vec![false; dims.len()];
    for i in 0..n {
        let axis = match axes {
            Some(a) => norm_axis(a[i], dims.len())?,
            None if i < dims.len() => i,
            None => return Err(format!("{n} starts for an input of rank {}", dims.len())),
        };
        if std::mem::replace(&mut seen[axis], true) {
            return Err(format!("axis {axis} is sliced twice"));
        }
        let step = steps.map_or(1, |s| s[i]);
        plan[axis] = slice_axis(dims[axis] as i64, starts[i], ends[i], step)?;
    }
    Ok(plan)
}

fn slice_axis(d: i64, start: i64, end: i64, step: i64) -> Result<SliceAxis, String> {
    if step == 0 {
        return Err("slice step must not be 0".into());
    }
    let start = if start < 0 { start.saturating_add(d) } else { start };
    let end = if end < 0 { end.saturating_add(d) } else { end };
    let (start, end) = if step > 0 { (start.max(0).min(d), end.max(0).min(d)) } else { (start.max(0).min(d - 1), end.max(-1).min(d - 1)) };
    let (span, stride) = if step > 0 { (end as i128 - start as i128, step as i128) } else { (start as i128 - end as i128, -(step as i128)) };
    let len = if span > 0 { (span + stride - 1) / stride } else { 0 };
    Ok(SliceAxis { start, step, len: len as usize })
}

pub(super) fn slice(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let starts = const_i64s(inputs, 1, "starts")?.ok_or("missing required input #1 (starts)")?;
    let ends = const_i64s(inputs, 2, "ends")?.ok_or("missing required input #2 (ends)")?;
    let axes = const_i64s(inputs, 3, "axes")?;
    let steps = const_i64s(inputs, 4, "steps")?;
    let plan = slice_plan(x.info.shape.dims(), &starts, &ends, axes.as_deref(), steps.as_deref())?;
    same_dtype(x.info, plan.iter().map(|p| p.len).collect())
}

/// Pad's `(begins, ends)` per input axis from `pads` over `axes` (default all).
pub fn pad_plan(rank: usize, pads: &[i64], axes: Option<&[i64]>) -> Result<(Vec<i64>, Vec<i64>), String> {
    let axes: Vec<i64> = axes.map_or_else(|| (0..rank as i64).collect(), <[i64]>::to_vec);
    if pads.len() != 2 * axes.len() {
        return Err(format!("pads has {} entries, expected {} (2 per axis)", pads.len(), 2 * axes.len()));
    }
    let (mut begin, mut end) = (vec![0; rank], vec![0; rank]);
    let mut seen = vec![false; rank];
    for (i, &a) in axes.iter().enumerate() {
        let a = norm_axis(a, rank)?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(format!("axis {a} is padded twice"));
        }
        begin[a] = pads[i];
        end[a] = pads[i + axes.len()];
    }
    Ok((begin, end))
}

pub(super) fn pad(inputs: &[Option<InferInput>], mode: PadMode) -> InferResult {
    let x = required(inputs, 0, "data")?;
    let pads = const_i64s(inputs, 1, "pads")?.ok_or("missing required input #1 (pads)")?;
    let axes = const_i64s(inputs, 3, "axes")?;
    if let Some(v) = optional(inputs, 2) {
        if v.info.dtype != x.info.dtype || v.info.numel() > 1 {
            return Err(format!("constant_value must be a scalar of the data's dtype {}, found {}", x.info.dtype, v.info));
        }
    }
    let dims = x.info.shape.dims();
    let (begin, end) = pad_plan(dims.len(), &pads, axes.as_deref())?;
    let mut out = Vec::with_capacity(dims.len());
    for (a, &d) in dims.iter().enumerate() {
        let n = (d as i64).checked_add(begin[a]).and_then(|n| n.checked_add(end[a])).ok_or("padded shape overflows")?;
        if mode != PadMode::Constant && d == 0 && n > 0 {
            return Err(format!("axis {a} is empty: there is nothing to pad it with in {mode:?} mode"));
        }
        out.push(to_dim(n, "a padded dimension")?);
    }
    same_dtype(x.info, out)
}

/// CenterCropPad's output dims and, per axis, the offset with
/// `source = output + offset` (negative where it pads).
pub fn center_crop_offsets(dims: &[usize], shape: &[i64], axes: Option<&[i64]>) -> Result<(Vec<usize>, Vec<i64>), String> {
    let axes: Vec<i64> = axes.map_or_else(|| (0..dims.len() as i64).collect(), <[i64]>::to_vec);
    if shape.len() != axes.len() {
        return Err(format!("shape has {} entries for {} axes", shape.len(), axes.len()));
    }
    let mut out = dims.to_vec();
    let mut offsets = vec![0; dims.len()];
    let mut seen = vec![false; dims.len()];
    for (&a, &s) in axes.iter().zip(shape) {
        let a = norm_axis(a, dims.len())?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(format!("axis {a} appears twice in axes"));
        }
        let target = to_dim(s, "shape entry")?;
        let d = dims[a];
        offsets[a] = if d >= target { ((d - target) / 2) as i64 } else { -(((target - d) / 2) as i64) };
        out[a] = target;
    }
    Ok((out, offsets))
}

pub(super) fn center_crop_pad(inputs: &[Option<InferInput>], axes: Option<&[i64]>) -> InferResult {
    let x = required(inputs, 0, "input_data")?;
    let shape = const_i64s(inputs, 1, "shape")?.ok_or("missing required input #1 (shape)")?;
    let (out, _) = center_crop_offsets(x.info.shape.dims(), &shape, axes)?;
    same_dtype(x.info, out)
}

pub(super) fn compress(inputs: &[Option<InferInput>], axis: Option<i64>) -> InferResult {
    let x = required(inputs, 0, "input")?;
    let c = required(inputs, 1, "condition")?;
    let cond = c.value.ok_or("input 'condition' must be a constant: kann needs static shapes")?.to_bool_vec();
    let dims = x.info.shape.dims();
    let (axis, len) = match axis {
        Some(a) => {
            let a = norm_axis(a, dims.len())?;
            (Some(a), dims[a])
        }
        None => (None, x.info.numel()),
    };
    if cond.iter().skip(len).any(|&b| b) {
        return Err(format!("condition selects index {} or beyond, outside the axis of size {len}", len));
    }
    let kept = cond.iter().take(len).filter(|&&b| b).count();
    let out = match axis {
        Some(a) => {
            let mut d = dims.to_vec();
            d[a] = kept;
            d
        }
        None => vec![kept],
    };
    same_dtype(x.info, out)
}

pub(super) fn reverse_sequence(inputs: &[Option<InferInput>], batch_axis: usize, time_axis: usize) -> InferResult {
    let x = required(inputs, 0, "input")?;
    let lens = required(inputs, 1, "sequence_lens")?;
    check_dtype(lens.info, INDEX_TYPES, "sequence_lens")?;
    let dims = x.info.shape.dims();
    if dims.len() < 2 || batch_axis > 1 || time_axis > 1 || batch_axis == time_axis {
        return Err(format!("needs rank >= 2 and batch_axis/time_axis being 0 and 1, found rank {}, {batch_axis}/{time_axis}", dims.len()));
    }
    if lens.info.shape.dims() != [dims[batch_axis]] {
        return Err(format!("sequence_lens has shape {} but the batch size is {}", lens.info.shape, dims[batch_axis]));
    }
    same_dtype(x.info, dims.to_vec())
}

pub(super) fn trilu(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "input")?;
    if x.info.rank() < 2 {
        return Err(format!("input must have rank >= 2, found {}", x.info.shape));
    }
    if let Some(k) = optional(inputs, 1) {
        check_dtype(k.info, &[kann_tensor::DType::I64], "k")?;
        if k.info.numel() != 1 {
            return Err(format!("k must be a scalar, found {}", k.info.shape));
        }
    }
    same_dtype(x.info, x.info.shape.to_vec())
}
