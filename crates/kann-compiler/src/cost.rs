//! The cost model: an estimate of each step's time on one core of the
//! target arch, used to decide whether a step is worth splitting across
//! clusters and to print the estimated latency per cluster (which `kann
//! run`, `kann infer` and `kann bench` print next to the measured one).
//! A step costs a launch, its FLOPs at its kernel family's rate, its
//! activation bytes at cache speed and its weight bytes at memory speed.
//! The rates were calibrated on one core of a Sapphire-Rapids-class Xeon
//! (AVX-512) over eleven networks of the benchmark set (`kann infer` at one
//! cluster, sum of measured over estimated step times per kernel family,
//! within ~15% for the convolutions, which are 85-95% of the time);
//! AVX2 and portable rates are scaled from the kernels' tile measurements.
//! That machine runs 10-20% faster or slower from one hour to the next
//! (ONNX Runtime's ResNet-50 at one thread 50-62 ms): the AVX-512 GEMM rate
//! sits between its phases (measured / estimated 0.80-0.86 on the GEMM
//! networks in a fast phase at 160 GFLOP/s, 0.91-1.03 in a slow one).

use kann_kernels::Activation;
use kann_kernels::packed::Isa;
use kann_kernels::{BufRef, Kernel, Step};

/// Throughputs of one core, in FLOP per second and bytes per second.
#[derive(Clone, Copy, Debug)]
pub struct CostModel {
    /// Compute throughput of the portable convolution and matrix kernels.
    pub matmul_flops: f64,
    /// Compute throughput of the packed-GEMM convolutions, per ISA
    /// (generic, AVX2, AVX-512).
    pub packed_flops: [f64; 3],
    /// Compute throughput of everything else (element-wise, pooling…).
    pub other_flops: f64,
    /// Throughput of one core on activations (mostly cache-resident).
    pub bytes_per_s: f64,
    /// Throughput of one core on weights (streamed from memory each frame).
    /// 12e9 → 18e9 when the fully connected layers, which at batch 1 only
    /// stream their weights, ran at 0.59-0.73 of their estimate on seven
    /// networks (VGG-19's 554 MB in 29.8 ms, AlexNet's 234 MB in 13.6; Zen 3,
    /// one cluster), and VGG-19's Winograd layers (37 MB of transformed
    /// weights each) at 0.85.
    pub weight_bytes_per_s: f64,
    /// Bytes per second an im2col packing step moves (gathered runs of a
    /// few floats, slower than a stream).
    pub gather_bytes_per_s: f64,
    /// A GEMM convolution's own im2col: bytes per second of the floats it
    /// gathers, plus a set-up per piece it copies
    /// ([`kann_kernels::conv_gemm::ConvGemm::gathered_runs`]). Fitted on
    /// AlexNet's 11×11/4 stem (a float a piece, ~1.3 ns each) and
    /// RegNetX's grouped 3×3 convolutions (rows of 14 and 56 floats, ~0.2
    /// ns a float): one rate for all had them at 1.2× and 0.6× their
    /// estimates.
    pub im2col_bytes_per_s: f64,
    pub im2col_run_s: f64,
    /// Compute throughput of element-wise, pooling and normalisation
    /// kernels with SIMD variants (generic, AVX2, AVX-512).
    pub simd_other_flops: [f64; 3],
    /// Compute throughput of the depthwise kernel (generic, AVX2, AVX-512).
    /// AVX2 15e9 → 21e9 when MobileNetV2's, EfficientNet-B0's and Lite0's
    /// depthwise steps ran at 1/1.7-1/2.4 of their estimate where their
    /// GEMM steps ran at 1/1.3-1/1.6 (Zen 3, one cluster, a fast phase).
    pub depthwise_flops: [f64; 3],
    /// Window operations per second of the 2-D pooling kernel (generic,
    /// AVX2, AVX-512): short rows and per-row set-up keep it below the
    /// other SIMD kernels (AVX-512 reduces rows of up to 32 in registers:
    /// ~30e9 on 14×14 planes, while 56×56 and larger ones stream at the
    /// memory's pace; GoogLeNet's 13 MaxPools ran at 0.76 of the estimate
    /// at 14e9).
    pub pool_flops: [f64; 3],
    /// Fixed cost of starting a part on a cluster (call + cache warm-up).
    pub launch_s: f64,
    /// What a barrier costs when the clusters arrive together.
    pub barrier_s: f64,
    /// Seconds per byte a cluster reads of what another cluster wrote (the
    /// lines come from the other core's cache): Inception v2's 1×1 convs
    /// run whole on one cluster after a split step took 31–57 µs longer
    /// for 300–400 KB written by the other (~1e-10 s a byte).
    pub remote_s_per_byte: f64,
    /// Seconds per element of an exponential activation (sigmoid, SiLU,
    /// tanh) fused into a convolution's epilogue (~0.36 ns measured).
    pub exp_activation_s: f64,
    /// This machine's corrections of the rates above (identity unless
    /// `kann devices` measured them here).
    pub calibration: Calibration,
}

