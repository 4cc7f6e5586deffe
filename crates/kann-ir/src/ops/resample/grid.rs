//! GridSample and AffineGrid.
//!
//! GridSample reads `X` (N, C, D1…Dr) at the normalised coordinates of
//! `grid` (N, O1…Or, r), whose last axis lists the coordinates in reverse
//! axis order (x indexes the last spatial axis). The per-axis geometry
//! (denormalisation, padding, taps) lives here so that every back-end
//! samples exactly like the reference.

use super::{InferInput, InferResult};
use crate::ops::check_dtype;
use crate::ops::{const_i64s, required, FLOATS};
use crate::TensorInfo;
use kann_tensor::Shape;

/// Interpolation of GridSample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridMode {
    Nearest,
    /// Linear along every spatial axis (bilinear, trilinear…).
    Linear,
    /// Cubic convolution (Keys, a = -0.75) along every spatial axis.
    Cubic,
}

/// What GridSample reads outside the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridPadding {
    Zeros,
    /// The nearest edge element.
    Border,
    /// Mirrored at the borders.
    Reflection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GridSample {
    pub mode: GridMode,
    pub padding: GridPadding,
    /// -1 and 1 are the centres of the corner elements (otherwise their
    /// outer edges).
    pub align_corners: bool,
}

/// Builds the sampling grid of an affine transform `theta` (N, 2, 3) or
/// (N, 3, 4) for the output size given by input #1 (N, C, H, W) or
/// (N, C, D, H, W).
#[derive(Debug, Clone, PartialEq)]
pub struct AffineGrid {
    pub align_corners: bool,
}

/// One tap of a sampling kernel along one axis: the input position (`None`
/// reads zero) and its weight.
pub type GridTap = (Option<usize>, f64);

/// Keys' cubic kernel (a = -0.75) at distance `d`.
fn cubic(d: f64) -> f64 {
    super::cubic(d.abs(), -0.75)
}

/// Mirrors `x` at `lo` and `hi` until it lies between them.
fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let range = hi - lo;
    if range <= 0.0 || !x.is_finite() {
        return lo;
    }
    let (dx, from_low) = if x < lo {
        (lo - x, true)
    } else if x > hi {
        (x - hi, false)
    } else {
        return x;
    };
    let n = (dx / range).trunc();
    let r = dx - n * range;
    let even = n % 2.0 == 0.0;
    match (from_low, even) {
        (true, true) | (false, false) => lo + r,
        _ => hi - r,
    }
}

impl GridSample {
    /// The borders coordinates are reflected at.
    fn borders(&self, len: usize) -> (f64, f64) {
        if self.align_corners {
            (0.0, len as f64 - 1.0)
        } else {
            (-0.5, len as f64 - 0.5)
        }
    }

    /// The input position read for integer position `i` along an axis of
    /// length `len` (`None`: zero).
    fn pixel(&self, i: i64, len: usize) -> Option<usize> {
        if len == 0 {
            return None;
        }
        let last = len as i64 - 1;
        match self.padding {
            GridPadding::Zeros => (0..=last).contains(&i).then_some(i as usize),
            GridPadding::Border => Some(i.clamp(0, last) as usize),
            GridPadding::Reflection => {
                let (lo, hi) = self.borders(len);
                Some((reflect(i as f64, lo, hi) as i64).clamp(0, last) as usize)
            }
        }
    }

    /// The taps that sample normalised coordinate `g` along an axis of
    /// length `len`, following the ONNX reference: denormalise, round for
    /// `nearest`, move coordinates outside the borders (border / reflection
    /// padding), then read the kernel's positions with padding.
    pub fn axis_taps(&self, g: f64, len: usize) -> Vec<GridTap> {
        let n = len as f64;
        let mut x = if self.align_corners { (g + 1.0) / 2.0 * (n - 1.0) } else { ((g + 1.0) * n - 1.0) / 2.0 };
        if self.mode == GridMode::Nearest {
            x = x.round_ties_even();
        }
        let (lo, hi) = self.borders(len);
        if x < lo || x > hi {
            match self.padding {
                GridPadding::Zeros => {}
                GridPadding::Border => x = x.clamp(0.0, (n - 1.0).max(0.0)),
                GridPadding::Reflection => x = reflect(x, lo, hi),
            }
        }
        let x0 = x.floor() as i64;
        let t = x - x.floor();
        match self.mode {
            GridMode::Nearest => vec![(self.pixel(x.trunc() as i64, len), 1.0)],
            GridMode::Linear => vec![(self.pixel(x0, len), 1.0 - t), (self.pixel(x0.saturating_add(1), len), t)],
            GridMode::Cubic => vec![
                (self.pixel(x0.saturating_sub(1), len), cubic(t + 1.0)),
                (self.pixel(x0, len), cubic(t)),
                (self.pixel(x0.saturating_add(1), len), cubic(1.0 - t)),
                (self.pixel(x0.saturating_add(2), len), cubic(2.0 - t)),
            ],
        }
    }

