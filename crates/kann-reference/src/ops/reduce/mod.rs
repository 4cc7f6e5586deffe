//! Reductions, arg-reductions, TopK, CumSum and NonZero, written from the
//! ONNX spec. Floats accumulate in f64; integer sums and products in i64
//! with wrapping (numpy's behaviour), converted once to the output dtype.

mod loss;

use crate::util::strides;
use crate::EvalError;
use kann_ir::ops::reduce::{cumsum_axis, ArgKind, ArgReduce, CumSum, Reduce, ReduceKind, ReduceOp, TopK};
use kann_ir::ops::norm_axis;
use kann_ir::TensorInfo;
use kann_tensor::{DType, Shape, Tensor};
use std::cmp::Ordering;

pub fn eval(op: &ReduceOp, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let x = inputs.first().copied().flatten().ok_or("missing input #0")?;
    let out = outputs.first().ok_or("missing output type")?;
    match op {
        ReduceOp::Reduce(r) => Ok(vec![reduce(r, x, inputs.get(1).copied().flatten(), out)?]),
        ReduceOp::Arg(a) => Ok(vec![arg(a, x, out)?]),
        ReduceOp::TopK(t) => topk(t, x, inputs.get(1).copied().flatten().ok_or("missing input K")?, outputs),
        ReduceOp::CumSum(c) => Ok(vec![cumulative(c, false, x, inputs.get(1).copied().flatten().ok_or("missing input axis")?, out)?]),
        ReduceOp::CumProd(c) => Ok(vec![cumulative(c, true, x, inputs.get(1).copied().flatten().ok_or("missing input axis")?, out)?]),
        ReduceOp::Loss(l) => loss::loss(l, x, inputs.get(1).copied().flatten().ok_or("missing input target")?, inputs.get(2).copied().flatten(), outputs),
        ReduceOp::NonZero => Ok(vec![nonzero(x, out)?]),
    }
}

/// For each input element, the flat index of the output element it reduces
/// into (reduced axes collapse to index 0).
fn reduction_map(dims: &[usize], reduced: &[bool]) -> Vec<usize> {
    let kept: Vec<usize> = dims.iter().zip(reduced).map(|(&d, &r)| if r { 1 } else { d }).collect();
    let out_strides = strides(&kept);
    let n: usize = dims.iter().product();
    let mut map = Vec::with_capacity(n);
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..n {
        map.push(idx.iter().zip(&out_strides).zip(reduced).map(|((&i, &s), &r)| if r { 0 } else { i * s }).sum());
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    map
}

fn reduce(r: &Reduce, x: &Tensor, axes: Option<&Tensor>, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let axes = axes.map(|t| t.to_i64_vec());
    let reduced = r.reduced_axes(x.rank(), axes.as_deref())?;
    let map = reduction_map(x.dims(), &reduced);
    let n_out = out.numel();
    // Number of elements reduced into each output (the same for all).
    let count: usize = x.dims().iter().zip(&reduced).filter(|(_, &r)| r).map(|(&d, _)| d).product();
    let integer = x.dtype().is_int() || x.dtype() == DType::Bool;
    if integer && matches!(r.kind, ReduceKind::Sum | ReduceKind::Prod | ReduceKind::Max | ReduceKind::Min | ReduceKind::L1 | ReduceKind::SumSquare) {
        let v = reduce_i64(r.kind, &x.to_i64_vec(), &map, n_out, x.dtype());
        return Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &v)?);
    }
    let v = reduce_f64(r.kind, &x.to_f64_vec(), &map, n_out, count);
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &v)?)
}

/// Integer reductions, exact (sums and products wrap like numpy's).
fn reduce_i64(kind: ReduceKind, v: &[i64], map: &[usize], n_out: usize, dtype: DType) -> Vec<i64> {
    let (lowest, highest) = int_range(dtype);
    let init = match kind {
        ReduceKind::Prod => 1,
        ReduceKind::Max => lowest,
        ReduceKind::Min => highest,
        _ => 0,
    };
    let mut acc = vec![init; n_out];
    for (&x, &o) in v.iter().zip(map) {
        let a = &mut acc[o];
        *a = match kind {
            ReduceKind::Prod => a.wrapping_mul(x),
            ReduceKind::Max => (*a).max(x),
            ReduceKind::Min => (*a).min(x),
            ReduceKind::L1 => a.wrapping_add(x.wrapping_abs()),
            ReduceKind::SumSquare => a.wrapping_add(x.wrapping_mul(x)),
            _ => a.wrapping_add(x),
        };
    }
    acc
}

