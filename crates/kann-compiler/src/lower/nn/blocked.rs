//! Channel-blocked regions: chains of 1×1 and depthwise convolutions whose
//! activations stay in NCHW8c between them (`kann_kernels::blocked`).
//!
//! A convolution qualifies when its weights are constant, its channels in
//! and out are multiples of 8, and it is either pointwise (1×1, stride 1,
//! unpadded, one group; an input scale allowed) or depthwise (a channel
//! multiplier of 1, no input scale). A value is kept blocked when a chosen
//! convolution writes it and only chosen convolutions (as X or as the
//! fused residual) and global average pools read it. A qualifying convolution is chosen unless none of its
//! activations would be blocked: alone, it would pay a layout change on
//! each side. Where a chosen convolution reads a value kept in NCHW, a
//! reorder step makes a blocked copy (once a value); where it writes one,
//! it writes a blocked temp and a reorder step writes the value.

use super::{flops, output, pads_u64, Extra};
use crate::lower::{require_f32, LowerCx, LowerResult, Operand};
use kann_artifact::Arch;
use kann_ir::ops::nn::NnOp;
use kann_ir::{Graph, Node, NodeId, Op, ValueId};
use kann_kernels::blocked::depthwise::{pack_blocked_depthwise_weights, BlockedDepthwise};
use kann_kernels::blocked::pointwise::{pack_blocked_pointwise_weights, BlockedPointwise};
use kann_kernels::blocked::reorder::{Direction, Reorder};
use kann_kernels::blocked::BLOCK;
use kann_kernels::{Epilogue, Isa, Kernel};
use std::collections::{HashMap, HashSet};

/// The chosen convolutions and the values kept blocked.
#[derive(Debug, Default)]
pub(crate) struct Regions {
    nodes: HashSet<NodeId>,
    values: HashSet<ValueId>,
    /// NCHW values already copied blocked for a reader, and where.
    copies: HashMap<ValueId, Operand>,
}

/// The input slots of a node that carry activations: X, and the residual.
fn activation_slots(node: &Node) -> Vec<usize> {
    match &node.op {
        Op::Fused(f) if f.residual => vec![0, f.base_inputs],
        _ => vec![0],
    }
}

/// Whether `node` can run on blocked activations (see the module notes).
fn qualifies(g: &Graph, node: &Node) -> bool {
    let (attrs, scaled) = match &node.op {
        Op::Nn(NnOp::Conv(c)) => (&c.attrs, false),
        Op::Fused(f) => match f.base.as_ref() {
            Op::Nn(NnOp::Conv(c)) => (&c.attrs, f.scale_slot().is_some()),
            _ => return false,
        },
        _ => return false,
    };
    let (Some(Some(x)), Some(Some(w))) = (node.inputs.first(), node.inputs.get(1)) else {
        return false;
    };
    let (xi, wv) = (&g.value(*x).info, g.value(*w));
    let (xd, wd) = (xi.shape.dims(), wv.info.shape.dims());
    let f32s = xi.dtype == kann_tensor::DType::F32 && wv.constant.as_ref().is_some_and(|t| t.as_f32().is_ok());
    if !f32s || xd.len() != 4 || wd.len() != 4 || xd[1] % BLOCK != 0 || wd[0] % BLOCK != 0 || xd[1] == 0 {
        return false;
    }
    let Ok(plan) = attrs.plan(xd, wd) else {
        return false;
    };
    let unpadded = plan.pad_begin.iter().chain(&plan.pad_end).all(|&p| p == 0);
    let pointwise = attrs.group == 1 && plan.kernel == [1, 1] && plan.strides == [1, 1] && unpadded;
    let depthwise = attrs.group == xd[1] && wd[0] == xd[1] && plan.pad_begin.iter().all(|&p| p >= 0) && !scaled;
    pointwise || depthwise
}

/// Whether `node` reads its input `slot` blocked as well as in NCHW: a
/// global average pool of a 4-D f32 X (its `[N, C, 1, 1]` output is the
/// same bytes in both layouts).
fn pools_blocked(g: &Graph, node: &Node, slot: usize) -> bool {
    let Op::Nn(NnOp::GlobalPool(p)) = &node.op else {
        return false;
    };
    let x = node.inputs.first().copied().flatten().map(|v| &g.value(v).info);
    slot == 0 && matches!(p.kind, kann_ir::ops::nn::PoolKind::Average { .. }) && x.is_some_and(|i| i.dtype == kann_tensor::DType::F32 && i.shape.dims().len() == 4)
}

impl Regions {
    /// The regions of `g` for `arch`: AVX2 only. The blocked kernels'
    /// tiles are AVX2 (8 lanes); where AVX-512 has 512-bit FMA units its
    /// packed GEMM does twice their work a cycle, so x86-64-v4 keeps NCHW
    /// until the tiles have a 16-lane form; the portable twins only serve
    /// artifacts run where AVX2 is missing.
    pub(crate) fn choose(g: &Graph, arch: Arch) -> Regions {
        if crate::lower::kernel_isa(arch) != Isa::Avx2 {
            return Regions::default();
        }
        let mut readers: HashMap<ValueId, Vec<(NodeId, usize)>> = HashMap::new();
        for (i, n) in g.nodes.iter().enumerate() {
            for (slot, v) in n.inputs.iter().enumerate() {
                if let Some(v) = v {
                    readers.entry(*v).or_default().push((NodeId(i as u32), slot));
                }
            }
        }
        let outputs: HashSet<ValueId> = g.outputs.iter().copied().collect();
        let mut nodes: HashSet<NodeId> = (0..g.nodes.len()).map(|i| NodeId(i as u32)).filter(|&id| qualifies(g, g.node(id))).collect();
        loop {
            let values = Self::blocked_values(g, &nodes, &readers, &outputs);
            let alone: Vec<NodeId> = nodes
                .iter()
                .copied()
                .filter(|&id| {
                    let n = g.node(id);
                    let reads = activation_slots(n).iter().any(|&s| n.inputs.get(s).copied().flatten().is_some_and(|v| values.contains(&v)));
                    !reads && !values.contains(&n.outputs[0])
                })
                .collect();
            if alone.is_empty() {
                return Regions { nodes, values, copies: HashMap::new() };
            }
            alone.iter().for_each(|id| {
                nodes.remove(id);
            });
        }
    }

