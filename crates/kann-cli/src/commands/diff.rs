//! `kann diff A B`: per-tensor error table and verdict; B is the reference.

use anyhow::bail;
use kann_io::diff::{diff, Tolerance};
use kann_io::tensor_set::read_npy_set;
use std::path::Path;

pub fn run(a: &Path, b: &Path, tol: Tolerance, top_k: usize) -> anyhow::Result<i32> {
    let set_a = read_npy_set(a)?;
    let set_b = read_npy_set(b)?;
    let pairs: Vec<(&String, &kann_tensor::Tensor, &kann_tensor::Tensor)> = if set_a.len() == 1 && set_b.len() == 1 && a.is_file() && b.is_file() {
        let (na, ta) = set_a.iter().next().expect("one tensor");
        let (_, tb) = set_b.iter().next().expect("one tensor");
        vec![(na, ta, tb)]
    } else {
        let only_a: Vec<_> = set_a.keys().filter(|k| !set_b.contains_key(*k)).cloned().collect();
        let only_b: Vec<_> = set_b.keys().filter(|k| !set_a.contains_key(*k)).cloned().collect();
        if !only_a.is_empty() || !only_b.is_empty() {
            bail!("the two sets hold different tensors: only in {}: [{}]; only in {}: [{}]", a.display(), only_a.join(", "), b.display(), only_b.join(", "));
        }
        set_a.iter().map(|(k, ta)| (k, ta, &set_b[k])).collect()
    };
    println!("{:<28} {:>10} {:>11} {:>11} {:>11} {:>10} {:>9} {:>9}", "tensor", "elements", "max abs", "mean abs", "max rel", "cosine", "SNR dB", "top-k");
    let mut ok = true;
    for (name, ta, tb) in pairs {
        let d = diff(name, ta, tb, tol, Some(top_k)).map_err(anyhow::Error::msg)?;
        let topk = d.top_k.as_ref().map(|t| format!("{}/{} @{}", t.topk_same, t.rows, t.k)).unwrap_or_else(|| "-".into());
        println!("{:<28} {:>10} {:>11.3e} {:>11.3e} {:>11.3e} {:>10.7} {:>9.1} {:>9}", name, d.elements, d.max_abs, d.mean_abs, d.max_rel, d.cosine, d.snr_db, topk);
        if !d.passes() {
            ok = false;
            println!("  {} of {} elements outside atol {} + rtol {}·|ref|", d.outside, d.elements, tol.atol, tol.rtol);
        }
    }
    if ok {
        println!("verdict: PASS (atol {}, rtol {})", tol.atol, tol.rtol);
        Ok(0)
    } else {
        println!("verdict: FAIL (atol {}, rtol {})", tol.atol, tol.rtol);
        Ok(1)
    }
}
