use crate::ops;
use kann_ir::{ConstEval, Graph, NodeId, Op, TensorInfo};
use kann_tensor::Tensor;
use std::collections::HashMap;
use std::sync::Arc;

/// Evaluation errors. Ops report a reason; the runner adds the node locator.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Op(String),
    #[error("{node}: {reason}")]
    Node { node: String, reason: String },
    #[error("input '{name}': {reason}")]
    Input { name: String, reason: String },
}

impl From<String> for EvalError {
    fn from(s: String) -> EvalError {
        EvalError::Op(s)
    }
}

impl From<&str> for EvalError {
    fn from(s: &str) -> EvalError {
        EvalError::Op(s.to_string())
    }
}

impl From<kann_tensor::TensorError> for EvalError {
    fn from(e: kann_tensor::TensorError) -> EvalError {
        EvalError::Op(e.to_string())
    }
}

/// Evaluates one op. `outputs` are the static output types inference gave;
/// ops build tensors of exactly those types.
pub fn eval_op(op: &Op, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    match op {
        Op::Elementwise(o) => ops::elementwise::eval(o, inputs, outputs),
        Op::Nn(o) => ops::nn::eval(o, inputs, outputs),
        Op::Movement(o) => ops::movement::eval(o, inputs, outputs),
        Op::Reduce(o) => ops::reduce::eval(o, inputs, outputs),
        Op::Resample(o) => ops::resample::eval(o, inputs, outputs),
        Op::Fused(f) => eval_fused(f, inputs, outputs),
    }
}

/// A fused op is its input scale (the Mul), its base op, then the residual
/// add and the activation, each rounded to the output dtype as the unfused
/// graph would round them.
fn eval_fused(f: &kann_ir::ops::fused::Fused, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let scaled = match f.scale_slot() {
        Some(slot) => {
            let x = inputs.first().copied().flatten().ok_or("the scaled input is missing")?;
            let s = inputs.get(slot).copied().flatten().ok_or("the input scale is missing")?;
            Some(scale_channels(x, s)?)
        }
        None => None,
    };
    let mut base_inputs = f.base_slice(inputs).to_vec();
    if let Some(x) = &scaled {
        base_inputs[0] = Some(x);
    }
    let base = eval_op(&f.base, &base_inputs, outputs)?;
    let out = base.into_iter().next().ok_or("the fused base op produced no output")?;
    let info = &outputs[0];
    let mut v = out.to_f64_vec();
    let round = |v: Vec<f64>| Tensor::from_f64(info.dtype, info.shape.clone(), &v).map(|t| t.to_f64_vec());
    if let Some(slot) = f.residual_slot() {
        let r = inputs.get(slot).copied().flatten().ok_or("the residual input is missing")?.to_f64_vec();
        if r.len() != v.len() {
            return Err(EvalError::Op(format!("the residual has {} values, the output {}", r.len(), v.len())));
        }
        v.iter_mut().zip(&r).for_each(|(a, b)| *a += b);
        v = round(v)?;
    }
    if let Some(act) = f.activation {
        v.iter_mut().for_each(|x| *x = act.apply(*x));
    }
    Ok(vec![Tensor::from_f64(info.dtype, info.shape.clone(), &v)?])
}

/// `x · s` with `s` one value per (image, channel) of `x` (`[N, C, 1, …]`),
/// rounded to `x`'s dtype as the Mul it replaces.
fn scale_channels(x: &Tensor, s: &Tensor) -> Result<Tensor, EvalError> {
    let dims = x.shape().dims();
    if dims.len() < 2 || s.shape().numel() != dims[0] * dims[1] {
        return Err(EvalError::Op(format!("the input scale {:?} is not per (image, channel) of {:?}", s.shape().dims(), dims)));
    }
    let inner: usize = dims[2..].iter().product();
    let sv = s.to_f64_vec();
    let v: Vec<f64> = x.to_f64_vec().iter().enumerate().map(|(i, &a)| a * sv[i / inner.max(1)]).collect();
    Ok(Tensor::from_f64(x.dtype(), x.shape().clone(), &v)?)
}

/// The reference as a constant folder for [`kann_ir::GraphBuilder`].
pub struct Reference;

impl ConstEval for Reference {
    fn eval(&self, op: &Op, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, String> {
        eval_op(op, inputs, outputs).map_err(|e| e.to_string())
    }
}

/// Runs the graph on `inputs` (in [`Graph::inputs`] order) and returns the
/// graph outputs. Input types must match the graph's exactly.
pub fn run(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, EvalError> {
    if inputs.len() != graph.inputs.len() {
        return Err(EvalError::Op(format!("the graph takes {} inputs, {} were given", graph.inputs.len(), inputs.len())));
    }
    let mut env: Vec<Option<Arc<Tensor>>> = graph.values.iter().map(|v| v.constant.clone()).collect();
    for (&id, t) in graph.inputs.iter().zip(inputs) {
        let v = graph.value(id);
        let got = TensorInfo::of(t);
        if got != v.info {
            return Err(EvalError::Input { name: v.name.clone(), reason: format!("expected {} but got {}", v.info, got) });
        }
        env[id.index()] = Some(Arc::new(t.clone()));
    }
    let last_use = last_uses(graph);
    for (i, node) in graph.nodes.iter().enumerate() {
        let here = || graph.locate(NodeId(i as u32));
        let args: Vec<Option<&Tensor>> = node.inputs.iter().map(|i| i.and_then(|v| env[v.index()].as_deref())).collect();
        let infos: Vec<TensorInfo> = node.outputs.iter().map(|&o| graph.value(o).info.clone()).collect();
        let outs = eval_op(&node.op, &args, &infos).map_err(|e| EvalError::Node { node: here(), reason: e.to_string() })?;
        if outs.len() != node.outputs.len() {
            return Err(EvalError::Node { node: here(), reason: format!("produced {} outputs, expected {}", outs.len(), node.outputs.len()) });
        }
        for (t, &o) in outs.into_iter().zip(&node.outputs) {
            let want = &graph.value(o).info;
            if TensorInfo::of(&t) != *want {
                return Err(EvalError::Node { node: here(), reason: format!("produced {} but inference said {}", TensorInfo::of(&t), want) });
            }
            env[o.index()] = Some(Arc::new(t));
        }
        // Free what no later node reads (graph outputs are never freed).
        for v in node.inputs.iter().flatten() {
            if last_use[v.index()] == Some(i) && graph.value(*v).constant.is_none() {
                env[v.index()] = None;
            }
        }
    }
    graph
        .outputs
        .iter()
        .map(|&o| env[o.index()].as_deref().cloned().ok_or_else(|| EvalError::Op(format!("output '{}' was not computed", graph.value(o).name))))
        .collect()
}

/// Like [`run`] with inputs given by name.
pub fn run_named(graph: &Graph, inputs: &HashMap<String, Tensor>) -> Result<Vec<Tensor>, EvalError> {
    let ordered = graph
        .inputs
        .iter()
        .map(|&id| {
            let name = &graph.value(id).name;
            inputs.get(name).cloned().ok_or_else(|| EvalError::Input { name: name.clone(), reason: "no value given".into() })
        })
        .collect::<Result<Vec<_>, _>>()?;
    run(graph, &ordered)
}

/// Index of the last node reading each value (None: never read, or a graph output).
fn last_uses(graph: &Graph) -> Vec<Option<usize>> {
    let mut last = vec![None; graph.values.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        for v in node.inputs.iter().flatten() {
            last[v.index()] = Some(i);
        }
    }
    for o in &graph.outputs {
        last[o.index()] = None;
    }
    last
}
