//! A 1×1 convolution (stride 1, no padding) on channel-blocked activations.
//!
//! A tile is `P` pixels by `V` blocks of 8 output channels. Each step `k`
//! loads the `V` weight vectors of input channel `k` and broadcasts the
//! `P` pixels' value of channel `k`, which lie 8 floats apart in X's block:
//! X is read where it is, with no packing, and each output block of the
//! tile is `P` consecutive vectors. Bias, residual and activation are
//! applied on the accumulators before they are stored.
//!
//! Against the NCHW GEMM (which packs X into column panels), alternated in
//! one process on Zen 3 (`blocked_pointwise_timing`): 32 → 16 over
//! 112×112 0.52-0.64×, 16 → 96 over 112×112 0.82-0.87×, 72 → 72 over
//! 56×56 0.76-0.92×, 168 → 168 over 28×28 0.78-0.89×, 408 → 408 over 14×14
//! 0.99-1.00×.
//!
//! Inputs: X `[N][C/8][pixels][8]`, W packed by
//! [`pack_blocked_pointwise_weights`], then the bias `[M]` if
//! `epilogue.bias`, then the residual (Y's shape) if `epilogue.residual`,
//! then a scale of X's channels `[N, C]` if `input_scale` (EfficientNet's
//! squeeze-and-excitation: `W · (s ⊙ X)`, run as `(W ⊙ s) · X` with each
//! group's weights scaled into the scratch, once a chunk of pixels).
//! Output: Y `[N][M/8][pixels][8]`. Work items are each image's pixels in
//! fours, or its groups of output blocks (`by_channels`).

use super::BLOCK;
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::{Isa, PwAct};
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A 1×1 convolution over NCHW8c tensors; both channel counts are
/// multiples of 8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockedPointwise {
    pub batch: u64,
    pub in_channels: u64,
    pub out_channels: u64,
    /// Pixels of a plane (`H · W`, the same in and out).
    pub pixels: u64,
    pub epilogue: Epilogue,
    /// Scale X's channels per image by an extra input first.
    pub input_scale: bool,
    /// Work items are each image's output groups (small maps split across
    /// clusters: each reads only its groups' weights) instead of its pixels.
    pub by_channels: bool,
    pub isa: Isa,
}

/// Pixels a work item.
const QUAD: usize = 4;

/// Pixels a cluster runs every weight group over before it moves on: X's
/// rows for them stay in L2 while the groups' weights take turns in L1.
const CHUNK: usize = 192;

/// The output blocks in groups a tile computes, `(first block, blocks)`:
/// pairs (6 pixels × 2 vectors: 12 sums, 15 of AVX2's 16 registers), an
/// odd count's first three together (4 × 3), a single block alone (8 × 1).
/// The three comes first: split by channels into two even shares of
/// groups, the part with fewer groups holds it, and the shares differ by
/// at most one block (last, RegNetX's 51 blocks ran as 24 against 27,
/// one cluster waiting 12 % of each 1×1 convolution).
fn groups(blocks: usize) -> impl Iterator<Item = (usize, usize)> {
    let first = if blocks % 2 == 1 { blocks.min(3) } else { blocks.min(2) };
    std::iter::once((0, first)).filter(move |_| blocks > 0).chain((first..blocks).step_by(2).map(|b| (b, 2)))
}

/// Packs ONNX `[M, K]` (or `[M, K, 1, 1]`) weights for
/// [`BlockedPointwise`]: group by group ([`groups`]), each `[K][8 · v]`.
pub fn pack_blocked_pointwise_weights(w: &[f32], m: usize, k: usize) -> Vec<f32> {
    assert_eq!(w.len(), m * k, "pointwise weights are not [M, K]");
    let mut out = Vec::with_capacity(m * k);
    for (g, v) in groups(m / BLOCK) {
        for kk in 0..k {
            out.extend((g * BLOCK..(g + v) * BLOCK).map(|o| w[o * k + kk]));
        }
    }
    out
}

