//! The input and output transforms of F(4×4, 3×3), vectorised across a
//! *segment*: up to [`LANES`] consecutive tiles of one tile row, one tile
//! per lane.
//!
//! Tiles of a row start 4 columns apart, so lane `l` of a segment needs
//! columns `4l .. 4l + 6` of each input row: [`TileVec::phases`] splits a
//! row run into the six vectors `e[j][l] = row[4l + j]` (a few permutes on
//! AVX-512), the 1-D transform `Bᵀ` runs on those (horizontally), then once
//! more across the six rows (vertically). The output transform mirrors it:
//! `Aᵀ` down the columns, then along the rows, and
//! [`TileVec::interleave`] turns the four per-column vectors of an output
//! row back into its 64 consecutive floats, where bias, residual and the
//! activation are applied before one store.
//!
//! F(2×2, 3×3) ([`input_channel_2x2`], [`output_channel_2x2`]) is the same
//! scheme on tiles 2 columns apart: four phases of a row run, two output
//! floats a lane.
//!
//! The algorithm is written once over [`TileVec`]: the portable twin is an
//! array of 16 floats, AVX2 two ymm registers ([`Ymm2`]), AVX-512 a zmm
//! register.

use crate::packed::PwAct;

/// Tiles of one segment.
pub(super) const LANES: usize = 16;
/// Positions of a transformed tile side.
const ALPHA: usize = 6;
/// Outputs per tile side.
const TILE: usize = 4;

/// A vector of `LANES` f32 (one per tile of a segment) and what the
/// transforms need of it.
pub(super) trait TileVec: Copy {
    fn splat(v: f32) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    /// `self · c + o`.
    fn mul_add(self, c: f32, o: Self) -> Self;
    /// A piecewise-linear activation, lane by lane.
    fn act(self, a: PwAct) -> Self;
    /// The first `n` (≤ `LANES`) floats at `p`, zeros after.
    ///
    /// # Safety
    /// `p` is readable for `n` floats.
    unsafe fn load_part(p: *const f32, n: usize) -> Self;
    /// Stores the first `n` (≤ `LANES`) lanes at `p`.
    ///
    /// # Safety
    /// `p` is writable for `n` floats.
    unsafe fn store_part(self, p: *mut f32, n: usize);
    /// Lanes `from..to` as a store mask ([`TileVec::store_lanes`]).
    type Mask: Copy;
    fn lanes_mask(from: usize, to: usize) -> Self::Mask;
    /// Stores the lanes of `m` (from [`TileVec::lanes_mask`]`(from, to)`)
    /// at `p + from .. p + to` (`p` itself need not point into the buffer);
    /// the other floats of `p + 8⌊from/8⌋ .. p + 8⌈to/8⌉` may be read and
    /// written back unchanged (AVX2 blends rather than masks its stores).
    ///
    /// # Safety
    /// `p + 8⌊from/8⌋ .. p + 8⌈to/8⌉` is readable and writable, and no
    /// other thread touches it meanwhile. ([`PackedV::store`]: a piece
    /// starting past lane 0 starts a panel other than the first, and each
    /// position's panels have [`super::SKEW`] ≥ 8 floats after them.)
    unsafe fn store_lanes(self, p: *mut f32, m: Self::Mask);
    /// `e[j][l] = p[4l + j]` for `j < 6` where `lo <= 4l + j < hi`, zero
    /// elsewhere (`hi <= 4·LANES + 2`): a row run whose ends may lie in the
    /// padding (`p` itself need not point into the row).
    ///
    /// # Safety
    /// `p + lo .. p + hi` is readable.
    unsafe fn phases(p: *const f32, lo: usize, hi: usize) -> [Self; ALPHA];
    /// `out[4l + c] = o[c][l]` as four vectors of 16 consecutive floats.
    fn interleave(o: [Self; TILE]) -> [Self; TILE];
    /// [`TileVec::phases`] for F(2×2, 3×3): `e[j][l] = p[2l + j]` for
    /// `j < 4` where `lo <= 2l + j < hi` (`hi <= 2·LANES + 2`).
    ///
    /// # Safety
    /// `p + lo .. p + hi` is readable.
    unsafe fn phases_2x2(p: *const f32, lo: usize, hi: usize) -> [Self; 4];
    /// `out[2l + c] = o[c][l]` as two vectors of 16 consecutive floats.
    fn interleave_2x2(o: [Self; 2]) -> [Self; 2];
}

