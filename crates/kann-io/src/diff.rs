//! Comparing an output set with a reference: per-tensor metrics and a verdict.

use kann_tensor::Tensor;

/// Element-wise tolerance: `|a - b| <= atol · max(1, max|b|) + rtol · |b|`
/// with `b` the reference. The absolute term is in units of the reference
/// tensor's range once that exceeds 1: an fp32 computation in another order
/// differs by a few ulps of the tensor's large values, also on its elements
/// near zero. Raw logits of a deep random-weight network (DenseNet-121's,
/// RMS ~130) differ by up to 1.2e-4 between kann and the reference, and by
/// as much between ONNX Runtime and the reference, or between ONNX Runtime
/// with and without its graph optimisations: a fixed 1e-5, below the ulp of
/// most of those values, failed all three. Outputs within [-1, 1]
/// (probabilities, normalised maps) keep the plain absolute tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

impl Default for Tolerance {
    /// fp32 defaults.
    fn default() -> Self {
        Tolerance { atol: 1e-5, rtol: 1e-4 }
    }
}

/// Metrics of one tensor pair.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDiff {
    pub name: String,
    pub elements: usize,
    pub max_abs: f64,
    pub mean_abs: f64,
    /// Largest `|a-b| / |b|` over elements with `b != 0`.
    pub max_rel: f64,
    /// Largest `|b|`: the reference's scale, so `max_abs / ref_max_abs` is
    /// the error relative to the tensor's range (meaningful for raw logits,
    /// where elements near zero make `max_rel` explode).
    pub ref_max_abs: f64,
    /// Cosine similarity of the two as vectors (1 when both are zero).
    pub cosine: f64,
    /// Signal-to-noise ratio `10 log10(Σb² / Σ(a-b)²)` in dB (∞ when equal).
    pub snr_db: f64,
    /// Elements outside the tolerance.
    pub outside: usize,
    /// Top-k agreement of the last axis: (k, rows whose top-1 agree, rows whose top-k sets agree, rows).
    pub top_k: Option<TopK>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    pub k: usize,
    pub top1_same: usize,
    pub topk_same: usize,
    pub rows: usize,
}

impl TensorDiff {
    pub fn passes(&self) -> bool {
        self.outside == 0
    }
}

/// Compares `got` with the reference `want`. Shapes must match.
pub fn diff(name: &str, got: &Tensor, want: &Tensor, tol: Tolerance, top_k: Option<usize>) -> Result<TensorDiff, String> {
    if got.dims() != want.dims() {
        return Err(format!("'{name}': shape {} differs from the reference's {}", got.shape(), want.shape()));
    }
    let (a, b) = (got.to_f64_vec(), want.to_f64_vec());
    let n = a.len();
    let ref_max_abs = b.iter().fold(0.0f64, |m, v| if v.is_finite() { m.max(v.abs()) } else { m });
    let atol = tol.atol * ref_max_abs.max(1.0);
    let (mut max_abs, mut sum_abs, mut max_rel) = (0.0f64, 0.0f64, 0.0f64);
    let (mut dot, mut na, mut nb, mut noise) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut outside = 0;
    for (&x, &y) in a.iter().zip(&b) {
        let same = x == y || x.is_nan() && y.is_nan();
        let e = if same { 0.0 } else { (x - y).abs() };
        let e = if e.is_nan() { f64::INFINITY } else { e };
        max_abs = max_abs.max(e);
        sum_abs += e;
        if y != 0.0 {
            max_rel = max_rel.max(e / y.abs());
        }
        if e > atol + tol.rtol * y.abs() {
            outside += 1;
        }
        dot += x * y;
        na += x * x;
        nb += y * y;
        noise += e * e;
    }
    let cosine = if na == 0.0 && nb == 0.0 { 1.0 } else if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) };
    let snr_db = if noise == 0.0 { f64::INFINITY } else { 10.0 * (nb / noise).log10() };
    let top_k = top_k.filter(|&k| k > 0 && got.rank() >= 1 && got.dims()[got.rank() - 1] >= k).map(|k| top_k_agreement(&a, &b, got.dims()[got.rank() - 1], k));
    Ok(TensorDiff { name: name.to_string(), elements: n, max_abs, mean_abs: if n == 0 { 0.0 } else { sum_abs / n as f64 }, max_rel, ref_max_abs, cosine, snr_db, outside, top_k })
}

