//! The static cluster schedule: which cluster runs which part of each step,
//! and where the clusters must wait for each other.
//!
//! A step worth splitting (enough work items, enough estimated time) is cut
//! into `n` contiguous ranges of its work items, sized evenly; a small step
//! runs whole on the cluster with the least estimated work since the last
//! barrier, so small layers cost no hand-off while others proceed. A
//! barrier goes before a step only when it touches bytes that an earlier
//! step since the last barrier wrote (or reads what this step overwrites)
//! on another cluster: read-after-write, write-after-read and
//! write-after-write hazards across clusters. Steps that stay on one
//! cluster need no barrier between them.

use crate::cost::CostModel;
use kann_kernels::{BufRef, Command, Step};

/// Steps estimated below this run on one cluster (splitting costs more
/// than it saves).
const MIN_SPLIT_SECONDS: f64 = 20e-6;

/// The per-cluster command lists and what the schedule decided.
#[derive(Debug)]
pub struct Schedule {
    pub clusters: Vec<Vec<Command>>,
    pub barriers: u32,
    /// Steps split across several clusters.
    pub split_steps: usize,
    /// Estimated seconds of work per cluster (without waiting).
    pub busy_seconds: Vec<f64>,
    /// Estimated latency: the sum over barrier phases of the slowest cluster.
    pub latency_seconds: f64,
    /// Estimated seconds of each step's part on each cluster (`[step][cluster]`,
    /// 0 where the cluster runs none of it).
    pub step_seconds: Vec<Vec<f64>>,
}

struct Access {
    buf: BufRef,
    write: bool,
    clusters: Vec<usize>,
}

/// Schedules `steps` on `n` clusters.
pub fn schedule(steps: &[Step], n: usize, cost: &CostModel) -> Schedule {
    let n = n.max(1);
    let mut sched = Schedule { clusters: vec![Vec::new(); n], barriers: 0, split_steps: 0, busy_seconds: vec![0.0; n], latency_seconds: 0.0, step_seconds: vec![vec![0.0; n]; steps.len()] };
    let mut pending: Vec<Access> = Vec::new();
    let mut phase = vec![0.0f64; n];
    for (i, step) in steps.iter().enumerate() {
        let parts = split(step, n, cost, &phase, producer_cluster(step, &pending));
        let clusters: Vec<usize> = parts.iter().map(|p| p.0).collect();
        if needs_barrier(step, &clusters, &pending) {
            for cmds in sched.clusters.iter_mut() {
                cmds.push(Command::Barrier { index: sched.barriers });
            }
            sched.barriers += 1;
            sched.latency_seconds += phase.iter().cloned().fold(0.0, f64::max) + cost.barrier_s;
            phase.iter_mut().for_each(|p| *p = 0.0);
            pending.clear();
        }
        let items = step.kernel.work_items().max(1) as f64;
        for &(c, begin, end) in &parts {
            sched.clusters[c].push(Command::Run { step: i as u32, begin, end });
            let t = cost.step_seconds(step, (end - begin) as f64 / items);
            phase[c] += t;
            sched.busy_seconds[c] += t;
            sched.step_seconds[i][c] += t;
        }
        if parts.len() > 1 {
            sched.split_steps += 1;
        }
        for b in &step.inputs {
            pending.push(Access { buf: *b, write: false, clusters: clusters.clone() });
        }
        for b in &step.outputs {
            pending.push(Access { buf: *b, write: true, clusters: clusters.clone() });
        }
    }
    sched.latency_seconds += phase.iter().cloned().fold(0.0, f64::max);
    sched
}

/// The parts of one step: (cluster, begin, end).
/// A small step goes where its inputs were written since the last barrier
/// (no barrier needed), else on the least-loaded cluster.
fn split(step: &Step, n: usize, cost: &CostModel, phase: &[f64], producer: Option<usize>) -> Vec<(usize, u64, u64)> {
    let items = step.kernel.work_items();
    let whole = cost.step_seconds(step, 1.0);
    if n == 1 || items < 2 || whole < MIN_SPLIT_SECONDS {
        let least = (0..n).min_by(|&a, &b| phase[a].total_cmp(&phase[b])).unwrap_or(0);
        return vec![(producer.unwrap_or(least), 0, items)];
    }
    let k = (n as u64).min(items);
    (0..k).map(|c| (c as usize, items * c / k, items * (c + 1) / k)).filter(|p| p.1 < p.2).collect()
}

/// The one cluster that wrote every pending buffer `step` touches, if there
/// is such a cluster and no other wrote them.
fn producer_cluster(step: &Step, pending: &[Access]) -> Option<usize> {
    let mut found: Option<usize> = None;
    for b in step.inputs.iter().chain(&step.outputs) {
        for a in pending.iter().filter(|a| a.write && a.buf.overlaps(b)) {
            match (a.clusters.as_slice(), found) {
                ([c], None) => found = Some(*c),
                ([c], Some(f)) if *c == f => {}
                _ => return None,
            }
        }
    }
    found
}

/// Whether `step`, run on `clusters`, conflicts with an access since the
/// last barrier made on another cluster.
fn needs_barrier(step: &Step, clusters: &[usize], pending: &[Access]) -> bool {
    let same_single = |other: &[usize]| clusters.len() == 1 && other.len() == 1 && clusters[0] == other[0];
    let conflicts = |buf: &BufRef, write: bool| {
        pending.iter().any(|a| (a.write || write) && a.buf.overlaps(buf) && !same_single(&a.clusters))
    };
    step.inputs.iter().any(|b| conflicts(b, false)) || step.outputs.iter().any(|b| conflicts(b, true))
}
