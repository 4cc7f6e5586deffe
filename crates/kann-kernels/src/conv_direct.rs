//! 2-D f32 convolution (NCHW, one group) as an indirect GEMM, for few input
//! channels over wide output rows: the RGB stems (3 → 64 7×7/2 on 224×224,
//! 3 → 32 3×3/2). An im2col of these is 27 to 49 times the input, gathered
//! by short strided runs: it took a third of the stem's time. Here the
//! microkernel reads its B rows straight from a padded copy of the input
//! rows the part needs, one offset per row `k = (ci, ky, kx)`:
//!
//! - the copy zero-pads the borders and, for horizontal stride 2, splits each
//!   row into its even and odd padded columns (two phases), so that the
//!   columns `ox0..ox0 + NR` of an output row read one contiguous run of a
//!   phase for every tap: `phase[ci][(kx·dw) mod s][oy·sh + ky·dh][ox + (kx·dw) div s]`;
//! - a tile is `MR` output channels × `NR` consecutive columns of one output
//!   row; the copy's rows reach past the last column, so a row's last tile
//!   reads whole vectors whose extra lanes are dropped.
//!
//! W is packed as the GEMM convolution's ([`crate::conv_gemm::pack_conv_gemm_weights`]),
//! the epilogue (bias, residual, activation) applied in the tile. Work items
//! are output rows (`N · oh`); each part copies only the input rows its own
//! output rows read.
//!
//! Grouped convolutions with a few channels a group (RegNet's 3×3 of 24
//! channels a group) run the same way, each group copying its own
//! channels' rows: their im2col is 9 times the input for a GEMM of 24 rows, and gathering
//! it took longer than the multiply-adds (program format v11). Their work
//! items are each group's output rows (program format v12), so that
//! clusters split the groups, not the rows that every group reads.
//!
//! Inputs: X `[N, C, H, W]`, packed W, then B `[M]` if `epilogue.bias`, then
//! the residual (Y's shape) if `epilogue.residual`. Output: Y `[N, M, oh, ow]`.

use crate::kernel::{expect_io, KernelImpl};
use crate::packed::{self, pack::{packed_a_len, PackedA}, Isa};
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A direct (indirect-GEMM) 2-D convolution; geometry as [`crate::conv::Conv`]
/// with two spatial axes `[h, w]`, horizontal stride 1 or 2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvDirect {
    pub batch: u64,
    pub in_channels: u64,
    pub out_channels: u64,
    /// Groups: each reads `in_channels / group` channels into
    /// `out_channels / group` (program format v11).
    pub group: u64,
    pub input: [u64; 2],
    pub kernel: [u64; 2],
    pub strides: [u64; 2],
    pub dilations: [u64; 2],
    pub pad_begin: [u64; 2],
    pub output: [u64; 2],
    pub epilogue: Epilogue,
    pub isa: Isa,
}

/// The geometry in `usize`, and the layout of a part's padded rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    /// Output channels.
    pub(crate) m: usize,
    /// Groups, and input and output channels a group.
    pub(crate) g: usize,
    pub(crate) cg: usize,
    pub(crate) mg: usize,
    pub(crate) ih: usize,
    pub(crate) iw: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) sh: usize,
    /// Horizontal stride: the number of phases.
    pub(crate) s: usize,
    pub(crate) dh: usize,
    pub(crate) dw: usize,
    pub(crate) ph: usize,
    pub(crate) pw: usize,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
    /// Floats of a phase row: every column a tile reads.
    pub(crate) wq: usize,
}

impl Geom {
    pub(crate) fn of(k: &ConvDirect) -> Geom {
        let u = |v: u64| v as usize;
        let (s, dw, kw, ow) = (
            u(k.strides[1]),
            u(k.dilations[1]),
            u(k.kernel[1]),
            u(k.output[1]),
        );
        let g = u(k.group).max(1);
        Geom {
            m: u(k.out_channels),
            g,
            cg: u(k.in_channels) / g,
            mg: u(k.out_channels) / g,
            ih: u(k.input[0]),
            iw: u(k.input[1]),
            kh: u(k.kernel[0]),
            kw,
            sh: u(k.strides[0]),
            s,
            dh: u(k.dilations[0]),
            dw,
            ph: u(k.pad_begin[0]),
            pw: u(k.pad_begin[1]),
            oh: u(k.output[0]),
            ow,
            wq: ow.next_multiple_of(k.isa.nr()) + (kw.max(1) - 1) * dw / s.max(1),
        }
    }

    /// GEMM depth of a group, `C/group · kh · kw`.
    pub(crate) fn depth(&self) -> usize {
        self.cg * self.kh * self.kw
    }

    /// Padded input rows that output rows `oys` read.
    pub(crate) fn rows_for(&self, oys: usize) -> usize {
        if oys == 0 {
            0
        } else {
            (oys - 1) * self.sh + (self.kh.max(1) - 1) * self.dh + 1
        }
    }

