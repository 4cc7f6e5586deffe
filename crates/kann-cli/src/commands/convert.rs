//! `kann convert FILE.pb… -o DIR`: ONNX TensorProto files to `.npy`.

use anyhow::Context;
use kann_io::tensor_set::write_npy;
use std::path::{Path, PathBuf};

pub fn run(files: &[PathBuf], out: &Path) -> anyhow::Result<i32> {
    for f in files {
        let (name, t) = kann_onnx::tensor::read_tensor_file(f)?;
        let name = if name.is_empty() { f.file_stem().map(|s| s.to_string_lossy().into_owned()).context("file has no name")? } else { name };
        let p = write_npy(out, &name, &t)?;
        println!("{} -> {} ({}{})", f.display(), p.display(), t.dtype(), t.shape());
    }
    Ok(0)
}
