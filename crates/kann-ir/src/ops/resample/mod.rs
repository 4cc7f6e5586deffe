//! Resize (Upsample and Resize-10 are imported as a Resize with asymmetric
//! coordinates).
//!
//! Inputs keep the latest ONNX form: `X, roi, scales, sizes`, where exactly
//! one of `scales` / `sizes` is given (an empty tensor counts as omitted).
//! The geometry (output shape, per-axis scales, source coordinates and
//! interpolation taps) lives here so that every back-end computes the same
//! thing as the reference.

mod grid;
pub use grid::{affine_base, AffineGrid, GridMode, GridPadding, GridSample, GridTap};

use super::{check_dtype, const_f64s, const_i64s, norm_axis, optional, required, InferInput, InferResult};
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

#[derive(Debug, Clone, PartialEq)]
pub enum ResampleOp {
    Resize(Resize),
    /// Inputs: X, grid.
    GridSample(GridSample),
    /// Inputs: theta, size (a constant).
    AffineGrid(AffineGrid),
}

/// Interpolation kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    Nearest,
    /// Linear along every resized axis (bilinear, trilinear…).
    Linear,
    /// Cubic convolution along every resized axis (coefficient `cubic_coeff_a`).
    Cubic,
}

/// How an output coordinate maps back to an input coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordMode {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    /// Opset 11 only: `(x + 0.5) / scale`.
    TfHalfPixelForNn,
    /// Crops the `roi` region; outside the input gives `extrapolation_value`.
    TfCropAndResize,
}

/// How `nearest` rounds a fractional source coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// `keep_aspect_ratio_policy` (with `sizes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AspectPolicy {
    Stretch,
    NotLarger,
    NotSmaller,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resize {
    pub mode: ResizeMode,
    pub coord: CoordMode,
    pub nearest: NearestMode,
    pub cubic_coeff_a: f64,
    pub exclude_outside: bool,
    pub extrapolation_value: f64,
    /// Axes `scales` / `sizes` / `roi` refer to (`None`: all, in order).
    pub axes: Option<Vec<i64>>,
    pub keep_aspect_ratio: AspectPolicy,
    /// Widens the linear / cubic kernel when downsampling.
    pub antialias: bool,
}

/// The geometry of one resize, over every axis of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct ResizePlan {
    pub out_dims: Vec<usize>,
    /// Scale of each axis (1 where nothing is resized).
    pub scales: Vec<f64>,
    /// Region of interest `(start, end)` of each axis, in normalised coordinates.
    pub roi: Vec<(f64, f64)>,
}

/// How one output position along one axis is computed: `None` gives the
/// extrapolation value, otherwise a weighted sum of input positions.
pub type Taps = Option<Vec<(usize, f64)>>;

/// Treats an empty tensor as an omitted input (opset 11 passes empty
/// `scales` when `sizes` is used).
fn non_empty<T>(v: Option<Vec<T>>) -> Option<Vec<T>> {
    v.filter(|v| !v.is_empty())
}

impl Resize {
    /// A resize with the ONNX defaults for everything but `mode` and `coord`.
    pub fn new(mode: ResizeMode, coord: CoordMode) -> Resize {
        Resize {
            mode,
            coord,
            nearest: NearestMode::RoundPreferFloor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            axes: None,
            keep_aspect_ratio: AspectPolicy::Stretch,
            antialias: false,
        }
    }

