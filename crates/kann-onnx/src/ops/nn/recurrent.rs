//! Import of `RNN`, `GRU` and `LSTM` (opsets 7, 14 with `layout`, 22).

use super::FLOAT_TYPES;
use crate::node::NodeCx;
use crate::registry::{Imported, Registry, MAX_OPSET};
use crate::ImportError;
use kann_ir::ops::nn::{Activation, Direction, NnOp, Recurrent, RecurrentKind};
use kann_ir::Op;

const LIMITS: &str = "activations other than Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus";

pub(super) fn register(r: &mut Registry) {
    r.add_range("RNN", 7, MAX_OPSET, |cx| recurrent(cx, RecurrentKind::Rnn), FLOAT_TYPES, LIMITS);
    r.add_range("GRU", 7, MAX_OPSET, |cx| recurrent(cx, RecurrentKind::Gru), FLOAT_TYPES, LIMITS);
    r.add_range("LSTM", 7, MAX_OPSET, |cx| recurrent(cx, RecurrentKind::Lstm), FLOAT_TYPES, LIMITS);
}

fn recurrent(cx: &mut NodeCx, kind: RecurrentKind) -> Result<Imported, ImportError> {
    let direction = match cx.attr_s("direction")?.as_deref().unwrap_or("forward") {
        "forward" => Direction::Forward,
        "reverse" => Direction::Reverse,
        "bidirectional" => Direction::Bidirectional,
        other => return Err(cx.unsupported("direction", other)),
    };
    let hidden_size = match cx.attr_i_opt("hidden_size")? {
        None => None,
        Some(h) if h > 0 => Some(h as usize),
        Some(h) => return Err(cx.error(format!("hidden_size must be positive, found {h}"))),
    };
    let clip = match cx.attr_f_opt("clip")? {
        None => None,
        Some(c) if c > 0.0 => Some(c as f64),
        Some(c) => return Err(cx.error(format!("clip must be positive, found {c}"))),
    };
    let activations = activations(cx, kind, direction)?;
    let input_forget = kind == RecurrentKind::Lstm && cx.attr_i("input_forget", 0)? != 0;
    let linear_before_reset = kind == RecurrentKind::Gru && cx.attr_i("linear_before_reset", 0)? != 0;
    let layout = if cx.opset >= 14 { cx.attr_i("layout", 0)? } else { 0 };
    if !(0..=1).contains(&layout) {
        return Err(cx.unsupported("layout", layout));
    }
    if cx.n_outputs() > kind.outputs() {
        return Err(cx.error(format!("{} has at most {} outputs, the node names {}", kind.name(), kind.outputs(), cx.n_outputs())));
    }
    let r = Recurrent { kind, direction, hidden_size, activations, clip, input_forget, linear_before_reset, batch_major: layout == 1 };
    Ok(Op::Nn(NnOp::Recurrent(r)).into())
}

/// The activation functions, per direction, with their alpha/beta. The
/// alpha and beta lists are consumed in order by the functions that take
/// them (as onnxruntime reads them); a function whose value is missing uses
/// its default. One direction's list given to a bidirectional layer is used
/// for both directions.
fn activations(cx: &NodeCx, kind: RecurrentKind, direction: Direction) -> Result<Vec<Activation>, ImportError> {
    let per = kind.activations();
    let dirs = direction.count();
    let names = match cx.attr_strings("activations")? {
        Some(n) => n,
        None => {
            let defaults: &[&str] = match kind {
                RecurrentKind::Rnn => &["Tanh"],
                RecurrentKind::Gru => &["Sigmoid", "Tanh"],
                RecurrentKind::Lstm => &["Sigmoid", "Tanh", "Tanh"],
            };
            defaults.iter().map(|s| s.to_string()).collect()
        }
    };
    let names: Vec<String> = if names.len() == per * dirs {
        names
    } else if names.len() == per {
        names.iter().cycle().take(per * dirs).cloned().collect()
    } else {
        return Err(cx.error(format!("{} needs {} activations, found {}", kind.name(), per * dirs, names.len())));
    };
    let alphas = cx.attr_floats("activation_alpha")?.unwrap_or_default();
    let betas = cx.attr_floats("activation_beta")?.unwrap_or_default();
    let (mut alphas, mut betas) = (alphas.into_iter(), betas.into_iter());
    let next = |it: &mut std::vec::IntoIter<f32>, default: f64| it.next().map_or(default, f64::from);
    let mut out = Vec::with_capacity(names.len());
    for name in &names {
        let a = match name.to_ascii_lowercase().as_str() {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "affine" => Activation::Affine(next(&mut alphas, 1.0), next(&mut betas, 0.0)),
            "leakyrelu" => Activation::LeakyRelu(next(&mut alphas, 0.01)),
            "thresholdedrelu" => Activation::ThresholdedRelu(next(&mut alphas, 1.0)),
            "scaledtanh" => Activation::ScaledTanh(next(&mut alphas, 1.0), next(&mut betas, 1.0)),
            "hardsigmoid" => Activation::HardSigmoid(next(&mut alphas, 0.2), next(&mut betas, 0.5)),
            "elu" => Activation::Elu(next(&mut alphas, 1.0)),
            "softsign" => Activation::Softsign,
            "softplus" => Activation::Softplus,
            _ => return Err(cx.unsupported("activations", name)),
        };
        out.push(a);
    }
    Ok(out)
}
