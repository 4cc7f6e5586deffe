//! A 1×1 convolution followed by the depthwise convolution that reads it
//! (MobileNet's and EfficientNet's "expand" then depthwise layers), fused
//! so that the expanded tensor never leaves the cache.
//!
//! Unfused, the expand convolution writes `E` planes (e.g. 96 × 112 × 112,
//! 4.8 MB: more than L2) that the depthwise one reads right back; both run
//! at memory speed. Fused, work items are bands of depthwise output rows:
//! a band packs the input rows it needs (its rows plus the kernel's halo,
//! all `C` channels) once as the GEMM's B, then for each panel of `MR`
//! expanded channels the packed GEMM computes those channels' rows (with the
//! pointwise bias and activation) into the scratch, and the depthwise
//! kernel turns each of them into the band's output rows. The halo rows are
//! computed by both neighbouring bands ((k − s) rows a band: bands are
//! sized to keep that small).
//!
//! With a column stride of 2, the band packs each input row split, its even
//! columns then its odd ones: the product rows come out split too, and
//! every depthwise tap then reads consecutive floats of one half (the
//! stride-1 taps), with no permute to pick every other column. MobileNetV2's
//! 16→96 expand on 112×112 with its 3×3/2 depthwise layer: 725 → 669 µs,
//! 24→144 on 56×56: 317 → 292 µs (one core, same run).
//!
//! Inputs: X `[N, C, H, W]`, the pointwise weights packed as the GEMM's A
//! ([`pack_a`] of `[E, C]`), then its bias `[E]` if `pointwise.bias`, the
//! depthwise taps `[E, kh·kw]`, then its bias `[E]` if
//! `depthwise.epilogue.bias`. Output: Y `[N, E, oh, ow]`.
//!
//! [`pack_a`]: crate::packed::pack::pack_a

use crate::conv_gemm::Prepacked;
use crate::depthwise::{split_row_part, DepthwiseConv};
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::{self, pack::PackedA, BSource, GemmCall, Isa};
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A fused pointwise (1×1, stride 1, unpadded) then depthwise convolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointwiseDepthwise {
    /// Channels of X: the depth of the pointwise GEMM.
    pub in_channels: u64,
    /// The depthwise convolution over the pointwise output, whole: its
    /// batch, `in_channels == out_channels` (the pointwise outputs), its
    /// geometry and epilogue (no residual).
    pub depthwise: DepthwiseConv,
    /// The pointwise epilogue: bias and activation (no residual).
    pub pointwise: Epilogue,
    /// Depthwise output rows per work item.
    pub band_rows: u64,
    pub isa: Isa,
}

/// Rows `first..` of the channels of one image as B (`[C][rows · W]`).
struct InputRows<'a> {
    /// The image's planes.
    x: &'a [f32],
    plane: usize,
    /// First element of the band in each plane.
    first: usize,
    /// `Some(W)`: each row of W columns comes split, its even columns then
    /// its odd ones. The GEMM's product rows come out split the same way,
    /// as the stride-2 depthwise path over split rows reads them.
    split: Option<usize>,
}

impl BSource for InputRows<'_> {
    fn fill(&self, k: usize, n0: usize, dst: &mut [f32]) {
        let rows = &self.x[k * self.plane + self.first..];
        let Some(w) = self.split else {
            dst.copy_from_slice(&rows[n0..][..dst.len()]);
            return;
        };
        let (mut n, mut at) = (n0, 0);
        while at < dst.len() {
            let (r, q) = (n / w, n % w);
            let take = (w - q).min(dst.len() - at);
            split_row_part(&rows[r * w..][..w], q, &mut dst[at..at + take]);
            (n, at) = (n + take, at + take);
        }
    }

    fn row(&self, k: usize, n0: usize, len: usize) -> Option<&[f32]> {
        self.split.is_none().then(|| &self.x[k * self.plane + self.first + n0..][..len])
    }

    fn strided(&self) -> Option<(&[f32], usize)> {
        self.split.is_none().then(|| (&self.x[self.first..], self.plane))
    }
}

impl PointwiseDepthwise {
    /// The K-block depth its packed pointwise weights have: the GEMM runs
    /// over bands of rows of varying width, so the full [`packed::KC`].
    pub fn k_block(&self) -> usize {
        packed::KC
    }

