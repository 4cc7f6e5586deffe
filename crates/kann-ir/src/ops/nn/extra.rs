//! `RotaryEmbedding`, `MaxUnpool`, `RoiAlign`, `DeformConv`, `Det` and
//! `BatchNormalization` in training mode.

use super::super::{check_dtype, const_i64s, optional, required, InferInput, InferResult, FLOATS};
use super::conv::ConvAttrs;
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

/// `RotaryEmbedding` (opset 23): X `[B, H, S, D]` or `[B, S, H*D]`, cos and
/// sin caches, optional position_ids `[B, S]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RotaryEmbedding {
    /// Heads of a 3-D input (`None`: X must be 4-D).
    pub num_heads: Option<usize>,
    /// Leading features rotated per head (0: the whole head).
    pub rotary_dim: usize,
    /// Rotates pairs `(2k, 2k+1)` instead of `(k, k + dim/2)`.
    pub interleaved: bool,
}

/// Resolved sizes of a rotary embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotaryDims {
    pub batch: usize,
    pub heads: usize,
    pub seq: usize,
    pub head: usize,
    pub rotary: usize,
    pub three_d: bool,
}

impl RotaryEmbedding {
    pub fn dims(&self, x: &[usize]) -> Result<RotaryDims, String> {
        let (batch, heads, seq, head, three_d) = match (x, self.num_heads) {
            ([b, h, s, d], _) => (*b, *h, *s, *d, false),
            ([b, s, hidden], Some(h)) if h > 0 && hidden % h == 0 => (*b, h, *s, hidden / h, true),
            ([_, _, hidden], h) => return Err(format!("3-D X of hidden size {hidden} needs num_heads dividing it, found {h:?}")),
            _ => return Err(format!("X must be 3-D or 4-D, found {x:?}")),
        };
        let rotary = if self.rotary_dim == 0 { head } else { self.rotary_dim };
        if rotary > head || rotary % 2 != 0 {
            return Err(format!("rotary_embedding_dim {rotary} must be even and at most the head size {head}"));
        }
        Ok(RotaryDims { batch, heads, seq, head, rotary, three_d })
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "X")?;
        check_dtype(x.info, FLOATS, "X")?;
        let d = self.dims(x.info.shape.dims())?;
        let half = d.rotary / 2;
        for (i, what) in [(1, "cos_cache"), (2, "sin_cache")] {
            let c = required(inputs, i, what)?.info;
            let ok = match optional(inputs, 3) {
                Some(_) => c.rank() == 2 && c.shape[1] == half,
                None => c.shape.dims() == [d.batch, d.seq, half],
            };
            if !ok || c.dtype != x.info.dtype {
                return Err(format!("{what} {} {} does not fit X {} with rotary dim {}", c.dtype, c.shape, x.info.shape, d.rotary));
            }
        }
        if let Some(p) = optional(inputs, 3) {
            if !p.info.dtype.is_int() || p.info.shape.dims() != [d.batch, d.seq] {
                return Err(format!("position_ids must be integer [{}, {}], found {}", d.batch, d.seq, p.info.shape));
            }
        }
        Ok(vec![x.info.clone()])
    }
}

/// `MaxUnpool`: X, I (flat indices into the unpooled tensor), optional output_shape.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxUnpool {
    pub kernel_shape: Vec<usize>,
    /// Empty: all 1.
    pub strides: Vec<usize>,
    /// Empty: all 0.
    pub pads: Vec<usize>,
}

impl MaxUnpool {
    /// The shape the unpooling itself produces (before `output_shape`).
    pub fn inferred(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        let n = self.kernel_shape.len();
        if x.len() != n + 2 {
            return Err(format!("X {x:?} does not have {n} spatial axes"));
        }
        let s = |i: usize| self.strides.get(i).copied().unwrap_or(1);
        let p = |i: usize| self.pads.get(i).copied().unwrap_or(0);
        let mut out = x[..2].to_vec();
        for i in 0..n {
            let full = (x[i + 2].max(1) - 1) * s(i) + self.kernel_shape[i];
            out.push(full.checked_sub(p(i) + p(n + i)).ok_or_else(|| format!("pads {:?} exceed the extent of axis {i}", self.pads))?);
        }
        Ok(out)
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "X")?;
        check_dtype(x.info, FLOATS, "X")?;
        let i = required(inputs, 1, "I")?;
        if i.info.dtype != DType::I64 || i.info.shape != x.info.shape {
            return Err(format!("I must be i64 of X's shape {}, found {} {}", x.info.shape, i.info.dtype, i.info.shape));
        }
        let inferred = self.inferred(x.info.shape.dims())?;
        let out = match const_i64s(inputs, 2, "output_shape")? {
            None => inferred,
            Some(s) => {
                let s: Vec<usize> = s.iter().map(|&v| usize::try_from(v).map_err(|_| format!("output_shape {s:?} has a negative extent"))).collect::<Result<_, _>>()?;
                if s.len() != inferred.len() || s.iter().zip(&inferred).any(|(a, b)| a < b) || s[..2] != inferred[..2] {
                    return Err(format!("output_shape {s:?} does not hold the unpooled shape {inferred:?}"));
                }
                s
            }
        };
        Ok(vec![TensorInfo::new(x.info.dtype, Shape::new(out))])
    }
}

