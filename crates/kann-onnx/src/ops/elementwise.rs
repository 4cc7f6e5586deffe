//! Element-wise ops: unary maths and activations, binary arithmetic,
//! comparisons, logic, bit operations, variadic ops, casts and Dropout.

use crate::node::NodeCx;
use crate::registry::{ImportFn, Imported, Registry, MAX_OPSET};
use crate::tensor::dtype_from_onnx;
use crate::ImportError;
use kann_ir::ops::elementwise::{Activation, Binary, BinaryKind, Cast, Dropout, ElementwiseOp, IsInf, Unary, UnaryKind, Variadic, VariadicKind};
use kann_ir::Op;
use kann_tensor::{DType, Shape, Tensor};

const FLOATS: &str = "f32 f16 bf16 f64";
const SIGNED: &str = "f32 f16 bf16 f64 i8 i32 i64";
const NUMERIC: &str = "numeric";

pub(super) fn register(r: &mut Registry) {
    register_unary(r);
    register_binary(r);
    register_activations(r);
    register_misc(r);
}

fn register_unary(r: &mut Registry) {
    use UnaryKind::*;
    // (op, kind, first opset, dtypes)
    let rows: [(&'static str, ImportFn, i64, &'static str); 33] = [
        ("Relu", |cx| unary(cx, Relu), 7, SIGNED),
        ("Sigmoid", |cx| unary(cx, Sigmoid), 7, FLOATS),
        ("Tanh", |cx| unary(cx, Tanh), 7, FLOATS),
        ("Exp", |cx| unary(cx, Exp), 7, FLOATS),
        ("Log", |cx| unary(cx, Log), 7, FLOATS),
        ("Abs", |cx| unary(cx, Abs), 7, NUMERIC),
        ("Neg", |cx| unary(cx, Neg), 7, SIGNED),
        ("Reciprocal", |cx| unary(cx, Reciprocal), 7, FLOATS),
        ("Floor", |cx| unary(cx, Floor), 7, FLOATS),
        ("Ceil", |cx| unary(cx, Ceil), 7, FLOATS),
        ("Round", |cx| unary(cx, Round), 11, FLOATS),
        ("Sqrt", |cx| unary(cx, Sqrt), 7, FLOATS),
        ("Erf", |cx| unary(cx, Erf), 9, NUMERIC),
        ("Sign", |cx| unary(cx, Sign), 9, NUMERIC),
        ("Softplus", |cx| unary(cx, Softplus), 7, FLOATS),
        ("Softsign", |cx| unary(cx, Softsign), 7, FLOATS),
        ("Mish", |cx| unary(cx, Mish), 18, FLOATS),
        ("HardSwish", |cx| unary(cx, HardSwish), 14, FLOATS),
        ("Sin", |cx| unary(cx, Sin), 7, FLOATS),
        ("Cos", |cx| unary(cx, Cos), 7, FLOATS),
        ("Tan", |cx| unary(cx, Tan), 7, FLOATS),
        ("Asin", |cx| unary(cx, Asin), 7, FLOATS),
        ("Acos", |cx| unary(cx, Acos), 7, FLOATS),
        ("Atan", |cx| unary(cx, Atan), 7, FLOATS),
        ("Sinh", |cx| unary(cx, Sinh), 9, FLOATS),
        ("Cosh", |cx| unary(cx, Cosh), 9, FLOATS),
        ("Asinh", |cx| unary(cx, Asinh), 9, FLOATS),
        ("Acosh", |cx| unary(cx, Acosh), 9, FLOATS),
        ("Atanh", |cx| unary(cx, Atanh), 9, FLOATS),
        ("Not", |cx| unary(cx, Not), 7, "bool"),
        ("IsNaN", |cx| unary(cx, IsNaN), 9, FLOATS),
        ("BitwiseNot", |cx| unary(cx, BitwiseNot), 18, "i8 u8 i32 i64"),
        ("Identity", |cx| unary(cx, Identity), 7, "all"),
    ];
    for (op, f, since, dtypes) in rows {
        r.add_range(op, since, MAX_OPSET, f, dtypes, "");
    }
}

