//! Bounded mutation test: thousands of truncations, byte flips and field
//! edits of a valid model. Every case must end in an error or a result,
//! never a panic, and absurd sizes must be refused before allocation.

use kann_onnx::proto::{attribute_type as at, data_type as dt, ModelProto};
use kann_onnx::{decode_model, import_model, ImportError, ImportOptions};
use kann_reference::Reference;
use kann_tensor::{Shape, Tensor};
use kann_testkit::*;
use prost::Message;

/// A small CNN touching the common import paths: raw and typed
/// initializers, a Constant node, attributes of every kind, shape inputs.
fn convnet() -> ModelProto {
    let w = Tensor::from_f32(Shape::from([4, 3, 3, 3]), (0..108).map(|i| (i as f32 * 0.37).sin()).collect()).unwrap();
    let mut b = initializer("b", &Tensor::from_f32(Shape::from([4]), vec![0.1, -0.2, 0.3, 0.0]).unwrap());
    // Typed storage instead of raw_data, the other decoding path.
    b.float_data = vec![0.1, -0.2, 0.3, 0.0];
    b.raw_data.clear();
    let w2 = Tensor::from_f32(Shape::from([64, 10]), (0..640).map(|i| (i as f32 * 0.11).cos() * 0.1).collect()).unwrap();
    let nodes = vec![
        node("Conv", &["x", "w", "b"], &["c"], vec![attr_ints("pads", &[1, 1, 1, 1]), attr_ints("kernel_shape", &[3, 3]), attr_ints("strides", &[1, 1])]),
        node("Relu", &["c"], &["r"], vec![]),
        node("MaxPool", &["r"], &["p"], vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])]),
        node("Constant", &[], &["shape"], vec![{
            let mut a = attr_ints("value_ints", &[1, -1]);
            a.r#type = at::INTS;
            a
        }]),
        node("Reshape", &["p", "shape"], &["f"], vec![]),
        node("Gemm", &["f", "w2"], &["g"], vec![attr_f("alpha", 1.0), attr_i("transB", 0)]),
        node("Softmax", &["g"], &["y"], vec![attr_i("axis", 1)]),
    ];
    model(13, nodes, vec![value_info("x", dt::FLOAT, &[Some(1), Some(3), Some(8), Some(8)])], vec![value_info("y", dt::FLOAT, &[Some(1), Some(10)])], vec![initializer("w", &w), b, initializer("w2", &w2)])
}

/// A tiny deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Imports and, when the result is small, runs the model on zeros.
fn exercise(bytes: &[u8]) -> Result<(), String> {
    let m = decode_model(bytes, "mutant").map_err(|e| e.to_string())?;
    let imported = import_model(&m, None, &ImportOptions::default(), Some(&Reference)).map_err(|e| e.to_string())?;
    let g = &imported.graph;
    let total: usize = g.values.iter().map(|v| v.info.numel()).fold(0usize, |a, b| a.saturating_add(b));
    if total > 5_000_000 {
        return Ok(()); // valid but too big to run in a unit test
    }
    let inputs: Vec<Tensor> = g.inputs.iter().map(|&i| Tensor::zeros(g.value(i).info.dtype, g.value(i).info.shape.clone())).collect();
    kann_reference::run(g, &inputs).map(|_| ()).map_err(|e| e.to_string())
}

fn edit_fields(m: &mut ModelProto, rng: &mut Rng) {
    let g = m.graph.as_mut().unwrap();
    let huge = [1i64 << 40, -1, -7, 0, 1 << 31, i64::MAX, 3, 100];
    match rng.below(12) {
        0 => {
            let k = rng.below(g.initializer.len());
            let t = &mut g.initializer[k];
            if !t.dims.is_empty() {
                let i = rng.below(t.dims.len());
                t.dims[i] = huge[rng.below(huge.len())];
            }
        }
        1 => {
            let k = rng.below(g.initializer.len());
            let t = &mut g.initializer[k];
            t.data_type = rng.below(30) as i32;
        }
        2 => {
            let k = rng.below(g.initializer.len());
            let t = &mut g.initializer[k];
            let n = t.raw_data.len();
            t.raw_data.truncate(rng.below(n + 1));
            t.float_data.truncate(rng.below(t.float_data.len() + 1));
        }
        3 => {
            let k = rng.below(g.node.len());
            let n = &mut g.node[k];
            if !n.attribute.is_empty() {
                let i = rng.below(n.attribute.len());
                let a = &mut n.attribute[i];
                match rng.below(4) {
                    0 => a.r#type = rng.below(15) as i32,
                    1 => a.i = huge[rng.below(huge.len())],
                    2 => a.ints.iter_mut().for_each(|x| *x = huge[rng.below(huge.len())]),
                    _ => a.ints.truncate(rng.below(a.ints.len() + 1)),
                }
            }
        }
        4 => {
            let k = rng.below(g.node.len());
            let n = &mut g.node[k];
            if !n.input.is_empty() {
                let i = rng.below(n.input.len());
                n.input[i] = ["", "nope", "x", "w", "c", "y"][rng.below(6)].to_string();
            }
        }
        5 => {
            let ops = ["Conv", "Relu", "MaxPool", "Reshape", "Gemm", "Softmax", "Add", "Transpose", "Concat", "Foo", "Slice", "Resize", "BatchNormalization"];
            let k = rng.below(g.node.len());
            let n = &mut g.node[k];
            n.op_type = ops[rng.below(ops.len())].to_string();
        }
        6 => {
            let i = rng.below(g.initializer.len());
            g.initializer.remove(i);
        }
        7 => m.opset_import[0].version = rng.below(30) as i64,
        8 => {
            use kann_onnx::proto::{tensor_shape_proto::dimension::Value as V, type_proto::Value as T};
            if let Some(T::TensorType(t)) = g.input[0].r#type.as_mut().and_then(|t| t.value.as_mut()) {
                if let Some(s) = t.shape.as_mut() {
                    let i = rng.below(s.dim.len());
                    s.dim[i].value = Some(V::DimValue(huge[rng.below(huge.len())]));
                }
                t.elem_type = [dt::FLOAT, dt::INT64, dt::STRING, 99][rng.below(4)];
            }
        }
        9 => {
            let k = rng.below(g.node.len());
            let n = &mut g.node[k];
            n.attribute.push(attr_i("bogus", 1));
        }
        10 => {
            let i = rng.below(g.node.len());
            let j = rng.below(g.node.len());
            g.node.swap(i, j);
        }
        _ => {
            let k = rng.below(g.node.len());
            let n = &mut g.node[k];
            n.output.push("extra".into());
        }
    }
}

