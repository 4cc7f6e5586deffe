//! Element-wise operators: unary maths and activations, binary arithmetic
//! with numpy broadcasting, variadic reductions of several tensors,
//! comparisons, logic, bit operations, casts and Dropout (inference form).

use super::{broadcast, check_dtype, optional, required, InferInput, InferResult, FLOATS, NUMERIC};
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

#[derive(Debug, Clone, PartialEq)]
pub enum ElementwiseOp {
    /// A parameterless unary function.
    Unary(Unary),
    /// A binary operator with numpy broadcasting.
    Binary(Binary),
    /// A unary activation with float parameters.
    Activation(Activation),
    /// `IsInf`: which infinities are reported.
    IsInf(IsInf),
    /// `Sum`, `Mean`, `Max`, `Min` of 1..N broadcast inputs.
    Variadic(Variadic),
    /// `Where(condition, X, Y)` with three-way broadcasting.
    Where,
    /// `Clip(X, min?, max?)`: the bounds are scalar inputs of X's dtype.
    Clip,
    /// `PRelu(X, slope)`: slope broadcasts onto X (unidirectionally).
    PRelu,
    /// `Cast` to a fixed dtype.
    Cast(Cast),
    /// `CastLike(input, target_type)`: casts to the second input's dtype.
    CastLike,
    /// `SwiGLU(A, B) = A·sigmoid(alpha·A)·B`, A and B of one shape (no broadcasting).
    SwiGlu { alpha: f64 },
    /// `Dropout` in inference mode: the identity, with an optional all-true mask.
    Dropout(Dropout),
}

/// A parameterless unary function applied to every element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryKind {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Abs,
    Neg,
    Reciprocal,
    Floor,
    Ceil,
    /// Round half to even.
    Round,
    Sqrt,
    Erf,
    Sign,
    Softplus,
    Softsign,
    Mish,
    HardSwish,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    /// Logical not of a bool tensor.
    Not,
    /// Bool output: whether each element is NaN.
    IsNaN,
    BitwiseNot,
    Identity,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unary {
    pub kind: UnaryKind,
}

/// A binary operator with numpy broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
    /// Integer division truncates toward zero (as C does).
    Div,
    /// Output has the base's dtype; the exponent may have another numeric dtype.
    Pow,
    /// `Mod` with `fmod = 0`: the remainder takes the divisor's sign (Python's `%`).
    Mod,
    /// `Mod` with `fmod = 1`: the remainder takes the dividend's sign (C's `fmod`).
    Fmod,
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    And,
    Or,
    Xor,
    /// `BitShift` with `direction = LEFT` (bits past the top, or the sign bit, are dropped).
    ShiftLeft,
    /// `BitShift` with `direction = RIGHT` (arithmetic for signed types).
    ShiftRight,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binary {
    pub kind: BinaryKind,
}

/// A unary activation with its (already defaulted) parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `x < 0 ? alpha * x : x`.
    LeakyRelu { alpha: f64 },
    /// `x < 0 ? alpha * (exp(x) - 1) : x`.
    Elu { alpha: f64 },
    /// `gamma * (x <= 0 ? alpha * (exp(x) - 1) : x)`.
    Selu { alpha: f64, gamma: f64 },
    /// `max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`.
    Celu { alpha: f64 },
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid { alpha: f64, beta: f64 },
    /// `x > alpha ? x : 0`.
    ThresholdedRelu { alpha: f64 },
    /// `x < -lambd ? x + bias : x > lambd ? x - bias : 0`.
    Shrink { bias: f64, lambd: f64 },
    /// Gaussian error linear unit, exact (erf) or with the tanh approximation.
    Gelu { tanh: bool },
    /// `x * sigmoid(alpha * x)`.
    Swish { alpha: f64 },
}

