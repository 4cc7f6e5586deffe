//! The byte layout: header, section-table entries and section kinds. All
//! integers are little-endian. `docs/artifact-format.md` is this file's twin.

use std::fmt;

use crate::arch::{Arch, FeatureSet};

/// The first 8 bytes of every `.kann` file.
pub const MAGIC: [u8; 8] = *b"KANN\0ART";
/// The format major version this kann writes and reads. A file of another
/// major is refused.
pub const FORMAT_MAJOR: u16 = 1;
/// The format minor version this kann writes. Files of any minor of
/// [`FORMAT_MAJOR`] are read; what a newer minor adds is skipped.
pub const FORMAT_MINOR: u16 = 0;
/// Bytes in the fixed header.
pub const HEADER_LEN: usize = 64;
/// Bytes in one section-table entry.
pub const ENTRY_LEN: usize = 64;
/// Every payload starts at a multiple of this (or of its own larger
/// alignment): enough for any SIMD load, so a mapped section is usable as is.
pub const MIN_ALIGN: u64 = 64;
/// Longest section name, in UTF-8 bytes.
pub const MAX_NAME_LEN: usize = 24;

/// Bytes of the header covered by the header checksum (all but the checksum).
pub(crate) const HEADER_CHECKED_LEN: usize = 56;

/// A format version, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FormatVersion {
    pub major: u16,
    pub minor: u16,
}

impl FormatVersion {
    /// The version this kann writes.
    pub const CURRENT: FormatVersion = FormatVersion {
        major: FORMAT_MAJOR,
        minor: FORMAT_MINOR,
    };
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What a section holds. The format does not interpret payloads; the kinds
/// let the runtime find its parts. Ids a reader does not know read as
/// [`SectionKind::Unknown`] and are skipped by lookups (they still must be
/// in bounds and pass their checksum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SectionKind {
    /// Tensor metadata: inputs, outputs, dtypes, shapes, layouts.
    Metadata,
    /// One cluster's command list; the section index is the cluster.
    Program,
    /// Buffer offsets and sizes in the arena.
    MemoryPlan,
    /// Pre-packed weights, mapped without copying.
    Weights,
    /// A string table (kernel and layer names).
    Strings,
    /// A kind written by a newer kann.
    Unknown(u32),
}

impl SectionKind {
    /// The known kinds.
    pub const KNOWN: [SectionKind; 5] = [
        SectionKind::Metadata,
        SectionKind::Program,
        SectionKind::MemoryPlan,
        SectionKind::Weights,
        SectionKind::Strings,
    ];

    /// The id stored in the section table.
    pub fn id(self) -> u32 {
        match self {
            SectionKind::Metadata => 1,
            SectionKind::Program => 2,
            SectionKind::MemoryPlan => 3,
            SectionKind::Weights => 4,
            SectionKind::Strings => 5,
            SectionKind::Unknown(id) => id,
        }
    }

    /// The kind of a table id (so `Unknown(1)` never exists after a read).
    pub fn from_id(id: u32) -> SectionKind {
        match id {
            1 => SectionKind::Metadata,
            2 => SectionKind::Program,
            3 => SectionKind::MemoryPlan,
            4 => SectionKind::Weights,
            5 => SectionKind::Strings,
            other => SectionKind::Unknown(other),
        }
    }

    pub fn is_known(self) -> bool {
        !matches!(self, SectionKind::Unknown(_))
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SectionKind::Metadata => f.write_str("Metadata"),
            SectionKind::Program => f.write_str("Program"),
            SectionKind::MemoryPlan => f.write_str("MemoryPlan"),
            SectionKind::Weights => f.write_str("Weights"),
            SectionKind::Strings => f.write_str("Strings"),
            SectionKind::Unknown(id) => write!(f, "unknown kind {id}"),
        }
    }
}

/// A section's position in the section table (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SectionId(pub u32);

impl fmt::Display for SectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The decoded fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: FormatVersion,
    /// Reserved for flags a later minor defines; readers ignore bits they do
    /// not know, writers of 1.0 write 0.
    pub flags: u32,
    pub arch: Arch,
    pub required_features: FeatureSet,
    pub section_count: u32,
    pub table_offset: u64,
    pub file_len: u64,
    pub table_checksum: u64,
}