    pub(super) fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "X")?;
        let grid = required(inputs, 1, "grid")?;
        check_dtype(x.info, FLOATS, "X")?;
        check_dtype(grid.info, FLOATS, "grid")?;
        let (xd, gd) = (x.info.shape.dims(), grid.info.shape.dims());
        if xd.len() < 3 {
            return Err(format!("GridSample needs X of rank 3 or more (N, C, spatial…), found {}", x.info));
        }
        let r = xd.len() - 2;
        if gd.len() != r + 2 || gd[0] != xd[0] || gd[r + 1] != r {
            return Err(format!("GridSample's grid must have shape (N, O1…O{r}, {r}) with N = {}, found {}", xd[0], grid.info));
        }
        let mut dims = vec![xd[0], xd[1]];
        dims.extend_from_slice(&gd[1..=r]);
        Ok(vec![TensorInfo::new(x.info.dtype, Shape::new(dims))])
    }

    /// Two operations per tap (a tensor product of the per-axis kernels).
    pub(super) fn flops(&self, outputs: &[TensorInfo]) -> u64 {
        let Some(y) = outputs.first() else { return 0 };
        let r = y.rank().saturating_sub(2) as u32;
        let taps: u64 = match self.mode {
            GridMode::Nearest => return 0,
            GridMode::Linear => 2u64.saturating_pow(r),
            GridMode::Cubic => 4u64.saturating_pow(r),
        };
        2 * taps.saturating_mul(y.numel() as u64)
    }
}

/// The normalised coordinate of position `i` along an output axis of length
/// `len` (0 for a single position, like PyTorch).
pub fn affine_base(i: usize, len: usize, align_corners: bool) -> f64 {
    if len <= 1 {
        0.0
    } else if align_corners {
        -1.0 + 2.0 * i as f64 / (len as f64 - 1.0)
    } else {
        (2.0 * i as f64 + 1.0) / len as f64 - 1.0
    }
}

impl AffineGrid {
    /// The output spatial dims (D, H, W or H, W) from the `size` input.
    pub fn spatial(size: &[i64], n: usize) -> Result<Vec<usize>, String> {
        if size.len() != 4 && size.len() != 5 {
            return Err(format!("AffineGrid's size must list 4 or 5 values (N, C, spatial…), found {size:?}"));
        }
        let mut dims = Vec::with_capacity(size.len() - 2);
        for &d in &size[2..] {
            dims.push(usize::try_from(d).map_err(|_| format!("AffineGrid's size must be non-negative, found {size:?}"))?);
        }
        if size[0] != n as i64 {
            return Err(format!("AffineGrid's size {size:?} does not match theta's batch {n}"));
        }
        Ok(dims)
    }

    pub(super) fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let theta = required(inputs, 0, "theta")?;
        check_dtype(theta.info, FLOATS, "theta")?;
        required(inputs, 1, "size")?;
        let size = const_i64s(inputs, 1, "size")?.unwrap_or_default();
        let td = theta.info.shape.dims();
        let n = td.first().copied().unwrap_or(0);
        let spatial = AffineGrid::spatial(&size, n)?;
        let r = spatial.len();
        if td != [n, r, r + 1] {
            return Err(format!("AffineGrid's theta must have shape (N, {r}, {}) for a {r}-D size, found {}", r + 1, theta.info));
        }
        let mut dims = vec![n];
        dims.extend_from_slice(&spatial);
        dims.push(r);
        Ok(vec![TensorInfo::new(theta.info.dtype, Shape::new(dims))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_mirrors_at_borders() {
        assert_eq!(reflect(-1.0, 0.0, 3.0), 1.0);
        assert_eq!(reflect(4.0, 0.0, 3.0), 2.0);
        assert_eq!(reflect(7.0, 0.0, 3.0), 1.0);
        assert_eq!(reflect(-1.0, -0.5, 2.5), 0.0);
    }

    #[test]
    fn linear_taps_with_zero_padding() {
        let g = GridSample { mode: GridMode::Linear, padding: GridPadding::Zeros, align_corners: true };
        // -1 maps to 0, 1 to len - 1; 0 to the middle.
        assert_eq!(g.axis_taps(0.0, 3), vec![(Some(1), 1.0), (Some(2), 0.0)]);
        assert_eq!(g.axis_taps(-1.5, 3)[0], (None, 0.5));
    }
}
