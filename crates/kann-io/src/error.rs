/// Errors reading or writing tensor files, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Other(String),
}

impl IoError {
    pub fn file(path: &std::path::Path, reason: impl std::fmt::Display) -> IoError {
        IoError::File { path: path.display().to_string(), reason: reason.to_string() }
    }
}
