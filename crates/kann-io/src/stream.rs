//! IO folders of frame streams, as `kann prepare` writes them and `kann run`
//! reads and writes them:
//!
//! - `IO_DIR/<name>.bin`: a tensor's frames, raw little-endian, one after
//!   another (name as [`file_stem`] spells it);
//! - `IO_DIR/manifest.yaml`: per tensor its name, file, role (input or
//!   output), dtype, shape and frame count, in the exact format
//!   [`Manifest::to_yaml`] writes (a small strict subset of YAML; this crate
//!   does not link a YAML library);
//! - without a manifest entry, also `<name>.npy` (one frame, or frames
//!   stacked on a leading axis), `<name>.bin`, and the extension-less raw
//!   file `<name>` that KaNN's input preparator writes; dtype and shape then
//!   come from the caller (the artifact).
//!
//! ```
//! use kann_io::stream::{read_input_stream, write_output_stream, IoSpec};
//! use kann_tensor::DType;
//! let dir = std::env::temp_dir().join(format!("kann-stream-doc-{}", std::process::id()));
//! let spec = IoSpec { name: "x".into(), dtype: DType::U8, shape: vec![2] };
//! write_output_stream(&dir, &spec, &[&[1, 2], &[3, 4]]).unwrap();
//! let streams = read_input_stream(&dir, &[spec]).unwrap();
//! assert_eq!(streams[0].frame(1), &[3, 4]);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use crate::tensor_set::file_stem;
use crate::IoError;
use kann_tensor::{npy, DType};
use std::path::{Path, PathBuf};

/// The manifest's file name in an IO folder.
pub const MANIFEST: &str = "manifest.yaml";

/// What a stream holds: a tensor's name, element type and per-frame shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl IoSpec {
    /// Bytes of one frame.
    pub fn frame_bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// One tensor's frames, contiguous.
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    pub spec: IoSpec,
    /// Every frame, one after another.
    pub data: Vec<u8>,
    /// Where the frames were read from.
    pub path: PathBuf,
}

impl Stream {
    pub fn frames(&self) -> usize {
        match self.spec.frame_bytes() {
            0 => 0,
            n => self.data.len() / n,
        }
    }

    /// Frame `i`; a single-frame stream answers every `i` with its frame
    /// (an input that stays the same while others change).
    pub fn frame(&self, i: usize) -> &[u8] {
        let n = self.spec.frame_bytes();
        let i = if self.frames() == 1 { 0 } else { i };
        &self.data[(i * n).min(self.data.len())..((i + 1) * n).min(self.data.len())]
    }
}

/// Whether a manifest entry is an input or an output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Input,
    Output,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Output => "output",
        }
    }
}

/// One tensor of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub spec: IoSpec,
    pub role: Role,
    /// The file, relative to the IO folder.
    pub file: String,
    pub frames: usize,
}

