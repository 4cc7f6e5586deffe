//! 3×3, stride-1, dilation-1, ungrouped 2-D f32 convolution (NCHW) by the
//! Winograd minimal filtering algorithm F(4×4, 3×3), or F(2×2, 3×3), on the
//! packed GEMM of [`crate::packed`].
//!
//! Each 4×4 block of outputs (a tile) reads a 6×6 input patch `d`. With the
//! transforms of the interpolation points 0, ±1, ±2 and ∞ (Lavin & Gray):
//! `Y = Aᵀ [ Σ_c (G g_kc Gᵀ) ⊙ (Bᵀ d_c B) ] A`. The 36 element-wise products
//! summed over channels are 36 independent GEMMs:
//! `M[ξ][K × T] = U[ξ][K × C] · V[ξ][C × T]` for the 36 positions ξ of the
//! 6×6 transformed tile, with `T` tiles per block. That is 4× fewer
//! multiplications than the direct 3×3 (36 per 16 outputs against 144).
//!
//! - At generate, [`pack_winograd_weights`] transforms the weights
//!   (`U = G g Gᵀ`, in f64) and packs each of the 36 `K × C` matrices into
//!   the GEMM's MR-row panels.
//! - At run time a part (a range of tiles, image by image) runs blocks of at
//!   most [`WinogradConv::block_tiles`] tiles: the input transform of the
//!   block into the scratch `V[36][C][T]` (zero padding read as zeros), the
//!   36 GEMMs into `M[36][K][T]`, then the output transform of each tile
//!   with the bias, the residual and the activation, cropped to the output.
//!
//! F(2×2, 3×3) ([`WinogradTile::F2x2`]) is the same algorithm on 2×2 tiles
//! of 4×4 patches (points 0, ±1, ∞): 16 GEMMs, 2.25× fewer multiplications
//! than the direct 3×3, and transformed weights 16/9 of the direct ones
//! (F(4×4)'s are 4×). On maps of 14×14 and smaller the GEMMs of F(4×4)
//! have few tiles (16) against all of its weights, streamed from memory
//! once a frame at batch 1; F(2×2) has 49 tiles there against 4/9 of the
//! weights. Its transforms have constants of at most 1: its error is
//! about the GEMM's.
//!
//! The error of F(4×4) grows with the larger transform constants (up to 8 in `Aᵀ`):
//! against an f64 direct convolution (C = 256, inputs in [-1, 1), He
//! weights, |y| ≤ 3.7) the max abs error is ~3e-5 (~1e-5 relative), about
//! 25× the packed GEMM's 1.4e-6; it does not grow along a chain of layers
//! (see the tests).
//!
//! Inputs: X `[N, C, H, W]`, packed U, then B `[K]` if `epilogue.bias`, then
//! the residual (Y's shape) if `epilogue.residual`. Output: Y `[N, K, oh, ow]`.

use crate::kernel::{expect_io, KernelImpl};
use crate::packed::{self, pack::{pack_a, PackedA}, BSource, GemmCall, Isa};
use crate::packed::PwAct;
use crate::{Epilogue, Io};
use transform::{Finish, Geometry, Lanes, PackedV, TileVec, LANES};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Input patch side of F(4×4, 3×3).
const ALPHA: usize = 6;
/// Positions of an F(4×4, 3×3) transformed tile (the most of any variant).
const XI: usize = ALPHA * ALPHA;
/// Scratch bytes a block of tiles aims at (V and M together), so the
/// transforms and the GEMMs of a block stay in L2.
const BLOCK_BYTES: usize = 1 << 20;
/// Floats past each position's matrix in the scratch (one cache line):
/// the 36 rows a transform touches for a channel would otherwise lie a
/// multiple of 4 KiB apart, all in one L1 set. It also holds the lanes
/// the output transform loads past the last row's columns.
const SKEW: usize = 16;
/// The most tiles of one block.
const MAX_BLOCK: usize = 256;

/// How a Winograd convolution splits its work across clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WinogradAxis {
    /// Work items are tiles (image by image): each part transforms only its
    /// tiles but streams all the transformed weights.
    Tiles,
    /// Work items are panels of output channels (MR rows of every `U[ξ]`,
    /// image by image): each part streams only its rows of the weights but
    /// transforms every tile's input — for maps with too few tiles to split.
    Channels,
}

