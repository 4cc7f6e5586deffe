//! A stem convolution ([`ConvDirect`]) and the 2-D MaxPool that alone reads
//! it, as one step: the convolution's rows are computed a band at a time
//! into the cluster's scratch and pooled from there while they are in L2,
//! so the convolution's output (ResNet-50's 64×112×112, 3.2 MB; SqueezeNet
//! 1.1's 64×111×111) is never written out and read back.
//!
//! Work items are pool output rows (`N · pool_oh`); a part walks its rows
//! `band_rows` at a time, computing the convolution rows each band's windows
//! read (the rows it shares with the previous band, one for a 3×3/2 pool,
//! are moved to the front of the buffer instead) and pooling them with the
//! pool's geometry cut to those rows ([`Pool2d`]'s row bands).
//!
//! Inputs: the convolution's (X, packed W, then B if `conv.epilogue.bias`;
//! no residual). Output: the pool's Y `[N, M, pool_oh, pool_ow]`.

use crate::conv_direct::ConvDirect;
use crate::kernel::{expect_io, KernelImpl};
use crate::pool::plane2d::Pool2d;
use crate::pool::PoolKind;
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A [`ConvDirect`] whose output only `pool` reads, fused with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvPool {
    pub conv: ConvDirect,
    /// Over the convolution's output (planes = N · M).
    pub pool: Pool2d,
    /// Pool output rows per band.
    pub band_rows: u64,
}

impl ConvPool {
    fn plane(&self) -> usize {
        (self.pool.output[0] * self.pool.output[1]) as usize
    }

    /// The most convolution rows a band reads.
    fn conv_rows(&self) -> usize {
        let p = &self.pool;
        let reach = (self.band_rows.max(1) - 1) * p.strides[0] + (p.kernel[0].max(1) - 1) * p.dilations[0] + 1;
        reach.min(self.conv.output[0]) as usize
    }

    /// Floats of the convolution's band buffer: `M` planes of
    /// [`ConvPool::conv_rows`] rows.
    fn band_floats(&self) -> usize {
        self.conv.out_channels as usize * self.conv_rows() * self.conv.output[1] as usize
    }

    /// Floats of the pool's scratch for any band a part may meet (up to
    /// `band_rows` rows from any row): set-up time only.
    fn pool_floats(&self) -> usize {
        let (oh, per) = (self.pool.output[0] as usize, self.band_rows.max(1) as usize);
        let bands = (0..oh).flat_map(|r0| (r0 + 1..=(r0 + per).min(oh)).filter_map(move |r1| self.pool.rows_band(r0..r1)));
        bands.map(|(_, p)| p.scratch_floats()).max().unwrap_or(0)
    }

    /// Pool rows `rows` of image `b`, after the band `prev` (its image and
    /// convolution rows, still in the band buffer) when there was one:
    /// the convolution rows both read are moved, not computed again.
    /// Returns this band's image and convolution rows.
    ///
    /// # Safety
    /// As [`KernelImpl::run`]; this part owns those rows.
    unsafe fn run_band(&self, io: &Io, b: usize, rows: Range<usize>, prev: Option<(usize, Range<usize>)>, scratch: &mut [f32]) -> (usize, Range<usize>) {
        let (inputs, pool) = self.pool.rows_band(rows.clone()).expect("checked: every band reads a convolution row");
        let (m, ow, pw) = (self.conv.out_channels as usize, self.conv.output[1] as usize, self.pool.output[1] as usize);
        let (band, rest) = scratch.split_at_mut(self.band_floats());
        let (conv_scratch, pool_scratch) = rest.split_at_mut(self.conv.scratch_bytes(self.conv_rows() as u64) / 4);
        // Each channel's rows at a fixed stride, so kept rows move within their plane.
        let plane = self.conv_rows() * ow;
        assert!(inputs.len() <= self.conv_rows(), "conv pool band rows");
        let kept = match prev {
            Some((pb, p)) if pb == b && p.start <= inputs.start && inputs.start < p.end => {
                let (shift, kept) = (inputs.start - p.start, p.end.min(inputs.end) - inputs.start);
                for c in 0..m {
                    band.copy_within(c * plane + shift * ow..c * plane + (shift + kept) * ow, c * plane);
                }
                kept
            }
            _ => 0,
        };
        // The convolution copies at most its own band of rows at a time (its
        // scratch is sized for that many): a taller pool band runs it in turns.
        let per_call = self.conv.band_rows().max(1);
        for oy in (inputs.start + kept..inputs.end).step_by(per_call) {
            let rows = per_call.min(inputs.end - oy);
            // SAFETY: the band buffer holds m planes of conv_rows rows, these
            // among them; the conv scratch holds its scratch for `rows` rows.
            unsafe { self.conv.rows_into(io, b, 0..self.conv.group.max(1) as usize, oy, rows, band.as_mut_ptr(), [plane, inputs.start], conv_scratch) };
        }
        let y = &io.outputs[0];
        let at = b * m * self.plane() + rows.start * pw;
        assert!(at + (m - 1) * self.plane() + rows.len() * pw <= y.len_bytes() / 4, "conv pool output is too small");
        // SAFETY: inside Y (asserted); this part owns rows `rows` of image b's planes.
        unsafe { pool.run_planes(&band[..(m - 1) * plane + inputs.len() * ow], [plane, self.plane()], (y.as_ptr() as *mut f32).add(at), pool_scratch) };
        (b, inputs)
    }

}

