//! The im2col rows of narrow stride-1 "same" convolutions with AVX-512 (and
//! AVX2, the 16 lanes as two halves: ResNet-50's 512×7×7 3×3 packed 580 →
//! 208 µs, 512×14×14 3×3/2 690 → 310-450 on Zen 3):
//! such a row of B is the input plane, flattened, shifted by the tap's
//! offset, with the window's edges zeroed. A stride-2 one reads one of its
//! input's four phase planes (even/odd rows and columns) the same way,
//! once they are split out ([`split_phases`]). On 7×7 and 14×14 maps the run-by-run
//! copy of the portable gather spent ~25 cycles on each run of 7 or 14
//! floats (bounds, zero edges, copy dispatch): ResNet-50's layer4 packed
//! at ~1.4 floats/ns. Here 16 output columns at a time carry their input
//! row and column in vector lanes, and one masked load takes the lanes
//! whose window position lies inside the input (the others read nothing
//! and hold zero). AVX-512 gathers for the strided maps measured slower
//! than the runs; the phase planes cost one pass over each channel.

use std::arch::x86_64::*;

/// The geometry one im2col row `k = (ci, ky, kx)` reads with: output
/// column `(oy, ox)` takes `plane[oy + iy0][ox + ix0]`, zero outside
/// `ih × iw`; the plane's rows lie `ow` floats apart (the input plane of a
/// stride-1 "same" map, or a phase plane of a stride-2 one).
pub(super) struct Row<'a> {
    pub plane: &'a [f32],
    pub ih: usize,
    pub iw: usize,
    pub ow: usize,
    pub iy0: isize,
    pub ix0: isize,
}

/// Floats of a channel's four phase planes at most (see [`split_phases`]).
pub(super) const PHASE_FLOATS: usize = super::PHASE_FLOATS;