/// `RoiAlign`: X `[N, C, H, W]`, rois `[R, 4]`, batch_indices `[R]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoiAlign {
    /// Max of the weighted samples instead of their mean.
    pub max: bool,
    /// `half_pixel` (shift by -0.5, no minimum ROI size) instead of `output_half_pixel`.
    pub half_pixel: bool,
    pub output_height: usize,
    pub output_width: usize,
    /// Samples per bin and axis (0: adaptive).
    pub sampling_ratio: usize,
    pub spatial_scale: f64,
}

impl RoiAlign {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "X")?.info;
        check_dtype(x, FLOATS, "X")?;
        let rois = required(inputs, 1, "rois")?.info;
        let idx = required(inputs, 2, "batch_indices")?.info;
        if x.rank() != 4 {
            return Err(format!("X must be [N, C, H, W], found {}", x.shape));
        }
        if rois.rank() != 2 || rois.shape[1] != 4 || rois.dtype != x.dtype {
            return Err(format!("rois must be {} [R, 4], found {} {}", x.dtype, rois.dtype, rois.shape));
        }
        if !idx.dtype.is_int() || idx.shape.dims() != [rois.shape[0]] {
            return Err(format!("batch_indices must be integer [{}], found {}", rois.shape[0], idx.shape));
        }
        let dims = vec![rois.shape[0], x.shape[1], self.output_height, self.output_width];
        Ok(vec![TensorInfo::new(x.dtype, Shape::new(dims))])
    }
}

/// `DeformConv` (2-D): X, W, offset, optional B and mask.
#[derive(Debug, Clone, PartialEq)]
pub struct DeformConv {
    pub attrs: ConvAttrs,
    pub offset_group: usize,
}

impl DeformConv {
    /// Output spatial extents `[oH, oW]` after checking every input.
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "X")?.info;
        let w = required(inputs, 1, "W")?.info;
        check_dtype(x, FLOATS, "X")?;
        if x.rank() != 4 {
            return Err(format!("DeformConv of rank {} is not supported (only 2-D)", x.rank()));
        }
        let plan = self.attrs.plan(x.shape.dims(), w.shape.dims())?;
        let (n, c, m) = (x.shape[0], x.shape[1], w.shape[0]);
        let og = self.offset_group;
        if og == 0 || c % og != 0 {
            return Err(format!("offset_group {og} does not divide the {c} channels"));
        }
        let taps = plan.kernel.iter().product::<usize>() * og;
        let spatial = &plan.out;
        let want = |ch: usize| [vec![n, ch], spatial.clone()].concat();
        let offset = required(inputs, 2, "offset")?.info;
        if offset.shape.dims() != want(2 * taps) {
            return Err(format!("offset must be {:?}, found {}", want(2 * taps), offset.shape));
        }
        if let Some(mask) = optional(inputs, 4) {
            if mask.info.shape.dims() != want(taps) {
                return Err(format!("mask must be {:?}, found {}", want(taps), mask.info.shape));
            }
        }
        if let Some(b) = optional(inputs, 3) {
            if b.info.numel() != m || b.info.rank() != 1 {
                return Err(format!("B must be [{m}], found {}", b.info.shape));
            }
        }
        for (i, t) in [(1, Some(w)), (2, Some(offset)), (3, optional(inputs, 3).map(|b| b.info)), (4, optional(inputs, 4).map(|b| b.info))] {
            if t.is_some_and(|t| t.dtype != x.dtype) {
                return Err(format!("input #{i} must have X's dtype {}", x.dtype));
            }
        }
        Ok(vec![TensorInfo::new(x.dtype, Shape::new(want(m)))])
    }
}

/// `Det`: determinants of the trailing square matrices.
pub fn infer_det(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "X")?.info;
    check_dtype(x, FLOATS, "X")?;
    let r = x.rank();
    if r < 2 || x.shape[r - 1] != x.shape[r - 2] {
        return Err(format!("X must be [..., M, M], found {}", x.shape));
    }
    Ok(vec![TensorInfo::new(x.dtype, Shape::new(x.shape[..r - 2].to_vec()))])
}

/// `BatchNormalization` in training mode: normalises with the batch's own
/// statistics and outputs the updated running mean and variance.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormTraining {
    pub epsilon: f64,
    /// `running = input * momentum + batch * (1 - momentum)`.
    pub momentum: f64,
    /// Outputs the node names: Y, running_mean, running_var (1 to 3).
    pub outputs: usize,
}

impl BatchNormTraining {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "X")?.info;
        check_dtype(x, FLOATS, "X")?;
        if x.rank() < 2 {
            return Err(format!("X must have rank >= 2, found {}", x.shape));
        }
        let c = x.shape[1];
        let mut stat = None;
        for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
            let v = required(inputs, i, what)?.info;
            check_dtype(v, FLOATS, what)?;
            if v.shape.dims() != [c] {
                return Err(format!("{what} must be [{c}], found {}", v.shape));
            }
            if i == 3 {
                stat = Some(v.clone());
            }
        }
        if !(1..=3).contains(&self.outputs) {
            return Err(format!("BatchNormalization (training) has 1 to 3 outputs, not {}", self.outputs));
        }
        let stat = stat.ok_or("missing input_mean")?;
        let mut out = vec![x.clone()];
        out.resize(self.outputs, stat);
        Ok(out)
    }
}
