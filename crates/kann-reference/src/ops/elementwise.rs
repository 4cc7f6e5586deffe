//! Element-wise ops, computed in f64 and rounded once to the output dtype;
//! integer arithmetic in i64 with numpy's wrapping.

use crate::util::broadcast_index;
use crate::EvalError;
use kann_ir::ops::elementwise::{Activation, BinaryKind, ElementwiseOp, IsInf, UnaryKind, VariadicKind};
use kann_ir::TensorInfo;
use kann_tensor::{DType, Shape, Tensor};

pub fn eval(op: &ElementwiseOp, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let out = outputs.first().ok_or("no output type")?;
    let x = input(inputs, 0)?;
    let t = match op {
        ElementwiseOp::Unary(u) => unary(u.kind, x, out)?,
        ElementwiseOp::Binary(b) => binary(b.kind, x, input(inputs, 1)?, out)?,
        ElementwiseOp::Activation(a) => map_f64(x, out, |v| activation(a, v))?,
        ElementwiseOp::IsInf(f) => is_inf(f, x, out)?,
        ElementwiseOp::Variadic(v) => variadic(v.kind, inputs, out)?,
        ElementwiseOp::Where => where_(x, input(inputs, 1)?, input(inputs, 2)?, out)?,
        ElementwiseOp::Clip => clip(x, inputs.get(1).copied().flatten(), inputs.get(2).copied().flatten(), out)?,
        ElementwiseOp::PRelu => prelu(x, input(inputs, 1)?, out)?,
        ElementwiseOp::Cast(_) | ElementwiseOp::CastLike => x.cast(out.dtype),
        ElementwiseOp::SwiGlu { alpha } => {
            let (a, b) = (x.to_f64_vec(), input(inputs, 1)?.to_f64_vec());
            let y: Vec<f64> = a.iter().zip(&b).map(|(&a, &b)| a / (1.0 + (-alpha * a).exp()) * b).collect();
            Tensor::from_f64(out.dtype, out.shape.clone(), &y)?
        }
        ElementwiseOp::Dropout(d) => {
            let mut outs = vec![x.clone()];
            if let Some(m) = d.mask {
                outs.push(Tensor::from_f64(m, x.shape().clone(), &vec![1.0; x.len()])?);
            }
            return Ok(outs);
        }
    };
    Ok(vec![t])
}

/// The `i`-th input, which must be present.
fn input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Result<&'a Tensor, EvalError> {
    inputs.get(i).copied().flatten().ok_or_else(|| EvalError::Op(format!("missing input #{i}")))
}

/// Applies `f` to every element in f64, rounding once to the output dtype.
fn map_f64(x: &Tensor, out: &TensorInfo, f: impl Fn(f64) -> f64) -> Result<Tensor, EvalError> {
    let v: Vec<f64> = x.to_f64_vec().into_iter().map(f).collect();
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &v)?)
}

fn bools(out: &TensorInfo, v: Vec<bool>) -> Result<Tensor, EvalError> {
    Ok(Tensor::from_bools(out.shape.clone(), v)?)
}

// ---- unary ----

fn unary(kind: UnaryKind, x: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    match kind {
        UnaryKind::Identity => Ok(x.clone()),
        UnaryKind::Not => bools(out, x.to_bool_vec().into_iter().map(|b| !b).collect()),
        UnaryKind::IsNaN => bools(out, x.to_f64_vec().into_iter().map(f64::is_nan).collect()),
        _ if x.dtype().is_int() && unary_int(kind, 0).is_some() => {
            let v: Vec<i64> = x.to_i64_vec().into_iter().map(|v| unary_int(kind, v).unwrap_or(0)).collect();
            Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &v)?)
        }
        _ => map_f64(x, out, |v| unary_f64(kind, v)),
    }
}

/// Exact integer forms of the unary ops that have one (`None`: compute in f64).
fn unary_int(kind: UnaryKind, v: i64) -> Option<i64> {
    Some(match kind {
        UnaryKind::Relu => v.max(0),
        UnaryKind::Abs => v.wrapping_abs(),
        UnaryKind::Neg => v.wrapping_neg(),
        UnaryKind::Sign => v.signum(),
        UnaryKind::BitwiseNot => !v,
        _ => return None,
    })
}

