//! Loading network configurations: the zoo's files, kann's blocks, and every
//! kind of mistake a user makes, each reported with file, key and position.

use std::path::{Path, PathBuf};

use kann_config::{
    Arch, Color, ConfigError, DType, Framework, Layout, NetworkConfig, PostKind, ShapeReading,
    TensorShape,
};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn canon(rel: &str) -> PathBuf {
    data(rel).canonicalize().unwrap()
}

/// Parses `text` as if it were a file in `tests/data/kann/` (whose models/,
/// classes.txt exist), so relative paths resolve there.
fn parse(text: &str) -> Result<kann_config::Loaded, ConfigError> {
    NetworkConfig::from_yaml_str(text, &data("kann/network.yaml"))
}

/// A valid kann configuration to which `extra` (YAML lines) is appended.
fn with(extra: &str) -> String {
    format!(
        "name: net\nframework: onnx\nonnx_model: models/resnet50.onnx\n\
         input_nodes_name: [data]\ninput_nodes_shape: [[1, 3, 224, 224]]\n{extra}"
    )
}

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(l) => panic!("expected an error, loaded {:?}", l.config),
        Err(e) => e,
    }
}

#[test]
fn zoo_classifier_loads_as_it_is() {
    let loaded = NetworkConfig::load(data("zoo/regnet-x-1.6g/network_f16.yaml")).unwrap();
    let c = &loaded.config;
    assert_eq!(c.name, "RegNet-X-1.6g");
    assert_eq!(c.framework, Framework::Onnx);
    assert_eq!(
        c.model_path,
        canon("zoo/regnet-x-1.6g/models/regnet-x-1.6g.onnx")
    );
    assert!(c.model_path.is_absolute());
    assert_eq!(
        c.source.as_deref(),
        Some(data("zoo/regnet-x-1.6g/network_f16.yaml").as_path())
    );
    assert_eq!(c.input_nodes_name, ["images"]);
    assert_eq!(
        c.input_nodes_shape,
        [TensorShape::new(vec![224, 1, 224, 3])]
    );
    assert_eq!(c.input_nodes_shape[0].reading(), ShapeReading::ZooHbwc);
    assert_eq!(c.input_nodes_shape[0].nchw(), Some([1, 3, 224, 224]));
    assert_eq!(c.output_nodes_name, ["output"]);
    assert_eq!(c.output_nodes_shape, [TensorShape::new(vec![1, 1000])]);
    let g = &c.generate_options;
    assert_eq!(g.arch, None, "kv3-2 is read as unset");
    assert!(g.quantize_fp32_to_fp16);
    assert_eq!((g.n_clusters, g.forced_batch_size), (None, None));
    assert_eq!(
        g.ignored_keys,
        [
            "data_buffer_size",
            "code_buffer_size",
            "threshold_image_to_ddr",
            "threshold_max_params_size",
            "ddr_images_tiles_size",
            "splitdepth_corrector_ratio",
            "max_live_range"
        ]
    );
    assert_eq!(
        c.extra_data,
        [
            canon("zoo/regnet-x-1.6g/classes.txt"),
            canon("zoo/regnet-x-1.6g/input_preparator.py"),
            canon("zoo/regnet-x-1.6g/output_preparator"),
        ]
    );
    assert_eq!(
        (c.preprocessing.as_ref(), c.postprocessing.as_ref()),
        (None, None)
    );
    // The only warning: the Kalray arch, with its line.
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert!(
        w.contains("network_f16.yaml:17:11: generate_options.arch:"),
        "{w}"
    );
    assert!(w.contains("\"kv3-2\" is a Kalray MPPA arch"), "{w}");
}