/// `IsInf`: which infinities map to true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsInf {
    pub detect_negative: bool,
    pub detect_positive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariadicKind {
    Sum,
    Mean,
    Max,
    Min,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variadic {
    pub kind: VariadicKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    pub to: DType,
}

/// Dropout at inference. Inputs: data, ratio?, training_mode?. A training
/// mode that is not known to be false is refused unless the ratio is a
/// constant 0 (then training is the identity too).
#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    /// Dtype of the mask output when the node asks for it (bool from
    /// opset 10, the data's dtype before).
    pub mask: Option<DType>,
}

/// Floats and signed integers.
const SIGNED: &[DType] = &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8, DType::I32, DType::I64];
/// Integer dtypes.
const INTS: &[DType] = &[DType::I8, DType::U8, DType::I32, DType::I64];
/// Every dtype.
const ALL: &[DType] = &DType::ALL;
const BOOL: &[DType] = &[DType::Bool];
/// Pow's base dtypes.
const POW_BASE: &[DType] = &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64];

impl UnaryKind {
    pub fn name(self) -> &'static str {
        use UnaryKind::*;
        match self {
            Relu => "Relu",
            Sigmoid => "Sigmoid",
            Tanh => "Tanh",
            Exp => "Exp",
            Log => "Log",
            Abs => "Abs",
            Neg => "Neg",
            Reciprocal => "Reciprocal",
            Floor => "Floor",
            Ceil => "Ceil",
            Round => "Round",
            Sqrt => "Sqrt",
            Erf => "Erf",
            Sign => "Sign",
            Softplus => "Softplus",
            Softsign => "Softsign",
            Mish => "Mish",
            HardSwish => "HardSwish",
            Sin => "Sin",
            Cos => "Cos",
            Tan => "Tan",
            Asin => "Asin",
            Acos => "Acos",
            Atan => "Atan",
            Sinh => "Sinh",
            Cosh => "Cosh",
            Asinh => "Asinh",
            Acosh => "Acosh",
            Atanh => "Atanh",
            Not => "Not",
            IsNaN => "IsNaN",
            BitwiseNot => "BitwiseNot",
            Identity => "Identity",
        }
    }

    /// Input dtypes the ONNX spec allows (restricted to kann's).
    pub fn dtypes(self) -> &'static [DType] {
        use UnaryKind::*;
        match self {
            Relu | Neg => SIGNED,
            Abs | Sign | Erf => NUMERIC,
            Not => BOOL,
            BitwiseNot => INTS,
            Identity => ALL,
            _ => FLOATS,
        }
    }

    /// Output dtype for an input of dtype `t`.
    pub fn output_dtype(self, t: DType) -> DType {
        match self {
            UnaryKind::IsNaN => DType::Bool,
            _ => t,
        }
    }
}

impl BinaryKind {
    pub fn name(self) -> &'static str {
        use BinaryKind::*;
        match self {
            Add => "Add",
            Sub => "Sub",
            Mul => "Mul",
            Div => "Div",
            Pow => "Pow",
            Mod | Fmod => "Mod",
            Equal => "Equal",
            Less => "Less",
            Greater => "Greater",
            LessOrEqual => "LessOrEqual",
            GreaterOrEqual => "GreaterOrEqual",
            And => "And",
            Or => "Or",
            Xor => "Xor",
            ShiftLeft | ShiftRight => "BitShift",
            BitwiseAnd => "BitwiseAnd",
            BitwiseOr => "BitwiseOr",
            BitwiseXor => "BitwiseXor",
        }
    }

    /// Dtypes of the first input the ONNX spec allows (restricted to kann's).
    pub fn dtypes(self) -> &'static [DType] {
        use BinaryKind::*;
        match self {
            Add | Sub | Mul | Div | Mod | Fmod | Less | Greater | LessOrEqual | GreaterOrEqual => NUMERIC,
            Pow => POW_BASE,
            Equal => ALL,
            And | Or | Xor => BOOL,
            ShiftLeft | ShiftRight => &[DType::U8, DType::I8, DType::I32, DType::I64],
            BitwiseAnd | BitwiseOr | BitwiseXor => INTS,
        }
    }

    /// Whether the output is bool (comparisons and logic).
    pub fn is_predicate(self) -> bool {
        use BinaryKind::*;
        matches!(self, Equal | Less | Greater | LessOrEqual | GreaterOrEqual | And | Or | Xor)
    }

    /// Output dtype for inputs of dtype `t` (comparisons give bool).
    pub fn output_dtype(self, t: DType) -> DType {
        if self.is_predicate() {
            DType::Bool
        } else {
            t
        }
    }
}

