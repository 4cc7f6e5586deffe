//! Element-wise kernels of one input: f32 maths and activations
//! ([`Unary`]), float tests and logical not with a bool output
//! ([`Predicate`]), and a plain copy of elements of any size ([`CopyBytes`]).
//! Work items are elements.
//!
//! [`Unary`] evaluates each function in f64 and rounds once to f32 (the
//! reference's precision), except the exact ones (Relu, Abs, Neg…). With an
//! x86 [`Isa`] the common functions run vectorised ([`UnaryKind::vectorised`]):
//! the exact ones (Relu, Abs, Neg, Sqrt, Reciprocal, Clip, Identity) give
//! the same values bit for bit, Exp, Sigmoid and Tanh those of
//! [`crate::vmath`] (within 2.3 ulps).

use crate::kernel::{expect_io, KernelImpl};
use crate::vmath::{self, Func};
use crate::{Io, Isa};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The function [`Unary`] applies; parameters are the ONNX attributes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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
    /// -1, 0 or 1 (NaN and signed zeros kept).
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
    /// The identity (Identity, Dropout at inference).
    Identity,
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
    /// Exact (erf) or tanh-approximated GELU.
    Gelu { tanh: bool },
    /// `x * sigmoid(alpha * x)`.
    Swish { alpha: f64 },
    /// `x < min ? min : x > max ? max : x` (NaN stays NaN; `±inf` for an absent bound).
    Clip { min: f32, max: f32 },
}

impl UnaryKind {
    /// The lower-case op name used in kernel names.
    pub fn name(self) -> &'static str {
        use UnaryKind::*;
        match self {
            Relu => "relu",
            Sigmoid => "sigmoid",
            Tanh => "tanh",
            Exp => "exp",
            Log => "log",
            Abs => "abs",
            Neg => "neg",
            Reciprocal => "reciprocal",
            Floor => "floor",
            Ceil => "ceil",
            Round => "round",
            Sqrt => "sqrt",
            Erf => "erf",
            Sign => "sign",
            Softplus => "softplus",
            Softsign => "softsign",
            Mish => "mish",
            HardSwish => "hardswish",
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Asin => "asin",
            Acos => "acos",
            Atan => "atan",
            Sinh => "sinh",
            Cosh => "cosh",
            Asinh => "asinh",
            Acosh => "acosh",
            Atanh => "atanh",
            Identity => "identity",
            LeakyRelu { .. } => "leakyrelu",
            Elu { .. } => "elu",
            Selu { .. } => "selu",
            Celu { .. } => "celu",
            HardSigmoid { .. } => "hardsigmoid",
            ThresholdedRelu { .. } => "thresholdedrelu",
            Shrink { .. } => "shrink",
            Gelu { tanh: false } => "gelu",
            Gelu { tanh: true } => "gelu_tanh",
            Swish { .. } => "swish",
            Clip { .. } => "clip",
        }
    }

    /// The vectorised form of the function, if it has one.
    fn func(self) -> Option<Func> {
        use UnaryKind::*;
        Some(match self {
            Relu => Func::Relu,
            Abs => Func::Abs,
            Neg => Func::Neg,
            Sqrt => Func::Sqrt,
            Reciprocal => Func::Reciprocal,
            Exp => Func::Exp,
            Sigmoid => Func::Sigmoid,
            Tanh => Func::Tanh,
            Identity => Func::Act(crate::Activation::None),
            Clip { min, max } => Func::Clip { min, max },
            _ => return None,
        })
    }

    /// Whether [`Unary`] runs this function with SIMD (the compiler gives
    /// the others the generic ISA).
    pub fn vectorised(self) -> bool {
        self.func().is_some()
    }

    /// Applies the function to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        use UnaryKind::*;
        match self {
            Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            Abs => x.abs(),
            Neg => -x,
            Floor => x.floor(),
            Ceil => x.ceil(),
            Round => x.round_ties_even(),
            Identity => x,
            Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            }
            Clip { min, max } => {
                let v = if x < min { min } else { x };
                if v > max {
                    max
                } else {
                    v
                }
            }
            _ => self.apply_f64(x as f64) as f32,
        }
    }

    /// The functions computed in f64.
    fn apply_f64(self, x: f64) -> f64 {
        use UnaryKind::*;
        match self {
            Sigmoid => sigmoid(x),
            Tanh => x.tanh(),
            Exp => x.exp(),
            Log => x.ln(),
            Reciprocal => 1.0 / x,
            Sqrt => x.sqrt(),
            Erf => erf(x),
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
            LeakyRelu { alpha } => if x < 0.0 { alpha * x } else { x },
            Elu { alpha } => if x < 0.0 { alpha * x.exp_m1() } else { x },
            Selu { alpha, gamma } => gamma * if x <= 0.0 { alpha * x.exp_m1() } else { x },
            Celu { alpha } => x.max(0.0) + (alpha * (x / alpha).exp_m1()).min(0.0),
            HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            ThresholdedRelu { alpha } => if x > alpha { x } else { 0.0 },
            Shrink { bias, lambd } => {
                if x < -lambd {
                    x + bias
                } else if x > lambd {
                    x - bias
                } else {
                    0.0
                }
            }
            Gelu { tanh: false } => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            Gelu { tanh: true } => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044_715 * x * x * x)).tanh())
            }
            Swish { alpha } => x * sigmoid(alpha * x),
            // Exact forms, handled in `apply`.
            Relu | Abs | Neg | Floor | Ceil | Round | Identity | Sign | Clip { .. } => self.apply(x as f32) as f64,
        }
    }
}