    fn bands(&self) -> usize {
        let oh = self.depthwise.output[0] as usize;
        oh.div_ceil((self.band_rows as usize).max(1))
    }

    /// Output rows `r0..r1` of band `b`.
    fn band(&self, b: usize) -> (usize, usize) {
        let (oh, rows) = (self.depthwise.output[0] as usize, (self.band_rows as usize).max(1));
        (b * rows, ((b + 1) * rows).min(oh))
    }

    /// The input rows `y0..y1` output rows `r0..r1` read (`check` makes
    /// sure every band reads at least one).
    fn input_rows(&self, r0: usize, r1: usize) -> (usize, usize) {
        let [[ih, _], _, [kh, _], [sh, _], [dh, _], [ph, _]] = self.depthwise.dims();
        let y0 = (r0 * sh).saturating_sub(ph);
        let y1 = ((r1 - 1) * sh + (kh.max(1) - 1) * dh + 1).saturating_sub(ph).min(ih);
        (y0.min(y1), y1)
    }

    /// The depthwise convolution of one channel of band `(r0, r1)` reading
    /// input rows `y0..y1` (its own plane, padded as the band needs).
    fn band_conv(&self, r0: usize, r1: usize, y0: usize, y1: usize) -> DepthwiseConv {
        let d = &self.depthwise;
        let top = d.pad_begin[0] + y0 as u64 - (r0 as u64 * d.strides[0]);
        DepthwiseConv {
            batch: 1,
            in_channels: 1,
            out_channels: 1,
            input: [(y1 - y0) as u64, d.input[1]],
            pad_begin: [top, d.pad_begin[1]],
            output: [(r1 - r0) as u64, d.output[1]],
            epilogue: Epilogue { residual: false, ..d.epilogue },
            ..d.clone()
        }
    }

    /// Columns of the band with the most input rows.
    fn max_columns(&self) -> usize {
        let iw = self.depthwise.input[1] as usize;
        (0..self.bands())
            .map(|b| {
                let (r0, r1) = self.band(b);
                let (y0, y1) = self.input_rows(r0, r1);
                (y1 - y0) * iw
            })
            .max()
            .unwrap_or(0)
    }

    /// Scratch floats: packed B, one panel of expanded rows, the depthwise plane.
    fn scratch_floats(&self) -> [usize; 3] {
        let n = self.max_columns();
        let dw = (0..self.bands())
            .map(|b| {
                let (r0, r1) = self.band(b);
                let (y0, y1) = self.input_rows(r0, r1);
                self.band_conv(r0, r1, y0, y1).one_plane_floats()
            })
            .max()
            .unwrap_or(0);
        [packed::packed_whole_len(self.isa, self.in_channels as usize, n), self.isa.mr() * n, dw]
    }

    /// Runs band `band` of image `img`.
    ///
    /// # Safety
    /// As [`KernelImpl::run`]; this part owns the band's rows of every
    /// output channel of the image.
    unsafe fn run_band(&self, io: &Io, img: usize, band: usize, scratch: &mut [f32]) {
        let d = &self.depthwise;
        let [[ih, iw], [oh, ow], [kh, kw], ..] = d.dims();
        let (c, e, mr, nr) = (self.in_channels as usize, d.out_channels as usize, self.isa.mr(), self.isa.nr());
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, a) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        let mut at = 2;
        let mut next = |present: bool| {
            let i = at;
            at += usize::from(present);
            // SAFETY: as above.
            present.then(|| unsafe { io.inputs[i].f32() })
        };
        let pw_bias = next(self.pointwise.bias);
        let taps = next(true).expect("the depthwise taps are an input");
        let dw_bias = next(d.epilogue.bias);

