//! `kann prepare` and `kann random-images` end to end on a tiny generated
//! network with a preprocessing block: exact stream contents, the round
//! trip random-images → prepare → run, and one-line errors on bad input.

use kann_io::stream::Manifest;
use kann_onnx::proto::data_type as dt;
use kann_testkit::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn kann(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kann"))
        .args(args)
        .output()
        .expect("kann runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(tag: &str) -> ScratchDir {
    ScratchDir::new(&format!("kann-prep-{tag}-{}", std::process::id()))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const PRE: &str = "preprocessing:\n  color: bgr\n  scale: 1.0\n  mean: [1, 2, 3]\n  std: [2, 4, 8]\n  layout: nchw\n";

/// `y = relu(x)`, x: f32[batch, 3, 4, 4], in `d/network.yaml` with `extra`
/// appended; generated into `d/gen` (batch forced to `batch`).
fn generate(d: &Path, extra: &str, batch: usize) -> PathBuf {
    let shape = [None, Some(3), Some(4), Some(4)];
    let m = model(
        13,
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![value_info("x", dt::FLOAT, &shape)],
        vec![value_info("y", dt::FLOAT, &shape)],
        vec![],
    );
    std::fs::write(d.join("tiny.onnx"), encode(&m)).unwrap();
    let yaml = format!("name: tiny\nonnx_model: tiny.onnx\ninput_nodes_name: [x]\ninput_nodes_shape: [[{batch}, 3, 4, 4]]\noutput_nodes_name: [y]\n{extra}");
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
        "1",
        "-q",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    gen
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn assert_one_error_line(code: i32, stderr: &str, needles: &[&str]) {
    assert_eq!(code, 2, "stderr: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("warning: "))
        .collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' not in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_png_is_prepared_exactly_and_runs() {
    let d = temp_dir("exact");
    let gen = generate(&d, PRE, 1);
    let img = image::RgbImage::from_fn(4, 4, |x, y| {
        image::Rgb([(10 * x + y) as u8, 100 + x as u8, 200 + y as u8])
    });
    img.save(d.join("photo.png")).unwrap();
    let io = d.join("io");
    let (code, out, err) = kann(&["prepare", s(&gen), "-o", s(&io), s(&d.join("photo.png"))]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("photo.png -> frame 0") && out.contains("1 frame(s)"),
        "{out}"
    );
    let v = f32s(&std::fs::read(io.join("x.bin")).unwrap());
    assert_eq!(v.len(), 48);
    // BGR planes: blue (200 + y - 1) / 2, green (100 + x - 2) / 4, red (10x + y - 3) / 8.
    for y in 0..4 {
        for x in 0..4 {
            let i = y * 4 + x;
            let want = [
                (200 + y) as f32 / 2.0 - 0.5,
                (98 + x) as f32 / 4.0,
                (10 * x + y) as f32 / 8.0 - 0.375,
            ];
            for (c, w) in want.iter().enumerate() {
                assert!(
                    (v[c * 16 + i] - w).abs() < 1e-4,
                    "channel {c} pixel ({x}, {y}): {} vs {w}",
                    v[c * 16 + i]
                );
            }
        }
    }
    let m = Manifest::read(&io).unwrap().unwrap();
    assert_eq!(m.entries[0].frames, 1);
    assert_eq!(m.entries[0].spec.shape, [1, 3, 4, 4]);
    // The stream is what `kann run` reads.
    let (code, out, err) = kann(&["run", s(&gen), s(&io)]);
    assert_eq!(code, 0, "{out}{err}");
    let y = f32s(&std::fs::read(io.join("y.bin")).unwrap());
    assert_eq!(y, v.iter().map(|&a| a.max(0.0)).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn random_images_round_trip_through_prepare() {
    let d = temp_dir("random");
    let gen = generate(&d, "", 2);
    let out_dir = d.join("rand");
    let (code, out, err) = kann(&[
        "random-images",
        s(&out_dir),
        s(&gen),
        "--format",
        ".png",
        "--nb_images",
        "3",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for i in 0..3 {
        let img = image::open(out_dir.join(format!("x/image_{i}.png"))).unwrap();
        assert_eq!((img.width(), img.height()), (4, 4));
    }
    let io = d.join("io");
    let (code, out, err) = kann(&[
        "prepare",
        s(&gen),
        "-o",
        s(&io),
        "--batch-size",
        "2",
        s(&out_dir.join("x")),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("warning: the network has no preprocessing block"),
        "{err}"
    );
    assert!(out.contains("padded with 1"), "{out}");
    let m = Manifest::read(&io).unwrap().unwrap();
    assert_eq!(
        (m.entries[0].frames, &m.entries[0].spec.shape[..]),
        (2, &[2, 3, 4, 4][..])
    );
    let v = f32s(&std::fs::read(io.join("x.bin")).unwrap());
    assert_eq!(v.len(), 2 * 2 * 48);
    assert!(v.iter().all(|x| (0.0..=1.0).contains(x)), "scaled by 1/255");
    assert_eq!(
        v[96 + 48..],
        v[96..96 + 48],
        "the last image repeats as padding"
    );
    // .npy images (float32 in 0..1 by default) from the network YAML itself.
    let (code, out, err) = kann(&[
        "random-images",
        s(&d.join("npy")),
        s(&d.join("network.yaml")),
        "--format",
        "npy",
        "--nb-images",
        "2",
        "--shape",
        "6",
        "5",
        "3",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let t = kann_tensor::npy::read(&d.join("npy/x/image_1.npy")).unwrap();
    assert_eq!(t.dims(), [6, 5, 3]);
    assert!(t.to_f32_vec().iter().all(|x| (0.0..1.0).contains(x)));
    let (code, out, err) = kann(&[
        "prepare",
        s(&d.join("network.yaml")),
        "-o",
        s(&d.join("io2")),
        s(&d.join("npy/x")),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        Manifest::read(&d.join("io2")).unwrap().unwrap().entries[0].frames,
        1
    );
    // A batch size the artifact was not generated with.
    let (code, _, err) = kann(&[
        "prepare",
        s(&gen),
        "-o",
        s(&io),
        "--batch-size",
        "4",
        s(&out_dir.join("x")),
    ]);
    assert_one_error_line(code, &err, &["batch size 4", "batch 2"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let d = temp_dir("errors");
    let gen = generate(&d, &format!("{PRE}  resize_shorter_side: 5\n"), 1);
    let io = d.join("io");
    std::fs::write(d.join("broken.png"), b"not a png at all").unwrap();
    let (code, _, err) = kann(&["prepare", s(&gen), "-o", s(&io), s(&d.join("broken.png"))]);
    assert_one_error_line(code, &err, &["broken.png", "not a decodable image"]);
    let t =
        kann_tensor::Tensor::from_f32(kann_tensor::Shape::from(vec![1, 4, 4, 4]), vec![0.5; 64])
            .unwrap();
    kann_tensor::npy::write(&d.join("rgba.npy"), &t).unwrap();
    let (code, _, err) = kann(&["prepare", s(&gen), "-o", s(&io), s(&d.join("rgba.npy"))]);
    assert_one_error_line(code, &err, &["rgba.npy", "4 channels", "'x' takes 3"]);
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let (code, _, err) = kann(&["prepare", s(&gen), "-o", s(&io), s(&d.join("empty"))]);
    assert_one_error_line(code, &err, &["no image or .npy file", "empty"]);
    let (code, _, err) = kann(&[
        "prepare",
        s(&d.join("no-such-gen")),
        "-o",
        s(&io),
        s(&d.join("broken.png")),
    ]);
    assert_one_error_line(code, &err, &["no-such-gen", "does not exist"]);
    let (code, _, err) = kann(&["prepare", s(&d), "-o", s(&io), s(&d.join("broken.png"))]);
    assert_one_error_line(code, &err, &["not a folder written by kann generate"]);
    image::RgbImage::new(7, 5).save(d.join("big.png")).unwrap();
    let (code, _, err) = kann(&["prepare", s(&gen), "-o", s(&io), s(&d.join("big.png"))]);
    assert_one_error_line(code, &err, &["big.png", "5x7", "4x4"]);
    let (code, _, err) = kann(&["random-images", s(&d.join("r")), s(&gen), "--format", "gif"]);
    assert_one_error_line(code, &err, &["--format", "gif"]);
    assert!(!io.join("x.bin").exists(), "nothing written on error");
    let _ = std::fs::remove_dir_all(&d);
}
