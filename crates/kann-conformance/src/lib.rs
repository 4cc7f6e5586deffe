//! kann-conformance runs ONNX backend test folders (`<dir>/<test>/model.onnx`
//! plus `test_data_set_<i>/{input,output}_<j>.pb`) through the importer and the
//! reference interpreter and judges each: pass, fail (with the largest error)
//! or skip (naming the unsupported op, attribute or dtype). Tolerances are the
//! ONNX backend runner's: `|got - want| <= atol + rtol * |want|`, rtol 1e-3,
//! atol 1e-7 unless the folder's `tolerance.json` says otherwise, with the
//! relative tolerance raised to two epsilons of the format for f16 and bf16
//! outputs; integers and bools must match exactly.
//!
//! With [`Mode::compiled`] each test that the reference passes also goes
//! through the compiler (passes, lowering, schedule on N clusters, memory
//! plan) and the compiled program runs; its verdict is the test's
//! `compiled` outcome, and an op the compiler does not lower yet is a skip
//! naming it.

use kann_onnx::{ImportError, ImportOptions};
use kann_tensor::{DType, Tensor};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The verdict on one test folder.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    Pass { max_abs_err: f64 },
    Fail { reason: String },
    Skip { cause: String, kinds: Vec<String> },
}

/// One test's name and verdict.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The compiled path's verdict, in compiled mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiled: Option<Outcome>,
}

/// How tests run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mode {
    /// Also compile and run each test on this many clusters.
    pub compiled: Option<usize>,
}

/// Tolerances of the comparison.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { rtol: 1e-3, atol: 1e-7 }
    }
}

/// Test folders under `dir`: every directory holding a `model.onnx`, sorted,
/// found up to two levels down (so both `node/` and the data root work).
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    walk(dir, 0, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.join("model.onnx").is_file() {
        found.push(dir.to_path_buf());
        return Ok(());
    }
    if depth >= 2 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            walk(&p, depth + 1, found)?;
        }
    }
    Ok(())
}

/// The test's display name: its folder name, prefixed with the parent folder
/// for light models (`light/resnet50`) so names stay unique across suites.
pub fn test_name(dir: &Path) -> String {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match dir.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()) {
        Some(parent) if parent == "light" => format!("light/{name}"),
        _ => name,
    }
}

/// Runs one test folder through import + reference.
pub fn run_test(dir: &Path) -> TestResult {
    run_test_mode(dir, Mode::default())
}

/// Runs one test folder through import + reference, and in compiled mode
/// through the compiler and the compiled program too.
pub fn run_test_mode(dir: &Path, mode: Mode) -> TestResult {
    let name = test_name(dir);
    let outcome = run_inner(dir, None).unwrap_or_else(|o| o);
    let compiled = mode.compiled.map(|n| match outcome {
        Outcome::Pass { .. } => run_inner(dir, Some(n)).unwrap_or_else(|o| o),
        _ => Outcome::Skip { cause: "the reference does not pass".into(), kinds: vec!["reference".into()] },
    });
    TestResult { name, outcome, compiled }
}

/// The arch the compiled mode targets: `KANN_CONFORMANCE_ARCH` (`generic`,
/// `x86-64-v3`, `x86-64-v4` or `native`) when set, else generic, so a run by
/// hand can check the SIMD kernels against the same expected outputs.
pub fn target_arch() -> kann_artifact::Arch {
    match std::env::var("KANN_CONFORMANCE_ARCH").as_deref() {
        Ok("native") => kann_artifact::Arch::best_for(&kann_artifact::CpuFeatures::detect()),
        Ok(name) => name.parse().unwrap_or_else(|e| panic!("KANN_CONFORMANCE_ARCH: {e}")),
        Err(_) => kann_artifact::Arch::Generic,
    }
}

/// Compiles `g` for `n` clusters and runs it once on `inputs` (by name).
fn run_compiled(g: &kann_ir::Graph, inputs: &HashMap<String, Tensor>, n: usize) -> Result<Vec<Tensor>, Outcome> {
    let opts = kann_compiler::CompileOptions { n_clusters: n, arch: target_arch(), winograd: true, blocked: true, calibration: Default::default() };
    let compiled = match kann_compiler::compile(g.clone(), &opts, Some(&kann_reference::Reference)) {
        Ok(c) => c,
        Err(kann_compiler::GenerateError::Unlowered(u)) => {
            let mut kinds: Vec<String> = u.iter().map(|x| format!("compile {}", x.op)).collect();
            kinds.dedup();
            let cause = u.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("; ");
            return Err(Outcome::Skip { cause: format!("not compiled: {cause}"), kinds });
        }
        Err(e) => return Err(fail(e)),
    };
    let ordered: Vec<Tensor> = g
        .inputs
        .iter()
        .map(|&v| inputs.get(&g.value(v).name).cloned().ok_or_else(|| fail(format!("no data for input '{}'", g.value(v).name))))
        .collect::<Result<_, _>>()?;
    run_on_runtime(&compiled, &ordered).map_err(fail)
}

