//! NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
//!
//! Inputs: scores / log-probabilities (N, C, d1…dk), target (N, d1…dk) of
//! class indices, optional per-class weight (C). SoftmaxCrossEntropyLoss
//! takes the log-softmax over axis 1 first and also yields it as a second
//! output (`log_prob`).

use crate::ops::check_dtype;
use crate::ops::{optional, required, InferInput, InferResult, FLOATS};
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

/// How the per-element losses combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReduction {
    /// One loss per target element.
    None,
    Sum,
    /// Weighted mean: the sum divided by the sum of the weights of the
    /// targets that are not ignored.
    Mean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Input #0 already holds log-probabilities.
    NegativeLogLikelihood,
    /// Input #0 holds scores; the loss uses their log-softmax over axis 1.
    SoftmaxCrossEntropy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Loss {
    pub kind: LossKind,
    pub reduction: LossReduction,
    /// Targets equal to this contribute nothing (neither loss nor weight).
    pub ignore_index: Option<i64>,
}

impl Loss {
    pub fn name(&self) -> &'static str {
        match self.kind {
            LossKind::NegativeLogLikelihood => "NegativeLogLikelihoodLoss",
            LossKind::SoftmaxCrossEntropy => "SoftmaxCrossEntropyLoss",
        }
    }

    pub(super) fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "input")?;
        let t = required(inputs, 1, "target")?;
        check_dtype(x.info, FLOATS, "input")?;
        check_dtype(t.info, &[DType::I32, DType::I64], "target")?;
        let xd = x.info.shape.dims();
        if xd.len() < 2 {
            return Err(format!("{} needs an input of rank 2 or more (N, C, …), found {}", self.name(), x.info));
        }
        let mut want: Vec<usize> = vec![xd[0]];
        want.extend_from_slice(&xd[2..]);
        if t.info.shape.dims() != want.as_slice() {
            return Err(format!("{}: target must have shape {want:?} for input {}, found {}", self.name(), x.info, t.info));
        }
        if let Some(w) = optional(inputs, 2) {
            check_dtype(w.info, FLOATS, "weight")?;
            if w.info.shape.dims() != [xd[1]] {
                return Err(format!("{}: weight must have shape [{}], found {}", self.name(), xd[1], w.info));
            }
        }
        let loss_dims = if self.reduction == LossReduction::None { want } else { vec![] };
        let mut outs = vec![TensorInfo::new(x.info.dtype, Shape::new(loss_dims))];
        if self.kind == LossKind::SoftmaxCrossEntropy {
            outs.push(x.info.clone());
        }
        Ok(outs)
    }
}
