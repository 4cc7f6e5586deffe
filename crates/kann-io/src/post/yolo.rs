//! YOLO output decoding: boxes given as centre and size, a confidence filter,
//! then per-class non-maximum suppression. Boxes stay in the coordinates of
//! the model's input (undoing a resize or letterbox is the caller's part).

use kann_tensor::Tensor;

use super::nms::{nms, Detection};

/// Decodes a YOLOv8-style output `[N, 4 + C, A]`: for each of the `A` anchors,
/// rows 0..4 are `cx, cy, w, h` and rows `4..4 + C` the class scores. An anchor
/// becomes a detection of its best class (lower index on ties) when that score
/// is at least `conf_threshold`; the detections of each batch item then go
/// through [`nms`] with `iou_threshold`.
pub fn decode_yolov8(
    t: &Tensor,
    conf_threshold: f32,
    iou_threshold: f32,
) -> Result<Vec<Vec<Detection>>, String> {
    let [n, rows, anchors] = *t.dims() else {
        return Err(format!(
            "yolov8 output has shape {:?}; expected [N, 4 + C, A]",
            t.dims()
        ));
    };
    if rows < 5 {
        return Err(format!(
            "yolov8 output has {rows} rows per anchor; expected 4 box values and at least 1 class"
        ));
    }
    let values = t.to_f32_vec();
    let item_len = rows * anchors;
    let mut result = Vec::with_capacity(n);
    for b in 0..n {
        let item = &values[b * item_len..(b + 1) * item_len];
        let at = |row: usize, a: usize| item[row * anchors + a];
        let mut found = Vec::new();
        for a in 0..anchors {
            let (class, score) = best_class((4..rows).map(|row| at(row, a)));
            if score >= conf_threshold {
                found.push(centre_box(class, score, [at(0, a), at(1, a), at(2, a), at(3, a)]));
            }
        }
        result.push(nms(found, iou_threshold));
    }
    Ok(result)
}

/// Decodes a YOLOv5-style output `[N, A, 5 + C]`: for each anchor, `cx, cy, w,
/// h`, an objectness, then the class scores. The confidence of a class is
/// objectness × class score; an anchor becomes a detection of its best class
/// when that confidence is at least `conf_threshold`, then [`nms`] runs per
/// batch item with `iou_threshold`.
pub fn decode_yolov5(
    t: &Tensor,
    conf_threshold: f32,
    iou_threshold: f32,
) -> Result<Vec<Vec<Detection>>, String> {
    let [n, anchors, cols] = *t.dims() else {
        return Err(format!(
            "yolov5 output has shape {:?}; expected [N, A, 5 + C]",
            t.dims()
        ));
    };
    if cols < 6 {
        return Err(format!(
            "yolov5 output has {cols} values per anchor; expected 4 box values, objectness and at least 1 class"
        ));
    }
    let values = t.to_f32_vec();
    let mut result = Vec::with_capacity(n);
    for b in 0..n {
        let mut found = Vec::new();
        for a in 0..anchors {
            let start = (b * anchors + a) * cols;
            let row = &values[start..start + cols];
            let objectness = row[4];
            let (class, score) = best_class(row[5..].iter().map(|&s| objectness * s));
            if score >= conf_threshold {
                found.push(centre_box(class, score, [row[0], row[1], row[2], row[3]]));
            }
        }
        result.push(nms(found, iou_threshold));
    }
    Ok(result)
}

/// The index and value of the highest score, the lower index on ties; NaN
/// never wins (an all-NaN list gives NaN, which no threshold accepts).
fn best_class(scores: impl Iterator<Item = f32>) -> (usize, f32) {
    let mut best = (0, f32::NAN);
    for (i, s) in scores.enumerate() {
        if s > best.1 || (best.1.is_nan() && !s.is_nan()) {
            best = (i, s);
        }
    }
    best
}

/// A detection from a box given as `[cx, cy, w, h]`.
fn centre_box(class: usize, score: f32, [cx, cy, w, h]: [f32; 4]) -> Detection {
    Detection {
        class,
        score,
        x0: cx - w / 2.0,
        y0: cy - h / 2.0,
        x1: cx + w / 2.0,
        y1: cy + h / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::Shape;

    #[test]
    fn yolov8_filters_decodes_and_suppresses() {
        // N = 1, C = 2, A = 3. Anchors 0 and 1 overlap heavily in class 1;
        // anchor 2 is below the threshold.
        let v = vec![
            10.0, 11.0, 50.0, // cx
            10.0, 10.0, 50.0, // cy
            4.0, 4.0, 2.0, // w
            2.0, 2.0, 2.0, // h
            0.1, 0.2, 0.3, // class 0
            0.9, 0.8, 0.2, // class 1
        ];
        let t = Tensor::from_f32(Shape::from([1, 6, 3]), v).unwrap();
        let out = decode_yolov8(&t, 0.5, 0.45).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0],
            vec![Detection { class: 1, score: 0.9, x0: 8.0, y0: 9.0, x1: 12.0, y1: 11.0 }]
        );
        // A high IoU threshold keeps both overlapping boxes.
        assert_eq!(decode_yolov8(&t, 0.5, 0.9).unwrap()[0].len(), 2);
    }

    #[test]
    fn yolov5_multiplies_objectness() {
        // N = 1, A = 2, C = 2.
        let v = vec![
            5.0, 5.0, 2.0, 2.0, 0.5, 0.2, 1.0, // 0.5 × 1.0 = 0.5, class 1
            20.0, 20.0, 2.0, 2.0, 0.9, 0.3, 0.1, // 0.9 × 0.3 = 0.27, below
        ];
        let t = Tensor::from_f32(Shape::from([1, 2, 7]), v).unwrap();
        let out = decode_yolov5(&t, 0.4, 0.45).unwrap();
        assert_eq!(
            out[0],
            vec![Detection { class: 1, score: 0.5, x0: 4.0, y0: 4.0, x1: 6.0, y1: 6.0 }]
        );
        assert_eq!(decode_yolov5(&t, 0.25, 0.45).unwrap()[0].len(), 2);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let t = Tensor::from_f32(Shape::from([1, 4, 2]), vec![0.0; 8]).unwrap();
        assert!(decode_yolov8(&t, 0.5, 0.5).is_err());
        let t = Tensor::from_f32(Shape::from([1, 2, 5]), vec![0.0; 10]).unwrap();
        assert!(decode_yolov5(&t, 0.5, 0.5).is_err());
        let t = Tensor::from_f32(Shape::from([8]), vec![0.0; 8]).unwrap();
        assert!(decode_yolov8(&t, 0.5, 0.5).is_err());
        assert!(decode_yolov5(&t, 0.5, 0.5).is_err());
    }
}
