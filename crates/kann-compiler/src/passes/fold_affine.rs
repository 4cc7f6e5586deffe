//! `fold_affine`: a `Mul`, `Add`, `Sub` or `Div` of a Conv's (or Gemm's)
//! output by a constant that is per output channel (shape `[C, 1, 1]`,
//! `[1, C, 1, 1]`, a scalar… anything that broadcasts along the channel axis
//! only, without growing the output) folds into that Conv's weights and bias,
//! when nothing else reads the Conv's output. `x * c` scales weights and
//! bias, `x + c` / `x - c` / `c - x` shift (and negate) them, `x / c` scales
//! by `1 / c` (when no entry of `c` is 0). Chains (Conv → Mul → Add) fold
//! completely, since the Conv's output takes over the folded node's readers.

use super::fold_batch_norm::{channel_producer, scale_and_shift};
use super::{edit, Pass, PassCx, PassReport};
use crate::{CompileError, Editor};
use kann_ir::ops::elementwise::{Binary, BinaryKind, ElementwiseOp};
use kann_ir::{Graph, NodeId, Op, ValueId};

pub struct FoldAffine;

/// One value per channel of `c` broadcast against an output of `dims` along
/// axis 1 only, or `None` when `c` varies along another axis or would grow
/// the output.
fn per_channel(c: &kann_tensor::Tensor, dims: &[usize]) -> Option<Vec<f64>> {
    let cd = c.dims();
    if cd.len() > dims.len() || dims.len() < 2 {
        return None;
    }
    let offset = dims.len() - cd.len();
    let channels = dims[1];
    for (i, &d) in cd.iter().enumerate() {
        let axis = offset + i;
        if d != 1 && !(axis == 1 && d == channels) {
            return None;
        }
    }
    let v = c.to_f64_vec();
    Some(if v.len() == 1 { vec![v[0]; channels] } else { v })
}

/// The foldable operand pair of a binary node: (producer to rewrite, its
/// output, per-channel constant, whether the Conv output is the left operand).
fn candidate(ed: &Editor, id: NodeId) -> Option<(BinaryKind, NodeId, ValueId, Vec<f64>, bool)> {
    let n = ed.node(id);
    let Op::Elementwise(ElementwiseOp::Binary(Binary { kind })) = &n.op else { return None };
    if !matches!(kind, BinaryKind::Mul | BinaryKind::Add | BinaryKind::Sub | BinaryKind::Div) {
        return None;
    }
    let (a, b) = (n.inputs.first().copied().flatten()?, n.inputs.get(1).copied().flatten()?);
    let y = n.outputs[0];
    for (x, c, left) in [(a, b, true), (b, a, false)] {
        let Some(t) = ed.constant(c) else { continue };
        if t.dtype() != ed.value(x).info.dtype || ed.value(y).info != ed.value(x).info {
            continue;
        }
        let (Some(p), Some(v)) = (channel_producer(ed, x), per_channel(t, ed.value(x).info.shape.dims())) else { continue };
        if *kind == BinaryKind::Div && (!left || v.contains(&0.0)) {
            continue;
        }
        return Some((*kind, p, x, v, left));
    }
    None
}

