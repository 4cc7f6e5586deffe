//! Packed GEMM: `C[M×N] = A[M×K] · B[K×N]` with a register-tile microkernel
//! per instruction set and the conv epilogue (row bias, residual, activation)
//! applied to each tile while it is in registers.
//!
//! Layouts (see [`pack`]):
//! - A (the weights) is packed at generate into row panels of `MR` rows,
//!   K block after K block: `[K block][ceil(M/MR)][kc][MR]`, rows past M
//!   zero ([`pack::PackedA`]). A microkernel reads one panel's `kc` columns
//!   as one run, and a row block's panels follow each other in memory.
//! - B (the activations) is packed at run time, one `KC × NC` block at a time,
//!   into column panels of `NR` columns in the cluster's scratch:
//!   `[ceil(nc/NR)][kc][NR]`, columns past the block zero.
//!
//! Blocking ([`KC`], [`MC`], [`NC`]): a `KC × NR` B panel (32 KiB at most)
//! stays in the 48 KiB L1 while the `MC / MR` A panels of the current row
//! block stream past it from L2 (`MC × KC` = 240 KiB); the packed `KC × NC` B
//! block (480 KiB) stays in L2 across the row blocks; a shallow GEMM's
//! block is as many columns wider as it is shallower ([`block_columns`]).
//! K is cut into blocks
//! of equal depth (at most KC: no shallow last block), A's packing blocks;
//! a GEMM whose columns make one wide tile (below) cuts at most
//! [`KC_WIDE`] deep, so that its 48-column B panel fits L1 ([`k_block`]).
//! Partial sums cross K
//! blocks through C itself (the first block stores, later ones add); the
//! epilogue runs with the last K block. The SIMD tiles prefetch their A
//! panel a few steps ahead and their C (and residual) lines before the K loop.
//!
//! Tiles: AVX-512 8×32 (16 zmm accumulators + 2 B vectors + 1 broadcast:
//! 16 FMAs per 2 loads and 8 broadcasts, enough independent chains to hide
//! the 4-cycle FMA latency on two ports; hot in L1 it runs at ~203-215
//! GFLOP/s of the core's ~240; in standalone loops 12×32 measured no
//! better and 13×32 or 14×32 ~5 % better, while wasting rows on the
//! power-of-two channel counts; MR = 8 is built into the narrow columns
//! and the Winograd and fused pointwise paths), AVX2+FMA 6×16
//! (12 ymm accumulators of 16 registers), portable 4×8 (plain Rust the
//! compiler vectorises). Edge tiles (M or N remainders) run the same
//! microkernel and merge only their valid rows and columns (masked vector
//! loads and stores); a tile of at most one vector's columns computes only
//! that vector, and (AVX2, AVX-512) 1 to 4 columns past a vector run as
//! column products. With AVX-512, a last panel of at most a vector and four
//! columns joins the full panel before it in one wide 8×48 tile (24
//! accumulators; the rest as column products): on 7×7 maps (32 + 17
//! columns) and 28×28 ones (… + 16) its half-width tile had half the
//! independent sums (ResNet-50's layer4 7-13 % faster; as one tile of the
//! whole GEMM, 8×48 measured no better than 8×32 and wasted columns).

pub mod pack;

#[cfg(target_arch = "x86_64")]
mod micro_avx2;
#[cfg(target_arch = "x86_64")]
mod micro_avx512;
mod micro_generic;

#[cfg(test)]
pub(crate) mod tests;

use crate::Activation;
use std::ops::Range;
use serde::{Deserialize, Serialize};

/// Depth of a K block: rows of a B panel kept in L1.
pub const KC: usize = 256;
/// Depth of a K block for a GEMM whose columns make one wide tile
/// ([`k_block`]).
pub const KC_WIDE: usize = 128;
/// Rows of A per row block (a multiple of every MR), kept in L2.
pub const MC: usize = 240;
/// Columns of B per packed block, kept in L2. 480 (was 384): a 28×28
/// map's 784 columns split over two clusters give one 400, which at 384
/// made two column blocks of 224 and 176, each gathering all of B's
/// stride-2 phases and streaming all of A again (ResNet-50's 3×3/2 on
/// 56×56: that half ran 16 % over its share of the work, the other
/// cluster waited at the barrier).
pub const NC: usize = 480;

/// The instruction set a packed kernel runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Isa {
    /// Plain Rust, any CPU.
    Generic,
    /// AVX2 + FMA (x86-64-v3).
    Avx2,
    /// AVX-512F (x86-64-v4).
    Avx512,
}

impl Isa {
    /// Every ISA, portable first.
    pub const ALL: [Isa; 3] = [Isa::Generic, Isa::Avx2, Isa::Avx512];

    /// The suffix of kernel names (`avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Rows of the register tile (and of A's packed panels).
    pub fn mr(self) -> usize {
        match self {
            Isa::Generic => micro_generic::MR,
            Isa::Avx2 => 6,
            Isa::Avx512 => 8,
        }
    }

    /// Columns of the register tile (and of B's packed panels).
    pub fn nr(self) -> usize {
        match self {
            Isa::Generic => micro_generic::NR,
            Isa::Avx2 => 16,
            Isa::Avx512 => 32,
        }
    }

    /// Most columns the ISA's wide tile takes (0: it has none).
    pub fn wide_cols(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => <micro_avx512::Avx512 as Micro>::WIDE_COLS,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => <micro_avx2::Avx2 as Micro>::WIDE_COLS,
            _ => <micro_generic::Generic as Micro>::WIDE_COLS,
        }
    }

    /// Whether this CPU runs the ISA.
    pub fn available(self) -> bool {
        match self {
            Isa::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// An activation the SIMD tiles apply in registers: every piecewise-linear one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PwAct {
    Identity,
    /// `clamp(alpha * x + beta, lo, hi)`, times `x` when `times_x`
    /// (relu, clip, hard-sigmoid, hard-swish).
    Clamp {
        alpha: f32,
        beta: f32,
        lo: f32,
        hi: f32,
        times_x: bool,
    },
    /// `max(x, 0) + alpha * min(x, 0)`.
    Leaky {
        alpha: f32,
    },
}

impl PwAct {
    /// The activation of one value (the portable form of the in-register one).
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            PwAct::Identity => x,
            PwAct::Clamp { alpha, beta, lo, hi, times_x } => {
                let t = (x * alpha + beta).max(lo).min(hi);
                if times_x {
                    t * x
                } else {
                    t
                }
            }
            PwAct::Leaky { alpha } => x.max(0.0) + alpha * x.min(0.0),
        }
    }

    /// The in-register form of `a`, or `None` when it needs the scalar pass.
    pub(crate) fn of(a: Activation) -> Option<PwAct> {
        let clamp = |alpha, beta, lo, hi, times_x| PwAct::Clamp { alpha, beta, lo, hi, times_x };
        Some(match a {
            Activation::None => PwAct::Identity,
            Activation::Relu => clamp(1.0, 0.0, 0.0, f32::INFINITY, false),
            Activation::Clip { min, max } => clamp(1.0, 0.0, min, max, false),
            Activation::HardSigmoid { alpha, beta } => clamp(alpha, beta, 0.0, 1.0, false),
            Activation::HardSwish => clamp(1.0 / 6.0, 0.5, 0.0, 1.0, true),
            Activation::LeakyRelu { alpha } => PwAct::Leaky { alpha },
            Activation::Sigmoid | Activation::Silu | Activation::Tanh => return None,
        })
    }
}

/// What a tile does besides `A · B`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileEpi {
    /// Add the tile to what C holds (a K block after the first).
    pub accumulate: bool,
    /// Apply bias, residual and activation (the last K block).
    pub finish: bool,
    /// `MR` per-row biases, or null.
    pub bias: *const f32,
    /// The residual tile (C's layout and stride), or null.
    pub residual: *const f32,
    pub act: Activation,
    /// The A panel the GEMM runs one row block later, or null: the SIMD
    /// tiles ask for it in L2 while they compute (weights read once a frame
    /// come from memory, too far for the L1 prefetch a few steps ahead).
    pub next_a: *const f32,
    /// B's rows are read in place (an indirect tile) and the next column
    /// panel continues them: the SIMD tiles ask for its lines in L1 as they
    /// go (rows a plane apart are too many streams for the hardware
    /// prefetchers).
    pub b_ahead: bool,
}

impl TileEpi {
    /// The epilogue of the tile `r0` rows further down C (`ldc` apart).
    pub(crate) fn rows_from(&self, r0: usize, ldc: usize) -> TileEpi {
        // A null bias or residual stays null.
        let at = |p: *const f32, by: usize| if p.is_null() { p } else { p.wrapping_add(by) };
        TileEpi { bias: at(self.bias, r0), residual: at(self.residual, r0 * ldc), ..*self }
    }

    /// Plain store: no accumulation, no epilogue.
    #[cfg(test)]
    const PLAIN: TileEpi = TileEpi { accumulate: false, finish: false, bias: std::ptr::null(), residual: std::ptr::null(), act: Activation::None, next_a: std::ptr::null(), b_ahead: false };
}

