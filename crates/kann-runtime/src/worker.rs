//! The persistent worker threads: one per cluster after the first (the
//! caller's thread runs cluster 0), each walking its command list once per
//! frame.
//!
//! A frame is an epoch: the caller bumps [`Shared::epoch`] and wakes the
//! workers, then runs cluster 0's commands itself; each runs its commands
//! (kernel parts and barriers), records when each command started and
//! ended, and counts itself in [`Shared::done`]; the last one wakes the
//! caller if it waits. Nothing here allocates or locks while a
//! frame runs (the condition variable is only for threads that park).

use crate::memory::AlignedBuf;
use crate::sync::{Parker, SpinBarrier};
use kann_kernels::{Command, Io, Kernel, RawBuf};
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Instant;

/// A step with its buffers resolved to raw views once, at `init_device`.
pub(crate) struct ResolvedStep {
    pub kernel: Kernel,
    pub inputs: Vec<RawBuf>,
    pub outputs: Vec<RawBuf>,
}

/// When one command started and ended, in the last frame.
pub(crate) type Record = (Instant, Instant);

/// A worker's records, written by that worker during a frame and read by
/// the caller between frames.
pub(crate) struct Records(UnsafeCell<Vec<Record>>);

// SAFETY: the frame protocol separates the accesses: worker `c` alone
// writes its records between the epoch bump and its `done` increment; the
// caller reads them only after seeing every worker done (SeqCst atomics
// order the accesses) and before the next epoch bump.
unsafe impl Sync for Records {}

impl Records {
    pub(crate) fn new(n: usize) -> Records {
        let now = Instant::now();
        Records(UnsafeCell::new(vec![(now, now); n]))
    }

    /// # Safety
    /// No frame is running (see the `Sync` impl).
    pub(crate) unsafe fn get(&self) -> &[Record] {
        // SAFETY: the caller's contract: no worker writes meanwhile.
        unsafe { &*self.0.get() }
    }
}

/// What the caller and the workers share.
pub(crate) struct Shared {
    pub n: usize,
    /// How long a waiting thread spins before it parks.
    pub spin: std::time::Duration,
    /// Bumped once per frame by the caller.
    pub epoch: AtomicU64,
    pub quit: AtomicBool,
    /// Workers that finished the current frame.
    pub done: AtomicUsize,
    /// Workers park here between frames.
    pub start: Parker,
    /// The caller parks here while a frame runs.
    pub finish: Parker,
    /// The program's `Barrier` commands.
    pub barrier: SpinBarrier,
    /// 0, or 1 + (step << 16 | cluster) of the first kernel that panicked
    /// this frame; later `Run` commands of the frame are skipped (barriers
    /// still run, so no one waits forever).
    pub failed: AtomicU64,
    pub records: Vec<Records>,
}

impl Shared {
    pub(crate) fn new(n: usize, spin: std::time::Duration, commands: &[Vec<Command>]) -> Shared {
        Shared {
            n,
            spin,
            epoch: AtomicU64::new(0),
            quit: AtomicBool::new(false),
            done: AtomicUsize::new(0),
            start: Parker::default(),
            finish: Parker::default(),
            barrier: SpinBarrier::new(n),
            failed: AtomicU64::new(0),
            records: commands.iter().map(|c| Records::new(c.len())).collect(),
        }
    }
}

/// Everything one worker owns.
pub(crate) struct Worker {
    pub cluster: usize,
    pub shared: Arc<Shared>,
    pub steps: Arc<[ResolvedStep]>,
    pub commands: Vec<Command>,
    pub scratch: AlignedBuf,
}

impl Worker {
    /// The thread's body: wait for a frame, run it, repeat until told to quit.
    pub(crate) fn serve(mut self) {
        let shared = self.shared.clone();
        let mut seen = 0;
        loop {
            shared.start.wait_until(shared.spin, || shared.epoch.load(SeqCst) != seen || shared.quit.load(SeqCst));
            if shared.quit.load(SeqCst) {
                return;
            }
            seen = shared.epoch.load(SeqCst);
            self.run_frame();
            if shared.done.fetch_add(1, SeqCst) + 1 == shared.n {
                shared.finish.wake_all();
            }
        }
    }

    /// Runs this cluster's commands once (on a worker's thread, or for
    /// cluster 0 on the caller's).
    pub(crate) fn run_frame(&mut self) {
        let shared = &*self.shared;
        // SAFETY: this worker is the only writer of its records, and the
        // caller does not read them while the frame runs.
        let records = unsafe { &mut *shared.records[self.cluster].0.get() };
        let scratch = self.scratch.as_mut_slice();
        for (cmd, record) in self.commands.iter().zip(records.iter_mut()) {
            let start = Instant::now();
            match *cmd {
                Command::Run { step, begin, end } => {
                    if shared.failed.load(SeqCst) == 0 {
                        let s = &self.steps[step as usize];
                        let io = Io { inputs: &s.inputs, outputs: &s.outputs };
                        // SAFETY: the program was validated (buffers in
                        // bounds, parts within the step, barriers matching)
                        // and its scratch need checked at init; the schedule
                        // keeps concurrent parts disjoint and inputs unwritten.
                        let ok = catch_unwind(AssertUnwindSafe(|| unsafe { s.kernel.run(&io, begin..end, scratch) }));
                        if ok.is_err() {
                            let code = 1 + ((step as u64) << 16 | self.cluster as u64);
                            let _ = shared.failed.compare_exchange(0, code, SeqCst, SeqCst);
                        }
                    }
                }
                Command::Barrier { .. } => shared.barrier.wait(shared.spin),
            }
            *record = (start, Instant::now());
        }
    }
}
