//! 2-D f32 grouped convolution (NCHW) whose groups have a multiple of 8
//! output channels (RegNet-X's 3×3 of 24 channels a group), with vectors
//! over the output channels instead of the output columns.
//!
//! [`crate::conv_direct::ConvDirect`] tiles 6 output channels by 16
//! consecutive columns of one output row: rows of 28, 14 or 7 columns fill
//! 87.5 % or 44 % of its lanes, and a horizontal stride of 2 first deals
//! the input into even and odd columns (a quarter of such a step). Here a
//! tile is up to 24 output channels of a group (three 8-float vectors) by
//! 4 consecutive columns of one output row: each step `k = (ci, ky, kx)`
//! loads the 24 weights of tap `k`, broadcasts the 4 input floats the
//! columns read and adds 12 products. Every lane holds an output whatever
//! the row's width (a row's last 1 to 3 columns take a narrower tile), and
//! a horizontal stride only spaces the broadcasts: the input is copied
//! only to pad it ([`ConvDirect`]'s copy of one group's rows, read with
//! stride 1 over every column the taps reach).
//!
//! Each 4 × 8 block of the tile is transposed in registers into 8 output
//! channels' runs of 4 columns, then bias, residual and activation are
//! applied and it is stored. Vectors are 256-bit with AVX-512 too (its
//! FMA units are 256-bit wide on the CPUs measured).
//!
//! W is packed by [`pack_grouped_weights`]. Inputs: X `[N, C, H, W]`, packed
//! W, then B `[M]` if `epilogue.bias`, then the residual (Y's shape) if
//! `epilogue.residual`. Output: Y `[N, M, oh, ow]`. Work items are each
//! group's output rows (`[N][group][oh]`), as the direct convolution's.

use crate::conv_direct::{for_each_band, ConvDirect, Geom};
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::{Isa, PwAct};
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A grouped 2-D convolution with `out_channels / group` a multiple of 8;
/// geometry as [`crate::conv::Conv`] with two spatial axes `[h, w]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvGrouped {
    pub batch: u64,
    pub in_channels: u64,
    pub out_channels: u64,
    pub group: u64,
    pub input: [u64; 2],
    pub kernel: [u64; 2],
    pub strides: [u64; 2],
    pub dilations: [u64; 2],
    pub pad_begin: [u64; 2],
    pub output: [u64; 2],
    pub epilogue: Epilogue,
    pub isa: Isa,
    /// Write Y channel-blocked (NCHW8c, `crate::blocked`): an RGB stem
    /// feeding a blocked region stores its vectors as they are, no
    /// transposes (no residual then).
    #[serde(default)]
    pub blocked_output: bool,
}

/// Output channels a vector of the tile.
const LANES: usize = 8;
/// Output channels a tile at most: three vectors.
const CHUNK: usize = 3 * LANES;

/// A group's output channels in chunks, `(first, count)`: of 24, the last
/// of 8 or 16.
fn chunks(mg: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..mg).step_by(CHUNK).map(move |c0| (c0, CHUNK.min(mg - c0)))
}

/// Output columns a tile of `v` vectors of channels: 12 sums, 8 with two
/// vectors or one (enough to cover the multiply-add latency). Multiples
/// of 4, which the stores transpose whole: with 6 columns a tile, the
/// masked stores of its second half took longer than its 27 steps (a
/// 3 → 32 stem).
const fn columns(v: usize) -> usize {
    match v {
        3 | 2 => 4,
        _ => 8,
    }
}

/// Packs `[M, C/group, kh, kw]` weights for [`ConvGrouped`]: group by
/// group, its output channels in chunks of 24 (the last of 8 or 16), each
/// chunk tap by tap with its channels side by side (`[k][24]`).
pub fn pack_grouped_weights(w: &[f32], m: usize, group: usize) -> Vec<f32> {
    let depth = w.len().checked_div(m).unwrap_or(0);
    let mg = m / group.max(1);
    let mut out = Vec::with_capacity(w.len());
    for gi in 0..group.max(1) {
        for (c0, chunk) in chunks(mg) {
            for k in 0..depth {
                out.extend((0..chunk).map(|c| w[(gi * mg + c0 + c) * depth + k]));
            }
        }
    }
    out
}

/// One band of one group's output rows, as the tiles see it.
struct Band {
    /// GEMM depth `C/group · kh · kw`, and output channels a group.
    k: usize,
    mg: usize,
    /// The group's packed weights.
    a: *const f32,
    /// The group's first output channel.
    ch0: usize,
    /// The padded copy of the band's input rows, and each tap's offset in it.
    copy: *const f32,
    offs: *const usize,
    /// Floats from one output row's first tap to the next row's.
    row_step: usize,
    /// Horizontal stride.
    sw: usize,
    oy0: usize,
    oys: usize,
    ow: usize,
    /// Floats of an output plane.
    plane: usize,
    /// The image's first output plane; the bias (`M`, absolute channels)
    /// and the image's first residual plane, or null.
    out: *mut f32,
    bias: *const f32,
    residual: *const f32,
    act: PwAct,
    /// Y is channel-blocked: channel `c` of output `q` at `((c / 8) · plane + q) · 8 + c % 8`.
    blocked: bool,
}

