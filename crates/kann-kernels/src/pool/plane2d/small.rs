//! The AVX-512 path of [`Pool2d`] for planes at most 32 wide (a network's
//! later pools: 28×28, 14×14, 13×13, 7×7), a row in one or two registers.
//! Each input row is reduced horizontally in registers, once: window tap
//! `t` of output lane `i` is input column `i·s + t·d − pb`, one permute of
//! the row per tap with the lanes outside the row masked off (any kernel
//! width up to [`SMALL_TAPS`], stride, dilation or padding). The rows'
//! results go to a buffer of whole aligned vectors, from which each output
//! row reduces its window's rows. The flat band path spent most of its time
//! on per-row set-up on these planes.

use super::rows::{fold_pairs, lanes};
use super::{max_nan_avx512, Pool2d, PoolKind};
use std::arch::x86_64::*;

/// Widest input (and output) row the path takes: two vectors.
const SMALL: usize = 32;
/// Widest window it takes.
const SMALL_TAPS: usize = 16;

impl Pool2d {
    /// Whether [`planes`] runs this pool: AVX-512 on this CPU, rows of at
    /// most [`SMALL`] inputs and outputs, windows of at most [`SMALL_TAPS`].
    pub(super) fn takes_small(&self) -> bool {
        let w = self.axis(1);
        self.run_isa() == crate::packed::Isa::Avx512 && (1..=SMALL).contains(&w.size) && w.out <= SMALL && w.k <= SMALL_TAPS
    }

    /// Planes [`planes`] reduces together: their rows' results fill about
    /// 32 KiB (at least one plane).
    fn small_group(&self) -> usize {
        (8192 / (self.axis(0).size * SMALL).max(1)).max(1)
    }

    /// Floats of [`planes`]'s buffer: two vectors per input row of a
    /// group, and one vector to align it.
    pub(super) fn small_floats(&self) -> usize {
        (self.small_group() * self.axis(0).size + 1) * SMALL
    }
}

/// Per output vector (of at most two) and tap, the input column of each
/// lane and the lanes whose column lies inside the row.
pub(super) struct Taps {
    idx: [[[i32; 16]; SMALL_TAPS]; 2],
    valid: [[__mmask16; SMALL_TAPS]; 2],
}

impl Taps {
    /// The taps of `k`'s horizontal windows ([`Pool2d::takes_small`] holds).
    pub(super) fn of(k: &Pool2d) -> Taps {
        let w = k.axis(1);
        let mut taps = Taps { idx: [[[0; 16]; SMALL_TAPS]; 2], valid: [[0; SMALL_TAPS]; 2] };
        for half in 0..w.out.div_ceil(16) {
            for t in 0..w.k {
                for i in 0..16 {
                    let o = half * 16 + i;
                    let col = (o * w.s + t * w.d) as i64 - w.pb as i64;
                    if o < w.out && col >= 0 && col < w.size as i64 {
                        taps.idx[half][t][i] = col as i32;
                        taps.valid[half][t] |= 1 << i;
                    }
                }
            }
        }
        taps
    }
}

/// Output planes at `y`, `steps[1]` floats apart, from the input planes
/// of `x`, `steps[0]` apart (the caller owns those output planes), a group of [`Pool2d::small_group`] at a time, with the buffer
/// `buf` ([`Pool2d::small_floats`]), the per-column tap counts and the taps.
/// Each group's rows are reduced horizontally as one run of rows, then
/// each output row's window (computed once per group) reduced over the
/// group's planes.
///
/// # Safety
/// The CPU has AVX-512F ([`Pool2d::takes_small`]).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn planes(k: &Pool2d, x: &[f32], steps: [usize; 2], y: *mut f32, buf: &mut [f32], col_count: &[f32], taps: &Taps) {
    // The common widths with their taps unrolled (kept in registers).
    // SAFETY: the caller's contract.
    unsafe {
        match k.kernel[1] {
            2 => planes_with::<2>(k, x, steps, y, buf, col_count, taps),
            3 => planes_with::<3>(k, x, steps, y, buf, col_count, taps),
            _ => planes_with::<0>(k, x, steps, y, buf, col_count, taps),
        }
    }
}

