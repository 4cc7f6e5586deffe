//! Element-wise ops: unary functions and activations, binary arithmetic
//! with broadcasting (one step; the broadcast walk is precomputed here as
//! per-input strides), comparisons and logic (bool outputs), variadic
//! Sum/Mean/Max/Min (a chain of binary steps through temps), Where, Clip
//! with constant bounds, PRelu, SwiGLU, Identity/Dropout (copies), and the
//! compiler's fused `Add [+ residual] + activation`.
//!
//! Arithmetic is f32, plus integer (i8/u8/i32/i64) arithmetic, bit ops,
//! comparisons, Relu/Abs/Neg/Sign/BitwiseNot, Clip and variadic
//! Sum/Max/Min; Identity, Dropout and Where copy elements of any dtype.
//! Cast/CastLike convert between every dtype (a view when the dtype does
//! not change). Other dtypes (f16, f64…) and integer Pow/Mean are refused
//! with a reason.

use super::{elem_type, kernel_isa, require_f32, LowerCx, LowerResult, Operand};
use kann_ir::ops::elementwise::{Activation as IrAct, BinaryKind as IrBinary, ElementwiseOp, UnaryKind as IrUnary, VariadicKind};
use kann_ir::ops::fused::{Fused, FusedActivation};
use kann_ir::ops::Op;
use kann_ir::{Node, NodeId, ValueId};
use kann_kernels::binary::int::{IntBinary, IntOp, IntType, IntUnary, IntUnaryOp};
use kann_kernels::binary::{broadcast_strides, coalesce, Binary, BinaryKind, Compare, CompareKind, Where};
use kann_kernels::cast::Cast;
use kann_kernels::unary::{CopyBytes, Predicate, PredicateKind, Unary, UnaryKind};
use kann_kernels::{Activation, Isa, Kernel};
use kann_tensor::DType;

pub(super) fn lower(cx: &mut LowerCx, id: NodeId, node: &Node, op: &ElementwiseOp) -> LowerResult {
    match op {
        ElementwiseOp::Unary(u) => lower_unary(cx, id, node, u.kind),
        ElementwiseOp::Activation(a) => unary_step(cx, id, node, activation_kind(a)),
        ElementwiseOp::Binary(b) => lower_binary(cx, id, node, b.kind),
        ElementwiseOp::IsInf(f) => {
            predicate_step(cx, id, node, PredicateKind::IsInf { negative: f.detect_negative, positive: f.detect_positive })
        }
        ElementwiseOp::Variadic(v) => lower_variadic(cx, id, node, v.kind),
        ElementwiseOp::Where => lower_where(cx, id, node),
        ElementwiseOp::Clip => lower_clip(cx, id, node),
        ElementwiseOp::PRelu => arithmetic_step(cx, id, node, BinaryKind::PRelu),
        ElementwiseOp::SwiGlu { alpha } => arithmetic_step(cx, id, node, BinaryKind::SwiGlu { alpha: *alpha }),
        ElementwiseOp::Dropout(_) => lower_dropout(cx, id, node),
        ElementwiseOp::Cast(_) | ElementwiseOp::CastLike => lower_cast(cx, id, node),
    }
}

/// `y = act(a + b [+ residual])`: an Add with a fused epilogue, one step.
#[allow(dead_code)] // called by nn::lower_fused for an Add base
pub(super) fn lower_fused_add(cx: &mut LowerCx, id: NodeId, node: &Node, f: &Fused) -> LowerResult {
    if !matches!(&*f.base, Op::Elementwise(ElementwiseOp::Binary(b)) if b.kind == IrBinary::Add) || f.base_inputs != 2 {
        return Err(format!("lower_fused_add got {}", f.describe()));
    }
    let mut inputs = vec![cx.input(node, 0)?, cx.input(node, 1)?];
    if f.residual {
        inputs.push(cx.input(node, 2)?);
    }
    let activation = f.activation.map_or(Activation::None, fused_activation);
    binary_step(cx, id, &inputs, node.outputs[0], BinaryKind::Add, activation)
}

/// The kernels' form of a fused activation.
fn fused_activation(a: FusedActivation) -> Activation {
    match a {
        FusedActivation::Relu => Activation::Relu,
        FusedActivation::Clip { min, max } => Activation::Clip { min: min as f32, max: max as f32 },
        FusedActivation::LeakyRelu { alpha } => Activation::LeakyRelu { alpha: alpha as f32 },
        FusedActivation::Sigmoid => Activation::Sigmoid,
        FusedActivation::HardSigmoid { alpha, beta } => Activation::HardSigmoid { alpha: alpha as f32, beta: beta as f32 },
        FusedActivation::HardSwish => Activation::HardSwish,
        FusedActivation::Silu => Activation::Silu,
        FusedActivation::Tanh => Activation::Tanh,
    }
}

// ---- one input ----

fn lower_unary(cx: &mut LowerCx, id: NodeId, node: &Node, kind: IrUnary) -> LowerResult {
    use IrUnary::*;
    let x = cx.input(node, 0)?;
    if let Some(ty) = int_type(cx.info(x).dtype) {
        let op = match kind {
            Relu => IntUnaryOp::Relu,
            Abs => IntUnaryOp::Abs,
            Neg => IntUnaryOp::Neg,
            Sign => IntUnaryOp::Sign,
            BitwiseNot => IntUnaryOp::BitwiseNot,
            Identity => return copy_step(cx, id, x, node.outputs[0]),
            _ => return Err(format!("{} of {} data is not lowered", kind.name(), cx.info(x).dtype)),
        };
        return int_unary_step(cx, id, x, node.outputs[0], ty, op);
    }
    let k = match kind {
        Identity => return copy_step(cx, id, cx.input(node, 0)?, node.outputs[0]),
        Not => return predicate_step(cx, id, node, PredicateKind::Not),
        IsNaN => return predicate_step(cx, id, node, PredicateKind::IsNaN),
        BitwiseNot => return Err("the compiler does not lower BitwiseNot (integer data) yet".into()),
        Relu => UnaryKind::Relu,
        Sigmoid => UnaryKind::Sigmoid,
        Tanh => UnaryKind::Tanh,
        Exp => UnaryKind::Exp,
        Log => UnaryKind::Log,
        Abs => UnaryKind::Abs,
        Neg => UnaryKind::Neg,
        Reciprocal => UnaryKind::Reciprocal,
        Floor => UnaryKind::Floor,
        Ceil => UnaryKind::Ceil,
        Round => UnaryKind::Round,
        Sqrt => UnaryKind::Sqrt,
        Erf => UnaryKind::Erf,
        Sign => UnaryKind::Sign,
        Softplus => UnaryKind::Softplus,
        Softsign => UnaryKind::Softsign,
        Mish => UnaryKind::Mish,
        HardSwish => UnaryKind::HardSwish,
        Sin => UnaryKind::Sin,
        Cos => UnaryKind::Cos,
        Tan => UnaryKind::Tan,
        Asin => UnaryKind::Asin,
        Acos => UnaryKind::Acos,
        Atan => UnaryKind::Atan,
        Sinh => UnaryKind::Sinh,
        Cosh => UnaryKind::Cosh,
        Asinh => UnaryKind::Asinh,
        Acosh => UnaryKind::Acosh,
        Atanh => UnaryKind::Atanh,
    };
    unary_step(cx, id, node, k)
}

