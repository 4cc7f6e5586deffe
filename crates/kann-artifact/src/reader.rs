use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use memmap2::{Mmap, MmapMut};

use crate::arch::{CpuFeatures, FeatureSet};
use crate::checksum::checksum;
use crate::error::{ArtifactError, Result};
use crate::format::{
    decode_entry, le_u16, le_u64, FormatVersion, Header, SectionId, SectionInfo, SectionKind,
    ENTRY_LEN, FORMAT_MAJOR, HEADER_CHECKED_LEN, HEADER_LEN, MAGIC, MAX_NAME_LEN, MIN_ALIGN,
};

/// Largest alignment exponent a reader accepts (2^40).
const MAX_ALIGN_LOG2: u8 = 40;

/// A validated, read-only `.kann` artifact. Opening checks everything up
/// front (magic, version, header and table checksums, bounds, overlaps,
/// every section's checksum, zero padding), so the accessors never fail on
/// a corrupt file: once you hold an `Artifact`, its bytes are the ones the
/// writer wrote. The CPU check is separate: [`Artifact::check_cpu`].
pub struct Artifact {
    /// Page-aligned bytes: the mapped file, or an anonymous map holding a
    /// copy for [`Artifact::from_bytes`]. Either way a section's address is
    /// aligned as its offset is.
    map: Mmap,
    header: Header,
    sections: Vec<SectionInfo>,
}

impl fmt::Debug for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Artifact")
            .field("header", &self.header)
            .field("sections", &self.sections)
            .finish()
    }
}

impl Artifact {
    /// Maps `path` and validates it. Errors are one line starting with the
    /// path.
    pub fn open(path: impl AsRef<Path>) -> Result<Artifact> {
        let path = path.as_ref();
        Artifact::open_inner(path).map_err(|e| e.in_file(path))
    }