/// `manifest.yaml`: the streams of an IO folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Reads `dir/manifest.yaml`; `Ok(None)` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Manifest>, IoError> {
        let path = dir.join(MANIFEST);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| IoError::file(&path, e))?;
        Manifest::parse(&text).map(Some).map_err(|e| IoError::file(&path, e))
    }

    /// Writes `dir/manifest.yaml` (creating `dir`).
    pub fn write(&self, dir: &Path) -> Result<PathBuf, IoError> {
        std::fs::create_dir_all(dir).map_err(|e| IoError::file(dir, e))?;
        let path = dir.join(MANIFEST);
        std::fs::write(&path, self.to_yaml()).map_err(|e| IoError::file(&path, e))?;
        Ok(path)
    }

    /// The entry for tensor `name` in `role`.
    pub fn find(&self, name: &str, role: Role) -> Option<&Entry> {
        self.entries.iter().find(|e| e.spec.name == name && e.role == role)
    }

    /// Adds `entry`, replacing one with the same name and role.
    pub fn upsert(&mut self, entry: Entry) {
        match self.entries.iter_mut().find(|e| e.spec.name == entry.spec.name && e.role == entry.role) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
    }

    /// The manifest as YAML: a `tensors:` list, one mapping per tensor with
    /// the keys name, role, file, dtype, shape, frames in that order.
    pub fn to_yaml(&self) -> String {
        let mut s = String::from("# kann IO folder: raw little-endian frame streams, one file per tensor\ntensors:\n");
        for e in &self.entries {
            let shape = e.spec.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
            s += &format!("  - name: {}\n", quote(&e.spec.name));
            s += &format!("    role: {}\n", e.role.name());
            s += &format!("    file: {}\n", quote(&e.file));
            s += &format!("    dtype: {}\n", e.spec.dtype.name());
            s += &format!("    shape: [{shape}]\n");
            s += &format!("    frames: {}\n", e.frames);
        }
        s
    }

    /// Parses what [`Manifest::to_yaml`] writes (comments and blank lines
    /// allowed, keys in any order within an entry); anything else is an
    /// error naming the line.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut entries = Vec::new();
        let mut current: Option<Partial> = None;
        let mut seen_header = false;
        for (i, raw) in text.lines().enumerate() {
            let at = |m: String| format!("line {}: {m}", i + 1);
            let line = raw.trim_end();
            if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            if !seen_header {
                if line != "tensors:" {
                    return Err(at("expected `tensors:`".into()));
                }
                seen_header = true;
                continue;
            }
            let body = if let Some(rest) = line.strip_prefix("  - ") {
                if let Some(p) = current.take() {
                    entries.push(p.finish().map_err(at)?);
                }
                current = Some(Partial::default());
                rest
            } else if let Some(rest) = line.strip_prefix("    ") {
                rest
            } else {
                return Err(at(format!("unexpected `{line}`")));
            };
            let p = current.as_mut().ok_or_else(|| at("a key outside a `- ` entry".into()))?;
            let (key, value) = body.split_once(':').ok_or_else(|| at(format!("expected `key: value`, got `{body}`")))?;
            p.set(key.trim(), value.trim()).map_err(at)?;
        }
        if !seen_header {
            return Err("expected `tensors:`".into());
        }
        if let Some(p) = current.take() {
            entries.push(p.finish()?);
        }
        Ok(Manifest { entries })
    }
}

/// An entry being parsed.
#[derive(Default)]
struct Partial {
    name: Option<String>,
    role: Option<Role>,
    file: Option<String>,
    dtype: Option<DType>,
    shape: Option<Vec<usize>>,
    frames: Option<usize>,
}

impl Partial {
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "name" => self.name = Some(unquote(value)?),
            "file" => self.file = Some(unquote(value)?),
            "role" => {
                self.role = Some(match value {
                    "input" => Role::Input,
                    "output" => Role::Output,
                    _ => return Err(format!("role `{value}` is neither input nor output")),
                })
            }
            "dtype" => self.dtype = Some(DType::parse(value).ok_or_else(|| format!("unknown dtype `{value}`"))?),
            "shape" => self.shape = Some(parse_shape(value)?),
            "frames" => self.frames = Some(value.parse().map_err(|_| format!("frames `{value}` is not a count"))?),
            _ => return Err(format!("unknown key `{key}`")),
        }
        Ok(())
    }

    fn finish(self) -> Result<Entry, String> {
        let name = self.name.ok_or("an entry has no name")?;
        let missing = |k: &str| format!("tensor '{name}' has no {k}");
        let dtype = self.dtype.ok_or_else(|| missing("dtype"))?;
        let shape = self.shape.ok_or_else(|| missing("shape"))?;
        let frames = self.frames.ok_or_else(|| missing("frames"))?;
        let file = self.file.unwrap_or_else(|| format!("{}.bin", file_stem(&name)));
        Ok(Entry { spec: IoSpec { name, dtype, shape }, role: self.role.unwrap_or(Role::Input), file, frames })
    }
}