/// A register-tile microkernel.
pub(crate) trait Micro {
    const MR: usize;
    const NR: usize;
    /// `C[rows×cols] (+)= A_panel · B_panel` with the epilogue `e`: the
    /// full `MR × NR` product, of which the first `rows` rows and `cols`
    /// columns are merged into C (the edge tiles mask the rest).
    ///
    /// # Safety
    /// `a` holds `kc * MR` floats, `b` `kc * NR`; `1 <= rows <= MR`,
    /// `1 <= cols <= NR`; `c` (and `e.residual`) are valid for `rows` rows
    /// of `cols` floats `ldc` apart (reads and, for `c`, writes); `e.bias`
    /// holds `rows` floats; the CPU has the ISA.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi);

    /// `n` whole tiles of one row panel side by side: tile `t` multiplies
    /// B's panel at `b + t · stride` into C's columns `t · NR..` (the
    /// residual's too), [`Micro::tile`] after tile without the driver's
    /// work between them.
    ///
    /// # Safety
    /// As [`Micro::tile`] for each of the `n` tiles (`cols = NR`), B's
    /// panels `stride` floats apart.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tiles(kc: usize, a: *const f32, b: *const f32, stride: usize, c: *mut f32, ldc: usize, rows: usize, n: usize, e: &TileEpi) {
        for t in 0..n {
            let residual = if e.residual.is_null() { e.residual } else { e.residual.wrapping_add(t * Self::NR) };
            let e = TileEpi { residual, ..*e };
            // SAFETY: the caller's contract for tile t.
            unsafe { Self::tile(kc, a, b.wrapping_add(t * stride), c.wrapping_add(t * Self::NR), ldc, rows, Self::NR, &e) };
        }
    }

    /// `n` whole-column tiles of one column panel, one under the other:
    /// tile `t` multiplies A's panel at `a + t · a_stride` into C's rows
    /// `t · MR..` (`rows` of the last, `MR` of the others), with the bias
    /// and the residual of those rows.
    ///
    /// # Safety
    /// As [`Micro::tile`] for each of the `n` tiles (`cols = NR`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn tiles_down(kc: usize, a: *const f32, a_stride: usize, b: *const f32, c: *mut f32, ldc: usize, n: usize, rows: usize, e: &TileEpi) {
        for t in 0..n {
            let e = e.rows_from(t * Self::MR, ldc);
            let rows = if t + 1 == n { rows } else { Self::MR };
            // SAFETY: the caller's contract for tile t.
            unsafe { Self::tile(kc, a.wrapping_add(t * a_stride), b, c.wrapping_add(t * Self::MR * ldc), ldc, rows, Self::NR, &e) };
        }
    }

    /// [`Micro::tiles_down`] with B's rows read as [`Micro::tile_indirect`]
    /// reads them (`cols` of each tile merged), the first tile fetching
    /// the next panel's lines if `e.b_ahead`.
    ///
    /// # Safety
    /// As [`Micro::tile_indirect`] for each of the `n` tiles.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tiles_indirect_down(kc: usize, a: *const f32, a_stride: usize, base: *const f32, offs: *const usize, c: *mut f32, ldc: usize, n: usize, rows: usize, cols: usize, e: &TileEpi) {
        for t in 0..n {
            let e = TileEpi { b_ahead: e.b_ahead && t == 0, ..e.rows_from(t * Self::MR, ldc) };
            let rows = if t + 1 == n { rows } else { Self::MR };
            // SAFETY: the caller's contract for tile t.
            unsafe { Self::tile_indirect(kc, a.wrapping_add(t * a_stride), base, offs, c.wrapping_add(t * Self::MR * ldc), ldc, rows, cols, &e) };
        }
    }

    /// [`Micro::tile`] with B's row `p` at `base + offs[p]` (an indirect
    /// convolution reading its input rows in place): all `NR` floats of
    /// each row are read, whatever `cols`.
    ///
    /// # Safety
    /// As [`Micro::tile`]; `offs` holds `kc` offsets, each `base + offs[p]`
    /// valid for `NR` floats.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_indirect(kc: usize, a: *const f32, base: *const f32, offs: *const usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi);

    /// [`Micro::tile`] over all `NR` columns with B's row `p` read in
    /// place at `src + p · ld` and copied, as it is read, to the packed
    /// panel at `dst` (`kc` rows of `NR`) that the next tiles read.
    ///
    /// # Safety
    /// As [`Micro::tile`] with `cols = NR`; each `src + p · ld` is valid for
    /// `NR` floats and `dst` for writing `kc · NR`, apart from them.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_packing(kc: usize, a: *const f32, src: *const f32, ld: usize, dst: *mut f32, c: *mut f32, ldc: usize, rows: usize, e: &TileEpi);

    /// Whether a column block's narrow last panel (1 to [`NARROW_COLS`]
    /// columns) runs across row panels by [`Micro::narrow_rows`] rather
    /// than as each row panel's own tile.
    const NARROW_ROWS: bool = false;

    /// `C[rows × n] (+)= A · B` with the epilogue `e`, for the consecutive
    /// row panels `a` (each `kc * MR` floats, `rows` rows in all: the last
    /// panel may be partial) and the first `n <= NARROW_COLS` columns of the
    /// B panel `b` (`kc` rows of `NR`). Panel `g`'s rows start `g · MR` rows
    /// into C, the bias and the residual.
    ///
    /// # Safety
    /// As [`Micro::tile`] for `rows` rows of `n` columns; `1 <= a.len() <= 8`;
    /// the CPU has the ISA.
    #[allow(clippy::too_many_arguments)]
    unsafe fn narrow_rows(kc: usize, a: &[*const f32], b: *const f32, n: usize, c: *mut f32, ldc: usize, rows: usize, e: &TileEpi) {
        for (g, &ap) in a.iter().enumerate() {
            let r0 = g * Self::MR;
            let e = e.rows_from(r0, ldc);
            // SAFETY: the caller's contract, one panel at a time.
            unsafe { Self::tile(kc, ap, b, c.add(r0 * ldc), ldc, Self::MR.min(rows - r0), n, &e) };
        }
    }

    /// Most columns [`Micro::tile_wide`] takes as one tile (three vectors and
    /// a narrow tail), or 0 where the ISA lacks the registers for it.
    const WIDE_COLS: usize = 0;

    /// [`Micro::tile`] over two adjacent B panels, `NR < cols <= WIDE_COLS`
    /// columns: the first panel at `b`, the second `stride` floats after.
    /// A last panel of a vector's columns or less then runs with its
    /// neighbour at the full tile's rate instead of as a tile of its own
    /// with half the independent sums (7×7 maps: 32 + 17 columns).
    ///
    /// # Safety
    /// As [`Micro::tile`] with the two panels at `b` and `b + stride`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_wide(kc: usize, a: *const f32, b: *const f32, stride: usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi) {
        // SAFETY: the caller's contract.
        unsafe { two_tiles::<Self>(kc, a, b, stride, c, ldc, rows, cols, e) }
    }
}

/// [`Micro::tile_wide`] as two tiles, one panel at a time.
///
/// # Safety
/// As [`Micro::tile_wide`].
#[allow(clippy::too_many_arguments)]
unsafe fn two_tiles<M: Micro + ?Sized>(kc: usize, a: *const f32, b: *const f32, stride: usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi) {
    let residual = if e.residual.is_null() { e.residual } else { e.residual.wrapping_add(M::NR) };
    // SAFETY: the caller's contract, one panel at a time.
    unsafe {
        M::tile(kc, a, b, c, ldc, rows, M::NR, e);
        M::tile(kc, a, b.add(stride), c.add(M::NR), ldc, rows, cols - M::NR, &TileEpi { residual, ..*e });
    }
}

/// Merges a computed `rows × cols` tile (`tile`, `NR` apart) into C with the
/// epilogue, one value at a time: the portable kernel.
///
/// # Safety
/// As [`Micro::tile`] for `rows` rows of `cols` floats.
pub(crate) unsafe fn merge_scalar(tile: &[f32], nr: usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi) {
    for i in 0..rows {
        for j in 0..cols {
            // SAFETY: (i, j) lies inside the tile the caller vouches for.
            unsafe {
                let at = c.add(i * ldc + j);
                let mut v = tile[i * nr + j];
                if e.accumulate {
                    v += *at;
                }
                if e.finish {
                    if !e.bias.is_null() {
                        v += *e.bias.add(i);
                    }
                    if !e.residual.is_null() {
                        v += *e.residual.add(i * ldc + j);
                    }
                    v = e.act.apply(v);
                }
                *at = v;
            }
        }
    }
}

/// Applies an activation with no in-register form to a stored tile.
///
/// # Safety
/// `c` is valid for `rows` rows of `cols` floats `ldc` apart.
pub(crate) unsafe fn activate_scalar(c: *mut f32, ldc: usize, rows: usize, cols: usize, act: Activation) {
    for i in 0..rows {
        // SAFETY: row i of the tile the caller vouches for.
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), cols) };
        crate::epilogue::activate_in_place(act, row);
    }
}

/// Where B's values come from: the packer asks for runs of one row.
pub(crate) trait BSource {
    /// `dst[j] = B[k][n0 + j]` for `j < dst.len()`.
    fn fill(&self, k: usize, n0: usize, dst: &mut [f32]);

    /// `B[k][n0..n0 + len]` as a slice, when B holds it contiguously (the
    /// packer then copies it straight into the panels, with no `fill`).
    fn row(&self, _k: usize, _n0: usize, _len: usize) -> Option<&[f32]> {
        None
    }

