//! Lowering of the reduce family.

use super::{LowerCx, LowerResult};
use kann_ir::ops::reduce::ReduceOp;
use kann_ir::{Node, NodeId};

pub(super) fn lower(_cx: &mut LowerCx, _id: NodeId, _node: &Node, op: &ReduceOp) -> LowerResult {
    Err(format!("the compiler does not lower {} yet", op.name()))
}
