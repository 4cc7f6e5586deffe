//! The cost model: an estimate of each step's time on one core of the
//! target arch, used to decide whether a step is worth splitting across
//! clusters and to print the estimated latency per cluster. Numbers are
//! the kernels' throughput on a 2024-class x86-64 core: the portable
//! direct kernels, and the packed-GEMM convolutions per ISA (measured on one
//! Xeon core: ~110-150 GFLOP/s AVX-512 and ~70-100 AVX2 for the bare GEMM on
//! ResNet-50 shapes, ~18-24 for the portable tile; the rates below are the
//! whole convolutions' in ResNet-50 on one core, packing, im2col and edge
//! tiles included: ~12% faster with AVX-512 since the masked edge tiles,
//! balanced K blocks and prefetching).

use kann_kernels::packed::Isa;
use kann_kernels::{Kernel, Step};

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
    /// Memory throughput of one core.
    pub bytes_per_s: f64,
    /// Fixed cost of starting a part on a cluster (call + cache warm-up).
    pub launch_s: f64,
    /// What a barrier costs when the clusters arrive together.
    pub barrier_s: f64,
}

impl CostModel {
    /// The model of kann's kernels on one core.
    pub fn portable() -> CostModel {
        CostModel { matmul_flops: 6e9, packed_flops: [24e9, 65e9, 95e9], other_flops: 1.5e9, bytes_per_s: 8e9, launch_s: 0.5e-6, barrier_s: 2e-6 }
    }

    /// Estimated seconds to run the fraction `share` (0..=1) of `step` on one core.
    pub fn step_seconds(&self, step: &Step, share: f64) -> f64 {
        let bytes: u64 = step.inputs.iter().chain(&step.outputs).map(|b| b.len()).sum();
        let flops_rate = self.flops_rate(&step.kernel);
        self.launch_s + share * (step.flops as f64 / flops_rate + bytes as f64 / self.bytes_per_s)
    }

    /// The compute throughput of a kernel: its ISA's for the packed GEMM,
    /// the portable matrix rate for other convolutions and products.
    pub fn flops_rate(&self, k: &Kernel) -> f64 {
        match k {
            Kernel::ConvGemm(c) => match c.isa {
                Isa::Generic => self.packed_flops[0],
                Isa::Avx2 => self.packed_flops[1],
                Isa::Avx512 => self.packed_flops[2],
            },
            // Winograd F(4x4, 3x3) does 2.25x fewer multiplications than the
            // flops the step counts (the direct convolution's); in networks
            // (one core, AVX-512) it ran the qualifying 3x3 layers 1.56x
            // faster than the GEMM in VGG-19 and 1.1x in ResNet-50.
            Kernel::Winograd(w) => {
                1.3 * match w.isa {
                    Isa::Generic => self.packed_flops[0],
                    Isa::Avx2 => self.packed_flops[1],
                    Isa::Avx512 => self.packed_flops[2],
                }
            }
            Kernel::FcGemm(f) => match f.isa {
                Isa::Generic => self.packed_flops[0],
                Isa::Avx2 => self.packed_flops[1],
                Isa::Avx512 => self.packed_flops[2],
            },
            _ if is_matmul_like(k) => self.matmul_flops,
            _ => self.other_flops,
        }
    }
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
            })
        };
        let rates: Vec<f64> = Isa::ALL.into_iter().map(|i| cm.flops_rate(&conv(i))).collect();
        assert!(rates[0] > cm.matmul_flops && rates[1] > rates[0] && rates[2] > rates[1], "{rates:?}");
    }
}