        let (r0, r1) = self.band(band);
        let (y0, y1) = self.input_rows(r0, r1);
        let n = (y1 - y0) * iw;
        let [b_len, e_len, _] = self.scratch_floats();
        let (bpack, rest) = scratch.split_at_mut(b_len);
        let (ebuf, dws) = rest.split_at_mut(e_len);
        let sub = self.band_conv(r0, r1, y0, y1);
        let split = sub.register_rows_split();
        let src = InputRows { x: &x[img * c * ih * iw..][..c * ih * iw], plane: ih * iw, first: y0 * iw, split: split.then_some(iw) };
        let bpack = &mut bpack[..packed::packed_whole_len(self.isa, c, n)];
        packed::pack_whole(self.isa, &src, c, n, 0..n.div_ceil(nr), bpack);
        let y = io.outputs[0].as_ptr() as *mut f32;
        let a = PackedA::new(&a[..packed::pack::packed_a_len(e, c, self.isa)], e, c, self.isa, self.k_block());
        for g in 0..e.div_ceil(mr) {
            let rows = mr.min(e - g * mr);
            let call = GemmCall {
                m: rows,
                k: c,
                n,
                a: a.after_panels(g),
                c: ebuf.as_mut_ptr(),
                ldc: n,
                bias: pw_bias.map(|b| &b[g * mr..][..rows]),
                residual: std::ptr::null(),
                act: self.pointwise.activation,
            };
            // SAFETY: C is the scratch's rows × n floats; B is packed whole
            // (the GEMM needs no scratch of its own).
            unsafe { packed::gemm(self.isa, &call, &Prepacked(bpack), &mut []) };
            if split {
                let ch = g * mr;
                // SAFETY: as below.
                unsafe {
                    let at = y.add(((img * e + ch) * oh + r0) * ow);
                    sub.register_planes_split(rows, ebuf, n, &taps[ch * kh * kw..], dw_bias.map(|b| &b[ch..]), at, oh * ow);
                }
                continue;
            }
            if sub.register_rows() {
                let ch = g * mr;
                // SAFETY: rows r0..r1 of channels ch..ch + rows of image img: this
                // part's band, which no other part writes.
                unsafe {
                    let at = y.add(((img * e + ch) * oh + r0) * ow);
                    sub.register_planes(rows, ebuf, n, &taps[ch * kh * kw..], dw_bias.map(|b| &b[ch..]), at, oh * ow);
                }
                continue;
            }
            for j in 0..rows {
                let ch = g * mr + j;
                let at = ((img * e + ch) * oh + r0) * ow;
                // SAFETY: rows r0..r1 of channel ch's plane of image img: this
                // part's band, which no other part writes.
                let out = unsafe { std::slice::from_raw_parts_mut(y.add(at), (r1 - r0) * ow) };
                sub.one_plane(&ebuf[j * n..][..n], &taps[ch * kh * kw..][..kh * kw], dw_bias.map_or(0.0, |b| b[ch]), out, dws, g == 0 && j == 0);
            }
        }
    }
}

impl KernelImpl for PointwiseDepthwise {
    fn name(&self) -> String {
        format!("f32_conv1x1_dwconv2d_{}", self.isa.name())
    }

    /// Bands of output rows, image by image.
    fn work_items(&self) -> u64 {
        self.depthwise.batch * self.bands() as u64
    }

    fn scratch_bytes(&self, items: u64) -> usize {
        if items == 0 {
            return 0;
        }
        4 * self.scratch_floats().iter().sum::<usize>()
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let d = &self.depthwise;
        let want = 3 + usize::from(self.pointwise.bias) + usize::from(d.epilogue.bias);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        if self.in_channels == 0 || d.in_channels != d.out_channels || d.in_channels == 0 || self.band_rows == 0 {
            return Err(format!("fused pointwise-depthwise channels or bands are invalid: {self:?}"));
        }
        if self.pointwise.residual || d.epilogue.residual {
            return Err("fused pointwise-depthwise takes no residual".into());
        }
        // Every band reads some input row (no band of padding alone) and
        // runs the depthwise plane-at-once path.
        let fits = (0..self.bands()).all(|b| {
            let (r0, r1) = self.band(b);
            let (y0, y1) = self.input_rows(r0, r1);
            y0 < y1 && self.band_conv(r0, r1, y0, y1).planar()
        });
        if d.output.contains(&0) || !fits {
            return Err(format!("fused pointwise-depthwise needs every band to read input rows and small planes: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        // SAFETY: any bit pattern is a valid f32.
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(pre.is_empty(), "fused pointwise-depthwise scratch is not 4-byte aligned");
        let d = &self.depthwise;
        let out_len = (d.batch * d.out_channels * d.output[0] * d.output[1]) as usize;
        assert!(out_len <= io.outputs[0].len_bytes() / 4, "fused pointwise-depthwise output is too small");
        let bands = self.bands();
        for item in part.start as usize..part.end as usize {
            // SAFETY: this part owns band item % bands of image item / bands.
            unsafe { self.run_band(io, item / bands, item % bands, scratch) };
        }
    }
}

#[cfg(test)]
mod tests;
