//! The cost model: an estimate of each step's time on one core of the
//! target arch, used to decide whether a step is worth splitting across
//! clusters and to print the estimated latency per cluster. Numbers are
//! the portable kernels' throughput on a 2024-class x86-64 core; issue "4
//! of 4" calibrates them against measured runs.

use kann_kernels::{Kernel, Step};

/// Throughputs of one core, in FLOP per second and bytes per second.
#[derive(Clone, Copy, Debug)]
pub struct CostModel {
    /// Compute throughput of the convolution and matrix kernels.
    pub matmul_flops: f64,
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
    /// The model of the portable kernels.
    pub fn portable() -> CostModel {
        CostModel { matmul_flops: 6e9, other_flops: 1.5e9, bytes_per_s: 8e9, launch_s: 0.5e-6, barrier_s: 2e-6 }
    }

    /// Estimated seconds to run the fraction `share` (0..=1) of `step` on one core.
    pub fn step_seconds(&self, step: &Step, share: f64) -> f64 {
        let bytes: u64 = step.inputs.iter().chain(&step.outputs).map(|b| b.len()).sum();
        let flops_rate = if is_matmul_like(&step.kernel) { self.matmul_flops } else { self.other_flops };
        self.launch_s + share * (step.flops as f64 / flops_rate + bytes as f64 / self.bytes_per_s)
    }
}

/// Convolution and matrix-product kernels (the compute-bound class).
fn is_matmul_like(k: &Kernel) -> bool {
    let name = k.name();
    name.contains("conv") || name.contains("gemm") || name.contains("matmul")
}
