//! `RNN`, `GRU` and `LSTM` (opsets 7, 14, 22): one struct for the three
//! recurrent layers, which share their inputs, directions and layouts.
//!
//! Inputs: X, W, R, B, sequence_lens, initial_h, and for LSTM initial_c, P.
//! Outputs: Y, Y_h, and for LSTM Y_c (always all produced; the importer
//! leaves the unnamed ones unused).

use super::super::{check_dtype, optional, required, InferInput, InferResult, FLOATS};
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

/// Which recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecurrentKind {
    Rnn,
    Gru,
    Lstm,
}

impl RecurrentKind {
    /// Gates stacked in W and R: 1 (RNN), 3 (GRU: z, r, h), 4 (LSTM: i, o, f, c).
    pub fn gates(self) -> usize {
        match self {
            RecurrentKind::Rnn => 1,
            RecurrentKind::Gru => 3,
            RecurrentKind::Lstm => 4,
        }
    }

    /// Activation functions per direction: f (RNN), f g (GRU), f g h (LSTM).
    pub fn activations(self) -> usize {
        match self {
            RecurrentKind::Rnn => 1,
            RecurrentKind::Gru => 2,
            RecurrentKind::Lstm => 3,
        }
    }

    /// Outputs: Y, Y_h and for LSTM Y_c.
    pub fn outputs(self) -> usize {
        if self == RecurrentKind::Lstm {
            3
        } else {
            2
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RecurrentKind::Rnn => "RNN",
            RecurrentKind::Gru => "GRU",
            RecurrentKind::Lstm => "LSTM",
        }
    }
}

/// Direction of the recurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
    /// 1, or 2 for bidirectional.
    pub fn count(self) -> usize {
        if self == Direction::Bidirectional {
            2
        } else {
            1
        }
    }
}

/// An activation function of a recurrent cell, its alpha/beta resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    /// `alpha * x + beta`
    Affine(f64, f64),
    /// `x` if `x >= 0` else `alpha * x`
    LeakyRelu(f64),
    /// `x` if `x >= alpha` else 0 (as the recurrent ops' spec writes it)
    ThresholdedRelu(f64),
    /// `alpha * tanh(beta * x)`
    ScaledTanh(f64, f64),
    /// `clamp(alpha * x + beta, 0, 1)`
    HardSigmoid(f64, f64),
    /// `x` if `x >= 0` else `alpha * (e^x - 1)`
    Elu(f64),
    Softsign,
    Softplus,
}

impl Activation {
    /// Applies the function to one value.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Affine(a, b) => a * x + b,
            Activation::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Activation::ThresholdedRelu(a) => {
                if x >= a {
                    x
                } else {
                    0.0
                }
            }
            Activation::ScaledTanh(a, b) => a * (b * x).tanh(),
            Activation::HardSigmoid(a, b) => (a * x + b).clamp(0.0, 1.0),
            Activation::Elu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * (x.exp() - 1.0)
                }
            }
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Softplus => {
                // ln(1 + e^x) without overflow for large x.
                if x > 30.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }
}

/// An `RNN`, `GRU` or `LSTM` node with every attribute resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrent {
    pub kind: RecurrentKind,
    pub direction: Direction,
    /// The `hidden_size` attribute; `None`: taken from R's last axis.
    pub hidden_size: Option<usize>,
    /// `kind.activations()` functions per direction, forward first.
    pub activations: Vec<Activation>,
    /// Gate pre-activations are clamped to `[-clip, clip]` when set.
    pub clip: Option<f64>,
    /// LSTM: the forget gate is `1 - input gate`.
    pub input_forget: bool,
    /// GRU: the reset gate multiplies `H·Rhᵀ + Rbh` rather than `H`.
    pub linear_before_reset: bool,
    /// Layout 1: X, Y and the states are batch-major.
    pub batch_major: bool,
}

/// Sizes of one recurrent evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrentDims {
    pub seq: usize,
    pub batch: usize,
    pub input: usize,
    pub hidden: usize,
    pub dirs: usize,
}

