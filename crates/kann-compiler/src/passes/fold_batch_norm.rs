//! `fold_batch_norm`: an inference `BatchNormalization` with constant
//! parameters whose input is produced by a `Conv` (or a `Gemm`, whose
//! columns are the channels) with constant weights, and read by nothing else,
//! folds into that producer: with `s = scale / sqrt(var + epsilon)`, the
//! weights of output channel `c` are multiplied by `s[c]` and the bias becomes
//! `(bias[c] - mean[c]) * s[c] + B[c]` (created when the Conv had none).
//!
//! The per-channel rewrite of a Conv or Gemm ([`channel_producer`],
//! [`scale_and_shift`]) is shared with `fold_affine`.

use super::{edit, Pass, PassCx, PassReport};
use crate::{CompileError, Editor};
use kann_ir::ops::nn::{Gemm, NnOp};
use kann_ir::{Graph, NodeId, Op, ValueId};
use kann_tensor::{Shape, Tensor};

pub struct FoldBatchNorm;

/// The Conv, Gemm or BatchNormalization producing `x` when its
/// per-output-channel parameters can absorb a per-channel affine map of `x`:
/// weights (and bias, if any) or the BN's four parameters constant, `x` read
/// once and not a graph output. A Gemm qualifies when its C input is absent
/// or one row (`[]`, `[1]`, `[N]`, `[1, N]`). (A BatchNormalization not folded
/// into a Conv, as in pre-activation networks — DenseNet's Concat → BN →
/// Mul → Add → Relu — still absorbs the Mul and Add that follow it.)
pub(super) fn channel_producer(ed: &Editor, x: ValueId) -> Option<NodeId> {
    let p = ed.producer(x)?;
    if ed.users(x).len() != 1 || ed.is_graph_output(x) {
        return None;
    }
    let n = ed.node(p);
    let is_const = |i: usize| n.inputs.get(i).copied().flatten().is_some_and(|v| ed.constant(v).is_some());
    let absent_or_const = |i: usize| n.inputs.get(i).copied().flatten().is_none_or(|v| ed.constant(v).is_some());
    let float = ed.value(x).info.dtype.is_float();
    match &n.op {
        Op::Nn(NnOp::Conv(_)) => (float && is_const(1) && absent_or_const(2)).then_some(p),
        Op::Nn(NnOp::BatchNorm(_)) => (float && n.outputs.len() == 1 && (1..5).all(is_const)).then_some(p),
        Op::Nn(NnOp::Gemm(_)) => {
            let row = n.inputs.get(2).copied().flatten().is_none_or(|c| {
                let d = ed.value(c).info.shape.dims();
                d.len() < 2 || d[0] == 1
            });
            (float && is_const(1) && absent_or_const(2) && row).then_some(p)
        }
        _ => None,
    }
}

