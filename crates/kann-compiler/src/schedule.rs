//! The static cluster schedule: which cluster runs which part of each step,
//! and where the clusters must wait for each other.
//!
//! A step worth splitting (enough work items, enough estimated time) is cut
//! into `n` contiguous ranges of its work items, sized evenly; a small step
//! runs whole on the cluster with the least estimated work since the last
//! barrier, so small layers cost no hand-off while others proceed.
//!
//! Independent branches (Inception blocks, fire modules, detection necks)
//! are better run side by side than each split with a barrier between its
//! dependent steps: before placing a step the schedule looks ahead at the
//! following steps up to the first one that joins two branches, groups
//! them into chains of steps that touch each other's buffers, and assigns
//! whole chains to clusters (longest first to the least loaded). It keeps
//! that placement when the cost model estimates it faster than splitting
//! every step of the window. A chain stays on one cluster in program
//! order, so steps whose buffers overlap (including buffers the memory
//! plan reuses) never run concurrently.
//!
//! Whatever the placement, a barrier goes before a step exactly when it
//! touches bytes that an earlier step since the last barrier wrote (or reads
//! what this step overwrites) on another cluster: read-after-write,
//! write-after-read and write-after-write hazards across clusters. Steps
//! that stay on one cluster need no barrier between them.

use crate::cost::CostModel;
use kann_kernels::{BufRef, Command, Step};

/// Steps estimated below this run on one cluster (splitting costs more
/// than it saves). At 20 µs EfficientNet-B0's squeeze-excitation scalings
/// (x · s, estimated 17 µs) ran whole on one cluster while the other
/// waited, and took 30–40 µs reading what both had written: 8 µs made the
/// network 6 % faster at 2 clusters.
const MIN_SPLIT_SECONDS: f64 = 8e-6;

/// How many steps the branch lookahead considers at most.
const MAX_WINDOW: usize = 12;

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

#[derive(Clone)]
struct Access {
    buf: BufRef,
    write: bool,
    clusters: Vec<usize>,
}

/// One scheduling decision, in the order the clusters meet them.
#[derive(Clone, Copy)]
enum Op {
    Barrier,
    /// With the part's estimated seconds (remote reads included).
    Run { step: usize, cluster: usize, begin: u64, end: u64, seconds: f64 },
}

/// The schedule being built: accesses and estimated time since the last
/// barrier, the latency of the finished phases, and the decisions so far.
/// Cheap to fork, so alternatives can be tried and compared.
#[derive(Clone)]
struct Sim {
    pending: Vec<Access>,
    /// The clusters that last wrote each arena range (kept across
    /// barriers: the lines stay in the writers' caches).
    written: Vec<(BufRef, Vec<usize>)>,
    phase: Vec<f64>,
    latency: f64,
    ops: Vec<Op>,
}

/// Schedules `steps` on `n` clusters.
pub fn schedule(steps: &[Step], n: usize, cost: &CostModel) -> Schedule {
    let n = n.max(1);
    let mut sim = Sim { pending: Vec::new(), written: Vec::new(), phase: vec![0.0; n], latency: 0.0, ops: Vec::new() };
    let mut i = 0;
    while i < steps.len() {
        let (best, next) = place_next(steps, i, cost, &sim);
        sim.absorb(best);
        i = next;
    }
    finish(steps, n, sim)
}

/// Places step `i` (split or whole), or the window of independent branches
/// starting at it when that is estimated faster. Returns the forked
/// decisions and the next step to place.
fn place_next(steps: &[Step], i: usize, cost: &CostModel, sim: &Sim) -> (Sim, usize) {
    let mut split = sim.fork();
    split.place_split(steps, i, cost);
    let mut best = (split.clone(), i + 1, 0.0);
    let comps = if sim.phase.len() > 1 { branches(steps, i) } else { Vec::new() };
    for len in 2..=comps.len() {
        split.place_split(steps, i + len - 1, cost);
        let chains = &comps[..len];
        if chains.iter().all(|&c| c == 0) {
            continue;
        }
        for force_barrier in [false, true] {
            let mut group = sim.fork();
            group.place_group(steps, i, chains, force_barrier, cost);
            let saving = split.estimate() - group.estimate();
            if saving > best.2 + 1e-9 {
                best = (group, i + len, saving);
            }
        }
    }
    (best.0, best.1)
}