#[test]
fn zoo_tflite_file_with_top_level_batch_and_dtypes() {
    let loaded = NetworkConfig::load(data("zoo/resnet50v1.5-tflite/network_b5.yaml")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.framework, Framework::Tflite);
    assert_eq!(
        c.model_path,
        canon("zoo/resnet50v1.5-tflite/models/resnet50-v1.5.tflite")
    );
    assert_eq!(c.input_nodes_dtype, [DType::F32]);
    assert_eq!(
        c.output_nodes_name,
        ["495", "softmax_tensor"],
        "unquoted numbers are names"
    );
    assert_eq!(c.output_nodes_shape[1].dims, [1001]);
    assert_eq!(c.output_nodes_dtype, [DType::F32, DType::F32]);
    assert_eq!(c.generate_options.forced_batch_size, Some(5));
    assert_eq!(
        c.generate_options.ignored_keys,
        ["data_buffer_size", "code_buffer_size"]
    );
}

#[test]
fn kann_blocks_load_with_relative_paths_resolved() {
    let loaded = NetworkConfig::load(data("kann/resnet50.yaml")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.model_path, canon("kann/models/resnet50.onnx"));
    assert_eq!(c.input_nodes_shape[0].reading(), ShapeReading::Nchw);
    let g = &c.generate_options;
    assert_eq!(
        (g.arch, g.n_clusters, g.forced_batch_size),
        (Some(Arch::X86_64V3), Some(2), Some(1))
    );
    // `..` leaves the YAML's folder and is resolved away.
    assert_eq!(
        c.extra_data,
        [canon("kann/classes.txt"), canon("shared/tiny.onnx")]
    );
    let p = c.preprocessing.unwrap();
    assert_eq!(p.resize_shorter_side, Some(256));
    assert_eq!(p.center_crop, Some([224, 224]));
    assert_eq!(p.color, Color::Rgb);
    assert!((p.scale - 1.0 / 255.0).abs() < 1e-12);
    assert_eq!(p.mean, [0.485, 0.456, 0.406]);
    assert_eq!(p.std, [0.229, 0.224, 0.225]);
    assert_eq!((p.layout, p.dtype), (Some(Layout::Nchw), Some(DType::F32)));
    let q = c.postprocessing.unwrap();
    assert_eq!((q.kind, q.top_k), (PostKind::Classification, 5));
    assert_eq!(q.classes, Some(canon("kann/classes.txt")));
}

#[test]
fn loading_through_a_relative_path_resolves_against_the_yaml_folder() {
    // Tests run in the crate folder; the path given is relative to it, the
    // paths inside relative to the YAML's folder.
    let loaded = NetworkConfig::load("tests/data/kann/resnet50.yaml").unwrap();
    assert_eq!(loaded.config.model_path, canon("kann/models/resnet50.onnx"));
    assert!(loaded.config.source.unwrap().is_absolute());
}

#[test]
fn unknown_keys_warn_with_their_path_and_a_hint() {
    let text = with(
        "preprocesing:\n  scale: 1\ngenerate_options:\n  nbr_cluster: 2\n  colour_space: x\n\
         preprocessing:\n  colr: rgb\npostprocessing:\n  kind: none\n  topk: 3\n",
    );
    let loaded = parse(&text).unwrap();
    let w = loaded.warnings;
    assert_eq!(w.len(), 5, "{w:#?}");
    let file = data("kann/network.yaml").display().to_string();
    assert_eq!(w[0], format!("{file}:9:3: generate_options.nbr_cluster: unknown key, ignored (did you mean nbr_clusters?)"));
    assert_eq!(
        w[1],
        format!("{file}:10:3: generate_options.colour_space: unknown key, ignored")
    );
    assert_eq!(
        w[2],
        format!("{file}:12:3: preprocessing.colr: unknown key, ignored (did you mean color?)")
    );
    assert_eq!(
        w[3],
        format!("{file}:15:3: postprocessing.topk: unknown key, ignored (did you mean top_k?)")
    );
    assert_eq!(
        w[4],
        format!("{file}:6:1: preprocesing: unknown key, ignored (did you mean preprocessing?)")
    );
    // Unknown keys do not set anything.
    assert_eq!(loaded.config.generate_options.n_clusters, None);
}