/// The kernel form of an activation with parameters.
fn activation_kind(a: &IrAct) -> UnaryKind {
    match *a {
        IrAct::LeakyRelu { alpha } => UnaryKind::LeakyRelu { alpha },
        IrAct::Elu { alpha } => UnaryKind::Elu { alpha },
        IrAct::Selu { alpha, gamma } => UnaryKind::Selu { alpha, gamma },
        IrAct::Celu { alpha } => UnaryKind::Celu { alpha },
        IrAct::HardSigmoid { alpha, beta } => UnaryKind::HardSigmoid { alpha, beta },
        IrAct::ThresholdedRelu { alpha } => UnaryKind::ThresholdedRelu { alpha },
        IrAct::Shrink { bias, lambd } => UnaryKind::Shrink { bias, lambd },
        IrAct::Gelu { tanh } => UnaryKind::Gelu { tanh },
        IrAct::Swish { alpha } => UnaryKind::Swish { alpha },
    }
}

/// The integer kernels' element type of a dtype.
fn int_type(d: DType) -> Option<IntType> {
    match d {
        DType::I8 => Some(IntType::I8),
        DType::U8 => Some(IntType::U8),
        DType::I32 => Some(IntType::I32),
        DType::I64 => Some(IntType::I64),
        _ => None,
    }
}

/// One [`IntUnary`] step.
fn int_unary_step(cx: &mut LowerCx, id: NodeId, x: ValueId, y: ValueId, ty: IntType, op: IntUnaryOp) -> LowerResult {
    let len = cx.info(y).numel() as u64;
    cx.push(id, Kernel::IntUnary(IntUnary { op, ty, len }), vec![Operand::Value(x)], vec![Operand::Value(y)], len);
    Ok(())
}

/// One f32 [`Unary`] step from input 0 to output 0.
fn unary_step(cx: &mut LowerCx, id: NodeId, node: &Node, kind: UnaryKind) -> LowerResult {
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "input X")?;
    let y = node.outputs[0];
    let len = cx.info(y).numel() as u64;
    let isa = if kind.vectorised() { kernel_isa(cx.arch) } else { Isa::Generic };
    cx.push(id, Kernel::Unary(Unary { kind, len, isa }), vec![Operand::Value(x)], vec![Operand::Value(y)], len);
    Ok(())
}

/// The ISA of a [`Binary`] step: the target's when the operator has SIMD rows.
fn binary_isa(cx: &LowerCx, kind: BinaryKind) -> Isa {
    if kind.vectorised() {
        kernel_isa(cx.arch)
    } else {
        Isa::Generic
    }
}

/// One [`Predicate`] step (bool output); IsNaN/IsInf read f32, Not bool.
fn predicate_step(cx: &mut LowerCx, id: NodeId, node: &Node, kind: PredicateKind) -> LowerResult {
    let x = cx.input(node, 0)?;
    if kind == PredicateKind::Not {
        if cx.info(x).dtype != DType::Bool {
            return Err(format!("Not of {} data", cx.info(x).dtype));
        }
    } else {
        require_f32(cx, x, "input X")?;
    }
    let y = node.outputs[0];
    let len = cx.info(y).numel() as u64;
    cx.push(id, Kernel::Predicate(Predicate { kind, len }), vec![Operand::Value(x)], vec![Operand::Value(y)], len);
    Ok(())
}

/// Copies `x` into `y` (same dtype and size).
fn copy_step(cx: &mut LowerCx, id: NodeId, x: ValueId, y: ValueId) -> LowerResult {
    let info = cx.info(y);
    if cx.info(x) != info {
        return Err(format!("cannot copy {} into {}", cx.info(x), info));
    }
    let k = CopyBytes { elem_bytes: info.dtype.size() as u64, len: info.numel() as u64 };
    cx.push(id, Kernel::CopyBytes(k), vec![Operand::Value(x)], vec![Operand::Value(y)], 0);
    Ok(())
}

/// Cast and CastLike: the output's inferred dtype (Cast's `to`, CastLike's
/// second input's) is the target; a cast to the same dtype is a view.
fn lower_cast(cx: &mut LowerCx, id: NodeId, node: &Node) -> LowerResult {
    let x = cx.input(node, 0)?;
    let y = node.outputs[0];
    let (from, to) = (cx.info(x).dtype, cx.info(y).dtype);
    if from == to {
        return super::movement::view_or_copy(cx, id, y, x);
    }
    let len = cx.info(y).numel() as u64;
    let k = Cast { from: elem_type(from), to: elem_type(to), len };
    cx.push(id, Kernel::Cast(k), vec![Operand::Value(x)], vec![Operand::Value(y)], 0);
    Ok(())
}

/// Dropout at inference: a copy of the data, and an all-true mask (from
/// the weights) when the node has one.
fn lower_dropout(cx: &mut LowerCx, id: NodeId, node: &Node) -> LowerResult {
    copy_step(cx, id, cx.input(node, 0)?, node.outputs[0])?;
    if let Some(&mask) = node.outputs.get(1) {
        let info = cx.info(mask);
        let one: Vec<u8> = match info.dtype {
            DType::Bool | DType::U8 | DType::I8 => vec![1],
            DType::F32 => 1.0f32.to_le_bytes().to_vec(),
            d => return Err(format!("Dropout mask of dtype {d}")),
        };
        let n = info.numel();
        let ones = cx.weights_bytes(&one.repeat(n));
        let k = CopyBytes { elem_bytes: one.len() as u64, len: n as u64 };
        cx.push(id, Kernel::CopyBytes(k), vec![ones], vec![Operand::Value(mask)], 0);
    }
    Ok(())
}

