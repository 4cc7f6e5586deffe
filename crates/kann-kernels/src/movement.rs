//! Data-movement kernels. They only move elements, so they work on raw
//! bytes and every dtype runs through them by its element size (1, 2, 4 or
//! 8 bytes):
//!
//! - [`Copy`]: a plain byte copy (constant graph outputs, views of constants);
//! - [`Remap`]: the general strided / index-table gather (Transpose, Slice,
//!   Expand, Tile, Pad, Gather with constant indices, DepthToSpace,
//!   SpaceToDepth, nearest Resize), see [`remap`];
//! - [`Concat`] and [`Split`]: slabs joined along an axis, or cut apart.
//!
//! Work items are output elements (bytes for [`Copy`]; input elements for
//! [`Split`], each of which lands in exactly one output), so a part is a
//! contiguous range of the buffer it owns.

mod remap;

pub use remap::{AxisMap, Remap, RemapAxis, RemapOp, FILL};

use crate::kernel::{expect_io, KernelImpl};
use crate::{ElemType, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Copies `bytes` bytes from input 0 to output 0; work items are bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Copy {
    pub bytes: u64,
}

impl KernelImpl for Copy {
    fn name(&self) -> String {
        "u8_copy_bytes_generic".into()
    }

    fn work_items(&self) -> u64 {
        self.bytes
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let r = part.start as usize..part.end as usize;
        if r.is_empty() || io.inputs[0].same_as(&io.outputs[0]) {
            return;
        }
        // SAFETY: this part owns these output bytes; no one writes the input.
        let (out, src) = unsafe { (io.outputs[0].bytes_part(r.clone()), io.inputs[0].bytes()) };
        out.copy_from_slice(&src[r]);
    }
}

/// Calls `f(slab, offset_in_slab_buffer, offset_in_part, len)` (all in
/// elements) for every piece of the joined layout within `part`: the joined
/// buffer is `outer` rows, each the concatenation of one `chunks[i]`-long
/// slab of every buffer `i`.
fn for_each_piece(outer: u64, chunks: &[u64], part: Range<u64>, mut f: impl FnMut(usize, u64, u64, u64)) {
    let row: u64 = chunks.iter().sum();
    if row == 0 || part.is_empty() {
        return;
    }
    let last_row = ((part.end - 1) / row).min(outer.saturating_sub(1));
    for o in part.start / row..=last_row {
        let mut lo_slab = o * row;
        for (i, &c) in chunks.iter().enumerate() {
            let (lo, hi) = (lo_slab.max(part.start), (lo_slab + c).min(part.end));
            if lo < hi {
                f(i, o * c + (lo - lo_slab), lo - part.start, hi - lo);
            }
            lo_slab += c;
        }
    }
}

/// Joins the inputs along an axis: the output is `outer` rows, each the
/// concatenation of `chunks[i]` elements of every input `i`. Work items are
/// output elements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Concat {
    pub elem: ElemType,
    /// Product of the output dims before the axis.
    pub outer: u64,
    /// Per input, its dim on the axis times the product of the dims after it.
    pub chunks: Vec<u64>,
}

impl KernelImpl for Concat {
    fn name(&self) -> String {
        format!("{}_concat_slabs_generic", self.elem.name())
    }

    fn work_items(&self) -> u64 {
        self.outer * self.chunks.iter().sum::<u64>()
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, self.chunks.len()..self.chunks.len() + 1, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let es = self.elem.size();
        let bytes = |r: Range<u64>| r.start as usize * es..r.end as usize * es;
        // SAFETY: this part owns these output elements (the run contract).
        let out = unsafe { io.outputs[0].bytes_part(bytes(part.clone())) };
        for_each_piece(self.outer, &self.chunks, part, |i, src, dst, len| {
            // SAFETY: no one writes an input during the step.
            let x = unsafe { io.inputs[i].bytes() };
            out[bytes(dst..dst + len)].copy_from_slice(&x[bytes(src..src + len)]);
        });
    }
}