#[test]
fn wrong_types_name_file_key_and_position() {
    let e = err(&with("generate_options:\n  nbr_clusters: two\n"));
    let file = data("kann/network.yaml").display().to_string();
    assert_eq!(
        e.to_string(),
        format!("{file}:7:17: generate_options.nbr_clusters: expected an integer, found a string (\"two\")")
    );
    assert_eq!(e.key(), Some("generate_options.nbr_clusters"));

    let cases: &[(&str, &str, &str)] = &[
        (
            "generate_options:\n  quantize_fp32_to_fp16: yes\n",
            "generate_options.quantize_fp32_to_fp16",
            "expected a boolean",
        ),
        (
            "generate_options:\n  nbr_clusters: 0\n",
            "generate_options.nbr_clusters",
            "must be at least 1, found 0",
        ),
        (
            "generate_options:\n  forced_batch_size: 1.5\n",
            "generate_options.forced_batch_size",
            "expected an integer, found a number (1.5)",
        ),
        (
            "generate_options:\n  arch: avx9\n",
            "generate_options.arch",
            "unknown arch \"avx9\"",
        ),
        (
            "generate_options: [1]\n",
            "generate_options",
            "expected a mapping",
        ),
        (
            "output_nodes_name: {a: 1}\n",
            "output_nodes_name",
            "expected a name",
        ),
        (
            "output_nodes_name: [a]\noutput_nodes_shape: [[1, x]]\n",
            "output_nodes_shape[0][1]",
            "expected an integer",
        ),
        ("extra_data: 3\n", "extra_data", "expected a list of paths"),
        (
            "postprocessing:\n  kind: yolov9\n",
            "postprocessing.kind",
            "unknown kind \"yolov9\"",
        ),
        (
            "postprocessing:\n  kind: yolov5\n  iou_threshold: 1.5\n",
            "postprocessing.iou_threshold",
            "must be in [0, 1]",
        ),
        (
            "postprocessing: {top_k: 3}\n",
            "postprocessing.kind",
            "required key is missing",
        ),
        (
            "input_nodes_dtype: [float99]\n",
            "input_nodes_dtype[0]",
            "unknown dtype \"float99\"",
        ),
        (
            "forced_batch_size: 2\ngenerate_options: {forced_batch_size: 4}\n",
            "forced_batch_size",
            "contradicts",
        ),
    ];
    for (extra, key, reason) in cases {
        let e = err(&with(extra));
        assert_eq!(e.key(), Some(*key), "{extra}: {e}");
        assert!(e.to_string().contains(reason), "{extra}: {e}");
        assert!(e.to_string().starts_with(&file), "{e}");
        assert!(e.location().is_some(), "{extra}: {e}");
    }
}

