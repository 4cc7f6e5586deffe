//! kann-tensor owns the vocabulary every other crate speaks: element types
//! ([`DType`]), shapes ([`Shape`]) and plain host tensors ([`Tensor`]), plus the
//! `.npy` file format. It depends on nothing of kann's own.
//!
//! ```
//! use kann_tensor::{Tensor, Shape};
//! let t = Tensor::from_f32(Shape::from([2, 3]), vec![0.0; 6]).unwrap();
//! assert_eq!(t.shape().numel(), 6);
//! ```

mod dtype;
mod error;
pub mod npy;
mod shape;
mod tensor;

pub use dtype::DType;
pub use error::TensorError;
pub use half::{bf16, f16};
pub use shape::Shape;
pub use tensor::{Data, Tensor};

/// Largest number of elements a single tensor may hold (2^32, i.e. 16 GiB of
/// f32, far beyond any vision network's tensors). Anything above is refused
/// before allocation: such sizes only come from corrupt or hostile files.
pub const MAX_ELEMENTS: usize = 1 << 32;