fn parse_shape(v: &str) -> Result<Vec<usize>, String> {
    let inner = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')).ok_or_else(|| format!("shape `{v}` is not a [d0, d1, …] list"))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner.split(',').map(|d| d.trim().parse::<usize>().map_err(|_| format!("shape `{v}`: `{}` is not a dimension", d.trim()))).collect()
}

/// A double-quoted YAML scalar (escapes `\` and `"`, control characters as `\u`).
fn quote(s: &str) -> String {
    let mut q = String::from('"');
    for c in s.chars() {
        match c {
            '"' => q += "\\\"",
            '\\' => q += "\\\\",
            c if c.is_control() => q += &format!("\\u{:04x}", c as u32),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Reads a scalar [`quote`] writes, or a plain one.
fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Ok(v.to_string());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).ok_or_else(|| format!("bad escape `\\u{hex}` in {v}"))?;
                out.push(c);
            }
            other => return Err(format!("bad escape `\\{}` in {v}", other.map(String::from).unwrap_or_default())),
        }
    }
    Ok(out)
}

/// Reads the frames of every tensor of `specs` from `dir`: the manifest's
/// file when it lists the tensor (its dtype and shape must match), else
/// `<name>.npy`, `<name>.bin` or the extension-less `<name>`. Every stream
/// must hold a whole number of frames; streams of more than one frame must
/// agree on the count (a single frame is reused for every frame).
pub fn read_input_stream(dir: &Path, specs: &[IoSpec]) -> Result<Vec<Stream>, IoError> {
    let manifest = Manifest::read(dir)?;
    let mut streams = Vec::with_capacity(specs.len());
    for spec in specs {
        let stream = match manifest.as_ref().and_then(|m| m.find(&spec.name, Role::Input)) {
            Some(entry) => read_listed(dir, spec, entry)?,
            None => read_unlisted(dir, spec)?,
        };
        streams.push(stream);
    }
    let counts: Vec<usize> = streams.iter().map(Stream::frames).filter(|&n| n != 1).collect();
    if let Some(&n) = counts.first() {
        if let Some(other) = streams.iter().find(|s| s.frames() != 1 && s.frames() != n) {
            let first = streams.iter().find(|s| s.frames() == n).map_or("", |s| s.spec.name.as_str());
            return Err(IoError::Other(format!(
                "input '{}' has {} frames but input '{first}' has {n}",
                other.spec.name,
                other.frames()
            )));
        }
    }
    Ok(streams)
}

/// The number of frames a set of input streams makes.
pub fn frame_count(streams: &[Stream]) -> usize {
    streams.iter().map(Stream::frames).max().unwrap_or(0)
}

fn read_listed(dir: &Path, spec: &IoSpec, entry: &Entry) -> Result<Stream, IoError> {
    let path = dir.join(&entry.file);
    if entry.spec.dtype != spec.dtype || entry.spec.shape != spec.shape {
        return Err(IoError::file(
            &dir.join(MANIFEST),
            format!(
                "input '{}' is listed as {} {:?} but the network takes {} {:?}",
                spec.name, entry.spec.dtype, entry.spec.shape, spec.dtype, spec.shape
            ),
        ));
    }
    let stream = read_raw(&path, spec)?;
    if stream.frames() != entry.frames {
        return Err(IoError::file(&path, format!("holds {} frames, the manifest says {}", stream.frames(), entry.frames)));
    }
    Ok(stream)
}

fn read_unlisted(dir: &Path, spec: &IoSpec) -> Result<Stream, IoError> {
    for stem in [spec.name.clone(), file_stem(&spec.name)] {
        let npy_path = dir.join(format!("{stem}.npy"));
        if npy_path.is_file() {
            return read_npy(&npy_path, spec);
        }
        for p in [dir.join(format!("{stem}.bin")), dir.join(&stem)] {
            if p.is_file() {
                return read_raw(&p, spec);
            }
        }
    }
    let stem = file_stem(&spec.name);
    Err(IoError::Other(format!(
        "input '{}': no {MANIFEST} entry and no {stem}.bin, {stem}.npy or raw file {stem} in {}",
        spec.name,
        dir.display()
    )))
}

