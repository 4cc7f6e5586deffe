//! Element-wise operators: unary maths and activations, binary arithmetic
//! with numpy broadcasting, comparisons and logic.

use super::{broadcast, check_dtype, required, InferInput, InferResult, FLOATS, NUMERIC};
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

#[derive(Debug, Clone, PartialEq)]
pub enum ElementwiseOp {
    Unary(Unary),
    Binary(Binary),
}

/// A parameterless unary function applied to every element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryKind {
    Relu,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unary {
    pub kind: UnaryKind,
}

/// A binary operator with numpy broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    Add,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binary {
    pub kind: BinaryKind,
}

impl UnaryKind {
    pub fn name(self) -> &'static str {
        match self {
            UnaryKind::Relu => "Relu",
        }
    }

    fn dtypes(self) -> &'static [DType] {
        match self {
            UnaryKind::Relu => &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8, DType::I32, DType::I64],
        }
    }
}

impl BinaryKind {
    pub fn name(self) -> &'static str {
        match self {
            BinaryKind::Add => "Add",
        }
    }

    fn dtypes(self) -> &'static [DType] {
        match self {
            BinaryKind::Add => NUMERIC,
        }
    }

    /// Output dtype for inputs of dtype `t` (comparisons give bool).
    fn output_dtype(self, t: DType) -> DType {
        match self {
            BinaryKind::Add => t,
        }
    }
}

impl ElementwiseOp {
    pub fn name(&self) -> &'static str {
        match self {
            ElementwiseOp::Unary(u) => u.kind.name(),
            ElementwiseOp::Binary(b) => b.kind.name(),
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        match self {
            ElementwiseOp::Unary(u) => {
                let x = required(inputs, 0, "X")?;
                check_dtype(x.info, u.kind.dtypes(), "X")?;
                Ok(vec![x.info.clone()])
            }
            ElementwiseOp::Binary(b) => {
                let a = required(inputs, 0, "A")?;
                let c = required(inputs, 1, "B")?;
                check_dtype(a.info, b.kind.dtypes(), "A")?;
                if a.info.dtype != c.info.dtype {
                    return Err(format!("A is {} but B is {}", a.info.dtype, c.info.dtype));
                }
                let shape = broadcast(a.info.shape.dims(), c.info.shape.dims())?;
                Ok(vec![TensorInfo::new(b.kind.output_dtype(a.info.dtype), Shape::new(shape))])
            }
        }
    }

    pub fn flops(&self, _inputs: &[Option<&TensorInfo>], outputs: &[TensorInfo]) -> u64 {
        outputs.iter().map(|o| o.numel() as u64).sum()
    }
}

#[allow(dead_code)]
const _FLOATS_USED: &[DType] = FLOATS;
