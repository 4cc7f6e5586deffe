//! 2-D f32 convolution (NCHW) lowered onto the packed GEMM of [`crate::packed`]:
//! per image and group, `Y[mg × P] = W[mg × K] · cols(X)[K × P]` with
//! `K = C/group · kh · kw` and `P = oh · ow`, and the conv epilogue (bias,
//! residual, activation) applied to each register tile.
//!
//! W is packed at generate by [`pack_conv_gemm_weights`] (each group's rows
//! into MR-row panels). B is built at run time straight into the packed
//! panels in the cluster's scratch, one `KC × NC` block at a time: a 1×1
//! stride-1 unpadded convolution copies X's channel rows themselves; any
//! other one gathers the im2col rows (contiguous runs per output row, zeros
//! where the window leaves the input), so no full im2col matrix is ever built.
//!
//! Work split ([`GemmAxis`]): by output columns (spatial positions of each
//! image, `N · P` items) so each cluster builds only its own columns; or,
//! for small spatial extents with many channels, by MR-row panels of output
//! channels (`N · group · ceil(mg/MR)` items), each cluster then building all
//! columns of its images.
//!
//! Inputs: X `[N, C, H, W]`, packed W, then B `[M]` if `epilogue.bias`, then
//! the residual (Y's shape) if `epilogue.residual`, then the input scale
//! `[N, C]` if `input_scale`. Output: Y `[N, M, oh, ow]`.

use crate::kernel::{expect_io, KernelImpl};
use crate::packed::{self, pack::{pack_a, PackedA}, BSource, GemmCall, Isa};
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[cfg(target_arch = "x86_64")]
mod gather;

/// The axis a [`ConvGemm`] step splits across clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GemmAxis {
    /// Output spatial positions, image by image (`N · oh · ow` items).
    Columns,
    /// MR-row panels of output channels (`N · group · ceil(mg/MR)` items).
    Channels,
    /// As `Channels`, with B packed beforehand by an [`Im2colPack`] step
    /// (whose clusters share that work) and read in place: input 0 is the
    /// packed B instead of X. With several clusters each would otherwise
    /// build all of B itself.
    PackedChannels,
}

/// A 2-D convolution run as packed GEMMs; geometry as [`crate::conv::Conv`]
/// with two spatial axes `[h, w]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvGemm {
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
    pub axis: GemmAxis,
    /// X's channels are multiplied by a per-(image, channel) scale (the
    /// last input) as B is built: a squeeze-excitation product folded into
    /// the pointwise convolution reading it, never written. Pointwise
    /// convolutions on the `Columns` or `Channels` axis only (program
    /// format v6).
    pub input_scale: bool,
}

/// Packs W `[M, C/group, kh, kw]` for [`ConvGemm`]: each group's `M/group`
/// rows of `K = C/group · kh · kw` into MR-row panels, groups one after
/// another, in K blocks at most `kc_max` deep (the kernel's `k_block()`).
pub fn pack_conv_gemm_weights(w: &[f32], out_channels: usize, group: usize, isa: Isa, kc_max: usize) -> Vec<f32> {
    let mg = out_channels / group;
    let k = w.len() / out_channels;
    w.chunks_exact(mg * k).flat_map(|g| pack_a(g, mg, k, isa, kc_max)).collect()
}

/// `ceil(a / b)` for `b > 0`.
/// Stride-1 "same" maps narrower than this, and stride-2 ones narrower than
/// twice this, build their im2col rows as masked shifts of a plane
/// ([`gather`]); on wider ones the runs are long enough to copy.
const GATHER_BELOW: usize = 16;

/// Floats of a channel's four phase planes at most (the stride-2 gather's
/// per-channel buffer).
const PHASE_FLOATS: usize = 4096;

/// Output channels up to which a pointwise convolution's tiles read X in
/// place rather than packing B: with so few rows each B panel serves one
/// or two tiles, and packing it cost as much as the products.
const IN_PLACE_ROWS: usize = 32;

/// A pointwise GEMM (`call`, B = X's `K` channel rows `plane` apart, from
/// column `col0`) whose tiles read X in place, one B row offset per
/// channel; the last partial column panel is packed (its tile reads whole
/// panel rows).
///
/// # Safety
/// As [`packed::gemm`]; `x` holds the K channel planes; the scratch holds
/// `K · (NR + 2)` floats.
unsafe fn pointwise_in_place(isa: Isa, call: &GemmCall, x: &[f32], plane: usize, col0: usize, scratch: &mut [f32]) {
    let (k, nr, mr) = (call.k, isa.nr(), isa.mr());
    let (panel, rest) = scratch.split_at_mut(k * nr);
    // SAFETY: any bit pattern is a valid usize; only reinterpreted.
    let (_, offs, _) = unsafe { rest.align_to_mut::<usize>() };
    assert!(offs.len() >= k && x.len() >= k * plane && col0 + call.n <= plane, "pointwise in place scratch or input");
    for (p, o) in offs[..k].iter_mut().enumerate() {
        *o = p * plane;
    }
    let full = call.n / nr;
    let tail = call.n - full * nr;
    for q in 0..full + usize::from(tail > 0) {
        let cols = nr.min(call.n - q * nr);
        // A whole panel reads X in place; the tail reads its packed copy.
        let (base, offs_p): (*const f32, &[usize]) = if cols == nr {
            (x[col0 + q * nr..].as_ptr(), &offs[..k])
        } else {
            for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                row[..cols].copy_from_slice(&x[p * plane + col0 + q * nr..][..cols]);
                row[cols..].fill(0.0);
            }
            for (p, o) in offs[..k].iter_mut().enumerate() {
                *o = p * nr;
            }
            (panel.as_ptr(), &offs[..k])
        };
        let panels = call.m.div_ceil(mr);
        if call.a.blocks().count() == 1 {
            // One K block: the row panels' tiles in one call (32 → 16 over
            // 112×112 7-13 %, 64 → 16 over 55×55 5-12 % faster, alternated).
            let off = q * nr;
            let e = packed::TileEpi {
                accumulate: false,
                finish: true,
                bias: call.bias.map_or(std::ptr::null(), |bv| bv.as_ptr()),
                // SAFETY: inside the residual (C's layout).
                residual: if call.residual.is_null() { call.residual } else { unsafe { call.residual.add(off) } },
                act: call.act,
                next_a: std::ptr::null(),
                b_ahead: cols == nr,
            };
            let a0 = call.a.panel(0, 0, k).as_ptr();
            let a_stride = if panels > 1 { (call.a.panel(1, 0, k).as_ptr() as usize - a0 as usize) / 4 } else { 0 };
            // SAFETY: the row panels' tiles lie inside C; each B row holds NR
            // floats (whole panels of X, or the packed tail); A's panels are
            // a_stride apart in its one K block.
            unsafe { packed::tiles_indirect_down(isa, k, a0, a_stride, base, offs_p.as_ptr(), call.c.add(off), call.ldc, panels, call.m - (panels - 1) * mr, cols, &e) };
            continue;
        }
        for (i, (k0, kc)) in (0..panels).flat_map(|i| call.a.blocks().map(move |b| (i, b))) {
            let rows = mr.min(call.m - i * mr);
            let off = i * mr * call.ldc + q * nr;
            let e = packed::TileEpi {
                // Partial sums cross A's K blocks through C.
                accumulate: k0 > 0,
                finish: k0 + kc == k,
                bias: call.bias.map_or(std::ptr::null(), |bv| bv[i * mr..].as_ptr()),
                // SAFETY: inside the residual (C's layout).
                residual: if call.residual.is_null() { call.residual } else { unsafe { call.residual.add(off) } },
                act: call.act,
                next_a: std::ptr::null(),
                // The first row panel's tile brings the next panel's lines.
                b_ahead: i == 0 && cols == nr,
            };
            // SAFETY: the tile lies inside C; each B row holds NR floats (whole
            // panels of X, or the packed tail); A's panel i is kc deep there.
            unsafe { packed::tile_indirect(isa, kc, call.a.panel(i, k0, kc).as_ptr(), base, offs_p[k0..].as_ptr(), call.c.add(off), call.ldc, rows, cols, &e) };
        }
    }
}

