//! Lowering of the reduce family: ReduceSum/Mean/Max/Min/Prod/L1/L2/
//! LogSum/LogSumExp/SumSquare over constant axes, and ArgMax/ArgMin, for
//! f32 data. TopK, CumSum, CumProd, the losses and NonZero are not lowered.

use super::{require_f32, LowerCx, LowerResult, Operand};
use kann_ir::ops::norm_axis;
use kann_ir::ops::reduce::{ArgKind as IrArg, ArgReduce as IrArgReduce, Reduce as IrReduce, ReduceKind as IrKind, ReduceOp};
use kann_ir::{Node, NodeId};
use kann_kernels::binary::{coalesce, contiguous_strides};
use kann_kernels::reduce::{ArgKind, ArgReduce, Reduce, ReduceKind};
use kann_kernels::Kernel;

pub(super) fn lower(cx: &mut LowerCx, id: NodeId, node: &Node, op: &ReduceOp) -> LowerResult {
    match op {
        ReduceOp::Reduce(r) => lower_reduce(cx, id, node, r),
        ReduceOp::Arg(a) => lower_arg(cx, id, node, a),
        _ => Err(format!("the compiler does not lower {} yet", op.name())),
    }
}

fn kernel_kind(k: IrKind) -> ReduceKind {
    match k {
        IrKind::Sum => ReduceKind::Sum,
        IrKind::Mean => ReduceKind::Mean,
        IrKind::Max => ReduceKind::Max,
        IrKind::Min => ReduceKind::Min,
        IrKind::Prod => ReduceKind::Prod,
        IrKind::L1 => ReduceKind::L1,
        IrKind::L2 => ReduceKind::L2,
        IrKind::LogSum => ReduceKind::LogSum,
        IrKind::LogSumExp => ReduceKind::LogSumExp,
        IrKind::SumSquare => ReduceKind::SumSquare,
    }
}

/// Splits the input's dimensions into kept and reduced ones (each group
/// coalesced) and emits one [`Reduce`] step.
fn lower_reduce(cx: &mut LowerCx, id: NodeId, node: &Node, r: &IrReduce) -> LowerResult {
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "input data")?;
    let axes = match cx.optional_input(node, 1) {
        None => None,
        Some(a) => Some(cx.constant(a).ok_or("the axes input is not a constant")?.to_i64_vec()),
    };
    let dims: Vec<u64> = cx.info(x).shape.dims().iter().map(|&d| d as u64).collect();
    let reduced = r.reduced_axes(dims.len(), axes.as_deref())?;
    let strides = contiguous_strides(&dims);
    let group = |want: bool| -> (Vec<u64>, Vec<u64>) {
        let (d, s): (Vec<u64>, Vec<u64>) = (0..dims.len()).filter(|&i| reduced[i] == want).map(|i| (dims[i], strides[i])).unzip();
        let (d, mut s) = coalesce(&d, &[s]);
        (d, s.remove(0))
    };
    let (kept_dims, kept_strides) = group(false);
    let (reduced_dims, reduced_strides) = group(true);
    let y = node.outputs[0];
    let k = Reduce { kind: kernel_kind(r.kind), kept_dims, kept_strides, reduced_dims, reduced_strides };
    let flops = cx.info(x).numel() as u64;
    cx.push(id, Kernel::Reduce(k), vec![Operand::Value(x)], vec![Operand::Value(y)], flops);
    Ok(())
}

/// ArgMax / ArgMin along one axis, i64 output.
fn lower_arg(cx: &mut LowerCx, id: NodeId, node: &Node, a: &IrArgReduce) -> LowerResult {
    let x = cx.input(node, 0)?;
    require_f32(cx, x, "input data")?;
    let dims = cx.info(x).shape.dims();
    let axis = norm_axis(a.axis, dims.len())?;
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    if dims[axis] == 0 {
        return Err(format!("{} over an empty axis", a.kind.name()));
    }
    let kind = match a.kind {
        IrArg::Max => ArgKind::Max,
        IrArg::Min => ArgKind::Min,
    };
    let k = ArgReduce { kind, outer: outer as u64, len: dims[axis] as u64, inner: inner as u64, select_last_index: a.select_last_index };
    let flops = cx.info(x).numel() as u64;
    let y = node.outputs[0];
    cx.push(id, Kernel::ArgReduce(k), vec![Operand::Value(x)], vec![Operand::Value(y)], flops);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::elementwise::tests::{one_node, Slot};
    use crate::testing::{check_against_reference, Rng};
    use kann_ir::ops::reduce::{ArgKind, ArgReduce, Reduce, ReduceKind, ReduceOp};
    use kann_ir::Op;
    use kann_tensor::{DType, Shape, Tensor};

    #[test]
    fn reductions_over_random_axes_match_the_reference() {
        use ReduceKind::*;
        let kinds = [Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare];
        let mut rng = Rng::new(3);
        for case in 0..80 {
            let kind = kinds[case % kinds.len()];
            let rank = 1 + rng.below(4) as usize;
            let dims: Vec<usize> = (0..rank).map(|_| 1 + rng.below(5) as usize).collect();
            let mut axes = Vec::new();
            for a in 0..rank as i64 {
                if rng.below(2) == 0 {
                    axes.push(if rng.below(2) == 0 { a - rank as i64 } else { a });
                }
            }
            let r = Reduce { kind, keepdims: rng.below(2) == 0, noop_with_empty_axes: rng.below(4) == 0 };
            let axes_slot = if axes.is_empty() && rng.below(2) == 0 { Slot::Absent } else { Slot::Const(Tensor::from_i64(Shape::from([axes.len()]), axes.clone()).unwrap()) };
            let g = one_node(Op::Reduce(ReduceOp::Reduce(r.clone())), vec![Slot::In(DType::F32, dims.clone()), axes_slot], 1);
            for clusters in [1, 3] {
                if let Err(e) = check_against_reference(g.clone(), clusters) {
                    panic!("{r:?} {dims:?} axes {axes:?} on {clusters} clusters: {e}");
                }
            }
        }
        // Large enough to split.
        let r = Reduce { kind: Sum, keepdims: false, noop_with_empty_axes: false };
        let axes = Tensor::from_i64(Shape::from([1]), vec![1]).unwrap();
        let g = one_node(Op::Reduce(ReduceOp::Reduce(r)), vec![Slot::In(DType::F32, vec![300, 40, 20]), Slot::Const(axes)], 1);
        check_against_reference(g, 3).unwrap();
    }

    #[test]
    fn argmax_argmin_match_the_reference() {
        let mut rng = Rng::new(9);
        for case in 0..24 {
            let rank = 1 + rng.below(3) as usize;
            let dims: Vec<usize> = (0..rank).map(|_| 1 + rng.below(5) as usize).collect();
            let a = ArgReduce {
                kind: if case % 2 == 0 { ArgKind::Max } else { ArgKind::Min },
                axis: rng.below(rank as u64) as i64 - if case % 3 == 0 { rank as i64 } else { 0 },
                keepdims: case % 4 < 2,
                select_last_index: case % 5 == 0,
            };
            let g = one_node(Op::Reduce(ReduceOp::Arg(a.clone())), vec![Slot::In(DType::F32, dims.clone())], 1);
            if let Err(e) = check_against_reference(g, 2) {
                panic!("{a:?} {dims:?}: {e}");
            }
        }
    }
}