/// Clip with constant (or absent) scalar bounds.
fn lower_clip(cx: &mut LowerCx, id: NodeId, node: &Node) -> LowerResult {
    let x = cx.input(node, 0)?;
    if let Some(ty) = int_type(cx.info(x).dtype) {
        let bound = |i: usize, absent: i64| -> Result<i64, String> {
            let Some(v) = cx.optional_input(node, i) else { return Ok(absent) };
            let t = cx.constant(v).ok_or_else(|| format!("Clip bound #{i} is not a constant"))?;
            t.to_i64_vec().first().copied().ok_or_else(|| format!("Clip bound #{i} is empty"))
        };
        let op = IntUnaryOp::Clip { min: bound(1, i64::MIN)?, max: bound(2, i64::MAX)? };
        return int_unary_step(cx, id, x, node.outputs[0], ty, op);
    }
    let bound = |i: usize, absent: f32| -> Result<f32, String> {
        let Some(v) = cx.optional_input(node, i) else { return Ok(absent) };
        let t = cx.constant(v).ok_or_else(|| format!("Clip bound #{i} is not a constant"))?;
        t.to_f64_vec().first().map(|&b| b as f32).ok_or_else(|| format!("Clip bound #{i} is empty"))
    };
    let (min, max) = (bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?);
    unary_step(cx, id, node, UnaryKind::Clip { min, max })
}

// ---- several inputs ----

/// The coalesced broadcast walk of inputs of shapes `ins` onto `out`.
fn walk(ins: &[&[usize]], out: &[usize]) -> (Vec<u64>, Vec<Vec<u64>>) {
    let strides: Vec<Vec<u64>> = ins.iter().map(|d| broadcast_strides(d, out)).collect();
    let dims: Vec<u64> = out.iter().map(|&d| d as u64).collect();
    coalesce(&dims, &strides)
}

fn lower_binary(cx: &mut LowerCx, id: NodeId, node: &Node, kind: IrBinary) -> LowerResult {
    use IrBinary::*;
    let (a, b) = (cx.input(node, 0)?, cx.input(node, 1)?);
    if let Some(ty) = int_type(cx.info(a).dtype) {
        let op = match kind {
            Add => IntOp::Add,
            Sub => IntOp::Sub,
            Mul => IntOp::Mul,
            Div => IntOp::Div,
            Mod => IntOp::Mod,
            Fmod => IntOp::Fmod,
            BitwiseAnd => IntOp::BitAnd,
            BitwiseOr => IntOp::BitOr,
            BitwiseXor => IntOp::BitXor,
            ShiftLeft => IntOp::ShiftLeft,
            ShiftRight => IntOp::ShiftRight,
            Pow if int_type(cx.info(b).dtype) == Some(ty) => IntOp::Pow,
            Equal => IntOp::Equal,
            Less => IntOp::Less,
            Greater => IntOp::Greater,
            LessOrEqual => IntOp::LessOrEqual,
            GreaterOrEqual => IntOp::GreaterOrEqual,
            _ => return Err(format!("{} of {} data is not lowered", kind.name(), cx.info(a).dtype)),
        };
        return int_binary_step(cx, id, (Operand::Value(a), cx.info(a).shape.dims()), b, node.outputs[0], ty, op);
    }
    let k = match kind {
        Add => BinaryKind::Add,
        Sub => BinaryKind::Sub,
        Mul => BinaryKind::Mul,
        Div => BinaryKind::Div,
        Pow => BinaryKind::Pow,
        Mod => BinaryKind::Mod,
        Fmod => BinaryKind::Fmod,
        Equal => return compare_step(cx, id, node, CompareKind::Equal),
        Less => return compare_step(cx, id, node, CompareKind::Less),
        Greater => return compare_step(cx, id, node, CompareKind::Greater),
        LessOrEqual => return compare_step(cx, id, node, CompareKind::LessOrEqual),
        GreaterOrEqual => return compare_step(cx, id, node, CompareKind::GreaterOrEqual),
        And => return compare_step(cx, id, node, CompareKind::And),
        Or => return compare_step(cx, id, node, CompareKind::Or),
        Xor => return compare_step(cx, id, node, CompareKind::Xor),
        ShiftLeft | ShiftRight | BitwiseAnd | BitwiseOr | BitwiseXor => {
            return Err(format!("{} of {} data", kind.name(), cx.info(a).dtype))
        }
    };
    arithmetic_step(cx, id, node, k)
}

/// An f32 [`Binary`] step of inputs 0 and 1 (a constant non-f32 exponent
/// of Pow is converted to f32 weights).
fn arithmetic_step(cx: &mut LowerCx, id: NodeId, node: &Node, kind: BinaryKind) -> LowerResult {
    let (a, b) = (cx.input(node, 0)?, cx.input(node, 1)?);
    require_f32(cx, a, "input A")?;
    if kind == BinaryKind::Pow && cx.info(b).dtype != DType::F32 {
        let Some(t) = cx.constant(b) else {
            return require_f32(cx, b, "the exponent (when not a constant)");
        };
        let values: Vec<f32> = t.to_f64_vec().into_iter().map(|v| v as f32).collect();
        let w = cx.weights_f32(&values);
        let y = node.outputs[0];
        let out = cx.info(y).shape.dims();
        let (dims, strides) = walk(&[cx.info(a).shape.dims(), t.dims()], out);
        let n = cx.info(y).numel() as u64;
        let k = Binary { kind, dims, strides, activation: Activation::None, isa: binary_isa(cx, kind) };
        cx.push(id, Kernel::Binary(k), vec![Operand::Value(a), w], vec![Operand::Value(y)], n);
        return Ok(());
    }
    require_f32(cx, b, "input B")?;
    binary_step(cx, id, &[a, b], node.outputs[0], kind, Activation::None)
}

/// `y = act(a ⋄ b [+ r])` over f32 values, broadcasting onto `y`'s shape.
fn binary_step(cx: &mut LowerCx, id: NodeId, inputs: &[ValueId], y: ValueId, kind: BinaryKind, activation: Activation) -> LowerResult {
    for (i, &v) in inputs.iter().enumerate() {
        require_f32(cx, v, &format!("input #{i}"))?;
    }
    let shapes: Vec<&[usize]> = inputs.iter().map(|&v| cx.info(v).shape.dims()).collect();
    let (dims, strides) = walk(&shapes, cx.info(y).shape.dims());
    let n = cx.info(y).numel() as u64;
    let flops = n * (inputs.len() as u64 - 1 + (activation != Activation::None) as u64);
    let k = Binary { kind, dims, strides, activation, isa: binary_isa(cx, kind) };
    cx.push(id, Kernel::Binary(k), inputs.iter().map(|&v| Operand::Value(v)).collect(), vec![Operand::Value(y)], flops);
    Ok(())
}