    /// Floats of the padded copy of one group's `rows` rows: `[C/group][s][rows][wq]`.
    pub(crate) fn copy_floats(&self, rows: usize) -> usize {
        self.cg * self.s * rows * self.wq
    }

    /// Each B row `k = (ci, ky, kx)`'s (`ci` counted in the group) offset
    /// in a group's copy of `rows` rows, from a tile's first column, into
    /// `offs` (K of them). In nested loops: per row, three integer
    /// divisions took a fifth of the time outside the tiles (every group
    /// of a part fills the table again).
    pub(crate) fn fill_offsets(&self, rows: usize, offs: &mut [usize]) {
        let mut at = offs.iter_mut();
        for ci in 0..self.cg {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let col = kx * self.dw;
                    if let Some(o) = at.next() {
                        *o = ((ci * self.s + col % self.s) * rows + ky * self.dh) * self.wq + col / self.s;
                    }
                }
            }
        }
    }
}

impl ConvDirect {
    /// The K-block depth its packed weights have: its tiles are one panel
    /// wide, so the full [`packed::KC`].
    pub fn k_block(&self) -> usize {
        packed::KC
    }

    /// Output rows a convolution runs at a time: a group's padded copy of
    /// them then stays in L2 while its tiles read it. (The copy was once of
    /// every group's channels, in bands that fit L2: a band of one output
    /// row on RegNet's 408-channel 3×3/2, whose 352 KiB of weights then left
    /// L2 for every row; group by group, 28×28/2 989 → 720 µs and 7×7 573 →
    /// 440 on Zen 3.) A stem copied a part's rows at once: 632 KiB for a
    /// 7×7/2 one on 224×224, whose first rows had left L2 when its tiles
    /// read them (3.1-3.8 → 2.9-3.1 ms in bands on Zen 3).
    pub(crate) fn band_rows(&self) -> usize {
        const COPY_BYTES: usize = 256 << 10;
        let g = Geom::of(self);
        (1..=g.oh).rev().find(|&r| 4 * g.copy_floats(g.rows_for(r)) <= COPY_BYTES).unwrap_or(1)
    }

    /// Whether the kernel computes this geometry: nonzero strides and
    /// dilations, horizontal stride 1 or 2.
    pub fn supports(strides: [u64; 2], dilations: [u64; 2]) -> bool {
        matches!(strides[1], 1 | 2) && strides[0] > 0 && !dilations.contains(&0)
    }