/// The Winograd variant: the outputs of one tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WinogradTile {
    /// F(4×4, 3×3): 36 GEMMs, 4× fewer multiplications.
    F4x4,
    /// F(2×2, 3×3): 16 GEMMs, 2.25× fewer multiplications, transformed
    /// weights 4/9 of F(4×4)'s.
    F2x2,
}

impl WinogradTile {
    /// Outputs per tile side.
    pub fn side(self) -> usize {
        match self {
            WinogradTile::F4x4 => 4,
            WinogradTile::F2x2 => 2,
        }
    }

    /// Positions of a transformed tile (the GEMMs per block).
    pub fn positions(self) -> usize {
        (self.side() + 2) * (self.side() + 2)
    }
}

/// A 3×3 stride-1 convolution by Winograd F(4×4, 3×3) or F(2×2, 3×3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WinogradConv {
    pub batch: u64,
    pub in_channels: u64,
    pub out_channels: u64,
    /// `[h, w]` of X.
    pub input: [u64; 2],
    /// Zeros before the first row and column.
    pub pad_begin: [u64; 2],
    /// `[oh, ow]` of Y (the end pads follow from it).
    pub output: [u64; 2],
    pub epilogue: Epilogue,
    pub isa: Isa,
    pub axis: WinogradAxis,
    /// The variant (program format v8).
    pub tile: WinogradTile,
}

/// `G g Gᵀ` of one 3×3 filter for F(2×2, 3×3) (16 positions), in f64.
fn transform_filter_2x2(g: &[f32]) -> [f64; 16] {
    let col = |a: f64, b: f64, c: f64| -> [f64; 4] { [a, (a + b + c) / 2.0, (a - b + c) / 2.0, c] };
    let mut gg = [[0.0f64; 3]; 4];
    for j in 0..3 {
        let c = col(g[j] as f64, g[3 + j] as f64, g[6 + j] as f64);
        for i in 0..4 {
            gg[i][j] = c[i];
        }
    }
    let mut u = [0.0f64; 16];
    for i in 0..4 {
        u[i * 4..][..4].copy_from_slice(&col(gg[i][0], gg[i][1], gg[i][2]));
    }
    u
}

/// `G g Gᵀ` of one 3×3 filter for F(4×4, 3×3), in f64.
fn transform_filter(g: &[f32]) -> [f64; XI] {
    let col = |a: f64, b: f64, c: f64| -> [f64; ALPHA] { [a / 4.0, -(a + b + c) / 6.0, -(a - b + c) / 6.0, a / 24.0 + b / 12.0 + c / 6.0, a / 24.0 - b / 12.0 + c / 6.0, c] };
    // Rows of G g (6 × 3), then each row times Gᵀ.
    let mut gg = [[0.0f64; 3]; ALPHA];
    for j in 0..3 {
        let c = col(g[j] as f64, g[3 + j] as f64, g[6 + j] as f64);
        for i in 0..ALPHA {
            gg[i][j] = c[i];
        }
    }
    let mut u = [0.0f64; XI];
    for i in 0..ALPHA {
        let r = col(gg[i][0], gg[i][1], gg[i][2]);
        u[i * ALPHA..][..ALPHA].copy_from_slice(&r);
    }
    u
}

/// Transforms and packs W `[K, C, 3, 3]` for [`WinogradConv`]: the 36
/// (or 16) matrices `U[ξ]` (`K × C`) one after another, each in MR-row
/// panels, in K blocks at most `kc_max` deep (the kernel's `k_block()`).
pub fn pack_winograd_weights(w: &[f32], out_channels: usize, isa: Isa, tile: WinogradTile, kc_max: usize) -> Vec<f32> {
    let c = w.len() / (9 * out_channels);
    assert_eq!(w.len(), out_channels * c * 9, "winograd weights are not [K, C, 3, 3]");
    let mut u = vec![0.0f32; tile.positions() * out_channels * c];
    for (kc, g) in w.chunks_exact(9).enumerate() {
        let t = match tile {
            WinogradTile::F4x4 => transform_filter(g).to_vec(),
            WinogradTile::F2x2 => transform_filter_2x2(g).to_vec(),
        };
        for (xi, v) in t.into_iter().enumerate() {
            u[xi * out_channels * c + kc] = v as f32;
        }
    }
    u.chunks_exact(out_channels * c).flat_map(|m| pack_a(m, out_channels, c, isa, kc_max)).collect()
}

