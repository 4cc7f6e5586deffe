//! Reductions, arg-reductions, top-k, cumulative sums and NonZero.
//!
//! Reductions take their axes as input #1 (the importer turns the legacy
//! `axes` attribute into a constant input); TopK takes K as input #1 and
//! CumSum its axis as input #1.

mod loss;
pub use loss::{Loss, LossKind, LossReduction};

use super::{check_dtype, const_i64s, norm_axis, required, InferInput, InferResult, NUMERIC};
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

#[derive(Debug, Clone, PartialEq)]
pub enum ReduceOp {
    /// ReduceSum, ReduceMean, ReduceMax…
    Reduce(Reduce),
    /// ArgMax / ArgMin.
    Arg(ArgReduce),
    TopK(TopK),
    CumSum(CumSum),
    /// Cumulative product along the axis given by input #1 (`exclusive`
    /// starts from 1).
    CumProd(CumSum),
    /// NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss.
    Loss(Loss),
    /// NonZero: its output shape depends on the data, so only constant inputs are accepted.
    NonZero,
}

/// What a reduction computes over each reduced set of elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    /// Sum of absolute values.
    L1,
    /// Square root of the sum of squares.
    L2,
    /// Log of the sum.
    LogSum,
    /// Log of the sum of exponentials.
    LogSumExp,
    /// Sum of squares.
    SumSquare,
}

/// A reduction over the axes given by input #1 (omitted or empty: all axes,
/// unless `noop_with_empty_axes`, in which case every element is reduced
/// over itself alone).
#[derive(Debug, Clone, PartialEq)]
pub struct Reduce {
    pub kind: ReduceKind,
    pub keepdims: bool,
    pub noop_with_empty_axes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    Max,
    Min,
}

/// Index (i64) of the largest / smallest element along `axis`; ties give the
/// first index, or the last with `select_last_index`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgReduce {
    pub kind: ArgKind,
    pub axis: i64,
    pub keepdims: bool,
    pub select_last_index: bool,
}

/// The K largest (or smallest) elements along `axis` and their i64 indices;
/// K is input #1. Equal values keep the lower index first.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    pub axis: i64,
    pub largest: bool,
    pub sorted: bool,
}

/// Cumulative sum along the axis given by input #1.
#[derive(Debug, Clone, PartialEq)]
pub struct CumSum {
    pub exclusive: bool,
    pub reverse: bool,
}

impl ReduceKind {
    pub fn name(self) -> &'static str {
        match self {
            ReduceKind::Sum => "ReduceSum",
            ReduceKind::Mean => "ReduceMean",
            ReduceKind::Max => "ReduceMax",
            ReduceKind::Min => "ReduceMin",
            ReduceKind::Prod => "ReduceProd",
            ReduceKind::L1 => "ReduceL1",
            ReduceKind::L2 => "ReduceL2",
            ReduceKind::LogSum => "ReduceLogSum",
            ReduceKind::LogSumExp => "ReduceLogSumExp",
            ReduceKind::SumSquare => "ReduceSumSquare",
        }
    }

    /// Dtypes the ONNX spec allows (within kann's set).
    pub fn dtypes(self) -> &'static [DType] {
        match self {
            ReduceKind::Max | ReduceKind::Min => {
                &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8, DType::U8, DType::I32, DType::I64, DType::Bool]
            }
            _ => &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64],
        }
    }
}

impl Reduce {
    /// Which axes of a rank-`rank` input are reduced, given the axes input
    /// (`None` when omitted). Negative axes count from the end.
    pub fn reduced_axes(&self, rank: usize, axes: Option<&[i64]>) -> Result<Vec<bool>, String> {
        let axes = axes.unwrap_or(&[]);
        if axes.is_empty() {
            return Ok(vec![!self.noop_with_empty_axes; rank]);
        }
        let mut reduced = vec![false; rank];
        for &a in axes {
            let a = norm_axis(a, rank)?;
            if reduced[a] {
                return Err(format!("axis {a} is listed twice in axes {axes:?}"));
            }
            reduced[a] = true;
        }
        Ok(reduced)
    }

    fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "data")?;
        check_dtype(x.info, self.kind.dtypes(), "data")?;
        let axes = const_i64s(inputs, 1, "axes")?;
        let reduced = self.reduced_axes(x.info.rank(), axes.as_deref())?;
        let mut dims = Vec::new();
        for (d, &r) in x.info.shape.iter().zip(&reduced) {
            if !r {
                dims.push(*d);
            } else if self.keepdims {
                dims.push(1);
            }
        }
        Ok(vec![TensorInfo::new(x.info.dtype, Shape::new(dims))])
    }
}