    /// Copies the padded input rows of one group's planes `x` (`C/group`
    /// planes) that output rows `oy0..oy0 + oys` read into `dst`
    /// (`[C/group][s][rows][wq]`),
    /// with AVX2 where the kernel's ISA and the CPU have it. (Compiled
    /// portably, the stride-2 split ran 4 floats at a time behind two
    /// integer divisions a row: 58 % of a RegNet 3×3/2 grouped layer.)
    pub(crate) fn copy_rows(&self, g: &Geom, x: &[f32], oy0: usize, oys: usize, dst: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.isa != Isa::Generic && Isa::Avx2.available() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return unsafe { copy_rows_avx2(g, x, oy0, oys, dst) };
        }
        match g.s {
            1 => copy_rows_body::<1>(g, x, oy0, oys, dst),
            _ => copy_rows_body::<2>(g, x, oy0, oys, dst),
        }
    }

    /// Output rows `oy0..oy0 + oys` of groups `groups` of image `b`, into Y.
    ///
    /// # Safety
    /// As [`KernelImpl::run`]; this part owns those rows of those groups;
    /// the scratch holds [`KernelImpl::scratch_bytes`] for `oys` items.
    unsafe fn run_rows(&self, io: &Io, b: usize, groups: Range<usize>, oy0: usize, oys: usize, scratch: &mut [f32]) {
        let (m, plane_out) = ((self.out_channels) as usize, (self.output[0] * self.output[1]) as usize);
        let y = &io.outputs[0];
        assert!((b + 1) * m * plane_out <= y.len_bytes() / 4, "conv direct output is too small");
        // SAFETY: image b's planes lie inside Y (asserted); the caller's contract.
        unsafe { self.rows_into(io, b, groups, oy0, oys, (y.as_ptr() as *mut f32).add(b * m * plane_out), [plane_out, 0], scratch) }
    }

    /// Output rows `oy0..oy0 + oys` of groups `groups` of image `b` into
    /// `out`, `at = [plane, row0]`: channel `c`'s row `oy` at `out + c · plane + (oy − row0) · ow`
    /// (`row0` 0 for Y's planes, `oy0` for a buffer of just these rows;
    /// a residual is only read into Y's planes).
    ///
    /// # Safety
    /// As [`KernelImpl::run`] for the inputs; the caller owns those rows of
    /// `out` (`m` planes of `at[0]` floats); the scratch holds
    /// [`KernelImpl::scratch_bytes`] for `oys` items.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn rows_into(&self, io: &Io, b: usize, groups: Range<usize>, oy0: usize, oys: usize, out: *mut f32, at: [usize; 2], scratch: &mut [f32]) {
        let [out_plane, row0] = at;
        let g = Geom::of(self);
        let (k, plane_out, rows) = (g.depth(), g.oh * g.ow, g.rows_for(oys));
        assert!(oy0 >= row0 && (oy0 + oys - row0) * g.ow <= out_plane, "conv direct destination rows");
        let (mr, nr) = (self.isa.mr(), self.isa.nr());
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, w) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        // SAFETY: as above.
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        // SAFETY: as above.
        let residual = self
            .epilogue
            .residual
            .then(|| unsafe { io.inputs[2 + usize::from(self.epilogue.bias)].f32() });
        let (copy, rest) = scratch.split_at_mut(g.copy_floats(rows) + nr);
        // The B row offsets, a usize table after the copy (aligned within its slack).
        // SAFETY: any bit pattern is a valid usize; the slice is only reinterpreted.
        let (_, offs, _) = unsafe { rest.align_to_mut::<usize>() };
        assert!(offs.len() >= k, "conv direct scratch is too small");
        let offs = &mut offs[..k];
        g.fill_offsets(rows, offs);
        // A row's last tile reads whole NR-float rows of B, past its columns
        // but inside its phase row (wq floats): all inside `copy`.
        let reach = offs.iter().max().map_or(0, |&o| o + (oys - 1) * g.sh * g.wq + g.ow.next_multiple_of(nr));
        assert!(reach <= copy.len(), "conv direct copy reach");
        // An activation with no in-register form (SiLU, sigmoid) runs over
        // each panel's finished rows, not per tile: per 16-float tile row
        // it was a call each (EfficientNet-B0's stem spent a third of its
        // time there on Zen 3).
        let (act, after) = match packed::PwAct::of(self.epilogue.activation) {
            None => (crate::Activation::None, Some(self.epilogue.activation)),
            Some(_) => (self.epilogue.activation, None),
        };
        let a_len = packed_a_len(g.mg, k, self.isa);
        assert!(w.len() >= g.g * a_len, "conv direct weights are too short");
        assert!(groups.end <= g.g, "conv direct groups");
        for gi in groups {
            let a = PackedA::new(&w[gi * a_len..][..a_len], g.mg, k, self.isa, self.k_block());
            let planes = g.cg * g.ih * g.iw;
            self.copy_rows(&g, &x[(b * g.g + gi) * planes..][..planes], oy0, oys, copy);
            let group_copy = &copy[..];
            for i in 0..g.mg.div_ceil(mr) {
                let rows_c = mr.min(g.mg - i * mr);
                // The panel's first output channel.
                let ch = gi * g.mg + i * mr;
                for oy in oy0..oy0 + oys {
                    for ox0 in (0..g.ow).step_by(nr) {
                        let mut cols = nr.min(g.ow - ox0);
                        // A row's last tile of more than a vector stores all
                        // its columns when those past the row land in this
                        // part's later rows (rewritten by their own tiles):
                        // whole vectors instead of masked ones (on 14×14 maps
                        // the masked merge took a tenth of the step).
                        if cols < nr && 2 * cols > nr && (oy - row0) * g.ow + ox0 + nr <= (oy0 + oys - row0) * g.ow {
                            cols = nr;
                        }
                        let base = group_copy[(oy - oy0) * g.sh * g.wq + ox0..].as_ptr();
                        let at = (b * g.m + ch) * plane_out + oy * g.ow + ox0;
                        // Partial sums cross A's K blocks through the output.
                        for (k0, kc) in a.blocks() {
                            let e = packed::TileEpi {
                                accumulate: k0 > 0,
                                finish: k0 + kc == k,
                                bias: bias.map_or(std::ptr::null(), |bv| bv[ch..].as_ptr()),
                                // Only into Y (row0 0, Y's planes): the residual has its layout.
                                residual: residual.map_or(std::ptr::null(), |r| r[at..].as_ptr()),
                                act,
                                next_a: std::ptr::null(),
                                b_ahead: false,
                            };
                            let c = out.wrapping_add(ch * out_plane + (oy - row0) * g.ow + ox0);
                            // SAFETY: C's rows_c × cols tile (stride out_plane) lies in
                            // this part's rows of `out` (asserted); every B row reads NR floats
                            // inside `copy` (asserted); the ISA is the kernel's (checked in run).
                            unsafe { packed::tile_indirect(self.isa, kc, a.panel(i, k0, kc).as_ptr(), base, offs[k0..].as_ptr(), c, out_plane, rows_c, cols, &e) };
                        }
                    }
                }
                if let Some(act) = after {
                    for r in 0..rows_c {
                        // SAFETY: channel ch + r's rows oy0..oy0 + oys of `out`, one
                        // run, all written above by this part (asserted bounds).
                        let run = unsafe { std::slice::from_raw_parts_mut(out.add((ch + r) * out_plane + (oy0 - row0) * g.ow), oys * g.ow) };
                        crate::epilogue::activate_in_place(act, run);
                    }
                }
            }
        }
    }
}