/// Writes the compiled network as a `.kann` file, loads it with the
/// runtime, runs one frame on pinned workers and reads the outputs back:
/// the path `kann generate` + `kann run` takes.
pub fn run_on_runtime(compiled: &kann_compiler::Compiled, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("kann-conformance-{}-{n}.kann", std::process::id()));
    let writer = compiled.artifact(target_arch(), "{}").map_err(|e| e.to_string())?;
    writer.write_to(&path).map_err(|e| e.to_string())?;
    let result = (|| {
        let mut service = kann_runtime::Service::load(&path).map_err(|e| e.to_string())?;
        service.init_device(&kann_runtime::Device::all()).map_err(|e| e.to_string())?;
        let bytes: Vec<Vec<u8>> = inputs.iter().map(kann_tensor::npy::raw_le_bytes).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
        let mut outs: Vec<Vec<u8>> = service.outputs().iter().map(|t| vec![0u8; t.bytes()]).collect();
        let mut out_refs: Vec<&mut [u8]> = outs.iter_mut().map(|b| b.as_mut_slice()).collect();
        service.process_frame(&refs, &mut out_refs).map_err(|e| e.to_string())?;
        let specs: Vec<(DType, Vec<usize>)> = service
            .outputs()
            .iter()
            .map(|t| (DType::parse(t.dtype.name()).unwrap_or(DType::F32), t.shape.clone()))
            .collect();
        service.terminate();
        specs
            .into_iter()
            .zip(outs)
            .map(|((d, shape), b)| Tensor::new(kann_tensor::Shape::new(shape), kann_tensor::npy::data_from_le(d, &b)).map_err(|e| e.to_string()))
            .collect()
    })();
    let _ = std::fs::remove_file(&path);
    result
}

fn fail(reason: impl std::fmt::Display) -> Outcome {
    Outcome::Fail { reason: reason.to_string() }
}

/// Whether an import error means "kann does not support this" (a skip)
/// rather than "kann got it wrong" (a failure).
pub fn is_unsupported(e: &ImportError) -> bool {
    match e {
        ImportError::UnsupportedOps { .. } | ImportError::UnsupportedAttribute { .. } | ImportError::UnsupportedDType { .. } | ImportError::Opset(_) => true,
        other => {
            let msg = other.to_string();
            msg.contains("not supported") || msg.contains("must be a constant")
        }
    }
}

/// Short keys naming what a skip lacks, for the per-cause summary:
/// `op Foo`, `dtype UINT16`, `Resize attribute antialias`, `opset`.
pub fn skip_kinds(e: &ImportError) -> Vec<String> {
    match e {
        ImportError::UnsupportedOps { ops } => ops.iter().map(|o| format!("op {}", o.split_whitespace().next().unwrap_or(o))).collect(),
        ImportError::UnsupportedDType { dtype, .. } => vec![format!("dtype {dtype}")],
        ImportError::UnsupportedAttribute { node, attr, .. } => vec![format!("{} attribute {attr}", op_of(node))],
        ImportError::Opset(_) => vec!["opset".into()],
        ImportError::Ir(kann_ir::IrError::Infer { node, reason }) if reason.contains("must be a constant") => vec![format!("{} with a non-constant shape input", op_of(node))],
        ImportError::Ir(kann_ir::IrError::Infer { node, .. }) | ImportError::Node { node, .. } => vec![format!("{} (unsupported case)", op_of(node))],
        other => vec![other.to_string()],
    }
}

/// `Conv` from a locator `node #3 "c" (Conv)`.
fn op_of(locator: &str) -> String {
    locator.rsplit_once('(').map(|(_, r)| r.trim_end_matches(')').to_string()).unwrap_or_else(|| locator.to_string())
}

