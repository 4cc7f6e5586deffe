//! The AVX-512 path of [`Pool2d`] for horizontal strides 1 and 2, in bands
//! of output rows straight from X: each row's window rows reduced into its
//! padded row of a band buffer (the padding set to the neutral value once
//! per part, never overwritten), then each output vector reduced from that
//! row (stride 2 picks the even lanes of two vectors). A whole band is
//! reduced vertically before any of it horizontally: loads right after the
//! overlapping, differently aligned stores of the same row stalled on store
//! forwarding. No scalar picking of strided outputs: on the small planes of
//! a network's later pools (13×13 outputs) the flat band path spent more on
//! its per-row set-up than on the reduction.

use super::{max_nan_avx512, Pool2d, PoolKind};
use std::arch::x86_64::*;

/// Floats read past a row's reach by the last vector (stride 2: two vectors).
const OVER: usize = 32;

/// Floats of a band buffer (16 KiB: in L1).
const BAND_FLOATS: usize = 4096;

impl Pool2d {
    /// Whether [`plane`] runs this pool: AVX-512 on this CPU, horizontal stride 1 or 2.
    pub(super) fn takes_rows(&self) -> bool {
        self.run_isa() == crate::packed::Isa::Avx512 && matches!(self.strides[1], 1 | 2)
    }

    /// Floats between two rows of [`plane`]'s band buffer.
    fn row_stride(&self) -> usize {
        self.row_len() + OVER
    }

    /// Output rows per band: at least one.
    fn rows_per_band(&self) -> usize {
        (BAND_FLOATS / self.row_stride()).clamp(1, self.axis(0).out.max(1))
    }

    /// Floats of [`plane`]'s band buffer.
    pub(super) fn row_buffer_floats(&self) -> usize {
        self.rows_per_band() * self.row_stride()
    }
}

/// The mask of the first `n.min(16)` lanes.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// The even lanes of `lo` then those of `hi`.
#[target_feature(enable = "avx512f")]
#[inline]
fn evens(lo: __m512, hi: __m512) -> __m512 {
    _mm512_permutex2var_ps(lo, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), hi)
}

/// `f(0) op f(1) op … op f(n − 1)` for `n >= 1`, pairs first: a shorter
/// dependency chain than one running reduction (a NaN-propagating max is
/// three dependent instructions). Any vector type: inlined into the
/// AVX-512 and AVX2 paths alike.
#[inline]
pub(super) fn fold_pairs<V: Copy>(n: usize, f: impl Fn(usize) -> V, op: impl Fn(V, V) -> V) -> V {
    let mut acc = f(0);
    let mut t = 1;
    while t + 1 < n {
        acc = op(acc, op(f(t), f(t + 1)));
        t += 2;
    }
    if t < n {
        acc = op(acc, f(t));
    }
    acc
}

/// Sets the row buffer `m` ([`Pool2d::row_buffer_floats`]) to the pool's
/// neutral value; [`plane`] writes only its input columns after that.
pub(super) fn reset(k: &Pool2d, m: &mut [f32]) {
    m.fill(if k.kind == PoolKind::Max { f32::NEG_INFINITY } else { 0.0 });
}

/// One output plane `y` from input plane `x`, with the row buffer `m`
/// (as [`reset`] left it) and the per-column tap counts.
///
/// # Safety
/// The CPU has AVX-512F ([`Pool2d::takes_rows`]).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn plane(k: &Pool2d, x: &[f32], y: &mut [f32], m: &mut [f32], col_count: &[f32]) {
    // The common windows compiled with their stride and width unrolled.
    // SAFETY: the caller's contract.
    unsafe {
        match (k.strides[1], k.kernel[1]) {
            (1, 3) => plane_with::<1, 3>(k, x, y, m, col_count),
            (2, 3) => plane_with::<2, 3>(k, x, y, m, col_count),
            (1, _) => plane_with::<1, 0>(k, x, y, m, col_count),
            _ => plane_with::<2, 0>(k, x, y, m, col_count),
        }
    }
}

/// [`plane`] for horizontal stride `S` and window width `KW` (0: any).
///
/// # Safety
/// As [`plane`]; `S` is the pool's horizontal stride, `KW` 0 or its width.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn plane_with<const S: usize, const KW: usize>(k: &Pool2d, x: &[f32], y: &mut [f32], m: &mut [f32], col_count: &[f32]) {
    let (h, mut w) = (k.axis(0), k.axis(1));
    assert!(w.s == S && (KW == 0 || KW == w.k), "pool2d rows instance");
    w.s = S;
    if KW > 0 {
        w.k = KW;
    }
    let (max, include_pad) = match k.kind {
        PoolKind::Average { count_include_pad } => (false, count_include_pad),
        _ => (true, false),
    };
    let op = |a: __m512, b: __m512| if max { max_nan_avx512(a, b) } else { _mm512_add_ps(a, b) };
    let (wp, stride, band) = (k.row_len(), k.row_stride(), k.rows_per_band());
    assert!(x.len() >= h.size * w.size && y.len() >= h.out * w.out, "pool2d plane sizes");
    assert!(m.len() >= band * stride && col_count.len() >= w.out && w.pb + w.size <= wp, "pool2d row buffer too small");
    assert!(w.out == 0 || (w.out - 1) * w.s + w.k.saturating_sub(1) * w.d < wp, "pool2d row reach");
    let (xp, yp, cp) = (x.as_ptr(), y.as_mut_ptr(), col_count.as_ptr());
    for oy0 in (0..h.out).step_by(band) {
        let oys = oy0..(oy0 + band).min(h.out);
        // The windows' rows inside X, reduced into row r's m[pb..pb + W].
        for (r, oy) in oys.clone().enumerate() {
            let span = h.span(oy);
            let mp = m[r * stride..].as_mut_ptr();
            for x0 in (0..w.size).step_by(16) {
                let mask = lanes(w.size - x0);
                // SAFETY: rows first + t·d < size (the span); columns x0.. under the mask < size;
                // the band row holds pb + size floats (asserted).
                let row = |t: usize| unsafe { _mm512_maskz_loadu_ps(mask, xp.add((span.first + t * h.d) * w.size + x0)) };
                let v = if span.n == 0 { _mm512_set1_ps(if max { f32::NEG_INFINITY } else { 0.0 }) } else { fold_pairs(span.n, row, op) };
                // SAFETY: as above.
                unsafe { _mm512_mask_storeu_ps(mp.add(w.pb + x0), mask, v) };
            }
        }
        for (r, oy) in oys.enumerate() {
            let span = h.span(oy);
            let rows = (if include_pad { span.padded } else { span.n }) as f32;
            let mp = m[r * stride..].as_ptr();
            for j in (0..w.out).step_by(16) {
                // Tap t of outputs j..j + 16: the row's [(j + i)·s + t·d].
                // SAFETY: (j + 15)·s + t·d + 16 < reach + OVER <= stride (asserted above).
                let tap = |t: usize| unsafe {
                    let at = mp.add(j * w.s + t * w.d);
                    if S == 1 {
                        _mm512_loadu_ps(at)
                    } else {
                        evens(_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16)))
                    }
                };
                let mask = lanes(w.out - j);
                let mut v = fold_pairs(w.k, tap, op);
                // SAFETY: columns j.. under the mask < out, of y's row oy and of the counts.
                unsafe {
                    if !max {
                        v = _mm512_div_ps(v, _mm512_mul_ps(_mm512_set1_ps(rows), _mm512_maskz_loadu_ps(mask, cp.add(j))));
                    }
                    _mm512_mask_storeu_ps(yp.add(oy * w.out + j), mask, v);
                }
            }
        }
    }
}