    /// The resized axes, normalised and checked.
    fn axes(&self, rank: usize) -> Result<Vec<usize>, String> {
        let Some(axes) = &self.axes else { return Ok((0..rank).collect()) };
        let mut seen = vec![false; rank];
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            let a = norm_axis(a, rank)?;
            if std::mem::replace(&mut seen[a], true) {
                return Err(format!("axis {a} is listed twice in axes {axes:?}"));
            }
            out.push(a);
        }
        Ok(out)
    }

    /// Output shape, scales and ROI from the constant inputs (empty ones
    /// count as omitted).
    pub fn plan(&self, in_dims: &[usize], roi: Option<Vec<f64>>, scales: Option<Vec<f64>>, sizes: Option<Vec<i64>>) -> Result<ResizePlan, String> {
        let rank = in_dims.len();
        let axes = self.axes(rank)?;
        let mut plan = ResizePlan { out_dims: in_dims.to_vec(), scales: vec![1.0; rank], roi: vec![(0.0, 1.0); rank] };
        match (non_empty(scales), non_empty(sizes)) {
            (Some(_), Some(_)) => return Err("only one of 'scales' and 'sizes' may be given".into()),
            (None, None) => return Err("one of 'scales' and 'sizes' must be given".into()),
            (Some(s), None) => self.plan_scales(in_dims, &axes, &s, &mut plan)?,
            (None, Some(s)) => self.plan_sizes(in_dims, &axes, &s, &mut plan)?,
        }
        if self.coord == CoordMode::TfCropAndResize {
            let roi = non_empty(roi).ok_or("coordinate_transformation_mode tf_crop_and_resize needs the 'roi' input")?;
            if roi.len() != 2 * axes.len() {
                return Err(format!("roi has {} values, expected {} (start and end of {} axes)", roi.len(), 2 * axes.len(), axes.len()));
            }
            for (i, &a) in axes.iter().enumerate() {
                plan.roi[a] = (roi[i], roi[axes.len() + i]);
            }
        }
        Ok(plan)
    }

    /// `output = floor(input * scale)` on each listed axis.
    fn plan_scales(&self, in_dims: &[usize], axes: &[usize], scales: &[f64], plan: &mut ResizePlan) -> Result<(), String> {
        if scales.len() != axes.len() {
            return Err(format!("scales has {} values for {} axes", scales.len(), axes.len()));
        }
        for (&a, &s) in axes.iter().zip(scales) {
            if !(s > 0.0 && s.is_finite()) {
                return Err(format!("scale {s} of axis {a} must be positive"));
            }
            let out = (in_dims[a] as f64 * s).floor();
            if out > (1u64 << 40) as f64 {
                return Err(format!("scale {s} makes axis {a} absurdly large"));
            }
            plan.scales[a] = s;
            plan.out_dims[a] = out as usize;
        }
        Ok(())
    }

    /// Sizes, possibly adjusted by the aspect-ratio policy (one common
    /// scale, output `round_half_up(scale * input)`).
    fn plan_sizes(&self, in_dims: &[usize], axes: &[usize], sizes: &[i64], plan: &mut ResizePlan) -> Result<(), String> {
        if sizes.len() != axes.len() {
            return Err(format!("sizes has {} values for {} axes", sizes.len(), axes.len()));
        }
        let mut ratios = Vec::with_capacity(axes.len());
        for (&a, &s) in axes.iter().zip(sizes) {
            if s < 0 {
                return Err(format!("size {s} of axis {a} is negative"));
            }
            if in_dims[a] == 0 {
                return Err(format!("axis {a} of size 0 cannot be resized to {s}"));
            }
            ratios.push(s as f64 / in_dims[a] as f64);
        }
        let common = match self.keep_aspect_ratio {
            AspectPolicy::Stretch => None,
            AspectPolicy::NotLarger => ratios.iter().copied().reduce(f64::min),
            AspectPolicy::NotSmaller => ratios.iter().copied().reduce(f64::max),
        };
        for (i, &a) in axes.iter().enumerate() {
            match common {
                None => {
                    plan.scales[a] = ratios[i];
                    plan.out_dims[a] = sizes[i] as usize;
                }
                Some(scale) => {
                    plan.scales[a] = scale;
                    plan.out_dims[a] = (scale * in_dims[a] as f64 + 0.5).floor() as usize;
                }
            }
        }
        Ok(())
    }

    /// Whether resampling axis `a` of the plan changes nothing.
    pub fn is_identity(&self, plan: &ResizePlan, in_dims: &[usize], a: usize) -> bool {
        plan.scales[a] == 1.0 && plan.out_dims[a] == in_dims[a] && self.coord != CoordMode::TfCropAndResize
    }

    /// Input coordinate of output position `x` along an axis.
    pub fn source_coord(&self, x: usize, in_len: usize, out_len: usize, scale: f64, roi: (f64, f64)) -> f64 {
        let x = x as f64;
        let in_len_f = in_len as f64;
        // The spec's `length_resized`: the output length before flooring
        // (`out_len` when `sizes` is given).
        let out_width = scale * in_len_f;
        match self.coord {
            CoordMode::HalfPixel => (x + 0.5) / scale - 0.5,
            CoordMode::HalfPixelSymmetric => {
                let adjustment = out_len as f64 / out_width;
                let offset = in_len_f / 2.0 * (1.0 - adjustment);
                offset + (x + 0.5) / scale - 0.5
            }
            CoordMode::PytorchHalfPixel => {
                if out_width > 1.0 {
                    (x + 0.5) / scale - 0.5
                } else {
                    0.0
                }
            }
            CoordMode::AlignCorners => {
                if out_width > 1.0 {
                    x * (in_len_f - 1.0) / (out_width - 1.0)
                } else {
                    0.0
                }
            }
            CoordMode::Asymmetric => x / scale,
            CoordMode::TfHalfPixelForNn => (x + 0.5) / scale,
            CoordMode::TfCropAndResize => {
                let (start, end) = roi;
                if out_width > 1.0 {
                    start * (in_len_f - 1.0) + x * (end - start) * (in_len_f - 1.0) / (out_width - 1.0)
                } else {
                    0.5 * (start + end) * (in_len_f - 1.0)
                }
            }
        }
    }

    /// For every output position along one axis, which input positions it
    /// reads and with which weights. Positions beyond the edges are clamped
    /// (edge padding); with `exclude_outside` they get weight 0 instead and
    /// the rest is renormalised.
    pub fn axis_taps(&self, in_len: usize, out_len: usize, scale: f64, roi: (f64, f64)) -> Vec<Taps> {
        (0..out_len).map(|x| self.taps_at(self.source_coord(x, in_len, out_len, scale, roi), in_len, scale)).collect()
    }

    fn taps_at(&self, x: f64, in_len: usize, scale: f64) -> Taps {
        if in_len == 0 || !x.is_finite() {
            return None;
        }
        if self.coord == CoordMode::TfCropAndResize && (x < 0.0 || x > (in_len - 1) as f64) {
            return None;
        }
        // Far outside the input every tap clamps to an edge anyway; bounding x
        // keeps the index arithmetic below from overflowing.
        let limit = 8.0 * in_len as f64 + 64.0;
        let x = x.clamp(-limit, limit);
        // x = base + ratio with ratio in (0, 1]: an integral x sits at ratio 1.
        let base = x.ceil() - 1.0;
        let ratio = x - base;
        let (first, weights) = self.kernel(ratio, scale);
        let mut taps: Vec<(i64, f64)> = weights.into_iter().enumerate().map(|(i, w)| (base as i64 + first + i as i64, w)).collect();
        if self.exclude_outside {
            for t in taps.iter_mut() {
                if t.0 < 0 || t.0 >= in_len as i64 {
                    t.1 = 0.0;
                }
            }
            let sum: f64 = taps.iter().map(|t| t.1).sum();
            if sum != 0.0 {
                taps.iter_mut().for_each(|t| t.1 /= sum);
            }
        }
        let last = in_len as i64 - 1;
        Some(taps.into_iter().filter(|t| t.1 != 0.0).map(|(i, w)| (i.clamp(0, last) as usize, w)).collect())
    }

    /// Kernel weights for a source coordinate `base + ratio`: the offset of
    /// the first tap from `base` and one weight per tap.
    fn kernel(&self, ratio: f64, scale: f64) -> (i64, Vec<f64>) {
        match self.mode {
            ResizeMode::Nearest => {
                let up = if ratio == 1.0 {
                    true
                } else {
                    match self.nearest {
                        NearestMode::RoundPreferFloor => ratio > 0.5,
                        NearestMode::RoundPreferCeil => ratio >= 0.5,
                        NearestMode::Floor => false,
                        NearestMode::Ceil => true,
                    }
                };
                (if up { 1 } else { 0 }, vec![1.0])
            }
            ResizeMode::Linear => {
                // Antialiasing stretches the triangle filter by 1/scale when downsampling.
                let s = if self.antialias { scale.min(1.0) } else { 1.0 };
                let start = (-1.0 / s).floor() as i64 + 1;
                let weights: Vec<f64> = (start..1 - start + 1).map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0)).collect();
                (start, normalised(weights))
            }
            ResizeMode::Cubic => {
                let s = if self.antialias { scale.min(1.0) } else { 1.0 };
                let start = (-2.0 / s).floor() as i64 + 1;
                let a = self.cubic_coeff_a;
                let weights: Vec<f64> = (start..2 - start).map(|i| cubic(((i as f64 - ratio) * s).abs(), a)).collect();
                let weights = if self.antialias { normalised(weights) } else { weights };
                (start, weights)
            }
        }
    }

    fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "X")?;
        let allowed: &[DType] = match self.mode {
            ResizeMode::Nearest => &DType::ALL,
            _ => &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8, DType::U8, DType::I32, DType::I64],
        };
        check_dtype(x.info, allowed, "X")?;
        let roi = if self.coord == CoordMode::TfCropAndResize { const_f64s(inputs, 1, "roi")? } else { None };
        let scales = const_f64s(inputs, 2, "scales")?;
        let sizes = const_i64s(inputs, 3, "sizes")?;
        let plan = self.plan(x.info.shape.dims(), roi, scales, sizes)?;
        // Keep an unused roi input harmless but well-typed.
        if let Some(r) = optional(inputs, 1) {
            if !r.info.dtype.is_float() {
                return Err(format!("roi must be a float tensor, found {}", r.info.dtype));
            }
        }
        Ok(vec![TensorInfo::new(x.info.dtype, Shape::new(plan.out_dims))])
    }
}