impl Activation {
    pub fn name(&self) -> &'static str {
        match self {
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::Elu { .. } => "Elu",
            Activation::Selu { .. } => "Selu",
            Activation::Celu { .. } => "Celu",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::ThresholdedRelu { .. } => "ThresholdedRelu",
            Activation::Shrink { .. } => "Shrink",
            Activation::Gelu { .. } => "Gelu",
            Activation::Swish { .. } => "Swish",
        }
    }

    fn dtypes(&self) -> &'static [DType] {
        match self {
            Activation::Shrink { .. } => NUMERIC,
            _ => FLOATS,
        }
    }
}

impl VariadicKind {
    pub fn name(self) -> &'static str {
        match self {
            VariadicKind::Sum => "Sum",
            VariadicKind::Mean => "Mean",
            VariadicKind::Max => "Max",
            VariadicKind::Min => "Min",
        }
    }

    fn dtypes(self) -> &'static [DType] {
        match self {
            VariadicKind::Sum | VariadicKind::Mean => FLOATS,
            VariadicKind::Max | VariadicKind::Min => NUMERIC,
        }
    }
}

impl ElementwiseOp {
    pub fn name(&self) -> &'static str {
        match self {
            ElementwiseOp::Unary(u) => u.kind.name(),
            ElementwiseOp::Binary(b) => b.kind.name(),
            ElementwiseOp::Activation(a) => a.name(),
            ElementwiseOp::IsInf(_) => "IsInf",
            ElementwiseOp::Variadic(v) => v.kind.name(),
            ElementwiseOp::Where => "Where",
            ElementwiseOp::Clip => "Clip",
            ElementwiseOp::PRelu => "PRelu",
            ElementwiseOp::Cast(_) => "Cast",
            ElementwiseOp::CastLike => "CastLike",
            ElementwiseOp::SwiGlu { .. } => "SwiGLU",
            ElementwiseOp::Dropout(_) => "Dropout",
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        match self {
            ElementwiseOp::Unary(u) => {
                let x = required(inputs, 0, "X")?;
                check_dtype(x.info, u.kind.dtypes(), "X")?;
                Ok(vec![TensorInfo::new(u.kind.output_dtype(x.info.dtype), x.info.shape.clone())])
            }
            ElementwiseOp::Binary(b) => infer_binary(b.kind, inputs),
            ElementwiseOp::Activation(a) => {
                let x = required(inputs, 0, "X")?;
                check_dtype(x.info, a.dtypes(), "X")?;
                Ok(vec![x.info.clone()])
            }
            ElementwiseOp::IsInf(_) => {
                let x = required(inputs, 0, "X")?;
                check_dtype(x.info, FLOATS, "X")?;
                Ok(vec![TensorInfo::new(DType::Bool, x.info.shape.clone())])
            }
            ElementwiseOp::Variadic(v) => infer_variadic(v.kind, inputs),
            ElementwiseOp::Where => infer_where(inputs),
            ElementwiseOp::Clip => infer_clip(inputs),
            ElementwiseOp::PRelu => infer_prelu(inputs),
            ElementwiseOp::Cast(c) => {
                let x = required(inputs, 0, "input")?;
                Ok(vec![TensorInfo::new(c.to, x.info.shape.clone())])
            }
            ElementwiseOp::CastLike => {
                let x = required(inputs, 0, "input")?;
                let t = required(inputs, 1, "target_type")?;
                Ok(vec![TensorInfo::new(t.info.dtype, x.info.shape.clone())])
            }
            ElementwiseOp::Dropout(d) => infer_dropout(d, inputs),
            ElementwiseOp::SwiGlu { .. } => {
                let a = required(inputs, 0, "A")?;
                let b = required(inputs, 1, "B")?;
                check_dtype(a.info, FLOATS, "A")?;
                if a.info != b.info {
                    return Err(format!("A is {} but B is {}: SwiGLU needs equal types and shapes", a.info, b.info));
                }
                Ok(vec![a.info.clone()])
            }
        }
    }