fn unary_f64(kind: UnaryKind, x: f64) -> f64 {
    use UnaryKind::*;
    match kind {
        Relu => if x < 0.0 { 0.0 } else { x },
        Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Tanh => x.tanh(),
        Exp => x.exp(),
        Log => x.ln(),
        Abs => x.abs(),
        Neg => -x,
        Reciprocal => 1.0 / x,
        Floor => x.floor(),
        Ceil => x.ceil(),
        Round => x.round_ties_even(),
        Sqrt => x.sqrt(),
        Erf => erf(x),
        Sign => sign(x),
        Softplus => softplus(x),
        Softsign => x / (1.0 + x.abs()),
        Mish => x * softplus(x).tanh(),
        HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Sin => x.sin(),
        Cos => x.cos(),
        Tan => x.tan(),
        Asin => x.asin(),
        Acos => x.acos(),
        Atan => x.atan(),
        Sinh => x.sinh(),
        Cosh => x.cosh(),
        Asinh => x.asinh(),
        Acosh => x.acosh(),
        Atanh => x.atanh(),
        // Handled before (bool or exact outputs).
        Not | IsNaN | BitwiseNot | Identity => x,
    }
}

/// -1, 0 or 1 (NaN stays NaN, zeros keep their sign).
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// `ln(1 + e^x)` without overflow for large x.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// The error function: its Taylor series where it converges quickly,
/// a rational approximation of erfc (relative error < 1.2e-7) beyond.
fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < 3.0 {
        // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
        let mut term = x; // (-1)^n x^(2n+1) / n!
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        return sum * std::f64::consts::FRAC_2_SQRT_PI;
    }
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -a * a - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    (1.0 - erfc).copysign(x)
}

// ---- activations ----

fn activation(a: &Activation, x: f64) -> f64 {
    match *a {
        Activation::LeakyRelu { alpha } => if x < 0.0 { alpha * x } else { x },
        Activation::Elu { alpha } => if x < 0.0 { alpha * (x.exp() - 1.0) } else { x },
        Activation::Selu { alpha, gamma } => gamma * if x <= 0.0 { alpha * (x.exp() - 1.0) } else { x },
        Activation::Celu { alpha } => x.max(0.0) + (alpha * ((x / alpha).exp() - 1.0)).min(0.0),
        Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
        Activation::ThresholdedRelu { alpha } => if x > alpha { x } else { 0.0 },
        Activation::Shrink { bias, lambd } => {
            if x < -lambd {
                x + bias
            } else if x > lambd {
                x - bias
            } else {
                0.0
            }
        }
        Activation::Gelu { tanh: false } => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Activation::Gelu { tanh: true } => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044_715 * x * x * x)).tanh())
        }
        Activation::Swish { alpha } => x / (1.0 + (-alpha * x).exp()),
    }
}

fn is_inf(f: &IsInf, x: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let v = x.to_f64_vec().into_iter().map(|v| (v == f64::INFINITY && f.detect_positive) || (v == f64::NEG_INFINITY && f.detect_negative)).collect();
    bools(out, v)
}

// ---- binary ----

fn binary(kind: BinaryKind, a: &Tensor, b: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let ia = broadcast_index(a.dims(), out.shape.dims());
    let ib = broadcast_index(b.dims(), out.shape.dims());
    let pairs = ia.iter().zip(&ib);
    if kind.is_predicate() {
        return predicate(kind, a, b, &ia, &ib, out);
    }
    if kind == BinaryKind::Pow {
        return pow(a, b, &ia, &ib, out);
    }
    if a.dtype().is_int() {
        let (x, y) = (a.to_i64_vec(), b.to_i64_vec());
        let width = 8 * out.dtype.size() as i64;
        let r = pairs.map(|(&i, &j)| binary_int(kind, x[i], y[j], width)).collect::<Result<Vec<_>, _>>()?;
        return Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &r)?);
    }
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    let r = pairs.map(|(&i, &j)| binary_f64(kind, x[i], y[j])).collect::<Result<Vec<_>, _>>()?;
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &r)?)
}

/// Integer arithmetic in i64, wrapping like numpy; division by zero gives 0.
fn binary_int(kind: BinaryKind, a: i64, b: i64, width: i64) -> Result<i64, EvalError> {
    use BinaryKind::*;
    Ok(match kind {
        Add => a.wrapping_add(b),
        Sub => a.wrapping_sub(b),
        Mul => a.wrapping_mul(b),
        Div if b == 0 => 0,
        Div => a.wrapping_div(b),
        Mod if b == 0 => 0,
        Mod => {
            let r = a.wrapping_rem(b);
            if r != 0 && (r < 0) != (b < 0) {
                r + b
            } else {
                r
            }
        }
        Fmod if b == 0 => 0,
        Fmod => a.wrapping_rem(b),
        ShiftLeft if !(0..width).contains(&b) => 0,
        ShiftLeft => a << b,
        // Out-of-range shifts leave only the sign extension (BitShift-28).
        ShiftRight if !(0..width).contains(&b) => if a < 0 { -1 } else { 0 },
        ShiftRight => a >> b,
        BitwiseAnd => a & b,
        BitwiseOr => a | b,
        BitwiseXor => a ^ b,
        _ => return Err(format!("{} is not an integer arithmetic op", kind.name()).into()),
    })
}

