//! The statistics sections of the generation log: operations, parameters,
//! memory, commands per cluster and estimated latency.

use crate::generate::BuildInfo;
use kann_ir::ops::nn::NnOp;
use kann_ir::{Graph, Op, TensorInfo};
use kann_kernels::{Command, Program};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// One row of the per-op-type table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpRow {
    pub count: usize,
    pub flops: u64,
}

/// One kernel's use on one cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelUse {
    pub commands: usize,
    pub flops: f64,
}

/// Everything the log reports about a compiled network.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub nodes: usize,
    pub total_flops: u64,
    /// Multiply-adds in convolutions (fused or not).
    pub conv_fmas: u64,
    /// Op type (`Conv+Relu`) → count and FLOPs.
    pub per_op: BTreeMap<String, OpRow>,
    pub param_count: u64,
    pub param_bytes: u64,
    pub weights_bytes: u64,
    pub arena_bytes: u64,
    pub naive_bytes: u64,
    pub arena_buffers: usize,
    pub in_place: usize,
    /// Concats whose producers write straight into the output.
    pub zero_copy_concats: usize,
    pub scratch_bytes: u64,
    /// Bytes read and written by all steps of one inference.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Per cluster: bytes its parts read + write.
    pub cluster_traffic: Vec<u64>,
    /// Per cluster: kernel name → commands and FLOPs.
    pub per_cluster: Vec<BTreeMap<String, KernelUse>>,
    pub steps: usize,
    pub barriers: u32,
    pub split_steps: usize,
    /// Estimated busy seconds per cluster and the estimated latency.
    pub est_busy: Vec<f64>,
    pub est_latency: f64,
    /// Estimated seconds of each step on each cluster (`[step][cluster]`).
    pub est_steps: Vec<Vec<f64>>,
}

