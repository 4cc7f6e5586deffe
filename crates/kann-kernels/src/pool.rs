//! N-d f32 pooling: MaxPool (with its optional Indices output),
//! AveragePool (with or without the padding in the divisor) and LpPool.
//! Global pooling is a window covering the whole plane.
//!
//! For each output position the window's taps inside the input are visited
//! axis by axis; the valid kernel range of every (axis, output position) is
//! computed once per run, so no tap is bounds-checked. Work items are the
//! `N * C` planes; a part owns whole planes.
//!
//! Input: X `[N, C, in...]`. Outputs: Y `[N, C, out...]`, then for MaxPool
//! with `indices` the i64 Indices of the same shape.
//!
//! This is the general kernel; the fast paths are [`plane2d::Pool2d`] (2-D
//! Max and Average pools without Indices) and [`global::GlobalPool`].

pub mod global;
pub mod plane2d;

use crate::conv::{product, unravel};
use crate::kernel::{expect_io, KernelImpl};
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// What a window reduces to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum PoolKind {
    /// The maximum; a NaN in the window gives NaN.
    Max,
    /// The mean; with `count_include_pad` the explicit padding counts in the divisor.
    Average { count_include_pad: bool },
    /// `(sum |x|^p)^(1/p)`.
    Lp { p: f32 },
}

/// MaxPool's Indices output: flat indices into X, within each plane
/// row-major or (storage_order 1) column-major.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Indices {
    RowMajor,
    ColumnMajor,
}

/// A windowed pooling over `planes` planes of extents `input`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub kind: PoolKind,
    /// `N * C`.
    pub planes: u64,
    pub input: Vec<u64>,
    pub kernel: Vec<u64>,
    pub strides: Vec<u64>,
    pub dilations: Vec<u64>,
    pub pad_begin: Vec<u64>,
    pub pad_end: Vec<u64>,
    pub output: Vec<u64>,
    /// MaxPool only: also write the Indices output.
    pub indices: Option<Indices>,
}

/// The kernel offsets `lo..hi` of one axis whose taps fall inside the
/// input, the input position of tap `lo`, and how many taps fall inside
/// the padded input.
#[derive(Clone, Copy, Debug)]
struct AxisRange {
    lo: usize,
    hi: usize,
    first: usize,
    padded: usize,
}

impl Pool {
    /// A global pooling over planes of extents `input`.
    pub fn global(kind: PoolKind, planes: u64, input: &[u64]) -> Pool {
        let n = input.len();
        Pool {
            kind,
            planes,
            input: input.to_vec(),
            kernel: input.to_vec(),
            strides: vec![1; n],
            dilations: vec![1; n],
            pad_begin: vec![0; n],
            pad_end: vec![0; n],
            output: vec![1; n],
            indices: None,
        }
    }