impl Band {
    /// Where channel `ch` of the band's output `q` (from its first row) lies in Y.
    fn at(&self, ch: usize, q: usize) -> usize {
        let pixel = self.oy0 * self.ow + q;
        if self.blocked {
            ((ch / LANES) * self.plane + pixel) * LANES + ch % LANES
        } else {
            ch * self.plane + pixel
        }
    }
}

impl ConvGrouped {
    /// Whether the kernel computes this convolution: groups of a multiple
    /// of 8 output channels, nonzero strides and dilations.
    pub fn supports(out_channels: u64, group: u64, strides: [u64; 2], dilations: [u64; 2]) -> bool {
        group > 0 && out_channels % group == 0 && (out_channels / group) % LANES as u64 == 0 && !strides.contains(&0) && !dilations.contains(&0)
    }

    /// The direct convolution whose padded row copy (and scratch) this one
    /// uses: horizontal stride 1 over every input column the taps reach.
    fn view(&self) -> ConvDirect {
        ConvDirect {
            batch: self.batch,
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            group: self.group,
            input: self.input,
            kernel: self.kernel,
            strides: [self.strides[0], 1],
            dilations: self.dilations,
            pad_begin: self.pad_begin,
            output: [self.output[0], self.output[1].saturating_sub(1) * self.strides[1] + 1],
            epilogue: self.epilogue,
            isa: self.isa,
        }
    }

    /// Output rows `oy0..oy0 + oys` of group `gi` of image `b`, into Y.
    ///
    /// # Safety
    /// As [`KernelImpl::run`]; this part owns those rows of that group; the
    /// scratch holds [`KernelImpl::scratch_bytes`] for `oys` items.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_rows(&self, io: &Io, view: &ConvDirect, g: &Geom, b: usize, gi: usize, oy0: usize, oys: usize, scratch: &mut [f32]) {
        let (ow, sw) = (self.output[1] as usize, self.strides[1] as usize);
        let plane = g.oh * ow;
        let y = &io.outputs[0];
        assert!((b + 1) * g.m * plane <= y.len_bytes() / 4, "grouped conv output is too small");
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, w) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        // SAFETY: as above.
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        // SAFETY: as above.
        let residual = self.epilogue.residual.then(|| unsafe { io.inputs[2 + usize::from(self.epilogue.bias)].f32() });
        assert!(bias.is_none_or(|v| v.len() >= g.m), "grouped conv bias is too short");
        assert!(residual.is_none_or(|v| v.len() >= (b + 1) * g.m * plane), "grouped conv residual is too short");
        let (k, rows) = (g.depth(), g.rows_for(oys));
        assert!(w.len() >= (gi + 1) * g.mg * k, "grouped conv weights are too short");
        let (copy, rest) = scratch.split_at_mut(g.copy_floats(rows) + self.isa.nr());
        // The tap offsets, a usize table after the copy (aligned within its slack).
        // SAFETY: any bit pattern is a valid usize; the slice is only reinterpreted.
        let (_, offs, _) = unsafe { rest.align_to_mut::<usize>() };
        assert!(offs.len() >= k, "grouped conv scratch is too small");
        let offs = &mut offs[..k];
        g.fill_offsets(rows, offs);
        let planes = g.cg * g.ih * g.iw;
        view.copy_rows(g, &x[(b * g.g + gi) * planes..][..planes], oy0, oys, copy);
        // The last row's last column's last tap: every broadcast reads inside the copy.
        let reach = offs.iter().max().map_or(0, |&o| o + (oys - 1) * g.sh * g.wq + (ow - 1) * sw);
        assert!(reach < copy.len(), "grouped conv copy reach");
        // An activation with no in-register form runs over the band's rows afterwards.
        let (act, after) = match PwAct::of(self.epilogue.activation) {
            Some(pw) => (pw, None),
            None => (PwAct::Identity, Some(self.epilogue.activation)),
        };
        // SAFETY: image b's planes lie inside Y (asserted).
        let out = unsafe { (y.as_ptr() as *mut f32).add(b * g.m * plane) };
        let band = Band {
            k,
            mg: g.mg,
            a: w[gi * g.mg * k..].as_ptr(),
            ch0: gi * g.mg,
            copy: copy.as_ptr(),
            offs: offs.as_ptr(),
            row_step: g.sh * g.wq,
            sw,
            oy0,
            oys,
            ow,
            plane,
            out,
            bias: bias.map_or(std::ptr::null(), |v| v.as_ptr()),
            residual: residual.map_or(std::ptr::null(), |v| v[b * g.m * plane..].as_ptr()),
            act,
            blocked: self.blocked_output,
        };
        #[cfg(target_arch = "x86_64")]
        if self.isa != Isa::Generic && Isa::Avx2.available() {
            // SAFETY: the CPU has AVX2 and FMA (checked); the band's pointers as asserted above.
            unsafe { band_avx2(&band) };
            return self.finish(&band, after);
        }
        // SAFETY: as above.
        unsafe { band_portable(&band) };
        self.finish(&band, after)
    }

    /// The band's activation when it has no in-register form.
    fn finish(&self, band: &Band, after: Option<crate::Activation>) {
        let Some(act) = after else { return };
        if band.blocked {
            for blk in band.ch0 / LANES..(band.ch0 + band.mg) / LANES {
                // SAFETY: block blk's rows oy0..oy0 + oys, one run inside Y,
                // written by this part (asserted in run_rows).
                let run = unsafe { std::slice::from_raw_parts_mut(band.out.add(band.at(blk * LANES, 0)), band.oys * band.ow * LANES) };
                crate::epilogue::activate_in_place(act, run);
            }
            return;
        }
        for ch in band.ch0..band.ch0 + band.mg {
            // SAFETY: channel ch's rows oy0..oy0 + oys, one run inside Y,
            // written by this part (asserted in run_rows).
            let run = unsafe { std::slice::from_raw_parts_mut(band.out.add(ch * band.plane + band.oy0 * band.ow), band.oys * band.ow) };
            crate::epilogue::activate_in_place(act, run);
        }
    }
}