/// [`ConvDirect::copy_rows`] with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn copy_rows_avx2(g: &Geom, x: &[f32], oy0: usize, oys: usize, dst: &mut [f32]) {
    match g.s {
        1 => copy_rows_s1_avx2(g, x, oy0, oys, dst),
        _ => copy_rows_s2_avx2(g, x, oy0, oys, dst),
    }
}

/// The lanes `l` of 8 whose input column `col + l` lies in `0..iw` (all
/// bits set), for a masked load of a row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn inside_columns(col: isize, iw: usize) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let idx = _mm256_add_epi32(_mm256_set1_epi32(col as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(iw as i32), idx), _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(-1)))
}

/// [`ConvDirect::copy_rows`] for horizontal stride 2 with AVX2: 16 input
/// columns at a time (two masked loads, zeros outside the row) dealt into
/// the 8 floats of each phase row, as [`copy_rows_s1_avx2`] does for one.
/// A phase's last row must not reach into the other phase's first row,
/// written before it: its last vector is stored masked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn copy_rows_s2_avx2(g: &Geom, x: &[f32], oy0: usize, oys: usize, dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let rows = g.rows_for(oys);
    let first = (oy0 * g.sh) as isize - g.ph as isize;
    let chunks = g.wq.div_ceil(8);
    assert!(g.cg * rows == 0 || (2 * g.cg * rows - 1) * g.wq + 8 * chunks <= dst.len(), "conv direct copy slack");
    assert!(x.len() >= g.cg * g.ih * g.iw, "conv direct copy input");
    let valid_at = |col: isize| inside_columns(col, g.iw);
    // The floats of a phase row's last vector that lie inside the row.
    let last_lanes = g.wq - 8 * (chunks - 1);
    for ci in 0..g.cg {
        for r in 0..rows {
            let even = dst[((2 * ci) * rows + r) * g.wq..].as_mut_ptr();
            let odd = dst[((2 * ci + 1) * rows + r) * g.wq..].as_mut_ptr();
            let iy = first + r as isize;
            let inside = iy >= 0 && iy < g.ih as isize;
            let row = x[ci * g.ih * g.iw..].as_ptr().wrapping_add(if inside { iy as usize * g.iw } else { 0 });
            for j in 0..chunks {
                // Input columns 16j − pw + lane: phase p's column 8j + l is
                // input column 2(8j + l) + p − pw.
                let col = 16 * j as isize - g.pw as isize;
                let (va, vb) = if inside { (valid_at(col), valid_at(col + 8)) } else { (_mm256_setzero_si256(), _mm256_setzero_si256()) };
                // SAFETY: only valid lanes are read (columns 0..iw of an input
                // row of this plane; masked-off lanes never fault); the stores
                // lie in dst (asserted), the even phase's last row's last
                // vector masked to the row.
                unsafe {
                    // Whole vectors inside the row load plainly: with masked
                    // loads throughout, RegNet's grouped 3×3/2 layers ran
                    // 4-12 % slower (alternated in one process, Zen 3).
                    let whole = inside && col >= 0 && col + 16 <= g.iw as isize;
                    let (a, b) = if whole {
                        (_mm256_loadu_ps(row.offset(col)), _mm256_loadu_ps(row.offset(col + 8)))
                    } else {
                        (_mm256_maskload_ps(row.wrapping_offset(col), va), _mm256_maskload_ps(row.wrapping_offset(col + 8), vb))
                    };
                    // [a0 a2 b0 b2 | a4 a6 b4 b6] (odd: a1 a3 …), then the 64-bit pairs in order.
                    let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
                    let (e, o) = (order(_mm256_shuffle_ps::<0b10_00_10_00>(a, b)), order(_mm256_shuffle_ps::<0b11_01_11_01>(a, b)));
                    if r + 1 == rows && j + 1 == chunks {
                        crate::avx2::store_first(even.add(8 * j), e, last_lanes);
                    } else {
                        _mm256_storeu_ps(even.add(8 * j), e);
                    }
                    _mm256_storeu_ps(odd.add(8 * j), o);
                }
            }
        }
    }
}