/// `Bᵀ x` of one 6-vector (points 0, ±1, ±2, ∞).
#[inline(always)]
fn bt<T: TileVec>(x: &[T; ALPHA]) -> [T; ALPHA] {
    let x42 = x[4].sub(x[2]);
    [
        x[2].mul_add(-5.0, x[0].mul_add(4.0, x[4])),
        x[1].add(x[2]).mul_add(-4.0, x[3].add(x[4])),
        x[1].sub(x[2]).mul_add(4.0, x[4].sub(x[3])),
        x[3].sub(x[1]).mul_add(2.0, x42),
        x[1].sub(x[3]).mul_add(2.0, x42),
        x[3].mul_add(-5.0, x[1].mul_add(4.0, x[5])),
    ]
}

/// `Aᵀ m` of one 6-vector.
#[inline(always)]
fn at<T: TileVec>(m: &[T; ALPHA]) -> [T; TILE] {
    let (s12, d12) = (m[1].add(m[2]), m[1].sub(m[2]));
    let (s34, d34) = (m[3].add(m[4]), m[3].sub(m[4]));
    [m[0].add(s12).add(s34), d34.mul_add(2.0, d12), s34.mul_add(4.0, s12), d34.mul_add(8.0, d12.add(m[5]))]
}

/// `Bᵀ x` of one 4-vector for F(2×2, 3×3) (points 0, ±1, ∞).
#[inline(always)]
fn bt_2x2<T: TileVec>(x: &[T; 4]) -> [T; 4] {
    [x[0].sub(x[2]), x[1].add(x[2]), x[2].sub(x[1]), x[1].sub(x[3])]
}

/// `Aᵀ m` of one 4-vector for F(2×2, 3×3).
#[inline(always)]
fn at_2x2<T: TileVec>(m: &[T; 4]) -> [T; 2] {
    [m[0].add(m[1]).add(m[2]), m[1].sub(m[2]).sub(m[3])]
}

/// The geometry the transforms need.
#[derive(Clone, Copy)]
pub(super) struct Geometry {
    /// `[h, w]` of an input plane.
    pub input: [usize; 2],
    /// Zero rows and columns before the input.
    pub pad: [usize; 2],
    /// `[oh, ow]` of an output plane.
    pub output: [usize; 2],
    /// Tiles per tile row.
    pub tw: usize,
}

/// Up to `LANES` consecutive tiles of tile row `ty` from column `tx`, at
/// offset `d` of its block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Segment {
    pub ty: usize,
    pub tx: usize,
    pub len: usize,
    pub d: usize,
}

/// The segments of tiles `t0..t0 + n` of an image with `tw` tiles a row.
pub(super) fn segments(tw: usize, t0: usize, n: usize) -> impl Iterator<Item = Segment> {
    let mut d = 0;
    std::iter::from_fn(move || {
        (d < n).then(|| {
            let t = t0 + d;
            let (ty, tx) = (t / tw, t % tw);
            let len = LANES.min(tw - tx).min(n - d);
            let s = Segment { ty, tx, len, d };
            d += len;
            s
        })
    })
}

/// Where a block's transformed input goes: `V[ξ]` for the 36 positions,
/// each packed as the GEMM's B (`[panel][C][NR]`, tile `d` in column
/// `d mod NR` of panel `d / NR`).
pub(super) struct PackedV {
    pub v: *mut f32,
    /// Floats from `V[ξ]` to `V[ξ + 1]`.
    pub stride: usize,
    pub channels: usize,
    pub nr: usize,
}

