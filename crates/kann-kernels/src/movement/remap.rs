//! The general gather: output element `(k_0, …, k_{r-1})` copies input
//! element `Σ_a map_a(k_a)` (an element offset), or the fill value where
//! some axis says [`FILL`]. Each axis maps its position either affinely
//! (`start + k * stride`: Transpose, Slice, Expand, Tile, DepthToSpace…)
//! or through a table (Gather indices, Pad's reflect/edge/wrap borders,
//! nearest Resize). [`Remap::new`] drops size-1 axes and merges axes that
//! together stay affine, so contiguous runs become `memcpy`s.

use crate::kernel::{expect_io, KernelImpl};
use crate::{ElemType, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A table entry meaning "the fill value" instead of an input element.
pub const FILL: i64 = i64::MIN;

/// How positions along one output axis map to input element offsets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AxisMap {
    /// Position `k` reads offset `start + k * stride`.
    Affine { start: i64, stride: i64 },
    /// Position `k` reads offset `table[k]` ([`FILL`]: the fill value).
    Table(Vec<i64>),
}

impl AxisMap {
    /// The offset of position `k` ([`FILL`] for the fill value).
    #[inline]
    fn at(&self, k: u64) -> i64 {
        match self {
            AxisMap::Affine { start, stride } => start + k as i64 * stride,
            AxisMap::Table(t) => t.get(k as usize).copied().unwrap_or(FILL),
        }
    }
}

/// One output axis: its length and its map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemapAxis {
    pub len: u64,
    pub map: AxisMap,
}

impl RemapAxis {
    pub fn affine(len: u64, start: i64, stride: i64) -> RemapAxis {
        RemapAxis { len, map: AxisMap::Affine { start, stride } }
    }

    pub fn table(table: Vec<i64>) -> RemapAxis {
        RemapAxis { len: table.len() as u64, map: AxisMap::Table(table) }
    }
}

/// Which op a [`Remap`] implements (for its catalog name only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemapOp {
    Transpose,
    Slice,
    Expand,
    Tile,
    Pad,
    Gather,
    DepthToSpace,
    SpaceToDepth,
    ResizeNearest,
    Fill,
}

/// The general gather; work items are output elements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Remap {
    pub elem: ElemType,
    pub op: RemapOp,
    /// Output axes, outermost first (at least one).
    pub axes: Vec<RemapAxis>,
    /// The fill element's little-endian bytes (`elem.size()` of them).
    pub fill: Vec<u8>,
}

impl Remap {
    /// A remap over `axes` (the output's axes in order), simplified: size-1
    /// axes are folded away, tables that are arithmetic progressions become
    /// affine, and neighbouring affine axes that form one progression merge.
    pub fn new(elem: ElemType, op: RemapOp, axes: Vec<RemapAxis>, fill: Vec<u8>) -> Remap {
        Remap { elem, op, axes: simplify(axes), fill }
    }

    /// Whether this copies the first `n` input elements unchanged (a view).
    pub fn is_identity(&self, n: u64) -> bool {
        match self.axes.as_slice() {
            [RemapAxis { len, map: AxisMap::Affine { start: 0, stride } }] => *len == n && (*stride == 1 || n <= 1),
            _ => n == 0 && self.work_items() == 0,
        }
    }

    /// Runs the part with `N`-byte elements.
    fn run_n<const N: usize>(&self, src: &[u8], out: &mut [u8], part: Range<u64>) {
        let mut fill = [0u8; N];
        if let Some(f) = self.fill.get(..N) {
            fill.copy_from_slice(f);
        }
        let Some((last, outer)) = self.axes.split_last() else {
            // Rank 0: the single element at offset 0.
            if !part.is_empty() {
                out[..N].copy_from_slice(&src[..N]);
            }
            return;
        };
        let row = last.len;
        if row == 0 || part.is_empty() {
            return;
        }
        let mut idx = unravel(part.start / row, outer);
        let (mut pos, mut done) = (part.start, 0usize);
        while pos < part.end {
            let k0 = pos % row;
            let k1 = row.min(k0 + (part.end - pos));
            let n = (k1 - k0) as usize;
            let dst = &mut out[done * N..(done + n) * N];
            match row_base(outer, &idx) {
                Some(base) => copy_row::<N>(src, dst, base, &last.map, k0, fill),
                None => dst.chunks_exact_mut(N).for_each(|d| d.copy_from_slice(&fill)),
            }
            done += n;
            pos += k1 - k0;
            advance(&mut idx, outer);
        }
    }
}

