//! DBNet text detection: from the text probability map to rotated boxes.
//!
//! The map (`[N, 1, H, W]`, already through a sigmoid, the size of the
//! network input) is binarised, optionally dilated, and split into
//! 8-connected components. Each component gets its minimum-area rotated
//! rectangle (convex hull, then rotating the rectangle along each hull edge),
//! scored by the mean probability of the pixels inside that rectangle, and
//! grown ("unclipped") on every side by `area × unclip_ratio / perimeter`.
//! Coordinates are network-input pixels with pixel `(x, y)` centred at
//! `(x, y)` (the OpenCV contour convention PaddleOCR's boxes use).

use kann_tensor::Tensor;

/// A detected text region: four corners, top-left, top-right, bottom-right,
/// bottom-left (clockwise on screen), and the mean text probability inside.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextBox {
    pub points: [(f32, f32); 4],
    pub score: f32,
}

/// DBNet decoding settings; [`Default`] gives PaddleOCR/RapidOCR's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbnetParams {
    /// A pixel is text when its probability is above this (0.3).
    pub thresh: f32,
    /// A box is kept when its mean probability is at least this (0.5).
    pub box_thresh: f32,
    /// How far boxes grow: `area × unclip_ratio / perimeter` per side (1.6).
    pub unclip_ratio: f32,
    /// Boxes whose short side is below this are dropped (3); after growing,
    /// below `min_size + 2`.
    pub min_size: f32,
    /// Dilate the text mask by a 2x2 square (each pixel also set when its
    /// left, upper or upper-left neighbour is) before finding regions (true).
    pub dilate: bool,
    /// At most this many regions are looked at, in scan order (1000).
    pub max_candidates: usize,
}

impl Default for DbnetParams {
    fn default() -> Self {
        DbnetParams {
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            min_size: 3.0,
            dilate: true,
            max_candidates: 1000,
        }
    }
}

/// Text boxes of each batch item of a DBNet probability map `[N, 1, H, W]`,
/// in the order their regions are first met scanning rows top to bottom.
pub fn decode_dbnet(map: &Tensor, params: &DbnetParams) -> Result<Vec<Vec<TextBox>>, String> {
    let [n, 1, h, w] = *map.dims() else {
        return Err(format!(
            "dbnet output has shape {:?}; expected [N, 1, H, W]",
            map.dims()
        ));
    };
    let values = map.to_f32_vec();
    let plane = h * w;
    let mut result = Vec::with_capacity(n);
    for item in 0..n {
        let prob = &values[item * plane..(item + 1) * plane];
        result.push(boxes_of_map(prob, w, h, params));
    }
    Ok(result)
}

/// The text boxes of one `w × h` probability map.
fn boxes_of_map(prob: &[f32], w: usize, h: usize, params: &DbnetParams) -> Vec<TextBox> {
    let mut mask: Vec<bool> = prob.iter().map(|&p| p > params.thresh).collect();
    if params.dilate {
        mask = dilate_2x2(&mask, w, h);
    }
    let mut boxes = Vec::new();
    for hull_points in component_outlines(&mask, w, h)
        .into_iter()
        .take(params.max_candidates)
    {
        let hull = convex_hull(hull_points);
        let rect = min_area_rect(&hull);
        if rect.short_side() < params.min_size {
            continue;
        }
        let score = mean_inside(prob, w, h, &rect.corners());
        if score < params.box_thresh {
            continue;
        }
        // A rectangle of zero perimeter (a single pixel with min_size <= 0)
        // does not grow.
        let perimeter = rect.perimeter();
        let distance = if perimeter > 0.0 {
            rect.area() * params.unclip_ratio / perimeter
        } else {
            0.0
        };
        let grown = rect.grown(distance);
        if grown.short_side() < params.min_size + 2.0 {
            continue;
        }
        let clip = |(x, y): (f32, f32)| (x.clamp(0.0, w as f32), y.clamp(0.0, h as f32));
        let points = order_corners(grown.corners()).map(clip);
        boxes.push(TextBox { points, score });
    }
    boxes
}

/// A 2x2 dilation with the anchor at the bottom-right cell: a pixel is set
/// when it or its left, upper or upper-left neighbour is.
fn dilate_2x2(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = mask.to_vec();
    for y in 0..h {
        for x in 0..w {
            let at = |dx: usize, dy: usize| x >= dx && y >= dy && mask[(y - dy) * w + x - dx];
            out[y * w + x] = at(0, 0) || at(1, 0) || at(0, 1) || at(1, 1);
        }
    }
    out
}