    /// B already packed whole, `[ceil(n/NR)][K][NR]` from the call's first
    /// column (see [`pack_whole`]): the GEMM then reads its panels in place
    /// and packs nothing.
    fn packed(&self) -> Option<&[f32]> {
        None
    }

    /// Writes `B[k][n0 + j]` straight into the packed panels when the source
    /// can: column `j < len` at `dst[(j / nr) · stride + j % nr]`, zeros
    /// from `len` to the end of the last panel. Returns whether it did (the
    /// packer then copies nothing): a row built in a buffer and copied on
    /// stalled on store forwarding when its stores were masked.
    fn fill_panels(&self, _k: usize, _n0: usize, _len: usize, _nr: usize, _dst: &mut [f32], _stride: usize) -> bool {
        false
    }

    /// B as a strided matrix in memory, when it lies so: the floats from
    /// `B[0][0]` on and the distance between rows. The GEMM then packs a
    /// whole panel as the first tile over it reads it in place, instead of
    /// in a pass of its own (which waited on memory with no products to
    /// hide it behind).
    fn strided(&self) -> Option<(&[f32], usize)> {
        None
    }
}

/// Floats of B packed whole for `isa`: `ceil(n/NR)` panels of `k × NR`.
pub fn packed_whole_len(isa: Isa, k: usize, n: usize) -> usize {
    n.div_ceil(isa.nr()) * k * isa.nr()
}

/// Packs panels `panels` of B (`k × n`, from `b`) whole into `dst`, which
/// holds those panels of the [`packed_whole_len`] floats: panel `p` is
/// `[k][NR]` at `(p − panels.start)·k·NR`, columns past `n` zero. A GEMM
/// whose B source returns all the panels from [`BSource::packed`] reads
/// them in place.
pub(crate) fn pack_whole(isa: Isa, b: &impl BSource, k: usize, n: usize, panels: Range<usize>, dst: &mut [f32]) {
    const CHUNK: usize = 512;
    let nr = isa.nr();
    let first = panels.start;
    // Rows of up to CHUNK columns (whole panels) at a time: one `fill` per
    // row run, dealt out to the panels as pack_b does.
    let per_chunk = CHUNK / nr;
    let mut buf = [0.0f32; CHUNK];
    for p0 in panels.clone().step_by(per_chunk) {
        let p1 = (p0 + per_chunk).min(panels.end);
        let (c0, c1) = (p0 * nr, (p1 * nr).min(n));
        let (len, padded) = (c1 - c0, (p1 - p0) * nr);
        for kk in 0..k {
            // Each panel's line 8 rows on, asked for writing: the packed B of
            // an im2col step lies where the other cluster last wrote, and
            // every store waited for that core to give its line up
            // (Inception v2's ten packing layers at 2 clusters: 100-230 µs
            // faster each with it, in turns in one process on Zen 3; with B
            // hot in this core's cache the prefetches cost 0-5 %).
            #[cfg(target_arch = "x86_64")]
            if kk + 8 < k {
                for i in 0..p1 - p0 {
                    prefetch_write(dst.as_ptr().wrapping_add(((p0 + i - first) * k + kk + 8) * nr));
                }
            }
            if b.fill_panels(kk, c0, len, nr, &mut dst[((p0 - first) * k + kk) * nr..], k * nr) {
                continue;
            }
            // The row, zero-padded to whole panels (so every piece below is
            // a whole panel row: one fixed-size copy, no library call).
            let row: &[f32] = match b.row(kk, c0, len) {
                Some(r) if len == padded => r,
                Some(r) => {
                    buf[..len].copy_from_slice(r);
                    buf[len..padded].fill(0.0);
                    &buf[..padded]
                }
                None => {
                    b.fill(kk, c0, &mut buf[..len]);
                    buf[len..padded].fill(0.0);
                    &buf[..padded]
                }
            };
            for (i, piece) in row.chunks_exact(nr).enumerate() {
                let at = &mut dst[((p0 + i - first) * k + kk) * nr..][..nr];
                match (<&mut [f32; 32]>::try_from(&mut *at), <&[f32; 32]>::try_from(piece)) {
                    (Ok(a), Ok(p)) => *a = *p,
                    _ => at.copy_from_slice(piece),
                }
            }
        }
    }
}

/// B as a row-major matrix with row stride `ld` (the tests' source; the
/// Gemm/MatMul path will use it).
#[cfg(test)]
pub(crate) struct Matrix<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    /// Offer [`BSource::strided`].
    pub strided: bool,
    /// Offer [`BSource::row`] (else the packer asks for `fill` runs, as
    /// for an im2col source).
    pub rows: bool,
}

#[cfg(test)]
impl BSource for Matrix<'_> {
    fn fill(&self, k: usize, n0: usize, dst: &mut [f32]) {
        dst.copy_from_slice(&self.data[k * self.ld + n0..][..dst.len()]);
    }

    fn row(&self, k: usize, n0: usize, len: usize) -> Option<&[f32]> {
        self.rows.then(|| &self.data[k * self.ld + n0..][..len])
    }

    fn strided(&self) -> Option<(&[f32], usize)> {
        self.strided.then_some((self.data, self.ld))
    }
}

/// One GEMM: the rows and columns of C it computes and the epilogue.
pub(crate) struct GemmCall<'a> {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Packed A, from the first row panel of this call.
    pub a: pack::PackedA<'a>,
    /// C's first element; row `i` starts `i * ldc` further.
    pub c: *mut f32,
    pub ldc: usize,
    /// `m` per-row biases.
    pub bias: Option<&'a [f32]>,
    /// The residual's element matching C's first, or null (same stride).
    pub residual: *const f32,
    pub act: Activation,
}

/// The deepest K block for packed weights that multiply `n` columns (the
/// GEMM's columns for the whole layer, whatever part a cluster runs): the
/// weights are packed in blocks of this depth at generate and the kernel
/// reads them with the same, so both ends call this.
///
/// A GEMM whose columns make one wide tile (37 to 52 on AVX-512: the 49 of
/// a 7×7 map) reads 48 columns of B a step; at KC deep its B panel (48
/// KiB) and A's panel do not fit L1 together, and every row panel reread B
/// from L2. At KC_WIDE they do: M=512 K=4608 N=49 134 → 148-153 GFLOP/s,
/// M=2048 K=512 N=49 136 → 156, while 36, 64, 81 or 144 columns gain
/// nothing (the packed speed test, interleaved).
pub fn k_block(isa: Isa, n: usize) -> usize {
    if n > isa.nr() + NARROW_COLS && n <= isa.wide_cols() {
        KC_WIDE
    } else {
        KC
    }
}

/// The most columns of a packed B block for a GEMM of depth `k`: [`NC`],
/// or for one shallow enough to run row panel by row panel, as many as fit
/// the same `KC × NC` floats. Each row panel writes its C rows one block
/// wide: 16 → 96 channels over 112×112 (K = 16) wrote 96 rows of 480
/// floats a block, runs too short for the prefetchers; with blocks of
/// 3200 columns its median went 1.20-1.27 → 0.78-0.95 ms (Zen 3).
pub fn block_columns(k: usize) -> usize {
    if k <= ROWS_OUTER_DEPTH {
        KC * NC / k.max(1)
    } else {
        NC
    }
}

/// Floats of B block scratch a GEMM of depth `k` over `n` columns needs.
pub fn scratch_floats(isa: Isa, k: usize, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    k.min(KC) * n.min(block_columns(k)).next_multiple_of(isa.nr())
}

/// Runs a GEMM with the ISA's microkernel.
///
/// # Safety
/// C (and the residual) are valid for `m` rows of `n` floats `ldc` apart and
/// no one else touches C's elements meanwhile; `a` holds the packed panels
/// covering `m` rows; `scratch` holds [`scratch_floats`]; the CPU has `isa`.
pub(crate) unsafe fn gemm(isa: Isa, call: &GemmCall, b: &impl BSource, scratch: &mut [f32]) {
    assert!(isa.available(), "the packed kernel needs {}, which this CPU lacks", isa.name());
    assert!(call.a.panels() >= call.m.div_ceil(isa.mr()), "packed A holds fewer than the call's {} rows", call.m);
    assert_eq!(call.a.k(), call.k, "packed A's depth");
    // SAFETY: the caller's contract; the ISA is present (checked above).
    unsafe {
        match isa {
            Isa::Generic => gemm_with::<micro_generic::Generic>(call, b, scratch),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => gemm_with::<micro_avx2::Avx2>(call, b, scratch),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => gemm_with::<micro_avx512::Avx512>(call, b, scratch),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("checked by available()"),
        }
    }
}

