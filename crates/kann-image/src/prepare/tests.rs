//! Unit tests of the preparation on hand-made images with known values.

use super::*;
use image::Rgb;
use kann_config::{Color, Layout};
use kann_tensor::{npy, DType, Shape, Tensor};
use std::path::Path;

fn spec(dtype: DType, shape: &[usize]) -> IoSpec {
    IoSpec {
        name: "images".into(),
        dtype,
        shape: shape.to_vec(),
    }
}

/// A 4x2 (WxH) image whose pixel (x, y) is (10x + y, 100 + x, 200 + y).
fn img4x2() -> RgbImage {
    RgbImage::from_fn(4, 2, |x, y| {
        Rgb([(10 * x + y) as u8, (100 + x) as u8, (200 + y) as u8])
    })
}

fn raw(pre: Preprocessing) -> Preprocessing {
    Preprocessing { scale: 1.0, ..pre }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-3, "{got:?} vs {want:?}");
    }
}

#[test]
fn nchw_and_nhwc_lay_out_the_same_pixels() {
    let pre = raw(Preprocessing::default());
    let (nchw, g) = prepare_image(&img4x2(), Some(&pre), &spec(DType::F32, &[1, 3, 2, 4])).unwrap();
    let nchw = f32s(&nchw);
    // Red plane row 0, row 1, then green, then blue.
    close(&nchw[..8], &[0., 10., 20., 30., 1., 11., 21., 31.]);
    close(&nchw[8..12], &[100., 101., 102., 103.]);
    close(&nchw[16..20], &[200.; 4]);
    assert_eq!(g, Geometry::identity(4, 2));
    let (nhwc, _) = prepare_image(&img4x2(), Some(&pre), &spec(DType::F32, &[1, 2, 4, 3])).unwrap();
    close(&f32s(&nhwc)[..6], &[0., 100., 200., 10., 101., 200.]);
    // An explicit layout wins over the shape's guess.
    let forced = Preprocessing {
        layout: Some(Layout::Nhwc),
        ..pre
    };
    let e = prepare_image(&img4x2(), Some(&forced), &spec(DType::F32, &[1, 3, 2, 4])).unwrap_err();
    assert!(matches!(e, PrepareError::NotImage { .. }), "{e}");
}

#[test]
fn layout_is_inferred_from_the_shape() {
    assert_eq!(infer_layout(&[1, 3, 224, 224]), Some(Layout::Nchw));
    assert_eq!(infer_layout(&[1, 224, 224, 3]), Some(Layout::Nhwc));
    assert_eq!(infer_layout(&[1, 1, 28, 28]), Some(Layout::Nchw));
    assert_eq!(
        infer_layout(&[1, 3, 5, 3]),
        Some(Layout::Nchw),
        "ambiguous reads as nchw"
    );
    assert_eq!(infer_layout(&[1, 8, 4, 4]), None);
    assert_eq!(infer_layout(&[1, 3, 4]), None);
}

#[test]
fn mean_std_scale_and_bgr_apply_per_output_channel() {
    let pre = Preprocessing {
        color: Color::Bgr,
        scale: 0.5,
        mean: vec![1.0, 2.0, 3.0],
        std: vec![2.0, 4.0, 8.0],
        ..Preprocessing::default()
    };
    let (b, _) = prepare_image(&img4x2(), Some(&pre), &spec(DType::F32, &[1, 2, 4, 3])).unwrap();
    // Pixel (1, 0) = (10, 101, 200): channels b, g, r.
    let px = &f32s(&b)[3..6];
    close(
        px,
        &[(100.0 - 1.0) / 2.0, (50.5 - 2.0) / 4.0, (5.0 - 3.0) / 8.0],
    );
}

