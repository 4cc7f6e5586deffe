//! Ops the compiler's fusion passes make: a producer (Conv, Gemm, MatMul or
//! a binary Add) with an epilogue applied to each output value,
//! `y = act(base(x…) + residual)`. They never come from a model file; they
//! exist so the optimised graph says what the kernels will do, and so the
//! reference can evaluate it and every fusion pass stays checkable.

use super::{InferInput, InferResult, Op};
use crate::TensorInfo;

/// An activation folded into its producer. Parameters keep the ONNX
/// attribute values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusedActivation {
    Relu,
    /// Clip / Relu6 with constant bounds (`±inf` when absent).
    Clip { min: f64, max: f64 },
    LeakyRelu { alpha: f64 },
    Sigmoid,
    HardSigmoid { alpha: f64, beta: f64 },
    HardSwish,
    /// `x * sigmoid(x)` (a Mul of x and Sigmoid(x), or ONNX Swish with alpha 1).
    Silu,
    Tanh,
}

impl FusedActivation {
    pub fn name(self) -> &'static str {
        match self {
            FusedActivation::Relu => "Relu",
            FusedActivation::Clip { .. } => "Clip",
            FusedActivation::LeakyRelu { .. } => "LeakyRelu",
            FusedActivation::Sigmoid => "Sigmoid",
            FusedActivation::HardSigmoid { .. } => "HardSigmoid",
            FusedActivation::HardSwish => "HardSwish",
            FusedActivation::Silu => "SiLU",
            FusedActivation::Tanh => "Tanh",
        }
    }

    /// Applies the activation in f64 (the reference's precision).
    pub fn apply(self, x: f64) -> f64 {
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        match self {
            FusedActivation::Relu => x.max(0.0),
            FusedActivation::Clip { min, max } => x.max(min).min(max),
            FusedActivation::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            FusedActivation::Sigmoid => sigmoid(x),
            FusedActivation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            FusedActivation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            FusedActivation::Silu => x * sigmoid(x),
            FusedActivation::Tanh => x.tanh(),
        }
    }
}

/// A producer with a fused epilogue. Inputs: the base op's inputs (all its
/// slots, omitted ones as `None`), then the residual when `residual` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// Conv, Gemm, MatMul or Add.
    pub base: Box<Op>,
    /// How many input slots the base op uses (the residual follows them).
    pub base_inputs: usize,
    /// A residual input with the output's type is added before the activation.
    pub residual: bool,
    pub activation: Option<FusedActivation>,
}

impl Fused {
    /// `Conv+Add+Relu`-style name for logs and tables.
    pub fn describe(&self) -> String {
        let mut s = self.base.name().to_string();
        if self.residual {
            s.push_str("+Add");
        }
        if let Some(a) = self.activation {
            s.push('+');
            s.push_str(a.name());
        }
        s
    }

    /// The base op's inputs.
    pub fn base_slice<'s, T>(&self, inputs: &'s [T]) -> &'s [T] {
        &inputs[..self.base_inputs.min(inputs.len())]
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        if inputs.len() != self.base_inputs + usize::from(self.residual) {
            return Err(format!("expected {} inputs, found {}", self.base_inputs + usize::from(self.residual), inputs.len()));
        }
        let out = self.base.infer(self.base_slice(inputs))?;
        if out.len() != 1 {
            return Err(format!("the fused base op {} must have one output", self.base.name()));
        }
        if self.residual {
            match inputs.last().copied().flatten() {
                Some(r) if r.info == &out[0] => {}
                Some(r) => return Err(format!("the residual {} does not match the output {}", r.info, out[0])),
                None => return Err("the residual input is missing".into()),
            }
        }
        if !out[0].dtype.is_float() {
            return Err(format!("fused epilogues need a float output, found {}", out[0].dtype));
        }
        Ok(out)
    }

    pub fn flops(&self, inputs: &[Option<&TensorInfo>], outputs: &[TensorInfo]) -> u64 {
        let base = self.base.flops(self.base_slice(inputs), outputs);
        let n = outputs.first().map_or(0, |o| o.numel() as u64);
        base + n * (u64::from(self.residual) + u64::from(self.activation.is_some()))
    }
}