/// `C = A · B` (no epilogue) for a GEMM of one K block whose B is packed
/// whole (`b`: panel `p` of `k · NR` floats at `p · k · NR`), tile after
/// tile: row panel by row panel, each across the column panels. `n` may
/// round the columns up to whole panels where C holds them (their B
/// columns zero): every tile is then whole.
///
/// Winograd's 36 GEMMs a block are this shallow (K = the input channels,
/// 16 on SqueezeNet's first layers) and small (64 rows × 80 columns): the
/// general driver's blocking, narrow-column and prefetch logic cost as much
/// as a tile's 16 steps.
///
/// # Safety
/// `c` is valid for `m` rows of `n` floats `ldc` apart, no one else's
/// meanwhile; `a` holds the packed panels of `m` rows, one K block of
/// `k`; `b` holds `n.div_ceil(NR)` panels; the CPU has `isa`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_shallow(isa: Isa, a: &pack::PackedA, b: &[f32], k: usize, m: usize, n: usize, c: *mut f32, ldc: usize) {
    assert!(isa.available(), "the packed kernel needs {}, which this CPU lacks", isa.name());
    assert!(a.panels() >= m.div_ceil(isa.mr()) && a.k() == k && a.blocks().count() <= 1, "gemm_shallow takes one K block of A");
    assert!(b.len() >= n.div_ceil(isa.nr()) * k * isa.nr(), "gemm_shallow: B's panels");
    // SAFETY: the caller's contract; the ISA is present (checked above).
    unsafe {
        match isa {
            Isa::Generic => gemm_shallow_with::<micro_generic::Generic>(a, b, k, m, n, c, ldc),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => gemm_shallow_with::<micro_avx2::Avx2>(a, b, k, m, n, c, ldc),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => gemm_shallow_with::<micro_avx512::Avx512>(a, b, k, m, n, c, ldc),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("checked by available()"),
        }
    }
}

/// [`gemm_shallow`] on one microkernel.
///
/// # Safety
/// As [`gemm_shallow`] (sizes checked there).
unsafe fn gemm_shallow_with<M: Micro>(a: &pack::PackedA, b: &[f32], k: usize, m: usize, n: usize, c: *mut f32, ldc: usize) {
    let e = TileEpi { accumulate: false, finish: false, bias: std::ptr::null(), residual: std::ptr::null(), act: Activation::None, next_a: std::ptr::null(), b_ahead: false };
    let whole = n / M::NR;
    for i in 0..m.div_ceil(M::MR) {
        let ap = a.panel(i, 0, k).as_ptr();
        let rows = M::MR.min(m - i * M::MR);
        let ci = c.wrapping_add(i * M::MR * ldc);
        // The whole tiles in one call (Micro::tiles: F(2×2) layers of 16 to
        // 64 channels 2-15 % faster, alternated), then a partial last one.
        // SAFETY: panels 0..whole of B (k · NR floats each, checked by the
        // caller); their tiles lie inside C (the caller's contract).
        unsafe { M::tiles(k, ap, b.as_ptr(), k * M::NR, ci, ldc, rows, whole, &e) };
        if whole * M::NR < n {
            // SAFETY: the last panel of B; its rows × the last columns lie inside C.
            unsafe { M::tile(k, ap, b.as_ptr().add(whole * k * M::NR), ci.add(whole * M::NR), ldc, rows, n - whole * M::NR, &e) };
        }
    }
}


/// The in-register form of an activation on one AVX2 vector, for kernels
/// outside the packed GEMM's tiles (the grouped convolution's).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn act_avx2(x: std::arch::x86_64::__m256, a: PwAct) -> std::arch::x86_64::__m256 {
    micro_avx2::Avx2::act(x, a)
}

/// One [`Micro::tile_indirect`] tile with the ISA's microkernel.
///
/// # Safety
/// As [`Micro::tile_indirect`] for `isa`'s `MR` and `NR`; the CPU has `isa`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile_indirect(isa: Isa, kc: usize, a: *const f32, base: *const f32, offs: *const usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi) {
    // SAFETY: the caller's contract.
    unsafe {
        match isa {
            Isa::Generic => micro_generic::Generic::tile_indirect(kc, a, base, offs, c, ldc, rows, cols, e),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => micro_avx2::Avx2::tile_indirect(kc, a, base, offs, c, ldc, rows, cols, e),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => micro_avx512::Avx512::tile_indirect(kc, a, base, offs, c, ldc, rows, cols, e),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("no SIMD ISA off x86-64"),
        }
    }
}

/// [`Micro::tiles_indirect_down`] with the ISA's microkernel.
///
/// # Safety
/// As [`Micro::tiles_indirect_down`] for `isa`'s `MR` and `NR`; the CPU has `isa`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tiles_indirect_down(isa: Isa, kc: usize, a: *const f32, a_stride: usize, base: *const f32, offs: *const usize, c: *mut f32, ldc: usize, n: usize, rows: usize, cols: usize, e: &TileEpi) {
    // SAFETY: the caller's contract.
    unsafe {
        match isa {
            Isa::Generic => micro_generic::Generic::tiles_indirect_down(kc, a, a_stride, base, offs, c, ldc, n, rows, cols, e),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => micro_avx2::Avx2::tiles_indirect_down(kc, a, a_stride, base, offs, c, ldc, n, rows, cols, e),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => micro_avx512::Avx512::tiles_indirect_down(kc, a, a_stride, base, offs, c, ldc, n, rows, cols, e),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("no SIMD ISA off x86-64"),
        }
    }
}

/// Packs B rows `k0..k0+kc`, columns `n0..n0+nc` into NR-column panels:
/// each row of the block is taken in runs of up to [`NC`] columns (B's own
/// row, or one `fill` a run) and dealt out to the panels in NR-float
/// pieces, the last one padded with zeros.
fn pack_b<M: Micro>(b: &impl BSource, k0: usize, kc: usize, n0: usize, nc: usize, dst: &mut [f32]) {
    let mut buf = [0.0f32; NC];
    for kk in 0..kc {
        if b.fill_panels(k0 + kk, n0, nc, M::NR, &mut dst[kk * M::NR..], kc * M::NR) {
            continue;
        }
        // The row in runs of up to NC columns (whole panels): a shallow
        // GEMM's block is wider than NC, and filling it panel by panel paid
        // the source's set-up per 16 floats (RegNet-X's 32 → 72 1×1/2 from
        // 112×112: 3136 columns in 196 fills a row).
        // Each run starts a panel (NC is a whole number of every ISA's panels).
        const { assert!(NC % M::NR == 0) };
        for c0 in (0..nc).step_by(NC) {
            let len = NC.min(nc - c0);
            let row = match b.row(k0 + kk, n0 + c0, len) {
                Some(r) => r,
                None => {
                    b.fill(k0 + kk, n0 + c0, &mut buf[..len]);
                    &buf[..len]
                }
            };
            let first = c0 / M::NR;
            let pieces = row.chunks_exact(M::NR);
            let tail = pieces.remainder();
            for (p, piece) in pieces.enumerate() {
                dst[((first + p) * kc + kk) * M::NR..][..M::NR].copy_from_slice(piece);
            }
            if !tail.is_empty() {
                let last = &mut dst[((first + len / M::NR) * kc + kk) * M::NR..][..M::NR];
                last[..tail.len()].copy_from_slice(tail);
                last[tail.len()..].fill(0.0);
            }
        }
    }
}

