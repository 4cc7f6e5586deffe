//! `kann generate` end to end on tiny models: the generated folder, the
//! log's sections, the optional outputs, and one-line errors.

use kann_io::stream::{write_input_stream, IoSpec, Manifest};
use kann_onnx::proto::data_type as dt;
use kann_testkit::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn kann(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kann")).args(args).output().expect("kann runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn temp_dir(tag: &str) -> ScratchDir {
    ScratchDir::new(&format!("kann-gen-{tag}-{}", std::process::id()))
}

/// `y = relu(relu(x))` with x: f32[batch, 8, 4, 4] (batch symbolic when `dyn_batch`).
fn write_model(dir: &Path, dyn_batch: bool) -> PathBuf {
    let b = if dyn_batch { None } else { Some(1) };
    let shape = [b, Some(8), Some(4), Some(4)];
    let m = model(13, vec![node("Relu", &["x"], &["h"], vec![]), node("Relu", &["h"], &["y"], vec![])], vec![value_info("x", dt::FLOAT, &shape)], vec![value_info("y", dt::FLOAT, &shape)], vec![]);
    let p = dir.join("tiny.onnx");
    std::fs::write(&p, encode(&m)).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_one_error_line(code: i32, stderr: &str, needle: &str) {
    assert_eq!(code, 2, "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "'{needle}' not in: {stderr}");
}

#[test]
fn a_yaml_network_generates_a_complete_folder() {
    let d = temp_dir("yaml");
    write_model(&d, true);
    std::fs::write(d.join("classes.txt"), "cat\ndog\n").unwrap();
    let yaml = "name: tiny-net\nonnx_model: tiny.onnx\ninput_nodes_name: [x]\ninput_nodes_shape: [[1, 8, 4, 4]]\noutput_nodes_name: [y]\n\
                generate_options:\n  nbr_clusters: 2\n  data_buffer_size: 1000\nextra_data: [classes.txt]\nsurprise_key: 1\n";
    std::fs::write(d.join("network.yaml"), yaml).unwrap();
    let dest = d.join("gen");
    let (code, out, err) = kann(&["generate", s(&d.join("network.yaml")), "-d", s(&dest), "--arch", "generic", "--generate-txt-cmds", "--draw-graph"]);
    assert_eq!(code, 0, "{out}{err}");
    for f in ["tiny-net.kann", "optimized-model.onnx", "network.dump.yaml", "log.txt", "classes.txt", "graph.dot", "cmds/cluster_0.txt", "cmds/cluster_1.txt"] {
        assert!(dest.join(f).is_file(), "{f} missing; {out}");
    }
    let log = std::fs::read_to_string(dest.join("log.txt")).unwrap();
    for section in ["GRAPH CREATION AND PARSING", "CONFIGURATION", "OPTIMISATION PASSES", "OPERATION STATISTICS", "PARAMETER STATISTICS", "MEMORY STATISTICS", "COMMAND COUNTS PER CLUSTER", "ESTIMATED LATENCY", "COPYING EXTRA DATA", "SERIALISATION"] {
        assert!(log.contains(&format!("===> {section}")), "{section} missing from:\n{log}");
    }
    assert!(log.contains("surprise_key"), "the unknown key is warned about:\n{log}");
    assert!(log.contains("data_buffer_size"), "{log}");
    assert!(log.contains("opset 13"), "{log}");
    assert!(out.contains("===> SERIALISATION"), "the log is printed too");
    let dump = std::fs::read_to_string(dest.join("network.dump.yaml")).unwrap();
    assert!(dump.contains("input_nodes_shape: [[1, 8, 4, 4]]") && dump.contains("nbr_clusters: 2") && dump.contains("arch: generic"), "{dump}");
    let cmds = std::fs::read_to_string(dest.join("cmds/cluster_0.txt")).unwrap();
    assert!(cmds.contains("run step #0"), "{cmds}");
    let dot = std::fs::read_to_string(dest.join("graph.dot")).unwrap();
    assert!(dot.starts_with("digraph") && dot.contains("->") && dot.contains("output y"), "{dot}");
    // The exported optimised graph imports again.
    let g = kann_onnx::import_file(&dest.join("optimized-model.onnx"), &Default::default(), None).unwrap();
    assert_eq!(g.graph.outputs.len(), 1);
    // The artifact reads back with the metadata.
    let art = kann_artifact::Artifact::open(dest.join("tiny-net.kann")).unwrap();
    assert_eq!(art.header().arch, kann_artifact::Arch::Generic);
    // The dump regenerates as a configuration.
    let (code, out, err) = kann(&["generate", s(&dest.join("network.dump.yaml")), "-d", s(&d.join("gen2")), "-q"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.is_empty(), "--quiet prints nothing: {out}");
}

#[test]
fn a_bare_onnx_model_with_forced_batch_and_default_dest() {
    let d = temp_dir("bare");
    let m = write_model(&d, false);
    let (code, out, err) = Command::new(env!("CARGO_BIN_EXE_kann"))
        .current_dir(&d)
        .args(["generate", s(&m), "--nbr-clusters", "3", "--forced-batch-size", "2", "--arch", "generic", "-q", "--draw-graph-pdf"])
        .output()
        .map(|o| (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned()))
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let dest = d.join("generated_generic_tiny_fp32_3c");
    assert!(dest.join("tiny.kann").is_file());
    assert!(dest.join("neural_network.dot").is_file() && dest.join("graph.dot").is_file());
    let dump = std::fs::read_to_string(dest.join("network.dump.yaml")).unwrap();
    assert!(dump.contains("input_nodes_shape: [[2, 8, 4, 4]]") && dump.contains("forced_batch_size: 2"), "{dump}");
    let log = std::fs::read_to_string(dest.join("log.txt")).unwrap();
    assert!(log.contains("batch size: 2 (forced)"), "{log}");
}

#[test]
fn bad_configurations_are_one_line_errors() {
    let d = temp_dir("bad");
    write_model(&d, true);
    let cfg = d.join("network.yaml");
    std::fs::write(&cfg, "name: t\nonnx_model: missing.onnx\ninput_nodes_name: [x]\ninput_nodes_shape: [[1, 8, 4, 4]]\n").unwrap();
    let (code, _, err) = kann(&["generate", s(&cfg), "-d", s(&d.join("g")), "-q"]);
    assert_one_error_line(code, &err, "missing.onnx");
    std::fs::write(&cfg, "name: t\nonnx_model: tiny.onnx\ninput_nodes_name: [nope]\ninput_nodes_shape: [[1, 8, 4, 4]]\n").unwrap();
    let (code, _, err) = kann(&["generate", s(&cfg), "-d", s(&d.join("g")), "-q"]);
    assert_one_error_line(code, &err, "nope");
    std::fs::write(&cfg, "name: t\nonnx_model: tiny.onnx\ninput_nodes_name: [x]\ninput_nodes_shape: [[1, 8, 4, 4]]\n").unwrap();
    let (code, _, err) = kann(&["generate", s(&cfg), "-d", s(&d.join("g")), "--precision", "int8"]);
    assert_one_error_line(code, &err, "not supported yet");
    let (code, _, err) = kann(&["generate", s(&d.join("nothing.yaml"))]);
    assert_one_error_line(code, &err, "nothing.yaml");
}

#[test]
fn unlowered_ops_are_listed() {
    let d = temp_dir("unlowered");
    let k = initializer("k", &kann_tensor::Tensor::from_i64(kann_tensor::Shape::from([1]), vec![2]).unwrap());
    let axis = initializer("axis", &kann_tensor::Tensor::scalar_i64(1));
    let nodes = vec![node("TopK", &["x", "k"], &["v", "i"], vec![]), node("CumSum", &["v", "axis"], &["y"], vec![])];
    let m = model(13, nodes, vec![value_info("x", dt::FLOAT, &[Some(1), Some(4)])], vec![value_info("y", dt::FLOAT, &[Some(1), Some(2)])], vec![k, axis]);
    let p = d.join("m.onnx");
    std::fs::write(&p, encode(&m)).unwrap();
    let (code, _, err) = kann(&["generate", s(&p), "-d", s(&d.join("g")), "-q"]);
    if code == 0 {
        return; // Both ops lowered by now: nothing left to report.
    }
    assert_one_error_line(code, &err, "cannot be compiled");
    assert!(err.contains("TopK") && err.contains("CumSum"), "{err}");
    let log = std::fs::read_to_string(d.join("g/log.txt")).expect("the log of a failed generation is kept");
    assert!(log.contains("[ERROR]"), "{log}");
}

#[test]
fn genref_reads_a_generated_folder() {
    let d = temp_dir("genref");
    let m = write_model(&d, false);
    let dest = d.join("gen");
    let (code, out, err) = kann(&["generate", s(&m), "-d", s(&dest), "--forced-batch-size", "2", "--nbr-clusters", "1", "-q"]);
    assert_eq!(code, 0, "{out}{err}");
    let io = d.join("io");
    std::fs::create_dir_all(&io).unwrap();
    // Two frames of batch 2 as an input stream (raw little-endian f32 + manifest).
    let vals: Vec<f32> = (0..2 * 2 * 8 * 16).map(|i| i as f32 - 200.0).collect();
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let spec = IoSpec { name: "x".into(), dtype: kann_tensor::DType::F32, shape: vec![2, 8, 4, 4] };
    let (f0, f1) = bytes.split_at(bytes.len() / 2);
    write_input_stream(&io, &spec, &[f0, f1]).unwrap();
    let (code, out, err) = kann(&["genref", s(&dest), s(&io)]);
    assert_eq!(code, 0, "{out}{err}");
    let y = kann_tensor::npy::read(&io.join("genref/y.npy")).unwrap();
    assert_eq!(y.dims(), &[4, 8, 4, 4]);
    let want: Vec<f32> = vals.iter().map(|v| v.max(0.0)).collect();
    assert_eq!(y.as_f32().unwrap(), &want[..]);
    // The golden outputs are a stream folder too; diff reads it (all frames).
    let m = Manifest::read(&io.join("genref")).unwrap().expect("a manifest");
    assert_eq!(m.entries.len(), 1);
    assert_eq!(m.entries[0].frames, 2);
    let (code, out, err) = kann(&["diff", s(&io.join("genref")), s(&io.join("genref"))]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verdict: PASS") && out.contains("       512 "), "{out}");
    // A stream folder against the .npy of the same outputs.
    let npy_dir = d.join("npy");
    kann_io::tensor_set::write_npy(&npy_dir, "y", &y).unwrap();
    let (code, out, err) = kann(&["diff", s(&io.join("genref")), s(&npy_dir)]);
    assert_eq!(code, 0, "{out}{err}");
    // A perturbed output stream fails.
    let wrong: Vec<u8> = want.iter().map(|v| v + 1.0).flat_map(|v| v.to_le_bytes()).collect();
    let out_spec = IoSpec { name: "y".into(), dtype: kann_tensor::DType::F32, shape: vec![2, 8, 4, 4] };
    let (w0, w1) = wrong.split_at(wrong.len() / 2);
    kann_io::stream::write_output_stream(&io, &out_spec, &[w0, w1]).unwrap();
    let (code, out, _) = kann(&["diff", s(&io), s(&io.join("genref"))]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn a_convolution_reports_its_parameters() {
    let d = temp_dir("conv");
    let w = initializer("w", &kann_tensor::Tensor::from_f32(kann_tensor::Shape::from([4, 3, 3, 3]), (0..108).map(|i| i as f32 / 100.0).collect()).unwrap());
    let b = initializer("b", &kann_tensor::Tensor::from_f32(kann_tensor::Shape::from([4]), vec![0.1, -0.2, 0.3, 0.0]).unwrap());
    let nodes = vec![node("Conv", &["x", "w", "b"], &["c"], vec![attr_ints("pads", &[1, 1, 1, 1])]), node("Relu", &["c"], &["y"], vec![])];
    let m = model(13, nodes, vec![value_info("x", dt::FLOAT, &[Some(1), Some(3), Some(8), Some(8)])], vec![value_info("y", dt::FLOAT, &[Some(1), Some(4), Some(8), Some(8)])], vec![w, b]);
    let p = d.join("conv.onnx");
    std::fs::write(&p, encode(&m)).unwrap();
    let (code, out, err) = kann(&["generate", s(&p), "-d", s(&d.join("g")), "--nbr-clusters", "2", "--generate-txt-cmds"]);
    if err.contains("cannot be compiled") {
        return; // Convolution not lowered in this build.
    }
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("parameters: 112"), "{out}");
    assert!(out.contains("input  x: f32[1, 3, 8, 8] (nchw)"), "{out}");
}
