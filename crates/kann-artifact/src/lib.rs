//! kann-artifact owns the `.kann` container format: the fixed header (magic,
//! format version, target arch, required CPU features, checksums), the
//! section table, and 64-byte-aligned section payloads that the runtime maps
//! without copying. It knows nothing of what the compiler puts in the
//! sections: it must not depend on kann-ir, kann-onnx or the compiler, so the
//! runtime can link it alone. The byte layout and version policy are written
//! down in `docs/artifact-format.md`.
//!
//! - [`ArtifactWriter`] adds sections and writes a file atomically.
//! - [`Artifact::open`] maps a file and validates every byte up front;
//!   [`Artifact::from_bytes`] does the same for bytes in memory. Each refusal
//!   is one line ([`ArtifactError`]).
//! - [`Artifact::check_cpu`] refuses an artifact this CPU cannot run, against
//!   [`CpuFeatures::detect`] or a hand-made [`CpuFeatures`].
//!
//! ```
//! use kann_artifact::{Arch, Artifact, ArtifactWriter, CpuFeatures, CpuFamily, Feature, SectionKind};
//! let mut w = ArtifactWriter::new(Arch::X86_64V3);
//! w.add_section(SectionKind::Metadata, 0, "metadata", &b"inputs: [x]"[..]).unwrap();
//! w.add_section(SectionKind::Program, 0, "program.0", vec![1, 2, 3]).unwrap();
//! w.add_f32_section(SectionKind::Weights, 0, "weights", &[0.5; 16]).unwrap();
//! let artifact = Artifact::from_bytes(&w.to_bytes().unwrap()).unwrap();
//!
//! let weights = artifact.find(SectionKind::Weights, 0).unwrap().id;
//! assert_eq!(artifact.section_f32(weights).unwrap().len(), 16);
//!
//! let old_cpu = CpuFeatures::new(CpuFamily::X86_64, Feature::Avx.into());
//! let err = artifact.check_cpu(&old_cpu).unwrap_err();
//! assert!(err.to_string().contains("needs avx2, fma, f16c"));
//! ```

mod arch;
pub mod checksum;
mod error;
mod format;
mod reader;
mod writer;

pub use arch::{Arch, CpuFamily, CpuFeatures, Feature, FeatureSet};
pub use error::{ArtifactError, Result};
pub use format::{
    FormatVersion, Header, SectionId, SectionInfo, SectionKind, ENTRY_LEN, FORMAT_MAJOR,
    FORMAT_MINOR, HEADER_LEN, MAGIC, MAX_NAME_LEN, MIN_ALIGN,
};
pub use reader::{Artifact, Plain};
pub use writer::{ArtifactWriter, MAX_ALIGN};