/// The kernel families a [`Calibration`] corrects one by one: those whose
/// speed moves most from one CPU to the next against the others (L2 size
/// for Winograd's blocks, memory bandwidth for the weights).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// The packed GEMM and the direct, grouped and blocked convolutions on its tiles.
    Gemm,
    /// The channel-blocked 1×1 convolution.
    Pointwise,
    /// Winograd F(4×4, 3×3).
    Winograd4,
    /// Winograd F(2×2, 3×3).
    Winograd2,
    /// The depthwise convolutions.
    Depthwise,
}

impl Family {
    pub const ALL: [Family; 5] = [Family::Gemm, Family::Pointwise, Family::Winograd4, Family::Winograd2, Family::Depthwise];

    pub fn name(self) -> &'static str {
        match self {
            Family::Gemm => "gemm",
            Family::Pointwise => "pointwise",
            Family::Winograd4 => "winograd4x4",
            Family::Winograd2 => "winograd2x2",
            Family::Depthwise => "depthwise",
        }
    }

    /// The family of a kernel, if it is one the calibration corrects.
    pub fn of(k: &Kernel) -> Option<Family> {
        use kann_kernels::winograd::WinogradTile;
        Some(match k {
            Kernel::ConvGemm(_) | Kernel::FcGemm(_) | Kernel::ConvDirect(_) | Kernel::ConvGrouped(_) | Kernel::BlockedConv(_) | Kernel::ConvPool(_) | Kernel::PointwiseDepthwise(_) => Family::Gemm,
            Kernel::BlockedPointwise(_) => Family::Pointwise,
            Kernel::Winograd(w) if w.tile == WinogradTile::F4x4 => Family::Winograd4,
            Kernel::Winograd(_) => Family::Winograd2,
            Kernel::DepthwiseConv(_) | Kernel::BlockedDepthwise(_) => Family::Depthwise,
            _ => return None,
        })
    }
}

/// Measured over modelled time on this machine: of each [`Family`]'s
/// compute (its FLOPs and activation traffic) and of the weights' stream.
/// The model's rates were fit on two or three machines; another CPU of the
/// same ISA runs some families at 0.6-0.7 of their estimate and others at
/// 1.0 (Zen 4 against the Zen 3 fit: Winograd F(4×4) with blocks that fit
/// its 1 MB L2, the fully connected layers' weights on faster memory).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    /// Per [`Family::ALL`] entry.
    pub compute: [f64; 5],
    pub weights: f64,
    /// How many cores' worth of weight stream all the clusters get at once
    /// (the memory's bandwidth over one core's), if measured: the parts of
    /// a step that divide its weights stream them no faster together.
    /// AlexNet's fully connected layers, split in two, streamed 36 GB/s
    /// where one core alone streamed 27-33 (Zen 4).
    pub bandwidth_cores: Option<f64>,
}

impl Default for Calibration {
    fn default() -> Calibration {
        Calibration { compute: [1.0; 5], weights: 1.0, bandwidth_cores: None }
    }
}

impl Calibration {
    /// The factor of `family`'s compute time.
    pub fn compute_factor(&self, family: Family) -> f64 {
        self.compute[Family::ALL.iter().position(|&f| f == family).unwrap_or(0)]
    }

    /// The factor of a kernel's compute time (1 outside the families).
    pub fn of_kernel(&self, k: &Kernel) -> f64 {
        Family::of(k).map_or(1.0, |f| self.compute_factor(f))
    }

    /// Whether every factor is 1.
    pub fn is_identity(&self) -> bool {
        *self == Calibration::default()
    }
}

