//! Lowering of the movement family.

use super::{LowerCx, LowerResult};
use kann_ir::ops::movement::MovementOp;
use kann_ir::{Node, NodeId};

pub(super) fn lower(_cx: &mut LowerCx, _id: NodeId, _node: &Node, op: &MovementOp) -> LowerResult {
    Err(format!("the compiler does not lower {} yet", op.name()))
}
