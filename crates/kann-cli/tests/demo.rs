//! `kann demo` end to end on tiny generated networks (no external data): a
//! colour classifier, a two-class segmenter and a fixed-box YOLOv5-style
//! detector, each with preprocessing and postprocessing blocks. Checks the
//! per-stage timing lines, the decoded predictions (on kann and on the
//! reference interpreter), the annotated images of `--save-img`, and that
//! bad input is one `error:` line with exit code 2.

use kann_onnx::proto::data_type as dt;
use kann_tensor::{npy, Shape, Tensor};
use kann_testkit::*;
use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::Command;

fn kann(args: &[&str]) -> (i32, String, String) {
    kann_in(&std::env::temp_dir(), args)
}

/// Runs kann in folder `cwd`: its exit code, stdout and stderr.
fn kann_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kann"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("kann runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh folder for one test, removed when dropped.
fn temp_dir(tag: &str) -> ScratchDir {
    ScratchDir::new(&format!("kann-demo-{tag}-{}", std::process::id()))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Images of 8×8 RGB scaled to 0..1, NCHW float32.
const PRE: &str = "preprocessing:\n  resize: [8, 8]\n  color: rgb\n  scale: 0.00392156862745098\n  layout: nchw\n  dtype: float32\n";

const X_SHAPE: [Option<i64>; 4] = [Some(1), Some(3), Some(8), Some(8)];

/// Writes `d/net.onnx`, `d/network.yaml` (with [`PRE`] and `post`) and
/// `d/classes.txt`, and generates into `d/gen`.
fn generate(
    d: &Path,
    m: &kann_onnx::proto::ModelProto,
    output: &str,
    post: &str,
    classes: &[&str],
) -> PathBuf {
    std::fs::write(d.join("net.onnx"), encode(m)).unwrap();
    std::fs::write(d.join("classes.txt"), classes.join("\n") + "\n").unwrap();
    let yaml = format!(
        "name: tiny\nonnx_model: net.onnx\ninput_nodes_name: [x]\ninput_nodes_shape: [[1, 3, 8, 8]]\noutput_nodes_name: [{output}]\n{PRE}postprocessing:\n{post}"
    );
    std::fs::write(d.join("network.yaml"), yaml).unwrap();
    let gen = d.join("gen");
    let (code, out, err) = kann(&[
        "generate",
        s(&d.join("network.yaml")),
        "-d",
        s(&gen),
        "--arch",
        "generic",
        "--nbr-clusters",
        "2",
        "-q",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    gen
}

const COLOURS: [&str; 4] = ["red", "green", "blue", "grey"];

/// `logits = flatten(mean_hw(x)) · W + b`: class i of red, green, blue is
/// that channel's mean; grey is 0.3 of their sum.
fn classifier(d: &Path) -> PathBuf {
    #[rustfmt::skip]
    let w = vec![
        1.0, 0.0, 0.0, 0.3,
        0.0, 1.0, 0.0, 0.3,
        0.0, 0.0, 1.0, 0.3,
    ];
    let w = initializer("w", &Tensor::from_f32(Shape::from([3, 4]), w).unwrap());
    let b = initializer(
        "b",
        &Tensor::from_f32(Shape::from([4]), vec![0.0; 4]).unwrap(),
    );
    let m = model(
        13,
        vec![
            node("GlobalAveragePool", &["x"], &["g"], vec![]),
            node("Flatten", &["g"], &["f"], vec![attr_i("axis", 1)]),
            node("MatMul", &["f", "w"], &["m"], vec![]),
            node("Add", &["m", "b"], &["logits"], vec![]),
        ],
        vec![value_info("x", dt::FLOAT, &X_SHAPE)],
        vec![value_info("logits", dt::FLOAT, &[Some(1), Some(4)])],
        vec![w, b],
    );
    generate(
        d,
        &m,
        "logits",
        "  kind: classification\n  classes: classes.txt\n  top_k: 3\n",
        &COLOURS,
    )
}

/// A `w`×`h` picture of mostly `rgb` with a little texture.
fn photo(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let t = ((x + y) % 16) as u8;
        image::Rgb([
            rgb[0].saturating_add(t),
            rgb[1].saturating_add(t),
            rgb[2].saturating_add(t),
        ])
    });
    img.save(path).unwrap();
}

/// The indented result lines of a demo's stdout.
fn result_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("  ")).collect()
}

fn timing_re(index: usize, file: &str) -> Regex {
    let n = r"[0-9]+\.[0-9]+";
    Regex::new(&format!(
        r"^\[{index}\] .*{}: read {n} \| pre {n} \| send {n} \| infer {n} \| post {n} \| draw {n} \| total {n} ms \({n} fps\)$",
        regex::escape(file)
    ))
    .unwrap()
}

