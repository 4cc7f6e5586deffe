//! Resize and Upsample.

use super::{InferInput, InferResult};
use crate::TensorInfo;

#[derive(Debug, Clone, PartialEq)]
pub enum ResampleOp {}

impl ResampleOp {
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
