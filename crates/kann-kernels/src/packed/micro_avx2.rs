//! The AVX2 + FMA microkernel: a 6×16 tile, 12 ymm accumulators (of 16
//! registers) plus two B vectors and one broadcast of A. Edge tiles merge
//! through masked loads and stores; a tile's last 1 to 4 columns past a
//! vector run as column products ([`narrow_tile`]), and a column block's
//! last panel of 1 to 4 columns as column products of several row panels
//! at once ([`narrow_rows`]).

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
    // SAFETY: the caller's contract.
    unsafe { crate::avx2::store_first(p, v, n) }
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
    wide = false,
    narrow_rows = narrow_rows
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

/// Row panels one pass of [`narrow_rows`] takes for `n` columns: enough
/// independent sums (8 or more) to hide the FMA latency, few enough that
/// the sums, the A loads and the B broadcasts stay in the 16 registers.
const fn narrow_group(n: usize) -> usize {
    match n {
        1 => 8,
        2 => 4,
        3 => 3,
        _ => 2,
    }
}

/// [`Micro::narrow_rows`] for the 6×16 tile: a 7×7 map's 49th column, a
/// 14×14 map's last 4. Each panel's rows are one 8-lane vector (6 used),
/// each column one accumulator per panel, and the panels of a pass share
/// the B broadcasts. As each panel's own tile (one panel's column
/// products, 4 partial sums a column) the tail took 14-19 % of such GEMMs
/// for 2 % of their columns: M=1280 K=320 N=49 0.68 ms against N=48's
/// 0.59, M=384 K=64 N=196 0.18 against N=208's 0.17 (Zen 3).
///
/// # Safety
/// As [`Micro::narrow_rows`] for 6-row panels and 16-float B rows.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn narrow_rows(kc: usize, a: &[*const f32], b: *const f32, n: usize, c: *mut f32, ldc: usize, rows: usize, e: &TileEpi) {
    // SAFETY: the caller's contract, forwarded with the column count as a constant.
    unsafe {
        match n {
            1 => rows_n::<1, { narrow_group(1) }>(kc, a, b, c, ldc, rows, e),
            2 => rows_n::<2, { narrow_group(2) }>(kc, a, b, c, ldc, rows, e),
            3 => rows_n::<3, { narrow_group(3) }>(kc, a, b, c, ldc, rows, e),
            _ => rows_n::<4, { narrow_group(4) }>(kc, a, b, c, ldc, rows, e),
        }
    }
}

/// [`narrow_rows`] for `N` columns, `G` panels a pass.
///
/// # Safety
/// As [`narrow_rows`] with `n = N`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn rows_n<const N: usize, const G: usize>(kc: usize, a: &[*const f32], b: *const f32, c: *mut f32, ldc: usize, rows: usize, e: &TileEpi) {
    const MR: usize = <Avx2 as Micro>::MR;
    for (pass, group) in a.chunks(G).enumerate() {
        // A short last pass repeats its last panel (sums computed and dropped).
        let panels: [*const f32; G] = std::array::from_fn(|g| group[g.min(group.len() - 1)]);
        // SAFETY: each panel holds kc steps of MR floats; B kc rows of 16.
        let sums = unsafe { column_sums::<N, G>(kc, &panels, b) };
        for (g, cols) in sums.iter().enumerate().take(group.len()) {
            let r0 = (pass * G + g) * MR;
            let e = e.rows_from(r0, ldc);
            // SAFETY: rows r0.. of the N columns lie inside C (the caller's contract).
            unsafe { merge_columns::<N>(cols, c.add(r0 * ldc), ldc, MR.min(rows - r0), &e) };
        }
    }
}

/// `sums[g][j]` lane `i` = `Σ_p A_g[p][i] · B[p][j]`: the first `N` columns of
/// the B panel at `b` (rows 16 floats apart) times each of the `G` A panels.
///
/// # Safety
/// Each `a[g]` holds `kc` steps of 6 floats, `b` `kc` rows of 16; AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn column_sums<const N: usize, const G: usize>(kc: usize, a: &[*const f32; G], b: *const f32) -> [[__m256; N]; G] {
    let mut acc = [[_mm256_setzero_ps(); N]; G];
    // A step's 8-float load reads the next step's first 2 floats: inside
    // the panel but at its last step, which is masked.
    for p in 0..kc.saturating_sub(1) {
        // SAFETY: step p < kc - 1 reads floats p·MR..p·MR + 8 <= kc·MR of each panel.
        unsafe { column_step::<N, G, false>(p, a, b, &mut acc) };
    }
    if kc > 0 {
        // SAFETY: the last step, masked.
        unsafe { column_step::<N, G, true>(kc - 1, a, b, &mut acc) };
    }
    acc
}