fn register_binary(r: &mut Registry) {
    use BinaryKind::*;
    let rows: [(&'static str, ImportFn, i64, &'static str); 16] = [
        ("Add", |cx| binary(cx, Add), 7, NUMERIC),
        ("Sub", |cx| binary(cx, Sub), 7, NUMERIC),
        ("Mul", |cx| binary(cx, Mul), 7, NUMERIC),
        ("Div", |cx| binary(cx, Div), 7, NUMERIC),
        ("Pow", |cx| binary(cx, Pow), 7, "base f32 f16 bf16 f64 i32 i64; exponent numeric"),
        ("Equal", |cx| binary(cx, Equal), 7, "all"),
        ("Less", |cx| binary(cx, Less), 7, NUMERIC),
        ("Greater", |cx| binary(cx, Greater), 7, NUMERIC),
        ("LessOrEqual", |cx| binary(cx, LessOrEqual), 12, NUMERIC),
        ("GreaterOrEqual", |cx| binary(cx, GreaterOrEqual), 12, NUMERIC),
        ("And", |cx| binary(cx, And), 7, "bool"),
        ("Or", |cx| binary(cx, Or), 7, "bool"),
        ("Xor", |cx| binary(cx, Xor), 7, "bool"),
        ("BitwiseAnd", |cx| binary(cx, BitwiseAnd), 18, "i8 u8 i32 i64"),
        ("BitwiseOr", |cx| binary(cx, BitwiseOr), 18, "i8 u8 i32 i64"),
        ("BitwiseXor", |cx| binary(cx, BitwiseXor), 18, "i8 u8 i32 i64"),
    ];
    for (op, f, since, dtypes) in rows {
        r.add_range(op, since, MAX_OPSET, f, dtypes, "");
    }
    r.add_range("Mod", 10, MAX_OPSET, import_mod, NUMERIC, "");
    r.add_range("BitShift", 11, MAX_OPSET, import_bitshift, "u8 i8 i32 i64", "");
}

fn register_activations(r: &mut Registry) {
    r.add("LeakyRelu", import_leaky_relu, FLOATS, "");
    r.add("Elu", import_elu, FLOATS, "");
    r.add("Selu", import_selu, FLOATS, "");
    r.add_range("Celu", 12, MAX_OPSET, import_celu, FLOATS, "alpha = 0");
    r.add("HardSigmoid", import_hard_sigmoid, FLOATS, "");
    r.add_range("ThresholdedRelu", 10, MAX_OPSET, import_thresholded_relu, FLOATS, "");
    r.add_range("Shrink", 9, MAX_OPSET, import_shrink, NUMERIC, "");
    r.add_range("Gelu", 20, MAX_OPSET, import_gelu, FLOATS, "approximate other than none/tanh");
    r.add_range("Swish", 24, MAX_OPSET, import_swish, FLOATS, "");
    r.add_range("SwiGLU", 28, MAX_OPSET, import_swiglu, FLOATS, "");
    r.add("PRelu", |_| Ok(op(ElementwiseOp::PRelu)), NUMERIC, "");
    r.add("Clip", import_clip, NUMERIC, "");
}

fn register_misc(r: &mut Registry) {
    r.add_range("IsInf", 10, MAX_OPSET, import_isinf, FLOATS, "");
    r.add("Sum", |cx| variadic(cx, VariadicKind::Sum), FLOATS, "");
    r.add("Mean", |cx| variadic(cx, VariadicKind::Mean), FLOATS, "");
    r.add("Max", |cx| variadic(cx, VariadicKind::Max), NUMERIC, "");
    r.add("Min", |cx| variadic(cx, VariadicKind::Min), NUMERIC, "");
    r.add_range("Where", 9, MAX_OPSET, |_| Ok(op(ElementwiseOp::Where)), "all", "");
    r.add("Cast", import_cast, "all", "`to` a type kann lacks (float8, int4, string…)");
    r.add_range("CastLike", 15, MAX_OPSET, import_castlike, "all", "");
    r.add("Dropout", import_dropout, FLOATS, "training_mode = true (unless ratio is a constant 0)");
}