/// The vector ISA narrow im2col rows are built with ([`gather`]): the
/// kernel's, when this CPU has it.
fn gather_isa(isa: Isa) -> Option<Isa> {
    (isa != Isa::Generic && isa.available()).then_some(isa)
}

fn ceil_div(a: isize, b: isize) -> isize {
    a.div_euclid(b) + isize::from(a.rem_euclid(b) != 0)
}

/// The im2col matrix of one image and group, read by runs: row
/// `k = (ci, ky, kx)`, column `p = (oy, ox)` (from `col0`) holds
/// `X[ci, oy·sh + ky·dh − ph, ox·sw + kx·dw − pw]`, or 0 outside.
struct Im2col<'a> {
    /// The group's `C/group` input planes of the image.
    x: &'a [f32],
    g: &'a ConvGemm,
    col0: usize,
    pointwise: bool,
    /// The group's channel scales (an input scale), if any.
    scale: Option<&'a [f32]>,
    /// Build the rows of narrow stride-1 "same" and stride-2 maps with
    /// this vector ISA (the kernel's, present on this CPU).
    gather: Option<Isa>,
    /// The lanes' output positions of the last column asked for.
    #[cfg(target_arch = "x86_64")]
    start: std::cell::Cell<Option<gather::Start>>,
    /// The phase planes of the last channel a stride-2 row read.
    #[cfg(target_arch = "x86_64")]
    phases: std::cell::RefCell<Phases>,
}

impl Im2col<'_> {
    /// Row `k`'s geometry for [`gather`], when it takes that path: AVX2 or
    /// AVX-512, a narrow (not pointwise) map, stride 1 with the output the input's
    /// size, or stride 2 with the input's phase planes as wide as the
    /// output (their split cached per channel in `phases`).
    #[cfg(target_arch = "x86_64")]
    fn gather_row<'p>(&'p self, k: usize, phases: &'p mut Phases) -> Option<gather::Row<'p>> {
        let g = self.g;
        let [ih, iw] = g.input.map(|v| v as usize);
        let [kh, kw] = g.kernel.map(|v| v as usize);
        let ow = g.output[1] as usize;
        let isa = self.gather.filter(|_| g.gathers_by_vectors())?;
        let (ci, tap) = (k / (kh * kw), k % (kh * kw));
        let (ky, kx) = ((tap / kw) as isize, (tap % kw) as isize);
        let (ay, ax) = (ky * g.dilations[0] as isize - g.pad_begin[0] as isize, kx * g.dilations[1] as isize - g.pad_begin[1] as isize);
        let plane = &self.x[ci * ih * iw..][..ih * iw];
        match g.strides {
            [1, 1] => Some(gather::Row { plane, ih, iw, ow, iy0: ay, ix0: ax }),
            _ => {
                let hp = ih.div_ceil(2);
                if phases.channel != Some(ci) {
                    // SAFETY: `gather` is set only to an ISA this CPU has.
                    unsafe {
                        match isa {
                            Isa::Avx512 => gather::split_phases(plane, ih, iw, ow, &mut phases.floats),
                            _ => gather::split_phases_avx2(plane, ih, iw, ow, &mut phases.floats),
                        }
                    }
                    phases.channel = Some(ci);
                }
                let (py, px) = (ay.rem_euclid(2) as usize, ax.rem_euclid(2) as usize);
                Some(gather::Row {
                    plane: &phases.floats[(py * 2 + px) * hp * ow..][..hp * ow],
                    ih: (ih - py.min(ih)).div_ceil(2),
                    iw: (iw - px.min(iw)).div_ceil(2),
                    ow,
                    iy0: ay.div_euclid(2),
                    ix0: ax.div_euclid(2),
                })
            }
        }
    }
}

/// A channel's input split into its four stride-2 phase planes.
#[cfg(target_arch = "x86_64")]
struct Phases {
    channel: Option<usize>,
    floats: [f32; gather::PHASE_FLOATS],
}

