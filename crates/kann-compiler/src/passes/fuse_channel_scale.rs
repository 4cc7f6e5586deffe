//! `fuse_channel_scale`: `Mul(x, s)` where `x` is an f32 `[N, C, H, W]`
//! activation (more than one position), `s` one value per image and
//! channel (`[N, C, 1, 1]`: a squeeze-excitation gate), and the product is
//! read only by one pointwise Conv (1×1, stride 1, unpadded, one group,
//! constant weights) as its X, becomes that Conv's input scale: an
//! `Op::Fused` with `input_scale` reading `x` and, last, `s`. The packed
//! GEMM scales B's rows as it builds them, so the product is never written
//! (EfficientNet's sixteen SE blocks). The Conv keeps its place: `x` and `s`
//! are defined before the Mul, which comes before it.
//!
//! After `fuse_residual_add` and `fuse_activation`, so that the Conv it
//! finds already carries its epilogue (the residual fusion does not take a
//! scaled Conv).

use super::{edit, Pass, PassCx, PassReport};
use crate::{CompileError, Editor};
use kann_ir::ops::elementwise::{BinaryKind, ElementwiseOp};
use kann_ir::ops::fused::Fused;
use kann_ir::ops::nn::NnOp;
use kann_ir::{Graph, NodeId, Op, ValueId};
use kann_tensor::DType;

pub struct FuseChannelScale;

/// `(x, s)` of a Mul node when one operand is an f32 `[N, C, H, W]` map of
/// more than one position and the other one value per (image, channel).
fn scaled_map(ed: &Editor, mul: NodeId) -> Option<(ValueId, ValueId)> {
    let n = ed.node(mul);
    if !matches!(&n.op, Op::Elementwise(ElementwiseOp::Binary(b)) if b.kind == BinaryKind::Mul) || n.inputs.len() != 2 {
        return None;
    }
    let (a, b) = (n.inputs[0]?, n.inputs[1]?);
    let out = &ed.value(n.outputs[0]).info;
    [(a, b), (b, a)].into_iter().find(|&(x, s)| {
        let (xi, si) = (&ed.value(x).info, &ed.value(s).info);
        let (xd, sd) = (xi.shape.dims(), si.shape.dims());
        xi == out && xi.dtype == DType::F32 && si.dtype == DType::F32 && xd.len() == 4 && xd[2] * xd[3] > 1 && sd == [xd[0], xd[1], 1, 1]
    })
}

/// The Conv reading `v` (the product) as its X and nothing else of it,
/// when it is pointwise with constant weights and not yet scaled.
fn pointwise_reader(ed: &Editor, v: ValueId) -> Option<NodeId> {
    let [conv] = ed.users(v) else { return None };
    if ed.is_graph_output(v) {
        return None;
    }
    let n = ed.node(*conv);
    let attrs = match &n.op {
        Op::Nn(NnOp::Conv(c)) => &c.attrs,
        Op::Fused(f) if !f.input_scale => match f.base.as_ref() {
            Op::Nn(NnOp::Conv(c)) => &c.attrs,
            _ => return None,
        },
        _ => return None,
    };
    if n.inputs.first().copied().flatten() != Some(v) || n.inputs.iter().skip(1).any(|&i| i == Some(v)) {
        return None;
    }
    let w = n.inputs.get(1).copied().flatten()?;
    ed.constant(w)?;
    let (xd, wd) = (ed.value(v).info.shape.dims(), ed.value(w).info.shape.dims());
    let plan = attrs.plan(xd, wd).ok()?;
    is_pointwise(attrs.group, &plan, xd).then_some(*conv)
}

/// Whether a Conv of `group` over X `xd` with window `plan` is pointwise:
/// 2-D, one group, 1×1, stride 1, unpadded (what an input scale needs; the
/// lowering asks the same).
pub(crate) fn is_pointwise(group: usize, plan: &kann_ir::ops::nn::WindowPlan, xd: &[usize]) -> bool {
    xd.len() == 4 && group == 1 && plan.kernel == [1, 1] && plan.strides == [1, 1] && plan.pad_begin.iter().all(|&p| p == 0) && plan.out == xd[2..]
}