fn op(e: ElementwiseOp) -> Imported {
    Op::Elementwise(e).into()
}

fn unary(cx: &mut NodeCx, kind: UnaryKind) -> Result<Imported, ImportError> {
    // Only opsets < 6 had `consumed_inputs`; it never changes results.
    cx.ignore("consumed_inputs");
    Ok(op(ElementwiseOp::Unary(Unary { kind })))
}

fn binary(cx: &mut NodeCx, kind: BinaryKind) -> Result<Imported, ImportError> {
    // Opsets < 7 had `broadcast`/`axis`; kann starts at 7 where broadcasting is numpy's.
    cx.ignore("consumed_inputs");
    Ok(op(ElementwiseOp::Binary(Binary { kind })))
}

fn variadic(cx: &mut NodeCx, kind: VariadicKind) -> Result<Imported, ImportError> {
    cx.ignore("consumed_inputs");
    if cx.inputs.is_empty() || cx.inputs.iter().any(Option::is_none) {
        return Err(cx.error(format!("{} needs 1 or more inputs, none omitted", kind.name())));
    }
    Ok(op(ElementwiseOp::Variadic(Variadic { kind })))
}

fn import_mod(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let kind = match cx.attr_i("fmod", 0)? {
        0 => BinaryKind::Mod,
        1 => BinaryKind::Fmod,
        v => return Err(cx.unsupported("fmod", v)),
    };
    Ok(op(ElementwiseOp::Binary(Binary { kind })))
}

fn import_bitshift(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let dir = cx.attr_s("direction")?.ok_or_else(|| cx.error("attribute 'direction' is required"))?;
    let kind = match dir.as_str() {
        "LEFT" => BinaryKind::ShiftLeft,
        "RIGHT" => BinaryKind::ShiftRight,
        _ => return Err(cx.unsupported("direction", format!("\"{dir}\""))),
    };
    Ok(op(ElementwiseOp::Binary(Binary { kind })))
}

fn activation(cx: &mut NodeCx, a: Activation) -> Result<Imported, ImportError> {
    cx.ignore("consumed_inputs");
    Ok(op(ElementwiseOp::Activation(a)))
}

fn import_leaky_relu(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let alpha = cx.attr_f("alpha", 0.01)? as f64;
    activation(cx, Activation::LeakyRelu { alpha })
}

fn import_elu(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let alpha = cx.attr_f("alpha", 1.0)? as f64;
    activation(cx, Activation::Elu { alpha })
}

fn import_selu(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let alpha = cx.attr_f("alpha", 1.673_263_2)? as f64;
    let gamma = cx.attr_f("gamma", 1.050_701)? as f64;
    activation(cx, Activation::Selu { alpha, gamma })
}

fn import_celu(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let alpha = cx.attr_f("alpha", 1.0)? as f64;
    if alpha == 0.0 {
        return Err(cx.unsupported("alpha", 0));
    }
    activation(cx, Activation::Celu { alpha })
}

fn import_hard_sigmoid(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let alpha = cx.attr_f("alpha", 0.2)? as f64;
    let beta = cx.attr_f("beta", 0.5)? as f64;
    activation(cx, Activation::HardSigmoid { alpha, beta })
}

fn import_thresholded_relu(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let alpha = cx.attr_f("alpha", 1.0)? as f64;
    activation(cx, Activation::ThresholdedRelu { alpha })
}

fn import_shrink(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let bias = cx.attr_f("bias", 0.0)? as f64;
    let lambd = cx.attr_f("lambd", 0.5)? as f64;
    activation(cx, Activation::Shrink { bias, lambd })
}

fn import_swiglu(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let alpha = cx.attr_f("alpha", 1.0)? as f64;
    Ok(Op::Elementwise(ElementwiseOp::SwiGlu { alpha }).into())
}

fn import_gelu(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let approx = cx.attr_s("approximate")?.unwrap_or_else(|| "none".into());
    let tanh = match approx.as_str() {
        "none" => false,
        "tanh" => true,
        _ => return Err(cx.unsupported("approximate", format!("\"{approx}\""))),
    };
    activation(cx, Activation::Gelu { tanh })
}

