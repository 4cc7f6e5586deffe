//! `fuse_activation`: an activation whose only input is the output of a
//! Conv, Gemm, MatMul, BatchNormalization (one left unfolded, as in
//! pre-activation networks), binary Add, or an already fused op without an
//! activation, read by nothing else, becomes that producer's fused
//! epilogue: the producer turns into (or stays) an [`Op::Fused`] with the
//! activation, and the activation node goes.
//!
//! Activations: Relu, Clip with constant (or absent) bounds (Relu6),
//! LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Tanh, ONNX Swish with alpha 1,
//! and SiLU written as `Mul(x, Sigmoid(x))` (there `x` is read by exactly
//! the Sigmoid and the Mul). Only f32 outputs fuse (the kernels' epilogues
//! are f32). The report counts, per activation kind, how many of the graph's
//! activations fused (`Relu: 55/55 fused`).

use super::{edit, Pass, PassCx, PassReport};
use crate::{CompileError, Editor};
use kann_ir::ops::elementwise::{Activation, BinaryKind, ElementwiseOp, UnaryKind};
use kann_ir::ops::fused::{Fused, FusedActivation};
use kann_ir::ops::nn::NnOp;
use kann_ir::{Graph, NodeId, Op, ValueId};
use kann_tensor::DType;

pub struct FuseActivation;

/// An activation node recognised: what it applies, the value it applies to,
/// and, for SiLU, the Sigmoid node that goes with the Mul.
struct Found {
    act: FusedActivation,
    x: ValueId,
    sigmoid: Option<NodeId>,
}

/// The activation `id` applies, if it is one the epilogues know.
fn recognise(ed: &Editor, id: NodeId) -> Option<Found> {
    let n = ed.node(id);
    let x = n.inputs.first().copied().flatten()?;
    let simple = |act| Some(Found { act, x, sigmoid: None });
    match &n.op {
        Op::Elementwise(ElementwiseOp::Unary(u)) => match u.kind {
            UnaryKind::Relu => simple(FusedActivation::Relu),
            UnaryKind::Sigmoid => simple(FusedActivation::Sigmoid),
            UnaryKind::Tanh => simple(FusedActivation::Tanh),
            UnaryKind::HardSwish => simple(FusedActivation::HardSwish),
            _ => None,
        },
        Op::Elementwise(ElementwiseOp::Activation(a)) => match *a {
            Activation::LeakyRelu { alpha } => simple(FusedActivation::LeakyRelu { alpha }),
            Activation::HardSigmoid { alpha, beta } => simple(FusedActivation::HardSigmoid { alpha, beta }),
            Activation::Swish { alpha: 1.0 } => simple(FusedActivation::Silu),
            _ => None,
        },
        Op::Elementwise(ElementwiseOp::Clip) => {
            let bound = |slot: usize, absent: f64| -> Option<f64> {
                match n.inputs.get(slot).copied().flatten() {
                    None => Some(absent),
                    Some(v) => {
                        let t = ed.constant(v)?;
                        (t.shape().numel() == 1).then(|| t.to_f64_vec()[0])
                    }
                }
            };
            let (min, max) = (bound(1, f64::NEG_INFINITY)?, bound(2, f64::INFINITY)?);
            (!min.is_nan() && !max.is_nan()).then_some(Found { act: FusedActivation::Clip { min, max }, x, sigmoid: None })
        }
        Op::Elementwise(ElementwiseOp::Binary(b)) if b.kind == BinaryKind::Mul => silu(ed, id),
        _ => None,
    }
}

/// `Mul(x, Sigmoid(x))` (either order) where the Sigmoid's output is read
/// only by this Mul.
fn silu(ed: &Editor, mul: NodeId) -> Option<Found> {
    let n = ed.node(mul);
    let (a, b) = (n.inputs.first().copied().flatten()?, n.inputs.get(1).copied().flatten()?);
    [(a, b), (b, a)].into_iter().find_map(|(x, s)| {
        let p = ed.producer(s)?;
        let is_sigmoid = matches!(&ed.node(p).op, Op::Elementwise(ElementwiseOp::Unary(u)) if u.kind == UnaryKind::Sigmoid);
        let single = ed.users(s) == [mul] && !ed.is_graph_output(s);
        (is_sigmoid && single && x != s && ed.node(p).inputs.first().copied().flatten() == Some(x)).then_some(Found { act: FusedActivation::Silu, x, sigmoid: Some(p) })
    })
}

/// Whether a Sigmoid node is the inner half of a SiLU pattern (counted as
/// SiLU, not as a Sigmoid).
fn inside_silu(ed: &Editor, id: NodeId) -> bool {
    let out = ed.node(id).outputs[0];
    match ed.users(out) {
        [mul] => recognise(ed, *mul).is_some_and(|f| f.sigmoid == Some(id)),
        _ => false,
    }
}