/// The band portably: the tiles' sums one output at a time, then bias,
/// residual and the piecewise-linear activation.
///
/// # Safety
/// The band's pointers cover what [`ConvGrouped::run_rows`] asserts.
unsafe fn band_portable(j: &Band) {
    let mut acc = [0.0f32; CHUNK];
    for (c0, chunk) in chunks(j.mg) {
        // SAFETY: the group's chunk lies in its packed weights.
        let a = unsafe { j.a.add(c0 * j.k) };
        for oy in j.oy0..j.oy0 + j.oys {
            for ox in 0..j.ow {
                let acc = &mut acc[..chunk];
                acc.fill(0.0);
                for p in 0..j.k {
                    // SAFETY: tap p of column ox of row oy lies in the copy (asserted reach).
                    let x = unsafe { *j.copy.add((oy - j.oy0) * j.row_step + *j.offs.add(p) + ox * j.sw) };
                    // SAFETY: the chunk's weights of tap p.
                    let w = unsafe { std::slice::from_raw_parts(a.add(p * chunk), chunk) };
                    for (s, &wv) in acc.iter_mut().zip(w) {
                        *s += wv * x;
                    }
                }
                for (c, &s) in acc.iter().enumerate() {
                    let ch = j.ch0 + c0 + c;
                    let at = j.at(ch, (oy - j.oy0) * j.ow + ox);
                    // SAFETY: channel ch's output (and residual) at row oy, column ox.
                    unsafe {
                        let mut v = s;
                        if !j.bias.is_null() {
                            v += *j.bias.add(ch);
                        }
                        if !j.residual.is_null() {
                            v += *j.residual.add(at);
                        }
                        *j.out.add(at) = j.act.apply(v);
                    }
                }
            }
        }
    }
}

/// The band with AVX2: chunk by chunk (24 channels, or the group's last 8
/// or 16), 4 outputs a tile.
///
/// # Safety
/// As [`band_portable`]; the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn band_avx2(j: &Band) {
    for (c0, chunk) in chunks(j.mg) {
        // SAFETY: the caller's contract.
        unsafe {
            match chunk / LANES {
                3 => chunk_avx2::<3>(j, c0),
                2 => chunk_avx2::<2>(j, c0),
                _ => chunk_avx2::<1>(j, c0),
            }
        }
    }
}

/// One chunk of `V` vectors of output channels over the band's outputs,
/// [`columns`] consecutive outputs a tile in the planes' order: a tile may
/// end one row and start the next (each column broadcasts from its own row
/// of the copy), so only the band's last tile is narrower.
///
/// # Safety
/// As [`band_avx2`], for channels `c0..c0 + 8V` of the group.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn chunk_avx2<const V: usize>(j: &Band, c0: usize) {
    let total = j.oys * j.ow;
    // SAFETY: the caller's contract: the chunk's weights, the band's outputs.
    unsafe {
        let a = j.a.add(c0 * j.k);
        // The band's outputs in order, a cursor on the next one's row and column.
        let mut at = Cursor { q: 0, row: 0, col: 0 };
        let tile = columns(V);
        while at.q + tile <= total {
            match V {
                3 | 2 => run_tile::<V, 4>(j, a, c0, &mut at),
                _ => run_tile::<V, 8>(j, a, c0, &mut at),
            }
        }
        // The band's last outputs, fewer than a tile.
        match total - at.q {
            0 => {}
            1 => run_tile::<V, 1>(j, a, c0, &mut at),
            2 => run_tile::<V, 2>(j, a, c0, &mut at),
            3 => run_tile::<V, 3>(j, a, c0, &mut at),
            4 => run_tile::<V, 4>(j, a, c0, &mut at),
            5 => run_tile::<V, 5>(j, a, c0, &mut at),
            6 => run_tile::<V, 6>(j, a, c0, &mut at),
            _ => run_tile::<V, 7>(j, a, c0, &mut at),
        }
    }
}

