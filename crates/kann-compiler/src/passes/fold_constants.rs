//! `fold_constants`: evaluates nodes whose inputs are all constants (omitted
//! optional inputs allowed) with [`PassCx::const_eval`] and turns their
//! outputs into constants. The importer already folds small results (shape
//! arithmetic); this pass folds the big ones it leaves, such as weight
//! transforms, up to [`PassCx::fold_limit`] elements per node.

use super::{edit, Pass, PassCx, PassReport};
use crate::CompileError;
use kann_ir::{Graph, TensorInfo};
use kann_tensor::Tensor;

/// Default [`PassCx::fold_limit`]: 64 Mi elements (256 MiB of f32).
pub const DEFAULT_FOLD_LIMIT: usize = 64 << 20;

pub struct FoldConstants;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold_constants"
    }

    fn run(&self, g: &mut Graph, cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let mut report = PassReport::new(self.name());
        let (limit, eval) = (cx.fold_limit, cx.const_eval);
        let mut too_big = 0usize;
        let mut no_eval = 0usize;
        edit(g, |ed| {
            for id in ed.live_nodes() {
                let node = ed.node(id);
                if !node.op.is_deterministic() || !node.inputs.iter().flatten().all(|&v| ed.constant(v).is_some()) {
                    continue;
                }
                let infos: Vec<TensorInfo> = node.outputs.iter().map(|&o| ed.value(o).info.clone()).collect();
                if infos.iter().map(|i| i.numel()).sum::<usize>() > limit {
                    too_big += 1;
                    continue;
                }
                let Some(eval) = eval else {
                    no_eval += 1;
                    continue;
                };
                let args: Vec<Option<&Tensor>> = node.inputs.iter().map(|i| i.and_then(|v| ed.constant(v).map(|t| &**t))).collect();
                let out = eval.eval(&node.op, &args, &infos).map_err(|reason| CompileError::Fold { node: ed.locate(id), reason })?;
                ed.fold_to_constants(id, out)?;
                report.add("folded", "constant nodes", 1);
            }
            Ok(())
        })?;
        if too_big > 0 {
            report.notes.push(format!("kept {too_big} constant nodes whose results exceed {} elements", limit));
        }
        if no_eval > 0 {
            report.notes.push(format!("kept {no_eval} constant nodes: no constant evaluator was given"));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::*;
    use kann_ir::ops::movement::MovementOp;
    use kann_ir::Op;

    /// x + relu(transpose(w) * 2): the transpose, the Mul and the Relu fold.
    fn graph() -> Graph {
        let mut b = builder();
        let x = b.input("x", &[3, 2]);
        let w = b.random("w", &[2, 3]);
        let t = b.node("t", Op::Movement(MovementOp::Transpose { perm: None }), &[Some(w)])[0];
        let two = b.constant("two", &[], vec![2.0]);
        let m = b.binary("m", BinaryKind::Mul, t, two);
        let r = b.unary("r", UnaryKind::Relu, m);
        let y = b.binary("y", BinaryKind::Add, x, r);
        b.output(y);
        b.finish()
    }

    #[test]
    fn folds_every_node_on_constants() {
        let mut g = graph();
        let before = g.clone();
        assert_eq!(op_names(&g), ["Transpose", "Mul", "Relu", "Add"]);
        let r = run_pass(&FoldConstants, &mut g);
        assert_eq!(op_names(&g), ["Add"]);
        assert_eq!(r.to_string(), "fold_constants: folded 3 constant nodes");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn respects_the_size_limit_and_says_so() {
        let mut g = graph();
        let mut cx = PassCx::new(Some(&kann_reference::Reference));
        cx.fold_limit = 5;
        let r = FoldConstants.run(&mut g, &mut cx).unwrap();
        assert_eq!(op_names(&g), ["Transpose", "Mul", "Relu", "Add"]);
        assert_eq!(r.to_string(), "fold_constants: no change; kept 1 constant nodes whose results exceed 5 elements");
    }

    #[test]
    fn without_an_evaluator_it_folds_nothing_and_says_so() {
        let mut g = graph();
        let r = FoldConstants.run(&mut g, &mut PassCx::new(None)).unwrap();
        assert_eq!(r.total(), 0);
        assert!(r.to_string().contains("no constant evaluator"), "{r}");
    }
}