/// Smallest and largest value of an integer (or bool) dtype: what an empty
/// max / min reduction yields.
fn int_range(dtype: DType) -> (i64, i64) {
    match dtype {
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::U8 => (0, u8::MAX as i64),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::Bool => (0, 1),
        _ => (i64::MIN, i64::MAX),
    }
}

/// Float reductions in f64. `count` is the size of each reduced set.
fn reduce_f64(kind: ReduceKind, v: &[f64], map: &[usize], n_out: usize, count: usize) -> Vec<f64> {
    if kind == ReduceKind::LogSumExp {
        return log_sum_exp(v, map, n_out);
    }
    let init = match kind {
        ReduceKind::Prod => 1.0,
        ReduceKind::Max => f64::NEG_INFINITY,
        ReduceKind::Min => f64::INFINITY,
        _ => 0.0,
    };
    let mut acc = vec![init; n_out];
    for (&x, &o) in v.iter().zip(map) {
        let a = &mut acc[o];
        *a = match kind {
            ReduceKind::Prod => *a * x,
            // NaN propagates, as numpy's max / min do.
            ReduceKind::Max => if x.is_nan() || x > *a { x } else { *a },
            ReduceKind::Min => if x.is_nan() || x < *a { x } else { *a },
            ReduceKind::L1 => *a + x.abs(),
            ReduceKind::L2 | ReduceKind::SumSquare => *a + x * x,
            _ => *a + x,
        };
    }
    for a in acc.iter_mut() {
        *a = match kind {
            ReduceKind::Mean => *a / count as f64,
            ReduceKind::L2 => a.sqrt(),
            ReduceKind::LogSum => a.ln(),
            _ => *a,
        };
    }
    acc
}

/// log(sum(exp(x))) computed stably: max + log(sum(exp(x - max))).
fn log_sum_exp(v: &[f64], map: &[usize], n_out: usize) -> Vec<f64> {
    let mut max = vec![f64::NEG_INFINITY; n_out];
    for (&x, &o) in v.iter().zip(map) {
        if x > max[o] || x.is_nan() {
            max[o] = x;
        }
    }
    let mut sum = vec![0.0; n_out];
    for (&x, &o) in v.iter().zip(map) {
        if max[o].is_finite() {
            sum[o] += (x - max[o]).exp();
        }
    }
    max.iter().zip(&sum).map(|(&m, &s)| if m.is_finite() { m + s.ln() } else { m }).collect()
}

/// Splits `dims` around `axis`: (outer, axis length, inner) for the
/// `(outer, len, inner)` view every axis-wise op uses.
fn split_at_axis(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = dims[..axis].iter().product();
    let inner = dims[axis + 1..].iter().product();
    (outer, dims[axis], inner)
}

/// Orders two elements the way numpy's sort does for floats (NaN last) and
/// exactly for integers.
enum Keys {
    Int(Vec<i64>),
    Float(Vec<f64>),
}

impl Keys {
    fn of(x: &Tensor) -> Keys {
        if x.dtype().is_int() || x.dtype() == DType::Bool {
            Keys::Int(x.to_i64_vec())
        } else {
            Keys::Float(x.to_f64_vec())
        }
    }

    fn cmp(&self, i: usize, j: usize) -> Ordering {
        match self {
            Keys::Int(v) => v[i].cmp(&v[j]),
            Keys::Float(v) => v[i].total_cmp(&v[j]),
        }
    }
}

fn arg(a: &ArgReduce, x: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let axis = norm_axis(a.axis, x.rank())?;
    let (outer, len, inner) = split_at_axis(x.dims(), axis);
    if len == 0 {
        return Err(format!("{} over an empty axis", a.kind.name()).into());
    }
    let keys = Keys::of(x);
    let mut result = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let mut best = 0;
            for k in 1..len {
                let ord = keys.cmp(at(k), at(best));
                let better = match a.kind {
                    ArgKind::Max => ord == Ordering::Greater,
                    ArgKind::Min => ord == Ordering::Less,
                };
                if better || (a.select_last_index && ord == Ordering::Equal) {
                    best = k;
                }
            }
            result.push(best as i64);
        }
    }
    Ok(Tensor::from_i64(out.shape.clone(), result)?)
}