/// One [`IntBinary`] step `y = a ⋄ b` (a given as an operand and its shape).
fn int_binary_step(cx: &mut LowerCx, id: NodeId, a: (Operand, &[usize]), b: ValueId, y: ValueId, ty: IntType, op: IntOp) -> LowerResult {
    if int_type(cx.info(b).dtype) != Some(ty) {
        return Err(format!("integer op on {} and {} data", cx.info(y).dtype, cx.info(b).dtype));
    }
    let (dims, strides) = walk(&[a.1, cx.info(b).shape.dims()], cx.info(y).shape.dims());
    let n = cx.info(y).numel() as u64;
    cx.push(id, Kernel::IntBinary(IntBinary { op, ty, dims, strides }), vec![a.0, Operand::Value(b)], vec![Operand::Value(y)], n);
    Ok(())
}

/// A comparison (f32 inputs) or logic (bool inputs) step with a bool output.
fn compare_step(cx: &mut LowerCx, id: NodeId, node: &Node, kind: CompareKind) -> LowerResult {
    let (a, b) = (cx.input(node, 0)?, cx.input(node, 1)?);
    for (v, what) in [(a, "input A"), (b, "input B")] {
        if kind.is_logic() {
            if cx.info(v).dtype != DType::Bool {
                return Err(format!("{what} of a logic op has dtype {}", cx.info(v).dtype));
            }
        } else {
            require_f32(cx, v, what)?;
        }
    }
    let y = node.outputs[0];
    let (dims, strides) = walk(&[cx.info(a).shape.dims(), cx.info(b).shape.dims()], cx.info(y).shape.dims());
    let n = cx.info(y).numel() as u64;
    cx.push(id, Kernel::Compare(Compare { kind, dims, strides }), vec![Operand::Value(a), Operand::Value(b)], vec![Operand::Value(y)], n);
    Ok(())
}

/// Sum/Mean/Max/Min of N inputs: `t1 = x0 ⋄ x1; t2 = t1 ⋄ x2; …` with the
/// intermediates (of the output's shape) in temps; Mean scales the sum by
/// 1/N in a last step.
fn lower_variadic(cx: &mut LowerCx, id: NodeId, node: &Node, kind: VariadicKind) -> LowerResult {
    let inputs = (0..node.inputs.len()).map(|i| cx.input(node, i)).collect::<Result<Vec<_>, _>>()?;
    let y = node.outputs[0];
    if let Some(ty) = int_type(cx.info(y).dtype) {
        return int_variadic(cx, id, &inputs, y, ty, kind);
    }
    for (i, &v) in inputs.iter().enumerate() {
        require_f32(cx, v, &format!("input #{i}"))?;
    }
    let Some((&first, rest)) = inputs.split_first() else {
        return Err("no inputs".into());
    };
    if rest.is_empty() {
        return copy_step(cx, id, first, y);
    }
    let op = match kind {
        VariadicKind::Sum | VariadicKind::Mean => BinaryKind::Add,
        VariadicKind::Max => BinaryKind::Max,
        VariadicKind::Min => BinaryKind::Min,
    };
    let out_dims = cx.info(y).shape.dims().to_vec();
    let n = cx.info(y).numel() as u64;
    let mut acc = (Operand::Value(first), cx.info(first).shape.dims().to_vec());
    for (i, &x) in rest.iter().enumerate() {
        let last = i + 1 == rest.len() && kind != VariadicKind::Mean;
        let dst = if last { Operand::Value(y) } else { cx.temp(n * 4) };
        let (dims, strides) = walk(&[&acc.1, cx.info(x).shape.dims()], &out_dims);
        let k = Binary { kind: op, dims, strides, activation: Activation::None, isa: binary_isa(cx, op) };
        cx.push(id, Kernel::Binary(k), vec![acc.0, Operand::Value(x)], vec![dst], n);
        acc = (dst, out_dims.clone());
    }
    if kind == VariadicKind::Mean {
        let scale = cx.weights_f32(&[1.0 / inputs.len() as f32]);
        let (dims, strides) = walk(&[&out_dims, &[]], &out_dims);
        let k = Binary { kind: BinaryKind::Mul, dims, strides, activation: Activation::None, isa: binary_isa(cx, BinaryKind::Mul) };
        cx.push(id, Kernel::Binary(k), vec![acc.0, scale], vec![Operand::Value(y)], n);
    }
    Ok(())
}

/// Integer Sum/Max/Min: a chain of [`IntBinary`] steps through temps.
fn int_variadic(cx: &mut LowerCx, id: NodeId, inputs: &[ValueId], y: ValueId, ty: IntType, kind: VariadicKind) -> LowerResult {
    let op = match kind {
        VariadicKind::Sum => IntOp::Add,
        VariadicKind::Max => IntOp::Max,
        VariadicKind::Min => IntOp::Min,
        VariadicKind::Mean => return Err(format!("Mean of {} data is not lowered", cx.info(y).dtype)),
    };
    let Some((&first, rest)) = inputs.split_first() else {
        return Err("no inputs".into());
    };
    if rest.is_empty() {
        return copy_step(cx, id, first, y);
    }
    let out_dims = cx.info(y).shape.dims().to_vec();
    let bytes = (cx.info(y).numel() * ty.bytes()) as u64;
    let mut acc = (Operand::Value(first), cx.info(first).shape.dims().to_vec());
    for (i, &x) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        let out = if last { Operand::Value(y) } else { cx.temp(bytes) };
        if int_type(cx.info(x).dtype) != Some(ty) {
            return Err(format!("{kind:?} of mixed dtypes"));
        }
        let (dims, strides) = walk(&[&acc.1, cx.info(x).shape.dims()], &out_dims);
        let n = cx.info(y).numel() as u64;
        cx.push(id, Kernel::IntBinary(IntBinary { op, ty, dims, strides }), vec![acc.0, Operand::Value(x)], vec![out], n);
        acc = (out, out_dims.clone());
    }
    Ok(())
}

