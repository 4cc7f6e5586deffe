//! `remove_identity`: removes nodes that copy their data input unchanged —
//! `Identity`, `Dropout` (inference form) whose mask nothing reads, `Cast`
//! (or `CastLike`) to the dtype the data already has, and `Reshape` or
//! `Flatten` to the shape the data already has — making their readers read
//! the data input. A node whose output is a graph output stays when its input
//! cannot take the output's place (a graph input or a constant).

use super::{edit, Pass, PassCx, PassReport};
use crate::{CompileError, Editor};
use kann_ir::ops::elementwise::{ElementwiseOp, Unary, UnaryKind};
use kann_ir::ops::movement::MovementOp;
use kann_ir::{Graph, NodeId, Op};

pub struct RemoveIdentity;

/// Whether `id` copies its first input to its first output unchanged (and
/// its other outputs, if any, are unread).
fn is_identity(ed: &Editor, id: NodeId) -> bool {
    let n = ed.node(id);
    let (Some(Some(x)), Some(&y)) = (n.inputs.first(), n.outputs.first()) else { return false };
    let same_type = ed.value(*x).info == ed.value(y).info;
    match &n.op {
        Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Identity })) => true,
        Op::Elementwise(ElementwiseOp::Dropout(_)) => same_type && n.outputs[1..].iter().all(|&m| !ed.is_used(m)),
        Op::Elementwise(ElementwiseOp::Cast(_) | ElementwiseOp::CastLike) => same_type,
        Op::Movement(MovementOp::Reshape { .. } | MovementOp::Flatten { .. }) => same_type,
        _ => false,
    }
}

impl Pass for RemoveIdentity {
    fn name(&self) -> &'static str {
        "remove_identity"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let mut report = PassReport::new(self.name());
        let mut kept = 0;
        edit(g, |ed| {
            for id in ed.live_nodes() {
                if !is_identity(ed, id) {
                    continue;
                }
                let n = ed.node(id);
                let (x, y, op) = (n.inputs[0].expect("checked"), n.outputs[0], n.op.name());
                if !ed.can_replace(y, x) {
                    kept += 1;
                    continue;
                }
                ed.replace_uses(y, x)?;
                ed.remove_node(id)?;
                report.add("removed", op, 1);
            }
            Ok(())
        })?;
        if kept > 0 {
            report.notes.push(format!("kept {kept} that copy a graph input or a constant to a graph output"));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::*;
    use kann_ir::ops::elementwise::{Cast, Dropout};
    use kann_tensor::DType;

    #[test]
    fn removes_identity_dropout_same_cast_and_same_reshape() {
        let mut b = builder();
        let x = b.input("x", &[2, 3]);
        let r = b.unary("r", UnaryKind::Relu, x);
        let i = b.unary("i", UnaryKind::Identity, r);
        let d = b.node("d", Op::Elementwise(ElementwiseOp::Dropout(Dropout { mask: Some(DType::Bool) })), &[Some(i)])[0];
        let c = b.node("c", Op::Elementwise(ElementwiseOp::Cast(Cast { to: DType::F32 })), &[Some(d)])[0];
        let shape = b.constant_i64("shape", vec![2, -1]);
        let s = b.node("s", Op::Movement(MovementOp::Reshape { allowzero: false }), &[Some(c), Some(shape)])[0];
        let e = b.unary("e", UnaryKind::Exp, s);
        let f = b.unary("f", UnaryKind::Identity, e);
        b.output(f);
        let mut g = b.finish();
        let before = g.clone();
        let r = run_pass(&RemoveIdentity, &mut g);
        assert_eq!(op_names(&g), ["Relu", "Exp"]);
        assert_eq!(r.to_string(), "remove_identity: removed 2 Identity, removed 1 Dropout, removed 1 Cast, removed 1 Reshape");
        assert_eq!(g.value(g.outputs[0]).name, "f", "the output keeps its name");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn keeps_casts_that_convert_reshapes_that_reshape_and_read_masks() {
        let mut b = builder();
        let x = b.input("x", &[2, 3]);
        let c = b.node("c", Op::Elementwise(ElementwiseOp::Cast(Cast { to: DType::F64 })), &[Some(x)])[0];
        let shape = b.constant_i64("shape", vec![3, 2]);
        let s = b.node("s", Op::Movement(MovementOp::Reshape { allowzero: false }), &[Some(c), Some(shape)])[0];
        let d = b.node("d", Op::Elementwise(ElementwiseOp::Dropout(Dropout { mask: Some(DType::Bool) })), &[Some(x)]);
        b.output(s);
        b.output(d[1]);
        let i = b.unary("i", UnaryKind::Identity, x);
        b.output(i);
        let mut g = b.finish();
        let r = run_pass(&RemoveIdentity, &mut g);
        assert_eq!(op_names(&g), ["Cast", "Reshape", "Dropout", "Identity"]);
        assert_eq!(r.to_string(), "remove_identity: no change; kept 1 that copy a graph input or a constant to a graph output");
    }
}
