//! A 1×1 convolution and the depthwise convolution that alone reads it,
//! lowered together to one [`PointwiseDepthwise`] step when the expanded
//! tensor between them is too big to stay in the cache (MobileNet's and
//! EfficientNet's expand layers on the large maps), on AVX-512 (see
//! [`defer_pointwise`]).
//!
//! Nodes lower in order, so the pointwise node, when it qualifies, only
//! records itself ([`defer_pointwise`]: the depthwise reader was checked
//! then) and its output is never materialised; the depthwise node then
//! lowers both ([`lower_fused_depthwise`]).

use super::{depthwise_kernel, epilogue, flops, output, pads_u64, Extra};
use crate::lower::{require_f32, LowerCx, Operand};
use kann_ir::ops::nn::{self as ir, NnOp};
use kann_ir::{Node, NodeId, Op, ValueId};
use kann_kernels::depthwise::pack_dwconv_weights;
use kann_kernels::packed::pack::pack_a;
use kann_kernels::pw_dw::PointwiseDepthwise;
use kann_kernels::{Activation, Epilogue, Kernel, KernelImpl};

/// Bytes of expanded tensor from which fusing pays (three quarters of a
/// 2 MiB L2). Below, the unfused pair runs from the cache anyway and the
/// fused kernel's finer steps cost more than they save: MobileNetV2 at 2
/// clusters, fused against unfused, 16→96 on 112×112 (4.8 MB) 0.42 against
/// 0.52 ms, 24→144 on 56×56 (1.8 MB) 0.27 against 0.28 (0.20 against 0.22
/// with stride 2), but 32→192 on 28×28 (0.6 MB) 0.15 against 0.12.
const MIN_EXPANDED_BYTES: usize = 3 << 19;

/// Input columns (rows × width) a band aims at: its packed input and
/// expanded rows stay in L2 while the halo rows stay a small share.
const BAND_COLUMNS: usize = 4096;

/// A pointwise convolution waiting for its depthwise reader.
pub(in crate::lower) struct PendingPointwise {
    /// Its input X and channels.
    x: ValueId,
    in_channels: usize,
    /// Its weights packed as the GEMM's A.
    weights: Operand,
    bias: Option<ValueId>,
    activation: Activation,
    flops: u64,
}

/// The depthwise reader of a pointwise output `y` (`yd` its dims), if it
/// qualifies: a 2-D depthwise convolution of multiplier 1 with constant
/// weights and no residual. Returns its attributes and weights' dims.
fn depthwise_reader<'g>(cx: &LowerCx<'g>, y: ValueId, yd: &[usize]) -> Option<(&'g ir::ConvAttrs, Vec<usize>, bool)> {
    let reader_id = cx.sole_reader(y)?;
    if cx.blocked.has_node(reader_id) {
        // It reads y channel-blocked, on its own.
        return None;
    }
    let reader = cx.graph.node(reader_id);
    let attrs = match &reader.op {
        Op::Nn(NnOp::Conv(c)) => &c.attrs,
        Op::Fused(f) if !f.residual => match f.base.as_ref() {
            Op::Nn(NnOp::Conv(c)) => &c.attrs,
            _ => return None,
        },
        _ => return None,
    };
    let w = reader.inputs.get(1).copied().flatten()?;
    let wd = cx.info(w).shape.dims().to_vec();
    let depthwise = reader.inputs.first().copied().flatten() == Some(y) && wd.len() == 4 && wd[1] == 1 && attrs.group == yd[1] && wd[0] == yd[1];
    let bias = reader.inputs.get(2).copied().flatten().is_some();
    (depthwise && cx.constant(w).is_some() && cx.info(w).dtype == kann_tensor::DType::F32).then_some((attrs, wd, bias))
}

/// Depthwise output rows per band: about [`BAND_COLUMNS`] input columns,
/// in a multiple of `clusters` bands of equal height.
fn band_rows(oh: usize, iw: usize, stride: usize, reach: usize, clusters: usize) -> usize {
    let target = ((BAND_COLUMNS / iw.max(1)).saturating_sub(reach) / stride.max(1)).max(1);
    let bands = oh.div_ceil(target).next_multiple_of(clusters.max(1)).min(oh).max(1);
    oh.div_ceil(bands)
}