/// The band's next output: its index, row (from the band's first) and column.
struct Cursor {
    q: usize,
    row: usize,
    col: usize,
}

/// The tile of the band's next `N` outputs for the chunk at `c0` (weights
/// `a`), moving the cursor past them. (Each column's row and column by
/// division took longer than a 27-step tile.)
///
/// # Safety
/// As [`chunk_avx2`]; the band has `N` outputs from the cursor.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn run_tile<const V: usize, const N: usize>(j: &Band, a: *const f32, c0: usize, at: &mut Cursor) {
    let q = at.q;
    // Where each output reads its first tap: its row of the copy, its column.
    let x: [*const f32; N] = std::array::from_fn(|_| {
        let p = j.copy.wrapping_add(at.row * j.row_step + at.col * j.sw);
        at.col += 1;
        if at.col == j.ow {
            (at.row, at.col) = (at.row + 1, 0);
        }
        p
    });
    at.q += N;
    // SAFETY: the caller's contract.
    unsafe {
        let acc = tile_avx2::<V, N>(j.k, a, x, j.offs);
        store_avx2::<V, N>(j, &acc, c0, q);
    }
}

/// `acc[n][v]`: output channels `8v..8v + 8` of the chunk at column `n`,
/// summed over the `k` taps: weights `a` (`[k][8V]`), column `n`'s input
/// of tap `p` at `x[n] + offs[p]`.
///
/// # Safety
/// `a` holds `k · 8V` floats; every `x[n] + offs[p]` (`p < k`) is a
/// readable float; the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_avx2<const V: usize, const N: usize>(k: usize, a: *const f32, x: [*const f32; N], offs: *const usize) -> [[std::arch::x86_64::__m256; V]; N] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); V]; N];
    if V == 3 && N == 4 {
        // SAFETY: the caller's contract.
        unsafe { full_tile_avx2(k, a, [x[0], x[1], x[2], x[3]], offs, &mut *(acc.as_mut_ptr() as *mut [[__m256; 3]; 4])) };
        return acc;
    }
    for p in 0..k {
        // SAFETY: the caller's contract.
        unsafe {
            let off = *offs.add(p);
            let ap = a.add(p * V * LANES);
            let av: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(ap.add(v * LANES)));
            for (sums, &xn) in acc.iter_mut().zip(&x) {
                let xb = _mm256_broadcast_ss(&*xn.add(off));
                for (s, &w) in sums.iter_mut().zip(&av) {
                    *s = _mm256_fmadd_ps(w, xb, *s);
                }
            }
        }
    }
    acc
}

/// [`tile_avx2`] for 24 channels by 4 columns: 12 accumulators, 3 weight
/// vectors and one broadcast, all 16 registers. (Compiled from
/// intrinsics, an accumulator went through the stack every step, the
/// compiler wanting a second broadcast register: 40 GFLOP/s; with the
/// weights read by the multiply-adds from memory, 12 256-bit loads a step
/// held it at ~45.)
///
/// # Safety
/// As [`tile_avx2`] with `V = 3`, `N = 4`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn full_tile_avx2(k: usize, a: *const f32, x: [*const f32; 4], offs: *const usize, acc: &mut [[std::arch::x86_64::__m256; 3]; 4]) {
    let [[mut c00, mut c01, mut c02], [mut c10, mut c11, mut c12], [mut c20, mut c21, mut c22], [mut c30, mut c31, mut c32]] = *acc;
    for p in 0..k {
        // SAFETY: the caller's contract: tap p's 24 weights at `a + 24p`,
        // each column's input float at `x[n] + offs[p]`; only reads.
        unsafe {
            let off = *offs.add(p);
            let ap = a.add(p * CHUNK);
            std::arch::asm!(
                "vmovups {w0}, ymmword ptr [{a}]",
                "vmovups {w1}, ymmword ptr [{a} + 32]",
                "vmovups {w2}, ymmword ptr [{a} + 64]",
                "vbroadcastss {t}, dword ptr [{x0} + {o}*4]",
                "vfmadd231ps {c00}, {w0}, {t}",
                "vfmadd231ps {c01}, {w1}, {t}",
                "vfmadd231ps {c02}, {w2}, {t}",
                "vbroadcastss {t}, dword ptr [{x1} + {o}*4]",
                "vfmadd231ps {c10}, {w0}, {t}",
                "vfmadd231ps {c11}, {w1}, {t}",
                "vfmadd231ps {c12}, {w2}, {t}",
                "vbroadcastss {t}, dword ptr [{x2} + {o}*4]",
                "vfmadd231ps {c20}, {w0}, {t}",
                "vfmadd231ps {c21}, {w1}, {t}",
                "vfmadd231ps {c22}, {w2}, {t}",
                "vbroadcastss {t}, dword ptr [{x3} + {o}*4]",
                "vfmadd231ps {c30}, {w0}, {t}",
                "vfmadd231ps {c31}, {w1}, {t}",
                "vfmadd231ps {c32}, {w2}, {t}",
                a = in(reg) ap,
                o = in(reg) off,
                x0 = in(reg) x[0],
                x1 = in(reg) x[1],
                x2 = in(reg) x[2],
                x3 = in(reg) x[3],
                w0 = out(ymm_reg) _,
                w1 = out(ymm_reg) _,
                w2 = out(ymm_reg) _,
                t = out(ymm_reg) _,
                c00 = inout(ymm_reg) c00,
                c01 = inout(ymm_reg) c01,
                c02 = inout(ymm_reg) c02,
                c10 = inout(ymm_reg) c10,
                c11 = inout(ymm_reg) c11,
                c12 = inout(ymm_reg) c12,
                c20 = inout(ymm_reg) c20,
                c21 = inout(ymm_reg) c21,
                c22 = inout(ymm_reg) c22,
                c30 = inout(ymm_reg) c30,
                c31 = inout(ymm_reg) c31,
                c32 = inout(ymm_reg) c32,
                options(nostack, readonly, preserves_flags),
            );
        }
    }
    *acc = [[c00, c01, c02], [c10, c11, c12], [c20, c21, c22], [c30, c31, c32]];
}