/// One step's modelled time in parts (seconds on one core).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepCost {
    pub launch: f64,
    /// FLOPs, activation traffic and gathers: the kernel's own speed.
    pub compute: f64,
    /// Streaming the weights from memory (the part's).
    pub weights: f64,
    /// Streaming all the step's weights on one core.
    pub all_weights: f64,
}

impl CostModel {
    /// The model of kann's kernels on one core.
    pub fn portable() -> CostModel {
        CostModel {
            matmul_flops: 6e9,
            packed_flops: [24e9, 75e9, 182e9],
            other_flops: 14e9,
            simd_other_flops: [5e9, 13e9, 20e9],
            depthwise_flops: [7e9, 21e9, 35e9],
            pool_flops: [3e9, 6e9, 16e9],
            bytes_per_s: 40e9,
            weight_bytes_per_s: 18e9,
            gather_bytes_per_s: 6e9,
            im2col_bytes_per_s: 20e9,
            im2col_run_s: 1.2e-9,
            launch_s: 3e-6,
            barrier_s: 5e-6,
            remote_s_per_byte: 1e-10,
            exp_activation_s: 0.36e-9,
            calibration: Calibration::default(),
        }
    }

    /// This model with `calibration`'s corrections.
    pub fn calibrated(self, calibration: Calibration) -> CostModel {
        CostModel { calibration, ..self }
    }

    /// Estimated seconds to run the fraction `share` (0..=1) of `step` on one core.
    pub fn step_seconds(&self, step: &Step, share: f64) -> f64 {
        let c = self.step_cost(step, share);
        let mut weights = c.weights;
        if let Some(cores) = self.calibration.bandwidth_cores {
            if c.weights < c.all_weights {
                // The other parts stream the rest of the weights meanwhile.
                weights = weights.max(c.all_weights / cores);
            }
        }
        c.launch + c.compute * self.calibration.of_kernel(&step.kernel) + weights * self.calibration.weights
    }

    /// [`Self::step_seconds`] in its uncalibrated parts.
    pub fn step_cost(&self, step: &Step, share: f64) -> StepCost {
        let (mut arena, mut weights) = (0u64, 0u64);
        for b in step.inputs.iter().chain(&step.outputs) {
            match b {
                BufRef::Arena { len, .. } => arena += len,
                BufRef::Weights { len, .. } => weights += len,
            }
        }
        let flops_rate = self.flops_rate(&step.kernel);
        // A GEMM convolution split by output columns, a Winograd one split
        // by tiles or a blocked 1×1 one, streams all its weights in every part; other splits
        // divide them.
        let weight_share = match &step.kernel {
            Kernel::ConvGemm(c) if c.axis == kann_kernels::conv_gemm::GemmAxis::Columns => 1.0,
            Kernel::Winograd(w) if w.axis == kann_kernels::winograd::WinogradAxis::Tiles => 1.0,
            // Split by pixels: every part streams all its weights.
            Kernel::BlockedPointwise(b) if !b.by_channels => 1.0,
            _ => share,
        };
        let bytes_per_s = if matches!(step.kernel, Kernel::Im2colPack(_)) { self.gather_bytes_per_s } else { self.bytes_per_s };
        let activations = exp_activations(&step.kernel) as f64 * self.exp_activation_s;
        // A GEMM convolution that builds its own im2col (split by columns,
        // each part its own columns) gathers at the packing's pace: AlexNet's
        // and ZFNet's 11×11/4 and 7×7/2 stems ran 2× their estimate without it.
        // Split by output channels, every part gathers all of B.
        let (gather_s, gather_share) = match &step.kernel {
            Kernel::ConvGemm(c) => {
                let s = (4 * c.gathered_floats()) as f64 / self.im2col_bytes_per_s + c.gathered_runs() as f64 * self.im2col_run_s;
                (s, if c.axis == kann_kernels::conv_gemm::GemmAxis::Channels { 1.0 } else { share })
            }
            // An im2col packing step copies the same pieces as the
            // convolution's own gather would (each with its set-up), beyond
            // its bytes: Inception v2's ten ran 5.8x their estimate at 2
            // clusters without them (Zen 3).
            Kernel::Im2colPack(p) => {
                let own = kann_kernels::conv_gemm::ConvGemm { axis: kann_kernels::conv_gemm::GemmAxis::Columns, ..p.conv.clone() };
                (own.gathered_runs() as f64 * self.im2col_run_s, share)
            }
            _ => (0.0, share),
        };
        // A part's activation traffic shrinks slower than its share: the
        // parts contend for the shared cache and read lines the other
        // cores wrote. DenseNet-121's 62 batch-norm steps and 29 concats
        // (memory-bound) ran 1.8x and 3x their estimate at 2 clusters
        // with the traffic split evenly, 1.07x and 1.16x at 1 (Zen 3).
        let traffic_share = share.sqrt();
        let work = share * (step.flops as f64 / flops_rate + activations) + traffic_share * arena as f64 / bytes_per_s + gather_share * gather_s;
        let all_weights = weights as f64 / self.weight_bytes_per_s;
        StepCost { launch: self.launch_s, compute: work, weights: weight_share * all_weights, all_weights }
    }

