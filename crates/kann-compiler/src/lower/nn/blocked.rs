//! Channel-blocked regions: chains of 1×1 and depthwise convolutions whose
//! activations stay in NCHW8c between them (`kann_kernels::blocked`).
//!
//! A convolution qualifies when its weights are constant, its channels in
//! and out are multiples of 8, and it is pointwise (1×1, stride 1,
//! unpadded, one group; an input scale allowed), depthwise (a channel
//! multiplier of 1), grouped with groups of whole blocks, or dense and not
//! taken by Winograd (no input scale for those three). 2-D pools and batch
//! normalizations (with their fused activation: pre-activation networks)
//! of whole blocks qualify too. A value is kept blocked when a chosen
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
use kann_kernels::blocked::batch_norm::BlockedBatchNorm;
use kann_kernels::blocked::conv::{pack_blocked_conv_weights, BlockedConv};
use kann_kernels::blocked::depthwise::{pack_blocked_depthwise_weights, BlockedDepthwise};
use kann_kernels::blocked::pool::BlockedPool;
use kann_kernels::blocked::pointwise::{pack_blocked_pointwise_weights, BlockedPointwise};
use kann_kernels::blocked::reorder::{Direction, Reorder};
use kann_kernels::blocked::BLOCK;
use kann_kernels::{Epilogue, Isa, Kernel};
use std::collections::{HashMap, HashSet};

/// The chosen convolutions and the values kept blocked.
#[derive(Debug, Default)]
pub(crate) struct Regions {
    nodes: HashSet<NodeId>,
    /// RGB stems writing a region's input blocked (`ConvGrouped`).
    stems: HashSet<NodeId>,
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

/// What the region rules look at in a convolution node.
struct ConvNode<'g> {
    attrs: &'g kann_ir::ops::nn::ConvAttrs,
    /// A fused residual, a fused input scale.
    residual: bool,
    scaled: bool,
    xd: &'g [usize],
    wd: &'g [usize],
}

/// `node` as a (fused) 2-D f32 convolution with constant f32 weights.
fn conv_node<'g>(g: &'g Graph, node: &'g Node) -> Option<ConvNode<'g>> {
    let (attrs, residual, scaled) = match &node.op {
        Op::Nn(NnOp::Conv(c)) => (&c.attrs, false, false),
        Op::Fused(f) => match f.base.as_ref() {
            Op::Nn(NnOp::Conv(c)) => (&c.attrs, f.residual, f.scale_slot().is_some()),
            _ => return None,
        },
        _ => return None,
    };
    let (xi, wv) = (&g.value((*node.inputs.first()?)?).info, g.value((*node.inputs.get(1)?)?));
    let (xd, wd) = (xi.shape.dims(), wv.info.shape.dims());
    let f32s = xi.dtype == kann_tensor::DType::F32 && wv.constant.as_ref().is_some_and(|t| t.as_f32().is_ok());
    (f32s && xd.len() == 4 && wd.len() == 4).then_some(ConvNode { attrs, residual, scaled, xd, wd })
}

/// Whether a dense 3×3 convolution (its plan, X's and W's dims) keeps Winograd.
type TakesWinograd = dyn Fn(&kann_ir::ops::nn::WindowPlan, &[usize], &[usize]) -> bool;

/// Whether `node` can run on blocked activations (see the module notes);
/// `winograd`: whether the lowering would give a dense 3×3 Winograd.
fn qualifies(g: &Graph, node: &Node, winograd: &TakesWinograd) -> bool {
    let Some(ConvNode { attrs, scaled, xd, wd, .. }) = conv_node(g, node) else {
        return false;
    };
    if xd[1] % BLOCK != 0 || wd[0] % BLOCK != 0 || xd[1] == 0 {
        return false;
    }
    let Ok(plan) = attrs.plan(xd, wd) else {
        return false;
    };
    let unpadded = plan.pad_begin.iter().chain(&plan.pad_end).all(|&p| p == 0);
    let pointwise = attrs.group == 1 && plan.kernel == [1, 1] && plan.strides == [1, 1] && unpadded;
    let forward = plan.pad_begin.iter().all(|&p| p >= 0) && !scaled;
    let depthwise = attrs.group == xd[1] && wd[0] == xd[1] && forward;
    // The general kernel: grouped convolutions whose groups are whole
    // blocks (RegNet-X's 3×3 of 24 channels), and dense ones: strided 1×1
    // projections, strided 3×3 (ResNet-50's, 0.81-0.99 of the column
    // GEMM's time alone), 5×5. Dense 3×3 ones Winograd takes keep it
    // (ResNet-50's at ~115 effective GFLOP/s against the direct tile's ~90).
    let whole_blocks = attrs.group > 1 && (xd[1] / attrs.group) % BLOCK == 0 && (wd[0] / attrs.group) % BLOCK == 0;
    let dense = attrs.group == 1 && !winograd(&plan, xd, wd);
    pointwise || depthwise || (forward && (whole_blocks || dense))
}