    /// One operation per output element (per input beyond the first for variadic ops).
    pub fn flops(&self, inputs: &[Option<&TensorInfo>], outputs: &[TensorInfo]) -> u64 {
        let n = outputs.first().map_or(0, |o| o.numel() as u64);
        match self {
            ElementwiseOp::Unary(Unary { kind: UnaryKind::Identity }) => 0,
            ElementwiseOp::Variadic(_) => n * inputs.len().saturating_sub(1).max(1) as u64,
            ElementwiseOp::Cast(_) | ElementwiseOp::CastLike | ElementwiseOp::Dropout(_) => 0,
            _ => n,
        }
    }
}

fn infer_binary(kind: BinaryKind, inputs: &[Option<InferInput>]) -> InferResult {
    let a = required(inputs, 0, "A")?;
    let b = required(inputs, 1, "B")?;
    check_dtype(a.info, kind.dtypes(), "A")?;
    if kind == BinaryKind::Pow {
        check_dtype(b.info, NUMERIC, "B (exponent)")?;
    } else if a.info.dtype != b.info.dtype {
        return Err(format!("A is {} but B is {}", a.info.dtype, b.info.dtype));
    }
    let shape = broadcast(a.info.shape.dims(), b.info.shape.dims())?;
    Ok(vec![TensorInfo::new(kind.output_dtype(a.info.dtype), Shape::new(shape))])
}

fn infer_variadic(kind: VariadicKind, inputs: &[Option<InferInput>]) -> InferResult {
    let first = required(inputs, 0, "data_0")?;
    check_dtype(first.info, kind.dtypes(), "data_0")?;
    let mut shape = first.info.shape.dims().to_vec();
    for i in 1..inputs.len() {
        let x = required(inputs, i, "data")?;
        if x.info.dtype != first.info.dtype {
            return Err(format!("input #{i} is {} but input #0 is {}", x.info.dtype, first.info.dtype));
        }
        shape = broadcast(&shape, x.info.shape.dims())?;
    }
    Ok(vec![TensorInfo::new(first.info.dtype, Shape::new(shape))])
}

fn infer_where(inputs: &[Option<InferInput>]) -> InferResult {
    let c = required(inputs, 0, "condition")?;
    let x = required(inputs, 1, "X")?;
    let y = required(inputs, 2, "Y")?;
    check_dtype(c.info, BOOL, "condition")?;
    if x.info.dtype != y.info.dtype {
        return Err(format!("X is {} but Y is {}", x.info.dtype, y.info.dtype));
    }
    let shape = broadcast(&broadcast(c.info.shape.dims(), x.info.shape.dims())?, y.info.shape.dims())?;
    Ok(vec![TensorInfo::new(x.info.dtype, Shape::new(shape))])
}

fn infer_clip(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "input")?;
    check_dtype(x.info, NUMERIC, "input")?;
    for (i, what) in [(1, "min"), (2, "max")] {
        if let Some(b) = optional(inputs, i) {
            if b.info.dtype != x.info.dtype {
                return Err(format!("{what} is {} but input is {}", b.info.dtype, x.info.dtype));
            }
            if b.info.numel() != 1 {
                return Err(format!("{what} must be a scalar, found shape {}", b.info.shape));
            }
        }
    }
    Ok(vec![x.info.clone()])
}