/// The logistic function without overflow.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// The error function in f64, accurate far beyond f32: its Maclaurin series
/// below |x| = 4 (terms stay under 1e6, so cancellation costs < 1e-10),
/// ±1 beyond (erfc(4) ≈ 1.5e-8 is under half an f32 ulp of 1).
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= 4.0 {
        return 1.0f64.copysign(x);
    }
    // erf(x) = 2/√π · Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let x2 = x * x;
    let mut power = x; // (-1)^n x^(2n+1) / n!
    let mut sum = x;
    let mut n = 1.0;
    while n < 200.0 {
        power *= -x2 / n;
        let term = power / (2.0 * n + 1.0);
        sum += term;
        if term.abs() <= 1e-17 * sum.abs() {
            break;
        }
        n += 1.0;
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

/// `y[i] = f(x[i])` over `len` f32 elements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unary {
    pub kind: UnaryKind,
    pub len: u64,
    /// Generic, or the SIMD of a [`UnaryKind::vectorised`] function.
    pub isa: Isa,
}

impl KernelImpl for Unary {
    fn name(&self) -> String {
        format!("f32_{}_{}", self.kind.name(), self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.len
    }

    fn in_place_ok(&self) -> bool {
        true
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let r = part.start as usize..part.end as usize;
        let kind = self.kind;
        // SAFETY: this part owns these output elements (the run contract).
        let out = unsafe { io.outputs[0].f32_part(r.clone()) };
        let in_place = io.inputs[0].same_as(&io.outputs[0]);
        if let (Some(f), true) = (kind.func(), self.isa != Isa::Generic) {
            if in_place {
                vmath::map_in_place(self.isa, f, out);
            } else {
                // SAFETY: no one writes the input during the step.
                vmath::map_row(self.isa, f, unsafe { &io.inputs[0].f32()[r] }, out);
            }
            return;
        }
        if in_place {
            out.iter_mut().for_each(|v| *v = kind.apply(*v));
        } else {
            // SAFETY: no one writes the input during the step.
            let x = unsafe { &io.inputs[0].f32()[r] };
            out.iter_mut().zip(x).for_each(|(o, &v)| *o = kind.apply(v));
        }
    }
}

/// A test with a bool output (one byte, 0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PredicateKind {
    /// f32 input.
    IsNaN,
    /// f32 input: which infinities are reported.
    IsInf { negative: bool, positive: bool },
    /// Bool input.
    Not,
}

/// `y[i] = p(x[i])` over `len` elements, a bool output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predicate {
    pub kind: PredicateKind,
    pub len: u64,
}

impl KernelImpl for Predicate {
    fn name(&self) -> String {
        match self.kind {
            PredicateKind::IsNaN => "f32_isnan_generic",
            PredicateKind::IsInf { .. } => "f32_isinf_generic",
            PredicateKind::Not => "bool_not_generic",
        }
        .to_string()
    }