    /// The compute throughput of a kernel: its ISA's for the packed GEMM,
    /// the portable matrix rate for other convolutions and products.
    pub fn flops_rate(&self, k: &Kernel) -> f64 {
        match k {
            Kernel::ConvGemm(c) => self.packed_flops[isa_index(c.isa)] * short_depth((c.in_channels / c.group.max(1)) * c.kernel[0] * c.kernel[1]),
            // Winograd F(4x4, 3x3) does 4x fewer multiplications than the
            // flops the step counts (the direct convolution's), less its
            // transforms: measured 2.6-3.1x the GEMM's rate on 28x28 and
            // larger maps, ~2x on 14x14 (where its 4x larger weights weigh
            // too, charged apart).
            // Its GEMMs are as deep as the input channels: SqueezeNet's
            // 16- to 64-channel fire modules ran 1.2-1.8x their estimate
            // without the shallow-depth factor.
            // Its transforms weigh more the fewer output channels share them:
            // DenseNet's 128->32 layers ran 1.7-1.9x the estimate without the
            // output factor, 64-256 outputs 1.05-1.4x.
            // F(2x2, 3x3) does 2.25x fewer, with transforms per 4 outputs
            // but a quarter of F(4x4)'s transformed weights per tile: 2.1
            // fit on ResNet-50, Inception v2 and GoogLeNet at 1 cluster
            // (1.7 left them at 0.67-0.79 of the estimate). F(4x4) 2.8 -> 3.0
            // after GoogLeNet's 28x28 layers ran at 0.79 of the estimate
            // (medians of 5 runs at 1 cluster). On Zen 3 (AVX2) both ran
            // 1.03-1.47x their estimate where the GEMM steps of the same run
            // read 0.89-1.04 (ResNet-50, Inception v2, GoogLeNet, SqueezeNet,
            // DenseNet-121 at 1 cluster): 3.0 -> 2.7, 2.1 -> 1.95, and the
            // output factor's 26 -> 36 (DenseNet's 32-output layers worst).
            Kernel::Winograd(w) => {
                let gain = match w.tile {
                    kann_kernels::winograd::WinogradTile::F4x4 => 2.7,
                    kann_kernels::winograd::WinogradTile::F2x2 => 1.95,
                };
                gain * self.packed_flops[isa_index(w.isa)] * short_depth(w.in_channels) * few_outputs(w.out_channels)
            }
            Kernel::FcGemm(f) => self.packed_flops[isa_index(f.isa)],
            // The GEMM's tile over B read in place: no gather, short K, and
            // tiles of one output row each (see `direct_tile_use`).
            Kernel::ConvDirect(c) => self.packed_flops[isa_index(c.isa)] * short_depth((c.in_channels / c.group.max(1)) * c.kernel[0] * c.kernel[1]) * direct_tile_use(c),
            // Every lane used and at least 8 sums in flight in any tile; a
            // horizontal stride spaces the broadcasts over more lines:
            // RegNet-X's 3×3/2 layers ran at 74-85 % of the stride-1 ones'
            // rate (Zen 3).
            Kernel::ConvGrouped(c) => {
                let strided = if c.strides[1] > 1 { 0.8 } else { 1.0 };
                self.packed_flops[isa_index(c.isa)] * short_depth((c.in_channels / c.group.max(1)) * c.kernel[0] * c.kernel[1]) * strided
            }
            // Stride-1 rows of 9 or more outputs on the register-row path:
            // measured 2.2-2.6x the other paths' rate (MobileNetV2's
            // 14x14 and 28x28 layers at 1 cluster).
            Kernel::DepthwiseConv(d) if d.register_rows() && d.strides[1] == 1 && d.output[1] > 8 => 2.2 * self.depthwise_flops[isa_index(d.isa)],
            Kernel::DepthwiseConv(d) => self.depthwise_flops[isa_index(d.isa)],
            // The pointwise part at the GEMM's rate for its (short) depth, the
            // depthwise part at the unfused kernel's rate for its rows (the
            // halo rows' repeated pointwise work is small). MobileNetV2's
            // 16->96 112x112/2 pair at 2 clusters ran ~1.7x the estimate
            // that charged the GEMM's full rate to its 16-deep product.
            Kernel::PointwiseDepthwise(f) => {
                let d = &f.depthwise;
                let pointwise = (f.in_channels * d.in_channels * d.input[0] * d.input[1]) as f64;
                let depthwise = (d.out_channels * d.kernel[0] * d.kernel[1] * d.output[0] * d.output[1]) as f64;
                let packed = self.packed_flops[isa_index(f.isa)] * short_depth(f.in_channels);
                let seconds = pointwise / packed + depthwise / self.flops_rate(&Kernel::DepthwiseConv(d.clone()));
                (pointwise + depthwise) / seconds.max(f64::MIN_POSITIVE)
            }
            // Channel-blocked kernels: the 1×1 convolution's tile reads X in
            // place (no packing) at the GEMM's rate for its depth; the
            // depthwise one has no transposes.
            Kernel::BlockedPointwise(b) => BLOCKED_POINTWISE_GAIN * self.packed_flops[isa_index(b.isa)] * short_depth(b.in_channels),
            Kernel::BlockedDepthwise(d) => BLOCKED_DEPTHWISE_GAIN * self.depthwise_flops[isa_index(d.isa)],
            // As the NCHW grouped kernel (the same tile with channels in the
            // lanes), without its transposes. Strided grouped layers pay
            // their narrow groups' gathers; dense ones do not (ResNet-50's
            // strided 3×3 and 1×1 steps ran 0.77 of the penalised estimate).
            Kernel::BlockedConv(c) => {
                let strided = if c.strides[1] > 1 && c.group > 1 { 0.8 } else { 1.0 };
                self.packed_flops[isa_index(c.isa)] * short_depth((c.in_channels / c.group.max(1)) * c.kernel[0] * c.kernel[1]) * strided
            }
            Kernel::Pool2d(_) => simd_isa(k).map_or(self.pool_flops[0], |isa| self.pool_flops[isa_index(isa)]),
            Kernel::BlockedPool(p) => BLOCKED_POOL_GAIN * self.pool_flops[isa_index(p.isa)],
            // The stem at the direct kernel's rate, its rows repeated at band
            // edges; the pool at the pool's rate.
            Kernel::ConvPool(f) => {
                let (c, p) = (&f.conv, &f.pool);
                let conv = (2 * c.out_channels * c.in_channels * c.kernel[0] * c.kernel[1] * c.output[0] * c.output[1]) as f64;
                let pool = (p.planes * p.kernel[0] * p.kernel[1] * p.output[0] * p.output[1]) as f64;
                let band_in = (f.band_rows - 1) * p.strides[0] + (p.kernel[0] - 1) * p.dilations[0] + 1;
                let repeat = band_in as f64 / (f.band_rows * p.strides[0]) as f64;
                let seconds = conv * repeat.max(1.0) / self.flops_rate(&Kernel::ConvDirect(c.clone())) + pool / self.flops_rate(&Kernel::Pool2d(p.clone()));
                (conv + pool) / seconds.max(f64::MIN_POSITIVE)
            }
            _ if is_matmul_like(k) => self.matmul_flops,
            _ => match simd_isa(k) {
                Some(isa) => self.simd_other_flops[isa_index(isa)],
                None => self.other_flops,
            },
        }
    }
}

