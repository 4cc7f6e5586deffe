//! The AVX2 + FMA microkernel: a 6×16 tile, 12 ymm accumulators (of 16
//! registers) plus two B vectors and one broadcast of A. Edge tiles merge
//! through masked loads and stores; a tile's last 1 to 4 columns past a
//! vector run as column products ([`narrow_tile`]).

use super::{activate_scalar, merge_scalar, two_tiles, prefetch, prefetch_l2, simd_tile, Micro, NarrowTile, PwAct, TileEpi, A_AHEAD, NARROW_COLS, pack_ahead};
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
    // SAFETY: the caller's contract (6-row panels: the A loads are masked).
    unsafe { super::narrow_columns::<{ <Avx2 as Micro>::MR }, { <Avx2 as Micro>::NR }>(kc, a, b, n) }
}