#[test]
fn gray_is_luma_and_a_single_mean_broadcasts() {
    let pre = Preprocessing {
        color: Color::Gray,
        scale: 1.0,
        mean: vec![10.0],
        ..Preprocessing::default()
    };
    let (b, _) = prepare_image(&img4x2(), Some(&pre), &spec(DType::F32, &[1, 1, 2, 4])).unwrap();
    let want = 0.299 * 10.0 + 0.587 * 101.0 + 0.114 * 200.0 - 10.0;
    close(&f32s(&b)[1..2], &[want as f32]);
    // An RGB block for a gray input, and a gray one for an RGB input, are errors.
    let e = prepare_image(
        &img4x2(),
        Some(&raw(Preprocessing::default())),
        &spec(DType::F32, &[1, 1, 2, 4]),
    )
    .unwrap_err();
    assert!(
        matches!(e, PrepareError::Config { .. }) && e.to_string().contains("images"),
        "{e}"
    );
    assert!(prepare_image(&img4x2(), Some(&pre), &spec(DType::F32, &[1, 3, 2, 4])).is_err());
}

#[test]
fn integer_dtypes_round_and_saturate() {
    let pre = Preprocessing {
        scale: 2.0,
        ..Preprocessing::default()
    };
    let (b, _) = prepare_image(&img4x2(), Some(&pre), &spec(DType::U8, &[1, 3, 2, 4])).unwrap();
    assert_eq!(&b[..4], &[0, 20, 40, 60]);
    assert_eq!(&b[16..20], &[255; 4], "400 saturates");
    let pre = Preprocessing {
        scale: 1.0,
        mean: vec![128.0],
        ..Preprocessing::default()
    };
    let (b, _) = prepare_image(&img4x2(), Some(&pre), &spec(DType::I8, &[1, 3, 2, 4])).unwrap();
    assert_eq!(b[0] as i8, -128);
    assert_eq!(b[16] as i8, 72);
    // preprocessing.dtype quantizes before the input's dtype stores the value.
    let pre = Preprocessing {
        scale: 0.25,
        dtype: Some(DType::U8),
        ..Preprocessing::default()
    };
    let (b, _) = prepare_image(&img4x2(), Some(&pre), &spec(DType::F32, &[1, 3, 2, 4])).unwrap();
    // 10 * 0.25 = 2.5 → 2 (ties to even), 30 * 0.25 = 7.5 → 8.
    close(&f32s(&b)[..4], &[0.0, 2.0, 5.0, 8.0]);
    let pre = raw(Preprocessing::default());
    let (b, _) = prepare_image(&img4x2(), Some(&pre), &spec(DType::F16, &[1, 3, 2, 4])).unwrap();
    assert_eq!(b.len(), 24 * 2);
    assert_eq!([b[2], b[3]], 0x4900u16.to_le_bytes(), "10.0 in f16");
}

#[test]
fn center_crop_keeps_the_middle_and_the_geometry_maps_back() {
    // 6x4 image, pixel value 10x + y in every channel.
    let img = RgbImage::from_fn(6, 4, |x, y| Rgb([(10 * x + y) as u8; 3]));
    let pre = raw(Preprocessing {
        center_crop: Some([2, 2]),
        ..Preprocessing::default()
    });
    let (b, g) = prepare_image(&img, Some(&pre), &spec(DType::F32, &[1, 3, 2, 2])).unwrap();
    close(&f32s(&b)[..4], &[21., 31., 22., 32.]);
    assert_eq!(
        (g.offset_x, g.offset_y, g.scale_x, g.scale_y),
        (-2.0, -1.0, 1.0, 1.0)
    );
    assert_eq!(g.to_source(0.0, 0.0), (2.0, 1.0));
    // A crop larger than the image.
    let pre = raw(Preprocessing {
        center_crop: Some([5, 2]),
        ..Preprocessing::default()
    });
    let e = prepare_image(&img, Some(&pre), &spec(DType::F32, &[1, 3, 5, 2])).unwrap_err();
    assert!(matches!(e, PrepareError::Crop { .. }), "{e}");
}