/// The producer of `x` that can take the activation: an f32 Conv, Gemm,
/// MatMul, BatchNormalization, binary Add or Fused without activation, whose output `x` is read
/// only by the activation (`readers`) and is not a graph output.
fn fusable_producer(ed: &Editor, x: ValueId, readers: &[NodeId]) -> Option<NodeId> {
    let p = ed.producer(x)?;
    let mut users = ed.users(x).to_vec();
    users.sort_unstable();
    let mut want = readers.to_vec();
    want.sort_unstable();
    if users != want || ed.is_graph_output(x) || ed.value(x).info.dtype != DType::F32 || ed.node(p).outputs.len() != 1 {
        return None;
    }
    match &ed.node(p).op {
        Op::Nn(NnOp::Conv(_) | NnOp::Gemm(_) | NnOp::MatMul | NnOp::BatchNorm(_)) => Some(p),
        Op::Elementwise(ElementwiseOp::Binary(b)) if b.kind == BinaryKind::Add => Some(p),
        Op::Fused(f) if f.activation.is_none() => Some(p),
        _ => None,
    }
}

/// Gives `producer` the activation `act` (making it a Fused op if needed).
fn give_activation(ed: &mut Editor, producer: NodeId, act: FusedActivation) -> Result<(), CompileError> {
    let n = ed.node(producer);
    let fused = match &n.op {
        Op::Fused(f) => Fused { activation: Some(act), ..f.clone() },
        op => Fused { base: Box::new(op.clone()), base_inputs: n.inputs.len(), residual: false, activation: Some(act), input_scale: false },
    };
    ed.set_op(producer, Op::Fused(fused));
    ed.check_node(producer)
}