    fn work_items(&self) -> u64 {
        self.len
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let r = part.start as usize..part.end as usize;
        // SAFETY: this part owns these output bytes (the run contract).
        let out = unsafe { io.outputs[0].bytes_part(r.clone()) };
        match self.kind {
            PredicateKind::Not => {
                // SAFETY: no one writes the input during the step.
                let x = unsafe { &io.inputs[0].bytes()[r] };
                out.iter_mut().zip(x).for_each(|(o, &v)| *o = (v == 0) as u8);
            }
            kind => {
                // SAFETY: no one writes the input during the step.
                let x = unsafe { &io.inputs[0].f32()[r] };
                let test = |v: f32| match kind {
                    PredicateKind::IsInf { negative, positive } => (v == f32::INFINITY && positive) || (v == f32::NEG_INFINITY && negative),
                    _ => v.is_nan(),
                };
                out.iter_mut().zip(x).for_each(|(o, &v)| *o = test(v) as u8);
            }
        }
    }
}

/// Copies `len` elements of `elem_bytes` bytes (any dtype).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CopyBytes {
    pub elem_bytes: u64,
    pub len: u64,
}

impl KernelImpl for CopyBytes {
    fn name(&self) -> String {
        format!("x{}_copy_generic", self.elem_bytes * 8)
    }

    fn work_items(&self) -> u64 {
        self.len
    }