#[test]
fn shorter_side_resize_keeps_the_aspect_ratio() {
    // Landscape 8x4 → shorter side 2 → 4x2.
    let img = RgbImage::from_pixel(8, 4, Rgb([50, 60, 70]));
    let pre = raw(Preprocessing {
        resize_shorter_side: Some(2),
        ..Preprocessing::default()
    });
    let (b, g) = prepare_image(&img, Some(&pre), &spec(DType::F32, &[1, 3, 2, 4])).unwrap();
    close(&f32s(&b)[..2], &[50.0, 50.0]);
    assert_eq!((g.scale_x, g.scale_y, g.net_w, g.net_h), (0.5, 0.5, 4, 2));
    assert_eq!(g.to_source(4.0, 2.0), (8.0, 4.0));
    // Portrait 3x5 → shorter side 2 → 2x3 (5 * 2 / 3 truncated), then a 2x2 crop.
    let img = RgbImage::from_pixel(3, 5, Rgb([1, 2, 3]));
    let pre = raw(Preprocessing {
        resize_shorter_side: Some(2),
        center_crop: Some([2, 2]),
        ..Preprocessing::default()
    });
    let (_, g) = prepare_image(&img, Some(&pre), &spec(DType::F32, &[1, 3, 2, 2])).unwrap();
    assert_eq!(
        (g.scale_x, g.scale_y, g.offset_y),
        (2.0 / 3.0, 3.0 / 5.0, 0.0)
    );
    // Without a crop the 2x3 result does not fit a 2x2 input: both sizes named.
    let pre = raw(Preprocessing {
        resize_shorter_side: Some(2),
        ..Preprocessing::default()
    });
    let e = prepare_image(&img, Some(&pre), &spec(DType::F32, &[1, 3, 2, 2])).unwrap_err();
    assert!(
        e.to_string().contains("3x2") && e.to_string().contains("2x2"),
        "{e}"
    );
}

#[test]
fn downscaling_is_antialiased() {
    // 4x1 of 0, 255, 0, 255 → 2x1: the triangle filter widened to 2 pixels
    // weighs pixels 0, 1, 2 by 0.75, 0.75, 0.25 (PIL's BILINEAR gives the
    // same); plain bilinear sampling would give 127.5.
    let img = RgbImage::from_fn(4, 1, |x, _| Rgb([if x % 2 == 1 { 255 } else { 0 }; 3]));
    let pre = raw(Preprocessing {
        resize: Some([1, 2]),
        ..Preprocessing::default()
    });
    let (b, _) = prepare_image(&img, Some(&pre), &spec(DType::F32, &[1, 3, 1, 2])).unwrap();
    close(&f32s(&b)[..1], &[255.0 * 0.75 / 1.75]);
}

#[test]
fn without_a_block_images_are_resized_to_the_input_and_a_warning_says_so() {
    let img = RgbImage::from_pixel(8, 4, Rgb([255, 0, 51]));
    let plan = Plan::new(None, &spec(DType::F32, &[1, 2, 2, 3])).unwrap();
    assert_eq!(plan.warnings.len(), 1);
    assert!(
        plan.warnings[0].contains("preparator is not run"),
        "{:?}",
        plan.warnings
    );
    let (b, g) = plan.prepare(&img).unwrap();
    close(&f32s(&b)[..3], &[1.0, 0.0, 0.2]);
    assert_eq!((g.scale_x, g.scale_y), (0.25, 0.5));
    // A one-channel input gets gray.
    let plan = Plan::new(None, &spec(DType::F32, &[1, 1, 2, 2])).unwrap();
    assert!(plan.warnings[0].contains("gray"), "{:?}", plan.warnings);
}

