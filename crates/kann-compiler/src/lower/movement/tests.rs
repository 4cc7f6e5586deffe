//! Compiled-vs-reference checks of the movement lowerings on random and
//! edge-case shapes, several dtypes, one and three clusters.

use crate::testing::{check_against_reference, Rng};
use kann_ir::ops::movement::{BlockMode, MovementOp, PadMode};
use kann_ir::{Graph, GraphBuilder, Op, TensorInfo};
use kann_tensor::{DType, Shape, Tensor};

/// An input of a one-node test graph.
#[derive(Clone)]
pub(crate) enum Arg {
    /// A graph input (random data).
    In(DType, Vec<usize>),
    Const(Tensor),
    Absent,
}

pub(crate) fn f32_in(dims: &[usize]) -> Arg {
    Arg::In(DType::F32, dims.to_vec())
}

pub(crate) fn ints(v: &[i64]) -> Arg {
    Arg::Const(Tensor::vec_i64(v.to_vec()))
}

/// A graph of one `op` node over `args`, all its `n_out` outputs graph outputs.
pub(crate) fn graph(op: Op, args: &[Arg], n_out: usize) -> Graph {
    let mut b = GraphBuilder::new("t", None);
    let inputs = args
        .iter()
        .enumerate()
        .map(|(i, a)| match a {
            Arg::In(d, dims) => Some(b.add_input(&format!("x{i}"), TensorInfo::new(*d, Shape::new(dims.clone()))).unwrap()),
            Arg::Const(t) => Some(b.add_constant(&format!("c{i}"), t.clone())),
            Arg::Absent => None,
        })
        .collect();
    let names: Vec<String> = (0..n_out).map(|i| format!("y{i}")).collect();
    for o in b.add_node("op", op, inputs, &names).unwrap() {
        b.add_output(o);
    }
    b.finish().unwrap()
}

/// Compiles and runs the node on 1 and 3 clusters against the reference.
pub(crate) fn check_op(op: Op, args: &[Arg], n_out: usize) {
    for clusters in [1, 3] {
        if let Err(e) = check_against_reference(graph(op.clone(), args, n_out), clusters) {
            panic!("{op:?} on {clusters} clusters: {e}");
        }
    }
}

fn check(op: MovementOp, args: &[Arg]) {
    check_op(Op::Movement(op), args, 1);
}

const DTYPES: [DType; 5] = [DType::F32, DType::I64, DType::F16, DType::U8, DType::Bool];

fn random_dims(rng: &mut Rng, rank: usize, max: u64) -> Vec<usize> {
    (0..rank).map(|_| 1 + rng.below(max) as usize).collect()
}

#[test]
fn views_alias_their_input() {
    check(MovementOp::Reshape { allowzero: false }, &[f32_in(&[2, 3, 4]), ints(&[4, -1])]);
    check(MovementOp::Flatten { axis: 2 }, &[Arg::In(DType::I64, vec![2, 3, 4])]);
    check(MovementOp::Squeeze, &[f32_in(&[1, 3, 1, 2]), ints(&[0, -2])]);
    check(MovementOp::Unsqueeze, &[f32_in(&[3, 2]), ints(&[0, 3])]);
}

#[test]
fn a_view_between_steps() {
    let mut b = GraphBuilder::new("t", None);
    let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([2, 3, 4]))).unwrap();
    let s = b.add_constant("s", Tensor::vec_i64(vec![6, 4]));
    let r = b.add_node("r", Op::Movement(MovementOp::Reshape { allowzero: false }), vec![Some(x), Some(s)], &["r".into()]).unwrap()[0];
    let t = b.add_node("t", Op::Movement(MovementOp::Transpose { perm: None }), vec![Some(r)], &["t".into()]).unwrap()[0];
    let f = b.add_node("f", Op::Movement(MovementOp::Flatten { axis: 0 }), vec![Some(t)], &["f".into()]).unwrap()[0];
    b.add_output(f);
    check_against_reference(b.finish().unwrap(), 2).unwrap();
}