/// [`ConvDirect::copy_rows`] for horizontal stride 1 with AVX2: each padded
/// row written 8 floats at a time, a masked load of the input row (zeros
/// outside it) then a whole store, the last one reaching past the row into
/// the next (written after it) or the copy's slack. Row by row with
/// `fill` and `copy_from_slice`, a 14-wide map's rows took three library
/// calls each: 11 % of a RegNet grouped 3×3 step on 14×14.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn copy_rows_s1_avx2(g: &Geom, x: &[f32], oy0: usize, oys: usize, dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let rows = g.rows_for(oys);
    let first = (oy0 * g.sh) as isize - g.ph as isize;
    let chunks = g.wq.div_ceil(8);
    assert!(g.cg * rows == 0 || (g.cg * rows - 1) * g.wq + 8 * chunks <= dst.len(), "conv direct copy slack");
    assert!(x.len() >= g.cg * g.ih * g.iw, "conv direct copy input");
    for ci in 0..g.cg {
        for r in 0..rows {
            let d = dst[(ci * rows + r) * g.wq..].as_mut_ptr();
            let iy = first + r as isize;
            let inside = iy >= 0 && iy < g.ih as isize;
            let row = x[ci * g.ih * g.iw..].as_ptr().wrapping_add(if inside { iy as usize * g.iw } else { 0 });
            for j in 0..chunks {
                // Input columns 8j − pw + lane, valid inside the row.
                let col = 8 * j as isize - g.pw as isize;
                let valid = if inside { inside_columns(col, g.iw) } else { _mm256_setzero_si256() };
                // SAFETY: only the valid lanes are read, columns 0..iw of an
                // input row of this plane (masked-off lanes never fault); the
                // store's 8 floats lie in dst (asserted: the last row's reach).
                // (A whole vector inside the row loads plainly, as in the stride-2 copy.)
                unsafe {
                    let v = if inside && col >= 0 && col + 8 <= g.iw as isize { _mm256_loadu_ps(row.offset(col)) } else { _mm256_maskload_ps(row.wrapping_offset(col), valid) };
                    _mm256_storeu_ps(d.add(8 * j), v)
                };
            }
        }
    }
}

/// [`ConvDirect::copy_rows`] for horizontal stride `S` (1 or 2, `g.s`),
/// portably.
#[inline(always)]
fn copy_rows_body<const S: usize>(g: &Geom, x: &[f32], oy0: usize, oys: usize, dst: &mut [f32]) {
    let rows = g.rows_for(oys);
    let first = (oy0 * g.sh) as isize - g.ph as isize;
    for ci in 0..g.cg {
        let plane = &x[ci * g.ih * g.iw..][..g.ih * g.iw];
        for phase in 0..S {
            // Phase column q holds input column q·S + phase − pw.
            let shift = phase as isize - g.pw as isize;
            // Columns q with 0 <= q·S + shift < iw.
            let q0 = ((-shift).max(0) as usize).div_ceil(S).min(g.wq);
            let q1 = ((g.iw as isize - shift).max(0) as usize).div_ceil(S).clamp(q0, g.wq);
            let from = (q0 as isize * S as isize + shift) as usize;
            for r in 0..rows {
                let d = &mut dst[((ci * S + phase) * rows + r) * g.wq..][..g.wq];
                let iy = first + r as isize;
                if iy < 0 || iy >= g.ih as isize {
                    d.fill(0.0);
                    continue;
                }
                let row = &plane[iy as usize * g.iw..][..g.iw];
                d[..q0].fill(0.0);
                d[q1..].fill(0.0);
                let body = &mut d[q0..q1];
                if S == 1 {
                    body.copy_from_slice(&row[from..from + body.len()]);
                } else if !body.is_empty() {
                    let src = &row[from..from + 2 * body.len() - 1];
                    for (i, v) in body.iter_mut().enumerate() {
                        *v = src[2 * i];
                    }
                }
            }
        }
    }
}

impl KernelImpl for ConvDirect {
    fn name(&self) -> String {
        format!("f32_conv2d_direct_{}", self.isa.name())
    }

    /// Output rows; of a grouped convolution, each group's (`[N][group][oh]`):
    /// clusters then split the groups, each reading only its own groups'
    /// weights and input channels (split by rows, both read them all, and
    /// RegNet-X's grouped steps took as long on each of 2 clusters as on 1).
    fn work_items(&self) -> u64 {
        self.batch * self.group.max(1) * self.output[0]
    }