#[test]
fn structural_mistakes_are_errors() {
    let base = "onnx_model: models/resnet50.onnx\n";
    let cases: &[(String, &str, &str)] = &[
        (
            format!("{base}input_nodes_name: [a]\ninput_nodes_shape: [[1]]\n"),
            "name",
            "required key is missing",
        ),
        (
            format!("name: n\n{base}input_nodes_shape: [[1]]\n"),
            "input_nodes_name",
            "required key is missing",
        ),
        (
            format!("name: n\n{base}input_nodes_name: [a]\n"),
            "input_nodes_shape",
            "required key is missing",
        ),
        (
            "name: n\nframework: onnx\ninput_nodes_name: [a]\ninput_nodes_shape: [[1]]\n"
                .to_string(),
            "onnx_model",
            "required key is missing",
        ),
        (
            format!("name: n\nframework: tensorflow\n{base}"),
            "framework",
            "convert the model to ONNX",
        ),
        (
            format!("name: n\nframework: tflite\n{base}"),
            "framework",
            "is tflite but the model is given by onnx_model",
        ),
        (
            format!("name: n\n{base}tflite_file: models/resnet50.onnx\n"),
            "tflite_file",
            "give one model",
        ),
        (
            format!("name: n\n{base}input_nodes_name: [a, b]\ninput_nodes_shape: [[1, 3]]\n"),
            "input_nodes_shape",
            "1 entries for 2 names",
        ),
        (
            format!("name: n\n{base}input_nodes_name: [a]\ninput_nodes_shape: [[]]\n"),
            "input_nodes_shape[0]",
            "at least one dim",
        ),
        (format!("name: ''\n{base}"), "name", "must not be empty"),
    ];
    for (text, key, reason) in cases {
        let e = err(text);
        assert_eq!(e.key(), Some(*key), "{text}: {e}");
        assert!(e.to_string().contains(reason), "{text}: {e}");
    }
    // The framework alone is enough when the model key says it.
    let ok = parse(&format!(
        "name: n\n{base}input_nodes_name: a\ninput_nodes_shape: [1, 3, 8, 8]\n"
    ))
    .unwrap();
    assert_eq!(ok.config.framework, Framework::Onnx);
    assert_eq!(
        ok.config.input_nodes_shape,
        [TensorShape::new(vec![1, 3, 8, 8])]
    );
}

