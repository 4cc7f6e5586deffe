//! Named tensors stored one per file in a folder.

use crate::IoError;
use kann_tensor::{npy, DType, Shape, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File stem used for a tensor name: characters other than letters, digits,
/// `.`, `_` and `-` become `_` (ONNX names often hold `/` or `:`).
pub fn file_stem(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

/// Finds the file holding `name` in `dir`, trying `.npy`, `.bin`, `.pb` and
/// an extension-less raw file, with the raw name and its [`file_stem`].
pub fn find_tensor_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let stems = [name.to_string(), file_stem(name)];
    for stem in &stems {
        for ext in ["npy", "bin", "pb"] {
            let p = dir.join(format!("{stem}.{ext}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Reads a raw little-endian file of `frames` × `shape` elements of `dtype`.
/// Returns the frames, each a tensor of `shape`.
pub fn read_raw_frames(path: &Path, dtype: DType, shape: &Shape) -> Result<Vec<Tensor>, IoError> {
    let bytes = std::fs::read(path).map_err(|e| IoError::file(path, e))?;
    let frame_bytes = shape.numel() * dtype.size();
    if frame_bytes == 0 {
        return Err(IoError::file(path, "the input has no elements"));
    }
    if bytes.is_empty() || bytes.len() % frame_bytes != 0 {
        return Err(IoError::file(path, format!("holds {} bytes, not a whole number of frames of {} {}{} ({} bytes each)", bytes.len(), dtype, shape, "", frame_bytes)));
    }
    Ok(bytes
        .chunks_exact(frame_bytes)
        .map(|c| Tensor::new(shape.clone(), npy::data_from_le(dtype, c)).expect("chunk holds one frame"))
        .collect())
}

/// Reads every `.npy` file of `dir` (or the single file `dir`) keyed by stem.
pub fn read_npy_set(path: &Path) -> Result<BTreeMap<String, Tensor>, IoError> {
    let mut set = BTreeMap::new();
    if path.is_file() {
        let t = npy::read(path).map_err(|e| IoError::file(path, e))?;
        set.insert(path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(), t);
        return Ok(set);
    }
    let entries = std::fs::read_dir(path).map_err(|e| IoError::file(path, e))?;
    for e in entries {
        let p = e.map_err(|e| IoError::file(path, e))?.path();
        if p.extension().is_some_and(|x| x == "npy") && p.is_file() {
            let t = npy::read(&p).map_err(|e| IoError::file(&p, e))?;
            set.insert(p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(), t);
        }
    }
    if set.is_empty() {
        return Err(IoError::file(path, "holds no .npy tensors"));
    }
    Ok(set)
}

/// Writes `t` as `<dir>/<file_stem(name)>.npy`, creating `dir`.
pub fn write_npy(dir: &Path, name: &str, t: &Tensor) -> Result<PathBuf, IoError> {
    std::fs::create_dir_all(dir).map_err(|e| IoError::file(dir, e))?;
    let p = dir.join(format!("{}.npy", file_stem(name)));
    let t = if t.dtype() == DType::BF16 { t.cast(DType::F32) } else { t.clone() };
    npy::write(&p, &t).map_err(|e| IoError::file(&p, e))?;
    Ok(p)
}