/// Makes `conv` read `x` scaled by `s` and removes the Mul.
fn fuse(ed: &mut Editor, mul: NodeId, conv: NodeId, x: ValueId, s: ValueId) -> Result<(), CompileError> {
    let n = ed.node(conv);
    let fused = match &n.op {
        Op::Fused(f) => Fused { input_scale: true, ..f.clone() },
        op => Fused { base: Box::new(op.clone()), base_inputs: n.inputs.len(), residual: false, activation: None, input_scale: true },
    };
    // The scale follows the base's inputs and the residual.
    let slot = fused.base_inputs + usize::from(fused.residual);
    ed.truncate_inputs(conv, slot);
    ed.set_input(conv, 0, Some(x));
    ed.set_input(conv, slot, Some(s));
    ed.set_op(conv, Op::Fused(fused));
    ed.check_node(conv)?;
    ed.remove_node(mul)
}

impl Pass for FuseChannelScale {
    fn name(&self) -> &'static str {
        "fuse_channel_scale"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let mut report = PassReport::new(self.name());
        edit(g, |ed| {
            for mul in ed.live_nodes() {
                let Some((x, s)) = scaled_map(ed, mul) else { continue };
                let Some(conv) = pointwise_reader(ed, ed.node(mul).outputs[0]) else { continue };
                fuse(ed, mul, conv, x, s)?;
                report.add("fused", "per-channel Mul into the pointwise Conv reading it", 1);
            }
            Ok(())
        })?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use kann_ir::ops::nn::pool::{GlobalPool, PoolKind};

    /// x → GlobalAveragePool → 1×1 conv → Sigmoid = s; Mul(x, s) (operands
    /// swapped or not) → a `reader_k`×`reader_k` conv.
    fn se_block(order_swapped: bool, reader_k: usize) -> Graph {
        let mut b = builder();
        let x = b.input("x", &[2, 6, 5, 5]);
        let op = Op::Nn(NnOp::GlobalPool(GlobalPool { kind: PoolKind::Average { count_include_pad: false } }));
        let pooled = b.node("gap", op, &[Some(x)])[0];
        let squeeze = b.conv("squeeze", pooled, 6, 6, 1, true);
        let s = b.unary("gate", UnaryKind::Sigmoid, squeeze);
        let m = if order_swapped { b.binary("mul", BinaryKind::Mul, s, x) } else { b.binary("mul", BinaryKind::Mul, x, s) };
        let y = b.conv("project", m, 6, 4, reader_k, true);
        b.output(y);
        b.finish()
    }

    #[test]
    fn folds_the_se_product_into_the_pointwise_conv() {
        for swapped in [false, true] {
            let before = se_block(swapped, 1);
            let mut after = before.clone();
            let r = run_pass(&FuseChannelScale, &mut after);
            assert_eq!(r.total(), 1, "{r}");
            assert_eq!(op_names(&after), ["GlobalAveragePool", "Conv", "Sigmoid", "Fused"]);
            assert_same_outputs(&before, &after);
        }
    }

    #[test]
    fn leaves_other_readers_and_shapes_alone() {
        // A 3×3 reader, and a product read twice.
        let mut g = se_block(false, 3);
        assert_eq!(run_pass(&FuseChannelScale, &mut g).total(), 0);
        let mut b = builder();
        let x = b.input("x", &[1, 4, 3, 3]);
        let s = b.input("s", &[1, 4, 1, 1]);
        let m = b.binary("mul", BinaryKind::Mul, x, s);
        let y = b.conv("project", m, 4, 2, 1, false);
        b.output(y);
        b.output(m);
        let mut g = b.finish();
        assert_eq!(run_pass(&FuseChannelScale, &mut g).total(), 0);
        // A full-map product (no per-channel operand).
        let mut b = builder();
        let x = b.input("x", &[1, 4, 3, 3]);
        let s = b.input("s", &[1, 4, 3, 3]);
        let m = b.binary("mul", BinaryKind::Mul, x, s);
        let y = b.conv("project", m, 4, 2, 1, false);
        b.output(y);
        let mut g = b.finish();
        assert_eq!(run_pass(&FuseChannelScale, &mut g).total(), 0);
    }
}