fn top_indices(row: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&i, &j| row[j].partial_cmp(&row[i]).unwrap_or(std::cmp::Ordering::Equal).then(i.cmp(&j)));
    idx.truncate(k);
    idx
}

fn top_k_agreement(a: &[f64], b: &[f64], width: usize, k: usize) -> TopK {
    let rows = a.len() / width;
    let (mut top1_same, mut topk_same) = (0, 0);
    for r in 0..rows {
        let ta = top_indices(&a[r * width..(r + 1) * width], k);
        let tb = top_indices(&b[r * width..(r + 1) * width], k);
        if ta[0] == tb[0] {
            top1_same += 1;
        }
        let (mut sa, mut sb) = (ta.clone(), tb.clone());
        sa.sort_unstable();
        sb.sort_unstable();
        if sa == sb {
            topk_same += 1;
        }
    }
    TopK { k, top1_same, topk_same, rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::Shape;

    fn t(v: Vec<f32>) -> Tensor {
        let n = v.len();
        Tensor::from_f32(Shape::from([1, n]), v).unwrap()
    }

    #[test]
    fn identical_tensors_pass_with_infinite_snr() {
        let d = diff("x", &t(vec![1.0, 2.0, 3.0]), &t(vec![1.0, 2.0, 3.0]), Tolerance::default(), Some(2)).unwrap();
        assert!(d.passes());
        assert_eq!(d.max_abs, 0.0);
        assert!(d.snr_db.is_infinite());
        assert!((d.cosine - 1.0).abs() < 1e-12);
        assert_eq!(d.top_k.unwrap().topk_same, 1);
    }

    #[test]
    fn errors_are_measured() {
        let d = diff("x", &t(vec![1.0, 2.5]), &t(vec![1.0, 2.0]), Tolerance::default(), None).unwrap();
        assert_eq!(d.max_abs, 0.5);
        assert_eq!(d.mean_abs, 0.25);
        assert_eq!(d.max_rel, 0.25);
        assert_eq!(d.outside, 1);
        assert!(!d.passes());
        // SNR: Σb² = 5, noise = 0.25 → 10·log10(20) ≈ 13.01 dB.
        assert!((d.snr_db - 13.0103).abs() < 1e-3);
    }

    #[test]
    fn the_absolute_tolerance_scales_with_the_reference_range() {
        // Logits up to 400: 1e-4 off on an element near zero is a few ulps
        // of the tensor's values, inside 1e-5 · 400; 1e-2 is not.
        let want = t(vec![400.0, -250.0, 0.05, 3.0]);
        let d = diff("x", &t(vec![400.0, -250.0, 0.0501, 3.0]), &want, Tolerance::default(), None).unwrap();
        assert!(d.passes(), "{d:?}");
        let d = diff("x", &t(vec![400.0, -250.0, 0.06, 3.0]), &want, Tolerance::default(), None).unwrap();
        assert_eq!(d.outside, 1);
        // Within [-1, 1] the absolute tolerance is itself: 1e-4 off fails.
        let d = diff("x", &t(vec![0.9, 0.0501]), &t(vec![0.9, 0.05]), Tolerance::default(), None).unwrap();
        assert_eq!(d.outside, 1);
    }

    #[test]
    fn top_k_detects_swaps() {
        let d = diff("x", &t(vec![0.1, 0.9, 0.5]), &t(vec![0.9, 0.1, 0.5]), Tolerance::default(), Some(1)).unwrap();
        assert_eq!(d.top_k.unwrap().top1_same, 0);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        assert!(diff("x", &t(vec![1.0]), &t(vec![1.0, 2.0]), Tolerance::default(), None).is_err());
    }
}