/// Whether `node` is a stem the AVX2 lowering runs as `ConvGrouped` (a
/// strided, one-group convolution whose input channels are not whole
/// blocks, to a multiple of 8 channels, no residual or input scale), which
/// can write its output blocked: RGB stems feeding a region need no reorder.
fn blocked_stem(g: &Graph, node: &Node) -> bool {
    let Some(ConvNode { attrs, residual, scaled, xd, wd }) = conv_node(g, node) else {
        return false;
    };
    if residual || scaled || attrs.group != 1 || xd[1] % BLOCK == 0 || wd[0] % BLOCK != 0 {
        return false;
    }
    attrs.plan(xd, wd).is_ok_and(|p| p.strides[1] >= 2 && p.pad_begin.iter().all(|&v| v >= 0))
}

/// Whether `node` is a 2-D max or average pool of an f32 X whose channels
/// are whole blocks, with no Indices output: it runs blocked.
fn pool_qualifies(g: &Graph, node: &Node) -> bool {
    let Op::Nn(NnOp::Pool(p)) = &node.op else {
        return false;
    };
    let x = node.inputs.first().copied().flatten().map(|v| &g.value(v).info);
    let kind = matches!(p.kind, kann_ir::ops::nn::PoolKind::Max | kann_ir::ops::nn::PoolKind::Average { .. });
    kind && !p.with_indices && x.is_some_and(|i| i.dtype == kann_tensor::DType::F32 && i.shape.dims().len() == 4 && i.shape.dims()[1] % BLOCK == 0 && i.shape.dims()[1] > 0)
}

/// Whether `node` is a batch normalization (its activation fused, no
/// residual) of an f32 X whose channels are whole blocks, with f32
/// parameters: it runs blocked (pre-activation networks put one before
/// nearly every convolution).
fn batch_norm_qualifies(g: &Graph, node: &Node) -> bool {
    let base = match &node.op {
        Op::Nn(NnOp::BatchNorm(_)) => true,
        Op::Fused(f) => !f.residual && f.scale_slot().is_none() && matches!(f.base.as_ref(), Op::Nn(NnOp::BatchNorm(_))),
        _ => false,
    };
    let info = |i: usize| node.inputs.get(i).copied().flatten().map(|v| &g.value(v).info);
    let x4 = info(0).is_some_and(|i| i.shape.dims().len() == 4 && i.shape.dims()[1] % BLOCK == 0 && i.shape.dims()[1] > 0);
    base && node.outputs.len() == 1 && x4 && (0..5).all(|i| info(i).is_some_and(|i| i.dtype == kann_tensor::DType::F32))
}

/// Whether `node` concatenates 4-D f32 values along channels that are
/// whole blocks each: the same bytes place each input's blocks as its
/// planes (`[N][C/8][H][W][8]` puts channel block `b` where NCHW puts
/// channel `8b`), so the concat (zero-copy or a copy) serves both layouts.
fn channel_concat(g: &Graph, node: &Node) -> bool {
    let Op::Movement(kann_ir::ops::movement::MovementOp::Concat { axis }) = &node.op else {
        return false;
    };
    let info = |v: Option<ValueId>| v.map(|v| &g.value(v).info);
    let four = |i: &kann_ir::TensorInfo| i.dtype == kann_tensor::DType::F32 && i.shape.dims().len() == 4;
    let y = &g.value(node.outputs[0]).info;
    four(y) && kann_ir::ops::norm_axis(*axis, 4) == Ok(1) && node.inputs.iter().all(|&v| info(v).is_some_and(|i| four(i) && i.shape.dims()[1] % BLOCK == 0))
}

/// Whether a dense 3×3 convolution Winograd would take (X `xd`, W `wd`)
/// keeps it in a blocked network rather than run on `BlockedConv`: not
/// when one side has at most 32 channels, or 64 for F(2×2) (small maps):
/// there the transforms outweigh the products they save and the direct
/// tile runs near its peak. SqueezeNet's expand layers (16-64 → 64-256)
/// then keep its fire modules blocked: the frame 0.82× at 2 clusters;
/// DenseNet-121's 128 → 32 layers 0.84×; GoogLeNet's 64 → 192 over 56×56
/// ran 4.7 ms by F(4×4), 8.0 on the direct tile (one Zen 3 core).
fn keeps_winograd(xd: &[usize], wd: &[usize], plan: &kann_ir::ops::nn::WindowPlan, isa: Isa, clusters: usize) -> bool {
    let Some((_, tile)) = super::winograd_choice(1, xd, wd, plan, isa, clusters) else {
        return false;
    };
    let narrow = xd[1].min(wd[0]);
    narrow > 32 && (tile != kann_kernels::winograd::WinogradTile::F2x2 || narrow > 64)
}

