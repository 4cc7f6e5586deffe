//! kann-io owns what crosses the boundary between kann and the user's files:
//! named tensor sets in a folder (`<name>.npy`, raw `<name>.bin`), and
//! [`diff`], the metrics and verdict that compare outputs with a reference.
//! [`post`] decodes network outputs (top-k classes, YOLO boxes with NMS,
//! segmentation masks). Later it also owns input preparation. It depends only
//! on kann-tensor.

pub mod diff;
pub mod post;
mod error;
pub mod stream;
pub mod tensor_set;

pub use error::IoError;