/// One transformed-input matrix `V[ξ]` of a block as the GEMM's B, packed
/// in its panels (see [`transform::PackedV`]): the GEMM reads it in place.
struct Transformed<'a> {
    /// `[panel][C][NR]`.
    v: &'a [f32],
    channels: usize,
    nr: usize,
}

impl BSource for Transformed<'_> {
    fn fill(&self, k: usize, n0: usize, dst: &mut [f32]) {
        for (j, d) in dst.iter_mut().enumerate() {
            let col = n0 + j;
            *d = self.v[((col / self.nr) * self.channels + k) * self.nr + col % self.nr];
        }
    }

    fn packed(&self) -> Option<&[f32]> {
        Some(self.v)
    }
}

impl WinogradConv {
    /// The K-block depth its packed weights have ([`packed::k_block`] of a
    /// whole image's block of tiles, the GEMMs' columns).
    pub fn k_block(&self) -> usize {
        packed::k_block(self.isa, self.block_tiles().min(self.tiles_per_image()))
    }

    /// Tiles per image: `[rows, columns]`.
    fn tiles(&self) -> [usize; 2] {
        self.output.map(|v| (v as usize).div_ceil(self.tile.side()))
    }

    fn tiles_per_image(&self) -> usize {
        let [th, tw] = self.tiles();
        th * tw
    }

    /// Tiles per block: the largest multiple of the ISA's NR whose V and M
    /// fit [`BLOCK_BYTES`], at least one panel and at most [`MAX_BLOCK`];
    /// all the tiles of an image when their V and M fit twice that (every
    /// block streams all the transformed weights: F(2×2)'s 49 tiles of a
    /// 256-channel 14×14 map in blocks of 32 and 17 streamed them twice).
    pub fn block_tiles(&self) -> usize {
        self.block_tiles_for(self.out_channels as usize)
    }

    /// [`Self::block_tiles`] for a part computing `rows` output channels.
    fn block_tiles_for(&self, rows: usize) -> usize {
        let nr = self.isa.nr();
        let per_tile = 4 * self.tile.positions() * (self.in_channels as usize + rows);
        let image = self.tiles_per_image().next_multiple_of(nr);
        if image * per_tile <= 2 * BLOCK_BYTES {
            return image.clamp(nr, MAX_BLOCK.max(nr));
        }
        (BLOCK_BYTES / per_tile / nr * nr).clamp(nr, MAX_BLOCK.max(nr))
    }

    /// Panels of output channels (the work items of an image by channels).
    fn channel_panels(&self) -> usize {
        (self.out_channels as usize).div_ceil(self.isa.mr())
    }

    /// The block width and the most output channels of a part of `items`.
    fn part_shape(&self, items: usize) -> (usize, usize) {
        let k = self.out_channels as usize;
        let (tiles, rows) = match self.axis {
            WinogradAxis::Tiles => (items, k),
            WinogradAxis::Channels => (usize::MAX, (items.min(self.channel_panels()) * self.isa.mr()).min(k)),
        };
        (self.block_tiles_for(rows).min(tiles).min(self.tiles_per_image()), rows)
    }

    /// Floats from a block's `V[ξ]` to `V[ξ + 1]` for `tb` tiles.
    fn v_stride(&self, tb: usize) -> usize {
        self.in_channels as usize * tb.next_multiple_of(self.isa.nr()) + SKEW
    }

    /// Floats of a block's `V` (every position's panels) for `tb` tiles.
    fn v_len(&self, tb: usize) -> usize {
        self.tile.positions() * self.v_stride(tb)
    }

    /// Floats from a block's `M[ξ]` to `M[ξ + 1]` for `tb` tiles of `rows` output channels.
    fn m_stride(tb: usize, rows: usize) -> usize {
        rows * Self::m_ld(tb) + SKEW
    }

    /// Row stride of a block's `M` for `tb` tiles.
    fn m_ld(tb: usize) -> usize {
        tb.next_multiple_of(LANES)
    }

    fn geometry(&self) -> Geometry {
        Geometry { input: self.input.map(|d| d as usize), pad: self.pad_begin.map(|d| d as usize), output: self.output.map(|d| d as usize), tw: self.tiles()[1] }
    }

