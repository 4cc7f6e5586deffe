//! A general 2-D convolution on channel-blocked activations (NCHW8c):
//! groups, strides, dilations and padding; RegNet-X's grouped 3×3
//! convolutions (24 channels a group: 3 blocks) and its strided 1×1
//! projections, so that whole networks can stay blocked.
//!
//! A tile is `P` consecutive output pixels by `V` output blocks of one
//! group (a "chunk": 4 × 3, 6 × 2 or 8 × 1, 12 sums at most). Each step
//! `(input block, ky, kx)` runs over the block's 8 lanes: it loads the `V`
//! weight vectors of input channel `8·block + lane` at that tap and
//! broadcasts each pixel's value of that channel, 8 floats apart in X's
//! layout. A tile's pixels may run past the end of an output row into the
//! next (each pixel has its own input pointer), so a 7- or 14-wide row
//! leaves no narrow tiles but the band's last. Output blocks are stored
//! whole, 8 channels a vector, with no transposes.
//!
//! Padding: where the taps reach outside X, the rows a band of output rows
//! reads, of the group's input blocks, are first copied into the scratch
//! with their zero padding (`[C/group/8][rows][columns][8]`), so the tiles
//! read with no checks; copying a float is cheap against the `V · 8` sums
//! it feeds at each of `kh · kw` taps. Where no tap reaches the padding
//! (the strided 1×1 projections), X is read in place.
//!
//! Inputs: X `[N][C/8][H][W][8]`, W packed by
//! [`pack_blocked_conv_weights`], then the bias `[M]` if `epilogue.bias`,
//! then the residual (Y's shape) if `epilogue.residual`. Output: Y
//! `[N][M/8][oh][ow][8]`. `y = act(Σ w·x + bias + residual)`; the
//! piecewise-linear activations run on the accumulators, the others over
//! each band's stored rows afterwards.
//!
//! Against the NCHW kernels on Zen 3, alternated in one process
//! (`blocked_conv_timing`, median of 41, a shared machine): RegNet-X-1.6GF's
//! grouped 3×3 layers 0.63-0.91× [`crate::conv_grouped::ConvGrouped`]'s
//! time (62-87 GFLOP/s; the 7×7 and stride-2 layers gain most), its
//! strided 1×1 projections 0.60-0.94× the column GEMM's.
//!
//! Work items are `[N][group][oh][chunk]`: each output row's chunks
//! (RegNet's 24-channel groups are one chunk, so `N · group · oh` as
//! [`crate::conv_grouped::ConvGrouped`]). A part owns whole output rows of
//! whole blocks, written through Y's raw pointer; a dense layer splits by
//! its chunks as well as its rows (912 channels over 7×7: 266 items), so
//! two clusters get even halves whatever the map's height. A band's
//! padded copy serves all the chunks of its rows: copied once a chunk,
//! it cost ResNet-50's strided 3×3 layers (one output row a band) a
//! third of their time.
//!
//! A chunk whose weights outgrow L1 (a dense 3×3 of 128 channels in:
//! 110 KB for 24 outputs) takes its steps in passes, its partial sums
//! parked in Y between them ([`pass_steps`]).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(test)]
mod tests;

use super::BLOCK;
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::{Isa, PwAct};
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A 2-D convolution over NCHW8c tensors; geometry as
/// [`crate::conv::Conv`] with two spatial axes `[h, w]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockedConv {
    pub batch: u64,
    /// A multiple of [`BLOCK`], as is `in_channels / group`.
    pub in_channels: u64,
    /// A multiple of [`BLOCK`], as is `out_channels / group`.
    pub out_channels: u64,
    /// Groups (1: a dense convolution).
    pub group: u64,
    pub input: [u64; 2],
    pub output: [u64; 2],
    pub kernel: [u64; 2],
    pub strides: [u64; 2],
    pub dilations: [u64; 2],
    /// The padding before each axis; the padding after is implied by `output`.
    pub pad_begin: [u64; 2],
    pub epilogue: Epilogue,
    pub isa: Isa,
}

