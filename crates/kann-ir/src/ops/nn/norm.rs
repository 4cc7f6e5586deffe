//! Normalisations: `BatchNormalization` (inference), `InstanceNormalization`,
//! `LayerNormalization`, `GroupNormalization` and `LRN`.

use super::super::{broadcast, check_dtype, norm_axis, optional, required, InferInput, InferResult, FLOATS};
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

/// `BatchNormalization` in inference mode: X, scale, B, mean, var, all `[C]` but X.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    pub epsilon: f64,
}

/// `InstanceNormalization`: X, scale `[C]`, B `[C]`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceNorm {
    pub epsilon: f64,
}

/// `LayerNormalization`: X, Scale, optional B; normalises over axes `axis..`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    /// As given (may be negative).
    pub axis: i64,
    pub epsilon: f64,
    /// Dtype of the Mean and InvStdDev outputs (`stash_type`).
    pub stash: DType,
    /// Outputs the node produces: 1 (Y), 2 (+ Mean) or 3 (+ InvStdDev).
    pub outputs: usize,
}

/// `GroupNormalization`: X, scale, bias; statistics per (batch, group).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupNorm {
    pub num_groups: usize,
    pub epsilon: f64,
    /// Opset 18: scale and bias hold one value per group (when they hold
    /// `num_groups` values); from 21 always one per channel.
    pub per_group_affine: bool,
}

/// `LRN`: local response normalisation across channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Lrn {
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub bias: f64,
}

/// X, of a float dtype and rank >= `min_rank`.
fn float_input<'a>(inputs: &[Option<InferInput<'a>>], min_rank: usize) -> Result<&'a TensorInfo, String> {
    let x = required(inputs, 0, "X")?;
    check_dtype(x.info, FLOATS, "X")?;
    if x.info.rank() < min_rank {
        return Err(format!("X must have rank >= {min_rank}, found shape {}", x.info.shape));
    }
    Ok(x.info)
}

/// Checks that input `i` is a float tensor of exactly `n` elements.
fn check_vector(inputs: &[Option<InferInput>], i: usize, what: &str, n: usize) -> Result<(), String> {
    let v = required(inputs, i, what)?;
    check_dtype(v.info, FLOATS, what)?;
    if v.info.numel() != n || v.info.rank() > 1 && v.info.shape.dims().iter().filter(|&&d| d != 1).count() > 1 {
        return Err(format!("{what} must hold {n} values, found shape {}", v.info.shape));
    }
    Ok(())
}

impl BatchNorm {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = float_input(inputs, 2)?;
        let c = x.shape[1];
        for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
            check_vector(inputs, i, what, c)?;
        }
        Ok(vec![x.clone()])
    }
}

impl InstanceNorm {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = float_input(inputs, 2)?;
        check_vector(inputs, 1, "scale", x.shape[1])?;
        check_vector(inputs, 2, "B", x.shape[1])?;
        Ok(vec![x.clone()])
    }
}

impl LayerNorm {
    /// The first normalised axis for a rank-`rank` input.
    pub fn first_axis(&self, rank: usize) -> Result<usize, String> {
        norm_axis(self.axis, rank)
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = float_input(inputs, 1)?;
        let axis = self.first_axis(x.rank())?;
        for (i, what) in [(1, "Scale"), (2, "B")] {
            if let Some(p) = optional(inputs, i) {
                check_dtype(p.info, FLOATS, what)?;
                if broadcast(x.shape.dims(), p.info.shape.dims()).ok().as_deref() != Some(x.shape.dims()) {
                    return Err(format!("{what} of shape {} does not broadcast to X {}", p.info.shape, x.shape));
                }
            }
        }
        required(inputs, 1, "Scale")?;
        if !(1..=3).contains(&self.outputs) {
            return Err(format!("LayerNormalization has 1 to 3 outputs, not {}", self.outputs));
        }
        let mut stats = x.shape.dims()[..axis].to_vec();
        stats.resize(x.rank(), 1);
        let stat = TensorInfo::new(self.stash, Shape::new(stats));
        let mut out = vec![x.clone()];
        out.resize(self.outputs, stat);
        Ok(out)
    }
}

impl GroupNorm {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = float_input(inputs, 2)?;
        let c = x.shape[1];
        if self.num_groups == 0 || c % self.num_groups != 0 {
            return Err(format!("num_groups {} does not divide the {c} channels", self.num_groups));
        }
        // Opset 18 specifies one scale per group; per-channel scales (what
        // opset 21 made the rule) are accepted there too.
        let per_group = self.per_group_affine && required(inputs, 1, "scale")?.info.numel() == self.num_groups;
        let n = if per_group { self.num_groups } else { c };
        check_vector(inputs, 1, "scale", n)?;
        check_vector(inputs, 2, "bias", n)?;
        Ok(vec![x.clone()])
    }
}

impl Lrn {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = float_input(inputs, 2)?;
        if self.size == 0 {
            return Err("LRN size must be positive".into());
        }
        Ok(vec![x.clone()])
    }
}

/// `RMSNormalization`: X, scale; `X / sqrt(mean(X²) + epsilon) * scale`
/// with the mean over axes `axis..`.
#[derive(Debug, Clone, PartialEq)]
pub struct RmsNorm {
    pub axis: i64,
    pub epsilon: f64,
}

/// `LpNormalization`: `x / ‖x‖_p` along one axis, p 1 or 2.
#[derive(Debug, Clone, PartialEq)]
pub struct LpNorm {
    pub axis: i64,
    pub p: u32,
}

/// `MeanVarianceNormalization`: `(X - mean) / (std + 1e-9)` over `axes`.
#[derive(Debug, Clone, PartialEq)]
pub struct MeanVarianceNorm {
    /// As given (may be negative).
    pub axes: Vec<i64>,
}

impl RmsNorm {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = float_input(inputs, 1)?;
        norm_axis(self.axis, x.rank())?;
        let s = required(inputs, 1, "scale")?;
        check_dtype(s.info, FLOATS, "scale")?;
        if broadcast(x.shape.dims(), s.info.shape.dims()).ok().as_deref() != Some(x.shape.dims()) {
            return Err(format!("scale of shape {} does not broadcast to X {}", s.info.shape, x.shape));
        }
        Ok(vec![x.clone()])
    }
}

impl LpNorm {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = float_input(inputs, 1)?;
        norm_axis(self.axis, x.rank())?;
        if !matches!(self.p, 1 | 2) {
            return Err(format!("p = {} is not supported (only 1 and 2)", self.p));
        }
        Ok(vec![x.clone()])
    }
}

impl MeanVarianceNorm {
    /// The normalised axes, non-negative and sorted, for a rank-`rank` input.
    pub fn axes(&self, rank: usize) -> Result<Vec<usize>, String> {
        let mut axes = self.axes.iter().map(|&a| norm_axis(a, rank)).collect::<Result<Vec<_>, _>>()?;
        axes.sort_unstable();
        axes.dedup();
        Ok(axes)
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = float_input(inputs, 1)?;
        self.axes(x.rank())?;
        Ok(vec![x.clone()])
    }
}
