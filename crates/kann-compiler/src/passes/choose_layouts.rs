//! `choose_layouts`: records the data layout of the convolutions at the
//! graph level, where every value is NCHW (the ONNX layout) and no
//! transposes are inserted: the pass counts the convolutions and says so
//! (`layout: NCHW for 57 convolutions, 0 transposes`). The channel-blocked
//! (NCHW8c) chains of 1×1 and depthwise convolutions are chosen at lowering,
//! where the target's kernels are known (`lower/nn/blocked.rs`); the
//! generation log counts their kernels (`f32_conv1x1_nchw8c_avx2`…) and the
//! reorders at their edges (`f32_reorder_to_nchw8c_avx2`…).

use super::{Pass, PassCx, PassReport};
use crate::CompileError;
use kann_ir::ops::nn::NnOp;
use kann_ir::{Graph, Op};

pub struct ChooseLayouts;

/// Whether `op` is a convolution (alone or as a fused base).
fn is_conv(op: &Op) -> bool {
    match op {
        Op::Nn(NnOp::Conv(_)) => true,
        Op::Fused(f) => is_conv(&f.base),
        _ => false,
    }
}

impl Pass for ChooseLayouts {
    fn name(&self) -> &'static str {
        "choose_layouts"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let convs = g.nodes.iter().filter(|n| is_conv(&n.op)).count();
        let mut report = PassReport::new(self.name());
        report.notes.push(format!("layout: NCHW for {convs} convolutions, 0 transposes"));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::*;
    use crate::passes::FuseActivation;

    #[test]
    fn counts_plain_and_fused_convolutions_and_changes_nothing() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c1 = b.conv("c1", x, 2, 2, 3, true);
        let r = b.unary("r", UnaryKind::Relu, c1);
        let c2 = b.conv("c2", r, 2, 2, 1, true);
        b.output(c2);
        let mut g = b.finish();
        run_pass(&FuseActivation, &mut g);
        let before = g.clone();
        let rep = run_pass(&ChooseLayouts, &mut g);
        assert_eq!(rep.to_string(), "choose_layouts: no change; layout: NCHW for 2 convolutions, 0 transposes");
        assert_eq!(op_names(&g), op_names(&before));
        assert_same_outputs(&before, &g);
    }
}