impl PackedV {
    /// How tiles `d..d + len` fall into panels: lanes `from..to` go to
    /// panel `p` from column `o` (at most three pieces: NR ≥ 8).
    #[inline(always)]
    fn pieces(&self, d: usize, len: usize) -> ([Piece; 3], usize) {
        let mut out = [Piece::default(); 3];
        let (mut l, mut count) = (0, 0);
        while l < len {
            let (p, o) = ((d + l) / self.nr, (d + l) % self.nr);
            let take = (self.nr - o).min(len - l);
            out[count] = Piece { from: l, to: l + take, at: p * self.channels * self.nr + o };
            (l, count) = (l + take, count + 1);
        }
        (out, count)
    }

    /// [`Self::pieces`] as store masks and where lane 0 of each goes
    /// (before the channel's row and the position), worked out once a
    /// segment: per store they cost more than the store (36 a segment).
    #[inline(always)]
    fn masked_pieces<T: TileVec>(&self, d: usize, len: usize) -> ([(T::Mask, isize); 3], usize) {
        let (pieces, n) = self.pieces(d, len);
        // (A loop, not `array::map`: its closure was not inlined, and the
        // AVX2 mask's intrinsics became calls.)
        let mut out = [(T::lanes_mask(0, 0), 0isize); 3];
        for (o, pc) in out.iter_mut().zip(pieces).take(n) {
            *o = (T::lanes_mask(pc.from, pc.to), pc.at as isize - pc.from as isize);
        }
        (out, n)
    }

    /// Stores the lanes of `x` as the tiles `pieces` place of channel `c` of `V[xi]`.
    ///
    /// # Safety
    /// `v` holds 36 strides of `panels · channels · nr` floats; the pieces come from
    /// [`Self::masked_pieces`] for tiles inside the panels.
    #[inline(always)]
    unsafe fn store<T: TileVec>(&self, x: T, xi: usize, c: usize, pieces: &[(T::Mask, isize)]) {
        let base = self.v.wrapping_add(xi * self.stride + c * self.nr);
        for &(m, at) in pieces {
            // SAFETY: the piece's lanes go inside the panel's row c.
            unsafe { x.store_lanes(base.wrapping_offset(at), m) };
        }
    }
}

/// Lanes `from..to` of a segment go `at` floats into a position's `V`
/// (before the channel's row offset).
#[derive(Clone, Copy, Default)]
pub(super) struct Piece {
    from: usize,
    to: usize,
    at: usize,
}

/// The input transform of channel `c` (its `plane`) for tiles `t0..t0+n`
/// of an image into `V`.
///
/// # Safety
/// As [`PackedV::store`] for the block's `n` tiles; `plane` is the input plane.
#[inline(always)]
pub(super) unsafe fn input_channel<T: TileVec>(g: &Geometry, plane: &[f32], c: usize, t0: usize, n: usize, v: &PackedV) {
    let [ih, iw] = g.input;
    let zero = [T::splat(0.0); ALPHA];
    for s in segments(g.tw, t0, n) {
        // Columns x0 .. x0 + count of each input row (before the padding).
        let x0 = (TILE * s.tx) as isize - g.pad[1] as isize;
        let count = TILE * s.len + 2;
        // The part of the run inside the row.
        let (lo, hi) = ((-x0).max(0) as usize, count.min((iw as isize - x0).max(0) as usize));
        let (pieces, n_pieces) = v.masked_pieces::<T>(s.d, s.len);
        let mut rows = [zero; ALPHA];
        for (i, h) in rows.iter_mut().enumerate() {
            let y = (TILE * s.ty + i) as isize - g.pad[0] as isize;
            if y < 0 || y >= ih as isize {
                continue;
            }
            let row = &plane[y as usize * iw..][..iw];
            // SAFETY: run floats lo..hi are row columns x0+lo .. x0+hi, inside the row.
            let e = unsafe { T::phases(row.as_ptr().wrapping_offset(x0), lo, hi) };
            *h = bt(&e);
        }
        // Column j of every row (indexing, not `map`: copying the rows measured slower).
        #[allow(clippy::needless_range_loop)]
        for j in 0..ALPHA {
            let col = bt(&std::array::from_fn(|i| rows[i][j]));
            for (i, &x) in col.iter().enumerate() {
                // SAFETY: the caller's contract.
                unsafe { v.store(x, i * ALPHA + j, c, &pieces[..n_pieces]) };
            }
        }
    }
}

