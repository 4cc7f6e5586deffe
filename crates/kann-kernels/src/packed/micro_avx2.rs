//! The AVX2 + FMA microkernel: a 6×16 tile, 12 ymm accumulators (of 16
//! registers) plus two B vectors and one broadcast of A.

use super::{activate_scalar, simd_tile, Micro, PwAct, TileEpi};
use std::arch::x86_64::*;

simd_tile!(
    Avx2,
    "avx2,fma",
    mr = 6,
    lanes = 8,
    __m256,
    zero = _mm256_setzero_ps,
    load = _mm256_loadu_ps,
    store = _mm256_storeu_ps,
    set1 = _mm256_set1_ps,
    fmadd = _mm256_fmadd_ps,
    add = _mm256_add_ps,
    mul = _mm256_mul_ps,
    max = _mm256_max_ps,
    min = _mm256_min_ps
);
