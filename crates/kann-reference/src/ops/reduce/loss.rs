//! NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, written from the
//! ONNX spec: loss = -logp[n, target, d] * weight[target] (0 for ignored
//! targets), then none / sum / weighted mean. Computes in f64.

use crate::EvalError;
use kann_ir::ops::reduce::{Loss, LossKind, LossReduction};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

pub fn loss(l: &Loss, x: &Tensor, target: &Tensor, weight: Option<&Tensor>, outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let dims = x.dims();
    if dims.len() < 2 {
        return Err(format!("{} needs an input of rank 2 or more", l.name()).into());
    }
    let (n, c) = (dims[0], dims[1]);
    let inner: usize = dims[2..].iter().product();
    let mut logp = x.to_f64_vec();
    if l.kind == LossKind::SoftmaxCrossEntropy {
        log_softmax_axis1(&mut logp, n, c, inner);
    }
    let t = target.to_i64_vec();
    let w = weight.map(Tensor::to_f64_vec);
    if t.len() != n * inner || w.as_ref().is_some_and(|w| w.len() != c) {
        return Err(format!("{}: target or weight does not match the input", l.name()).into());
    }
    let mut losses = vec![0f64; n * inner];
    let mut weight_sum = 0f64;
    for b in 0..n {
        for d in 0..inner {
            let class = t[b * inner + d];
            if l.ignore_index == Some(class) {
                continue;
            }
            let k = usize::try_from(class).ok().filter(|&k| k < c).ok_or_else(|| format!("{}: target {class} is outside 0..{c}", l.name()))?;
            let wk = w.as_ref().map_or(1.0, |w| w[k]);
            losses[b * inner + d] = -logp[(b * c + k) * inner + d] * wk;
            weight_sum += wk;
        }
    }
    let out = outputs.first().ok_or("missing output type")?;
    let values = match l.reduction {
        LossReduction::None => losses,
        LossReduction::Sum => vec![losses.iter().sum()],
        LossReduction::Mean => vec![losses.iter().sum::<f64>() / weight_sum],
    };
    let mut result = vec![Tensor::from_f64(out.dtype, out.shape.clone(), &values)?];
    if l.kind == LossKind::SoftmaxCrossEntropy {
        let lp = outputs.get(1).ok_or("missing log_prob output type")?;
        result.push(Tensor::from_f64(lp.dtype, lp.shape.clone(), &logp)?);
    }
    Ok(result)
}

/// Replaces `v` (N, C, inner) by its log-softmax over axis 1.
fn log_softmax_axis1(v: &mut [f64], n: usize, c: usize, inner: usize) {
    for b in 0..n {
        for d in 0..inner {
            let at = |k: usize| (b * c + k) * inner + d;
            let max = (0..c).map(|k| v[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let log_sum = (0..c).map(|k| (v[at(k)] - max).exp()).sum::<f64>().ln() + max;
            for k in 0..c {
                v[at(k)] -= log_sum;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::{DType, Shape};

    #[test]
    fn nll_weighted_mean_skips_ignored() {
        let x = Tensor::from_f32(Shape::from([3, 2]), vec![-1., -2., -3., -4., -5., -6.]).unwrap();
        let t = Tensor::vec_i64(vec![0, 1, 1]);
        let w = Tensor::from_f32(Shape::from([2]), vec![1., 2.]).unwrap();
        let l = Loss { kind: LossKind::NegativeLogLikelihood, reduction: LossReduction::Mean, ignore_index: Some(0) };
        let y = loss(&l, &x, &t, Some(&w), &[TensorInfo::new(DType::F32, Shape::from([]))]).unwrap();
        // (4 * 2 + 6 * 2) / (2 + 2)
        assert_eq!(y[0].to_f64_vec(), vec![5.0]);
    }

    #[test]
    fn softmax_cross_entropy_of_equal_scores_is_ln_c() {
        let x = Tensor::from_f32(Shape::from([1, 2]), vec![3., 3.]).unwrap();
        let t = Tensor::vec_i64(vec![1]);
        let l = Loss { kind: LossKind::SoftmaxCrossEntropy, reduction: LossReduction::None, ignore_index: None };
        let outs = [TensorInfo::new(DType::F64, Shape::from([1])), TensorInfo::new(DType::F64, Shape::from([1, 2]))];
        let y = loss(&l, &x, &t, None, &outs).unwrap();
        assert!((y[0].to_f64_vec()[0] - 2f64.ln()).abs() < 1e-12);
        assert!((y[1].to_f64_vec()[0] + 2f64.ln()).abs() < 1e-12);
    }
}