    /// The input transform of tiles `t0..t0+n` of one image (`x`, C planes)
    /// into `V` (`v`, for blocks of `tb` tiles), on vector type `T`.
    #[inline(always)]
    fn transform_block_with<T: TileVec>(&self, x: &[f32], t0: usize, n: usize, tb: usize, v: &mut [f32]) {
        let (c, nr) = (self.in_channels as usize, self.isa.nr());
        assert!(v.len() >= self.v_len(tb) && n <= tb, "winograd V scratch is too small");
        let g = self.geometry();
        let plane = g.input[0] * g.input[1];
        let dst = PackedV { v: v.as_mut_ptr(), stride: self.v_stride(tb), channels: c, nr };
        for ci in 0..c {
            let xc = &x[ci * plane..][..plane];
            // SAFETY: V holds the block's panels (checked above).
            unsafe {
                match self.tile {
                    WinogradTile::F4x4 => transform::input_channel::<T>(&g, xc, ci, t0, n, &dst),
                    WinogradTile::F2x2 => transform::input_channel_2x2::<T>(&g, xc, ci, t0, n, &dst),
                }
            }
        }
        // Columns past the block's tiles in its last panel are zero (the
        // GEMM computes, then drops, them: keep them finite).
        let used = n % nr;
        if used != 0 {
            for xi in 0..self.tile.positions() {
                let last = &mut v[xi * dst.stride + (n - 1) / nr * c * nr..][..c * nr];
                last.chunks_exact_mut(nr).for_each(|r| r[used..].fill(0.0));
            }
        }
    }

    /// The output transform of a block (`M` in `m`, rows `ld` apart) with
    /// the epilogue, into image `img` of Y, on vector type `T`.
    ///
    /// # Safety
    /// `y` is Y's first element and this part owns the block's tiles in
    /// its channels of image `img`.
    #[inline(always)]
    unsafe fn finish_block_with<T: TileVec>(&self, io: &Io, blk: Block, m: &[f32], y: *mut f32) {
        let Block { img, t0, n, tb, k0, k1 } = blk;
        let (ld, stride) = (Self::m_ld(tb), Self::m_stride(tb, k1 - k0));
        let k = self.out_channels as usize;
        let g = self.geometry();
        let plane = g.output[0] * g.output[1];
        // SAFETY: inputs are not written during the step (the run contract).
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        // SAFETY: as above.
        let residual = self.epilogue.residual.then(|| unsafe { io.inputs[2 + usize::from(self.epilogue.bias)].f32() });
        let act = self.epilogue.activation;
        for ko in k0..k1 {
            let base = (img * k + ko) * plane;
            let f = Finish { bias: bias.map_or(0.0, |b| b[ko]), residual: residual.map(|r| &r[base..][..plane]), act: PwAct::of(act), full_act: act };
            // SAFETY: the caller's contract; channel ko's plane of image img
            // (row ko - k0 of the block's M).
            unsafe {
                match self.tile {
                    WinogradTile::F4x4 => transform::output_channel::<T>(&g, m, ko - k0, stride, ld, t0, n, y.add(base), &f),
                    WinogradTile::F2x2 => transform::output_channel_2x2::<T>(&g, m, ko - k0, stride, ld, t0, n, y.add(base), &f),
                }
            }
        }
    }