#[test]
fn arrays_are_prepared_tensors_or_images() {
    let p = Path::new("x.npy");
    let s = spec(DType::U8, &[1, 3, 2, 4]);
    let plan = Plan::new(Some(&raw(Preprocessing::default())), &s).unwrap();
    // Already prepared (with and without the batch axis): converted only.
    let v: Vec<f32> = (0..24).map(|i| i as f32 + 0.4).collect();
    for dims in [&[3usize, 2, 4][..], &[1, 3, 2, 4]] {
        let t = Tensor::from_f32(Shape::from(dims), v.clone()).unwrap();
        let (b, _) = plan.prepare_array(&t, p).unwrap();
        assert_eq!(b, (0..24).collect::<Vec<u8>>());
    }
    // An HxWx3 uint8 array is an image, as the same photo would be.
    let img = img4x2();
    let t = Tensor::new(
        Shape::from(&[2usize, 4, 3][..]),
        kann_tensor::Data::U8(img.as_raw().clone()),
    )
    .unwrap();
    assert_eq!(
        plan.prepare_array(&t, p).unwrap().0,
        plan.prepare(&img).unwrap().0
    );
    // An HxW float array in [0, 1] is a gray image, replicated.
    let t = Tensor::from_f32(Shape::from(&[2usize, 4][..]), vec![0.2; 8]).unwrap();
    assert_eq!(plan.prepare_array(&t, p).unwrap().0, vec![51; 24]);
    // The input's shape with 4 channels, and shapes that are nothing.
    let t = Tensor::from_f32(Shape::from(&[1usize, 4, 2, 4][..]), vec![0.0; 32]).unwrap();
    let e = plan.prepare_array(&t, p).unwrap_err();
    assert!(
        matches!(
            e,
            PrepareError::Channels {
                found: 4,
                expected: 3,
                ..
            }
        ) && e.to_string().contains("x.npy"),
        "{e}"
    );
    let t = Tensor::from_f32(Shape::from(&[5usize, 2, 2, 2][..]), vec![0.0; 40]).unwrap();
    let e = plan.prepare_array(&t, p).unwrap_err();
    assert!(
        matches!(e, PrepareError::NpyShape { .. }) && e.to_string().contains("[5, 2, 2, 2]"),
        "{e}"
    );
    let t = Tensor::from_i64(Shape::from(&[2usize, 4][..]), vec![0; 8]).unwrap();
    assert!(matches!(
        plan.prepare_array(&t, p),
        Err(PrepareError::NpyShape { .. })
    ));
    // Stacked prepared elements, and a stack with the wrong channel count.
    let t = Tensor::from_f32(
        Shape::from(&[2usize, 3, 2, 4][..]),
        (0..48).map(|i| i as f32).collect(),
    )
    .unwrap();
    let stack = plan.prepare_stack(&t, p).unwrap();
    assert_eq!(stack.len(), 2);
    assert_eq!(stack[1].0, (24..48).collect::<Vec<u8>>());
    let t = Tensor::from_f32(Shape::from(&[2usize, 1, 2, 4][..]), vec![0.0; 16]).unwrap();
    assert!(matches!(
        plan.prepare_stack(&t, p),
        Err(PrepareError::Channels { found: 1, .. })
    ));
    let t = Tensor::from_f32(Shape::from(&[2usize, 4][..]), vec![0.0; 8]).unwrap();
    assert_eq!(
        plan.prepare_stack(&t, p).unwrap().len(),
        1,
        "an image is one element"
    );
    // An image array whose size does not fit is named.
    let t = Tensor::from_f32(Shape::from(&[3usize, 3][..]), vec![0.0; 9]).unwrap();
    let shorter = Plan::new(
        Some(&raw(Preprocessing {
            resize_shorter_side: Some(3),
            ..Preprocessing::default()
        })),
        &s,
    )
    .unwrap();
    let e = shorter.prepare_array(&t, p).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("x.npy: the prepared image is 3x3"),
        "{e}"
    );
}

#[test]
fn batches_are_packed_and_the_last_one_padded_with_the_last_image() {
    let (frames, padded) = pack_batches(vec![vec![1], vec![2], vec![3]], 2);
    assert_eq!(frames, vec![vec![1, 2], vec![3, 3]]);
    assert_eq!(padded, 1);
    assert_eq!(
        pack_batches(vec![vec![1], vec![2]], 2),
        (vec![vec![1, 2]], 0)
    );
    assert_eq!(
        pack_batches(vec![vec![1], vec![2]], 1),
        (vec![vec![1], vec![2]], 0)
    );
    assert_eq!(pack_batches(Vec::new(), 4), (Vec::new(), 0));
}

