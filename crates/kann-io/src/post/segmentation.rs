//! Semantic segmentation: the most likely class of each pixel.

use kann_tensor::Tensor;

/// A class index per pixel, row-major, `h` rows of `w` pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    pub h: usize,
    pub w: usize,
    /// `classes[y * w + x]` is the class of pixel `(x, y)`.
    pub classes: Vec<u16>,
}

/// One mask per batch item of a `[N, C, H, W]` score tensor: each pixel takes
/// the class with the highest score, the lower index on ties (NaN never wins).
/// `C` must be between 1 and 65 536 so that a class fits in a `u16`.
pub fn argmax_mask(t: &Tensor) -> Result<Vec<Mask>, String> {
    let [n, c, h, w] = *t.dims() else {
        return Err(format!(
            "segmentation output has shape {:?}; expected [N, C, H, W]",
            t.dims()
        ));
    };
    if c == 0 || c > usize::from(u16::MAX) + 1 {
        return Err(format!(
            "segmentation output has {c} classes; expected 1 to 65536"
        ));
    }
    let values = t.to_f32_vec();
    let plane = h * w;
    let mut masks = Vec::with_capacity(n);
    for item in values.chunks(c * plane.max(1)).take(n) {
        let mut classes = vec![0u16; plane];
        let mut best: Vec<f32> = item[..plane].to_vec();
        for class in 1..c {
            let scores = &item[class * plane..(class + 1) * plane];
            for (p, &s) in scores.iter().enumerate() {
                if s > best[p] || (best[p].is_nan() && !s.is_nan()) {
                    best[p] = s;
                    // `class < c <= 65536`, so it fits.
                    classes[p] = class as u16;
                }
            }
        }
        masks.push(Mask { h, w, classes });
    }
    // An empty plane (H or W = 0) still gives one empty mask per item.
    while masks.len() < n {
        masks.push(Mask { h, w, classes: Vec::new() });
    }
    Ok(masks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::Shape;

    #[test]
    fn argmax_per_pixel_with_ties_to_lower_index() {
        // N = 1, C = 3, H = 1, W = 3.
        let v = vec![
            0.1, 0.5, 0.3, // class 0
            0.9, 0.5, 0.2, // class 1
            0.0, 0.1, 0.7, // class 2
        ];
        let t = Tensor::from_f32(Shape::from([1, 3, 1, 3]), v).unwrap();
        let masks = argmax_mask(&t).unwrap();
        assert_eq!(masks, vec![Mask { h: 1, w: 3, classes: vec![1, 0, 2] }]);
    }

    #[test]
    fn batches_and_nan() {
        let v = vec![
            f32::NAN, 1.0, // item 0: class 0
            2.0, 0.0, // item 0: class 1
            0.0, 0.0, // item 1: class 0
            0.0, 1.0, // item 1: class 1
        ];
        let t = Tensor::from_f32(Shape::from([2, 2, 2, 1]), v).unwrap();
        let masks = argmax_mask(&t).unwrap();
        assert_eq!(masks[0].classes, vec![1, 0]);
        assert_eq!(masks[1].classes, vec![0, 1]);
        assert_eq!((masks[1].h, masks[1].w), (2, 1));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let t = Tensor::from_f32(Shape::from([1, 2, 2]), vec![0.0; 4]).unwrap();
        assert!(argmax_mask(&t).is_err());
        let t = Tensor::from_f32(Shape::from([1, 0, 2, 2]), vec![]).unwrap();
        assert!(argmax_mask(&t).is_err());
        let t = Tensor::from_f32(Shape::from([2, 3, 0, 4]), vec![]).unwrap();
        assert_eq!(argmax_mask(&t).unwrap().len(), 2);
    }
}
