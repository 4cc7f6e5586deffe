//! Element-wise ops, computed in f64 and rounded once to the output dtype;
//! integer arithmetic in i64 with numpy's wrapping.

use crate::util::broadcast_index;
use crate::EvalError;
use kann_ir::ops::elementwise::{Binary, BinaryKind, ElementwiseOp, Unary, UnaryKind};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

pub fn eval(op: &ElementwiseOp, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let out = &outputs[0];
    let x = inputs[0].ok_or("missing input")?;
    let t = match op {
        ElementwiseOp::Unary(u) => unary(u, x, out)?,
        ElementwiseOp::Binary(b) => binary(b, x, inputs[1].ok_or("missing input B")?, out)?,
    };
    Ok(vec![t])
}

fn unary(u: &Unary, x: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let v = x.to_f64_vec();
    let f = |x: f64| match u.kind {
        UnaryKind::Relu => x.max(0.0),
    };
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &v.into_iter().map(f).collect::<Vec<_>>())?)
}

fn binary(b: &Binary, x: &Tensor, y: &Tensor, out: &TensorInfo) -> Result<Tensor, EvalError> {
    let ia = broadcast_index(x.dims(), out.shape.dims());
    let ib = broadcast_index(y.dims(), out.shape.dims());
    if x.dtype().is_int() {
        let (a, c) = (x.to_i64_vec(), y.to_i64_vec());
        let r: Vec<i64> = ia.iter().zip(&ib).map(|(&i, &j)| match b.kind {
            BinaryKind::Add => a[i].wrapping_add(c[j]),
        }).collect();
        return Ok(Tensor::from_i64_values(out.dtype, out.shape.clone(), &r)?);
    }
    let (a, c) = (x.to_f64_vec(), y.to_f64_vec());
    let r: Vec<f64> = ia.iter().zip(&ib).map(|(&i, &j)| match b.kind {
        BinaryKind::Add => a[i] + c[j],
    }).collect();
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), &r)?)
}
