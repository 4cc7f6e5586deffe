//! The per-kernel, per-cluster time table of the last frame.

use crate::worker::Record;
use kann_kernels::{Command, Program};
use std::time::Duration;

/// Time one step took on each cluster (zero where a cluster ran no part).
#[derive(Clone, Debug, PartialEq)]
pub struct StepProfile {
    pub step: usize,
    pub name: String,
    pub op: String,
    pub kernel: String,
    pub per_cluster: Vec<Duration>,
}

impl StepProfile {
    /// The slowest cluster's time: what the step cost the frame.
    pub fn max(&self) -> Duration {
        self.per_cluster.iter().copied().max().unwrap_or_default()
    }
}

/// The last frame, per cluster: each step's time, the time spent waiting at
/// barriers, and the span from the first command's start to the last's end.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub n_clusters: usize,
    /// Steps in program order (those some cluster ran).
    pub steps: Vec<StepProfile>,
    /// Per cluster: the sum of its `Barrier` commands (waiting/synchronisation).
    pub barrier_wait: Vec<Duration>,
    /// Per cluster: first command start to last command end.
    pub span: Vec<Duration>,
}

impl Profile {
    /// The frame's compute span: the longest cluster span.
    pub fn total(&self) -> Duration {
        self.span.iter().copied().max().unwrap_or_default()
    }
}

/// Sums each worker's command records into the table.
pub(crate) fn build(program: &Program, records: &[&[Record]]) -> Profile {
    let n = program.n_clusters();
    let mut per_step = vec![vec![Duration::ZERO; n]; program.steps.len()];
    let mut ran = vec![false; program.steps.len()];
    let mut barrier_wait = vec![Duration::ZERO; n];
    let mut span = vec![Duration::ZERO; n];
    for (c, (cmds, recs)) in program.clusters.iter().zip(records).enumerate() {
        for (cmd, &(start, end)) in cmds.iter().zip(recs.iter()) {
            let t = end.saturating_duration_since(start);
            match *cmd {
                Command::Run { step, .. } => {
                    per_step[step as usize][c] += t;
                    ran[step as usize] = true;
                }
                Command::Barrier { .. } => barrier_wait[c] += t,
            }
        }
        if let (Some(first), Some(last)) = (recs.first(), recs.last()) {
            span[c] = last.1.saturating_duration_since(first.0);
        }
    }
    let steps = program
        .steps
        .iter()
        .enumerate()
        .filter(|(i, _)| ran[*i])
        .map(|(i, s)| StepProfile {
            step: i,
            name: s.name.clone(),
            op: s.op.clone(),
            kernel: s.kernel.name(),
            per_cluster: std::mem::take(&mut per_step[i]),
        })
        .collect();
    Profile { n_clusters: n, steps, barrier_wait, span }
}