fn run_inner(dir: &Path, compiled: Option<usize>) -> Result<Outcome, Outcome> {
    let tol = read_tolerance(dir);
    let sets = data_sets(dir).map_err(fail)?;
    if sets.is_empty() {
        return Err(fail("no test_data_set_* folder"));
    }
    let mut worst = 0.0f64;
    for set in sets {
        let inputs = read_numbered(&set, "input")?;
        let expected = read_numbered(&set, "output")?;
        let model = kann_onnx::read_model(&dir.join("model.onnx")).map_err(fail)?;
        let opts = bind_inputs(&model, &inputs);
        let imported = match kann_onnx::import_model(&model, Some(dir), &opts, Some(&kann_reference::Reference)) {
            Ok(m) => m,
            Err(e) if is_unsupported(&e) => return Ok(Outcome::Skip { cause: e.to_string(), kinds: skip_kinds(&e) }),
            Err(e) => return Err(fail(e)),
        };
        let g = &imported.graph;
        let mut by_name: HashMap<String, Tensor> = HashMap::new();
        for (name, t) in inputs {
            by_name.insert(name, t);
        }
        let got = match compiled {
            None => kann_reference::run_named(g, &by_name).map_err(fail)?,
            Some(n) => run_compiled(g, &by_name, n)?,
        };
        if got.len() != expected.len() {
            return Err(fail(format!("{} outputs, expected {}", got.len(), expected.len())));
        }
        for (i, (g_t, (ename, e_t))) in got.iter().zip(&expected).enumerate() {
            let err = compare(g_t, e_t, tol).map_err(|r| fail(format!("output {i} '{ename}': {r}")))?;
            worst = worst.max(err);
        }
    }
    Ok(Outcome::Pass { max_abs_err: worst })
}

/// Compiles the model of a test folder for each cluster count in
/// `clusters`, runs it on the folder's first data set and compares every
/// output with the reference interpreter's (kann-io's diff metrics, fp32
/// tolerance). Returns, per cluster count, the diffs of the outputs.
pub fn compiled_vs_reference(dir: &Path, clusters: &[usize]) -> Result<Vec<(usize, Vec<kann_io::diff::TensorDiff>)>, String> {
    let set = data_sets(dir)?.into_iter().next().ok_or("no test_data_set_* folder")?;
    let inputs = read_numbered(&set, "input").map_err(|o| format!("{o:?}"))?;
    let model = kann_onnx::read_model(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let opts = bind_inputs(&model, &inputs);
    let imported = kann_onnx::import_model(&model, Some(dir), &opts, Some(&kann_reference::Reference)).map_err(|e| e.to_string())?;
    let g = &imported.graph;
    let by_name: HashMap<String, Tensor> = inputs.into_iter().collect();
    let want = kann_reference::run_named(g, &by_name).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for &n in clusters {
        let got = run_compiled(g, &by_name, n).map_err(|o| format!("{n} cluster(s): {o:?}"))?;
        let diffs = got
            .iter()
            .zip(&want)
            .zip(&g.outputs)
            .map(|((a, b), &v)| kann_io::diff::diff(&g.value(v).name, a, b, kann_io::diff::Tolerance::default(), Some(5)))
            .collect::<Result<Vec<_>, _>>()?;
        out.push((n, diffs));
    }
    Ok(out)
}

/// Binds test inputs: shapes for all, and values for integer, bool and tiny
/// 1-D inputs, which in the backend tests carry parameters (shapes, axes,
/// pads, scales) that kann needs as constants for static shapes.
fn bind_inputs(model: &kann_onnx::proto::ModelProto, inputs: &[(String, Tensor)]) -> ImportOptions {
    let mut opts = ImportOptions::default();
    let graph = model.graph.as_ref();
    let init: Vec<&str> = graph.map(|g| g.initializer.iter().map(|t| t.name.as_str()).collect()).unwrap_or_default();
    let names: Vec<String> = graph.map(|g| g.input.iter().filter(|v| !init.contains(&v.name.as_str())).map(|v| v.name.clone()).collect()).unwrap_or_default();
    for (i, (pb_name, t)) in inputs.iter().enumerate() {
        let name = if !pb_name.is_empty() { pb_name.clone() } else { names.get(i).cloned().unwrap_or_default() };
        let param_like = !t.dtype().is_float() || (t.rank() <= 1 && t.len() <= 16);
        if param_like {
            opts.constant_inputs.insert(name, t.clone());
        } else {
            opts.input_shapes.insert(name, t.dims().to_vec());
        }
    }
    opts
}

/// Largest absolute error if within tolerance, else why not.
pub fn compare(got: &Tensor, want: &Tensor, tol: Tolerance) -> Result<f64, String> {
    if got.dtype() != want.dtype() {
        return Err(format!("dtype {} but expected {}", got.dtype(), want.dtype()));
    }
    if got.dims() != want.dims() {
        return Err(format!("shape {} but expected {}", got.shape(), want.shape()));
    }
    if !want.dtype().is_float() {
        let (a, b) = (got.to_i64_vec(), want.to_i64_vec());
        return match a.iter().zip(&b).position(|(x, y)| x != y) {
            None => Ok(0.0),
            Some(i) => Err(format!("element {i} is {} but expected {} ({} of {} differ)", a[i], b[i], a.iter().zip(&b).filter(|(x, y)| x != y).count(), a.len())),
        };
    }
    // Half-precision outputs cannot be compared below their own rounding: the
    // expected values went through a rounding to f16/bf16 after every op of
    // the generating graph, kann's after each op too but from f64 results. Two
    // units of the format's epsilon is the floor of the relative tolerance.
    let tol = match want.dtype() {
        DType::F16 => Tolerance { rtol: tol.rtol.max(2.0 * 2f64.powi(-10)), ..tol },
        DType::BF16 => Tolerance { rtol: tol.rtol.max(2.0 * 2f64.powi(-7)), ..tol },
        _ => tol,
    };
    let (a, b) = (got.to_f64_vec(), want.to_f64_vec());
    let mut worst = 0.0f64;
    let mut bad: Option<(usize, f64)> = None;
    let mut n_bad = 0;
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        if x.is_nan() && y.is_nan() || x == y {
            continue;
        }
        let err = (x - y).abs();
        let ok = err.is_finite() && err <= tol.atol + tol.rtol * y.abs();
        if err.is_finite() {
            worst = worst.max(err);
        } else {
            worst = f64::INFINITY;
        }
        if !ok {
            n_bad += 1;
            if bad.is_none_or(|(_, e)| err > e) {
                bad = Some((i, err));
            }
        }
    }
    match bad {
        None => Ok(worst),
        Some((i, err)) => Err(format!("max abs error {err:.3e} at element {i} (got {}, expected {}); {n_bad} of {} elements outside rtol {} atol {}", a[i], b[i], a.len(), tol.rtol, tol.atol)),
    }
}