/// Where(cond, x, y) for elements of any dtype.
fn lower_where(cx: &mut LowerCx, id: NodeId, node: &Node) -> LowerResult {
    let (c, x, z) = (cx.input(node, 0)?, cx.input(node, 1)?, cx.input(node, 2)?);
    if cx.info(c).dtype != DType::Bool {
        return Err(format!("Where's condition has dtype {}", cx.info(c).dtype));
    }
    if cx.info(x).dtype != cx.info(z).dtype {
        return Err(format!("Where's X and Y differ in dtype ({} and {})", cx.info(x).dtype, cx.info(z).dtype));
    }
    let y = node.outputs[0];
    let (dims, strides) = walk(&[cx.info(c).shape.dims(), cx.info(x).shape.dims(), cx.info(z).shape.dims()], cx.info(y).shape.dims());
    let k = Where { elem_bytes: cx.info(y).dtype.size() as u64, dims, strides };
    cx.push(id, Kernel::Where(k), vec![Operand::Value(c), Operand::Value(x), Operand::Value(z)], vec![Operand::Value(y)], 0);
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use crate::testing::{check_against_reference, Rng};
    use kann_ir::ops::elementwise::{Activation as IrAct, Binary, BinaryKind as IrBinary, Dropout, ElementwiseOp, IsInf, Unary, UnaryKind as IrUnary, Variadic, VariadicKind};
    use kann_ir::{Graph, GraphBuilder, Op, TensorInfo};
    use kann_tensor::{DType, Shape, Tensor};

    /// An input slot of a one-node test graph.
    pub enum Slot {
        In(DType, Vec<usize>),
        Const(Tensor),
        Absent,
    }

    /// A graph of one node `op` with `slots` as its inputs and `n_out` outputs.
    pub fn one_node(op: Op, slots: Vec<Slot>, n_out: usize) -> Graph {
        let mut b = GraphBuilder::new("t", None);
        let inputs = slots
            .into_iter()
            .enumerate()
            .map(|(i, s)| match s {
                Slot::In(d, dims) => Some(b.add_input(&format!("x{i}"), TensorInfo::new(d, Shape::new(dims))).unwrap()),
                Slot::Const(t) => Some(b.add_constant(&format!("c{i}"), t)),
                Slot::Absent => None,
            })
            .collect();
        let names: Vec<String> = (0..n_out).map(|i| format!("y{i}")).collect();
        for v in b.add_node("n", op, inputs, &names).unwrap() {
            b.add_output(v);
        }
        b.finish().unwrap()
    }

    fn f32_in(dims: &[usize]) -> Slot {
        Slot::In(DType::F32, dims.to_vec())
    }

    fn ew(op: ElementwiseOp) -> Op {
        Op::Elementwise(op)
    }

    /// Runs `g` compiled on 1 and 3 clusters against the reference.
    fn check(g: Graph, what: &str) {
        for clusters in [1, 3] {
            if let Err(e) = check_against_reference(g.clone(), clusters) {
                panic!("{what} on {clusters} clusters: {e}");
            }
        }
    }

    /// A random shape of rank 0..=4 and a numpy-broadcast partner, either way round.
    pub fn broadcast_pair(rng: &mut Rng) -> (Vec<usize>, Vec<usize>) {
        let rank = rng.below(5) as usize;
        let full: Vec<usize> = (0..rank).map(|_| 1 + rng.below(5) as usize).collect();
        let brank = rng.below(rank as u64 + 1) as usize;
        let part: Vec<usize> = full[rank - brank..].iter().map(|&d| if rng.below(2) == 0 { 1 } else { d }).collect();
        if rng.below(2) == 0 {
            (full, part)
        } else {
            (part, full)
        }
    }

    #[test]
    fn every_unary_and_activation_matches_the_reference() {
        use IrUnary::*;
        let kinds = [
            Relu, Sigmoid, Tanh, Exp, Log, Abs, Neg, Reciprocal, Floor, Ceil, Round, Sqrt, Erf, Sign, Softplus, Softsign, Mish, HardSwish, Sin,
            Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Asinh, Acosh, Atanh, Identity, IsNaN,
        ];
        for kind in kinds {
            check(one_node(ew(ElementwiseOp::Unary(Unary { kind })), vec![f32_in(&[3, 700])], 1), kind.name());
        }
        let acts = [
            IrAct::LeakyRelu { alpha: 0.1 },
            IrAct::Elu { alpha: 1.5 },
            IrAct::Selu { alpha: 1.67, gamma: 1.05 },
            IrAct::Celu { alpha: 0.7 },
            IrAct::HardSigmoid { alpha: 0.3, beta: 0.4 },
            IrAct::ThresholdedRelu { alpha: 0.2 },
            IrAct::Shrink { bias: 0.1, lambd: 0.3 },
            IrAct::Gelu { tanh: false },
            IrAct::Gelu { tanh: true },
            IrAct::Swish { alpha: 1.3 },
        ];
        for a in acts {
            check(one_node(ew(ElementwiseOp::Activation(a)), vec![f32_in(&[2, 3, 5])], 1), &format!("{a:?}"));
        }
        let isinf = ElementwiseOp::IsInf(IsInf { detect_negative: true, detect_positive: false });
        check(one_node(ew(isinf), vec![f32_in(&[7])], 1), "IsInf");
        check(one_node(ew(ElementwiseOp::Unary(Unary { kind: Not })), vec![Slot::In(DType::Bool, vec![4, 3])], 1), "Not");
        check(one_node(ew(ElementwiseOp::Unary(Unary { kind: Identity })), vec![Slot::In(DType::I64, vec![4, 3])], 1), "Identity i64");
    }

    #[test]
    fn binary_ops_broadcast_like_the_reference() {
        use IrBinary::*;
        let kinds = [Add, Sub, Mul, Div, Pow, Mod, Fmod, Equal, Less, Greater, LessOrEqual, GreaterOrEqual];
        let mut rng = Rng::new(11);
        for case in 0..60 {
            let kind = kinds[case % kinds.len()];
            let (a, b) = broadcast_pair(&mut rng);
            let g = one_node(ew(ElementwiseOp::Binary(Binary { kind })), vec![f32_in(&a), f32_in(&b)], 1);
            check(g, &format!("{} {a:?} {b:?}", kind.name()));
        }
        for kind in [And, Or, Xor] {
            let g = one_node(ew(ElementwiseOp::Binary(Binary { kind })), vec![Slot::In(DType::Bool, vec![2, 1, 3]), Slot::In(DType::Bool, vec![4, 1])], 1);
            check(g, kind.name());
        }
        // A constant integer exponent becomes f32 weights.
        let e = Tensor::from_i64(Shape::from([3]), vec![2, 3, 0]).unwrap();
        check(one_node(ew(ElementwiseOp::Binary(Binary { kind: Pow })), vec![f32_in(&[2, 3]), Slot::Const(e)], 1), "Pow int exponent");
        // A large one, split across clusters.
        check(one_node(ew(ElementwiseOp::Binary(Binary { kind: Add })), vec![f32_in(&[64, 1, 300]), f32_in(&[7, 300])], 1), "Add large");
    }

    #[test]
    fn variadic_where_clip_prelu_dropout() {
        let mut rng = Rng::new(5);
        for kind in [VariadicKind::Sum, VariadicKind::Mean, VariadicKind::Max, VariadicKind::Min] {
            for n in 1..=4 {
                let (a, b) = broadcast_pair(&mut rng);
                let slots = (0..n).map(|i| f32_in(if i % 2 == 0 { &a } else { &b })).collect();
                check(one_node(ew(ElementwiseOp::Variadic(Variadic { kind })), slots, 1), &format!("{kind:?} x{n} {a:?} {b:?}"));
            }
        }
        for _ in 0..10 {
            let (a, b) = broadcast_pair(&mut rng);
            let slots = vec![Slot::In(DType::Bool, a.clone()), f32_in(&b), f32_in(&[])];
            check(one_node(ew(ElementwiseOp::Where), slots, 1), &format!("Where {a:?} {b:?}"));
        }
        let slots = vec![Slot::In(DType::Bool, vec![3, 1]), Slot::In(DType::I64, vec![4]), Slot::In(DType::I64, vec![3, 4])];
        check(one_node(ew(ElementwiseOp::Where), slots, 1), "Where i64");
        let lo = Tensor::scalar_f32(-0.5);
        let hi = Tensor::scalar_f32(0.25);
        check(one_node(ew(ElementwiseOp::Clip), vec![f32_in(&[5, 4]), Slot::Const(lo.clone()), Slot::Const(hi)], 1), "Clip");
        check(one_node(ew(ElementwiseOp::Clip), vec![f32_in(&[5, 4]), Slot::Const(lo), Slot::Absent], 1), "Clip min");
        check(one_node(ew(ElementwiseOp::PRelu), vec![f32_in(&[2, 3, 4]), f32_in(&[3, 1])], 1), "PRelu");
        check(one_node(ew(ElementwiseOp::SwiGlu { alpha: 1.2 }), vec![f32_in(&[2, 3, 4]), f32_in(&[2, 3, 4])], 1), "SwiGlu");
        let dropout = ElementwiseOp::Dropout(Dropout { mask: Some(DType::Bool) });
        check(one_node(ew(dropout), vec![f32_in(&[3, 4])], 2), "Dropout with mask");
    }

    #[test]
    fn integer_ops_match_the_reference() {
        use IrBinary::*;
        let kinds = [Add, Sub, Mul, Div, Mod, Fmod, Pow, BitwiseAnd, BitwiseOr, BitwiseXor, ShiftLeft, ShiftRight, Equal, Less, GreaterOrEqual];
        let dtypes = [DType::I8, DType::U8, DType::I32, DType::I64];
        let mut rng = Rng::new(21);
        for (case, kind) in kinds.into_iter().cycle().take(56).enumerate() {
            let d = if kind == Pow { dtypes[2 + case % 2] } else { dtypes[case % 4] };
            let (a, b) = broadcast_pair(&mut rng);
            let g = one_node(ew(ElementwiseOp::Binary(Binary { kind })), vec![Slot::In(d, a.clone()), Slot::In(d, b.clone())], 1);
            check(g, &format!("{} {d} {a:?} {b:?}", kind.name()));
        }
        for kind in [IrUnary::Relu, IrUnary::Abs, IrUnary::Neg, IrUnary::Sign, IrUnary::BitwiseNot] {
            check(one_node(ew(ElementwiseOp::Unary(Unary { kind })), vec![Slot::In(DType::I32, vec![3, 5])], 1), kind.name());
        }
        let lo = Tensor::from_i64_values(DType::I8, Shape::from([]), &[1]).unwrap();
        check(one_node(ew(ElementwiseOp::Clip), vec![Slot::In(DType::I8, vec![6]), Slot::Const(lo), Slot::Absent], 1), "Clip i8");
        for kind in [VariadicKind::Max, VariadicKind::Min] {
            let slots = vec![Slot::In(DType::I64, vec![2, 3]), Slot::In(DType::I64, vec![3]), Slot::In(DType::I64, vec![2, 1])];
            check(one_node(ew(ElementwiseOp::Variadic(Variadic { kind })), slots, 1), &format!("{kind:?} i64"));
        }
    }

    #[test]
    fn unsupported_dtypes_are_refused_with_a_reason() {
        let g = one_node(ew(ElementwiseOp::Binary(Binary { kind: IrBinary::Add })), vec![Slot::In(DType::F64, vec![3]), Slot::In(DType::F64, vec![3])], 1);
        let err = crate::lower::lower_graph(&g, kann_artifact::Arch::Generic).unwrap_err();
        assert!(err[0].reason.contains("f64"), "{}", err[0].reason);
    }
}