/// The chain index of each step from `i` on, up to the first step that
/// touches the buffers of two chains (a join) or `MAX_WINDOW` steps: steps
/// that touch each other's buffers share a chain, the others start one.
fn branches(steps: &[Step], i: usize) -> Vec<usize> {
    let mut comps = vec![0];
    let mut count = 1;
    for j in i + 1..(i + MAX_WINDOW).min(steps.len()) {
        let mut hit: Vec<usize> = comps.iter().enumerate().filter(|(k, _)| conflict(&steps[i + k], &steps[j])).map(|(_, &c)| c).collect();
        hit.sort_unstable();
        hit.dedup();
        match hit.as_slice() {
            [] => {
                comps.push(count);
                count += 1;
            }
            [c] => comps.push(*c),
            _ => break,
        }
    }
    comps
}

/// Whether two steps must keep their program order: one writes bytes the
/// other reads or writes.
fn conflict(a: &Step, b: &Step) -> bool {
    let hits = |w: &Step, o: &Step| w.outputs.iter().any(|x| o.inputs.iter().chain(&o.outputs).any(|y| x.overlaps(y)));
    hits(a, b) || hits(b, a)
}

/// The cluster of each chain: longest chain first, to the cluster with the
/// least estimated work (starting from `load`).
fn assign_chains(steps: &[Step], i: usize, chains: &[usize], load: &[f64], cost: &CostModel) -> Vec<usize> {
    let count = chains.iter().max().map_or(0, |m| m + 1);
    let mut weight = vec![0.0f64; count];
    for (k, &c) in chains.iter().enumerate() {
        weight[c] += cost.step_seconds(&steps[i + k], 1.0);
    }
    let mut order: Vec<usize> = (0..count).collect();
    order.sort_by(|&a, &b| weight[b].total_cmp(&weight[a]));
    let mut load = load.to_vec();
    let mut cluster = vec![0; count];
    for c in order {
        let least = (0..load.len()).min_by(|&a, &b| load[a].total_cmp(&load[b])).unwrap_or(0);
        cluster[c] = least;
        load[least] += weight[c];
    }
    cluster
}

impl Sim {
    /// A copy of the state with no decisions of its own yet.
    fn fork(&self) -> Sim {
        Sim { pending: self.pending.clone(), written: self.written.clone(), phase: self.phase.clone(), latency: self.latency, ops: Vec::new() }
    }

    /// Takes over a fork's state and decisions.
    fn absorb(&mut self, fork: Sim) {
        self.pending = fork.pending;
        self.written = fork.written;
        self.phase = fork.phase;
        self.latency = fork.latency;
        self.ops.extend(fork.ops);
    }

    /// Estimated latency if the schedule ended here.
    fn estimate(&self) -> f64 {
        self.latency + self.phase.iter().cloned().fold(0.0, f64::max)
    }

    fn barrier(&mut self, cost: &CostModel) {
        self.ops.push(Op::Barrier);
        self.latency += self.phase.iter().cloned().fold(0.0, f64::max) + cost.barrier_s;
        self.phase.iter_mut().for_each(|p| *p = 0.0);
        self.pending.clear();
    }

    /// Runs the parts of step `i`, after a barrier if it conflicts with a
    /// pending access on another cluster.
    fn run(&mut self, steps: &[Step], i: usize, parts: &[(usize, u64, u64)], cost: &CostModel) {
        let step = &steps[i];
        let clusters: Vec<usize> = parts.iter().map(|p| p.0).collect();
        if needs_barrier(step, &clusters, &self.pending) {
            self.barrier(cost);
        }
        let items = step.kernel.work_items().max(1) as f64;
        for &(cluster, begin, end) in parts {
            let share = (end - begin) as f64 / items;
            let seconds = cost.step_seconds(step, share) + self.remote_bytes(step, &clusters, cluster, share) * cost.remote_s_per_byte;
            self.ops.push(Op::Run { step: i, cluster, begin, end, seconds });
            self.phase[cluster] += seconds;
        }
        for (bufs, write) in [(&step.inputs, false), (&step.outputs, true)] {
            self.pending.extend(bufs.iter().map(|b| Access { buf: *b, write, clusters: clusters.clone() }));
        }
        for out in step.outputs.iter().filter(|b| matches!(b, BufRef::Arena { .. })) {
            self.written.retain(|(b, _)| !b.overlaps(out));
            self.written.push((*out, clusters.clone()));
        }
    }