#[test]
fn inputs_that_are_not_one_image_are_errors_naming_them() {
    let pre = raw(Preprocessing::default());
    let e = prepare_image(&img4x2(), Some(&pre), &spec(DType::F32, &[1, 1000])).unwrap_err();
    assert!(
        matches!(e, PrepareError::NotImage { .. }) && e.to_string().contains("'images'"),
        "{e}"
    );
    let e = prepare_image(&img4x2(), Some(&pre), &spec(DType::F32, &[1, 8, 2, 4])).unwrap_err();
    assert!(matches!(e, PrepareError::NotImage { .. }), "{e}");
    let a = IoSpec {
        name: "a".into(),
        dtype: DType::F32,
        shape: vec![1, 3, 8, 8],
    };
    let b = IoSpec {
        name: "b".into(),
        dtype: DType::F32,
        shape: vec![1, 3, 8, 8],
    };
    let c = IoSpec {
        name: "c".into(),
        dtype: DType::I64,
        shape: vec![1, 2],
    };
    let e = image_input(&[a.clone(), b], Some(&pre)).unwrap_err();
    assert!(
        e.to_string().contains("'a'")
            && e.to_string().contains("'b'")
            && e.to_string().contains("has 2"),
        "{e}"
    );
    assert_eq!(
        image_input(&[c.clone(), a.clone()], Some(&pre))
            .unwrap()
            .name,
        "a"
    );
    assert!(matches!(
        image_input(&[c], Some(&pre)),
        Err(PrepareError::NotImage { .. })
    ));
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kann-image-prepare-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn sources_are_read_prepared_and_batched() {
    let d = temp_dir("sources");
    img4x2().save(d.join("a.png")).unwrap();
    RgbImage::from_pixel(4, 2, Rgb([9, 9, 9]))
        .save(d.join("b.bmp"))
        .unwrap();
    let t = Tensor::from_f32(Shape::from(&[3usize, 2, 4][..]), vec![7.0; 24]).unwrap();
    npy::write(&d.join("c.npy"), &t).unwrap();
    let pre = raw(Preprocessing::default());
    let specs = [
        spec(DType::U8, &[2, 3, 2, 4]),
        IoSpec {
            name: "mask".into(),
            dtype: DType::F32,
            shape: vec![2, 5],
        },
    ];
    let p = prepare_sources(std::slice::from_ref(&d), Some(&pre), &specs, None).unwrap();
    assert_eq!(
        p.sources
            .iter()
            .map(|s| s.file_name().unwrap().to_str().unwrap())
            .collect::<Vec<_>>(),
        ["a.png", "b.bmp", "c.npy"]
    );
    assert_eq!((p.frames.len(), p.padded, p.geometries.len()), (2, 1, 3));
    assert_eq!(p.frames[0][24..28], [9; 4]);
    assert_eq!(p.frames[1], [vec![7u8; 24], vec![7u8; 24]].concat());
    assert_eq!(p.not_fed, ["mask"]);
    assert_eq!(p.input.name, "images");
    // The artifact's batch is 2: asking for 4 is an error.
    let e = prepare_sources(std::slice::from_ref(&d), Some(&pre), &specs, Some(4)).unwrap_err();
    assert!(
        matches!(
            e,
            PrepareError::Batch {
                requested: 4,
                batch: 2,
                ..
            }
        ),
        "{e}"
    );
    // A wrong-size image is named.
    RgbImage::new(3, 3).save(d.join("d.png")).unwrap();
    let shorter = Preprocessing {
        resize_shorter_side: Some(3),
        ..pre.clone()
    };
    let e = prepare_sources(&[d.join("d.png")], Some(&shorter), &specs, None).unwrap_err();
    assert!(
        e.to_string().contains("d.png: the prepared image is 3x3"),
        "{e}"
    );
    // An unreadable image is named.
    std::fs::write(d.join("e.jpg"), b"garbage").unwrap();
    let e = prepare_sources(&[d.join("e.jpg")], Some(&pre), &specs, None).unwrap_err();
    assert!(
        matches!(e, PrepareError::Decode { .. }) && e.to_string().contains("e.jpg"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