impl ArgReduce {
    fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "data")?;
        check_dtype(x.info, NUMERIC, "data")?;
        let axis = norm_axis(self.axis, x.info.rank())?;
        if x.info.shape[axis] == 0 {
            return Err(format!("{} over axis {axis} of size 0 has no answer", self.kind.name()));
        }
        let mut dims = x.info.shape.to_vec();
        if self.keepdims {
            dims[axis] = 1;
        } else {
            dims.remove(axis);
        }
        Ok(vec![TensorInfo::new(DType::I64, Shape::new(dims))])
    }
}

impl ArgKind {
    pub fn name(self) -> &'static str {
        match self {
            ArgKind::Max => "ArgMax",
            ArgKind::Min => "ArgMin",
        }
    }
}

impl TopK {
    /// K from the K input, checked against the axis length.
    pub fn k(&self, k: &[i64], axis_len: usize) -> Result<usize, String> {
        let &[k] = k else {
            return Err(format!("K must hold exactly one value, found {}", k.len()));
        };
        if k < 0 || k as u64 > axis_len as u64 {
            return Err(format!("K = {k} is outside 0..={axis_len} (the length of the axis)"));
        }
        Ok(k as usize)
    }

    fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "X")?;
        check_dtype(x.info, NUMERIC, "X")?;
        required(inputs, 1, "K")?;
        let axis = norm_axis(self.axis, x.info.rank())?;
        let k = const_i64s(inputs, 1, "K")?.unwrap_or_default();
        let k = self.k(&k, x.info.shape[axis])?;
        let mut dims = x.info.shape.to_vec();
        dims[axis] = k;
        Ok(vec![TensorInfo::new(x.info.dtype, Shape::new(dims.clone())), TensorInfo::new(DType::I64, Shape::new(dims))])
    }
}

/// The axis of CumSum from its axis input (a scalar or one-element tensor).
pub fn cumsum_axis(axis: &[i64], rank: usize) -> Result<usize, String> {
    match axis {
        &[a] => norm_axis(a, rank),
        _ => Err(format!("the cumulative op's axis must hold exactly one value, found {}", axis.len())),
    }
}

impl CumSum {
    fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "x")?;
        check_dtype(x.info, &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64], "x")?;
        let a = required(inputs, 1, "axis")?;
        if !a.info.dtype.is_int() || a.info.numel() != 1 {
            return Err(format!("the cumulative op's axis must be one integer, found {}", a.info));
        }
        // The axis does not change the output type; check it when known.
        if let Some(axis) = const_i64s(inputs, 1, "axis").ok().flatten() {
            cumsum_axis(&axis, x.info.rank())?;
        }
        Ok(vec![x.info.clone()])
    }
}

fn infer_nonzero(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "X")?;
    let Some(value) = x.value else {
        return Err("NonZero of a non-constant input is not supported (its output shape depends on the data)".into());
    };
    let nnz = value.to_bool_vec().iter().filter(|&&b| b).count();
    Ok(vec![TensorInfo::new(DType::I64, Shape::from([x.info.rank(), nnz]))])
}

impl ReduceOp {
    pub fn name(&self) -> &'static str {
        match self {
            ReduceOp::Reduce(r) => r.kind.name(),
            ReduceOp::Arg(a) => a.kind.name(),
            ReduceOp::TopK(_) => "TopK",
            ReduceOp::CumSum(_) => "CumSum",
            ReduceOp::CumProd(_) => "CumProd",
            ReduceOp::Loss(l) => l.name(),
            ReduceOp::NonZero => "NonZero",
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        match self {
            ReduceOp::Reduce(r) => r.infer(inputs),
            ReduceOp::Arg(a) => a.infer(inputs),
            ReduceOp::TopK(t) => t.infer(inputs),
            ReduceOp::CumSum(c) | ReduceOp::CumProd(c) => c.infer(inputs),
            ReduceOp::Loss(l) => l.infer(inputs),
            ReduceOp::NonZero => infer_nonzero(inputs),
        }
    }

    /// One operation per input element (two for the squaring / exponential
    /// reductions).
    pub fn flops(&self, inputs: &[Option<&TensorInfo>], _outputs: &[TensorInfo]) -> u64 {
        let n = inputs.first().copied().flatten().map_or(0, |i| i.numel() as u64);
        match self {
            ReduceOp::Reduce(r) => match r.kind {
                ReduceKind::L2 | ReduceKind::SumSquare | ReduceKind::LogSumExp => 2 * n,
                _ => n,
            },
            // Log-softmax costs about 4 operations per score, the gather 1.
            ReduceOp::Loss(l) if l.kind == LossKind::SoftmaxCrossEntropy => 4 * n,
            _ => n,
        }
    }
}