/// Whether `node` is a convolution the lowering gives Winograd, to whole
/// blocks of output channels: NCHW in, it may write a blocked value
/// through a reorder step (as a stem writes one directly).
fn winograd_converter(g: &Graph, node: &Node, winograd: &TakesWinograd) -> bool {
    let Some(ConvNode { attrs, scaled, xd, wd, .. }) = conv_node(g, node) else {
        return false;
    };
    !scaled && attrs.group == 1 && wd[0] % BLOCK == 0 && attrs.plan(xd, wd).is_ok_and(|plan| winograd(&plan, xd, wd))
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
    pub(crate) fn choose(g: &Graph, arch: Arch, winograd: bool, clusters: usize) -> Regions {
        let isa = crate::lower::kernel_isa(arch);
        if isa != Isa::Avx2 {
            return Regions::default();
        }
        let takes_winograd = move |plan: &kann_ir::ops::nn::WindowPlan, xd: &[usize], wd: &[usize]| winograd && keeps_winograd(xd, wd, plan, isa, clusters);
        let stems: HashSet<NodeId> = (0..g.nodes.len()).map(|i| NodeId(i as u32)).filter(|&id| blocked_stem(g, g.node(id))).collect();
        let mut readers: HashMap<ValueId, Vec<(NodeId, usize)>> = HashMap::new();
        for (i, n) in g.nodes.iter().enumerate() {
            for (slot, v) in n.inputs.iter().enumerate() {
                if let Some(v) = v {
                    readers.entry(*v).or_default().push((NodeId(i as u32), slot));
                }
            }
        }
        let outputs: HashSet<ValueId> = g.outputs.iter().copied().collect();
        let all = || (0..g.nodes.len()).map(|i| NodeId(i as u32));
        let mut nodes: HashSet<NodeId> = all().filter(|&id| qualifies(g, g.node(id), &takes_winograd) || pool_qualifies(g, g.node(id)) || batch_norm_qualifies(g, g.node(id))).collect();
        let concats: HashSet<NodeId> = all().filter(|&id| channel_concat(g, g.node(id))).collect();
        // Winograd convolutions may write a blocked value through a reorder.
        let converters: HashSet<NodeId> = all().filter(|&id| winograd_converter(g, g.node(id), &takes_winograd)).collect();
        let writers: HashSet<NodeId> = stems.union(&converters).copied().collect();
        loop {
            let values = Self::blocked_values(g, &nodes, &writers, &concats, &readers, &outputs);
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
                let stems = stems.into_iter().filter(|&id| values.contains(&g.node(id).outputs[0])).collect();
                return Regions { nodes, stems, values, copies: HashMap::new() };
            }
            alone.iter().for_each(|id| {
                nodes.remove(id);
            });
        }
    }

    /// The values the chosen `nodes` (or `stems`) write and only blocked
    /// readers read, and the outputs of the `concats` whose inputs and
    /// output are all such values (a concat passes its inputs' layout on:
    /// from all of them, dropping those that would mix layouts until none
    /// does).
    fn blocked_values(g: &Graph, nodes: &HashSet<NodeId>, stems: &HashSet<NodeId>, concats: &HashSet<NodeId>, readers: &HashMap<ValueId, Vec<(NodeId, usize)>>, outputs: &HashSet<ValueId>) -> HashSet<ValueId> {
        let mut through = concats.clone();
        loop {
            let reads_blocked = |r: NodeId, slot: usize| (nodes.contains(&r) && activation_slots(g.node(r)).contains(&slot)) || pools_blocked(g, g.node(r), slot) || through.contains(&r);
            let values: HashSet<ValueId> = nodes
                .iter()
                .chain(stems)
                .chain(&through)
                .map(|&id| g.node(id).outputs[0])
                .filter(|v| !outputs.contains(v))
                .filter(|v| readers.get(v).is_some_and(|rs| rs.iter().all(|&(r, slot)| reads_blocked(r, slot))))
                .collect();
            let kept: HashSet<NodeId> = through
                .iter()
                .copied()
                .filter(|&id| {
                    let n = g.node(id);
                    values.contains(&n.outputs[0]) && n.inputs.iter().all(|v| v.is_some_and(|v| values.contains(&v)))
                })
                .collect();
            if kept.len() == through.len() {
                return values;
            }
            through = kept;
        }
    }

    /// Whether `v` is kept blocked.
    pub(crate) fn has_value(&self, v: ValueId) -> bool {
        self.values.contains(&v)
    }

    /// Whether `id` is lowered on blocked activations.
    pub(crate) fn has_node(&self, id: NodeId) -> bool {
        self.nodes.contains(&id)
    }

    /// Whether `id` is a stem writing its output blocked.
    pub(crate) fn has_stem(&self, id: NodeId) -> bool {
        self.stems.contains(&id)
    }
}