/// For each 8-connected component of `mask`, in scan order, the leftmost and
/// rightmost pixel of each of its rows (enough to find its convex hull).
fn component_outlines(mask: &[bool], w: usize, h: usize) -> Vec<Vec<(f32, f32)>> {
    let mut label = vec![usize::MAX; mask.len()];
    let mut outlines = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] != usize::MAX {
            continue;
        }
        let id = outlines.len();
        // Per row touched: (min x, max x).
        let mut rows: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
        label[start] = id;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (x, y) = (p % w, p / w);
            let e = rows.entry(y).or_insert((x, x));
            e.0 = e.0.min(x);
            e.1 = e.1.max(x);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let q = ny * w + nx;
                    if mask[q] && label[q] == usize::MAX {
                        label[q] = id;
                        stack.push(q);
                    }
                }
            }
        }
        let mut points = Vec::with_capacity(rows.len() * 2);
        for (y, (x0, x1)) in rows {
            points.push((x0 as f32, y as f32));
            points.push((x1 as f32, y as f32));
        }
        outlines.push(points);
    }
    outlines
}

/// Convex hull by Andrew's monotone chain, counter-clockwise in a y-up frame,
/// without collinear points; fewer than 3 distinct points come back as they are.
fn convex_hull(mut points: Vec<(f32, f32)>) -> Vec<(f32, f32)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    points.dedup();
    if points.len() < 3 {
        return points;
    }
    let cross = |o: (f32, f32), a: (f32, f32), b: (f32, f32)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<(f32, f32)> = Vec::with_capacity(points.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &(f32, f32)>> = if pass == 0 {
            Box::new(points.iter())
        } else {
            Box::new(points.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// A rectangle given by its centre, unit axis `(ux, uy)` and the side
/// lengths along that axis (`len_u`) and its normal (`len_v`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    cx: f32,
    cy: f32,
    ux: f32,
    uy: f32,
    len_u: f32,
    len_v: f32,
}

impl Rect {
    fn area(&self) -> f32 {
        self.len_u * self.len_v
    }

    fn perimeter(&self) -> f32 {
        2.0 * (self.len_u + self.len_v)
    }

    fn short_side(&self) -> f32 {
        self.len_u.min(self.len_v)
    }

    /// The same rectangle with every side moved out by `d`.
    fn grown(&self, d: f32) -> Rect {
        Rect {
            len_u: self.len_u + 2.0 * d,
            len_v: self.len_v + 2.0 * d,
            ..*self
        }
    }

    fn corners(&self) -> [(f32, f32); 4] {
        let (hu, hv) = (self.len_u / 2.0, self.len_v / 2.0);
        let (vx, vy) = (-self.uy, self.ux);
        let at = |a: f32, b: f32| {
            (
                self.cx + a * self.ux + b * vx,
                self.cy + a * self.uy + b * vy,
            )
        };
        [at(-hu, -hv), at(hu, -hv), at(hu, hv), at(-hu, hv)]
    }
}

/// The minimum-area rectangle around a convex hull: one of its sides lies on
/// a hull edge, so each edge direction is tried. A hull of one or two points
/// gives a rectangle of zero width.
fn min_area_rect(hull: &[(f32, f32)]) -> Rect {
    let Some(&first) = hull.first() else {
        return Rect {
            cx: 0.0,
            cy: 0.0,
            ux: 1.0,
            uy: 0.0,
            len_u: 0.0,
            len_v: 0.0,
        };
    };
    let mut best: Option<Rect> = None;
    for i in 0..hull.len().max(1) {
        let a = hull[i];
        let b = hull[(i + 1) % hull.len()];
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt();
        let (ux, uy) = if len > 0.0 {
            (dx / len, dy / len)
        } else {
            (1.0, 0.0)
        };
        let rect = bounding_rect_along(hull, first, ux, uy);
        if best.is_none_or(|r| rect.area() < r.area()) {
            best = Some(rect);
        }
    }
    best.unwrap_or(Rect {
        cx: first.0,
        cy: first.1,
        ux: 1.0,
        uy: 0.0,
        len_u: 0.0,
        len_v: 0.0,
    })
}

/// The smallest rectangle with axis `(ux, uy)` holding every point.
fn bounding_rect_along(points: &[(f32, f32)], origin: (f32, f32), ux: f32, uy: f32) -> Rect {
    let (vx, vy) = (-uy, ux);
    let (mut u0, mut u1, mut v0, mut v1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for &(x, y) in points {
        let (rx, ry) = (x - origin.0, y - origin.1);
        let (u, v) = (rx * ux + ry * uy, rx * vx + ry * vy);
        u0 = u0.min(u);
        u1 = u1.max(u);
        v0 = v0.min(v);
        v1 = v1.max(v);
    }
    let (mu, mv) = ((u0 + u1) / 2.0, (v0 + v1) / 2.0);
    Rect {
        cx: origin.0 + mu * ux + mv * vx,
        cy: origin.1 + mu * uy + mv * vy,
        ux,
        uy,
        len_u: u1 - u0,
        len_v: v1 - v0,
    }
}

/// Mean of `prob` over the pixels whose centre lies inside (or on) the convex
/// quadrilateral `quad`; 0 when no pixel does.
fn mean_inside(prob: &[f32], w: usize, h: usize, quad: &[(f32, f32); 4]) -> f32 {
    let lo = |f: fn(&(f32, f32)) -> f32| quad.iter().map(f).fold(f32::MAX, f32::min);
    let hi = |f: fn(&(f32, f32)) -> f32| quad.iter().map(f).fold(f32::MIN, f32::max);
    let clamp_to = |v: f32, n: usize| (v.max(0.0) as usize).min(n.saturating_sub(1));
    let (x0, x1) = (
        clamp_to(lo(|p| p.0).floor(), w),
        clamp_to(hi(|p| p.0).ceil(), w),
    );
    let (y0, y1) = (
        clamp_to(lo(|p| p.1).floor(), h),
        clamp_to(hi(|p| p.1).ceil(), h),
    );
    let (mut sum, mut count) = (0.0f64, 0usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if inside_convex(quad, (x as f32, y as f32)) {
                sum += f64::from(prob[y * w + x]);
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        (sum / count as f64) as f32
    }
}

/// Whether `p` is inside or on the convex polygon `poly` (either winding),
/// with a small tolerance for points on an edge.
fn inside_convex(poly: &[(f32, f32)], p: (f32, f32)) -> bool {
    let (mut pos, mut neg) = (false, false);
    for i in 0..poly.len() {
        let a = poly[i];
        let b = poly[(i + 1) % poly.len()];
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt().max(1e-6);
        let side = ((b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0)) / len;
        pos |= side > 1e-3;
        neg |= side < -1e-3;
    }
    !(pos && neg)
}

/// Orders four corners top-left, top-right, bottom-right, bottom-left: the two
/// with the smaller x are the left ones, and of each pair the smaller y is on top.
fn order_corners(mut c: [(f32, f32); 4]) -> [(f32, f32); 4] {
    c.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let (tl, bl) = if c[0].1 <= c[1].1 {
        (c[0], c[1])
    } else {
        (c[1], c[0])
    };
    let (tr, br) = if c[2].1 <= c[3].1 {
        (c[2], c[3])
    } else {
        (c[3], c[2])
    };
    [tl, tr, br, bl]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::Shape;

    /// A `w × h` map with value `v` over `x0..x1 × y0..y1` of each block.
    fn map(w: usize, h: usize, blocks: &[(usize, usize, usize, usize, f32)]) -> Tensor {
        let mut m = vec![0.0f32; w * h];
        for &(x0, y0, x1, y1, v) in blocks {
            for y in y0..y1 {
                for x in x0..x1 {
                    m[y * w + x] = v;
                }
            }
        }
        Tensor::from_f32(Shape::from([1, 1, h, w]), m).unwrap()
    }

    fn no_dilate() -> DbnetParams {
        DbnetParams {
            dilate: false,
            ..DbnetParams::default()
        }
    }

    fn assert_near(got: (f32, f32), want: (f32, f32)) {
        assert!(
            (got.0 - want.0).abs() < 1e-3 && (got.1 - want.1).abs() < 1e-3,
            "{got:?} vs {want:?}"
        );
    }

    #[test]
    fn two_blobs_give_two_boxes() {
        // Blob A: columns 5..=24, rows 5..=10 (pixel-centre rectangle 19 × 5),
        // at 0.9. Blob B: columns 5..=14, rows 20..=29 (9 × 9) at 0.6.
        let t = map(40, 40, &[(5, 5, 25, 11, 0.9), (5, 20, 15, 30, 0.6)]);
        let out = decode_dbnet(&t, &no_dilate()).unwrap();
        assert_eq!(out.len(), 1);
        let boxes = &out[0];
        assert_eq!(boxes.len(), 2);
        // A: d = 95 × 1.6 / 48 = 3.1667.
        let d = 95.0 * 1.6 / 48.0;
        assert!((boxes[0].score - 0.9).abs() < 1e-6);
        assert_near(boxes[0].points[0], (5.0 - d, 5.0 - d));
        assert_near(boxes[0].points[2], (24.0 + d, 10.0 + d));
        // B: d = 81 × 1.6 / 36 = 3.6.
        assert!((boxes[1].score - 0.6).abs() < 1e-6);
        assert_near(boxes[1].points[1], (14.0 + 3.6, 20.0 - 3.6));
        assert_near(boxes[1].points[3], (5.0 - 3.6, 29.0 + 3.6));
    }

    #[test]
    fn thresholds_and_small_regions() {
        let t = map(
            40,
            40,
            &[
                (2, 2, 22, 8, 0.9),
                (5, 20, 15, 30, 0.6),
                (30, 30, 32, 40, 0.9),
            ],
        );
        // The 2-pixel-wide strip (short side 1) is dropped by min_size.
        assert_eq!(decode_dbnet(&t, &no_dilate()).unwrap()[0].len(), 2);
        // box_thresh 0.7 drops the 0.6 blob.
        let strict = DbnetParams {
            box_thresh: 0.7,
            ..no_dilate()
        };
        assert_eq!(decode_dbnet(&t, &strict).unwrap()[0].len(), 1);
        // thresh 0.7 leaves the 0.6 blob out of the mask altogether.
        let high = DbnetParams {
            thresh: 0.7,
            box_thresh: 0.0,
            ..no_dilate()
        };
        assert_eq!(decode_dbnet(&t, &high).unwrap()[0].len(), 1);
    }

    #[test]
    fn diagonal_pixels_join_and_dilation_grows() {
        // Two squares touching only at a corner are one region (8-connectivity).
        let t = map(30, 30, &[(2, 2, 8, 8, 0.9), (8, 8, 14, 14, 0.9)]);
        assert_eq!(decode_dbnet(&t, &no_dilate()).unwrap()[0].len(), 1);
        // Dilation adds a column on the right and a row below.
        let t = map(30, 30, &[(2, 2, 12, 8, 0.9)]);
        let plain = decode_dbnet(
            &t,
            &DbnetParams {
                unclip_ratio: 0.0,
                ..no_dilate()
            },
        )
        .unwrap();
        assert_near(plain[0][0].points[2], (11.0, 7.0));
        let dilated = DbnetParams {
            unclip_ratio: 0.0,
            box_thresh: 0.0,
            ..DbnetParams::default()
        };
        let grown = decode_dbnet(&t, &dilated).unwrap();
        assert_near(grown[0][0].points[2], (12.0, 8.0));
    }

    #[test]
    fn rotated_region_gets_a_rotated_box() {
        // A diagonal band: rows 5..=24, row i covering columns i..=i + 7.
        let mut blocks = Vec::new();
        for i in 0..20 {
            blocks.push((5 + i, 5 + i, 13 + i, 6 + i, 0.9));
        }
        let t = map(40, 40, &blocks);
        // Without growing, the 4.95 short side needs min_size + 2 below it.
        let params = DbnetParams {
            unclip_ratio: 0.0,
            min_size: 2.0,
            ..no_dilate()
        };
        let out = decode_dbnet(&t, &params).unwrap();
        assert_eq!(out[0].len(), 1);
        let p = out[0][0].points;
        let side =
            |a: (f32, f32), b: (f32, f32)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
        let (s1, s2) = (side(p[0], p[1]), side(p[1], p[2]));
        // The parallelogram (5,5) (12,5) (31,24) (24,24) fits best along the
        // diagonal: 45/√2 ≈ 31.82 long, 7/√2 ≈ 4.95 thick (its axis-aligned
        // box, 26 × 19, is three times larger).
        assert!((s1.max(s2) - 45.0 / 2f32.sqrt()).abs() < 1e-3, "{s1} {s2}");
        assert!((s1.min(s2) - 7.0 / 2f32.sqrt()).abs() < 1e-3, "{s1} {s2}");
    }

    #[test]
    fn single_pixel_with_no_minimum_is_finite() {
        let t = map(5, 5, &[(2, 2, 3, 3, 0.9)]);
        let params = DbnetParams {
            min_size: -2.0,
            ..no_dilate()
        };
        let out = decode_dbnet(&t, &params).unwrap();
        assert_eq!(out[0].len(), 1);
        assert!(out[0][0].points.iter().all(|&(x, y)| (x, y) == (2.0, 2.0)));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let t = Tensor::from_f32(Shape::from([1, 2, 4, 4]), vec![0.0; 32]).unwrap();
        assert!(decode_dbnet(&t, &DbnetParams::default())
            .unwrap_err()
            .contains("[N, 1, H, W]"));
        let t = Tensor::from_f32(Shape::from([16]), vec![0.0; 16]).unwrap();
        assert!(decode_dbnet(&t, &DbnetParams::default()).is_err());
        let empty = Tensor::from_f32(Shape::from([1, 1, 0, 0]), vec![]).unwrap();
        assert_eq!(
            decode_dbnet(&empty, &DbnetParams::default()).unwrap(),
            vec![vec![]]
        );
    }

    #[test]
    fn hull_and_corner_order() {
        let hull = convex_hull(vec![
            (0.0, 0.0),
            (2.0, 0.0),
            (1.0, 1.0),
            (2.0, 2.0),
            (0.0, 2.0),
            (1.0, 0.0),
        ]);
        assert_eq!(hull.len(), 4);
        let ordered = order_corners([(2.0, 2.0), (0.0, 0.0), (0.0, 2.0), (2.0, 0.0)]);
        assert_eq!(ordered, [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]);
    }
}
