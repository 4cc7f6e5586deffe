//! The service on hand-built artifacts: 1, 2 and 3 clusters (more than
//! some machines' cores), barriers, split parts, weights, and the errors.

use kann_kernels::unary::{Unary, UnaryKind};
use kann_kernels::{BufRef, Command, Kernel, Program};
use kann_runtime::testing::{artifact_bytes, bytes_f32, f32_bytes, relu_chain};
use kann_runtime::{Device, RuntimeError, Service};
use std::path::PathBuf;

/// A fresh file path under the target's temp dir.
fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kann-runtime-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write(program: &Program, weights: &[f32], name: &str) -> PathBuf {
    let path = temp_path(name);
    std::fs::write(&path, artifact_bytes(program, &f32_bytes(weights), r#"{"name":"test"}"#).unwrap()).unwrap();
    path
}

fn relu(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.max(0.0)).collect()
}

fn input(len: usize, seed: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7 + seed * 13) % 11) as f32 - 5.0).collect()
}

fn run_chain(n_clusters: usize, device: Device) {
    let (len, wlen) = (37, 9);
    let weights: Vec<f32> = (0..wlen).map(|i| i as f32 - 4.0).collect();
    let path = write(&relu_chain(n_clusters, len as u64, wlen as u64), &weights, &format!("chain{n_clusters}.kann"));
    let mut s = Service::load(&path).unwrap();
    assert_eq!(s.n_clusters(), n_clusters);
    assert_eq!(s.metadata(), r#"{"name":"test"}"#);
    s.init_device(&device).unwrap();
    let mut y = vec![0u8; len * 4];
    let mut w = vec![0u8; wlen * 4];
    for frame in 0..20 {
        let x = input(len, frame);
        let stats = s.process_frame(&[&f32_bytes(&x)], &mut [&mut y, &mut w]).unwrap();
        assert!(stats.host >= stats.device);
        assert_eq!(bytes_f32(&y), relu(&x), "frame {frame}");
        assert_eq!(bytes_f32(&w), relu(&weights));
    }
    let p = s.last_profile().unwrap();
    assert_eq!(p.n_clusters, n_clusters);
    assert_eq!(p.steps.len(), 3);
    assert_eq!(p.barrier_wait.len(), n_clusters);
    assert!(p.steps.iter().all(|st| st.per_cluster.len() == n_clusters));
    assert_eq!(p.steps[0].kernel, "f32_relu_generic");
    s.terminate();
}

#[test]
fn one_cluster() {
    run_chain(1, Device::all());
}

#[test]
fn two_clusters() {
    run_chain(2, Device::all());
}

#[test]
fn three_clusters_on_one_core_warns() {
    let core = Device::all().core_ids()[0];
    let path = write(&relu_chain(3, 8, 2), &[1.0, -1.0], "warn.kann");
    let mut s = Service::load(&path).unwrap();
    s.init_device(&Device::cores(vec![core])).unwrap();
    assert!(s.warnings().iter().any(|w| w.contains("3 clusters on 1 core")), "{:?}", s.warnings());
    run_chain(3, Device::cores(vec![core]));
}

#[test]
fn more_clusters_than_cores() {
    let n = Device::all().core_ids().len() + 2;
    run_chain(n.min(9), Device::all());
}

#[test]
fn in_place_step_and_empty_parts() {
    // y = relu(relu(x)) computed in place in one buffer, cluster 1 idle in
    // the second step (an empty part).
    let mut p = relu_chain(2, 10, 0);
    let y = p.outputs[0].buf;
    p.steps[1].inputs = vec![y];
    p.steps[0].outputs = vec![y];
    p.clusters[0][2] = Command::Run { step: 1, begin: 0, end: 10 };
    p.clusters[1][2] = Command::Run { step: 1, begin: 10, end: 10 };
    let path = write(&p, &[], "inplace.kann");
    let mut s = Service::load(&path).unwrap();
    s.init_device(&Device::all()).unwrap();
    let x = input(10, 3);
    let mut out = vec![0u8; 40];
    s.process_frame(&[&f32_bytes(&x)], &mut [&mut out, &mut []]).unwrap();
    assert_eq!(bytes_f32(&out), relu(&x));
}

#[test]
fn wrong_lengths_name_the_tensor() {
    let path = write(&relu_chain(2, 8, 2), &[1.0, 2.0], "len.kann");
    let mut s = Service::load(&path).unwrap();
    let mut y = vec![0u8; 32];
    let mut w = vec![0u8; 8];
    let err = s.process_frame(&[&[0u8; 31]], &mut [&mut y, &mut w]).unwrap_err();
    assert_eq!(err.to_string(), "input 'x' needs 32 bytes ([8] f32), got 31");
    let err = s.process_frame(&[&[0u8; 32]], &mut [&mut y]).unwrap_err();
    assert_eq!(err.to_string(), "expected 2 output buffers, got 1");
    assert!(matches!(s.process_frame(&[&[0u8; 32]], &mut [&mut y, &mut w]), Err(RuntimeError::NotInitialized)));
    s.init_device(&Device::all()).unwrap();
    let mut short = vec![0u8; 4];
    let err = s.process_frame(&[&[0u8; 32]], &mut [&mut y, &mut short]).unwrap_err();
    assert!(err.to_string().starts_with("output 'w' needs 8 bytes"), "{err}");
}

#[test]
fn a_panicking_kernel_is_an_error_not_a_hang() {
    // Kernel parameters larger than the buffers pass validation but make
    // the kernel's bounds check fail.
    let mut p = relu_chain(2, 8, 0);
    p.steps[0].kernel = Kernel::Unary(Unary { kind: UnaryKind::Relu, len: 64, isa: kann_kernels::Isa::Generic });
    p.clusters[0][0] = Command::Run { step: 0, begin: 0, end: 64 };
    p.clusters[1][0] = Command::Run { step: 0, begin: 64, end: 64 };
    let path = write(&p, &[], "panic.kann");
    let mut s = Service::load(&path).unwrap();
    s.init_device(&Device::all()).unwrap();
    let mut y = vec![0u8; 32];
    let err = s.process_frame(&[&[0u8; 32]], &mut [&mut y, &mut []]).unwrap_err();
    // Both clusters' parts overrun the buffers; whichever failed first is named.
    let msg = err.to_string();
    assert!(msg.starts_with("kernel of step #0 'relu1' failed on cluster "), "{msg}");
    assert!(msg.ends_with(": the program is inconsistent, regenerate it"), "{msg}");
    // The workers survive: a second frame answers the same.
    assert!(s.process_frame(&[&[0u8; 32]], &mut [&mut y, &mut []]).is_err());
}

fn load_err(bytes: &[u8], name: &str) -> String {
    let path = temp_path(name);
    std::fs::write(&path, bytes).unwrap();
    let msg = Service::load(&path).err().expect("refused").to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.starts_with(&path.display().to_string()), "names the file: {msg}");
    msg
}