/// The blocked GEMM loop nest around microkernel `M`.
///
/// # Safety
/// As [`gemm`].
unsafe fn gemm_with<M: Micro>(call: &GemmCall, b: &impl BSource, scratch: &mut [f32]) {
    let (m, k, n) = (call.m, call.k, call.n);
    // Column blocks of equal width (in whole panels), at most block_columns.
    let width = n.div_ceil(n.div_ceil(block_columns(k)).max(1)).next_multiple_of(M::NR);
    let whole = b.packed();
    let strided = if whole.is_some() { None } else { b.strided() };
    for n0 in (0..n).step_by(width.max(1)) {
        let nc = width.min(n - n0);
        let panels = nc.div_ceil(M::NR);
        // A last panel narrow enough joins the one before it in a wide tile.
        let wide = panels >= 2 && nc - (panels - 2) * M::NR <= M::WIDE_COLS;
        // (No Vec of the blocks: a frame allocates nothing.)
        for (bi, (k0, kc)) in call.a.blocks().enumerate() {
            let next_block = call.a.blocks().nth(bi + 1);
            assert!(kc <= KC, "K blocks of {kc} do not fit the scratch");
            // Panel p of this block: kc rows of NR floats at bp + p * stride.
            // With a strided B, whole panels are packed by their first tile
            // (below), but for a wide tile's two.
            let by_tiles = if wide { panels - 2 } else { nc / M::NR };
            let (bp, stride): (*const f32, usize) = match whole {
                Some(w) => (w[(n0 / M::NR * k + k0) * M::NR..][..(panels - 1) * k * M::NR + kc * M::NR].as_ptr(), k * M::NR),
                None => {
                    let bp = &mut scratch[..panels * kc * M::NR];
                    match strided {
                        Some(_) if by_tiles < panels => pack_b::<M>(b, k0, kc, n0 + by_tiles * M::NR, nc - by_tiles * M::NR, &mut bp[by_tiles * kc * M::NR..]),
                        Some(_) => {}
                        None => pack_b::<M>(b, k0, kc, n0, nc, bp),
                    }
                    (bp.as_ptr(), kc * M::NR)
                }
            };
            let (first, last) = (k0 == 0, k0 + kc == k);
            // An activation with no in-register form (sigmoid, SiLU, tanh)
            // runs once over each finished block's rows, not per tile: on a
            // tile row of 32 floats its latency chain ran alone.
            let (tile_act, block_act) = match PwAct::of(call.act) {
                None if last => (Activation::None, Some(call.act)),
                _ => (call.act, None),
            };
            // A shallow block runs row panel by row panel, each across all
            // the column panels: its A panel and the block's B both stay
            // in cache, and each C row is written as one long run rather
            // than NR floats to every row of the block in turn (16 → 96
            // channels over 112×112 wrote 96 planes 64 bytes at a time).
            // The epilogue of row panel i's tile at C offset off.
            let epi = |i: usize, off: usize, next_a: *const f32| TileEpi {
                accumulate: !first,
                finish: last,
                bias: call.bias.map_or(std::ptr::null(), |bv| bv[i * M::MR..].as_ptr()),
                // SAFETY: inside the residual (same layout as C).
                residual: if call.residual.is_null() { call.residual } else { unsafe { call.residual.add(off) } },
                act: tile_act,
                next_a,
                b_ahead: false,
            };
            let rows_outer = kc <= ROWS_OUTER_DEPTH;
            // A narrow last panel left to narrow_rows (after the tiles).
            let tail = nc - (panels - 1) * M::NR;
            let narrow = M::NARROW_ROWS && !wide && tail <= NARROW_COLS;
            let col_panels = panels - usize::from(wide) - usize::from(narrow);
            // Columns the tiles of a row panel cover (all but a narrow tail).
            let tile_cols = if narrow { nc - tail } else { nc };
            for m0 in (0..m).step_by(MC) {
                let row_panels = m0 / M::MR..(m0 + MC).min(m).div_ceil(M::MR);
                let (outer, inner) = if rows_outer { (row_panels.len(), col_panels) } else { (col_panels, row_panels.len()) };
                for o in 0..outer {
                    let mut q = 0;
                    while q < inner {
                        let (p, i) = if rows_outer { (q, row_panels.start + o) } else { (o, row_panels.start + q) };
                        // A shallow row panel's whole tiles past its first (no A
                        // to fetch ahead, none packing B) in one call: the
                        // driver's work between tiles (the epilogue, A's panel,
                        // the next A, the dispatch) cost 16-38 % of 1×1 layers of
                        // 16 to 64 channels in (pointwise_speed, alternated).
                        let packing = strided.is_some() && m0 == 0 && i == row_panels.start;
                        // The same down a deeper block's whole column panel
                        // past its first (which fetches A ahead): 256 → 64 over
                        // 56×56 5-6 %, 512 → 128 over 28×28 4-5 % faster.
                        let whole_panel = !(wide && p + 2 == panels) && (p + 1) * M::NR <= nc;
                        if !rows_outer && p > 0 && whole_panel && !(packing && p < by_tiles) {
                            let n = row_panels.end - i;
                            let off = i * M::MR * call.ldc + n0 + p * M::NR;
                            let e = epi(i, off, std::ptr::null());
                            let a0 = call.a.panel(i, k0, kc).as_ptr();
                            let a_stride = if n > 1 { call.a.panel(i + 1, k0, kc).as_ptr() as usize - a0 as usize } else { 0 } / 4;
                            let last = M::MR.min(m - (row_panels.end - 1) * M::MR);
                            // SAFETY: row panels i.. of column panel p lie inside C; A's panels are a_stride apart.
                            unsafe { M::tiles_down(kc, a0, a_stride, bp.add(p * stride), call.c.add(off), call.ldc, n, last, &e) };
                            q += n;
                            continue;
                        }
                        if rows_outer && p > 0 && !packing {
                            let whole = if wide { panels - 2 } else { (nc / M::NR).min(col_panels) };
                            let n = whole.saturating_sub(p);
                            if n > 0 {
                                let off = i * M::MR * call.ldc + n0 + p * M::NR;
                                let e = epi(i, off, std::ptr::null());
                                // SAFETY: tiles p..p + n of row panel i lie inside C; panels kc deep.
                                unsafe { M::tiles(kc, call.a.panel(i, k0, kc).as_ptr(), bp.add(p * stride), stride, call.c.add(off), call.ldc, M::MR.min(m - i * M::MR), n, &e) };
                                q += n;
                                continue;
                            }
                        }
                        q += 1;
                        let joined = wide && p + 2 == panels;
                        let cols = if joined { nc - p * M::NR } else { M::NR.min(nc - p * M::NR) };
                        let rows = M::MR.min(m - i * M::MR);
                        let off = i * M::MR * call.ldc + n0 + p * M::NR;
                        // The first column panel streams A from memory, a
                        // panel per tile: meanwhile ask for the next panel's
                        // block (after the last panel, the next K block's
                        // first) in L2.
                        let next_a = match (p, next_block) {
                            (0, _) if i + 1 < m.div_ceil(M::MR) => Some(call.a.panel(i + 1, k0, kc)),
                            (0, Some((k1, kc1))) => Some(call.a.panel(0, k1, kc1)),
                            _ => None,
                        };
                        let e = epi(i, off, next_a.map_or(std::ptr::null(), |a| a.as_ptr()));
                        let a = call.a.panel(i, k0, kc).as_ptr();
                        // SAFETY: panel p of the block (panels · stride floats, sized above).
                        let bpp = unsafe { bp.add(p * stride) };
                        // SAFETY: the tile lies inside C (rows < m, cols < n).
                        let c = unsafe { call.c.add(off) };
                        match strided {
                            Some((src, ld)) if m0 == 0 && i == row_panels.start && p < by_tiles => {
                                let src = &src[k0 * ld + n0 + p * M::NR..];
                                assert!((kc - 1) * ld + M::NR <= src.len(), "strided B rows");
                                // SAFETY: rows × NR lies inside C; B's rows checked above; the
                                // panel's scratch (kc · NR floats at bpp) is no one else's.
                                unsafe { M::tile_packing(kc, a, src.as_ptr(), ld, bpp.cast_mut(), c, call.ldc, rows, &e) };
                            }
                            // SAFETY: rows × cols lies inside C; panels are kc deep.
                            _ if joined => unsafe { M::tile_wide(kc, a, bpp, stride, c, call.ldc, rows, cols, &e) },
                            // SAFETY: as above.
                            _ => unsafe { M::tile(kc, a, bpp, c, call.ldc, rows, cols, &e) },
                        }
                    }
                    if let (Some(act), true) = (block_act, rows_outer) {
                        // A shallow block's row panel is finished here, its C
                        // rows still in L2: 16 → 96 channels over 112×112 made
                        // a block of 240 rows × 7680 columns (7.4 MB), and SiLU
                        // over it from memory took longer than the product.
                        let i = row_panels.start + o;
                        // SAFETY: rows i·MR.. of columns n0..n0 + tile_cols lie inside C, finished.
                        unsafe { activate_scalar(call.c.wrapping_add(i * M::MR * call.ldc + n0), call.ldc, M::MR.min(m - i * M::MR), tile_cols, act) };
                    }
                }
                if narrow {
                    let p = panels - 1;
                    // SAFETY: panel p of the block, as the tiles' above.
                    let bpp = unsafe { bp.add(p * stride) };
                    for i0 in row_panels.clone().step_by(NARROW_GROUP) {
                        let i1 = (i0 + NARROW_GROUP).min(row_panels.end);
                        let mut a = [std::ptr::null(); NARROW_GROUP];
                        for (g, ap) in a.iter_mut().enumerate().take(i1 - i0) {
                            *ap = call.a.panel(i0 + g, k0, kc).as_ptr();
                        }
                        let off = i0 * M::MR * call.ldc + n0 + p * M::NR;
                        let e = epi(i0, off, std::ptr::null());
                        // SAFETY: rows i0·MR.. of the tail columns lie inside C; the panels are kc deep.
                        unsafe { M::narrow_rows(kc, &a[..i1 - i0], bpp, tail, call.c.add(off), call.ldc, (i1 * M::MR).min(m) - i0 * M::MR, &e) };
                    }
                }
                if let Some(act) = block_act {
                    let rows = MC.min(m - m0);
                    // Row panel by row panel above, but for the columns past them.
                    let done = if rows_outer { tile_cols } else { 0 };
                    let c = call.c.wrapping_add(m0 * call.ldc + n0 + done);
                    // SAFETY: rows m0.. of columns n0 + done..n0 + nc lie inside C, all
                    // finished; when they span whole rows they are one run.
                    unsafe {
                        if nc == call.ldc && done == 0 {
                            activate_scalar(c, rows * nc, 1, rows * nc, act);
                        } else if done < nc {
                            activate_scalar(c, call.ldc, rows, nc - done, act);
                        }
                    }
                }
            }
        }
    }
}

/// K blocks at most this deep run row panel by row panel (see `gemm_with`).
const ROWS_OUTER_DEPTH: usize = 64;

/// Most row panels one [`Micro::narrow_rows`] call takes.
const NARROW_GROUP: usize = 8;

/// Most columns a [`NarrowTile`] computes.
#[cfg(target_arch = "x86_64")]
const NARROW_COLS: usize = 4;

/// `t[i · NARROW_COLS + j] = Σ_p A[p][i] · B[p][j]` for the `n <= NARROW_COLS`
/// columns of a B panel from `b` (rows `NR` apart) and an A panel of the
/// ISA's MR (≤ 8) rows, over `kc` steps: the column products a tile's
/// narrow last columns run as (see `simd_tile`).
///
/// # Safety
/// `a` holds `kc * MR` floats, `b` `kc` rows of NR floats (n read of each);
/// the CPU has the ISA it was compiled for.
#[cfg(target_arch = "x86_64")]
pub(crate) type NarrowTile = unsafe fn(usize, *const f32, *const f32, usize) -> [f32; 8 * NARROW_COLS];