/// Bytes a band's padded copy at most, unless one output row needs more:
/// it stays in L2 while the tiles sweep it.
const COPY_BYTES: usize = 128 << 10;

/// A group's weights past which bands may copy up to [`BIG_COPY_BYTES`].
const BIG_WEIGHTS: usize = 256 << 10;
const BIG_COPY_BYTES: usize = 512 << 10;

/// A group's output blocks in the chunks a tile computes together,
/// `(first block, blocks)`: threes (4 pixels × 3 vectors), then a two
/// when two are left, two twos when one is (not a three and a one: a
/// single vector's tile runs at half speed), a one only alone.
fn chunks(blocks: usize) -> impl Iterator<Item = (usize, usize)> + Clone {
    let (mut threes, rest) = (blocks / 3, blocks % 3);
    let twos = if rest == 1 && threes > 0 {
        threes -= 1;
        2
    } else {
        usize::from(rest == 2)
    };
    let one = rest == 1 && twos == 0;
    (0..threes).map(|i| (3 * i, 3)).chain((0..twos).map(move |i| (3 * threes + 2 * i, 2))).chain(one.then_some((3 * threes, 1)))
}

/// Packs ONNX `[M, C/group, kh, kw]` weights (`taps = kh · kw`) for
/// [`BlockedConv`]: group by group, chunk by chunk ([`chunks`]), each
/// `[C/group/8][taps][8][8 · v]`: for each input block and tap, the `v`
/// weight vectors of each of its 8 channels in turn, in the order the
/// tiles read them.
pub fn pack_blocked_conv_weights(w: &[f32], m: usize, group: usize, taps: usize) -> Vec<f32> {
    let group = group.max(1);
    let cg = w.len().checked_div(m * taps).unwrap_or(0);
    assert!(w.len() == m * cg * taps && m % (group * BLOCK) == 0 && cg % BLOCK == 0, "blocked conv weights: {} floats for M {m}, {group} groups, {taps} taps", w.len());
    let mg = m / group;
    let mut out = vec![0.0; w.len()];
    for gi in 0..group {
        for (first, v) in chunks(mg / BLOCK) {
            let o0 = gi * mg + first * BLOCK;
            for ci in 0..cg {
                for t in 0..taps {
                    // Channel ci's weights at tap t: block ci / 8, lane ci % 8.
                    let at = ((ci / BLOCK * taps + t) * BLOCK + ci % BLOCK) * v * BLOCK;
                    for o in 0..v * BLOCK {
                        out[o0 * cg * taps + at + o] = w[((o0 + o) * cg + ci) * taps + t];
                    }
                }
            }
        }
    }
    out
}

/// Steps (input block, tap) a pass of the tiles over a band takes for a
/// chunk of `v` blocks: its weights, `256 · v` bytes a step, stay in L1
/// while the band's tiles reuse them. A layer with more steps (dense
/// 3×3 convolutions of 128 channels and up: 110 KB a chunk and more)
/// makes several passes, the partial sums parked in Y between them; a
/// chunk streaming all its weights from L2 for each tile ran at 41-64
/// GFLOP/s on Zen 3 (ResNet-50's strided 3×3 layers).
fn pass_steps(v: usize) -> usize {
    ((16 << 10) / (4 * BLOCK * BLOCK * v)).max(1)
}

/// The geometry as usize.
#[derive(Clone, Copy)]
struct Geom {
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    ph: usize,
    pw: usize,
    /// Input and output channels, of the whole tensor and of a group.
    c: usize,
    m: usize,
    cg: usize,
    mg: usize,
}

impl Geom {
    fn taps(&self) -> usize {
        self.kh * self.kw
    }

    /// Input rows that `n` consecutive output rows read.
    fn rows_for(&self, n: usize) -> usize {
        (n - 1) * self.sh + (self.kh - 1) * self.dh + 1
    }

    /// Input columns an output row reads, from its first tap's.
    fn cols(&self) -> usize {
        (self.ow - 1) * self.sw + (self.kw - 1) * self.dw + 1
    }

