//! Lowering of the nn family: Conv, ConvTranspose, Gemm, MatMul, pooling
//! (windowed and global), LRN, BatchNormalization, InstanceNormalization,
//! LayerNormalization, RMSNormalization, GroupNormalization,
//! LpNormalization and Softmax/LogSoftmax/Hardmax, each to one kernel step;
//! and the fused Conv/Gemm/MatMul (+ residual, + activation) the compiler's
//! fusion passes make, to the same kernels with an epilogue. Other nn ops
//! (quantised, recurrent, attention…) are reported as not lowered.
//!
//! Shapes and attributes are read from the IR structs (their `plan`/`layout`
//! helpers resolve auto_pad, defaults and legacy axis forms), so the kernels
//! get fully resolved geometry.

pub(crate) mod blocked;
mod pw_dw;

pub(super) use pw_dw::PendingPointwise;
use super::{require_f32, LowerCx, LowerResult, Operand};
use kann_ir::ops::fused::{Fused, FusedActivation};
use kann_ir::ops::nn::matmul::plan_matmul;
use kann_ir::ops::nn::{self as ir, NnOp};
use kann_ir::{Node, NodeId, Op, TensorInfo, ValueId};
use kann_kernels::conv::{pack_conv_weights, Conv, ConvTranspose};
use kann_kernels::conv_direct::ConvDirect;
use kann_kernels::conv_grouped::{pack_grouped_weights, ConvGrouped};
use kann_kernels::blocked::global_pool::BlockedGlobalPool;
use kann_kernels::conv_pool::ConvPool;
use kann_kernels::KernelImpl as _;
use kann_kernels::depthwise::{pack_dwconv_weights, DepthwiseConv};
use kann_kernels::conv_gemm::{pack_conv_gemm_weights, ConvGemm, GemmAxis, Im2colPack};
use kann_kernels::fc_gemm::{pack_fc_weights, FcGemm};
use kann_kernels::gemm::{matrix_strides, pack_gemm_b, Gemm};
use kann_kernels::norm::{BatchNorm, GroupNorm, InstanceNorm, LayerNorm, LpNorm, Lrn};
use kann_kernels::pool::global::GlobalPool;
use kann_kernels::pool::plane2d::Pool2d;
use kann_kernels::pool::{Indices, Pool, PoolKind};
use kann_kernels::softmax::{Softmax, SoftmaxKind};
use kann_kernels::winograd::{pack_winograd_weights, WinogradAxis, WinogradConv, WinogradTile};
use kann_kernels::{Activation, Epilogue, Kernel};
use kann_tensor::DType;

/// What a fused node adds to its base op: the residual input, the
/// activation and a Conv's input scale.
#[derive(Clone, Copy, Default)]
struct Extra {
    residual: Option<ValueId>,
    activation: Activation,
    scale: Option<ValueId>,
}

pub(super) fn lower(cx: &mut LowerCx, id: NodeId, node: &Node, op: &NnOp) -> LowerResult {
    let none = Extra::default();
    match op {
        NnOp::Conv(c) => lower_conv(cx, id, node, &c.attrs, none),
        NnOp::ConvTranspose(c) => lower_conv_transpose(cx, id, node, c),
        NnOp::Gemm(g) => lower_gemm(cx, id, node, g, none),
        NnOp::MatMul => lower_matmul(cx, id, node, none),
        NnOp::Pool(p) => lower_pool(cx, id, node, p),
        NnOp::GlobalPool(p) => lower_global_pool(cx, id, node, p),
        NnOp::Lrn(l) => lower_lrn(cx, id, node, l),
        NnOp::BatchNorm(b) => lower_batch_norm(cx, id, node, b, Activation::None),
        NnOp::InstanceNorm(n) => lower_instance_norm(cx, id, node, n),
        NnOp::LayerNorm(n) => lower_layer_norm(cx, id, node, n),
        NnOp::RmsNorm(n) => lower_rms_norm(cx, id, node, n),
        NnOp::GroupNorm(n) => lower_group_norm(cx, id, node, n),
        NnOp::LpNorm(n) => lower_lp_norm(cx, id, node, n),
        NnOp::Softmax(s) => lower_softmax(cx, id, node, s),
        other => Err(format!("the compiler does not lower {} yet", other.name())),
    }
}

/// A Conv/Gemm/MatMul/Add with a fused epilogue.
pub(super) fn lower_fused(cx: &mut LowerCx, id: NodeId, node: &Node, f: &Fused) -> LowerResult {
    if let Op::Elementwise(_) = f.base.as_ref() {
        // A fused Add belongs to the element-wise lowering.
        return super::elementwise::lower_fused_add(cx, id, node, f);
    }
    let residual = if f.residual {
        let r = cx.input(node, f.base_inputs)?;
        require_f32(cx, r, "the residual")?;
        Some(r)
    } else {
        None
    };
    let scale = match f.scale_slot() {
        Some(slot) => {
            let v = cx.input(node, slot)?;
            require_f32(cx, v, "the input scale")?;
            Some(v)
        }
        None => None,
    };
    let extra = Extra { residual, activation: f.activation.map_or(Activation::None, activation), scale };
    if scale.is_some() && !matches!(f.base.as_ref(), Op::Nn(NnOp::Conv(_))) {
        return Err(format!("the compiler lowers an input scale only into a Conv, not {}", f.describe()));
    }
    match f.base.as_ref() {
        Op::Nn(NnOp::Conv(c)) => lower_conv(cx, id, node, &c.attrs, extra),
        Op::Nn(NnOp::Gemm(g)) => lower_gemm(cx, id, node, g, extra),
        Op::Nn(NnOp::MatMul) => lower_matmul(cx, id, node, extra),
        Op::Nn(NnOp::BatchNorm(b)) if extra.residual.is_none() => lower_batch_norm(cx, id, node, b, extra.activation),
        _ => Err(format!("the compiler does not lower fused {} yet", f.describe())),
    }
}

/// The kernels' form of a fused activation.
fn activation(a: FusedActivation) -> Activation {
    match a {
        FusedActivation::Relu => Activation::Relu,
        FusedActivation::Clip { min, max } => Activation::Clip { min: min as f32, max: max as f32 },
        FusedActivation::LeakyRelu { alpha } => Activation::LeakyRelu { alpha: alpha as f32 },
        FusedActivation::Sigmoid => Activation::Sigmoid,
        FusedActivation::HardSigmoid { alpha, beta } => Activation::HardSigmoid { alpha: alpha as f32, beta: beta as f32 },
        FusedActivation::HardSwish => Activation::HardSwish,
        FusedActivation::Silu => Activation::Silu,
        FusedActivation::Tanh => Activation::Tanh,
    }
}

/// The node's floating-point operations, as its op counts them.
fn flops(cx: &LowerCx, node: &Node) -> u64 {
    let ins: Vec<Option<&TensorInfo>> = node.inputs.iter().map(|i| i.map(|v| cx.info(v))).collect();
    let outs: Vec<TensorInfo> = node.outputs.iter().map(|&v| cx.info(v).clone()).collect();
    node.op.flops(&ins, &outs)
}

fn dims_u64(d: &[usize]) -> Vec<u64> {
    d.iter().map(|&v| v as u64).collect()
}

/// Output `i` of a node.
fn output(node: &Node, i: usize) -> Result<ValueId, String> {
    node.outputs.get(i).copied().ok_or_else(|| format!("output #{i} is missing"))
}

/// A value's f32 data if it is a constant.
fn constant_f32<'g>(cx: &LowerCx<'g>, v: ValueId) -> Result<Option<&'g [f32]>, String> {
    cx.constant(v).map(|t| t.as_f32().map_err(|e| e.to_string())).transpose()
}

/// A window plan's padding as u64 (forward windows never pad negatively).
fn pads_u64(p: &[i64]) -> Result<Vec<u64>, String> {
    p.iter().map(|&v| u64::try_from(v).map_err(|_| format!("negative padding {v} is not supported"))).collect()
}

/// Appends the residual operand (when fused) and returns the epilogue.
fn epilogue(inputs: &mut Vec<Operand>, bias: bool, extra: Extra) -> Epilogue {
    if let Some(r) = extra.residual {
        inputs.push(Operand::Value(r));
    }
    Epilogue { bias, residual: extra.residual.is_some(), activation: extra.activation }
}

