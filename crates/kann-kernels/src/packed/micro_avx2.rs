//! The AVX2 + FMA microkernel: a 6×16 tile, 12 ymm accumulators (of 16
//! registers) plus two B vectors and one broadcast of A. Edge tiles merge
//! through masked loads and stores; a tile's last 1 to 4 columns past a
//! vector run as column products ([`narrow_tile`]).

use super::{activate_scalar, merge_scalar, two_tiles, prefetch, prefetch_l2, simd_tile, Micro, NarrowTile, PwAct, TileEpi, A_AHEAD, NARROW_COLS, PACK_AHEAD};
use std::arch::x86_64::*;

/// The mask of the first `n` (< 8) lanes (all bits set in those lanes).
#[target_feature(enable = "avx2,fma")]
fn first_lanes(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// The first `n` (< 8) floats at `p`, zeros after.
///
/// # Safety
/// `p` is valid for `n` floats.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load_part(p: *const f32, n: usize) -> __m256 {
    // SAFETY: masked-off lanes are not read (no fault past n).
    unsafe { _mm256_maskload_ps(p, first_lanes(n)) }
}

/// Stores the first `n` (< 8) lanes of `v` at `p`.
///
/// # Safety
/// `p` is valid for writing `n` floats.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store_part(p: *mut f32, n: usize, v: __m256) {
    // SAFETY: masked-off lanes are not written.
    unsafe { _mm256_maskstore_ps(p, first_lanes(n), v) }
}

simd_tile!(
    Avx2,
    "avx2,fma",
    mr = 6,
    lanes = 8,
    __m256,
    zero = _mm256_setzero_ps,
    load = _mm256_loadu_ps,
    store = _mm256_storeu_ps,
    load_part = load_part,
    store_part = store_part,
    set1 = _mm256_set1_ps,
    fmadd = _mm256_fmadd_ps,
    add = _mm256_add_ps,
    mul = _mm256_mul_ps,
    max = _mm256_max_ps,
    min = _mm256_min_ps,
    narrow = Some(narrow_tile),
    wide = false
);

/// The narrow columns of a tile (see [`super::NarrowTile`], for a 6-row A
/// panel): one accumulator per column (the panel's 6 rows in 8 lanes),
/// one A load and one B broadcast per column and step. A 7×7 map's 49
/// columns were 16 + 16 + 16 + 1, the last one a whole tile's work for one
/// column (M=1000 K=512 N=49 ran at 51 GFLOP/s against N=64's 83).
///
/// # Safety
/// As [`super::NarrowTile`], with `a` holding `kc * 6` floats.
#[target_feature(enable = "avx2,fma")]
unsafe fn narrow_tile(kc: usize, a: *const f32, b: *const f32, n: usize) -> [f32; 8 * NARROW_COLS] {
    // SAFETY: the caller's contract.
    unsafe {
        match n {
            1 => narrow_n::<1>(kc, a, b),
            2 => narrow_n::<2>(kc, a, b),
            3 => narrow_n::<3>(kc, a, b),
            _ => narrow_n::<4>(kc, a, b),
        }
    }
}

/// [`narrow_tile`] for `N` columns.
#[target_feature(enable = "avx2,fma")]
unsafe fn narrow_n<const N: usize>(kc: usize, a: *const f32, b: *const f32) -> [f32; 8 * NARROW_COLS] {
    const MR: usize = <Avx2 as Micro>::MR;
    let nr = <Avx2 as Micro>::NR;
    // A step's 6 rows, read without touching the 2 floats after them (past
    // the last step they may lie past the panels' end).
    let rows = first_lanes(MR);
    // Four partial sums per column (steps p mod 4): one chain per column
    // would wait on the FMA latency every step.
    let mut acc = [[_mm256_setzero_ps(); N]; 4];
    let step = |p: usize, acc: &mut [__m256; N]| {
        // SAFETY: step p < kc of both panels; columns j < N <= n of B's row.
        unsafe {
            let av = _mm256_maskload_ps(a.add(p * MR), rows);
            for (j, s) in acc.iter_mut().enumerate() {
                *s = _mm256_fmadd_ps(av, _mm256_set1_ps(*b.add(p * nr + j)), *s);
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