    /// Whether every tap reads inside X, which the tiles then read in place.
    fn in_place(&self) -> bool {
        self.ph == 0 && self.pw == 0 && self.rows_for(self.oh) <= self.ih && self.cols() <= self.iw
    }

    /// Floats of the padded copy for `n` output rows.
    fn copy_floats(&self, n: usize) -> usize {
        self.cg * self.rows_for(n) * self.cols()
    }

    /// Output rows a band: as many as keep the copy within [`COPY_BYTES`]
    /// (or [`BIG_COPY_BYTES`]).
    fn band_rows(&self) -> usize {
        if self.in_place() {
            return self.oh;
        }
        // Weights that outgrow L2 stream from L3 once a band: fewer,
        // taller bands then (ResNet-50's 512-channel strided 3×3, 9.4 MB of
        // weights over 7 output rows: 1.42 → 0.91 of the GEMM's time with
        // one band instead of seven).
        let weights = 4 * self.mg * self.cg * self.taps();
        let most = if weights > BIG_WEIGHTS { BIG_COPY_BYTES } else { COPY_BYTES };
        (1..=self.oh).rev().find(|&r| 4 * self.copy_floats(r) <= most).unwrap_or(1)
    }
}

/// A run of output rows of one chunk: image `b`, group `gi`, the group's
/// output blocks `first..first + v`, rows `oy0..oy0 + oys`.
#[derive(Clone, Copy)]
struct Rows {
    b: usize,
    gi: usize,
    first: usize,
    v: usize,
    oy0: usize,
    oys: usize,
}

/// Output rows `oy0..oy0 + oys` of image `b`, group `gi`, each for the
/// group's chunks `chunks` (indices into [`chunks`]).
#[derive(Clone)]
struct Span {
    b: usize,
    gi: usize,
    chunks: Range<usize>,
    oy0: usize,
    oys: usize,
}

/// The step's buffers, checked long enough for every image.
struct Bufs<'a> {
    x: &'a [f32],
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    residual: Option<&'a [f32]>,
    y: *mut f32,
}

impl BlockedConv {
    fn geom(&self) -> Geom {
        let u = |v: [u64; 2]| v.map(|e| e as usize);
        let ([ih, iw], [oh, ow], [kh, kw]) = (u(self.input), u(self.output), u(self.kernel));
        let ([sh, sw], [dh, dw], [ph, pw]) = (u(self.strides), u(self.dilations), u(self.pad_begin));
        let (c, m, group) = (self.in_channels as usize, self.out_channels as usize, self.group.max(1) as usize);
        Geom { ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw, c, m, cg: c / group, mg: m / group }
    }

    /// Whether the AVX2 tiles run: an AVX2 or AVX-512 kernel (the latter
    /// runs the same 8-lane code) on a CPU with AVX2 and FMA.
    fn simd(&self) -> bool {
        cfg!(target_arch = "x86_64") && matches!(self.isa, Isa::Avx2 | Isa::Avx512) && Isa::Avx2.available()
    }

    /// Chunks of a group.
    fn n_chunks(&self) -> usize {
        chunks(self.geom().mg / BLOCK).count()
    }

