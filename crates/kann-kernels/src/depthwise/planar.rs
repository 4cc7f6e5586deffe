//! The plane-at-once depthwise path: one channel's input plane is copied
//! into the cluster's scratch as a zero-padded plane, split into its
//! `sh × sw` stride phases (`phase[py][px][r][c] = padded[r·sh + py][c·sw + px]`),
//! so that every kernel tap becomes one shifted contiguous read of a phase:
//!
//! `ext[i] = bias + Σ_taps w · phases[offset(tap) + i]`, `i = oy · wq + ox`
//!
//! over the flattened output index with the phase width `wq ≥ ow`. The whole
//! plane is one long vector loop (no border cases, no per-row remainders);
//! the few columns `ox ≥ ow` of each row are garbage and never stored. The
//! accumulators of a block stay in registers across all taps. A second pass
//! copies the `ow` valid columns of each row to the output and applies the
//! residual and the activation.

use super::{activate, DepthwiseConv, Plane};
use crate::packed::Isa;
use crate::{Activation, Epilogue};

/// Floats of the flattened output computed per step of the generic loop
/// (and the granularity every length is rounded to).
const LANES: usize = 16;

/// The largest kernel extent (per axis) the planar path takes; larger
/// kernels run the row path.
pub(super) const MAX_KERNEL: usize = 16;

/// The most scratch floats the planar path takes (4 MiB); larger planes run
/// the row path.
pub(super) const MAX_FLOATS: usize = 1 << 20;

/// Where the phase planes and the flattened output live in the scratch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Layout {
    /// Stride phases `[sh, sw]`.
    s: [usize; 2],
    /// Kernel `[kh, kw]`.
    k: [usize; 2],
    /// Padding before `[ph, pw]`.
    pad: [usize; 2],
    /// The padded extent that any tap reads `[hp, wp]`.
    padded: [usize; 2],
    /// Phase plane width (also the row pitch of the flattened output).
    wq: usize,
    /// Floats of one phase plane, including the slack read by the last block.
    phase_len: usize,
    /// Floats of the flattened output (`(oh − 1) · wq + ow`, rounded up to [`LANES`]).
    ext_len: usize,
    /// Per kernel row `ky`: the offset of its phase row plane and first phase row.
    rows: [usize; MAX_KERNEL],
    /// Per kernel column `kx`: the offset of its phase column plane and first column.
    cols: [usize; MAX_KERNEL],
}

impl Layout {
    /// The layout of one channel plane of `k`.
    pub(super) fn new(k: &DepthwiseConv) -> Layout {
        let [_, [oh, ow], kern, s, d, pad] = k.dims();
        let extent = |a: usize| ([oh, ow][a].max(1) - 1) * s[a] + (kern[a].max(1) - 1) * d[a] + 1;
        let padded = [extent(0), extent(1)];
        let (hq, wq) = (padded[0].div_ceil(s[0]), padded[1].div_ceil(s[1]));
        let ext_len = (((oh.max(1) - 1) * wq + ow).max(1)).next_multiple_of(LANES);
        let max_off = ((kern[0].max(1) - 1) * d[0] / s[0]) * wq + (kern[1].max(1) - 1) * d[1] / s[1];
        let phase_len = (hq * wq).max(ext_len + max_off).next_multiple_of(LANES);
        let (mut rows, mut cols) = ([0; MAX_KERNEL], [0; MAX_KERNEL]);
        for (ky, r) in rows.iter_mut().enumerate().take(kern[0]) {
            let ry = ky * d[0];
            *r = (ry % s[0]) * s[1] * phase_len + (ry / s[0]) * wq;
        }
        for (kx, c) in cols.iter_mut().enumerate().take(kern[1]) {
            let rx = kx * d[1];
            *c = (rx % s[1]) * phase_len + rx / s[1];
        }
        Layout { s, k: kern, pad, padded, wq, phase_len, ext_len, rows, cols }
    }

    /// Whether `k` takes the planar path: small enough kernel and scratch.
    pub(super) fn fits(k: &DepthwiseConv) -> bool {
        k.kernel.iter().all(|&e| (1..=MAX_KERNEL as u64).contains(&e)) && Layout::new(k).floats() <= MAX_FLOATS
    }

