//! Drawing primitives on an [`RgbImage`]: clipped rectangles, thick lines,
//! 8x8 bitmap text (glyphs from the public-domain `font8x8` tables) and a
//! colour per class.

use image::{Rgb, RgbImage};

/// Distinct colours, one per class index (wrapping around).
const PALETTE: [[u8; 3]; 12] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 190],
    [0, 128, 128],
    [170, 110, 40],
    [255, 225, 25],
];

/// Width and height of one glyph at scale 1.
pub const GLYPH: u32 = 8;

/// The colour of class `class`.
pub fn class_color(class: usize) -> Rgb<u8> {
    Rgb(PALETTE[class % PALETTE.len()])
}

/// Black or white, whichever reads better on `background`.
pub fn text_color_on(background: Rgb<u8>) -> Rgb<u8> {
    let [r, g, b] = background.0.map(u32::from);
    if 299 * r + 587 * g + 114 * b > 128_000 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    }
}

/// Sets pixel `(x, y)` when it lies inside the image.
pub fn put(img: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && x < i64::from(img.width()) && y < i64::from(img.height()) {
        img.put_pixel(x as u32, y as u32, color);
    }
}

/// Fills the pixels `x0..x1 × y0..y1` (clipped to the image).
pub fn fill_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, color: Rgb<u8>) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    for y in y0.max(0)..y1.min(h) {
        for x in x0.max(0)..x1.min(w) {
            img.put_pixel(x as u32, y as u32, color);
        }
    }
}

/// The outline of the box with corners `(x0, y0)` and `(x1, y1)` (inclusive
/// pixels), `thickness` pixels wide, drawn inward from the corners.
pub fn rect_outline(
    img: &mut RgbImage,
    [x0, y0, x1, y1]: [i64; 4],
    thickness: i64,
    color: Rgb<u8>,
) {
    let t = thickness.max(1);
    fill_rect(img, x0, y0, x1 + 1, y0 + t, color);
    fill_rect(img, x0, y1 - t + 1, x1 + 1, y1 + 1, color);
    fill_rect(img, x0, y0, x0 + t, y1 + 1, color);
    fill_rect(img, x1 - t + 1, y0, x1 + 1, y1 + 1, color);
}

/// A line from `a` to `b`, `thickness` pixels wide (a square brush).
pub fn line(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), thickness: i64, color: Rgb<u8>) {
    let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil().max(1.0) as i64;
    let t = thickness.max(1);
    for i in 0..=steps {
        let f = i as f32 / steps as f32;
        let x = (a.0 + (b.0 - a.0) * f).round() as i64 - (t - 1) / 2;
        let y = (a.1 + (b.1 - a.1) * f).round() as i64 - (t - 1) / 2;
        fill_rect(img, x, y, x + t, y + t, color);
    }
}

/// The size in pixels of `text` drawn at `scale`.
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    (text.chars().count() as u32 * GLYPH * scale, GLYPH * scale)
}

/// Draws `text` with its top-left corner at `(x, y)`, each glyph pixel a
/// `scale × scale` square; characters outside ASCII are drawn as `?`.
pub fn text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, color: Rgb<u8>) {
    let s = i64::from(scale.max(1));
    for (i, ch) in text.chars().enumerate() {
        let code = if ch.is_ascii() {
            ch as usize
        } else {
            '?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        let gx = x + i as i64 * 8 * s;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                // Bit 0 is the leftmost pixel of the row.
                if bits & (1 << col) != 0 {
                    let px = gx + col * s;
                    let py = y + row as i64 * s;
                    fill_rect(img, px, py, px + s, py + s, color);
                }
            }
        }
    }
}

/// Mixes `over` into `under` with weight `alpha` in `[0, 1]`.
pub fn blend(under: Rgb<u8>, over: Rgb<u8>, alpha: f32) -> Rgb<u8> {
    let mix = |u: u8, o: u8| (f32::from(u) * (1.0 - alpha) + f32::from(o) * alpha).round() as u8;
    Rgb([
        mix(under[0], over[0]),
        mix(under[1], over[1]),
        mix(under[2], over[2]),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
    const RED: Rgb<u8> = Rgb([255, 0, 0]);

    #[test]
    fn outline_is_two_pixels_and_leaves_the_inside() {
        let mut img = RgbImage::new(20, 20);
        rect_outline(&mut img, [2, 3, 12, 15], 2, RED);
        for (x, y) in [
            (2, 3),
            (3, 4),
            (12, 15),
            (11, 14),
            (7, 3),
            (7, 4),
            (2, 9),
            (12, 9),
        ] {
            assert_eq!(*img.get_pixel(x, y), RED, "({x}, {y})");
        }
        for (x, y) in [(4, 5), (7, 9), (10, 13), (1, 3), (13, 15), (7, 16)] {
            assert_eq!(*img.get_pixel(x, y), BLACK, "({x}, {y})");
        }
        // Off-image parts are clipped, not a panic.
        rect_outline(&mut img, [-5, -5, 30, 30], 2, RED);
    }

    #[test]
    fn text_sets_pixels_within_its_box_only() {
        let mut img = RgbImage::new(40, 20);
        text(&mut img, 4, 2, "Ab", 2, RED);
        let (w, h) = text_size("Ab", 2);
        assert_eq!((w, h), (32, 16));
        let mut inside = 0;
        for (x, y, p) in img.enumerate_pixels() {
            if *p == RED {
                assert!((4..36).contains(&x) && (2..18).contains(&y), "({x}, {y})");
                inside += 1;
            }
        }
        assert!(inside > 20, "{inside}");
        // A space draws nothing; a non-ASCII letter draws a '?'.
        let mut img = RgbImage::new(8, 8);
        text(&mut img, 0, 0, " ", 1, RED);
        assert!(img.pixels().all(|p| *p == BLACK));
        text(&mut img, 0, 0, "é", 1, RED);
        assert!(img.pixels().any(|p| *p == RED));
    }

    #[test]
    fn line_blend_and_colors() {
        let mut img = RgbImage::new(10, 10);
        line(&mut img, (0.0, 0.0), (9.0, 9.0), 1, RED);
        assert!((0..10).all(|i| *img.get_pixel(i, i) == RED));
        assert_eq!(*img.get_pixel(0, 9), BLACK);
        assert_eq!(blend(BLACK, Rgb([200, 100, 0]), 0.5), Rgb([100, 50, 0]));
        assert_ne!(class_color(0), class_color(1));
        assert_eq!(class_color(0), class_color(PALETTE.len()));
        assert_eq!(text_color_on(Rgb([255, 255, 0])), BLACK);
        assert_eq!(text_color_on(Rgb([0, 0, 128])), Rgb([255, 255, 255]));
    }
}
