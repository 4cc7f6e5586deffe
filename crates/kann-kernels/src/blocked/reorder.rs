//! The layout changes at the edges of a channel-blocked region: NCHW →
//! NCHW8c before its first layer, NCHW8c → NCHW after its last.
//!
//! With AVX2 a block's 8 channel planes are read 8 pixels at a time and
//! transposed in registers (8 rows of 8), so each side is read and written
//! in whole vectors; the last `pixels % 8` pixels go one by one.
//!
//! Input: X, output: Y, both `[N][C][pixels]` in their layout. Work items
//! are the blocks of 8 channels of every image.

use super::BLOCK;
use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Which way a [`Reorder`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// NCHW → NCHW8c.
    ToBlocked,
    /// NCHW8c → NCHW.
    ToPlanar,
}

/// A layout change between NCHW and NCHW8c; `channels` a multiple of 8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reorder {
    pub batch: u64,
    pub channels: u64,
    /// `H · W`.
    pub pixels: u64,
    pub direction: Direction,
    pub isa: Isa,
}

impl KernelImpl for Reorder {
    fn name(&self) -> String {
        let to = match self.direction {
            Direction::ToBlocked => "nchw8c",
            Direction::ToPlanar => "nchw",
        };
        format!("f32_reorder_to_{to}_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.batch * self.channels / BLOCK as u64
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)?;
        if self.channels == 0 || self.channels % BLOCK as u64 != 0 {
            return Err(format!("a layout change needs channels in multiples of {BLOCK}: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let span = self.pixels as usize * BLOCK;
        let (p0, p1) = (part.start as usize, part.end as usize);
        // SAFETY: the input is not written during the step (the run contract).
        let x = unsafe { io.inputs[0].f32() };
        // SAFETY: this part owns blocks p0..p1, each `span` floats in either layout.
        let y = unsafe { io.outputs[0].f32_part(p0 * span..p1 * span) };
        let x = &x[p0 * span..p1 * span];
        for (xb, yb) in x.chunks_exact(span).zip(y.chunks_exact_mut(span)) {
            self.block(xb, yb);
        }
    }
}

impl Reorder {
    /// One block of 8 channels: 8 planes ↔ one plane of 8-float pixels.
    fn block(&self, x: &[f32], y: &mut [f32]) {
        let hw = self.pixels as usize;
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if self.isa != Isa::Generic && Isa::Avx2.available() {
            // SAFETY: the CPU has AVX2; both slices hold 8 · hw floats.
            done = unsafe { avx2_block(self.direction, x, y, hw) };
        }
        for p in done..hw {
            for lane in 0..BLOCK {
                match self.direction {
                    Direction::ToBlocked => y[p * BLOCK + lane] = x[lane * hw + p],
                    Direction::ToPlanar => y[lane * hw + p] = x[p * BLOCK + lane],
                }
            }
        }
    }
}

/// The whole groups of 8 pixels of one block; returns the pixels done.
///
/// # Safety
/// AVX2; `x` and `y` hold `8 · hw` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_block(direction: Direction, x: &[f32], y: &mut [f32], hw: usize) -> usize {
    use std::arch::x86_64::*;
    assert!(x.len() >= BLOCK * hw && y.len() >= BLOCK * hw);
    let whole = hw - hw % BLOCK;
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    for p in (0..whole).step_by(BLOCK) {
        // Planar side: row i is channel i's pixels p..p + 8 (at i · hw + p);
        // blocked side: row i is pixel p + i's 8 channels (at (p + i) · 8).
        // SAFETY: both rows of 8 lie inside the block (p + 8 <= hw).
        unsafe {
            match direction {
                Direction::ToBlocked => {
                    let r = crate::avx2::transpose8(std::array::from_fn(|i| _mm256_loadu_ps(xp.add(i * hw + p))));
                    r.iter().enumerate().for_each(|(i, v)| _mm256_storeu_ps(yp.add((p + i) * BLOCK), *v));
                }
                Direction::ToPlanar => {
                    let r = crate::avx2::transpose8(std::array::from_fn(|i| _mm256_loadu_ps(xp.add((p + i) * BLOCK))));
                    r.iter().enumerate().for_each(|(i, v)| _mm256_storeu_ps(yp.add(i * hw + p), *v));
                }
            }
        }
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocked::{to_blocked, to_planar};
    use crate::conv::testutil::*;

    #[test]
    fn both_ways_match_the_portable_reorder_on_random_planes() {
        let mut rng = Rng(21);
        for case in 0..40u64 {
            let (batch, channels, pixels) = (1 + rng.below(2), 8 * (1 + rng.below(5)), 1 + rng.below(70) + 100 * (case % 3 / 2));
            let (c, hw) = (channels as usize, pixels as usize);
            let x = rng.vec(batch as usize * c * hw);
            let blocked: Vec<f32> = x.chunks(c * hw).flat_map(|i| to_blocked(i, c, hw)).collect();
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let to = Reorder { batch, channels, pixels, direction: Direction::ToBlocked, isa };
                let back = Reorder { direction: Direction::ToPlanar, ..to.clone() };
                for parts in [1, 2, 3] {
                    assert_eq!(run_parts(&to, std::slice::from_ref(&x), &[x.len()], parts)[0], blocked);
                    assert_eq!(run_parts(&back, std::slice::from_ref(&blocked), &[x.len()], parts)[0], x);
                }
            }
            assert_eq!(blocked.chunks(c * hw).flat_map(|i| to_planar(i, c, hw)).collect::<Vec<_>>(), x);
        }
    }

    #[test]
    fn names_and_check() {
        let k = Reorder { batch: 2, channels: 24, pixels: 9, direction: Direction::ToPlanar, isa: Isa::Avx2 };
        assert_eq!(k.name(), "f32_reorder_to_nchw_avx2");
        assert_eq!(k.work_items(), 6);
        assert!(k.check(1, 1).is_ok());
        assert!(Reorder { channels: 20, ..k }.check(1, 1).unwrap_err().contains("multiples of 8"));
    }
}
