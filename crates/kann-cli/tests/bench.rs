//! `kann devices` and `kann bench` end to end: the device description as
//! JSON with positive peaks (a tiny measurement window, a private data
//! folder), the bench table and its JSON on a tiny convolution generated
//! from YAML and from a generated folder, ONNX Runtime beside it when its
//! venv exists, and one-line errors.

use kann_onnx::proto::data_type as dt;
use kann_tensor::{Shape, Tensor};
use kann_testkit::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs kann with a private data folder and a 2 ms peak window.
fn kann(data: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kann")).env("KANN_DATA", data).env("KANN_PEAK_MS", "2").args(args).output().expect("kann runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn temp_dir(tag: &str) -> ScratchDir {
    ScratchDir::new(&format!("kann-bench-{tag}-{}", std::process::id()))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `y = relu(conv3x3(x, w))`, x: f32[1, 4, 8, 8], w: f32[8, 4, 3, 3];
/// a network YAML naming it.
fn write_network(dir: &Path) -> PathBuf {
    let w: Vec<f32> = (0..8 * 4 * 9).map(|i| ((i * 37 % 17) as f32 - 8.0) / 16.0).collect();
    let w = initializer("w", &Tensor::from_f32(Shape::from([8, 4, 3, 3]), w).unwrap());
    let nodes = vec![node("Conv", &["x", "w"], &["h"], vec![attr_ints("pads", &[1, 1, 1, 1])]), node("Relu", &["h"], &["y"], vec![])];
    let m =
        model(13, nodes, vec![value_info("x", dt::FLOAT, &[Some(1), Some(4), Some(8), Some(8)])], vec![value_info("y", dt::FLOAT, &[Some(1), Some(8), Some(8), Some(8)])], vec![w]);
    std::fs::write(dir.join("conv.onnx"), encode(&m)).unwrap();
    let yaml = dir.join("network.yaml");
    std::fs::write(&yaml, "name: tiny-conv\nonnx_model: conv.onnx\ninput_nodes_name: [x]\ninput_nodes_shape: [[1, 4, 8, 8]]\noutput_nodes_name: [y]\n").unwrap();
    yaml
}

#[test]
fn devices_json_has_positive_peaks_and_a_cache() {
    let data = temp_dir("devices");
    let start = std::time::Instant::now();
    let (code, out, err) = kann(&data, &["devices", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    // The peaks in 2 ms windows, the calibration's probes in 3 frames each
    // (twice on an AVX-512 CPU): seconds, not the default's tens.
    assert!(start.elapsed().as_secs_f64() < 10.0, "took {:?}", start.elapsed());
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert!(!v["model"].as_str().unwrap().is_empty());
    assert!(!v["cores"].as_array().unwrap().is_empty());
    let peaks = v["peaks"].as_array().unwrap();
    assert!(peaks.iter().any(|p| p["kind"] == "fp32"), "{out}");
    for p in peaks {
        let (one, all) = (p["per_core"].as_f64().unwrap(), p["all_cores"].as_f64().unwrap());
        assert!(one > 0.0 && one.is_finite() && all > 0.0, "{p}");
    }
    assert_eq!(v["cached"], false);
    // The cost model's calibration: a positive factor per kernel family.
    let factors = &v["calibration"]["factors"];
    for family in ["gemm", "pointwise", "winograd4x4", "winograd2x2", "depthwise", "weights"] {
        let f = factors[family].as_f64().unwrap_or(0.0);
        assert!(f > 0.0 && f.is_finite(), "{family}: {v}");
    }
    let cache = PathBuf::from(v["cache_file"].as_str().unwrap());
    assert!(cache.starts_with(data.join("devices")) && cache.is_file(), "{cache:?}");
    // The second call reads the cache; the text form names it.
    let (code, out, _) = kann(&data, &["devices"]);
    assert_eq!(code, 0);
    for want in ["CPU:", "ISA:", "cores:", "fp32-portable", "cost model calibration", "peaks read from", s(&cache)] {
        assert!(out.contains(want), "{want} missing from\n{out}");
    }
    let (_, out, _) = kann(&data, &["devices", "--refresh"]);
    assert!(out.contains("peaks saved to"), "{out}");
    // `kann generate` for this CPU uses the calibration, unless told not to.
    let yaml = write_network(&data);
    let (code, out, err) = kann(&data, &["generate", s(&yaml), "-d", s(&data.join("gen")), "-q"]);
    assert_eq!(code, 0, "{out}{err}");
    let log = std::fs::read_to_string(data.join("gen/log.txt")).unwrap();
    assert!(log.contains("cost model: calibrated on this machine"), "{log}");
    let out = Command::new(env!("CARGO_BIN_EXE_kann")).env("KANN_DATA", &*data).env("KANN_NO_CALIBRATION", "1").args(["generate", s(&yaml), "-d", s(&data.join("gen2")), "-q"]).output().unwrap();
    assert!(out.status.success());
    let log = std::fs::read_to_string(data.join("gen2/log.txt")).unwrap();
    assert!(log.contains("cost model: not calibrated"), "{log}");
}

#[test]
fn bench_prints_the_table_and_writes_json() {
    let d = temp_dir("tiny");
    let yaml = write_network(&d);
    let json_path = d.join("bench.json");
    let (code, out, err) = kann(&d.join("data"), &["bench", s(&yaml), "-n", "3", "--warmup", "1", "--nbr-clusters", "1", "--json", s(&json_path)]);
    assert_eq!(code, 0, "{out}{err}");
    for want in ["kann bench: 3 timed frame(s) after 1 warm-up", "tiny-conv", "GFLOP/s", "at peak", "eff.", "results written to"] {
        assert!(out.contains(want), "{want} missing from\n{out}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let m = &v["models"][0];
    assert_eq!(m["name"], "tiny-conv");
    assert_eq!(m["threads"], 1);
    // 8×8 outputs × 8 channels × 4·3·3 multiply-adds × 2, plus the ReLU.
    let gflop = m["gflop"].as_f64().unwrap();
    assert!(gflop >= 2.0 * 512.0 * 36.0 / 1e9, "{gflop}");
    let k = &m["kann"];
    let (min, med, max) = (k["min_ms"].as_f64().unwrap(), k["median_ms"].as_f64().unwrap(), k["max_ms"].as_f64().unwrap());
    assert!(0.0 < min && min <= med && med <= max, "{k}");
    let eff = m["efficiency"].as_f64().unwrap();
    assert!(eff > 0.0 && eff.is_finite(), "{m}");
    let est = m["estimate_ms"].as_f64().unwrap_or(-1.0);
    assert!(est > 0.0 && est.is_finite(), "the cost model's estimate is missing: {m}");
    assert!(v["peak_gflops_per_core"].as_f64().unwrap() > 0.0);
    assert!(v["geomean_ratio_kann_ort"].is_null());

    // A generated folder benches too, several models in one table.
    let gen = d.join("gen");
    let (code, out, err) = Command::new(env!("CARGO_BIN_EXE_kann"))
        .args(["generate", s(&yaml), "-d", s(&gen), "-q"])
        .output()
        .map(|o| (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned()))
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = kann(&d.join("data"), &["bench", s(&gen), s(&yaml), "-n", "2", "--warmup", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("tiny-conv").count(), 2, "{out}");

    // `kann infer` prints the estimate next to what it measures, per step too.
    let (code, out, err) = kann(&d.join("data"), &["infer", s(&gen), "-n", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("estimated latency (cost model): ") && all.contains("measured device / estimated: "), "{all}");
    assert!(all.contains("estimated busy µs per cluster (cost model): "), "{all}");
    // Its random inputs' folder is the user's to keep; the test's to remove.
    let io = out.lines().find_map(|l| l.strip_prefix("random inputs (2 frame(s)) in ")).expect("infer names its inputs' folder");
    std::fs::remove_dir_all(io).unwrap();
}

#[test]
#[cfg(unix)]
fn bench_against_onnxruntime_when_its_venv_exists() {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let data = home.join(".cache/kann-data");
    if !data.join("venv/bin/python").is_file() {
        eprintln!("skipped: no ONNX Runtime venv in {} (kann bench --vs-onnxruntime creates it)", data.display());
        return;
    }
    let d = temp_dir("ort");
    let yaml = write_network(&d);
    let json_path = d.join("bench.json");
    // A private data folder (its peaks cache) that borrows the real venv.
    let private = d.join("data");
    std::fs::create_dir_all(&private).unwrap();
    std::os::unix::fs::symlink(data.join("venv"), private.join("venv")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kann"))
        .env("KANN_DATA", &private)
        .env("KANN_PEAK_MS", "2")
        .args(["bench", s(&yaml), "-n", "3", "--warmup", "1", "--vs-onnxruntime", "--json", s(&json_path)])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("kann/ORT") && stdout.contains("geometric mean kann/ORT"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let ratio = v["models"][0]["ratio_kann_ort"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio.is_finite(), "{v}");
    assert!(v["models"][0]["onnxruntime"]["median_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let d = temp_dir("bad");
    for (args, needle) in [(vec!["bench", "/nonexistent/x.kann"], "does not exist"), (vec!["bench", s(&d)], "holds no .kann artifact")] {
        let (code, _, err) = kann(&d.join("data"), &args);
        assert_eq!(code, 2, "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].starts_with("error: "), "{err}");
        assert!(lines[0].contains(needle), "'{needle}' not in {err}");
    }
    let (code, _, err) = kann(&d.join("data"), &["bench", s(&d), "-n", "0"]);
    assert_eq!(code, 2, "{err}");
}