/// Cuts the input along an axis: the input is `outer` rows, each the
/// concatenation of `chunks[i]` elements of every output `i`. Work items
/// are input elements (each goes to exactly one output).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub elem: ElemType,
    /// Product of the input dims before the axis.
    pub outer: u64,
    /// Per output, its dim on the axis times the product of the dims after it.
    pub chunks: Vec<u64>,
}

impl KernelImpl for Split {
    fn name(&self) -> String {
        format!("{}_split_slabs_generic", self.elem.name())
    }

    fn work_items(&self) -> u64 {
        self.outer * self.chunks.iter().sum::<u64>()
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, self.chunks.len())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let es = self.elem.size();
        let bytes = |r: Range<u64>| r.start as usize * es..r.end as usize * es;
        // SAFETY: no one writes the input during the step.
        let x = unsafe { io.inputs[0].bytes() };
        let start = part.start;
        for_each_piece(self.outer, &self.chunks, part, |i, dst, src, len| {
            // SAFETY: input elements `part` map one-to-one onto these output
            // elements, so no other part writes them.
            let out = unsafe { io.outputs[i].bytes_part(bytes(dst..dst + len)) };
            out.copy_from_slice(&x[bytes(start + src..start + src + len)]);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawBuf;

    /// Runs a kernel over `parts` (each run separately) on byte buffers.
    fn run_parts(k: &dyn KernelImpl, inputs: &mut [Vec<u8>], outputs: &mut [Vec<u8>], parts: &[Range<u64>]) {
        let ins: Vec<RawBuf> = inputs.iter_mut().map(|b| RawBuf::from_bytes(b)).collect();
        let outs: Vec<RawBuf> = outputs.iter_mut().map(|b| RawBuf::from_bytes(b)).collect();
        for p in parts {
            // SAFETY: live distinct buffers; parts run one after the other.
            unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, p.clone(), &mut []) };
        }
    }

    /// Splits `0..n` into three ranges at pseudo-random points.
    fn three_parts(n: u64, seed: u64) -> Vec<Range<u64>> {
        let a = if n == 0 { 0 } else { seed % (n + 1) };
        let b = a + if n == a { 0 } else { (seed / 7) % (n - a + 1) };
        vec![0..a, a..b, b..n]
    }

    #[test]
    fn copy_in_parts() {
        let src: Vec<u8> = (0..100).collect();
        let mut outs = vec![vec![0u8; 100]];
        run_parts(&Copy { bytes: 100 }, &mut [src.clone()], &mut outs, &three_parts(100, 37));
        assert_eq!(outs[0], src);
    }

    #[test]
    fn concat_then_split_round_trips() {
        // Three i16 inputs [2, c_i, 3] joined along axis 1.
        let (outer, inner, cs) = (2u64, 3u64, [1u64, 4, 2]);
        let inputs: Vec<Vec<u8>> = cs.iter().enumerate().map(|(i, &c)| (0..outer * c * inner * 2).map(|b| (b as u8).wrapping_mul(3).wrapping_add(i as u8 * 50)).collect()).collect();
        let chunks: Vec<u64> = cs.iter().map(|c| c * inner).collect();
        let total: u64 = outer * chunks.iter().sum::<u64>();
        for seed in [0u64, 5, 13, 29, 41] {
            let k = Concat { elem: ElemType::F16, outer, chunks: chunks.clone() };
            let mut joined = vec![vec![0u8; total as usize * 2]];
            run_parts(&k, &mut inputs.clone(), &mut joined, &three_parts(total, seed));
            // Naive: row by row.
            let mut want = Vec::new();
            for o in 0..outer as usize {
                for (i, &c) in chunks.iter().enumerate() {
                    let c = c as usize * 2;
                    want.extend_from_slice(&inputs[i][o * c..(o + 1) * c]);
                }
            }
            assert_eq!(joined[0], want);
            let s = Split { elem: ElemType::F16, outer, chunks: chunks.clone() };
            let mut back: Vec<Vec<u8>> = inputs.iter().map(|b| vec![0u8; b.len()]).collect();
            run_parts(&s, &mut joined, &mut back, &three_parts(total, seed * 3 + 1));
            assert_eq!(back, inputs);
        }
    }
}