impl KernelImpl for ConvPool {
    fn name(&self) -> String {
        format!("f32_conv2d_direct_maxpool_{}", self.conv.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.conv.batch * self.pool.output[0]
    }

    fn scratch_bytes(&self, items: u64) -> usize {
        if items == 0 {
            return 0;
        }
        4 * (self.band_floats() + self.pool_floats()) + self.conv.scratch_bytes(self.conv_rows() as u64)
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let c = &self.conv;
        let want = 2 + usize::from(c.epilogue.bias);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        c.check(n_inputs, 1)?;
        self.pool.check(1, 1)?;
        let p = &self.pool;
        if c.epilogue.residual || p.kind != PoolKind::Max || p.planes != c.batch * c.out_channels || p.input != c.output || self.band_rows == 0 {
            return Err(format!("conv pool needs a MaxPool over the convolution's output, no residual and bands of rows: {self:?}"));
        }
        if (0..p.output[0] as usize).any(|r| p.rows_band(r..r + 1).is_none()) {
            return Err(format!("conv pool windows must each read a convolution row: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        assert!(self.conv.isa.available(), "the conv pool needs {}, which this CPU lacks", self.conv.isa.name());
        // SAFETY: any bit pattern is a valid f32 (the conv's offsets are
        // aligned again inside its own scratch).
        let (pre, scratch, _) = unsafe { scratch.align_to_mut::<f32>() };
        assert!(pre.is_empty(), "conv pool scratch is not 4-byte aligned");
        let (oh, per) = (self.pool.output[0] as usize, self.band_rows.max(1) as usize);
        let (mut item, end) = (part.start as usize, part.end as usize);
        if oh == 0 {
            return;
        }
        let mut prev = None;
        while item < end {
            let (b, r0) = (item / oh, item % oh);
            let r1 = (r0 + per).min(oh).min(r0 + end - item);
            // SAFETY: the caller's contract; this part owns rows r0..r1 of image b.
            prev = Some(unsafe { self.run_band(io, b, r0..r1, prev, scratch) });
            item += r1 - r0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;
    use crate::conv_gemm::pack_conv_gemm_weights;
    use crate::packed::Isa;
    use crate::pool::Pool;
    use crate::Epilogue;

    /// A random stem (1-4 channels, 3×3 to 7×7, strides 1-2, pads) and a
    /// random MaxPool over its output (2-3 wide windows, strides 1-2, pads,
    /// ceil mode), at batch 1 or 2.
    fn random(rng: &mut Rng, isa: Isa) -> (ConvDirect, Pool) {
        let (c, m, kk, s) = (1 + rng.below(4), 1 + rng.below(20), 3 + 2 * rng.below(3), 1 + rng.below(2));
        // Tall enough that the convolution's output holds a pool window.
        let (h, w) = (kk + 6 + rng.below(40), 2 * kk + 16 + rng.below(60));
        let p = rng.below(kk / 2 + 1);
        let out = |i: u64| (i + 2 * p - kk) / s + 1;
        let conv = ConvDirect {
            batch: 1 + rng.below(2),
            in_channels: c,
            out_channels: m,
            group: 1,
            input: [h, w],
            kernel: [kk, kk],
            strides: [s, s],
            dilations: [1, 1],
            pad_begin: [p, p],
            output: [out(h), out(w)],
            epilogue: Epilogue { bias: rng.below(2) == 1, residual: false, activation: crate::Activation::Relu },
            isa,
        };
        let (pk, ps) = (2 + rng.below(2), 1 + rng.below(2));
        let (pb, pe) = (rng.below(pk), rng.below(pk));
        let ceil = rng.below(2) == 1;
        let pool_out = |i: u64| {
            let span = i + pb + pe - pk;
            span / ps + 1 + u64::from(ceil && span % ps != 0 && (span / ps + 1) * ps < i + pb)
        };
        let pool = Pool {
            kind: PoolKind::Max,
            planes: conv.batch * m,
            input: conv.output.to_vec(),
            kernel: vec![pk, pk],
            strides: vec![ps, ps],
            dilations: vec![1, 1],
            pad_begin: vec![pb, pb],
            pad_end: vec![pe, pe],
            output: vec![pool_out(conv.output[0]), pool_out(conv.output[1])],
            indices: None,
        };
        (conv, pool)
    }

    #[test]
    fn matches_the_conv_then_the_pool() {
        // The fused step against the two steps it replaces (exactly: the
        // same tiles and the same maxima), in 1-3 parts, bands of 1-5 rows.
        let mut rng = Rng(41);
        let mut fused_cases = 0;
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for case in 0..40 {
                let (conv, pool) = random(&mut rng, isa);
                let fast_pool = Pool2d::from_pool(&pool, isa).unwrap();
                let fused = ConvPool { conv: conv.clone(), pool: fast_pool, band_rows: 1 + rng.below(5) };
                if fused.check(2 + usize::from(conv.epilogue.bias), 1).is_err() {
                    continue;
                }
                fused_cases += 1;
                let (c, m) = (conv.in_channels as usize, conv.out_channels as usize);
                let x = rng.vec(conv.batch as usize * c * (conv.input[0] * conv.input[1]) as usize);
                let w = pack_conv_gemm_weights(&rng.vec(m * c * (conv.kernel[0] * conv.kernel[1]) as usize), m, 1, isa, conv.k_block());
                let mut ins = vec![x, w];
                if conv.epilogue.bias {
                    ins.push(rng.vec(m));
                }
                let conv_len = conv.batch as usize * m * (conv.output[0] * conv.output[1]) as usize;
                let y_conv = run_parts(&conv, &ins, &[conv_len], 1).remove(0);
                let pool_len = pool.planes as usize * (pool.output[0] * pool.output[1]) as usize;
                let want = run_parts(&pool, &[y_conv], &[pool_len], 1).remove(0);
                for parts in [1, 2, 3] {
                    let got = run_parts(&fused, &ins, &[pool_len], parts).remove(0);
                    assert_eq!(got, want, "case {case}: {fused:?} in {parts} parts");
                }
            }
        }
        assert!(fused_cases >= 30, "only {fused_cases} cases could fuse");
    }

    #[test]
    fn bands_taller_than_the_convolution_runs_at_once() {
        // Pool bands whose convolution rows outnumber the rows the
        // convolution copies at a time (`ConvDirect::band_rows`: its copy of
        // 2000-wide rows fills its 256 KiB in a few rows). ShuffleNet's stem
        // on AVX-512 (32-column tiles widen the copy) met this.
        let mut rng = Rng(47);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            let conv = ConvDirect { batch: 1, in_channels: 4, out_channels: 5, group: 1, input: [40, 2000], kernel: [3, 3], strides: [1, 1], dilations: [1, 1], pad_begin: [1, 1], output: [40, 2000], epilogue: Epilogue { bias: true, residual: false, activation: crate::Activation::Relu }, isa };
            let pool = Pool { kind: PoolKind::Max, planes: 5, input: vec![40, 2000], kernel: vec![3, 3], strides: vec![2, 2], dilations: vec![1, 1], pad_begin: vec![1, 1], pad_end: vec![1, 1], output: vec![20, 1000], indices: None };
            let fused = ConvPool { conv: conv.clone(), pool: Pool2d::from_pool(&pool, isa).unwrap(), band_rows: 12 };
            assert!(fused.conv_rows() > conv.band_rows(), "{} conv rows, {} a copy", fused.conv_rows(), conv.band_rows());
            let x = rng.vec(4 * 40 * 2000);
            let w = pack_conv_gemm_weights(&rng.vec(5 * 4 * 9), 5, 1, isa, conv.k_block());
            let ins = vec![x, w, rng.vec(5)];
            let y_conv = run_parts(&conv, &ins, &[5 * 40 * 2000], 1).remove(0);
            let want = run_parts(&pool, &[y_conv], &[5 * 20 * 1000], 1).remove(0);
            for parts in [1, 2] {
                assert_eq!(run_parts(&fused, &ins, &[5 * 20 * 1000], parts).remove(0), want, "{isa:?} in {parts} parts");
            }
        }
    }

    /// Microseconds of the stems and their pools, apart and fused with
    /// bands of several heights; not a test of correctness:
    /// `cargo test --release -p kann-kernels --lib conv_pool::tests::fused_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn fused_timing() {
        let isa = Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic);
        let mut rng = Rng(5);
        // (kernel, pad, conv out, pool pad, pool out): SqueezeNet 1.1's, ResNet-50's.
        for (kk, p, co, pp, po) in [(3u64, 0u64, 111u64, 0u64, 55u64), (7, 3, 112, 1, 56)] {
            let conv = ConvDirect { batch: 1, in_channels: 3, out_channels: 64, group: 1, input: [224, 224], kernel: [kk, kk], strides: [2, 2], dilations: [1, 1], pad_begin: [p, p], output: [co, co], epilogue: Epilogue { bias: true, residual: false, activation: crate::Activation::Relu }, isa };
            let pool = Pool { kind: PoolKind::Max, planes: 64, input: vec![co, co], kernel: vec![3, 3], strides: vec![2, 2], dilations: vec![1, 1], pad_begin: vec![pp, pp], pad_end: vec![pp, pp], output: vec![po, po], indices: None };
            let fast = Pool2d::from_pool(&pool, isa).unwrap();
            let w = pack_conv_gemm_weights(&rng.vec(64 * 3 * (kk * kk) as usize), 64, 1, isa, conv.k_block());
            let mut ins = vec![rng.vec(3 * 224 * 224), w, rng.vec(64)];
            let conv_us = time_kernel(&conv, &mut ins, (64 * co * co) as usize);
            let pool_us = time_kernel(&fast, &mut [rng.vec((64 * co * co) as usize)], (64 * po * po) as usize);
            print!("stem {kk}x{kk} -> {co}, pool -> {po}: conv {conv_us:.0} + pool {pool_us:.0} us; fused");
            for band_rows in [2, 4, 8, 16] {
                let fused = ConvPool { conv: conv.clone(), pool: fast.clone(), band_rows };
                print!(" {band_rows}: {:.0}", time_kernel(&fused, &mut ins, (64 * po * po) as usize));
            }
            // The convolution alone into a band buffer, 9 rows at a time.
            let mut band = vec![0.0f32; (64 * 9 * co) as usize];
            let mut scratch = vec![0.0f32; conv.scratch_bytes(9) / 4];
            let mut out = vec![0.0f32; 1];
            let bufs: Vec<crate::buf::RawBuf> = ins.iter_mut().map(|v| crate::buf::RawBuf::from_f32(v)).collect();
            let outs = [crate::buf::RawBuf::from_f32(&mut out)];
            let io = Io { inputs: &bufs, outputs: &outs };
            let mut best = f64::INFINITY;
            for _ in 0..7 {
                let t = std::time::Instant::now();
                for r0 in (0..co as usize).step_by(8) {
                    let rows = 9.min(co as usize - r0);
                    // SAFETY: the band buffer holds 64 planes of 9 rows.
                    unsafe { conv.rows_into(&io, 0, 0..conv.group.max(1) as usize, r0, rows, band.as_mut_ptr(), [9 * co as usize, r0], &mut scratch) };
                }
                best = best.min(t.elapsed().as_secs_f64() * 1e6);
            }
            println!(" us; conv alone in 9-row bands {best:.0} us");
        }
    }

    #[test]
    fn refuses_what_it_cannot_fuse() {
        let mut rng = Rng(43);
        let (conv, pool) = random(&mut rng, Isa::Generic);
        let fused = ConvPool { conv: conv.clone(), pool: Pool2d::from_pool(&pool, Isa::Generic).unwrap(), band_rows: 4 };
        let n = 2 + usize::from(conv.epilogue.bias);
        assert!(fused.check(n, 1).is_ok(), "{fused:?}");
        let average = Pool2d { kind: PoolKind::Average { count_include_pad: false }, ..fused.pool.clone() };
        let residual = ConvDirect { epilogue: Epilogue { residual: true, ..conv.epilogue }, ..conv.clone() };
        let other_input = Pool2d { input: [conv.output[0] + 1, conv.output[1]], ..fused.pool.clone() };
        for bad in [ConvPool { pool: average, ..fused.clone() }, ConvPool { conv: residual, ..fused.clone() }, ConvPool { pool: other_input, ..fused.clone() }, ConvPool { band_rows: 0, ..fused.clone() }] {
            assert!(bad.check(n + usize::from(bad.conv.epilogue.residual), 1).is_err(), "{bad:?}");
        }
        assert_eq!(fused.name(), "f32_conv2d_direct_maxpool_generic");
    }
}
