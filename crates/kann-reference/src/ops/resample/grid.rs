//! GridSample and AffineGrid, written from the ONNX spec (and its reference
//! implementation): each output element is a weighted sum over the tensor
//! product of the per-axis taps the IR computes. Computes in f64.

use crate::EvalError;
use kann_ir::ops::resample::{affine_base, AffineGrid, GridSample, GridTap};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

pub fn grid_sample(g: &GridSample, x: &Tensor, grid: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let xd = x.dims();
    if xd.len() < 3 || grid.rank() != xd.len() {
        return Err(format!("GridSample: X {:?} and grid {:?} do not fit", xd, grid.dims()).into());
    }
    let (n, c, spatial) = (xd[0], xd[1], &xd[2..]);
    let r = spatial.len();
    let in_size: usize = spatial.iter().product();
    let points: usize = grid.dims()[1..=r].iter().product();
    let xv = x.to_f64_vec();
    let gv = grid.to_f64_vec();
    if gv.len() != n * points * r {
        return Err("GridSample: grid size does not match its shape".into());
    }
    let strides = crate::util::strides(spatial);
    let mut y = vec![0f64; n * c * points];
    for b in 0..n {
        for p in 0..points {
            let coords = &gv[(b * points + p) * r..][..r];
            // Axis a of the input is sampled by coordinate r - 1 - a.
            let taps: Vec<Vec<GridTap>> = (0..r).map(|a| g.axis_taps(coords[r - 1 - a], spatial[a])).collect();
            let kernel = product_taps(&taps, &strides);
            for ch in 0..c {
                let base = (b * c + ch) * in_size;
                let v: f64 = kernel.iter().map(|&(off, w)| off.map_or(0.0, |o| w * xv[base + o])).sum();
                y[(b * c + ch) * points + p] = v;
            }
        }
    }
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &y)?)
}

/// The tensor product of per-axis taps: flat offsets (`None` where some
/// axis reads zero) and the product of the weights.
fn product_taps(taps: &[Vec<GridTap>], strides: &[usize]) -> Vec<(Option<usize>, f64)> {
    let mut acc: Vec<(Option<usize>, f64)> = vec![(Some(0), 1.0)];
    for (axis_taps, &stride) in taps.iter().zip(strides) {
        let mut next = Vec::with_capacity(acc.len() * axis_taps.len());
        for &(off, w) in &acc {
            for &(pos, tw) in axis_taps {
                next.push((off.zip(pos).map(|(o, p)| o + p * stride), w * tw));
            }
        }
        acc = next;
    }
    acc
}

pub fn affine_grid(a: &AffineGrid, theta: &Tensor, size: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let n = theta.dims().first().copied().unwrap_or(0);
    let spatial = AffineGrid::spatial(&size.to_i64_vec(), n)?;
    let r = spatial.len();
    let tv = theta.to_f64_vec();
    if tv.len() != n * r * (r + 1) {
        return Err(format!("AffineGrid: theta {:?} does not fit a {r}-D size", theta.dims()).into());
    }
    let points: usize = spatial.iter().product();
    let mut y = Vec::with_capacity(n * points * r);
    let mut idx = vec![0usize; r];
    for b in 0..n {
        let th = &tv[b * r * (r + 1)..][..r * (r + 1)];
        for p in 0..points {
            unravel_into(p, &spatial, &mut idx);
            // Homogeneous point (x, y[, z], 1): x runs along the last axis.
            let mut point: Vec<f64> = (0..r).map(|k| affine_base(idx[r - 1 - k], spatial[r - 1 - k], a.align_corners)).collect();
            point.push(1.0);
            for row in 0..r {
                y.push(th[row * (r + 1)..][..r + 1].iter().zip(&point).map(|(t, v)| t * v).sum());
            }
        }
    }
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &y)?)
}

/// Row-major multi-index of flat position `p` in `dims`.
fn unravel_into(mut p: usize, dims: &[usize], idx: &mut [usize]) {
    for a in (0..dims.len()).rev() {
        let d = dims[a].max(1);
        idx[a] = p % d;
        p /= d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_ir::ops::resample::{GridMode, GridPadding};
    use kann_tensor::{DType, Shape};

    #[test]
    fn bilinear_samples_the_centre() {
        let x = Tensor::from_f32(Shape::from([1, 1, 2, 2]), vec![1., 2., 3., 4.]).unwrap();
        let grid = Tensor::from_f32(Shape::from([1, 1, 1, 2]), vec![0., 0.]).unwrap();
        let g = GridSample { mode: GridMode::Linear, padding: GridPadding::Zeros, align_corners: false };
        let y = grid_sample(&g, &x, &grid, &TensorInfo::new(DType::F32, Shape::from([1, 1, 1, 1]))).unwrap();
        assert_eq!(y.to_f64_vec(), vec![2.5]);
    }

    #[test]
    fn identity_affine_grid_align_corners() {
        let theta = Tensor::from_f32(Shape::from([1, 2, 3]), vec![1., 0., 0., 0., 1., 0.]).unwrap();
        let size = Tensor::vec_i64(vec![1, 1, 2, 2]);
        let a = AffineGrid { align_corners: true };
        let y = affine_grid(&a, &theta, &size, &TensorInfo::new(DType::F32, Shape::from([1, 2, 2, 2]))).unwrap();
        assert_eq!(y.to_f64_vec(), vec![-1., -1., 1., -1., -1., 1., 1., 1.]);
    }
}
