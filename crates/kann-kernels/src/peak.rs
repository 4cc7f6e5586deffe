//! The CPU's peak arithmetic throughput on one core, measured: for each
//! vector width this CPU has, a loop of independent multiply-adds (enough
//! accumulators to keep every FMA port busy whatever its latency), timed
//! over a short window. `kann devices` reports these figures and `kann
//! bench` divides a network's FLOPs by them ("time at peak").
//!
//! The x86-64 loops are inline assembly, so the compiler can neither drop
//! nor reorder them and the instruction mix is exactly the one counted.
//! Each runs only after `is_x86_feature_detected!` has confirmed the
//! instructions it uses; the registers it writes are declared through
//! `clobber_abi("C")`, so the functions need no `#[target_feature]` (every
//! vector register is caller-saved in the System V ABI, and the functions
//! are never inlined). A portable Rust loop is measured everywhere as the
//! floor (and is the only figure on other architectures).

use std::time::{Duration, Instant};

/// What a loop counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Single-precision floating-point operations (a multiply-add is 2).
    Fp32,
    /// bf16 dot products accumulating in f32 (a multiply-add is 2).
    Bf16,
    /// 8-bit integer dot products accumulating in i32 (a multiply-add is 2).
    Int8,
}

impl Kind {
    /// `fp32`, `bf16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fp32 => "fp32",
            Kind::Bf16 => "bf16",
            Kind::Int8 => "int8",
        }
    }

    /// The unit of its throughput: `GFLOP/s` or `GOP/s`.
    pub fn unit(self) -> &'static str {
        match self {
            Kind::Int8 => "GOP/s",
            _ => "GFLOP/s",
        }
    }
}

/// One micro-benchmark loop this CPU can run.
#[derive(Clone, Copy, Debug)]
pub struct PeakLoop {
    /// Short name: `fp32-avx512`, `fp32-avx2`, `int8-avx512-vnni`…
    pub name: &'static str,
    pub kind: Kind,
    /// The instruction it repeats, for the reader (`vfmadd231ps zmm`).
    pub instruction: &'static str,
    /// Operations one call of `body` with `iters = 1` performs.
    ops_per_iter: f64,
    /// Runs the loop `iters` times (`iters >= 1`).
    body: fn(u64),
}

/// The loops this CPU can run, widest first within each kind; the portable
/// loop is always last.
pub fn loops() -> Vec<PeakLoop> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    x86::push_available(&mut out);
    out.push(PeakLoop { name: "fp32-portable", kind: Kind::Fp32, instruction: "Rust a*b+c, 32 lanes", ops_per_iter: portable::OPS_PER_ITER, body: portable::run });
    out
}

impl PeakLoop {
    /// The best throughput (giga-operations per second, see [`Kind::unit`])
    /// over slices of about a millisecond run back to back for `window`:
    /// the best slice rather than the mean, since a peak should not count
    /// the moments another process took the core. A zero `window` still
    /// times one slice.
    pub fn measure(&self, window: Duration) -> f64 {
        let iters = self.calibrate(Duration::from_micros(500).min(window.max(Duration::from_micros(50))));
        let start = Instant::now();
        let mut best = 0.0f64;
        loop {
            let t = Instant::now();
            (self.body)(iters);
            let secs = t.elapsed().as_secs_f64();
            if secs > 0.0 {
                best = best.max(iters as f64 * self.ops_per_iter / secs / 1e9);
            }
            if start.elapsed() >= window {
                return best;
            }
        }
    }

    /// Iterations taking at least `slice` (doubling from a small count).
    fn calibrate(&self, slice: Duration) -> u64 {
        let mut iters = 64u64;
        loop {
            let t = Instant::now();
            (self.body)(iters);
            if t.elapsed() >= slice || iters >= 1 << 40 {
                return iters;
            }
            iters *= 2;
        }
    }

    /// Operations per iteration of the loop (for independent checks:
    /// cycles × FLOP/cycle).
    pub fn ops_per_iter(&self) -> f64 {
        self.ops_per_iter
    }

