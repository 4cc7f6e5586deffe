//! `kann diff A B`: per-tensor error table and verdict; B is the reference.
//! A and B are `.npy` files, folders of `.npy` files, or IO folders of
//! streams (`manifest.yaml`, as `kann run` and `kann genref` write them),
//! whose output streams are compared over all their frames. Every tensor of
//! B must be in A; A may hold more (an IO folder also holds the inputs).

use anyhow::bail;
use kann_io::diff::{diff, Tolerance};
use kann_io::stream::{Manifest, Role};
use kann_io::tensor_set::{read_npy_set, read_raw_frames};
use kann_tensor::{Shape, Tensor};
use kann_io::tensor_set::file_stem;
use std::collections::BTreeMap;
use std::path::Path;

/// The tensors of `path`: a stream folder's output streams (all its streams
/// when it lists no output), frames stacked on the first axis, or `.npy` files.
fn read_set(path: &Path) -> anyhow::Result<BTreeMap<String, Tensor>> {
    let Some(manifest) = (if path.is_dir() { Manifest::read(path)? } else { None }) else {
        return Ok(read_npy_set(path)?);
    };
    let outputs = manifest.entries.iter().any(|e| e.role == Role::Output);
    let mut set = BTreeMap::new();
    for e in manifest.entries.iter().filter(|e| !outputs || e.role == Role::Output) {
        let frames = read_raw_frames(&path.join(&e.file), e.spec.dtype, &Shape::from(e.spec.shape.as_slice()))?;
        let refs: Vec<&Tensor> = frames.iter().collect();
        let mut dims = e.spec.shape.clone();
        match dims.first_mut() {
            Some(d0) => *d0 *= frames.len(),
            None => dims.push(frames.len()),
        }
        set.insert(e.spec.name.clone(), Tensor::concat_flat(e.spec.dtype, Shape::new(dims), &refs)?);
    }
    if set.is_empty() {
        bail!("{}: the manifest lists no tensor", path.display());
    }
    Ok(set)
}

pub fn run(a: &Path, b: &Path, tol: Tolerance, top_k: usize) -> anyhow::Result<i32> {
    let set_a = read_set(a)?;
    let set_b = read_set(b)?;
    let pairs: Vec<(&String, &kann_tensor::Tensor, &kann_tensor::Tensor)> = if set_a.len() == 1 && set_b.len() == 1 && a.is_file() && b.is_file() {
        let (na, ta) = set_a.iter().next().expect("one tensor");
        let (_, tb) = set_b.iter().next().expect("one tensor");
        vec![(na, ta, tb)]
    } else {
        // A tensor matches by name, or by file stem: `.npy` sets are named
        // after their files (`gpu_0_softmax_1`), streams by tensor
        // (`gpu_0/softmax_1`).
        let find = |k: &str| set_a.get(k).or_else(|| set_a.iter().find(|(ka, _)| file_stem(ka) == file_stem(k)).map(|(_, t)| t));
        let only_b: Vec<_> = set_b.keys().filter(|k| find(k).is_none()).cloned().collect();
        if !only_b.is_empty() {
            let only_a: Vec<_> = set_a.keys().filter(|k| !set_b.keys().any(|kb| file_stem(kb) == file_stem(k))).cloned().collect();
            bail!("the two sets hold different tensors: only in {}: [{}]; only in {}: [{}]", a.display(), only_a.join(", "), b.display(), only_b.join(", "));
        }
        set_b.iter().map(|(k, tb)| (k, find(k).expect("checked above"), tb)).collect()
    };
    println!("{:<28} {:>10} {:>11} {:>11} {:>11} {:>10} {:>9} {:>9}", "tensor", "elements", "max abs", "mean abs", "max rel", "cosine", "SNR dB", "top-k");
    let mut ok = true;
    for (name, ta, tb) in pairs {
        let d = diff(name, ta, tb, tol, Some(top_k)).map_err(anyhow::Error::msg)?;
        let topk = d.top_k.as_ref().map(|t| format!("{}/{} @{}", t.topk_same, t.rows, t.k)).unwrap_or_else(|| "-".into());
        println!("{:<28} {:>10} {:>11.3e} {:>11.3e} {:>11.3e} {:>10.7} {:>9.1} {:>9}", name, d.elements, d.max_abs, d.mean_abs, d.max_rel, d.cosine, d.snr_db, topk);
        if !d.passes() {
            ok = false;
            println!("  {} of {} elements outside atol {}·max(1, max|ref| = {:.3e}) + rtol {}·|ref|", d.outside, d.elements, tol.atol, d.ref_max_abs, tol.rtol);
        }
    }
    if ok {
        println!("verdict: PASS (atol {}·max(1, max|ref|), rtol {})", tol.atol, tol.rtol);
        Ok(0)
    } else {
        println!("verdict: FAIL (atol {}·max(1, max|ref|), rtol {})", tol.atol, tol.rtol);
        Ok(1)
    }
}