impl Header {
    /// The 64 header bytes, checksum included.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.version.minor.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..20].copy_from_slice(&self.arch.id().to_le_bytes());
        b[20..24].copy_from_slice(&self.section_count.to_le_bytes());
        b[24..32].copy_from_slice(&self.required_features.bits().to_le_bytes());
        b[32..40].copy_from_slice(&self.table_offset.to_le_bytes());
        b[40..48].copy_from_slice(&self.file_len.to_le_bytes());
        b[48..56].copy_from_slice(&self.table_checksum.to_le_bytes());
        let sum = crate::checksum::checksum(&b[..HEADER_CHECKED_LEN]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Decodes the 64 header bytes; the caller checked magic, version and
    /// checksum.
    pub(crate) fn decode(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            version: FormatVersion {
                major: le_u16(b, 8),
                minor: le_u16(b, 10),
            },
            flags: le_u32(b, 12),
            arch: Arch::from_id(le_u32(b, 16)),
            section_count: le_u32(b, 20),
            required_features: FeatureSet::from_bits(le_u64(b, 24)),
            table_offset: le_u64(b, 32),
            file_len: le_u64(b, 40),
            table_checksum: le_u64(b, 48),
        }
    }
}

/// One decoded section-table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    pub id: SectionId,
    pub kind: SectionKind,
    /// Distinguishes sections of one kind: the cluster of a Program section,
    /// 0 where there is only one.
    pub index: u32,
    /// A short UTF-8 label (at most [`MAX_NAME_LEN`] bytes), for messages and
    /// `kann inspect`.
    pub name: String,
    /// Payload start, from the start of the file.
    pub offset: u64,
    /// Payload length in bytes.
    pub len: u64,
    /// The payload's alignment: a power of two, at least [`MIN_ALIGN`].
    pub align: u64,
    /// Reserved; 1.0 writers write 0 and readers ignore it.
    pub flags: u32,
    /// XXH64 of the payload.
    pub checksum: u64,
}

impl SectionInfo {
    /// End of the payload (exclusive), if it does not overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.len)
    }
}

/// Prints as `section #2 "weights" (Weights)`, the locator every message uses.
impl fmt::Display for SectionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "section {} \"{}\" ({}",
            self.id,
            self.name.escape_debug(),
            self.kind
        )?;
        if self.kind == SectionKind::Program || self.index != 0 {
            write!(f, " {}", self.index)?;
        }
        f.write_str(")")
    }
}

/// Entry layout: kind u32 | index u32 | offset u64 | len u64 | checksum u64 |
/// align_log2 u8 | 3 reserved bytes (0, ignored) | flags u32 | name [u8; 24] NUL-padded.
pub(crate) fn encode_entry(s: &SectionInfo) -> [u8; ENTRY_LEN] {
    let mut b = [0u8; ENTRY_LEN];
    b[0..4].copy_from_slice(&s.kind.id().to_le_bytes());
    b[4..8].copy_from_slice(&s.index.to_le_bytes());
    b[8..16].copy_from_slice(&s.offset.to_le_bytes());
    b[16..24].copy_from_slice(&s.len.to_le_bytes());
    b[24..32].copy_from_slice(&s.checksum.to_le_bytes());
    b[32] = s.align.trailing_zeros() as u8;
    b[36..40].copy_from_slice(&s.flags.to_le_bytes());
    b[40..40 + s.name.len()].copy_from_slice(s.name.as_bytes());
    b
}

/// Raw entry fields before validation: the name bytes and alignment exponent
/// are checked by the reader, which knows how to word the error.
pub(crate) struct RawEntry {
    pub kind: u32,
    pub index: u32,
    pub offset: u64,
    pub len: u64,
    pub checksum: u64,
    pub align_log2: u8,
    pub flags: u32,
    pub name: [u8; MAX_NAME_LEN],
}

pub(crate) fn decode_entry(b: &[u8]) -> RawEntry {
    let mut name = [0u8; MAX_NAME_LEN];
    name.copy_from_slice(&b[40..64]);
    RawEntry {
        kind: le_u32(b, 0),
        index: le_u32(b, 4),
        offset: le_u64(b, 8),
        len: le_u64(b, 16),
        checksum: le_u64(b, 24),
        align_log2: b[32],
        flags: le_u32(b, 36),
        name,
    }
}

pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Checks a section name for the writer: 1 to 24 bytes of UTF-8 with no NUL.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("the name is empty".into())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!(
            "the name is {} bytes long, the limit is {MAX_NAME_LEN}",
            name.len()
        ))
    } else if name.contains('\0') {
        Some("the name contains a NUL byte".into())
    } else {
        None
    }
}
