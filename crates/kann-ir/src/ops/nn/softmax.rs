//! `Softmax`, `LogSoftmax` and `Hardmax`, in both opset forms.

use super::super::{check_dtype, norm_axis, required, InferInput, InferResult, FLOATS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftmaxKind {
    Softmax,
    LogSoftmax,
    /// One at the first maximum, zero elsewhere.
    Hardmax,
}

impl SoftmaxKind {
    pub fn name(self) -> &'static str {
        match self {
            SoftmaxKind::Softmax => "Softmax",
            SoftmaxKind::LogSoftmax => "LogSoftmax",
            SoftmaxKind::Hardmax => "Hardmax",
        }
    }
}

/// A normalisation along `axis`. With `flatten` (opsets < 13) the input is
/// seen as a matrix `[prod(dims[..axis]), prod(dims[axis..])]` and each row is
/// normalised; otherwise only the single axis is.
#[derive(Debug, Clone, PartialEq)]
pub struct Softmax {
    pub kind: SoftmaxKind,
    /// As given (may be negative).
    pub axis: i64,
    pub flatten: bool,
}

impl Softmax {
    /// `(outer, len, inner)`: the input is `[outer, len, inner]` and the
    /// normalisation runs over `len`, whose elements are `inner` apart.
    pub fn layout(&self, dims: &[usize]) -> Result<(usize, usize, usize), String> {
        if dims.is_empty() {
            // A scalar is one group of one element.
            return if self.axis == 0 || self.axis == -1 { Ok((1, 1, 1)) } else { Err(format!("axis {} is out of range for a scalar", self.axis)) };
        }
        let rank = dims.len();
        // The legacy form also accepts axis == rank (nothing to normalise over).
        let axis = if self.flatten && self.axis == rank as i64 { rank } else { norm_axis(self.axis, rank)? };
        let outer: usize = dims[..axis].iter().product();
        if self.flatten {
            Ok((outer, dims[axis..].iter().product(), 1))
        } else {
            Ok((outer, dims[axis], dims[axis + 1..].iter().product()))
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "input")?;
        check_dtype(x.info, FLOATS, "input")?;
        self.layout(x.info.shape.dims())?;
        Ok(vec![x.info.clone()])
    }
}