/// [`NarrowTile`] for an ISA's `MR` (≤ 8) rows and `NR` columns a B row:
/// one 8-lane accumulator per column (the panel's rows), one A load and
/// one B broadcast per column and step; with fewer than 8 rows the A loads
/// are masked, so the last step reads nothing past the panels. Shared by
/// the AVX2 and AVX-512 tiles (AVX-512F implies AVX2 and FMA).
///
/// # Safety
/// As [`NarrowTile`]; the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn narrow_columns<const MR: usize, const NR: usize>(kc: usize, a: *const f32, b: *const f32, n: usize) -> [f32; 8 * NARROW_COLS] {
    // SAFETY: the caller's contract.
    unsafe {
        match n {
            1 => narrow_n::<1, MR, NR>(kc, a, b),
            2 => narrow_n::<2, MR, NR>(kc, a, b),
            3 => narrow_n::<3, MR, NR>(kc, a, b),
            _ => narrow_n::<4, MR, NR>(kc, a, b),
        }
    }
}

/// [`narrow_columns`] for `N` columns.
///
/// # Safety
/// As [`NarrowTile`] with `n = N`; the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn narrow_n<const N: usize, const MR: usize, const NR: usize>(kc: usize, a: *const f32, b: *const f32) -> [f32; 8 * NARROW_COLS] {
    use std::arch::x86_64::*;
    const { assert!(MR <= 8, "an A step is at most one 8-lane vector") };
    let rows = _mm256_cmpgt_epi32(_mm256_set1_epi32(MR as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    // Four partial sums per column (steps p mod 4): one chain per column
    // would wait on the FMA latency every step.
    let mut acc = [[_mm256_setzero_ps(); N]; 4];
    let step = |p: usize, acc: &mut [__m256; N]| {
        // SAFETY: step p < kc of both panels; columns j < N <= n of B's row.
        unsafe {
            let av = if MR == 8 { _mm256_loadu_ps(a.add(p * MR)) } else { _mm256_maskload_ps(a.add(p * MR), rows) };
            for (j, s) in acc.iter_mut().enumerate() {
                *s = _mm256_fmadd_ps(av, _mm256_set1_ps(*b.add(p * NR + j)), *s);
            }
        }
    };
    let whole = kc - kc % 4;
    for p in (0..whole).step_by(4) {
        for (u, part) in acc.iter_mut().enumerate() {
            step(p + u, part);
        }
    }
    for p in whole..kc {
        step(p, &mut acc[0]);
    }
    let mut sums = acc[0];
    for part in &acc[1..] {
        for (s, &v) in sums.iter_mut().zip(part) {
            *s = _mm256_add_ps(*s, v);
        }
    }
    let mut out = [0.0f32; 8 * NARROW_COLS];
    for (j, s) in sums.iter().enumerate() {
        let mut lanes = [0.0f32; 8];
        // SAFETY: lanes holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *s) };
        for (i, &v) in lanes.iter().enumerate().take(MR) {
            out[i * NARROW_COLS + j] = v;
        }
    }
    out
}

/// Panels ahead a packing tile asks for B's rows in L2, for vectors of
/// `lanes` floats. (AVX2: 2 panels, 32 floats; on Zen 3 a 64×576 by 3136 GEMM packing its
/// B rows 3136 floats apart 69 → 80 GFLOP/s against 1, the other shapes the
/// same. AVX-512 keeps 1 panel of 32 floats, measured on the Xeon.)
#[cfg(target_arch = "x86_64")]
const fn pack_ahead(lanes: usize) -> usize {
    if lanes == 8 {
        2
    } else {
        1
    }
}

/// K steps ahead the SIMD tiles prefetch their A panel (a few L2 latencies).
#[cfg(target_arch = "x86_64")]
const A_AHEAD: usize = 16;

/// Asks for the cache line holding `p` in L1 (a hint: never faults).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch(p: *const f32) {
    // SAFETY: prefetch is a hint and never faults, whatever the address; SSE is baseline on x86-64.
    unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast()) }
}

/// Asks for the cache line holding `p` to be written (PREFETCHW: the line
/// arrives exclusive, so the store that follows needs no second trip to
/// the core that held it; a hint: never faults).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_write(p: *const f32) {
    // SAFETY: a prefetch is a hint and never faults, whatever the address.
    unsafe { std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) };
}

/// Asks for the cache line holding `p` in L2 (a hint: never faults).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_l2(p: *const f32) {
    // SAFETY: prefetch is a hint and never faults, whatever the address; SSE is baseline on x86-64.
    unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p.cast()) }
}

