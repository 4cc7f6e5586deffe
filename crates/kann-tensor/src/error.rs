use crate::{DType, Shape};

/// Errors from building, converting or (de)serialising tensors.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("shape {shape} holds {expected} elements but {actual} values were given")]
    LengthMismatch { shape: Shape, expected: usize, actual: usize },
    #[error("tensor of {elements} elements is larger than the limit of {limit}")]
    TooLarge { elements: u128, limit: usize },
    #[error("expected a {expected} tensor, found {actual}")]
    WrongDType { expected: DType, actual: DType },
    #[error("npy: {0}")]
    Npy(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