/// Rewrites the Conv or Gemm `node` (accepted by [`channel_producer`]) so
/// that output channel `c` becomes `out[c] * scale[c] + shift[c]`. `scale`
/// and `shift` hold one value per output channel.
pub(super) fn scale_and_shift(ed: &mut Editor, node: NodeId, scale: &[f64], shift: &[f64]) -> Result<(), CompileError> {
    let n = ed.node(node).clone();
    let name = ed.value(n.outputs[0]).name.clone();
    let out_dims = ed.value(n.outputs[0]).info.shape.to_vec();
    let channels = out_dims[1];
    let dtype = ed.value(n.outputs[0]).info.dtype;
    let err = |reason: String| CompileError::Edit { node: ed.locate(node), reason };
    if scale.len() != channels || shift.len() != channels {
        return Err(err(format!("{} scales and {} shifts for {channels} channels", scale.len(), shift.len())));
    }
    let w_id = n.inputs[1].expect("checked by channel_producer");
    let w = ed.constant(w_id).expect("checked by channel_producer").clone();
    let mut wv = w.to_f64_vec();
    let old_bias: Option<Vec<f64>> = n.inputs.get(2).copied().flatten().map(|b| ed.constant(b).expect("checked").to_f64_vec());
    match &n.op {
        Op::Nn(NnOp::Conv(_)) => {
            // W is [M, C/group, k...]: channel m owns one contiguous block.
            let block = wv.len() / channels;
            for (m, chunk) in wv.chunks_mut(block.max(1)).enumerate() {
                chunk.iter_mut().for_each(|v| *v *= scale[m]);
            }
            let b: Vec<f64> = (0..channels).map(|m| old_bias.as_ref().map_or(0.0, |b| b[m]) * scale[m] + shift[m]).collect();
            let w_new = Tensor::from_f64(dtype, w.shape().clone(), &wv).map_err(|e| err(e.to_string()))?;
            let b_new = Tensor::from_f64(dtype, Shape::from([channels]), &b).map_err(|e| err(e.to_string()))?;
            let w_new = ed.add_constant(&format!("{name}:w_folded"), w_new);
            let b_new = ed.add_constant(&format!("{name}:b_folded"), b_new);
            ed.set_input(node, 1, Some(w_new));
            ed.set_input(node, 2, Some(b_new));
        }
        Op::Nn(NnOp::Gemm(gemm)) => {
            // B is [N, K] with transB, [K, N] without: scale row or column n.
            let dims = w.shape().to_vec();
            for (i, v) in wv.iter_mut().enumerate() {
                let col = if gemm.trans_b { i / dims[1] } else { i % dims[1] };
                *v *= scale[col];
            }
            // C broadcasts as one row: value for column n.
            let c: Vec<f64> = (0..channels)
                .map(|col| {
                    let c = old_bias.as_ref().map_or(0.0, |c| if c.len() == 1 { c[0] } else { c[col] });
                    gemm.beta * c * scale[col] + shift[col]
                })
                .collect();
            let w_new = Tensor::from_f64(dtype, w.shape().clone(), &wv).map_err(|e| err(e.to_string()))?;
            let c_new = Tensor::from_f64(dtype, Shape::from([channels]), &c).map_err(|e| err(e.to_string()))?;
            let w_new = ed.add_constant(&format!("{name}:b_folded"), w_new);
            let c_new = ed.add_constant(&format!("{name}:c_folded"), c_new);
            ed.set_input(node, 1, Some(w_new));
            ed.set_input(node, 2, Some(c_new));
            ed.set_op(node, Op::Nn(NnOp::Gemm(Gemm { beta: 1.0, ..gemm.clone() })));
        }
        Op::Nn(NnOp::BatchNorm(_)) => {
            // y = k·(x − mean) + B with k ∝ scale: s·y + t scales `scale` and
            // maps B to s·B + t; mean and var stay.
            let b_id = n.inputs[2].expect("checked by channel_producer");
            let bias = ed.constant(b_id).expect("checked by channel_producer").to_f64_vec();
            if wv.len() != channels || bias.len() != channels {
                return Err(err(format!("BatchNormalization parameters of {} and {} values for {channels} channels", wv.len(), bias.len())));
            }
            wv.iter_mut().zip(scale).for_each(|(v, s)| *v *= s);
            let b: Vec<f64> = (0..channels).map(|c| bias[c] * scale[c] + shift[c]).collect();
            let param = |v: &[f64]| Tensor::from_f64(dtype, Shape::from([channels]), v).map_err(|e| err(e.to_string()));
            let (s_new, b_new) = (param(&wv)?, param(&b)?);
            let s_new = ed.add_constant(&format!("{name}:scale_folded"), s_new);
            let b_new = ed.add_constant(&format!("{name}:b_folded"), b_new);
            ed.set_input(node, 1, Some(s_new));
            ed.set_input(node, 2, Some(b_new));
        }
        _ => return Err(err("only Conv, Gemm and BatchNormalization take per-channel folds".into())),
    }
    ed.check_node(node)
}

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        "fold_batch_norm"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let mut report = PassReport::new(self.name());
        let mut left = 0;
        edit(g, |ed| {
            for id in ed.live_nodes() {
                let n = ed.node(id);
                let Op::Nn(NnOp::BatchNorm(bn)) = &n.op else { continue };
                let params: Option<Vec<Vec<f64>>> = (1..5).map(|i| n.inputs.get(i).copied().flatten().and_then(|v| ed.constant(v)).map(|t| t.to_f64_vec())).collect();
                let (Some(x), Some(params)) = (n.inputs[0], params) else {
                    left += 1;
                    continue;
                };
                let Some(target) = channel_producer(ed, x) else {
                    left += 1;
                    continue;
                };
                let y = n.outputs[0];
                let (gamma, beta, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
                let scale: Vec<f64> = gamma.iter().zip(var).map(|(g, v)| g / (v + bn.epsilon).sqrt()).collect();
                let shift: Vec<f64> = beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
                if !ed.can_replace(y, x) {
                    left += 1;
                    continue;
                }
                let what = format!("BatchNormalization into {}", ed.node(target).op.name());
                scale_and_shift(ed, target, &scale, &shift)?;
                ed.replace_uses(y, x)?;
                ed.remove_node(id)?;
                report.add("folded", &what, 1);
            }
            Ok(())
        })?;
        if left > 0 {
            report.notes.push(format!("left {left} BatchNormalization (producer not a Conv/Gemm with constant weights read only by it)"));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::*;

    #[test]
    fn folds_into_convs_with_and_without_bias() {
        let mut b = builder();
        let x = b.input("x", &[1, 3, 5, 5]);
        let c1 = b.conv("c1", x, 3, 4, 3, true);
        let n1 = b.batch_norm("bn1", c1, 4);
        let r = b.unary("r", UnaryKind::Relu, n1);
        let c2 = b.conv("c2", r, 4, 2, 1, false);
        let n2 = b.batch_norm("bn2", c2, 2);
        b.output(n2);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FoldBatchNorm, &mut g);
        assert_eq!(op_names(&g), ["Conv", "Relu", "Conv"]);
        assert_eq!(rep.to_string(), "fold_batch_norm: folded 2 BatchNormalization into Conv");
        assert!(g.nodes[2].inputs[2].is_some(), "the bias-less Conv got a bias");
        assert_eq!(g.value(g.outputs[0]).name, "bn2");
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn leaves_a_batch_norm_whose_conv_output_is_shared() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c = b.conv("c", x, 2, 2, 1, true);
        let n = b.batch_norm("bn", c, 2);
        let r = b.unary("r", UnaryKind::Relu, c);
        let y = b.binary("y", BinaryKind::Add, n, r);
        b.output(y);
        let mut g = b.finish();
        let rep = run_pass(&FoldBatchNorm, &mut g);
        assert_eq!(op_names(&g), ["Conv", "BatchNormalization", "Relu", "Add"]);
        assert_eq!(rep.total(), 0);
        assert!(rep.notes[0].contains("left 1 BatchNormalization"));
    }

    #[test]
    fn folds_into_a_gemm_with_trans_b() {
        for trans_b in [true, false] {
            let mut b = builder();
            let x = b.input("x", &[2, 3]);
            let w = b.random("w", if trans_b { &[4, 3] } else { &[3, 4] });
            let cv = b.random("c", &[4]);
            let gemm = Op::Nn(NnOp::Gemm(Gemm { alpha: 0.5, beta: 2.0, trans_a: false, trans_b }));
            let y = b.node("gemm", gemm, &[Some(x), Some(w), Some(cv)])[0];
            let n = b.batch_norm("bn", y, 4);
            b.output(n);
            let mut g = b.finish();
            let before = g.clone();
            let rep = run_pass(&FoldBatchNorm, &mut g);
            assert_eq!(op_names(&g), ["Gemm"]);
            assert_eq!(rep.to_string(), "fold_batch_norm: folded 1 BatchNormalization into Gemm");
            assert_same_outputs(&before, &g);
        }
    }
}