fn binary_f64(kind: BinaryKind, a: f64, b: f64) -> Result<f64, EvalError> {
    use BinaryKind::*;
    Ok(match kind {
        Add => a + b,
        Sub => a - b,
        Mul => a * b,
        Div => a / b,
        Fmod => a % b,
        Mod => python_mod(a, b),
        _ => return Err(format!("{} is not supported on floating-point data", kind.name()).into()),
    })
}

/// Python's float `%`: the remainder takes the divisor's sign.
fn python_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r == 0.0 {
        0.0f64.copysign(b)
    } else if (r < 0.0) != (b < 0.0) {
        r + b
    } else {
        r
    }
}

/// Comparisons (exact on integers) and logic, with a bool output.
fn predicate(kind: BinaryKind, a: &Tensor, b: &Tensor, ia: &[usize], ib: &[usize], out: &TensorInfo) -> Result<Tensor, EvalError> {
    use std::cmp::Ordering as O;
    use BinaryKind::*;
    let pairs = ia.iter().zip(ib);
    let v: Vec<bool> = match kind {
        And | Or | Xor => {
            let (x, y) = (a.to_bool_vec(), b.to_bool_vec());
            pairs.map(|(&i, &j)| match kind { And => x[i] && y[j], Or => x[i] || y[j], _ => x[i] != y[j] }).collect()
        }
        _ => {
            let ord: Vec<Option<O>> = if a.dtype().is_int() || a.dtype() == DType::Bool {
                let (x, y) = (a.to_i64_vec(), b.to_i64_vec());
                pairs.map(|(&i, &j)| Some(x[i].cmp(&y[j]))).collect()
            } else {
                let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
                pairs.map(|(&i, &j)| x[i].partial_cmp(&y[j])).collect()
            };
            ord.into_iter()
                .map(|o| match kind {
                    Equal => o == Some(O::Equal),
                    Less => o == Some(O::Less),
                    Greater => o == Some(O::Greater),
                    LessOrEqual => matches!(o, Some(O::Less | O::Equal)),
                    _ => matches!(o, Some(O::Greater | O::Equal)),
                })
                .collect()
        }
    };
    bools(out, v)
}

/// `Pow`: exact wrapping powers for integer base and exponent; otherwise in
/// f64, converted to the base's dtype (integers truncate).
fn pow(a: &Tensor, b: &Tensor, ia: &[usize], ib: &[usize], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let pairs = ia.iter().zip(ib);
    if a.dtype().is_int() && b.dtype().is_int() {
        let (x, y) = (a.to_i64_vec(), b.to_i64_vec());
        let r: Vec<i64> = pairs.map(|(&i, &j)| int_pow(x[i], y[j])).collect();
        return Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &r)?);
    }
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    let r: Vec<f64> = pairs.map(|(&i, &j)| x[i].powf(y[j])).collect();
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &r)?)
}

