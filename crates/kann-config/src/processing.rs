//! `preprocessing` and `postprocessing`: kann's declarative input preparation
//! and output decoding. Parsed and validated here; applied by kann-io.

use std::fmt;
use std::path::PathBuf;

use kann_tensor::DType;

use crate::read::{Cx, Fields, Result};

/// Colour order of the prepared image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Color {
    #[default]
    Rgb,
    Bgr,
    Gray,
}

impl Color {
    /// Channels of an image in this colour order.
    pub fn channels(self) -> usize {
        match self {
            Color::Rgb | Color::Bgr => 3,
            Color::Gray => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Color::Rgb => "rgb",
            Color::Bgr => "bgr",
            Color::Gray => "gray",
        }
    }

    pub fn parse(s: &str) -> Option<Color> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rgb" => Some(Color::Rgb),
            "bgr" => Some(Color::Bgr),
            "gray" | "grey" | "grayscale" => Some(Color::Gray),
            _ => None,
        }
    }
}

/// Memory order of an image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Nchw,
    Nhwc,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        }
    }

    pub fn parse(s: &str) -> Option<Layout> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nchw" => Some(Layout::Nchw),
            "nhwc" => Some(Layout::Nhwc),
            _ => None,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an image becomes the network's input, in this order: decode, convert
/// to `color`, resize (`resize_shorter_side` keeping the aspect ratio, or
/// `resize` to exactly `[h, w]`), `center_crop` `[h, w]`, multiply by
/// `scale`, subtract `mean`, divide by `std` (per channel), lay out as
/// `layout`, convert to `dtype`.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessing {
    pub resize_shorter_side: Option<usize>,
    /// `[height, width]`.
    pub resize: Option<[usize; 2]>,
    /// `[height, width]`.
    pub center_crop: Option<[usize; 2]>,
    pub color: Color,
    pub scale: f64,
    /// Empty (no subtraction), one value for all channels, or one per channel.
    pub mean: Vec<f64>,
    /// Empty (no division), one value for all channels, or one per channel; never 0.
    pub std: Vec<f64>,
    /// `None`: the layout of the network's input.
    pub layout: Option<Layout>,
    /// `None`: the dtype of the network's input.
    pub dtype: Option<DType>,
}

impl Default for Preprocessing {
    fn default() -> Self {
        Preprocessing {
            resize_shorter_side: None,
            resize: None,
            center_crop: None,
            color: Color::Rgb,
            scale: 1.0,
            mean: Vec::new(),
            std: Vec::new(),
            layout: None,
            dtype: None,
        }
    }
}

const PRE_KEYS: &[&str] = &[
    "resize_shorter_side",
    "resize",
    "center_crop",
    "color",
    "scale",
    "mean",
    "std",
    "layout",
    "dtype",
];

fn pair(cx: &Cx, key: &str, node: &crate::yaml::Node) -> Result<[usize; 2]> {
    let items = cx.seq(key, node)?;
    if items.len() != 2 {
        return Err(cx.error(
            key,
            node.pos,
            format!("expected [height, width], found a list of {}", items.len()),
        ));
    }
    Ok([
        cx.int(&format!("{key}[0]"), &items[0], 1)?,
        cx.int(&format!("{key}[1]"), &items[1], 1)?,
    ])
}

/// A number or a list of numbers.
fn numbers(cx: &Cx, key: &str, node: &crate::yaml::Node) -> Result<Vec<f64>> {
    match &node.kind {
        crate::yaml::Kind::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| cx.number(&format!("{key}[{i}]"), n))
            .collect(),
        _ => Ok(vec![cx.number(key, node)?]),
    }
}

impl Preprocessing {
    pub(crate) fn read(cx: &mut Cx, mut f: Fields<'_>) -> Result<Preprocessing> {
        let mut p = Preprocessing::default();
        if let Some((key, node)) = f.get("resize_shorter_side") {
            p.resize_shorter_side = Some(cx.int(&key, node, 1)?);
        }
        if let Some((key, node)) = f.get("resize") {
            if p.resize_shorter_side.is_some() {
                return Err(cx.error(
                    &key,
                    node.pos,
                    "give either resize or resize_shorter_side, not both",
                ));
            }
            p.resize = Some(pair(cx, &key, node)?);
        }
        if let Some((key, node)) = f.get("center_crop") {
            let crop = pair(cx, &key, node)?;
            if let Some([h, w]) = p.resize {
                if crop[0] > h || crop[1] > w {
                    return Err(cx.error(
                        &key,
                        node.pos,
                        format!("crop {crop:?} is larger than the resized image [{h}, {w}]"),
                    ));
                }
            }
            if let Some(s) = p.resize_shorter_side {
                if crop[0].min(crop[1]) > s {
                    return Err(cx.error(
                        &key,
                        node.pos,
                        format!("crop {crop:?} does not fit in an image whose shorter side is {s}"),
                    ));
                }
            }
            p.center_crop = Some(crop);
        }
        if let Some((key, node)) = f.get("color") {
            let s = cx.string(&key, node)?;
            p.color = Color::parse(&s).ok_or_else(|| {
                cx.error(
                    &key,
                    node.pos,
                    format!("unknown color \"{s}\" (expected rgb, bgr or gray)"),
                )
            })?;
        }
        if let Some((key, node)) = f.get("scale") {
            p.scale = cx.number(&key, node)?;
            if p.scale == 0.0 {
                return Err(cx.error(&key, node.pos, "must not be 0"));
            }
        }
        let channels = p.color.channels();
        for name in ["mean", "std"] {
            let Some((key, node)) = f.get(name) else {
                continue;
            };
            let values = numbers(cx, &key, node)?;
            if values.len() != 1 && values.len() != channels {
                return Err(cx.error(
                    &key,
                    node.pos,
                    format!(
                        "expected 1 or {channels} values (color {}), found {}",
                        p.color.name(),
                        values.len()
                    ),
                ));
            }
            if name == "std" {
                if let Some(i) = values.iter().position(|v| *v == 0.0) {
                    return Err(cx.error(&format!("{key}[{i}]"), node.pos, "must not be 0"));
                }
                p.std = values;
            } else {
                p.mean = values;
            }
        }
        if let Some((key, node)) = f.get("layout") {
            let s = cx.string(&key, node)?;
            p.layout = Some(Layout::parse(&s).ok_or_else(|| {
                cx.error(
                    &key,
                    node.pos,
                    format!("unknown layout \"{s}\" (expected nchw or nhwc)"),
                )
            })?);
        }
        if let Some((key, node)) = f.get("dtype") {
            let s = cx.string(&key, node)?;
            p.dtype = Some(DType::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                cx.error(
                    &key,
                    node.pos,
                    format!("unknown dtype \"{s}\" (e.g. float32, uint8, int8)"),
                )
            })?);
        }
        f.finish(cx, PRE_KEYS);
        Ok(p)
    }
}