fn read_tolerance(dir: &Path) -> Tolerance {
    let mut tol = Tolerance::default();
    if let Ok(text) = std::fs::read_to_string(dir.join("tolerance.json")) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            if let Some(r) = v.get("rtol").and_then(|x| x.as_f64()) {
                tol.rtol = r;
            }
            if let Some(a) = v.get("atol").and_then(|x| x.as_f64()) {
                tol.atol = a;
            }
        }
    }
    tol
}

fn data_sets(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_")))
        .collect();
    sets.sort();
    Ok(sets)
}

/// `<prefix>_0.pb`, `<prefix>_1.pb`… in order, with their tensor names. A
/// tensor of a dtype kann lacks makes the test a skip.
fn read_numbered(set: &Path, prefix: &str) -> Result<Vec<(String, Tensor)>, Outcome> {
    let mut out = Vec::new();
    for i in 0.. {
        let p = set.join(format!("{prefix}_{i}.pb"));
        if !p.exists() {
            break;
        }
        match kann_onnx::tensor::read_tensor_file(&p) {
            Ok(t) => out.push(t),
            Err(e) if is_unsupported(&e) => return Err(Outcome::Skip { cause: format!("{prefix} {i}: {e}"), kinds: skip_kinds(&e) }),
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(out)
}

/// Summary counts.
pub fn counts(results: &[TestResult]) -> (usize, usize, usize) {
    let p = results.iter().filter(|r| matches!(r.outcome, Outcome::Pass { .. })).count();
    let f = results.iter().filter(|r| matches!(r.outcome, Outcome::Fail { .. })).count();
    (p, f, results.len() - p - f)
}

/// Reads an allow-list: one test name per line, `#` comments.
pub fn read_allow_list(path: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?.lines().map(|l| l.split('#').next().unwrap_or("").trim().to_string()).filter(|l| !l.is_empty()).collect())
}

/// Where the fetch script puts the data: `$KANN_DATA` or `~/.cache/kann-data`, then `onnx-1.23.2`.
pub fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("KANN_DATA").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".cache/kann-data")
    });
    base.join("onnx-1.23.2")
}

/// Where `scripts/make-random-models.sh` puts the random-weight light
/// models: `$KANN_DATA` or `~/.cache/kann-data`, then `random-models-v1`.
pub fn random_models_dir() -> PathBuf {
    default_data_dir().with_file_name("random-models-v1")
}

/// Is this dtype compared exactly?
pub fn exact(d: DType) -> bool {
    !d.is_float()
}
