//! Every ONNX backend node test the reference runs, imported, exported with
//! [`kann_onnx::export_model`] and imported again, gives the same outputs.
//! Graphs holding an op exported into the `ai.kann` domain cannot be read
//! back (by design) and are counted apart. Without the data the test says
//! so and passes, unless `KANN_REQUIRE_DATA` is set.

use kann_onnx::ImportOptions;
use kann_reference::Reference;
use kann_tensor::Tensor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    let base = std::env::var_os("KANN_DATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kann-data"));
    base.join("onnx-1.23.2/node")
}

fn inputs(dir: &Path) -> Option<Vec<Tensor>> {
    let mut out = Vec::new();
    for i in 0.. {
        let p = dir.join(format!("test_data_set_0/input_{i}.pb"));
        if !p.exists() {
            break;
        }
        out.push(kann_onnx::tensor::read_tensor_file(&p).ok()?.1);
    }
    Some(out)
}

/// Same dtype, shape and values (NaN matching NaN), up to a tiny relative
/// error for float attributes stored as f32.
fn same(a: &Tensor, b: &Tensor) -> bool {
    if a.dtype() != b.dtype() || a.shape() != b.shape() {
        return false;
    }
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    let scale = a.iter().filter(|v| v.is_finite()).fold(1e-30f64, |m, v| m.max(v.abs()));
    a.iter().zip(&b).all(|(x, y)| (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-5 * scale)
}

enum Outcome {
    Same,
    KannDomain(String),
    Skipped,
}

fn check(dir: &Path) -> Result<Outcome, String> {
    let name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
    let Some(inputs) = inputs(dir) else { return Ok(Outcome::Skipped) };
    let Ok(model) = kann_onnx::import_file(&dir.join("model.onnx"), &ImportOptions::default(), Some(&Reference)) else { return Ok(Outcome::Skipped) };
    let g = model.graph;
    if g.inputs.len() != inputs.len() {
        return Ok(Outcome::Skipped);
    }
    let Ok(want) = kann_reference::run(&g, &inputs) else { return Ok(Outcome::Skipped) };
    let proto = kann_onnx::export::to_model_proto(&g).map_err(|e| format!("{name}: {e}"))?;
    let graph = proto.graph.as_ref().ok_or(format!("{name}: no graph"))?;
    if let Some(n) = graph.node.iter().find(|n| n.domain == kann_onnx::export::KANN_DOMAIN) {
        return Ok(Outcome::KannDomain(n.op_type.clone()));
    }
    let bytes = kann_onnx::export_model(&g).map_err(|e| format!("{name}: {e}"))?;
    let proto = kann_onnx::decode_model(&bytes, &name).map_err(|e| format!("{name}: {e}"))?;
    let back = kann_onnx::import_model(&proto, None, &ImportOptions::default(), Some(&Reference)).map_err(|e| format!("{name}: re-import: {e}"))?.graph;
    let got = kann_reference::run(&back, &inputs).map_err(|e| format!("{name}: re-imported graph: {e}"))?;
    if want.len() != got.len() || want.iter().zip(&got).any(|(a, b)| !same(a, b)) {
        return Err(format!("{name}: outputs differ after the round trip"));
    }
    Ok(Outcome::Same)
}

#[test]
fn node_tests_survive_an_export_round_trip() {
    let root = data_dir();
    let Ok(entries) = std::fs::read_dir(&root) else {
        assert!(std::env::var_os("KANN_REQUIRE_DATA").is_none(), "KANN_REQUIRE_DATA is set but {} is missing", root.display());
        eprintln!("skipping: no ONNX node tests in {}", root.display());
        return;
    };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("model.onnx").exists()).collect();
    dirs.sort();
    let (mut same, mut kann, mut failures) = (0usize, BTreeMap::<String, usize>::new(), Vec::new());
    for dir in &dirs {
        match check(dir) {
            Ok(Outcome::Same) => same += 1,
            Ok(Outcome::KannDomain(op)) => *kann.entry(op).or_default() += 1,
            Ok(Outcome::Skipped) => {}
            Err(e) => failures.push(e),
        }
    }
    println!("{same} node tests round-trip through ONNX export; exported into ai.kann: {kann:?}");
    assert!(failures.is_empty(), "{} node tests failed the export round trip:\n{}", failures.len(), failures.join("\n"));
}