/// What the network's outputs are decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    Classification,
    Yolov5,
    Yolov8,
    Picodet,
    Dbnet,
    Segmentation,
    None,
}

impl PostKind {
    pub const ALL: [PostKind; 7] = [
        PostKind::Classification,
        PostKind::Yolov5,
        PostKind::Yolov8,
        PostKind::Picodet,
        PostKind::Dbnet,
        PostKind::Segmentation,
        PostKind::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PostKind::Classification => "classification",
            PostKind::Yolov5 => "yolov5",
            PostKind::Yolov8 => "yolov8",
            PostKind::Picodet => "picodet",
            PostKind::Dbnet => "dbnet",
            PostKind::Segmentation => "segmentation",
            PostKind::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<PostKind> {
        let s = s.trim().to_ascii_lowercase();
        PostKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Detectors: boxes, confidence filter, NMS.
    pub fn is_detection(self) -> bool {
        matches!(
            self,
            PostKind::Yolov5 | PostKind::Yolov8 | PostKind::Picodet
        )
    }
}

impl fmt::Display for PostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How outputs are decoded for `kann demo` and friends.
#[derive(Debug, Clone, PartialEq)]
pub struct Postprocessing {
    pub kind: PostKind,
    /// Class names, one per line (absolute path; checked to exist).
    pub classes: Option<PathBuf>,
    /// Classification: how many best classes to report (default 5).
    pub top_k: usize,
    /// Detection and text detection: minimum score kept (default 0.25), in [0, 1].
    pub conf_threshold: f64,
    /// Detection: IoU above which NMS drops a box (default 0.45), in [0, 1].
    pub iou_threshold: f64,
    /// Detection: most boxes kept per image after NMS (default 300).
    pub max_detections: usize,
}

impl Postprocessing {
    pub fn new(kind: PostKind) -> Postprocessing {
        Postprocessing {
            kind,
            classes: None,
            top_k: 5,
            conf_threshold: 0.25,
            iou_threshold: 0.45,
            max_detections: 300,
        }
    }

    pub(crate) fn read(cx: &mut Cx, mut f: Fields<'_>) -> Result<Postprocessing> {
        let (key, node) = f.require(cx, "kind")?;
        let s = cx.string(&key, node)?;
        let kind = PostKind::parse(&s).ok_or_else(|| {
            let names: Vec<&str> = PostKind::ALL.iter().map(|k| k.name()).collect();
            cx.error(
                &key,
                node.pos,
                format!("unknown kind \"{s}\" (expected {})", names.join(", ")),
            )
        })?;
        let mut p = Postprocessing::new(kind);
        if let Some((key, node)) = f.get("classes") {
            p.classes = Some(cx.existing_path(&key, node)?);
        }
        if let Some((key, node)) = f.get("top_k") {
            p.top_k = cx.int(&key, node, 1)?;
            if kind != PostKind::Classification {
                cx.warn(&key, node.pos, format!("has no effect for kind {kind}"));
            }
        }
        for name in ["conf_threshold", "iou_threshold"] {
            let Some((key, node)) = f.get(name) else {
                continue;
            };
            let v = cx.number(&key, node)?;
            if !(0.0..=1.0).contains(&v) {
                return Err(cx.error(&key, node.pos, format!("must be in [0, 1], found {v}")));
            }
            let applies =
                kind.is_detection() || (name == "conf_threshold" && kind == PostKind::Dbnet);
            if !applies {
                cx.warn(&key, node.pos, format!("has no effect for kind {kind}"));
            }
            if name == "conf_threshold" {
                p.conf_threshold = v;
            } else {
                p.iou_threshold = v;
            }
        }
        if let Some((key, node)) = f.get("max_detections") {
            p.max_detections = cx.int(&key, node, 1)?;
        }
        f.finish(
            cx,
            &[
                "kind",
                "classes",
                "top_k",
                "conf_threshold",
                "iou_threshold",
                "max_detections",
            ],
        );
        Ok(p)
    }
}
