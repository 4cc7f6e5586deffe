//! From a network's output tensors to an [`Outcome`], as the configuration's
//! `postprocessing` block says. Only the first item of the batch is decoded
//! (`kann demo` runs one image at a time).

use kann_config::{PostKind, Postprocessing};
use kann_io::post::{
    argmax_mask, classify, decode_dbnet, decode_picodet, decode_yolov5, decode_yolov8,
    match_picodet_outputs, DbnetParams, Detection,
};
use kann_tensor::Tensor;

use super::Outcome;

/// Decodes `outputs` (name and tensor, in the network's output order) by
/// `post.kind`:
///
/// - `classification`: the first output, its `top_k` best classes, named from
///   `class_names`;
/// - `yolov5` / `yolov8`: the first output, boxes whose score is at least
///   `conf_threshold`, per-class NMS at `iou_threshold`, the `max_detections`
///   best;
/// - `picodet`: all outputs `[N, A, _]`, two per FPN level (strides 8, 16,
///   32, ...): split into score and box-distribution heads by their last axis
///   (or, when that is the same, first half scores, second half boxes, as
///   PaddleDetection exports them), then paired with the levels by their anchor
///   count `A = ceil(H / stride) · ceil(W / stride)` for the network input
///   `input_hw = [H, W]` — see [`match_picodet_outputs`]; then as for YOLO;
/// - `dbnet`: the first output, the probability map, with `conf_threshold` as
///   the box threshold and RapidOCR's other defaults ([`DbnetParams`]);
/// - `segmentation`: the first output `[N, C, H, W]`, the argmax class per pixel;
/// - `none`: [`Outcome::None`].
///
/// `input_hw` is only used by `picodet`. Coordinates are network-input pixels.
pub fn postprocess(
    post: &Postprocessing,
    class_names: &[String],
    outputs: &[(String, Tensor)],
    input_hw: [usize; 2],
) -> Result<Outcome, String> {
    if post.kind == PostKind::None {
        return Ok(Outcome::None);
    }
    let Some((first_name, first)) = outputs.first() else {
        return Err(format!(
            "{} post-processing: the network has no outputs",
            post.kind
        ));
    };
    let conf = post.conf_threshold as f32;
    let iou = post.iou_threshold as f32;
    let named = |e: String| format!("output '{first_name}': {e}");
    match post.kind {
        PostKind::Classification => {
            let names = (!class_names.is_empty()).then_some(class_names);
            let rows = classify(first, post.top_k, names).map_err(named)?;
            Ok(Outcome::Classes(first_item(rows, first_name)?))
        }
        PostKind::Yolov5 | PostKind::Yolov8 => {
            let decode = if post.kind == PostKind::Yolov5 {
                decode_yolov5
            } else {
                decode_yolov8
            };
            let items = decode(first, conf, iou).map_err(named)?;
            Ok(Outcome::Boxes(best(
                first_item(items, first_name)?,
                post.max_detections,
            )))
        }
        PostKind::Picodet => picodet(post, outputs, input_hw),
        PostKind::Dbnet => {
            let params = DbnetParams {
                box_thresh: conf,
                ..DbnetParams::default()
            };
            let items = decode_dbnet(first, &params).map_err(named)?;
            Ok(Outcome::Texts(first_item(items, first_name)?))
        }
        PostKind::Segmentation => {
            let masks = argmax_mask(first).map_err(named)?;
            Ok(Outcome::Mask(first_item(masks, first_name)?))
        }
        PostKind::None => Ok(Outcome::None),
    }
}

/// PicoDet: pair the outputs with levels, then decode.
fn picodet(
    post: &Postprocessing,
    outputs: &[(String, Tensor)],
    input_hw: [usize; 2],
) -> Result<Outcome, String> {
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    let tensors: Vec<&Tensor> = outputs.iter().map(|(_, t)| t).collect();
    let (scores, dists) = match_picodet_outputs(&names, &tensors, input_hw)?;
    let items = decode_picodet(
        &scores,
        &dists,
        input_hw,
        post.conf_threshold as f32,
        post.iou_threshold as f32,
        post.max_detections,
    )?;
    Ok(Outcome::Boxes(first_item(items, &outputs[0].0)?))
}

/// The first batch item; an error when the batch is empty.
fn first_item<T>(items: Vec<T>, name: &str) -> Result<T, String> {
    items
        .into_iter()
        .next()
        .ok_or_else(|| format!("output '{name}' has an empty batch (N = 0)"))
}

