//! 3×3, stride-1, dilation-1, ungrouped 2-D f32 convolution (NCHW) by the
//! Winograd minimal filtering algorithm F(4×4, 3×3) on the packed GEMM of
//! [`crate::packed`].
//!
//! Each 4×4 block of outputs (a tile) reads a 6×6 input patch `d`. With the
//! transforms of the interpolation points 0, ±1, ±2 and ∞ (Lavin & Gray):
//! `Y = Aᵀ [ Σ_c (G g_kc Gᵀ) ⊙ (Bᵀ d_c B) ] A`. The 36 element-wise products
//! summed over channels are 36 independent GEMMs:
//! `M[ξ][K × T] = U[ξ][K × C] · V[ξ][C × T]` for the 36 positions ξ of the
//! 6×6 transformed tile, with `T` tiles per block. That is 2.25× fewer
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
//! The error grows with the larger transform constants (up to 8 in `Aᵀ`):
//! against an f64 direct convolution (C = 256, inputs in [-1, 1), He
//! weights, |y| ≤ 3.7) the max abs error is ~3e-5 (~1e-5 relative), about
//! 25× the packed GEMM's 1.4e-6; it does not grow along a chain of layers
//! (see the tests).
//!
//! Inputs: X `[N, C, H, W]`, packed U, then B `[K]` if `epilogue.bias`, then
//! the residual (Y's shape) if `epilogue.residual`. Output: Y `[N, K, oh, ow]`.

use crate::kernel::{expect_io, KernelImpl};
use crate::packed::{self, pack::pack_a, BSource, GemmCall, Isa};
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Outputs per tile side.
const TILE: usize = 4;
/// Input patch side (`TILE + 2`).
const ALPHA: usize = 6;
/// Positions of a transformed tile.
const XI: usize = ALPHA * ALPHA;
/// Scratch bytes a block of tiles aims at (V and M together), so the
/// transforms and the GEMMs of a block stay in L2.
const BLOCK_BYTES: usize = 1 << 20;
/// The most tiles of one block.
const MAX_BLOCK: usize = 256;

/// A 3×3 stride-1 convolution by Winograd F(4×4, 3×3).
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
}

/// `G g Gᵀ` of one 3×3 filter, in f64.
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
/// matrices `U[ξ]` (`K × C`) one after another, each in MR-row panels.
pub fn pack_winograd_weights(w: &[f32], out_channels: usize, isa: Isa) -> Vec<f32> {
    let c = w.len() / (9 * out_channels);
    assert_eq!(w.len(), out_channels * c * 9, "winograd weights are not [K, C, 3, 3]");
    let mut u = vec![0.0f32; XI * out_channels * c];
    for (kc, g) in w.chunks_exact(9).enumerate() {
        for (xi, v) in transform_filter(g).into_iter().enumerate() {
            u[xi * out_channels * c + kc] = v as f32;
        }
    }
    u.chunks_exact(out_channels * c).flat_map(|m| pack_a(m, out_channels, c, isa)).collect()
}

/// Tiles transformed at once: the lanes of the transforms' arrays, which
/// the compiler vectorises (16 f32 = one zmm, two ymm).
const LANES: usize = 16;

/// A value per lane.
type Lanes = [f32; LANES];

#[inline(always)]
fn lanes(f: impl Fn(usize) -> f32) -> Lanes {
    std::array::from_fn(f)
}

/// `Bᵀ x` for one column of 6, lane by lane.
#[inline(always)]
fn bt(x: &[Lanes; ALPHA]) -> [Lanes; ALPHA] {
    [
        lanes(|l| 4.0 * x[0][l] - 5.0 * x[2][l] + x[4][l]),
        lanes(|l| -4.0 * (x[1][l] + x[2][l]) + x[3][l] + x[4][l]),
        lanes(|l| 4.0 * (x[1][l] - x[2][l]) - x[3][l] + x[4][l]),
        lanes(|l| 2.0 * (x[3][l] - x[1][l]) - x[2][l] + x[4][l]),
        lanes(|l| 2.0 * (x[1][l] - x[3][l]) - x[2][l] + x[4][l]),
        lanes(|l| 4.0 * x[1][l] - 5.0 * x[3][l] + x[5][l]),
    ]
}