/// Whether a blocked 1×1 convolution over X `xd` to `m` channels splits
/// its output channels across clusters rather than its pixels: on maps
/// of up to 16×16, where pixel quads divide unevenly (7×7: 13 quads, 7 and
/// 6) and every cluster would stream all the weights, with enough blocks
/// (two groups a cluster).
fn by_channels(clusters: usize, xd: &[usize], m: usize) -> bool {
    clusters > 1 && xd[2] * xd[3] <= 256 && xd[0] * m / BLOCK >= 4 * clusters
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
    if d[2] * d[3] == 1 {
        // One pixel a plane: the same bytes in both layouts.
        return Operand::Value(v);
    }
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
    let pointwise = wd[1] == c && plan.kernel == [1, 1] && plan.strides == [1, 1];
    let depthwise = wd[1] == 1 && m == c;
    let e = Epilogue { bias: b.is_some(), residual: extra.residual.is_some(), activation: extra.activation };
    let kernel = if pointwise {
        inputs.push(cx.weights_f32(&pack_blocked_pointwise_weights(wv, m, c)));
        if let Some(b) = b {
            require_f32(cx, b, "B")?;
            inputs.push(Operand::Value(b));
        }
        Kernel::BlockedPointwise(BlockedPointwise { batch: xd[0] as u64, in_channels: c as u64, out_channels: m as u64, pixels: (xd[2] * xd[3]) as u64, epilogue: e, input_scale: extra.scale.is_some(), by_channels: by_channels(cx.clusters, &xd, m), isa })
    } else if !depthwise {
        let (taps, group) = (plan.kernel.iter().product::<usize>(), c / wd[1]);
        inputs.push(cx.weights_f32(&pack_blocked_conv_weights(wv, m, group, taps)));
        if let Some(b) = b {
            require_f32(cx, b, "B")?;
            inputs.push(Operand::Value(b));
        }
        let two = |v: &[usize]| [v[0] as u64, v[1] as u64];
        let pads = pads_u64(&plan.pad_begin)?;
        Kernel::BlockedConv(BlockedConv {
            batch: xd[0] as u64,
            in_channels: c as u64,
            out_channels: m as u64,
            group: group as u64,
            input: two(&xd[2..]),
            output: two(&plan.out),
            kernel: two(&plan.kernel),
            strides: two(&plan.strides),
            dilations: two(&plan.dilations),
            pad_begin: [pads[0], pads[1]],
            epilogue: e,
            isa,
        })
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
    let fl = flops(cx, node);
    push_blocked(cx, id, node, kernel, inputs, fl)
}

/// Pushes a step whose kernel writes its output `outputs[0]` in NCHW: as
/// it is, or into a temp that a reorder copies blocked where that value
/// is kept blocked (a stem fused with its pool ahead of a region).
pub(super) fn push_planar(cx: &mut LowerCx, id: NodeId, kernel: Kernel, inputs: Vec<Operand>, outputs: Vec<Operand>, fl: u64) -> LowerResult {
    if !outputs.first().is_some_and(|o| matches!(o, Operand::Value(v) if cx.blocked.values.contains(v))) {
        cx.push(id, kernel, inputs, outputs, fl);
        return Ok(());
    }
    through_reorder(cx, id, kernel, inputs, outputs, fl, Direction::ToBlocked)
}

/// Pushes `kernel` writing its first output `y` into a temp instead, and
/// a reorder step (`direction`) from the temp to `y`.
fn through_reorder(cx: &mut LowerCx, id: NodeId, kernel: Kernel, inputs: Vec<Operand>, mut outputs: Vec<Operand>, fl: u64, direction: Direction) -> LowerResult {
    let Operand::Value(y) = outputs[0] else {
        return Err("internal: a reordered output must be a value".into());
    };
    let yd = cx.info(y).shape.dims().to_vec();
    let temp = cx.temp((yd.iter().product::<usize>() * 4) as u64);
    outputs[0] = temp;
    cx.push(id, kernel, inputs, outputs, fl);
    let to = Reorder { batch: yd[0] as u64, channels: yd[1] as u64, pixels: (yd[2] * yd[3]) as u64, direction, isa: crate::lower::kernel_isa(cx.arch) };
    cx.push(id, Kernel::Reorder(to), vec![temp], vec![Operand::Value(y)], 0);
    Ok(())
}

/// Lowers a chosen 2-D pool (`p` its geometry).
pub(super) fn lower_pool(cx: &mut LowerCx, id: NodeId, node: &Node, p: kann_kernels::pool::Pool) -> LowerResult {
    let x = cx.input(node, 0)?;
    let xd = cx.info(x).shape.dims().to_vec();
    let isa = crate::lower::kernel_isa(cx.arch);
    let x_op = blocked_input(cx, id, x);
    let two = |v: &[u64]| [v[0], v[1]];
    let kernel = Kernel::BlockedPool(BlockedPool {
        kind: p.kind,
        batch: xd[0] as u64,
        channels: xd[1] as u64,
        input: two(&p.input),
        kernel: two(&p.kernel),
        strides: two(&p.strides),
        dilations: two(&p.dilations),
        pad_begin: two(&p.pad_begin),
        pad_end: two(&p.pad_end),
        output: two(&p.output),
        isa,
    });
    let fl = flops(cx, node);
    push_blocked(cx, id, node, kernel, vec![x_op], fl)
}

/// Lowers a chosen batch normalization with its fused `activation`.
pub(super) fn lower_batch_norm(cx: &mut LowerCx, id: NodeId, node: &Node, epsilon: f32, activation: kann_kernels::Activation) -> LowerResult {
    let x = cx.input(node, 0)?;
    let xd = cx.info(x).shape.dims().to_vec();
    let mut inputs = vec![blocked_input(cx, id, x)];
    for slot in 1..5 {
        inputs.push(Operand::Value(cx.input(node, slot)?));
    }
    let kernel = Kernel::BlockedBatchNorm(BlockedBatchNorm { batch: xd[0] as u64, channels: xd[1] as u64, pixels: (xd[2] * xd[3]) as u64, epsilon, activation, isa: crate::lower::kernel_isa(cx.arch) });
    let fl = flops(cx, node);
    push_blocked(cx, id, node, kernel, inputs, fl)
}

/// Pushes a blocked step writing `node`'s output: in place where the
/// value is kept blocked (or has one pixel a plane: both layouts), else
/// into a temp that a reorder copies to NCHW.
fn push_blocked(cx: &mut LowerCx, id: NodeId, node: &Node, kernel: Kernel, inputs: Vec<Operand>, fl: u64) -> LowerResult {
    let y = output(node, 0)?;
    let yd = cx.info(y).shape.dims().to_vec();
    if cx.blocked.values.contains(&y) || yd[2] * yd[3] == 1 {
        cx.push(id, kernel, inputs, vec![Operand::Value(y)], fl);
        return Ok(());
    }
    through_reorder(cx, id, kernel, inputs, vec![Operand::Value(y)], fl, Direction::ToPlanar)
}

#[cfg(test)]
mod tests {
    use crate::testing::{check_against_reference_on, Rng};
    use kann_artifact::{Arch, CpuFeatures};
    use kann_ir::ops::elementwise::{Binary, BinaryKind, ElementwiseOp, Unary, UnaryKind};
    use kann_ir::ops::nn::{self as ir, NnOp};
    use kann_ir::{Graph, GraphBuilder, Op, TensorInfo, ValueId};
    use kann_tensor::{DType, Shape, Tensor};

    /// A strided RGB stem, then MobileNet/EfficientNet-like blocks: expand 1×1
    /// (Relu6), depthwise 3×3 (stride `s`), a squeeze-excitation gate
    /// (global pool, two 1×1 on the pooled vector, sigmoid, Mul) when
    /// `gate`, projection 1×1 and a residual Add; a grouped 3×3 of two
    /// 8-channel groups, a dense strided 3×3, a dense 5×5 and a strided
    /// 1×1; the global pool as the output.
    fn network(rng: &mut Rng, gate: bool) -> Graph {
        let mut b = GraphBuilder::new("blocked", None);
        let mut constant = |b: &mut GraphBuilder, name: &str, d: Vec<usize>| {
            let n: usize = d.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.uniform(-0.4, 0.4) as f32).collect();
            b.add_constant(name, Tensor::from_f32(Shape::new(d), v).unwrap())
        };
        let conv = |k: usize, s: usize, group: usize| {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            w.kernel_shape = vec![k, k];
            w.pads = vec![k / 2; 4];
            w.strides = vec![s; 2];
            Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group } }))
        };
        let unary = |kind| Op::Elementwise(ElementwiseOp::Unary(Unary { kind }));
        let binary = |kind| Op::Elementwise(ElementwiseOp::Binary(Binary { kind }));
        let gap = || Op::Nn(NnOp::GlobalPool(ir::GlobalPool { kind: ir::PoolKind::Average { count_include_pad: false } }));
        let mut n = 0;
        let mut node = |b: &mut GraphBuilder, op: Op, ins: Vec<ValueId>| {
            n += 1;
            b.add_node(&format!("n{n}"), op, ins.into_iter().map(Some).collect(), &[format!("v{n}")]).unwrap()[0]
        };
        let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([1, 3, 35, 35]))).unwrap();
        let (w, bias) = (constant(&mut b, "ws", vec![16, 3, 3, 3]), constant(&mut b, "bs", vec![16]));
        let mut h = node(&mut b, conv(3, 2, 1), vec![x, w, bias]);
        for (i, s) in [1, 2, 1].into_iter().enumerate() {
            let (c, e) = (16, 48);
            let w1 = constant(&mut b, &format!("we{i}"), vec![e, c, 1, 1]);
            let ex = node(&mut b, conv(1, 1, 1), vec![h, w1]);
            let ex = node(&mut b, unary(UnaryKind::Relu), vec![ex]);
            let w2 = constant(&mut b, &format!("wd{i}"), vec![e, 1, 3, 3]);
            let mut dw = node(&mut b, conv(3, s, e), vec![ex, w2]);
            if gate {
                let (wa, wb) = (constant(&mut b, &format!("wa{i}"), vec![8, e, 1, 1]), constant(&mut b, &format!("wb{i}"), vec![e, 8, 1, 1]));
                let pooled = node(&mut b, gap(), vec![dw]);
                let squeezed = node(&mut b, conv(1, 1, 1), vec![pooled, wa]);
                let squeezed = node(&mut b, unary(UnaryKind::Relu), vec![squeezed]);
                let gate = node(&mut b, conv(1, 1, 1), vec![squeezed, wb]);
                let gate = node(&mut b, unary(UnaryKind::Sigmoid), vec![gate]);
                dw = node(&mut b, binary(BinaryKind::Mul), vec![dw, gate]);
            }
            let (w3, b3) = (constant(&mut b, &format!("wp{i}"), vec![c, e, 1, 1]), constant(&mut b, &format!("bp{i}"), vec![c]));
            let proj = node(&mut b, conv(1, 1, 1), vec![dw, w3, b3]);
            h = if s == 1 { node(&mut b, binary(BinaryKind::Add), vec![proj, h]) } else { proj };
        }
        let wg = constant(&mut b, "wg", vec![16, 8, 3, 3]);
        let grouped = node(&mut b, conv(3, 1, 2), vec![h, wg]);
        let grouped = node(&mut b, unary(UnaryKind::Relu), vec![grouped]);
        let mut strided = ir::Window::new(ir::AutoPad::NotSet);
        strided.kernel_shape = vec![1, 1];
        strided.strides = vec![2, 2];
        // Dense ones on the general kernel: a strided 3×3, a 5×5.
        let (w33, b33) = (constant(&mut b, "w33", vec![24, 16, 3, 3]), constant(&mut b, "b33", vec![24]));
        let dense = node(&mut b, conv(3, 2, 1), vec![grouped, w33, b33]);
        let dense = node(&mut b, unary(UnaryKind::Relu), vec![dense]);
        let w55 = constant(&mut b, "w55", vec![16, 24, 5, 5]);
        let dense = node(&mut b, conv(5, 1, 1), vec![dense, w55]);
        let wt = constant(&mut b, "wt", vec![24, 16, 1, 1]);
        let down = node(&mut b, Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: strided, group: 1 } })), vec![dense, wt]);
        let y = node(&mut b, gap(), vec![down]);
        b.add_output(y);
        b.finish().unwrap()
    }

    /// An RGB stem, a max pool, then two GoogLeNet-like modules over 24×24
    /// and 12×12: four branches (1×1; 1×1 then 3×3; 1×1 then 5×5; a 3×3/1
    /// max pool then 1×1) concatenated, an average pool (3×3/2, ceil mode)
    /// between them, the global pool as the output.
    fn inception(rng: &mut Rng) -> Graph {
        let mut b = GraphBuilder::new("inception", None);
        let mut constant = |b: &mut GraphBuilder, name: &str, d: Vec<usize>| {
            let n: usize = d.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.uniform(-0.4, 0.4) as f32).collect();
            b.add_constant(name, Tensor::from_f32(Shape::new(d), v).unwrap())
        };
        let conv = |k: usize, s: usize| {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            w.kernel_shape = vec![k, k];
            w.pads = vec![k / 2; 4];
            w.strides = vec![s; 2];
            Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group: 1 } }))
        };
        let pool = |kind, k: usize, s: usize, pad: usize, ceil: bool| {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            w.kernel_shape = vec![k, k];
            w.pads = vec![pad; 4];
            w.strides = vec![s; 2];
            w.ceil_mode = ceil;
            Op::Nn(NnOp::Pool(ir::Pool { kind, window: w, column_major_indices: false, with_indices: false }))
        };
        let relu = || Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu }));
        let mut n = 0;
        let mut node = |b: &mut GraphBuilder, op: Op, ins: Vec<ValueId>| {
            n += 1;
            b.add_node(&format!("n{n}"), op, ins.into_iter().map(Some).collect(), &[format!("v{n}")]).unwrap()[0]
        };
        let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([1, 3, 98, 98]))).unwrap();
        let w = constant(&mut b, "ws", vec![16, 3, 3, 3]);
        let h = node(&mut b, conv(3, 2), vec![x, w]);
        let h = node(&mut b, relu(), vec![h]);
        let mut h = node(&mut b, pool(ir::PoolKind::Max, 3, 2, 0, true), vec![h]);
        let mut c = 16;
        for i in 0..2 {
            let p = node(&mut b, pool(ir::PoolKind::Max, 3, 1, 1, false), vec![h]);
            let mut conv_relu = |b: &mut GraphBuilder, x: ValueId, name: &str, cin: usize, cout: usize, k: usize| {
                let (w, bias) = (constant(b, &format!("w{name}{i}"), vec![cout, cin, k, k]), constant(b, &format!("b{name}{i}"), vec![cout]));
                let y = node(b, conv(k, 1), vec![x, w, bias]);
                node(b, relu(), vec![y])
            };
            let a = conv_relu(&mut b, h, "a", c, 8, 1);
            // 40 → 40 over 24×24 takes Winograd F(4×4) in the first module
            // (a reorder on each side), over 12×12 the direct tile.
            let r3 = conv_relu(&mut b, h, "r3", c, 40, 1);
            let b3 = conv_relu(&mut b, r3, "b3", 40, 40, 3);
            let r5 = conv_relu(&mut b, h, "r5", c, 8, 1);
            let b5 = conv_relu(&mut b, r5, "b5", 8, 8, 5);
            let bp = conv_relu(&mut b, p, "p", c, 8, 1);
            h = node(&mut b, Op::Movement(kann_ir::ops::movement::MovementOp::Concat { axis: 1 }), vec![a, b3, b5, bp]);
            c = 64;
            if i == 0 {
                h = node(&mut b, pool(ir::PoolKind::Average { count_include_pad: false }, 3, 2, 0, true), vec![h]);
            }
        }
        let y = node(&mut b, Op::Nn(NnOp::GlobalPool(ir::GlobalPool { kind: ir::PoolKind::Average { count_include_pad: false } })), vec![h]);
        b.add_output(y);
        b.finish().unwrap()
    }

    /// Whether x86-64-v3 kernels run on this CPU.
    fn v3_runs_here() -> bool {
        let cpu = CpuFeatures::detect();
        Arch::X86_64V3.required_features().difference(cpu.features).is_empty() && Arch::X86_64V3.family().is_none_or(|f| f == cpu.family)
    }

    /// `g` compiled for x86-64-v3 on `clusters`, checked against the
    /// reference, and its steps' kernel names (`what` prefixes a failure).
    fn compiled_v3(g: &Graph, clusters: usize, what: &str) -> (crate::Compiled, Vec<String>) {
        let c = check_against_reference_on(g.clone(), clusters, Arch::X86_64V3).unwrap_or_else(|e| panic!("{what}{clusters} clusters: {e}"));
        let names = c.program.steps.iter().map(|s| s.kernel.name()).collect();
        (c, names)
    }

    /// An RGB stem, then a DenseNet-like block over 16×16: three layers of
    /// BN + ReLU (pre-activation, on the growing concat), 1×1 (its BN
    /// folded), ReLU, 3×3 to 8 channels, concatenated; a transition (BN +
    /// ReLU, 1×1, 2×2 average pool); a last BN + ReLU and the global pool.
    fn dense_block(rng: &mut Rng) -> Graph {
        let mut b = GraphBuilder::new("dense", None);
        let mut constant = |b: &mut GraphBuilder, name: &str, d: Vec<usize>, lo: f64, hi: f64| {
            let n: usize = d.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.uniform(lo, hi) as f32).collect();
            b.add_constant(name, Tensor::from_f32(Shape::new(d), v).unwrap())
        };
        let conv = |k: usize, s: usize| {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            w.kernel_shape = vec![k, k];
            w.pads = vec![k / 2; 4];
            w.strides = vec![s; 2];
            Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group: 1 } }))
        };
        let relu = || Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu }));
        let mut n = 0;
        let mut node = |b: &mut GraphBuilder, op: Op, ins: Vec<ValueId>| {
            n += 1;
            b.add_node(&format!("n{n}"), op, ins.into_iter().map(Some).collect(), &[format!("v{n}")]).unwrap()[0]
        };
        macro_rules! bn_relu {
            ($b:expr, $x:expr, $c:expr, $name:expr) => {{
                let name = $name;
                let scale = constant($b, &format!("{name}s"), vec![$c], 0.5, 1.5);
                let bias = constant($b, &format!("{name}b"), vec![$c], -0.5, 0.5);
                let mean = constant($b, &format!("{name}m"), vec![$c], -0.5, 0.5);
                let var = constant($b, &format!("{name}v"), vec![$c], 0.5, 2.0);
                let y = node($b, Op::Nn(NnOp::BatchNorm(ir::BatchNorm { epsilon: 1e-5 })), vec![$x, scale, bias, mean, var]);
                node($b, relu(), vec![y])
            }};
        }
        let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([1, 3, 32, 32]))).unwrap();
        let w = constant(&mut b, "ws", vec![16, 3, 3, 3], -0.4, 0.4);
        let mut h = node(&mut b, conv(3, 2), vec![x, w]);
        let mut c = 16;
        for i in 0..3 {
            let a = bn_relu!(&mut b, h, c, format!("pre{i}"));
            let w1 = constant(&mut b, &format!("w1{i}"), vec![16, c, 1, 1], -0.3, 0.3);
            let a = node(&mut b, conv(1, 1), vec![a, w1]);
            let a = bn_relu!(&mut b, a, 16, format!("mid{i}"));
            let w3 = constant(&mut b, &format!("w3{i}"), vec![8, 16, 3, 3], -0.3, 0.3);
            let a = node(&mut b, conv(3, 1), vec![a, w3]);
            h = node(&mut b, Op::Movement(kann_ir::ops::movement::MovementOp::Concat { axis: 1 }), vec![h, a]);
            c += 8;
        }
        let t = bn_relu!(&mut b, h, c, "trans");
        let wt = constant(&mut b, "wt", vec![16, c, 1, 1], -0.3, 0.3);
        let t = node(&mut b, conv(1, 1), vec![t, wt]);
        let mut avg = ir::Window::new(ir::AutoPad::NotSet);
        avg.kernel_shape = vec![2, 2];
        avg.strides = vec![2, 2];
        let t = node(&mut b, Op::Nn(NnOp::Pool(ir::Pool { kind: ir::PoolKind::Average { count_include_pad: false }, window: avg, column_major_indices: false, with_indices: false })), vec![t]);
        let t = bn_relu!(&mut b, t, 16, "last");
        let y = node(&mut b, Op::Nn(NnOp::GlobalPool(ir::GlobalPool { kind: ir::PoolKind::Average { count_include_pad: false } })), vec![t]);
        b.add_output(y);
        b.finish().unwrap()
    }

    #[test]
    fn pre_activation_batch_norms_keep_a_dense_block_blocked() {
        if !v3_runs_here() {
            return;
        }
        let mut rng = Rng::new(103);
        let g = dense_block(&mut rng);
        for clusters in [1, 2] {
            let (_, names) = compiled_v3(&g, clusters, "");
            let count = |part: &str| names.iter().filter(|n| n.contains(part)).count();
            // The five pre-activation batch norms blocked (the mid ones
            // fold into their 1×1), the concats zero-copy, no reorder.
            assert_eq!(count("f32_batchnorm_relu_nchw8c"), 5, "{names:?}");
            assert_eq!((count("reorder_to_nchw8c"), count("reorder_to_nchw_"), count("concat")), (0, 0, 0), "{names:?}");
        }
    }

    #[test]
    fn concats_and_pools_stay_blocked() {
        if !v3_runs_here() {
            return;
        }
        let mut rng = Rng::new(101);
        let g = inception(&mut rng);
        for clusters in [1, 2] {
            let (_, names) = compiled_v3(&g, clusters, "");
            let count = |part: &str| names.iter().filter(|n| n.contains(part)).count();
            // Every pool and convolution blocked but the stem (which writes
            // blocked) and the Winograd 3×3 (which reads NCHW and writes its
            // slab of the concat through a reorder); the concats zero-copy.
            assert_eq!((count("pool2d_nchw8c"), count("conv1x1_nchw8c"), count("conv2d_nchw8c"), count("winograd")), (4, 8, 3, 1), "{names:?}");
            assert_eq!((count("reorder_to_nchw8c"), count("reorder_to_nchw_")), (1, 1), "{names:?}");
            assert_eq!(count("concat"), 0, "{names:?}");
        }
    }

    #[test]
    fn blocked_regions_match_the_reference_with_no_reorders() {
        if !v3_runs_here() {
            return;
        }
        let mut rng = Rng::new(97);
        for gate in [false, true] {
            let g = network(&mut rng, gate);
            for clusters in [1, 2] {
                let (c, names) = compiled_v3(&g, clusters, &format!("gate {gate}, "));
                let count = |prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
                // Every convolution but the RGB stem blocked (the gates' too).
                assert_eq!(count("f32_conv1x1_nchw8c"), 6 + usize::from(gate) * 6, "{names:?}");
                assert_eq!(count("f32_dwconv2d_nchw8c"), 3, "{names:?}");
                assert_eq!(count("f32_conv2d_nchw8c"), 4, "{names:?}");
                assert_eq!(count("f32_globalavgpool_nchw8c"), 1 + usize::from(gate) * 3, "{names:?}");
                // No reorder: the stem writes blocked (a strided one, as
                // ConvGrouped), and one-pixel planes (the pools', the
                // gates') are both layouts at once.
                assert_eq!((count("f32_reorder_to_nchw8c"), count("f32_reorder_to_nchw_")), (0, 0), "{names:?}");
                assert!(c.program.steps.iter().any(|s| matches!(&s.kernel, kann_kernels::Kernel::ConvGrouped(k) if k.blocked_output)), "{names:?}");
            }
        }
    }
}
