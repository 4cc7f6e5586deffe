//! The AVX-512 microkernel: an 8×32 tile, 16 zmm accumulators (of 32
//! registers) plus two B vectors and one broadcast of A per row. 16
//! independent FMA chains cover the 4-cycle latency on two FMA ports, and
//! each K step loads 2 vectors and 8 scalars for 16 FMAs.

use super::{activate_scalar, simd_tile, Micro, PwAct, TileEpi};
use std::arch::x86_64::*;

simd_tile!(
    Avx512,
    "avx512f",
    mr = 8,
    lanes = 16,
    __m512,
    zero = _mm512_setzero_ps,
    load = _mm512_loadu_ps,
    store = _mm512_storeu_ps,
    set1 = _mm512_set1_ps,
    fmadd = _mm512_fmadd_ps,
    add = _mm512_add_ps,
    mul = _mm512_mul_ps,
    max = _mm512_max_ps,
    min = _mm512_min_ps
);