/// `Aᵀ m` for one column of 6, lane by lane.
#[inline(always)]
fn at(m: &[Lanes; ALPHA]) -> [Lanes; TILE] {
    let s12 = lanes(|l| m[1][l] + m[2][l]);
    let d12 = lanes(|l| m[1][l] - m[2][l]);
    let s34 = lanes(|l| m[3][l] + m[4][l]);
    let d34 = lanes(|l| m[3][l] - m[4][l]);
    [lanes(|l| m[0][l] + s12[l] + s34[l]), lanes(|l| d12[l] + 2.0 * d34[l]), lanes(|l| s12[l] + 4.0 * s34[l]), lanes(|l| d12[l] + 8.0 * d34[l] + m[5][l])]
}

/// `Bᵀ d B` of `LANES` 6×6 patches (`d[i][j]` holds element (i, j) of each).
#[inline(always)]
fn input_transform(d: &[[Lanes; ALPHA]; ALPHA]) -> [[Lanes; ALPHA]; ALPHA] {
    let mut cols = [[[0.0f32; LANES]; ALPHA]; ALPHA];
    for j in 0..ALPHA {
        let t = bt(&std::array::from_fn(|i| d[i][j]));
        for i in 0..ALPHA {
            cols[i][j] = t[i];
        }
    }
    std::array::from_fn(|i| bt(&cols[i]))
}

/// `Aᵀ m A` of `LANES` transformed tiles: their 4×4 outputs.
#[inline(always)]
fn output_transform(m: &[[Lanes; ALPHA]; ALPHA]) -> [[Lanes; TILE]; TILE] {
    let mut rows = [[[0.0f32; LANES]; ALPHA]; TILE];
    for j in 0..ALPHA {
        let t = at(&std::array::from_fn(|i| m[i][j]));
        for i in 0..TILE {
            rows[i][j] = t[i];
        }
    }
    std::array::from_fn(|i| at(&rows[i]))
}

/// A block of tiles: `n` tiles of image `img` from tile `t0`, `ld` apart
/// in the scratch rows.
#[derive(Clone, Copy)]
struct Block {
    img: usize,
    t0: usize,
    n: usize,
    ld: usize,
}

/// One transformed-input matrix `V[ξ]` of a block as the GEMM's B.
struct Transformed<'a> {
    /// `C` rows of `ld` floats.
    v: &'a [f32],
    ld: usize,
}

impl BSource for Transformed<'_> {
    fn fill(&self, k: usize, n0: usize, dst: &mut [f32]) {
        dst.copy_from_slice(&self.v[k * self.ld + n0..][..dst.len()]);
    }
}

impl WinogradConv {
    /// Tiles per image: `[rows, columns]`.
    fn tiles(&self) -> [usize; 2] {
        self.output.map(|v| (v as usize).div_ceil(TILE))
    }

    fn tiles_per_image(&self) -> usize {
        let [th, tw] = self.tiles();
        th * tw
    }

    /// Tiles per block: the largest multiple of the ISA's NR whose V and M
    /// fit [`BLOCK_BYTES`], at least one panel and at most [`MAX_BLOCK`].
    pub fn block_tiles(&self) -> usize {
        let nr = self.isa.nr();
        let per_tile = 4 * XI * (self.in_channels + self.out_channels) as usize;
        (BLOCK_BYTES / per_tile / nr * nr).clamp(nr, MAX_BLOCK.max(nr))
    }

    /// The block width a part of `items` tiles uses.
    fn part_block(&self, items: usize) -> usize {
        self.block_tiles().min(items).min(self.tiles_per_image())
    }

    /// Input transform of tiles `t0..t0+n` of one image (`x`, C planes)
    /// into `v[ξ][c][ld]`, `LANES` tiles at a time (`ld` a multiple of it).
    #[inline(always)]
    fn transform_block_impl(&self, x: &[f32], t0: usize, n: usize, ld: usize, v: &mut [f32]) {
        let c = self.in_channels as usize;
        let [ih, iw] = self.input.map(|d| d as usize);
        let [ph, pw] = self.pad_begin.map(|d| d as isize);
        let tw = self.tiles()[1];
        for ci in 0..c {
            let plane = &x[ci * ih * iw..][..ih * iw];
            for g0 in (0..n).step_by(LANES) {
                let mut d = [[[0.0f32; LANES]; ALPHA]; ALPHA];
                for l in 0..LANES.min(n - g0) {
                    let (ty, tx) = ((t0 + g0 + l) / tw, (t0 + g0 + l) % tw);
                    let (y0, x0) = ((ty * TILE) as isize - ph, (tx * TILE) as isize - pw);
                    load_patch(plane, [ih, iw], [y0, x0], &mut d, l);
                }
                let r = input_transform(&d);
                for (xi, row) in r.iter().flatten().enumerate() {
                    v[(xi * c + ci) * ld + g0..][..LANES].copy_from_slice(row);
                }
            }
        }
    }