fn read_raw(path: &Path, spec: &IoSpec) -> Result<Stream, IoError> {
    let data = std::fs::read(path).map_err(|e| IoError::file(path, e))?;
    check_whole(path, spec, data.len())?;
    Ok(Stream { spec: spec.clone(), data, path: path.to_path_buf() })
}

fn read_npy(path: &Path, spec: &IoSpec) -> Result<Stream, IoError> {
    let t = npy::read(path).map_err(|e| IoError::file(path, e))?;
    if t.dtype() != spec.dtype {
        return Err(IoError::file(path, format!("holds {} but input '{}' is {}", t.dtype(), spec.name, spec.dtype)));
    }
    let dims = t.dims();
    let frame_shape_ok = dims == spec.shape.as_slice() || dims.get(1..) == Some(spec.shape.as_slice());
    if !frame_shape_ok {
        return Err(IoError::file(path, format!("has shape {dims:?}; input '{}' takes frames of {:?}", spec.name, spec.shape)));
    }
    let bytes = npy::to_bytes(&t).map_err(|e| IoError::file(path, e))?;
    let data = bytes[bytes.len() - t.len() * t.dtype().size()..].to_vec();
    check_whole(path, spec, data.len())?;
    Ok(Stream { spec: spec.clone(), data, path: path.to_path_buf() })
}

fn check_whole(path: &Path, spec: &IoSpec, len: usize) -> Result<(), IoError> {
    let frame = spec.frame_bytes();
    if frame == 0 {
        return Err(IoError::file(path, format!("input '{}' has no elements", spec.name)));
    }
    if len == 0 || len % frame != 0 {
        return Err(IoError::file(
            path,
            format!("holds {len} bytes, not a whole number of frames of {} {:?} ({frame} bytes each)", spec.dtype, spec.shape),
        ));
    }
    Ok(())
}

/// Writes `frames` of tensor `spec` as `dir/<name>.bin` and records it in
/// `dir/manifest.yaml` as an output (creating or updating the manifest).
/// Each frame must hold exactly one frame's bytes.
pub fn write_output_stream(dir: &Path, spec: &IoSpec, frames: &[&[u8]]) -> Result<PathBuf, IoError> {
    write_stream(dir, spec, Role::Output, frames)
}

/// As [`write_output_stream`], for an input stream (what `kann prepare` and
/// `--dump-inputs` write).
pub fn write_input_stream(dir: &Path, spec: &IoSpec, frames: &[&[u8]]) -> Result<PathBuf, IoError> {
    write_stream(dir, spec, Role::Input, frames)
}