fn infer_prelu(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "X")?;
    let slope = required(inputs, 1, "slope")?;
    check_dtype(x.info, NUMERIC, "X")?;
    if slope.info.dtype != x.info.dtype {
        return Err(format!("slope is {} but X is {}", slope.info.dtype, x.info.dtype));
    }
    let shape = broadcast(x.info.shape.dims(), slope.info.shape.dims())?;
    if shape != x.info.shape.dims() {
        return Err(format!("slope of shape {} does not broadcast onto X of shape {}", slope.info.shape, x.info.shape));
    }
    Ok(vec![x.info.clone()])
}

fn infer_dropout(d: &Dropout, inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "data")?;
    check_dtype(x.info, FLOATS, "data")?;
    if let Some(r) = optional(inputs, 1) {
        check_dtype(r.info, FLOATS, "ratio")?;
    }
    if let Some(t) = optional(inputs, 2) {
        let training = match t.value {
            Some(v) => v.to_bool_vec().first().copied().unwrap_or(false),
            None => return Err("a non-constant training_mode is not supported (kann runs inference)".into()),
        };
        let zero_ratio = match optional(inputs, 1) {
            Some(r) => r.value.is_some_and(|v| v.to_f64_vec().iter().all(|&p| p == 0.0)),
            None => false,
        };
        if training && !zero_ratio {
            return Err("training_mode = true is not supported (kann runs inference)".into());
        }
    }
    let mut out = vec![x.info.clone()];
    if let Some(m) = d.mask {
        out.push(TensorInfo::new(m, x.info.shape.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::Tensor;

    fn info(dtype: DType, dims: &[usize]) -> TensorInfo {
        TensorInfo::new(dtype, Shape::from(dims))
    }

    fn given(i: &TensorInfo) -> Option<InferInput<'_>> {
        Some(InferInput { info: i, value: None })
    }

    #[test]
    fn pow_keeps_the_base_dtype_and_comparisons_give_bool() {
        let (a, b) = (info(DType::I64, &[2, 3]), info(DType::F32, &[3]));
        let pow = ElementwiseOp::Binary(Binary { kind: BinaryKind::Pow });
        assert_eq!(pow.infer(&[given(&a), given(&b)]).unwrap(), vec![info(DType::I64, &[2, 3])]);
        let less = ElementwiseOp::Binary(Binary { kind: BinaryKind::Less });
        assert!(less.infer(&[given(&a), given(&b)]).is_err());
        let c = info(DType::I64, &[1, 3]);
        assert_eq!(less.infer(&[given(&a), given(&c)]).unwrap(), vec![info(DType::Bool, &[2, 3])]);
    }

    #[test]
    fn prelu_slope_broadcasts_one_way_only() {
        let (x, s) = (info(DType::F32, &[2, 3]), info(DType::F32, &[2, 1, 3]));
        assert!(ElementwiseOp::PRelu.infer(&[given(&x), given(&s)]).is_err());
        let s = info(DType::F32, &[3]);
        assert_eq!(ElementwiseOp::PRelu.infer(&[given(&x), given(&s)]).unwrap(), vec![x.clone()]);
    }

    #[test]
    fn dropout_refuses_training_and_adds_the_mask() {
        let x = info(DType::F32, &[4]);
        let t = info(DType::Bool, &[]);
        let on = Tensor::from_bools(Shape::scalar(), vec![true]).unwrap();
        let d = ElementwiseOp::Dropout(Dropout { mask: Some(DType::Bool) });
        let err = d.infer(&[given(&x), None, Some(InferInput { info: &t, value: Some(&on) })]).unwrap_err();
        assert!(err.contains("not supported"));
        assert_eq!(d.infer(&[given(&x)]).unwrap(), vec![x.clone(), info(DType::Bool, &[4])]);
    }
}
