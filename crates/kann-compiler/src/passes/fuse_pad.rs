//! `fuse_pad`: a constant-mode `Pad` with constant, non-negative pads on the
//! spatial axes only (batch and channel axes unpadded), read only by one
//! window op as its data input, folds into that op's `pads`:
//!
//! - Conv: the pad value must be 0 (what Conv's own padding reads);
//! - AveragePool with `count_include_pad = 1`: pad value 0 (padding counts
//!   in the divisor either way);
//! - MaxPool without the Indices output: pad value `-inf` (never the max).
//!
//! The window op must use explicit pads (`auto_pad` NOTSET) or VALID, and
//! pools must not use `ceil_mode` (its clipping of the last window depends
//! on where the padding comes from).

use super::{edit, Pass, PassCx, PassReport};
use crate::{CompileError, Editor};
use kann_ir::ops::movement::{pad_plan, MovementOp, PadMode};
use kann_ir::ops::nn::{AutoPad, NnOp, PoolKind, Window};
use kann_ir::{Graph, NodeId, Op, ValueId};

pub struct FusePad;

/// The Pad's `(begin, end)` per spatial axis, when it pads only those, with
/// constants, by non-negative amounts; and its fill value.
fn spatial_pads(ed: &Editor, pad: NodeId) -> Option<(Vec<usize>, Vec<usize>, f64)> {
    let n = ed.node(pad);
    let x = n.inputs.first().copied().flatten()?;
    let rank = ed.value(x).info.rank();
    let ints = |slot: usize| -> Option<Option<Vec<i64>>> {
        match n.inputs.get(slot).copied().flatten() {
            None => Some(None),
            Some(v) => ed.constant(v).map(|t| Some(t.to_i64_vec())),
        }
    };
    let pads = ints(1)??;
    let axes = ints(3)?;
    let (begin, end) = pad_plan(rank, &pads, axes.as_deref()).ok()?;
    if rank < 3 || begin[..2].iter().chain(&end[..2]).any(|&p| p != 0) || begin.iter().chain(&end).any(|&p| p < 0) {
        return None;
    }
    let value = match n.inputs.get(2).copied().flatten() {
        None => 0.0,
        Some(v) => {
            let t = ed.constant(v)?;
            match t.shape().numel() {
                0 => 0.0,
                1 => t.to_f64_vec()[0],
                _ => return None,
            }
        }
    };
    let spatial = |v: &[i64]| v[2..].iter().map(|&p| p as usize).collect();
    Some((spatial(&begin), spatial(&end), value))
}

/// The window of the op `user` with `extra` padding added, when `user` can
/// absorb a pad of `value` (see the module doc); with the op rebuilt.
fn widen(op: &Op, value: f64, begin: &[usize], end: &[usize]) -> Option<Op> {
    let add = |w: &Window| -> Option<Window> {
        let n = begin.len();
        let old = match w.auto_pad {
            AutoPad::NotSet if w.pads.is_empty() => vec![0; 2 * n],
            AutoPad::NotSet if w.pads.len() == 2 * n => w.pads.clone(),
            AutoPad::Valid => vec![0; 2 * n],
            _ => return None,
        };
        let pads = (0..2 * n).map(|i| old[i] + if i < n { begin[i] } else { end[i - n] }).collect();
        Some(Window { pads, auto_pad: AutoPad::NotSet, ..w.clone() })
    };
    match op {
        Op::Nn(NnOp::Conv(c)) if value == 0.0 => {
            let mut c = c.clone();
            c.attrs.window = add(&c.attrs.window)?;
            Some(Op::Nn(NnOp::Conv(c)))
        }
        Op::Nn(NnOp::Pool(p)) if !p.window.ceil_mode => {
            let ok = match p.kind {
                PoolKind::Average { count_include_pad } => count_include_pad && value == 0.0,
                PoolKind::Max => !p.with_indices && value == f64::NEG_INFINITY,
                PoolKind::Lp { .. } => false,
            };
            let mut p = p.clone();
            p.window = add(&p.window)?;
            ok.then_some(Op::Nn(NnOp::Pool(p)))
        }
        _ => None,
    }
}

