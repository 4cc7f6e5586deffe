//! `fold_reshape_chains`: a Reshape, Flatten, Squeeze or Unsqueeze whose data
//! input is produced by another of them reads the chain's source directly
//! and becomes one `Reshape` to its (static) output shape, given as a new
//! constant. Links nothing else reads are removed; a chain that ends in its
//! source's shape disappears (its readers read the source).

use super::{edit, Pass, PassCx, PassReport};
use crate::{CompileError, Editor};
use kann_ir::ops::movement::MovementOp;
use kann_ir::{Graph, NodeId, Op, ValueId};
use kann_tensor::Tensor;

pub struct FoldReshapeChains;

/// Whether `id` only reinterprets the shape of its first input.
fn is_reshape_like(ed: &Editor, id: NodeId) -> bool {
    matches!(ed.node(id).op, Op::Movement(MovementOp::Reshape { .. } | MovementOp::Flatten { .. } | MovementOp::Squeeze | MovementOp::Unsqueeze))
}

/// The data input of `id` when it is produced by a reshape-like node.
fn chain_link(ed: &Editor, id: NodeId) -> Option<(ValueId, NodeId)> {
    let x = ed.node(id).inputs.first().copied().flatten()?;
    let p = ed.producer(x)?;
    is_reshape_like(ed, p).then_some((x, p))
}

impl Pass for FoldReshapeChains {
    fn name(&self) -> &'static str {
        "fold_reshape_chains"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let mut report = PassReport::new(self.name());
        edit(g, |ed| {
            // In topological order, a link's producer has already been
            // collapsed onto the chain's source, so one step back suffices.
            for id in ed.live_nodes() {
                if ed.is_removed(id) || !is_reshape_like(ed, id) {
                    continue;
                }
                let Some((link, p)) = chain_link(ed, id) else { continue };
                let src = ed.node(p).inputs[0].expect("reshape-like nodes have a data input");
                let out = ed.node(id).outputs[0];
                if ed.value(src).info == ed.value(out).info && ed.can_replace(out, src) {
                    ed.replace_uses(out, src)?;
                    ed.remove_node(id)?;
                } else {
                    let dims = ed.value(out).info.shape.to_vec();
                    let allowzero = dims.contains(&0);
                    let name = format!("{}:shape", ed.value(out).name);
                    let shape = ed.add_constant(&name, Tensor::vec_i64(dims.iter().map(|&d| d as i64).collect()));
                    ed.set_op(id, Op::Movement(MovementOp::Reshape { allowzero }));
                    ed.set_input(id, 0, Some(src));
                    ed.set_input(id, 1, Some(shape));
                    ed.truncate_inputs(id, 2);
                    ed.check_node(id)?;
                }
                report.add("collapsed", "reshape chains", 1);
                report.add("removed", "links", ed.remove_if_unused(link));
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

    fn mv(op: MovementOp) -> Op {
        Op::Movement(op)
    }

    #[test]
    fn collapses_flatten_unsqueeze_squeeze_reshape_into_one_reshape() {
        let mut b = builder();
        let x = b.input("x", &[2, 3, 4]);
        let r = b.unary("r", UnaryKind::Relu, x);
        let f = b.node("f", mv(MovementOp::Flatten { axis: 1 }), &[Some(r)])[0]; // [2, 12]
        let ax = b.constant_i64("ax", vec![0]);
        let u = b.node("u", mv(MovementOp::Unsqueeze), &[Some(f), Some(ax)])[0]; // [1, 2, 12]
        let s = b.node("s", mv(MovementOp::Squeeze), &[Some(u), Some(ax)])[0]; // [2, 12]
        let shape = b.constant_i64("shape", vec![4, 6]);
        let y = b.node("y", mv(MovementOp::Reshape { allowzero: false }), &[Some(s), Some(shape)])[0];
        let e = b.unary("e", UnaryKind::Exp, y);
        b.output(e);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FoldReshapeChains, &mut g);
        assert_eq!(op_names(&g), ["Relu", "Reshape", "Exp"]);
        let reshape = &g.nodes[1];
        assert_eq!(reshape.inputs[0], Some(g.nodes[0].outputs[0]), "reads the chain's source");
        assert_eq!(g.value(reshape.inputs[1].unwrap()).constant.as_ref().unwrap().to_i64_vec(), [4, 6]);
        assert_eq!(rep.to_string(), "fold_reshape_chains: collapsed 3 reshape chains, removed 3 links");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn a_chain_back_to_the_source_shape_disappears_and_shared_links_stay() {
        let mut b = builder();
        let x = b.input("x", &[2, 3]);
        let r = b.unary("r", UnaryKind::Relu, x);
        let ax = b.constant_i64("ax", vec![0]);
        let u = b.node("u", mv(MovementOp::Unsqueeze), &[Some(r), Some(ax)])[0]; // [1, 2, 3]
        let s = b.node("s", mv(MovementOp::Squeeze), &[Some(u), Some(ax)])[0]; // [2, 3]
        let e = b.unary("e", UnaryKind::Exp, s);
        let n = b.unary("n", UnaryKind::Neg, u); // keeps the Unsqueeze alive
        b.output(e);
        b.output(n);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FoldReshapeChains, &mut g);
        assert_eq!(op_names(&g), ["Relu", "Unsqueeze", "Exp", "Neg"]);
        assert_eq!(g.nodes[2].inputs[0], Some(g.nodes[0].outputs[0]));
        assert_eq!(rep.to_string(), "fold_reshape_chains: collapsed 1 reshape chains");
        assert_same_outputs(&before, &g);
    }
}