#[test]
fn missing_files_name_key_file_and_resolved_path() {
    let file = data("kann/network.yaml");
    let cases: &[(String, &str, &str)] = &[
        (
            "name: n\nonnx_model: models/nope.onnx\ninput_nodes_name: [a]\ninput_nodes_shape: [[1]]\n".to_string(),
            "onnx_model",
            "kann/models/nope.onnx",
        ),
        (with("postprocessing:\n  kind: classification\n  classes: labels.txt\n"), "postprocessing.classes", "kann/labels.txt"),
        (with("extra_data:\n  classes: classes.txt\n  input_preparators:\n    - prep.py\n"), "extra_data.input_preparators[0]", "kann/prep.py"),
        (with("extra_data: [classes.txt, gone/]\n"), "extra_data[1]", "kann/gone"),
    ];
    for (text, key, path) in cases {
        let e = err(text);
        match &e {
            ConfigError::MissingFile {
                file: f,
                key: k,
                path: p,
                location,
            } => {
                assert_eq!(f, &file);
                assert_eq!(k, key);
                assert!(p.is_absolute() && p.ends_with(path), "{}", p.display());
                assert!(location.is_some());
            }
            other => panic!("expected MissingFile, got {other:?}"),
        }
        let msg = e.to_string();
        assert!(msg.starts_with(&file.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("{key}: file not found: ")), "{msg}");
    }
    // The configuration file itself.
    let e = NetworkConfig::load(data("kann/absent.yaml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string().ends_with("kann/absent.yaml: file not found"),
        "{e}"
    );
}

#[test]
fn malformed_yaml_reports_line_and_column() {
    let cases: &[(&str, usize)] = &[
        (
            "name: x\ninput_nodes_name: [a, b\ninput_nodes_shape: [[1]]\n",
            3,
        ),
        ("name: x\n  bad: indent\n", 2),
        ("name: x\nname: y\n", 2),
        ("a: \"unterminated\n", 1),
        ("name: x\n---\nname: y\n", 2),
        ("x: *nowhere\n", 1),
        ("x: !!int abc\n", 1),
    ];
    for (text, line) in cases {
        let e = err(text);
        let ConfigError::Syntax { location, .. } = &e else {
            panic!("{text}: {e:?}")
        };
        assert_eq!(location.line, *line, "{text}: {e}");
        assert!(
            e.to_string().contains(&format!("network.yaml:{line}:")),
            "{e}"
        );
        assert!(e.to_string().contains("malformed YAML"), "{e}");
    }
    let e = err("name: x\nname: y\n");
    assert!(
        e.to_string()
            .contains("duplicate key \"name\" (first at line 1)"),
        "{e}"
    );
    // Not a mapping at all, or nothing.
    let e = err("- just\n- a list\n");
    assert!(e.to_string().contains("expected a mapping of keys"), "{e}");
    assert!(matches!(err(""), ConfigError::Read { .. }));
    assert!(matches!(err("# nothing\n"), ConfigError::Read { .. }));
}

#[test]
fn preprocessing_is_validated() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "std: [0.2, 0, 0.2]",
            "preprocessing.std[1]",
            "must not be 0",
        ),
        ("std: 0", "preprocessing.std[0]", "must not be 0"),
        (
            "mean: [0.5, 0.5]",
            "preprocessing.mean",
            "expected 1 or 3 values (color rgb), found 2",
        ),
        (
            "color: gray\n  mean: [0.1, 0.2, 0.3]",
            "preprocessing.mean",
            "expected 1 or 1 values (color gray)",
        ),
        (
            "resize: [256, 256]\n  resize_shorter_side: 256",
            "preprocessing.resize",
            "not both",
        ),
        (
            "resize: [256]",
            "preprocessing.resize",
            "expected [height, width]",
        ),
        (
            "resize: [0, 256]",
            "preprocessing.resize[0]",
            "must be at least 1",
        ),
        (
            "resize_shorter_side: -3",
            "preprocessing.resize_shorter_side",
            "must be at least 1",
        ),
        (
            "resize: [200, 200]\n  center_crop: [224, 224]",
            "preprocessing.center_crop",
            "larger than the resized image",
        ),
        (
            "resize_shorter_side: 128\n  center_crop: [224, 224]",
            "preprocessing.center_crop",
            "does not fit",
        ),
        (
            "color: cmyk",
            "preprocessing.color",
            "expected rgb, bgr or gray",
        ),
        (
            "layout: nwhc",
            "preprocessing.layout",
            "expected nchw or nhwc",
        ),
        ("dtype: float7", "preprocessing.dtype", "unknown dtype"),
        ("scale: 0", "preprocessing.scale", "must not be 0"),
        ("scale: .nan", "preprocessing.scale", "finite"),
        (
            "mean: [a, b, c]",
            "preprocessing.mean[0]",
            "expected a number",
        ),
    ];
    for (block, key, reason) in cases {
        let e = err(&with(&format!("preprocessing:\n  {block}\n")));
        assert_eq!(e.key(), Some(*key), "{block}: {e}");
        assert!(e.to_string().contains(reason), "{block}: {e}");
    }
    // Scalars broadcast; gray takes one value; bgr and uint8 are fine.
    let ok = parse(&with(
        "preprocessing:\n  color: gray\n  mean: 0.5\n  std: [0.25]\n",
    ))
    .unwrap();
    let p = ok.config.preprocessing.unwrap();
    assert_eq!(
        (p.color, p.mean, p.std),
        (Color::Gray, vec![0.5], vec![0.25])
    );
    let ok = parse(&with(
        "preprocessing:\n  color: BGR\n  dtype: uint8\n  layout: NHWC\n",
    ))
    .unwrap();
    let p = ok.config.preprocessing.unwrap();
    assert_eq!(
        (p.color, p.dtype, p.layout),
        (Color::Bgr, Some(DType::U8), Some(Layout::Nhwc))
    );
}

#[test]
fn postprocessing_defaults_and_irrelevant_keys() {
    let ok = parse(&with(
        "postprocessing:\n  kind: yolov8\n  conf_threshold: 0.4\n  top_k: 3\n",
    ))
    .unwrap();
    let q = ok.config.postprocessing.unwrap();
    assert_eq!(
        (q.kind, q.conf_threshold, q.iou_threshold),
        (PostKind::Yolov8, 0.4, 0.45)
    );
    assert_eq!(ok.warnings.len(), 1, "{:?}", ok.warnings);
    assert!(ok.warnings[0].contains("postprocessing.top_k: has no effect for kind yolov8"));
    for kind in PostKind::ALL {
        let ok = parse(&with(&format!("postprocessing: {{kind: {kind}}}\n"))).unwrap();
        assert_eq!(ok.config.postprocessing.unwrap().kind, kind);
    }
}