    /// Floats of the scratch: every phase plane, then the flattened output.
    pub(super) fn floats(&self) -> usize {
        self.s[0] * self.s[1] * self.phase_len + self.ext_len
    }

    /// The offset into the phases of tap `(ky, kx)`: its phase plane, then
    /// the shift of its first read inside it.
    #[inline(always)]
    fn tap_offset(&self, ky: usize, kx: usize) -> usize {
        self.rows[ky] + self.cols[kx]
    }

    /// Writes input plane `x` (`[ih, iw]`) into the phase planes. The
    /// padding positions are never written (the caller zeroes the phases
    /// once per run; every plane fills the same positions).
    #[inline(always)]
    fn fill(&self, x: &[f32], iw: usize, phases: &mut [f32], ops: &Ops) {
        let ([sh, sw], [ph, pw], [hp, wp]) = (self.s, self.pad, self.padded);
        // Input columns inside the padded extent: ix in 0..cols.
        let cols = iw.min(wp.saturating_sub(pw));
        for (iy, row) in x.chunks_exact(iw.max(1)).enumerate() {
            let r = iy + ph;
            if r >= hp {
                break;
            }
            let base = (r % sh) * sw * self.phase_len + (r / sh) * self.wq;
            let row = &row[..cols];
            match sw {
                1 => (ops.copy)(row, &mut phases[base + pw..][..cols]),
                2 => self.fill_pairs(row, &mut phases[base..], ops),
                _ => self.fill_strided(row, &mut phases[base..]),
            }
        }
    }

    /// One input row into the two column phases (stride 2) from `phases[0]`:
    /// an odd padded first column alone, then even/odd pairs.
    #[inline(always)]
    fn fill_pairs(&self, row: &[f32], phases: &mut [f32], ops: &Ops) {
        let pw = self.pad[1];
        let (first, pairs) = row.split_at((pw % 2).min(row.len()));
        if let Some(&v) = first.first() {
            phases[self.phase_len + pw / 2] = v;
        }
        let at = pw.div_ceil(2);
        let (even, odd) = phases.split_at_mut(self.phase_len);
        (ops.split2)(pairs, &mut even[at..][..pairs.len().div_ceil(2)], &mut odd[at..][..pairs.len() / 2]);
    }

    /// One input row into its `sw` column phases from `phases[0]`.
    fn fill_strided(&self, row: &[f32], phases: &mut [f32]) {
        let (sw, pw) = (self.s[1], self.pad[1]);
        for px in 0..sw {
            // Padded column c = ix + pw with c % sw == px: the first such ix.
            let first = (px + sw - pw % sw) % sw;
            if first >= row.len() {
                continue;
            }
            let dst = &mut phases[px * self.phase_len + (first + pw) / sw..];
            for (o, &v) in dst.iter_mut().zip(row[first..].iter().step_by(sw)) {
                *o = v;
            }
        }
    }
}

/// `dst = act(src + residual)` for one output row.
type Finish = fn(&[f32], Option<&[f32]>, &mut [f32], Activation);

/// The data movements and the tap loop of one ISA.
struct Ops {
    /// `ext[i] = bias + Σ w · phases[offset + i]` for every `i < ext.len()`.
    acc: fn(&Layout, &[f32], f32, &[f32], &mut [f32]),
    /// `dst = src` (same lengths).
    copy: fn(&[f32], &mut [f32]),
    /// `even[j] = src[2j]`, `odd[j] = src[2j + 1]` (lengths `ceil(n/2)`, `floor(n/2)`).
    split2: fn(&[f32], &mut [f32], &mut [f32]),
    /// `dst = act(src + residual)` (same lengths).
    finish: Finish,
}

/// The portable movements.
const PORTABLE: Ops = Ops { acc: accumulate_generic, copy: copy_portable, split2: split2_portable, finish: finish_portable };

