//! Output post-processing: turning a model's raw output tensors into results a
//! person reads — top-k classes, detection boxes (YOLO, PicoDet), text boxes (DBNet),
//! segmentation masks.
//!
//! Every function takes plain parameters (thresholds, class names), not
//! kann-config types, so kann-io keeps depending only on kann-tensor. Bad input
//! never panics: a shape that does not fit gives `Err(String)` naming the tensor
//! and what was expected.

pub mod classification;
pub mod dbnet;
pub mod nms;
pub mod picodet;
pub mod segmentation;
pub mod yolo;

pub use classification::{classify, read_class_names, Prediction};
pub use dbnet::{decode_dbnet, DbnetParams, TextBox};
pub use nms::{iou, nms, Detection};
pub use picodet::{decode_picodet, match_picodet_outputs, picodet_anchor_count, picodet_stride};
pub use segmentation::{argmax_mask, Mask};
pub use yolo::{decode_yolov5, decode_yolov8};

/// Orders two scores from best to worst: higher first, NaN last.
pub(crate) fn best_first(a: f32, b: f32) -> std::cmp::Ordering {
    let key = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    key(b).total_cmp(&key(a))
}