    fn scratch_bytes(&self, items: u64) -> usize {
        if items == 0 {
            return 0;
        }
        let g = Geom::of(self);
        // A part's rows may span two images: at most `oh` rows of one at a
        // time, and of a grouped convolution a band.
        let oys = (items as usize).min(g.oh).min(self.band_rows());
        4 * (g.copy_floats(g.rows_for(oys)) + self.isa.nr()) + 8 * (g.depth() + 1)
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        if !ConvDirect::supports(self.strides, self.dilations) {
            return Err(format!(
                "conv direct needs a horizontal stride of 1 or 2 and nonzero dilations: {self:?}"
            ));
        }
        if self.in_channels == 0 || self.kernel.contains(&0) || self.out_channels == 0 {
            return Err(format!("conv direct has an empty product: {self:?}"));
        }
        if self.group == 0 || self.in_channels % self.group != 0 || self.out_channels % self.group != 0 {
            return Err(format!("conv direct's {} groups do not divide its channels: {self:?}", self.group));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        assert!(
            self.isa.available(),
            "the direct conv needs {}, which this CPU lacks",
            self.isa.name()
        );
        // SAFETY: any bit pattern is a valid f32; align to 8 for the offsets after the copy.
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(pre.is_empty(), "conv direct scratch is not 4-byte aligned");
        let (oh, groups, band) = (self.output[0] as usize, self.group.max(1) as usize, self.band_rows());
        for_each_band(part, oh, groups, band, |b, gi, oy, oys| {
            // SAFETY: the caller's contract; this part owns rows oy.. of group gi of image b.
            unsafe { self.run_rows(io, b, gi..gi + 1, oy, oys, scratch) }
        });
    }
}

/// Walks a part of `[N][groups][oh]` output-row items as bands:
/// `f(b, gi, oy, oys)` for rows `oy..oy + oys` of group `gi` of image `b`,
/// at most `band` rows and never past a group's last row.
pub(crate) fn for_each_band(part: Range<u64>, oh: usize, groups: usize, band: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
    let (mut item, end) = (part.start as usize, part.end as usize);
    while item < end {
        let (b, gi, oy) = (item / (oh * groups), item / oh % groups, item % oh);
        let oys = (oh - oy).min(end - item).min(band.max(1));
        f(b, gi, oy, oys);
        item += oys;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;
    use crate::conv_gemm::pack_conv_gemm_weights;
    use crate::packed::tests::all_activations;


    fn random(rng: &mut Rng, isa: Isa, epilogue: Epilogue) -> ConvDirect {
        let (kh, kw) = (1 + rng.below(7), 1 + rng.below(7));
        let (sh, sw) = (1 + rng.below(3), 1 + rng.below(2));
        let (dh, dw) = (1 + rng.below(2), 1 + rng.below(2));
        let (ph, pw) = (rng.below(kh), rng.below(kw));
        let ih = (kh - 1) * dh + 1 + rng.below(20);
        let iw = (kw - 1) * dw + 1 + rng.below(80);
        // Any end padding up to the begin padding.
        let (eh, ew) = (rng.below(ph + 1), rng.below(pw + 1));
        let oh = (ih + ph + eh - (kh - 1) * dh - 1) / sh + 1;
        let ow = (iw + pw + ew - (kw - 1) * dw - 1) / sw + 1;
        // One group in two; 1 to 3 groups of 1 to 4 inputs and 1 to 20 outputs.
        let group = if rng.below(2) == 0 { 1 } else { 1 + rng.below(3) };
        ConvDirect {
            batch: 1 + rng.below(2),
            in_channels: group * (1 + rng.below(4)),
            out_channels: group * (1 + rng.below(20)),
            group,
            input: [ih, iw],
            kernel: [kh, kw],
            strides: [sh, sw],
            dilations: [dh, dw],
            pad_begin: [ph, pw],
            output: [oh, ow],
            epilogue,
            isa,
        }
    }

    fn compare(k: &ConvDirect, rng: &mut Rng, parts: u64) {
        let g = Geom::of(k);
        let (n, m, c) = (k.batch as usize, g.m, k.in_channels as usize);
        let x = rng.vec(n * c * g.ih * g.iw);
        let w = rng.vec(m * g.depth());
        let mut inputs = vec![x.clone(), pack_conv_gemm_weights(&w, m, g.g, k.isa, k.k_block())];
        let mut ref_inputs = vec![x, w];
        let out = n * m * g.oh * g.ow;
        if k.epilogue.bias {
            let b = rng.vec(m);
            inputs.push(b.clone());
            ref_inputs.push(b);
        }
        if k.epilogue.residual {
            let r = rng.vec(out);
            inputs.push(r.clone());
            ref_inputs.push(r);
        }
        let want = run_parts(&k.portable(), &ref_inputs, &[out], 1);
        let got = run_parts(k, &inputs, &[out], parts);
        assert_close(&got[0], &want[0], 1e-4);
    }

    #[test]
    fn matches_the_portable_conv_on_random_geometries() {
        let mut rng = Rng(41);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for case in 0..40 {
                let epilogue = Epilogue {
                    bias: case % 2 == 0,
                    residual: case % 3 == 0,
                    activation: crate::Activation::Relu,
                };
                let k = random(&mut rng, isa, epilogue);
                compare(&k, &mut rng, 1 + case % 3);
            }
        }
    }

    #[test]
    fn every_epilogue_and_the_stems() {
        let mut rng = Rng(43);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for act in all_activations() {
                let mut k = random(
                    &mut rng,
                    isa,
                    Epilogue {
                        bias: true,
                        residual: true,
                        activation: act,
                    },
                );
                k.out_channels = 13 * k.group;
                compare(&k, &mut rng, 2);
            }
            // ResNet's 7×7/2 stem and MobileNet's 3×3/2 one, on smaller maps,
            // and AlexNet's 11×11/2 one (363 taps: two K blocks, their partial
            // sums meeting in the output before the epilogue).
            for (kk, p, hw) in [(7u64, 3u64, 64u64), (3, 1, 50), (11, 2, 70)] {
                let out = (hw + 2 * p - kk) / 2 + 1;
                let k = ConvDirect {
                    batch: 1,
                    in_channels: 3,
                    out_channels: 24,
                    group: 1,
                    input: [hw, hw],
                    kernel: [kk, kk],
                    strides: [2, 2],
                    dilations: [1, 1],
                    pad_begin: [p, p],
                    output: [out, out],
                    epilogue: Epilogue {
                        bias: true,
                        residual: false,
                        activation: crate::Activation::Relu,
                    },
                    isa,
                };
                compare(&k, &mut rng, 3);
            }
        }
    }