/// The ONNX backend node tests of the element-wise and reduce families,
/// compiled (2 clusters) and run serially against their expected outputs.
/// Tests that do not lower are listed with the reason; a wrong answer fails.
#[cfg(test)]
mod onnx_node_tests {
    use crate::testing::{compare, run_compiled};
    use kann_ir::{Graph, Op};
    use kann_onnx::ImportOptions;
    use kann_reference::Reference;
    use kann_tensor::Tensor;
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    fn data_dir() -> PathBuf {
        let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        std::env::var_os("KANN_DATA").map(PathBuf::from).unwrap_or_else(|| home.join(".cache/kann-data")).join("onnx-1.23.2/node")
    }

    fn tensors(dir: &Path, prefix: &str) -> Option<Vec<Tensor>> {
        let mut out = Vec::new();
        for i in 0.. {
            let p = dir.join(format!("test_data_set_0/{prefix}_{i}.pb"));
            if !p.exists() {
                break;
            }
            out.push(kann_onnx::tensor::read_tensor_file(&p).ok()?.1);
        }
        Some(out)
    }

    /// The names of the model's graph inputs, in order.
    fn input_names(model: &Path) -> Result<Vec<String>, String> {
        let m = kann_onnx::read_model(model).map_err(|e| e.to_string())?;
        Ok(m.graph.map(|g| g.input.into_iter().map(|v| v.name).collect()).unwrap_or_default())
    }