    /// Output rows `r` of one chunk, bounds checked portably, every tap
    /// checked against X's extent.
    ///
    /// # Safety
    /// This part owns those rows of those blocks of Y.
    unsafe fn rows_portable(&self, g: &Geom, bufs: &Bufs, r: Rows) {
        let taps = g.taps();
        let in_plane = g.ih * g.iw * BLOCK;
        let x = &bufs.x[(r.b * g.c + r.gi * g.cg) * g.ih * g.iw..][..g.cg * g.ih * g.iw];
        let o0 = r.gi * g.mg + r.first * BLOCK;
        let w = &bufs.w[o0 * g.cg * taps..][..r.v * BLOCK * g.cg * taps];
        let inside = |o: usize, s: usize, t: usize, d: usize, p: usize, n: usize| (o * s + t * d).checked_sub(p).filter(|&i| i < n);
        for blk in 0..r.v {
            let at = (r.b * g.m + o0 + blk * BLOCK) * g.oh * g.ow + r.oy0 * g.ow * BLOCK;
            let len = r.oys * g.ow * BLOCK;
            // SAFETY: rows oy0..oy0 + oys of this output block lie in Y
            // (checked in run) and are this part's.
            let y = unsafe { std::slice::from_raw_parts_mut(bufs.y.add(at), len) };
            for (i, out) in y.chunks_exact_mut(BLOCK).enumerate() {
                let (oy, ox) = (r.oy0 + i / g.ow, i % g.ow);
                for (lane, o) in out.iter_mut().enumerate() {
                    let mut s = 0.0f32;
                    for ky in 0..g.kh {
                        let Some(iy) = inside(oy, g.sh, ky, g.dh, g.ph, g.ih) else { continue };
                        for kx in 0..g.kw {
                            let Some(ix) = inside(ox, g.sw, kx, g.dw, g.pw, g.iw) else { continue };
                            for ci in 0..g.cg {
                                let xv = x[(ci / BLOCK) * in_plane + (iy * g.iw + ix) * BLOCK + ci % BLOCK];
                                let wv = w[((ci / BLOCK * taps + ky * g.kw + kx) * BLOCK + ci % BLOCK) * r.v * BLOCK + blk * BLOCK + lane];
                                s += wv * xv;
                            }
                        }
                    }
                    if let Some(bias) = bufs.bias {
                        s += bias[o0 + blk * BLOCK + lane];
                    }
                    if let Some(res) = bufs.residual {
                        s += res[at + i * BLOCK + lane];
                    }
                    *o = s;
                }
            }
            crate::epilogue::activate_in_place(self.epilogue.activation, y);
        }
    }

    /// A span's output rows with the AVX2 tiles, band by band: each band's
    /// padded copy serves all the span's chunks, each chunk's steps in
    /// passes of [`pass_steps`].
    ///
    /// # Safety
    /// As [`Self::rows_portable`] for each chunk; the CPU has AVX2 and
    /// FMA; the scratch holds [`KernelImpl::scratch_bytes`].
    #[cfg(target_arch = "x86_64")]
    unsafe fn span_simd(&self, g: &Geom, bufs: &Bufs, r: &Span, scratch: &mut [u8]) {
        let (taps, cgb) = (g.taps(), g.cg / BLOCK);
        let steps = cgb * taps;
        // SAFETY: any bit pattern is a valid usize; the slice is only reinterpreted.
        let (_, words, _) = unsafe { scratch.align_to_mut::<usize>() };
        assert!(words.len() >= steps, "blocked conv scratch is too small");
        let (offs, rest) = words.split_at_mut(steps);
        // SAFETY: the words after the table, as twice as many f32 (any bit
        // pattern is valid, the alignment is stricter).
        let copy = unsafe { std::slice::from_raw_parts_mut(rest.as_mut_ptr() as *mut f32, rest.len() * 2) };
        let x = &bufs.x[(r.b * g.c + r.gi * g.cg) * g.ih * g.iw..][..g.cg * g.ih * g.iw];
        let (act, after) = match PwAct::of(self.epilogue.activation) {
            Some(pw) => (pw, None),
            None => (PwAct::Identity, Some(self.epilogue.activation)),
        };
        let out_plane = g.oh * g.ow * BLOCK;
        let in_place = g.in_place();
        let band = g.band_rows();
        for oy0 in (r.oy0..r.oy0 + r.oys).step_by(band) {
            let n = band.min(r.oy0 + r.oys - oy0);
            // The source: its first output row's first tap, blocks `bs` and rows `rs` floats apart.
            let (src, bs, rs) = if in_place {
                (x[oy0 * g.sh * g.iw * BLOCK..].as_ptr(), g.ih * g.iw * BLOCK, g.iw * BLOCK)
            } else {
                let floats = g.copy_floats(n);
                assert!(copy.len() >= floats, "blocked conv scratch is too small for the copy");
                copy_rows(g, x, oy0, n, &mut copy[..floats]);
                (copy.as_ptr(), g.rows_for(n) * g.cols() * BLOCK, g.cols() * BLOCK)
            };
            for (s, o) in offs.iter_mut().enumerate() {
                let (bi, t) = (s / taps, s % taps);
                *o = bi * bs + (t / g.kw) * g.dh * rs + (t % g.kw) * g.dw * BLOCK;
            }
            // The last pixel's last tap's last lane lies in the source.
            let reach = offs.iter().max().map_or(0, |&o| o) + (n - 1) * g.sh * rs + (g.ow - 1) * g.sw * BLOCK + BLOCK;
            assert!(reach <= if in_place { x.len() - oy0 * g.sh * g.iw * BLOCK } else { g.copy_floats(n) }, "blocked conv source reach");
            for (first, v) in chunks(g.mg / BLOCK).skip(r.chunks.start).take(r.chunks.len()) {
                let o0 = r.gi * g.mg + first * BLOCK;
                let w = &bufs.w[o0 * g.cg * taps..][..v * BLOCK * g.cg * taps];
                let at = (r.b * g.m + o0) * g.oh * g.ow + oy0 * g.ow * BLOCK;
                let pass = pass_steps(v);
                for s0 in (0..steps).step_by(pass) {
                    let s1 = (s0 + pass).min(steps);
                    let band_of = avx2::Band {
                        src,
                        row_step: g.sh * rs,
                        col_step: g.sw * BLOCK,
                        offs: offs[s0..].as_ptr(),
                        steps: s1 - s0,
                        w: w[s0 * BLOCK * BLOCK * v..].as_ptr(),
                        bias: bufs.bias.map_or(std::ptr::null(), |b| b[o0..].as_ptr()),
                        residual: bufs.residual.map_or(std::ptr::null(), |res| res[at..].as_ptr()),
                        // SAFETY: inside Y (checked in run).
                        y: unsafe { bufs.y.add(at) },
                        ys: out_plane,
                        ow: g.ow,
                        total: n * g.ow,
                        act,
                        accumulate: s0 > 0,
                        finish: s1 == steps,
                    };
                    // SAFETY: the CPU has AVX2 and FMA; the band's pointers
                    // cover its reads (reach asserted) and this part's outputs.
                    unsafe { avx2::band(&band_of, v) };
                }
                if let Some(a) = after {
                    for blk in 0..v {
                        // SAFETY: the band's rows of this block, this part's.
                        let ys = unsafe { std::slice::from_raw_parts_mut(bufs.y.add(at + blk * out_plane), n * g.ow * BLOCK) };
                        crate::epilogue::activate_in_place(a, ys);
                    }
                }
            }
        }
    }
}