/// Where one tile reads and writes; pointers at the tile's first pixel.
#[derive(Clone, Copy)]
struct Tile {
    /// X at input block 0; blocks `xs` floats apart.
    x: *const f32,
    xs: usize,
    /// The group's packed weights, `[K][8 · v]`.
    w: *const f32,
    /// Input blocks.
    kb: usize,
    /// The group's first bias, or null.
    bias: *const f32,
    /// The residual at the group's first block, or null; Y's layout.
    residual: *const f32,
    /// Y at the group's first block; blocks `ys` floats apart.
    y: *mut f32,
    ys: usize,
}

impl KernelImpl for BlockedPointwise {
    fn name(&self) -> String {
        format!("f32_conv1x1_nchw8c_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        let per_image = if self.by_channels { groups(self.out_channels as usize / BLOCK).count() as u64 } else { self.pixels.div_ceil(QUAD as u64) };
        self.batch * per_image
    }

    fn scratch_bytes(&self, _items: u64) -> usize {
        // One group's scaled weights: at most three blocks wide.
        if self.input_scale {
            4 * self.in_channels as usize * 3 * BLOCK
        } else {
            0
        }
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual) + usize::from(self.input_scale);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        let block = BLOCK as u64;
        if self.in_channels == 0 || self.out_channels == 0 || self.in_channels % block != 0 || self.out_channels % block != 0 {
            return Err(format!("a blocked 1x1 convolution needs channels in multiples of {BLOCK}: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        let (k, m, hw) = (self.in_channels as usize, self.out_channels as usize, self.pixels as usize);
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, w) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        assert!(x.len() >= self.batch as usize * k * hw && w.len() >= m * k, "blocked 1x1 convolution inputs are too short");
        // SAFETY: as above.
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        let r_at = 2 + usize::from(self.epilogue.bias);
        // SAFETY: as above.
        let residual = self.epilogue.residual.then(|| unsafe { io.inputs[r_at].f32() });
        // SAFETY: as above.
        let scale = self.input_scale.then(|| unsafe { io.inputs[r_at + usize::from(self.epilogue.residual)].f32() });
        assert!(scale.is_none_or(|s| s.len() >= self.batch as usize * k), "blocked 1x1 convolution scale is too short");
        // SAFETY: any bit pattern is a valid f32; the slice is only reinterpreted.
        let (_, scaled, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(scale.is_none() || scaled.len() >= 3 * BLOCK * k, "blocked 1x1 convolution scratch is too small");
        let y = &io.outputs[0];
        assert!(y.len_bytes() / 4 >= self.batch as usize * m * hw && residual.is_none_or(|r| r.len() >= self.batch as usize * m * hw), "blocked 1x1 convolution outputs are too short");
        let cx = Span { x, w, bias, residual, scale, y: y.as_ptr() as *mut f32, simd: self.simd(), pw: PwAct::of(self.epilogue.activation) };
        // No allocation while a frame runs: groups are counted and skipped to, not collected.
        let n = groups(m / BLOCK).count();
        let (p0, p1) = (part.start as usize, part.end as usize);
        if self.by_channels {
            // Items are each image's groups: the part's groups, image by image.
            for b in p0 / n..p1.div_ceil(n) {
                let gs = p0.max(b * n) - b * n..p1.min((b + 1) * n) - b * n;
                // SAFETY: this part owns these groups' blocks of image b.
                unsafe { self.span(&cx, b, 0..hw, gs, scaled) };
            }
            return;
        }
        // Items are each image's pixels in fours: the part's pixels, image by image.
        let quads = hw.div_ceil(QUAD);
        for b in p0 / quads..p1.div_ceil(quads) {
            let (q0, q1) = (p0.max(b * quads) - b * quads, p1.min((b + 1) * quads) - b * quads);
            // SAFETY: this part owns these pixels of every block of image b.
            unsafe { self.span(&cx, b, q0 * QUAD..(q1 * QUAD).min(hw), 0..n, scaled) };
        }
    }
}

/// What every span of a run reads and writes.
struct Span<'a> {
    x: &'a [f32],
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    residual: Option<&'a [f32]>,
    scale: Option<&'a [f32]>,
    y: *mut f32,
    /// The AVX2 tiles run, with this activation in registers.
    simd: bool,
    pw: Option<PwAct>,
}

impl BlockedPointwise {
    /// Output groups `which` (their indices in [`groups`]) over `pixels` of image `b`: chunk by chunk of
    /// pixels, each group's tiles over the chunk.
    ///
    /// # Safety
    /// The run contract (buffers checked in `run`); the caller owns these
    /// pixels of these groups' blocks.
    unsafe fn span(&self, cx: &Span, b: usize, pixels: Range<usize>, which: Range<usize>, scaled: &mut [f32]) {
        let (k, m, hw) = (self.in_channels as usize, self.out_channels as usize, self.pixels as usize);
        let (xb, yb) = (b * k * hw, b * m * hw);
        for c0 in pixels.clone().step_by(CHUNK) {
            let c1 = (c0 + CHUNK).min(pixels.end);
            for (g, v) in groups(m / BLOCK).skip(which.start).take(which.len()) {
                let at = yb + g * BLOCK * hw;
                let mut wg = &cx.w[g * BLOCK * k..][..v * BLOCK * k];
                if let Some(s) = cx.scale {
                    let lanes = v * BLOCK;
                    for (kk, (dst, src)) in scaled.chunks_exact_mut(lanes).zip(wg.chunks_exact(lanes)).enumerate() {
                        let f = s[b * k + kk];
                        dst.iter_mut().zip(src).for_each(|(d, &x)| *d = x * f);
                    }
                    wg = &scaled[..lanes * k];
                }
                let mut p = c0;
                while p < c1 {
                    // In bounds of the buffers `run` checked.
                    let t = Tile {
                        x: cx.x.as_ptr().wrapping_add(xb + p * BLOCK),
                        xs: hw * BLOCK,
                        w: wg.as_ptr(),
                        kb: k / BLOCK,
                        bias: cx.bias.map_or(std::ptr::null(), |bv| bv.as_ptr().wrapping_add(g * BLOCK)),
                        residual: cx.residual.map_or(std::ptr::null(), |r| r.as_ptr().wrapping_add(at + p * BLOCK)),
                        y: cx.y.wrapping_add(at + p * BLOCK),
                        ys: hw * BLOCK,
                    };
                    // SAFETY: the caller owns these pixels of the group's
                    // blocks; the tile stays inside them.
                    p += unsafe { self.tile(cx.simd, cx.pw, t, v, c1 - p) };
                }
                if cx.pw.is_none() || !cx.simd {
                    // The activations the tiles leave: once a block of the
                    // chunk, while its lines are in cache (a call a tile
                    // cost EfficientNet-B0's SiLU expansions 1.3-1.5×).
                    for blk in 0..v {
                        // SAFETY: pixels c0..c1 of this output block, the caller's.
                        let ys = unsafe { std::slice::from_raw_parts_mut(cx.y.add(at + blk * hw * BLOCK + c0 * BLOCK), (c1 - c0) * BLOCK) };
                        crate::epilogue::activate_in_place(self.epilogue.activation, ys);
                    }
                }
            }
        }
    }

    /// Whether the AVX2 tiles run (an AVX-512 artifact runs them too).
    fn simd(&self) -> bool {
        self.isa != Isa::Generic && Isa::Avx2.available()
    }

    /// Runs one tile of `v` blocks and up to `n` pixels, with the
    /// activation `pw` in registers (SIMD tiles only); returns its pixels.
    ///
    /// # Safety
    /// `t`'s pointers cover the tile; the caller owns its outputs.
    unsafe fn tile(&self, simd: bool, pw: Option<PwAct>, t: Tile, v: usize, n: usize) -> usize {
        if simd {
            // SAFETY: the CPU has AVX2 and FMA (`simd`); the caller's contract.
            unsafe { simd_tile(t, v, n, pw) }
        } else {
            let done = n.min(6);
            // SAFETY: the caller's contract.
            unsafe { portable_tile(t, v, done) };
            done
        }
    }
}

/// The tile in plain Rust: `n` pixels by `v` blocks; no activation.
///
/// # Safety
/// As [`BlockedPointwise::tile`].
unsafe fn portable_tile(t: Tile, v: usize, n: usize) {
    let lanes = v * BLOCK;
    for p in 0..n {
        for o in 0..lanes {
            let (blk, lane) = (o / BLOCK, o % BLOCK);
            let mut s = 0.0f32;
            for kk in 0..t.kb * BLOCK {
                // SAFETY: the caller's contract: input block kk / 8 of pixel p, weight row kk.
                unsafe { s += *t.x.add((kk / BLOCK) * t.xs + p * BLOCK + kk % BLOCK) * *t.w.add(kk * lanes + o) };
            }
            // SAFETY: as above.
            unsafe {
                if !t.bias.is_null() {
                    s += *t.bias.add(o);
                }
                let at = blk * t.ys + p * BLOCK + lane;
                if !t.residual.is_null() {
                    s += *t.residual.add(at);
                }
                *t.y.add(at) = s;
            }
        }
    }
}

/// The AVX2 tile for `v` blocks, as wide as `n` allows; returns its pixels.
///
/// # Safety
/// AVX2 and FMA; as [`BlockedPointwise::tile`].
#[cfg(target_arch = "x86_64")]
unsafe fn simd_tile(t: Tile, v: usize, n: usize, act: Option<PwAct>) -> usize {
    macro_rules! pick {
        ($v:literal: $($p:literal)+) => {
            match n {
                $( n if n >= $p => {
                    // SAFETY: the caller's contract, for a tile of at most n pixels.
                    unsafe { avx2::tile::<$p, $v>(t, act) };
                    $p
                } )+
                _ => 0,
            }
        };
    }
    match v {
        1 => pick!(1: 8 4 2 1),
        2 => pick!(2: 6 4 2 1),
        _ => pick!(3: 4 3 2 1),
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn simd_tile(_: Tile, _: usize, _: usize, _: Option<PwAct>) -> usize {
    unreachable!("no SIMD tiles off x86-64")
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Tile, BLOCK};
    use crate::packed::PwAct;
    use std::arch::x86_64::*;

    /// `P` pixels × `V` blocks over all input blocks, then the epilogue.
    ///
    /// # Safety
    /// AVX2 + FMA; `t` covers the tile.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile<const P: usize, const V: usize>(t: Tile, act: Option<PwAct>) {
        let mut acc = [[_mm256_setzero_ps(); V]; P];
        let mut wp = t.w;
        for b in 0..t.kb {
            // SAFETY: input block b of the tile's pixels, and its 8 weight rows.
            unsafe {
                let xb = t.x.add(b * t.xs);
                // The next tile's pixels of this block, for the next pass over it.
                _mm_prefetch(xb.add(P * BLOCK) as *const i8, _MM_HINT_T0);
                _mm_prefetch(xb.add(P * BLOCK + 16) as *const i8, _MM_HINT_T0);
                for kk in 0..BLOCK {
                    let wv: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(wp.add(BLOCK * v)));
                    wp = wp.add(BLOCK * V);
                    for (p, row) in acc.iter_mut().enumerate() {
                        let a = _mm256_broadcast_ss(&*xb.add(p * BLOCK + kk));
                        for v in 0..V {
                            row[v] = _mm256_fmadd_ps(a, wv[v], row[v]);
                        }
                    }
                }
            }
        }
        for v in 0..V {
            // SAFETY: the group's biases; the tile's residual and output vectors.
            unsafe {
                let bias = if t.bias.is_null() { _mm256_setzero_ps() } else { _mm256_loadu_ps(t.bias.add(BLOCK * v)) };
                for (p, row) in acc.iter().enumerate() {
                    let at = v * t.ys + p * BLOCK;
                    let mut s = _mm256_add_ps(row[v], bias);
                    if !t.residual.is_null() {
                        s = _mm256_add_ps(s, _mm256_loadu_ps(t.residual.add(at)));
                    }
                    if let Some(a) = act {
                        s = crate::packed::act_avx2(s, a);
                    }
                    _mm256_storeu_ps(t.y.add(at), s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
