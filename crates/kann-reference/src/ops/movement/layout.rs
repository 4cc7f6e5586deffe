//! Transpose, Expand, Tile, DepthToSpace, SpaceToDepth.

use super::remap;
use crate::util::broadcast_index;
use crate::EvalError;
use kann_ir::ops::movement::{transpose_perm, BlockMode};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

pub(super) fn transpose(x: &Tensor, perm: Option<&[i64]>, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let perm = transpose_perm(perm, x.rank())?;
    remap(x, out, |o, src| {
        for (i, &p) in perm.iter().enumerate() {
            src[p] = o[i];
        }
    })
}

pub(super) fn expand(x: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    Ok(x.gather_flat(out.shape.clone(), &broadcast_index(x.dims(), out.shape.dims()))?)
}

pub(super) fn tile(x: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let dims = x.dims().to_vec();
    remap(x, out, |o, src| {
        for (a, s) in src.iter_mut().enumerate() {
            *s = o[a] % dims[a];
        }
    })
}

/// Channel of the rank-4 "depth" tensor holding spatial offset `(i, j)` of
/// channel `c` among `cs` channels.
fn block_channel(mode: BlockMode, b: usize, cs: usize, c: usize, i: usize, j: usize) -> usize {
    match mode {
        BlockMode::Dcr => (i * b + j) * cs + c,
        BlockMode::Crd => c * b * b + i * b + j,
    }
}

pub(super) fn depth_to_space(x: &Tensor, b: usize, mode: BlockMode, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let cs = out.shape.dims().get(1).copied().ok_or("DepthToSpace needs rank 4")?;
    remap(x, out, |o, src| {
        let (c, h, w) = (o[1], o[2], o[3]);
        src[0] = o[0];
        src[1] = block_channel(mode, b, cs, c, h % b, w % b);
        src[2] = h / b;
        src[3] = w / b;
    })
}

pub(super) fn space_to_depth(x: &Tensor, b: usize, mode: BlockMode, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let cs = x.dims().get(1).copied().ok_or("SpaceToDepth needs rank 4")?;
    // Invert block_channel: find (c, i, j) of each output channel.
    let mut inverse = vec![(0, 0, 0); cs * b * b];
    for c in 0..cs {
        for i in 0..b {
            for j in 0..b {
                inverse[block_channel(mode, b, cs, c, i, j)] = (c, i, j);
            }
        }
    }
    remap(x, out, |o, src| {
        let (c, i, j) = inverse[o[1]];
        src[0] = o[0];
        src[1] = c;
        src[2] = o[2] * b + i;
        src[3] = o[3] * b + j;
    })
}
