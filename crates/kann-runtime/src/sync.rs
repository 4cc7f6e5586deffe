//! Spin-then-park synchronisation between the caller and the workers.
//!
//! Waiters spin on an atomic for a bounded number of iterations (cheap when
//! every cluster has its own core and the wait is short), then park on a
//! [`Condvar`]. The mutex is only taken to park or to wake parked threads,
//! never on the fast path.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where threads sleep once spinning did not pay off.
#[derive(Default)]
pub(crate) struct Parker {
    lock: Mutex<()>,
    cv: Condvar,
    sleepers: AtomicUsize,
}

impl Parker {
    /// Returns once `ready()` holds: spins for up to `spin`, then parks.
    /// `ready` must become true only through stores followed by
    /// [`Parker::wake_all`]. The budget is time, not iterations: a spin-loop
    /// hint costs 10 to 140 cycles depending on the CPU.
    pub(crate) fn wait_until(&self, spin: Duration, ready: impl Fn() -> bool) {
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                if ready() {
                    return;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= spin {
                break;
            }
        }
        std::thread::yield_now();
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        // Announce ourselves before the last check: a waker that stored its
        // update before reading `sleepers` is then seen by `ready()`, and one
        // that reads it after will take the lock and notify us.
        self.sleepers.fetch_add(1, SeqCst);
        while !ready() {
            guard = self.cv.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
        self.sleepers.fetch_sub(1, SeqCst);
    }

    /// Wakes every parked thread; call after storing the update (SeqCst).
    pub(crate) fn wake_all(&self) {
        if self.sleepers.load(SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.cv.notify_all();
        }
    }
}

/// A reusable barrier for `n` threads (the program's `Barrier` commands).
pub(crate) struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicU64,
    parker: Parker,
}

impl SpinBarrier {
    pub(crate) fn new(n: usize) -> SpinBarrier {
        SpinBarrier { n, arrived: AtomicUsize::new(0), generation: AtomicU64::new(0), parker: Parker::default() }
    }

    /// Blocks until all `n` threads have called `wait` for this generation.
    pub(crate) fn wait(&self, spin: Duration) {
        // The generation cannot move before we arrive, so this read is ours.
        let generation = self.generation.load(SeqCst);
        if self.arrived.fetch_add(1, SeqCst) + 1 == self.n {
            self.arrived.store(0, SeqCst);
            self.generation.fetch_add(1, SeqCst);
            self.parker.wake_all();
        } else {
            self.parker.wait_until(spin, || self.generation.load(SeqCst) != generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn barrier_keeps_phases_apart() {
        let n = 3;
        let b = Arc::new(SpinBarrier::new(n));
        let counter = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (b, counter) = (b.clone(), counter.clone());
                std::thread::spawn(move || {
                    for phase in 0..200 {
                        counter.fetch_add(1, SeqCst);
                        b.wait(Duration::from_micros(if phase % 2 == 0 { 0 } else { 100 }));
                        assert!(counter.load(SeqCst) >= (phase + 1) * n);
                        b.wait(Duration::from_micros(10));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(counter.load(SeqCst), 200 * n);
    }
}