impl BSource for Im2col<'_> {
    #[cfg(target_arch = "x86_64")]
    fn fill_panels(&self, k: usize, n0: usize, len: usize, nr: usize, dst: &mut [f32], stride: usize) -> bool {
        let mut phases = self.phases.borrow_mut();
        let Some(row) = self.gather_row(k, &mut phases) else {
            return false;
        };
        let pos = self.col0 + n0;
        let start = match self.start.get() {
            Some(s) if s.pos == pos => s,
            _ => gather::Start::new(pos, row.ow),
        };
        self.start.set(Some(start));
        // SAFETY: gather_row is Some only with an ISA this CPU has.
        unsafe {
            match self.gather {
                Some(Isa::Avx512) => gather::fill_panels(&row, pos, &start, len, nr, dst, stride),
                _ => gather::fill_panels_avx2(&row, pos, &start, len, nr, dst, stride),
            }
        }
        true
    }

    /// A 1×1 stride-1 unpadded convolution's row `k` is X's channel `k`
    /// (unless it is scaled).
    fn row(&self, k: usize, n0: usize, len: usize) -> Option<&[f32]> {
        let plane = (self.g.input[0] * self.g.input[1]) as usize;
        (self.pointwise && self.scale.is_none()).then(|| &self.x[k * plane + self.col0 + n0..][..len])
    }

    fn strided(&self) -> Option<(&[f32], usize)> {
        let plane = (self.g.input[0] * self.g.input[1]) as usize;
        (self.pointwise && self.scale.is_none()).then(|| (&self.x[self.col0..], plane))
    }

    fn fill(&self, k: usize, n0: usize, dst: &mut [f32]) {
        let g = self.g;
        let [ih, iw] = g.input.map(|v| v as usize);
        let [kh, kw] = g.kernel.map(|v| v as usize);
        let ow = g.output[1] as usize;
        let (ci, tap) = (k / (kh * kw), k % (kh * kw));
        let plane = &self.x[ci * ih * iw..][..ih * iw];
        let pos = self.col0 + n0;
        if self.pointwise {
            match self.scale {
                Some(s) => dst.iter_mut().zip(&plane[pos..]).for_each(|(d, &v)| *d = v * s[ci]),
                None => dst.copy_from_slice(&plane[pos..][..dst.len()]),
            }
            return;
        }
        let (ky, kx) = ((tap / kw) as isize, (tap % kw) as isize);
        let [sh, sw] = g.strides.map(|v| v as isize);
        let [dh, dw] = g.dilations.map(|v| v as isize);
        let [ph, pw] = g.pad_begin.map(|v| v as isize);
        // Output columns o read input column o·sw + off; inside for lo..hi.
        let off = kx * dw - pw;

        let (lo, hi) = if sw == 1 {
            ((-off).max(0) as usize, ((iw as isize - off).max(0) as usize).min(ow))
        } else {
            (ceil_div(-off, sw).max(0) as usize, (ceil_div(iw as isize - off, sw).max(0) as usize).min(ow))
        };
        let mut j = 0;
        // The output row and column of `pos`, advanced run by run.
        let (mut oy, mut ox) = (pos / ow, pos % ow);
        while j < dst.len() {
            let run = (ow - ox).min(dst.len() - j);
            let d = &mut dst[j..j + run];
            let iy = oy as isize * sh + ky * dh - ph;
            let (a, b) = (lo.clamp(ox, ox + run), hi.clamp(ox, ox + run).max(lo.clamp(ox, ox + run)));
            if iy < 0 || iy >= ih as isize || a >= b {
                zero_run(d);
            } else {
                let row = &plane[iy as usize * iw..][..iw];
                zero_run(&mut d[..a - ox]);
                zero_run(&mut d[b - ox..]);
                let start = (a as isize * sw + off) as usize;
                let dv = &mut d[a - ox..b - ox];
                match sw {
                    1 => copy_run(dv, &row[start..start + dv.len()]),
                    2 => {
                        // A constant stride the compiler turns into shuffles
                        // (the stems' and downsampling layers' gathers).
                        let n = dv.len();
                        let src = &row[start..start + 2 * n - 1];
                        let (body, last) = dv.split_at_mut(n - 1);
                        for (v, pair) in body.iter_mut().zip(src.chunks_exact(2)) {
                            *v = pair[0];
                        }
                        last[0] = src[2 * (n - 1)];
                    }
                    _ => {
                        for (v, &x) in dv.iter_mut().zip(row[start..].iter().step_by(sw as usize)) {
                            *v = x;
                        }
                    }
                }
            }
            j += run;
            ox += run;
            if ox == ow {
                (oy, ox) = (oy + 1, 0);
            }
        }
    }
}

/// `d = s` for the runs of one output row (a few to a few hundred floats):
/// blocks of 8 and an overlapping last block, which the compiler inlines;
/// the library copy is a call, which costs more than the copy on the 7- and
/// 14-float rows of small maps.
#[inline(always)]
fn copy_run(d: &mut [f32], s: &[f32]) {
    let n = d.len();
    assert_eq!(n, s.len());
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            d[i..i + 8].copy_from_slice(&s[i..i + 8]);
            i += 8;
        }
        if i < n {
            d[n - 8..].copy_from_slice(&s[n - 8..]);
        }
    } else if n >= 4 {
        d[..4].copy_from_slice(&s[..4]);
        d[n - 4..].copy_from_slice(&s[n - 4..]);
    } else {
        // At most 3 floats: one by one (a slice copy would be a call).
        for (v, &x) in d.iter_mut().zip(s) {
            *v = x;
        }
    }
}

/// `d = 0`, as [`copy_run`].
#[inline(always)]
fn zero_run(d: &mut [f32]) {
    let n = d.len();
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            d[i..i + 8].fill(0.0);
            i += 8;
        }
        d[n - 8..].fill(0.0);
    } else {
        d.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// B packed whole (by an [`Im2colPack`] step, or [`packed::pack_whole`]).
pub(crate) struct Prepacked<'a>(pub &'a [f32]);

impl BSource for Prepacked<'_> {
    fn fill(&self, _k: usize, _n0: usize, _dst: &mut [f32]) {
        unreachable!("a prepacked B is read in place")
    }

    fn packed(&self) -> Option<&[f32]> {
        Some(self.0)
    }
}

/// The first half of a [`GemmAxis::PackedChannels`] convolution: packs the
/// B matrix of every image and group (`conv`'s im2col, or X's rows for a
/// pointwise one) whole into NR-column panels, `[N][group][panels][K][NR]`.
/// Work items are the `N · group · panels` panels, so clusters share the
/// packing that each would otherwise repeat. Input: X; output: packed B.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Im2colPack {
    pub conv: ConvGemm,
}

impl Im2colPack {
    /// Floats of the packed output.
    pub fn output_floats(&self) -> usize {
        (self.conv.batch * self.conv.group) as usize * self.conv.packed_b_len()
    }

    fn panels(&self) -> usize {
        self.conv.plane_out().div_ceil(self.conv.isa.nr())
    }
}