/// Computes output plane `y` (`[oh, ow]`) of `p` through the phases.
/// `fresh` says whether the phases must be refilled (false when the previous
/// plane read the same input channel).
pub(super) fn plane(k: &DepthwiseConv, lay: &Layout, p: &Plane, y: &mut [f32], scratch: &mut [f32], fresh: bool) {
    match k.run_isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (checked by run_isa).
        Isa::Avx512 => unsafe { plane_avx512(k, lay, p, y, scratch, fresh) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA (checked by run_isa).
        Isa::Avx2 => unsafe { plane_avx2(k, lay, p, y, scratch, fresh) },
        _ => plane_body(k, lay, p, y, scratch, fresh, &PORTABLE),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn plane_avx512(k: &DepthwiseConv, lay: &Layout, p: &Plane, y: &mut [f32], scratch: &mut [f32], fresh: bool) {
    // The closures inherit this function's target features.
    let ops = Ops {
        acc: |l, w, b, ph, e| simd::accumulate_avx512(l, w, b, ph, e),
        copy: |s, d| simd::copy_avx512(s, d),
        split2: |s, e, o| simd::split2_avx512(s, e, o),
        finish: |s, r, d, a| simd::finish_avx512(s, r, d, a),
    };
    plane_body(k, lay, p, y, scratch, fresh, &ops)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn plane_avx2(k: &DepthwiseConv, lay: &Layout, p: &Plane, y: &mut [f32], scratch: &mut [f32], fresh: bool) {
    // The closures inherit this function's target features. (The portable
    // moves ran as plain fn pointers without AVX2: the stride-2 split
    // float by float, a call per row.)
    let ops = Ops {
        acc: |l, w, b, ph, e| simd::accumulate_avx2(l, w, b, ph, e),
        copy: |s, d| d.copy_from_slice(s),
        split2: |s, e, o| simd::split2_avx2(s, e, o),
        finish: |s, r, d, a| simd::finish_avx2(s, r, d, a),
    };
    plane_body(k, lay, p, y, scratch, fresh, &ops)
}

/// Fill, accumulate, then store the valid columns with the epilogue.
#[inline(always)]
fn plane_body(k: &DepthwiseConv, lay: &Layout, p: &Plane, y: &mut [f32], scratch: &mut [f32], fresh: bool, ops: &Ops) {
    let [[_, iw], [_, ow], ..] = k.dims();
    let (phases, ext) = scratch.split_at_mut(lay.s[0] * lay.s[1] * lay.phase_len);
    let ext = &mut ext[..lay.ext_len];
    if fresh {
        lay.fill(p.x, iw, phases, ops);
    }
    (ops.acc)(lay, p.w, p.bias, phases, ext);
    let mut act = k.epilogue.activation;
    if p.residual.is_none() && crate::packed::PwAct::of(act).is_none() {
        // Sigmoid, SiLU, tanh: one call over the whole flattened plane (its
        // few garbage columns included). Per output row, a 7- or 14-float
        // call waited on the function's latency chain alone (~35 ns each).
        crate::epilogue::activate_in_place(act, ext);
        act = Activation::None;
    }
    for (oy, row) in y.chunks_exact_mut(ow.max(1)).enumerate() {
        let residual = p.residual.map(|r| &r[oy * ow..][..ow]);
        (ops.finish)(&ext[oy * lay.wq..][..ow], residual, row, act);
    }
}

fn copy_portable(src: &[f32], dst: &mut [f32]) {
    dst.copy_from_slice(src);
}

fn split2_portable(src: &[f32], even: &mut [f32], odd: &mut [f32]) {
    for (e, &v) in even.iter_mut().zip(src.iter().step_by(2)) {
        *e = v;
    }
    for (o, &v) in odd.iter_mut().zip(src.iter().skip(1).step_by(2)) {
        *o = v;
    }
}

fn finish_portable(src: &[f32], residual: Option<&[f32]>, dst: &mut [f32], act: Activation) {
    match residual {
        Some(r) => {
            for ((o, &a), &rv) in dst.iter_mut().zip(src).zip(r) {
                *o = a + rv;
            }
        }
        None => dst.copy_from_slice(src),
    }
    activate(dst, Epilogue { activation: act, ..Epilogue::default() });
}

/// The portable tap loop, [`LANES`] outputs at a time.
fn accumulate_generic(lay: &Layout, w: &[f32], bias: f32, phases: &[f32], ext: &mut [f32]) {
    let [kh, kw] = lay.k;
    for (blk, out) in ext.chunks_exact_mut(LANES).enumerate() {
        let mut acc = [bias; LANES];
        for ky in 0..kh {
            for kx in 0..kw {
                let wv = w[ky * kw + kx];
                let src = &phases[lay.tap_offset(ky, kx) + blk * LANES..][..LANES];
                for (a, &v) in acc.iter_mut().zip(src) {
                    *a += wv * v;
                }
            }
        }
        out.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! The tap loops with explicit vectors: a block of up to 8 vectors stays
    //! in registers across every tap (8 independent FMA chains cover the FMA
    //! latency on two ports), then blocks of 4, 2 and 1 for the tail.

    use super::Layout;
    use crate::packed::PwAct;
    use crate::Activation;
    use std::arch::x86_64::*;

    /// Generates one ISA's tap loop.
    macro_rules! accumulate {
        ($name:ident, $block:ident, $feat:literal, $vec:ty, lanes = $w:literal, load = $load:path, store = $store:path, set1 = $set1:path, fmadd = $fmadd:path) => {
            /// `N` vectors of the flattened output from `i` on.
            ///
            /// # Safety
            /// The CPU has the ISA; `dst[i..i + N·lanes]` is inside the
            /// flattened output and every tap's read `src[offset + i..][..N·lanes]`
            /// inside the phases.
            #[target_feature(enable = $feat)]
            unsafe fn $block<const N: usize>(lay: &Layout, w: &[f32], bias: f32, src: *const f32, dst: *mut f32, i: usize) {
                let [kh, kw] = lay.k;
                let mut acc = [$set1(bias); N];
                for ky in 0..kh {
                    let (row, wrow) = (lay.rows[ky] + i, &w[ky * kw..][..kw]);
                    for (&col, &wv) in lay.cols[..kw].iter().zip(wrow) {
                        let wv = $set1(wv);
                        for (j, a) in acc.iter_mut().enumerate() {
                            // SAFETY: inside the tap's read (the caller's contract).
                            *a = $fmadd(wv, unsafe { $load(src.add(row + col + j * $w)) }, *a);
                        }
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    // SAFETY: inside the flattened output (the caller's contract).
                    unsafe { $store(dst.add(i + j * $w), *a) };
                }
            }

            /// The tap loop (see `Accumulate`).
            #[target_feature(enable = $feat)]
            pub(super) fn $name(lay: &Layout, w: &[f32], bias: f32, phases: &[f32], ext: &mut [f32]) {
                let [kh, kw] = lay.k;
                let n = ext.len();
                assert!(w.len() >= kh * kw && n % $w == 0, "depthwise taps or flattened output malformed");
                assert!(lay.rows[kh - 1] + lay.cols[kw - 1] + n <= phases.len(), "depthwise phases too short");
                let (src, dst) = (phases.as_ptr(), ext.as_mut_ptr());
                let mut i = 0;
                while i + 8 * $w <= n {
                    // SAFETY: the CPU has the ISA (this function's feature);
                    // i + N·lanes ≤ n = ext.len(), and every tap reads
                    // offset + i..offset + n, inside the phases (asserted above).
                    unsafe { $block::<8>(lay, w, bias, src, dst, i) };
                    i += 8 * $w;
                }
                if i + 4 * $w <= n {
                    // SAFETY: as above.
                    unsafe { $block::<4>(lay, w, bias, src, dst, i) };
                    i += 4 * $w;
                }
                if i + 2 * $w <= n {
                    // SAFETY: as above.
                    unsafe { $block::<2>(lay, w, bias, src, dst, i) };
                    i += 2 * $w;
                }
                while i < n {
                    // SAFETY: as above.
                    unsafe { $block::<1>(lay, w, bias, src, dst, i) };
                    i += $w;
                }
            }
        };
    }

    /// `[0, 2, …, 30]` and `[1, 3, …, 31]`: the even and odd lanes of two vectors.
    #[target_feature(enable = "avx512f")]
    fn pair_indices() -> (__m512i, __m512i) {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        (even, _mm512_add_epi32(even, _mm512_set1_epi32(1)))
    }

    /// The first `n` (≤ 16) lanes.
    #[target_feature(enable = "avx512f")]
    fn lanes(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }

    /// `dst = src` with masked 16-lane moves (no library call for short rows).
    #[target_feature(enable = "avx512f")]
    pub(super) fn copy_avx512(src: &[f32], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        for i in (0..n).step_by(16) {
            let m = lanes(n - i);
            // SAFETY: the masked lanes are i..min(i + 16, n), inside both slices.
            unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), m, _mm512_maskz_loadu_ps(m, src.as_ptr().add(i))) };
        }
    }

    /// `even[j] = src[2j]`, `odd[j] = src[2j + 1]`, 32 source floats a step.
    #[target_feature(enable = "avx512f")]
    pub(super) fn split2_avx512(src: &[f32], even: &mut [f32], odd: &mut [f32]) {
        let n = src.len();
        assert!(even.len() >= n.div_ceil(2) && odd.len() >= n / 2, "depthwise phase rows too short");
        let (ie, io) = pair_indices();
        for i in (0..n).step_by(32) {
            let (ma, mb) = (lanes(n - i), lanes((n - i).saturating_sub(16)));
            // SAFETY: the masked lanes are inside src (i.. up to n); masked-off lanes are not accessed
            // (the second pointer may lie past the end when its mask is empty, hence wrapping_add).
            let (a, b) = unsafe { (_mm512_maskz_loadu_ps(ma, src.as_ptr().add(i)), _mm512_maskz_loadu_ps(mb, src.as_ptr().wrapping_add(i + 16))) };
            let (me, mo) = (lanes((n - i).div_ceil(2)), lanes((n - i) / 2));
            // SAFETY: the lanes i/2.. up to ceil(n/2) (even) and n/2 (odd) lie inside the rows (asserted).
            unsafe {
                _mm512_mask_storeu_ps(even.as_mut_ptr().add(i / 2), me, _mm512_permutex2var_ps(a, ie, b));
                _mm512_mask_storeu_ps(odd.as_mut_ptr().add(i / 2), mo, _mm512_permutex2var_ps(a, io, b));
            }
        }
    }

    /// `even[j] = src[2j]`, `odd[j] = src[2j + 1]`, 16 source floats a
    /// step (an in-lane shuffle, then the 64-bit pairs put in order), the
    /// last ones as the portable loop.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn split2_avx2(src: &[f32], even: &mut [f32], odd: &mut [f32]) {
        let n = src.len();
        assert!(even.len() >= n.div_ceil(2) && odd.len() >= n / 2, "depthwise phase rows too short");
        let whole = n / 16 * 16;
        for i in (0..whole).step_by(16) {
            // SAFETY: floats i..i + 16 of src (i + 16 ≤ n); lanes i/2..i/2 + 8 of
            // both rows (≤ n / 2, asserted above).
            unsafe {
                let (a, b) = (_mm256_loadu_ps(src.as_ptr().add(i)), _mm256_loadu_ps(src.as_ptr().add(i + 8)));
                let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
                _mm256_storeu_ps(even.as_mut_ptr().add(i / 2), order(_mm256_shuffle_ps::<0b10_00_10_00>(a, b)));
                _mm256_storeu_ps(odd.as_mut_ptr().add(i / 2), order(_mm256_shuffle_ps::<0b11_01_11_01>(a, b)));
            }
        }
        // The tail: one more step over the last 16 floats from an even
        // position (overlapping the steps before: equal values rewritten),
        // then at most one float alone. Float by float, the 15 floats past
        // a 111-float row's 6 steps took longer than the steps.
        let mut done = whole;
        if n >= 17 && n > whole {
            let i = (n - 16) & !1;
            // SAFETY: i + 16 ≤ n; lanes i/2..i/2 + 8 ≤ n / 2 of both rows (i even, i + 16 ≤ n).
            unsafe {
                let (a, b) = (_mm256_loadu_ps(src.as_ptr().add(i)), _mm256_loadu_ps(src.as_ptr().add(i + 8)));
                let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
                _mm256_storeu_ps(even.as_mut_ptr().add(i / 2), order(_mm256_shuffle_ps::<0b10_00_10_00>(a, b)));
                _mm256_storeu_ps(odd.as_mut_ptr().add(i / 2), order(_mm256_shuffle_ps::<0b11_01_11_01>(a, b)));
            }
            done = i + 16;
        }
        for (j, &v) in src.iter().enumerate().skip(done) {
            if j % 2 == 0 {
                even[j / 2] = v;
            } else {
                odd[j / 2] = v;
            }
        }
    }

    /// `dst = act(src + residual)`, 8 floats a step, the piecewise-linear
    /// activations in registers, the others on the stored row.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn finish_avx2(src: &[f32], residual: Option<&[f32]>, dst: &mut [f32], act: Activation) {
        let n = dst.len();
        assert!(src.len() >= n && residual.is_none_or(|r| r.len() >= n), "depthwise rows too short");
        let pw = PwAct::of(act);
        let zero = _mm256_setzero_ps();
        let whole = n / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: floats i..i + 8 ≤ n of every slice (asserted).
            let mut v = unsafe { _mm256_loadu_ps(src.as_ptr().add(i)) };
            if let Some(r) = residual {
                // SAFETY: as above.
                v = _mm256_add_ps(v, unsafe { _mm256_loadu_ps(r.as_ptr().add(i)) });
            }
            v = match pw {
                Some(PwAct::Clamp { alpha, beta, lo, hi, times_x }) => {
                    let t = _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(v, _mm256_set1_ps(alpha), _mm256_set1_ps(beta)), _mm256_set1_ps(lo)), _mm256_set1_ps(hi));
                    if times_x {
                        _mm256_mul_ps(t, v)
                    } else {
                        t
                    }
                }
                Some(PwAct::Leaky { alpha }) => _mm256_add_ps(_mm256_max_ps(v, zero), _mm256_mul_ps(_mm256_set1_ps(alpha), _mm256_min_ps(v, zero))),
                Some(PwAct::Identity) | None => v,
            };
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(i), v) };
        }
        // The last floats as the portable finish (which also runs an
        // activation with no in-register form over the whole row).
        for (i, d) in dst.iter_mut().enumerate().skip(whole) {
            *d = src[i] + residual.map_or(0.0, |r| r[i]);
        }
        match pw {
            Some(a) => dst[whole..].iter_mut().for_each(|x| *x = a.apply(*x)),
            None => crate::epilogue::activate_in_place(act, dst),
        }
    }

    /// `dst = act(src + residual)`, the piecewise-linear activations in
    /// registers, the others on the stored row.
    #[target_feature(enable = "avx512f")]
    pub(super) fn finish_avx512(src: &[f32], residual: Option<&[f32]>, dst: &mut [f32], act: Activation) {
        let n = dst.len();
        assert!(src.len() >= n && residual.is_none_or(|r| r.len() >= n), "depthwise rows too short");
        let pw = PwAct::of(act);
        let zero = _mm512_setzero_ps();
        for i in (0..n).step_by(16) {
            let m = lanes(n - i);
            // SAFETY: the masked lanes are i..min(i + 16, n), inside every slice (asserted).
            let mut v = unsafe { _mm512_maskz_loadu_ps(m, src.as_ptr().add(i)) };
            if let Some(r) = residual {
                // SAFETY: as above.
                v = _mm512_add_ps(v, unsafe { _mm512_maskz_loadu_ps(m, r.as_ptr().add(i)) });
            }
            v = match pw {
                Some(PwAct::Clamp { alpha, beta, lo, hi, times_x }) => {
                    let t =
                        _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(v, _mm512_set1_ps(alpha), _mm512_set1_ps(beta)), _mm512_set1_ps(lo)), _mm512_set1_ps(hi));
                    if times_x {
                        _mm512_mul_ps(t, v)
                    } else {
                        t
                    }
                }
                Some(PwAct::Leaky { alpha }) => _mm512_add_ps(_mm512_max_ps(v, zero), _mm512_mul_ps(_mm512_set1_ps(alpha), _mm512_min_ps(v, zero))),
                Some(PwAct::Identity) | None => v,
            };
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), m, v) };
        }
        if pw.is_none() {
            crate::epilogue::activate_in_place(act, dst);
        }
    }

    accumulate!(
        accumulate_avx512,
        block_avx512,
        "avx512f",
        __m512,
        lanes = 16,
        load = _mm512_loadu_ps,
        store = _mm512_storeu_ps,
        set1 = _mm512_set1_ps,
        fmadd = _mm512_fmadd_ps
    );
    accumulate!(
        accumulate_avx2,
        block_avx2,
        "avx2,fma",
        __m256,
        lanes = 8,
        load = _mm256_loadu_ps,
        store = _mm256_storeu_ps,
        set1 = _mm256_set1_ps,
        fmadd = _mm256_fmadd_ps
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Epilogue;

    fn kernel(input: [u64; 2], kernel: [u64; 2], strides: [u64; 2], dilations: [u64; 2], pad_begin: [u64; 2], output: [u64; 2]) -> DepthwiseConv {
        DepthwiseConv {
            batch: 1,
            in_channels: 1,
            out_channels: 1,
            input,
            kernel,
            strides,
            dilations,
            pad_begin,
            output,
            epilogue: Epilogue::default(),
            isa: Isa::Generic,
        }
    }

    #[test]
    fn layout_of_a_stride_two_three_by_three() {
        // 112×112, pad 1, 3×3 s2 → 56×56: padded extent 113, phases 57 wide.
        let l = Layout::new(&kernel([112, 112], [3, 3], [2, 2], [1, 1], [1, 1], [56, 56]));
        assert_eq!((l.padded, l.wq), ([113, 113], 57));
        assert_eq!(l.ext_len, (55 * 57 + 56usize).next_multiple_of(LANES));
        // Tap (2, 1): row phase 0 shifted one phase row, column phase 1.
        assert_eq!(l.tap_offset(2, 1), l.phase_len + 57);
        assert!(l.phase_len >= 57 * 57 && l.phase_len > l.ext_len + 57);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_split_matches_the_portable_one() {
        if !Isa::Avx2.available() {
            return;
        }
        for n in 0..70usize {
            let src: Vec<f32> = (0..n).map(|v| v as f32 + 0.5).collect();
            let (mut e, mut o) = (vec![-1.0; n.div_ceil(2)], vec![-1.0; n / 2]);
            let (mut pe, mut po) = (e.clone(), o.clone());
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { simd::split2_avx2(&src, &mut e, &mut o) };
            split2_portable(&src, &mut pe, &mut po);
            assert_eq!((e, o), (pe, po), "{n} floats");
        }
    }

    #[test]
    fn fill_places_every_pixel_in_its_phase() {
        // 3×5 input, pad (1, 2), stride (2, 3), 1×1 kernel, output 2×2.
        let k = kernel([3, 5], [1, 1], [2, 3], [1, 1], [1, 2], [2, 2]);
        let l = Layout::new(&k);
        let x: Vec<f32> = (1..=15).map(|v| v as f32).collect();
        let mut ph = vec![0.0; l.floats()];
        l.fill(&x, 5, &mut ph, &PORTABLE);
        let padded = |r: usize, c: usize| -> f32 {
            let (iy, ix) = (r as i64 - 1, c as i64 - 2);
            if (0..3).contains(&iy) && (0..5).contains(&ix) {
                x[(iy * 5 + ix) as usize]
            } else {
                0.0
            }
        };
        for r in 0..l.padded[0] {
            for c in 0..l.padded[1] {
                let at = ((r % 2) * 3 + c % 3) * l.phase_len + (r / 2) * l.wq + c / 3;
                assert_eq!(ph[at], padded(r, c), "padded ({r}, {c})");
            }
        }
    }
}