fn import_swish(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let alpha = cx.attr_f("alpha", 1.0)? as f64;
    activation(cx, Activation::Swish { alpha })
}

fn import_isinf(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let flag = |cx: &NodeCx, name: &str| -> Result<bool, ImportError> {
        match cx.attr_i(name, 1)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(cx.unsupported(name, v)),
        }
    };
    let detect_negative = flag(cx, "detect_negative")?;
    let detect_positive = flag(cx, "detect_positive")?;
    Ok(op(ElementwiseOp::IsInf(IsInf { detect_negative, detect_positive })))
}

/// Clip < 11 holds its bounds in attributes (defaulting to the lowest and
/// highest finite values of the data's type); they become the scalar
/// inputs of later opsets.
fn import_clip(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    cx.ignore("consumed_inputs");
    if cx.opset < 11 {
        let dtype = cx.input_info(0).map(|i| i.dtype).ok_or_else(|| cx.error("missing input"))?;
        let limit = finite_max(dtype).ok_or_else(|| cx.unsupported("(input dtype)", dtype))?;
        let min = cx.attr_f_opt("min")?.map_or(-limit, f64::from);
        let max = cx.attr_f_opt("max")?.map_or(limit, f64::from);
        cx.inputs.truncate(1);
        let scalar = |v: f64| Tensor::from_f64(dtype, Shape::scalar(), &[v]).map_err(|e| cx.error(e));
        let (lo, hi) = (scalar(min)?, scalar(max)?);
        cx.set_const_input(1, lo, "min");
        cx.set_const_input(2, hi, "max");
    }
    Ok(op(ElementwiseOp::Clip))
}

/// Largest finite value of a float dtype.
fn finite_max(d: DType) -> Option<f64> {
    match d {
        DType::F32 => Some(f32::MAX as f64),
        DType::F64 => Some(f64::MAX),
        DType::F16 => Some(65504.0),
        DType::BF16 => Some(3.389_531_389_251_535_5e38),
        _ => None,
    }
}

/// Reads Cast's `saturate` and `round_mode`: both only apply to float8
/// types, which kann lacks, so any valid value leaves results unchanged.
fn float8_attrs(cx: &NodeCx) -> Result<(), ImportError> {
    match cx.attr_i("saturate", 1)? {
        0 | 1 => {}
        v => return Err(cx.unsupported("saturate", v)),
    }
    if let Some(m) = cx.attr_s("round_mode")? {
        if !matches!(m.as_str(), "up" | "down" | "nearest") {
            return Err(cx.unsupported("round_mode", format!("\"{m}\"")));
        }
    }
    Ok(())
}

fn import_cast(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let code = cx.attr_i_opt("to")?.ok_or_else(|| cx.error("attribute 'to' is required"))?;
    let code = i32::try_from(code).map_err(|_| cx.unsupported("to", code))?;
    let to: DType = dtype_from_onnx(code, &format!("{}: attribute 'to'", cx.locator()))?;
    float8_attrs(cx)?;
    Ok(op(ElementwiseOp::Cast(Cast { to })))
}

fn import_castlike(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    float8_attrs(cx)?;
    Ok(op(ElementwiseOp::CastLike))
}

/// Dropout at inference is the identity. `ratio` (an attribute before 12,
/// an input from 12) and `seed` only matter in training; training_mode is
/// checked by inference.
fn import_dropout(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    cx.ignore("ratio");
    cx.ignore("seed");
    cx.ignore("consumed_inputs");
    if cx.attr_i("is_test", 1)? == 0 {
        return Err(cx.unsupported("is_test", 0));
    }
    let mask = if cx.n_outputs() >= 2 {
        let data = cx.input_info(0).map(|i| i.dtype).ok_or_else(|| cx.error("missing input 'data'"))?;
        Some(if cx.opset < 10 { data } else { DType::Bool })
    } else {
        None
    };
    Ok(op(ElementwiseOp::Dropout(Dropout { mask })))
}
