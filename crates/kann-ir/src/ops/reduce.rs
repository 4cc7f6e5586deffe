//! Reductions, arg-reductions, top-k and cumulative sums.

use super::{InferInput, InferResult};
use crate::TensorInfo;

#[derive(Debug, Clone, PartialEq)]
pub enum ReduceOp {}

impl ReduceOp {
    pub fn name(&self) -> &'static str {
        match *self {}
    }

    pub fn infer(&self, _inputs: &[Option<InferInput>]) -> InferResult {
        match *self {}
    }

    pub fn flops(&self, _inputs: &[Option<&TensorInfo>], _outputs: &[TensorInfo]) -> u64 {
        match *self {}
    }
}