#[test]
fn bare_onnx_config() {
    let c = NetworkConfig::from_onnx(
        data("shared/tiny.onnx"),
        vec![TensorShape::new(vec![1, 3, 32, 32])],
    )
    .unwrap();
    assert_eq!(c.name, "tiny");
    assert_eq!(c.model_path, canon("shared/tiny.onnx"));
    assert!(c.input_nodes_name.is_empty() && c.output_nodes_name.is_empty());
    assert_eq!(c.input_nodes_shape[0].dims, [1, 3, 32, 32]);
    assert_eq!(c.source, None);
    let e = NetworkConfig::from_onnx(data("shared/none.onnx"), vec![]).unwrap_err();
    assert!(e.to_string().ends_with("none.onnx: file not found"), "{e}");
    let e = NetworkConfig::from_onnx(data("shared/tiny.onnx"), vec![TensorShape::new(vec![1, 0])])
        .unwrap_err();
    assert_eq!(e.key(), Some("--input-shape #1"));
    let e = NetworkConfig::from_onnx(data("shared"), vec![]).unwrap_err();
    assert!(e.to_string().contains("is not a file"), "{e}");
}

#[test]
fn unreadable_files_are_errors() {
    let dir = std::env::temp_dir().join(format!("kann-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("binary.yaml");
    std::fs::write(&bin, [b'n', b'a', 0xff, 0xfe, b'\n']).unwrap();
    let e = NetworkConfig::load(&bin).unwrap_err();
    assert!(
        e.to_string()
            .contains("not UTF-8 text (invalid byte at offset 2)"),
        "{e}"
    );
    let big = dir.join("big.yaml");
    std::fs::write(&big, vec![b'#'; (kann_config::MAX_FILE_BYTES + 1) as usize]).unwrap();
    assert!(NetworkConfig::load(&big)
        .unwrap_err()
        .to_string()
        .contains("too large"));
    assert!(NetworkConfig::load(&dir)
        .unwrap_err()
        .to_string()
        .contains("is a folder"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// xorshift64*: deterministic, dependency-free noise.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn no_input_panics() {
    let zoo = std::fs::read_to_string(data("zoo/regnet-x-1.6g/network_f16.yaml")).unwrap();
    let kann = std::fs::read_to_string(data("kann/resnet50.yaml")).unwrap();
    let file = data("zoo/regnet-x-1.6g/network_f16.yaml");
    // Every truncation of both files.
    for text in [&zoo, &kann] {
        for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            let _ = NetworkConfig::from_yaml_str(&text[..end], &file);
        }
    }
    // Random bytes, biased towards YAML's punctuation.
    let alphabet = b"-:[]{},#&*!|>'\"%@` \n\t.0123456789abcnx~?";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(4) == 0 {
                    rng.next() as u8
                } else {
                    alphabet[rng.below(alphabet.len())]
                }
            })
            .collect();
        let _ = NetworkConfig::from_yaml_str(&String::from_utf8_lossy(&bytes), &file);
    }
    // Mutations of the valid files: replace, insert or delete a few bytes.
    for _ in 0..3000 {
        let mut bytes = if rng.below(2) == 0 {
            zoo.clone().into_bytes()
        } else {
            kann.clone().into_bytes()
        };
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            let c = alphabet[rng.below(alphabet.len())];
            match rng.below(3) {
                0 => bytes[at] = c,
                1 => bytes.insert(at, c),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        let _ = NetworkConfig::from_yaml_str(&String::from_utf8_lossy(&bytes), &file);
    }
}
