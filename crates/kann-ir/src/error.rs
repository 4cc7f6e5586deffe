/// Errors raised while building or checking a graph. `node` strings are
/// locators like `node #12 "Conv_3" (Conv)`.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    /// An op's inputs do not fit its contract (shapes, dtypes, missing input).
    #[error("{node}: {reason}")]
    Infer { node: String, reason: String },
    /// Constant folding of a node failed.
    #[error("{node}: constant folding failed: {reason}")]
    Fold { node: String, reason: String },
    #[error("invalid graph: {0}")]
    Invalid(String),
}
