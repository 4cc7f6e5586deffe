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
    fn fill(&self, x: &[f32], iw: usize, phases: &mut [f32]) {
        let ([sh, sw], [ph, pw], [hp, wp]) = (self.s, self.pad, self.padded);
        // Input columns inside the padded extent: ix in 0..cols.
        let cols = iw.min(wp.saturating_sub(pw));
        for (iy, row) in x.chunks_exact(iw.max(1)).enumerate() {
            let r = iy + ph;
            if r >= hp {
                break;
            }
            let base = (r % sh) * sw * self.phase_len + (r / sh) * self.wq;
            if sw == 1 {
                phases[base + pw..][..cols].copy_from_slice(&row[..cols]);
                continue;
            }
            for px in 0..sw {
                // Padded column c = ix + pw with c % sw == px: the first such ix.
                let first = (px + sw - pw % sw) % sw;
                if first >= cols {
                    continue;
                }
                let dst = &mut phases[base + px * self.phase_len + (first + pw) / sw..];
                for (o, &v) in dst.iter_mut().zip(row[first..cols].iter().step_by(sw)) {
                    *o = v;
                }
            }
        }
    }
}

/// Computes output plane `y` (`[oh, ow]`) of `p` through the phases.
/// `fresh` says whether the phases must be refilled (false when the previous
/// plane read the same input channel).
pub(super) fn plane(k: &DepthwiseConv, lay: &Layout, p: &Plane, y: &mut [f32], scratch: &mut [f32], fresh: bool) {
    let isa = k.run_isa();
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (checked by run_isa).
        Isa::Avx512 => unsafe { plane_avx512(k, lay, p, y, scratch, fresh) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA (checked by run_isa).
        Isa::Avx2 => unsafe { plane_avx2(k, lay, p, y, scratch, fresh) },
        _ => plane_body(k, lay, p, y, scratch, fresh, accumulate_generic),
    }
}

/// The tap loop of one ISA: `ext[i] = bias + Σ w · phases[offset + i]` for
/// every `i < ext.len()`.
type Accumulate = fn(&Layout, &[f32], f32, &[f32], &mut [f32]);

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn plane_avx512(k: &DepthwiseConv, lay: &Layout, p: &Plane, y: &mut [f32], scratch: &mut [f32], fresh: bool) {
    // The closure inherits this function's target features.
    plane_body(k, lay, p, y, scratch, fresh, |l, w, b, ph, e| simd::accumulate_avx512(l, w, b, ph, e))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn plane_avx2(k: &DepthwiseConv, lay: &Layout, p: &Plane, y: &mut [f32], scratch: &mut [f32], fresh: bool) {
    // The closure inherits this function's target features.
    plane_body(k, lay, p, y, scratch, fresh, |l, w, b, ph, e| simd::accumulate_avx2(l, w, b, ph, e))
}

/// Fill, accumulate, then store the valid columns with the epilogue.
#[inline(always)]
fn plane_body(k: &DepthwiseConv, lay: &Layout, p: &Plane, y: &mut [f32], scratch: &mut [f32], fresh: bool, acc: Accumulate) {
    let [[_, iw], [_, ow], ..] = k.dims();
    let (phases, ext) = scratch.split_at_mut(lay.s[0] * lay.s[1] * lay.phase_len);
    let ext = &mut ext[..lay.ext_len];
    if fresh {
        lay.fill(p.x, iw, phases);
    }
    acc(lay, p.w, p.bias, phases, ext);
    for (oy, row) in y.chunks_exact_mut(ow.max(1)).enumerate() {
        let src = &ext[oy * lay.wq..][..ow];
        match p.residual {
            Some(r) => {
                for ((o, &a), &rv) in row.iter_mut().zip(src).zip(&r[oy * ow..][..ow]) {
                    *o = a + rv;
                }
            }
            None => row.copy_from_slice(src),
        }
        activate(row, k.epilogue);
    }
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

    accumulate!(accumulate_avx512, block_avx512, "avx512f", __m512, lanes = 16, load = _mm512_loadu_ps, store = _mm512_storeu_ps, set1 = _mm512_set1_ps, fmadd = _mm512_fmadd_ps);
    accumulate!(accumulate_avx2, block_avx2, "avx2,fma", __m256, lanes = 8, load = _mm256_loadu_ps, store = _mm256_storeu_ps, set1 = _mm256_set1_ps, fmadd = _mm256_fmadd_ps);
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
        assert!(l.phase_len >= 57 * 57 && l.phase_len >= l.ext_len + 57 + 1);
    }

    #[test]
    fn fill_places_every_pixel_in_its_phase() {
        // 3×5 input, pad (1, 2), stride (2, 3), 1×1 kernel, output 2×2.
        let k = kernel([3, 5], [1, 1], [2, 3], [1, 1], [1, 2], [2, 2]);
        let l = Layout::new(&k);
        let x: Vec<f32> = (1..=15).map(|v| v as f32).collect();
        let mut ph = vec![0.0; l.floats()];
        l.fill(&x, 5, &mut ph);
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