/// `base^exp` with wrapping; negative exponents truncate `1 / base^-exp`
/// toward zero (0 for a zero base).
fn int_pow(base: i64, exp: i64) -> i64 {
    if exp < 0 {
        return match base {
            1 => 1,
            -1 => if exp % 2 == 0 { 1 } else { -1 },
            _ => 0,
        };
    }
    let (mut result, mut b, mut e) = (1i64, base, exp as u64);
    while e > 0 {
        if e & 1 == 1 {
            result = result.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    result
}

// ---- variadic, Where, Clip, PRelu ----

fn variadic(kind: VariadicKind, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let ts = (0..inputs.len()).map(|i| input(inputs, i)).collect::<Result<Vec<_>, _>>()?;
    let first = ts.first().ok_or("Sum/Mean/Max/Min need an input")?;
    let n = out.numel();
    if first.dtype().is_int() {
        let mut acc: Vec<Option<i64>> = vec![None; n];
        for t in &ts {
            let (v, idx) = (t.to_i64_vec(), broadcast_index(t.dims(), out.shape.dims()));
            for (a, &i) in acc.iter_mut().zip(&idx) {
                *a = Some(match (*a, kind) {
                    (None, _) => v[i],
                    (Some(s), VariadicKind::Max) => s.max(v[i]),
                    (Some(s), VariadicKind::Min) => s.min(v[i]),
                    (Some(s), _) => s.wrapping_add(v[i]),
                });
            }
        }
        let r: Vec<i64> = acc.into_iter().map(|a| a.unwrap_or(0)).collect();
        let r = if kind == VariadicKind::Mean { r.iter().map(|s| s / ts.len() as i64).collect() } else { r };
        return Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &r)?);
    }
    let mut acc: Vec<Option<f64>> = vec![None; n];
    for t in &ts {
        let (v, idx) = (t.to_f64_vec(), broadcast_index(t.dims(), out.shape.dims()));
        for (a, &i) in acc.iter_mut().zip(&idx) {
            let x = v[i];
            *a = Some(match (*a, kind) {
                (None, _) => x,
                (Some(s), _) if s.is_nan() || x.is_nan() => f64::NAN,
                (Some(s), VariadicKind::Max) => s.max(x),
                (Some(s), VariadicKind::Min) => s.min(x),
                (Some(s), _) => s + x,
            });
        }
    }
    let scale = if kind == VariadicKind::Mean { 1.0 / ts.len() as f64 } else { 1.0 };
    let r: Vec<f64> = acc.into_iter().map(|a| a.unwrap_or(0.0) * scale).collect();
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &r)?)
}

/// Picks from X or Y, whatever their dtype, by gathering from both laid end to end.
fn where_(cond: &Tensor, x: &Tensor, y: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let c = cond.to_bool_vec();
    let dims = out.shape.dims();
    let (ic, ix, iy) = (broadcast_index(cond.dims(), dims), broadcast_index(x.dims(), dims), broadcast_index(y.dims(), dims));
    let both = Tensor::concat_flat(x.dtype(), Shape::from([x.len() + y.len()]), &[x, y])?;
    let index: Vec<usize> = (0..ic.len()).map(|k| if c[ic[k]] { ix[k] } else { x.len() + iy[k] }).collect();
    Ok(both.gather_flat(out.shape.clone(), &index)?)
}

/// `min(max(x, lo), hi)` like numpy's clip (all `hi` when `lo > hi`; NaN stays NaN).
fn clip(x: &Tensor, lo: Option<&Tensor>, hi: Option<&Tensor>, out: &TensorInfo) -> Result<Tensor, EvalError> {
    if x.dtype().is_int() {
        let bound = |t: Option<&Tensor>| t.and_then(|t| t.to_i64_vec().first().copied());
        let (lo, hi) = (bound(lo), bound(hi));
        let r: Vec<i64> = x.to_i64_vec().into_iter().map(|v| {
            let v = lo.map_or(v, |l| v.max(l));
            hi.map_or(v, |h| v.min(h))
        }).collect();
        return Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &r)?);
    }
    let bound = |t: Option<&Tensor>| t.and_then(|t| t.to_f64_vec().first().copied());
    let (lo, hi) = (bound(lo), bound(hi));
    map_f64(x, out, |v| {
        let v = match lo { Some(l) if v < l => l, _ => v };
        match hi { Some(h) if v > h => h, _ => v }
    })
}