fn topk(t: &TopK, x: &Tensor, k: &Tensor, outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let axis = norm_axis(t.axis, x.rank())?;
    let (outer, len, inner) = split_at_axis(x.dims(), axis);
    let k = t.k(&k.to_i64_vec(), len)?;
    let keys = Keys::of(x);
    let mut flat = Vec::with_capacity(outer * k * inner);
    let mut indices = vec![0i64; outer * k * inner];
    let mut order: Vec<usize> = Vec::with_capacity(len);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            order.clear();
            order.extend(0..len);
            // Stable sort: equal values keep the lower index first.
            if t.largest {
                order.sort_by(|&p, &q| keys.cmp(at(q), at(p)));
            } else {
                order.sort_by(|&p, &q| keys.cmp(at(p), at(q)));
            }
            for (r, &j) in order[..k].iter().enumerate() {
                indices[(o * k + r) * inner + i] = j as i64;
            }
        }
    }
    // Row-major order of the output: re-walk it to gather the values.
    for o in 0..outer {
        for r in 0..k {
            for i in 0..inner {
                let j = indices[(o * k + r) * inner + i] as usize;
                flat.push((o * len + j) * inner + i);
            }
        }
    }
    let (vinfo, iinfo) = match outputs {
        [v, i, ..] => (v, i),
        _ => return Err("TopK needs two output types".into()),
    };
    let values = x.gather_flat(vinfo.shape.clone(), &flat)?;
    Ok(vec![values, Tensor::from_i64(iinfo.shape.clone(), indices)?])
}

/// Cumulative sum (or product, with `product`) along the axis input.
fn cumulative(c: &CumSum, product: bool, x: &Tensor, axis: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let axis = cumsum_axis(&axis.to_i64_vec(), x.rank())?;
    let (outer, len, inner) = split_at_axis(x.dims(), axis);
    // Positions along the axis in the order the scan runs.
    let order: Vec<usize> = if c.reverse { (0..len).rev().collect() } else { (0..len).collect() };
    if x.dtype().is_int() {
        let step = |a: i64, v: i64| if product { a.wrapping_mul(v) } else { a.wrapping_add(v) };
        let r = scan(&x.to_i64_vec(), outer, len, inner, &order, c.exclusive, i64::from(product), step);
        return Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &r)?);
    }
    let step = |a: f64, v: f64| if product { a * v } else { a + v };
    let r = scan(&x.to_f64_vec(), outer, len, inner, &order, c.exclusive, if product { 1.0 } else { 0.0 }, step);
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &r)?)
}

/// Inclusive (or exclusive) scan with `step` from `init` of every
/// `(outer, ·, inner)` line, visiting the axis positions in `order`.
#[allow(clippy::too_many_arguments)]
fn scan<T: Copy>(v: &[T], outer: usize, len: usize, inner: usize, order: &[usize], exclusive: bool, init: T, step: impl Fn(T, T) -> T) -> Vec<T> {
    let mut r = v.to_vec();
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = init;
            for &j in order {
                let p = (o * len + j) * inner + i;
                if exclusive {
                    r[p] = acc;
                    acc = step(acc, v[p]);
                } else {
                    acc = step(acc, v[p]);
                    r[p] = acc;
                }
            }
        }
    }
    r
}