/// The four phase planes of a stride-2 convolution's input plane `x`
/// (`ih × iw`), each `ceil(ih/2)` rows of `ow` floats:
/// `phases[(py·2 + px)][r][c] = x[2r + py][2c + px]`, zero outside. Output
/// column `(oy, ox)` of tap offset `(ay, ax)` (`ky·dh − ph`, `kx·dw − pw`)
/// then reads phase `(ay mod 2, ax mod 2)` at `(oy + ay div 2, ox + ax div 2)`:
/// a shift, as for stride 1. Needs `ceil(iw/2) <= ow`.
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn split_phases(x: &[f32], ih: usize, iw: usize, ow: usize, phases: &mut [f32]) {
    let hp = ih.div_ceil(2);
    assert!(iw <= 32 * MAX_SEGMENTS && iw.div_ceil(2) <= ow && x.len() >= ih * iw && phases.len() >= 4 * hp * ow, "phase split geometry");
    let (even, odd) = (_mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
    let bits = |n: usize| ((1u32 << n.min(16)) - 1) as __mmask16;
    let (w_even, w_odd) = (iw.div_ceil(2), iw / 2);
    // 32 input columns at a time make 16 columns of each phase; the masks of
    // each such segment: its loads, its stores, its even and odd lanes.
    let segments = iw.div_ceil(32);
    let masks: [[__mmask16; 5]; MAX_SEGMENTS] = std::array::from_fn(|g| {
        let (c0, q0) = (g * 32, g * 16);
        [bits(iw.saturating_sub(c0)), bits(iw.saturating_sub(c0 + 16)), bits(ow.saturating_sub(q0)), bits(w_even.saturating_sub(q0)), bits(w_odd.saturating_sub(q0))]
    });
    for r in 0..2 * hp {
        let (py, row) = (r % 2, r / 2);
        let (e_at, o_at) = (((py * 2) * hp + row) * ow, ((py * 2 + 1) * hp + row) * ow);
        for (g, &[load_lo, load_hi, store, keep_even, keep_odd]) in masks.iter().enumerate().take(segments) {
            let (c0, q0) = (g * 32, g * 16);
            // SAFETY: row r < ih of x holds iw floats (read under masks); each phase
            // row holds ow >= ceil(iw/2) floats (written under masks).
            unsafe {
                let (lo, hi) = if r < ih {
                    let src = x.as_ptr().add(r * iw + c0);
                    (_mm512_maskz_loadu_ps(load_lo, src), _mm512_maskz_loadu_ps(load_hi, src.wrapping_add(16)))
                } else {
                    (_mm512_setzero_ps(), _mm512_setzero_ps())
                };
                // Columns past the input's stay zero: the masks above zeroed them.
                _mm512_mask_storeu_ps(phases.as_mut_ptr().add(e_at + q0), store, _mm512_maskz_permutex2var_ps(keep_even, lo, even, hi));
                _mm512_mask_storeu_ps(phases.as_mut_ptr().add(o_at + q0), store, _mm512_maskz_permutex2var_ps(keep_odd, lo, odd, hi));
            }
        }
    }
}

/// Input widths [`split_phases`] takes at most, in 32-column segments.
const MAX_SEGMENTS: usize = 2;

/// The output row and column of the 16 lanes from column `pos` (the same
/// for every row of B a packer asks for from that column: computed once).
#[derive(Clone, Copy, Debug)]
pub(super) struct Start {
    pub pos: usize,
    pub ow: usize,
    oy: [i32; 16],
    ox: [i32; 16],
}

impl Start {
    pub(super) fn new(pos: usize, ow: usize) -> Start {
        let (mut oy, mut ox) = ([0i32; 16], [0i32; 16]);
        let (mut y, mut x) = ((pos / ow) as i32, (pos % ow) as i32);
        for l in 0..16 {
            (oy[l], ox[l]) = (y, x);
            x += 1;
            if x == ow as i32 {
                (y, x) = (y + 1, 0);
            }
        }
        Start { pos, ow, oy, ox }
    }
}


/// Columns `pos..pos + len` of the row into NR-column panels: column `j`
/// at `dst[(j / nr) · stride + j % nr]`, zeros from `len` to the end of the
/// last panel (`nr` a multiple of 16).
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn fill_panels(r: &Row, pos: usize, start: &Start, len: usize, nr: usize, dst: &mut [f32], stride: usize) {
    assert!(r.ow > 0 && r.iw <= r.ow && r.plane.len() >= r.ih * r.ow && r.ih * r.ow < i32::MAX as usize / 2, "im2col gather geometry");
    let padded = len.next_multiple_of(nr);
    assert!(nr % 16 == 0 && (padded == 0 || dst.len() >= (padded / nr - 1) * stride + nr), "im2col gather panels");
    // Output column o reads flattened plane position o + delta.
    let delta = r.iy0 * r.ow as isize + r.ix0;
    assert!(start.pos == pos && start.ow == r.ow, "im2col gather start");
    let (step_y, step_x) = ((16 / r.ow) as i32, (16 % r.ow) as i32);
    // Lane l starts at output column pos + l; every step moves 16 columns on.
    // SAFETY: 16 i32 each.
    let (mut oy, mut ox) = unsafe { (_mm512_loadu_si512(start.oy.as_ptr().cast()), _mm512_loadu_si512(start.ox.as_ptr().cast())) };
    let set = |v: usize| _mm512_set1_epi32(v as i32);
    let (iy0, ix0, ih, iw, ow) = (_mm512_set1_epi32(r.iy0 as i32), _mm512_set1_epi32(r.ix0 as i32), set(r.ih), set(r.iw), set(r.ow));
    let mut j = 0;
    while j < padded {
        let (iy, ix) = (_mm512_add_epi32(oy, iy0), _mm512_add_epi32(ox, ix0));
        // Unsigned compares: a negative row or column is out too.
        let inside = _mm512_cmplt_epu32_mask(iy, ih) & _mm512_cmplt_epu32_mask(ix, iw);
        let lanes = if len - j.min(len) >= 16 { 0xffff } else { ((1u32 << (len - j.min(len))) - 1) as __mmask16 };
        // SAFETY: the loaded lanes read row iy < ih, column ix < iw <= ow of the
        // plane: position pos + j + delta of it flattened (rows ow apart); the 16
        // floats stored lie in one panel's row (checked above).
        unsafe {
            let v = _mm512_maskz_loadu_ps(inside & lanes, r.plane.as_ptr().wrapping_offset((pos + j) as isize + delta));
            _mm512_storeu_ps(dst.as_mut_ptr().add(j / nr * stride + j % nr), v);
        }
        // Next 16 columns: ox + 16 mod ow, carrying into oy.
        ox = _mm512_add_epi32(ox, _mm512_set1_epi32(step_x));
        oy = _mm512_add_epi32(oy, _mm512_set1_epi32(step_y));
        let wrap = _mm512_cmpge_epi32_mask(ox, ow);
        ox = _mm512_mask_sub_epi32(ox, wrap, ox, ow);
        oy = _mm512_mask_add_epi32(oy, wrap, oy, _mm512_set1_epi32(1));
        j += 16;
    }
}

/// [`split_phases`] with AVX2: 16 input columns at a time (two masked
/// loads, zeros past the row) dealt into 8 columns of each phase, stored
/// under a mask that keeps them inside the phase row.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn split_phases_avx2(x: &[f32], ih: usize, iw: usize, ow: usize, phases: &mut [f32]) {
    let hp = ih.div_ceil(2);
    assert!(iw.div_ceil(2) <= ow && x.len() >= ih * iw && phases.len() >= 4 * hp * ow, "phase split geometry");
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // Lanes l with at + l < limit.
    let below = |at: usize, limit: usize| _mm256_cmpgt_epi32(_mm256_set1_epi32(limit.saturating_sub(at).min(8) as i32), lane);
    // The 64-bit pairs of [a0 a2 b0 b2 | a4 a6 b4 b6] in order.
    let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
    for r in 0..2 * hp {
        let (py, row) = (r % 2, r / 2);
        let (e_at, o_at) = (((py * 2) * hp + row) * ow, ((py * 2 + 1) * hp + row) * ow);
        for q0 in (0..ow).step_by(8) {
            let c0 = 2 * q0;
            // SAFETY: row r < ih of x holds iw floats (read under masks: columns
            // past iw read nothing and hold zero); each phase row holds ow
            // floats (written under the mask of columns q0.. < ow).
            unsafe {
                let (lo, hi) = if r < ih && c0 + 16 <= iw {
                    // Inside the row: plain loads (see the direct convolution's copy).
                    let src = x.as_ptr().add(r * iw + c0);
                    (_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(8)))
                } else if r < ih {
                    let src = x.as_ptr().wrapping_add(r * iw + c0);
                    (_mm256_maskload_ps(src, below(c0, iw)), _mm256_maskload_ps(src.wrapping_add(8), below(c0 + 8, iw)))
                } else {
                    (_mm256_setzero_ps(), _mm256_setzero_ps())
                };
                let store = (ow - q0).min(8);
                crate::avx2::store_first(phases.as_mut_ptr().add(e_at + q0), order(_mm256_shuffle_ps::<0b10_00_10_00>(lo, hi)), store);
                crate::avx2::store_first(phases.as_mut_ptr().add(o_at + q0), order(_mm256_shuffle_ps::<0b11_01_11_01>(lo, hi)), store);
            }
        }
    }
}