impl Pass for FoldAffine {
    fn name(&self) -> &'static str {
        "fold_affine"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let mut report = PassReport::new(self.name());
        edit(g, |ed| {
            for id in ed.live_nodes() {
                let Some((kind, target, x, c, left)) = candidate(ed, id) else { continue };
                let y = ed.node(id).outputs[0];
                if !ed.can_replace(y, x) {
                    continue;
                }
                let ones = vec![1.0; c.len()];
                let zeros = vec![0.0; c.len()];
                let (scale, shift): (Vec<f64>, Vec<f64>) = match (kind, left) {
                    (BinaryKind::Mul, _) => (c, zeros),
                    (BinaryKind::Add, _) => (ones, c),
                    (BinaryKind::Sub, true) => (ones, c.iter().map(|v| -v).collect()),
                    (BinaryKind::Sub, false) => (vec![-1.0; c.len()], c),
                    (BinaryKind::Div, _) => (c.iter().map(|v| 1.0 / v).collect(), zeros),
                    _ => unreachable!("filtered by candidate"),
                };
                let what = format!("{} into {}", ed.node(id).op.name(), ed.node(target).op.name());
                scale_and_shift(ed, target, &scale, &shift)?;
                ed.replace_uses(y, x)?;
                ed.remove_node(id)?;
                report.add("folded", &what, 1);
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

    #[test]
    fn folds_mul_add_sub_div_chains_into_the_conv() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c = b.conv("c", x, 2, 3, 3, false);
        let s = b.random("s", &[3, 1, 1]);
        let m = b.binary("m", BinaryKind::Mul, s, c);
        let t = b.random("t", &[1, 3, 1, 1]);
        let a = b.binary("a", BinaryKind::Add, m, t);
        let u = b.constant("u", &[], vec![0.25]);
        let d = b.binary("d", BinaryKind::Div, a, u);
        let v = b.random("v", &[3, 1, 1]);
        let e = b.binary("e", BinaryKind::Sub, v, d);
        let r = b.unary("r", UnaryKind::Relu, e);
        b.output(r);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FoldAffine, &mut g);
        assert_eq!(op_names(&g), ["Conv", "Relu"]);
        assert_eq!(rep.to_string(), "fold_affine: folded 1 Mul into Conv, folded 1 Add into Conv, folded 1 Div into Conv, folded 1 Sub into Conv");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn folds_a_pre_activation_mul_add_into_the_batch_norm() {
        // DenseNet's Caffe-style block: Concat → BN → Mul → Add → Relu → Conv.
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let y = b.input("y", &[1, 1, 4, 4]);
        let cat = b.node("cat", Op::Movement(kann_ir::ops::movement::MovementOp::Concat { axis: 1 }), &[Some(x), Some(y)])[0];
        let bn = b.batch_norm("bn", cat, 3);
        let s = b.random("s", &[3, 1, 1]);
        let m = b.binary("m", BinaryKind::Mul, bn, s);
        let t = b.random("t", &[1, 3, 1, 1]);
        let a = b.binary("a", BinaryKind::Sub, t, m);
        let r = b.unary("r", UnaryKind::Relu, a);
        let c = b.conv("c", r, 3, 2, 1, true);
        b.output(c);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FoldAffine, &mut g);
        assert_eq!(op_names(&g), ["Concat", "BatchNormalization", "Relu", "Conv"]);
        assert_eq!(rep.to_string(), "fold_affine: folded 1 Mul into BatchNormalization, folded 1 Sub into BatchNormalization");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn leaves_constants_that_vary_along_other_axes_or_grow_the_output() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c = b.conv("c", x, 2, 3, 1, true);
        let s = b.random("s", &[3, 4, 1]); // varies along H
        let m = b.binary("m", BinaryKind::Mul, c, s);
        let c2 = b.conv("c2", m, 3, 3, 1, true);
        let t = b.random("t", &[2, 1, 1, 1]); // grows the batch axis
        let a = b.binary("a", BinaryKind::Add, c2, t);
        let c3 = b.conv("c3", a, 3, 3, 1, true);
        let z = b.constant("z", &[3, 1, 1], vec![1.0, 0.0, 2.0]);
        let d = b.binary("d", BinaryKind::Div, c3, z); // divides by zero
        b.output(d);
        let mut g = b.finish();
        let rep = run_pass(&FoldAffine, &mut g);
        assert_eq!(rep.total(), 0);
        assert_eq!(op_names(&g), ["Conv", "Mul", "Conv", "Add", "Conv", "Div"]);
    }

    #[test]
    fn folds_a_row_add_and_a_column_scale_into_a_gemm() {
        use kann_ir::ops::nn::{Gemm, NnOp};
        let mut b = builder();
        let x = b.input("x", &[2, 3]);
        let w = b.random("w", &[3, 4]);
        let y = b.node("gemm", Op::Nn(NnOp::Gemm(Gemm { alpha: 1.5, beta: 1.0, trans_a: false, trans_b: false })), &[Some(x), Some(w), None])[0];
        let s = b.random("s", &[4]);
        let m = b.binary("m", BinaryKind::Mul, y, s);
        let t = b.random("t", &[1, 4]);
        let a = b.binary("a", BinaryKind::Add, t, m);
        let rows = b.random("rows", &[2, 1]);
        let r = b.binary("r", BinaryKind::Add, a, rows); // per row: not a channel
        b.output(r);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FoldAffine, &mut g);
        assert_eq!(op_names(&g), ["Gemm", "Add"]);
        assert_eq!(rep.to_string(), "fold_affine: folded 1 Mul into Gemm, folded 1 Add into Gemm");
        assert_same_outputs(&before, &g);
    }
}