impl KernelImpl for Im2colPack {
    fn name(&self) -> String {
        format!("f32_im2col_pack_{}", self.conv.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.conv.batch * self.conv.group * self.panels() as u64
    }

    fn scratch_bytes(&self, _items: u64) -> usize {
        0
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        // The geometry's checks, with the convolution's own operand count.
        let e = &self.conv.epilogue;
        self.conv.check(2 + usize::from(e.bias) + usize::from(e.residual), 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let g = &self.conv;
        let (c, cg, groups) = (g.in_channels as usize, (g.in_channels / g.group) as usize, g.group as usize);
        let (plane_in, len, panels, k, nr) = ((g.input[0] * g.input[1]) as usize, g.packed_b_len(), self.panels(), g.depth(), g.isa.nr());
        // SAFETY: inputs are not written during the step (the run contract).
        let x = unsafe { io.inputs[0].f32() };
        let mut item = part.start as usize;
        while item < part.end as usize {
            let (bg, panel) = (item / panels, item % panels);
            let end = (panel + part.end as usize - item).min(panels);
            let (b, grp) = (bg / groups, bg % groups);
            let src = Im2col { x: &x[(b * c + grp * cg) * plane_in..][..cg * plane_in], g, col0: 0, pointwise: g.pointwise(), scale: None, gather: gather_isa(g.isa), #[cfg(target_arch = "x86_64")] start: Default::default(), #[cfg(target_arch = "x86_64")] phases: std::cell::RefCell::new(Phases { channel: None, floats: [0.0; gather::PHASE_FLOATS] }) };
            let at = bg * len + panel * k * nr;
            // SAFETY: this part owns these panels of image b, group grp (the run contract).
            let dst = unsafe { io.outputs[0].f32_part(at..at + (end - panel) * k * nr) };
            packed::pack_whole(g.isa, &src, k, g.plane_out(), panel..end, dst);
            item += end - panel;
        }
    }
}

impl ConvGemm {
    fn plane_out(&self) -> usize {
        (self.output[0] * self.output[1]) as usize
    }

    /// The K-block depth its packed weights have ([`packed::k_block`] of
    /// an image's output columns).
    pub fn k_block(&self) -> usize {
        packed::k_block(self.isa, self.plane_out())
    }

    /// GEMM depth: `C/group · kh · kw`.
    fn depth(&self) -> usize {
        (self.in_channels / self.group * self.kernel[0] * self.kernel[1]) as usize
    }

    /// Output channels per group.
    fn mg(&self) -> usize {
        (self.out_channels / self.group) as usize
    }

    /// Floats of B this convolution gathers (an im2col of every image and
    /// group), or 0 when B is X itself or packed by an [`Im2colPack`] step.
    pub fn gathered_floats(&self) -> u64 {
        if self.pointwise() || self.axis == GemmAxis::PackedChannels {
            return 0;
        }
        self.batch * self.in_channels * self.kernel[0] * self.kernel[1] * self.output[0] * self.output[1]
    }

    /// The pieces B's gather copies one at a time, each with a set-up
    /// beyond its floats (the cost model charges them): 16 columns at a
    /// time on the vector path, an output row's inside part of each im2col
    /// row at stride 1, every float at wider strides.
    pub fn gathered_runs(&self) -> u64 {
        let floats = self.gathered_floats();
        let ow = self.output[1];
        if self.gathers_by_vectors() {
            floats / ow.max(1) * ow.div_ceil(16)
        } else if self.strides[1] == 1 {
            floats / ow.max(1)
        } else {
            floats
        }
    }

    /// Whether B's im2col rows are built 16 columns at a time (AVX2 or AVX-512 on
    /// narrow maps: masked shifts of the plane, or of a stride-2 plane's
    /// phases) rather than copied run by run.
    fn gathers_by_vectors(&self) -> bool {
        let [ih, iw] = self.input.map(|v| v as usize);
        let (ow, taps) = (self.output[1] as usize, (self.kernel[0] * self.kernel[1]) as usize);
        matches!(self.isa, Isa::Avx2 | Isa::Avx512)
            && !self.pointwise()
            && match self.strides {
                [1, 1] => ow == iw && ow < GATHER_BELOW,
                // Splitting a channel writes four phase planes: on 16-31 wide
                // outputs it pays only when several taps read them (a 1×1/2
                // downsample read one and lost to the runs).
                // With AVX2 (masked stores, 8 lanes) the split pays only
                // below 16 columns and with several taps: 128×56×56 3×3/2
                // and 512×14×14 1×1/2 packed slower than by runs on Zen 3.
                [2, 2] if self.isa == Isa::Avx2 => ow < GATHER_BELOW && taps >= 4 && iw <= 2 * ow && iw <= 64 && 4 * ih.div_ceil(2) * ow <= PHASE_FLOATS,
                [2, 2] => (ow < GATHER_BELOW || (ow < 2 * GATHER_BELOW && taps >= 4)) && iw <= 2 * ow && iw <= 64 && 4 * ih.div_ceil(2) * ow <= PHASE_FLOATS,
                _ => false,
            }
    }

    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.strides == [1, 1] && self.pad_begin == [0, 0] && self.input == self.output
    }

    /// Runs the GEMM of image `b`, group `grp`, rows `rows` (a multiple of
    /// MR at the start) and output columns `cols`.
    ///
    /// # Safety
    /// As [`KernelImpl::run`]; this part owns those outputs.
    unsafe fn run_block(&self, io: &Io, b: usize, grp: usize, rows: Range<usize>, cols: Range<usize>, scratch: &mut [f32]) {
        let (c, m, plane_out) = (self.in_channels as usize, self.out_channels as usize, self.plane_out());
        let (k, mg, cg) = (self.depth(), self.mg(), c / self.group as usize);
        let plane_in = (self.input[0] * self.input[1]) as usize;
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, w) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        // SAFETY: as above.
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        let first_row = b * m + grp * mg + rows.start;
        let at = first_row * plane_out + cols.start;
        let residual = match self.epilogue.residual {
            // SAFETY: `at` lies inside the residual, which has Y's shape.
            true => unsafe { io.inputs[2 + usize::from(self.epilogue.bias)].f32()[at..].as_ptr() },
            false => std::ptr::null(),
        };
        let y = &io.outputs[0];
        assert!((first_row + rows.len()) * plane_out <= y.len_bytes() / 4, "conv gemm output is too small");
        let a_group = packed::pack::packed_a_len(mg, k, self.isa);
        let mut call = GemmCall {
            m: rows.len(),
            k,
            n: cols.len(),
            a: PackedA::new(&w[grp * a_group..][..a_group], mg, k, self.isa, self.k_block()).after_panels(rows.start / self.isa.mr()),
            // SAFETY: in bounds (asserted above); this part alone writes these
            // rows' columns `cols` (the run contract).
            c: unsafe { (y.as_ptr() as *mut f32).add(at) },
            ldc: plane_out,
            bias: bias.map(|bv| &bv[grp * mg + rows.start..grp * mg + rows.end]),
            residual,
            act: self.epilogue.activation,
        };
        if self.axis == GemmAxis::PackedChannels {
            let len = self.packed_b_len();
            let src = Prepacked(&x[(b * self.group as usize + grp) * len..][..len]);
            // SAFETY: as below; B is read in place (all columns: the axis splits channels).
            unsafe { packed::gemm(self.isa, &call, &src, scratch) };
            return;
        }
        let xg = &x[(b * c + grp * cg) * plane_in..][..cg * plane_in];
        let mut scale = match self.input_scale {
            // SAFETY: as above; the scale is the last input.
            true => Some(unsafe { &io.inputs[io.inputs.len() - 1].f32()[b * c + grp * cg..][..cg] }),
            false => None,
        };
        let (a_scaled, scratch) = scratch.split_at_mut(self.scaled_a_floats());
        // Scaling B's K rows costs K · columns products, scaling A's columns
        // K · rows: with fewer rows, A takes the scale and B is X as it is
        // (read in place or packed by the tiles, not filled row by row: an
        // EfficientNet-B0 32 → 16 layer over 112×112 after its channel
        // scale ran 1.9× the same layer without one).
        if let Some(s) = scale.filter(|_| rows.len() <= cols.len()) {
            call.a = call.a.scaled_into(rows.len().div_ceil(self.isa.mr()), s, a_scaled);
            scale = None;
        }
        if self.pointwise() && rows.len() <= IN_PLACE_ROWS && scale.is_none() {
            // SAFETY: as below.
            unsafe { pointwise_in_place(self.isa, &call, xg, plane_in, cols.start, scratch) };
            return;
        }
        let src = Im2col { x: xg, g: self, col0: cols.start, pointwise: self.pointwise(), scale, gather: gather_isa(self.isa), #[cfg(target_arch = "x86_64")] start: Default::default(), #[cfg(target_arch = "x86_64")] phases: std::cell::RefCell::new(Phases { channel: None, floats: [0.0; gather::PHASE_FLOATS] }) };
        // SAFETY: C and the residual cover rows × cols at stride plane_out;
        // the scratch holds scratch_floats (see scratch_bytes).
        unsafe { packed::gemm(self.isa, &call, &src, scratch) };
    }

    /// The columns a part of `items` builds at once.
    fn part_columns(&self, items: u64) -> usize {
        match self.axis {
            GemmAxis::Columns => (items as usize).min(self.plane_out()),
            GemmAxis::Channels => self.plane_out(),
            GemmAxis::PackedChannels => 0,
        }
    }

    /// Scratch floats for one group's packed weights scaled by an input
    /// scale (see `run_block`).
    fn scaled_a_floats(&self) -> usize {
        if self.input_scale {
            // Whole cache lines, so the B scratch after it keeps its alignment.
            packed::pack::packed_a_len(self.mg(), self.depth(), self.isa).next_multiple_of(16)
        } else {
            0
        }
    }

    /// Floats of B packed whole for one image and group.
    fn packed_b_len(&self) -> usize {
        packed::packed_whole_len(self.isa, self.depth(), self.plane_out())
    }
}

impl KernelImpl for ConvGemm {
    fn name(&self) -> String {
        format!("f32_conv2d_gemm_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        match self.axis {
            GemmAxis::Columns => self.batch * self.plane_out() as u64,
            GemmAxis::Channels | GemmAxis::PackedChannels => self.batch * self.group * self.mg().div_ceil(self.isa.mr()) as u64,
        }
    }

    /// Split by columns, parts start on a column panel of the image: a
    /// boundary inside a panel costs both parts a partial tile, and inside
    /// a cache line both clusters write that line of every output row.
    fn split_granule(&self) -> u64 {
        match self.axis {
            GemmAxis::Columns if self.batch == 1 => self.isa.nr() as u64,
            _ => 1,
        }
    }

    fn scratch_bytes(&self, items: u64) -> usize {
        if items == 0 {
            return 0;
        }
        let in_place = if self.pointwise() { self.depth() * (self.isa.nr() + 2) + 2 } else { 0 };
        4 * (packed::scratch_floats(self.isa, self.depth(), self.part_columns(items)).max(in_place) + self.scaled_a_floats())
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual) + usize::from(self.input_scale);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        if self.input_scale && (!self.pointwise() || self.axis == GemmAxis::PackedChannels) {
            return Err(format!("a conv gemm input scale needs a pointwise convolution off the packed-channels axis: {self:?}"));
        }
        if self.group == 0 || self.in_channels % self.group != 0 || self.out_channels % self.group != 0 || self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err(format!("conv gemm groups, strides or dilations are invalid: {self:?}"));
        }
        if self.depth() == 0 || self.out_channels == 0 {
            return Err(format!("conv gemm has an empty product: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        // SAFETY: any bit pattern is a valid f32.
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(pre.is_empty(), "conv gemm scratch is not 4-byte aligned");
        let (p0, p1) = (part.start as usize, part.end as usize);
        let g = self.group as usize;
        match self.axis {
            GemmAxis::Columns => {
                let plane = self.plane_out();
                let mut item = p0;
                while item < p1 {
                    let (b, col) = (item / plane, item % plane);
                    let end = (col + p1 - item).min(plane);
                    for grp in 0..g {
                        // SAFETY: this part owns columns col..end of image b.
                        unsafe { self.run_block(io, b, grp, 0..self.mg(), col..end, scratch) };
                    }
                    item += end - col;
                }
            }
            GemmAxis::Channels | GemmAxis::PackedChannels => {
                let (mr, mg) = (self.isa.mr(), self.mg());
                let panels = mg.div_ceil(mr);
                let mut item = p0;
                while item < p1 {
                    let (bg, panel) = (item / panels, item % panels);
                    let end = (panel + p1 - item).min(panels);
                    let rows = panel * mr..(end * mr).min(mg);
                    // SAFETY: this part owns these channel rows of image bg / g.
                    unsafe { self.run_block(io, bg / g, bg % g, rows, 0..self.plane_out(), scratch) };
                    item += end - panel;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;
    use crate::conv::pack_conv_weights;
    use crate::packed::tests::all_activations;


    /// Compares every available ISA and both axes with the direct kernel, run
    /// as 1, 2 and 3 parts.
    fn compare(base: &ConvGemm, rng: &mut Rng) {
        let d = base.portable();
        let (c, m) = (base.in_channels as usize, base.out_channels as usize);
        let x = rng.vec(base.batch as usize * c * (base.input[0] * base.input[1]) as usize);
        let w = rng.vec(m * base.depth());
        let out_len = base.batch as usize * m * base.plane_out();
        let (bias, res) = (rng.vec(m), rng.vec(out_len));
        let mut inputs = vec![x, pack_conv_weights(&w)];
        if base.epilogue.bias {
            inputs.push(bias);
        }
        if base.epilogue.residual {
            inputs.push(res);
        }
        let want = run_parts(&d, &inputs, &[out_len], 1).remove(0);
        for isa in crate::packed::tests::isas() {
            for axis in [GemmAxis::Columns, GemmAxis::Channels] {
                let k = ConvGemm { isa, axis, ..base.clone() };
                let mut ins = inputs.clone();
                ins[1] = pack_conv_gemm_weights(&w, m, base.group as usize, isa, k.k_block());
                for parts in [1, 2, 3] {
                    let got = run_parts(&k, &ins, &[out_len], parts).remove(0);
                    assert_close(&got, &want, 2e-5 * (base.depth() as f32).sqrt().max(1.0));
                }
            }
            // B packed by its own step (in 1-3 parts), then read in place.
            let k = ConvGemm { isa, axis: GemmAxis::PackedChannels, ..base.clone() };
            let pack = Im2colPack { conv: k.clone() };
            pack.check(1, 1).unwrap();
            for parts in [1, 2, 3] {
                let mut ins = inputs.clone();
                ins[0] = run_parts(&pack, &ins[..1], &[pack.output_floats()], parts).remove(0);
                assert!(ins[0].iter().all(|v| !v.is_nan()), "the pack left floats unwritten");
                ins[1] = pack_conv_gemm_weights(&w, m, base.group as usize, isa, k.k_block());
                let got = run_parts(&k, &ins, &[out_len], parts).remove(0);
                assert_close(&got, &want, 2e-5 * (base.depth() as f32).sqrt().max(1.0));
            }
        }
    }

    fn random_conv(rng: &mut Rng, epilogue: Epilogue) -> ConvGemm {
        let group = 1 + rng.below(3);
        let (cg, mg) = (1 + rng.below(6), 1 + rng.below(20));
        let mut k = ConvGemm {
            batch: 1 + rng.below(2),
            in_channels: cg * group,
            out_channels: mg * group,
            group,
            input: [0; 2],
            kernel: [0; 2],
            strides: [0; 2],
            dilations: [0; 2],
            pad_begin: [0; 2],
            output: [0; 2],
            epilogue,
            isa: Isa::Generic,
            axis: GemmAxis::Columns,
            input_scale: false,
        };
        for a in 0..2 {
            let (kk, s, d, pb, pe) = (1 + rng.below(3), 1 + rng.below(3), 1 + rng.below(2), rng.below(3), rng.below(3));
            let eff = (kk - 1) * d + 1;
            let inp = eff.saturating_sub(pb + pe) + rng.below(12);
            k.input[a] = inp;
            k.kernel[a] = kk;
            k.strides[a] = s;
            k.dilations[a] = d;
            k.pad_begin[a] = pb;
            k.output[a] = (inp + pb + pe - eff) / s + 1;
        }
        k
    }

    #[test]
    fn narrow_same_and_stride_2_maps_match_direct() {
        // Narrow "same" maps: B's rows are masked shifts of the plane on
        // AVX2 and AVX-512 (square and not, dilated, odd and even windows with the
        // extra padding at the end, several column parts).
        let mut rng = Rng(29);
        for (c, [h, w], [kh, kw], d, [ph, pw]) in [(5u64, [7u64, 7u64], [3u64, 3u64], 1u64, [1u64, 1u64]), (3, [9, 13], [5, 5], 1, [2, 2]), (4, [14, 14], [3, 3], 2, [2, 2]), (2, [6, 15], [3, 5], 1, [1, 2]), (3, [5, 11], [2, 2], 1, [0, 0]), (1, [3, 2], [3, 3], 1, [1, 1])] {
            let e = Epilogue { bias: true, residual: c % 2 == 1, activation: crate::Activation::Relu };
            let mut k = random_conv(&mut rng, e);
            (k.in_channels, k.out_channels, k.group) = (c, 11, 1);
            (k.input, k.output, k.kernel, k.strides, k.dilations, k.pad_begin) = ([h, w], [h, w], [kh, kw], [1, 1], [d, d], [ph, pw]);
            compare(&k, &mut rng);
        }
        // Narrow stride-2 maps read phase planes: even and odd extents,
        // dilated and pointwise windows, and one too narrow an output for
        // the phases (the runs); inputs 16 columns or wider (whole vectors
        // inside a row load plainly).
        for (c, [h, w], [kh, kw], d, [ph, pw]) in [(3u64, [14u64, 14u64], [3u64, 3u64], 1u64, [1u64, 1u64]), (2, [13, 11], [3, 3], 1, [1, 1]), (4, [28, 28], [1, 1], 1, [0, 0]), (2, [15, 9], [5, 5], 2, [3, 2]), (3, [14, 14], [3, 3], 1, [0, 0]), (2, [8, 9], [2, 4], 1, [0, 2]), (2, [12, 56], [3, 3], 1, [1, 1]), (3, [9, 45], [3, 5], 1, [1, 2]), (2, [27, 27], [3, 3], 1, [1, 1]), (3, [20, 30], [3, 3], 1, [1, 1])] {
            let e = Epilogue { bias: c % 2 == 0, residual: c % 2 == 1, activation: crate::Activation::Relu };
            let mut k = random_conv(&mut rng, e);
            let out = |i: u64, kk: u64, p: u64| (i + 2 * p - (kk - 1) * d - 1) / 2 + 1;
            (k.in_channels, k.out_channels, k.group) = (c, 9, 1);
            (k.input, k.output, k.kernel, k.strides, k.dilations, k.pad_begin) = ([h, w], [out(h, kh, ph), out(w, kw, pw)], [kh, kw], [2, 2], [d, d], [ph, pw]);
            compare(&k, &mut rng);
        }
    }

    #[test]
    fn shallow_convs_pack_blocks_wider_than_nc() {
        // K <= 64 over more columns than NC: blocks of up to KC·NC/K columns,
        // gathered (3×3 over 4 channels: K = 36) a panel at a time, or
        // copied (a pointwise conv with more rows than it reads in place).
        let mut rng = Rng(37);
        for (c, m, [kh, kw], [h, w], p) in [(4u64, 13u64, [3u64, 3u64], [23u64, 41u64], 1u64), (16, 40, [1, 1], [30, 33], 0), (2, 7, [2, 2], [40, 31], 0)] {
            let e = Epilogue { bias: true, residual: c == 16, activation: crate::Activation::Relu };
            let mut k = random_conv(&mut rng, e);
            let out = |i: u64, kk: u64| i + 2 * p - kk + 1;
            (k.in_channels, k.out_channels, k.group, k.batch) = (c, m, 1, 1);
            (k.input, k.output, k.kernel, k.strides, k.dilations, k.pad_begin) = ([h, w], [out(h, kh), out(w, kw)], [kh, kw], [1, 1], [1, 1], [p, p]);
            assert!(k.depth() <= 64 && k.plane_out() > packed::NC, "{k:?}");
            compare(&k, &mut rng);
        }
    }

    #[test]
    fn few_channel_pointwise_convs_read_x_in_place() {
        // Up to IN_PLACE_ROWS output channels, whole and partial column
        // panels, deeper than a K block, every epilogue.
        let mut rng = Rng(31);
        for (i, (c, m, [h, w])) in [(300u64, 5u64, [9u64, 11u64]), (17, 16, [7, 7]), (64, 32, [5, 13]), (3, 9, [4, 8])].into_iter().enumerate() {
            let e = Epilogue { bias: i % 2 == 0, residual: i % 3 != 1, activation: all_activations()[(2 * i + 1) % 9] };
            let mut k = random_conv(&mut rng, e);
            (k.in_channels, k.out_channels, k.group) = (c, m, 1);
            (k.input, k.output, k.kernel, k.strides, k.dilations, k.pad_begin) = ([h, w], [h, w], [1, 1], [1, 1], [1, 1], [0, 0]);
            assert!(k.pointwise());
            compare(&k, &mut rng);
        }
    }

    #[test]
    fn input_scale_matches_direct_on_scaled_x() {
        // Pointwise convolutions with an input scale, against the direct
        // kernel on X already scaled: parts with fewer rows than columns
        // (A scaled, B read as X is, in place for few rows) and more (B's
        // rows scaled), both axes, 1-3 parts, batches of 2, depths across
        // a K block.
        let mut rng = Rng(37);
        for (i, (c, m, [h, w])) in [(24u64, 16u64, [14u64, 14u64]), (300, 40, [7, 9]), (5, 70, [3, 30]), (96, 24, [28, 28])].into_iter().enumerate() {
            let e = Epilogue { bias: i % 2 == 0, residual: i % 3 != 1, activation: all_activations()[(3 * i + 2) % 9] };
            let mut k = random_conv(&mut rng, e);
            (k.in_channels, k.out_channels, k.group, k.batch) = (c, m, 1, 2);
            (k.input, k.output, k.kernel, k.strides, k.dilations, k.pad_begin) = ([h, w], [h, w], [1, 1], [1, 1], [1, 1], [0, 0]);
            let (cu, mu, plane) = (c as usize, m as usize, (h * w) as usize);
            let x = rng.vec(2 * cu * plane);
            let scale = rng.vec(2 * cu);
            let scaled: Vec<f32> = x.iter().enumerate().map(|(j, &v)| v * scale[j / plane]).collect();
            let wt = rng.vec(mu * cu);
            let out_len = 2 * mu * plane;
            let mut tail = Vec::new();
            if e.bias {
                tail.push(rng.vec(mu));
            }
            if e.residual {
                tail.push(rng.vec(out_len));
            }
            let direct_ins: Vec<Vec<f32>> = [vec![scaled, pack_conv_weights(&wt)], tail.clone()].concat();
            let want = run_parts(&k.portable(), &direct_ins, &[out_len], 1).remove(0);
            for isa in crate::packed::tests::isas() {
                for axis in [GemmAxis::Columns, GemmAxis::Channels] {
                    let ks = ConvGemm { isa, axis, input_scale: true, ..k.clone() };
                    let n_in = 2 + tail.len() + 1;
                    ks.check(n_in, 1).unwrap();
                    let ins: Vec<Vec<f32>> = [vec![x.clone(), pack_conv_gemm_weights(&wt, mu, 1, isa, ks.k_block())], tail.clone(), vec![scale.clone()]].concat();
                    for parts in [1, 2, 3] {
                        let got = run_parts(&ks, &ins, &[out_len], parts).remove(0);
                        assert_close(&got, &want, 2e-5 * (c as f32).sqrt());
                    }
                }
            }
        }
        // Refused where it cannot run: a 3×3 window, the packed-channels axis.
        let mut k = random_conv(&mut rng, Epilogue::default());
        (k.kernel, k.input, k.output, k.strides, k.dilations, k.pad_begin, k.input_scale) = ([3, 3], [5, 5], [3, 3], [1, 1], [1, 1], [0, 0], true);
        assert!(k.check(3, 1).is_err());
        let k = ConvGemm { kernel: [1, 1], output: [5, 5], axis: GemmAxis::PackedChannels, ..k };
        assert!(k.check(3, 1).is_err());
    }

    #[test]
    fn matches_direct_on_random_geometries() {
        let mut rng = Rng(23);
        for i in 0..120 {
            let e = Epilogue { bias: rng.below(2) == 1, residual: rng.below(2) == 1, activation: all_activations()[i % 9] };
            let k = random_conv(&mut rng, e);
            compare(&k, &mut rng);
        }
    }

    #[test]
    fn pointwise_and_large_shapes_cross_the_blocks() {
        let mut rng = Rng(29);
        // 1x1 stride 1 (straight from X's rows), then a 3x3 whose depth and
        // columns exceed KC and NC, then a strided 1x1 (gathered); last a
        // 3x3 and a 1x1 on 7×7 maps, whose weights AVX-512 packs in the
        // shallower blocks of a one-wide-tile GEMM (K 360 and 300: three
        // blocks where KC would cut two).
        for (c, m, hw, kk, s, pad) in [(70, 37, 23, 1, 1, 0), (40, 19, 21, 3, 1, 1), (33, 20, 17, 1, 2, 0), (40, 19, 7, 3, 1, 1), (300, 21, 7, 1, 1, 0)] {
            let out = (hw + 2 * pad - kk) / s + 1;
            let k = ConvGemm {
                batch: 2,
                in_channels: c,
                out_channels: m,
                group: 1,
                input: [hw, hw],
                kernel: [kk, kk],
                strides: [s, s],
                dilations: [1, 1],
                pad_begin: [pad, pad],
                output: [out, out],
                epilogue: Epilogue { bias: true, residual: true, activation: crate::Activation::Relu },
                isa: Isa::Generic,
                axis: GemmAxis::Columns,
                input_scale: false,
            };
            compare(&k, &mut rng);
        }
    }

    #[test]
    fn gathered_runs_follow_the_gather_path() {
        let base = ConvGemm {
            batch: 1,
            in_channels: 8,
            out_channels: 16,
            group: 1,
            input: [14, 14],
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pad_begin: [1, 1],
            output: [14, 14],
            epilogue: Epilogue::default(),
            isa: Isa::Avx512,
            axis: GemmAxis::Columns,
            input_scale: false,
        };
        // 14 wide at stride 1: 16 columns at a time, one piece a row.
        assert!(base.gathers_by_vectors());
        assert!(ConvGemm { isa: Isa::Avx2, ..base.clone() }.gathers_by_vectors());
        assert_eq!(base.gathered_runs(), 8 * 9 * 14);
        assert_eq!(ConvGemm { isa: Isa::Avx2, ..base.clone() }.gathered_runs(), 8 * 9 * 14);
        // 56 wide at stride 1: a run a row.
        let wide = ConvGemm { input: [56, 56], output: [56, 56], ..base.clone() };
        assert!(!wide.gathers_by_vectors());
        assert_eq!(wide.gathered_runs(), 8 * 9 * 56);
        // 3×3/2 from 56 to 28 with AVX-512: phase planes, two pieces a row of 28.
        let halve = ConvGemm { input: [56, 56], strides: [2, 2], output: [28, 28], ..base.clone() };
        assert!(halve.gathers_by_vectors());
        assert_eq!(halve.gathered_runs(), 8 * 9 * 28 * 2);
        // With AVX2 only below 16 columns: 28 wide copies runs, 7 wide gathers.
        assert!(!ConvGemm { isa: Isa::Avx2, ..halve.clone() }.gathers_by_vectors());
        assert!(ConvGemm { isa: Isa::Avx2, input: [14, 14], output: [7, 7], ..halve.clone() }.gathers_by_vectors());
        // 11×11/4: every float on its own.
        let stem = ConvGemm { in_channels: 3, input: [227, 227], kernel: [11, 11], strides: [4, 4], pad_begin: [0, 0], output: [55, 55], ..base.clone() };
        assert_eq!(stem.gathered_runs(), stem.gathered_floats());
        // B is X: nothing gathered.
        assert_eq!(ConvGemm { kernel: [1, 1], pad_begin: [0, 0], ..base }.gathered_runs(), 0);
    }

    #[test]
    fn scratch_is_bounded_and_names_the_isa() {
        let k = ConvGemm {
            batch: 1,
            in_channels: 512,
            out_channels: 512,
            group: 1,
            input: [56, 56],
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pad_begin: [1, 1],
            output: [56, 56],
            epilogue: Epilogue::default(),
            isa: Isa::Avx512,
            axis: GemmAxis::Columns,
            input_scale: false,
        };
        assert_eq!(k.scratch_bytes(k.work_items()), 4 * packed::KC * packed::NC);
        assert_eq!(k.scratch_bytes(5), 4 * packed::KC * 32);
        assert_eq!(k.name(), "f32_conv2d_gemm_avx512");
        assert!(k.check(2, 1).is_ok() && k.check(3, 1).is_err());
    }

    /// GFLOP/s of pointwise convolutions on SqueezeNet's and ResNet-50's
    /// shapes, one part over all columns, X hot in L2 as it is in a network;
    /// not a test of correctness:
    /// `cargo test --release -p kann-kernels --lib conv_gemm::tests::pointwise_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn pointwise_speed() {
        // (in channels, out channels, extent); KANN_PW_SHAPES=C,M,HW;... others.
        let shapes: Vec<(u64, u64, u64)> = std::env::var("KANN_PW_SHAPES").map_or(
            vec![(64, 16, 55), (128, 16, 55), (128, 32, 27), (256, 32, 27), (256, 48, 13), (384, 64, 13), (512, 64, 13), (16, 64, 55), (256, 64, 56), (64, 256, 56), (512, 128, 28), (128, 512, 28), (1024, 256, 14)],
            |v| {
                v.split(';')
                    .map(|s| {
                        let d: Vec<u64> = s.split(',').map(|x| x.parse().expect("KANN_PW_SHAPES: C,M,HW;...")).collect();
                        (d[0], d[1], d[2])
                    })
                    .collect()
            },
        );
        let isa = Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic);
        for (c, m, hw) in shapes {
            let mut rng = Rng(5);
            let e = Epilogue { bias: true, residual: false, activation: crate::Activation::Relu };
            let mut k = random_conv(&mut rng, e);
            (k.in_channels, k.out_channels, k.group, k.batch, k.isa, k.axis) = (c, m, 1, 1, isa, GemmAxis::Columns);
            (k.input, k.output, k.kernel, k.strides, k.dilations, k.pad_begin) = ([hw, hw], [hw, hw], [1, 1], [1, 1], [1, 1], [0, 0]);
            let (cu, mu, plane) = (c as usize, m as usize, (hw * hw) as usize);
            // X on 2 MiB pages, as the runtime's arena is (rows a plane
            // apart on 4 KiB pages miss the TLB: the in-place path ran 10-25 %
            // slower there).
            let layout = std::alloc::Layout::from_size_align((4 * cu * plane).next_multiple_of(2 << 20), 2 << 20).unwrap();
            // SAFETY: a non-zero size; freed below with the same layout.
            let xp = unsafe { std::alloc::alloc(layout) };
            #[cfg(target_os = "linux")]
            // SAFETY: the range is this allocation; advice only.
            unsafe {
                libc::madvise(xp.cast(), layout.size(), libc::MADV_HUGEPAGE);
            }
            // SAFETY: the allocation holds cu * plane floats, written before any read.
            let x = unsafe { std::slice::from_raw_parts_mut(xp.cast::<f32>(), cu * plane) };
            x.copy_from_slice(&rng.vec(cu * plane));
            let mut w = pack_conv_gemm_weights(&rng.vec(mu * cu), mu, 1, k.isa, k.k_block());
            let mut bias = rng.vec(mu);
            let mut y = vec![0.0f32; mu * plane];
            let items = k.work_items();
            let mut scratch = vec![0u8; k.scratch_bytes(items) + 64];
            let lead = scratch.as_ptr().align_offset(64);
            let ins = [crate::buf::RawBuf::from_f32(x), crate::buf::RawBuf::from_f32(&mut w), crate::buf::RawBuf::from_f32(&mut bias)];
            let outs = [crate::buf::RawBuf::from_f32(&mut y)];
            let io = Io { inputs: &ins, outputs: &outs };
            let mut times = Vec::new();
            for _ in 0..41 {
                let t = std::time::Instant::now();
                // SAFETY: the buffers outlive the call; one part.
                unsafe { k.run(&io, 0..items, &mut scratch[lead..]) };
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let gf = 2.0 * (cu * mu * plane) as f64 / times[20] / 1e9;
            let best = 2.0 * (cu * mu * plane) as f64 / times[0] / 1e9;
            println!("pointwise {c}->{m} {hw}x{hw}: {:.1} us, {gf:.1} GFLOP/s (median), {best:.1} (best)", times[20] * 1e6);
            // SAFETY: allocated above with this layout; no view outlives this.
            unsafe { std::alloc::dealloc(xp, layout) };
        }
    }

    /// Microseconds of strided pointwise convolutions (the downsampling
    /// projections: RegNet-X's 32 → 72 from 112×112, ResNet-50's) split by
    /// columns, and of their im2col packing alone; not a test of correctness:
    /// `cargo test --release -p kann-kernels --lib conv_gemm::tests::strided_pointwise_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn strided_pointwise_timing() {
        let isa = Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic);
        // (in channels, out channels, input extent); KANN_SPW_SHAPES=C,M,HW;... others.
        let shapes: Vec<[u64; 3]> = std::env::var("KANN_SPW_SHAPES").map_or(
            vec![[32, 72, 112], [72, 168, 56], [168, 408, 28], [408, 912, 14], [256, 512, 56], [512, 1024, 28]],
            |v| v.split(';').map(|t| std::array::from_fn(|i| t.split(',').nth(i).and_then(|x| x.parse().ok()).expect("KANN_SPW_SHAPES: C,M,HW;..."))).collect(),
        );
        let mut rng = Rng(7);
        for [c, m, hw] in shapes {
            let out = hw.div_ceil(2);
            let conv = ConvGemm { batch: 1, in_channels: c, out_channels: m, group: 1, input: [hw, hw], kernel: [1, 1], strides: [2, 2], dilations: [1, 1], pad_begin: [0, 0], output: [out, out], epilogue: Epilogue { bias: true, residual: false, activation: crate::Activation::None }, isa, axis: GemmAxis::Columns, input_scale: false };
            let mut ins = vec![rng.vec((c * hw * hw) as usize), pack_conv_gemm_weights(&rng.vec((m * c) as usize), m as usize, 1, isa, conv.k_block()), rng.vec(m as usize)];
            let us = time_kernel(&conv, &mut ins, (m * out * out) as usize);
            let pack = Im2colPack { conv: conv.clone() };
            let pack_us = time_kernel(&pack, &mut ins[..1].to_vec(), pack.output_floats());
            let flops = 2.0 * (c * m * out * out) as f64;
            println!("pointwise/2 {c}->{m} from {hw}x{hw}: {us:.0} us ({:.0} GFLOP/s), packing alone {pack_us:.0} us", flops / us / 1e3);
        }
    }

    /// Floats per nanosecond of the im2col packing on ResNet-50's shapes;
    /// not a test of correctness:
    /// `cargo test --release -p kann-kernels --lib conv_gemm::tests::pack_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn pack_speed() {
        // (channels, extent, kernel, stride, pad)
        for (c, hw, kk, s, p) in [(256u64, 14u64, 3u64, 1u64, 1u64), (512, 7, 3, 1, 1), (192, 7, 3, 1, 1), (64, 56, 3, 1, 1), (3, 224, 7, 2, 3), (128, 56, 3, 2, 1), (256, 28, 3, 2, 1), (128, 28, 3, 2, 1), (512, 14, 3, 2, 1), (512, 14, 1, 2, 0)] {
            let out = (hw + 2 * p - kk) / s + 1;
            let conv = ConvGemm {
                batch: 1,
                in_channels: c,
                out_channels: 64,
                group: 1,
                input: [hw, hw],
                kernel: [kk, kk],
                strides: [s, s],
                dilations: [1, 1],
                pad_begin: [p, p],
                output: [out, out],
                epilogue: Epilogue::default(),
                isa: Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic),
                axis: GemmAxis::PackedChannels,
                input_scale: false,
            };
            let pack = Im2colPack { conv };
            let mut x = Rng(1).vec((c * hw * hw) as usize);
            let mut y = vec![0.0f32; pack.output_floats()];
            let (ins, outs) = ([crate::buf::RawBuf::from_f32(&mut x)], [crate::buf::RawBuf::from_f32(&mut y)]);
            let io = Io { inputs: &ins, outputs: &outs };
            let mut best = f64::INFINITY;
            for _ in 0..30 {
                let t = std::time::Instant::now();
                // SAFETY: the buffers outlive the call; one part.
                unsafe { pack.run(&io, 0..pack.work_items(), &mut []) };
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!("pack {c}x{hw}x{hw} k{kk} s{s}: {:.0} us, {:.2} floats/ns", best * 1e6, pack.output_floats() as f64 / best / 1e9);
        }
    }
}