    /// Runs `iters` iterations untimed (for an outside profiler).
    pub fn run(&self, iters: u64) {
        (self.body)(iters.max(1))
    }
}

/// The portable floor: independent accumulators in plain Rust, which the
/// compiler is free to vectorise with the baseline instruction set.
mod portable {
    use std::hint::black_box;

    const LANES: usize = 32;
    /// Multiply-adds per lane between two `black_box`es.
    const ROUNDS: usize = 16;
    pub const OPS_PER_ITER: f64 = 2.0 * (LANES * ROUNDS) as f64;

    pub fn run(iters: u64) {
        let a = black_box(0.999_f32);
        let b = black_box(1e-3_f32);
        let mut acc = black_box([1.0f32; LANES]);
        for _ in 0..iters {
            for _ in 0..ROUNDS {
                for x in acc.iter_mut() {
                    *x = *x * a + b;
                }
            }
            // Keeps each iteration's work observable.
            acc = black_box(acc);
        }
        black_box(acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Kind, PeakLoop};
    use std::arch::asm;

    /// `op acc, a, b` once per accumulator, one instruction a line.
    macro_rules! each {
        ($op:literal, $a:literal, $b:literal; $($acc:literal),*) => {
            concat!($($op, " ", $acc, ", ", $a, ", ", $b, "\n"),*)
        };
    }

    /// Two-operand form: `op acc, src` once per accumulator.
    macro_rules! each2 {
        ($op:literal, $src:literal; $($acc:literal),*) => {
            concat!($($op, " ", $acc, ", ", $src, "\n"),*)
        };
    }

    /// Runs a loop body `n` times: sources zeroed first (0·0 + 0 keeps the
    /// accumulators at zero, no denormals), `vzeroupper` after.
    macro_rules! vector_loop {
        ($n:expr, $zero:literal, $body:expr) => {
            // SAFETY: the caller checked that the CPU has the instructions;
            // the assembly touches no memory and no stack, writes only
            // vector registers (declared by clobber_abi) and the counter.
            unsafe {
                asm!(
                    $zero,
                    "2:",
                    $body,
                    "dec rcx",
                    "jnz 2b",
                    "vzeroupper",
                    inout("rcx") $n => _,
                    clobber_abi("C"),
                    options(nomem, nostack),
                )
            }
        };
    }

    const ZMM_ACC: f64 = 24.0;
    const YMM_ACC: f64 = 14.0;

    #[inline(never)]
    fn fma_zmm(n: u64) {
        vector_loop!(
            n,
            "vpxord zmm30, zmm30, zmm30\nvpxord zmm31, zmm31, zmm31",
            each!("vfmadd231ps", "zmm30", "zmm31"; "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11",
                  "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21", "zmm22", "zmm23")
        )
    }

    #[inline(never)]
    fn fma_ymm(n: u64) {
        vector_loop!(
            n,
            "vxorps ymm14, ymm14, ymm14\nvxorps ymm15, ymm15, ymm15",
            each!("vfmadd231ps", "ymm14", "ymm15"; "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10", "ymm11", "ymm12", "ymm13")
        )
    }

    /// SSE has no FMA: half the accumulators multiply, half add.
    #[inline(never)]
    fn mul_add_xmm(n: u64) {
        // SAFETY: SSE is part of x86-64; as in `vector_loop!` otherwise
        // (no vzeroupper: only legacy SSE encodings run).
        unsafe {
            asm!(
                "xorps xmm14, xmm14",
                "xorps xmm15, xmm15",
                "2:",
                each2!("mulps", "xmm14"; "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6"),
                each2!("addps", "xmm15"; "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13"),
                "dec rcx",
                "jnz 2b",
                inout("rcx") n => _,
                clobber_abi("C"),
                options(nomem, nostack),
            )
        }
    }

    #[inline(never)]
    fn vnni_zmm(n: u64) {
        vector_loop!(
            n,
            "vpxord zmm30, zmm30, zmm30\nvpxord zmm31, zmm31, zmm31",
            each!("vpdpbusd", "zmm30", "zmm31"; "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11",
                  "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21", "zmm22", "zmm23")
        )
    }

    /// AVX-VNNI (VEX-encoded, no AVX-512 needed).
    #[inline(never)]
    fn vnni_ymm(n: u64) {
        vector_loop!(
            n,
            "vxorps ymm14, ymm14, ymm14\nvxorps ymm15, ymm15, ymm15",
            each!("{{vex}} vpdpbusd", "ymm14", "ymm15"; "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10", "ymm11", "ymm12", "ymm13")
        )
    }

    #[inline(never)]
    fn bf16_zmm(n: u64) {
        vector_loop!(
            n,
            "vpxord zmm30, zmm30, zmm30\nvpxord zmm31, zmm31, zmm31",
            each!("vdpbf16ps", "zmm30", "zmm31"; "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11",
                  "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21", "zmm22", "zmm23")
        )
    }

    /// Appends the loops this CPU's features allow.
    pub fn push_available(out: &mut Vec<PeakLoop>) {
        let avx512 = std::is_x86_feature_detected!("avx512f");
        if avx512 {
            // 16 lanes × 2 FLOP per instruction.
            out.push(PeakLoop { name: "fp32-avx512", kind: Kind::Fp32, instruction: "vfmadd231ps zmm", ops_per_iter: ZMM_ACC * 32.0, body: fma_zmm });
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            out.push(PeakLoop { name: "fp32-avx2", kind: Kind::Fp32, instruction: "vfmadd231ps ymm", ops_per_iter: YMM_ACC * 16.0, body: fma_ymm });
        }
        out.push(PeakLoop { name: "fp32-sse", kind: Kind::Fp32, instruction: "mulps/addps xmm", ops_per_iter: 14.0 * 4.0, body: mul_add_xmm });
        if avx512 && std::is_x86_feature_detected!("avx512bf16") {
            // 16 lanes × 2 bf16 pairs × 2.
            out.push(PeakLoop { name: "bf16-avx512", kind: Kind::Bf16, instruction: "vdpbf16ps zmm", ops_per_iter: ZMM_ACC * 64.0, body: bf16_zmm });
        }
        if avx512 && std::is_x86_feature_detected!("avx512vnni") {
            // 16 lanes × 4 byte pairs × 2.
            out.push(PeakLoop { name: "int8-avx512-vnni", kind: Kind::Int8, instruction: "vpdpbusd zmm", ops_per_iter: ZMM_ACC * 128.0, body: vnni_zmm });
        }
        if std::is_x86_feature_detected!("avxvnni") {
            out.push(PeakLoop { name: "int8-avx-vnni", kind: Kind::Int8, instruction: "vpdpbusd ymm (VEX)", ops_per_iter: YMM_ACC * 64.0, body: vnni_ymm });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loop_gives_a_positive_finite_rate_quickly() {
        let start = Instant::now();
        let all = loops();
        assert!(all.iter().any(|l| l.name == "fp32-portable"));
        for l in &all {
            let r = l.measure(Duration::from_millis(5));
            assert!(r.is_finite() && r > 0.0, "{}: {r}", l.name);
            // No real core does a hundred thousand GFLOP/s.
            assert!(r < 1e5, "{}: {r}", l.name);
        }
        assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    }

    #[test]
    fn a_wider_vector_is_not_slower_than_the_portable_loop() {
        let all = loops();
        let portable = all.iter().find(|l| l.name == "fp32-portable").unwrap().measure(Duration::from_millis(20));
        if let Some(widest) = all.iter().find(|l| l.kind == Kind::Fp32 && l.name != "fp32-portable" && l.name != "fp32-sse") {
            let wide = widest.measure(Duration::from_millis(20));
            assert!(wide > portable * 0.8, "{} {wide} vs portable {portable}", widest.name);
        }
    }

    #[test]
    fn run_executes_without_timing() {
        for l in loops() {
            l.run(3);
            assert!(l.ops_per_iter() > 0.0);
        }
    }
}