/// The channel-blocked 1×1 convolution's rate over the packed GEMM's for
/// its depth: its tile packs nothing and pays its epilogue over fewer
/// steps' worth. Fit on MobileNetV2 and EfficientNet-Lite0 at one cluster
/// (their 66 blocked 1×1 steps ran at 0.71-0.76 of the GEMM's estimate; Zen 3).
const BLOCKED_POINTWISE_GAIN: f64 = 1.35;

/// The channel-blocked pool's rate over the NCHW pools': 1.5-2.8× alone
/// (`blocked_pool_timing`); SqueezeNet's three 3×3/2 max pools ran at
/// 0.39 of the pool rate's estimate in a frame (Zen 3, one cluster).
const BLOCKED_POOL_GAIN: f64 = 2.0;

/// The channel-blocked depthwise kernel's rate over the NCHW one's paths:
/// 1.3-2.3× in isolation on MobileNetV2's and EfficientNet's layers; in
/// those networks at one cluster their 33 steps ran at 0.67-0.83 of 2× (Zen 3).
const BLOCKED_DEPTHWISE_GAIN: f64 = 2.6;

/// The share of its tiles' lanes a direct convolution uses: a tile is MR
/// output channels of one group by NR columns of one output row, so a 7×7
/// map fills 7 of AVX2's 16 columns. RegNet-X's grouped 3×3 layers on 7×7
/// maps ran 2.1-2.6× their estimate without it (Zen 3, 1 cluster); on
/// 14×14 to 56×56 maps 1.3×.
fn direct_tile_use(c: &kann_kernels::conv_direct::ConvDirect) -> f64 {
    let (mr, nr) = (c.isa.mr() as u64, c.isa.nr() as u64);
    let (rows, cols) = (c.out_channels / c.group.max(1), c.output[1]);
    let used = |n: u64, tile: u64| n as f64 / (n.div_ceil(tile).max(1) * tile) as f64;
    used(rows, mr) * used(cols, nr)
}