impl Recurrent {
    /// Sizes from the shapes of X, W and R, checking they agree.
    pub fn dims(&self, x: &[usize], w: &[usize], r: &[usize]) -> Result<RecurrentDims, String> {
        let name = self.kind.name();
        let &[a, b, input] = x else { return Err(format!("{name} X must be 3-D, found {x:?}")) };
        let (seq, batch) = if self.batch_major { (b, a) } else { (a, b) };
        let dirs = self.direction.count();
        let g = self.kind.gates();
        let hidden = match self.hidden_size {
            Some(h) => h,
            None => *r.last().ok_or_else(|| format!("{name} R must be 3-D, found {r:?}"))?,
        };
        if w != [dirs, g * hidden, input] {
            return Err(format!("{name} W must be [{dirs}, {}, {input}], found {w:?}", g * hidden));
        }
        if r != [dirs, g * hidden, hidden] {
            return Err(format!("{name} R must be [{dirs}, {}, {hidden}], found {r:?}", g * hidden));
        }
        if self.activations.len() != dirs * self.kind.activations() {
            return Err(format!("{name} needs {} activations, has {}", dirs * self.kind.activations(), self.activations.len()));
        }
        Ok(RecurrentDims { seq, batch, input, hidden, dirs })
    }

    /// Shape of Y_h / Y_c / initial_h / initial_c.
    pub fn state_shape(&self, d: &RecurrentDims) -> Vec<usize> {
        if self.batch_major {
            vec![d.batch, d.dirs, d.hidden]
        } else {
            vec![d.dirs, d.batch, d.hidden]
        }
    }

    /// Shape of Y.
    pub fn y_shape(&self, d: &RecurrentDims) -> Vec<usize> {
        if self.batch_major {
            vec![d.batch, d.seq, d.dirs, d.hidden]
        } else {
            vec![d.seq, d.dirs, d.batch, d.hidden]
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let [x, w, r] = [(0, "X"), (1, "W"), (2, "R")].map(|(i, what)| required(inputs, i, what));
        let (x, w, r) = (x?.info, w?.info, r?.info);
        check_dtype(x, FLOATS, "X")?;
        for (t, what) in [(w, "W"), (r, "R")] {
            if t.dtype != x.dtype {
                return Err(format!("{what} has dtype {}, X has {}", t.dtype, x.dtype));
            }
        }
        let d = self.dims(x.shape.dims(), w.shape.dims(), r.shape.dims())?;
        let g = self.kind.gates();
        let state = self.state_shape(&d);
        let mut expected: Vec<(usize, &str, Vec<usize>)> = vec![(3, "B", vec![d.dirs, 2 * g * d.hidden]), (5, "initial_h", state.clone())];
        if self.kind == RecurrentKind::Lstm {
            expected.push((6, "initial_c", state.clone()));
            expected.push((7, "P", vec![d.dirs, 3 * d.hidden]));
        } else if inputs.len() > 6 && inputs[6..].iter().any(Option::is_some) {
            return Err(format!("{} has at most 6 inputs", self.kind.name()));
        }
        for (i, what, shape) in expected {
            if let Some(t) = optional(inputs, i) {
                if t.info.dtype != x.dtype || t.info.shape.dims() != shape {
                    return Err(format!("{what} must be {} {shape:?}, found {} {}", x.dtype, t.info.dtype, t.info.shape));
                }
            }
        }
        if let Some(s) = optional(inputs, 4) {
            if !matches!(s.info.dtype, DType::I32 | DType::I64) || s.info.shape.dims() != [d.batch] {
                return Err(format!("sequence_lens must be i32 [{}], found {} {}", d.batch, s.info.dtype, s.info.shape));
            }
        }
        let y = TensorInfo::new(x.dtype, Shape::new(self.y_shape(&d)));
        let h = TensorInfo::new(x.dtype, Shape::new(state));
        let mut outs = vec![y, h.clone()];
        if self.kind == RecurrentKind::Lstm {
            outs.push(h);
        }
        Ok(outs)
    }

    /// Two operations per weight per step and batch row, plus the gates.
    pub fn flops(&self, x: Option<&TensorInfo>, w: Option<&TensorInfo>, r: Option<&TensorInfo>) -> u64 {
        let (Some(x), Some(w), Some(r)) = (x, w, r) else { return 0 };
        let Ok(d) = self.dims(x.shape.dims(), w.shape.dims(), r.shape.dims()) else { return 0 };
        let g = self.kind.gates() as u64;
        let per_row = 2 * g * (d.hidden * (d.input + d.hidden)) as u64 + 8 * g * d.hidden as u64;
        ((d.seq * d.batch * d.dirs) as u64).saturating_mul(per_row)
    }
}
