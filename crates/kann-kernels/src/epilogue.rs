//! What a producing kernel applies to each output value while it still
//! holds it: `y = act(acc + bias[c] + residual)`.

use serde::{Deserialize, Serialize};

/// A fused activation, as the compiler's `fuse_activation` pass folds it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// `min(max(x, min), max)` (Clip, Relu6).
    Clip { min: f32, max: f32 },
    LeakyRelu { alpha: f32 },
    Sigmoid,
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid { alpha: f32, beta: f32 },
    /// `x * max(0, min(1, x / 6 + 1/2))`.
    HardSwish,
    /// `x * sigmoid(x)`.
    Silu,
    Tanh,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Clip { min, max } => x.max(min).min(max),
            Activation::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            Activation::Sigmoid => sigmoid(x),
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Activation::Silu => x * sigmoid(x),
            Activation::Tanh => x.tanh(),
        }
    }

    /// Short name for kernel names and logs (`relu`, `clip`…); empty for none.
    pub fn name(self) -> &'static str {
        match self {
            Activation::None => "",
            Activation::Relu => "relu",
            Activation::Clip { .. } => "clip",
            Activation::LeakyRelu { .. } => "leakyrelu",
            Activation::Sigmoid => "sigmoid",
            Activation::HardSigmoid { .. } => "hardsigmoid",
            Activation::HardSwish => "hardswish",
            Activation::Silu => "silu",
            Activation::Tanh => "tanh",
        }
    }
}

/// Applies `act` to every value of `xs`: what kernels whose inner loop
/// cannot hold the activation in registers (sigmoid, silu, tanh) call on
/// each stored row or tile. Vectorised with the best ISA of this CPU
/// (detected once); the piecewise-linear activations give exactly
/// [`Activation::apply`]'s values, sigmoid/silu/tanh those of
/// [`crate::vmath`] (a few ulps).
pub fn activate_in_place(act: Activation, xs: &mut [f32]) {
    if act != Activation::None {
        crate::vmath::map_in_place(crate::vmath::best_isa(), crate::vmath::Func::Act(act), xs);
    }
}

/// The logistic function, accurate across the f32 range.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Bias, residual and activation applied by Conv/Gemm/MatMul kernels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Epilogue {
    /// A bias input (per output channel / column) is present.
    pub bias: bool,
    /// A residual input with the output's shape is added before the activation.
    pub residual: bool,
    pub activation: Activation,
}