/// [`planes`] for windows `KW` wide (0: any width).
///
/// # Safety
/// As [`planes`]; `KW` is 0 or the pool's window width.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn planes_with<const KW: usize>(k: &Pool2d, x: &[f32], steps: [usize; 2], y: *mut f32, buf: &mut [f32], col_count: &[f32], taps: &Taps) {
    let (h, mut w) = (k.axis(0), k.axis(1));
    assert!(KW == 0 || KW == w.k, "pool2d small instance");
    if KW > 0 {
        w.k = KW;
    }
    let (max, include_pad) = match k.kind {
        PoolKind::Average { count_include_pad } => (false, count_include_pad),
        _ => (true, false),
    };
    let (in_plane, out_plane, group) = (h.size * w.size, h.out * w.out, k.small_group());
    let [x_step, y_step] = steps;
    let n_planes = (x.len() + x_step - in_plane) / x_step;
    assert!(k.takes_small() && in_plane <= x_step && out_plane <= y_step && col_count.len() >= w.out, "pool2d small plane sizes");
    let lead = buf.as_ptr().align_offset(64);
    let buf = &mut buf[lead..];
    assert!(buf.len() >= group * h.size * SMALL, "pool2d small buffer");
    let neutral = _mm512_set1_ps(if max { f32::NEG_INFINITY } else { 0.0 });
    let op = |a: __m512, b: __m512| if max { max_nan_avx512(a, b) } else { _mm512_add_ps(a, b) };
    let (halves, two_in) = (w.out.div_ceil(16), w.size > 16);
    let bp = buf.as_mut_ptr();
    for p0 in (0..n_planes).step_by(group.max(1)) {
        let planes = group.min(n_planes - p0);
        // The group's input rows, plane after plane.
        for r in 0..planes * h.size {
            let row = x[(p0 + r / h.size) * x_step + r % h.size * w.size..][..w.size].as_ptr();
            // SAFETY: the row holds size floats, read under the masks.
            let (v0, v1) = unsafe {
                (_mm512_maskz_loadu_ps(lanes(w.size), row), if two_in { _mm512_maskz_loadu_ps(lanes(w.size - 16), row.add(16)) } else { neutral })
            };
            for half in 0..halves {
                let tap = |t: usize| {
                    // SAFETY: idx holds 16 i32.
                    let idx = unsafe { _mm512_loadu_si512(taps.idx[half][t].as_ptr().cast()) };
                    let v = if two_in { _mm512_permutex2var_ps(v0, idx, v1) } else { _mm512_permutexvar_ps(idx, v0) };
                    _mm512_mask_mov_ps(neutral, taps.valid[half][t], v)
                };
                let acc = fold_pairs(w.k, tap, op);
                // SAFETY: the group's rows' vectors lie inside the buffer (asserted).
                unsafe { _mm512_store_ps(bp.add(r * SMALL + half * 16), acc) };
            }
        }
        let yp = y.wrapping_add(p0 * y_step);
        for oy in 0..h.out {
            let span = h.span(oy);
            let rows = _mm512_set1_ps((if include_pad { span.padded } else { span.n }) as f32);
            for pl in 0..planes {
                let rp = bp.wrapping_add(pl * h.size * SMALL);
                for half in 0..halves {
                    // SAFETY: rows first + t·d < size (the span): inside the plane's rows.
                    let row = |t: usize| unsafe { _mm512_load_ps(rp.add((span.first + t * h.d) * SMALL + half * 16)) };
                    let mut acc = if span.n == 0 { neutral } else { fold_pairs(span.n, row, op) };
                    let mask = lanes(w.out - half * 16);
                    // SAFETY: lanes under the mask are columns < out of row oy of
                    // the group's plane pl and of the counts.
                    unsafe {
                        if !max {
                            acc = _mm512_div_ps(acc, _mm512_mul_ps(rows, _mm512_maskz_loadu_ps(mask, col_count.as_ptr().add(half * 16))));
                        }
                        _mm512_mask_storeu_ps(yp.add(pl * y_step + oy * w.out + half * 16), mask, acc);
                    }
                }
            }
        }
    }
}