/// The share of the tile's rate a GEMM of depth `k` keeps: each tile pays
/// its epilogue (and C's lines) once for `k` steps of multiply-adds, about
/// 16 steps' worth. A 3×3 RGB stem (27) ran at ~85 GFLOP/s against ~160
/// for deep layers.
fn short_depth(k: u64) -> f64 {
    k as f64 / (k as f64 + 16.0)
}

/// The share of Winograd's rate a layer of `m` output channels keeps: its
/// input transform (per input channel) is shared by the output channels,
/// worth about 36 of them (fit on DenseNet-121, Inception v2, ResNet-50
/// and SqueezeNet at 1 cluster).
fn few_outputs(m: u64) -> f64 {
    m as f64 / (m as f64 + 36.0)
}

/// Elements a convolution's epilogue passes through an exponential
/// activation (sigmoid, SiLU, tanh): EfficientNet-B0's fused expand +
/// depthwise steps spent more on their two SiLUs than on their products.
fn exp_activations(k: &Kernel) -> u64 {
    let exp = |e: &kann_kernels::Epilogue| matches!(e.activation, Activation::Sigmoid | Activation::Silu | Activation::Tanh);
    let depthwise = |d: &kann_kernels::depthwise::DepthwiseConv| if exp(&d.epilogue) { d.batch * d.out_channels * d.output[0] * d.output[1] } else { 0 };
    match k {
        Kernel::ConvGemm(c) if exp(&c.epilogue) => c.batch * c.out_channels * c.output[0] * c.output[1],
        Kernel::ConvDirect(c) if exp(&c.epilogue) => c.batch * c.out_channels * c.output[0] * c.output[1],
        Kernel::ConvGrouped(c) if exp(&c.epilogue) => c.batch * c.out_channels * c.output[0] * c.output[1],
        Kernel::ConvPool(f) if exp(&f.conv.epilogue) => f.conv.batch * f.conv.out_channels * f.conv.output[0] * f.conv.output[1],
        Kernel::Winograd(w) if exp(&w.epilogue) => w.batch * w.out_channels * w.output[0] * w.output[1],
        Kernel::DepthwiseConv(d) => depthwise(d),
        Kernel::BlockedPointwise(b) if exp(&b.epilogue) => b.batch * b.out_channels * b.pixels,
        Kernel::BlockedDepthwise(d) if exp(&d.epilogue) => d.batch * d.channels * d.output[0] * d.output[1],
        Kernel::BlockedConv(c) if exp(&c.epilogue) => c.batch * c.out_channels * c.output[0] * c.output[1],
        Kernel::PointwiseDepthwise(f) => {
            let d = &f.depthwise;
            let expanded = if exp(&f.pointwise) { d.batch * d.in_channels * d.input[0] * d.input[1] } else { 0 };
            expanded + depthwise(d)
        }
        _ => 0,
    }
}

