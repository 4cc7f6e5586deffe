//! f32 Softmax, LogSoftmax and Hardmax over `[outer, len, inner]` views:
//! each of the `outer * inner` groups of `len` elements (`inner` apart) is
//! normalised. The IR resolves both opset forms (single axis, or the legacy
//! coerce-to-2-D) into this view. Work items are the `outer` blocks of
//! `len * inner` contiguous elements.

use crate::kernel::{expect_io, KernelImpl};
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SoftmaxKind {
    Softmax,
    LogSoftmax,
    /// 1 at the first maximum of each group, 0 elsewhere.
    Hardmax,
}

/// Input X, output Y of the same shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Softmax {
    pub kind: SoftmaxKind,
    pub outer: u64,
    pub len: u64,
    pub inner: u64,
}

impl KernelImpl for Softmax {
    fn name(&self) -> String {
        format!("f32_{}_direct_generic", format!("{:?}", self.kind).to_lowercase())
    }

    fn work_items(&self) -> u64 {
        self.outer
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (len, inner) = (self.len as usize, self.inner as usize);
        let block = len * inner;
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: the input is not written during the step (the run contract).
        let x = unsafe { io.inputs[0].f32() };
        // SAFETY: this part owns blocks p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * block..p1 * block) };
        let mut group = vec![0.0f32; len];
        for (o, yb) in (p0..p1).zip(y.chunks_mut(block.max(1))) {
            let xb = &x[o * block..][..block];
            for i in 0..inner {
                group.iter_mut().enumerate().for_each(|(j, g)| *g = xb[j * inner + i]);
                self.normalise(&mut group);
                group.iter().enumerate().for_each(|(j, &g)| yb[j * inner + i] = g);
            }
        }
    }
}

impl Softmax {
    /// Normalises one group in place.
    fn normalise(&self, g: &mut [f32]) {
        let max = g.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        match self.kind {
            SoftmaxKind::Hardmax => {
                let first = g.iter().position(|&v| v == max);
                g.iter_mut().enumerate().for_each(|(j, v)| *v = if Some(j) == first { 1.0 } else { 0.0 });
            }
            SoftmaxKind::Softmax => {
                let sum: f64 = g.iter_mut().map(|v| {
                    *v = (*v - max).exp();
                    f64::from(*v)
                }).sum();
                g.iter_mut().for_each(|v| *v = (f64::from(*v) / sum) as f32);
            }
            SoftmaxKind::LogSoftmax => {
                let sum: f64 = g.iter().map(|&v| f64::from((v - max).exp())).sum();
                let log_sum = sum.ln() as f32;
                g.iter_mut().for_each(|v| *v = *v - max - log_sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;

    #[test]
    fn all_kinds_match_naive() {
        let mut rng = Rng(1);
        for kind in [SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax, SoftmaxKind::Hardmax] {
            let k = Softmax { kind, outer: 3, len: 4, inner: 2 };
            let x: Vec<f32> = rng.vec(24).iter().map(|v| v * 10.0).collect();
            let mut want = vec![0.0; 24];
            for o in 0..3 {
                for i in 0..2 {
                    let idx: Vec<usize> = (0..4).map(|j| (o * 4 + j) * 2 + i).collect();
                    let max = idx.iter().map(|&t| x[t]).fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = idx.iter().map(|&t| (x[t] - max).exp()).sum();
                    let first = idx.iter().position(|&t| x[t] == max).unwrap();
                    for (j, &t) in idx.iter().enumerate() {
                        want[t] = match kind {
                            SoftmaxKind::Softmax => (x[t] - max).exp() / sum,
                            SoftmaxKind::LogSoftmax => x[t] - max - sum.ln(),
                            SoftmaxKind::Hardmax => f32::from(u8::from(j == first)),
                        };
                    }
                }
            }
            for parts in [1, 2, 3] {
                assert_close(&run_parts(&k, std::slice::from_ref(&x), &[24], parts)[0], &want, 1e-5);
            }
        }
    }
}
