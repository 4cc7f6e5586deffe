//! `fuse_residual_add`: `Add(conv_out, other)` (or a two-input `Sum`, as
//! older exporters wrote residual connections) where `conv_out` is the f32
//! output of a Conv (or of a Fused Conv with neither residual nor
//! activation) read only by this Add, and `other` has exactly the output's
//! type (no broadcasting), becomes one `Fused { base: Conv, residual: true }`
//! reading `other` as its residual. Runs before `fuse_activation`, so that
//! `Conv → Add → Relu` ends as one Conv+Add+Relu.
//!
//! Topological order: the fused node takes the Conv's place when `other`
//! is defined before the Conv, and the Add's place otherwise (the Conv's
//! inputs are all defined before the Add, so both places are valid). When
//! both Add inputs are such Convs, the one that lets the node stay in its
//! Conv's place is preferred.

use super::{edit, Pass, PassCx, PassReport};
use crate::{CompileError, Editor};
use kann_ir::ops::elementwise::{BinaryKind, ElementwiseOp, VariadicKind};
use kann_ir::ops::fused::Fused;
use kann_ir::ops::nn::NnOp;
use kann_ir::{Graph, NodeId, Op, ValueId};
use kann_tensor::DType;

pub struct FuseResidualAdd;

/// The Conv (or plain Fused Conv) producing `v` when it can take a residual
/// through the Add `add`.
fn conv_producer(ed: &Editor, v: ValueId, add: NodeId) -> Option<NodeId> {
    let p = ed.producer(v)?;
    if ed.users(v) != [add] || ed.is_graph_output(v) || ed.value(v).info.dtype != DType::F32 {
        return None;
    }
    match &ed.node(p).op {
        Op::Nn(NnOp::Conv(_)) => Some(p),
        Op::Fused(f) if matches!(*f.base, Op::Nn(NnOp::Conv(_))) && !f.residual && f.activation.is_none() && !f.input_scale => Some(p),
        _ => None,
    }
}

/// A binary Add, or a Sum of two inputs.
fn is_add(op: &Op, inputs: usize) -> bool {
    match op {
        Op::Elementwise(ElementwiseOp::Binary(b)) => b.kind == BinaryKind::Add,
        Op::Elementwise(ElementwiseOp::Variadic(v)) => v.kind == VariadicKind::Sum && inputs == 2,
        _ => false,
    }
}

/// Whether `v` is defined before node `at` (a constant, a graph input, or
/// produced by an earlier node).
fn defined_before(ed: &Editor, v: ValueId, at: NodeId) -> bool {
    ed.producer(v).is_none_or(|p| p < at)
}

/// The base op and its input slots of a Conv or plain Fused Conv.
fn conv_base(ed: &Editor, conv: NodeId) -> (Op, Vec<Option<ValueId>>) {
    let n = ed.node(conv);
    match &n.op {
        Op::Fused(f) => ((*f.base).clone(), f.base_slice(&n.inputs).to_vec()),
        op => (op.clone(), n.inputs.clone()),
    }
}

/// Rewrites `add` (reading `conv_out` and `other`) into the fused op, in
/// the Conv's place or the Add's.
fn fuse(ed: &mut Editor, add: NodeId, conv: NodeId, other: ValueId) -> Result<(), CompileError> {
    let (base, inputs) = conv_base(ed, conv);
    let k = inputs.len();
    let op = Op::Fused(Fused { base: Box::new(base), base_inputs: k, residual: true, activation: None, input_scale: false });
    let conv_out = ed.node(conv).outputs[0];
    let add_out = ed.node(add).outputs[0];
    if defined_before(ed, other, conv) {
        ed.truncate_inputs(conv, k);
        ed.set_input(conv, k, Some(other));
        ed.set_op(conv, op);
        ed.check_node(conv)?;
        ed.replace_uses(add_out, conv_out)?;
        ed.remove_node(add)
    } else {
        for (slot, v) in inputs.into_iter().enumerate() {
            ed.set_input(add, slot, v);
        }
        ed.set_input(add, k, Some(other));
        ed.truncate_inputs(add, k + 1);
        ed.set_op(add, op);
        ed.check_node(add)?;
        ed.remove_node(conv)
    }
}

