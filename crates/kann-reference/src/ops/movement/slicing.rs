//! Concat, Split, Slice, Pad, CenterCropPad, Compress, ReverseSequence, Trilu.

use super::{input, opt_i64s, remap, remap_fill, zero};
use crate::EvalError;
use kann_ir::ops::movement::{center_crop_offsets, pad_plan, slice_plan, split_sizes, PadMode};
use kann_ir::ops::norm_axis;
use kann_ir::TensorInfo;
use kann_tensor::{Shape, Tensor};

/// Products of the dims before and after `axis`.
fn outer_inner(dims: &[usize], axis: usize) -> (usize, usize) {
    (dims[..axis].iter().product(), dims[axis + 1..].iter().product())
}

pub(super) fn concat(inputs: &[Option<&Tensor>], axis: i64, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let parts: Vec<&Tensor> = inputs.iter().map(|t| t.ok_or("Concat input omitted")).collect::<Result<_, _>>()?;
    let axis = norm_axis(axis, out.rank())?;
    let (outer, inner) = outer_inner(out.shape.dims(), axis);
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let joined = Tensor::concat_flat(out.dtype, Shape::from([total]), &parts)?;
    let mut index = Vec::with_capacity(total);
    for o in 0..outer {
        let mut base = 0;
        for p in &parts {
            let chunk = p.dims().get(axis).ok_or("Concat input rank mismatch")? * inner;
            index.extend((0..chunk).map(|k| base + o * chunk + k));
            base += p.len();
        }
    }
    Ok(joined.gather_flat(out.shape.clone(), &index)?)
}

pub(super) fn split(inputs: &[Option<&Tensor>], axis: i64, uneven: bool, outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let x = input(inputs, 0)?;
    let axis = norm_axis(axis, x.rank())?;
    let dim = x.dims()[axis];
    let sizes = split_sizes(dim, opt_i64s(inputs, 1).as_deref(), outputs.len(), uneven)?;
    let (outer, inner) = outer_inner(x.dims(), axis);
    let mut offset = 0;
    let mut result = Vec::with_capacity(outputs.len());
    for (out, s) in outputs.iter().zip(sizes) {
        let mut index = Vec::with_capacity(outer * s * inner);
        for o in 0..outer {
            let base = (o * dim + offset) * inner;
            index.extend(base..base + s * inner);
        }
        result.push(x.gather_flat(out.shape.clone(), &index)?);
        offset += s;
    }
    Ok(result)
}

pub(super) fn slice(inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let starts = input(inputs, 1)?.to_i64_vec();
    let ends = input(inputs, 2)?.to_i64_vec();
    let plan = slice_plan(x.dims(), &starts, &ends, opt_i64s(inputs, 3).as_deref(), opt_i64s(inputs, 4).as_deref())?;
    remap(x, out, |o, src| {
        for (a, p) in plan.iter().enumerate() {
            src[a] = (p.start + o[a] as i64 * p.step) as usize;
        }
    })
}

/// The input coordinate Pad reads for coordinate `i` (relative to the
/// input's start) on an axis of size `d`; `None` for the constant.
fn pad_source(mode: PadMode, i: i64, d: i64) -> Option<usize> {
    if (0..d).contains(&i) {
        return Some(i as usize);
    }
    let s = match mode {
        PadMode::Constant => return None,
        PadMode::Edge => i.clamp(0, d - 1),
        PadMode::Wrap => i.rem_euclid(d),
        PadMode::Reflect if d == 1 => 0,
        PadMode::Reflect => {
            let period = 2 * (d - 1);
            let m = i.rem_euclid(period);
            if m >= d {
                period - m
            } else {
                m
            }
        }
    };
    Some(s as usize)
}

pub(super) fn pad(inputs: &[Option<&Tensor>], mode: PadMode, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let pads = input(inputs, 1)?.to_i64_vec();
    let (begin, _) = pad_plan(x.rank(), &pads, opt_i64s(inputs, 3).as_deref())?;
    let fill = match inputs.get(2).copied().flatten() {
        Some(v) if !v.is_empty() => v.clone(),
        _ => zero(x.dtype()),
    };
    let dims: Vec<i64> = x.dims().iter().map(|&d| d as i64).collect();
    remap_fill(x, out, &fill, |o, src| {
        for a in 0..dims.len() {
            match pad_source(mode, o[a] as i64 - begin[a], dims[a]) {
                Some(s) => src[a] = s,
                None => return false,
            }
        }
        true
    })
}

pub(super) fn center_crop_pad(inputs: &[Option<&Tensor>], axes: Option<&[i64]>, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let shape = input(inputs, 1)?.to_i64_vec();
    let (_, offsets) = center_crop_offsets(x.dims(), &shape, axes)?;
    let dims: Vec<i64> = x.dims().iter().map(|&d| d as i64).collect();
    remap_fill(x, out, &zero(x.dtype()), |o, src| {
        for a in 0..dims.len() {
            let s = o[a] as i64 + offsets[a];
            if !(0..dims[a]).contains(&s) {
                return false;
            }
            src[a] = s as usize;
        }
        true
    })
}

pub(super) fn compress(inputs: &[Option<&Tensor>], axis: Option<i64>, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let cond = input(inputs, 1)?.to_bool_vec();
    let len = match axis {
        Some(a) => x.dims()[norm_axis(a, x.rank())?],
        None => x.len(),
    };
    let kept: Vec<usize> = cond.iter().take(len).enumerate().filter(|(_, &c)| c).map(|(i, _)| i).collect();
    match axis {
        None => Ok(x.gather_flat(out.shape.clone(), &kept)?),
        Some(a) => {
            let a = norm_axis(a, x.rank())?;
            if out.shape.dims().get(a) != Some(&kept.len()) {
                return Err(EvalError::Op("Compress condition differs from the one inference saw".into()));
            }
            remap(x, out, |o, src| {
                src.copy_from_slice(o);
                src[a] = kept[o[a]];
            })
        }
    }
}

pub(super) fn reverse_sequence(inputs: &[Option<&Tensor>], batch_axis: usize, time_axis: usize, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let lens = input(inputs, 1)?.to_i64_vec();
    let steps = x.dims()[time_axis];
    if let Some(l) = lens.iter().find(|&&l| l < 0 || l as usize > steps) {
        return Err(EvalError::Op(format!("sequence length {l} is outside 0..={steps}")));
    }
    remap(x, out, |o, src| {
        src.copy_from_slice(o);
        let (b, t) = (o[batch_axis], o[time_axis]);
        let len = lens[b] as usize;
        if t < len {
            src[time_axis] = len - 1 - t;
        }
    })
}

pub(super) fn trilu(inputs: &[Option<&Tensor>], upper: bool, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let k = opt_i64s(inputs, 1).and_then(|v| v.first().copied()).unwrap_or(0);
    let r = x.rank();
    remap_fill(x, out, &zero(x.dtype()), |o, src| {
        src.copy_from_slice(o);
        let diag = o[r - 1] as i64 - o[r - 2] as i64;
        if upper {
            diag >= k
        } else {
            diag <= k
        }
    })
}
