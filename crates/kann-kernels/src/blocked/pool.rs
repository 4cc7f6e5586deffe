//! 2-D f32 MaxPool and AveragePool on channel-blocked activations
//! (NCHW8c): X `[N][C/8][H][W][8]`, Y `[N][C/8][oh][ow][8]`, with the
//! semantics of [`crate::pool::Pool`] for two spatial axes without an
//! Indices output, as [`crate::pool::plane2d::Pool2d`] has them: any
//! kernel, strides, dilations and padding; windows that run past the
//! padding (`ceil_mode`: the output extent is given, the taps outside the
//! input and its padding are dropped); either divisor of AveragePool.
//!
//! A block's 8 channels are a vector at every pixel, so a window's tap is
//! one whole vector: an output pixel is the max or the sum of its taps
//! inside the input, read in place, with no transposes and no padded copy
//! (skipping a tap in the padding is what padding with `-inf` or 0 would
//! give). [`Pool2d`](crate::pool::plane2d::Pool2d) instead reduces rows
//! of one channel, and picks strided outputs out of them by permutes.
//!
//! MaxPool propagates NaN: a NaN anywhere in a window gives NaN; a window
//! with no tap inside the input gives `-inf`. AveragePool divides the sum
//! of the taps inside the input by their count or, with
//! `count_include_pad`, by the count of taps inside the input and its
//! explicit padding (a `ceil_mode` overhang past the end padding never
//! counts); per axis, so the divisor is the product of the row's and the
//! column's counts. A window with nothing to count gives `0 / 0`, NaN, as
//! the reference does. The portable path visits a window's taps in kernel
//! order, as the reference does (the same sums, the same maxima); the
//! AVX2 one (`blocked/pool/avx2.rs`) reduces columns first where it can,
//! which may round an average differently (a few ulp), and where `+0` and
//! `-0` tie for a maximum may keep the other one.
//!
//! Work items are the output rows of every block, `[N][C/8][oh]`, so a
//! part's output is contiguous and clusters split the rows of every block
//! (as the convolutions around the pool split positions). No scratch.
//!
//! Against [`Pool2d`](crate::pool::plane2d::Pool2d) with AVX2 on Zen 3,
//! alternated in one process (`blocked_pool_timing`, median of 41, a
//! shared machine): SqueezeNet's and GoogLeNet's 3×3/2 max pools
//! 0.35-0.67× its time, the inception branches' 3×3/1 pad 1 ones
//! 0.6-0.84×, Inception-v3's 3×3/1 average pools 0.17-0.25× at 35×35
//! (past Pool2d's small-plane path) and 0.8-0.96× at 17×17.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(test)]
mod tests;

use super::BLOCK;
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::pool::PoolKind;
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A MaxPool or AveragePool over NCHW8c tensors; geometry as
/// [`crate::pool::plane2d::Pool2d`], one value per spatial axis `[h, w]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockedPool {
    /// `Max` or `Average` (`check` refuses `Lp`).
    pub kind: PoolKind,
    pub batch: u64,
    /// A multiple of [`BLOCK`].
    pub channels: u64,
    pub input: [u64; 2],
    pub kernel: [u64; 2],
    pub strides: [u64; 2],
    pub dilations: [u64; 2],
    pub pad_begin: [u64; 2],
    /// The explicit padding after each axis: it counts in an average's
    /// divisor with `count_include_pad`; windows may reach past it.
    pub pad_end: [u64; 2],
    pub output: [u64; 2],
    pub isa: Isa,
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

/// The taps of one window along one axis: `n` taps inside the input, the
/// first at input position `first` (the others `d` apart), and `padded`
/// taps inside the input and its explicit padding.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    first: usize,
    n: usize,
    padded: usize,
}

impl Axis {
    /// The taps of the window at output position `o`. Tap `t` reads
    /// position `o·s + t·d − pb`, so the taps inside form one run.
    #[inline]
    fn span(&self, o: usize) -> Span {
        // Positions counted from the start of the padding: tap t at start + t·d.
        let start = o * self.s;
        // The taps below `end` (a position past the start of the padding);
        // no division for dilation 1 (the border pixels' cost on small maps).
        let below = |end: usize| match end.checked_sub(start) {
            None => 0,
            Some(n) if self.d == 1 => n.min(self.k),
            Some(n) => n.div_ceil(self.d).min(self.k),
        };
        let lo = below(self.pb);
        let n = below(self.pb + self.size).saturating_sub(lo);
        let first = if n > 0 { start + lo * self.d - self.pb } else { 0 };
        Span { first, n, padded: below(self.pb + self.size + self.pe) }
    }

    /// The outputs whose every tap lies inside the input (empty when none).
    fn interior(&self) -> Range<usize> {
        let lo = self.pb.div_ceil(self.s).min(self.out);
        // Output o's last tap reads o·s − pb + reach, which must be < size.
        let reach = self.k.saturating_sub(1) * self.d;
        let hi = if self.size + self.pb > reach { ((self.size + self.pb - reach - 1) / self.s + 1).min(self.out) } else { 0 };
        lo..hi.max(lo)
    }
}

impl BlockedPool {
    /// The `[h, w]` axes.
    fn axes(&self) -> [Axis; 2] {
        let u = |v: [u64; 2], a: usize| v[a] as usize;
        std::array::from_fn(|a| Axis {
            size: u(self.input, a),
            out: u(self.output, a),
            k: u(self.kernel, a),
            s: u(self.strides, a),
            d: u(self.dilations, a),
            pb: u(self.pad_begin, a),
            pe: u(self.pad_end, a),
        })
    }

