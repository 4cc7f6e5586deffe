/// Errors of the compiler. `node` strings are locators like
/// `node #12 "Conv_3" (Conv)`.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A graph edit that would break the graph's invariants.
    #[error("{node}: invalid edit: {reason}")]
    Edit { node: String, reason: String },
    /// Evaluating a constant node failed.
    #[error("{node}: constant folding failed: {reason}")]
    Fold { node: String, reason: String },
    /// The graph does not verify after an edit.
    #[error("the edited graph is invalid: {source}")]
    Invalid {
        #[source]
        source: kann_ir::IrError,
    },
    /// A pass left the graph invalid or failed; names the pass.
    #[error("pass {pass}: {source}")]
    Pass {
        pass: &'static str,
        #[source]
        source: Box<CompileError>,
    },
    /// The graph given to the pipeline does not verify.
    #[error("the input graph is invalid: {source}")]
    InvalidInput {
        #[source]
        source: kann_ir::IrError,
    },
}
