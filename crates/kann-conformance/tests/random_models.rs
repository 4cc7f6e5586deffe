//! The nine light architectures with random weights (scripts/make-random-models.sh)
//! must match ONNX Runtime's outputs: unlike ONNX's own light models, whose
//! constant-filled weights give flat outputs, these exercise the numerics.
//! Without the data the test says so and passes, unless `KANN_REQUIRE_DATA` is set.

use kann_conformance::{discover, run_test, Outcome};


#[test]
fn random_weight_models_match_onnxruntime() {
    let dir = kann_conformance::random_models_dir();
    if !dir.join(".complete").exists() {
        assert!(std::env::var_os("KANN_REQUIRE_DATA").is_none(), "KANN_REQUIRE_DATA is set but {} holds no data; run scripts/make-random-models.sh", dir.display());
        eprintln!("skipping: no random-weight models in {} (run scripts/make-random-models.sh)", dir.display());
        return;
    }
    let tests = discover(&dir.join("light")).expect("listable");
    assert_eq!(tests.len(), 9, "expected the nine light architectures");
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = tests.chunks(tests.len().div_ceil(2)).map(|chunk| s.spawn(move || chunk.iter().map(|t| run_test(t)).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("worker")).filter(|r| !matches!(r.outcome, Outcome::Pass { .. })).map(|r| format!("{}: {:?}", r.name, r.outcome)).collect()
    });
    assert!(failures.is_empty(), "random-weight models disagree with ONNX Runtime:\n{}", failures.join("\n"));
}
