//! Everything the runtime can refuse, each as one line.

use kann_artifact::ArtifactError;

/// Errors of [`crate::Service`]. Every message is one line that says what is
/// wrong and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The artifact file itself was refused (magic, version, checksum,
    /// truncation, arch/CPU); the message starts with the path.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),

    /// A section the runtime needs is absent.
    #[error("{path}: the artifact has no {what} section: regenerate it with `kann generate`")]
    MissingSection { path: String, what: String },

    /// The program sections do not decode or do not validate.
    #[error("{path}: invalid program: {reason}")]
    Program { path: String, reason: String },

    /// The device (core list, pinning, threads, memory) cannot be set up.
    #[error("cannot start the device: {0}")]
    Device(String),

    /// `process_frame` before `init_device`.
    #[error("the service has no device: call init_device first")]
    NotInitialized,

    #[error("expected {expected} {what} buffers, got {got}")]
    Count { what: &'static str, expected: usize, got: usize },

    /// An input or output slice of the wrong size, naming the tensor.
    #[error("{what} '{name}' needs {expected} bytes ({shape:?} {dtype}), got {got}")]
    Length { what: &'static str, name: String, shape: Vec<usize>, dtype: &'static str, expected: usize, got: usize },

    /// A kernel panicked (a program the validation could not fully check,
    /// such as kernel parameters that disagree with buffer sizes).
    #[error("kernel of step #{step} '{name}' failed on cluster {cluster}: the program is inconsistent, regenerate it")]
    KernelPanic { step: usize, name: String, cluster: usize },
}