/// What the output transform adds and applies.
pub(super) struct Finish<'a> {
    pub bias: f32,
    /// The residual plane of this channel (Y's layout), if any.
    pub residual: Option<&'a [f32]>,
    /// The activation in registers, or `None` for a pass over the rows after.
    pub act: Option<PwAct>,
    pub full_act: crate::Activation,
}

/// The output transform of channel `k`'s tiles `t0..t0+n` (from `m[ξ]`,
/// `stride` floats apart, each `K` rows of `ld` floats) into its output `plane`.
///
/// # Safety
/// `m` holds the 36 GEMM outputs of the block; `plane` is Y's plane of
/// this channel, written only at this block's tiles.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn output_channel<T: TileVec>(g: &Geometry, m: &[f32], k: usize, stride: usize, ld: usize, t0: usize, n: usize, plane: *mut f32, f: &Finish) {
    let [oh, ow] = g.output;
    for s in segments(g.tw, t0, n) {
        // (A loop: `from_fn`'s closure was not inlined on AVX2.)
        let mut mv = [T::splat(0.0); 36];
        for (xi, x) in mv.iter_mut().enumerate() {
            prefetch_next(m.as_ptr().wrapping_add(xi * stride + (k + 1) * ld + s.d));
            // Whole 16-float loads, lanes past the segment's columns
            // dropped at the stores: with masked loads of a segment's
            // columns SqueezeNet's and ResNet's layers ran 3-9 % slower
            // (Zen 3, interleaved).
            // SAFETY: row (ξ, k) of M holds the block's n ≥ d + len columns;
            // the 16 floats from d lie inside M (d < ld, and each M[ξ] ends
            // LANES floats of skew after its last row).
            *x = unsafe { T::load_part(m.as_ptr().add(xi * stride + k * ld + s.d), LANES) };
        }
        let mut cols = [[T::splat(0.0); ALPHA]; TILE];
        for j in 0..ALPHA {
            let r = at(&std::array::from_fn(|i| mv[i * ALPHA + j]));
            for (i, &x) in r.iter().enumerate() {
                cols[i][j] = x;
            }
        }
        let (ox, count) = (TILE * s.tx, (TILE * s.len).min(ow - TILE * s.tx));
        for (i, row) in cols.iter().enumerate().take(oh - TILE * s.ty) {
            let mut o = at(row);
            o.iter_mut().for_each(|x| *x = x.add(T::splat(f.bias)));
            let at_row = (TILE * s.ty + i) * ow + ox;
            // SAFETY: the caller's contract: this output row run is the block's.
            unsafe { store_row(T::interleave(o), at_row, count, plane, f) };
        }
    }
}

