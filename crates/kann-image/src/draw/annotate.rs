//! Painting an [`Outcome`] on the source image: boxes with labels, text
//! quadrilaterals, the class list, or a blended segmentation mask. Results in
//! network-input pixels are brought back to the source through [`Geometry`].

use image::{Rgb, RgbImage};
use kann_io::post::{Detection, Mask, TextBox};

use super::canvas::{self, class_color, text_color_on, GLYPH};
use super::{class_name, Outcome};
use crate::Geometry;

/// How strongly a mask colour covers the photo.
const MASK_ALPHA: f32 = 0.5;
/// Outline width of boxes and text quadrilaterals.
const THICKNESS: i64 = 2;

/// Draws `outcome` on `img`, the source image that `geometry` maps the
/// network's input to:
///
/// - boxes: a 2-pixel outline in the class's colour, with a filled label
///   (class name and score) above the box, or inside it at the image's top;
/// - text boxes: their quadrilateral outlines;
/// - classes: the top-k lines at the top-left on a dark band;
/// - a mask: scaled back to the source and blended half-and-half with a colour
///   per class; class 0 is taken as background and left as it is.
///
/// Text is an 8x8 bitmap font, doubled on images at least 800 pixels wide.
pub fn annotate(img: &mut RgbImage, outcome: &Outcome, geometry: &Geometry, names: &[String]) {
    match outcome {
        Outcome::Boxes(boxes) => {
            // Worst first, so the best box's label ends on top.
            for d in boxes.iter().rev() {
                draw_box(img, d, geometry, names);
            }
        }
        Outcome::Texts(texts) => {
            for t in texts {
                draw_text_box(img, t, geometry);
            }
        }
        Outcome::Classes(_) => draw_lines(img, &outcome.lines(names)),
        Outcome::Mask(mask) => blend_mask(img, mask, geometry),
        Outcome::None => {}
    }
}

/// Text scale for an image: 2 on wide images, else 1.
fn text_scale(img: &RgbImage) -> u32 {
    if img.width() >= 800 {
        2
    } else {
        1
    }
}

/// One detection: outline and label.
fn draw_box(img: &mut RgbImage, d: &Detection, g: &Geometry, names: &[String]) {
    let (x0, y0) = g.to_source(d.x0, d.y0);
    let (x1, y1) = g.to_source(d.x1, d.y1);
    let rect = [
        x0.floor() as i64,
        y0.floor() as i64,
        x1.ceil() as i64 - 1,
        y1.ceil() as i64 - 1,
    ];
    let color = class_color(d.class);
    canvas::rect_outline(img, rect, THICKNESS, color);
    let label = format!("{} {:.2}", class_name(names, d.class), d.score);
    let scale = text_scale(img);
    let (tw, th) = canvas::text_size(&label, scale);
    let (lw, lh) = (i64::from(tw) + 4, i64::from(th) + 4);
    let top = if rect[1] >= lh {
        rect[1] - lh
    } else {
        rect[1].max(0)
    };
    let left = rect[0].max(0);
    canvas::fill_rect(img, left, top, left + lw, top + lh, color);
    canvas::text(img, left + 2, top + 2, &label, scale, text_color_on(color));
}

/// One text region: its four sides.
fn draw_text_box(img: &mut RgbImage, t: &TextBox, g: &Geometry) {
    let pts = t.points.map(|(x, y)| g.to_source(x, y));
    let color = Rgb([0, 200, 0]);
    for i in 0..4 {
        canvas::line(img, pts[i], pts[(i + 1) % 4], THICKNESS, color);
    }
}

/// Lines of text at the top-left, white on a dark band each.
fn draw_lines(img: &mut RgbImage, lines: &[String]) {
    let scale = text_scale(img);
    let step = i64::from(GLYPH * scale) + 4;
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        let (tw, _) = canvas::text_size(line, scale);
        let top = 2 + i as i64 * step;
        canvas::fill_rect(
            img,
            2,
            top,
            2 + i64::from(tw) + 4,
            top + step,
            Rgb([32, 32, 32]),
        );
        canvas::text(img, 4, top + 2, line, scale, Rgb([255, 255, 255]));
    }
}