#[test]
fn corrupt_files_are_refused_in_one_line() {
    let good = artifact_bytes(&relu_chain(2, 8, 2), &f32_bytes(&[1.0, 2.0]), "{}").unwrap();
    let m = load_err(&good[..good.len() / 2], "truncated.kann");
    assert!(m.contains("truncated") || m.contains("bytes"), "{m}");
    let m = load_err(&good[..10], "tiny.kann");
    assert!(!m.is_empty());
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0xff;
    let m = load_err(&flipped, "corrupt.kann");
    assert!(m.contains("checksum"), "{m}");
    let m = load_err(b"hello, not an artifact at all, just some text that is long enough to have a header", "text.kann");
    assert!(m.contains("not a kann artifact"), "{m}");
    let missing = Service::load(temp_path("absent.kann")).err().unwrap().to_string();
    assert!(missing.contains("absent.kann"), "{missing}");
}

#[test]
fn inconsistent_programs_are_refused_in_one_line() {
    // Parts beyond the step.
    let mut p = relu_chain(2, 8, 0);
    p.clusters[1][0] = Command::Run { step: 0, begin: 4, end: 9 };
    let m = load_err(&artifact_bytes(&p, &[], "{}").unwrap(), "parts.kann");
    assert!(m.contains("invalid program") && m.contains("items 4..9"), "{m}");
    // Mismatched barriers.
    let mut p = relu_chain(2, 8, 0);
    p.clusters[1].remove(1);
    let m = load_err(&artifact_bytes(&p, &[], "{}").unwrap(), "barriers.kann");
    assert!(m.contains("barriers do not match"), "{m}");
    // An input in the weights.
    let mut p = relu_chain(1, 8, 8);
    p.inputs[0].buf = BufRef::Weights { offset: 0, len: 32 };
    let m = load_err(&artifact_bytes(&p, &[0; 32], "{}").unwrap(), "winput.kann");
    assert!(m.contains("input 'x' is not in the activation arena"), "{m}");
    // A program section that is not a program.
    let good = artifact_bytes(&relu_chain(1, 8, 0), &[], "{}").unwrap();
    let a = kann_artifact::Artifact::from_bytes(&good).unwrap();
    let mut w = kann_artifact::ArtifactWriter::new(kann_artifact::Arch::Generic);
    for s in a.sections() {
        let data = if s.kind == kann_artifact::SectionKind::MemoryPlan { vec![0xff; 3] } else { a.section_bytes(s.id).unwrap().to_vec() };
        w.add_section(s.kind, s.index, &s.name, data).unwrap();
    }
    let m = load_err(&w.to_bytes().unwrap(), "plan.kann");
    assert!(m.contains("memory plan section is corrupt"), "{m}");
}