    fn open_inner(path: &Path) -> Result<Artifact> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if len < HEADER_LEN as u64 {
            // Too short to map usefully (and empty maps are awkward): read it
            // and let validation word the refusal.
            let bytes = std::fs::read(path)?;
            validate(&bytes)?;
            return Err(ArtifactError::TruncatedHeader {
                actual: bytes.len() as u64,
            });
        }
        // SAFETY: the map is read-only and private to this process. Rust's
        // aliasing rules assume its bytes never change while mapped, which
        // holds unless another process writes or truncates the file in place;
        // kann never does (ArtifactWriter replaces files by rename, so a
        // mapped inode is never modified). An outside program editing a
        // loaded artifact is outside what kann can guard against, as for
        // every memory-mapped format.
        let map = unsafe { Mmap::map(&file)? };
        let (header, sections) = validate(&map)?;
        Ok(Artifact {
            map,
            header,
            sections,
        })
    }

    /// Validates `bytes` and keeps a copy in page-aligned memory, so typed
    /// views work whatever the alignment of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Artifact> {
        let (header, sections) = validate(bytes)?;
        let mut map = MmapMut::map_anon(bytes.len())?;
        map.copy_from_slice(bytes);
        Ok(Artifact {
            map: map.make_read_only()?,
            header,
            sections,
        })
    }

    /// Checks `bytes` as [`Artifact::from_bytes`] does, without keeping them.
    pub fn validate(bytes: &[u8]) -> Result<()> {
        validate(bytes).map(|_| ())
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn version(&self) -> FormatVersion {
        self.header.version
    }

    pub fn arch(&self) -> crate::Arch {
        self.header.arch
    }

    pub fn required_features(&self) -> FeatureSet {
        self.header.required_features
    }

    /// The whole file.
    pub fn as_bytes(&self) -> &[u8] {
        &self.map
    }

    /// Every section in table order, unknown kinds included (for inspection;
    /// [`find`](Self::find) and [`find_all`](Self::find_all) skip them by
    /// construction).
    pub fn sections(&self) -> &[SectionInfo] {
        &self.sections
    }

    pub fn section(&self, id: SectionId) -> Result<&SectionInfo> {
        self.sections
            .get(id.0 as usize)
            .ok_or(ArtifactError::NoSuchSection(id.0))
    }

    /// The section of `kind` with `index`, if any.
    pub fn find(&self, kind: SectionKind, index: u32) -> Option<&SectionInfo> {
        self.sections
            .iter()
            .find(|s| s.kind == kind && s.index == index)
    }

    /// The sections of `kind`, in table order.
    pub fn find_all(&self, kind: SectionKind) -> impl Iterator<Item = &SectionInfo> {
        self.sections.iter().filter(move |s| s.kind == kind)
    }

    /// A section's payload.
    pub fn section_bytes(&self, id: SectionId) -> Result<&[u8]> {
        let s = self.section(id)?;
        // In bounds: validated at open.
        Ok(&self.map[s.offset as usize..(s.offset + s.len) as usize])
    }

    /// A section's payload as little-endian f32, without copying. Fails if
    /// the length is not a multiple of 4 (or, on a big-endian CPU, always).
    pub fn section_f32(&self, id: SectionId) -> Result<&[f32]> {
        self.section_slice::<f32>(id)
    }

    /// A section's payload as a slice of `T` (a primitive number type),
    /// without copying. Payloads are at least 64-byte aligned in the file and
    /// the storage is page-aligned, so only the length can be wrong.
    pub fn section_slice<T: Plain>(&self, id: SectionId) -> Result<&[T]> {
        let info = self.section(id)?;
        let bytes = self.section_bytes(id)?;
        let bad = |reason: String| ArtifactError::BadView {
            section: info.to_string(),
            ty: T::NAME,
            reason,
        };
        if cfg!(target_endian = "big") && std::mem::size_of::<T>() > 1 {
            return Err(bad(
                "the format is little-endian and this CPU is big-endian".into(),
            ));
        }
        let size = std::mem::size_of::<T>();
        if bytes.len() % size != 0 {
            return Err(bad(format!(
                "its {} bytes are not a multiple of {size}",
                bytes.len()
            )));
        }
        // SAFETY: `T: Plain` is sealed to primitive integers and floats, for
        // which every bit pattern is a valid value and which have no padding
        // or drop glue; `align_to` only yields the middle part at addresses
        // properly aligned for `T`, within `bytes`, and the returned slice
        // borrows `self`, which owns the (immutable) storage.
        let (head, body, tail) = unsafe { bytes.align_to::<T>() };
        if !head.is_empty() || !tail.is_empty() {
            return Err(bad(format!(
                "its address is not aligned to {} bytes",
                std::mem::align_of::<T>()
            )));
        }
        Ok(body)
    }

    /// Refuses an artifact `cpu` cannot run: one of another CPU family, an
    /// arch id this kann does not know, or required features `cpu` lacks
    /// (all of them named).
    pub fn check_cpu(&self, cpu: &CpuFeatures) -> Result<()> {
        let arch = self.header.arch;
        let family = arch.family();
        let required = self.header.required_features;
        // Bits this kann cannot name cannot be checked either: always missing.
        let missing = FeatureSet::from_bits(
            required.difference(cpu.features).bits() | required.unknown_bits(),
        );
        let wrong_family = family.is_some_and(|f| f != cpu.family);
        if matches!(arch, crate::Arch::Unknown(_)) || wrong_family || !missing.is_empty() {
            return Err(ArtifactError::ArchMismatch {
                arch,
                family,
                missing,
                host: cpu.family,
            });
        }
        Ok(())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Primitive number types a section can be viewed as.
///
/// # Safety
/// Implemented only in this crate, for types where any bit pattern is a valid
/// value and that have no padding.
pub unsafe trait Plain: sealed::Sealed + Copy + 'static {
    /// The Rust name, for messages.
    const NAME: &'static str;
}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        // SAFETY: a primitive number: every bit pattern is valid, no padding.
        unsafe impl Plain for $t {
            const NAME: &'static str = stringify!($t);
        }
    )*};
}
plain!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

/// A byte range of the file with the name messages use for it.
struct Region {
    start: u64,
    end: u64,
    name: String,
}

