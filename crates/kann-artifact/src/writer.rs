use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::arch::{Arch, FeatureSet};
use crate::checksum::checksum;
use crate::error::{ArtifactError, Result};
use crate::format::{
    encode_entry, name_problem, FormatVersion, Header, SectionId, SectionInfo, SectionKind,
    ENTRY_LEN, HEADER_LEN, MIN_ALIGN,
};

/// Largest alignment a section may ask for (1 GiB): beyond it the padding
/// alone would dwarf any payload.
pub const MAX_ALIGN: u64 = 1 << 30;

/// Builds a `.kann` file: sections are added in the order they will appear,
/// then the whole is written at once. Payloads are borrowed where the caller
/// can (`&[u8]`), so writing large weights does not copy them first.
///
/// ```
/// use kann_artifact::{Arch, Artifact, ArtifactWriter, SectionKind};
/// let mut w = ArtifactWriter::new(Arch::Generic);
/// w.add_section(SectionKind::Metadata, 0, "metadata", &b"{}"[..]).unwrap();
/// let w_id = w.add_f32_section(SectionKind::Weights, 0, "weights", &[1.0, 2.0]).unwrap();
/// let a = Artifact::from_bytes(&w.to_bytes().unwrap()).unwrap();
/// assert_eq!(a.section_f32(w_id).unwrap(), &[1.0, 2.0]);
/// ```
#[derive(Debug)]
pub struct ArtifactWriter<'a> {
    arch: Arch,
    required: FeatureSet,
    flags: u32,
    sections: Vec<Pending<'a>>,
}

#[derive(Debug)]
struct Pending<'a> {
    kind: SectionKind,
    index: u32,
    name: String,
    align: u64,
    data: Cow<'a, [u8]>,
}

