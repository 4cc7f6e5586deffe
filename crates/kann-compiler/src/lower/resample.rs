//! Lowering of the resample family.

use super::{LowerCx, LowerResult};
use kann_ir::ops::resample::ResampleOp;
use kann_ir::{Node, NodeId};

pub(super) fn lower(_cx: &mut LowerCx, _id: NodeId, _node: &Node, op: &ResampleOp) -> LowerResult {
    Err(format!("the compiler does not lower {} yet", op.name()))
}