    /// Bytes the part of `step` on `cluster` (a `share` of its work; the
    /// step runs on `clusters`) reads of what other clusters wrote. A step
    /// split like its producer is taken to read its own part's lines.
    fn remote_bytes(&self, step: &Step, clusters: &[usize], cluster: usize, share: f64) -> f64 {
        let mut bytes = 0.0;
        for input in &step.inputs {
            for (b, writers) in self.written.iter().filter(|(b, _)| b.overlaps(input)) {
                if writers.as_slice() == [cluster] || (clusters.len() > 1 && writers.as_slice() == clusters) {
                    continue;
                }
                let overlap = overlap_bytes(b, input) as f64;
                let others = writers.iter().filter(|&&w| w != cluster).count() as f64 / writers.len() as f64;
                bytes += overlap * others * if clusters.len() > 1 { share } else { 1.0 };
            }
        }
        bytes
    }

    /// Step `i` split across the clusters, or whole when small.
    fn place_split(&mut self, steps: &[Step], i: usize, cost: &CostModel) {
        let parts = split(&steps[i], self.phase.len(), cost, &self.phase, producer_cluster(&steps[i], &self.pending));
        self.run(steps, i, &parts, cost);
    }

    /// Steps `i..i + chains.len()` whole, each chain on one cluster, after a
    /// barrier first when `force_barrier` (so the chains share out empty
    /// clusters).
    fn place_group(&mut self, steps: &[Step], i: usize, chains: &[usize], force_barrier: bool, cost: &CostModel) {
        if force_barrier && !self.pending.is_empty() {
            self.barrier(cost);
        }
        let cluster = assign_chains(steps, i, chains, &self.phase, cost);
        for (k, &c) in chains.iter().enumerate() {
            let items = steps[i + k].kernel.work_items();
            self.run(steps, i + k, &[(cluster[c], 0, items)], cost);
        }
    }
}

/// Bytes two arena ranges share.
fn overlap_bytes(a: &BufRef, b: &BufRef) -> u64 {
    match (*a, *b) {
        (BufRef::Arena { offset: x, len: lx }, BufRef::Arena { offset: y, len: ly }) => (x + lx).min(y + ly).saturating_sub(x.max(y)),
        _ => 0,
    }
}