/// Stores a tile of `N` (1 to 8) outputs, the band's `q..q + N`, 4 at a
/// time: each vector's columns transposed into 8 channels' runs of up to 4
/// floats (channel `r` in the low half, `r + 4` in the high one), with
/// bias, residual and activation.
///
/// # Safety
/// As [`band_avx2`]; outputs `q..q + N` lie in the band.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store_avx2<const V: usize, const N: usize>(j: &Band, acc: &[[std::arch::x86_64::__m256; V]; N], c0: usize, q: usize) {
    use std::arch::x86_64::*;
    // `v` picks each column's vector: acc[n][v] for every n.
    #[allow(clippy::needless_range_loop)]
    for v in 0..V {
        let ch = j.ch0 + c0 + v * LANES;
        // SAFETY: the bias holds every channel (asserted in run_rows).
        let bias = if j.bias.is_null() { _mm256_setzero_ps() } else { unsafe { _mm256_loadu_ps(j.bias.add(ch)) } };
        if j.blocked {
            for (n, sums) in acc.iter().enumerate() {
                let at = j.at(ch, q + n);
                // SAFETY: output q + n's 8 channels from ch, one vector of Y's
                // block (the caller's contract); no residual with a blocked Y.
                unsafe { _mm256_storeu_ps(j.out.add(at), crate::packed::act_avx2(_mm256_add_ps(sums[v], bias), j.act)) };
            }
            continue;
        }
        for first in (0..N).step_by(4) {
            let n = (N - first).min(4);
            let col = |i: usize| if i < n { _mm256_add_ps(acc[first + i][v], bias) } else { _mm256_setzero_ps() };
            // SAFETY: the caller's contract, for outputs q + first.. (n of them).
            unsafe { store_quad(j, [col(0), col(1), col(2), col(3)], ch, q + first, n) };
        }
    }
}

/// Stores the first `n` (1 to 4) of 4 columns of 8 channels from `ch`
/// (bias added) at the band's output `q`: transposed, then residual and
/// activation.
///
/// # Safety
/// As [`band_avx2`]; outputs `q..q + n` of channels `ch..ch + 8` lie in the band.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store_quad(j: &Band, cols: [std::arch::x86_64::__m256; 4], ch: usize, q: usize, n: usize) {
    use std::arch::x86_64::*;
    let mask = _mm_cmpgt_epi32(_mm_set1_epi32(n as i32), _mm_setr_epi32(0, 1, 2, 3));
    let (t0, t1) = (_mm256_unpacklo_ps(cols[0], cols[1]), _mm256_unpackhi_ps(cols[0], cols[1]));
    let (t2, t3) = (_mm256_unpacklo_ps(cols[2], cols[3]), _mm256_unpackhi_ps(cols[2], cols[3]));
    let pairs = [_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2), _mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3)];
    for (r, &pair) in pairs.iter().enumerate() {
        let lo = (ch + r) * j.plane + j.oy0 * j.ow + q;
        let hi = lo + 4 * j.plane;
        // SAFETY: channels ch + r and ch + r + 4 at the band's outputs
        // q..q + n, in Y and the residual (the caller's contract).
        unsafe {
            let mut t = pair;
            if !j.residual.is_null() {
                let load = |at: usize| if n == 4 { _mm_loadu_ps(j.residual.add(at)) } else { _mm_maskload_ps(j.residual.add(at), mask) };
                t = _mm256_add_ps(t, _mm256_set_m128(load(hi), load(lo)));
            }
            t = crate::packed::act_avx2(t, j.act);
            let (low, high) = (_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t));
            if n == 4 {
                _mm_storeu_ps(j.out.add(lo), low);
                _mm_storeu_ps(j.out.add(hi), high);
            } else {
                _mm_maskstore_ps(j.out.add(lo), mask, low);
                _mm_maskstore_ps(j.out.add(hi), mask, high);
            }
        }
    }
}

impl KernelImpl for ConvGrouped {
    fn name(&self) -> String {
        format!("f32_conv2d_grouped_{}", self.isa.name())
    }

