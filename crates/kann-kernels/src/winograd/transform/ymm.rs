//! The AVX2 vector of the transforms: a segment's 16 lanes as two ymm
//! halves. Its intrinsics run unconditionally: it is only used inside the
//! kernel's AVX2 `#[target_feature]` entry points, after the CPU was
//! checked. (The portable `[f32; 16]` compiled with AVX2 gathered the
//! phases float by float: the transforms took as long as the 36 GEMMs.)
//!
//! The phases of a row run are 4×4 transposes inside each 128-bit lane
//! (unpacks and shuffles) and one permute to put the tiles in order; the
//! output interleave is the same steps backwards.

use super::{TileVec, ALPHA, TILE};
use crate::packed::PwAct;
use std::arch::x86_64::*;

/// Sixteen lanes (AVX2): lanes 0..8 in the first ymm, 8..16 in the second.
#[derive(Clone, Copy)]
pub(in crate::winograd) struct Ymm2([__m256; 2]);

/// Runs intrinsics; see the module doc for why this is sound.
macro_rules! isa {
    ($e:expr) => {
        // SAFETY: the CPU has AVX2 and FMA (checked before any Ymm2 exists).
        unsafe { $e }
    };
}

/// The lanes `from..to` of one half (`base` its first lane's index) as a
/// maskload/maskstore mask.
#[inline(always)]
fn half_mask(base: usize, from: usize, to: usize) -> __m256i {
    let idx = isa!(_mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(base as i32)));
    // from <= idx < to, as from - 1 < idx and idx < to (from, to <= 80).
    let after = isa!(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(from as i32 - 1)));
    let before = isa!(_mm256_cmpgt_epi32(_mm256_set1_epi32(to as i32), idx));
    isa!(_mm256_and_si256(after, before))
}

/// The 8 floats at `p`, lanes outside `lo..hi` (counted from `p`) zero and not read.
///
/// # Safety
/// `p + lo .. p + hi` (clipped to the 8 floats) is readable.
#[inline(always)]
unsafe fn load_between(p: *const f32, lo: usize, hi: usize) -> __m256 {
    if lo == 0 && hi >= 8 {
        // SAFETY: the caller's contract (all 8 lanes inside).
        unsafe { _mm256_loadu_ps(p) }
    } else if lo >= 8 || hi == 0 || lo >= hi {
        isa!(_mm256_setzero_ps())
    } else {
        // SAFETY: masked-off lanes are not read.
        unsafe { _mm256_maskload_ps(p, half_mask(0, lo, hi)) }
    }
}

/// `[x1, .., x7, y0]`: `x` one lane on, its last lane `y`'s first.
#[inline(always)]
fn step_lane(x: __m256, y: __m256) -> __m256 {
    let rot = isa!(_mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0));
    isa!(_mm256_blend_ps::<0b1000_0000>(_mm256_permutevar8x32_ps(x, rot), _mm256_permutevar8x32_ps(y, rot)))
}

/// The 4×4 transposes inside each 128-bit lane of rows `r0..r3`: out `c`
/// holds element `c` of each row, rows in order, per lane.
#[inline(always)]
fn transpose_lanes(r: [__m256; 4]) -> [__m256; 4] {
    let (u0, u1) = isa!((_mm256_unpacklo_ps(r[0], r[1]), _mm256_unpackhi_ps(r[0], r[1])));
    let (u2, u3) = isa!((_mm256_unpacklo_ps(r[2], r[3]), _mm256_unpackhi_ps(r[2], r[3])));
    isa!([
        _mm256_shuffle_ps::<0b01_00_01_00>(u0, u2),
        _mm256_shuffle_ps::<0b11_10_11_10>(u0, u2),
        _mm256_shuffle_ps::<0b01_00_01_00>(u1, u3),
        _mm256_shuffle_ps::<0b11_10_11_10>(u1, u3),
    ])
}

