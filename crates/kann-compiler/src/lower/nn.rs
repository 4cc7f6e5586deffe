//! Lowering of the nn family.

use super::{LowerCx, LowerResult};
use kann_ir::ops::nn::NnOp;
use kann_ir::{Node, NodeId};

pub(super) fn lower(_cx: &mut LowerCx, _id: NodeId, _node: &Node, op: &NnOp) -> LowerResult {
    Err(format!("the compiler does not lower {} yet", op.name()))
}

/// A Conv/Gemm/MatMul/Add with a fused epilogue.
pub(super) fn lower_fused(_cx: &mut LowerCx, _id: NodeId, _node: &Node, f: &kann_ir::ops::fused::Fused) -> LowerResult {
    Err(format!("the compiler does not lower {} yet", f.describe()))
}