    fn is_max(&self) -> bool {
        self.kind == PoolKind::Max
    }

    /// What a span counts in an average's divisor.
    fn count(&self, s: Span) -> usize {
        if self.kind == (PoolKind::Average { count_include_pad: true }) {
            s.padded
        } else {
            s.n
        }
    }

    /// Whether the rows run the AVX2 path: an AVX2 or AVX-512 kernel (the
    /// latter runs the same 8-lane code) on a CPU with AVX2 and FMA.
    fn simd(&self) -> bool {
        cfg!(target_arch = "x86_64") && matches!(self.isa, Isa::Avx2 | Isa::Avx512) && Isa::Avx2.available()
    }

    /// Output rows `oys` of one block: `x` its input plane `[ih][iw][8]`,
    /// `y` those rows `[oys.len()][ow][8]`.
    fn rows(&self, x: &[f32], oys: Range<usize>, y: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.simd() {
            // SAFETY: the CPU has AVX2 and FMA (simd).
            return unsafe { avx2::rows(self, x, oys, y) };
        }
        let ow = self.output[1] as usize;
        for (oy, yr) in oys.zip(y.chunks_exact_mut(ow * BLOCK)) {
            portable_row(self, x, oy, yr);
        }
    }
}

/// The portable twin: output row `oy` of one block (`y`, `[ow][8]`) from
/// its input plane `x`, each window's taps inside the input in kernel
/// order. Lane by lane over whole pixels, in forms that compile to vector
/// operations: the max as `v > a ? v : a` (`maxps`; ties keep the earlier
/// tap, as the reference does), a NaN seen kept aside and put back last.
fn portable_row(k: &BlockedPool, x: &[f32], oy: usize, y: &mut [f32]) {
    let [h, w] = k.axes();
    let max = k.is_max();
    let rows = h.span(oy);
    let row_len = w.size * BLOCK;
    for (ox, out) in y.chunks_exact_mut(BLOCK).enumerate() {
        let cols = w.span(ox);
        let (mut acc, mut nan) = ([if max { f32::NEG_INFINITY } else { 0.0 }; BLOCK], [0u32; BLOCK]);
        // The window's columns of a row: cols.n pixels d apart from cols.first.
        let span = if cols.n == 0 { 0..0 } else { cols.first * BLOCK..(cols.first + (cols.n - 1) * w.d + 1) * BLOCK };
        for r in 0..rows.n {
            let row = &x[(rows.first + r * h.d) * row_len..][..row_len];
            for v in row[span.clone()].chunks_exact(BLOCK).step_by(w.d) {
                let v: &[f32; BLOCK] = v.try_into().unwrap();
                if max {
                    for i in 0..BLOCK {
                        acc[i] = if v[i] > acc[i] { v[i] } else { acc[i] };
                        nan[i] |= u32::from(v[i].is_nan());
                    }
                } else {
                    for i in 0..BLOCK {
                        acc[i] += v[i];
                    }
                }
            }
        }
        let px: [f32; BLOCK] = if max {
            std::array::from_fn(|i| if nan[i] != 0 { f32::NAN } else { acc[i] })
        } else {
            let n = (k.count(rows) * k.count(cols)) as f32;
            acc.map(|a| a / n)
        };
        out.copy_from_slice(&px);
    }
}

impl KernelImpl for BlockedPool {
    fn name(&self) -> String {
        let op = if self.is_max() { "maxpool2d" } else { "avgpool2d" };
        format!("f32_{op}_nchw8c_{}", self.isa.name())
    }

    /// The output rows of every block, `[N][C/8][oh]`.
    fn work_items(&self) -> u64 {
        self.batch * (self.channels / BLOCK as u64) * self.output[0]
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        if matches!(self.kind, PoolKind::Lp { .. }) {
            return Err(format!("a blocked pool is a MaxPool or an AveragePool, not an LpPool: {self:?}"));
        }
        if self.channels == 0 || self.channels % BLOCK as u64 != 0 || self.kernel.contains(&0) || self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err(format!("a blocked pool needs channels in multiples of {BLOCK} and nonzero kernel, strides and dilations: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let [h, w] = self.axes();
        let (in_block, row) = (h.size * w.size * BLOCK, w.out * BLOCK);
        let planes = self.batch as usize * self.channels as usize / BLOCK;
        let (p0, p1) = (part.start as usize, part.end as usize);
        if row == 0 || p0 >= p1 {
            return;
        }
        // SAFETY: the input is not written during the step (the run contract).
        let x = unsafe { io.inputs[0].f32() };
        assert!(x.len() >= planes * in_block, "blocked pool input is too short");
        // SAFETY: this part owns output rows p0..p1 (the run contract).
        let y = unsafe { io.outputs[0].f32_part(p0 * row..p1 * row) };
        // Runs of rows of one block each.
        let mut i = p0;
        while i < p1 {
            let (plane, oy) = (i / h.out, i % h.out);
            let oys = oy..h.out.min(oy + p1 - i);
            let n = oys.len();
            self.rows(&x[plane * in_block..][..in_block], oys, &mut y[(i - p0) * row..][..n * row]);
            i += n;
        }
    }
}
