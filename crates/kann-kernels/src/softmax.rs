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

    fn scratch_bytes(&self, _items: u64) -> usize {
        // One strided group gathered (none for contiguous groups).
        if self.inner > 1 { 4 * self.len as usize } else { 0 }
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        let (len, inner) = (self.len as usize, self.inner as usize);
        let block = len * inner;
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: the input is not written during the step (the run contract).
        let x = unsafe { io.inputs[0].f32() };
        // SAFETY: this part owns blocks p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * block..p1 * block) };
        if inner == 1 {
            // Contiguous groups (a classifier's last axis): normalised in place in Y.
            for (o, yb) in (p0..p1).zip(y.chunks_mut(len.max(1))) {
                yb.copy_from_slice(&x[o * len..][..len]);
                self.normalise(yb);
            }
            return;
        }
        // SAFETY: any bit pattern is a valid f32; the slice is only reinterpreted.
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(pre.is_empty() && scratch.len() >= len, "softmax scratch is not 4-byte aligned or too small");
        let group = &mut scratch[..len];
        for (o, yb) in (p0..p1).zip(y.chunks_mut(block.max(1))) {
            let xb = &x[o * block..][..block];
            for i in 0..inner {
                group.iter_mut().enumerate().for_each(|(j, g)| *g = xb[j * inner + i]);
                self.normalise(group);
                group.iter().enumerate().for_each(|(j, &g)| yb[j * inner + i] = g);
            }
        }
    }
}

impl Softmax {
    /// Normalises one group in place: the exponentials in vectors of the
    /// CPU's best ISA (`vmath`, within 2 ulp), the sum in f64. With libm's
    /// `exp` one value at a time a classifier's 1000 classes took ~30 µs,
    /// alone on one cluster at the end of the frame.
    fn normalise(&self, g: &mut [f32]) {
        use crate::vmath::{best_isa, map_in_place, Func};
        let max = g.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let shifted = Func::AffineAct { k: 1.0, shift: -max, act: crate::Activation::None };
        match self.kind {
            SoftmaxKind::Hardmax => {
                let first = g.iter().position(|&v| v == max);
                g.iter_mut().enumerate().for_each(|(j, v)| *v = if Some(j) == first { 1.0 } else { 0.0 });
            }
            SoftmaxKind::Softmax => {
                map_in_place(best_isa(), shifted, g);
                map_in_place(best_isa(), Func::Exp, g);
                let sum: f64 = g.iter().map(|&v| f64::from(v)).sum();
                g.iter_mut().for_each(|v| *v = (f64::from(*v) / sum) as f32);
            }
            SoftmaxKind::LogSoftmax => {
                map_in_place(best_isa(), shifted, g);
                let mut sum = 0.0f64;
                for chunk in g.chunks(64) {
                    let mut e = [0.0f32; 64];
                    let e = &mut e[..chunk.len()];
                    crate::vmath::map_row(best_isa(), Func::Exp, chunk, e);
                    sum += e.iter().map(|&v| f64::from(v)).sum::<f64>();
                }
                let log_sum = sum.ln() as f32;
                g.iter_mut().for_each(|v| *v -= log_sum);
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
        // Strided groups (inner > 1, gathered through the scratch) and
        // contiguous ones (a classifier's 1000 classes, vector tails).
        for (outer, len, inner) in [(3usize, 4usize, 2usize), (2, 1000, 1), (1, 7, 1), (3, 33, 3)] {
            let n = outer * len * inner;
            for kind in [SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax, SoftmaxKind::Hardmax] {
                let k = Softmax { kind, outer: outer as u64, len: len as u64, inner: inner as u64 };
                let x: Vec<f32> = rng.vec(n).iter().map(|v| v * 10.0).collect();
                let mut want = vec![0.0; n];
                for o in 0..outer {
                    for i in 0..inner {
                        let idx: Vec<usize> = (0..len).map(|j| (o * len + j) * inner + i).collect();
                        let max = idx.iter().map(|&t| x[t]).fold(f32::NEG_INFINITY, f32::max);
                        let sum: f64 = idx.iter().map(|&t| f64::from((x[t] - max).exp())).sum();
                        let first = idx.iter().position(|&t| x[t] == max).unwrap();
                        for (j, &t) in idx.iter().enumerate() {
                            want[t] = match kind {
                                SoftmaxKind::Softmax => (f64::from((x[t] - max).exp()) / sum) as f32,
                                SoftmaxKind::LogSoftmax => x[t] - max - sum.ln() as f32,
                                SoftmaxKind::Hardmax => f32::from(u8::from(j == first)),
                            };
                        }
                    }
                }
                for parts in [1, 2, 3] {
                    assert_close(&run_parts(&k, std::slice::from_ref(&x), &[n], parts)[0], &want, 1e-5);
                }
            }
        }
    }
}
