//! Col2Im (the inverse of im2col: sums sliding blocks back into an image),
//! TensorScatter (writes an update into a cache along one axis) and
//! Unique (whose output shape depends on the data, so only constant inputs
//! are accepted).

use super::super::{check_dtype, const_i64s, norm_axis, optional, required, InferInput, InferResult, NUMERIC};
use super::INDEX_TYPES;
use crate::TensorInfo;
use kann_tensor::{DType, Shape, Tensor};
use std::cmp::Ordering;

/// Geometry of one Col2Im: input (N, C·∏block, L) → output (N, C, image…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Col2ImGeometry {
    pub n: usize,
    pub c: usize,
    pub image: Vec<usize>,
    pub block: Vec<usize>,
    /// Number of block positions along each spatial axis (∏ = L).
    pub positions: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Padding at the start of each spatial axis.
    pub pads_begin: Vec<usize>,
}

/// Non-negative sizes from an i64 list (`default` for each of `k` when omitted).
fn sizes(v: Option<&[i64]>, k: usize, default: i64, what: &str, positive: bool) -> Result<Vec<usize>, String> {
    let v = v.map_or_else(|| vec![default; k], <[i64]>::to_vec);
    if v.len() != k {
        return Err(format!("Col2Im's {what} must list {k} values, found {v:?}"));
    }
    v.iter()
        .map(|&x| usize::try_from(x).ok().filter(|&x| !positive || x > 0).ok_or_else(|| format!("Col2Im's {what} has an invalid value in {v:?}")))
        .collect()
}

/// Checks Col2Im's shapes and attributes and computes its geometry.
pub fn col2im_geometry(input: &[usize], image: &[i64], block: &[i64], dilations: Option<&[i64]>, pads: Option<&[i64]>, strides: Option<&[i64]>) -> Result<Col2ImGeometry, String> {
    let k = image.len();
    let &[n, cb, l] = input else {
        return Err(format!("Col2Im takes a 3-D input (N, C·∏block, L), found shape {input:?}"));
    };
    if k == 0 || block.len() != k {
        return Err(format!("Col2Im's image_shape {image:?} and block_shape {block:?} must have the same non-zero length"));
    }
    let image = sizes(Some(image), k, 0, "image_shape", false)?;
    let block = sizes(Some(block), k, 0, "block_shape", true)?;
    let dilations = sizes(dilations, k, 1, "dilations", true)?;
    let strides = sizes(strides, k, 1, "strides", true)?;
    let pads = sizes(pads, 2 * k, 0, "pads", false)?;
    let mut positions = Vec::with_capacity(k);
    for d in 0..k {
        let span = dilations[d].saturating_mul(block[d] - 1).saturating_add(1);
        let padded = image[d].saturating_add(pads[d]).saturating_add(pads[d + k]);
        if padded < span {
            return Err(format!("Col2Im: block {} (dilated {span}) does not fit padded image size {padded} on axis {d}", block[d]));
        }
        positions.push((padded - span) / strides[d] + 1);
    }
    let block_size: usize = block.iter().product();
    if cb % block_size != 0 || positions.iter().product::<usize>() != l {
        return Err(format!("Col2Im: input {input:?} does not fit blocks {block:?} at {positions:?} positions"));
    }
    Ok(Col2ImGeometry { n, c: cb / block_size, image, block, positions, strides, dilations, pads_begin: pads[..k].to_vec() })
}

pub(super) fn col2im(inputs: &[Option<InferInput>], dilations: Option<&[i64]>, pads: Option<&[i64]>, strides: Option<&[i64]>) -> InferResult {
    let x = required(inputs, 0, "input")?;
    check_dtype(x.info, NUMERIC, "input").map_err(|e| format!("{e} ({} is not supported)", x.info.dtype))?;
    required(inputs, 1, "image_shape")?;
    required(inputs, 2, "block_shape")?;
    let image = const_i64s(inputs, 1, "image_shape")?.unwrap_or_default();
    let block = const_i64s(inputs, 2, "block_shape")?.unwrap_or_default();
    let g = col2im_geometry(x.info.shape.dims(), &image, &block, dilations, pads, strides)?;
    let mut dims = vec![g.n, g.c];
    dims.extend_from_slice(&g.image);
    Ok(vec![TensorInfo::new(x.info.dtype, Shape::new(dims))])
}

/// TensorScatter: `past_cache` (batch, …) with `update` written along
/// `axis` starting at `write_indices[batch]` (default 0).
pub(super) fn tensor_scatter(inputs: &[Option<InferInput>], axis: i64) -> InferResult {
    let past = required(inputs, 0, "past_cache")?;
    let update = required(inputs, 1, "update")?;
    let (pd, ud) = (past.info.shape.dims(), update.info.shape.dims());
    let axis = tensor_scatter_axis(axis, pd.len())?;
    if update.info.dtype != past.info.dtype {
        return Err(format!("TensorScatter: update {} and past_cache {} differ in dtype", update.info, past.info));
    }
    if ud.len() != pd.len() || pd.iter().zip(ud).enumerate().any(|(a, (p, u))| if a == axis { u > p } else { u != p }) {
        return Err(format!("TensorScatter: update {} does not fit past_cache {} along axis {axis}", update.info, past.info));
    }
    if let Some(w) = optional(inputs, 2) {
        check_dtype(w.info, INDEX_TYPES, "write_indices")?;
        if w.info.shape.dims() != [pd[0]] {
            return Err(format!("TensorScatter: write_indices must have shape [{}], found {}", pd[0], w.info));
        }
    }
    Ok(vec![past.info.clone()])
}