/// Every check, in an order where each one relies only on bytes already
/// proven intact: magic, version, header checksum, length, table bounds,
/// table checksum, entries, overlaps, duplicates, section checksums, padding.
fn validate(bytes: &[u8]) -> Result<(Header, Vec<SectionInfo>)> {
    let actual = bytes.len() as u64;
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(ArtifactError::NotKann);
    }
    if bytes.len() < 12 {
        return Err(ArtifactError::TruncatedHeader { actual });
    }
    // Magic and version are the only bytes whose place is fixed across
    // majors, so the version is judged before the header checksum.
    let found = FormatVersion {
        major: le_u16(bytes, 8),
        minor: le_u16(bytes, 10),
    };
    if found.major > FORMAT_MAJOR {
        return Err(ArtifactError::NewerFormat { found });
    }
    if found.major < FORMAT_MAJOR {
        return Err(ArtifactError::OlderFormat { found });
    }
    if bytes.len() < HEADER_LEN {
        return Err(ArtifactError::TruncatedHeader { actual });
    }
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&bytes[..HEADER_LEN]);
    if checksum(&head[..HEADER_CHECKED_LEN]) != le_u64(&head, HEADER_CHECKED_LEN) {
        return Err(ArtifactError::Checksum {
            region: "the header".into(),
        });
    }
    let header = Header::decode(&head);
    if actual < header.file_len {
        return Err(ArtifactError::Truncated {
            expected: header.file_len,
            actual,
        });
    }
    if actual > header.file_len {
        return Err(ArtifactError::TrailingBytes {
            expected: header.file_len,
            actual,
        });
    }

    let table_start = header.table_offset;
    let table_end = u128::from(table_start) + u128::from(header.section_count) * ENTRY_LEN as u128;
    if table_start < HEADER_LEN as u64 || table_end > u128::from(actual) {
        return Err(ArtifactError::BadHeader {
            reason: format!(
                "the section table (bytes {table_start}..{table_end}) lies outside the {actual}-byte file or overlaps the header"
            ),
        });
    }
    let table_end = table_end as u64;
    let table = &bytes[table_start as usize..table_end as usize];
    if checksum(table) != header.table_checksum {
        return Err(ArtifactError::Checksum {
            region: "the section table".into(),
        });
    }

    let mut sections = Vec::with_capacity(header.section_count as usize);
    for (i, raw) in table.chunks_exact(ENTRY_LEN).map(decode_entry).enumerate() {
        let id = SectionId(i as u32);
        let name_len = raw
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_NAME_LEN);
        let name =
            std::str::from_utf8(&raw.name[..name_len]).map_err(|_| ArtifactError::BadSection {
                section: format!("section {id}"),
                reason: "its name is not UTF-8".into(),
            })?;
        let info = SectionInfo {
            id,
            kind: SectionKind::from_id(raw.kind),
            index: raw.index,
            name: name.to_string(),
            offset: raw.offset,
            len: raw.len,
            align: 1u64 << raw.align_log2.min(63),
            flags: raw.flags,
            checksum: raw.checksum,
        };
        if !(MIN_ALIGN.trailing_zeros() as u8..=MAX_ALIGN_LOG2).contains(&raw.align_log2) {
            return Err(ArtifactError::BadSection {
                section: info.to_string(),
                reason: format!(
                    "alignment 2^{} is outside 64..=2^{MAX_ALIGN_LOG2}",
                    raw.align_log2
                ),
            });
        }
        let end = u128::from(info.offset) + u128::from(info.len);
        if end > u128::from(actual) {
            return Err(ArtifactError::SectionOutOfBounds {
                section: info.to_string(),
                start: info.offset,
                end,
                file_len: actual,
            });
        }
        if info.offset % info.align != 0 {
            return Err(ArtifactError::BadSection {
                section: info.to_string(),
                reason: format!(
                    "offset {} is not a multiple of its alignment {}",
                    info.offset, info.align
                ),
            });
        }
        sections.push(info);
    }

    // Header, table and non-empty payloads must not overlap.
    let mut regions = vec![
        Region {
            start: 0,
            end: HEADER_LEN as u64,
            name: "the header".into(),
        },
        Region {
            start: table_start,
            end: table_end,
            name: "the section table".into(),
        },
    ];
    regions.extend(sections.iter().filter(|s| s.len > 0).map(|s| Region {
        start: s.offset,
        end: s.offset + s.len,
        name: s.to_string(),
    }));
    regions.retain(|r| r.end > r.start);
    regions.sort_by_key(|r| (r.start, r.end));
    for pair in regions.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.start < a.end {
            return Err(ArtifactError::SectionOverlap {
                first: a.name.clone(),
                first_start: a.start,
                first_end: a.end,
                second: b.name.clone(),
                second_start: b.start,
                second_end: b.end,
            });
        }
    }

    let mut seen = HashSet::new();
    for s in sections.iter().filter(|s| s.kind.is_known()) {
        if !seen.insert((s.kind, s.index)) {
            return Err(ArtifactError::DuplicateSection {
                kind: s.kind,
                index: s.index,
            });
        }
    }

    for s in &sections {
        if checksum(&bytes[s.offset as usize..(s.offset + s.len) as usize]) != s.checksum {
            return Err(ArtifactError::Checksum {
                region: s.to_string(),
            });
        }
    }

    // Every byte outside the regions is padding and must be zero, so that no
    // byte of the file escapes a check.
    let mut pos = 0u64;
    for r in regions.iter().chain(std::iter::once(&Region {
        start: actual,
        end: actual,
        name: String::new(),
    })) {
        if r.start > pos {
            if let Some(k) = bytes[pos as usize..r.start as usize]
                .iter()
                .position(|&b| b != 0)
            {
                return Err(ArtifactError::NonZeroPadding {
                    offset: pos + k as u64,
                });
            }
        }
        pos = pos.max(r.end);
    }

    Ok((header, sections))
}