    /// Output transform of the block's tiles from `m[ξ][k][ld]`, with the
    /// epilogue, into its image of Y, `LANES` tiles at a time.
    ///
    /// # Safety
    /// `y` is Y's first element and this part owns the block's tiles in
    /// every channel of image `img`.
    #[inline(always)]
    unsafe fn finish_block_impl(&self, io: &Io, blk: Block, m: &[f32], y: *mut f32) {
        let Block { img, t0, n, ld } = blk;
        let k = self.out_channels as usize;
        let [oh, ow] = self.output.map(|d| d as usize);
        let tw = self.tiles()[1];
        // SAFETY: inputs are not written during the step (the run contract).
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        // SAFETY: as above.
        let residual = self.epilogue.residual.then(|| unsafe { io.inputs[2 + usize::from(self.epilogue.bias)].f32() });
        let act = self.epilogue.activation;
        for ko in 0..k {
            let base = (img * k + ko) * oh * ow;
            let b = bias.map_or(0.0, |bv| bv[ko]);
            for g0 in (0..n).step_by(LANES) {
                let tile: [[Lanes; ALPHA]; ALPHA] = std::array::from_fn(|i| std::array::from_fn(|j| m[((i * ALPHA + j) * k + ko) * ld + g0..][..LANES].try_into().unwrap()));
                let out = output_transform(&tile);
                for l in 0..LANES.min(n - g0) {
                    let (ty, tx) = ((t0 + g0 + l) / tw, (t0 + g0 + l) % tw);
                    let (oy0, ox0) = (ty * TILE, tx * TILE);
                    let cols = TILE.min(ow - ox0);
                    for (r, orow) in out.iter().enumerate().take(TILE.min(oh - oy0)) {
                        let at = base + (oy0 + r) * ow + ox0;
                        // SAFETY: `at..at + cols` lies in row oy0 + r of
                        // channel ko of image img, inside this part's tile.
                        let dst = unsafe { std::slice::from_raw_parts_mut(y.add(at), cols) };
                        for (j, o) in dst.iter_mut().enumerate() {
                            *o = orow[j][l] + b;
                        }
                        if let Some(res) = residual {
                            dst.iter_mut().zip(&res[at..at + cols]).for_each(|(o, rv)| *o += rv);
                        }
                        crate::epilogue::activate_in_place(act, dst);
                    }
                }
            }
        }
    }

    /// [`Self::transform_block_impl`] compiled for the kernel's ISA.
    fn transform_block(&self, x: &[f32], t0: usize, n: usize, ld: usize, v: &mut [f32]) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the packed GEMM of the same step asserts the ISA first;
            // the runtime refuses an artifact whose arch the CPU lacks.
            Isa::Avx512 if Isa::Avx512.available() => unsafe { simd::transform_avx512(self, x, t0, n, ld, v) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 if Isa::Avx2.available() => unsafe { simd::transform_avx2(self, x, t0, n, ld, v) },
            _ => self.transform_block_impl(x, t0, n, ld, v),
        }
    }

    /// [`Self::finish_block_impl`] compiled for the kernel's ISA.
    ///
    /// # Safety
    /// As [`Self::finish_block_impl`].
    unsafe fn finish_block(&self, io: &Io, blk: Block, m: &[f32], y: *mut f32) {
        // SAFETY: the caller's contract; the ISA is present (checked).
        unsafe {
            match self.isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 if Isa::Avx512.available() => simd::finish_avx512(self, io, blk, m, y),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 if Isa::Avx2.available() => simd::finish_avx2(self, io, blk, m, y),
                _ => self.finish_block_impl(io, blk, m, y),
            }
        }
    }

    /// Runs tiles `t0..t0+n` of image `img` as one block.
    ///
    /// # Safety
    /// As [`KernelImpl::run`]; this part owns these tiles.
    unsafe fn run_block(&self, io: &Io, img: usize, t0: usize, n: usize, tb: usize, scratch: &mut [f32]) {
        let (c, k) = (self.in_channels as usize, self.out_channels as usize);
        let plane_in = (self.input[0] * self.input[1]) as usize;
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, u) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        let ld = tb.next_multiple_of(LANES);
        let (v, rest) = scratch.split_at_mut(XI * c * ld);
        let (m, gemm_scratch) = rest.split_at_mut(XI * k * ld);
        self.transform_block(&x[img * c * plane_in..][..c * plane_in], t0, n, ld, v);
        let a_len = packed::pack::packed_a_len(k, c, self.isa);
        for xi in 0..XI {
            let call =
                GemmCall { m: k, k: c, n, a: &u[xi * a_len..][..a_len], c: m[xi * k * ld..][..k * ld].as_mut_ptr(), ldc: ld, bias: None, residual: std::ptr::null(), act: crate::Activation::None };
            let src = Transformed { v: &v[xi * c * ld..][..c * ld], ld };
            // SAFETY: C is this block's M[ξ] (k rows of ld ≥ n floats) in
            // the scratch; the GEMM scratch holds scratch_floats(c, tb).
            unsafe { packed::gemm(self.isa, &call, &src, gemm_scratch) };
        }
        let y = &io.outputs[0];
        let out_len = (self.batch * self.out_channels * self.output[0] * self.output[1]) as usize;
        assert!(out_len <= y.len_bytes() / 4, "winograd output is too small");
        // SAFETY: Y holds out_len floats; this part owns the tiles.
        unsafe { self.finish_block(io, Block { img, t0, n, ld }, m, y.as_ptr() as *mut f32) };
    }
}

