//! `Softmax`, `LogSoftmax` and `Hardmax` over `[outer, len, inner]` views.

use super::{finish, input};
use crate::EvalError;
use kann_ir::ops::nn::{Softmax, SoftmaxKind};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

pub fn softmax(s: &Softmax, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "input")?;
    let (outer, len, inner) = s.layout(x.dims())?;
    let xv = x.to_f64_vec();
    let mut y = vec![0.0; xv.len()];
    for o in 0..outer {
        for i in 0..inner {
            let idx: Vec<usize> = (0..len).map(|j| (o * len + j) * inner + i).collect();
            let max = idx.iter().map(|&k| xv[k]).fold(f64::NEG_INFINITY, f64::max);
            match s.kind {
                SoftmaxKind::Hardmax => {
                    if let Some(&first) = idx.iter().find(|&&k| xv[k] == max) {
                        y[first] = 1.0;
                    }
                }
                SoftmaxKind::Softmax | SoftmaxKind::LogSoftmax => {
                    let sum: f64 = idx.iter().map(|&k| (xv[k] - max).exp()).sum();
                    for &k in &idx {
                        y[k] = if s.kind == SoftmaxKind::Softmax { (xv[k] - max).exp() / sum } else { xv[k] - max - sum.ln() };
                    }
                }
            }
        }
    }
    finish(out, &y)
}