    fn ours(g: &Graph) -> bool {
        !g.nodes.is_empty() && g.nodes.iter().all(|n| matches!(n.op, Op::Elementwise(_) | Op::Reduce(_)))
    }

    /// Compiles and runs `g`; Ok(None) when it does not lower (the reason in Err of the inner).
    fn run(g: Graph, inputs: &[Tensor], want: &[Tensor]) -> Result<Result<(), String>, String> {
        let opts = crate::CompileOptions { n_clusters: 2, arch: kann_artifact::Arch::Generic, winograd: true, blocked: true, calibration: Default::default() };
        let compiled = match crate::compile(g, &opts, Some(&Reference)) {
            Ok(c) => c,
            Err(e) => return Err(e.to_string()),
        };
        Ok(run_compiled(&compiled, inputs).and_then(|got| compare(&got, want, 1e-5, 1e-4)))
    }

    #[test]
    fn node_tests_of_these_families_run_compiled() {
        let Ok(entries) = std::fs::read_dir(data_dir()) else {
            eprintln!("skipping: no ONNX node tests");
            return;
        };
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("model.onnx").exists()).collect();
        dirs.sort();
        let (mut passed, mut unlowered, mut wrong) = (0, Vec::new(), Vec::new());
        for dir in &dirs {
            let name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
            let (Some(inputs), Some(want)) = (tensors(dir, "input"), tensors(dir, "output")) else { continue };
            let model = dir.join("model.onnx");
            let plain = kann_onnx::import_file(&model, &ImportOptions::default(), Some(&Reference)).ok().filter(|m| ours(&m.graph));
            let mut result = match &plain {
                Some(m) if m.graph.inputs.len() == inputs.len() => run(m.graph.clone(), &inputs, &want),
                _ => Err("not imported with variable inputs".into()),
            };
            if result.is_err() && inputs.len() > 1 {
                // Bind inputs 1.. (axes, bounds, exponents…) as constants.
                let Ok(names) = input_names(&model) else { continue };
                let constant_inputs = names.into_iter().skip(1).zip(inputs[1..].iter().cloned()).collect::<HashMap<_, _>>();
                let opts = ImportOptions { constant_inputs, ..ImportOptions::default() };
                match kann_onnx::import_file(&model, &opts, Some(&Reference)) {
                    Ok(bound) if ours(&bound.graph) => result = run(bound.graph, &inputs[..1], &want),
                    _ if plain.is_none() => continue,
                    _ => {}
                }
            } else if plain.is_none() {
                continue;
            }
            match result {
                Ok(Ok(())) => passed += 1,
                Ok(Err(e)) => wrong.push(format!("{name}: {e}")),
                Err(e) => unlowered.push(format!("{name}: {}", e.lines().next().unwrap_or_default())),
            }
        }
        println!("{passed} node tests pass compiled; {} not lowered:", unlowered.len());
        for u in &unlowered {
            println!("  {u}");
        }
        assert!(wrong.is_empty(), "{} wrong answers:\n{}", wrong.len(), wrong.join("\n"));
    }
}

/// `lower_fused_add` checked on its own: its steps run by a minimal
/// executor (every step over its whole range, one buffer per operand)
/// against the reference's evaluation of the Fused node.
#[cfg(test)]
mod fused_add_tests {
    use super::super::{LowerCx, Operand};
    use crate::testing::{compare, random_inputs};
    use kann_ir::ops::elementwise::{Binary, BinaryKind, ElementwiseOp};
    use kann_ir::ops::fused::{Fused, FusedActivation};
    use kann_ir::{Graph, GraphBuilder, NodeId, Op, TensorInfo};
    use kann_kernels::{Io, RawBuf};
    use kann_tensor::{npy, DType, Shape, Tensor};
    use std::collections::HashMap;

    /// 8-byte aligned zeroed storage of `len` bytes.
    fn storage(bytes: &[u8], len: usize) -> Vec<u64> {
        let mut v = vec![0u64; len.div_ceil(8)];
        // SAFETY: v holds at least len >= bytes.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len().min(len)) };
        v
    }

    fn run_lowered(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
        let mut cx = LowerCx::new(g, kann_artifact::Arch::Generic, true, 1);
        let node = g.node(NodeId(0));
        let Op::Fused(f) = &node.op else { panic!("not fused") };
        super::lower_fused_add(&mut cx, NodeId(0), node, f).unwrap();
        let mut bufs: HashMap<Operand, (Vec<u64>, usize)> = HashMap::new();
        for step in &cx.out.steps {
            for op in step.inputs.iter().chain(&step.outputs) {
                let (bytes, len) = match *op {
                    Operand::Value(v) => {
                        let info = cx.info(v);
                        let len = info.numel() * info.dtype.size();
                        match (g.inputs.iter().position(|&i| i == v), cx.constant(v)) {
                            (Some(i), _) => (npy::raw_le_bytes(&inputs[i]), len),
                            (_, Some(t)) => (npy::raw_le_bytes(t), len),
                            _ => (Vec::new(), len),
                        }
                    }
                    Operand::Weights { offset, len } => (cx.out.weights[offset as usize..(offset + len) as usize].to_vec(), len as usize),
                    Operand::Temp(t) => (Vec::new(), cx.out.temps[t as usize] as usize),
                };
                bufs.entry(*op).or_insert_with(|| (storage(&bytes, len), len));
            }
        }
        for step in &cx.out.steps {
            let view = |op: &Operand| {
                let (v, len) = &bufs[op];
                // SAFETY: the storage lives in `bufs` for the whole run and holds `len` bytes.
                unsafe { RawBuf::new(v.as_ptr() as *mut u8, *len) }
            };
            let ins: Vec<RawBuf> = step.inputs.iter().map(view).collect();
            let outs: Vec<RawBuf> = step.outputs.iter().map(view).collect();
            step.kernel.check(ins.len(), outs.len()).unwrap();
            let n = step.kernel.work_items();
            for part in [0..n / 2, n / 2..n] {
                // SAFETY: one thread; inputs and outputs are distinct buffers.
                unsafe { step.kernel.run(&Io { inputs: &ins, outputs: &outs }, part, &mut []) };
            }
        }
        g.outputs
            .iter()
            .map(|&v| {
                let info = cx.info(v);
                let (s, len) = &bufs[&Operand::Value(v)];
                // SAFETY: the storage holds `len` initialised bytes.
                let bytes = unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), *len) };
                Tensor::new(info.shape.clone(), npy::data_from_le(info.dtype, bytes)).unwrap()
            })
            .collect()
    }

    fn fused_add(a: &[usize], b: &[usize], r: Option<&[usize]>, activation: Option<FusedActivation>) -> Graph {
        let mut g = GraphBuilder::new("fused", None);
        let mut ins = vec![
            Some(g.add_input("a", TensorInfo::new(DType::F32, Shape::from(a))).unwrap()),
            Some(g.add_input("b", TensorInfo::new(DType::F32, Shape::from(b))).unwrap()),
        ];
        if let Some(r) = r {
            ins.push(Some(g.add_input("r", TensorInfo::new(DType::F32, Shape::from(r))).unwrap()));
        }
        let base = Box::new(Op::Elementwise(ElementwiseOp::Binary(Binary { kind: BinaryKind::Add })));
        let op = Op::Fused(Fused { base, base_inputs: 2, residual: r.is_some(), activation, input_scale: false });
        let y = g.add_node("f", op, ins, &["y".to_string()]).unwrap()[0];
        g.add_output(y);
        g.finish().unwrap()
    }

    #[test]
    fn fused_add_matches_the_reference() {
        let acts = [None, Some(FusedActivation::Relu), Some(FusedActivation::Clip { min: -0.2, max: 0.3 }), Some(FusedActivation::Silu), Some(FusedActivation::HardSigmoid { alpha: 0.2, beta: 0.5 })];
        for (i, act) in acts.into_iter().enumerate() {
            let residual: Option<&[usize]> = if i % 2 == 0 { Some(&[2, 3, 4]) } else { None };
            let g = fused_add(&[2, 3, 4], &[3, 1], residual, act);
            let inputs = random_inputs(&g, 3 + i as u64);
            let want = kann_reference::run(&g, &inputs).unwrap();
            let got = run_lowered(&g, &inputs);
            compare(&got, &want, 1e-6, 1e-5).unwrap_or_else(|e| panic!("{act:?}: {e}"));
        }
    }
}

