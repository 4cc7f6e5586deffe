//! What can go wrong while preparing inputs: one variant per cause, each
//! displayed as one line naming the file or the input tensor at fault.

use std::path::{Path, PathBuf};

/// An input-preparation failure.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The file or folder cannot be read (missing, permissions, I/O).
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    /// The file has an image extension but does not decode.
    #[error("{}: not a decodable image ({reason})", path.display())]
    Decode { path: PathBuf, reason: String },
    /// The file's extension is neither an image format nor `.npy`.
    #[error("{}: unsupported file type (expected {})", path.display(), crate::decode::EXTENSIONS.join(", "))]
    Unsupported { path: PathBuf },
    /// A folder given as a source holds no image or `.npy` file.
    #[error("no image or .npy file in folder {}", path.display())]
    EmptyFolder { path: PathBuf },
    /// No source at all.
    #[error("no input image given")]
    NoSources,
    /// A `.npy` array whose shape is neither a prepared input nor an image.
    #[error("{}: a {dtype} array of shape {shape:?} is neither input '{input}' ({expected:?}, one batch element) nor an image (HxW or HxWxC with C = 1, 3 or 4, uint8 or float)", path.display())]
    NpyShape {
        path: PathBuf,
        dtype: String,
        shape: Vec<usize>,
        input: String,
        expected: Vec<usize>,
    },
    /// A `.npy` array shaped for the input but for its channel count.
    #[error("{}: holds {found} channels but input '{input}' takes {expected}", path.display())]
    Channels {
        path: PathBuf,
        found: usize,
        expected: usize,
        input: String,
    },
    /// After resize and crop the image is not the network's size.
    #[error("the prepared image is {got_h}x{got_w} (HxW) but input '{input}' takes {net_h}x{net_w}; fix preprocessing.resize / center_crop")]
    Size {
        input: String,
        got_h: usize,
        got_w: usize,
        net_h: usize,
        net_w: usize,
    },
    /// A center crop larger than the image it crops.
    #[error("center_crop {crop_h}x{crop_w} is larger than the {h}x{w} (HxW) image it crops")]
    Crop {
        crop_h: usize,
        crop_w: usize,
        h: usize,
        w: usize,
    },
    /// The input tensor is not an image (rank 4 with 1 or 3 channels).
    #[error("input '{input}' of shape {shape:?} is not an image input ({reason})")]
    NotImage {
        input: String,
        shape: Vec<usize>,
        reason: String,
    },
    /// The network has no or several image inputs.
    #[error("kann prepare feeds exactly one image input, the network has {count} ({names})")]
    ImageInputs { count: usize, names: String },
    /// The preprocessing block does not fit the input.
    #[error("preprocessing for input '{input}': {reason}")]
    Config { input: String, reason: String },
    /// A requested batch size that is not the artifact's.
    #[error("batch size {requested} requested but input '{input}' was generated with batch {batch}; regenerate with --forced-batch-size {requested} or drop --batch-size")]
    Batch {
        requested: usize,
        batch: usize,
        input: String,
    },
    /// Any of the above, for one source file.
    #[error("{}: {error}", path.display())]
    At {
        path: PathBuf,
        error: Box<PrepareError>,
    },
}

impl PrepareError {
    /// `self`, naming `path` unless the message already names a file.
    pub fn at(self, path: &Path) -> PrepareError {
        match self {
            PrepareError::Size { .. } | PrepareError::Crop { .. } => PrepareError::At {
                path: path.to_path_buf(),
                error: Box::new(self),
            },
            other => other,
        }
    }
}

/// Result of the preparation functions.
pub type Result<T> = std::result::Result<T, PrepareError>;