    /// `[axis][output position]` ranges.
    fn ranges(&self) -> Vec<Vec<AxisRange>> {
        (0..self.input.len())
            .map(|a| {
                let (s, d, pb, size) = (self.strides[a] as i64, self.dilations[a] as i64, self.pad_begin[a] as i64, self.input[a] as i64);
                let hi_padded = size + self.pad_end[a] as i64;
                (0..self.output[a] as i64)
                    .map(|o| {
                        let pos = |k: i64| o * s - pb + k * d;
                        let taps = 0..self.kernel[a] as i64;
                        let inside: Vec<i64> = taps.clone().filter(|&k| pos(k) >= 0 && pos(k) < size).collect();
                        let padded = taps.filter(|&k| pos(k) >= -pb && pos(k) < hi_padded).count();
                        match (inside.first(), inside.last()) {
                            (Some(&lo), Some(&hi)) => AxisRange { lo: lo as usize, hi: hi as usize + 1, first: pos(lo) as usize, padded },
                            _ => AxisRange { lo: 0, hi: 0, first: 0, padded },
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Calls `f(flat index in the plane)` for every tap of the window at
    /// output multi-index `o` that lies inside the input, in kernel order.
    fn visit(&self, ranges: &[Vec<AxisRange>], o: &[usize], axis: usize, flat: usize, f: &mut impl FnMut(usize)) {
        let r = ranges[axis][o[axis]];
        let d = self.dilations[axis] as usize;
        for t in 0..r.hi - r.lo {
            let fl = flat * self.input[axis] as usize + r.first + t * d;
            if axis + 1 == self.input.len() {
                f(fl);
            } else {
                self.visit(ranges, o, axis + 1, fl, f);
            }
        }
    }

    /// In-plane flat index renumbered column-major.
    fn column_major(&self, flat: usize) -> usize {
        let idx = unravel(flat, &self.input);
        (0..idx.len()).rev().fold(0, |f, a| f * self.input[a] as usize + idx[a])
    }
}

impl KernelImpl for Pool {
    fn name(&self) -> String {
        let op = match self.kind {
            PoolKind::Max => "maxpool",
            PoolKind::Average { .. } => "avgpool",
            PoolKind::Lp { .. } => "lppool",
        };
        format!("f32_{op}{}d_direct_generic", self.input.len())
    }

    fn work_items(&self) -> u64 {
        self.planes
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1 + usize::from(self.indices.is_some()))?;
        let n = self.input.len();
        if n == 0 || [&self.kernel, &self.strides, &self.dilations, &self.pad_begin, &self.pad_end, &self.output].iter().any(|v| v.len() != n) {
            return Err(format!("pool geometry needs one value per spatial axis: {self:?}"));
        }
        if self.indices.is_some() && self.kind != PoolKind::Max {
            return Err("only MaxPool has an Indices output".into());
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (in_plane, out_plane) = (product(&self.input), product(&self.output));
        let ranges = self.ranges();
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: inputs are not written during the step (the run contract).
        let x = unsafe { io.inputs[0].f32() };
        // SAFETY: this part owns planes p0..p1 of every output (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * out_plane..p1 * out_plane) };
        // SAFETY: as above; Indices are 8-byte i64 values.
        let mut idx = self.indices.map(|_| unsafe { io.outputs[1].bytes_part(p0 * out_plane * 8..p1 * out_plane * 8) });
        for (pl, yp) in (p0..p1).zip(y.chunks_mut(out_plane.max(1))) {
            let xp = &x[pl * in_plane..][..in_plane];
            let mut o = vec![0usize; self.output.len()];
            for (op, v) in yp.iter_mut().enumerate() {
                if op > 0 {
                    step(&mut o, &self.output);
                }
                let (value, arg) = self.reduce(&ranges, &o, xp);
                *v = value;
                if let (Some(order), Some(idx)) = (self.indices, idx.as_deref_mut()) {
                    let i = if order == Indices::ColumnMajor { self.column_major(arg) } else { arg };
                    let at = ((pl - p0) * out_plane + op) * 8;
                    idx[at..at + 8].copy_from_slice(&((pl * in_plane + i) as i64).to_le_bytes());
                }
            }
        }
    }
}

/// Advances a row-major multi-index by one.
fn step(idx: &mut [usize], dims: &[u64]) {
    for a in (0..idx.len()).rev() {
        idx[a] += 1;
        if idx[a] < dims[a] as usize {
            return;
        }
        idx[a] = 0;
    }
}

impl Pool {
    /// The window's value at output index `o`, and (for Max) the in-plane
    /// index of the first maximum.
    fn reduce(&self, ranges: &[Vec<AxisRange>], o: &[usize], xp: &[f32]) -> (f32, usize) {
        match self.kind {
            PoolKind::Max => {
                let mut best: Option<(f32, usize)> = None;
                self.visit(ranges, o, 0, 0, &mut |i| {
                    let v = xp[i];
                    match best {
                        None => best = Some((v, i)),
                        Some((b, _)) if v > b || v.is_nan() && !b.is_nan() => best = Some((v, i)),
                        _ => {}
                    }
                });
                best.unwrap_or((f32::NEG_INFINITY, 0))
            }
            PoolKind::Average { count_include_pad } => {
                let (mut sum, mut count) = (0.0f32, 0usize);
                self.visit(ranges, o, 0, 0, &mut |i| {
                    sum += xp[i];
                    count += 1;
                });
                if count_include_pad {
                    count = (0..o.len()).map(|a| ranges[a][o[a]].padded).product();
                }
                (sum / count as f32, 0)
            }
            PoolKind::Lp { p } => {
                let mut sum = 0.0f64;
                self.visit(ranges, o, 0, 0, &mut |i| sum += f64::from(xp[i].abs()).powf(f64::from(p)));
                (sum.powf(1.0 / f64::from(p)) as f32, 0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;

    /// Naive pooling by enumerating every kernel offset.
    fn naive(k: &Pool, x: &[f32]) -> (Vec<f32>, Vec<i64>) {
        let (in_plane, out_plane, ksize) = (product(&k.input), product(&k.output), product(&k.kernel));
        let (mut y, mut ind) = (vec![], vec![]);
        for pl in 0..k.planes as usize {
            for op in 0..out_plane {
                let o = unravel(op, &k.output);
                let (mut vals, mut padded) = (vec![], 0);
                for kf in 0..ksize {
                    let ki = unravel(kf, &k.kernel);
                    let (mut flat, mut inside, mut in_pad) = (0i64, true, true);
                    for a in 0..ki.len() {
                        let p = (o[a] as u64 * k.strides[a] + ki[a] as u64 * k.dilations[a]) as i64 - k.pad_begin[a] as i64;
                        inside &= p >= 0 && p < k.input[a] as i64;
                        in_pad &= p >= -(k.pad_begin[a] as i64) && p < (k.input[a] + k.pad_end[a]) as i64;
                        flat = flat * k.input[a] as i64 + p;
                    }
                    padded += usize::from(in_pad);
                    if inside {
                        vals.push((x[pl * in_plane + flat as usize], flat as usize));
                    }
                }
                let v = match k.kind {
                    PoolKind::Max => {
                        let mut best = (f32::NEG_INFINITY, 0);
                        for (i, &(v, f)) in vals.iter().enumerate() {
                            if i == 0 || v > best.0 {
                                best = (v, f);
                            }
                        }
                        ind.push((pl * in_plane + best.1) as i64);
                        best.0
                    }
                    PoolKind::Average { count_include_pad } => {
                        vals.iter().map(|v| v.0).sum::<f32>() / if count_include_pad { padded } else { vals.len() } as f32
                    }
                    PoolKind::Lp { p } => vals.iter().map(|v| v.0.abs().powf(p)).sum::<f32>().powf(1.0 / p),
                };
                y.push(v);
            }
        }
        (y, ind)
    }

    #[test]
    fn matches_naive_on_random_geometries() {
        let mut rng = Rng(5);
        for case in 0..300 {
            let nsp = 1 + rng.below(3) as usize;
            let kind = [PoolKind::Max, PoolKind::Average { count_include_pad: true }, PoolKind::Average { count_include_pad: false }, PoolKind::Lp { p: 2.0 }][case % 4];
            let mut k = Pool { kind, planes: 1 + rng.below(4), input: vec![], kernel: vec![], strides: vec![], dilations: vec![], pad_begin: vec![], pad_end: vec![], output: vec![], indices: None };
            if kind == PoolKind::Max {
                k.indices = Some(Indices::RowMajor);
            }
            for _ in 0..nsp {
                let (kk, s, d) = (1 + rng.below(3), 1 + rng.below(2), 1 + rng.below(2));
                let (pb, pe) = (rng.below(kk), rng.below(kk));
                let eff = (kk - 1) * d + 1;
                let inp = eff + rng.below(5);
                k.input.push(inp);
                k.kernel.push(kk);
                k.strides.push(s);
                k.dilations.push(d);
                k.pad_begin.push(pb);
                k.pad_end.push(pe);
                k.output.push((inp + pb + pe - eff) / s + 1);
            }
            let x = rng.vec(k.planes as usize * product(&k.input));
            let (want, want_ind) = naive(&k, &x);
            let n_out = want.len();
            let outs = if k.indices.is_some() { vec![n_out, n_out * 2] } else { vec![n_out] };
            for parts in [1, 2, 3] {
                let got = run_parts(&k, std::slice::from_ref(&x), &outs, parts);
                assert_close(&got[0], &want, 1e-5);
                if k.indices.is_some() {
                    let ind: Vec<i64> = got[1].chunks(2).map(|c| {
                        let b: Vec<u8> = c.iter().flat_map(|v| v.to_le_bytes()).collect();
                        i64::from_le_bytes(b.try_into().unwrap())
                    }).collect();
                    assert_eq!(ind, want_ind);
                }
            }
        }
    }

    #[test]
    fn global_average() {
        let k = Pool::global(PoolKind::Average { count_include_pad: false }, 2, &[2, 2]);
        let got = run_parts(&k, &[vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]], &[2], 2);
        assert_eq!(got[0], vec![2.5, 6.5]);
    }
}
