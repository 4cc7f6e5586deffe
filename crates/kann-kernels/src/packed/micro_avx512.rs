//! The AVX-512 microkernel: an 8×32 tile, 16 zmm accumulators (of 32
//! registers) plus two B vectors and one broadcast of A per row. 16
//! independent FMA chains cover the 4-cycle latency on two FMA ports, and
//! each K step loads 2 vectors and 8 scalars for 16 FMAs. Edge tiles merge
//! through masked loads and stores.

use super::{activate_scalar, prefetch, simd_tile, Micro, PwAct, TileEpi, A_AHEAD};
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
    min = _mm512_min_ps
);