/// [`fill_panels`] with AVX2: the 16 lanes of a step as two 8-lane halves.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn fill_panels_avx2(r: &Row, pos: usize, start: &Start, len: usize, nr: usize, dst: &mut [f32], stride: usize) {
    assert!(r.ow > 0 && r.iw <= r.ow && r.plane.len() >= r.ih * r.ow && r.ih * r.ow < i32::MAX as usize / 2, "im2col gather geometry");
    let padded = len.next_multiple_of(nr);
    assert!(nr % 16 == 0 && (padded == 0 || dst.len() >= (padded / nr - 1) * stride + nr), "im2col gather panels");
    let delta = r.iy0 * r.ow as isize + r.ix0;
    assert!(start.pos == pos && start.ow == r.ow, "im2col gather start");
    let (step_y, step_x) = (_mm256_set1_epi32((16 / r.ow) as i32), _mm256_set1_epi32((16 % r.ow) as i32));
    // SAFETY: 8 i32 each, twice.
    let (mut oy, mut ox) = unsafe {
        (
            [_mm256_loadu_si256(start.oy.as_ptr().cast()), _mm256_loadu_si256(start.oy.as_ptr().add(8).cast())],
            [_mm256_loadu_si256(start.ox.as_ptr().cast()), _mm256_loadu_si256(start.ox.as_ptr().add(8).cast())],
        )
    };
    let set = |v: isize| _mm256_set1_epi32(v as i32);
    let (iy0, ix0, ih, iw, ow, none) = (set(r.iy0), set(r.ix0), set(r.ih as isize), set(r.iw as isize), set(r.ow as isize), set(-1));
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mut j = 0;
    while j < padded {
        for h in 0..2 {
            let (iy, ix) = (_mm256_add_epi32(oy[h], iy0), _mm256_add_epi32(ox[h], ix0));
            let inside_y = _mm256_and_si256(_mm256_cmpgt_epi32(ih, iy), _mm256_cmpgt_epi32(iy, none));
            let inside_x = _mm256_and_si256(_mm256_cmpgt_epi32(iw, ix), _mm256_cmpgt_epi32(ix, none));
            let at = j + 8 * h;
            let lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(len.saturating_sub(at).min(8) as i32), lane);
            let mask = _mm256_and_si256(_mm256_and_si256(inside_y, inside_x), lanes);
            // SAFETY: the loaded lanes read row iy < ih, column ix < iw <= ow of
            // the plane: position pos + at + delta of it flattened (rows ow
            // apart); the 8 floats stored lie in one panel's row (nr a
            // multiple of 16, at a multiple of 8).
            unsafe {
                let v = _mm256_maskload_ps(r.plane.as_ptr().wrapping_offset((pos + at) as isize + delta), mask);
                _mm256_storeu_ps(dst.as_mut_ptr().add(at / nr * stride + at % nr), v);
            }
            // Next 16 columns: ox + 16 mod ow, carrying into oy.
            ox[h] = _mm256_add_epi32(ox[h], step_x);
            oy[h] = _mm256_add_epi32(oy[h], step_y);
            let wrap = _mm256_cmpgt_epi32(ox[h], _mm256_sub_epi32(ow, _mm256_set1_epi32(1)));
            ox[h] = _mm256_sub_epi32(ox[h], _mm256_and_si256(wrap, ow));
            oy[h] = _mm256_sub_epi32(oy[h], wrap);
        }
        j += 16;
    }
}
