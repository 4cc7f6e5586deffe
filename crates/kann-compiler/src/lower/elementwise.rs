//! Element-wise ops: unary functions, binary arithmetic with broadcasting, variadic ops.

use super::{require_f32, LowerCx, LowerResult, Operand};
use kann_ir::ops::elementwise::{ElementwiseOp, UnaryKind as IrUnary};
use kann_ir::{Node, NodeId};
use kann_kernels::unary::{Unary, UnaryKind};
use kann_kernels::Kernel;

pub(super) fn lower(cx: &mut LowerCx, id: NodeId, node: &Node, op: &ElementwiseOp) -> LowerResult {
    let kind = match op {
        ElementwiseOp::Unary(u) => match u.kind {
            IrUnary::Relu => UnaryKind::Relu,
            other => return Err(format!("the compiler does not lower {other:?} yet")),
        },
        _ => return Err(format!("the compiler does not lower {} yet", op.name())),
    };
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "input X")?;
    let y = node.outputs[0];
    let len = cx.info(y).numel() as u64;
    cx.push(id, Kernel::Unary(Unary { kind, len }), vec![Operand::Value(x)], vec![Operand::Value(y)], len);
    Ok(())
}
