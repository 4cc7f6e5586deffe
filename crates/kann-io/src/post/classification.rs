//! Classification: the top-k classes of each batch row of logits or
//! probabilities.

use std::path::Path;

use kann_tensor::Tensor;

use super::best_first;
use crate::IoError;

/// One class of a top-k list.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index of the class along the last axis.
    pub class: usize,
    /// The class's name, when names were given and cover this index.
    pub name: Option<String>,
    /// Probability of the class (after softmax when the row held logits).
    pub score: f32,
}

/// The `top_k` best classes of each batch row of `logits_or_probs`.
///
/// The tensor is `[N, C]` or `[N, C, 1, 1]`. A row that is already a
/// probability distribution (every value in `[0, 1]`, sum within 1e-3 of 1) is
/// used as is; any other row goes through a numerically stable softmax.
/// Predictions are sorted by score, best first; equal scores keep the lower
/// class index first. `top_k` larger than `C` gives all `C` classes.
/// `class_names[i]` names class `i`; a class past the end of the list has no
/// name (some models add a background class the label file lacks).
pub fn classify(
    logits_or_probs: &Tensor,
    top_k: usize,
    class_names: Option<&[String]>,
) -> Result<Vec<Vec<Prediction>>, String> {
    let dims = logits_or_probs.dims();
    let (n, c) = match dims {
        [n, c] => (*n, *c),
        [n, c, 1, 1] => (*n, *c),
        _ => {
            return Err(format!(
                "classification output has shape {:?}; expected [N, C] or [N, C, 1, 1]",
                dims
            ))
        }
    };
    if c == 0 {
        return Err("classification output has no classes (C = 0)".to_string());
    }
    let values = logits_or_probs.to_f32_vec();
    let mut result = Vec::with_capacity(n);
    for row in values.chunks(c).take(n) {
        let probs = if is_distribution(row) { row.to_vec() } else { softmax(row) };
        let mut order: Vec<usize> = (0..c).collect();
        // A stable sort keeps the lower index first among equal scores.
        order.sort_by(|&a, &b| best_first(probs[a], probs[b]));
        let predictions = order
            .into_iter()
            .take(top_k)
            .map(|class| Prediction {
                class,
                name: class_names.and_then(|names| names.get(class).cloned()),
                score: probs[class],
            })
            .collect();
        result.push(predictions);
    }
    Ok(result)
}

/// Whether `row` already reads as probabilities: each value in `[0, 1]` and
/// the sum within 1e-3 of 1.
fn is_distribution(row: &[f32]) -> bool {
    let in_range = row.iter().all(|&x| (0.0..=1.0).contains(&x));
    let sum: f32 = row.iter().sum();
    in_range && (sum - 1.0).abs() <= 1e-3
}

/// Softmax that subtracts the row's maximum first so `exp` never overflows.
fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let shift = if max.is_finite() { max } else { 0.0 };
    let exps: Vec<f32> = row.iter().map(|&x| (x - shift).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Reads class names, one per line, each trimmed. A trailing empty line (the
/// file's final newline) is not a class; empty lines in the middle are kept so
/// that line `i` still names class `i`.
pub fn read_class_names(path: &Path) -> Result<Vec<String>, IoError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::file(path, e))?;
    let mut names: Vec<String> = text.lines().map(|line| line.trim().to_string()).collect();
    while names.last().is_some_and(|last| last.is_empty()) {
        names.pop();
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::Shape;

    fn tensor(dims: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_f32(Shape::from(dims), v).unwrap()
    }

    #[test]
    fn probabilities_are_used_as_they_are() {
        let t = tensor(&[1, 4], vec![0.1, 0.6, 0.2, 0.1]);
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let out = classify(&t, 3, Some(&names)).unwrap();
        assert_eq!(out.len(), 1);
        let classes: Vec<usize> = out[0].iter().map(|p| p.class).collect();
        // 0.1 ties between classes 0 and 3: the lower index wins.
        assert_eq!(classes, vec![1, 2, 0]);
        assert_eq!(out[0][0].score, 0.6);
        assert_eq!(out[0][0].name.as_deref(), Some("b"));
    }

    #[test]
    fn logits_go_through_softmax() {
        // ln 1, ln 3: softmax gives 0.25, 0.75.
        let t = tensor(&[2, 2, 1, 1], vec![0.0, 3f32.ln(), 5.0, 5.0]);
        let out = classify(&t, 2, None).unwrap();
        assert_eq!(out[0][0].class, 1);
        assert!((out[0][0].score - 0.75).abs() < 1e-6);
        assert!((out[0][1].score - 0.25).abs() < 1e-6);
        assert_eq!(out[0][0].name, None);
        // Equal logits: 0.5 each, class 0 first.
        assert_eq!(out[1][0].class, 0);
        assert!((out[1][0].score - 0.5).abs() < 1e-6);
    }

    #[test]
    fn softmax_is_stable_for_large_logits() {
        let t = tensor(&[1, 2], vec![1000.0, 1000.0]);
        let out = classify(&t, 1, None).unwrap();
        assert!((out[0][0].score - 0.5).abs() < 1e-6);
    }

    #[test]
    fn top_k_beyond_classes_and_short_names() {
        let t = tensor(&[1, 3], vec![1.0, 2.0, 3.0]);
        let names = vec!["x".to_string()];
        let out = classify(&t, 10, Some(&names)).unwrap();
        assert_eq!(out[0].len(), 3);
        assert_eq!(out[0][2].class, 0);
        assert_eq!(out[0][2].name.as_deref(), Some("x"));
        assert_eq!(out[0][0].name, None);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(classify(&tensor(&[3], vec![1.0; 3]), 1, None).is_err());
        assert!(classify(&tensor(&[1, 2, 2, 1], vec![1.0; 4]), 1, None).is_err());
        assert!(classify(&tensor(&[1, 0], vec![]), 1, None).is_err());
    }

    #[test]
    fn class_names_from_a_file() {
        let dir = std::env::temp_dir().join(format!("kann-post-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels.txt");
        std::fs::write(&path, " cat \ndog\r\n\nbird\n").unwrap();
        let names = read_class_names(&path).unwrap();
        assert_eq!(names, vec!["cat", "dog", "", "bird"]);
        assert!(read_class_names(&dir.join("missing.txt")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
