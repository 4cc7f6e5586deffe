//! The standard pipeline keeps the outputs of every ONNX backend node test
//! the reference runs, twice: as the test gives it, and with every input but
//! the first bound to its test value as a constant (so that constant
//! folding, BatchNormalization and affine folds have something to do).
//! Without the data the test says so and passes, unless `KANN_REQUIRE_DATA`
//! is set.

use kann_compiler::{PassCx, Pipeline};
use kann_ir::Graph;
use kann_onnx::ImportOptions;
use kann_reference::Reference;
use kann_tensor::Tensor;
use std::collections::{BTreeMap, HashMap};
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

fn diff(a: f64, b: f64) -> f64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => 0.0,
        (false, false) if a == b => 0.0,
        (false, false) => (a - b).abs(),
        _ => f64::INFINITY,
    }
}

/// Ok(true) when the pipeline ran and the outputs agree, Ok(false) when the
/// reference cannot run the graph (not the passes' business), Err otherwise.
fn check(name: &str, graph: &Graph, inputs: &[Tensor], changed: &mut BTreeMap<String, usize>) -> Result<bool, String> {
    let Ok(want) = kann_reference::run(graph, inputs) else { return Ok(false) };
    let mut after = graph.clone();
    let mut cx = PassCx::new(Some(&Reference));
    cx.verify_each = true;
    let log = Pipeline::standard().run(&mut after, &mut cx).map_err(|e| format!("{name}: {e}"))?;
    for r in &log.reports {
        for c in r.counters.iter().filter(|c| c.count > 0) {
            *changed.entry(format!("{}: {} {}", r.pass, c.verb, c.what)).or_default() += c.count;
        }
    }
    let got = kann_reference::run(&after, inputs).map_err(|e| format!("{name}: after the pipeline: {e}\n{log}"))?;
    for (w, g) in want.iter().zip(&got) {
        if w.dtype() != g.dtype() || w.shape() != g.shape() {
            return Err(format!("{name}: output type changed\n{log}"));
        }
        let (w, g) = (w.to_f64_vec(), g.to_f64_vec());
        let scale = w.iter().filter(|v| v.is_finite()).fold(1e-30f64, |m, v| m.max(v.abs()));
        let err = w.iter().zip(&g).fold(0f64, |m, (a, b)| m.max(diff(*a, *b)));
        if err > 1e-4 * scale {
            return Err(format!("{name}: max abs error {err:.3e} for max |y| {scale:.3e}\n{log}"));
        }
    }
    Ok(true)
}

#[test]
fn standard_pipeline_keeps_node_test_outputs() {
    let root = data_dir();
    let Ok(entries) = std::fs::read_dir(&root) else {
        assert!(std::env::var_os("KANN_REQUIRE_DATA").is_none(), "KANN_REQUIRE_DATA is set but {} is missing", root.display());
        eprintln!("skipping: no ONNX node tests in {}", root.display());
        return;
    };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("model.onnx").exists()).collect();
    dirs.sort();
    let (mut checked, mut changed, mut failures) = (0usize, BTreeMap::new(), Vec::new());
    for dir in &dirs {
        let name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
        let Some(inputs) = inputs(dir) else { continue };
        let model = dir.join("model.onnx");
        let Ok(plain) = kann_onnx::import_file(&model, &ImportOptions::default(), Some(&Reference)) else { continue };
        if plain.graph.inputs.len() != inputs.len() {
            continue;
        }
        match check(&name, &plain.graph, &inputs, &mut changed) {
            Ok(ran) => checked += ran as usize,
            Err(e) => failures.push(e),
        }
        if inputs.len() < 2 {
            continue;
        }
        let names: Vec<String> = plain.graph.inputs.iter().map(|&v| plain.graph.value(v).name.clone()).collect();
        let opts = ImportOptions { constant_inputs: names[1..].iter().cloned().zip(inputs[1..].iter().cloned()).collect::<HashMap<_, _>>(), ..ImportOptions::default() };
        let Ok(bound) = kann_onnx::import_file(&model, &opts, Some(&Reference)) else { continue };
        match check(&format!("{name} (inputs 1.. constant)"), &bound.graph, &inputs[..1], &mut changed) {
            Ok(ran) => checked += ran as usize,
            Err(e) => failures.push(e),
        }
    }
    println!("{checked} graphs checked from {} node tests; what the pipeline did, in total:", dirs.len());
    for (what, n) in &changed {
        println!("  {what} × {n}");
    }
    assert!(failures.is_empty(), "{} node tests changed outputs:\n{}", failures.len(), failures.join("\n"));
}
