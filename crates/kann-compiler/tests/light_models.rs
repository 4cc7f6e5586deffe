//! The standard pipeline keeps the nine light random-weight models'
//! outputs (reference interpreter before vs after, max abs error ≤ 1e-4 of
//! the output's largest magnitude) and prints each pass log. Without the
//! data the test says so and passes, unless `KANN_REQUIRE_DATA` is set.
//! ResNet-50 must fold its 53 BatchNormalization, fuse its 16 residual Adds
//! and all 49 Relus.

use kann_compiler::{PassCx, PassLog, Pipeline};
use kann_onnx::ImportOptions;
use kann_reference::Reference;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn data_dir() -> PathBuf {
    let base = std::env::var_os("KANN_DATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kann-data"));
    base.join("random-models-v1/light")
}

const MODELS: [&str; 9] = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet", "vgg19", "zfnet512"];

struct Outcome {
    name: &'static str,
    nodes: (usize, usize),
    log: PassLog,
    err: f64,
    scale: f64,
    secs: f64,
}

fn check(dir: &Path, name: &'static str) -> Outcome {
    let t0 = Instant::now();
    let model = kann_onnx::import_file(&dir.join(name).join("model.onnx"), &ImportOptions::default(), Some(&Reference)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (_, input) = kann_onnx::tensor::read_tensor_file(&dir.join(name).join("test_data_set_0/input_0.pb")).expect("input");
    let before = model.graph;
    let mut after = before.clone();
    let mut cx = PassCx::new(Some(&Reference));
    cx.verify_each = true;
    let log = Pipeline::standard().run(&mut after, &mut cx).unwrap_or_else(|e| panic!("{name}: {e}"));
    let want = kann_reference::run(&before, std::slice::from_ref(&input)).unwrap_or_else(|e| panic!("{name} before: {e}"));
    let got = kann_reference::run(&after, &[input]).unwrap_or_else(|e| panic!("{name} after: {e}"));
    assert_eq!(want.len(), got.len(), "{name}: output count");
    let (mut err, mut scale) = (0f64, 0f64);
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.shape(), g.shape(), "{name}: output shape");
        let (w, g) = (w.to_f64_vec(), g.to_f64_vec());
        scale = w.iter().fold(scale, |m, v| m.max(v.abs()));
        err = w.iter().zip(&g).fold(err, |m, (a, b)| m.max(diff(*a, *b)));
    }
    Outcome { name, nodes: (before.nodes.len(), after.nodes.len()), log, err, scale, secs: t0.elapsed().as_secs_f64() }
}

/// |a - b|, with NaN against a number as infinitely far (`f64::max` would skip it).
fn diff(a: f64, b: f64) -> f64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => 0.0,
        (false, false) if a == b => 0.0,
        (false, false) => (a - b).abs(),
        _ => f64::INFINITY,
    }
}