impl Pass for FuseResidualAdd {
    fn name(&self) -> &'static str {
        "fuse_residual_add"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let mut report = PassReport::new(self.name());
        edit(g, |ed| {
            for id in ed.live_nodes() {
                let n = ed.node(id);
                if !is_add(&n.op, n.inputs.len()) {
                    continue;
                }
                let (Some(a), Some(b)) = (n.inputs.first().copied().flatten(), n.inputs.get(1).copied().flatten()) else { continue };
                let out = &ed.value(n.outputs[0]).info;
                let candidates: Vec<(NodeId, ValueId)> = [(a, b), (b, a)]
                    .into_iter()
                    .filter(|&(c, o)| c != o && ed.value(c).info == *out && ed.value(o).info == *out)
                    .filter_map(|(c, o)| conv_producer(ed, c, id).map(|p| (p, o)))
                    .collect();
                let best = candidates.iter().find(|&&(p, o)| defined_before(ed, o, p)).or(candidates.first()).copied();
                let Some((conv, other)) = best else { continue };
                fuse(ed, id, conv, other)?;
                report.add("fused", "residual Add into Conv", 1);
            }
            Ok(())
        })?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::*;
    use crate::passes::FuseActivation;

    fn describe(g: &Graph) -> Vec<String> {
        g.nodes
            .iter()
            .map(|n| match &n.op {
                Op::Fused(f) => f.describe(),
                op => op.name().to_string(),
            })
            .collect()
    }

    #[test]
    fn fuses_a_resnet_block_in_the_conv_place_and_then_the_relu() {
        let mut b = builder();
        let x = b.input("x", &[1, 3, 5, 5]);
        let r0 = b.unary("r0", UnaryKind::Relu, x);
        let c1 = b.conv("c1", r0, 3, 3, 3, true);
        let r1 = b.unary("r1", UnaryKind::Relu, c1);
        let c2 = b.conv("c2", r1, 3, 3, 3, false);
        let a = b.binary("add", BinaryKind::Add, c2, r0);
        let y = b.unary("y", UnaryKind::Relu, a);
        b.output(y);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FuseResidualAdd, &mut g);
        assert_eq!(rep.to_string(), "fuse_residual_add: fused 1 residual Add into Conv");
        assert_eq!(describe(&g), ["Relu", "Conv", "Relu", "Conv+Add", "Relu"]);
        assert_eq!(g.nodes[3].name, "c2");
        assert_same_outputs(&before, &g);
        run_pass(&FuseActivation, &mut g);
        assert_eq!(describe(&g), ["Relu", "Conv+Relu", "Conv+Add+Relu"]);
        assert_eq!(g.value(g.outputs[0]).name, "y");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn moves_to_the_add_when_the_residual_comes_after_the_conv() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c = b.conv("c", x, 2, 2, 1, true);
        let e = b.unary("e", UnaryKind::Exp, x);
        let a = b.binary("add", BinaryKind::Add, e, c);
        b.output(a);
        let mut g = b.finish();
        let before = g.clone();
        run_pass(&FuseResidualAdd, &mut g);
        assert_eq!(describe(&g), ["Exp", "Conv+Add"]);
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn prefers_the_later_conv_of_a_projection_shortcut() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let main = b.conv("main", x, 2, 3, 3, true);
        let short = b.conv("short", x, 2, 3, 1, true);
        let a = b.binary("add", BinaryKind::Add, main, short);
        b.output(a);
        let mut g = b.finish();
        let before = g.clone();
        run_pass(&FuseResidualAdd, &mut g);
        assert_eq!(describe(&g), ["Conv", "Conv+Add"]);
        assert_eq!(g.nodes[1].name, "short");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn fuses_a_two_input_sum_but_not_a_three_input_one() {
        use kann_ir::ops::elementwise::Variadic;
        let sum = || Op::Elementwise(ElementwiseOp::Variadic(Variadic { kind: VariadicKind::Sum }));
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c = b.conv("c", x, 2, 2, 3, true);
        let s = b.node("sum", sum(), &[Some(c), Some(x)])[0];
        let c2 = b.conv("c2", s, 2, 2, 1, true);
        let s3 = b.node("sum3", sum(), &[Some(c2), Some(x), Some(s)])[0];
        b.output(s3);
        let mut g = b.finish();
        let before = g.clone();
        run_pass(&FuseResidualAdd, &mut g);
        assert_eq!(describe(&g), ["Conv+Add", "Conv", "Sum"]);
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn leaves_broadcasting_shared_and_non_conv_adds() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c = b.conv("c", x, 2, 2, 1, true);
        let k = b.random("k", &[2, 1, 1]);
        let a1 = b.binary("bias", BinaryKind::Add, c, k);
        let c2 = b.conv("c2", a1, 2, 2, 1, true);
        let a2 = b.binary("shared", BinaryKind::Add, c2, x);
        let r = b.unary("r", UnaryKind::Relu, c2);
        let a3 = b.binary("plain", BinaryKind::Add, a2, r);
        b.output(a3);
        let mut g = b.finish();
        let rep = run_pass(&FuseResidualAdd, &mut g);
        assert_eq!(rep.total(), 0);
        assert_eq!(rep.to_string(), "fuse_residual_add: no change");
    }
}