/// Step `p` of [`column_sums`]: all 8 floats of each panel's step read
/// (the next step's first 2), or with `MASKED` its 6.
///
/// # Safety
/// As [`column_sums`] for step `p`; without `MASKED`, `p + 1 < kc`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn column_step<const N: usize, const G: usize, const MASKED: bool>(p: usize, a: &[*const f32; G], b: *const f32, acc: &mut [[__m256; N]; G]) {
    const MR: usize = <Avx2 as Micro>::MR;
    const NR: usize = <Avx2 as Micro>::NR;
    // SAFETY: row p of B holds N (<= 16) columns.
    let bv: [__m256; N] = std::array::from_fn(|j| _mm256_set1_ps(unsafe { *b.add(p * NR + j) }));
    for (sums, &ap) in acc.iter_mut().zip(a) {
        // SAFETY: the caller's contract (masked lanes are not read).
        let av = unsafe { if MASKED { _mm256_maskload_ps(ap.add(p * MR), first_lanes(MR)) } else { _mm256_loadu_ps(ap.add(p * MR)) } };
        for (s, &bj) in sums.iter_mut().zip(&bv) {
            *s = _mm256_fmadd_ps(av, bj, *s);
        }
    }
}

/// Merges `N` column sums (lane `i`: row `i`) into C's first `rows` (<= 6)
/// rows with the epilogue: transposed 4×4 in each half into rows `r` and
/// `r + 4` side by side, so each row is one masked 4-float access.
///
/// # Safety
/// As [`Micro::tile`] for `rows` rows of `N` columns.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn merge_columns<const N: usize>(cols: &[__m256; N], c: *mut f32, ldc: usize, rows: usize, e: &TileEpi) {
    let col = |j: usize| if j < N { cols[j] } else { _mm256_setzero_ps() };
    let (t0, t1) = (_mm256_unpacklo_ps(col(0), col(1)), _mm256_unpackhi_ps(col(0), col(1)));
    let (t2, t3) = (_mm256_unpacklo_ps(col(2), col(3)), _mm256_unpackhi_ps(col(2), col(3)));
    // Row r in the low half, row r + 4 in the high one.
    let pairs = [_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2), _mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3)];
    let mask = _mm_cmpgt_epi32(_mm_set1_epi32(N as i32), _mm_setr_epi32(0, 1, 2, 3));
    let simd_act = if e.finish { PwAct::of(e.act) } else { Some(PwAct::Identity) };
    for (r, &pair) in pairs.iter().enumerate().take(rows) {
        let high = r + 4 < rows;
        // Rows r and r + 4 of a C-shaped matrix at `m` (zeros for a row past `rows`).
        // SAFETY: those rows' N floats lie inside the tile (the caller's contract).
        let both = |m: *const f32| unsafe {
            let lo = _mm_maskload_ps(m.add(r * ldc), mask);
            let hi = if high { _mm_maskload_ps(m.add((r + 4) * ldc), mask) } else { _mm_setzero_ps() };
            _mm256_set_m128(hi, lo)
        };
        let mut v = pair;
        if e.accumulate {
            v = _mm256_add_ps(v, both(c));
        }
        if e.finish {
            if !e.bias.is_null() {
                // SAFETY: the bias holds the tile's rows.
                let (lo, hi) = unsafe { (*e.bias.add(r), if high { *e.bias.add(r + 4) } else { 0.0 }) };
                v = _mm256_add_ps(v, _mm256_set_m128(_mm_set1_ps(hi), _mm_set1_ps(lo)));
            }
            if !e.residual.is_null() {
                v = _mm256_add_ps(v, both(e.residual));
            }
        }
        if let Some(pw) = simd_act {
            v = Avx2::act(v, pw);
        }
        // SAFETY: as `both`, writing.
        unsafe {
            _mm_maskstore_ps(c.add(r * ldc), mask, _mm256_castps256_ps128(v));
            if high {
                _mm_maskstore_ps(c.add((r + 4) * ldc), mask, _mm256_extractf128_ps::<1>(v));
            }
        }
    }
    if simd_act.is_none() {
        // SAFETY: the tile the caller vouches for.
        unsafe { activate_scalar(c, ldc, rows, N, e.act) };
    }
}