/// Cast and CastLike compiled against the reference: random inputs through
/// `check_against_reference`, and edge values (NaN, infinities, large,
/// negative, fractional) compared byte for byte.
#[cfg(test)]
mod cast_tests {
    use super::tests::{one_node, Slot};
    use crate::testing::{check_against_reference, run_compiled};
    use kann_ir::ops::elementwise::{Cast, ElementwiseOp};
    use kann_ir::{Graph, Op};
    use kann_tensor::{npy::raw_le_bytes, DType, Shape, Tensor};

    const ALL: [DType; 9] = [DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8, DType::U8, DType::I32, DType::I64, DType::Bool];

    fn cast(to: DType) -> Op {
        Op::Elementwise(ElementwiseOp::Cast(Cast { to }))
    }

    /// Edge values of `d`, `n` of them (repeating), so parts split them.
    fn edge_values(d: DType, n: usize) -> Tensor {
        let floats = [0.0, -0.0, 0.7, -0.7, 2.5, -3.5, 127.9, -128.9, 255.5, 300.2, -300.2, 65519.0, 1e6, -3e9, 1e20, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
        let ints = [0i64, 1, -1, 127, 128, -129, 255, 256, 2049, 65536 + 7, (1 << 24) + 1, 3_000_000_000, i64::MIN, i64::MAX];
        if d.is_float() {
            let v: Vec<f64> = (0..n).map(|i| floats[i % floats.len()]).collect();
            Tensor::from_f64(d, Shape::from([n]), &v).unwrap()
        } else {
            let v: Vec<i64> = (0..n).map(|i| ints[i % ints.len()]).collect();
            Tensor::from_i64_values(d, Shape::from([n]), &v).unwrap()
        }
    }

    /// Compiles `g` on `clusters`, runs it on `inputs`, and checks the bytes equal the reference's.
    fn exact(g: Graph, inputs: &[Tensor], clusters: usize, what: &str) {
        let want = kann_reference::run(&g, inputs).unwrap();
        let opts = crate::CompileOptions { n_clusters: clusters, arch: kann_artifact::Arch::Generic, winograd: true, blocked: true, calibration: Default::default() };
        let c = crate::compile(g, &opts, Some(&kann_reference::Reference)).unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = run_compiled(&c, inputs).unwrap();
        assert_eq!(got.len(), want.len(), "{what}");
        for (a, b) in got.iter().zip(&want) {
            assert_eq!((a.dtype(), a.dims()), (b.dtype(), b.dims()), "{what}");
            assert_eq!(raw_le_bytes(a), raw_le_bytes(b), "{what} on {clusters} clusters");
        }
    }

    #[test]
    fn every_pair_matches_the_reference_on_random_inputs() {
        for from in ALL {
            for to in ALL {
                for clusters in [1, 3] {
                    let g = one_node(cast(to), vec![Slot::In(from, vec![3, 5, 7])], 1);
                    if let Err(e) = check_against_reference(g, clusters) {
                        panic!("Cast {from} -> {to} on {clusters} clusters: {e}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_pair_matches_the_reference_bit_for_bit_on_edge_values() {
        for from in ALL {
            let x = edge_values(from, 61);
            for to in ALL {
                for clusters in [1, 3] {
                    let g = one_node(cast(to), vec![Slot::In(from, vec![61])], 1);
                    exact(g.clone(), std::slice::from_ref(&x), clusters, &format!("Cast {from} -> {to}"));
                    let like = one_node(Op::Elementwise(ElementwiseOp::CastLike), vec![Slot::In(from, vec![61]), Slot::In(to, vec![2])], 1);
                    let t = Tensor::from_i64_values(to, Shape::from([2]), &[1, 0]).unwrap();
                    exact(like, &[x.clone(), t], clusters, &format!("CastLike {from} -> {to}"));
                }
            }
        }
    }

    #[test]
    fn a_same_dtype_cast_is_a_view_and_a_scalar_works() {
        let g = one_node(cast(DType::F32), vec![Slot::In(DType::F32, vec![4, 4])], 1);
        let c = check_against_reference(g, 3).unwrap();
        assert!(c.program.steps.iter().all(|s| !s.kernel.name().contains("cast")));
        let g = one_node(cast(DType::I64), vec![Slot::In(DType::F16, vec![])], 1);
        check_against_reference(g, 3).unwrap();
        let g = one_node(cast(DType::U8), vec![Slot::In(DType::F32, vec![0, 3])], 1);
        check_against_reference(g, 2).unwrap();
    }
}