/// Lane `l` of `d` = the 6×6 patch at `(y0, x0)` of a `[ih, iw]` plane,
/// zeros outside it (`d` is zero on entry).
#[inline(always)]
fn load_patch(plane: &[f32], [ih, iw]: [usize; 2], [y0, x0]: [isize; 2], d: &mut [[Lanes; ALPHA]; ALPHA], l: usize) {
    let inside_x = x0 >= 0 && x0 + ALPHA as isize <= iw as isize;
    for (i, row) in d.iter_mut().enumerate() {
        let yy = y0 + i as isize;
        if yy < 0 || yy >= ih as isize {
            continue;
        }
        let src = &plane[yy as usize * iw..][..iw];
        if inside_x {
            for (v, &s) in row.iter_mut().zip(&src[x0 as usize..][..ALPHA]) {
                v[l] = s;
            }
        } else {
            for (j, v) in row.iter_mut().enumerate() {
                let xx = x0 + j as isize;
                if xx >= 0 && xx < iw as isize {
                    v[l] = src[xx as usize];
                }
            }
        }
    }
}

/// The transforms compiled with AVX-512 or AVX2 enabled (the same code,
/// vectorised across the lanes at the wider width).
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{Block, WinogradConv};
    use crate::Io;

    #[target_feature(enable = "avx512f")]
    pub(super) fn transform_avx512(k: &WinogradConv, x: &[f32], t0: usize, n: usize, ld: usize, v: &mut [f32]) {
        k.transform_block_impl(x, t0, n, ld, v)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn transform_avx2(k: &WinogradConv, x: &[f32], t0: usize, n: usize, ld: usize, v: &mut [f32]) {
        k.transform_block_impl(x, t0, n, ld, v)
    }

    /// # Safety
    /// As [`WinogradConv::finish_block_impl`]; the CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn finish_avx512(k: &WinogradConv, io: &Io, blk: Block, m: &[f32], y: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe { k.finish_block_impl(io, blk, m, y) }
    }

    /// # Safety
    /// As [`WinogradConv::finish_block_impl`]; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn finish_avx2(k: &WinogradConv, io: &Io, blk: Block, m: &[f32], y: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe { k.finish_block_impl(io, blk, m, y) }
    }
}

impl KernelImpl for WinogradConv {
    fn name(&self) -> String {
        format!("f32_conv2d_winograd4x4_{}", self.isa.name())
    }

    /// Tiles of every image, image by image.
    fn work_items(&self) -> u64 {
        self.batch * self.tiles_per_image() as u64
    }

    fn scratch_bytes(&self, items: u64) -> usize {
        if items == 0 {
            return 0;
        }
        let tb = self.part_block(items as usize);
        let (c, k) = (self.in_channels as usize, self.out_channels as usize);
        4 * (XI * (c + k) * tb.next_multiple_of(LANES) + packed::scratch_floats(self.isa, c, tb))
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
        let per_image = self.tiles_per_image();
        let tb = self.part_block(p1 - p0);
        let mut item = p0;
        while item < p1 {
            let (img, t) = (item / per_image, item % per_image);
            let n = tb.min(per_image - t).min(p1 - item);
            // SAFETY: this part owns tiles t..t+n of image img.
            unsafe { self.run_block(io, img, t, n, tb, scratch) };
            item += n;
        }
    }
}

#[cfg(test)]
mod tests;