/// TensorScatter's axis, normalised; the batch axis 0 is not allowed.
pub fn tensor_scatter_axis(axis: i64, rank: usize) -> Result<usize, String> {
    match norm_axis(axis, rank)? {
        0 => Err("TensorScatter's axis cannot be the batch axis 0".into()),
        a => Ok(a),
    }
}

/// What Unique finds: the unique elements (or slices along an axis) in
/// output order, each as the position of its first occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniquePlan {
    /// The axis the slices run along (`None`: the flattened input).
    pub axis: Option<usize>,
    /// First occurrence of each unique slice, in output order.
    pub first: Vec<usize>,
    /// For each input slice, the position of its unique slice.
    pub inverse: Vec<usize>,
    /// Occurrences of each unique slice.
    pub counts: Vec<usize>,
}

/// Comparable keys of a tensor's elements (-0 and 0 are the same value).
enum Keys {
    Int(Vec<i64>),
    Float(Vec<f64>),
}

impl Keys {
    fn cmp(&self, i: usize, j: usize) -> Ordering {
        match self {
            Keys::Int(v) => v[i].cmp(&v[j]),
            Keys::Float(v) => v[i].total_cmp(&v[j]),
        }
    }
}

/// Finds the unique elements of `x` (flattened when `axis` is `None`) or
/// its unique slices along `axis`; `sorted` orders them ascending
/// (lexicographically for slices), otherwise by first occurrence.
pub fn unique_plan(x: &Tensor, axis: Option<i64>, sorted: bool) -> Result<UniquePlan, String> {
    let dims = x.dims();
    let axis = axis.map(|a| norm_axis(a, dims.len())).transpose()?;
    let (outer, len, inner) = match axis {
        None => (1, x.len(), 1),
        Some(a) => (dims[..a].iter().product(), dims[a], dims[a + 1..].iter().product()),
    };
    let keys = if x.dtype().is_int() || x.dtype() == DType::Bool {
        Keys::Int(x.to_i64_vec())
    } else {
        Keys::Float(x.to_f64_vec().into_iter().map(|v| if v == 0.0 { 0.0 } else { v }).collect())
    };
    let cmp_slices = |p: usize, q: usize| -> Ordering {
        for o in 0..outer {
            for i in 0..inner {
                let ord = keys.cmp((o * len + p) * inner + i, (o * len + q) * inner + i);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
        Ordering::Equal
    };
    // Stable sort: each run of equal slices starts with the first occurrence.
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&p, &q| cmp_slices(p, q));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &s in &order {
        match groups.last_mut() {
            Some(g) if cmp_slices(g[0], s) == Ordering::Equal => g.push(s),
            _ => groups.push(vec![s]),
        }
    }
    if !sorted {
        groups.sort_by_key(|g| g[0]);
    }
    let mut inverse = vec![0; len];
    for (u, g) in groups.iter().enumerate() {
        for &s in g {
            inverse[s] = u;
        }
    }
    Ok(UniquePlan { axis, first: groups.iter().map(|g| g[0]).collect(), inverse, counts: groups.iter().map(Vec::len).collect() })
}

pub(super) fn unique(inputs: &[Option<InferInput>], axis: Option<i64>, sorted: bool) -> InferResult {
    let x = required(inputs, 0, "X")?;
    let Some(value) = x.value else {
        return Err("Unique of a non-constant input is not supported (its output shape depends on the data)".into());
    };
    let plan = unique_plan(value, axis, sorted)?;
    let u = plan.first.len();
    let y_dims = match plan.axis {
        None => vec![u],
        Some(a) => {
            let mut d = x.info.shape.to_vec();
            d[a] = u;
            d
        }
    };
    let vec_i64 = |n: usize| TensorInfo::new(DType::I64, Shape::from([n]));
    Ok(vec![TensorInfo::new(x.info.dtype, Shape::new(y_dims)), vec_i64(u), vec_i64(plan.inverse.len()), vec_i64(u)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn col2im_positions() {
        let g = col2im_geometry(&[1, 5, 25], &[5, 5], &[1, 5], None, Some(&[0, 2, 0, 2]), None).unwrap();
        assert_eq!(g.positions, vec![5, 5]);
        assert!(col2im_geometry(&[1, 5, 24], &[5, 5], &[1, 5], None, Some(&[0, 2, 0, 2]), None).is_err());
    }

    #[test]
    fn unique_unsorted_keeps_first_occurrence_order() {
        let x = Tensor::vec_i64(vec![2, 1, 1, 3, 4, 3]);
        let p = unique_plan(&x, None, false).unwrap();
        assert_eq!(p.first, vec![0, 1, 3, 4]);
        assert_eq!(p.inverse, vec![0, 1, 1, 2, 3, 2]);
        assert_eq!(p.counts, vec![1, 2, 2, 1]);
        let s = unique_plan(&x, None, true).unwrap();
        assert_eq!(s.first, vec![1, 0, 3, 4]);
    }
}