/// Prefetches the 16 floats at `p` into L1 (a hint: `p` need not be valid).
/// The output transforms ask for the next channel's rows of `M` this way:
/// each channel reads 36 (or 16) rows a whole `M[ξ]` apart, more streams
/// than the hardware prefetchers follow.
#[inline(always)]
fn prefetch_next(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(15) as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Stores one output row run of a segment: `count` floats from `at_row`
/// (the vectors hold 16 consecutive floats each), with the residual and the
/// activation.
///
/// # Safety
/// `plane + at_row ..+ count` (and the residual's run) is this block's.
#[inline(always)]
unsafe fn store_row<T: TileVec, const N: usize>(xs: [T; N], at_row: usize, count: usize, plane: *mut f32, f: &Finish) {
    for (q, mut x) in xs.into_iter().enumerate() {
        let nq = count.saturating_sub(16 * q).min(16);
        if nq == 0 {
            break;
        }
        let at = at_row + 16 * q;
        // SAFETY: at..at+nq lies in this block's output row (and the residual's).
        unsafe {
            if let Some(r) = f.residual {
                x = x.add(T::load_part(r.as_ptr().add(at), nq));
            }
            if let Some(a) = f.act {
                x = x.act(a);
            }
            x.store_part(plane.add(at), nq);
        }
    }
    if f.act.is_none() {
        // SAFETY: the row run just written, owned by this block.
        crate::epilogue::activate_in_place(f.full_act, unsafe { std::slice::from_raw_parts_mut(plane.add(at_row), count) });
    }
}

/// [`input_channel`] for F(2×2, 3×3): 2×2 tiles of 4×4 patches into the
/// 16 positions of `V`.
///
/// # Safety
/// As [`input_channel`].
#[inline(always)]
pub(super) unsafe fn input_channel_2x2<T: TileVec>(g: &Geometry, plane: &[f32], c: usize, t0: usize, n: usize, v: &PackedV) {
    let [ih, iw] = g.input;
    let zero = [T::splat(0.0); 4];
    for s in segments(g.tw, t0, n) {
        let x0 = (2 * s.tx) as isize - g.pad[1] as isize;
        let count = 2 * s.len + 2;
        let (lo, hi) = ((-x0).max(0) as usize, count.min((iw as isize - x0).max(0) as usize));
        let (pieces, n_pieces) = v.masked_pieces::<T>(s.d, s.len);
        let mut rows = [zero; 4];
        for (i, h) in rows.iter_mut().enumerate() {
            let y = (2 * s.ty + i) as isize - g.pad[0] as isize;
            if y < 0 || y >= ih as isize {
                continue;
            }
            let row = &plane[y as usize * iw..][..iw];
            // SAFETY: run floats lo..hi are row columns x0+lo .. x0+hi, inside the row.
            let e = unsafe { T::phases_2x2(row.as_ptr().wrapping_offset(x0), lo, hi) };
            *h = bt_2x2(&e);
        }
        #[allow(clippy::needless_range_loop)]
        for j in 0..4 {
            let col = bt_2x2(&std::array::from_fn(|i| rows[i][j]));
            for (i, &x) in col.iter().enumerate() {
                // SAFETY: the caller's contract.
                unsafe { v.store(x, i * 4 + j, c, &pieces[..n_pieces]) };
            }
        }
    }
}

/// [`output_channel`] for F(2×2, 3×3) (`m` holds 16 positions).
///
/// # Safety
/// As [`output_channel`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn output_channel_2x2<T: TileVec>(g: &Geometry, m: &[f32], k: usize, stride: usize, ld: usize, t0: usize, n: usize, plane: *mut f32, f: &Finish) {
    let [oh, ow] = g.output;
    for s in segments(g.tw, t0, n) {
        // (A loop: `from_fn`'s closure was not inlined on AVX2.)
        let mut mv = [T::splat(0.0); 16];
        for (xi, x) in mv.iter_mut().enumerate() {
            prefetch_next(m.as_ptr().wrapping_add(xi * stride + (k + 1) * ld + s.d));
            // Whole 16-float loads, lanes past the segment's columns
            // dropped at the stores: with masked loads of a segment's
            // columns SqueezeNet's and ResNet's layers ran 3-9 % slower
            // (Zen 3, interleaved).
            // SAFETY: row (ξ, k) of M holds the block's n ≥ d + len columns;
            // the 16 floats from d lie inside M (d < ld, and each M[ξ] ends
            // LANES floats of skew after its last row).
            *x = unsafe { T::load_part(m.as_ptr().add(xi * stride + k * ld + s.d), LANES) };
        }
        let mut cols = [[T::splat(0.0); 4]; 2];
        for j in 0..4 {
            let r = at_2x2(&std::array::from_fn(|i| mv[i * 4 + j]));
            cols[0][j] = r[0];
            cols[1][j] = r[1];
        }
        let (ox, count) = (2 * s.tx, (2 * s.len).min(ow - 2 * s.tx));
        for (i, row) in cols.iter().enumerate().take(oh - 2 * s.ty) {
            let mut o = at_2x2(row);
            o.iter_mut().for_each(|x| *x = x.add(T::splat(f.bias)));
            let at_row = (2 * s.ty + i) * ow + ox;
            // SAFETY: the caller's contract: this output row run is the block's.
            unsafe { store_row(T::interleave_2x2(o), at_row, count, plane, f) };
        }
    }
}