fn lower_conv(cx: &mut LowerCx, id: NodeId, node: &Node, attrs: &ir::ConvAttrs, extra: Extra) -> LowerResult {
    let (x, w) = (cx.input(node, 0)?, cx.input(node, 1)?);
    let b = cx.optional_input(node, 2);
    require_f32(cx, x, "X")?;
    require_f32(cx, w, "W")?;
    let (xd, wd) = (cx.info(x).shape.dims(), cx.info(w).shape.dims());
    let plan = attrs.plan(xd, wd)?;
    if extra.scale.is_some() && cx.blocked.has_node(id) {
        if let Some(wv) = constant_f32(cx, w)? {
            return blocked::lower(cx, id, node, extra, &plan, wv);
        }
    }
    if extra.scale.is_some() {
        // Only the packed GEMM's pointwise path scales B's rows as it builds them.
        let pointwise = crate::passes::fuse_channel_scale::is_pointwise(attrs.group, &plan, xd);
        return match constant_f32(cx, w)? {
            Some(wv) if pointwise => lower_conv_gemm(cx, id, node, attrs, extra, &plan, wv),
            _ => Err("an input scale needs a pointwise (1×1, stride 1, unpadded, one group) Conv with constant weights".into()),
        };
    }
    if let Some(wv) = constant_f32(cx, w)? {
        if cx.blocked.has_node(id) {
            return blocked::lower(cx, id, node, extra, &plan, wv);
        }
        if cx.blocked.has_stem(id) {
            // A stem writing a blocked region's input: ConvGrouped's path.
            return lower_conv_direct(cx, id, node, extra, &plan, wv);
        }
        if pw_dw::lower_fused_depthwise(cx, id, node, extra, &plan, wv)? || pw_dw::defer_pointwise(cx, id, node, attrs, extra, &plan, wv)? {
            return Ok(());
        }
        if xd.len() == 4 && attrs.group == xd[1] && wd[0] % xd[1] == 0 {
            return lower_depthwise(cx, id, node, extra, &plan, wv);
        }
        let choice = if xd.len() == 4 && cx.winograd { winograd_choice(attrs.group, xd, wd, &plan, crate::lower::kernel_isa(cx.arch), cx.clusters) } else { None };
        if let Some((axis, tile)) = choice {
            return lower_winograd(cx, id, node, extra, &plan, wv, axis, tile);
        }
        let isa = crate::lower::kernel_isa(cx.arch);
        if takes_grouped(attrs.group, xd, wd, &plan, isa) || takes_direct(attrs.group, xd, &plan, isa) {
            return lower_conv_direct(cx, id, node, extra, &plan, wv);
        }
        if xd.len() == 4 && attrs.group < xd[1] {
            return lower_conv_gemm(cx, id, node, attrs, extra, &plan, wv);
        }
    }
    // The portable kernel reads W in the ONNX layout: a computed W works too.
    let w_op = match constant_f32(cx, w)? {
        Some(wv) => cx.weights_f32(&pack_conv_weights(wv)),
        None => Operand::Value(w),
    };
    let mut inputs = vec![Operand::Value(x), w_op];
    if let Some(b) = b {
        require_f32(cx, b, "B")?;
        inputs.push(Operand::Value(b));
    }
    let kernel = Conv {
        batch: xd[0] as u64,
        in_channels: xd[1] as u64,
        out_channels: wd[0] as u64,
        group: attrs.group as u64,
        input: dims_u64(&xd[2..]),
        kernel: dims_u64(&plan.kernel),
        strides: dims_u64(&plan.strides),
        dilations: dims_u64(&plan.dilations),
        pad_begin: pads_u64(&plan.pad_begin)?,
        output: dims_u64(&plan.out),
        epilogue: epilogue(&mut inputs, b.is_some(), extra),
    };
    let y = output(node, 0)?;
    cx.push(id, Kernel::Conv(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

/// The packed-GEMM ISA of the target arch.
/// The work axis of a GEMM convolution: output columns, unless the images
/// are small (ResNet's 7×7 and 14×14 stages) while there are enough channel
/// panels to share, where splitting output channels wastes fewer tile columns.
fn gemm_axis(batch: u64, plane: u64, channel_panels: u64) -> GemmAxis {
    if plane <= 256 && batch * channel_panels >= 8 {
        GemmAxis::Channels
    } else {
        GemmAxis::Columns
    }
}

/// A 2-D convolution with constant weights and groups of more than one
/// channel, on the packed GEMM of the target's ISA. Split by output
/// channels over several clusters, a convolution that gathers its B (any
/// but a 1×1 stride-1 unpadded one, whose B is X itself) on AVX2 or
/// portable code first packs B in a step of its own, which the clusters
/// share, and the GEMM reads it in place ([`GemmAxis::PackedChannels`]):
/// their gathers copy short runs one by one. With AVX-512 each cluster
/// gathers all of B itself ([`GemmAxis::Channels`]): its vector gathers
/// cost less than the shared step's barrier and the reads of the other
/// cluster's half, written to lines the other core last held (2 clusters,
/// interleaved: RegNetX-1.6GF 16.5 → 15.6 ms, ResNet-50 29.3 → 28.5,
/// Inception v2 13.6 → 13.4; ResNet-50's 3×3/2 on 28×28 991 → 836 µs a
/// frame, its 7×7 3×3 convolutions ~1115 → ~1050; DenseNet-121 and
/// Inception v1 within ±1 %).
fn lower_conv_gemm(cx: &mut LowerCx, id: NodeId, node: &Node, attrs: &ir::ConvAttrs, extra: Extra, plan: &ir::WindowPlan, w: &[f32]) -> LowerResult {
    let (x, b) = (cx.input(node, 0)?, cx.optional_input(node, 2));
    let (xd, wd) = (cx.info(x).shape.dims(), cx.info(cx.input(node, 1)?).shape.dims());
    let isa = crate::lower::kernel_isa(cx.arch);
    // The packed weights (input 1) come once the kernel says their K blocks.
    let mut inputs = vec![Operand::Value(x)];
    if let Some(b) = b {
        require_f32(cx, b, "B")?;
        inputs.push(Operand::Value(b));
    }
    let two = |v: &[usize]| -> Result<[u64; 2], String> { <[u64; 2]>::try_from(dims_u64(v)).map_err(|_| format!("a 2-D conv has {} spatial values", v.len())) };
    let pad_begin = <[u64; 2]>::try_from(pads_u64(&plan.pad_begin)?).map_err(|_| "a 2-D conv needs two pads".to_string())?;
    let (out, group, out_channels) = (two(&plan.out)?, attrs.group as u64, wd[0] as u64);
    let panels = group * (out_channels / group).div_ceil(isa.mr() as u64);
    let kernel = ConvGemm {
        batch: xd[0] as u64,
        in_channels: xd[1] as u64,
        out_channels,
        group,
        input: two(&xd[2..])?,
        kernel: two(&plan.kernel)?,
        strides: two(&plan.strides)?,
        dilations: two(&plan.dilations)?,
        pad_begin,
        output: out,
        epilogue: epilogue(&mut inputs, b.is_some(), extra),
        isa,
        axis: gemm_axis(xd[0] as u64, out[0] * out[1], panels),
        input_scale: extra.scale.is_some(),
    };
    inputs.insert(1, cx.weights_f32(&pack_conv_gemm_weights(w, wd[0], attrs.group, isa, kernel.k_block())));
    if let Some(sv) = extra.scale {
        inputs.push(Operand::Value(sv));
    }
    let pointwise = kernel.kernel == [1, 1] && kernel.strides == [1, 1] && kernel.pad_begin == [0, 0] && kernel.input == kernel.output;
    let kernel = if kernel.axis == GemmAxis::Channels && cx.clusters > 1 && !pointwise && isa != kann_kernels::packed::Isa::Avx512 {
        let kernel = ConvGemm { axis: GemmAxis::PackedChannels, ..kernel };
        let pack = Im2colPack { conv: kernel.clone() };
        let packed = cx.temp(4 * pack.output_floats() as u64);
        cx.push(id, Kernel::Im2colPack(pack), vec![Operand::Value(x)], vec![packed], 0);
        inputs[0] = packed;
        kernel
    } else {
        kernel
    };
    let y = output(node, 0)?;
    cx.push(id, Kernel::ConvGemm(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

/// Whether a 2-D convolution runs as [`ConvDirect`]: an RGB-like stem (one
/// group, at most 4 input channels) with a window of at least 27 taps in
/// all (3×3 over RGB) over output rows at least a register tile wide,
/// horizontal stride 1 or 2. Its im2col would be 27 to 49 times the input,
/// gathered by short strided runs: ResNet-50's 7×7/2 stem 2.1 → 1.6 ms at
/// one cluster. The 3×3 RGB stems measured noise-level in whole networks
/// at first; over six interleaved rounds their step ran 25–35 % faster
/// (SqueezeNet 1.1's at 2 clusters 350–410 → 250–270 µs a cluster) and
/// SqueezeNet and MobileNetV2 1–5 % faster in all (EfficientNet-Lite0
/// within its noise).
///
/// Also, without AVX-512, a grouped convolution of a few channels a group
/// (2 to 64) and a window wider than 1×1 over output rows at least 7 wide:
/// RegNet-X's 3×3 of 24 channels a group, whose im2col is 9 times the input
/// for GEMMs of 24 rows (Zen 3, 3 to 38 groups on 56×56 to 14×14 maps: the
/// grouped GEMM 2.1-4.3 ms, the direct kernel 1.6-2.9; on 7×7 outputs,
/// since the direct kernel copies group by group, 912 channels 3×3 830 →
/// 440 µs and 3×3/2 from 14×14 1025 → 650). AVX-512's GEMM gathers its B
/// with vector gathers and was not measured against it.
fn takes_direct(group: usize, xd: &[usize], plan: &ir::WindowPlan, isa: kann_kernels::packed::Isa) -> bool {
    let two = |v: &[usize]| [v[0] as u64, v[1] as u64];
    let shape_ok = is_2d(xd, plan) && ConvDirect::supports(two(&plan.strides), two(&plan.dilations));
    if !shape_ok {
        return false;
    }
    let stem = group == 1 && xd[1] <= 4 && xd[1] * plan.kernel[0] * plan.kernel[1] >= 27 && plan.out[1] >= isa.nr();
    let grouped = isa != kann_kernels::packed::Isa::Avx512 && few_channel_groups(group, xd, plan) && plan.out[1] >= 7;
    stem || grouped
}

/// A 2-D convolution (NCHW) with no negative padding.
fn is_2d(xd: &[usize], plan: &ir::WindowPlan) -> bool {
    xd.len() == 4 && plan.kernel.len() == 2 && plan.out.len() == 2 && plan.strides.len() == 2 && plan.dilations.len() == 2 && plan.pad_begin.iter().all(|&p| p >= 0)
}

/// Groups of 2 to 64 input channels and a window wider than 1×1: an
/// im2col of 9 or more times the input for GEMMs of a few rows each.
fn few_channel_groups(group: usize, xd: &[usize], plan: &ir::WindowPlan) -> bool {
    let per_group = xd[1] / group.max(1);
    group > 1 && xd[1] % group == 0 && (2..=64).contains(&per_group) && plan.kernel.iter().product::<usize>() > 1
}

/// Whether a 2-D grouped convolution runs as [`ConvGrouped`]: with a SIMD
/// ISA, groups of a few input channels (as [`takes_direct`]'s) and a
/// multiple of 8 output channels (RegNet-X's 24). Alternated on one core
/// (`conv_grouped::tests::grouped_vs_direct_timing`), RegNet-X-1.6GF's
/// seven shapes (56×56 to 7×7 maps, strides 1 and 2) ran:
/// - on Zen 3 (AVX2), 1.16-1.82× as fast as the direct kernel: 86-91
///   GFLOP/s at stride 1 on 56×56 to 14×14 maps against 72-78, 66-78 at
///   stride 2 against 36-60, 73 on 7×7 maps against 47;
/// - on an Intel Xeon with AVX-512 (its 256-bit tiles), 1.04-1.63× as fast
///   as the grouped GEMM that AVX-512 builds took (50-63 GFLOP/s against
///   35-49).
fn takes_grouped(group: usize, xd: &[usize], wd: &[usize], plan: &ir::WindowPlan, isa: kann_kernels::packed::Isa) -> bool {
    let two = |v: &[usize]| [v[0] as u64, v[1] as u64];
    isa != kann_kernels::packed::Isa::Generic
        && wd.len() == 4
        && is_2d(xd, plan)
        && few_channel_groups(group, xd, plan)
        && ConvGrouped::supports(wd[0] as u64, group as u64, two(&plan.strides), two(&plan.dilations))
}

/// A stem or grouped convolution as [`ConvDirect`] (see [`takes_direct`]),
/// or as [`ConvGrouped`]: a grouped one [`takes_grouped`] picks, and with
/// AVX2 a strided stem not fused with a pool whose output channels are a
/// multiple of 8. RGB stems on 224×224, alternated on one Zen 3 core
/// (`grouped_vs_direct_timing`): 3 → 32 and 3 → 24 3×3/2, 3 → 32 5×5/2,
/// 3 → 64 and 3 → 96 7×7/2 ran 1.05-1.17× as fast as the direct kernel
/// (its 16-column tiles over a stride-2 phase copy); VGG's 3 → 64 3×3/1
/// at 0.86-0.88×, so stride-1 stems keep the direct kernel. (AlexNet's
/// grouped 5×5 over 27×27, 48 channels a group: 1.35×.) With AVX-512 (an Intel
/// Xeon core) the direct kernel's wider tiles won on stems (3 → 32 3×3/2
/// 471 µs against 580, 3 → 64 7×7/2 2754 against 3890): they stay there.
fn lower_conv_direct(cx: &mut LowerCx, id: NodeId, node: &Node, extra: Extra, plan: &ir::WindowPlan, w: &[f32]) -> LowerResult {
    let (x, b) = (cx.input(node, 0)?, cx.optional_input(node, 2));
    let (xd, wd) = (cx.info(x).shape.dims(), cx.info(cx.input(node, 1)?).shape.dims());
    let isa = crate::lower::kernel_isa(cx.arch);
    // The packed weights (input 1) come once the kernel says their K blocks.
    let mut inputs = vec![Operand::Value(x)];
    if let Some(b) = b {
        require_f32(cx, b, "B")?;
        inputs.push(Operand::Value(b));
    }
    let two = |v: &[usize]| [v[0] as u64, v[1] as u64];
    let pads = pads_u64(&plan.pad_begin)?;
    let group = xd[1] / wd[1].max(1);
    let kernel = ConvDirect {
        batch: xd[0] as u64,
        in_channels: xd[1] as u64,
        out_channels: wd[0] as u64,
        group: group as u64,
        input: two(&xd[2..]),
        kernel: two(&plan.kernel),
        strides: two(&plan.strides),
        dilations: two(&plan.dilations),
        pad_begin: [pads[0], pads[1]],
        output: two(&plan.out),
        epilogue: epilogue(&mut inputs, b.is_some(), extra),
        isa,
    };
    let y = output(node, 0)?;
    // A stem writing a blocked region's input leaves its pool to the region.
    let fused = if cx.blocked.has_value(y) { None } else { fused_with_pool(cx, y, &kernel, inputs.len() + 1) };
    let simd_grouped = isa != kann_kernels::packed::Isa::Generic && group > 1;
    let stem = isa == kann_kernels::packed::Isa::Avx2 && group == 1 && fused.is_none() && kernel.strides[1] >= 2;
    if (simd_grouped || stem) && ConvGrouped::supports(kernel.out_channels, kernel.group, kernel.strides, kernel.dilations) {
        inputs.insert(1, cx.weights_f32(&pack_grouped_weights(w, wd[0], group)));
        // A stem feeding a channel-blocked region writes its output blocked.
        let k = ConvGrouped { blocked_output: cx.blocked.has_value(y), ..ConvGrouped::from(&kernel) };
        cx.push(id, Kernel::ConvGrouped(k), inputs, vec![Operand::Value(y)], flops(cx, node));
        return Ok(());
    }
    if cx.blocked.has_value(y) {
        return Err(format!("internal: {} was to write its output channel-blocked, but it lowers to {}", node.name, kernel.name()));
    }
    inputs.insert(1, cx.weights_f32(&pack_conv_gemm_weights(w, wd[0], group, isa, kernel.k_block())));
    if let Some(fused) = fused {
        // Lowered with its pool (see lower_pool).
        let flops = flops(cx, node);
        cx.pending_direct.insert(y, PendingDirect { fused, inputs, flops });
        return Ok(());
    }
    cx.push(id, Kernel::ConvDirect(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

/// A stem convolution waiting for the MaxPool that alone reads it, as the
/// fused step.
pub(super) struct PendingDirect {
    fused: ConvPool,
    inputs: Vec<Operand>,
    flops: u64,
}

/// The stem `conv` (output `y`, `n_inputs` inputs) fused with the 2-D
/// MaxPool without indices that alone reads `y`, when there is one.
fn fused_with_pool(cx: &LowerCx, y: kann_ir::ValueId, conv: &ConvDirect, n_inputs: usize) -> Option<ConvPool> {
    let reader = cx.graph.node(cx.sole_reader(y)?);
    let Op::Nn(NnOp::Pool(p)) = &reader.op else { return None };
    let yd = cx.info(y).shape.dims();
    if p.kind != ir::PoolKind::Max || p.with_indices || yd.len() != 4 || conv.epilogue.residual {
        return None;
    }
    let pool = Pool2d::from_pool(&pool_geometry(p, yd).ok()?, conv.isa)?;
    let band_rows = conv_pool_band_rows(conv, &pool);
    let fused = ConvPool { conv: conv.clone(), pool, band_rows };
    fused.check(n_inputs, 1).is_ok().then_some(fused)
}

/// Pool output rows per band of a fused stem and pool: the convolution
/// rows a band reads fill about 512 KiB (a quarter of L2) for all channels.
fn conv_pool_band_rows(conv: &ConvDirect, pool: &Pool2d) -> u64 {
    let row_bytes = 4 * conv.out_channels * conv.output[1];
    let conv_rows = (512 << 10) / row_bytes.max(1);
    (conv_rows.saturating_sub((pool.kernel[0].max(1) - 1) * pool.dilations[0]) / pool.strides[0].max(1)).max(1)
}

/// Whether a 2-D convolution (`xd` NCHW, `wd` its weights' dims) runs by
/// Winograd F(4×4, 3×3) rather than the packed GEMM, and split how. It needs:
/// - 3×3, stride 1, dilation 1, one group (what the kernel computes);
/// - enough input and output channels (16 with the SIMD GEMM, 32 with
///   the portable one): the 36 GEMMs must be deep and tall enough for the
///   register tile, and the transforms (O(C + K) per tile) small next to
///   them (O(C · K)); with 3 input channels (an RGB stem) the GEMM wins;
/// - at least 16 tiles of 4×4 (14×14 outputs; 36 with the portable GEMM):
///   the transformed weights (36 · K · C, 4× the direct ones) stream
///   through the cache once per block of tiles, so too few tiles leave the
///   GEMMs memory-bound — on 7×7 maps (4 tiles) Winograd runs at 0.6× the
///   GEMM.
///
/// Clusters split the tiles when each gets that many; otherwise they split
/// the output channels (each streams its rows of the weights, but
/// transforms every tile's input): ResNet-50's 256-channel 14×14 layers
/// at 2 clusters split by tiles (8 each, every cluster streaming all of
/// U) took 1.1-1.2 ms against the GEMM's ~1.0.
///
/// Measured on one AVX-512 core against the packed GEMM (`cargo test
/// --release -p kann-kernels winograd_vs_gemm_timing -- --ignored`): 2.6-3.1×
/// from 56×56 to 28×28 maps (16-256 channels), 1.7-2.1× on 14×14, 1.8× at
/// 32 channels on 16×16, 0.8× with 3 input channels, 0.6× on 7×7. The
/// portable build wins 2× from 32 channels on 28×28 and larger.
///
/// With the SIMD GEMM, maps of fewer than [`f2x2_below`] F(4×4) tiles and
/// at least [`f2x2_from`] F(2×2) tiles an image (11×11 to 20×20 with
/// AVX-512; with AVX2 7×7 to 12×12, and up to 20×20 for few channels:
/// ResNet's and Inception's 14×14, SqueezeNet's 13×13) take F(2×2, 3×3): 49 tiles
/// against 4/9 of F(4×4)'s transformed weights, which every block streams
/// from memory. ResNet-50's five 256-channel 14×14 layers at 2 clusters
/// (split by tiles): 3.58 → 2.64 ms a frame; Inception v2 16.1 → 14.5 ms,
/// DenseNet-121 26.3 → 24.9, GoogLeNet 10.5 → 10.0. On 7×7 maps F(2×2)
/// (16 tiles, weights 16/9 of the direct ones) ran no faster than the
/// AVX-512 GEMM on ResNet-50's 512-channel layers; the AVX2 GEMM runs such
/// maps (49 columns: three 16-wide tiles and a column) at ~70 GFLOP/s of
/// the core's ~104, and there F(2×2) takes maps from 7×7 ([`f2x2_from`]).
fn winograd_choice(group: usize, xd: &[usize], wd: &[usize], plan: &ir::WindowPlan, isa: kann_kernels::Isa, clusters: usize) -> Option<(WinogradAxis, WinogradTile)> {
    let shape = group == 1 && plan.kernel == [3, 3] && plan.strides == [1, 1] && plan.dilations == [1, 1];
    let pads_ok = plan.pad_begin.iter().chain(&plan.pad_end).all(|&p| p >= 0);
    let per_image = |side: usize| plan.out.iter().map(|&o| o.div_ceil(side)).product::<usize>();
    let (min_channels, min_tiles) = if isa == kann_kernels::Isa::Generic { (32, 36) } else { (16, 16) };
    let small = per_image(4) < f2x2_below(isa, xd[1] * wd[0]) && per_image(2) >= f2x2_from(isa);
    let tile = if isa != kann_kernels::Isa::Generic && small { WinogradTile::F2x2 } else { WinogradTile::F4x4 };
    let tiles = xd[0] * per_image(tile.side());
    if !(shape && pads_ok && xd[1] >= min_channels && wd[0] >= min_channels && tiles >= min_tiles) {
        return None;
    }
    let clusters = clusters.max(1);
    let axis = if tiles >= min_tiles * clusters {
        WinogradAxis::Tiles
    } else if wd[0].div_ceil(isa.mr()) >= 2 * clusters {
        WinogradAxis::Channels
    } else {
        return None;
    };
    Some((axis, tile))
}

/// F(4×4) tiles an image below which the SIMD build takes F(2×2, 3×3)
/// for a layer of `products` input × output channels: 32 (maps up to
/// 20×20), or with AVX2 16 (up to 12×12) from 2^15 products. On 13×13 and
/// 14×14 maps F(2×2)'s GEMMs have 49 columns, which the AVX2 tile covers
/// as three 16-wide tiles and a column, F(4×4)'s 16: one Zen 3 core
/// (`winograd_vs_gemm_timing`, twice) ran F(4×4) 7-12 % faster from
/// 144 → 288 and 256 → 256 channels, as fast at 64 → 256 and 96 → 208, 3-5
/// % slower at 48 → 192 and 128 → 32 (F(2×2)'s transforms are cheaper).
/// ResNet-50's five 256-channel 14×14 layers in a frame: 2.2-2.4 → 1.8-1.9
/// ms each at 1 cluster, 3 % faster at 2 (split by output channels, against
/// F(2×2) split by tiles), the artifacts in turns in one process.
fn f2x2_below(isa: kann_kernels::Isa, products: usize) -> usize {
    if isa == kann_kernels::Isa::Avx2 && products >= 1 << 15 {
        16
    } else {
        32
    }
}

/// ... when it has at least this many F(2×2) tiles: 36 (11×11 maps) with
/// AVX-512, 16 (7×7) with AVX2. On one Zen 3 core, F(2×2) against the AVX2
/// GEMM (`winograd_vs_gemm_timing`, twice): 512 → 512 on 7×7 1.43-1.61×,
/// 256 → 256 1.37-1.57×, 160 → 320 and 192 → 384 1.13-1.53×, 128 → 32
/// 1.11-1.28×, 32 → 32 1.07×; 256 → 256 on 8×8 1.65-1.73×, on 10×10
/// 1.56-1.63×. ResNet-50's two 7×7 stride-1 layers 3.6 → 2.6 ms each in a
/// frame, the frame 0.97× (1 cluster) and 0.96-0.98× (2), the two
/// artifacts in turns in one process.
fn f2x2_from(isa: kann_kernels::Isa) -> usize {
    if isa == kann_kernels::Isa::Avx2 {
        16
    } else {
        36
    }
}

/// A 3×3 stride-1 convolution with constant weights by Winograd F(4×4, 3×3) or F(2×2, 3×3)
/// on the packed GEMM of the target's ISA (see [`takes_winograd`]).
#[allow(clippy::too_many_arguments)]
fn lower_winograd(cx: &mut LowerCx, id: NodeId, node: &Node, extra: Extra, plan: &ir::WindowPlan, w: &[f32], axis: WinogradAxis, tile: WinogradTile) -> LowerResult {
    let (x, b) = (cx.input(node, 0)?, cx.optional_input(node, 2));
    let xd = cx.info(x).shape.dims();
    let (isa, out_channels) = (crate::lower::kernel_isa(cx.arch), cx.info(cx.input(node, 1)?).shape.dims()[0]);
    // The packed weights (input 1) come once the kernel says their K blocks.
    let mut inputs = vec![Operand::Value(x)];
    if let Some(b) = b {
        require_f32(cx, b, "B")?;
        inputs.push(Operand::Value(b));
    }
    let two = |v: &[u64]| -> [u64; 2] { [v[0], v[1]] };
    let kernel = WinogradConv {
        batch: xd[0] as u64,
        in_channels: xd[1] as u64,
        out_channels: out_channels as u64,
        input: two(&dims_u64(&xd[2..])),
        pad_begin: two(&pads_u64(&plan.pad_begin)?),
        output: two(&dims_u64(&plan.out)),
        epilogue: epilogue(&mut inputs, b.is_some(), extra),
        isa,
        axis,
        tile,
    };
    inputs.insert(1, cx.weights_f32(&pack_winograd_weights(w, out_channels, isa, tile, kernel.k_block())));
    let y = output(node, 0)?;
    // Into a blocked region's value through a reorder (an Inception
    // branch's 3×3 writing its slab of a blocked concat).
    let fl = flops(cx, node);
    blocked::push_planar(cx, id, Kernel::Winograd(kernel), inputs, vec![Operand::Value(y)], fl)?;
    Ok(())
}

/// A 2-D depthwise convolution (`group == C`) with constant weights, on the
/// row-vectorised depthwise kernel of the target's ISA.
fn lower_depthwise(cx: &mut LowerCx, id: NodeId, node: &Node, extra: Extra, plan: &ir::WindowPlan, w: &[f32]) -> LowerResult {
    let (x, b) = (cx.input(node, 0)?, cx.optional_input(node, 2));
    let (xd, wd) = (cx.info(x).shape.dims(), cx.info(cx.input(node, 1)?).shape.dims());
    let w_op = cx.weights_f32(&pack_dwconv_weights(w));
    let mut inputs = vec![Operand::Value(x), w_op];
    if let Some(b) = b {
        require_f32(cx, b, "B")?;
        inputs.push(Operand::Value(b));
    }
    let kernel = depthwise_kernel(cx, xd, wd, plan, epilogue(&mut inputs, b.is_some(), extra))?;
    let y = output(node, 0)?;
    cx.push(id, Kernel::DepthwiseConv(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

/// The depthwise kernel of X `xd` and W `wd` (`[M, 1, kh, kw]`).
fn depthwise_kernel(cx: &LowerCx, xd: &[usize], wd: &[usize], plan: &ir::WindowPlan, epilogue: Epilogue) -> Result<DepthwiseConv, String> {
    let two = |v: &[usize]| -> Result<[u64; 2], String> { <[u64; 2]>::try_from(dims_u64(v)).map_err(|_| format!("a 2-D conv has {} spatial values", v.len())) };
    let pad_begin = <[u64; 2]>::try_from(pads_u64(&plan.pad_begin)?).map_err(|_| "a 2-D conv needs two pads".to_string())?;
    Ok(DepthwiseConv {
        batch: xd[0] as u64,
        in_channels: xd[1] as u64,
        out_channels: wd[0] as u64,
        input: two(&xd[2..])?,
        kernel: two(&plan.kernel)?,
        strides: two(&plan.strides)?,
        dilations: two(&plan.dilations)?,
        pad_begin,
        output: two(&plan.out)?,
        epilogue,
        isa: crate::lower::kernel_isa(cx.arch),
    })
}

fn lower_conv_transpose(cx: &mut LowerCx, id: NodeId, node: &Node, ct: &ir::ConvTranspose) -> LowerResult {
    let (x, w) = (cx.input(node, 0)?, cx.input(node, 1)?);
    let b = cx.optional_input(node, 2);
    require_f32(cx, x, "X")?;
    require_f32(cx, w, "W")?;
    let (xd, wd) = (cx.info(x).shape.dims(), cx.info(w).shape.dims());
    let plan = ct.plan(xd, wd)?;
    let w_op = match constant_f32(cx, w)? {
        Some(wv) => cx.weights_f32(&pack_conv_weights(wv)),
        None => Operand::Value(w),
    };
    let mut inputs = vec![Operand::Value(x), w_op];
    if let Some(b) = b {
        require_f32(cx, b, "B")?;
        inputs.push(Operand::Value(b));
    }
    let kernel = ConvTranspose {
        batch: xd[0] as u64,
        in_channels: xd[1] as u64,
        out_channels: (wd[1] * ct.group) as u64,
        group: ct.group as u64,
        input: dims_u64(&xd[2..]),
        kernel: dims_u64(&plan.kernel),
        strides: dims_u64(&plan.strides),
        dilations: dims_u64(&plan.dilations),
        pad_begin: plan.pad_begin.clone(),
        output: dims_u64(&plan.out),
        epilogue: Epilogue { bias: b.is_some(), ..Epilogue::default() },
    };
    let y = output(node, 0)?;
    cx.push(id, Kernel::ConvTranspose(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

/// Output columns per work item: whole rows when there are many rows,
/// otherwise blocks giving about 64 items so batch-1 layers split well.
fn col_block(rows: u64, n: u64) -> u64 {
    let blocks_per_row = 64u64.div_ceil(rows.max(1));
    n.div_ceil(blocks_per_row).max(1)
}

fn lower_gemm(cx: &mut LowerCx, id: NodeId, node: &Node, g: &ir::Gemm, extra: Extra) -> LowerResult {
    let (a, b) = (cx.input(node, 0)?, cx.input(node, 1)?);
    let c = cx.optional_input(node, 2);
    require_f32(cx, a, "A")?;
    require_f32(cx, b, "B")?;
    let (m, k, n) = g.dims(cx.info(a).shape.dims(), cx.info(b).shape.dims())?;
    if let Some(fc) = gemm_fc(cx, g, b, c, (m, k, n))? {
        return lower_fc(cx, id, node, fc, extra);
    }
    let (m, k, n) = (m as u64, k as u64, n as u64);
    let (b_op, b_strides) = match constant_f32(cx, b)? {
        Some(bv) => (cx.weights_f32(&pack_gemm_b(bv, k as usize, n as usize, g.trans_b)), [n, 1]),
        None => (Operand::Value(b), matrix_strides(k, n, g.trans_b)),
    };
    let mut inputs = vec![Operand::Value(a), b_op];
    let mut c_strides = [0, 0];
    if let Some(c) = c {
        require_f32(cx, c, "C")?;
        c_strides = broadcast_strides(cx.info(c).shape.dims())?;
        inputs.push(Operand::Value(c));
    }
    let kernel = Gemm {
        batch: vec![],
        a_batch_strides: vec![],
        b_batch_strides: vec![],
        m,
        k,
        n,
        a_strides: matrix_strides(m, k, g.trans_a),
        b_strides,
        alpha: g.alpha as f32,
        beta: g.beta as f32,
        c_strides,
        col_block: col_block(m, n),
        epilogue: epilogue(&mut inputs, c.is_some(), extra),
    };
    let y = output(node, 0)?;
    cx.push(id, Kernel::Gemm(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

/// A fully connected product for [`FcGemm`]: constant weights, a bias
/// per output feature at most.
struct FcPlan<'g> {
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    /// W as stored: `[K, N]`, or `[N, K]` when `trans_b`.
    w: &'g [f32],
    trans_b: bool,
    alpha: f32,
    /// `beta * C` broadcast to `[N]`.
    bias: Option<Vec<f32>>,
}

/// The fully connected form of a Gemm: B constant, and C absent or a
/// constant that broadcasts along rows (scalar, `[N]`, `[1, N]`).
fn gemm_fc<'g>(cx: &LowerCx<'g>, g: &ir::Gemm, b: ValueId, c: Option<ValueId>, (m, k, n): (usize, usize, usize)) -> Result<Option<FcPlan<'g>>, String> {
    let Some(w) = constant_f32(cx, b)? else { return Ok(None) };
    let bias = match c {
        None => None,
        Some(c) => {
            let cd = cx.info(c).shape.dims();
            let per_row = match *cd {
                [] | [1] | [1, 1] => false,
                [nn] | [1, nn] if nn == n => true,
                _ => return Ok(None),
            };
            let Some(cv) = constant_f32(cx, c)? else { return Ok(None) };
            let beta = g.beta as f32;
            Some((0..n).map(|j| beta * cv[if per_row { j } else { 0 }]).collect())
        }
    };
    Ok(Some(FcPlan { m, k, n, trans_a: g.trans_a, w, trans_b: g.trans_b, alpha: g.alpha as f32, bias }))
}

/// A fully connected product on the packed weights of the target's ISA.
fn lower_fc(cx: &mut LowerCx, id: NodeId, node: &Node, fc: FcPlan, extra: Extra) -> LowerResult {
    let a = cx.input(node, 0)?;
    let isa = crate::lower::kernel_isa(cx.arch);
    let w_op = cx.weights_f32(&pack_fc_weights(fc.w, fc.k, fc.n, fc.trans_b, fc.alpha, isa));
    let mut inputs = vec![Operand::Value(a), w_op];
    if let Some(bias) = &fc.bias {
        let b_op = cx.weights_f32(bias);
        inputs.push(b_op);
    }
    let kernel = FcGemm { m: fc.m as u64, k: fc.k as u64, n: fc.n as u64, trans_a: fc.trans_a, epilogue: epilogue(&mut inputs, fc.bias.is_some(), extra), isa };
    let y = output(node, 0)?;
    cx.push(id, Kernel::FcGemm(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

/// Strides of Gemm's C (rank <= 2) broadcast to `[M, N]`: 0 on unit axes.
fn broadcast_strides(cd: &[usize]) -> Result<[u64; 2], String> {
    let unit_or = |d: usize, s: u64| if d == 1 { 0 } else { s };
    match *cd {
        [] => Ok([0, 0]),
        [nn] => Ok([0, unit_or(nn, 1)]),
        [mm, nn] => Ok([unit_or(mm, nn as u64), unit_or(nn, 1)]),
        _ => Err(format!("C of shape {cd:?} must have rank <= 2")),
    }
}

/// Contiguous element strides of an operand's batch axes (right-aligned
/// into `batch`), 0 where the operand is broadcast.
fn batch_strides(own: &[usize], batch: &[usize], matrix: usize) -> Vec<u64> {
    let mut s = vec![0u64; batch.len()];
    let mut stride = matrix as u64;
    for a in (0..own.len()).rev() {
        let ba = a + batch.len() - own.len();
        s[ba] = if own[a] == 1 { 0 } else { stride };
        stride *= own[a] as u64;
    }
    s
}

fn lower_matmul(cx: &mut LowerCx, id: NodeId, node: &Node, extra: Extra) -> LowerResult {
    let (a, b) = (cx.input(node, 0)?, cx.input(node, 1)?);
    require_f32(cx, a, "A")?;
    require_f32(cx, b, "B")?;
    let (ad, bd) = (cx.info(a).shape.dims(), cx.info(b).shape.dims());
    let p = plan_matmul(ad, bd)?;
    if ad.len() >= 2 && bd.len() == 2 {
        if let Some(w) = constant_f32(cx, b)? {
            let rows = ad[..ad.len() - 1].iter().product();
            let fc = FcPlan { m: rows, k: p.k, n: p.n, trans_a: false, w, trans_b: false, alpha: 1.0, bias: None };
            return lower_fc(cx, id, node, fc, extra);
        }
    }
    let (m, k, n) = (p.m as u64, p.k as u64, p.n as u64);
    // A 1-D B is a column [K, 1]: row stride 1.
    let b_strides = if bd.len() == 1 { [1, 1] } else { [n, 1] };
    let mut inputs = vec![Operand::Value(a), Operand::Value(b)];
    let rows = p.batch.iter().product::<usize>() as u64 * m;
    let kernel = Gemm {
        batch: dims_u64(&p.batch),
        a_batch_strides: batch_strides(&p.a_batch, &p.batch, p.m * p.k),
        b_batch_strides: batch_strides(&p.b_batch, &p.batch, p.k * p.n),
        m,
        k,
        n,
        a_strides: [k, 1],
        b_strides,
        alpha: 1.0,
        beta: 0.0,
        c_strides: [0, 0],
        col_block: col_block(rows, n),
        epilogue: epilogue(&mut inputs, false, extra),
    };
    let y = output(node, 0)?;
    cx.push(id, Kernel::Gemm(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

fn pool_kind(k: ir::PoolKind) -> PoolKind {
    match k {
        ir::PoolKind::Max => PoolKind::Max,
        ir::PoolKind::Average { count_include_pad } => PoolKind::Average { count_include_pad },
        ir::PoolKind::Lp { p } => PoolKind::Lp { p: p as f32 },
    }
}

/// The pooling kernel's geometry for `p` over an input of dims `xd`.
fn pool_geometry(p: &ir::Pool, xd: &[usize]) -> Result<Pool, String> {
    let plan = p.plan(xd)?;
    Ok(Pool {
        kind: pool_kind(p.kind),
        planes: (xd[0] * xd[1]) as u64,
        input: dims_u64(&xd[2..]),
        kernel: dims_u64(&plan.kernel),
        strides: dims_u64(&plan.strides),
        dilations: dims_u64(&plan.dilations),
        pad_begin: pads_u64(&plan.pad_begin)?,
        pad_end: pads_u64(&plan.pad_end)?,
        output: dims_u64(&plan.out),
        indices: p.with_indices.then_some(if p.column_major_indices { Indices::ColumnMajor } else { Indices::RowMajor }),
    })
}

fn lower_pool(cx: &mut LowerCx, id: NodeId, node: &Node, p: &ir::Pool) -> LowerResult {
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "X")?;
    let xd = cx.info(x).shape.dims();
    let kernel = pool_geometry(p, xd)?;
    let mut outputs = vec![Operand::Value(output(node, 0)?)];
    if p.with_indices {
        let ind = output(node, 1)?;
        if cx.info(ind).dtype != DType::I64 {
            return Err(format!("Indices has dtype {}; expected i64", cx.info(ind).dtype));
        }
        outputs.push(Operand::Value(ind));
    }
    if let Some(conv) = cx.pending_direct.remove(&x) {
        // Checked when the convolution was deferred.
        let fl = conv.flops + flops(cx, node);
        return blocked::push_planar(cx, id, Kernel::ConvPool(conv.fused), conv.inputs, outputs, fl);
    }
    if cx.blocked.has_node(id) {
        return blocked::lower_pool(cx, id, node, kernel);
    }
    let isa = crate::lower::kernel_isa(cx.arch);
    let kernel = match (whole_plane_pool(&kernel, isa), Pool2d::from_pool(&kernel, isa)) {
        (Some(global), _) => Kernel::GlobalPool(global),
        (None, Some(fast)) => Kernel::Pool2d(pool_bands(fast, cx.clusters, xd[0])),
        (None, None) => Kernel::Pool(kernel),
    };
    cx.push(id, kernel, vec![Operand::Value(x)], outputs, flops(cx, node));
    Ok(())
}

/// A pool whose one window is each whole unpadded plane (ResNet's and
/// GoogLeNet's closing 7×7 AveragePool, an exported global pool) as the
/// global pool kernel, which sums planes in vector registers: ResNet-50's
/// 2048 planes of 7×7 took 340-620 µs by the windowed 2-D path on Zen 3.
fn whole_plane_pool(p: &Pool, isa: kann_kernels::Isa) -> Option<GlobalPool> {
    let whole = p.indices.is_none()
        && p.kernel == p.input
        && p.output.iter().all(|&o| o == 1)
        && p.dilations.iter().all(|&d| d == 1)
        && p.pad_begin.iter().chain(&p.pad_end).all(|&q| q == 0);
    // Without padding, count_include_pad does not change the divisor.
    let kind = match p.kind {
        PoolKind::Average { .. } => PoolKind::Average { count_include_pad: false },
        k => k,
    };
    if whole {
        GlobalPool::new(kind, p.planes, p.input.iter().product(), isa)
    } else {
        None
    }
}

/// Input positions above which a 2-D pool splits its rows across clusters.
/// Convolutions split positions above 256 (see [`gemm_axis`]), but up to
/// 32×32 the pool's register path works on groups of whole planes: banded,
/// SqueezeNet's 27×27 pool took 46-64 µs against 36-47 by planes.
const BANDED_POOL_MIN_PLANE: u64 = 1024;

/// A 2-D pool over maps the convolutions split by positions splits its rows
/// across the clusters too, so each reads what it wrote and writes what the
/// next step reads; over smaller maps and batches, it splits planes.
fn pool_bands(pool: Pool2d, clusters: usize, batch: usize) -> Pool2d {
    let (plane, rows) = (pool.input[0] * pool.input[1], pool.output[0] as usize);
    if clusters < 2 || batch != 1 || plane <= BANDED_POOL_MIN_PLANE || rows < 2 * clusters {
        return pool;
    }
    pool.clone().with_row_bands(clusters as u64).unwrap_or(pool)
}

fn lower_global_pool(cx: &mut LowerCx, id: NodeId, node: &Node, p: &ir::GlobalPool) -> LowerResult {
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "X")?;
    let xd = cx.info(x).shape.dims();
    if xd.len() < 3 {
        return Err(format!("X must have rank >= 3, found {xd:?}"));
    }
    if cx.blocked.has_value(x) {
        let kernel = BlockedGlobalPool { batch: xd[0] as u64, channels: xd[1] as u64, pixels: (xd[2] * xd[3]) as u64, isa: crate::lower::kernel_isa(cx.arch) };
        let y = output(node, 0)?;
        cx.push(id, Kernel::BlockedGlobalPool(kernel), vec![Operand::Value(x)], vec![Operand::Value(y)], flops(cx, node));
        return Ok(());
    }
    let (kind, planes, spatial) = (pool_kind(p.kind), (xd[0] * xd[1]) as u64, dims_u64(&xd[2..]));
    let kernel = match GlobalPool::new(kind, planes, spatial.iter().product(), crate::lower::kernel_isa(cx.arch)) {
        Some(fast) => Kernel::GlobalPool(fast),
        None => Kernel::Pool(Pool::global(kind, planes, &spatial)),
    };
    let y = output(node, 0)?;
    cx.push(id, kernel, vec![Operand::Value(x)], vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

/// `(N, C, plane)` of an `[N, C, ...]` input.
fn channel_planes(cx: &LowerCx, x: ValueId) -> Result<(u64, u64, u64), String> {
    let d = cx.info(x).shape.dims();
    if d.len() < 2 {
        return Err(format!("X must have rank >= 2, found {d:?}"));
    }
    Ok((d[0] as u64, d[1] as u64, d[2..].iter().product::<usize>() as u64))
}

fn lower_lrn(cx: &mut LowerCx, id: NodeId, node: &Node, l: &ir::Lrn) -> LowerResult {
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "X")?;
    let (batch, channels, plane) = channel_planes(cx, x)?;
    // AVX2 planes on any x86-64-v3 or v4 target (see `Lrn::isa`).
    let isa = match crate::lower::kernel_isa(cx.arch) {
        kann_kernels::Isa::Generic => kann_kernels::Isa::Generic,
        _ => kann_kernels::Isa::Avx2,
    };
    let kernel = Lrn { batch, channels, plane, size: l.size as u64, alpha: l.alpha as f32, beta: l.beta as f32, bias: l.bias as f32, isa };
    let y = output(node, 0)?;
    cx.push(id, Kernel::Lrn(kernel), vec![Operand::Value(x)], vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

/// The node's first `names.len()` inputs, each required and f32 (`names` for errors).
fn f32_inputs(cx: &LowerCx, node: &Node, names: &[&str]) -> Result<Vec<Operand>, String> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let v = cx.input(node, i)?;
            require_f32(cx, v, name)?;
            Ok(Operand::Value(v))
        })
        .collect()
}

fn lower_batch_norm(cx: &mut LowerCx, id: NodeId, node: &Node, b: &ir::BatchNorm, activation: Activation) -> LowerResult {
    let inputs = f32_inputs(cx, node, &["X", "scale", "B", "input_mean", "input_var"])?;
    let (batch, channels, plane) = channel_planes(cx, cx.input(node, 0)?)?;
    if node.outputs.len() != 1 {
        return Err("BatchNormalization with running statistics outputs is not supported".into());
    }
    if cx.blocked.has_node(id) {
        return blocked::lower_batch_norm(cx, id, node, b.epsilon as f32, activation);
    }
    let kernel = BatchNorm { batch, channels, plane, epsilon: b.epsilon as f32, activation };
    let y = output(node, 0)?;
    cx.push(id, Kernel::BatchNorm(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

fn lower_instance_norm(cx: &mut LowerCx, id: NodeId, node: &Node, n: &ir::InstanceNorm) -> LowerResult {
    let inputs = f32_inputs(cx, node, &["input", "scale", "B"])?;
    let (batch, channels, plane) = channel_planes(cx, cx.input(node, 0)?)?;
    let kernel = InstanceNorm { batch, channels, plane, epsilon: n.epsilon as f32 };
    let y = output(node, 0)?;
    cx.push(id, Kernel::InstanceNorm(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

/// A LayerNorm parameter as one value per element of a normalised row:
/// used as is when it already has that layout, expanded when constant,
/// refused when it varies across rows.
fn row_param(cx: &mut LowerCx, v: ValueId, x_dims: &[usize], axis: usize, what: &str) -> Result<Operand, String> {
    require_f32(cx, v, what)?;
    let pd = cx.info(v).shape.dims();
    let rank = x_dims.len();
    // Right-aligned onto X; every axis before `axis` must be a unit axis.
    let lead = rank - pd.len().min(rank);
    if (lead..axis).any(|a| pd[a - lead] != 1) {
        return Err(format!("{what} of shape {pd:?} varies across normalised rows, which is not supported"));
    }
    let trailing = &x_dims[axis..];
    let row: usize = trailing.iter().product();
    if cx.info(v).numel() == row {
        return Ok(Operand::Value(v));
    }
    let Some(vals) = constant_f32(cx, v)? else {
        return Err(format!("{what} of shape {pd:?} broadcasts within a row and is not constant, which is not supported"));
    };
    // Expand: element j of the row reads the parameter at its broadcast index.
    let own: Vec<usize> = (axis..rank).map(|a| if a >= lead { pd[a - lead] } else { 1 }).collect();
    let expanded: Vec<f32> = (0..row)
        .map(|j| {
            let (mut rest, mut flat, mut stride) = (j, 0, 1);
            for t in (0..trailing.len()).rev() {
                let i = rest % trailing[t];
                rest /= trailing[t];
                if own[t] != 1 {
                    flat += i * stride;
                }
                stride *= own[t];
            }
            vals[flat]
        })
        .collect();
    Ok(cx.weights_f32(&expanded))
}

fn lower_layer_norm(cx: &mut LowerCx, id: NodeId, node: &Node, n: &ir::LayerNorm) -> LowerResult {
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "X")?;
    let xd = cx.info(x).shape.dims();
    let axis = n.first_axis(xd.len())?;
    if n.outputs > 1 && n.stash != DType::F32 {
        return Err(format!("Mean/InvStdDev of dtype {} are not supported (f32 only)", n.stash));
    }
    let mut inputs = vec![Operand::Value(x), row_param(cx, cx.input(node, 1)?, xd, axis, "Scale")?];
    let bias = cx.optional_input(node, 2);
    if let Some(b) = bias {
        inputs.push(row_param(cx, b, xd, axis, "B")?);
    }
    let kernel = LayerNorm {
        rows: xd[..axis].iter().product::<usize>() as u64,
        row: xd[axis..].iter().product::<usize>() as u64,
        epsilon: n.epsilon as f32,
        has_bias: bias.is_some(),
        outputs: n.outputs as u8,
        rms: false,
    };
    let outputs = (0..n.outputs).map(|i| output(node, i).map(Operand::Value)).collect::<Result<Vec<_>, _>>()?;
    cx.push(id, Kernel::LayerNorm(kernel), inputs, outputs, flops(cx, node));
    Ok(())
}

fn lower_rms_norm(cx: &mut LowerCx, id: NodeId, node: &Node, n: &ir::RmsNorm) -> LowerResult {
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "X")?;
    let xd = cx.info(x).shape.dims();
    let axis = kann_ir::ops::norm_axis(n.axis, xd.len())?;
    let inputs = vec![Operand::Value(x), row_param(cx, cx.input(node, 1)?, xd, axis, "scale")?];
    let kernel = LayerNorm {
        rows: xd[..axis].iter().product::<usize>() as u64,
        row: xd[axis..].iter().product::<usize>() as u64,
        epsilon: n.epsilon as f32,
        has_bias: false,
        outputs: 1,
        rms: true,
    };
    let y = output(node, 0)?;
    cx.push(id, Kernel::LayerNorm(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

fn lower_group_norm(cx: &mut LowerCx, id: NodeId, node: &Node, n: &ir::GroupNorm) -> LowerResult {
    let inputs = f32_inputs(cx, node, &["X", "scale", "bias"])?;
    let (batch, channels, plane) = channel_planes(cx, cx.input(node, 0)?)?;
    let scale_len = cx.info(cx.input(node, 1)?).numel() as u64;
    let groups = n.num_groups as u64;
    // Opset 18 allows one scale per group; otherwise one per channel.
    let per_group_affine = n.per_group_affine && scale_len == groups;
    let kernel = GroupNorm { batch, channels, groups, plane, epsilon: n.epsilon as f32, per_group_affine };
    let y = output(node, 0)?;
    cx.push(id, Kernel::GroupNorm(kernel), inputs, vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

fn lower_lp_norm(cx: &mut LowerCx, id: NodeId, node: &Node, n: &ir::LpNorm) -> LowerResult {
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "input")?;
    let xd = cx.info(x).shape.dims();
    let axis = kann_ir::ops::norm_axis(n.axis, xd.len())?;
    let p = u8::try_from(n.p).map_err(|_| format!("p = {} is not supported", n.p))?;
    let kernel = LpNorm {
        outer: xd[..axis].iter().product::<usize>() as u64,
        len: xd[axis] as u64,
        inner: xd[axis + 1..].iter().product::<usize>() as u64,
        p,
    };
    let y = output(node, 0)?;
    cx.push(id, Kernel::LpNorm(kernel), vec![Operand::Value(x)], vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

fn lower_softmax(cx: &mut LowerCx, id: NodeId, node: &Node, s: &ir::Softmax) -> LowerResult {
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "input")?;
    let (outer, len, inner) = s.layout(cx.info(x).shape.dims())?;
    let kind = match s.kind {
        ir::SoftmaxKind::Softmax => SoftmaxKind::Softmax,
        ir::SoftmaxKind::LogSoftmax => SoftmaxKind::LogSoftmax,
        ir::SoftmaxKind::Hardmax => SoftmaxKind::Hardmax,
    };
    let kernel = Softmax { kind, outer: outer as u64, len: len as u64, inner: inner as u64 };
    let y = output(node, 0)?;
    cx.push(id, Kernel::Softmax(kernel), vec![Operand::Value(x)], vec![Operand::Value(y)], flops(cx, node));
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Compiled vs reference on random small shapes, on 1 and 3 clusters.

    use crate::testing::{check_against_reference, Rng};
    use kann_ir::ops::elementwise as ir_el;
    use kann_ir::ops::fused::{Fused, FusedActivation};
    use kann_ir::ops::nn::{self as ir, NnOp};
    use kann_ir::{Graph, GraphBuilder, Op, TensorInfo};
    use kann_tensor::{DType, Shape, Tensor};

    /// An operand of the graph under test: a graph input or a random constant.
    enum Arg {
        Input(Vec<usize>),
        Const(Vec<usize>),
        Absent,
    }

    /// A graph of one node `op` over `args`, with `n_out` outputs.
    fn one_node(op: Op, args: Vec<Arg>, n_out: usize, rng: &mut Rng) -> Graph {
        let mut b = GraphBuilder::new("t", None);
        let mut ins = vec![];
        for (i, a) in args.into_iter().enumerate() {
            ins.push(match a {
                Arg::Input(d) => Some(b.add_input(&format!("in{i}"), TensorInfo::new(DType::F32, Shape::new(d))).unwrap()),
                Arg::Const(d) => {
                    let n: usize = d.iter().product();
                    let v: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
                    Some(b.add_constant(&format!("c{i}"), Tensor::from_f32(Shape::new(d), v).unwrap()))
                }
                Arg::Absent => None,
            });
        }
        let names: Vec<String> = (0..n_out).map(|i| format!("y{i}")).collect();
        let outs = b.add_node("node", op, ins, &names).unwrap();
        for o in outs {
            b.add_output(o);
        }
        b.finish().unwrap()
    }

    fn check(g: Graph) {
        for clusters in [1, 3] {
            match check_against_reference(g.clone(), clusters) {
                Ok(c) => assert!(!c.program.steps.is_empty(), "nothing was compiled"),
                Err(e) => panic!("{e}\ngraph: {g:?}"),
            }
        }
    }

    fn pick<T: Copy>(rng: &mut Rng, v: &[T]) -> T {
        v[rng.below(v.len() as u64) as usize]
    }

    /// A random window over `nsp` axes with input extents that fit it.
    fn window(rng: &mut Rng, nsp: usize, pool: bool) -> (ir::Window, Vec<usize>, Vec<usize>) {
        let mut w = ir::Window::new(pick(rng, &[ir::AutoPad::NotSet, ir::AutoPad::NotSet, ir::AutoPad::SameUpper, ir::AutoPad::SameLower, ir::AutoPad::Valid]));
        let (mut kernel, mut input, mut pb, mut pe) = (vec![], vec![], vec![], vec![]);
        for _ in 0..nsp {
            let k = 1 + rng.below(3) as usize;
            let (s, d) = (1 + rng.below(2) as usize, 1 + rng.below(2) as usize);
            kernel.push(k);
            w.strides.push(s);
            w.dilations.push(d);
            pb.push(rng.below(k as u64) as usize);
            pe.push(rng.below(k as u64) as usize);
            input.push((k - 1) * d + 1 + rng.below(4) as usize);
        }
        if w.auto_pad == ir::AutoPad::NotSet {
            w.pads = [pb, pe].concat();
        }
        if pool {
            w.kernel_shape = kernel.clone();
            w.ceil_mode = rng.below(2) == 1;
        }
        (w, kernel, input)
    }

    fn conv_op(rng: &mut Rng) -> (Op, Vec<Arg>) {
        let nsp = 1 + rng.below(3) as usize;
        let (window, kernel, input) = window(rng, nsp, false);
        let group = 1 + rng.below(3) as usize;
        let (cg, mg) = (1 + rng.below(3) as usize, 1 + rng.below(9) as usize);
        let x = [vec![1 + rng.below(2) as usize, cg * group], input].concat();
        let w = [vec![mg * group, cg], kernel].concat();
        let bias = if rng.below(2) == 1 { Arg::Const(vec![mg * group]) } else { Arg::Absent };
        let w = if rng.below(4) == 0 { Arg::Input(w) } else { Arg::Const(w) };
        (Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window, group } })), vec![Arg::Input(x), w, bias])
    }

    #[test]
    fn conv_matches_reference() {
        let mut rng = Rng::new(1);
        for _ in 0..40 {
            let (op, args) = conv_op(&mut rng);
            check(one_node(op, args, 1, &mut rng));
        }
    }

    /// The arches this CPU runs, generic first.
    fn runnable_arches() -> Vec<kann_artifact::Arch> {
        let cpu = kann_artifact::CpuFeatures::detect();
        [kann_artifact::Arch::Generic, kann_artifact::Arch::X86_64V3, kann_artifact::Arch::X86_64V4]
            .into_iter()
            .filter(|a| a.family().is_none_or(|f| f == cpu.family) && a.required_features().difference(cpu.features).is_empty())
            .collect()
    }

    #[test]
    fn conv_gemm_matches_reference_on_every_arch() {
        let mut rng = Rng::new(31);
        for arch in runnable_arches() {
            let isa = crate::lower::kernel_isa(arch).name();
            let mut packed = 0;
            for _ in 0..30 {
                let (op, args) = conv_op(&mut rng);
                let g = one_node(op, args, 1, &mut rng);
                for clusters in [1, 2] {
                    let c = crate::testing::check_against_reference_on(g.clone(), clusters, arch).unwrap_or_else(|e| panic!("{arch}: {e}\ngraph: {g:?}"));
                    packed += c.program.steps.iter().filter(|s| s.kernel.name() == format!("f32_conv2d_gemm_{isa}")).count();
                }
            }
            assert!(packed > 0, "{arch}: no convolution took the packed GEMM");
        }
    }

    #[test]
    fn lowering_picks_the_gemm_kernel_and_axis() {
        use kann_kernels::conv_gemm::GemmAxis;
        use kann_kernels::Kernel;
        let mut rng = Rng::new(5);
        // (channels, group, extent, expected: None = direct kernel, else the axis)
        for (c, group, hw, want) in [(12, 1, 20, Some(GemmAxis::Columns)), (64, 1, 7, Some(GemmAxis::Channels)), (8, 2, 9, Some(GemmAxis::Columns))] {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            w.kernel_shape = vec![3, 3];
            w.pads = vec![1, 1, 1, 1];
            let op = Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group } }));
            let g = one_node(op, vec![Arg::Input(vec![1, c, hw, hw]), Arg::Const(vec![c, c / group, 3, 3]), Arg::Absent], 1, &mut rng);
            let lowered = crate::lower::lower_graph(&g, kann_artifact::Arch::X86_64V4).unwrap();
            let got = match &lowered.steps[0].kernel {
                Kernel::ConvGemm(k) => {
                    assert_eq!(k.isa, kann_kernels::packed::Isa::Avx512);
                    Some(k.axis)
                }
                Kernel::Conv(_) => None,
                other => panic!("unexpected kernel {}", other.name()),
            };
            assert_eq!(got, want, "channels {c}, group {group}, extent {hw}");
        }
    }

    #[test]
    fn channel_split_convs_pack_b_in_a_shared_step_on_several_clusters_without_avx512() {
        use kann_kernels::conv_gemm::GemmAxis;
        use kann_kernels::Kernel;
        let mut rng = Rng::new(6);
        // 3×3 over 7×7 (split by channels: B gathered) and 1×1 over 7×7 (B
        // is X); AVX2 shares the packing, AVX-512 gathers per cluster.
        for (k, pad, arch, packs) in [(3, 1, kann_artifact::Arch::X86_64V3, true), (3, 1, kann_artifact::Arch::X86_64V4, false), (1, 0, kann_artifact::Arch::X86_64V3, false)] {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            w.kernel_shape = vec![k, k];
            w.pads = vec![pad; 4];
            let op = Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group: 1 } }));
            let g = one_node(op, vec![Arg::Input(vec![1, 64, 7, 7]), Arg::Const(vec![64, 64, k, k]), Arg::Absent], 1, &mut rng);
            for clusters in [1, 2] {
                let lowered = crate::lower::lower_graph_with(&g, arch, false, clusters).unwrap();
                let kinds: Vec<String> = lowered.steps.iter().map(|s| s.kernel.name()).collect();
                let prepacked = clusters > 1 && packs;
                assert_eq!(kinds.len(), 1 + usize::from(prepacked), "{kinds:?}");
                let Kernel::ConvGemm(conv) = &lowered.steps.last().unwrap().kernel else { panic!("{kinds:?}") };
                assert_eq!(conv.axis, if prepacked { GemmAxis::PackedChannels } else { GemmAxis::Channels });
                if prepacked {
                    assert!(matches!(lowered.steps[0].kernel, Kernel::Im2colPack(_)));
                    assert_eq!(lowered.steps[0].outputs, vec![lowered.steps[1].inputs[0]], "the GEMM reads the packed B");
                }
                // And the program computes the reference's result (where this CPU runs it).
                if runnable_arches().contains(&arch) {
                    crate::testing::check_against_reference_on(g.clone(), clusters, arch).unwrap();
                }
            }
        }
    }

    #[test]
    fn stems_fuse_with_the_max_pool_that_alone_reads_them() {
        use kann_ir::ops::elementwise::{ElementwiseOp, Unary, UnaryKind};
        let mut rng = Rng::new(10);
        // An RGB stem (+ Relu) and a MaxPool; once more with the stem's
        // output also a graph output (then nothing fuses).
        for also_output in [false, true] {
            let mut b = GraphBuilder::new("stem", None);
            let mut constant = |b: &mut GraphBuilder, name: &str, d: Vec<usize>| {
                let v: Vec<f32> = (0..d.iter().product::<usize>()).map(|_| rng.uniform(-0.5, 0.5) as f32).collect();
                b.add_constant(name, Tensor::from_f32(Shape::new(d), v).unwrap())
            };
            let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([1, 3, 45, 70]))).unwrap();
            let (w, bias) = (constant(&mut b, "w", vec![16, 3, 3, 3]), constant(&mut b, "b", vec![16]));
            let mut cw = ir::Window::new(ir::AutoPad::NotSet);
            (cw.strides, cw.pads) = (vec![2, 2], vec![1; 4]);
            let conv = Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: cw, group: 1 } }));
            let c = b.add_node("c", conv, vec![Some(x), Some(w), Some(bias)], &["c".into()]).unwrap()[0];
            let relu = Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu }));
            let r = b.add_node("r", relu, vec![Some(c)], &["r".into()]).unwrap()[0];
            let mut pw = ir::Window::new(ir::AutoPad::NotSet);
            (pw.kernel_shape, pw.strides, pw.ceil_mode) = (vec![3, 3], vec![2, 2], true);
            let pool = Op::Nn(NnOp::Pool(ir::Pool { kind: ir::PoolKind::Max, window: pw, column_major_indices: false, with_indices: false }));
            let y = b.add_node("p", pool, vec![Some(r)], &["y".into()]).unwrap()[0];
            b.add_output(y);
            if also_output {
                b.add_output(r);
            }
            let g = b.finish().unwrap();
            if !runnable_arches().contains(&kann_artifact::Arch::X86_64V4) {
                return;
            }
            for clusters in [1, 2] {
                let compiled = crate::testing::check_against_reference_on(g.clone(), clusters, kann_artifact::Arch::X86_64V4).unwrap();
                let names: Vec<String> = compiled.program.steps.iter().map(|s| s.kernel.name()).collect();
                let fused = names.iter().any(|n| n.starts_with("f32_conv2d_direct_maxpool"));
                assert_eq!(fused, !also_output, "{names:?}");
            }
        }
    }

    #[test]
    fn pools_over_big_maps_split_rows_on_several_clusters() {
        use kann_kernels::Kernel;
        let mut rng = Rng::new(8);
        // (extent, batch, clusters, bands): rows split on several clusters
        // over maps the convolutions split by positions, planes otherwise.
        for (hw, n, clusters, bands) in [(56, 1, 2, 2), (56, 1, 1, 1), (33, 1, 2, 2), (27, 1, 2, 1), (14, 1, 2, 1), (56, 2, 2, 1)] {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            (w.kernel_shape, w.strides, w.pads) = (vec![3, 3], vec![2, 2], vec![1, 1, 1, 1]);
            let pool = Op::Nn(NnOp::Pool(ir::Pool { kind: ir::PoolKind::Max, window: w, column_major_indices: false, with_indices: false }));
            let g = one_node(pool, vec![Arg::Input(vec![n, 8, hw, hw])], 1, &mut rng);
            let lowered = crate::lower::lower_graph_with(&g, kann_artifact::Arch::X86_64V4, false, clusters).unwrap();
            let Kernel::Pool2d(k) = &lowered.steps[0].kernel else { panic!("{}", lowered.steps[0].kernel.name()) };
            assert_eq!(k.row_bands, bands, "extent {hw}, batch {n}, {clusters} clusters");
            if runnable_arches().contains(&kann_artifact::Arch::X86_64V4) {
                crate::testing::check_against_reference_on(g.clone(), clusters, kann_artifact::Arch::X86_64V4).unwrap();
            }
        }
    }

    #[test]
    fn pools_over_whole_unpadded_planes_run_as_global_pools() {
        use kann_kernels::Kernel;
        let mut rng = Rng::new(9);
        let avg = ir::PoolKind::Average { count_include_pad: true };
        // (kind, input extent, kernel, strides, pads, ceil mode, global?)
        let cases = [
            (avg, [7, 7], [7, 7], [1, 1], [0, 0, 0, 0], false, true),
            (avg, [7, 5], [7, 5], [2, 2], [0, 0, 0, 0], true, true),
            (ir::PoolKind::Max, [6, 6], [6, 6], [6, 6], [0, 0, 0, 0], false, true),
            // Padding, a window short of the plane, or Lp: the windowed kernels.
            (avg, [7, 7], [7, 7], [1, 1], [1, 1, 1, 1], false, false),
            (avg, [7, 7], [6, 7], [2, 1], [0, 0, 0, 0], false, false),
            (ir::PoolKind::Lp { p: 2.0 }, [4, 4], [4, 4], [1, 1], [0, 0, 0, 0], false, false),
        ];
        for (kind, hw, kernel, strides, pads, ceil, global) in cases {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            (w.kernel_shape, w.strides, w.pads, w.ceil_mode) = (kernel.to_vec(), strides.to_vec(), pads.to_vec(), ceil);
            let pool = Op::Nn(NnOp::Pool(ir::Pool { kind, window: w, column_major_indices: false, with_indices: false }));
            let g = one_node(pool, vec![Arg::Input(vec![2, 3, hw[0], hw[1]])], 1, &mut rng);
            for arch in runnable_arches() {
                let lowered = crate::lower::lower_graph_with(&g, arch, false, 1).unwrap();
                assert_eq!(matches!(lowered.steps[0].kernel, Kernel::GlobalPool(_)), global, "{arch}: {kind:?} {hw:?} {kernel:?} pads {pads:?}");
                crate::testing::check_against_reference_on(g.clone(), 1, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
            }
        }
    }

    /// Builds a 3×3 padded 2-D conv over `[n, c, hw, hw]` with `m` output channels.
    fn conv2d_graph(rng: &mut Rng, n: usize, c: usize, m: usize, group: usize, hw: usize, w_const: bool) -> Graph {
        let mut w = ir::Window::new(ir::AutoPad::NotSet);
        w.kernel_shape = vec![3, 3];
        w.pads = vec![1, 0, 1, 2];
        w.strides = vec![2, 1];
        let op = Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group } }));
        let wd = vec![m, c / group, 3, 3];
        let w_arg = if w_const { Arg::Const(wd) } else { Arg::Input(wd) };
        one_node(op, vec![Arg::Input(vec![n, c, hw, hw]), w_arg, Arg::Const(vec![m])], 1, rng)
    }

    /// A 3×3 stride-1 convolution with bias and `pads` (t, l, b, r).
    fn conv3x3_graph(rng: &mut Rng, n: usize, c: usize, m: usize, hw: [usize; 2], pads: [usize; 4]) -> Graph {
        let mut w = ir::Window::new(ir::AutoPad::NotSet);
        w.kernel_shape = vec![3, 3];
        w.pads = pads.to_vec();
        let op = Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group: 1 } }));
        one_node(op, vec![Arg::Input(vec![n, c, hw[0], hw[1]]), Arg::Const(vec![m, c, 3, 3]), Arg::Const(vec![m])], 1, rng)
    }

    /// Scales the weights of `g`'s single convolution as a trained network's
    /// are (He: std ≈ √(2 / fan-in)): Winograd's error is relative to the
    /// terms it sums, so unit weights over 256 channels would measure a
    /// network no one trains.
    fn he_scale_weights(g: &mut Graph) {
        for v in g.values.iter_mut() {
            if let Some(t) = v.constant.as_ref().filter(|t| t.shape().dims().len() == 4) {
                let fan_in: usize = t.shape().dims()[1..].iter().product();
                let k = (2.0 / fan_in as f64).sqrt();
                let scaled: Vec<f64> = t.to_f64_vec().iter().map(|x| x * k).collect();
                v.constant = Some(std::sync::Arc::new(Tensor::from_f64(t.dtype(), t.shape().clone(), &scaled).unwrap()));
            }
        }
    }

    #[test]
    fn qualifying_convolutions_take_winograd_and_match_reference() {
        let mut rng = Rng::new(61);
        for arch in runnable_arches() {
            let isa = crate::lower::kernel_isa(arch);
            let name = format!("f32_conv2d_winograd4x4_{}", isa.name());
            // Enough tiles for 2 clusters (32 with SIMD, 72 portable).
            let shapes: &[_] = if isa == kann_kernels::Isa::Generic {
                &[(1, 32, 40, [33, 35], [1, 1, 1, 1]), (2, 36, 33, [23, 30], [0, 1, 2, 0])]
            } else {
                &[(1, 256, 130, [23, 25], [1, 0, 2, 1]), (1, 24, 20, [23, 25], [1, 1, 1, 1])]
            };
            for &(n, c, m, hw, pads) in shapes {
                let mut g = conv3x3_graph(&mut rng, n, c, m, hw, pads);
                he_scale_weights(&mut g);
                for clusters in [1, 2] {
                    let compiled = crate::testing::check_against_reference_on(g.clone(), clusters, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
                    assert!(compiled.program.steps.iter().any(|s| s.kernel.name() == name), "{arch}: no step is {name}");
                }
            }
        }
    }

    #[test]
    fn stems_take_the_direct_conv_and_match_reference() {
        let mut rng = Rng::new(67);
        for arch in runnable_arches() {
            let isa = crate::lower::kernel_isa(arch);
            let name = format!("f32_conv2d_direct_{}", isa.name());
            // (channels, kernel, stride, pads t l b r, extent [h, w], direct?)
            let cases = [
                (3, 7, [2, 2], [3, 3, 3, 3], [40, 70], true),
                (2, 9, [1, 1], [4, 2, 0, 3], [20, 45], true),
                (4, 5, [3, 2], [0, 1, 2, 2], [17, 80], true),
                // A 3×3 RGB stem (27 taps): direct; 18 taps and a horizontal stride of 3: the GEMM.
                (3, 3, [2, 2], [1, 1, 1, 1], [40, 70], true),
                (2, 3, [2, 2], [1, 1, 1, 1], [40, 70], false),
                (3, 7, [2, 3], [3, 3, 3, 3], [40, 120], false),
            ];
            for (c, k, strides, pads, hw, direct) in cases {
                let mut w = ir::Window::new(ir::AutoPad::NotSet);
                w.kernel_shape = vec![k, k];
                w.pads = pads.to_vec();
                w.strides = strides.to_vec();
                let op = Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group: 1 } }));
                let g = one_node(op, vec![Arg::Input(vec![1, c, hw[0], hw[1]]), Arg::Const(vec![19, c, k, k]), Arg::Const(vec![19])], 1, &mut rng);
                for clusters in [1, 2] {
                    let compiled = crate::testing::check_against_reference_on(g.clone(), clusters, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
                    let took = compiled.program.steps.iter().any(|s| s.kernel.name() == name);
                    assert_eq!(took, direct, "{arch}: {c} channels {k}x{k} stride {strides:?}");
                }
            }
        }
    }

    #[test]
    fn winograd_only_where_it_pays_and_when_allowed() {
        use kann_kernels::Kernel;
        let mut rng = Rng::new(67);
        use kann_artifact::Arch::{Generic, X86_64V3, X86_64V4};
        // (arch, channels, extent, pads, winograd allowed, clusters, expected)
        use kann_kernels::winograd::WinogradTile::{F2x2, F4x4};
        let cases = [
            (X86_64V3, 256, 28, 1, true, 1, Some(F4x4)),
            (X86_64V3, 256, 28, 1, false, 1, None),
            (X86_64V3, 128, 28, 1, true, 1, Some(F4x4)),
            // 14x14 and 13x13: F(2x2)'s 49 tiles against 4/9 of the weights,
            // but with AVX2 and many channels F(4x4)'s 16.
            (X86_64V3, 128, 14, 1, true, 1, Some(F2x2)),
            (X86_64V3, 256, 14, 1, true, 1, Some(F4x4)),
            (X86_64V4, 256, 14, 1, true, 1, Some(F2x2)),
            (X86_64V3, 64, 13, 1, true, 1, Some(F2x2)),
            (X86_64V3, 32, 20, 1, true, 1, Some(F2x2)),
            (X86_64V3, 32, 21, 1, true, 1, Some(F4x4)),
            (X86_64V3, 16, 16, 1, true, 1, Some(F2x2)),
            (X86_64V3, 12, 28, 1, true, 1, None),
            // AVX2 from 7x7 (16 F(2x2) tiles), AVX-512 from 11x11 (36).
            (X86_64V3, 256, 7, 1, true, 1, Some(F2x2)),
            (X86_64V3, 256, 10, 1, true, 1, Some(F2x2)),
            (X86_64V3, 256, 6, 1, true, 1, None),
            (X86_64V4, 256, 7, 1, true, 1, None),
            (X86_64V4, 256, 10, 1, true, 1, None),
            (X86_64V4, 256, 11, 1, true, 1, Some(F2x2)),
            (X86_64V4, 256, 28, 1, true, 1, Some(F4x4)),
            // 49 F(2x2) tiles of 14x14, like 49 F(4x4) tiles of 28x28, are
            // enough to split across 2 clusters.
            (X86_64V3, 256, 14, 1, true, 2, Some(F4x4)),
            (X86_64V3, 128, 14, 1, true, 2, Some(F2x2)),
            (X86_64V3, 256, 7, 1, true, 2, Some(F2x2)),
            (X86_64V3, 16, 14, 1, true, 2, Some(F2x2)),
            (X86_64V3, 128, 28, 1, true, 2, Some(F4x4)),
            (X86_64V3, 256, 26, 0, true, 1, Some(F4x4)),
            // The portable build keeps F(4x4) (and its 36-tile minimum).
            (Generic, 64, 28, 1, true, 1, Some(F4x4)),
            (Generic, 64, 14, 1, true, 1, None),
            (Generic, 16, 28, 1, true, 1, None),
            (Generic, 64, 28, 1, false, 1, None),
        ];
        for (arch, c, hw, pads, allowed, clusters, want) in cases {
            let g = conv3x3_graph(&mut rng, 1, c, c, [hw, hw], [pads; 4]);
            let lowered = crate::lower::lower_graph_with(&g, arch, allowed, clusters).unwrap();
            // The convolution's step (after a shared im2col packing on several clusters).
            let got = match &lowered.steps.last().unwrap().kernel {
                Kernel::Winograd(k) => {
                    assert_eq!(k.isa, crate::lower::kernel_isa(arch));
                    Some(k.tile)
                }
                Kernel::ConvGemm(_) => None,
                other => panic!("unexpected kernel {}", other.name()),
            };
            assert_eq!(got, want, "{arch}: channels {c}, extent {hw}, allowed {allowed}, {clusters} clusters");
        }
    }

    #[test]
    fn lowering_picks_the_depthwise_kernel() {
        use kann_kernels::Kernel;
        let mut rng = Rng::new(8);
        for arch in runnable_arches() {
            let isa = crate::lower::kernel_isa(arch);
            // (channels, outputs, group, constant weights, depthwise expected)
            for (c, m, group, w_const, want) in [(8, 8, 8, true, true), (4, 8, 4, true, true), (8, 8, 8, false, false), (8, 8, 4, true, false)] {
                let g = conv2d_graph(&mut rng, 2, c, m, group, 11, w_const);
                let lowered = crate::lower::lower_graph(&g, arch).unwrap();
                let got = match &lowered.steps[0].kernel {
                    Kernel::DepthwiseConv(k) => {
                        assert_eq!(k.isa, isa);
                        assert_eq!(k.out_channels, m as u64);
                        true
                    }
                    _ => false,
                };
                assert_eq!(got, want, "{arch}: channels {c}, outputs {m}, group {group}");
                for clusters in [1, 2] {
                    crate::testing::check_against_reference_on(g.clone(), clusters, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
                }
            }
        }
    }

    #[test]
    fn conv_transpose_matches_reference() {
        let mut rng = Rng::new(8);
        let mut ran = 0;
        for _ in 0..30 {
            let nsp = 1 + rng.below(3) as usize;
            let (mut window, kernel, input) = window(&mut rng, nsp, false);
            let group = 1 + rng.below(2) as usize;
            let (cg, mg) = (1 + rng.below(3) as usize, 1 + rng.below(3) as usize);
            let mut output_padding = vec![];
            for a in 0..nsp {
                output_padding.push(rng.below(window.strides[a].min(window.dilations[a]) as u64) as usize);
            }
            if window.auto_pad == ir::AutoPad::NotSet && rng.below(2) == 1 {
                window.pads.clear();
            }
            let ct = ir::ConvTranspose { window, group, output_padding, output_shape: vec![] };
            let x = [vec![1 + rng.below(2) as usize, cg * group], input].concat();
            let w = [vec![cg * group, mg], kernel].concat();
            let bias = if rng.below(2) == 1 { Arg::Const(vec![mg * group]) } else { Arg::Absent };
            let op = Op::Nn(NnOp::ConvTranspose(ct));
            let args = vec![Arg::Input(x), Arg::Const(w), bias];
            // Geometries whose output would be empty are refused by the IR; skip them.
            let ok = std::panic::catch_unwind(|| out_dims(&op, &args)).is_ok();
            if ok {
                check(one_node(op, args, 1, &mut rng));
                ran += 1;
            }
        }
        assert!(ran >= 10, "only {ran} geometries were valid");
    }

    /// A small residual CNN through the standard pipeline: Conv+Relu,
    /// MaxPool, then Conv+Add+Relu (fused by the passes), GlobalAveragePool.
    #[test]
    fn small_residual_cnn() {
        use kann_ir::ops::elementwise::{Binary, BinaryKind, ElementwiseOp, Unary, UnaryKind};
        let mut rng = Rng::new(9);
        let mut b = GraphBuilder::new("cnn", None);
        let mut constant = |b: &mut GraphBuilder, name: &str, d: Vec<usize>| {
            let n: usize = d.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.uniform(-0.5, 0.5) as f32).collect();
            b.add_constant(name, Tensor::from_f32(Shape::new(d), v).unwrap())
        };
        let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([1, 3, 12, 12]))).unwrap();
        let conv = |pads: usize| {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            w.pads = vec![pads; 4];
            Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group: 1 } }))
        };
        let relu = || Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu }));
        let one = |v| vec![v];
        let (w1, b1) = (constant(&mut b, "w1", vec![8, 3, 3, 3]), constant(&mut b, "b1", vec![8]));
        let c1 = b.add_node("c1", conv(1), vec![Some(x), Some(w1), Some(b1)], &one("c1".into())).unwrap()[0];
        let r1 = b.add_node("r1", relu(), vec![Some(c1)], &one("r1".into())).unwrap()[0];
        let mut pw = ir::Window::new(ir::AutoPad::NotSet);
        pw.kernel_shape = vec![2, 2];
        pw.strides = vec![2, 2];
        let pool = Op::Nn(NnOp::Pool(ir::Pool { kind: ir::PoolKind::Max, window: pw, column_major_indices: false, with_indices: false }));
        let p1 = b.add_node("p1", pool, vec![Some(r1)], &one("p1".into())).unwrap()[0];
        let (w2, b2) = (constant(&mut b, "w2", vec![8, 8, 3, 3]), constant(&mut b, "b2", vec![8]));
        let c2 = b.add_node("c2", conv(1), vec![Some(p1), Some(w2), Some(b2)], &one("c2".into())).unwrap()[0];
        let add = Op::Elementwise(ElementwiseOp::Binary(Binary { kind: BinaryKind::Add }));
        let a2 = b.add_node("a2", add, vec![Some(c2), Some(p1)], &one("a2".into())).unwrap()[0];
        let r2 = b.add_node("r2", relu(), vec![Some(a2)], &one("r2".into())).unwrap()[0];
        let gap = Op::Nn(NnOp::GlobalPool(ir::GlobalPool { kind: ir::PoolKind::Average { count_include_pad: false } }));
        let y = b.add_node("gap", gap, vec![Some(r2)], &one("y".into())).unwrap()[0];
        b.add_output(y);
        let g = b.finish().unwrap();
        for clusters in [1, 2, 4] {
            let c = check_against_reference(g.clone(), clusters).unwrap();
            let ops: Vec<String> = c.program.steps.iter().map(|s| s.op.clone()).collect();
            // The RGB stem runs fused with its pool (a step named after the pool node).
            assert_eq!(ops, ["MaxPool", "Conv+Add+Relu", "GlobalAveragePool"]);
            assert!(c.program.steps[0].kernel.name().starts_with("f32_conv2d_direct_maxpool"));
        }
    }

    /// An expand 1×1 convolution (+ Relu) into a 3×3 depthwise one (+ Relu),
    /// big enough to fuse; with `second_reader`, the expanded tensor is also
    /// a graph output (then it must exist, and nothing fuses).
    fn expand_depthwise_graph(rng: &mut Rng, stride: usize, second_reader: bool) -> Graph {
        use kann_ir::ops::elementwise::{ElementwiseOp, Unary, UnaryKind};
        let mut b = GraphBuilder::new("expand", None);
        let mut constant = |b: &mut GraphBuilder, name: &str, d: Vec<usize>| {
            let n: usize = d.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.uniform(-0.5, 0.5) as f32).collect();
            b.add_constant(name, Tensor::from_f32(Shape::new(d), v).unwrap())
        };
        let (c, e, hw) = (6, 96, 64);
        let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([1, c, hw, hw]))).unwrap();
        let conv = |k: usize, stride: usize, group: usize| {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            w.kernel_shape = vec![k, k];
            w.pads = vec![k / 2; 4];
            w.strides = vec![stride; 2];
            Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group } }))
        };
        let one = |v: &str| vec![v.to_string()];
        let (w1, b1) = (constant(&mut b, "w1", vec![e, c, 1, 1]), constant(&mut b, "b1", vec![e]));
        let mid = b.add_node("expand", conv(1, 1, 1), vec![Some(x), Some(w1), Some(b1)], &one("mid")).unwrap()[0];
        let relu = || Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu }));
        let act = b.add_node("act", relu(), vec![Some(mid)], &one("act")).unwrap()[0];
        let (w2, b2) = (constant(&mut b, "w2", vec![e, 1, 3, 3]), constant(&mut b, "b2", vec![e]));
        let dw = b.add_node("dw", conv(3, stride, e), vec![Some(act), Some(w2), Some(b2)], &one("dw")).unwrap()[0];
        let y = b.add_node("relu", relu(), vec![Some(dw)], &one("y")).unwrap()[0];
        b.add_output(y);
        if second_reader {
            b.add_output(act);
        }
        b.finish().unwrap()
    }

    #[test]
    fn expand_then_depthwise_fuse_when_alone_on_avx512_and_match_reference() {
        let mut rng = Rng::new(83);
        for arch in runnable_arches() {
            let fused = format!("f32_conv1x1_dwconv2d_{}", crate::lower::kernel_isa(arch).name());
            for (stride, second_reader) in [(1, false), (2, false), (1, true)] {
                let g = expand_depthwise_graph(&mut rng, stride, second_reader);
                for clusters in [1, 2] {
                    let c = crate::testing::check_against_reference_on(g.clone(), clusters, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
                    let names: Vec<String> = c.program.steps.iter().map(|s| s.kernel.name()).collect();
                    // Fused on AVX-512 only (where its depthwise part runs from registers).
                    let want = !second_reader && crate::lower::kernel_isa(arch) == kann_kernels::packed::Isa::Avx512;
                    assert_eq!(names.contains(&fused), want, "{arch}, stride {stride}, {clusters} clusters: {names:?}");
                }
            }
        }
    }

    #[test]
    fn grouped_convs_run_grouped_or_direct_and_match_reference() {
        // RegNet-like: 3 groups of 24 channels, 3×3, stride 1 then 2 (to 7×7), ReLU.
        use kann_ir::ops::elementwise::{ElementwiseOp, Unary, UnaryKind};
        let mut rng = Rng::new(89);
        let mut b = GraphBuilder::new("grouped", None);
        let mut constant = |b: &mut GraphBuilder, name: &str, d: Vec<usize>| {
            let n: usize = d.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.uniform(-0.5, 0.5) as f32).collect();
            b.add_constant(name, Tensor::from_f32(Shape::new(d), v).unwrap())
        };
        let (c, group, hw) = (72, 3, 14);
        let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([1, c, hw, hw]))).unwrap();
        let conv = |stride: usize| {
            let mut w = ir::Window::new(ir::AutoPad::NotSet);
            w.kernel_shape = vec![3, 3];
            w.pads = vec![1; 4];
            w.strides = vec![stride; 2];
            Op::Nn(NnOp::Conv(ir::Conv { attrs: ir::ConvAttrs { window: w, group } }))
        };
        let one = |v: &str| vec![v.to_string()];
        let relu = || Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu }));
        let (w1, b1) = (constant(&mut b, "w1", vec![c, c / group, 3, 3]), constant(&mut b, "b1", vec![c]));
        let c1 = b.add_node("c1", conv(1), vec![Some(x), Some(w1), Some(b1)], &one("c1")).unwrap()[0];
        let r1 = b.add_node("r1", relu(), vec![Some(c1)], &one("r1")).unwrap()[0];
        let w2 = constant(&mut b, "w2", vec![c, c / group, 3, 3]);
        let y = b.add_node("c2", conv(2), vec![Some(r1), Some(w2)], &one("y")).unwrap()[0];
        b.add_output(y);
        let g = b.finish().unwrap();
        for arch in runnable_arches() {
            let isa = crate::lower::kernel_isa(arch);
            // AVX-512 builds take the grouped kernel (24 channels a group),
            // AVX2 ones the channel-blocked one (the pair a blocked region,
            // with a reorder at each end), the portable build the direct one.
            let (grouped, direct, blocked) = (format!("f32_conv2d_grouped_{}", isa.name()), format!("f32_conv2d_direct_{}", isa.name()), format!("f32_conv2d_nchw8c_{}", isa.name()));
            let want = match isa {
                kann_kernels::packed::Isa::Generic => (0, 2, 0),
                kann_kernels::packed::Isa::Avx2 => (0, 0, 2),
                kann_kernels::packed::Isa::Avx512 => (2, 0, 0),
            };
            for clusters in [1, 2] {
                let c = crate::testing::check_against_reference_on(g.clone(), clusters, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
                let names: Vec<String> = c.program.steps.iter().map(|s| s.kernel.name()).collect();
                let count = |name: &String| names.iter().filter(|n| *n == name).count();
                assert_eq!((count(&grouped), count(&direct), count(&blocked)), want, "{arch}, {clusters} clusters: {names:?}");
            }
        }
    }

    /// The output shape of a one-node graph, for residual inputs.
    fn out_dims(op: &Op, args: &[Arg]) -> Vec<usize> {
        let g = one_node(op.clone(), args.iter().map(|a| match a {
            Arg::Input(d) => Arg::Input(d.clone()),
            Arg::Const(d) => Arg::Input(d.clone()),
            Arg::Absent => Arg::Absent,
        }).collect(), 1, &mut Rng::new(0));
        g.value(g.outputs[0]).info.shape.dims().to_vec()
    }

    #[test]
    fn fused_conv_gemm_matmul_match_reference() {
        let mut rng = Rng::new(2);
        let acts = [None, Some(FusedActivation::Relu), Some(FusedActivation::Clip { min: -0.2, max: 0.3 }), Some(FusedActivation::LeakyRelu { alpha: 0.1 }), Some(FusedActivation::Silu), Some(FusedActivation::HardSigmoid { alpha: 0.2, beta: 0.5 })];
        for i in 0..30 {
            let (base, mut args) = match i % 3 {
                0 => conv_op(&mut rng),
                1 => gemm_op(&mut rng),
                _ => matmul_op(&mut rng),
            };
            let residual = rng.below(2) == 1;
            let out = out_dims(&base, &args);
            let base_inputs = args.len();
            if residual {
                args.push(Arg::Input(out));
            }
            let op = Op::Fused(Fused { base: Box::new(base), base_inputs, residual, activation: pick(&mut rng, &acts), input_scale: false });
            check(one_node(op, args, 1, &mut rng));
        }
    }

    fn gemm_op(rng: &mut Rng) -> (Op, Vec<Arg>) {
        let (m, k, n) = (1 + rng.below(5) as usize, 1 + rng.below(6) as usize, 1 + rng.below(70) as usize);
        let g = ir::Gemm { alpha: rng.uniform(0.5, 1.5), beta: rng.uniform(-1.0, 1.0), trans_a: rng.below(2) == 1, trans_b: rng.below(2) == 1 };
        let a = if g.trans_a { vec![k, m] } else { vec![m, k] };
        let b = if g.trans_b { vec![n, k] } else { vec![k, n] };
        let b = if rng.below(2) == 1 { Arg::Const(b) } else { Arg::Input(b) };
        let c = match rng.below(6) {
            0 => Arg::Absent,
            1 => Arg::Const(vec![]),
            2 => Arg::Const(vec![n]),
            3 => Arg::Const(vec![m, 1]),
            4 => Arg::Const(vec![1, n]),
            _ => Arg::Input(vec![m, n]),
        };
        (Op::Nn(NnOp::Gemm(g)), vec![Arg::Input(a), b, c])
    }

    fn matmul_op(rng: &mut Rng) -> (Op, Vec<Arg>) {
        let (m, k, n) = (1 + rng.below(4) as usize, 1 + rng.below(5) as usize, 1 + rng.below(5) as usize);
        let batch: Vec<usize> = (0..rng.below(3)).map(|_| 1 + rng.below(3) as usize).collect();
        let shape = |mat: Vec<usize>, rng: &mut Rng| -> Vec<usize> {
            let skip = rng.below(batch.len() as u64 + 1) as usize;
            let b: Vec<usize> = batch[skip..].iter().map(|&d| if rng.below(3) == 0 { 1 } else { d }).collect();
            [b, mat].concat()
        };
        let a = if rng.below(5) == 0 { vec![k] } else { shape(vec![m, k], rng) };
        let b = if rng.below(5) == 0 { vec![k] } else { shape(vec![k, n], rng) };
        let b = if rng.below(2) == 1 { Arg::Const(b) } else { Arg::Input(b) };
        (Op::Nn(NnOp::MatMul), vec![Arg::Input(a), b])
    }

    #[test]
    fn gemm_and_matmul_match_reference() {
        let mut rng = Rng::new(3);
        for _ in 0..40 {
            let (op, args) = gemm_op(&mut rng);
            check(one_node(op, args, 1, &mut rng));
            let (op, args) = matmul_op(&mut rng);
            check(one_node(op, args, 1, &mut rng));
        }
    }

    #[test]
    fn constant_weight_products_take_the_fc_kernel_on_every_arch() {
        use kann_kernels::Kernel;
        let mut rng = Rng::new(12);
        let gemm = |trans_a, trans_b, c: Arg| {
            let g = ir::Gemm { alpha: 0.75, beta: -0.5, trans_a, trans_b };
            let (m, k, n) = (3, 70, 37);
            let a = if trans_a { vec![k, m] } else { vec![m, k] };
            let b = if trans_b { vec![n, k] } else { vec![k, n] };
            (Op::Nn(NnOp::Gemm(g)), vec![Arg::Input(a), Arg::Const(b), c])
        };
        let matmul = |b| (Op::Nn(NnOp::MatMul), vec![Arg::Input(vec![2, 3, 40]), b]);
        // (node, whether the fc kernel applies)
        let cases = [
            (gemm(false, true, Arg::Const(vec![37])), true),
            (gemm(true, false, Arg::Const(vec![])), true),
            (gemm(false, false, Arg::Absent), true),
            (gemm(false, true, Arg::Const(vec![3, 37])), false),
            (gemm(false, true, Arg::Input(vec![37])), false),
            (matmul(Arg::Const(vec![40, 19])), true),
            (matmul(Arg::Input(vec![40, 19])), false),
        ];
        let graphs: Vec<(Graph, bool)> = cases.into_iter().map(|((op, args), fc)| (one_node(op, args, 1, &mut rng), fc)).collect();
        for arch in runnable_arches() {
            let isa = crate::lower::kernel_isa(arch);
            for (g, fc) in graphs.iter().cloned() {
                let lowered = crate::lower::lower_graph(&g, arch).unwrap();
                match &lowered.steps[0].kernel {
                    Kernel::FcGemm(k) => assert!(fc && k.isa == isa, "{arch}: unexpected fc kernel"),
                    other => assert!(!fc, "{arch}: got {}", other.name()),
                }
                for clusters in [1, 3] {
                    crate::testing::check_against_reference_on(g.clone(), clusters, arch).unwrap_or_else(|e| panic!("{arch}: {e}\ngraph: {g:?}"));
                }
            }
        }
    }

    #[test]
    fn pools_match_reference() {
        let mut rng = Rng::new(4);
        for i in 0..60 {
            let nsp = 1 + rng.below(3) as usize;
            let (window, _, input) = window(&mut rng, nsp, true);
            let kind = [ir::PoolKind::Max, ir::PoolKind::Average { count_include_pad: true }, ir::PoolKind::Average { count_include_pad: false }, ir::PoolKind::Lp { p: 2.0 }, ir::PoolKind::Lp { p: 3.0 }][i % 5];
            let with_indices = kind == ir::PoolKind::Max && rng.below(2) == 1;
            let p = ir::Pool { kind, window, column_major_indices: rng.below(2) == 1, with_indices };
            let x = [vec![1 + rng.below(2) as usize, 1 + rng.below(3) as usize], input].concat();
            check(one_node(Op::Nn(NnOp::Pool(p)), vec![Arg::Input(x.clone())], 1 + usize::from(with_indices), &mut rng));
            let g = ir::GlobalPool { kind };
            check(one_node(Op::Nn(NnOp::GlobalPool(g)), vec![Arg::Input(x)], 1, &mut rng));
        }
    }

    #[test]
    fn norms_match_reference() {
        let mut rng = Rng::new(5);
        for _ in 0..15 {
            let (n, c) = (1 + rng.below(2) as usize, 1 + rng.below(5) as usize);
            let x: Vec<usize> = [vec![n, c], (0..rng.below(3)).map(|_| 1 + rng.below(4) as usize).collect()].concat();
            let lrn = ir::Lrn { size: 1 + rng.below(5) as usize, alpha: rng.uniform(1e-4, 1.0), beta: rng.uniform(0.5, 1.0), bias: rng.uniform(1.0, 2.0) };
            check(one_node(Op::Nn(NnOp::Lrn(lrn)), vec![Arg::Input(x.clone())], 1, &mut rng));
            // Variances must be positive: use inputs for all but var, a positive constant.
            let mut b = GraphBuilder::new("bn", None);
            let xi = b.add_input("x", TensorInfo::new(DType::F32, Shape::new(x.clone()))).unwrap();
            let mut ins = vec![Some(xi)];
            for i in 0..4 {
                let v: Vec<f32> = (0..c).map(|_| rng.uniform(if i == 3 { 0.1 } else { -1.0 }, 1.0) as f32).collect();
                ins.push(Some(b.add_constant(&format!("p{i}"), Tensor::from_f32(Shape::from([c]), v).unwrap())));
            }
            let mut y = b.add_node("bn", Op::Nn(NnOp::BatchNorm(ir::BatchNorm { epsilon: 1e-5 })), ins, &["y".to_string()]).unwrap();
            // Pre-activation networks follow the BN with a per-channel Mul
            // and Add (folded into it) and a Relu (fused into it).
            let tail = rng.below(3);
            if tail == 2 {
                let per_channel: Vec<usize> = (0..x.len()).map(|a| if a == 1 { c } else { 1 }).collect();
                for (kind, name) in [(ir_el::BinaryKind::Mul, "mul"), (ir_el::BinaryKind::Add, "add")] {
                    let v: Vec<f32> = (0..c).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
                    let k = b.add_constant(&format!("{name}_c"), Tensor::from_f32(Shape::new(per_channel.clone()), v).unwrap());
                    let op = Op::Elementwise(ir_el::ElementwiseOp::Binary(ir_el::Binary { kind }));
                    y = b.add_node(name, op, vec![Some(y[0]), Some(k)], &[format!("{name}_y")]).unwrap();
                }
            }
            if tail >= 1 {
                let op = Op::Elementwise(ir_el::ElementwiseOp::Unary(ir_el::Unary { kind: ir_el::UnaryKind::Relu }));
                y = b.add_node("relu", op, vec![Some(y[0])], &["relu_y".to_string()]).unwrap();
            }
            b.add_output(y[0]);
            let g = b.finish().unwrap();
            check(g.clone());
            let compiled = check_against_reference(g, 1).unwrap();
            let names: Vec<String> = compiled.program.steps.iter().map(|s| s.kernel.name()).collect();
            let want = if tail >= 1 { "f32_batchnorm_relu_direct_generic" } else { "f32_batchnorm_direct_generic" };
            assert_eq!(names, [want], "tail {tail}");
            if x.len() >= 3 {
                let inorm = Op::Nn(NnOp::InstanceNorm(ir::InstanceNorm { epsilon: 1e-5 }));
                check(one_node(inorm, vec![Arg::Input(x.clone()), Arg::Const(vec![c]), Arg::Const(vec![c])], 1, &mut rng));
            }
            let axis = rng.below(x.len() as u64) as i64 - if rng.below(2) == 1 { x.len() as i64 } else { 0 };
            let first = if axis < 0 { (axis + x.len() as i64) as usize } else { axis as usize };
            let outputs = 1 + rng.below(3) as usize;
            let ln = ir::LayerNorm { axis, epsilon: 1e-5, stash: DType::F32, outputs };
            let scale = x[first..].to_vec();
            let bias = match rng.below(3) {
                0 => Arg::Absent,
                1 => Arg::Const(vec![*x.last().unwrap()]),
                _ => Arg::Input(scale.clone()),
            };
            check(one_node(Op::Nn(NnOp::LayerNorm(ln)), vec![Arg::Input(x.clone()), Arg::Const(scale.clone()), bias], outputs, &mut rng));
            let rms = ir::RmsNorm { axis, epsilon: 1e-5 };
            check(one_node(Op::Nn(NnOp::RmsNorm(rms)), vec![Arg::Input(x.clone()), Arg::Const(scale)], 1, &mut rng));
            let lp = ir::LpNorm { axis, p: 1 + rng.below(2) as u32 };
            check(one_node(Op::Nn(NnOp::LpNorm(lp)), vec![Arg::Input(x.clone())], 1, &mut rng));
            let groups = pick(&mut rng, &[1, c]);
            let per_group = rng.below(2) == 1;
            let gn = ir::GroupNorm { num_groups: groups, epsilon: 1e-5, per_group_affine: per_group };
            let affine = if per_group { groups } else { c };
            check(one_node(Op::Nn(NnOp::GroupNorm(gn)), vec![Arg::Input(x.clone()), Arg::Const(vec![affine]), Arg::Const(vec![affine])], 1, &mut rng));
        }
    }

    #[test]
    fn softmax_family_matches_reference() {
        let mut rng = Rng::new(6);
        for i in 0..30 {
            let x: Vec<usize> = (0..1 + rng.below(4)).map(|_| 1 + rng.below(4) as usize).collect();
            let kind = [ir::SoftmaxKind::Softmax, ir::SoftmaxKind::LogSoftmax, ir::SoftmaxKind::Hardmax][i % 3];
            let axis = rng.below(x.len() as u64) as i64 - if rng.below(2) == 1 { x.len() as i64 } else { 0 };
            let s = ir::Softmax { kind, axis, flatten: rng.below(2) == 1 };
            check(one_node(Op::Nn(NnOp::Softmax(s)), vec![Arg::Input(x)], 1, &mut rng));
        }
    }

    /// The light models: every nn node lowers; where the whole model lowers
    /// (the other families' lowerings present), it runs compiled and matches
    /// the expected output. Slow: run with `--ignored --nocapture`.
    #[test]
    #[ignore]
    fn light_models() {
        use std::path::PathBuf;
        let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        let dir = home.join(".cache/kann-data/onnx-1.23.2/light");
        let only = std::env::var("KANN_MODEL").ok();
        for name in ["bvlc_alexnet", "zfnet512", "vgg19", "inception_v1", "inception_v2", "resnet50", "squeezenet", "shufflenet", "densenet121"] {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let t0 = std::time::Instant::now();
            let model = kann_onnx::import_file(&dir.join(name).join("model.onnx"), &kann_onnx::ImportOptions::default(), Some(&kann_reference::Reference)).unwrap();
            let mut g = model.graph;
            crate::optimize(&mut g, Some(&kann_reference::Reference)).unwrap();
            let missing = match super::super::lower_graph(&g, kann_artifact::Arch::Generic) {
                Ok(_) => vec![],
                Err(m) => m,
            };
            let op_of = |u: &super::super::Unlowered| (0..g.nodes.len()).find(|&i| g.locate(kann_ir::NodeId(i as u32)) == u.node).map(|i| &g.nodes[i].op);
            let ours: Vec<_> = missing.iter().filter(|u| matches!(op_of(u), Some(Op::Nn(_)) | Some(Op::Fused(_)))).collect();
            let mut kinds: Vec<String> = missing.iter().map(|u| u.op.clone()).collect();
            kinds.sort();
            kinds.dedup();
            println!("{name}: {} nodes, unlowered ops {kinds:?}", g.nodes.len());
            for u in &ours {
                println!("  nn node not lowered: {u}");
            }
            if !missing.is_empty() {
                continue;
            }
            let read = |f: &str| kann_onnx::tensor::read_tensor_file(&dir.join(name).join("test_data_set_0").join(f)).unwrap().1;
            let (input, want) = (read("input_0.pb"), read("output_0.pb"));
            let opts = crate::CompileOptions { n_clusters: 4, arch: kann_artifact::Arch::Generic, winograd: true, blocked: true, calibration: Default::default() };
            let c = crate::compile(g, &opts, Some(&kann_reference::Reference)).unwrap();
            let t1 = std::time::Instant::now();
            let got = crate::testing::run_compiled(&c, &[input]).unwrap();
            let run_s = t1.elapsed().as_secs_f64();
            let res = crate::testing::compare(&got, &[want], 1e-5, 1e-3);
            println!("  compiled run {run_s:.2} s (total {:.1} s): {res:?}", t0.elapsed().as_secs_f64());
        }
    }

    /// The ONNX node tests of the nn ops this file lowers, run compiled
    /// against their expected outputs. Run with `--ignored --nocapture`.
    #[test]
    #[ignore]
    fn onnx_node_tests() {
        use std::path::PathBuf;
        let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        let dir = home.join(".cache/kann-data/onnx-1.23.2/node");
        let prefixes = ["test_conv", "test_basic_conv", "test_gemm", "test_matmul_", "test_maxpool", "test_averagepool", "test_lppool", "test_global", "test_lrn", "test_batchnorm_e", "test_instancenorm", "test_layer_normalization", "test_rms_normalization", "test_group_normalization", "test_lpnormalization", "test_softmax", "test_logsoftmax", "test_hardmax"];
        let mut names: Vec<String> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        let (mut pass, mut fail) = (0, vec![]);
        for name in names.iter().filter(|n| prefixes.iter().any(|p| n.starts_with(p)) && !n.contains("expanded") && !n.contains("training")) {
            let case = dir.join(name);
            let result = (|| -> Result<(), String> {
                let model = kann_onnx::import_file(&case.join("model.onnx"), &kann_onnx::ImportOptions::default(), Some(&kann_reference::Reference)).map_err(|e| e.to_string())?;
                let data = case.join("test_data_set_0");
                let read = |prefix: &str| -> Vec<kann_tensor::Tensor> {
                    (0..).map(|i| data.join(format!("{prefix}_{i}.pb"))).take_while(|p| p.exists()).map(|p| kann_onnx::tensor::read_tensor_file(&p).unwrap().1).collect()
                };
                let (inputs, want) = (read("input"), read("output"));
                let opts = crate::CompileOptions { n_clusters: 2, arch: kann_artifact::Arch::Generic, winograd: true, blocked: true, calibration: Default::default() };
                let c = crate::compile(model.graph, &opts, Some(&kann_reference::Reference)).map_err(|e| e.to_string())?;
                let got = crate::testing::run_compiled(&c, &inputs)?;
                crate::testing::compare(&got, &want, 1e-4, 1e-3)
            })();
            match result {
                Ok(()) => pass += 1,
                Err(e) => fail.push(format!("{name}: {e}")),
            }
        }
        println!("{pass} passed, {} failed", fail.len());
        for f in &fail {
            println!("  {f}");
        }
    }
}
