//! Reductions over constant axes ([`Reduce`]: ReduceSum, ReduceMean,
//! ReduceMax…) and arg-reductions along one axis ([`ArgReduce`]: ArgMax /
//! ArgMin with an i64 output). Work items are output elements.
//!
//! The compiler describes the input as two sets of dimensions with their
//! element strides: the kept ones (walked in row-major order, one output
//! element per position) and the reduced ones (walked for each output
//! element). f32 values accumulate in f64, as the reference does.

use crate::kernel::{expect_io, KernelImpl};
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// What a reduction computes over each reduced set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReduceKind {
    Sum,
    Mean,
    /// NaN propagates.
    Max,
    /// NaN propagates.
    Min,
    Prod,
    /// Sum of absolute values.
    L1,
    /// Square root of the sum of squares.
    L2,
    /// Log of the sum.
    LogSum,
    /// Log of the sum of exponentials, computed stably.
    LogSumExp,
    /// Sum of squares.
    SumSquare,
}

impl ReduceKind {
    fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

/// Calls `f(offset)` with the element offset of every member of one
/// reduced set, `base` being the offset of its first member.
fn for_each_reduced(base: u64, dims: &[u64], strides: &[u64], f: &mut impl FnMut(usize)) {
    match dims.split_first() {
        None => f(base as usize),
        Some((&n, rest)) => {
            for k in 0..n {
                for_each_reduced(base + k * strides[0], rest, &strides[1..], f);
            }
        }
    }
}

/// The input offset of output element `o` from the kept dimensions.
fn kept_offset(mut o: u64, dims: &[u64], strides: &[u64]) -> u64 {
    let mut offset = 0;
    for (&d, &s) in dims.iter().zip(strides).rev() {
        offset += (o % d) * s;
        o /= d;
    }
    offset
}

/// `y[o] = reduce(x[set(o)])` over f32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reduce {
    pub kind: ReduceKind,
    /// Kept dimensions of the input (their product is the output's length)
    /// and their element strides.
    pub kept_dims: Vec<u64>,
    pub kept_strides: Vec<u64>,
    /// Reduced dimensions and their element strides (empty: each element
    /// is reduced over itself).
    pub reduced_dims: Vec<u64>,
    pub reduced_strides: Vec<u64>,
}

impl Reduce {
    /// Reduces the set starting at `base`.
    fn reduce_one(&self, x: &[f32], base: u64) -> f32 {
        let count: u64 = self.reduced_dims.iter().product();
        let (dims, strides) = (&self.reduced_dims[..], &self.reduced_strides[..]);
        let kind = self.kind;
        if kind == ReduceKind::LogSumExp {
            let mut max = f64::NEG_INFINITY;
            for_each_reduced(base, dims, strides, &mut |i| {
                let v = x[i] as f64;
                if v > max || v.is_nan() {
                    max = v;
                }
            });
            if !max.is_finite() {
                return max as f32;
            }
            let mut sum = 0.0;
            for_each_reduced(base, dims, strides, &mut |i| sum += (x[i] as f64 - max).exp());
            return (max + sum.ln()) as f32;
        }
        let mut acc = match kind {
            ReduceKind::Prod => 1.0,
            ReduceKind::Max => f64::NEG_INFINITY,
            ReduceKind::Min => f64::INFINITY,
            _ => 0.0,
        };
        for_each_reduced(base, dims, strides, &mut |i| {
            let v = x[i] as f64;
            acc = match kind {
                ReduceKind::Prod => acc * v,
                ReduceKind::Max => if v.is_nan() || v > acc { v } else { acc },
                ReduceKind::Min => if v.is_nan() || v < acc { v } else { acc },
                ReduceKind::L1 => acc + v.abs(),
                ReduceKind::L2 | ReduceKind::SumSquare => acc + v * v,
                _ => acc + v,
            };
        });
        let y = match kind {
            ReduceKind::Mean => acc / count as f64,
            ReduceKind::L2 => acc.sqrt(),
            ReduceKind::LogSum => acc.ln(),
            _ => acc,
        };
        y as f32
    }
}

impl KernelImpl for Reduce {
    fn name(&self) -> String {
        format!("f32_reduce{}_generic", self.kind.name())
    }

    fn work_items(&self) -> u64 {
        self.kept_dims.iter().product()
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        if self.kept_dims.len() != self.kept_strides.len() || self.reduced_dims.len() != self.reduced_strides.len() {
            return Err("dimensions and strides differ in number".into());
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        // SAFETY: this part owns these output elements (the run contract).
        let out = unsafe { io.outputs[0].f32_part(part.start as usize..part.end as usize) };
        // SAFETY: no one writes the input during the step.
        let x = unsafe { io.inputs[0].f32() };
        for (y, o) in out.iter_mut().zip(part) {
            *y = self.reduce_one(x, kept_offset(o, &self.kept_dims, &self.kept_strides));
        }
    }
}

/// ArgMax or ArgMin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArgKind {
    Max,
    Min,
}

/// The i64 index of the largest / smallest f32 along one axis of an
/// `(outer, len, inner)` view; ties give the first index, or the last with
/// `select_last_index`. Values are ordered by `total_cmp` (as the reference).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArgReduce {
    pub kind: ArgKind,
    pub outer: u64,
    pub len: u64,
    pub inner: u64,
    pub select_last_index: bool,
}

impl KernelImpl for ArgReduce {
    fn name(&self) -> String {
        format!("f32_arg{:?}_generic", self.kind).to_lowercase()
    }