    /// [`Self::transform_block_with`] on the kernel's ISA.
    fn transform_block(&self, x: &[f32], t0: usize, n: usize, tb: usize, v: &mut [f32]) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the packed GEMM of the same step asserts the ISA first;
            // the runtime refuses an artifact whose arch the CPU lacks.
            Isa::Avx512 if Isa::Avx512.available() => unsafe { simd::transform_avx512(self, x, t0, n, tb, v) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 if Isa::Avx2.available() => unsafe { simd::transform_avx2(self, x, t0, n, tb, v) },
            _ => self.transform_block_with::<Lanes>(x, t0, n, tb, v),
        }
    }

    /// [`Self::finish_block_with`] on the kernel's ISA.
    ///
    /// # Safety
    /// As [`Self::finish_block_with`].
    unsafe fn finish_block(&self, io: &Io, blk: Block, m: &[f32], y: *mut f32) {
        // SAFETY: the caller's contract; the ISA is present (checked).
        unsafe {
            match self.isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 if Isa::Avx512.available() => simd::finish_avx512(self, io, blk, m, y),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 if Isa::Avx2.available() => simd::finish_avx2(self, io, blk, m, y),
                _ => self.finish_block_with::<Lanes>(io, blk, m, y),
            }
        }
    }

    /// The 36 (or 16) GEMMs of a block: `M[ξ] = U[ξ] · V[ξ]` over its `n` tiles for
    /// output channels `k0..k1` (`k0` on a panel boundary; the GEMM asserts
    /// the CPU has the ISA).
    #[allow(clippy::too_many_arguments)]
    fn gemms(&self, u: &[f32], v: &[f32], n: usize, tb: usize, m: &mut [f32], k0: usize, k1: usize) {
        self.gemms_by(u, v, n, tb, m, k0, k1, self.shallow_gemms());
    }

    /// Whether the block's GEMMs run by [`packed::gemm_shallow`]: with the
    /// input channels in one K block, on an ISA without a wide tile (the
    /// general driver joins AVX-512's last panels into one; not measured
    /// against this). On Zen 3 (`shallow_gemms_timing`) transforms and
    /// GEMMs took 5-20 % less from 16 to 256 channels, never more.
    fn shallow_gemms(&self) -> bool {
        self.in_channels as usize <= self.k_block() && self.isa.wide_cols() == 0
    }

    /// [`Self::gemms`], by [`packed::gemm_shallow`] or not (`shallow`
    /// needs the input channels in one K block).
    #[allow(clippy::too_many_arguments)]
    fn gemms_by(&self, u: &[f32], v: &[f32], n: usize, tb: usize, m: &mut [f32], k0: usize, k1: usize, shallow: bool) {
        let (c, k, nr, mr) = (self.in_channels as usize, self.out_channels as usize, self.isa.nr(), self.isa.mr());
        let a_len = packed::pack::packed_a_len(k, c, self.isa);
        let (v_len, v_stride) = (c * tb.next_multiple_of(nr), self.v_stride(tb));
        let (rows, ld, m_stride) = (k1 - k0, Self::m_ld(tb), Self::m_stride(tb, k1 - k0));
        let positions = self.tile.positions();
        assert!(m.len() >= positions * m_stride && v.len() >= self.v_len(tb) && n <= tb && k0 % mr == 0 && k1 <= k, "winograd scratch is too small");
        assert!(!shallow || c <= self.k_block(), "shallow winograd GEMMs of more than one K block");
        // A last panel of more than 4 columns is computed whole (M's rows
        // hold ld ≥ its columns; V's are zero): no masked merge.
        let whole_cols = if n % nr > 4 { n.next_multiple_of(nr).min(ld) } else { n };
        for xi in 0..positions {
            // Rows k0..k1 of a packed U[ξ]: its panels from k0 / MR on.
            let a = PackedA::new(&u[xi * a_len..][..a_len], k, c, self.isa, self.k_block()).after_panels(k0 / mr);
            if shallow {
                // SAFETY: M[ξ] holds rows × ld floats in the scratch (asserted);
                // V[ξ] holds the block's panels of c rows.
                unsafe { packed::gemm_shallow(self.isa, &a, &v[xi * v_stride..][..v_len], c, rows, whole_cols, m[xi * m_stride..][..rows * ld].as_mut_ptr(), ld) };
                continue;
            }
            let call = GemmCall { m: rows, k: c, n, a, c: m[xi * m_stride..][..rows * ld].as_mut_ptr(), ldc: ld, bias: None, residual: std::ptr::null(), act: crate::Activation::None };
            let src = Transformed { v: &v[xi * v_stride..][..v_len], channels: c, nr };
            // SAFETY: C is this block's M[ξ] (k rows of ld ≥ n floats) in
            // the scratch; B is packed whole, so the GEMM needs no scratch.
            unsafe { packed::gemm(self.isa, &call, &src, &mut []) };
        }
    }

    /// Runs tiles `t0..t0+n` of image `img`, output channels `k0..k1`, as one block.
    ///
    /// # Safety
    /// As [`KernelImpl::run`]; this part owns these tiles of these channels.
    unsafe fn run_block(&self, io: &Io, blk: Block, scratch: &mut [f32]) {
        let Block { img, t0, n, tb, k0, k1 } = blk;
        let c = self.in_channels as usize;
        let plane_in = (self.input[0] * self.input[1]) as usize;
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, u) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        let (v, m) = scratch.split_at_mut(self.v_len(tb));
        self.transform_block(&x[img * c * plane_in..][..c * plane_in], t0, n, tb, v);
        self.gemms(u, v, n, tb, m, k0, k1);
        let y = &io.outputs[0];
        let out_len = (self.batch * self.out_channels * self.output[0] * self.output[1]) as usize;
        assert!(out_len <= y.len_bytes() / 4, "winograd output is too small");
        // SAFETY: Y holds out_len floats; this part owns the tiles.
        unsafe { self.finish_block(io, blk, m, y.as_ptr() as *mut f32) };
    }
}

