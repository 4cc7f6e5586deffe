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

/// A producer with a fused epilogue (and, for a Conv, a fused input
/// scale). Inputs: the base op's inputs (all its slots, omitted ones as
/// `None`), then the residual when `residual` is set, then the scale when
/// `input_scale` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// Conv, Gemm, MatMul or Add.
    pub base: Box<Op>,
    /// How many input slots the base op uses (the residual follows them).
    pub base_inputs: usize,
    /// A residual input with the output's type is added before the activation.
    pub residual: bool,
    pub activation: Option<FusedActivation>,
    /// The base's first input (a Conv's X `[N, C, …]`) is multiplied by a
    /// per-(image, channel) scale `[N, C, 1, …]` before the base op: a
    /// squeeze-excitation product folded into the convolution reading it.
    pub input_scale: bool,
}

impl Fused {
    /// `Conv+Add+Relu`-style name for logs and tables (`Mul+Conv` with an
    /// input scale).
    pub fn describe(&self) -> String {
        let mut s = if self.input_scale { "Mul+".to_string() } else { String::new() };
        s.push_str(self.base.name());
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

    /// Input slots in all: the base's, the residual, the scale.
    pub fn input_count(&self) -> usize {
        self.base_inputs + usize::from(self.residual) + usize::from(self.input_scale)
    }

    /// The residual's input slot, when there is one.
    pub fn residual_slot(&self) -> Option<usize> {
        self.residual.then_some(self.base_inputs)
    }

    /// The input scale's slot, when there is one.
    pub fn scale_slot(&self) -> Option<usize> {
        self.input_scale.then_some(self.base_inputs + usize::from(self.residual))
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        if inputs.len() != self.input_count() {
            return Err(format!("expected {} inputs, found {}", self.input_count(), inputs.len()));
        }
        let out = self.base.infer(self.base_slice(inputs))?;
        if out.len() != 1 {
            return Err(format!("the fused base op {} must have one output", self.base.name()));
        }
        if let Some(slot) = self.residual_slot() {
            match inputs[slot] {
                Some(r) if r.info == &out[0] => {}
                Some(r) => return Err(format!("the residual {} does not match the output {}", r.info, out[0])),
                None => return Err("the residual input is missing".into()),
            }
        }
        if let Some(slot) = self.scale_slot() {
            if !matches!(self.base.as_ref(), Op::Nn(super::nn::NnOp::Conv(_))) {
                return Err(format!("an input scale needs a Conv base, found {}", self.base.name()));
            }
            let (Some(x), Some(s)) = (inputs[0], inputs[slot]) else { return Err("the input or its scale is missing".into()) };
            let (xd, sd) = (x.info.shape.dims(), s.info.shape.dims());
            let per_channel = sd.len() == xd.len() && xd.len() >= 2 && sd[..2] == xd[..2] && sd[2..].iter().all(|&d| d == 1);
            if !per_channel || s.info.dtype != x.info.dtype {
                return Err(format!("the input scale {} is not per (image, channel) of the input {}", s.info, x.info));
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
        let scaled = match self.input_scale {
            true => inputs.first().copied().flatten().map_or(0, |x| x.numel() as u64),
            false => 0,
        };
        base + n * (u64::from(self.residual) + u64::from(self.activation.is_some())) + scaled
    }
}