    fn work_items(&self) -> u64 {
        self.outer * self.inner
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        if self.len == 0 {
            return Err("arg-reduction over an empty axis".into());
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        use std::cmp::Ordering;
        // SAFETY: this part owns these output bytes (8 per element; the run contract).
        let out = unsafe { io.outputs[0].bytes_part(part.start as usize * 8..part.end as usize * 8) };
        // SAFETY: no one writes the input during the step.
        let x = unsafe { io.inputs[0].f32() };
        let (len, inner) = (self.len as usize, self.inner as usize);
        let wanted = if self.kind == ArgKind::Max { Ordering::Greater } else { Ordering::Less };
        for (y, o) in out.chunks_exact_mut(8).zip(part) {
            let (outer, i) = (o as usize / inner, o as usize % inner);
            let at = |k: usize| x[(outer * len + k) * inner + i];
            let mut best = 0;
            for k in 1..len {
                let ord = at(k).total_cmp(&at(best));
                if ord == wanted || (self.select_last_index && ord == Ordering::Equal) {
                    best = k;
                }
            }
            y.copy_from_slice(&(best as i64).to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawBuf;

    /// Naive reduction of a [2, 3, 4] tensor over axes `red`, keeping the
    /// others in order, in f64.
    fn naive(kind: ReduceKind, x: &[f32], dims: &[usize], red: &[bool]) -> Vec<f32> {
        let kept: Vec<usize> = dims.iter().zip(red).map(|(&d, &r)| if r { 1 } else { d }).collect();
        let n_out: usize = kept.iter().product();
        let mut sets: Vec<Vec<f64>> = vec![Vec::new(); n_out];
        for (i, &v) in x.iter().enumerate() {
            let (mut rest, mut o, mut step) = (i, 0, 1);
            for d in (0..dims.len()).rev() {
                let k = rest % dims[d];
                rest /= dims[d];
                if !red[d] {
                    o += k * step;
                }
                step *= kept[d];
            }
            sets[o].push(v as f64);
        }
        sets.iter()
            .map(|s| {
                let sum: f64 = s.iter().sum();
                (match kind {
                    ReduceKind::Sum => sum,
                    ReduceKind::Mean => sum / s.len() as f64,
                    ReduceKind::Max => s.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                    ReduceKind::Min => s.iter().cloned().fold(f64::INFINITY, f64::min),
                    ReduceKind::Prod => s.iter().product(),
                    ReduceKind::L1 => s.iter().map(|v| v.abs()).sum(),
                    ReduceKind::L2 => s.iter().map(|v| v * v).sum::<f64>().sqrt(),
                    ReduceKind::LogSum => sum.ln(),
                    ReduceKind::LogSumExp => s.iter().map(|v| v.exp()).sum::<f64>().ln(),
                    ReduceKind::SumSquare => s.iter().map(|v| v * v).sum(),
                }) as f32
            })
            .collect()
    }

    #[test]
    fn every_kind_and_axis_set_matches_naive_in_parts() {
        let dims = [2usize, 3, 4];
        let strides = [12u64, 4, 1];
        let mut x: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 / 4.0 + 0.1).collect();
        let kinds = [
            ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max, ReduceKind::Min, ReduceKind::Prod, ReduceKind::L1, ReduceKind::L2,
            ReduceKind::LogSum, ReduceKind::LogSumExp, ReduceKind::SumSquare,
        ];
        for kind in kinds {
            for mask in 0..8u32 {
                let red: Vec<bool> = (0..3).map(|d| mask & (1 << d) != 0).collect();
                let pick = |want: bool| -> (Vec<u64>, Vec<u64>) {
                    (0..3).filter(|&d| red[d] == want).map(|d| (dims[d] as u64, strides[d])).unzip()
                };
                let (kept_dims, kept_strides) = pick(false);
                let (reduced_dims, reduced_strides) = pick(true);
                let k = Reduce { kind, kept_dims, kept_strides, reduced_dims, reduced_strides };
                let n = k.work_items();
                let mut y = vec![0.0f32; n as usize];
                let ins = [RawBuf::from_f32(&mut x)];
                let outs = [RawBuf::from_f32(&mut y)];
                for p in [0..n / 2, n / 2..n] {
                    // SAFETY: live distinct buffers, one thread.
                    unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, p, &mut []) };
                }
                let want = naive(kind, &x, &dims, &red);
                for (g, w) in y.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{kind:?} {red:?}: {y:?} vs {want:?}");
                }
            }
        }
    }

    #[test]
    fn argmax_ties_and_parts() {
        // [2, 3, 2] along axis 1.
        let mut x = vec![1.0f32, 5.0, 3.0, 5.0, 3.0, 0.0, /**/ 2.0, 2.0, 2.0, 1.0, 0.0, 2.0];
        for (kind, last, want) in [
            (ArgKind::Max, false, [1i64, 0, 0, 0]),
            (ArgKind::Max, true, [2, 1, 1, 2]),
            (ArgKind::Min, false, [0, 2, 2, 1]),
        ] {
            let k = ArgReduce { kind, outer: 2, len: 3, inner: 2, select_last_index: last };
            let mut y = vec![0u8; 32];
            let ins = [RawBuf::from_f32(&mut x)];
            let outs = [RawBuf::from_bytes(&mut y)];
            for p in [0..1u64, 1..3, 3..4] {
                // SAFETY: live distinct buffers, one thread.
                unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, p, &mut []) };
            }
            let got: Vec<i64> = y.chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
            assert_eq!(got, want, "{kind:?} last={last}");
        }
    }
}