fn isa_index(isa: Isa) -> usize {
    match isa {
        Isa::Generic => 0,
        Isa::Avx2 => 1,
        Isa::Avx512 => 2,
    }
}

/// The ISA of a kernel with SIMD variants, from its name's suffix.
fn simd_isa(k: &Kernel) -> Option<Isa> {
    let name = k.name();
    Isa::ALL.into_iter().filter(|i| *i != Isa::Generic).find(|i| name.ends_with(&format!("_{}", i.name())))
}

/// Convolution and matrix-product kernels (the compute-bound class).
fn is_matmul_like(k: &Kernel) -> bool {
    let name = k.name();
    name.contains("conv") || name.contains("gemm") || name.contains("matmul")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_kernels::conv_gemm::{ConvGemm, GemmAxis};
    use kann_kernels::Epilogue;

    #[test]
    fn packed_convolutions_run_at_their_isa_rate() {
        let cm = CostModel::portable();
        let conv = |isa| {
            Kernel::ConvGemm(ConvGemm {
                batch: 1,
                in_channels: 8,
                out_channels: 8,
                group: 1,
                input: [4, 4],
                kernel: [3, 3],
                strides: [1, 1],
                dilations: [1, 1],
                pad_begin: [1, 1],
                output: [4, 4],
                epilogue: Epilogue::default(),
                isa,
                axis: GemmAxis::Columns,
                input_scale: false,
            })
        };
        let rates: Vec<f64> = Isa::ALL.into_iter().map(|i| cm.flops_rate(&conv(i))).collect();
        assert!(rates[0] > cm.matmul_flops && rates[1] > rates[0] && rates[2] > rates[1], "{rates:?}");
    }

    #[test]
    fn gathering_convolutions_pay_for_their_im2col() {
        // The same 3x3 convolution split by columns (it gathers its im2col:
        // 64 · 9 · 28 · 28 floats) and by prepacked channels (an Im2colPack
        // step gathers instead): the first costs the gather more.
        let cm = CostModel { launch_s: 0.0, ..CostModel::portable() };
        let conv = ConvGemm {
            batch: 1,
            in_channels: 64,
            out_channels: 64,
            group: 1,
            input: [28, 28],
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pad_begin: [1, 1],
            output: [28, 28],
            epilogue: Epilogue::default(),
            isa: Isa::Avx512,
            axis: GemmAxis::Columns,
            input_scale: false,
        };
        let step = |c: &ConvGemm| Step { name: "c".into(), op: "Conv".into(), kernel: Kernel::ConvGemm(c.clone()), inputs: vec![], outputs: vec![], flops: 1 };
        let packed = ConvGemm { axis: GemmAxis::PackedChannels, ..conv.clone() };
        let extra = cm.step_seconds(&step(&conv), 1.0) - cm.step_seconds(&step(&packed), 1.0);
        // Stride 1 on 28×28: a run per output row of each of the 576 im2col rows.
        let want = 4.0 * (64 * 9 * 28 * 28) as f64 / cm.im2col_bytes_per_s + (64 * 9 * 28) as f64 * cm.im2col_run_s;
        assert!((extra - want).abs() < 1e-12, "{extra} vs {want}");
        // Half of the work: by columns, half of the im2col; by channels, all of it.
        let extra = cm.step_seconds(&step(&conv), 0.5) - cm.step_seconds(&step(&packed), 0.5);
        assert!((extra - want / 2.0).abs() < 1e-12, "{extra} vs {}", want / 2.0);
        let channels = ConvGemm { axis: GemmAxis::Channels, ..conv.clone() };
        let extra = cm.step_seconds(&step(&channels), 0.5) - cm.step_seconds(&step(&packed), 0.5);
        assert!((extra - want).abs() < 1e-12, "{extra} vs {want}");
        assert_eq!(ConvGemm { kernel: [1, 1], pad_begin: [0, 0], ..conv }.gathered_floats(), 0);
    }
}