#[test]
fn standard_pipeline_keeps_the_light_models_outputs() {
    let dir = data_dir();
    if !MODELS.iter().all(|m| dir.join(m).join("model.onnx").exists()) {
        assert!(std::env::var_os("KANN_REQUIRE_DATA").is_none(), "KANN_REQUIRE_DATA is set but {} lacks the light models", dir.display());
        eprintln!("skipping: the light random-weight models are not in {} (run scripts/make-random-models.sh)", dir.display());
        return;
    }
    // Two workers, biggest models spread over both.
    let order = ["vgg19", "zfnet512", "bvlc_alexnet", "resnet50", "inception_v2", "densenet121", "inception_v1", "shufflenet", "squeezenet"];
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&name) = order.get(i) else { break out };
                        out.push(check(&dir, MODELS.iter().find(|m| **m == name).expect("listed")));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    let mut failures = Vec::new();
    for o in &outcomes {
        println!("{}: {} → {} nodes, max abs error {:.3e} (max |y| {:.3e}), {:.1} s", o.name, o.nodes.0, o.nodes.1, o.err, o.scale, o.secs);
        for r in &o.log.reports {
            println!("  {r}");
        }
        let close = o.err <= 1e-4 * o.scale.max(f64::MIN_POSITIVE);
        if !close {
            failures.push(format!("{}: max abs error {:.3e} for max |y| {:.3e}", o.name, o.err, o.scale));
        }
    }
    let resnet = outcomes.iter().find(|o| o.name == "resnet50").expect("resnet50 ran");
    let bn = resnet.log.report("fold_batch_norm").expect("fold_batch_norm ran");
    assert_eq!(bn.get("folded", "BatchNormalization into Conv"), 53, "ResNet-50 has 53 BatchNormalization after Convs: {bn}");
    let res = resnet.log.report("fuse_residual_add").expect("fuse_residual_add ran");
    assert_eq!(res.get("fused", "residual Add into Conv"), 16, "ResNet-50 has 16 residual Adds after a Conv: {res}");
    let act = resnet.log.report("fuse_activation").expect("fuse_activation ran");
    assert_eq!(act.get("fused", "Relu"), 49, "every ResNet-50 Relu follows a Conv or a Conv+Add: {act}");
    assert!(act.notes.contains(&"Relu: 49/49 fused".to_string()), "{act}");
    assert!(failures.is_empty(), "the pipeline changed outputs:\n{}", failures.join("\n"));
}

/// The smaller light models, optimised by the standard pipeline, written
/// with `kann_onnx::export_model` and read back, compute what the optimised
/// graph computes (fused ops included, expanded into standard nodes).
#[test]
fn optimised_models_survive_an_onnx_round_trip() {
    let dir = data_dir();
    let models = ["squeezenet", "shufflenet", "resnet50"];
    if !models.iter().all(|m| dir.join(m).join("model.onnx").exists()) {
        assert!(std::env::var_os("KANN_REQUIRE_DATA").is_none(), "KANN_REQUIRE_DATA is set but {} lacks the light models", dir.display());
        eprintln!("skipping: the light random-weight models are not in {}", dir.display());
        return;
    }
    std::thread::scope(|s| {
        for name in models {
            let dir = &dir;
            s.spawn(move || round_trip(dir, name));
        }
    });
}

fn round_trip(dir: &Path, name: &str) {
    let model = kann_onnx::import_file(&dir.join(name).join("model.onnx"), &ImportOptions::default(), Some(&Reference)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (_, input) = kann_onnx::tensor::read_tensor_file(&dir.join(name).join("test_data_set_0/input_0.pb")).expect("input");
    let mut g = model.graph;
    Pipeline::standard().run(&mut g, &mut PassCx::new(Some(&Reference))).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(g.nodes.iter().any(|n| matches!(n.op, kann_ir::Op::Fused(_))), "{name}: nothing fused");
    let bytes = kann_onnx::export_model(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
    let proto = kann_onnx::decode_model(&bytes, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = kann_onnx::import_model(&proto, None, &ImportOptions::default(), Some(&Reference)).unwrap_or_else(|e| panic!("{name} re-import: {e}")).graph;
    let want = kann_reference::run(&g, std::slice::from_ref(&input)).unwrap_or_else(|e| panic!("{name} optimised: {e}"));
    let got = kann_reference::run(&back, &[input]).unwrap_or_else(|e| panic!("{name} re-imported: {e}"));
    assert_eq!(want.len(), got.len(), "{name}: output count");
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.shape(), g.shape(), "{name}: output shape");
        let (w, g) = (w.to_f64_vec(), g.to_f64_vec());
        let scale = w.iter().fold(f64::MIN_POSITIVE, |m, v| m.max(v.abs()));
        let err = w.iter().zip(&g).fold(0f64, |m, (a, b)| m.max(diff(*a, *b)));
        assert!(err <= 1e-5 * scale, "{name}: the round trip changed the output: max abs error {err:.3e} for max |y| {scale:.3e}");
    }
}