/// Indices of the non-zero elements, one row per axis, in row-major order.
fn nonzero(x: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let nz: Vec<usize> = x.to_bool_vec().iter().enumerate().filter(|(_, &b)| b).map(|(i, _)| i).collect();
    let rank = x.rank();
    let mut r = vec![0i64; rank * nz.len()];
    for (col, &flat) in nz.iter().enumerate() {
        let idx = crate::util::unravel(flat, x.dims());
        for (d, &i) in idx.iter().enumerate() {
            r[d * nz.len() + col] = i as i64;
        }
    }
    let shape = Shape::from([rank, nz.len()]);
    if shape != out.shape {
        return Err(format!("NonZero found {} non-zero elements but inference said {}", nz.len(), out.shape).into());
    }
    Ok(Tensor::from_i64(shape, r)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32(Shape::from(dims), v.to_vec()).unwrap()
    }

    fn info(dtype: DType, dims: &[usize]) -> TensorInfo {
        TensorInfo::new(dtype, Shape::from(dims))
    }

    #[test]
    fn reduce_sum_over_axis_keepdims() {
        let r = Reduce { kind: ReduceKind::Sum, keepdims: true, noop_with_empty_axes: false };
        let x = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let axes = Tensor::vec_i64(vec![-1]);
        let y = reduce(&r, &x, Some(&axes), &info(DType::F32, &[2, 1])).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[6., 15.]);
    }

    #[test]
    fn reduce_all_and_empty_sets() {
        let r = Reduce { kind: ReduceKind::Max, keepdims: false, noop_with_empty_axes: false };
        let x = t(&[2, 2], &[1., 7., -3., 2.]);
        assert_eq!(reduce(&r, &x, None, &info(DType::F32, &[])).unwrap().as_f32().unwrap(), &[7.]);
        let empty = t(&[2, 0], &[]);
        let y = reduce(&r, &empty, Some(&Tensor::vec_i64(vec![1])), &info(DType::F32, &[2])).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[f32::NEG_INFINITY; 2]);
        let p = Reduce { kind: ReduceKind::Prod, keepdims: false, noop_with_empty_axes: false };
        let y = reduce(&p, &empty, Some(&Tensor::vec_i64(vec![1])), &info(DType::F32, &[2])).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[1., 1.]);
    }

    #[test]
    fn noop_reduces_each_element_alone() {
        let r = Reduce { kind: ReduceKind::SumSquare, keepdims: true, noop_with_empty_axes: true };
        let x = t(&[2], &[3., -2.]);
        let y = reduce(&r, &x, Some(&Tensor::vec_i64(vec![])), &info(DType::F32, &[2])).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[9., 4.]);
    }

    #[test]
    fn argmax_ties_and_last_index() {
        let x = t(&[2, 3], &[1., 5., 5., 4., 2., 4.]);
        let mut a = ArgReduce { kind: ArgKind::Max, axis: 1, keepdims: false, select_last_index: false };
        assert_eq!(arg(&a, &x, &info(DType::I64, &[2])).unwrap().as_i64().unwrap(), &[1, 0]);
        a.select_last_index = true;
        assert_eq!(arg(&a, &x, &info(DType::I64, &[2])).unwrap().as_i64().unwrap(), &[2, 2]);
    }

    #[test]
    fn topk_prefers_lower_index_on_ties() {
        let x = t(&[5], &[3., 1., 3., 2., 3.]);
        let k = Tensor::vec_i64(vec![2]);
        let op = TopK { axis: 0, largest: true, sorted: true };
        let out = topk(&op, &x, &k, &[info(DType::F32, &[2]), info(DType::I64, &[2])]).unwrap();
        assert_eq!(out[0].as_f32().unwrap(), &[3., 3.]);
        assert_eq!(out[1].as_i64().unwrap(), &[0, 2]);
    }

    #[test]
    fn cumsum_exclusive_reverse() {
        let x = t(&[4], &[1., 2., 3., 4.]);
        let c = CumSum { exclusive: true, reverse: true };
        let y = cumulative(&c, false, &x, &Tensor::scalar_i64(0), &info(DType::F32, &[4])).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[9., 7., 4., 0.]);
    }

    #[test]
    fn cumprod_exclusive() {
        let x = t(&[4], &[1., 2., 3., 4.]);
        let c = CumSum { exclusive: true, reverse: false };
        let y = cumulative(&c, true, &x, &Tensor::scalar_i64(0), &info(DType::F32, &[4])).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[1., 1., 2., 6.]);
    }

    #[test]
    fn nonzero_lists_indices_per_axis() {
        let x = t(&[2, 2], &[1., 0., 0., 3.]);
        let y = nonzero(&x, &info(DType::I64, &[2, 2])).unwrap();
        assert_eq!(y.as_i64().unwrap(), &[0, 1, 0, 1]);
    }
}
