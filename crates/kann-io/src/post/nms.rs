//! Detection boxes, intersection over union, and greedy per-class
//! non-maximum suppression.

use super::best_first;

/// One detected object: a class, a confidence, and a box given by its
/// top-left `(x0, y0)` and bottom-right `(x1, y1)` corners.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub class: usize,
    pub score: f32,
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Detection {
    /// The box's area; 0 for a box whose corners are swapped or equal.
    pub fn area(&self) -> f32 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }
}

/// Intersection over union of two boxes, in `[0, 1]`; 0 when the union is
/// empty.
pub fn iou(a: &Detection, b: &Detection) -> f32 {
    let w = (a.x1.min(b.x1) - a.x0.max(b.x0)).max(0.0);
    let h = (a.y1.min(b.y1) - a.y0.max(b.y0)).max(0.0);
    let inter = w * h;
    let union = a.area() + b.area() - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Greedy non-maximum suppression, class by class.
///
/// Detections are taken best score first; one is kept unless a kept detection
/// of the same class overlaps it with IoU above `iou_threshold`. The result is
/// sorted by score, best first (equal scores keep their input order).
pub fn nms(mut detections: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    detections.sort_by(|a, b| best_first(a.score, b.score));
    let mut kept: Vec<Detection> = Vec::new();
    for d in detections {
        let suppressed = kept
            .iter()
            .any(|k| k.class == d.class && iou(k, &d) > iou_threshold);
        if !suppressed {
            kept.push(d);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: usize, score: f32, x0: f32, y0: f32, x1: f32, y1: f32) -> Detection {
        Detection { class, score, x0, y0, x1, y1 }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = det(0, 1.0, 0.0, 0.0, 2.0, 2.0);
        let b = det(0, 1.0, 1.0, 0.0, 3.0, 2.0);
        // Intersection 2, union 4 + 4 - 2 = 6.
        assert!((iou(&a, &b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&a, &a), 1.0);
        let far = det(0, 1.0, 5.0, 5.0, 6.0, 6.0);
        assert_eq!(iou(&a, &far), 0.0);
        let empty = det(0, 1.0, 1.0, 1.0, 1.0, 1.0);
        assert_eq!(iou(&empty, &empty), 0.0);
    }

    #[test]
    fn suppresses_overlaps_within_a_class_only() {
        let input = vec![
            det(0, 0.6, 0.0, 0.0, 10.0, 10.0),
            det(0, 0.9, 1.0, 1.0, 11.0, 11.0),
            det(1, 0.8, 1.0, 1.0, 11.0, 11.0),
            det(0, 0.7, 20.0, 20.0, 30.0, 30.0),
        ];
        let out = nms(input, 0.5);
        let scores: Vec<f32> = out.iter().map(|d| d.score).collect();
        // 0.6 overlaps 0.9 (IoU 81/119 ≈ 0.68) in class 0 and goes; class 1 stays.
        assert_eq!(scores, vec![0.9, 0.8, 0.7]);
        assert_eq!(out[1].class, 1);
    }

    #[test]
    fn threshold_is_strict_and_empty_input_is_fine() {
        let a = det(0, 0.9, 0.0, 0.0, 2.0, 2.0);
        let b = det(0, 0.8, 1.0, 0.0, 3.0, 2.0);
        assert_eq!(nms(vec![a, b], 0.5).len(), 2);
        assert_eq!(nms(vec![a, b], 0.3).len(), 1);
        assert!(nms(Vec::new(), 0.5).is_empty());
    }
}