    /// Each group's output rows (`[N][group][oh]`), as [`ConvDirect`]'s.
    fn work_items(&self) -> u64 {
        self.batch * self.group.max(1) * self.output[0]
    }

    fn scratch_bytes(&self, items: u64) -> usize {
        self.view().scratch_bytes(items)
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        if !ConvGrouped::supports(self.out_channels, self.group, self.strides, self.dilations) {
            return Err(format!("grouped conv needs groups of a multiple of 8 output channels and nonzero strides and dilations: {self:?}"));
        }
        if self.blocked_output && self.epilogue.residual {
            return Err(format!("a grouped conv writing blocked output takes no residual: {self:?}"));
        }
        if self.in_channels == 0 || self.kernel.contains(&0) || self.in_channels % self.group != 0 {
            return Err(format!("grouped conv's {} groups do not divide its {} input channels, or its window is empty: {self:?}", self.group, self.in_channels));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        assert!(self.isa.available(), "the grouped conv needs {}, which this CPU lacks", self.isa.name());
        // SAFETY: any bit pattern is a valid f32; align to 8 for the offsets after the copy.
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(pre.is_empty(), "grouped conv scratch is not 4-byte aligned");
        let view = self.view();
        let g = Geom::of(&view);
        let (oh, groups, band) = (g.oh, g.g, view.band_rows());
        for_each_band(part, oh, groups, band, |b, gi, oy, oys| {
            // SAFETY: the caller's contract; this part owns rows oy.. of group gi of image b.
            unsafe { self.run_rows(io, &view, &g, b, gi, oy, oys, scratch) }
        });
    }
}

impl From<&ConvDirect> for ConvGrouped {
    /// The same convolution by the grouped kernel (weights packed by
    /// [`pack_grouped_weights`] instead).
    fn from(k: &ConvDirect) -> ConvGrouped {
        ConvGrouped {
            batch: k.batch,
            in_channels: k.in_channels,
            out_channels: k.out_channels,
            group: k.group,
            input: k.input,
            kernel: k.kernel,
            strides: k.strides,
            dilations: k.dilations,
            pad_begin: k.pad_begin,
            output: k.output,
            epilogue: k.epilogue,
            isa: k.isa,
            blocked_output: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;
    use crate::packed::tests::all_activations;


    /// Random geometry: 1 to 3 groups of 1 to 6 inputs and 8, 16, 24, 32,
    /// 40 or 48 outputs (one to three chunks), kernels 1 to 5, strides 1
    /// to 3, dilations 1 and 2, rows of every width mod 4.
    fn random(rng: &mut Rng, isa: Isa, epilogue: Epilogue) -> ConvGrouped {
        let (kh, kw) = (1 + rng.below(5), 1 + rng.below(5));
        let (sh, sw) = (1 + rng.below(3), 1 + rng.below(3));
        let (dh, dw) = (1 + rng.below(2), 1 + rng.below(2));
        let (ph, pw) = (rng.below(kh), rng.below(kw));
        let ih = (kh - 1) * dh + 1 + rng.below(12);
        let iw = (kw - 1) * dw + 1 + rng.below(40);
        let (eh, ew) = (rng.below(ph + 1), rng.below(pw + 1));
        let oh = (ih + ph + eh - (kh - 1) * dh - 1) / sh + 1;
        let ow = (iw + pw + ew - (kw - 1) * dw - 1) / sw + 1;
        let group = 1 + rng.below(3);
        ConvGrouped {
            batch: 1 + rng.below(2),
            in_channels: group * (1 + rng.below(6)),
            out_channels: group * 8 * (1 + rng.below(6)),
            group,
            input: [ih, iw],
            kernel: [kh, kw],
            strides: [sh, sw],
            dilations: [dh, dw],
            pad_begin: [ph, pw],
            output: [oh, ow],
            epilogue,
            isa,
            blocked_output: false,
        }
    }

    fn compare(k: &ConvGrouped, rng: &mut Rng, parts: u64) {
        let (n, m, c) = (k.batch as usize, k.out_channels as usize, k.in_channels as usize);
        let taps = (k.kernel[0] * k.kernel[1]) as usize;
        let x = rng.vec(n * c * (k.input[0] * k.input[1]) as usize);
        let w = rng.vec(m * c / k.group as usize * taps);
        let mut inputs = vec![x.clone(), pack_grouped_weights(&w, m, k.group as usize)];
        let mut ref_inputs = vec![x, w];
        let out = n * m * (k.output[0] * k.output[1]) as usize;
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
        assert!(k.check(inputs.len(), 1).is_ok(), "{k:?}");
        let want = run_parts(&k.portable(), &ref_inputs, &[out], 1);
        let mut got = run_parts(k, &inputs, &[out], parts).remove(0);
        if k.blocked_output {
            let plane = (k.output[0] * k.output[1]) as usize;
            got = got.chunks(m * plane).flat_map(|img| crate::blocked::to_planar(img, m, plane)).collect();
        }
        assert_close(&got, &want[0], 1e-4);
    }

    #[test]
    fn blocked_output_matches_the_planar_one_reordered() {
        let mut rng = Rng(77);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for (case, act) in all_activations().into_iter().enumerate() {
                let epilogue = Epilogue { bias: case % 2 == 0, residual: false, activation: act };
                let k = ConvGrouped { blocked_output: true, ..random(&mut rng, isa, epilogue) };
                compare(&k, &mut rng, 1 + case as u64 % 3);
            }
            // An RGB stem: 3 → 32, 3×3/2, rows of 112.
            let e = Epilogue { bias: true, residual: false, activation: crate::Activation::Clip { min: 0.0, max: 6.0 } };
            let k = ConvGrouped { batch: 1, in_channels: 3, out_channels: 32, group: 1, input: [9, 224], kernel: [3, 3], strides: [2, 2], dilations: [1, 1], pad_begin: [1, 1], output: [5, 112], epilogue: e, isa, blocked_output: true };
            compare(&k, &mut rng, 2);
        }
    }

    #[test]
    fn matches_the_portable_conv_on_random_geometries() {
        let mut rng = Rng(71);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for case in 0..60 {
                let epilogue = Epilogue { bias: case % 2 == 0, residual: case % 3 == 0, activation: crate::Activation::Relu };
                let k = random(&mut rng, isa, epilogue);
                compare(&k, &mut rng, 1 + case % 3);
            }
        }
    }

