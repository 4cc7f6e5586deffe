//! 2-D f32 MaxPool and AveragePool over NCHW planes, row by row with
//! contiguous vector work; the semantics of [`super::Pool`] for two spatial
//! axes without an Indices output (any kernel, strides, dilations, padding,
//! windows that run past the padding as `ceil_mode` makes them, and either
//! divisor of AveragePool).
//!
//! For one output row the window's input rows that lie inside the input are
//! first reduced vertically (element-wise max or sum of whole rows) into a
//! row buffer whose padding columns hold the neutral value (`-inf` for max,
//! `0` for sums), so the horizontal pass never tests a border: every
//! horizontal tap is one element-wise max/sum over a contiguous run of
//! output columns. For a stride `s > 1` the row buffer is first split into
//! its `s` phases (`phase[p][j] = row[j·s + p]`), after which each tap again
//! reads a contiguous run of one phase. An average divides by the product of
//! the row's and the column's tap counts.
//!
//! MaxPool propagates NaN: a NaN anywhere in a window gives NaN, as the
//! reference does; a window with no tap inside the input gives `-inf`.
//!
//! The plane loop is one `#[inline(always)]` body compiled three times: with
//! AVX-512F, with AVX2 (`#[target_feature]`, chosen from the kernel's [`Isa`]
//! and checked at run time) and portable. Work items are the `N * C` planes.

