//! Element-wise ops: unary maths and activations, binary arithmetic,
//! comparisons, logic, casts.

use crate::node::NodeCx;
use crate::registry::{Imported, Registry};
use crate::ImportError;
use kann_ir::ops::elementwise::{Binary, BinaryKind, ElementwiseOp, Unary, UnaryKind};
use kann_ir::Op;

pub(super) fn register(r: &mut Registry) {
    r.add("Relu", |cx| unary(cx, UnaryKind::Relu), "f32 f16 bf16 f64 i8 i32 i64", "");
    r.add("Add", |cx| binary(cx, BinaryKind::Add), "numeric", "");
}

fn unary(_cx: &mut NodeCx, kind: UnaryKind) -> Result<Imported, ImportError> {
    Ok(Op::Elementwise(ElementwiseOp::Unary(Unary { kind })).into())
}

fn binary(cx: &mut NodeCx, kind: BinaryKind) -> Result<Imported, ImportError> {
    // Opsets < 7 had `broadcast`/`axis`; kann starts at 7 where broadcasting is numpy's.
    cx.ignore("consumed_inputs");
    Ok(Op::Elementwise(ElementwiseOp::Binary(Binary { kind })).into())
}