/// Records a qualifying pointwise convolution instead of lowering it:
/// 1×1, stride 1, unpadded, one group, constant weights, no residual, its
/// output read by a qualifying depthwise convolution alone, and big.
/// Returns whether it did.
#[allow(clippy::too_many_arguments)]
pub(super) fn defer_pointwise(cx: &mut LowerCx, _id: NodeId, node: &Node, attrs: &ir::ConvAttrs, extra: Extra, plan: &ir::WindowPlan, w: &[f32]) -> Result<bool, String> {
    let x = cx.input(node, 0)?;
    let xd = cx.info(x).shape.dims().to_vec();
    let pointwise = xd.len() == 4
        && attrs.group == 1
        && plan.kernel == [1, 1]
        && plan.strides == [1, 1]
        && plan.dilations == [1, 1]
        && plan.pad_begin.iter().chain(&plan.pad_end).all(|&p| p == 0)
        && extra.residual.is_none();
    let y = output(node, 0)?;
    let yd = cx.info(y).shape.dims().to_vec();
    // The fused kernel pays where its depthwise part runs from registers
    // (AVX-512). With AVX2 its per-channel plane path made it slower than
    // the pair on every MobileNetV2 expand layer (Zen 3, `pw_dw`'s
    // fused_vs_pair_timing: 24→144 on 56×56 1.11-2.28 ms fused against
    // 0.96-1.09 paired, with stride 2 1.02-1.53 against 0.55-0.80; 16→96 on
    // 112×112 /2 about even).
    if crate::lower::kernel_isa(cx.arch) != kann_kernels::packed::Isa::Avx512 {
        return Ok(false);
    }
    if !pointwise || yd.iter().product::<usize>() * 4 < MIN_EXPANDED_BYTES {
        return Ok(false);
    }
    let Some((dw_attrs, wd, dw_bias)) = depthwise_reader(cx, y, &yd) else {
        return Ok(false);
    };
    let dplan = dw_attrs.plan(&yd, &wd)?;
    if dplan.pad_begin.iter().any(|&p| p < 0) {
        return Ok(false);
    }
    let dw = depthwise_kernel(cx, &yd, &wd, &dplan, Epilogue { bias: dw_bias, ..Epilogue::default() })?;
    let bias = cx.optional_input(node, 2);
    let kernel = fused_kernel(cx, xd[1], dw, Epilogue { bias: bias.is_some(), residual: false, activation: extra.activation });
    if kernel.check(3 + usize::from(bias.is_some()) + usize::from(dw_bias), 1).is_err() {
        return Ok(false);
    }
    if let Some(b) = bias {
        require_f32(cx, b, "B")?;
    }
    let isa = crate::lower::kernel_isa(cx.arch);
    let weights = cx.weights_f32(&pack_a(w, yd[1], xd[1], isa, kernel.k_block()));
    let flops = flops(cx, node);
    cx.pending_pointwise.insert(y, PendingPointwise { x, in_channels: xd[1], weights, bias, activation: extra.activation, flops });
    Ok(true)
}

/// The fused kernel of a pointwise convolution over `in_channels` and the
/// depthwise convolution `dw` reading it.
fn fused_kernel(cx: &LowerCx, in_channels: usize, dw: kann_kernels::depthwise::DepthwiseConv, pointwise: Epilogue) -> PointwiseDepthwise {
    let reach = (dw.kernel[0].max(1) - 1) * dw.dilations[0];
    let band = band_rows(dw.output[0] as usize, dw.input[1] as usize, dw.strides[0] as usize, reach as usize, cx.clusters);
    PointwiseDepthwise { in_channels: in_channels as u64, isa: dw.isa, depthwise: dw, pointwise, band_rows: band as u64 }
}

/// Lowers a depthwise convolution whose input a deferred pointwise
/// convolution produces, both as one step. Returns whether it did.
pub(super) fn lower_fused_depthwise(cx: &mut LowerCx, id: NodeId, node: &Node, extra: Extra, plan: &ir::WindowPlan, w: &[f32]) -> Result<bool, String> {
    let y_in = cx.input(node, 0)?;
    let Some(p) = cx.pending_pointwise.remove(&y_in) else {
        return Ok(false);
    };
    let (yd, wd) = (cx.info(y_in).shape.dims().to_vec(), cx.info(cx.input(node, 1)?).shape.dims().to_vec());
    pads_u64(&plan.pad_begin)?;
    let mut inputs = vec![Operand::Value(p.x), p.weights];
    inputs.extend(p.bias.map(Operand::Value));
    inputs.push(cx.weights_f32(&pack_dwconv_weights(w)));
    let b = cx.optional_input(node, 2);
    if let Some(b) = b {
        require_f32(cx, b, "B")?;
        inputs.push(Operand::Value(b));
    }
    let dw = depthwise_kernel(cx, &yd, &wd, plan, epilogue(&mut inputs, b.is_some(), extra))?;
    let kernel = fused_kernel(cx, p.in_channels, dw, Epilogue { bias: p.bias.is_some(), residual: false, activation: p.activation });
    kernel.check(inputs.len(), 1).map_err(|e| format!("the fused pointwise-depthwise step: {e}"))?;
    let fl = p.flops + flops(cx, node);
    let y = output(node, 0)?;
    cx.push(id, Kernel::PointwiseDepthwise(kernel), inputs, vec![Operand::Value(y)], fl);
    Ok(true)
}