/// The portable vector: 16 floats the compiler vectorises.
pub(super) type Lanes = [f32; LANES];

impl TileVec for Lanes {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        [v; LANES]
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        std::array::from_fn(|l| self[l] + o[l])
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        std::array::from_fn(|l| self[l] - o[l])
    }
    #[inline(always)]
    fn mul_add(self, c: f32, o: Self) -> Self {
        std::array::from_fn(|l| self[l] * c + o[l])
    }
    #[inline(always)]
    fn act(self, a: PwAct) -> Self {
        self.map(|x| a.apply(x))
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self {
        let mut v = [0.0; LANES];
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), n) };
        v
    }
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(self.as_ptr(), p, n) };
    }
    type Mask = (usize, usize);
    #[inline(always)]
    fn lanes_mask(from: usize, to: usize) -> (usize, usize) {
        (from, to)
    }
    #[inline(always)]
    unsafe fn store_lanes(self, p: *mut f32, (from, to): (usize, usize)) {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(self[from..to].as_ptr(), p.wrapping_add(from), to - from) };
    }
    #[inline(always)]
    unsafe fn phases(p: *const f32, lo: usize, hi: usize) -> [Self; ALPHA] {
        let mut run = [0.0f32; TILE * LANES + 2];
        if lo < hi {
            // SAFETY: the caller's contract.
            unsafe { std::ptr::copy_nonoverlapping(p.wrapping_add(lo), run[lo..].as_mut_ptr(), hi - lo) };
        }
        std::array::from_fn(|j| std::array::from_fn(|l| run[TILE * l + j]))
    }
    #[inline(always)]
    fn interleave(o: [Self; TILE]) -> [Self; TILE] {
        std::array::from_fn(|q| std::array::from_fn(|k| o[k % TILE][(16 * q + k) / TILE]))
    }
    #[inline(always)]
    unsafe fn phases_2x2(p: *const f32, lo: usize, hi: usize) -> [Self; 4] {
        let mut run = [0.0f32; 2 * LANES + 2];
        if lo < hi {
            // SAFETY: the caller's contract.
            unsafe { std::ptr::copy_nonoverlapping(p.wrapping_add(lo), run[lo..].as_mut_ptr(), hi - lo) };
        }
        std::array::from_fn(|j| std::array::from_fn(|l| run[2 * l + j]))
    }
    #[inline(always)]
    fn interleave_2x2(o: [Self; 2]) -> [Self; 2] {
        std::array::from_fn(|q| std::array::from_fn(|k| o[k % 2][(16 * q + k) / 2]))
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::Zmm;
#[cfg(target_arch = "x86_64")]
pub(super) use ymm::Ymm2;

#[cfg(target_arch = "x86_64")]
mod ymm;

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The AVX-512 vector. Its intrinsics run unconditionally: it is only
    //! used inside the kernel's AVX-512 `#[target_feature]` entry points,
    //! after the CPU was checked.
    use super::{TileVec, ALPHA, TILE};
    use crate::packed::PwAct;
    use std::arch::x86_64::*;

    /// Sixteen lanes (AVX-512F).
    #[derive(Clone, Copy)]
    pub(in crate::winograd) struct Zmm(__m512);

    /// Runs intrinsics; see the module doc for why this is sound.
    macro_rules! isa {
        ($e:expr) => {
            // SAFETY: the CPU has AVX-512F (checked before any Zmm exists).
            unsafe { $e }
        };
    }

    /// The mask of lanes `from..to`.
    #[inline(always)]
    fn lanes(from: usize, to: usize) -> __mmask16 {
        (((1u32 << to) - 1) & !((1u32 << from) - 1)) as __mmask16
    }

    /// An index vector.
    #[inline(always)]
    fn idx(v: [i32; 16]) -> __m512i {
        // SAFETY: an unaligned load of 16 i32 from the array.
        isa!(_mm512_loadu_si512(v.as_ptr().cast()))
    }

    impl TileVec for Zmm {
        #[inline(always)]
        fn splat(v: f32) -> Self {
            Zmm(isa!(_mm512_set1_ps(v)))
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Zmm(isa!(_mm512_add_ps(self.0, o.0)))
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            Zmm(isa!(_mm512_sub_ps(self.0, o.0)))
        }
        #[inline(always)]
        fn mul_add(self, c: f32, o: Self) -> Self {
            Zmm(isa!(_mm512_fmadd_ps(self.0, _mm512_set1_ps(c), o.0)))
        }
        #[inline(always)]
        fn act(self, a: PwAct) -> Self {
            let x = self.0;
            Zmm(match a {
                PwAct::Identity => x,
                PwAct::Clamp { alpha, beta, lo, hi, times_x } => {
                    let t = isa!(_mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(alpha), _mm512_set1_ps(beta)), _mm512_set1_ps(lo)), _mm512_set1_ps(hi)));
                    if times_x {
                        isa!(_mm512_mul_ps(t, x))
                    } else {
                        t
                    }
                }
                PwAct::Leaky { alpha } => isa!(_mm512_add_ps(_mm512_max_ps(x, _mm512_setzero_ps()), _mm512_mul_ps(_mm512_set1_ps(alpha), _mm512_min_ps(x, _mm512_setzero_ps())))),
            })
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize) -> Self {
            // SAFETY: masked-off lanes are not read.
            Zmm(unsafe { _mm512_maskz_loadu_ps(lanes(0, n), p) })
        }
        #[inline(always)]
        unsafe fn store_part(self, p: *mut f32, n: usize) {
            // SAFETY: masked-off lanes are not written.
            unsafe { _mm512_mask_storeu_ps(p, lanes(0, n), self.0) }
        }
        type Mask = __mmask16;
        #[inline(always)]
        fn lanes_mask(from: usize, to: usize) -> __mmask16 {
            lanes(from, to)
        }
        #[inline(always)]
        unsafe fn store_lanes(self, p: *mut f32, m: __mmask16) {
            // SAFETY: only the mask's lanes are written, where the caller vouches.
            unsafe { _mm512_mask_storeu_ps(p, m, self.0) }
        }
        #[inline(always)]
        unsafe fn phases(p: *const f32, lo: usize, hi: usize) -> [Self; ALPHA] {
            // The run as five vectors (the last holds floats 64 and 65).
            let v: [__m512; 5] = std::array::from_fn(|i| {
                let (a, b) = (lo.saturating_sub(16 * i).min(16), hi.saturating_sub(16 * i).min(16));
                // SAFETY: masked-off lanes are not read (their addresses may lie outside the row).
                unsafe { _mm512_maskz_loadu_ps(lanes(a, b.max(a)), p.wrapping_add(16 * i)) }
            });
            // Phase q of lanes 0..8 from v0|v1 and of lanes 8..16 from v2|v3.
            let phase = |q: i32| {
                let i = idx(std::array::from_fn(|l| (4 * l as i32 + q) % 32));
                let lo = isa!(_mm512_permutex2var_ps(v[0], i, v[1]));
                let hi = isa!(_mm512_permutex2var_ps(v[2], i, v[3]));
                isa!(_mm512_shuffle_f32x4::<0b01_00_01_00>(lo, hi))
            };
            let (e0, e1, e2, e3) = (phase(0), phase(1), phase(2), phase(3));
            // Phases 4 and 5 are 0 and 1 one tile on: lanes 1..16, then v4.
            let next = |e: __m512, last: i32| isa!(_mm512_permutex2var_ps(e, idx(std::array::from_fn(|l| if l < 15 { l as i32 + 1 } else { last })), v[4]));
            [Zmm(e0), Zmm(e1), Zmm(e2), Zmm(e3), Zmm(next(e0, 16)), Zmm(next(e1, 17))]
        }
        #[inline(always)]
        fn interleave(o: [Self; TILE]) -> [Self; TILE] {
            // Pairs (o0, o1) and (o2, o3) interleaved: lanes 2l + c = o_c[l]
            // for l of the low (a) and high (b) half.
            let pair = |x: Zmm, y: Zmm, half: i32| isa!(_mm512_permutex2var_ps(x.0, idx(std::array::from_fn(|k| 8 * half + k as i32 / 2 + 16 * (k as i32 % 2))), y.0));
            let (p01a, p01b, p23a, p23b) = (pair(o[0], o[1], 0), pair(o[0], o[1], 1), pair(o[2], o[3], 0), pair(o[2], o[3], 1));
            // Output float 4l + c: o_c[l] from the pair (c / 2), lane 2l + c % 2.
            let quad = |x: __m512, y: __m512, part: i32| {
                let i = idx(std::array::from_fn(|k| {
                    let (l, c) = (k as i32 / 4 + 4 * part, k as i32 % 4);
                    2 * l + c % 2 + 16 * (c / 2)
                }));
                Zmm(isa!(_mm512_permutex2var_ps(x, i, y)))
            };
            [quad(p01a, p23a, 0), quad(p01a, p23a, 1), quad(p01b, p23b, 0), quad(p01b, p23b, 1)]
        }
        #[inline(always)]
        unsafe fn phases_2x2(p: *const f32, lo: usize, hi: usize) -> [Self; 4] {
            // The run as three vectors (the last holds floats 32 and 33).
            let v: [__m512; 3] = std::array::from_fn(|i| {
                let (a, b) = (lo.saturating_sub(16 * i).min(16), hi.saturating_sub(16 * i).min(16));
                // SAFETY: masked-off lanes are not read (their addresses may lie outside the row).
                unsafe { _mm512_maskz_loadu_ps(lanes(a, b.max(a)), p.wrapping_add(16 * i)) }
            });
            let phase = |q: i32| isa!(_mm512_permutex2var_ps(v[0], idx(std::array::from_fn(|l| 2 * l as i32 + q)), v[1]));
            let (e0, e1) = (phase(0), phase(1));
            // Phases 2 and 3 are 0 and 1 one tile on: lanes 1..16, then v2.
            let next = |e: __m512, last: i32| isa!(_mm512_permutex2var_ps(e, idx(std::array::from_fn(|l| if l < 15 { l as i32 + 1 } else { last })), v[2]));
            [Zmm(e0), Zmm(e1), Zmm(next(e0, 16)), Zmm(next(e1, 17))]
        }
        #[inline(always)]
        fn interleave_2x2(o: [Self; 2]) -> [Self; 2] {
            // Output float 2l + c of half h: o_c[8h + l].
            let half = |h: i32| Zmm(isa!(_mm512_permutex2var_ps(o[0].0, idx(std::array::from_fn(|k| 8 * h + k as i32 / 2 + 16 * (k as i32 % 2))), o[1].0)));
            [half(0), half(1)]
        }
    }
}
