//! The AVX-512 microkernel: an 8×32 tile, 16 zmm accumulators (of 32
//! registers) plus two B vectors and one broadcast of A per row. 16
//! independent FMA chains cover the 4-cycle latency on two FMA ports, and
//! each K step loads 2 vectors and 8 scalars for 16 FMAs. Edge tiles merge
//! through masked loads and stores.

use super::{activate_scalar, merge_scalar, two_tiles, prefetch, prefetch_l2, simd_tile, Micro, NarrowTile, PwAct, TileEpi, A_AHEAD, NARROW_COLS, pack_ahead};
use std::arch::x86_64::*;

/// The mask of the first `n` (< 16) lanes.
#[target_feature(enable = "avx512f")]
fn first_lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// The first `n` (< 16) floats at `p`, zeros after.
///
/// # Safety
/// `p` is valid for `n` floats.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_part(p: *const f32, n: usize) -> __m512 {
    // SAFETY: masked-off lanes are not read (no fault past n).
    unsafe { _mm512_maskz_loadu_ps(first_lanes(n), p) }
}

/// Stores the first `n` (< 16) lanes of `v` at `p`.
///
/// # Safety
/// `p` is valid for writing `n` floats.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_part(p: *mut f32, n: usize, v: __m512) {
    // SAFETY: masked-off lanes are not written.
    unsafe { _mm512_mask_storeu_ps(p, first_lanes(n), v) }
}

simd_tile!(
    Avx512,
    "avx512f",
    mr = 8,
    lanes = 16,
    __m512,
    zero = _mm512_setzero_ps,
    load = _mm512_loadu_ps,
    store = _mm512_storeu_ps,
    load_part = load_part,
    store_part = store_part,
    set1 = _mm512_set1_ps,
    fmadd = _mm512_fmadd_ps,
    add = _mm512_add_ps,
    mul = _mm512_mul_ps,
    max = _mm512_max_ps,
    min = _mm512_min_ps,
    narrow = Some(narrow_tile),
    wide = true,
    column = column
);

/// A wide tile's one narrow column summed inside its K loop (see
/// `simd_tile`): the 8 rows' sums in one half vector, one FMA a step
/// beside the tile's 24.
mod column {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn zero() -> __m256 {
        _mm256_setzero_ps()
    }

    /// `sums += A's 8 rows · B's value` for one K step.
    ///
    /// # Safety
    /// `a` holds 8 floats, `b` one.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn step(sums: __m256, a: *const f32, b: *const f32) -> __m256 {
        // SAFETY: the caller's contract.
        unsafe { _mm256_fmadd_ps(_mm256_loadu_ps(a), _mm256_set1_ps(*b), sums) }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn sums(v: __m256) -> [f32; 8] {
        let mut out = [0.0f32; 8];
        // SAFETY: out holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
        out
    }
}

/// The narrow columns of a tile (see [`super::NarrowTile`]): one 8-lane
/// accumulator per column (the tile's 8 rows), one A load and one B
/// broadcast per column and step. A 17-column panel (a 7×7 map's last
/// 17 of 49) then costs 8 + 1 vector FMAs a step instead of 16.
///
/// # Safety
/// As [`super::NarrowTile`].
#[target_feature(enable = "avx512f")]
unsafe fn narrow_tile(kc: usize, a: *const f32, b: *const f32, n: usize) -> [f32; 8 * NARROW_COLS] {
    // SAFETY: the caller's contract; AVX-512F implies AVX2 and FMA.
    unsafe { super::narrow_columns::<8, { <Avx512 as Micro>::NR }>(kc, a, b, n) }
}
