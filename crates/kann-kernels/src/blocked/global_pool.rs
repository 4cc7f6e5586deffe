//! Global average pooling of a channel-blocked tensor (EfficientNet's
//! squeeze-and-excitation, a network's last pool): each block's pixels are
//! 8-float vectors, summed lane-wise. The output
//! `[N, C, 1, 1]` has the same bytes in NCHW and NCHW8c.
//!
//! Input: X `[N][C/8][pixels][8]`. Output: Y `[N][C]`. Work items are the
//! blocks of every image.

use super::BLOCK;
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A global average pool over NCHW8c; `channels` a multiple of 8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockedGlobalPool {
    pub batch: u64,
    pub channels: u64,
    pub pixels: u64,
    pub isa: Isa,
}

impl KernelImpl for BlockedGlobalPool {
    fn name(&self) -> String {
        format!("f32_globalavgpool_nchw8c_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.batch * self.channels / BLOCK as u64
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        if self.channels == 0 || self.channels % BLOCK as u64 != 0 || self.pixels == 0 {
            return Err(format!("a blocked global pool needs channels in multiples of {BLOCK} and pixels: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let span = self.pixels as usize * BLOCK;
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: the input is not written during the step (the run contract).
        let x = unsafe { io.inputs[0].f32() };
        // SAFETY: this part owns the 8 outputs of each of its blocks.
        let y = unsafe { io.outputs[0].f32_part(p0 * BLOCK..p1 * BLOCK) };
        let x = &x[p0 * span..p1 * span];
        for (xb, yb) in x.chunks_exact(span).zip(y.chunks_exact_mut(BLOCK)) {
            #[cfg(target_arch = "x86_64")]
            if self.isa != Isa::Generic && Isa::Avx2.available() {
                // SAFETY: the CPU has AVX2.
                unsafe { avx2_block(xb, yb) };
                continue;
            }
            let mut acc = [0.0f32; BLOCK];
            for px in xb.chunks_exact(BLOCK) {
                acc.iter_mut().zip(px).for_each(|(a, &v)| *a += v);
            }
            let n = self.pixels as f32;
            yb.iter_mut().zip(acc).for_each(|(o, a)| *o = a / n);
        }
    }
}

/// One block: four accumulators over the pixels, then combined.
///
/// # Safety
/// AVX2; `x` holds whole pixels of 8 floats, `y` 8 floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_block(x: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let pixels = x.len() / BLOCK;
    assert!(y.len() >= BLOCK && pixels > 0);
    let mut acc = [_mm256_setzero_ps(); 4];
    for (i, px) in x.chunks_exact(BLOCK).enumerate() {
        // SAFETY: a whole pixel of 8 floats.
        acc[i % 4] = _mm256_add_ps(acc[i % 4], unsafe { _mm256_loadu_ps(px.as_ptr()) });
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let s = _mm256_div_ps(sum, _mm256_set1_ps(pixels as f32));
    // SAFETY: y holds 8 floats.
    unsafe { _mm256_storeu_ps(y.as_mut_ptr(), s) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocked::to_blocked;
    use crate::conv::testutil::*;

    #[test]
    fn matches_the_plane_means() {
        let mut rng = Rng(31);
        for _ in 0..30 {
            let (batch, channels, pixels) = (1 + rng.below(2), 8 * (1 + rng.below(6)), 1 + rng.below(60));
            let (c, hw) = (channels as usize, pixels as usize);
            let x = rng.vec(batch as usize * c * hw);
            let blocked: Vec<f32> = x.chunks(c * hw).flat_map(|i| to_blocked(i, c, hw)).collect();
            let want: Vec<f32> = x.chunks(hw).map(|p| p.iter().sum::<f32>() / hw as f32).collect();
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let k = BlockedGlobalPool { batch, channels, pixels, isa };
                for parts in [1, 2, 3] {
                    assert_close(&run_parts(&k, std::slice::from_ref(&blocked), &[want.len()], parts)[0], &want, 1e-5);
                }
            }
        }
    }

    #[test]
    fn names_and_check() {
        let k = BlockedGlobalPool { batch: 1, channels: 16, pixels: 49, isa: Isa::Avx2 };
        assert_eq!(k.name(), "f32_globalavgpool_nchw8c_avx2");
        assert_eq!(k.work_items(), 2);
        assert!(BlockedGlobalPool { channels: 4, ..k }.check(1, 1).is_err());
    }
}