/// Per activation kind: (fused, total), in first-seen order.
#[derive(Default)]
struct Tally(Vec<(&'static str, usize, usize)>);

impl Tally {
    fn count(&mut self, kind: &'static str, fused: bool) {
        let i = match self.0.iter().position(|t| t.0 == kind) {
            Some(i) => i,
            None => {
                self.0.push((kind, 0, 0));
                self.0.len() - 1
            }
        };
        self.0[i].1 += usize::from(fused);
        self.0[i].2 += 1;
    }
}

impl Pass for FuseActivation {
    fn name(&self) -> &'static str {
        "fuse_activation"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let mut report = PassReport::new(self.name());
        let mut tally = Tally::default();
        edit(g, |ed| {
            for id in ed.live_nodes() {
                if ed.is_removed(id) {
                    continue;
                }
                let Some(found) = recognise(ed, id) else { continue };
                if found.act == FusedActivation::Sigmoid && inside_silu(ed, id) {
                    continue;
                }
                let readers: Vec<NodeId> = std::iter::once(id).chain(found.sigmoid).collect();
                let y = ed.node(id).outputs[0];
                let producer = fusable_producer(ed, found.x, &readers).filter(|_| ed.can_replace(y, found.x));
                tally.count(found.act.name(), producer.is_some());
                let Some(producer) = producer else { continue };
                give_activation(ed, producer, found.act)?;
                ed.replace_uses(y, found.x)?;
                ed.remove_node(id)?;
                if let Some(s) = found.sigmoid {
                    ed.remove_node(s)?;
                }
                report.add("fused", found.act.name(), 1);
            }
            Ok(())
        })?;
        for (kind, fused, total) in tally.0 {
            report.notes.push(format!("{kind}: {fused}/{total} fused"));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::*;
    use kann_ir::ops::nn::Gemm;

    fn fused(g: &Graph, i: usize) -> &Fused {
        match &g.nodes[i].op {
            Op::Fused(f) => f,
            op => panic!("node {i} is {}", op.name()),
        }
    }

    #[test]
    fn fuses_relu_into_convs_and_leaves_a_shared_output() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 5, 5]);
        let c1 = b.conv("c1", x, 2, 3, 3, true);
        let r1 = b.unary("r1", UnaryKind::Relu, c1);
        let c2 = b.conv("c2", r1, 3, 2, 1, false);
        let r2 = b.unary("r2", UnaryKind::Relu, c2);
        let e = b.unary("e", UnaryKind::Exp, c2);
        let y = b.binary("y", BinaryKind::Add, r2, e);
        b.output(y);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FuseActivation, &mut g);
        assert_eq!(op_names(&g), ["Fused", "Conv", "Relu", "Exp", "Add"]);
        assert_eq!(fused(&g, 0).describe(), "Conv+Relu");
        assert_eq!(g.nodes[0].name, "c1");
        assert_eq!(rep.to_string(), "fuse_activation: fused 1 Relu; Relu: 1/2 fused");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn fuses_every_activation_kind_and_keeps_output_names() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let mut v = x;
        let six = b.constant("six", &[], vec![0.6]);
        let zero = b.constant("zero", &[], vec![-0.1]);
        let acts: Vec<(&str, Op, Vec<Option<ValueId>>)> = vec![
            ("clip", Op::Elementwise(ElementwiseOp::Clip), vec![Some(zero), Some(six)]),
            ("clip_max", Op::Elementwise(ElementwiseOp::Clip), vec![None, Some(six)]),
            ("leaky", Op::Elementwise(ElementwiseOp::Activation(Activation::LeakyRelu { alpha: 0.1 })), vec![]),
            ("hsig", Op::Elementwise(ElementwiseOp::Activation(Activation::HardSigmoid { alpha: 0.2, beta: 0.5 })), vec![]),
            ("swish", Op::Elementwise(ElementwiseOp::Activation(Activation::Swish { alpha: 1.0 })), vec![]),
        ];
        for (i, (name, op, extra)) in acts.into_iter().enumerate() {
            let c = b.conv(&format!("c{i}"), v, 2, 2, 3, true);
            let inputs: Vec<Option<ValueId>> = std::iter::once(Some(c)).chain(extra).collect();
            v = b.node(name, op, &inputs)[0];
        }
        for (i, k) in [UnaryKind::Sigmoid, UnaryKind::Tanh, UnaryKind::HardSwish].into_iter().enumerate() {
            let c = b.conv(&format!("u{i}"), v, 2, 2, 1, false);
            v = b.unary(&format!("a{i}"), k, c);
        }
        let c = b.conv("s", v, 2, 2, 1, true);
        let s = b.unary("sig", UnaryKind::Sigmoid, c);
        let m = b.binary("silu", BinaryKind::Mul, s, c);
        b.output(m);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FuseActivation, &mut g);
        assert!(g.nodes.iter().all(|n| matches!(n.op, Op::Fused(_))), "{:?}", op_names(&g));
        let kinds: Vec<&str> = (0..g.nodes.len()).map(|i| fused(&g, i).activation.unwrap().name()).collect();
        assert_eq!(kinds, ["Clip", "Clip", "LeakyRelu", "HardSigmoid", "SiLU", "Sigmoid", "Tanh", "HardSwish", "SiLU"]);
        assert_eq!(rep.total(), 9);
        assert!(rep.notes.contains(&"SiLU: 2/2 fused".to_string()), "{rep}");
        assert!(rep.notes.contains(&"Sigmoid: 1/1 fused".to_string()), "{rep}");
        assert_eq!(g.value(g.outputs[0]).name, "silu");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn fuses_into_gemm_matmul_add_and_a_fused_residual() {
        let mut b = builder();
        let x = b.input("x", &[2, 3]);
        let w = b.random("w", &[4, 3]);
        let gemm = Op::Nn(NnOp::Gemm(Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true }));
        let g1 = b.node("gemm", gemm, &[Some(x), Some(w), None])[0];
        let r1 = b.unary("r1", UnaryKind::Relu, g1);
        let w2 = b.random("w2", &[4, 4]);
        let m = b.node("mm", Op::Nn(NnOp::MatMul), &[Some(r1), Some(w2)])[0];
        let t = b.unary("t", UnaryKind::Tanh, m);
        let a = b.binary("add", BinaryKind::Add, t, r1);
        let r2 = b.unary("r2", UnaryKind::Relu, a);
        b.output(r2);
        let mut g = b.finish();
        let before = g.clone();
        run_pass(&FuseActivation, &mut g);
        let d: Vec<String> = (0..3).map(|i| fused(&g, i).describe()).collect();
        assert_eq!(d, ["Gemm+Relu", "MatMul+Tanh", "Add+Relu"]);
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn fuses_into_an_unfolded_batch_norm() {
        let mut b = builder();
        let x = b.input("x", &[1, 3, 4, 4]);
        let bn = b.batch_norm("bn", x, 3);
        let r = b.unary("r", UnaryKind::Relu, bn);
        b.output(r);
        let mut g = b.finish();
        let before = g.clone();
        run_pass(&FuseActivation, &mut g);
        assert_eq!(fused(&g, 0).describe(), "BatchNormalization+Relu");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn leaves_non_constant_clips_and_activated_fusions() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 3, 3]);
        let lo = b.input("lo", &[]);
        let c = b.conv("c", x, 2, 2, 1, true);
        let k = b.node("clip", Op::Elementwise(ElementwiseOp::Clip), &[Some(c), Some(lo), None])[0];
        let c2 = b.conv("c2", k, 2, 2, 1, true);
        let r = b.unary("r", UnaryKind::Relu, c2);
        let s = b.unary("s", UnaryKind::Sigmoid, r);
        b.output(s);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FuseActivation, &mut g);
        assert_eq!(op_names(&g), ["Conv", "Clip", "Fused", "Sigmoid"]);
        assert_eq!(rep.to_string(), "fuse_activation: fused 1 Relu; Relu: 1/1 fused; Sigmoid: 0/1 fused");
        assert_same_outputs(&before, &g);
    }
}
