//! The portable microkernel: the same register-tile algorithm as the SIMD
//! ones in plain Rust (fixed-size accumulator arrays the compiler keeps in
//! vector registers), with the epilogue applied by [`merge_scalar`].

use super::{merge_scalar, Micro, TileEpi};

/// Tile rows: 4 × 8 accumulators fit the 16 registers of SSE2 and NEON alike.
pub(crate) const MR: usize = 4;
/// Tile columns.
pub(crate) const NR: usize = 8;

/// The portable tile.
pub(crate) struct Generic;

impl Micro for Generic {
    const MR: usize = MR;
    const NR: usize = NR;

    unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi) {
        // SAFETY: the caller's contract: a holds kc*MR floats, b kc*NR.
        let (a, b) = unsafe { (std::slice::from_raw_parts(a, kc * MR), std::slice::from_raw_parts(b, kc * NR)) };
        let mut acc = [0.0f32; MR * NR];
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for (row, &av) in acc.chunks_exact_mut(NR).zip(ap) {
                for (v, &bv) in row.iter_mut().zip(bp) {
                    *v += av * bv;
                }
            }
        }
        // SAFETY: the caller vouches for the rows × cols tile at c.
        unsafe { merge_scalar(&acc, NR, c, ldc, rows, cols, e) };
    }

    unsafe fn tile_indirect(kc: usize, a: *const f32, base: *const f32, offs: *const usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, e: &TileEpi) {
        // SAFETY: the caller's contract: a holds kc*MR floats, offs kc offsets.
        let (a, offs) = unsafe { (std::slice::from_raw_parts(a, kc * MR), std::slice::from_raw_parts(offs, kc)) };
        let mut acc = [0.0f32; MR * NR];
        for (ap, &off) in a.chunks_exact(MR).zip(offs) {
            // SAFETY: the caller's contract: each row holds NR floats.
            let bp = unsafe { std::slice::from_raw_parts(base.wrapping_add(off), NR) };
            for (row, &av) in acc.chunks_exact_mut(NR).zip(ap) {
                for (v, &bv) in row.iter_mut().zip(bp) {
                    *v += av * bv;
                }
            }
        }
        // SAFETY: the caller vouches for the rows × cols tile at c.
        unsafe { merge_scalar(&acc, NR, c, ldc, rows, cols, e) };
    }

    unsafe fn tile_packing(kc: usize, a: *const f32, src: *const f32, ld: usize, dst: *mut f32, c: *mut f32, ldc: usize, rows: usize, e: &TileEpi) {
        // SAFETY: the caller's contract: dst holds kc rows of NR, each source row NR floats.
        unsafe {
            for p in 0..kc {
                std::ptr::copy_nonoverlapping(src.add(p * ld), dst.add(p * NR), NR);
            }
            Self::tile(kc, a, dst, c, ldc, rows, NR, e);
        }
    }
}
