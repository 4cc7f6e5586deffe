//! `eliminate_dead_code`: removes nodes none of whose outputs is read by
//! another node or is a graph output; constants nothing reads go with the
//! compaction.

use super::{edit, Pass, PassCx, PassReport};
use crate::CompileError;
use kann_ir::Graph;

pub struct EliminateDeadCode;

impl Pass for EliminateDeadCode {
    fn name(&self) -> &'static str {
        "eliminate_dead_code"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let mut report = PassReport::new(self.name());
        let constants_before = g.values.iter().filter(|v| v.constant.is_some()).count();
        edit(g, |ed| {
            // Reverse order: removing a node frees its inputs' producers,
            // which come earlier, so one sweep removes whole dead branches.
            for id in ed.live_nodes().into_iter().rev() {
                if !ed.node(id).outputs.iter().any(|&o| ed.is_used(o)) {
                    ed.remove_node(id)?;
                    report.add("eliminated", "dead nodes", 1);
                }
            }
            Ok(())
        })?;
        let constants_after = g.values.iter().filter(|v| v.constant.is_some()).count();
        report.add("dropped", "unused constants", constants_before.saturating_sub(constants_after));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::*;

    #[test]
    fn removes_a_dead_branch_and_keeps_the_live_one() {
        let mut b = builder();
        let x = b.input("x", &[1, 4]);
        let dead1 = b.unary("dead_relu", UnaryKind::Relu, x);
        let _dead2 = b.unary("dead_exp", UnaryKind::Exp, dead1);
        let _unused = b.constant("unused_w", &[4], vec![1.0; 4]);
        let w = b.constant("w", &[4], vec![2.0; 4]);
        let live = b.binary("live_add", BinaryKind::Add, x, w);
        b.output(live);
        let mut g = b.finish();
        let before = g.clone();
        assert_eq!(op_names(&g), ["Relu", "Exp", "Add"]);
        let r = run_pass(&EliminateDeadCode, &mut g);
        assert_eq!(op_names(&g), ["Add"]);
        assert_eq!(r.get("eliminated", "dead nodes"), 2);
        assert_eq!(r.get("dropped", "unused constants"), 1);
        assert_eq!(r.to_string(), "eliminate_dead_code: eliminated 2 dead nodes, dropped 1 unused constants");
        assert_eq!(g.values.len(), 3, "x, w and the output remain");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn keeps_a_node_whose_output_is_a_graph_output_even_if_unread() {
        let mut b = builder();
        let x = b.input("x", &[3]);
        let a = b.unary("a", UnaryKind::Relu, x);
        let c = b.unary("c", UnaryKind::Neg, a);
        b.output(a);
        b.output(c);
        let mut g = b.finish();
        let r = run_pass(&EliminateDeadCode, &mut g);
        assert_eq!(r.total(), 0);
        assert_eq!(r.to_string(), "eliminate_dead_code: no change");
        assert_eq!(op_names(&g), ["Relu", "Neg"]);
    }
}