    fn in_place_ok(&self) -> bool {
        true
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        if io.inputs[0].same_as(&io.outputs[0]) {
            return;
        }
        let es = self.elem_bytes as usize;
        let r = part.start as usize * es..part.end as usize * es;
        // SAFETY: this part owns these output bytes (the run contract).
        let out = unsafe { io.outputs[0].bytes_part(r.clone()) };
        // SAFETY: no one writes the input during the step.
        out.copy_from_slice(unsafe { &io.inputs[0].bytes()[r] });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawBuf;

    fn run_parts(k: &Unary, x: &mut [f32]) -> Vec<f32> {
        let mut y = vec![0.0f32; x.len()];
        let ins = [RawBuf::from_f32(x)];
        let outs = [RawBuf::from_f32(&mut y)];
        let n = k.len;
        for p in [0..n / 3, n / 3..n / 2, n / 2..n] {
            // SAFETY: live distinct buffers, one thread.
            unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, p, &mut []) };
        }
        y
    }

    #[test]
    fn every_kind_matches_its_formula_in_parts() {
        use UnaryKind::*;
        let kinds = [
            Relu, Sigmoid, Tanh, Exp, Abs, Neg, Floor, Ceil, Round, Erf, Sign, Softplus, Softsign, Mish, HardSwish, Sin, Cos, Tan, Atan, Sinh,
            Cosh, Asinh, Identity, LeakyRelu { alpha: 0.1 }, Elu { alpha: 2.0 }, Selu { alpha: 1.67, gamma: 1.05 }, Celu { alpha: 0.5 },
            HardSigmoid { alpha: 0.2, beta: 0.5 }, ThresholdedRelu { alpha: 1.0 }, Shrink { bias: 0.5, lambd: 1.0 }, Gelu { tanh: false },
            Gelu { tanh: true }, Swish { alpha: 1.0 }, Clip { min: -1.0, max: 2.0 },
        ];
        let mut x: Vec<f32> = (0..101).map(|i| (i as f32 - 50.0) / 10.0).collect();
        for kind in kinds {
            let y = run_parts(&Unary { kind, len: x.len() as u64, isa: Isa::Generic }, &mut x);
            for (&v, &got) in x.iter().zip(&y) {
                let v64 = v as f64;
                let want = match kind {
                    Relu => v64.max(0.0),
                    Sigmoid | Swish { .. } => (if kind == Sigmoid { 1.0 } else { v64 }) / (1.0 + (-v64).exp()),
                    Softplus => (1.0 + v64.exp()).ln(),
                    Mish => v64 * (1.0 + v64.exp()).ln().tanh(),
                    Elu { .. } => if v64 < 0.0 { 2.0 * (v64.exp() - 1.0) } else { v64 },
                    Clip { .. } => v64.clamp(-1.0, 2.0),
                    ThresholdedRelu { .. } => if v64 > 1.0 { v64 } else { 0.0 },
                    Round => v64.round_ties_even(),
                    Sinh => v64.sinh(),
                    _ => kind.apply_f64(v64),
                };
                assert!((got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()), "{kind:?}({v}) = {got}, want {want}");
            }
        }
    }

    #[test]
    fn simd_kinds_match_the_generic_kernel_for_every_length_and_isa() {
        use UnaryKind::*;
        let kinds = [Relu, Abs, Neg, Sqrt, Reciprocal, Identity, Clip { min: -1.0, max: 2.0 }, Exp, Sigmoid, Tanh];
        let special = [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, -1e-40, 3e38, -3e38, 90.0, -110.0];
        for n in 0..100usize {
            let x: Vec<f32> = (0..n).map(|i| if i % 4 == 1 { special[(i / 4 + n) % special.len()] } else { ((i * 37 + n) % 200) as f32 / 20.0 - 5.0 }).collect();
            for kind in kinds {
                assert!(kind.vectorised());
                let want = run_parts(&Unary { kind, len: n as u64, isa: Isa::Generic }, &mut x.clone());
                for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                    let k = Unary { kind, len: n as u64, isa };
                    let mut in_place = x.clone();
                    let buf = RawBuf::from_f32(&mut in_place);
                    // SAFETY: input aliases the output, as an in-place step; one thread.
                    unsafe { k.run(&Io { inputs: &[buf], outputs: &[buf] }, 0..n as u64, &mut []) };
                    for got in [run_parts(&k, &mut x.clone()), in_place] {
                        for ((&v, &g), &w) in x.iter().zip(&got).zip(&want) {
                            let exact = !matches!(kind, Exp | Sigmoid | Tanh);
                            let ok = g == w || (g.is_nan() && w.is_nan()) || (!exact && (g - w).abs() <= 3e-7 * w.abs());
                            assert!(ok, "{isa:?} {kind:?}({v}) = {g}, generic {w}");
                        }
                    }
                }
            }
        }
        assert!(!Erf.vectorised() && !Log.vectorised());
    }

    #[test]
    fn erf_matches_known_values() {
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-14);
        assert!((erf(-2.5) + 0.999_593_047_982_555).abs() < 1e-12);
        assert!((erf(3.9) - 0.999_999_965_207_751_4).abs() < 1e-9);
        assert!((erf(1e-7) / 1.128_379_167_095_512_6e-7 - 1.0).abs() < 1e-12);
        assert_eq!(erf(10.0), 1.0);
        assert!(erf(f64::NAN).is_nan());
    }

    #[test]
    fn in_place_and_predicates_and_copy() {
        let mut x = vec![-1.0f32, 4.0, f32::NAN, f32::NEG_INFINITY];
        let buf = RawBuf::from_f32(&mut x);
        let k = Unary { kind: UnaryKind::Sqrt, len: 4, isa: Isa::Generic };
        // SAFETY: input aliases the output, as an in-place step; one thread.
        unsafe { k.run(&Io { inputs: &[buf], outputs: &[buf] }, 1..2, &mut []) };
        assert_eq!(x[..2], [-1.0, 2.0]);
        let mut m = vec![9u8; 4];
        let p = Predicate { kind: PredicateKind::IsInf { negative: true, positive: false }, len: 4 };
        let ins = [RawBuf::from_f32(&mut x)];
        let outs = [RawBuf::from_bytes(&mut m)];
        // SAFETY: live distinct buffers, one thread.
        unsafe { p.run(&Io { inputs: &ins, outputs: &outs }, 0..4, &mut []) };
        assert_eq!(m, [0, 0, 0, 1]);
        let mut z = vec![0u8; 4];
        let c = CopyBytes { elem_bytes: 1, len: 4 };
        let (ins, outs) = ([RawBuf::from_bytes(&mut m)], [RawBuf::from_bytes(&mut z)]);
        for r in [0..1u64, 1..4] {
            // SAFETY: live distinct buffers, one thread.
            unsafe { c.run(&Io { inputs: &ins, outputs: &outs }, r, &mut []) };
        }
        assert_eq!(z, [0, 0, 0, 1]);
    }
}