/// Folds the Pad `pad` into its reader when possible.
fn try_fold(ed: &mut Editor, pad: NodeId) -> Result<Option<&'static str>, CompileError> {
    let n = ed.node(pad);
    let (Some(x), y) = (n.inputs.first().copied().flatten(), n.outputs[0]) else { return Ok(None) };
    let Some((begin, end, value)) = spatial_pads(ed, pad) else { return Ok(None) };
    let [user] = *ed.users(y) else { return Ok(None) };
    if ed.is_graph_output(y) || ed.node(user).inputs.first().copied().flatten() != Some(y) || ed.node(user).inputs.iter().filter(|&&i| i == Some(y)).count() != 1 {
        return Ok(None);
    }
    let Some(op) = widen(&ed.node(user).op, value, &begin, &end) else { return Ok(None) };
    let name = op.name();
    fold(ed, pad, user, x, op)?;
    Ok(Some(name))
}

fn fold(ed: &mut Editor, pad: NodeId, user: NodeId, x: ValueId, op: Op) -> Result<(), CompileError> {
    ed.set_op(user, op);
    ed.set_input(user, 0, Some(x));
    ed.check_node(user)?;
    ed.remove_node(pad)
}

impl Pass for FusePad {
    fn name(&self) -> &'static str {
        "fuse_pad"
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
        let mut report = PassReport::new(self.name());
        let mut left = 0;
        edit(g, |ed| {
            for id in ed.live_nodes() {
                if !matches!(ed.node(id).op, Op::Movement(MovementOp::Pad { .. })) {
                    continue;
                }
                let constant = matches!(ed.node(id).op, Op::Movement(MovementOp::Pad { mode: PadMode::Constant }));
                match if constant { try_fold(ed, id)? } else { None } {
                    Some(into) => report.add("folded", &format!("Pad into {into}"), 1),
                    None => left += 1,
                }
            }
            Ok(())
        })?;
        if left > 0 {
            report.notes.push(format!("left {left} Pad (not a constant spatial pad read only by a Conv or a pool it suits)"));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::*;
    use kann_ir::ops::nn::Pool;

    fn pad(b: &mut B, name: &str, x: ValueId, pads: Vec<i64>, value: Option<f32>, mode: PadMode) -> ValueId {
        let p = b.constant_i64(&format!("{name}.pads"), pads);
        let v = value.map(|v| b.constant(&format!("{name}.value"), &[], vec![v]));
        b.node(name, Op::Movement(MovementOp::Pad { mode }), &[Some(x), Some(p), v])[0]
    }

    fn pool(kind: PoolKind, k: usize) -> Op {
        let mut window = Window::new(AutoPad::NotSet);
        window.kernel_shape = vec![k, k];
        Op::Nn(NnOp::Pool(Pool { kind, window, column_major_indices: false, with_indices: false }))
    }

    fn conv_window(g: &Graph, i: usize) -> Vec<usize> {
        match &g.nodes[i].op {
            Op::Nn(NnOp::Conv(c)) => c.attrs.window.pads.clone(),
            Op::Nn(NnOp::Pool(p)) => p.window.pads.clone(),
            op => panic!("{}", op.name()),
        }
    }

    #[test]
    fn folds_into_conv_and_pools() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 5, 5]);
        let p1 = pad(&mut b, "p1", x, vec![0, 0, 1, 2, 0, 0, 2, 1], None, PadMode::Constant);
        let c = b.conv("c", p1, 2, 2, 3, true);
        let p2 = pad(&mut b, "p2", c, vec![0, 0, 1, 1, 0, 0, 1, 1], Some(f32::NEG_INFINITY), PadMode::Constant);
        let m = b.node("max", pool(PoolKind::Max, 3), &[Some(p2)])[0];
        let p3 = pad(&mut b, "p3", m, vec![0, 0, 1, 0, 0, 0, 0, 1], Some(0.0), PadMode::Constant);
        let a = b.node("avg", pool(PoolKind::Average { count_include_pad: true }, 2), &[Some(p3)])[0];
        b.output(a);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FusePad, &mut g);
        assert_eq!(op_names(&g), ["Conv", "MaxPool", "AveragePool"]);
        assert_eq!(rep.to_string(), "fuse_pad: folded 1 Pad into Conv, folded 1 Pad into MaxPool, folded 1 Pad into AveragePool");
        assert_eq!(conv_window(&g, 0), [2, 3, 3, 2]);
        assert_eq!(conv_window(&g, 1), [1, 1, 1, 1]);
        assert_eq!(conv_window(&g, 2), [1, 0, 0, 1]);
        assert_same_outputs(&before, &g);
    }

    fn conv_with(b: &mut B, name: &str, x: ValueId, auto_pad: AutoPad) -> ValueId {
        use kann_ir::ops::nn::{Conv, ConvAttrs};
        let w = b.random(&format!("{name}.w"), &[2, 2, 3, 3]);
        let op = Op::Nn(NnOp::Conv(Conv { attrs: ConvAttrs { window: Window::new(auto_pad), group: 1 } }));
        b.node(name, op, &[Some(x), Some(w)])[0]
    }

    #[test]
    fn folds_a_pad_with_negative_axes_into_a_valid_conv_but_not_a_same_one() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 5, 6]);
        let pads = b.constant_i64("pads", vec![1, 0, 2, 1]);
        let axes = b.constant_i64("axes", vec![-2, -1]);
        let p = b.node("pad", Op::Movement(MovementOp::Pad { mode: PadMode::Constant }), &[Some(x), Some(pads), None, Some(axes)])[0];
        let c = conv_with(&mut b, "valid", p, AutoPad::Valid);
        let pads2 = b.constant_i64("pads2", vec![0, 0, 1, 1, 0, 0, 1, 1]);
        let p2 = b.node("pad2", Op::Movement(MovementOp::Pad { mode: PadMode::Constant }), &[Some(c), Some(pads2)])[0];
        let y = conv_with(&mut b, "same", p2, AutoPad::SameUpper);
        b.output(y);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FusePad, &mut g);
        assert_eq!(op_names(&g), ["Conv", "Pad", "Conv"]);
        assert_eq!(conv_window(&g, 0), [1, 0, 2, 1]);
        assert_eq!(rep.get("folded", "Pad into Conv"), 1);
        assert_same_outputs(&before, &g);
    }

    #[test]
    fn leaves_pads_that_change_the_result() {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 5, 5]);
        let p1 = pad(&mut b, "nonzero", x, vec![0, 0, 1, 1, 0, 0, 1, 1], Some(1.0), PadMode::Constant);
        let c1 = b.conv("c1", p1, 2, 2, 1, true);
        let p2 = pad(&mut b, "channels", c1, vec![0, 1, 0, 0, 0, 1, 0, 0], None, PadMode::Constant);
        let c2 = b.conv("c2", p2, 4, 2, 1, true);
        let p3 = pad(&mut b, "reflect", c2, vec![0, 0, 1, 1, 0, 0, 1, 1], None, PadMode::Reflect);
        let c3 = b.conv("c3", p3, 2, 2, 1, true);
        let p4 = pad(&mut b, "zero_for_max", c3, vec![0, 0, 1, 1, 0, 0, 1, 1], None, PadMode::Constant);
        let m = b.node("max", pool(PoolKind::Max, 2), &[Some(p4)])[0];
        let p5 = pad(&mut b, "avg_exclusive", m, vec![0, 0, 1, 1, 0, 0, 1, 1], None, PadMode::Constant);
        let a = b.node("avg", pool(PoolKind::Average { count_include_pad: false }, 2), &[Some(p5)])[0];
        b.output(a);
        let mut g = b.finish();
        let before = g.clone();
        let rep = run_pass(&FusePad, &mut g);
        assert_eq!(rep.total(), 0);
        assert!(rep.notes[0].starts_with("left 5 Pad"), "{rep}");
        assert_same_outputs(&before, &g);
    }
}