/// Items `part` of `[N][group][oh][chunk]` as spans of rows that share
/// their chunks: a partial first row, the whole rows, a partial last row
/// (split where the image or group changes).
fn spans(part: Range<u64>, n_chunks: usize, oh: usize, groups: usize) -> impl Iterator<Item = Span> {
    let mut i = part.start as usize;
    std::iter::from_fn(move || {
        let left = (part.end as usize).checked_sub(i).filter(|&l| l > 0)?;
        let (row_of, ch) = (i / n_chunks, i % n_chunks);
        let (oy, rest) = (row_of % oh, row_of / oh);
        let (gi, b) = (rest % groups, rest / groups);
        let span = if ch > 0 || left < n_chunks {
            // A partial row: its chunks from `ch` to the row's or part's end.
            Span { b, gi, chunks: ch..n_chunks.min(ch + left), oy0: oy, oys: 1 }
        } else {
            // Whole rows, to the part's or the group's end.
            Span { b, gi, chunks: 0..n_chunks, oy0: oy, oys: (left / n_chunks).min(oh - oy) }
        };
        i += span.chunks.len() * span.oys;
        Some(span)
    })
}

/// Copies the input rows that output rows `oy0..oy0 + n` read, of a
/// group's input blocks `x` (`[C/group/8][H][W][8]`), into `dst`
/// (`[C/group/8][rows][cols][8]`), zero where the taps reach the padding.
#[cfg(target_arch = "x86_64")]
fn copy_rows(g: &Geom, x: &[f32], oy0: usize, n: usize, dst: &mut [f32]) {
    let (rows, cols) = (g.rows_for(n), g.cols());
    // Copy column c is input column c - pw; copy row r input row oy0·sh + r - ph.
    let (lo, hi) = (g.pw.min(cols), (g.pw + g.iw).min(cols));
    for (i, d) in dst.chunks_exact_mut(cols * BLOCK).enumerate() {
        let (bi, r) = (i / rows, i % rows);
        let iy = (oy0 * g.sh + r).checked_sub(g.ph).filter(|&iy| iy < g.ih);
        match iy {
            Some(iy) if hi > lo => {
                d[..lo * BLOCK].fill(0.0);
                d[lo * BLOCK..hi * BLOCK].copy_from_slice(&x[((bi * g.ih + iy) * g.iw + lo - g.pw) * BLOCK..][..(hi - lo) * BLOCK]);
                d[hi * BLOCK..].fill(0.0);
            }
            _ => d.fill(0.0),
        }
    }
}