use super::{Pool, PoolKind};
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A MaxPool or AveragePool with two spatial axes `[h, w]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool2d {
    /// `Max` or `Average` (`Lp` is not handled here).
    pub kind: PoolKind,
    /// `N * C`.
    pub planes: u64,
    pub input: [u64; 2],
    pub kernel: [u64; 2],
    pub strides: [u64; 2],
    pub dilations: [u64; 2],
    pub pad_begin: [u64; 2],
    pub pad_end: [u64; 2],
    pub output: [u64; 2],
    pub isa: Isa,
}

/// The taps of one window along one axis: `n` taps inside the input from
/// input position `first`, and `padded` taps inside the padded extent.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    first: usize,
    n: usize,
    padded: usize,
}

/// One axis of the geometry, in `usize`.
#[derive(Clone, Copy, Debug)]
struct Axis {
    size: usize,
    out: usize,
    k: usize,
    s: usize,
    d: usize,
    pb: usize,
    pe: usize,
}

impl Axis {
    /// The taps of the window at output position `o`.
    fn span(&self, o: usize) -> Span {
        let pos = |k: usize| (o * self.s + k * self.d) as i64 - self.pb as i64;
        let (size, lo_pad, hi_pad) = (self.size as i64, -(self.pb as i64), (self.size + self.pe) as i64);
        let mut span = Span { first: 0, n: 0, padded: 0 };
        for k in 0..self.k {
            let p = pos(k);
            if p >= 0 && p < size {
                if span.n == 0 {
                    span.first = p as usize;
                }
                span.n += 1;
            }
            span.padded += usize::from(p >= lo_pad && p < hi_pad);
        }
        span
    }
}

/// The buffers one plane works in (slices of the cluster's scratch).
struct Bufs<'a> {
    /// The padded, vertically reduced row: `pad_begin` neutral values, the
    /// row, neutral values up to `row_len`.
    row: &'a mut [f32],
    /// The stride phases of `row` (empty for stride 1).
    phases: &'a mut [f32],
    /// Per output column: its tap count (inside the input, or with
    /// `count_include_pad` inside the padded extent).
    col_count: &'a [f32],
}

/// Max that propagates NaN from either side.
#[inline(always)]
fn max_nan(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() {
        a
    } else {
        b
    }
}

/// `acc[i] = max_nan(acc[i], x[i])` or `acc[i] += x[i]` over the common
/// length: in blocks of 16 and then 8 (fixed-size blocks become whole
/// vector operations even for short rows, where a compiler's unrolled loop
/// would leave everything to its scalar remainder), then for max one last
/// overlapping block of 8, for sums one by one.
#[inline(always)]
fn combine(max: bool, acc: &mut [f32], x: &[f32]) {
    let n = acc.len().min(x.len());
    let done = combine_blocks::<16>(max, &mut acc[..n], &x[..n]);
    if max && n >= 8 {
        // Max is idempotent: the rest is at most two blocks of 8, which may
        // overlap values already done.
        if n - done > 8 {
            combine_blocks::<8>(true, &mut acc[done..done + 8], &x[done..done + 8]);
        }
        if n > done {
            combine_blocks::<8>(true, &mut acc[n - 8..n], &x[n - 8..n]);
        }
        return;
    }
    let done = done + combine_blocks::<8>(max, &mut acc[done..n], &x[done..n]);
    for (a, &v) in acc[done..n].iter_mut().zip(&x[done..n]) {
        *a = if max { max_nan(*a, v) } else { *a + v };
    }
}

/// [`combine`] over the whole blocks of `N`; returns how many values it did.
#[inline(always)]
fn combine_blocks<const N: usize>(max: bool, acc: &mut [f32], x: &[f32]) -> usize {
    for (a, v) in acc.chunks_exact_mut(N).zip(x.chunks_exact(N)) {
        let (a, v): (&mut [f32; N], &[f32; N]) = (a.try_into().unwrap(), v.try_into().unwrap());
        if max {
            for i in 0..N {
                a[i] = max_nan(a[i], v[i]);
            }
        } else {
            for i in 0..N {
                a[i] += v[i];
            }
        }
    }
    acc.len() - acc.len() % N
}

/// Splits `row` (a multiple of `s` long) into its `s` phases.
#[inline(always)]
fn deinterleave(row: &[f32], phases: &mut [f32], s: usize) {
    let len = row.len() / s;
    if s == 2 {
        let (even, odd) = phases.split_at_mut(len);
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
            *e = pair[0];
            *o = pair[1];
        }
    } else {
        for (p, phase) in phases.chunks_exact_mut(len).enumerate() {
            for (j, v) in phase.iter_mut().enumerate() {
                *v = row[j * s + p];
            }
        }
    }
}

impl Pool2d {
    /// The 2-D kernel for `p` when it has two spatial axes, no Indices
    /// output and is a Max or Average pool.
    pub fn from_pool(p: &Pool, isa: Isa) -> Option<Pool2d> {
        if p.input.len() != 2 || p.indices.is_some() || matches!(p.kind, PoolKind::Lp { .. }) {
            return None;
        }
        let two = |v: &[u64]| [v[0], v[1]];
        Some(Pool2d {
            kind: p.kind,
            planes: p.planes,
            input: two(&p.input),
            kernel: two(&p.kernel),
            strides: two(&p.strides),
            dilations: two(&p.dilations),
            pad_begin: two(&p.pad_begin),
            pad_end: two(&p.pad_end),
            output: two(&p.output),
            isa,
        })
    }

    fn axis(&self, a: usize) -> Axis {
        let u = |v: &[u64; 2]| v[a] as usize;
        Axis { size: u(&self.input), out: u(&self.output), k: u(&self.kernel), s: u(&self.strides), d: u(&self.dilations), pb: u(&self.pad_begin), pe: u(&self.pad_end) }
    }

    /// Length of the padded row buffer: it holds the padded input row and
    /// every tap any output column reads, rounded up to whole phases.
    fn row_len(&self) -> usize {
        let w = self.axis(1);
        let reach = if w.out == 0 || w.k == 0 { 0 } else { (w.out - 1) * w.s + (w.k - 1) * w.d + 1 };
        (w.pb + w.size).max(reach).div_ceil(w.s) * w.s
    }

    /// Scratch floats: the row, its phases, the column counts.
    fn scratch_floats(&self) -> usize {
        let w = self.axis(1);
        self.row_len() * (1 + usize::from(w.s > 1)) + w.out
    }

    /// The ISA the rows run with: the requested one when the CPU has it.
    fn run_isa(&self) -> Isa {
        if self.isa.available() {
            self.isa
        } else {
            Isa::Generic
        }
    }

    /// Computes one output plane `y` from input plane `x`.
    fn plane(&self, x: &[f32], y: &mut [f32], bufs: &mut Bufs) {
        match self.run_isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (checked by run_isa).
            Isa::Avx512 => unsafe { plane_avx512(self, x, y, bufs) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 (checked by run_isa).
            Isa::Avx2 => unsafe { plane_avx2(self, x, y, bufs) },
            _ => plane_rows(self, x, y, bufs),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn plane_avx512(k: &Pool2d, x: &[f32], y: &mut [f32], bufs: &mut Bufs) {
    plane_rows(k, x, y, bufs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn plane_avx2(k: &Pool2d, x: &[f32], y: &mut [f32], bufs: &mut Bufs) {
    plane_rows(k, x, y, bufs)
}

/// The rows of one output plane: vertical reduction into the row buffer,
/// then every horizontal tap, then (average) the division.
#[inline(always)]
fn plane_rows(k: &Pool2d, x: &[f32], y: &mut [f32], bufs: &mut Bufs) {
    let (h, w) = (k.axis(0), k.axis(1));
    let (max, include_pad) = match k.kind {
        PoolKind::Average { count_include_pad } => (false, count_include_pad),
        _ => (true, false),
    };
    let phase_len = bufs.row.len() / w.s;
    for (oy, yr) in y.chunks_exact_mut(w.out).enumerate() {
        let span = h.span(oy);
        let inner = &mut bufs.row[w.pb..w.pb + w.size];
        if span.n == 0 {
            inner.fill(if max { f32::NEG_INFINITY } else { 0.0 });
        } else {
            inner.copy_from_slice(&x[span.first * w.size..][..w.size]);
            for t in 1..span.n {
                combine(max, inner, &x[(span.first + t * h.d) * w.size..][..w.size]);
            }
        }
        let src: &[f32] = if w.s == 1 {
            bufs.row
        } else {
            deinterleave(bufs.row, bufs.phases, w.s);
            bufs.phases
        };
        for kx in 0..w.k {
            let off = kx * w.d;
            let run = &src[(off % w.s) * phase_len + off / w.s..][..w.out];
            if kx == 0 {
                yr.copy_from_slice(run);
            } else {
                combine(max, yr, run);
            }
        }
        if !max {
            let rows = (if include_pad { span.padded } else { span.n }) as f32;
            for (v, &c) in yr.iter_mut().zip(bufs.col_count) {
                *v /= rows * c;
            }
        }
    }
}

impl KernelImpl for Pool2d {
    fn name(&self) -> String {
        let op = if self.kind == PoolKind::Max { "maxpool2d" } else { "avgpool2d" };
        format!("f32_{op}_simd_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.planes
    }

    fn scratch_bytes(&self, _items: u64) -> usize {
        self.scratch_floats() * 4
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        if matches!(self.kind, PoolKind::Lp { .. }) || self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err(format!("2-D pooling needs Max or Average and nonzero strides and dilations: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        let (h, w) = (self.axis(0), self.axis(1));
        let (in_plane, out_plane) = (h.size * w.size, h.out * w.out);
        let (p0, p1) = (part.start as usize, part.end as usize);
        if out_plane == 0 {
            return;
        }
        // SAFETY: inputs are not written during the step (the run contract).
        let x = unsafe { io.inputs[0].f32() };
        // SAFETY: this part owns planes p0..p1 of the output (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * out_plane..p1 * out_plane) };
        // SAFETY: any bit pattern is a valid f32; the slice is only reinterpreted.
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(pre.is_empty() && scratch.len() >= self.scratch_floats(), "pool2d scratch is not 4-byte aligned or too small");
        let row_len = self.row_len();
        let (row, rest) = scratch.split_at_mut(row_len);
        let (phases, rest) = rest.split_at_mut(if w.s > 1 { row_len } else { 0 });
        let col_count = &mut rest[..w.out];
        let include_pad = self.kind == PoolKind::Average { count_include_pad: true };
        for (ox, c) in col_count.iter_mut().enumerate() {
            let span = w.span(ox);
            *c = (if include_pad { span.padded } else { span.n }) as f32;
        }
        // The padding columns keep the neutral value; only the inner columns are rewritten.
        row.fill(if self.kind == PoolKind::Max { f32::NEG_INFINITY } else { 0.0 });
        let mut bufs = Bufs { row, phases, col_count };
        for (pl, yp) in (p0..p1).zip(y.chunks_exact_mut(out_plane)) {
            self.plane(&x[pl * in_plane..][..in_plane], yp, &mut bufs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;

    /// A random 2-D geometry: planes 1×1 to 60×60, kernels 1–4, strides
    /// 1–3, dilations 1–2, pads below the kernel, and half the time the
    /// `ceil_mode` output (windows may run past the end padding).
    fn random_pool(rng: &mut Rng, kind: PoolKind) -> Pool {
        let mut k = Pool { kind, planes: 1 + rng.below(5), input: vec![], kernel: vec![], strides: vec![], dilations: vec![], pad_begin: vec![], pad_end: vec![], output: vec![], indices: None };
        let ceil = rng.below(2) == 1;
        for _ in 0..2 {
            let (kk, s, d) = (1 + rng.below(4), 1 + rng.below(3), 1 + rng.below(2));
            let (pb, pe) = (rng.below(kk), rng.below(kk));
            let eff = (kk - 1) * d + 1;
            let inp = if rng.below(4) == 0 { eff.max(1) + rng.below(3) } else { (eff + rng.below(60)).min(60).max(eff) };
            let span = inp + pb + pe - eff;
            let mut out = span / s + 1;
            // ceil_mode: one more window when it starts inside the input or the begin padding.
            if ceil && span % s != 0 && (out * s) < inp + pb {
                out += 1;
            }
            k.input.push(inp);
            k.kernel.push(kk);
            k.strides.push(s);
            k.dilations.push(d);
            k.pad_begin.push(pb);
            k.pad_end.push(pe);
            k.output.push(out);
        }
        k
    }

    const KINDS: [PoolKind; 3] = [PoolKind::Max, PoolKind::Average { count_include_pad: true }, PoolKind::Average { count_include_pad: false }];

    fn check_against_generic(seed: u64, cases: usize, special: bool) {
        let mut rng = Rng(seed);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for case in 0..cases {
                let g = random_pool(&mut rng, KINDS[case % 3]);
                let k = Pool2d::from_pool(&g, isa).unwrap();
                let mut x = rng.vec(g.planes as usize * (g.input[0] * g.input[1]) as usize);
                if special {
                    for _ in 0..1 + x.len() / 50 {
                        let i = rng.below(x.len() as u64) as usize;
                        x[i] = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY][rng.below(3) as usize];
                    }
                }
                let n_out = g.planes as usize * (g.output[0] * g.output[1]) as usize;
                let want = run_parts(&g, std::slice::from_ref(&x), &[n_out], 1);
                for parts in [1, 2, 3] {
                    let got = run_parts(&k, std::slice::from_ref(&x), &[n_out], parts);
                    for (i, (&a, &b)) in got[0].iter().zip(&want[0]).enumerate() {
                        let ok = a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-5 * (1.0 + b.abs());
                        assert!(ok, "{isa:?} {k:?} element {i}: got {a}, want {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn matches_generic_on_random_geometries_every_isa_part1() {
        check_against_generic(21, 150, false);
    }

    #[test]
    fn matches_generic_on_random_geometries_every_isa_part2() {
        check_against_generic(22, 150, false);
    }

    #[test]
    fn matches_generic_with_nan_and_infinities_every_isa() {
        check_against_generic(23, 150, true);
    }

    #[test]
    fn max_propagates_nan_and_keeps_neg_infinity() {
        // 1×4 plane, 1×2 windows, stride 2: (NaN, 1) and (-inf, -inf).
        let g = Pool {
            kind: PoolKind::Max,
            planes: 1,
            input: vec![1, 4],
            kernel: vec![1, 2],
            strides: vec![1, 2],
            dilations: vec![1, 1],
            pad_begin: vec![0, 0],
            pad_end: vec![0, 0],
            output: vec![1, 2],
            indices: None,
        };
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            let k = Pool2d::from_pool(&g, isa).unwrap();
            for x in [vec![f32::NAN, 1.0, f32::NEG_INFINITY, f32::NEG_INFINITY], vec![1.0, f32::NAN, f32::NEG_INFINITY, f32::NEG_INFINITY]] {
                let got = run_parts(&k, &[x], &[2], 1);
                assert!(got[0][0].is_nan(), "{isa:?}: {:?}", got[0]);
                assert_eq!(got[0][1], f32::NEG_INFINITY);
            }
        }
    }

    #[test]
    fn hand_made_average_with_padding() {
        // 1×3 row 1,2,3; 1×3 windows, stride 2, pads 1/1 → (0+1+2), (2+3+0).
        for (include, want) in [(true, [1.0, 5.0 / 3.0]), (false, [1.5, 2.5])] {
            let g = Pool {
                kind: PoolKind::Average { count_include_pad: include },
                planes: 1,
                input: vec![1, 3],
                kernel: vec![1, 3],
                strides: vec![1, 2],
                dilations: vec![1, 1],
                pad_begin: vec![0, 1],
                pad_end: vec![0, 1],
                output: vec![1, 2],
                indices: None,
            };
            let k = Pool2d::from_pool(&g, Isa::Generic).unwrap();
            let got = run_parts(&k, &[vec![1.0, 2.0, 3.0]], &[2], 1);
            assert_eq!(got[0], want);
        }
    }

    #[test]
    fn lp_and_indices_stay_generic() {
        let mut g = random_pool(&mut Rng(1), PoolKind::Lp { p: 2.0 });
        assert!(Pool2d::from_pool(&g, Isa::Generic).is_none());
        g.kind = PoolKind::Max;
        g.indices = Some(super::super::Indices::RowMajor);
        assert!(Pool2d::from_pool(&g, Isa::Generic).is_none());
    }
}