/// Defines a SIMD register-tile microkernel `$name` (a [`Micro`]) of `$mr`
/// rows by two vectors of `$w` lanes, from the ISA's intrinsics. One
/// template keeps the AVX2 and AVX-512 tiles the same algorithm.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_tile {
    (
        $name:ident, $feat:literal, mr = $mr:literal, lanes = $w:literal, $vec:ty,
        zero = $zero:path, load = $load:path, store = $store:path, load_part = $load_part:path, store_part = $store_part:path, set1 = $set1:path,
        fmadd = $fmadd:path, add = $add:path, mul = $mul:path, max = $max:path, min = $min:path,
        narrow = $narrow:expr, wide = $wide:literal $(, column = $column:ident)? $(, narrow_rows = $narrow_rows:path)?
    ) => {
        /// The register tile of this ISA.
        pub(crate) struct $name;

        impl $name {
            /// Whether a wide tile's one narrow column can ride along in its K
            /// loop (`column`: its accumulator's steps, 8 rows in a half vector).
            const HAS_COLUMN: bool = false $(|| !stringify!($column).is_empty())?;

            /// The in-register activation of one vector.
            #[target_feature(enable = $feat)]
            pub(crate) fn act(x: $vec, a: PwAct) -> $vec {
                match a {
                    PwAct::Identity => x,
                    PwAct::Clamp { alpha, beta, lo, hi, times_x } => {
                        let t = $min($max($fmadd(x, $set1(alpha), $set1(beta)), $set1(lo)), $set1(hi));
                        if times_x {
                            $mul(t, x)
                        } else {
                            t
                        }
                    }
                    PwAct::Leaky { alpha } => $add($max(x, $zero()), $mul($set1(alpha), $min(x, $zero()))),
                }
            }

            /// The tile body (see [`Micro::tile`]).
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            /// `brow(p)`: B's row `p`; `panel`: B as one packed panel, when it
            /// is (the narrow column products need it).
            #[allow(clippy::too_many_arguments)]
            /// `copy`: where to copy B's rows as they are read (null: nowhere; two vectors a row).
            /// `V`: vectors of the tile (2, or 3 for a wide one whose third
            /// vector of row `p` lies `third` floats after `brow(p)`).
            unsafe fn run<const V: usize>(kc: usize, a: *const f32, brow: impl Fn(usize) -> *const f32, third: usize, panel: Option<*const f32>, copy: *mut f32, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi) {
                // C's (and the residual's) lines arrive while the K loop runs.
                for i in 0..rows {
                    // SAFETY: a prefetch of row i of the tile never faults.
                    unsafe {
                        prefetch(c.add(i * ldc));
                        prefetch(c.add(i * ldc + cols - 1));
                        if e.finish && !e.residual.is_null() {
                            prefetch(e.residual.add(i * ldc));
                            prefetch(e.residual.add(i * ldc + cols - 1));
                        }
                    }
                }
                // The residual's rows of the next column panel (the tiles a
                // panel later) in L2: the residual was written steps ago and
                // left L2, and a shallow tile's K loop is too short to wait
                // for memory (ResNet-50's 64→256 1×1 convs with the shortcut
                // added: 6-7 % faster at 1 and 2 clusters).
                if e.finish && !e.residual.is_null() {
                    for i in 0..rows {
                        prefetch_l2(e.residual.wrapping_add(i * ldc + 2 * $w));
                        prefetch_l2(e.residual.wrapping_add(i * ldc + 3 * $w));
                    }
                }
                let mut acc = [[$zero(); V]; $mr];
                // A last vector of at most NARROW_COLS columns (the tail of
                // a 7×7 map's 49 columns, or of a 14×14 map's 196) runs as a
                // few column products instead, when the ISA has them.
                let narrow: Option<NarrowTile> = $narrow;
                let vec_cols = (cols - 1) / $w * $w;
                let narrow = narrow.filter(|_| cols - vec_cols <= NARROW_COLS && panel.is_some());
                let vec_cols = if narrow.is_some() { vec_cols } else { cols };
                // A wide tile's one narrow column (a 7×7 map's 49th) rides
                // along in its K loop where the ISA has the registers: as a
                // pass of column products after the loop (one FMA per two
                // loads) it took ~14 % of the wide tiles' time.
                let col = Self::HAS_COLUMN && vec_cols == 3 * $w && narrow.is_some() && cols - vec_cols == 1 && copy.is_null();
                let col_at = (third + vec_cols).saturating_sub(2 * $w);
                // SAFETY: the caller's contract (panels kc deep).
                let column = unsafe {
                    let far = e.next_a;
                    assert!(copy.is_null() || vec_cols > $w, "a packing tile computes both vectors");
                    // 8 accumulators of 4 rows still cover the FMA latency.
                    const SHORT: usize = if $mr > 4 { 4 } else { $mr };
                    let short = rows <= SHORT && SHORT < $mr;
                    match (vec_cols.div_ceil($w), far.is_null(), copy.is_null(), col) {
                        (0, ..) => [0.0; $mr],
                        // Three vectors only in a wide tile (V = 3).
                        (3, true, _, false) => Self::k_loop::<V, V, false, false, false, { $mr }>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        (3, false, _, false) => Self::k_loop::<V, V, true, false, false, { $mr }>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        (3, true, _, true) => Self::k_loop::<V, V, false, false, true, { $mr }>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        (3, false, _, true) => Self::k_loop::<V, V, true, false, true, { $mr }>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        // A panel of at most 4 rows (a 16-row layer's last) multiplies only those.
                        (2, true, true, _) if short => Self::k_loop::<V, 2, false, false, false, SHORT>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        (2, false, true, _) if short => Self::k_loop::<V, 2, true, false, false, SHORT>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        (2, true, true, _) => Self::k_loop::<V, 2, false, false, false, { $mr }>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        (2, false, true, _) => Self::k_loop::<V, 2, true, false, false, { $mr }>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        (2, true, false, _) => Self::k_loop::<V, 2, false, true, false, { $mr }>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        (2, false, false, _) => Self::k_loop::<V, 2, true, true, false, { $mr }>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        // A tile of at most one vector's columns skips the other.
                        (_, true, ..) => Self::k_loop::<V, 1, false, false, false, { $mr }>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                        (_, false, ..) => Self::k_loop::<V, 1, true, false, false, { $mr }>(kc, a, &brow, third, far, copy, col_at, &mut acc),
                    }
                };
                let simd_act = if e.finish { PwAct::of(e.act) } else { Some(PwAct::Identity) };
                if vec_cols == V * $w {
                    // Whole columns: the same merge over constant bounds, so
                    // the accumulators stay in registers (the general loop
                    // below spilled them, which cost shallow tiles dearly),
                    // rows past `rows` skipped by a test each (a 16-row
                    // layer's last panel of 4 rows took the general loop:
                    // 7 % of a 32 → 16 pointwise layer).
                    // (Written out here rather than called: as a function of its
                    // own it was not inlined, and the 16 accumulators went
                    // through the stack on every tile.)
                    let acc = &mut acc;
                    if e.accumulate {
                        // SAFETY: off is a whole vector of row i < rows of the tile in C (the caller's contract).
                        Self::each_vector(acc, ldc, |i, off, v| if i < rows { *v = $add(*v, unsafe { $load(c.add(off)) }) });
                    }
                    if e.finish && !e.bias.is_null() {
                        // SAFETY: the bias holds the tile's rows.
                        Self::each_vector(acc, ldc, |i, _, v| if i < rows { *v = $add(*v, $set1(unsafe { *e.bias.add(i) })) });
                    }
                    if e.finish && !e.residual.is_null() {
                        // SAFETY: off is a whole vector of row i < rows of the tile in the residual.
                        Self::each_vector(acc, ldc, |i, off, v| if i < rows { *v = $add(*v, unsafe { $load(e.residual.add(off)) }) });
                    }
                    match simd_act {
                        None | Some(PwAct::Identity) => {}
                        Some(PwAct::Clamp { alpha: 1.0, beta: 0.0, lo, hi, times_x: false }) => {
                            let (lo, hi) = ($set1(lo), $set1(hi));
                            Self::each_vector(acc, ldc, |_, _, v| *v = $min($max(*v, lo), hi));
                        }
                        Some(pw) => Self::each_vector(acc, ldc, |_, _, v| *v = Self::act(*v, pw)),
                    }
                    // SAFETY: off is a whole vector of row i < rows of the tile in C.
                    Self::each_vector(acc, ldc, |i, off, v: &mut $vec| if i < rows { unsafe { $store(c.add(off), *v) } });
                } else {
                    // SAFETY: as below.
                    unsafe { Self::merge_part(&mut acc, c, ldc, rows, vec_cols, e, simd_act) };
                }
                if simd_act.is_none() {
                    // SAFETY: the tile the caller vouches for.
                    unsafe { activate_scalar(c, ldc, rows, vec_cols, e.act) };
                }
                if let (Some(tail), Some(b)) = (narrow, panel) {
                    let n = cols - vec_cols;
                    // A wide tile's last columns lie in its second panel.
                    let from = if vec_cols >= 2 * $w { b.wrapping_add(third + vec_cols - 2 * $w) } else { b.wrapping_add(vec_cols) };
                    // SAFETY: the panels hold kc rows; columns vec_cols..cols of the tile lie inside C.
                    unsafe {
                        let t = if col {
                            let mut t = [0.0f32; 8 * NARROW_COLS];
                            for (i, s) in column.into_iter().enumerate() {
                                t[i * NARROW_COLS] = s;
                            }
                            t
                        } else {
                            tail(kc, a, from, n)
                        };
                        let residual = if e.residual.is_null() { e.residual } else { e.residual.add(vec_cols) };
                        merge_scalar(&t, NARROW_COLS, c.add(vec_cols), ldc, rows, n, &TileEpi { residual, ..*e });
                    }
                }
            }

            /// [`Micro::tiles`] with the ISA's features, the tiles' bodies
            /// inlined into one loop.
            ///
            /// # Safety
            /// As [`Micro::tiles`].
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn tiles_body(kc: usize, a: *const f32, b: *const f32, stride: usize, c: *mut f32, ldc: usize, rows: usize, n: usize, e: &TileEpi) {
                for t in 0..n {
                    let residual = if e.residual.is_null() { e.residual } else { e.residual.wrapping_add(t * 2 * $w) };
                    let e = TileEpi { residual, ..*e };
                    let bt = b.wrapping_add(t * stride);
                    // SAFETY: the caller's contract for tile t.
                    unsafe { Self::run::<2>(kc, a, |p| bt.wrapping_add(p * 2 * $w), 0, Some(bt), std::ptr::null_mut(), c.wrapping_add(t * 2 * $w), ldc, rows, 2 * $w, &e) };
                }
            }

            /// [`Micro::tiles_indirect_down`] with the ISA's features, the
            /// tiles' bodies inlined into one loop.
            ///
            /// # Safety
            /// As [`Micro::tiles_indirect_down`].
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn tiles_indirect_down_body(kc: usize, a: *const f32, a_stride: usize, base: *const f32, offs: *const usize, c: *mut f32, ldc: usize, n: usize, rows: usize, cols: usize, e: &TileEpi) {
                for t in 0..n {
                    let et = TileEpi { b_ahead: false, ..e.rows_from(t * $mr, ldc) };
                    let rows = if t + 1 == n { rows } else { $mr };
                    let (at, ct) = (a.wrapping_add(t * a_stride), c.wrapping_add(t * $mr * ldc));
                    // SAFETY: the caller's contract for tile t (offs holds kc offsets).
                    unsafe {
                        if t == 0 && e.b_ahead {
                            let ahead = |p: usize| {
                                let row = base.wrapping_add(*offs.add(p));
                                prefetch(row.wrapping_add(2 * $w));
                                prefetch(row.wrapping_add(3 * $w));
                                row
                            };
                            Self::run::<2>(kc, at, ahead, 0, None, std::ptr::null_mut(), ct, ldc, rows, cols, &et)
                        } else {
                            Self::run::<2>(kc, at, |p| base.wrapping_add(*offs.add(p)), 0, None, std::ptr::null_mut(), ct, ldc, rows, cols, &et)
                        }
                    }
                }
            }

            /// [`Micro::tiles_down`] with the ISA's features, the tiles'
            /// bodies inlined into one loop.
            ///
            /// # Safety
            /// As [`Micro::tiles_down`].
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn tiles_down_body(kc: usize, a: *const f32, a_stride: usize, b: *const f32, c: *mut f32, ldc: usize, n: usize, rows: usize, e: &TileEpi) {
                for t in 0..n {
                    let e = e.rows_from(t * $mr, ldc);
                    let rows = if t + 1 == n { rows } else { $mr };
                    // SAFETY: the caller's contract for tile t.
                    unsafe { Self::run::<2>(kc, a.wrapping_add(t * a_stride), |p| b.wrapping_add(p * 2 * $w), 0, Some(b), std::ptr::null_mut(), c.wrapping_add(t * $mr * ldc), ldc, rows, 2 * $w, &e) };
                }
            }

            /// `f(row, offset in C, vector)` for every accumulator of a tile.
            #[inline(always)]
            fn each_vector<const V: usize>(acc: &mut [[$vec; V]; $mr], ldc: usize, mut f: impl FnMut(usize, usize, &mut $vec)) {
                for (i, row) in acc.iter_mut().enumerate() {
                    for (h, v) in row.iter_mut().enumerate() {
                        f(i, i * ldc + h * $w, v);
                    }
                }
            }

            /// Merges the first `rows` rows and `vec_cols` columns of a tile
            /// into C with the epilogue (masked in the last vector).
            ///
            /// # Safety
            /// C (and the residual) hold `rows` rows of `vec_cols` floats, `ldc` apart.
            #[target_feature(enable = $feat)]
            #[inline]
            #[allow(clippy::too_many_arguments)]
            unsafe fn merge_part<const V: usize>(acc: &mut [[$vec; V]; $mr], c: *mut f32, ldc: usize, rows: usize, vec_cols: usize, e: &TileEpi, simd_act: Option<PwAct>) {
                for (i, row) in acc.iter_mut().enumerate().take(rows) {
                    for (h, v) in row.iter_mut().enumerate() {
                        // Valid lanes of this vector: all but in the last columns.
                        let n = vec_cols.saturating_sub(h * $w).min($w);
                        if n == 0 {
                            break;
                        }
                        let off = i * ldc + h * $w;
                        // SAFETY: (i, h) holds n valid columns of the tile the caller vouches for.
                        unsafe {
                            if e.accumulate {
                                *v = $add(*v, Self::load_n(c.add(off), n));
                            }
                            if e.finish {
                                if !e.bias.is_null() {
                                    *v = $add(*v, $set1(*e.bias.add(i)));
                                }
                                if !e.residual.is_null() {
                                    *v = $add(*v, Self::load_n(e.residual.add(off), n));
                                }
                            }
                            if let Some(pw) = simd_act {
                                *v = Self::act(*v, pw);
                            }
                            Self::store_n(c.add(off), n, *v);
                        }
                    }
                }
            }

            /// `acc[i][h] += A[.][i] · B[.][h-th vector]` over the `kc` steps,
            /// for the first `H` (1 to `V`) vectors of each row (the third
            /// `third` floats after the row); with `FAR`,
            /// asks for `far`'s `kc * MR` floats in L2 on the way; with
            /// `COPY` (and `H` = 2), copies B's rows to `copy`, NR apart;
            /// with `COL` (an ISA with `column`), also sums column `col_at`
            /// of B's rows and returns the MR sums (zeros without).
            ///
            /// # Safety
            /// `a` holds `kc * MR` floats, `brow(p)` NR floats for each `p < kc`;
            /// with `COPY`, `copy` is valid for writing `kc * NR` floats; with
            /// `COL`, `brow(p) + col_at` is valid for a float.
            #[target_feature(enable = $feat)]
            #[inline]
            #[allow(clippy::too_many_arguments)]
            unsafe fn k_loop<const V: usize, const H: usize, const FAR: bool, const COPY: bool, const COL: bool, const R: usize>(kc: usize, a: *const f32, brow: &impl Fn(usize) -> *const f32, third: usize, far: *const f32, copy: *mut f32, col_at: usize, acc: &mut [[$vec; V]; $mr]) -> [f32; $mr] {
                let _ = col_at;
                $( let mut sums = $column::zero(); )?
                for p in 0..kc {
                    if FAR && p % 2 == 0 {
                        // A 64-byte line holds two steps of 8 rows.
                        prefetch_l2(far.wrapping_add(p * $mr));
                    }
                    // SAFETY: p < kc: B's row p is NR floats, A's column p MR floats;
                    // prefetching A ahead (past its end at the last steps) never faults.
                    let (b, bv, ap) = unsafe {
                        prefetch(a.wrapping_add((p + A_AHEAD) * $mr));
                        let b = brow(p);
                        let at = |h: usize| if h < 2 { h * $w } else { third };
                        let bv: [$vec; H] = std::array::from_fn(|h| $load(b.add(at(h))));
                        if COPY {
                            $store(copy.add(p * 2 * $w), bv[0]);
                            $store(copy.add(p * 2 * $w + $w), bv[1]);
                        }
                        (b, bv, a.add(p * $mr))
                    };
                    for (i, row) in acc.iter_mut().enumerate().take(R) {
                        // SAFETY: i < MR.
                        let av = $set1(unsafe { *ap.add(i) });
                        for h in 0..H {
                            row[h] = $fmadd(av, bv[h], row[h]);
                        }
                    }
                    $(
                        if COL {
                            // SAFETY: the caller vouches for B's column and A's MR floats.
                            sums = unsafe { $column::step(sums, ap, b.add(col_at)) };
                        }
                    )?
                    let _ = b;
                }
                #[allow(unused_mut)]
                let mut out = [0.0f32; $mr];
                $(
                    if COL {
                        out = $column::sums(sums);
                    }
                )?
                out
            }

            /// The first `n` (1..=lanes) floats at `p`, zeros after.
            ///
            /// # Safety
            /// `p` is valid for `n` floats.
            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn load_n(p: *const f32, n: usize) -> $vec {
                // SAFETY: the caller's contract; a masked load reads only n floats.
                unsafe {
                    if n == $w {
                        $load(p)
                    } else {
                        $load_part(p, n)
                    }
                }
            }

            /// Stores the first `n` (1..=lanes) lanes of `v` at `p`.
            ///
            /// # Safety
            /// `p` is valid for writing `n` floats.
            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn store_n(p: *mut f32, n: usize, v: $vec) {
                // SAFETY: the caller's contract; a masked store writes only n floats.
                unsafe {
                    if n == $w {
                        $store(p, v)
                    } else {
                        $store_part(p, n, v)
                    }
                }
            }
        }

        impl Micro for $name {
            const MR: usize = $mr;
            const NR: usize = 2 * $w;

            unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi) {
                // SAFETY: the caller's contract, including the CPU having the ISA.
                unsafe { Self::run::<2>(kc, a, |p| b.wrapping_add(p * 2 * $w), 0, Some(b), std::ptr::null_mut(), c, ldc, rows, cols, e) }
            }

            unsafe fn tiles(kc: usize, a: *const f32, b: *const f32, stride: usize, c: *mut f32, ldc: usize, rows: usize, n: usize, e: &TileEpi) {
                // SAFETY: the caller's contract, including the CPU having the ISA.
                unsafe { Self::tiles_body(kc, a, b, stride, c, ldc, rows, n, e) }
            }

            unsafe fn tiles_indirect_down(kc: usize, a: *const f32, a_stride: usize, base: *const f32, offs: *const usize, c: *mut f32, ldc: usize, n: usize, rows: usize, cols: usize, e: &TileEpi) {
                // SAFETY: the caller's contract, including the CPU having the ISA.
                unsafe { Self::tiles_indirect_down_body(kc, a, a_stride, base, offs, c, ldc, n, rows, cols, e) }
            }

            unsafe fn tiles_down(kc: usize, a: *const f32, a_stride: usize, b: *const f32, c: *mut f32, ldc: usize, n: usize, rows: usize, e: &TileEpi) {
                // SAFETY: the caller's contract, including the CPU having the ISA.
                unsafe { Self::tiles_down_body(kc, a, a_stride, b, c, ldc, n, rows, e) }
            }

            unsafe fn tile_indirect(kc: usize, a: *const f32, base: *const f32, offs: *const usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi) {
                // SAFETY: the caller's contract (offs holds kc offsets), including the CPU having the ISA.
                unsafe {
                    if e.b_ahead {
                        let ahead = |p: usize| {
                            let row = base.wrapping_add(*offs.add(p));
                            prefetch(row.wrapping_add(2 * $w));
                            prefetch(row.wrapping_add(3 * $w));
                            row
                        };
                        Self::run::<2>(kc, a, ahead, 0, None, std::ptr::null_mut(), c, ldc, rows, cols, e)
                    } else {
                        Self::run::<2>(kc, a, |p| base.wrapping_add(*offs.add(p)), 0, None, std::ptr::null_mut(), c, ldc, rows, cols, e)
                    }
                }
            }

            $(
                const NARROW_ROWS: bool = true;

                unsafe fn narrow_rows(kc: usize, a: &[*const f32], b: *const f32, n: usize, c: *mut f32, ldc: usize, rows: usize, e: &TileEpi) {
                    // SAFETY: the caller's contract, including the CPU having the ISA.
                    unsafe { $narrow_rows(kc, a, b, n, c, ldc, rows, e) }
                }
            )?

            const WIDE_COLS: usize = if $wide { 3 * $w + NARROW_COLS } else { 0 };

            unsafe fn tile_wide(kc: usize, a: *const f32, b: *const f32, stride: usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi) {
                // SAFETY: the caller's contract, including the CPU having the ISA.
                unsafe {
                    if !$wide {
                        return two_tiles::<Self>(kc, a, b, stride, c, ldc, rows, cols, e);
                    }
                    assert!(cols > 2 * $w && cols <= 3 * $w + NARROW_COLS, "a wide tile of {cols} columns");
                    Self::run::<3>(kc, a, |p| b.wrapping_add(p * 2 * $w), stride, Some(b), std::ptr::null_mut(), c, ldc, rows, cols, e)
                }
            }

            unsafe fn tile_packing(kc: usize, a: *const f32, src: *const f32, ld: usize, dst: *mut f32, c: *mut f32, ldc: usize, rows: usize, e: &TileEpi) {
                // The rows are a plane apart, too many streams for the
                // hardware prefetchers: ask for the next panel's lines
                // (the next tile to pack) in L1 on the way.
                let ahead = |p: usize| {
                    let row = src.wrapping_add(p * ld);
                    prefetch_l2(row.wrapping_add(pack_ahead($w) * 2 * $w));
                    prefetch_l2(row.wrapping_add(pack_ahead($w) * 2 * $w + $w));
                    row
                };
                // SAFETY: the caller's contract, including the CPU having the ISA.
                unsafe { Self::run::<2>(kc, a, ahead, 0, None, dst, c, ldc, rows, 2 * $w, e) }
            }
        }
    };
}
#[cfg(target_arch = "x86_64")]
use simd_tile;