/// `e[j][l] = p[4l + j]` for `j < 4`, `l < 8`, from the 32 floats `v`.
#[inline(always)]
fn deal4(v: [__m256; 4]) -> [__m256; 4] {
    // After the in-lane transpose, phase j holds tiles 0, 2, 4, 6 | 1, 3, 5, 7
    // (low lane: floats 0..16, two tiles each of a, b; high lane: c, d).
    let order = isa!(_mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    let t = transpose_lanes(v);
    // (Written out: `array::map`'s closures were not inlined, and each
    // intrinsic became a call.)
    isa!([_mm256_permutevar8x32_ps(t[0], order), _mm256_permutevar8x32_ps(t[1], order), _mm256_permutevar8x32_ps(t[2], order), _mm256_permutevar8x32_ps(t[3], order)])
}

/// The inverse of [`deal4`]: the 32 floats `out[4l + c] = o[c][l]`.
#[inline(always)]
fn gather4(o: [__m256; 4]) -> [__m256; 4] {
    let order = isa!(_mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    transpose_lanes(isa!([_mm256_permutevar8x32_ps(o[0], order), _mm256_permutevar8x32_ps(o[1], order), _mm256_permutevar8x32_ps(o[2], order), _mm256_permutevar8x32_ps(o[3], order)]))
}

impl Ymm2 {
    #[inline(always)]
    fn each(self, f: impl Fn(__m256) -> __m256) -> Self {
        Ymm2([f(self.0[0]), f(self.0[1])])
    }

    #[inline(always)]
    fn zip(self, o: Self, f: impl Fn(__m256, __m256) -> __m256) -> Self {
        Ymm2([f(self.0[0], o.0[0]), f(self.0[1], o.0[1])])
    }
}

impl TileVec for Ymm2 {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        let x = isa!(_mm256_set1_ps(v));
        Ymm2([x, x])
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.zip(o, |a, b| isa!(_mm256_add_ps(a, b)))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self.zip(o, |a, b| isa!(_mm256_sub_ps(a, b)))
    }
    #[inline(always)]
    fn mul_add(self, c: f32, o: Self) -> Self {
        let c = isa!(_mm256_set1_ps(c));
        self.zip(o, |a, b| isa!(_mm256_fmadd_ps(a, c, b)))
    }
    #[inline(always)]
    fn act(self, a: PwAct) -> Self {
        match a {
            PwAct::Identity => self,
            PwAct::Clamp { alpha, beta, lo, hi, times_x } => self.each(|x| {
                let t = isa!(_mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(alpha), _mm256_set1_ps(beta)), _mm256_set1_ps(lo)), _mm256_set1_ps(hi)));
                if times_x {
                    isa!(_mm256_mul_ps(t, x))
                } else {
                    t
                }
            }),
            PwAct::Leaky { alpha } => self.each(|x| isa!(_mm256_add_ps(_mm256_max_ps(x, _mm256_setzero_ps()), _mm256_mul_ps(_mm256_set1_ps(alpha), _mm256_min_ps(x, _mm256_setzero_ps()))))),
        }
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self {
        // SAFETY: the caller's contract: floats 0..n at p.
        unsafe { Ymm2([load_between(p, 0, n), load_between(p.wrapping_add(8), 0, n.saturating_sub(8))]) }
    }
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, n: usize) {
        for h in 0..2 {
            let (a, q) = (8 * h, p.wrapping_add(8 * h));
            // SAFETY: only lanes 0..n are written (the caller's contract).
            unsafe {
                if a + 8 <= n {
                    _mm256_storeu_ps(q, self.0[h]);
                } else if a < n {
                    crate::avx2::store_first(q, self.0[h], n - a);
                }
            }
        }
    }
    /// Lanes `from..to` and the halves' blend masks.
    type Mask = (usize, usize, [__m256; 2]);
    #[inline(always)]
    fn lanes_mask(from: usize, to: usize) -> Self::Mask {
        (from, to, isa!([_mm256_castsi256_ps(half_mask(0, from, to)), _mm256_castsi256_ps(half_mask(8, from, to))]))
    }
    /// A half only partly in `from..to` is blended into the floats there
    /// (read and written back): a masked store measured a third of the
    /// F(4×4) input transform on Zen 3.
    #[inline(always)]
    unsafe fn store_lanes(self, p: *mut f32, (from, to, masks): Self::Mask) {
        for (h, mask) in masks.into_iter().enumerate() {
            let (a, b) = (8 * h, 8 * h + 8);
            let q = p.wrapping_add(a);
            // SAFETY: lanes from..to are written where the caller vouches;
            // the others of a partial half are rewritten unchanged (the
            // trait's contract: they lie in the buffer, no one else's).
            unsafe {
                if from <= a && b <= to {
                    _mm256_storeu_ps(q, self.0[h]);
                } else if from < b && a < to {
                    _mm256_storeu_ps(q, _mm256_blendv_ps(_mm256_loadu_ps(q), self.0[h], mask));
                }
            }
        }
    }
    #[inline(always)]
    unsafe fn phases(p: *const f32, lo: usize, hi: usize) -> [Self; ALPHA] {
        // The run as nine vectors (the last holds floats 64 and 65).
        let mut v = [isa!(_mm256_setzero_ps()); 9];
        for (i, x) in v.iter_mut().enumerate() {
            // SAFETY: masked-off lanes are not read (their addresses may lie outside the row).
            *x = unsafe { load_between(p.wrapping_add(8 * i), lo.saturating_sub(8 * i), hi.saturating_sub(8 * i)) };
        }
        let a = deal4([v[0], v[1], v[2], v[3]]);
        let b = deal4([v[4], v[5], v[6], v[7]]);
        // Phases 4 and 5 are 0 and 1 one tile on: lanes 1..16, then v8's 0 and 1.
        let (f0, f1) = (isa!(_mm256_permute_ps::<0>(v[8])), isa!(_mm256_permute_ps::<0b01_01_01_01>(v[8])));
        let half = |x: __m256| isa!(_mm256_permute2f128_ps::<0x00>(x, x));
        let e4 = Ymm2([step_lane(a[0], b[0]), step_lane(b[0], half(f0))]);
        let e5 = Ymm2([step_lane(a[1], b[1]), step_lane(b[1], half(f1))]);
        [Ymm2([a[0], b[0]]), Ymm2([a[1], b[1]]), Ymm2([a[2], b[2]]), Ymm2([a[3], b[3]]), e4, e5]
    }
    #[inline(always)]
    fn interleave(o: [Self; TILE]) -> [Self; TILE] {
        let lo = gather4([o[0].0[0], o[1].0[0], o[2].0[0], o[3].0[0]]);
        let hi = gather4([o[0].0[1], o[1].0[1], o[2].0[1], o[3].0[1]]);
        [Ymm2([lo[0], lo[1]]), Ymm2([lo[2], lo[3]]), Ymm2([hi[0], hi[1]]), Ymm2([hi[2], hi[3]])]
    }
    #[inline(always)]
    unsafe fn phases_2x2(p: *const f32, lo: usize, hi: usize) -> [Self; 4] {
        // The run as five vectors (the last holds floats 32 and 33).
        let mut v = [isa!(_mm256_setzero_ps()); 5];
        for (i, x) in v.iter_mut().enumerate() {
            // SAFETY: masked-off lanes are not read.
            *x = unsafe { load_between(p.wrapping_add(8 * i), lo.saturating_sub(8 * i), hi.saturating_sub(8 * i)) };
        }
        // Even and odd floats of x|y in order: the in-lane shuffle, then the
        // 64-bit pairs put back in order.
        let deal = |x: __m256, y: __m256, odd: bool| {
            let s = if odd { isa!(_mm256_shuffle_ps::<0b11_01_11_01>(x, y)) } else { isa!(_mm256_shuffle_ps::<0b10_00_10_00>(x, y)) };
            isa!(_mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(s))))
        };
        let e0 = [deal(v[0], v[1], false), deal(v[2], v[3], false)];
        let e1 = [deal(v[0], v[1], true), deal(v[2], v[3], true)];
        let (f0, f1) = (isa!(_mm256_permute_ps::<0>(v[4])), isa!(_mm256_permute_ps::<0b01_01_01_01>(v[4])));
        let half = |x: __m256| isa!(_mm256_permute2f128_ps::<0x00>(x, x));
        let e2 = Ymm2([step_lane(e0[0], e0[1]), step_lane(e0[1], half(f0))]);
        let e3 = Ymm2([step_lane(e1[0], e1[1]), step_lane(e1[1], half(f1))]);
        [Ymm2(e0), Ymm2(e1), e2, e3]
    }
    #[inline(always)]
    fn interleave_2x2(o: [Self; 2]) -> [Self; 2] {
        // Floats 2l + c of lanes 8h..8h + 8: pairs (o0, o1) unpacked in each
        // 128-bit lane, then the lanes put in order.
        let half = |h: usize| {
            let (x, y) = isa!((_mm256_unpacklo_ps(o[0].0[h], o[1].0[h]), _mm256_unpackhi_ps(o[0].0[h], o[1].0[h])));
            Ymm2(isa!([_mm256_permute2f128_ps::<0x20>(x, y), _mm256_permute2f128_ps::<0x31>(x, y)]))
        };
        [half(0), half(1)]
    }
}