impl KernelImpl for Remap {
    fn name(&self) -> String {
        let op = match self.op {
            RemapOp::Transpose => "transpose",
            RemapOp::Slice => "slice",
            RemapOp::Expand => "expand",
            RemapOp::Tile => "tile",
            RemapOp::Pad => "pad",
            RemapOp::Gather => "gather",
            RemapOp::DepthToSpace => "depthtospace",
            RemapOp::SpaceToDepth => "spacetodepth",
            RemapOp::ResizeNearest => "resize_nearest",
            RemapOp::Fill => "fill",
        };
        format!("{}_{op}_remap_generic", self.elem.name())
    }

    fn work_items(&self) -> u64 {
        self.axes.iter().map(|a| a.len).product()
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let es = self.elem.size();
        // SAFETY: this part owns these output elements (the run contract);
        // no one writes the input during the step.
        let (out, src) = unsafe { (io.outputs[0].bytes_part(part.start as usize * es..part.end as usize * es), io.inputs[0].bytes()) };
        match es {
            1 => self.run_n::<1>(src, out, part),
            2 => self.run_n::<2>(src, out, part),
            4 => self.run_n::<4>(src, out, part),
            _ => self.run_n::<8>(src, out, part),
        }
    }
}

/// The multi-index of row `r` over the `outer` axes.
fn unravel(mut r: u64, outer: &[RemapAxis]) -> Vec<u64> {
    let mut idx = vec![0; outer.len()];
    for (i, a) in outer.iter().enumerate().rev() {
        if a.len > 0 {
            idx[i] = r % a.len;
            r /= a.len;
        }
    }
    idx
}

/// Steps the multi-index to the next row (odometer).
fn advance(idx: &mut [u64], outer: &[RemapAxis]) {
    for (i, a) in outer.iter().enumerate().rev() {
        idx[i] += 1;
        if idx[i] < a.len {
            return;
        }
        idx[i] = 0;
    }
}

/// The summed offset of the outer axes, `None` where one says fill.
fn row_base(outer: &[RemapAxis], idx: &[u64]) -> Option<i64> {
    let mut base = 0i64;
    for (a, &k) in outer.iter().zip(idx) {
        match a.map.at(k) {
            FILL => return None,
            v => base += v,
        }
    }
    Some(base)
}

/// Fills `dst` with positions `k0..` of the last axis on top of `base`.
fn copy_row<const N: usize>(src: &[u8], dst: &mut [u8], base: i64, map: &AxisMap, k0: u64, fill: [u8; N]) {
    let at = |off: i64| off as usize * N;
    match *map {
        AxisMap::Affine { start, stride: 1 } => {
            let s = at(base + start + k0 as i64);
            dst.copy_from_slice(&src[s..s + dst.len()]);
        }
        AxisMap::Affine { start, stride } => {
            let mut off = base + start + k0 as i64 * stride;
            for d in dst.chunks_exact_mut(N) {
                d.copy_from_slice(&src[at(off)..at(off) + N]);
                off += stride;
            }
        }
        AxisMap::Table(ref t) => {
            for (d, &v) in dst.chunks_exact_mut(N).zip(&t[k0 as usize..]) {
                if v == FILL {
                    d.copy_from_slice(&fill);
                } else {
                    d.copy_from_slice(&src[at(base + v)..at(base + v) + N]);
                }
            }
        }
    }
}

/// Turns a table without fills that is an arithmetic progression into an
/// affine map.
fn as_affine(a: RemapAxis) -> RemapAxis {
    let AxisMap::Table(t) = &a.map else { return a };
    if t.contains(&FILL) {
        return a;
    }
    match t.as_slice() {
        [] => a,
        [x] => RemapAxis::affine(1, *x, 0),
        [x, y, ..] => {
            let stride = y - x;
            if t.windows(2).all(|w| w[1] - w[0] == stride) {
                RemapAxis::affine(a.len, *x, stride)
            } else {
                a
            }
        }
    }
}