#[test]
fn transpose_random_shapes_and_dtypes() {
    let mut rng = Rng::new(1);
    for case in 0..30 {
        let rank = 1 + rng.below(5) as usize;
        let dims = random_dims(&mut rng, rank, 4);
        let mut perm: Vec<i64> = (0..rank as i64).collect();
        for i in (1..rank).rev() {
            perm.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let dtype = DTYPES[case % DTYPES.len()];
        check(MovementOp::Transpose { perm: Some(perm) }, &[Arg::In(dtype, dims)]);
    }
    check(MovementOp::Transpose { perm: None }, &[f32_in(&[3, 5])]);
    // Large enough to be split across clusters: NCHW -> NHWC.
    check(MovementOp::Transpose { perm: Some(vec![0, 2, 3, 1]) }, &[f32_in(&[1, 64, 32, 32])]);
}

#[test]
fn slice_steps_and_clamping() {
    let x = f32_in(&[5, 6, 7]);
    check(MovementOp::Slice, &[x.clone(), ints(&[1, 0]), ints(&[4, 100]), ints(&[0, 2])]);
    check(MovementOp::Slice, &[x.clone(), ints(&[-1, 100]), ints(&[-100, 0]), ints(&[1, 2]), ints(&[-2, -3])]);
    check(MovementOp::Slice, &[x.clone(), ints(&[0, 1, 2]), ints(&[5, 5, 7]), Arg::Absent, ints(&[2, 3, 1])]);
    check(MovementOp::Slice, &[Arg::In(DType::I64, vec![4, 4]), ints(&[3]), ints(&[3]), ints(&[1])]);
    let mut rng = Rng::new(2);
    for case in 0..20 {
        let dims = random_dims(&mut rng, 3, 6);
        let axis = rng.below(3) as i64;
        let d = dims[axis as usize] as i64;
        let start = rng.below(2 * d as u64 + 1) as i64 - d;
        let end = rng.below(2 * d as u64 + 3) as i64 - d - 1;
        let step = [1, 2, -1, -2, 3][case % 5];
        check(MovementOp::Slice, &[Arg::In(DTYPES[case % 5], dims), ints(&[start]), ints(&[end]), ints(&[axis]), ints(&[step])]);
    }
}

#[test]
fn expand_and_tile() {
    check(MovementOp::Expand, &[f32_in(&[3, 1]), ints(&[2, 1, 4])]);
    check(MovementOp::Expand, &[Arg::In(DType::I64, vec![1]), ints(&[5])]);
    check(MovementOp::Expand, &[f32_in(&[2, 3]), ints(&[2, 3])]);
    check(MovementOp::Expand, &[f32_in(&[2, 1, 3]), ints(&[1])]);
    check(MovementOp::Tile, &[f32_in(&[2, 3]), ints(&[2, 3])]);
    check(MovementOp::Tile, &[Arg::In(DType::U8, vec![3, 1, 2]), ints(&[1, 4, 1])]);
    check(MovementOp::Tile, &[f32_in(&[2, 3]), ints(&[1, 1])]);
}

#[test]
fn pad_modes() {
    for mode in [PadMode::Constant, PadMode::Reflect, PadMode::Edge, PadMode::Wrap] {
        check(MovementOp::Pad { mode }, &[f32_in(&[3, 4]), ints(&[1, 2, 2, 3])]);
        check(MovementOp::Pad { mode }, &[Arg::In(DType::I64, vec![2, 3, 4]), ints(&[0, -1, 2, 0, 1, -1])]);
        check(MovementOp::Pad { mode }, &[f32_in(&[1, 2, 4, 4]), ints(&[2, 1, 2, 1]), Arg::Absent, ints(&[-2, 3])]);
    }
    check(MovementOp::Pad { mode: PadMode::Constant }, &[f32_in(&[3, 4]), ints(&[1, 1, 1, 1]), Arg::Const(Tensor::scalar_f32(2.5))]);
    check(MovementOp::Pad { mode: PadMode::Reflect }, &[f32_in(&[1, 5]), ints(&[0, 7, 0, 9])]);
    check(MovementOp::Pad { mode: PadMode::Wrap }, &[f32_in(&[2, 3]), ints(&[0, 7, 0, 5])]);
}

#[test]
fn gather_constant_indices() {
    let idx = |dims: &[usize], v: &[i64]| Arg::Const(Tensor::from_i64(Shape::from(dims), v.to_vec()).unwrap());
    check(MovementOp::Gather { axis: 0 }, &[f32_in(&[5, 3]), idx(&[2, 2], &[0, -1, 4, 2])]);
    check(MovementOp::Gather { axis: 1 }, &[Arg::In(DType::I64, vec![2, 4, 3]), idx(&[3], &[3, 0, -2])]);
    check(MovementOp::Gather { axis: -1 }, &[f32_in(&[2, 4]), idx(&[], &[1])]);
    check(MovementOp::Gather { axis: 0 }, &[f32_in(&[6]), idx(&[4], &[1, 2, 3, 4])]);
}

#[test]
fn gather_runtime_indices() {
    // Random indices are in [0, 4).
    check(MovementOp::Gather { axis: 0 }, &[f32_in(&[5, 3]), Arg::In(DType::I64, vec![2, 3])]);
    check(MovementOp::Gather { axis: 1 }, &[Arg::In(DType::F16, vec![2, 4, 3]), Arg::In(DType::I32, vec![5])]);
    check(MovementOp::Gather { axis: -1 }, &[Arg::In(DType::I64, vec![2, 3, 4]), Arg::In(DType::I64, vec![])]);
}

#[test]
fn depth_and_space() {
    for mode in [BlockMode::Dcr, BlockMode::Crd] {
        check(MovementOp::DepthToSpace { blocksize: 2, mode }, &[f32_in(&[1, 8, 2, 3])]);
        check(MovementOp::DepthToSpace { blocksize: 3, mode }, &[Arg::In(DType::F16, vec![2, 18, 3, 2])]);
        check(MovementOp::SpaceToDepth { blocksize: 2, mode }, &[f32_in(&[2, 3, 4, 6])]);
    }
}

#[test]
fn concat_and_split() {
    let c = Arg::Const(Tensor::from_f32(Shape::from([2, 1, 3]), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap());
    check(MovementOp::Concat { axis: 1 }, &[f32_in(&[2, 2, 3]), c, f32_in(&[2, 4, 3])]);
    check(MovementOp::Concat { axis: 0 }, &[Arg::In(DType::I64, vec![1, 3]), Arg::In(DType::I64, vec![2, 3])]);
    check(MovementOp::Concat { axis: -1 }, &[f32_in(&[2, 2]), f32_in(&[2, 0]), f32_in(&[2, 5])]);
    check(MovementOp::Concat { axis: 1 }, &[f32_in(&[1, 32, 28, 28]), f32_in(&[1, 48, 28, 28])]);
    check(MovementOp::Concat { axis: 0 }, &[f32_in(&[3])]);
    let split = |axis, outputs, uneven, args: &[Arg]| check_op(Op::Movement(MovementOp::Split { axis, outputs, uneven }), args, outputs);
    split(1, 3, false, &[f32_in(&[2, 6, 2])]);
    split(0, 3, true, &[Arg::In(DType::U8, vec![7, 2])]);
    split(-1, 2, false, &[f32_in(&[3, 5]), ints(&[1, 4])]);
    split(1, 2, false, &[f32_in(&[1, 80, 28, 28]), ints(&[32, 48])]);
    split(0, 1, false, &[f32_in(&[4])]);
}

#[test]
fn shape_and_size() {
    check(MovementOp::Shape { start: 0, end: None }, &[f32_in(&[2, 3, 4])]);
    check(MovementOp::Shape { start: -2, end: Some(-1) }, &[f32_in(&[2, 3, 4])]);
    check(MovementOp::Size, &[f32_in(&[2, 3, 4])]);
}

/// The kernel names of the steps `op` compiles to.
fn kernels(op: MovementOp, args: &[Arg], clusters: usize) -> Vec<String> {
    let c = check_against_reference(graph(Op::Movement(op), args, 1), clusters).unwrap();
    c.program.steps.iter().map(|s| s.kernel.name()).collect()
}

#[test]
fn steps_are_what_they_should_be() {
    assert_eq!(kernels(MovementOp::Transpose { perm: Some(vec![1, 0]) }, &[Arg::In(DType::I64, vec![3, 4])], 1), ["i64_transpose_remap_generic"]);
    // Size-1 axes moving around change nothing: a view.
    assert_eq!(kernels(MovementOp::Transpose { perm: Some(vec![1, 0, 2]) }, &[f32_in(&[1, 3, 4])], 1), Vec::<String>::new());
    assert_eq!(kernels(MovementOp::Concat { axis: 1 }, &[f32_in(&[1, 32, 28, 28]), f32_in(&[1, 48, 28, 28])], 3), ["f32_concat_slabs_generic"]);
    let c = check_against_reference(graph(Op::Movement(MovementOp::Transpose { perm: Some(vec![0, 2, 3, 1]) }), &[f32_in(&[1, 128, 64, 64])], 1), 3).unwrap();
    let runs = c.program.clusters.iter().filter(|l| l.iter().any(|c| matches!(c, kann_kernels::Command::Run { .. }))).count();
    assert!(runs > 1, "a large transpose should be split across clusters");
}

/// The ONNX node tests whose graphs hold only movement and resample ops,
/// compiled and run against the test's expected outputs. Inputs after the
/// first are bound as constants when the plain graph does not import (shape
/// inputs must be constants). Ops the compiler refuses are listed, not
/// failed; a wrong value fails. Without the data the test passes.
#[test]
fn onnx_node_tests_of_movement_ops_run_compiled() {
    use kann_onnx::ImportOptions;
    use std::path::PathBuf;
    let base = std::env::var_os("KANN_DATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kann-data"));
    let Ok(entries) = std::fs::read_dir(base.join("onnx-1.23.2/node")) else {
        eprintln!("skipping: no ONNX node tests");
        return;
    };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("model.onnx").exists()).collect();
    dirs.sort();
    let read = |dir: &PathBuf, what: &str| -> Vec<(String, Tensor)> {
        (0..).map(|i| dir.join(format!("test_data_set_0/{what}_{i}.pb"))).take_while(|p| p.exists()).filter_map(|p| kann_onnx::tensor::read_tensor_file(&p).ok()).collect()
    };
    let (mut passed, mut refused, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for dir in &dirs {
        let name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
        let (named, want) = (read(dir, "input"), read(dir, "output"));
        let want: Vec<Tensor> = want.into_iter().map(|t| t.1).collect();
        let inputs: Vec<Tensor> = named.iter().map(|t| t.1.clone()).collect();
        let model = dir.join("model.onnx");
        let plain = kann_onnx::import_file(&model, &ImportOptions::default(), Some(&kann_reference::Reference)).ok().filter(|m| m.graph.inputs.len() == inputs.len());
        let constant_inputs = named.iter().skip(1).cloned().collect();
        let bound = kann_onnx::import_file(&model, &ImportOptions { constant_inputs, ..ImportOptions::default() }, Some(&kann_reference::Reference)).ok();
        let candidates = [plain.map(|m| (m.graph, inputs.len())), bound.map(|m| (m.graph, 1.min(inputs.len())))];
        let ours = |g: &Graph| !g.nodes.is_empty() && g.nodes.iter().all(|n| matches!(n.op, Op::Movement(_) | Op::Resample(_))) && want.len() == g.outputs.len();
        let mut last_refusal = None;
        let mut ran = false;
        for (graph, used) in candidates.into_iter().flatten().filter(|(g, _)| ours(g)) {
            let opts = crate::CompileOptions { n_clusters: 2, arch: kann_artifact::Arch::Generic, winograd: true, blocked: true, calibration: Default::default() };
            match crate::compile(graph, &opts, Some(&kann_reference::Reference)) {
                Ok(compiled) => {
                    match crate::testing::run_compiled(&compiled, &inputs[..used]).and_then(|got| crate::testing::compare(&got, &want, 1e-4, 1e-4)) {
                        Ok(()) => passed.push(name.clone()),
                        Err(e) => failed.push(format!("{name}: {e}")),
                    }
                    ran = true;
                    break;
                }
                Err(e) => last_refusal = Some(format!("{name}: {e}")),
            }
        }
        if !ran {
            refused.extend(last_refusal);
        }
    }
    println!("{} node tests pass compiled; refused ({}):", passed.len(), refused.len());
    refused.iter().for_each(|r| println!("  {r}"));
    println!("passed: {}", passed.join(" "));
    assert!(failed.is_empty(), "{} node tests give wrong values:\n{}", failed.len(), failed.join("\n"));
}

/// Every movement and resample node of the light models (after the pass
/// pipeline) lowers. Without the data the test passes.
#[test]
#[ignore = "slow: imports the nine light models (run with --ignored)"]
fn light_models_movement_nodes_lower() {
    use std::path::PathBuf;
    let base = std::env::var_os("KANN_DATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kann-data"));
    let dir = base.join("random-models-v1/light");
    let (mut refused, mut seen) = (Vec::new(), 0);
    for name in ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet", "vgg19", "zfnet512"] {
        let Ok(model) = kann_onnx::import_file(&dir.join(name).join("model.onnx"), &Default::default(), Some(&kann_reference::Reference)) else { continue };
        let mut g = model.graph;
        crate::optimize(&mut g, Some(&kann_reference::Reference)).unwrap();
        let ours: Vec<String> = g.nodes.iter().filter(|n| matches!(n.op, Op::Movement(_) | Op::Resample(_))).map(|n| n.op.describe()).collect();
        seen += ours.len();
        if let Err(missing) = crate::lower::lower_graph(&g, kann_artifact::Arch::Generic) {
            refused.extend(missing.into_iter().filter(|u| ours.contains(&u.op)).map(|u| format!("{name}: {u}")));
        }
    }
    println!("{seen} movement/resample nodes in the light models");
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}