impl<'a> ArtifactWriter<'a> {
    /// An empty artifact for `arch`, requiring `arch.required_features()`.
    pub fn new(arch: Arch) -> ArtifactWriter<'a> {
        ArtifactWriter {
            arch,
            required: arch.required_features(),
            flags: 0,
            sections: Vec::new(),
        }
    }

    /// Adds features the artifact's kernels need beyond its arch's baseline
    /// (e.g. `avx512vnni` for int8 kernels).
    pub fn require_features(&mut self, features: FeatureSet) -> &mut Self {
        self.required = self.required.union(features);
        self
    }

    /// Sets the header flags (none are defined in format 1.0).
    pub fn set_flags(&mut self, flags: u32) -> &mut Self {
        self.flags = flags;
        self
    }

    /// Number of sections added so far.
    pub fn section_count(&self) -> usize {
        self.sections.len()
    }

    /// Adds a section aligned to 64 bytes. `index` tells sections of one kind
    /// apart (the cluster of a Program section); `name` is a label of 1 to 24
    /// UTF-8 bytes. Refuses a bad name and a second section with the same
    /// known kind and index.
    pub fn add_section(
        &mut self,
        kind: SectionKind,
        index: u32,
        name: &str,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<SectionId> {
        self.add_section_aligned(kind, index, name, MIN_ALIGN, data)
    }

    /// As [`add_section`](Self::add_section), with the payload aligned to
    /// `align` bytes (a power of two; values under 64 mean 64), e.g. 4096 to
    /// start weights on a page.
    pub fn add_section_aligned(
        &mut self,
        kind: SectionKind,
        index: u32,
        name: &str,
        align: u64,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<SectionId> {
        let invalid = |reason: String| ArtifactError::InvalidSection {
            name: name.to_string(),
            reason,
        };
        if let Some(reason) = name_problem(name) {
            return Err(invalid(reason));
        }
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(invalid(format!(
                "alignment {align} is not a power of two up to {MAX_ALIGN}"
            )));
        }
        let kind = SectionKind::from_id(kind.id());
        if kind.is_known()
            && self
                .sections
                .iter()
                .any(|s| s.kind == kind && s.index == index)
        {
            return Err(invalid(format!(
                "there is already a {kind} section with index {index}"
            )));
        }
        let id =
            u32::try_from(self.sections.len()).map_err(|_| invalid("too many sections".into()))?;
        self.sections.push(Pending {
            kind,
            index,
            name: name.to_string(),
            align: align.max(MIN_ALIGN),
            data: data.into(),
        });
        Ok(SectionId(id))
    }

    /// Adds `values` as little-endian f32, aligned to 64 bytes, readable with
    /// [`Artifact::section_f32`](crate::Artifact::section_f32).
    pub fn add_f32_section(
        &mut self,
        kind: SectionKind,
        index: u32,
        name: &str,
        values: &[f32],
    ) -> Result<SectionId> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_section(kind, index, name, bytes)
    }

    /// Places the table and payloads and computes every checksum.
    fn layout(&self) -> Result<(Header, Vec<SectionInfo>)> {
        let too_big = || ArtifactError::InvalidSection {
            name: "(all)".into(),
            reason: "the artifact would exceed 2^64 bytes".into(),
        };
        let count = self.sections.len() as u64;
        let table_offset = HEADER_LEN as u64;
        let mut cursor = count
            .checked_mul(ENTRY_LEN as u64)
            .and_then(|t| t.checked_add(table_offset))
            .ok_or_else(too_big)?;
        let mut infos = Vec::with_capacity(self.sections.len());
        for (i, s) in self.sections.iter().enumerate() {
            let offset = cursor
                .checked_next_multiple_of(s.align)
                .ok_or_else(too_big)?;
            let len = s.data.len() as u64;
            cursor = offset.checked_add(len).ok_or_else(too_big)?;
            infos.push(SectionInfo {
                id: SectionId(i as u32),
                kind: s.kind,
                index: s.index,
                name: s.name.clone(),
                offset,
                len,
                align: s.align,
                flags: 0,
                checksum: checksum(&s.data),
            });
        }
        let table: Vec<u8> = infos.iter().flat_map(encode_entry).collect();
        let header = Header {
            version: FormatVersion::CURRENT,
            flags: self.flags,
            arch: self.arch,
            required_features: self.required,
            section_count: self.sections.len() as u32,
            table_offset,
            file_len: cursor,
            table_checksum: checksum(&table),
        };
        Ok((header, infos))
    }

    /// Streams the artifact into `out`; returns its length in bytes.
    pub fn write_into<W: Write>(&self, out: &mut W) -> Result<u64> {
        let (header, infos) = self.layout()?;
        out.write_all(&header.encode())?;
        for info in &infos {
            out.write_all(&encode_entry(info))?;
        }
        let mut pos = header.table_offset + infos.len() as u64 * ENTRY_LEN as u64;
        let zeros = [0u8; 4096];
        for (info, s) in infos.iter().zip(&self.sections) {
            let mut gap = info.offset - pos;
            while gap > 0 {
                let n = gap.min(zeros.len() as u64);
                out.write_all(&zeros[..n as usize])?;
                gap -= n;
            }
            out.write_all(&s.data)?;
            pos = info.offset + info.len;
        }
        let mut gap = header.file_len - pos;
        while gap > 0 {
            let n = gap.min(zeros.len() as u64);
            out.write_all(&zeros[..n as usize])?;
            gap -= n;
        }
        Ok(header.file_len)
    }

    /// The artifact as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write_into(&mut v)?;
        Ok(v)
    }

    /// Writes the artifact to `path` atomically: into a temporary file of the
    /// same folder, flushed to disk, then renamed over `path`. A reader never
    /// sees a half-written file, and a file mapped by a running service is
    /// replaced, not modified. Returns the length written. Errors name `path`.
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        self.write_atomically(path).map_err(|e| e.in_file(path))
    }

    fn write_atomically(&self, path: &Path) -> Result<u64> {
        let tmp = temp_path(path);
        let result = (|| {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            let mut out = BufWriter::new(file);
            let len = self.write_into(&mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, path)?;
            Ok(len)
        })();
        match result {
            Ok(len) => {
                // Make the rename itself durable; a failure here loses nothing
                // that was promised, so it is not reported.
                #[cfg(unix)]
                if let Some(dir) = path.parent() {
                    let dir = if dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        dir
                    };
                    if let Ok(d) = std::fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                Ok(len)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// `dir/.name.<pid>.<n>.tmp`, unique within this process and among processes.
fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "artifact".into());
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}