/// Divides by the sum (when it is non-zero) so the weights add up to 1.
fn normalised(mut w: Vec<f64>) -> Vec<f64> {
    let sum: f64 = w.iter().sum();
    if sum != 0.0 {
        w.iter_mut().for_each(|x| *x /= sum);
    }
    w
}

/// Keys' cubic convolution kernel at distance `d >= 0` with coefficient `a`.
fn cubic(d: f64, a: f64) -> f64 {
    if d <= 1.0 {
        ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
    } else if d < 2.0 {
        ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
    } else {
        0.0
    }
}

impl ResampleOp {
    pub fn name(&self) -> &'static str {
        match self {
            ResampleOp::Resize(_) => "Resize",
            ResampleOp::GridSample(_) => "GridSample",
            ResampleOp::AffineGrid(_) => "AffineGrid",
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        match self {
            ResampleOp::Resize(r) => r.infer(inputs),
            ResampleOp::GridSample(g) => g.infer(inputs),
            ResampleOp::AffineGrid(a) => a.infer(inputs),
        }
    }

    /// Two operations per tap: 1 tap per resized axis for nearest, 2 for
    /// linear, 4 for cubic (antialiasing widens the kernel; not counted).
    pub fn flops(&self, inputs: &[Option<&TensorInfo>], outputs: &[TensorInfo]) -> u64 {
        let r = match self {
            ResampleOp::Resize(r) => r,
            ResampleOp::GridSample(g) => return g.flops(outputs),
            // One multiply-add per coordinate and affine coefficient.
            ResampleOp::AffineGrid(_) => return outputs.first().map_or(0, |y| 2 * (y.rank() as u64) * y.numel() as u64),
        };
        let (Some(Some(x)), Some(y)) = (inputs.first(), outputs.first()) else { return 0 };
        let resized = x.shape.iter().zip(y.shape.iter()).filter(|(a, b)| a != b).count() as u32;
        let taps: u64 = match r.mode {
            ResizeMode::Nearest => return 0,
            ResizeMode::Linear => 2u64.saturating_pow(resized),
            ResizeMode::Cubic => 4u64.saturating_pow(resized),
        };
        2 * taps.saturating_mul(y.numel() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(mode: ResizeMode, coord: CoordMode) -> Resize {
        Resize::new(mode, coord)
    }

    #[test]
    fn scales_floor_and_sizes_keep_aspect() {
        let r = resize(ResizeMode::Nearest, CoordMode::HalfPixel);
        let p = r.plan(&[1, 1, 2, 4], None, Some(vec![1.0, 1.0, 0.6, 0.6]), None).unwrap();
        assert_eq!(p.out_dims, vec![1, 1, 1, 2]);
        let mut r = r;
        r.keep_aspect_ratio = AspectPolicy::NotLarger;
        r.axes = Some(vec![2, 3]);
        let p = r.plan(&[1, 1, 2, 2], None, None, Some(vec![7, 8])).unwrap();
        assert_eq!(p.out_dims, vec![1, 1, 7, 7]);
        assert!(r.plan(&[1, 1, 2, 2], None, Some(vec![2.0, 2.0]), Some(vec![4, 4])).is_err());
    }

    #[test]
    fn linear_taps_are_clamped_at_edges() {
        let r = resize(ResizeMode::Linear, CoordMode::HalfPixel);
        let taps = r.axis_taps(2, 4, 2.0, (0.0, 1.0));
        // x=0 -> -0.25: clamped to input 0 entirely.
        let t0 = taps[0].as_ref().unwrap();
        assert!(t0.iter().all(|&(i, _)| i == 0));
        assert!((t0.iter().map(|t| t.1).sum::<f64>() - 1.0).abs() < 1e-12);
        // x=1 -> 0.25.
        assert_eq!(taps[1].as_ref().unwrap(), &vec![(0, 0.75), (1, 0.25)]);
    }
}

