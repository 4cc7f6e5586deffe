//! Bad input gives one clear `error:` line and exit code 2, never a panic.

use kann_onnx::proto::data_type as dt;
use kann_tensor::{npy, DType, Shape, Tensor};
use kann_testkit::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn kann(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kann")).args(args).output().expect("kann runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn temp_dir(tag: &str) -> ScratchDir {
    ScratchDir::new(&format!("kann-cli-{tag}-{}", std::process::id()))
}

/// `y = relu(x + b)` with x: f32[1, 4].
fn write_model(dir: &Path, op2: &str) -> PathBuf {
    let b = initializer("b", &Tensor::from_f32(Shape::from([4]), vec![1.0, -1.0, 0.5, 0.0]).unwrap());
    let m = model(13, vec![node("Add", &["x", "b"], &["s"], vec![]), node(op2, &["s"], &["y"], vec![])], vec![value_info("x", dt::FLOAT, &[Some(1), Some(4)])], vec![value_info("y", dt::FLOAT, &[Some(1), Some(4)])], vec![b]);
    let p = dir.join("model.onnx");
    std::fs::write(&p, encode(&m)).unwrap();
    p
}

fn assert_one_error_line(code: i32, stderr: &str, needle: &str) {
    assert_eq!(code, 2, "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "'{needle}' not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn genref_and_diff_round_trip() {
    let d = temp_dir("ok");
    let m = write_model(&d, "Relu");
    npy::write(&d.join("x.npy"), &Tensor::from_f32(Shape::from([1, 4]), vec![1.0, 2.0, -3.0, 4.0]).unwrap()).unwrap();
    let (code, out, err) = kann(&["genref", m.to_str().unwrap(), d.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let y = npy::read(&d.join("genref/y.npy")).unwrap();
    assert_eq!(y.as_f32().unwrap(), &[2.0, 1.0, 0.0, 4.0]);
    let (code, out, _) = kann(&["diff", d.join("genref").to_str().unwrap(), d.join("genref").to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("verdict: PASS"), "{out}");
    // A perturbed copy fails the verdict with exit 1.
    npy::write(&d.join("other.npy"), &Tensor::from_f32(Shape::from([1, 4]), vec![2.0, 1.0, 0.1, 4.0]).unwrap()).unwrap();
    let (code, out, _) = kann(&["diff", d.join("other.npy").to_str().unwrap(), d.join("genref/y.npy").to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("verdict: FAIL"), "{out}");
}

#[test]
fn truncated_and_corrupt_models() {
    let d = temp_dir("trunc");
    let m = write_model(&d, "Relu");
    let bytes = std::fs::read(&m).unwrap();
    std::fs::write(&m, &bytes[..bytes.len() / 2]).unwrap();
    npy::write(&d.join("x.npy"), &Tensor::zeros(DType::F32, Shape::from([1, 4]))).unwrap();
    let (code, _, err) = kann(&["genref", m.to_str().unwrap(), d.to_str().unwrap()]);
    assert_one_error_line(code, &err, "model.onnx");
    std::fs::write(&m, b"this is not protobuf at all \xff\xff\xff").unwrap();
    let (code, _, err) = kann(&["genref", m.to_str().unwrap(), d.to_str().unwrap()]);
    assert_one_error_line(code, &err, "model.onnx");
}

#[test]
fn missing_model_and_missing_input_file() {
    let d = temp_dir("missing");
    let (code, _, err) = kann(&["genref", d.join("nope.onnx").to_str().unwrap(), d.to_str().unwrap()]);
    assert_one_error_line(code, &err, "nope.onnx");
    let m = write_model(&d, "Relu");
    let (code, _, err) = kann(&["genref", m.to_str().unwrap(), d.to_str().unwrap()]);
    assert_one_error_line(code, &err, "input 'x'");
}

#[test]
fn unknown_ops_are_named_together() {
    let d = temp_dir("unknown");
    let b = initializer("b", &Tensor::from_f32(Shape::from([4]), vec![0.0; 4]).unwrap());
    let m = model(13, vec![node("Frobnicate", &["x", "b"], &["s"], vec![]), node("Twiddle", &["s"], &["y"], vec![])], vec![value_info("x", dt::FLOAT, &[Some(1), Some(4)])], vec![value_info("y", dt::FLOAT, &[Some(1), Some(4)])], vec![b]);
    let p = d.join("model.onnx");
    std::fs::write(&p, encode(&m)).unwrap();
    npy::write(&d.join("x.npy"), &Tensor::zeros(DType::F32, Shape::from([1, 4]))).unwrap();
    let (code, _, err) = kann(&["genref", p.to_str().unwrap(), d.to_str().unwrap()]);
    assert_one_error_line(code, &err, "Frobnicate");
    assert!(err.contains("Twiddle"), "{err}");
}

#[test]
fn wrong_input_shape_and_dtype() {
    let d = temp_dir("wrong");
    let m = write_model(&d, "Relu");
    npy::write(&d.join("x.npy"), &Tensor::zeros(DType::F32, Shape::from([1, 5]))).unwrap();
    let (code, _, err) = kann(&["genref", m.to_str().unwrap(), d.to_str().unwrap()]);
    assert_one_error_line(code, &err, "input 'x'");
    npy::write(&d.join("x.npy"), &Tensor::zeros(DType::F64, Shape::from([1, 4]))).unwrap();
    let (code, _, err) = kann(&["genref", m.to_str().unwrap(), d.to_str().unwrap()]);
    assert_one_error_line(code, &err, "input 'x'");
    // A raw file holding a partial frame.
    std::fs::remove_file(d.join("x.npy")).unwrap();
    std::fs::write(d.join("x.bin"), [0u8; 10]).unwrap();
    let (code, _, err) = kann(&["genref", m.to_str().unwrap(), d.to_str().unwrap()]);
    assert_one_error_line(code, &err, "x.bin");
}

#[test]
fn diff_of_different_sets_is_an_error() {
    let d = temp_dir("diffsets");
    std::fs::create_dir_all(d.join("a")).unwrap();
    std::fs::create_dir_all(d.join("b")).unwrap();
    npy::write(&d.join("a/y.npy"), &Tensor::zeros(DType::F32, Shape::from([2]))).unwrap();
    npy::write(&d.join("b/z.npy"), &Tensor::zeros(DType::F32, Shape::from([2]))).unwrap();
    let (code, _, err) = kann(&["diff", d.join("a").to_str().unwrap(), d.join("b").to_str().unwrap()]);
    assert_one_error_line(code, &err, "different tensors");
}

#[test]
fn version_names_the_artifact_format() {
    let (code, out, _) = kann(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains("artifact format 1."), "{out}");
}

/// `kann … | head`: when the reader of kann's output leaves early, kann ends
/// quietly as Unix tools do (by SIGPIPE), not in a panic with a backtrace.
#[cfg(unix)]
#[test]
fn a_reader_that_leaves_early_ends_kann_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kann")).arg("devices").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kann runs");
    // The reader leaves before kann prints its first line.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("kann ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // 13: SIGPIPE.
    assert!(out.status.success() || out.status.signal() == Some(13), "{:?}: {stderr}", out.status);
}