/// Turns the decisions into command lists and estimates.
fn finish(steps: &[Step], n: usize, sim: Sim) -> Schedule {
    let mut sched = Schedule { clusters: vec![Vec::new(); n], barriers: 0, split_steps: 0, busy_seconds: vec![0.0; n], latency_seconds: sim.estimate(), step_seconds: vec![vec![0.0; n]; steps.len()] };
    let mut parts = vec![0usize; steps.len()];
    for op in sim.ops {
        match op {
            Op::Barrier => {
                for cmds in sched.clusters.iter_mut() {
                    cmds.push(Command::Barrier { index: sched.barriers });
                }
                sched.barriers += 1;
            }
            Op::Run { step, cluster, begin, end, seconds } => {
                sched.clusters[cluster].push(Command::Run { step: step as u32, begin, end });
                sched.busy_seconds[cluster] += seconds;
                sched.step_seconds[step][cluster] += seconds;
                parts[step] += 1;
            }
        }
    }
    sched.split_steps = parts.iter().filter(|&&p| p > 1).count();
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
    let g = step.kernel.split_granule().max(1);
    // Even shares, each boundary rounded to the nearest multiple of the granule.
    let at = |c: u64| if c == k { items } else { ((items * c / k + g / 2) / g * g).min(items) };
    (0..k).map(|c| (c as usize, at(c), at(c + 1))).filter(|p| p.1 < p.2).collect()
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
    let conflicts = |buf: &BufRef, write: bool| pending.iter().any(|a| (a.write || write) && a.buf.overlaps(buf) && !same_single(&a.clusters));
    step.inputs.iter().any(|b| conflicts(b, false)) || step.outputs.iter().any(|b| conflicts(b, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_kernels::unary::{Unary, UnaryKind};
    use kann_kernels::{Kernel, Program, PROGRAM_VERSION};

    const LEN: u64 = 1 << 20;

    fn arena(slot: u64) -> BufRef {
        BufRef::Arena { offset: slot * LEN * 4, len: LEN * 4 }
    }

    /// A Relu over `LEN` elements from `input` to `output` (big enough to split).
    fn relu(input: BufRef, output: BufRef) -> Step {
        Step { name: "relu".into(), op: "Relu".into(), kernel: Kernel::Unary(Unary { kind: UnaryKind::Relu, len: LEN, isa: kann_kernels::Isa::Generic }), inputs: vec![input], outputs: vec![output], flops: LEN }
    }

    /// Each step's parts as (cluster, position in its list, barriers before it).
    fn placements(sched: &Schedule, steps: usize) -> Vec<Vec<(usize, usize, u32)>> {
        let mut out = vec![Vec::new(); steps];
        for (c, cmds) in sched.clusters.iter().enumerate() {
            let mut barriers = 0;
            for (pos, cmd) in cmds.iter().enumerate() {
                match *cmd {
                    Command::Barrier { .. } => barriers += 1,
                    Command::Run { step, .. } => out[step as usize].push((c, pos, barriers)),
                }
            }
        }
        out
    }

    /// Checks that every step runs all its items once, that steps whose
    /// buffers overlap run in program order, either on the same cluster or
    /// separated by a barrier, that the program validates and that the
    /// latency estimate is the sum over phases of the slowest cluster.
    fn check(steps: &[Step], sched: &Schedule, cost: &CostModel) {
        let place = placements(sched, steps.len());
        for (i, step) in steps.iter().enumerate() {
            let mut ranges: Vec<(u64, u64)> = sched
                .clusters
                .iter()
                .flatten()
                .filter_map(|c| match *c {
                    Command::Run { step, begin, end } if step as usize == i => Some((begin, end)),
                    _ => None,
                })
                .collect();
            ranges.sort_unstable();
            let mut at = 0;
            for (b, e) in ranges {
                assert_eq!(b, at, "step {i} items not covered once");
                at = e;
            }
            assert_eq!(at, step.kernel.work_items(), "step {i} items not covered");
        }
        for j in 0..steps.len() {
            for i in 0..j {
                if !conflict(&steps[i], &steps[j]) {
                    continue;
                }
                let (a, b) = (&place[i], &place[j]);
                let same = a.len() == 1 && b.len() == 1 && a[0].0 == b[0].0;
                if same {
                    assert!(a[0].1 < b[0].1, "steps {i} and {j} out of order on cluster {}", a[0].0);
                } else {
                    let last_i = a.iter().map(|p| p.2).max().unwrap();
                    let first_j = b.iter().map(|p| p.2).min().unwrap();
                    assert!(last_i < first_j, "steps {i} and {j} overlap and may run concurrently");
                }
            }
        }
        let program = Program { version: PROGRAM_VERSION, inputs: vec![], outputs: vec![], steps: steps.to_vec(), clusters: sched.clusters.clone(), arena_bytes: 64 * LEN * 4, scratch_bytes: 0 };
        program.validate(0).unwrap();
        let phases = sched.barriers as usize + 1;
        let mut time = vec![vec![0.0f64; sched.clusters.len()]; phases];
        for (i, parts) in place.iter().enumerate() {
            for &(c, _, phase) in parts {
                time[phase as usize][c] += sched.step_seconds[i][c];
            }
        }
        let latency: f64 = time.iter().map(|t| t.iter().cloned().fold(0.0, f64::max)).sum::<f64>() + sched.barriers as f64 * cost.barrier_s;
        assert!((latency - sched.latency_seconds).abs() < 1e-9, "latency {} vs {latency}", sched.latency_seconds);
    }

    #[test]
    fn independent_branches_run_side_by_side_without_barrier() {
        let cost = CostModel::portable();
        let steps = vec![relu(arena(0), arena(1)), relu(arena(1), arena(2)), relu(arena(0), arena(3)), relu(arena(3), arena(4))];
        let sched = schedule(&steps, 2, &cost);
        check(&steps, &sched, &cost);
        assert_eq!(sched.barriers, 0);
        assert_eq!(sched.split_steps, 0);
        let place = placements(&sched, steps.len());
        assert_eq!(place[0][0].0, place[1][0].0);
        assert_eq!(place[2][0].0, place[3][0].0);
        assert_ne!(place[0][0].0, place[2][0].0);
    }

    #[test]
    fn reading_what_other_clusters_wrote_weighs_against_whole_branches() {
        // A split step, then two branches reading its output: side by side
        // each reads half its input from the other cluster's cache. Free,
        // the branches run whole; at a high enough price, split like their
        // producer.
        let steps = vec![relu(arena(0), arena(1)), relu(arena(1), arena(2)), relu(arena(1), arena(3))];
        for (remote_s_per_byte, split_steps) in [(0.0, 1), (1e-6, 3)] {
            let cost = CostModel { remote_s_per_byte, ..CostModel::portable() };
            let sched = schedule(&steps, 2, &cost);
            check(&steps, &sched, &cost);
            assert_eq!(sched.split_steps, split_steps, "at {remote_s_per_byte} s a byte");
        }
    }

    #[test]
    fn dependent_chain_is_split_with_barriers() {
        let cost = CostModel::portable();
        let steps = vec![relu(arena(0), arena(1)), relu(arena(1), arena(2)), relu(arena(2), arena(3))];
        let sched = schedule(&steps, 2, &cost);
        check(&steps, &sched, &cost);
        assert_eq!(sched.split_steps, 3);
        assert_eq!(sched.barriers, 2);
    }

    #[test]
    fn column_splits_start_on_a_column_panel() {
        // A 512 -> 128 pointwise GEMM on a 28x28 map (784 columns): two
        // clusters split at 384 or 416 (multiples of the 32-column panel),
        // not 392, which cut a panel and a cache line of every output row.
        use kann_kernels::conv_gemm::{ConvGemm, GemmAxis};
        let cost = CostModel::portable();
        let conv = ConvGemm {
            batch: 1,
            in_channels: 512,
            out_channels: 128,
            group: 1,
            input: [28, 28],
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pad_begin: [0, 0],
            output: [28, 28],
            epilogue: kann_kernels::Epilogue::default(),
            isa: kann_kernels::Isa::Avx512,
            axis: GemmAxis::Columns,
            input_scale: false,
        };
        let steps = vec![Step { name: "conv".into(), op: "Conv".into(), kernel: Kernel::ConvGemm(conv.clone()), inputs: vec![arena(0), arena(2)], outputs: vec![arena(1)], flops: 2 * 512 * 128 * 784 }];
        for n in 2..=3 {
            let sched = schedule(&steps, n, &cost);
            check(&steps, &sched, &cost);
            let bounds: Vec<u64> = sched.clusters.iter().flatten().filter_map(|c| if let Command::Run { begin, .. } = *c { Some(begin) } else { None }).collect();
            assert_eq!(bounds.len(), n, "{n} clusters");
            assert!(bounds.iter().all(|b| b % 32 == 0), "{n} clusters: parts start at {bounds:?}");
        }
        let generic = Kernel::ConvGemm(ConvGemm { isa: kann_kernels::Isa::Generic, ..conv.clone() });
        assert_eq!(generic.split_granule(), kann_kernels::Isa::Generic.nr() as u64);
        assert_eq!(Kernel::ConvGemm(ConvGemm { axis: GemmAxis::Channels, ..conv }).split_granule(), 1);
    }

    #[test]
    fn reused_buffers_never_run_concurrently() {
        let cost = CostModel::portable();
        // Step 2 overwrites the bytes step 0 reads (the memory plan reused
        // them): otherwise the two branches are independent.
        let steps = vec![relu(arena(0), arena(1)), relu(arena(1), arena(2)), relu(arena(3), arena(0)), relu(arena(0), arena(4))];
        for n in 1..=3 {
            let sched = schedule(&steps, n, &cost);
            check(&steps, &sched, &cost);
        }
    }

    #[test]
    fn one_cluster_runs_everything_in_order() {
        let cost = CostModel::portable();
        let steps = vec![relu(arena(0), arena(1)), relu(arena(0), arena(2)), relu(arena(1), arena(3))];
        let sched = schedule(&steps, 1, &cost);
        check(&steps, &sched, &cost);
        assert_eq!(sched.barriers, 0);
        let order: Vec<u32> = sched.clusters[0].iter().filter_map(|c| if let Command::Run { step, .. } = *c { Some(step) } else { None }).collect();
        assert_eq!(order, vec![0, 1, 2]);
    }

    #[test]
    fn random_graphs_keep_every_hazard_ordered() {
        let cost = CostModel::portable();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for _ in 0..200 {
            let count = 2 + next(20) as usize;
            let steps: Vec<Step> = (0..count)
                .map(|_| {
                    let len = [16, 4096, LEN][next(3) as usize];
                    let buf = |s: u64| BufRef::Arena { offset: s * LEN * 2, len: len * 4 };
                    let mut s = relu(buf(next(12)), buf(next(12)));
                    s.kernel = Kernel::Unary(Unary { kind: UnaryKind::Relu, len, isa: kann_kernels::Isa::Generic });
                    s.flops = len;
                    s
                })
                .collect();
            for n in 1..=4 {
                let sched = schedule(&steps, n, &cost);
                check(&steps, &sched, &cost);
            }
        }
    }
}
