//! Col2Im, TensorScatter and Unique, written from the ONNX spec with the
//! geometry the IR computes.

use super::input;
use crate::util::{strides, unravel};
use crate::EvalError;
use kann_ir::ops::movement::{col2im_geometry, tensor_scatter_axis, unique_plan};
use kann_ir::TensorInfo;
use kann_tensor::{Shape, Tensor};

/// Sums every column of `input` (one block position each) into the image:
/// block offset `k` at position `l` lands at `l·stride - pad + k·dilation`.
pub(super) fn col2im(inputs: &[Option<&Tensor>], dilations: Option<&[i64]>, pads: Option<&[i64]>, step: Option<&[i64]>, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0)?;
    let image = input(inputs, 1)?.to_i64_vec();
    let block = input(inputs, 2)?.to_i64_vec();
    let g = col2im_geometry(x.dims(), &image, &block, dilations, pads, step)?;
    let k = g.image.len();
    let block_size: usize = g.block.iter().product();
    let n_pos: usize = g.positions.iter().product();
    let image_size: usize = g.image.iter().product();
    let image_strides = strides(&g.image);
    let xv = x.to_f64_vec();
    let mut y = vec![0f64; g.n * g.c * image_size];
    for kb in 0..block_size {
        let bk = unravel(kb, &g.block);
        for l in 0..n_pos {
            let pos = unravel(l, &g.positions);
            // Flat image offset of this tap, if it lies inside the image.
            let mut offset = Some(0usize);
            for d in 0..k {
                let p = (pos[d] * g.strides[d] + bk[d] * g.dilations[d]).checked_sub(g.pads_begin[d]).filter(|&p| p < g.image[d]);
                offset = offset.zip(p).map(|(o, p)| o + p * image_strides[d]);
            }
            let Some(offset) = offset else { continue };
            for b in 0..g.n {
                for ch in 0..g.c {
                    y[(b * g.c + ch) * image_size + offset] += xv[((b * g.c + ch) * block_size + kb) * n_pos + l];
                }
            }
        }
    }
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &y)?)
}

/// Copies `past_cache` and writes `update` into it along `axis`, batch `b`
/// starting at `write_indices[b]` (wrapping around with `circular`).
pub(super) fn tensor_scatter(inputs: &[Option<&Tensor>], axis: i64, circular: bool, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let past = input(inputs, 0)?;
    let update = input(inputs, 1)?;
    let (pd, ud) = (past.dims(), update.dims());
    let axis = tensor_scatter_axis(axis, pd.len())?;
    let batch = pd[0];
    let starts = inputs.get(2).copied().flatten().map_or_else(|| vec![0; batch], Tensor::to_i64_vec);
    if starts.len() != batch || ud.len() != pd.len() {
        return Err("TensorScatter: write_indices or update do not fit past_cache".into());
    }
    let (max_len, seq) = (pd[axis], ud[axis]);
    let outer: usize = pd[..axis].iter().product();
    let per_batch = outer / batch.max(1);
    let inner: usize = pd[axis + 1..].iter().product();
    // Flat index into [past, update] of every output element.
    let mut index: Vec<usize> = (0..past.len()).collect();
    for o in 0..outer {
        let start = starts[o / per_batch.max(1)];
        for s in 0..seq {
            let p = start.checked_add(s as i64).ok_or("TensorScatter: write index overflows")?;
            let p = if circular && max_len > 0 { p.rem_euclid(max_len as i64) } else { p };
            let p = usize::try_from(p).ok().filter(|&p| p < max_len).ok_or_else(|| format!("TensorScatter: write position {p} is outside 0..{max_len}"))?;
            for i in 0..inner {
                index[(o * max_len + p) * inner + i] = past.len() + (o * seq + s) * inner + i;
            }
        }
    }
    let all = Tensor::concat_flat(past.dtype(), Shape::from([past.len() + update.len()]), &[past, update])?;
    Ok(all.gather_flat(out.shape.clone(), &index)?)
}

/// Unique's four outputs: Y, indices, inverse_indices, counts.
pub(super) fn unique(inputs: &[Option<&Tensor>], axis: Option<i64>, sorted: bool, outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let x = input(inputs, 0)?;
    let plan = unique_plan(x, axis, sorted)?;
    let y_info = outputs.first().ok_or("missing output type")?;
    let index: Vec<usize> = match plan.axis {
        None => plan.first.clone(),
        Some(a) => {
            let dims = x.dims();
            let (len, inner) = (dims[a], dims[a + 1..].iter().product::<usize>());
            let outer: usize = dims[..a].iter().product();
            let mut idx = Vec::with_capacity(outer * plan.first.len() * inner);
            for o in 0..outer {
                for &s in &plan.first {
                    idx.extend((0..inner).map(|i| (o * len + s) * inner + i));
                }
            }
            idx
        }
    };
    let y = x.gather_flat(y_info.shape.clone(), &index)?;
    let as_i64 = |v: &[usize]| Tensor::vec_i64(v.iter().map(|&i| i as i64).collect());
    Ok(vec![y, as_i64(&plan.first), as_i64(&plan.inverse), as_i64(&plan.counts)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::DType;

    #[test]
    fn col2im_sums_overlapping_blocks() {
        // One channel, 1-D image of 3, blocks of 2 at stride 1: two columns.
        let x = Tensor::from_f32(Shape::from([1, 2, 2]), vec![1., 2., 3., 4.]).unwrap();
        let img = Tensor::vec_i64(vec![3, 1]);
        let blk = Tensor::vec_i64(vec![2, 1]);
        let out = TensorInfo::new(DType::F32, Shape::from([1, 1, 3, 1]));
        let y = col2im(&[Some(&x), Some(&img), Some(&blk)], None, None, None, &out).unwrap();
        assert_eq!(y.to_f64_vec(), vec![1., 2. + 3., 4.]);
    }

    #[test]
    fn tensor_scatter_circular_wraps() {
        let past = Tensor::from_f32(Shape::from([1, 3, 1]), vec![0., 0., 0.]).unwrap();
        let upd = Tensor::from_f32(Shape::from([1, 2, 1]), vec![1., 2.]).unwrap();
        let w = Tensor::vec_i64(vec![2]);
        let out = TensorInfo::new(DType::F32, Shape::from([1, 3, 1]));
        let y = tensor_scatter(&[Some(&past), Some(&upd), Some(&w)], -2, true, &out).unwrap();
        assert_eq!(y.to_f64_vec(), vec![2., 0., 1.]);
    }
}
