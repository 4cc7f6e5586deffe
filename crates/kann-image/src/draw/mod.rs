//! Drawing results on images (see the crate doc): [`postprocess`] turns a
//! network's outputs into an [`Outcome`] following the configuration's
//! `postprocessing` block, [`Outcome::lines`] says it in words for `kann
//! demo`, and [`annotate`] paints it on the source photo through the
//! [`Geometry`] that prepared the input.

mod annotate;
pub mod canvas;
mod postprocess;

pub use annotate::annotate;
pub use postprocess::postprocess;

use kann_io::post::{Detection, Mask, Prediction, TextBox};

use crate::Geometry;

/// What a network found in one image (the first item of the batch).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Classification: the best classes, best first.
    Classes(Vec<Prediction>),
    /// Detection: boxes in network-input pixels, best first.
    Boxes(Vec<Detection>),
    /// Text detection: quadrilaterals in network-input pixels.
    Texts(Vec<TextBox>),
    /// Segmentation: a class per pixel of the output map.
    Mask(Mask),
    /// No post-processing configured.
    None,
}

/// The name of class `class`: `names[class]`, or `class N` past the list.
pub fn class_name(names: &[String], class: usize) -> String {
    match names.get(class) {
        Some(name) if !name.is_empty() => name.clone(),
        _ => format!("class {class}"),
    }
}

impl Outcome {
    /// The same outcome with box and text corners moved from network-input
    /// pixels to source-image pixels through `g` (classes and masks are
    /// unchanged).
    pub fn to_source(&self, g: &Geometry) -> Outcome {
        match self {
            Outcome::Boxes(boxes) => Outcome::Boxes(
                boxes
                    .iter()
                    .map(|d| {
                        let (x0, y0) = g.to_source(d.x0, d.y0);
                        let (x1, y1) = g.to_source(d.x1, d.y1);
                        Detection {
                            x0,
                            y0,
                            x1,
                            y1,
                            ..*d
                        }
                    })
                    .collect(),
            ),
            Outcome::Texts(texts) => Outcome::Texts(
                texts
                    .iter()
                    .map(|t| TextBox {
                        points: t.points.map(|(x, y)| g.to_source(x, y)),
                        ..*t
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Human-readable result lines for `kann demo`, e.g.
    /// `  1. tabby, tabby cat  87.31%` or
    /// `  box person 0.91 at [12, 40, 200, 310]` (coordinates as held: call
    /// [`Outcome::to_source`] first for source-image pixels).
    pub fn lines(&self, names: &[String]) -> Vec<String> {
        match self {
            Outcome::Classes(preds) => preds
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let name = p.name.clone().unwrap_or_else(|| class_name(names, p.class));
                    format!("  {}. {}  {:.2}%", i + 1, name, p.score * 100.0)
                })
                .collect(),
            Outcome::Boxes(boxes) if boxes.is_empty() => vec!["  no boxes found".to_string()],
            Outcome::Boxes(boxes) => boxes
                .iter()
                .map(|d| {
                    format!(
                        "  box {} {:.2} at [{:.0}, {:.0}, {:.0}, {:.0}]",
                        class_name(names, d.class),
                        d.score,
                        d.x0,
                        d.y0,
                        d.x1,
                        d.y1
                    )
                })
                .collect(),
            Outcome::Texts(texts) if texts.is_empty() => vec!["  no text found".to_string()],
            Outcome::Texts(texts) => texts
                .iter()
                .map(|t| {
                    let pts: Vec<String> = t
                        .points
                        .iter()
                        .map(|(x, y)| format!("({x:.0}, {y:.0})"))
                        .collect();
                    format!("  text {:.2} at {}", t.score, pts.join(" "))
                })
                .collect(),
            Outcome::Mask(mask) => mask_lines(mask, names),
            Outcome::None => Vec::new(),
        }
    }
}

/// One line per class present in the mask, largest area first.
fn mask_lines(mask: &Mask, names: &[String]) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<u16, usize> = Default::default();
    for &c in &mask.classes {
        *counts.entry(c).or_default() += 1;
    }
    let total = mask.classes.len().max(1) as f64;
    let mut by_area: Vec<(u16, usize)> = counts.into_iter().collect();
    by_area.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut lines = vec![format!("  mask {}x{}", mask.w, mask.h)];
    for (class, count) in by_area {
        let share = count as f64 * 100.0 / total;
        lines.push(format!(
            "  {}  {share:.1}%",
            class_name(names, usize::from(class))
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["cat".to_string(), "dog".to_string()]
    }

    #[test]
    fn lines_for_each_kind() {
        let classes = Outcome::Classes(vec![
            Prediction {
                class: 0,
                name: Some("tabby, tabby cat".into()),
                score: 0.873_1,
            },
            Prediction {
                class: 1,
                name: None,
                score: 0.1,
            },
        ]);
        assert_eq!(
            classes.lines(&names()),
            vec!["  1. tabby, tabby cat  87.31%", "  2. dog  10.00%"]
        );
        let boxes = Outcome::Boxes(vec![Detection {
            class: 3,
            score: 0.912,
            x0: 1.2,
            y0: 2.0,
            x1: 30.6,
            y1: 40.0,
        }]);
        assert_eq!(
            boxes.lines(&names()),
            vec!["  box class 3 0.91 at [1, 2, 31, 40]"]
        );
        let texts = Outcome::Texts(vec![TextBox {
            points: [(0.0, 0.0), (4.0, 0.0), (4.0, 2.0), (0.0, 2.0)],
            score: 0.8,
        }]);
        assert_eq!(
            texts.lines(&[]),
            vec!["  text 0.80 at (0, 0) (4, 0) (4, 2) (0, 2)"]
        );
        let mask = Outcome::Mask(Mask {
            h: 1,
            w: 4,
            classes: vec![1, 1, 1, 0],
        });
        assert_eq!(
            mask.lines(&names()),
            vec!["  mask 4x1", "  dog  75.0%", "  cat  25.0%"]
        );
        assert!(Outcome::None.lines(&names()).is_empty());
        assert_eq!(Outcome::Boxes(vec![]).lines(&[]), vec!["  no boxes found"]);
    }

    #[test]
    fn to_source_maps_boxes_and_texts() {
        let g = Geometry {
            src_w: 200,
            src_h: 100,
            net_w: 100,
            net_h: 50,
            scale_x: 0.5,
            scale_y: 0.5,
            offset_x: 0.0,
            offset_y: 0.0,
        };
        let d = Detection {
            class: 0,
            score: 0.5,
            x0: 10.0,
            y0: 5.0,
            x1: 20.0,
            y1: 25.0,
        };
        let Outcome::Boxes(b) = Outcome::Boxes(vec![d]).to_source(&g) else {
            panic!()
        };
        assert_eq!(
            [b[0].x0, b[0].y0, b[0].x1, b[0].y1],
            [20.0, 10.0, 40.0, 50.0]
        );
        let t = TextBox {
            points: [(1.0, 1.0); 4],
            score: 0.5,
        };
        let Outcome::Texts(t) = Outcome::Texts(vec![t]).to_source(&g) else {
            panic!()
        };
        assert_eq!(t[0].points[0], (2.0, 2.0));
    }
}