    /// The AVX2 padded-row copies against the portable one, every stride-1
    /// and -2 geometry over a few widths, pads and row bands.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_row_copies_match_the_portable_one() {
        if !Isa::Avx2.available() {
            return;
        }
        let mut rng = Rng(53);
        for s in [1u64, 2] {
            for (iw, kw, p) in [(5u64, 3u64, 1u64), (14, 3, 1), (17, 3, 1), (30, 5, 2), (56, 3, 0), (9, 7, 3), (40, 1, 0)] {
                let ih = iw.min(12);
                let out = [(ih + 2 * p - kw) / s + 1, (iw + 2 * p - kw) / s + 1];
                let k = ConvDirect { batch: 1, in_channels: 3, out_channels: 4, group: 1, input: [ih, iw], kernel: [kw, kw], strides: [s, s], dilations: [1, 1], pad_begin: [p, p], output: out, epilogue: Epilogue { bias: false, residual: false, activation: crate::Activation::None }, isa: Isa::Avx2 };
                let g = Geom::of(&k);
                let x = rng.vec((3 * ih * iw) as usize);
                for (oy0, oys) in [(0, g.oh), (1, 2.min(g.oh - 1)), (g.oh - 1, 1)] {
                    let len = g.copy_floats(g.rows_for(oys));
                    let (mut want, mut got) = (vec![f32::NAN; len + 16], vec![f32::NAN; len + 16]);
                    match s {
                        1 => copy_rows_body::<1>(&g, &x, oy0, oys, &mut want),
                        _ => copy_rows_body::<2>(&g, &x, oy0, oys, &mut want),
                    }
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { copy_rows_avx2(&g, &x, oy0, oys, &mut got) };
                    assert_eq!(got[..len], want[..len], "stride {s}, {iw} wide, {kw} taps, pad {p}, rows {oy0}+{oys}");
                }
            }
        }
    }

    #[test]
    fn stems_run_in_bands() {
        // A 7×7/2 stem on 224×224: its padded copy (632 KiB) is cut in bands
        // of output rows; 1 to 3 parts cut them again.
        let mut rng = Rng(61);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            let k = ConvDirect { batch: 1, in_channels: 3, out_channels: 8, group: 1, input: [224, 224], kernel: [7, 7], strides: [2, 2], dilations: [1, 1], pad_begin: [3, 3], output: [112, 112], epilogue: Epilogue { bias: true, residual: true, activation: crate::Activation::Relu }, isa };
            assert!(k.band_rows() < 112 / 2, "{} rows a band", k.band_rows());
            for parts in 1..=3 {
                compare(&k, &mut rng, parts);
            }
        }
    }

    #[test]
    fn regnet_like_groups() {
        // 24 channels a group, 3×3, stride 1 and 2, K past one block (216
        // and 4 groups of 72 = 648), every ISA, parts cutting the rows; rows
        // of 9 and 14 columns, whose last tiles store past the row.
        let mut rng = Rng(47);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for (cg, group, hw, s) in [(24u64, 3u64, 20u64, 1u64), (24, 2, 17, 2), (72, 2, 9, 1), (24, 3, 14, 1)] {
                let out = (hw + 2 - 3) / s + 1;
                let k = ConvDirect {
                    batch: 1,
                    in_channels: cg * group,
                    out_channels: cg * group,
                    group,
                    input: [hw, hw],
                    kernel: [3, 3],
                    strides: [s, s],
                    dilations: [1, 1],
                    pad_begin: [1, 1],
                    output: [out, out],
                    epilogue: Epilogue { bias: true, residual: s == 1, activation: crate::Activation::Relu },
                    isa,
                };
                // Each group's rows are items: 3 parts cut groups and rows.
                assert_eq!(k.work_items(), group * out);
                compare(&k, &mut rng, 3);
            }
        }
    }

    /// Microseconds of RegNet-X-1.6GF's grouped 3×3 convolutions (24
    /// channels a group) against the GEMM convolution; not a test of
    /// correctness:
    /// `cargo test --release -p kann-kernels --lib conv_direct::tests::grouped_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn grouped_timing() {
        use crate::conv_gemm::{ConvGemm, GemmAxis};
        let isa = Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic);
        let mut rng = Rng(6);
        // KANN_GROUPED_SHAPES=C,M,GROUP,HW,S;... times these 3×3 convolutions instead.
        let shapes: Vec<[u64; 5]> = std::env::var("KANN_GROUPED_SHAPES").map_or(
            [(72u64, 56u64, 1u64), (168, 56, 2), (168, 28, 1), (408, 28, 2), (408, 14, 1), (912, 14, 2), (912, 7, 1)].map(|(c, hw, s)| [c, c, c / 24, hw, s]).to_vec(),
            |v| v.split(';').map(|t| std::array::from_fn(|i| t.split(',').nth(i).and_then(|x| x.parse().ok()).expect("KANN_GROUPED_SHAPES: C,M,GROUP,HW,S;..."))).collect(),
        );
        for [c, m, group, hw, s] in shapes {
            let out = (hw + 2 - 3) / s + 1;
            let epilogue = Epilogue { bias: true, residual: false, activation: crate::Activation::Relu };
            let d = ConvDirect { batch: 1, in_channels: c, out_channels: m, group, input: [hw, hw], kernel: [3, 3], strides: [s, s], dilations: [1, 1], pad_begin: [1, 1], output: [out, out], epilogue, isa };
            let gemm = ConvGemm { batch: 1, in_channels: c, out_channels: m, group, input: [hw, hw], kernel: [3, 3], strides: [s, s], dilations: [1, 1], pad_begin: [1, 1], output: [out, out], epilogue, isa, axis: GemmAxis::Columns, input_scale: false };
            let cg = c / group;
            let w = rng.vec((m * cg * 9) as usize);
            let n_out = (m * out * out) as usize;
            let flops = 2.0 * (m * cg * 9 * out * out) as f64;
            let mut inputs = vec![rng.vec((c * hw * hw) as usize), pack_conv_gemm_weights(&w, m as usize, group as usize, isa, d.k_block()), rng.vec(m as usize)];
            let td = time_kernel(&d, &mut inputs, n_out);
            // KANN_GROUPED_DIRECT_ONLY skips the GEMM (for a profiler).
            if std::env::var("KANN_GROUPED_DIRECT_ONLY").is_ok() {
                println!("grouped {c}->{m} ch /{group} {hw}x{hw}/{s}: direct {td:.0} us ({:.0} GFLOP/s)", flops / td / 1e3);
                continue;
            }
            inputs[1] = pack_conv_gemm_weights(&w, m as usize, group as usize, isa, gemm.k_block());
            let tg = time_kernel(&gemm, &mut inputs, n_out);
            println!("grouped {c}->{m} ch /{group} {hw}x{hw}/{s}: direct {td:.0} us ({:.0} GFLOP/s), gemm {tg:.0} us ({:.0} GFLOP/s)", flops / td / 1e3, flops / tg / 1e3);
        }
    }

    /// Microseconds of the stems against the GEMM convolution; not a test
    /// of correctness:
    /// `cargo test --release -p kann-kernels --lib conv_direct::tests::stem_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn stem_timing() {
        use crate::conv_gemm::{ConvGemm, GemmAxis};
        let isa = Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.available())
            .unwrap_or(Isa::Generic);
        let mut rng = Rng(5);
        for (m, kk, p, hw) in [
            (64u64, 7u64, 3u64, 224u64),
            (64, 3, 0, 224),
            (32, 3, 1, 224),
        ] {
            let out = (hw + 2 * p - kk) / 2 + 1;
            let epilogue = Epilogue {
                bias: true,
                residual: false,
                activation: crate::Activation::Relu,
            };
            let d = ConvDirect {
                batch: 1,
                in_channels: 3,
                out_channels: m,
                group: 1,
                input: [hw, hw],
                kernel: [kk, kk],
                strides: [2, 2],
                dilations: [1, 1],
                pad_begin: [p, p],
                output: [out, out],
                epilogue,
                isa,
            };
            let gemm = ConvGemm {
                batch: 1,
                in_channels: 3,
                out_channels: m,
                group: 1,
                input: [hw, hw],
                kernel: [kk, kk],
                strides: [2, 2],
                dilations: [1, 1],
                pad_begin: [p, p],
                output: [out, out],
                epilogue,
                isa,
                axis: GemmAxis::Columns,
                input_scale: false,
            };
            let w = rng.vec((m * 3 * kk * kk) as usize);
            // One packing serves both kernels: a stem's GEMM is wider than a wide tile.
            assert_eq!(d.k_block(), gemm.k_block());
            let mut inputs = vec![
                rng.vec((3 * hw * hw) as usize),
                pack_conv_gemm_weights(&w, m as usize, 1, isa, d.k_block()),
                rng.vec(m as usize),
            ];
            let n_out = (m * out * out) as usize;
            let flops = 2.0 * (m * 3 * kk * kk * out * out) as f64;
            let (td, tg) = (
                time_kernel(&d, &mut inputs, n_out),
                time_kernel(&gemm, &mut inputs, n_out),
            );
            println!("stem {m}x3x{kk}x{kk}/2 on {hw}: direct {td:.0} us ({:.0} GFLOP/s), gemm {tg:.0} us ({:.0} GFLOP/s)", flops / td / 1e3, flops / tg / 1e3);
        }
    }
}