impl KernelImpl for BlockedConv {
    fn name(&self) -> String {
        format!("f32_conv2d_nchw8c_{}", self.isa.name())
    }

    /// Each output row's chunks, `[N][group][oh][chunk]`.
    fn work_items(&self) -> u64 {
        self.batch * self.group.max(1) * self.n_chunks() as u64 * self.output[0]
    }

    /// The tap offsets and one band's padded copy (the AVX2 path only).
    fn scratch_bytes(&self, items: u64) -> usize {
        if !self.simd() || items == 0 {
            return 0;
        }
        let g = self.geom();
        let copy = if g.in_place() { 0 } else { g.copy_floats(g.band_rows().min(items as usize).max(1)) };
        8 * (g.cg / BLOCK * g.taps() + copy.div_ceil(2) + 1)
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        let (c, m, group, block) = (self.in_channels, self.out_channels, self.group, BLOCK as u64);
        if group == 0 || c == 0 || m == 0 || c % group != 0 || m % group != 0 || (c / group) % block != 0 || (m / group) % block != 0 {
            return Err(format!("a blocked conv needs groups of multiples of {BLOCK} input and output channels: {self:?}"));
        }
        if self.kernel.contains(&0) || self.strides.contains(&0) || self.dilations.contains(&0) || self.output.contains(&0) {
            return Err(format!("blocked conv kernel, strides, dilations or output are empty: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        let g = self.geom();
        let n = self.batch as usize;
        let taps = g.taps();
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, w) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        // SAFETY: as above.
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        // SAFETY: as above.
        let residual = self.epilogue.residual.then(|| unsafe { io.inputs[2 + usize::from(self.epilogue.bias)].f32() });
        let out_len = n * g.m * g.oh * g.ow;
        assert!(x.len() >= n * g.c * g.ih * g.iw && w.len() >= g.m * g.cg * taps, "blocked conv inputs are too short");
        assert!(bias.is_none_or(|b| b.len() >= g.m) && residual.is_none_or(|r| r.len() >= out_len), "blocked conv bias or residual is too short");
        assert!(io.outputs[0].len_bytes() / 4 >= out_len, "blocked conv output is too short");
        let bufs = Bufs { x, w, bias, residual, y: io.outputs[0].as_ptr() as *mut f32 };
        let simd = self.simd();
        let (oh, groups, n_chunks) = (g.oh, self.group.max(1) as usize, self.n_chunks());
        for span in spans(part, n_chunks, oh, groups) {
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: the CPU has AVX2 and FMA (simd); this part owns
                // the span's rows of its chunks; the run contract's scratch.
                unsafe { self.span_simd(&g, &bufs, &span, scratch) };
                continue;
            }
            // (Off x86-64 only the portable rows run.)
            let _ = (simd, &scratch);
            for (first, v) in chunks(g.mg / BLOCK).skip(span.chunks.start).take(span.chunks.len()) {
                let r = Rows { b: span.b, gi: span.gi, first, v, oy0: span.oy0, oys: span.oys };
                // SAFETY: this part owns these rows (the run contract).
                unsafe { self.rows_portable(&g, &bufs, r) };
            }
        }
    }
}