#[test]
fn the_valid_model_imports_and_runs() {
    exercise(&encode(&convnet())).expect("the unmutated model must work");
}

#[test]
fn mutations_never_panic() {
    let valid = encode(&convnet());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut outcomes = [0usize; 2];
    for case in 0..3000 {
        let bytes = match case % 3 {
            0 => valid[..rng.below(valid.len())].to_vec(),
            1 => {
                let mut b = valid.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
                b
            }
            _ => {
                let mut m = convnet();
                for _ in 0..1 + rng.below(3) {
                    edit_fields(&mut m, &mut rng);
                }
                m.encode_to_vec()
            }
        };
        let r = std::panic::catch_unwind(|| exercise(&bytes));
        match r {
            Ok(Ok(())) => outcomes[0] += 1,
            Ok(Err(_)) => outcomes[1] += 1,
            Err(_) => panic!("case {case} panicked; bytes: {}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        }
    }
    // Both kinds of outcome occur, so the test exercises more than the decoder.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

#[test]
fn absurd_sizes_are_refused_before_allocation() {
    // A dimension of 2^40, a negative one, and raw data shorter than the shape.
    for dims in [vec![1i64 << 40, 1 << 10], vec![-3, 2], vec![4, 4]] {
        let mut m = convnet();
        let t = &mut m.graph.as_mut().unwrap().initializer[0];
        t.dims = dims.clone();
        let err = import_model(&m, None, &ImportOptions::default(), Some(&Reference)).unwrap_err();
        assert!(matches!(err, ImportError::Tensor { .. }), "{dims:?}: {err}");
    }
}

#[test]
fn unknown_ops_are_all_reported_at_once() {
    let mut m = convnet();
    let g = m.graph.as_mut().unwrap();
    g.node[1].op_type = "Frobnicate".into();
    g.node[2].op_type = "Twiddle".into();
    let err = import_model(&m, None, &ImportOptions::default(), None).unwrap_err().to_string();
    assert!(err.contains("Frobnicate") && err.contains("Twiddle"), "{err}");
}

#[test]
fn unread_attributes_are_errors() {
    let mut m = convnet();
    m.graph.as_mut().unwrap().node[1].attribute.push(attr_i("mystery", 1));
    let err = import_model(&m, None, &ImportOptions::default(), Some(&Reference)).unwrap_err().to_string();
    assert!(err.contains("mystery") && err.contains("Relu"), "{err}");
}

#[test]
fn symbolic_dims_must_be_bound() {
    let mut m = convnet();
    m.graph.as_mut().unwrap().input[0] = value_info("x", dt::FLOAT, &[None, Some(3), Some(8), Some(8)]);
    let err = import_model(&m, None, &ImportOptions::default(), Some(&Reference)).unwrap_err();
    assert!(matches!(&err, ImportError::UnboundDim { input, axis: 0, .. } if input == "x"), "{err}");
    let mut opts = ImportOptions::default();
    opts.dim_params.insert("N".into(), 1);
    import_model(&m, None, &opts, Some(&Reference)).expect("bound");
}

#[test]
fn external_data_must_exist_and_stay_inside_the_folder() {
    use kann_onnx::proto::StringStringEntryProto as E;
    let dir = std::env::temp_dir().join(format!("kann-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut m = convnet();
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    let raw = std::mem::take(&mut t.raw_data);
    t.data_location = 1;
    t.external_data = vec![E { key: "location".into(), value: "weights.bin".into() }];
    let missing = import_model(&m, Some(&dir), &ImportOptions::default(), Some(&Reference)).unwrap_err().to_string();
    assert!(missing.contains("weights.bin"), "{missing}");
    std::fs::write(dir.join("weights.bin"), &raw).unwrap();
    import_model(&m, Some(&dir), &ImportOptions::default(), Some(&Reference)).expect("external data present");
    std::fs::write(dir.join("weights.bin"), &raw[..10]).unwrap();
    assert!(import_model(&m, Some(&dir), &ImportOptions::default(), Some(&Reference)).is_err());
    m.graph.as_mut().unwrap().initializer[0].external_data[0].value = "../escape.bin".into();
    let escape = import_model(&m, Some(&dir), &ImportOptions::default(), Some(&Reference)).unwrap_err().to_string();
    assert!(escape.contains("inside the model's folder"), "{escape}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fuzz_regressions_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for e in entries {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let r = std::panic::catch_unwind(|| exercise(&bytes));
        assert!(r.is_ok(), "{} panics again", p.display());
    }
}
