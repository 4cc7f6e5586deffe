//! Every test on `conformance/allow-list.txt` must pass. Without the fetched
//! data the test says so and passes, unless `KANN_REQUIRE_DATA` is set (CI),
//! where missing data is a failure.

use kann_conformance::{default_data_dir, read_allow_list, run_test, Outcome};
use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn allow_listed_tests_pass() {
    let data = default_data_dir();
    if !data.join(".complete").exists() {
        assert!(std::env::var_os("KANN_REQUIRE_DATA").is_none(), "KANN_REQUIRE_DATA is set but {} holds no data; run scripts/fetch-onnx-data.sh", data.display());
        eprintln!("skipping: no ONNX test data in {} (run scripts/fetch-onnx-data.sh)", data.display());
        return;
    }
    let list = read_allow_list(&repo_root().join("conformance/allow-list.txt")).expect("allow-list readable");
    assert!(list.len() >= 1000, "the allow-list shrank to {} tests", list.len());
    // Two workers: the machine has two cores, and light models take seconds each.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(name) = list.get(i) else { break };
                let dir = if let Some(m) = name.strip_prefix("light/") { data.join("light").join(m) } else { data.join("node").join(name) };
                let r = run_test(&dir);
                if !matches!(r.outcome, Outcome::Pass { .. }) {
                    failures.lock().unwrap().push(format!("{name}: {:?}", r.outcome));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} allow-listed tests did not pass:\n{}", failures.len(), failures.join("\n"));
}

/// Every test on `conformance/compiled-allow-list.txt` must also pass
/// compiled (two clusters): the reference and the compiled program agree
/// with ONNX's expected outputs.
#[test]
fn compiled_allow_listed_tests_pass() {
    let data = default_data_dir();
    if !data.join(".complete").exists() {
        assert!(std::env::var_os("KANN_REQUIRE_DATA").is_none(), "KANN_REQUIRE_DATA is set but {} holds no data; run scripts/fetch-onnx-data.sh", data.display());
        eprintln!("skipping: no ONNX test data in {} (run scripts/fetch-onnx-data.sh)", data.display());
        return;
    }
    let list = read_allow_list(&repo_root().join("conformance/compiled-allow-list.txt")).expect("compiled allow-list readable");
    assert!(!list.is_empty(), "the compiled allow-list is empty");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(name) = list.get(i) else { break };
                let dir = if let Some(m) = name.strip_prefix("light/") { data.join("light").join(m) } else { data.join("node").join(name) };
                let r = kann_conformance::run_test_mode(&dir, kann_conformance::Mode { compiled: Some(2) });
                if !matches!(r.compiled, Some(Outcome::Pass { .. })) {
                    failures.lock().unwrap().push(format!("{name}: reference {:?}, compiled {:?}", r.outcome, r.compiled));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} compiled allow-listed tests did not pass:\n{}", failures.len(), failures.join("\n"));
}