    #[test]
    fn every_epilogue_and_regnet_like_groups() {
        let mut rng = Rng(73);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for act in all_activations() {
                let k = random(&mut rng, isa, Epilogue { bias: true, residual: true, activation: act });
                compare(&k, &mut rng, 2);
            }
            // 24 channels a group, 3×3, stride 1 and 2, rows of 7 to 20
            // columns (every tail), K past 256 (4 groups of 72 = 648).
            for (cg, group, hw, s) in [(24u64, 3u64, 20u64, 1u64), (24, 2, 17, 2), (72, 2, 9, 1), (24, 3, 14, 1), (24, 4, 14, 2), (24, 2, 7, 1)] {
                let out = (hw + 2 - 3) / s + 1;
                let k = ConvGrouped {
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
                    blocked_output: false,
                };
                assert_eq!(k.work_items(), group * out);
                compare(&k, &mut rng, 3);
            }
        }
    }

    #[test]
    fn every_chunk_width_and_every_last_tile() {
        // 8, 16 and 40 channels a group (tiles of 8, 4 and 4 + 8 columns),
        // bands of 1 to 17 outputs: every narrower last tile.
        let mut rng = Rng(79);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for mg in [8u64, 16, 40] {
                for ow in 1..=17u64 {
                    let epilogue = Epilogue { bias: ow % 2 == 0, residual: ow % 3 == 0, activation: crate::Activation::Relu };
                    let k = ConvGrouped { batch: 1, in_channels: 6, out_channels: 2 * mg, group: 2, input: [3, ow + 2], kernel: [3, 3], strides: [1, 1], dilations: [1, 1], pad_begin: [1, 0], output: [3, ow], epilogue, isa, blocked_output: false };
                    compare(&k, &mut rng, 1 + ow % 2);
                }
            }
        }
    }

    #[test]
    fn packs_chunks_tap_by_tap_and_refuses_what_it_cannot_compute() {
        // 2 groups of 32 outputs (chunks of 24 and 8), 1 input each, 1 tap.
        let w: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let p = pack_grouped_weights(&w, 64, 2);
        assert_eq!(p, w, "one tap: each chunk is its channels in order");
        // 1 group of 8 outputs, 2 taps: [k][8].
        let w: Vec<f32> = (0..16).map(|i| i as f32).collect();
        assert_eq!(pack_grouped_weights(&w, 8, 1), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]);
        let k = ConvGrouped { batch: 1, in_channels: 4, out_channels: 12, group: 2, input: [5, 5], kernel: [3, 3], strides: [1, 1], dilations: [1, 1], pad_begin: [1, 1], output: [5, 5], epilogue: Epilogue { bias: false, residual: false, activation: crate::Activation::None }, isa: Isa::Generic, blocked_output: false };
        assert!(k.check(2, 1).unwrap_err().contains("multiple of 8"));
        assert_eq!(k.name(), "f32_conv2d_grouped_generic");
    }

    /// Microseconds of RegNet-X-1.6GF's grouped 3×3 convolutions against
    /// the direct convolution; not a test of correctness:
    /// `cargo test --release -p kann-kernels --lib conv_grouped::tests::grouped_vs_direct_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn grouped_vs_direct_timing() {
        use crate::conv_gemm::pack_conv_gemm_weights;
        let isa = Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic);
        let mut rng = Rng(6);
        // KANN_GROUPED_SHAPES=C,M,GROUP,HW,S;... times these 3×3 convolutions instead.
        // A sixth number, the kernel's side (3 unless given; padded to keep the map).
        let shapes: Vec<[u64; 6]> = std::env::var("KANN_GROUPED_SHAPES").map_or(
            [(72u64, 56u64, 1u64), (168, 56, 2), (168, 28, 1), (408, 28, 2), (408, 14, 1), (912, 14, 2), (912, 7, 1)].map(|(c, hw, s)| [c, c, c / 24, hw, s, 3]).to_vec(),
            |v| v.split(';').map(|t| std::array::from_fn(|i| t.split(',').nth(i).and_then(|x| x.parse().ok()).or((i == 5).then_some(3)).expect("KANN_GROUPED_SHAPES: C,M,GROUP,HW,S[,K];..."))).collect(),
        );
        for [c, m, group, hw, s, kk] in shapes {
            let pad = kk / 2;
            let out = (hw + 2 * pad - kk) / s + 1;
            let epilogue = Epilogue { bias: true, residual: false, activation: crate::Activation::Relu };
            let k = ConvGrouped { batch: 1, in_channels: c, out_channels: m, group, input: [hw, hw], kernel: [kk, kk], strides: [s, s], dilations: [1, 1], pad_begin: [pad, pad], output: [out, out], epilogue, isa, blocked_output: false };
            let d = ConvDirect { batch: 1, in_channels: c, out_channels: m, group, input: [hw, hw], kernel: [kk, kk], strides: [s, s], dilations: [1, 1], pad_begin: [pad, pad], output: [out, out], epilogue, isa };
            let w = rng.vec((m * c / group * kk * kk) as usize);
            let x = rng.vec((c * hw * hw) as usize);
            let bias = rng.vec(m as usize);
            let n_out = (m * out * out) as usize;
            let flops = 2.0 * (m * c / group * kk * kk * out * out) as f64;
            let mut gi = vec![x.clone(), pack_grouped_weights(&w, m as usize, group as usize), bias.clone()];
            let mut di = vec![x, pack_conv_gemm_weights(&w, m as usize, group as usize, isa, d.k_block()), bias];
            // Alternated, so that both see the same machine.
            let (mut tg, mut td) = (Vec::new(), Vec::new());
            for round in 0..15 {
                if round % 2 == 0 {
                    tg.push(time_kernel(&k, &mut gi, n_out));
                    td.push(time_kernel(&d, &mut di, n_out));
                } else {
                    td.push(time_kernel(&d, &mut di, n_out));
                    tg.push(time_kernel(&k, &mut gi, n_out));
                }
            }
            tg.sort_by(f64::total_cmp);
            td.sort_by(f64::total_cmp);
            let (tg, td) = (tg[tg.len() / 2], td[td.len() / 2]);
            println!("grouped {c}->{m} /{group} {hw}x{hw}/{s} {}: grouped {tg:.0} us ({:.0} GFLOP/s), direct {td:.0} us ({:.0} GFLOP/s), speed-up {:.2}", isa.name(), flops / tg / 1e3, flops / td / 1e3, td / tg);
            if group == 1 && s == 1 && kk == 3 {
                use crate::winograd::{pack_winograd_weights, WinogradAxis, WinogradConv, WinogradTile};
                for tile in [WinogradTile::F4x4, WinogradTile::F2x2] {
                    let wk = WinogradConv { batch: 1, in_channels: c, out_channels: m, input: [hw, hw], pad_begin: [1, 1], output: [hw, hw], epilogue, isa, axis: WinogradAxis::Tiles, tile };
                    let mut wi = vec![di[0].clone(), pack_winograd_weights(&w, m as usize, isa, tile, wk.k_block()), di[2].clone()];
                    let (mut tg, mut tw) = (Vec::new(), Vec::new());
                    for _ in 0..7 {
                        tg.push(time_kernel(&k, &mut gi, n_out));
                        tw.push(time_kernel(&wk, &mut wi, n_out));
                    }
                    tg.sort_by(f64::total_cmp);
                    tw.sort_by(f64::total_cmp);
                    println!("    grouped {:.0} us, winograd {tile:?} {:.0} us", tg[3], tw[3]);
                }
            }
            // The grouped GEMM (what AVX-512 builds take), alternated with the grouped kernel again.
            let gemm = crate::conv_gemm::ConvGemm { batch: 1, in_channels: c, out_channels: m, group, input: [hw, hw], kernel: [kk, kk], strides: [s, s], dilations: [1, 1], pad_begin: [pad, pad], output: [out, out], epilogue, isa, axis: crate::conv_gemm::GemmAxis::Columns, input_scale: false };
            let mut mi = vec![di[0].clone(), pack_conv_gemm_weights(&w, m as usize, group as usize, isa, gemm.k_block()), di[2].clone()];
            let (mut tg, mut tm) = (Vec::new(), Vec::new());
            for _ in 0..7 {
                tg.push(time_kernel(&k, &mut gi, n_out));
                tm.push(time_kernel(&gemm, &mut mi, n_out));
            }
            tg.sort_by(f64::total_cmp);
            tm.sort_by(f64::total_cmp);
            let (tg, tm) = (tg[tg.len() / 2], tm[tm.len() / 2]);
            println!("    grouped {tg:.0} us, grouped GEMM {tm:.0} us ({:.0} GFLOP/s), speed-up {:.2}", flops / tm / 1e3, tm / tg);
        }
    }
}