#[test]
fn missing_sections_are_named() {
    let mut w = kann_artifact::ArtifactWriter::new(kann_artifact::Arch::Generic);
    w.add_section(kann_artifact::SectionKind::Metadata, 0, "metadata", b"{}".to_vec()).unwrap();
    let m = load_err(&w.to_bytes().unwrap(), "empty.kann");
    assert!(m.contains("has no program (steps) section"), "{m}");
}

#[test]
fn bad_devices_are_refused() {
    let path = write(&relu_chain(1, 4, 0), &[], "dev.kann");
    let mut s = Service::load(&path).unwrap();
    assert!(s.init_device(&Device::cores(vec![])).unwrap_err().to_string().contains("no core"));
    assert!(s.init_device(&Device::cores(vec![1 << 20])).unwrap_err().to_string().contains("does not exist"));
    // Re-initialising replaces the workers.
    s.init_device(&Device::all()).unwrap();
    s.init_device(&Device::all()).unwrap();
    let mut y = vec![0u8; 16];
    s.process_frame(&[&f32_bytes(&[-1.0, 2.0, -3.0, 4.0])], &mut [&mut y, &mut []]).unwrap();
    assert_eq!(bytes_f32(&y), [0.0, 2.0, 0.0, 4.0]);
}

#[test]
fn one_cluster_per_core_pins_and_keeps_up() {
    let device = Device::all();
    let n = device.core_ids().len().min(64);
    run_chain(n, device.clone());
    let len = 4096;
    let path = write(&relu_chain(n, len, 4), &[0.0; 4], "percore.kann");
    let mut s = Service::load(&path).unwrap();
    s.init_device(&device).unwrap();
    assert!(s.warnings().is_empty(), "{:?}", s.warnings());
    let x = f32_bytes(&input(len as usize, 1));
    let (mut y, mut w) = (vec![0u8; len as usize * 4], vec![0u8; 16]);
    let frames = 2000u32;
    let t = std::time::Instant::now();
    let mut device_time = std::time::Duration::ZERO;
    for _ in 0..frames {
        device_time += s.process_frame(&[&x], &mut [&mut y, &mut w]).unwrap().device;
    }
    assert_eq!(bytes_f32(&y), relu(&input(len as usize, 1)));
    eprintln!("{n} clusters: {:?} per frame (host), {:?} (device)", t.elapsed() / frames, device_time / frames);
}

/// `depth` Relu steps ping-ponging between two arena buffers, each split
/// over the clusters with the parts rotated by one per step, a barrier
/// between consecutive steps: exercises the reusable barrier many times a
/// frame.
fn ping_pong(n: usize, len: u64, depth: usize) -> Program {
    use kann_kernels::{ElemType, IoTensor, Step, PROGRAM_VERSION};
    use kann_runtime::testing::part;
    let bytes = len * 4;
    let slot = bytes.div_ceil(64) * 64;
    let buf = |i: u64| BufRef::Arena { offset: i * slot, len: bytes };
    let (x, y) = (buf(0), buf(3));
    let steps: Vec<Step> = (0..depth)
        .map(|i| {
            let src = if i == 0 { x } else { buf(1 + (i as u64 + 1) % 2) };
            let dst = if i + 1 == depth { y } else { buf(1 + i as u64 % 2) };
            Step {
                name: format!("relu{i}"),
                op: "Relu".into(),
                kernel: Kernel::Unary(Unary { kind: UnaryKind::Relu, len, isa: kann_kernels::Isa::Generic }),
                inputs: vec![src],
                outputs: vec![dst],
                flops: len,
            }
        })
        .collect();
    let clusters = (0..n)
        .map(|c| {
            let mut cmds = Vec::new();
            for i in 0..depth {
                if i > 0 {
                    cmds.push(Command::Barrier { index: i as u32 - 1 });
                }
                let (begin, end) = part(len, n, (c + i) % n);
                cmds.push(Command::Run { step: i as u32, begin, end });
            }
            cmds
        })
        .collect();
    let io = |name: &str, buf| IoTensor { name: name.into(), dtype: ElemType::F32, shape: vec![len as usize], buf };
    Program { version: PROGRAM_VERSION, inputs: vec![io("x", x)], outputs: vec![io("y", y)], steps, clusters, arena_bytes: 4 * slot, scratch_bytes: 0 }
}

#[test]
fn many_barriers_per_frame() {
    for n in [1, 2, 3] {
        let len = 101;
        let path = write(&ping_pong(n, len, 9), &[], &format!("pingpong{n}.kann"));
        let mut s = Service::load(&path).unwrap();
        s.init_device(&Device::all()).unwrap();
        let mut y = vec![0u8; len as usize * 4];
        for frame in 0..30 {
            let x = input(len as usize, frame);
            s.process_frame(&[&f32_bytes(&x)], &mut [&mut y]).unwrap();
            assert_eq!(bytes_f32(&y), relu(&x), "{n} clusters, frame {frame}");
        }
        let p = s.last_profile().unwrap();
        assert_eq!(p.steps.len(), 9);
        assert_eq!(p.barrier_wait.len(), n);
    }
}