/// See [`Remap::new`].
fn simplify(axes: Vec<RemapAxis>) -> Vec<RemapAxis> {
    if axes.iter().any(|a| a.len == 0) {
        return axes;
    }
    // Fold size-1 affine axes into a constant offset.
    let mut carry = 0i64;
    let mut kept: Vec<RemapAxis> = Vec::with_capacity(axes.len());
    for a in axes.into_iter().map(as_affine) {
        match a.map {
            AxisMap::Affine { start, .. } if a.len == 1 => carry += start,
            _ => kept.push(a),
        }
    }
    // Merge outer/inner affine pairs forming one progression.
    let mut merged: Vec<RemapAxis> = Vec::with_capacity(kept.len());
    for a in kept {
        if let (Some(prev), AxisMap::Affine { start: s2, stride: d2 }) = (merged.last_mut(), &a.map) {
            if let AxisMap::Affine { start: s1, stride: d1 } = prev.map {
                if d1 == d2 * a.len as i64 {
                    *prev = RemapAxis::affine(prev.len * a.len, s1 + s2, *d2);
                    continue;
                }
            }
        }
        merged.push(a);
    }
    match merged.first_mut() {
        None => merged.push(RemapAxis::affine(1, carry, 0)),
        Some(RemapAxis { map: AxisMap::Affine { start, .. }, .. }) => *start += carry,
        Some(RemapAxis { map: AxisMap::Table(t), .. }) => t.iter_mut().filter(|v| **v != FILL).for_each(|v| *v += carry),
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawBuf;
    use proptest::prelude::*;

    /// Naive: every output element by its full multi-index, no simplification.
    fn naive(axes: &[RemapAxis], src: &[u32], fill: u32) -> Vec<u32> {
        let n: u64 = axes.iter().map(|a| a.len).product();
        (0..n)
            .map(|mut f| {
                let mut off = 0;
                for a in axes.iter().rev() {
                    match a.map.at(f % a.len) {
                        FILL => return fill,
                        v => off += v,
                    }
                    f /= a.len;
                }
                src[off as usize]
            })
            .collect()
    }

    fn run_parts(k: &Remap, src: &[u32], parts: &[Range<u64>]) -> Vec<u32> {
        let mut x: Vec<u8> = src.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut y = vec![0u8; k.work_items() as usize * 4];
        let ins = [RawBuf::from_bytes(&mut x)];
        let outs = [RawBuf::from_bytes(&mut y)];
        for p in parts {
            // SAFETY: live distinct buffers, one part at a time.
            unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, p.clone(), &mut []) };
        }
        y.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// A random transpose-with-slices-and-tables problem over an input of
    /// `dims`: per axis, affine (maybe reversed or broadcast) or a table.
    fn problem(dims: &[usize], perm_seed: usize, kinds: &[u8]) -> Vec<RemapAxis> {
        let mut strides = vec![1i64; dims.len()];
        for a in (0..dims.len().saturating_sub(1)).rev() {
            strides[a] = strides[a + 1] * dims[a + 1] as i64;
        }
        let mut order: Vec<usize> = (0..dims.len()).collect();
        order.rotate_left(perm_seed % dims.len().max(1));
        order
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let (d, s) = (dims[a] as i64, strides[a]);
                match kinds[i % kinds.len()] % 4 {
                    0 => RemapAxis::affine(d as u64, 0, s),
                    1 => RemapAxis::affine(d as u64, (d - 1) * s, -s),
                    2 => RemapAxis::affine(3, 0, 0),
                    _ => RemapAxis::table((0..d + 2).map(|k| if k == 1 { FILL } else { (k % d) * s }).collect()),
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn remap_matches_naive_in_parts(dims in prop::collection::vec(1usize..5, 0..5), perm in 0usize..5, kinds in prop::collection::vec(0u8..4, 1..5), cut in 0.0f64..1.0, cut2 in 0.0f64..1.0) {
            let n: usize = dims.iter().product();
            let src: Vec<u32> = (0..n as u32).map(|v| v * 7 + 1).collect();
            let axes = problem(&dims, perm, &kinds);
            let want = naive(&axes, &src, 99);
            let k = Remap::new(ElemType::F32, RemapOp::Transpose, axes, 99u32.to_le_bytes().to_vec());
            let total = k.work_items();
            prop_assert_eq!(total as usize, want.len());
            let a = (total as f64 * cut) as u64;
            let b = a + ((total - a) as f64 * cut2) as u64;
            prop_assert_eq!(run_parts(&k, &src, &[0..a, a..b, b..total]), want);
        }
    }

    #[test]
    fn contiguous_axes_merge_into_one() {
        let k = Remap::new(ElemType::I8, RemapOp::Transpose, vec![RemapAxis::affine(1, 0, 12), RemapAxis::affine(3, 0, 4), RemapAxis::affine(4, 0, 1)], vec![0]);
        assert_eq!(k.axes, vec![RemapAxis::affine(12, 0, 1)]);
        assert!(k.is_identity(12));
    }

    #[test]
    fn other_element_sizes() {
        // Reverse 5 elements of 1, 2 and 8 bytes.
        for es in [1usize, 2, 8] {
            let elem = match es {
                1 => ElemType::U8,
                2 => ElemType::F16,
                _ => ElemType::I64,
            };
            let mut x: Vec<u8> = (0..5 * es as u8).collect();
            let mut y = vec![0u8; 5 * es];
            let k = Remap::new(elem, RemapOp::Slice, vec![RemapAxis::affine(5, 4, -1)], vec![0; es]);
            let (ins, outs) = ([RawBuf::from_bytes(&mut x)], [RawBuf::from_bytes(&mut y)]);
            // SAFETY: live distinct buffers.
            unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, 0..5, &mut []) };
            let want: Vec<u8> = (0..5).rev().flat_map(|e| (0..es).map(move |b| (e * es + b) as u8)).collect();
            assert_eq!(y, want);
        }
    }
}