/// The `max` best detections (they come sorted best first).
fn best(mut boxes: Vec<Detection>, max: usize) -> Vec<Detection> {
    boxes.truncate(max);
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::Shape;

    fn out(name: &str, dims: &[usize], v: Vec<f32>) -> (String, Tensor) {
        (
            name.to_string(),
            Tensor::from_f32(Shape::from(dims), v).unwrap(),
        )
    }

    #[test]
    fn classification_uses_top_k_and_names() {
        let mut post = Postprocessing::new(PostKind::Classification);
        post.top_k = 2;
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let outs = [out("prob", &[1, 3], vec![0.2, 0.5, 0.3])];
        let Outcome::Classes(p) = postprocess(&post, &names, &outs, [1, 1]).unwrap() else {
            panic!("not classes")
        };
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].class, p[0].name.as_deref()), (1, Some("b")));
    }

    #[test]
    fn yolo_respects_max_detections() {
        let mut post = Postprocessing::new(PostKind::Yolov8);
        // Two far-apart class-0 boxes, scores 0.9 and 0.8.
        let v = vec![10.0, 50.0, 10.0, 50.0, 4.0, 4.0, 4.0, 4.0, 0.9, 0.8];
        let outs = [out("y", &[1, 5, 2], v)];
        let Outcome::Boxes(b) = postprocess(&post, &[], &outs, [64, 64]).unwrap() else {
            panic!("not boxes")
        };
        assert_eq!(b.len(), 2);
        post.max_detections = 1;
        let Outcome::Boxes(b) = postprocess(&post, &[], &outs, [64, 64]).unwrap() else {
            panic!("not boxes")
        };
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].score, 0.9);
    }

    #[test]
    fn picodet_matches_levels_by_shape() {
        let post = Postprocessing::new(PostKind::Picodet);
        // 8x8 input: one level-0 anchor (stride 8), one class scoring 0.9;
        // level 1 (stride 16) one anchor scoring 0.
        let outs = [
            out("s0", &[1, 1, 1], vec![0.9]),
            out("s1", &[1, 1, 1], vec![0.0]),
            out("d0", &[1, 1, 32], vec![0.0; 32]),
            out("d1", &[1, 1, 32], vec![0.0; 32]),
        ];
        let Outcome::Boxes(b) = postprocess(&post, &[], &outs, [8, 8]).unwrap() else {
            panic!("not boxes")
        };
        assert_eq!(b.len(), 1);
        // Uniform bins: 3.5 × 8 = 28 each side of (4, 4), clipped to the input.
        assert_eq!([b[0].x0, b[0].y0, b[0].x1, b[0].y1], [0.0, 0.0, 8.0, 8.0]);
        let err = postprocess(&post, &[], &outs, [64, 64]).unwrap_err();
        assert!(err.contains("picodet level 0"), "{err}");
    }

    #[test]
    fn dbnet_segmentation_and_none() {
        let mut map = vec![0.0; 20 * 20];
        for y in 5..12 {
            for x in 3..15 {
                map[y * 20 + x] = 0.8;
            }
        }
        let mut post = Postprocessing::new(PostKind::Dbnet);
        let outs = [out("m", &[1, 1, 20, 20], map)];
        let Outcome::Texts(t) = postprocess(&post, &[], &outs, [20, 20]).unwrap() else {
            panic!("not texts")
        };
        assert_eq!(t.len(), 1);
        post.conf_threshold = 0.9;
        let Outcome::Texts(t) = postprocess(&post, &[], &outs, [20, 20]).unwrap() else {
            panic!("not texts")
        };
        assert!(t.is_empty());

        let post = Postprocessing::new(PostKind::Segmentation);
        let outs = [out("seg", &[1, 2, 1, 2], vec![1.0, 0.0, 0.0, 1.0])];
        let Outcome::Mask(m) = postprocess(&post, &[], &outs, [1, 2]).unwrap() else {
            panic!("not a mask")
        };
        assert_eq!(m.classes, vec![0, 1]);
        let none = Postprocessing::new(PostKind::None);
        assert_eq!(postprocess(&none, &[], &[], [1, 1]).unwrap(), Outcome::None);
    }

    #[test]
    fn errors_name_the_output() {
        let post = Postprocessing::new(PostKind::Yolov5);
        let outs = [out("head", &[4], vec![0.0; 4])];
        let err = postprocess(&post, &[], &outs, [8, 8]).unwrap_err();
        assert!(err.contains("'head'"), "{err}");
        assert!(postprocess(&post, &[], &[], [8, 8]).is_err());
        let post = Postprocessing::new(PostKind::Classification);
        let outs = [out("p", &[0, 3], vec![])];
        assert!(postprocess(&post, &[], &outs, [8, 8])
            .unwrap_err()
            .contains("empty batch"));
    }
}
