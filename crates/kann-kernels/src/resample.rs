//! Resize by interpolation taps (f32): every output axis position reads a
//! few input positions with weights (2 for linear, 4 for cubic, more with
//! antialiasing; an unchanged axis reads its own position with weight 1),
//! and an output element is the sum over every combination of its axes'
//! taps of the product of their weights times the input element. This is
//! the separable interpolation of the ONNX spec, done in one pass. Nearest
//! resizes of any dtype use [`crate::movement::Remap`] instead.

use crate::kernel::{expect_io, KernelImpl};
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The taps of one output axis: position `k` reads input element offsets
/// `offsets[k * taps + t]` (already multiplied by the input stride) with
/// weights `weights[k * taps + t]`; a zero weight pads shorter lists. A
/// position whose `outside[k]` is set takes the extrapolation value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResizeAxis {
    pub len: u64,
    pub taps: u32,
    pub offsets: Vec<u64>,
    pub weights: Vec<f32>,
    pub outside: Vec<bool>,
}

impl ResizeAxis {
    /// An axis copied unchanged: position `k` reads `k * stride`.
    pub fn identity(len: u64, stride: u64) -> ResizeAxis {
        ResizeAxis { len, taps: 1, offsets: (0..len).map(|k| k * stride).collect(), weights: vec![1.0; len as usize], outside: vec![false; len as usize] }
    }

    /// An axis from per-position tap lists `(input index, weight)` (`None`:
    /// the extrapolation value) with input stride `stride`.
    pub fn from_taps(taps: &[Option<Vec<(usize, f64)>>], stride: u64) -> ResizeAxis {
        let width = taps.iter().flatten().map(Vec::len).max().unwrap_or(1).max(1);
        let mut axis = ResizeAxis { len: taps.len() as u64, taps: width as u32, offsets: Vec::new(), weights: Vec::new(), outside: Vec::new() };
        for t in taps {
            let list = t.as_deref().unwrap_or(&[]);
            for i in 0..width {
                let (j, w) = list.get(i).copied().unwrap_or((0, 0.0));
                axis.offsets.push(j as u64 * stride);
                axis.weights.push(w as f32);
            }
            axis.outside.push(t.is_none());
        }
        axis
    }

    /// The `(offset, weight)` taps of position `k`, `None` when outside.
    fn at(&self, k: u64) -> Option<impl Iterator<Item = (u64, f32)> + '_> {
        let k = k as usize;
        if self.outside.get(k).copied().unwrap_or(true) {
            return None;
        }
        let t = self.taps as usize;
        let r = k * t..(k + 1) * t;
        Some(self.offsets[r.clone()].iter().copied().zip(self.weights[r].iter().copied()))
    }
}

/// A tap-based f32 resize; work items are output elements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resize {
    /// `linear`, `cubic` (for the catalog name).
    pub mode: String,
    /// Output axes, outermost first.
    pub axes: Vec<ResizeAxis>,
    pub extrapolation: f32,
}

impl KernelImpl for Resize {
    fn name(&self) -> String {
        format!("f32_resize_{}_generic", self.mode)
    }

    fn work_items(&self) -> u64 {
        self.axes.iter().map(|a| a.len).product()
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        // SAFETY: this part owns these output elements; no one writes the input.
        let (out, x) = unsafe { (io.outputs[0].f32_part(part.start as usize..part.end as usize), io.inputs[0].f32()) };
        let Some((last, outer)) = self.axes.split_last() else {
            if let (Some(o), Some(&v)) = (out.first_mut(), x.first()) {
                *o = v;
            }
            return;
        };
        let row = last.len;
        if row == 0 || part.is_empty() {
            return;
        }
        let mut pos = part.start;
        let mut done = 0usize;
        let mut combos = Vec::new();
        while pos < part.end {
            let (r, k0) = (pos / row, pos % row);
            let k1 = row.min(k0 + (part.end - pos));
            let dst = &mut out[done..done + (k1 - k0) as usize];
            if self.row_combos(outer, r, &mut combos) {
                for (d, k) in dst.iter_mut().zip(k0..k1) {
                    *d = match last.at(k) {
                        None => self.extrapolation,
                        Some(taps) => taps.map(|(o, w)| w * combos.iter().map(|&(c, cw)| cw * x[(c + o) as usize]).sum::<f32>()).sum(),
                    };
                }
            } else {
                dst.fill(self.extrapolation);
            }
            done += dst.len();
            pos += k1 - k0;
        }
    }
}

impl Resize {
    /// Every `(offset, weight)` combination of the outer axes' taps for row
    /// `r` into `combos`; false when some axis is outside (extrapolation).
    fn row_combos(&self, outer: &[ResizeAxis], mut r: u64, combos: &mut Vec<(u64, f32)>) -> bool {
        combos.clear();
        combos.push((0, 1.0));
        for a in outer.iter().rev() {
            let k = r % a.len.max(1);
            r /= a.len.max(1);
            let Some(taps) = a.at(k) else { return false };
            let taps: Vec<(u64, f32)> = taps.filter(|t| t.1 != 0.0).collect();
            let prev = std::mem::take(combos);
            for (o, w) in taps {
                combos.extend(prev.iter().map(|&(c, cw)| (c + o, cw * w)));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawBuf;

    /// Bilinear 2x upsampling of a 2x2 image, half-pixel, in three parts.
    #[test]
    fn bilinear_upsample_in_parts() {
        // half_pixel 2 -> 4: positions -0.25, 0.25, 0.75, 1.25 (edges clamped).
        let taps = |s: u64| {
            ResizeAxis::from_taps(
                &[Some(vec![(0, 1.0)]), Some(vec![(0, 0.75), (1, 0.25)]), Some(vec![(0, 0.25), (1, 0.75)]), Some(vec![(1, 1.0)])],
                s,
            )
        };
        let k = Resize { mode: "linear".into(), axes: vec![ResizeAxis::identity(1, 4), taps(2), taps(1)], extrapolation: 0.0 };
        let mut x = [0.0f32, 4.0, 8.0, 12.0];
        let mut y = [0.0f32; 16];
        let (ins, outs) = ([RawBuf::from_f32(&mut x)], [RawBuf::from_f32(&mut y)]);
        for p in [0..5, 5..11, 11..16] {
            // SAFETY: live distinct buffers, one part at a time.
            unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, p, &mut []) };
        }
        let line = |a: f32, b: f32| [a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b];
        let (top, bottom) = (line(0.0, 4.0), line(8.0, 12.0));
        let mut want = Vec::new();
        for r in 0..4 {
            let (wt, wb) = [(1.0, 0.0), (0.75, 0.25), (0.25, 0.75), (0.0, 1.0)][r];
            want.extend((0..4).map(|c| wt * top[c] + wb * bottom[c]));
        }
        for (g, w) in y.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{y:?} vs {want:?}");
        }
    }

    #[test]
    fn outside_positions_take_the_extrapolation_value() {
        let k = Resize { mode: "linear".into(), axes: vec![ResizeAxis::from_taps(&[None, Some(vec![(1, 1.0)])], 1)], extrapolation: 7.0 };
        let mut x = [1.0f32, 2.0];
        let mut y = [0.0f32; 2];
        let (ins, outs) = ([RawBuf::from_f32(&mut x)], [RawBuf::from_f32(&mut y)]);
        // SAFETY: live distinct buffers.
        unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, 0..2, &mut []) };
        assert_eq!(y, [7.0, 2.0]);
    }
}