    /// The values the chosen `nodes` write and only they read.
    fn blocked_values(g: &Graph, nodes: &HashSet<NodeId>, readers: &HashMap<ValueId, Vec<(NodeId, usize)>>, outputs: &HashSet<ValueId>) -> HashSet<ValueId> {
        nodes
            .iter()
            .map(|&id| g.node(id).outputs[0])
            .filter(|v| !outputs.contains(v))
            .filter(|v| readers.get(v).is_some_and(|rs| rs.iter().all(|&(r, slot)| (nodes.contains(&r) && activation_slots(g.node(r)).contains(&slot)) || pools_blocked(g, g.node(r), slot))))
            .collect()
    }

    /// Whether `v` is kept blocked.
    pub(crate) fn has_value(&self, v: ValueId) -> bool {
        self.values.contains(&v)
    }

    /// Whether `id` is lowered on blocked activations.
    pub(crate) fn has_node(&self, id: NodeId) -> bool {
        self.nodes.contains(&id)
    }
}

/// `v` as a blocked operand: itself, or its blocked copy (made once).
fn blocked_input(cx: &mut LowerCx, id: NodeId, v: ValueId) -> Operand {
    if cx.blocked.values.contains(&v) {
        return Operand::Value(v);
    }
    if let Some(op) = cx.blocked.copies.get(&v) {
        return *op;
    }
    let d = cx.info(v).shape.dims().to_vec();
    let temp = cx.temp((d.iter().product::<usize>() * 4) as u64);
    let kernel = Reorder { batch: d[0] as u64, channels: d[1] as u64, pixels: (d[2] * d[3]) as u64, direction: Direction::ToBlocked, isa: crate::lower::kernel_isa(cx.arch) };
    cx.push(id, Kernel::Reorder(kernel), vec![Operand::Value(v)], vec![temp], 0);
    cx.blocked.copies.insert(v, temp);
    temp
}

/// Lowers a chosen convolution (`wv` its constant weights).
pub(super) fn lower(cx: &mut LowerCx, id: NodeId, node: &Node, extra: Extra, plan: &kann_ir::ops::nn::WindowPlan, wv: &[f32]) -> LowerResult {
    let (x, w, b) = (cx.input(node, 0)?, cx.input(node, 1)?, cx.optional_input(node, 2));
    let (xd, wd) = (cx.info(x).shape.dims().to_vec(), cx.info(w).shape.dims().to_vec());
    let isa = crate::lower::kernel_isa(cx.arch);
    let x_op = blocked_input(cx, id, x);
    let residual = extra.residual.map(|r| blocked_input(cx, id, r));
    let mut inputs = vec![x_op];
    let (c, m) = (xd[1], wd[0]);
    // W is [M, C / group, kh, kw]: C (≥ 8) for a pointwise one, 1 for a depthwise one.
    let pointwise = wd[1] == c;
    let e = Epilogue { bias: b.is_some(), residual: extra.residual.is_some(), activation: extra.activation };
    let kernel = if pointwise {
        inputs.push(cx.weights_f32(&pack_blocked_pointwise_weights(wv, m, c)));
        if let Some(b) = b {
            require_f32(cx, b, "B")?;
            inputs.push(Operand::Value(b));
        }
        Kernel::BlockedPointwise(BlockedPointwise { batch: xd[0] as u64, in_channels: c as u64, out_channels: m as u64, pixels: (xd[2] * xd[3]) as u64, epilogue: e, input_scale: extra.scale.is_some(), isa })
    } else {
        let taps = plan.kernel.iter().product::<usize>();
        inputs.push(cx.weights_f32(&pack_blocked_depthwise_weights(wv, c, taps)));
        if let Some(b) = b {
            require_f32(cx, b, "B")?;
            inputs.push(Operand::Value(b));
        }
        let two = |v: &[usize]| [v[0] as u64, v[1] as u64];
        let pads = pads_u64(&plan.pad_begin)?;
        Kernel::BlockedDepthwise(BlockedDepthwise {
            batch: xd[0] as u64,
            channels: c as u64,
            input: two(&xd[2..]),
            output: two(&plan.out),
            kernel: two(&plan.kernel),
            strides: two(&plan.strides),
            dilations: two(&plan.dilations),
            pad_begin: [pads[0], pads[1]],
            epilogue: e,
            isa,
        })
    };
    inputs.extend(residual);
    inputs.extend(extra.scale.map(Operand::Value));
    let y = output(node, 0)?;
    let fl = flops(cx, node);
    if cx.blocked.values.contains(&y) {
        cx.push(id, kernel, inputs, vec![Operand::Value(y)], fl);
        return Ok(());
    }
    let yd = cx.info(y).shape.dims().to_vec();
    let temp = cx.temp((yd.iter().product::<usize>() * 4) as u64);
    cx.push(id, kernel, inputs, vec![temp], fl);
    let back = Reorder { batch: yd[0] as u64, channels: yd[1] as u64, pixels: (yd[2] * yd[3]) as u64, direction: Direction::ToPlanar, isa };
    cx.push(id, Kernel::Reorder(back), vec![temp], vec![Operand::Value(y)], 0);
    Ok(())
}
