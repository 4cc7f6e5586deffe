//! The closed set of operators, grouped in families. Each family is an enum
//! with one struct (or kind) per operator and lives in its own module, with
//! the operator's attributes, its shape/dtype inference and its FLOP count.
//!
//! Operators keep the *latest* ONNX form: attributes that later opsets turned
//! into inputs (Reshape's shape, Slice's starts, Pad's pads, reduction axes…)
//! are inputs here, and the importer materialises older attributes as
//! constant inputs. Inference reads such inputs through [`InferInput::value`]
//! and refuses non-constant ones, since shapes are static.

pub mod elementwise;
pub mod fused;
pub mod movement;
pub mod nn;
pub mod reduce;
pub mod resample;

use crate::TensorInfo;
use kann_tensor::{DType, Tensor};

/// What inference sees of one input: its static type and, when it is a
/// constant, its value.
#[derive(Debug, Clone, Copy)]
pub struct InferInput<'a> {
    pub info: &'a TensorInfo,
    pub value: Option<&'a Tensor>,
}

/// Output types, or a reason naming what does not fit.
pub type InferResult = Result<Vec<TensorInfo>, String>;

/// An operator with its attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Unary/binary/variadic arithmetic, activations, comparisons, logic, casts.
    Elementwise(elementwise::ElementwiseOp),
    /// Convolutions, matrix products, normalisations, pooling, softmax, quantisation.
    Nn(nn::NnOp),
    /// Shape and data movement: reshape, transpose, slice, gather, concat, pad…
    Movement(movement::MovementOp),
    /// Reductions, arg-reductions, top-k, cumulative sums.
    Reduce(reduce::ReduceOp),
    /// Resize / Upsample.
    Resample(resample::ResampleOp),
    /// A producer with a fused epilogue (made by compiler passes only).
    Fused(fused::Fused),
}

impl Op {
    /// The operator's name as ONNX spells it (`Conv`, `Relu`…).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Elementwise(o) => o.name(),
            Op::Nn(o) => o.name(),
            Op::Movement(o) => o.name(),
            Op::Reduce(o) => o.name(),
            Op::Resample(o) => o.name(),
            Op::Fused(_) => "Fused",
        }
    }

    /// Infers output dtypes and shapes from the inputs' (`None` = omitted
    /// optional input).
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        match self {
            Op::Elementwise(o) => o.infer(inputs),
            Op::Nn(o) => o.infer(inputs),
            Op::Movement(o) => o.infer(inputs),
            Op::Reduce(o) => o.infer(inputs),
            Op::Resample(o) => o.infer(inputs),
            Op::Fused(o) => o.infer(inputs),
        }
    }

    /// Floating-point operations of one evaluation (a multiply-add counts 2).
    pub fn flops(&self, inputs: &[Option<&TensorInfo>], outputs: &[TensorInfo]) -> u64 {
        match self {
            Op::Elementwise(o) => o.flops(inputs, outputs),
            Op::Nn(o) => o.flops(inputs, outputs),
            Op::Movement(_) => 0,
            Op::Reduce(o) => o.flops(inputs, outputs),
            Op::Resample(o) => o.flops(inputs, outputs),
            Op::Fused(o) => o.flops(inputs, outputs),
        }
    }

    /// The name logs and tables show: [`Op::name`], or `Conv+Add+Relu` for
    /// a fused op.
    pub fn describe(&self) -> String {
        match self {
            Op::Fused(f) => f.describe(),
            other => other.name().to_string(),
        }
    }

    /// False for ops whose result may not be folded at build time.
    pub fn is_deterministic(&self) -> bool {
        true
    }
}

// ---- helpers shared by the families' inference ----

/// The `i`-th input, which must be present.
pub fn required<'a>(inputs: &[Option<InferInput<'a>>], i: usize, what: &str) -> Result<InferInput<'a>, String> {
    inputs.get(i).copied().flatten().ok_or_else(|| format!("missing required input #{i} ({what})"))
}

/// The `i`-th input if present.
pub fn optional<'a>(inputs: &[Option<InferInput<'a>>], i: usize) -> Option<InferInput<'a>> {
    inputs.get(i).copied().flatten()
}

/// Integer values of the `i`-th input, which must be a constant when present
/// (static shapes). `None` when the input is omitted.
pub fn const_i64s(inputs: &[Option<InferInput>], i: usize, what: &str) -> Result<Option<Vec<i64>>, String> {
    match optional(inputs, i) {
        None => Ok(None),
        Some(inp) => match inp.value {
            Some(t) if t.dtype().is_int() => Ok(Some(t.to_i64_vec())),
            Some(t) => Err(format!("input '{what}' must be an integer tensor, found {}", t.dtype())),
            None => Err(format!("input '{what}' must be a constant: kann needs static shapes")),
        },
    }
}

/// Float values of the `i`-th input, which must be a constant when present.
pub fn const_f64s(inputs: &[Option<InferInput>], i: usize, what: &str) -> Result<Option<Vec<f64>>, String> {
    match optional(inputs, i) {
        None => Ok(None),
        Some(inp) => match inp.value {
            Some(t) => Ok(Some(t.to_f64_vec())),
            None => Err(format!("input '{what}' must be a constant: kann needs static shapes")),
        },
    }
}

/// Numpy-style broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// Normalises a possibly negative axis into `0..rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// Checks that `info` has one of `allowed` dtypes.
pub fn check_dtype(info: &TensorInfo, allowed: &[DType], what: &str) -> Result<(), String> {
    if allowed.contains(&info.dtype) {
        Ok(())
    } else {
        let names: Vec<_> = allowed.iter().map(|d| d.name()).collect();
        Err(format!("{what} has dtype {}, which is not supported here (only {})", info.dtype, names.join(", ")))
    }
}

/// The float dtypes every arithmetic op accepts.
pub const FLOATS: &[DType] = &[DType::F32, DType::F16, DType::BF16, DType::F64];
/// Every numeric dtype (no bool).
pub const NUMERIC: &[DType] = &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8, DType::U8, DType::I32, DType::I64];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast(&[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
        assert_eq!(broadcast(&[], &[5]).unwrap(), vec![5]);
        assert!(broadcast(&[2], &[3]).is_err());
    }

    #[test]
    fn axes_normalise() {
        assert_eq!(norm_axis(-1, 4).unwrap(), 3);
        assert_eq!(norm_axis(0, 1).unwrap(), 0);
        assert!(norm_axis(4, 4).is_err());
        assert!(norm_axis(-5, 4).is_err());
    }
}