/// Blends the mask's class colours into the source image. Source pixel
/// `(x, y)`'s centre goes to the network input by the inverse of
/// [`Geometry::to_source`], then to the mask, which may be smaller than the
/// input (an output stride); pixels outside the network's view stay as they are.
fn blend_mask(img: &mut RgbImage, mask: &Mask, g: &Geometry) {
    if mask.w == 0 || mask.h == 0 || g.net_w == 0 || g.net_h == 0 {
        return;
    }
    let (net_w, net_h) = (g.net_w as f32, g.net_h as f32);
    for y in 0..img.height() {
        let ny = (y as f32 + 0.5) * g.scale_y + g.offset_y;
        if !(0.0..net_h).contains(&ny) {
            continue;
        }
        let my = ((ny * mask.h as f32 / net_h) as usize).min(mask.h - 1);
        for x in 0..img.width() {
            let nx = (x as f32 + 0.5) * g.scale_x + g.offset_x;
            if !(0.0..net_w).contains(&nx) {
                continue;
            }
            let mx = ((nx * mask.w as f32 / net_w) as usize).min(mask.w - 1);
            let class = mask.classes[my * mask.w + mx];
            if class != 0 {
                let p = *img.get_pixel(x, y);
                img.put_pixel(
                    x,
                    y,
                    canvas::blend(p, class_color(usize::from(class)), MASK_ALPHA),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_io::post::Prediction;

    const GREY: Rgb<u8> = Rgb([128, 128, 128]);

    fn grey(w: u32, h: u32) -> RgbImage {
        RgbImage::from_pixel(w, h, GREY)
    }

    fn half() -> Geometry {
        Geometry {
            src_w: 200,
            src_h: 200,
            net_w: 100,
            net_h: 100,
            scale_x: 0.5,
            scale_y: 0.5,
            offset_x: 0.0,
            offset_y: 0.0,
        }
    }

    #[test]
    fn box_outline_label_and_geometry() {
        let mut img = grey(200, 200);
        // Network box 20..60 × 30..70 is 40..120 × 60..140 in the source.
        let d = Detection {
            class: 2,
            score: 0.9,
            x0: 20.0,
            y0: 30.0,
            x1: 60.0,
            y1: 70.0,
        };
        annotate(&mut img, &Outcome::Boxes(vec![d]), &half(), &["a".into()]);
        let color = class_color(2);
        for (x, y) in [
            (40, 100),
            (41, 100),
            (119, 100),
            (118, 100),
            (80, 139),
            (80, 138),
        ] {
            assert_eq!(*img.get_pixel(x, y), color, "outline at ({x}, {y})");
        }
        for (x, y) in [
            (42, 100),
            (80, 100),
            (117, 100),
            (39, 100),
            (120, 100),
            (80, 141),
        ] {
            assert_eq!(*img.get_pixel(x, y), GREY, "not outline at ({x}, {y})");
        }
        // The label "class 2 0.90" sits above the box: 12 glyphs + 4 wide,
        // 12 high, so over x 40..140, y 48..60, with text-coloured pixels.
        let ink = text_color_on(color);
        let label_px: Vec<Rgb<u8>> = (48..60)
            .flat_map(|y| (40..140).map(move |x| (x, y)))
            .map(|(x, y)| *img.get_pixel(x, y))
            .collect();
        assert!(label_px.iter().all(|p| *p == color || *p == ink));
        assert!(label_px.iter().filter(|p| **p == ink).count() > 30);
        assert_eq!(*img.get_pixel(40, 47), GREY);
    }

    #[test]
    fn label_moves_inside_at_the_top() {
        let mut img = grey(100, 100);
        let d = Detection {
            class: 0,
            score: 0.5,
            x0: 10.0,
            y0: 2.0,
            x1: 90.0,
            y1: 90.0,
        };
        annotate(
            &mut img,
            &Outcome::Boxes(vec![d]),
            &Geometry::identity(100, 100),
            &[],
        );
        // No room above (y0 = 2 < 12): the label fills y 2..14 inside.
        let (color, ink) = (class_color(0), text_color_on(class_color(0)));
        let row: Vec<Rgb<u8>> = (12..100).map(|x| *img.get_pixel(x, 8)).collect();
        assert!(row.iter().all(|p| *p == color || *p == ink));
        assert!(row.contains(&ink));
    }

    #[test]
    fn mask_blends_the_right_class_through_geometry() {
        let mut img = grey(200, 200);
        // A 2x2 mask over a 100x100 input: class 1 in the top-right quarter.
        let mask = Mask {
            h: 2,
            w: 2,
            classes: vec![0, 1, 0, 0],
        };
        annotate(&mut img, &Outcome::Mask(mask), &half(), &[]);
        let tinted = canvas::blend(GREY, class_color(1), MASK_ALPHA);
        assert_eq!(*img.get_pixel(150, 50), tinted);
        assert_eq!(*img.get_pixel(101, 99), tinted);
        assert_eq!(*img.get_pixel(99, 50), GREY);
        assert_eq!(*img.get_pixel(150, 101), GREY);
        assert_eq!(*img.get_pixel(20, 180), GREY);
    }

    #[test]
    fn mask_outside_the_network_view_is_untouched() {
        let mut img = grey(100, 100);
        // The network saw only x 25..75 of the source (a centre crop).
        let g = Geometry {
            src_w: 100,
            src_h: 100,
            net_w: 50,
            net_h: 100,
            scale_x: 1.0,
            scale_y: 1.0,
            offset_x: -25.0,
            offset_y: 0.0,
        };
        let mask = Mask {
            h: 1,
            w: 1,
            classes: vec![3],
        };
        annotate(&mut img, &Outcome::Mask(mask), &g, &[]);
        assert_eq!(*img.get_pixel(10, 50), GREY);
        assert_ne!(*img.get_pixel(50, 50), GREY);
        assert_eq!(*img.get_pixel(90, 50), GREY);
    }

    #[test]
    fn text_boxes_and_class_lines() {
        let mut img = grey(100, 100);
        let t = TextBox {
            points: [(10.0, 10.0), (80.0, 10.0), (80.0, 30.0), (10.0, 30.0)],
            score: 0.9,
        };
        annotate(
            &mut img,
            &Outcome::Texts(vec![t]),
            &Geometry::identity(100, 100),
            &[],
        );
        assert_eq!(*img.get_pixel(50, 10), Rgb([0, 200, 0]));
        assert_eq!(*img.get_pixel(80, 20), Rgb([0, 200, 0]));
        assert_eq!(*img.get_pixel(50, 20), GREY);

        let mut img = grey(100, 100);
        let preds = vec![Prediction {
            class: 0,
            name: Some("cat".into()),
            score: 0.5,
        }];
        annotate(
            &mut img,
            &Outcome::Classes(preds),
            &Geometry::identity(100, 100),
            &[],
        );
        let white = (2..14).flat_map(|y| (2..100).map(move |x| (x, y)));
        assert!(
            white
                .filter(|&(x, y)| *img.get_pixel(x, y) == Rgb([255, 255, 255]))
                .count()
                > 20
        );
        assert_eq!(*img.get_pixel(50, 60), GREY);
    }
}