/// A block of tiles: `n` tiles of image `img` from tile `t0`, output
/// channels `k0..k1`, in scratch laid out for blocks of `tb`.
#[derive(Clone, Copy)]
struct Block {
    img: usize,
    t0: usize,
    n: usize,
    tb: usize,
    k0: usize,
    k1: usize,
}

/// The transforms compiled with AVX-512 (on zmm vectors) or AVX2 (on
/// pairs of ymm) enabled.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::transform::{Ymm2, Zmm};
    use super::{Block, WinogradConv};
    use crate::Io;

    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_avx512(k: &WinogradConv, x: &[f32], t0: usize, n: usize, tb: usize, v: &mut [f32]) {
        k.transform_block_with::<Zmm>(x, t0, n, tb, v)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn transform_avx2(k: &WinogradConv, x: &[f32], t0: usize, n: usize, tb: usize, v: &mut [f32]) {
        k.transform_block_with::<Ymm2>(x, t0, n, tb, v)
    }

    /// # Safety
    /// As [`WinogradConv::finish_block_with`]; the CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn finish_avx512(k: &WinogradConv, io: &Io, blk: Block, m: &[f32], y: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe { k.finish_block_with::<Zmm>(io, blk, m, y) }
    }

    /// # Safety
    /// As [`WinogradConv::finish_block_with`]; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn finish_avx2(k: &WinogradConv, io: &Io, blk: Block, m: &[f32], y: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe { k.finish_block_with::<Ymm2>(io, blk, m, y) }
    }
}

impl KernelImpl for WinogradConv {
    fn name(&self) -> String {
        let side = self.tile.side();
        format!("f32_conv2d_winograd{side}x{side}_{}", self.isa.name())
    }

    /// Tiles, or panels of output channels, of every image, image by image.
    fn work_items(&self) -> u64 {
        self.batch
            * match self.axis {
                WinogradAxis::Tiles => self.tiles_per_image(),
                WinogradAxis::Channels => self.channel_panels(),
            } as u64
    }

    fn scratch_bytes(&self, items: u64) -> usize {
        if items == 0 {
            return 0;
        }
        let (tb, rows) = self.part_shape(items as usize);
        4 * (self.v_len(tb) + self.tile.positions() * Self::m_stride(tb, rows))
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        if self.in_channels == 0 || self.out_channels == 0 {
            return Err(format!("winograd conv has no channels: {self:?}"));
        }
        if self.output.contains(&0) || self.input.contains(&0) {
            return Err(format!("winograd conv has an empty plane: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        // SAFETY: any bit pattern is a valid f32.
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(pre.is_empty(), "winograd scratch is not 4-byte aligned");
        let (p0, p1) = (part.start as usize, part.end as usize);
        let (tb, _) = self.part_shape(p1 - p0);
        let (tiles, k, mr) = (self.tiles_per_image(), self.out_channels as usize, self.isa.mr());
        let mut item = p0;
        while item < p1 {
            match self.axis {
                WinogradAxis::Tiles => {
                    let (img, t0) = (item / tiles, item % tiles);
                    let n = tb.min(tiles - t0).min(p1 - item);
                    // SAFETY: this part owns tiles t0..t0+n of image img.
                    unsafe { self.run_block(io, Block { img, t0, n, tb, k0: 0, k1: k }, scratch) };
                    item += n;
                }
                WinogradAxis::Channels => {
                    let panels = self.channel_panels();
                    let (img, q0) = (item / panels, item % panels);
                    let q1 = panels.min(q0 + p1 - item);
                    let (k0, k1) = (q0 * mr, (q1 * mr).min(k));
                    for t0 in (0..tiles).step_by(tb) {
                        let n = tb.min(tiles - t0);
                        // SAFETY: this part owns channels k0..k1 of image img.
                        unsafe { self.run_block(io, Block { img, t0, n, tb, k0, k1 }, scratch) };
                    }
                    item += q1 - q0;
                }
            }
        }
    }
}

mod transform;

#[cfg(test)]
mod tests;