impl Stats {
    pub fn collect(g: &Graph, program: &Program, weights: &[u8], info: &BuildInfo) -> Stats {
        let mut s = Stats { nodes: g.nodes.len(), ..Stats::default() };
        for node in &g.nodes {
            let ins: Vec<Option<&TensorInfo>> = node.inputs.iter().map(|i| i.map(|v| &g.value(v).info)).collect();
            let outs: Vec<TensorInfo> = node.outputs.iter().map(|&o| g.value(o).info.clone()).collect();
            let flops = node.op.flops(&ins, &outs);
            s.total_flops += flops;
            let row = s.per_op.entry(node.op.describe()).or_default();
            row.count += 1;
            row.flops += flops;
            if is_conv(&node.op) {
                s.conv_fmas += conv_fmas(&node.op, &ins, &outs);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for node in &g.nodes {
            for v in node.inputs.iter().flatten() {
                let val = g.value(*v);
                if val.constant.is_some() && seen.insert(*v) {
                    s.param_count += val.info.numel() as u64;
                    s.param_bytes += (val.info.numel() * val.info.dtype.size()) as u64;
                }
            }
        }
        s.weights_bytes = weights.len() as u64;
        s.arena_bytes = program.arena_bytes;
        s.naive_bytes = info.plan.naive_bytes;
        s.arena_buffers = info.plan.buffers;
        s.in_place = info.plan.in_place;
        s.zero_copy_concats = info.plan.zero_copy_concats;
        s.scratch_bytes = program.scratch_bytes;
        s.steps = program.steps.len();
        s.barriers = info.schedule.barriers;
        s.split_steps = info.schedule.split_steps;
        s.est_busy = info.schedule.busy_seconds.clone();
        s.est_latency = info.schedule.latency_seconds;
        s.est_steps = info.schedule.step_seconds.clone();
        for step in &program.steps {
            s.bytes_read += step.inputs.iter().map(|b| b.len()).sum::<u64>();
            s.bytes_written += step.outputs.iter().map(|b| b.len()).sum::<u64>();
        }
        s.cluster_traffic = vec![0; program.n_clusters()];
        s.per_cluster = vec![BTreeMap::new(); program.n_clusters()];
        for (c, cmds) in program.clusters.iter().enumerate() {
            for cmd in cmds {
                if let Command::Run { step, begin, end } = *cmd {
                    let st = &program.steps[step as usize];
                    let share = (end - begin) as f64 / st.kernel.work_items().max(1) as f64;
                    let bytes: u64 = st.inputs.iter().chain(&st.outputs).map(|b| b.len()).sum();
                    s.cluster_traffic[c] += (bytes as f64 * share) as u64;
                    let u = s.per_cluster[c].entry(st.kernel.name()).or_default();
                    u.commands += 1;
                    u.flops += st.flops as f64 * share;
                }
            }
        }
        s
    }

    /// The "OPERATION STATISTICS" section.
    pub fn operations(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "total: {} FLOP ({:.3} GFLOP, a multiply-add counts 2), {} nodes", self.total_flops, self.total_flops as f64 / 1e9, self.nodes);
        let _ = writeln!(o, "convolutions: {} FMA ({:.3} G)", self.conv_fmas, self.conv_fmas as f64 / 1e9);
        let _ = writeln!(o, "{:<28} {:>6} {:>16} {:>7}", "op", "count", "FLOP", "%");
        let mut rows: Vec<_> = self.per_op.iter().collect();
        rows.sort_by(|a, b| b.1.flops.cmp(&a.1.flops).then(a.0.cmp(b.0)));
        for (name, r) in rows {
            let pct = if self.total_flops > 0 { 100.0 * r.flops as f64 / self.total_flops as f64 } else { 0.0 };
            let _ = writeln!(o, "{:<28} {:>6} {:>16} {:>6.2}%", name, r.count, r.flops, pct);
        }
        o
    }

    /// The "PARAMETER STATISTICS" section.
    pub fn parameters(&self) -> String {
        format!(
            "parameters: {} ({:.2} M), {} bytes ({})\nweights section (packed, aligned): {} bytes ({})\n",
            self.param_count,
            self.param_count as f64 / 1e6,
            self.param_bytes,
            human_bytes(self.param_bytes),
            self.weights_bytes,
            human_bytes(self.weights_bytes)
        )
    }

    /// The "MEMORY STATISTICS" section.
    pub fn memory(&self) -> String {
        let mut o = String::new();
        let saved = if self.naive_bytes > 0 { 100.0 * (1.0 - self.arena_bytes as f64 / self.naive_bytes as f64) } else { 0.0 };
        let _ = writeln!(
            o,
            "peak activation arena: {} bytes ({}), naive sum of all activations: {} bytes ({}), {saved:.1}% saved",
            self.arena_bytes,
            human_bytes(self.arena_bytes),
            self.naive_bytes,
            human_bytes(self.naive_bytes)
        );
        let _ = writeln!(
            o,
            "arena buffers: {}, computed in place: {}, zero-copy concats: {}, scratch per cluster: {} bytes",
            self.arena_buffers, self.in_place, self.zero_copy_concats, self.scratch_bytes
        );
        let _ = writeln!(o, "per inference: {} read, {} written", human_bytes(self.bytes_read), human_bytes(self.bytes_written));
        for (c, t) in self.cluster_traffic.iter().enumerate() {
            let _ = writeln!(o, "cluster {c}: {} traffic", human_bytes(*t));
        }
        o
    }

    /// The "COMMANDS PER CLUSTER" section.
    pub fn commands(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{} steps, {} split across clusters, {} barriers", self.steps, self.split_steps, self.barriers);
        for (c, kernels) in self.per_cluster.iter().enumerate() {
            let total: usize = kernels.values().map(|k| k.commands).sum();
            let flops: f64 = kernels.values().map(|k| k.flops).sum();
            let _ = writeln!(o, "cluster {c}: {total} commands, {:.3} GFLOP", flops / 1e9);
            for (name, k) in kernels {
                let _ = writeln!(o, "  {:<40} {:>5} {:>14.0} FLOP", name, k.commands, k.flops);
            }
        }
        o
    }

    /// The "ESTIMATED LATENCY" section.
    pub fn latency(&self) -> String {
        let mut o = String::new();
        for (c, t) in self.est_busy.iter().enumerate() {
            let _ = writeln!(o, "cluster {c}: {:.3} ms busy", t * 1e3);
        }
        let _ = writeln!(o, "estimated latency (cost model): {:.3} ms", self.est_latency * 1e3);
        o
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (title, body) in [
            ("OPERATION STATISTICS", self.operations()),
            ("PARAMETER STATISTICS", self.parameters()),
            ("MEMORY STATISTICS", self.memory()),
            ("COMMANDS PER CLUSTER", self.commands()),
            ("ESTIMATED LATENCY", self.latency()),
        ] {
            writeln!(f, "== {title} ==")?;
            write!(f, "{body}")?;
        }
        Ok(())
    }
}

fn is_conv(op: &Op) -> bool {
    match op {
        Op::Nn(NnOp::Conv(_) | NnOp::ConvTranspose(_)) => true,
        Op::Fused(f) => is_conv(&f.base),
        _ => false,
    }
}

/// Multiply-adds of a (possibly fused) convolution: half its base FLOPs.
fn conv_fmas(op: &Op, ins: &[Option<&TensorInfo>], outs: &[TensorInfo]) -> u64 {
    match op {
        Op::Fused(f) => f.base.flops(f.base_slice(ins), outs) / 2,
        other => other.flops(ins, outs) / 2,
    }
}

/// `12.3 MiB`-style sizes.
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}
