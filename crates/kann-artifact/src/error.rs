use std::path::PathBuf;

use crate::arch::{Arch, CpuFamily, FeatureSet};
use crate::format::{FormatVersion, SectionKind, FORMAT_MAJOR, HEADER_LEN};

/// Everything that can go wrong writing, reading or viewing an artifact.
/// Each message is one line; [`Artifact::open`](crate::Artifact::open) and
/// [`ArtifactWriter::write_to`](crate::ArtifactWriter::write_to) wrap errors
/// in [`ArtifactError::File`] so the line starts with the path. Match on
/// [`ArtifactError::root`] to ignore that wrapper.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The file at fault and what is wrong with it. `error` is part of the
    /// message, not a `source`, so a chained print (`{:#}`) says it once.
    #[error("{}: {error}", path.display())]
    File {
        path: PathBuf,
        error: Box<ArtifactError>,
    },

    #[error("{0}")]
    Io(#[from] std::io::Error),

    #[error("not a kann artifact (it does not start with the magic bytes \"KANN\\0ART\")")]
    NotKann,

    #[error("made by a newer kann (format {found}; this kann reads {FORMAT_MAJOR}.x): regenerate it or update kann")]
    NewerFormat { found: FormatVersion },

    #[error(
        "made by an older kann (format {found}; this kann reads {FORMAT_MAJOR}.x): regenerate it"
    )]
    OlderFormat { found: FormatVersion },

    #[error("truncated kann artifact: {actual} bytes, shorter than the {HEADER_LEN}-byte header")]
    TruncatedHeader { actual: u64 },

    #[error("truncated kann artifact: expected {expected} bytes, found {actual}")]
    Truncated { expected: u64, actual: u64 },

    #[error(
        "corrupt kann artifact: expected {expected} bytes, found {actual} (data after the end)"
    )]
    TrailingBytes { expected: u64, actual: u64 },

    #[error("corrupt kann artifact: checksum mismatch in {region}")]
    Checksum { region: String },

    #[error(
        "corrupt kann artifact: non-zero byte at offset {offset}, in padding outside every section"
    )]
    NonZeroPadding { offset: u64 },

    #[error("corrupt kann artifact: {reason}")]
    BadHeader { reason: String },

    #[error("corrupt kann artifact: {section}: {reason}")]
    BadSection { section: String, reason: String },

    #[error("corrupt kann artifact: {section} (bytes {start}..{end}) lies outside the {file_len}-byte file")]
    SectionOutOfBounds {
        section: String,
        start: u64,
        end: u128,
        file_len: u64,
    },

    #[error("corrupt kann artifact: {first} (bytes {first_start}..{first_end}) overlaps {second} (bytes {second_start}..{second_end})")]
    SectionOverlap {
        first: String,
        first_start: u64,
        first_end: u64,
        second: String,
        second_start: u64,
        second_end: u64,
    },

    #[error("corrupt kann artifact: two sections are {kind} {index}")]
    DuplicateSection { kind: SectionKind, index: u32 },

    #[error("{}", arch_mismatch(*arch, *family, *missing, *host))]
    ArchMismatch {
        arch: Arch,
        family: Option<CpuFamily>,
        missing: FeatureSet,
        host: CpuFamily,
    },

    #[error("the artifact has no section {0}")]
    NoSuchSection(u32),

    #[error("{section} cannot be viewed as [{ty}]: {reason}")]
    BadView {
        section: String,
        ty: &'static str,
        reason: String,
    },

    #[error("cannot add section \"{name}\": {reason}")]
    InvalidSection { name: String, reason: String },
}

impl ArtifactError {
    /// The error without its [`ArtifactError::File`] wrapper.
    pub fn root(&self) -> &ArtifactError {
        match self {
            ArtifactError::File { error, .. } => error.root(),
            other => other,
        }
    }

    pub(crate) fn in_file(self, path: &std::path::Path) -> ArtifactError {
        match self {
            e @ ArtifactError::File { .. } => e,
            e => ArtifactError::File {
                path: path.to_path_buf(),
                error: Box::new(e),
            },
        }
    }
}

fn arch_mismatch(
    arch: Arch,
    family: Option<CpuFamily>,
    missing: FeatureSet,
    host: CpuFamily,
) -> String {
    if let Arch::Unknown(id) = arch {
        return format!("the artifact targets arch id {id}, unknown to this kann: regenerate it for this machine (--arch native)");
    }
    match family {
        Some(fam) if fam != host => format!(
            "the artifact is compiled for {arch} but this CPU is {host}: regenerate it for this machine (--arch native)"
        ),
        _ => format!(
            "the artifact is compiled for {arch} and needs {missing}, which this CPU lacks: regenerate it with --arch native"
        ),
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ArtifactError> = std::result::Result<T, E>;