fn write_stream(dir: &Path, spec: &IoSpec, role: Role, frames: &[&[u8]]) -> Result<PathBuf, IoError> {
    std::fs::create_dir_all(dir).map_err(|e| IoError::file(dir, e))?;
    let file = format!("{}.bin", file_stem(&spec.name));
    let path = dir.join(&file);
    if let Some(f) = frames.iter().find(|f| f.len() != spec.frame_bytes()) {
        return Err(IoError::file(&path, format!("a frame of {} bytes, {} {:?} needs {}", f.len(), spec.dtype, spec.shape, spec.frame_bytes())));
    }
    std::fs::write(&path, frames.concat()).map_err(|e| IoError::file(&path, e))?;
    let mut manifest = Manifest::read(dir)?.unwrap_or_default();
    manifest.upsert(Entry { spec: spec.clone(), role, file, frames: frames.len() });
    manifest.write(dir)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::{Shape, Tensor};

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kann-io-stream-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn spec(name: &str, dtype: DType, shape: &[usize]) -> IoSpec {
        IoSpec { name: name.into(), dtype, shape: shape.to_vec() }
    }

    #[test]
    fn manifest_round_trips() {
        let m = Manifest {
            entries: vec![
                Entry { spec: spec("in/put:0 \"q\" \\", DType::F32, &[1, 3, 4]), role: Role::Input, file: "in_put_0.bin".into(), frames: 3 },
                Entry { spec: spec("scalar", DType::I64, &[]), role: Role::Output, file: "scalar.bin".into(), frames: 1 },
            ],
        };
        assert_eq!(Manifest::parse(&m.to_yaml()).unwrap(), m);
    }

    #[test]
    fn manifest_errors_name_the_line() {
        assert!(Manifest::parse("inputs:\n").unwrap_err().contains("line 1"));
        let e = Manifest::parse("tensors:\n  - name: x\n    dtype: f33\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("f33"), "{e}");
        let e = Manifest::parse("tensors:\n  - name: x\n    dtype: f32\n    shape: [1]\n").unwrap_err();
        assert!(e.contains("no frames"), "{e}");
        assert!(Manifest::parse("tensors:\n    name: x\n").unwrap_err().contains("outside"));
    }

    #[test]
    fn streams_round_trip_through_the_manifest() {
        let d = temp_dir("roundtrip");
        let s = spec("x/1", DType::I32, &[2]);
        let frames: Vec<Vec<u8>> = (0..3i32).map(|i| [i, -i].iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        write_input_stream(&d, &s, &refs).unwrap();
        write_output_stream(&d, &spec("y", DType::F32, &[1]), &[&[0, 0, 128, 63]]).unwrap();
        let m = Manifest::read(&d).unwrap().unwrap();
        assert_eq!(m.entries.len(), 2);
        let got = read_input_stream(&d, std::slice::from_ref(&s)).unwrap();
        assert_eq!(got[0].frames(), 3);
        assert_eq!(got[0].frame(2), frames[2].as_slice());
        // The manifest must agree with the network.
        let e = read_input_stream(&d, &[spec("x/1", DType::F32, &[2])]).unwrap_err().to_string();
        assert!(e.contains("listed as i32 [2] but the network takes f32 [2]"), "{e}");
        // A wrong frame size on write.
        assert!(write_output_stream(&d, &s, &[&[1, 2, 3]]).is_err());
    }

    #[test]
    fn extensionless_raw_and_npy_inputs() {
        let d = temp_dir("kann");
        std::fs::write(d.join("a"), [1u8, 2, 3, 4, 5, 6]).unwrap();
        let t = Tensor::from_f32(Shape::from(vec![2, 2]), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        npy::write(&d.join("b.npy"), &t).unwrap();
        let got = read_input_stream(&d, &[spec("a", DType::U8, &[3]), spec("b", DType::F32, &[2])]).unwrap();
        assert_eq!(got[0].frames(), 2);
        assert_eq!(got[1].frames(), 2);
        assert_eq!(got[1].frame(1), [3.0f32, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>().as_slice());
        assert_eq!(frame_count(&got), 2);
        // Frame counts must agree (1 is reused).
        std::fs::write(d.join("c.bin"), [0u8; 9]).unwrap();
        let e = read_input_stream(&d, &[spec("a", DType::U8, &[3]), spec("c", DType::U8, &[3])]).unwrap_err().to_string();
        assert!(e.contains("'c' has 3 frames but input 'a' has 2"), "{e}");
        let one = read_input_stream(&d, &[spec("c", DType::U8, &[9])]).unwrap();
        assert_eq!(one[0].frame(5).len(), 9);
        // Missing input, wrong sizes, wrong npy dtype.
        assert!(read_input_stream(&d, &[spec("zz", DType::U8, &[1])]).unwrap_err().to_string().contains("no zz.bin"));
        assert!(read_input_stream(&d, &[spec("a", DType::U8, &[4])]).unwrap_err().to_string().contains("not a whole number"));
        assert!(read_input_stream(&d, &[spec("b", DType::F64, &[2])]).unwrap_err().to_string().contains("holds f32"));
        assert!(read_input_stream(&d, &[spec("b", DType::F32, &[3])]).unwrap_err().to_string().contains("has shape"));
    }
}
