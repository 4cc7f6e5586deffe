use std::fmt;
use std::path::PathBuf;

/// Where in the YAML file something sits: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// `file` or `file:line:column`, the prefix every error message starts with.
fn at(file: &std::path::Path, loc: &Option<Location>) -> String {
    match loc {
        Some(l) => format!("{}:{l}", file.display()),
        None => file.display().to_string(),
    }
}

/// Errors loading a network configuration. Every variant names the file; the
/// key-level ones name the key path (`generate_options.nbr_clusters`) and,
/// where the YAML has one, the line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file itself cannot be read (missing, too large, not UTF-8).
    #[error("{}: {reason}", file.display())]
    Read { file: PathBuf, reason: String },
    /// The text is not well-formed YAML.
    #[error("{}: malformed YAML: {reason}", at(file, &Some(*location)))]
    Syntax {
        file: PathBuf,
        location: Location,
        reason: String,
    },
    /// A key has the wrong type or value, or a required key is missing.
    #[error("{}: {key}: {reason}", at(file, location))]
    Key {
        file: PathBuf,
        key: String,
        location: Option<Location>,
        reason: String,
    },
    /// A key names a file or folder that does not exist (resolved relative to
    /// the YAML file's folder).
    #[error("{}: {key}: file not found: {}", at(file, location), path.display())]
    MissingFile {
        file: PathBuf,
        key: String,
        location: Option<Location>,
        path: PathBuf,
    },
}

impl ConfigError {
    /// The dotted key path at fault, when the error is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } | ConfigError::MissingFile { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The line and column at fault, when known.
    pub fn location(&self) -> Option<Location> {
        match self {
            ConfigError::Syntax { location, .. } => Some(*location),
            ConfigError::Key { location, .. } | ConfigError::MissingFile { location, .. } => {
                *location
            }
            ConfigError::Read { .. } => None,
        }
    }
}