fn assert_one_error_line(code: i32, stderr: &str, needles: &[&str]) {
    assert_eq!(code, 2, "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' not in: {stderr}");
    }
}

/// How many pixels of two images of the same size differ.
fn differing_pixels(a: &image::RgbImage, b: &image::RgbImage) -> usize {
    assert_eq!(a.dimensions(), b.dimensions());
    a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count()
}

#[test]
fn classification_prints_times_and_classes() {
    let d = temp_dir("class");
    let gen = classifier(d.path());
    let red = d.path().join("red.png");
    photo(&red, 120, 90, [230, 10, 20]);
    let (code, out, err) = kann(&["demo", s(&gen), s(&red), "--no-display"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("note: this build has no display"), "{out}");
    assert!(out.contains("postprocessing classification"), "{out}");
    assert!(
        out.lines().any(|l| timing_re(0, "red.png").is_match(l)),
        "no timing line in:\n{out}"
    );
    let lines = result_lines(&out);
    assert_eq!(lines.len(), 3, "top 3 in:\n{out}");
    assert!(lines[0].starts_with("  1. red  "), "{out}");
    assert!(lines[1].starts_with("  2. grey  "), "{out}");
    assert!(
        lines[2].starts_with("  3. blue  ") || lines[2].starts_with("  3. green  "),
        "{out}"
    );
    assert!(lines[0].ends_with('%'), "{out}");
    assert!(
        !out.contains("mean over"),
        "one frame has no mean line:\n{out}"
    );

    // Without --no-display the demo says it prints instead.
    let (code, out, _) = kann(&["demo", s(&gen), s(&red)]);
    assert_eq!(code, 0);
    assert!(out.contains("note: this build has no display"), "{out}");
}

#[test]
fn reference_device_predicts_the_same() {
    let d = temp_dir("ref");
    let gen = classifier(d.path());
    let img = d.path().join("green.png");
    photo(&img, 64, 48, [40, 200, 30]);
    let (code, kann_out, err) = kann(&["demo", s(&gen), s(&img), "--no-display"]);
    assert_eq!(code, 0, "{kann_out}{err}");
    for device in ["reference", "cpu"] {
        let (code, out, err) = kann(&["demo", s(&gen), s(&img), "--no-display", "-d", device]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("on the reference interpreter"), "{out}");
        assert!(
            out.lines().any(|l| timing_re(0, "green.png").is_match(l)),
            "{out}"
        );
        assert_eq!(
            result_lines(&out),
            result_lines(&kann_out),
            "{device}:\n{out}\nkann:\n{kann_out}"
        );
    }
    assert!(
        result_lines(&kann_out)[0].starts_with("  1. green  "),
        "{kann_out}"
    );
}

#[test]
fn save_img_draws_the_labels() {
    let d = temp_dir("save");
    let gen = classifier(d.path());
    let src = d.path().join("blue.png");
    photo(&src, 160, 100, [20, 30, 220]);
    let saved = d.path().join("saved");
    let arg = format!("--save-img={}", s(&saved));
    let (code, out, err) = kann(&["demo", s(&gen), s(&src), "--no-display", &arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(result_lines(&out)[0].starts_with("  1. blue  "), "{out}");
    let drawn = image::open(saved.join("blue.png")).unwrap().to_rgb8();
    let source = image::open(&src).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), (160, 100));
    assert!(
        differing_pixels(&drawn, &source) > 50,
        "the labels are drawn"
    );
    // The drawing time is measured now.
    let draw = Regex::new(r"draw ([0-9.]+) \|").unwrap();
    let ms: f64 = draw.captures(&out).expect("draw time")[1].parse().unwrap();
    assert!(ms > 0.0, "{out}");
    // A bare --save-img writes into ./demo-out.
    let (code, out, err) = kann_in(
        d.path(),
        &["demo", "gen", "blue.png", "--no-display", "--save-img"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let drawn_again = image::open(d.path().join("demo-out/blue.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(drawn_again, drawn);
}

#[test]
fn a_folder_gives_one_frame_per_image_and_a_mean() {
    let d = temp_dir("folder");
    let gen = classifier(d.path());
    let imgs = d.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    photo(&imgs.join("a_red.png"), 50, 40, [240, 30, 10]);
    photo(&imgs.join("b_blue.png"), 40, 50, [5, 20, 250]);
    let (code, out, err) = kann(&["demo", s(&gen), s(&imgs), "--no-display"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(2 image(s))"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let first = lines
        .iter()
        .position(|l| timing_re(0, "a_red.png").is_match(l))
        .expect(&out);
    let second = lines
        .iter()
        .position(|l| timing_re(1, "b_blue.png").is_match(l))
        .expect(&out);
    assert!(lines[first + 1].starts_with("  1. red  "), "{out}");
    assert!(lines[second + 1].starts_with("  1. blue  "), "{out}");
    let n = r"[0-9]+\.[0-9]+";
    let mean = Regex::new(&format!(
        r"^mean over 2 frames: read {n} \| pre {n} \| send {n} \| infer {n} \| post {n} \| draw {n} \| total {n} ms \({n} fps\)$"
    ))
    .unwrap();
    assert!(lines.iter().any(|l| mean.is_match(l)), "{out}");
}

/// `y = conv1x1(x)` to 2 channels: 0 = green + blue, 1 = red.
fn segmenter(d: &Path) -> PathBuf {
    let w = vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0];
    let w = initializer(
        "w",
        &Tensor::from_f32(Shape::from([2, 3, 1, 1]), w).unwrap(),
    );
    let m = model(
        13,
        vec![node(
            "Conv",
            &["x", "w"],
            &["y"],
            vec![attr_ints("kernel_shape", &[1, 1])],
        )],
        vec![value_info("x", dt::FLOAT, &X_SHAPE)],
        vec![value_info(
            "y",
            dt::FLOAT,
            &[Some(1), Some(2), Some(8), Some(8)],
        )],
        vec![w],
    );
    generate(
        d,
        &m,
        "y",
        "  kind: segmentation\n  classes: classes.txt\n",
        &["background", "redness"],
    )
}

#[test]
fn segmentation_prints_mask_shares_and_blends_the_mask() {
    let d = temp_dir("seg");
    let gen = segmenter(d.path());
    // Left half red, right half blue.
    let src = d.path().join("halves.png");
    image::RgbImage::from_fn(64, 48, |x, _| {
        if x < 32 {
            image::Rgb([250, 0, 0])
        } else {
            image::Rgb([0, 0, 250])
        }
    })
    .save(&src)
    .unwrap();
    let saved = d.path().join("out");
    let arg = format!("--save-img={}", s(&saved));
    let (code, out, err) = kann(&["demo", s(&gen), s(&src), "--no-display", &arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("postprocessing segmentation"), "{out}");
    assert!(
        out.lines().any(|l| timing_re(0, "halves.png").is_match(l)),
        "{out}"
    );
    let lines = result_lines(&out);
    assert!(lines[0].starts_with("  mask "), "{out}");
    let share = Regex::new(r"^  (\w+)  ([0-9.]+)%$").unwrap();
    let shares: Vec<(String, f64)> = lines[1..]
        .iter()
        .map(|l| {
            let c = share
                .captures(l)
                .unwrap_or_else(|| panic!("not a share line: {l}"));
            (c[1].to_string(), c[2].parse().unwrap())
        })
        .collect();
    assert_eq!(shares.len(), 2, "{out}");
    for (name, pct) in &shares {
        assert!(name == "background" || name == "redness", "{out}");
        assert!((40.0..=60.0).contains(pct), "{name} {pct}% in:\n{out}");
    }
    let drawn = image::open(saved.join("halves.png")).unwrap().to_rgb8();
    let source = image::open(&src).unwrap().to_rgb8();
    assert!(
        differing_pixels(&drawn, &source) > 64 * 48 / 4,
        "the mask is blended"
    );
    // The reference interpreter gives the same mask.
    let (code, ref_out, err) = kann(&["demo", s(&gen), s(&src), "--no-display", "-d", "reference"]);
    assert_eq!(code, 0, "{ref_out}{err}");
    assert_eq!(result_lines(&ref_out), lines);
}

/// A YOLOv5-style head `[1, 2, 5 + 2]` that always reports the same two
/// anchors (plus `0 · mean(x)`, so the output depends on the input): one
/// box centred in the 8×8 input, 4×4, objectness 0.9, class scores
/// (0.9, 0.1); one below the threshold.
fn detector(d: &Path) -> PathBuf {
    #[rustfmt::skip]
    let anchors = vec![
        4.0, 4.0, 4.0, 4.0, 0.9, 0.9, 0.1,
        2.0, 2.0, 2.0, 2.0, 0.1, 0.5, 0.5,
    ];
    let anchors = initializer(
        "anchors",
        &Tensor::from_f32(Shape::from([1, 2, 7]), anchors).unwrap(),
    );
    let zero = initializer(
        "zero",
        &Tensor::from_f32(Shape::from([1, 1, 1]), vec![0.0]).unwrap(),
    );
    let shape = initializer(
        "shape",
        &Tensor::from_i64(Shape::from([3]), vec![1, 1, 1]).unwrap(),
    );
    let m = model(
        13,
        vec![
            node(
                "ReduceMean",
                &["x"],
                &["mean"],
                vec![attr_ints("axes", &[1, 2, 3])],
            ),
            node("Reshape", &["mean", "shape"], &["mean3"], vec![]),
            node("Mul", &["mean3", "zero"], &["nothing"], vec![]),
            node("Add", &["nothing", "anchors"], &["det"], vec![]),
        ],
        vec![value_info("x", dt::FLOAT, &X_SHAPE)],
        vec![value_info("det", dt::FLOAT, &[Some(1), Some(2), Some(7)])],
        vec![anchors, zero, shape],
    );
    generate(
        d,
        &m,
        "det",
        "  kind: yolov5\n  classes: classes.txt\n  conf_threshold: 0.5\n  iou_threshold: 0.5\n",
        &["thing", "other"],
    )
}

#[test]
fn detection_boxes_are_mapped_to_the_source_and_drawn() {
    let d = temp_dir("det");
    let gen = detector(d.path());
    let src = d.path().join("wide.png");
    photo(&src, 80, 40, [90, 90, 90]);
    let saved = d.path().join("boxes");
    let arg = format!("--save-img={}", s(&saved));
    for device in ["kann", "reference"] {
        let (code, out, err) =
            kann(&["demo", s(&gen), s(&src), "--no-display", &arg, "-d", device]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.lines().any(|l| timing_re(0, "wide.png").is_match(l)),
            "{out}"
        );
        // The 8×8 input is the 80×40 picture squeezed: x × 10, y × 5.
        assert_eq!(
            result_lines(&out),
            ["  box thing 0.81 at [20, 10, 60, 30]"],
            "{device}:\n{out}"
        );
    }
    let drawn = image::open(saved.join("wide.png")).unwrap().to_rgb8();
    let source = image::open(&src).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), (80, 40));
    assert!(differing_pixels(&drawn, &source) > 40, "the box is drawn");
    // Outside the box and its label nothing changes: the bottom-right corner.
    assert_eq!(drawn.get_pixel(75, 37), source.get_pixel(75, 37));
}

#[test]
fn bad_inputs_are_one_error_line() {
    let d = temp_dir("bad");
    let gen = classifier(d.path());
    let garbage = d.path().join("garbage.png");
    std::fs::write(&garbage, b"this is not a PNG \x00\xff\x13 at all").unwrap();
    let (code, _, err) = kann(&["demo", s(&gen), s(&garbage), "--no-display"]);
    assert_one_error_line(code, &err, &["garbage.png"]);

    let empty = d.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = kann(&["demo", s(&gen), s(&empty), "--no-display"]);
    assert_one_error_line(code, &err, &["empty"]);

    let video = d.path().join("clip.mp4");
    std::fs::write(&video, [0u8; 64]).unwrap();
    let (code, _, err) = kann(&["demo", s(&gen), s(&video), "--no-display"]);
    assert_one_error_line(code, &err, &["clip.mp4", "video"]);
    // Named but absent, the same refusal.
    let (code, _, err) = kann(&["demo", s(&gen), s(&d.path().join("x.mp4")), "--no-display"]);
    assert_one_error_line(code, &err, &["x.mp4", "video"]);

    let img = d.path().join("ok.png");
    photo(&img, 16, 16, [10, 10, 10]);
    let (code, _, err) = kann(&["demo", s(&d.path().join("no-such-gen")), s(&img), "--no-display"]);
    assert_one_error_line(code, &err, &["no-such-gen"]);
    // A folder, but not one `kann generate` wrote (it holds the YAML only).
    let (code, _, err) = kann(&["demo", s(d.path()), s(&img), "--no-display"]);
    assert_one_error_line(code, &err, &["not a generated folder"]);

    // A prepared-looking array with 4 channels for the 3-channel input.
    let four = d.path().join("four.npy");
    npy::write(
        &four,
        &Tensor::from_f32(Shape::from([1, 4, 8, 8]), vec![0.5; 256]).unwrap(),
    )
    .unwrap();
    for device in ["kann", "reference"] {
        let (code, _, err) = kann(&["demo", s(&gen), s(&four), "--no-display", "-d", device]);
        assert_one_error_line(code, &err, &["four.npy", "4"]);
    }

    // A missing image.
    let (code, _, err) = kann(&["demo", s(&gen), s(&d.path().join("absent.png")), "--no-display"]);
    assert_one_error_line(code, &err, &["absent.png"]);
}