fn prelu(x: &Tensor, slope: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let is = broadcast_index(slope.dims(), out.shape.dims());
    if x.dtype().is_int() {
        let (v, s) = (x.to_i64_vec(), slope.to_i64_vec());
        let r: Vec<i64> = v.iter().zip(&is).map(|(&v, &j)| if v < 0 { v.wrapping_mul(s[j]) } else { v }).collect();
        return Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &r)?);
    }
    let (v, s) = (x.to_f64_vec(), slope.to_f64_vec());
    let r: Vec<f64> = v.iter().zip(&is).map(|(&v, &j)| if v < 0.0 { v * s[j] } else { v }).collect();
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &r)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_ir::ops::elementwise::{Binary, Unary};

    fn f32s(dims: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32(Shape::from(dims), v.to_vec()).unwrap()
    }

    fn ints(dtype: DType, dims: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_i64_values(dtype, Shape::from(dims), v).unwrap()
    }

    fn run(op: ElementwiseOp, inputs: &[&Tensor], out: TensorInfo) -> Tensor {
        let ins: Vec<Option<&Tensor>> = inputs.iter().map(|&t| Some(t)).collect();
        eval(&op, &ins, &[out]).unwrap().remove(0)
    }

    fn bin(kind: BinaryKind, a: &Tensor, b: &Tensor, out: TensorInfo) -> Tensor {
        run(ElementwiseOp::Binary(Binary { kind }), &[a, b], out)
    }

    #[test]
    fn integer_division_truncates_and_mod_follows_the_divisor() {
        let a = ints(DType::I32, &[4], &[7, -7, 7, -7]);
        let b = ints(DType::I32, &[4], &[2, 2, -2, -2]);
        let info = TensorInfo::new(DType::I32, Shape::from([4]));
        assert_eq!(bin(BinaryKind::Div, &a, &b, info.clone()).to_i64_vec(), vec![3, -3, -3, 3]);
        assert_eq!(bin(BinaryKind::Mod, &a, &b, info.clone()).to_i64_vec(), vec![1, 1, -1, -1]);
        assert_eq!(bin(BinaryKind::Fmod, &a, &b, info).to_i64_vec(), vec![1, -1, 1, -1]);
    }

    #[test]
    fn sub_broadcasts_and_u8_wraps() {
        let a = ints(DType::U8, &[2, 1], &[3, 10]);
        let b = ints(DType::U8, &[2], &[5, 1]);
        let r = bin(BinaryKind::Sub, &a, &b, TensorInfo::new(DType::U8, Shape::from([2, 2])));
        assert_eq!(r.to_i64_vec(), vec![254, 2, 5, 9]);
    }

    #[test]
    fn pow_keeps_the_base_dtype() {
        let a = ints(DType::I64, &[3], &[2, 3, -2]);
        let b = f32s(&[1], &[2.5]);
        let r = bin(BinaryKind::Pow, &a, &b, TensorInfo::new(DType::I64, Shape::from([3])));
        assert_eq!(r.to_i64_vec()[..2], [5, 15]);
        assert_eq!(int_pow(3, 4), 81);
        assert_eq!(int_pow(2, -1), 0);
    }

    #[test]
    fn round_is_half_to_even_and_erf_is_accurate() {
        let x = f32s(&[4], &[0.5, 1.5, 2.5, -0.5]);
        let r = run(ElementwiseOp::Unary(Unary { kind: UnaryKind::Round }), &[&x], TensorInfo::new(DType::F32, Shape::from([4])));
        assert_eq!(r.to_f64_vec(), vec![0.0, 2.0, 2.0, -0.0]);
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-15);
        assert!((erf(-3.5) + 0.999_999_256_901_627_7).abs() < 1e-10);
        assert!((erf(1e-6) / 1.128_379_167_095_512_6e-6 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn where_picks_and_clip_bounds() {
        let c = Tensor::from_bools(Shape::from([2]), vec![true, false]).unwrap();
        let x = ints(DType::I64, &[2, 2], &[1, 2, 3, 4]);
        let y = ints(DType::I64, &[], &[9]);
        let r = run(ElementwiseOp::Where, &[&c, &x, &y], TensorInfo::new(DType::I64, Shape::from([2, 2])));
        assert_eq!(r.to_i64_vec(), vec![1, 9, 3, 9]);
        let v = f32s(&[3], &[-5.0, 0.5, 5.0]);
        let (lo, hi) = (f32s(&[], &[-1.0]), f32s(&[], &[1.0]));
        let r = run(ElementwiseOp::Clip, &[&v, &lo, &hi], TensorInfo::new(DType::F32, Shape::from([3])));
        assert_eq!(r.to_f64_vec(), vec![-1.0, 0.5, 1.0]);
    }

    #[test]
    fn max_propagates_nan_and_mean_averages() {
        let a = f32s(&[2], &[1.0, f32::NAN]);
        let b = f32s(&[1], &[3.0]);
        let info = TensorInfo::new(DType::F32, Shape::from([2]));
        let r = run(ElementwiseOp::Variadic(kann_ir::ops::elementwise::Variadic { kind: VariadicKind::Max }), &[&a, &b], info.clone());
        assert_eq!(r.to_f64_vec()[0], 3.0);
        assert!(r.to_f64_vec()[1].is_nan());
        let r = run(ElementwiseOp::Variadic(kann_ir::ops::elementwise::Variadic { kind: VariadicKind::Mean }), &[&a, &b], info);
        assert_eq!(r.to_f64_vec()[0], 2.0);
    }
}
