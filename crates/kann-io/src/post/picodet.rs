//! PicoDet (PP-PicoDet, PaddleDetection exported without NMS) output decoding.
//!
//! The exported head gives, for each FPN level `l` with stride `8 · 2^l`, a
//! score tensor `[N, A_l, C]` (already through a sigmoid) and a box
//! distribution tensor `[N, A_l, 4 · (R + 1)]`. The level's anchors form a
//! grid of `ceil(H / stride)` rows by `ceil(W / stride)` columns over the
//! network input `H × W`, row-major; anchor `(row, col)` is centred at
//! `((col + 0.5) · stride, (row + 0.5) · stride)`. Each box side (left, top,
//! right, bottom, in that order) is a softmax over `R + 1` bins whose expected
//! bin index, times the stride, is the distance from the centre to that side.
//! Boxes stay in network-input pixels, clipped to the input after NMS.

use kann_tensor::Tensor;

use super::nms::{nms, Detection};

/// The stride of FPN level `level`: 8, 16, 32, 64, ...
pub fn picodet_stride(level: usize) -> usize {
    8 << level
}

/// How many anchors level `level` has for a network input of `[h, w]`
/// pixels: `ceil(h / stride) · ceil(w / stride)`.
pub fn picodet_anchor_count(input_hw: [usize; 2], level: usize) -> usize {
    let s = picodet_stride(level);
    input_hw[0].div_ceil(s) * input_hw[1].div_ceil(s)
}

/// Pairs a PicoDet model's outputs with its levels.
///
/// There are two outputs per level, all `[N, A, _]`: `outputs.len() / 2`
/// levels with strides 8, 16, 32, .... First the outputs are split into score
/// tensors and box distributions by their last axis: when it takes two values,
/// the one that is a multiple of 4 (and at least 8) while the other is not is
/// the distributions; if both or neither are, the group of the first-listed
/// output is the scores. When all share one last axis (`C = 4 · (reg_max +
/// 1)`), the first half are the scores and the second half the distributions
/// (PaddleDetection lists all score heads before all box heads). Then, within
/// each group, level `l` takes the first unused tensor with `A_l` anchors
/// ([`picodet_anchor_count`] of `input_hw = [h, w]`). Returns `(scores,
/// distributions)`, one entry per level. `names[i]` names `outputs[i]` in
/// error messages.
pub fn match_picodet_outputs<'a>(
    names: &[&str],
    outputs: &[&'a Tensor],
    input_hw: [usize; 2],
) -> Result<(Vec<&'a Tensor>, Vec<&'a Tensor>), String> {
    if outputs.is_empty() || outputs.len() % 2 != 0 {
        return Err(format!(
            "picodet expects an even, non-zero number of outputs (a score and a box tensor per level); got {}",
            outputs.len()
        ));
    }
    let name = |i: usize| names.get(i).copied().unwrap_or("?");
    for (i, t) in outputs.iter().enumerate() {
        if t.dims().len() != 3 {
            return Err(format!(
                "picodet output '{}' has shape {:?}; expected [N, A, C] or [N, A, 4 * (reg_max + 1)]",
                name(i),
                t.dims()
            ));
        }
    }
    let (score_ids, dist_ids) = split_heads(outputs)?;
    let levels = outputs.len() / 2;
    let scores = assign_levels(&score_ids, outputs, input_hw, levels, "score")?;
    let dists = assign_levels(&dist_ids, outputs, input_hw, levels, "box distribution")?;
    Ok((scores, dists))
}

/// Splits output indices into score heads and box-distribution heads (see
/// [`match_picodet_outputs`]).
fn split_heads(outputs: &[&Tensor]) -> Result<(Vec<usize>, Vec<usize>), String> {
    let last = |i: usize| outputs[i].dims()[2];
    let half = outputs.len() / 2;
    let first_last = last(0);
    let (same, other): (Vec<usize>, Vec<usize>) =
        (0..outputs.len()).partition(|&i| last(i) == first_last);
    if other.is_empty() {
        return Ok(((0..half).collect(), (half..outputs.len()).collect()));
    }
    let other_last = last(other[0]);
    if same.len() != half || other.iter().any(|&i| last(i) != other_last) {
        let lasts: Vec<usize> = (0..outputs.len()).map(last).collect();
        return Err(format!(
            "picodet outputs' last axes {lasts:?} do not split into {half} score and {half} box tensors"
        ));
    }
    let is_dist = |k: usize| k >= 8 && k % 4 == 0;
    if is_dist(first_last) && !is_dist(other_last) {
        Ok((other, same))
    } else {
        Ok((same, other))
    }
}

/// Orders the tensors `ids` by level: level `l` takes the first unused one
/// with `A_l` anchors.
fn assign_levels<'a>(
    ids: &[usize],
    outputs: &[&'a Tensor],
    input_hw: [usize; 2],
    levels: usize,
    what: &str,
) -> Result<Vec<&'a Tensor>, String> {
    let mut used = vec![false; ids.len()];
    let mut ordered = Vec::with_capacity(levels);
    for level in 0..levels {
        let anchors = picodet_anchor_count(input_hw, level);
        let Some(k) = (0..ids.len()).find(|&k| !used[k] && outputs[ids[k]].dims()[1] == anchors)
        else {
            return Err(format!(
                "picodet level {level} (stride {}) needs a {what} output with {anchors} anchors for a {}x{} input; none left",
                picodet_stride(level),
                input_hw[0],
                input_hw[1]
            ));
        };
        used[k] = true;
        ordered.push(outputs[ids[k]]);
    }
    Ok(ordered)
}

/// Decodes PicoDet outputs, one `scores[l]` / `distributions[l]` pair per
/// level (see the module doc), for a network input of `input_hw = [h, w]`.
///
/// Every (anchor, class) whose score is at least `conf_threshold` becomes a
/// detection (an anchor may give several classes); each batch item's
/// detections then go through per-class [`nms`] with `iou_threshold`, are
/// cut to the `max_detections` best, and are clipped to the input (after NMS,
/// as PaddleDetection does: a box reaching past the border competes in NMS
/// with its full size).
pub fn decode_picodet(
    scores: &[&Tensor],
    distributions: &[&Tensor],
    input_hw: [usize; 2],
    conf_threshold: f32,
    iou_threshold: f32,
    max_detections: usize,
) -> Result<Vec<Vec<Detection>>, String> {
    let levels = check_levels(scores, distributions, input_hw)?;
    let n = levels.first().map_or(0, |l| l.n);
    let mut result = Vec::with_capacity(n);
    for item in 0..n {
        let mut found = Vec::new();
        for level in &levels {
            level.decode_item(item, conf_threshold, &mut found);
        }
        let mut kept = nms(found, iou_threshold);
        kept.truncate(max_detections);
        result.push(kept.into_iter().map(|d| clip(d, input_hw)).collect());
    }
    Ok(result)
}

/// One level's data, checked.
struct Level {
    n: usize,
    stride: usize,
    grid_w: usize,
    anchors: usize,
    classes: usize,
    bins: usize,
    scores: Vec<f32>,
    dists: Vec<f32>,
}

/// Checks the shapes of all levels against each other and the input size.
fn check_levels(
    scores: &[&Tensor],
    distributions: &[&Tensor],
    input_hw: [usize; 2],
) -> Result<Vec<Level>, String> {
    if scores.is_empty() || scores.len() != distributions.len() {
        return Err(format!(
            "picodet needs one score and one box tensor per level; got {} and {}",
            scores.len(),
            distributions.len()
        ));
    }
    let mut levels: Vec<Level> = Vec::with_capacity(scores.len());
    for (l, (s, d)) in scores.iter().zip(distributions).enumerate() {
        let stride = picodet_stride(l);
        let anchors = picodet_anchor_count(input_hw, l);
        let [n, a, classes] = *s.dims() else {
            return Err(format!(
                "picodet level {l} scores have shape {:?}; expected [N, {anchors}, C]",
                s.dims()
            ));
        };
        if a != anchors || classes == 0 {
            return Err(format!(
                "picodet level {l} scores have shape {:?}; expected [N, {anchors}, C] with C > 0 (stride {stride} over a {}x{} input)",
                s.dims(),
                input_hw[0],
                input_hw[1]
            ));
        }
        let d_ok =
            matches!(*d.dims(), [dn, da, k] if dn == n && da == anchors && k >= 8 && k % 4 == 0);
        if !d_ok {
            return Err(format!(
                "picodet level {l} box distribution has shape {:?}; expected [{n}, {anchors}, 4 * (reg_max + 1)] with reg_max >= 1",
                d.dims()
            ));
        }
        if let Some(first) = levels.first() {
            if first.n != n || first.classes != classes {
                return Err(format!(
                    "picodet level {l} scores have shape {:?}; level 0 has batch {} and {} classes",
                    s.dims(),
                    first.n,
                    first.classes
                ));
            }
        }
        levels.push(Level {
            n,
            stride,
            grid_w: input_hw[1].div_ceil(stride),
            anchors,
            classes,
            bins: d.dims()[2] / 4,
            scores: s.to_f32_vec(),
            dists: d.to_f32_vec(),
        });
    }
    Ok(levels)
}

impl Level {
    /// Appends batch item `item`'s detections from this level to `found`.
    fn decode_item(&self, item: usize, conf: f32, found: &mut Vec<Detection>) {
        let stride = self.stride as f32;
        for a in 0..self.anchors {
            let start = (item * self.anchors + a) * self.classes;
            let row_scores = &self.scores[start..start + self.classes];
            if !row_scores.iter().any(|&s| s >= conf) {
                continue;
            }
            let cx = ((a % self.grid_w) as f32 + 0.5) * stride;
            let cy = ((a / self.grid_w) as f32 + 0.5) * stride;
            let d_start = (item * self.anchors + a) * 4 * self.bins;
            let side = |k: usize| {
                let bins = &self.dists[d_start + k * self.bins..d_start + (k + 1) * self.bins];
                expected_bin(bins) * stride
            };
            let (left, top, right, bottom) = (side(0), side(1), side(2), side(3));
            for (class, &score) in row_scores.iter().enumerate() {
                if score >= conf {
                    found.push(Detection {
                        class,
                        score,
                        x0: cx - left,
                        y0: cy - top,
                        x1: cx + right,
                        y1: cy + bottom,
                    });
                }
            }
        }
    }
}

/// `d` with its corners clipped to a `[h, w]` input.
fn clip(d: Detection, [h, w]: [usize; 2]) -> Detection {
    let (h, w) = (h as f32, w as f32);
    Detection {
        x0: d.x0.clamp(0.0, w),
        y0: d.y0.clamp(0.0, h),
        x1: d.x1.clamp(0.0, w),
        y1: d.y1.clamp(0.0, h),
        ..d
    }
}

/// The expected bin index of a softmax over `logits`: `Σ i · softmax(logits)_i`.
fn expected_bin(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let shift = if max.is_finite() { max } else { 0.0 };
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (i, &x) in logits.iter().enumerate() {
        let e = (x - shift).exp();
        sum += e;
        weighted += e * i as f32;
    }
    weighted / sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_tensor::Shape;

    fn tensor(dims: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_f32(Shape::from(dims), v).unwrap()
    }

    /// Logits for 8 bins peaked hard at `bin` (expected value ≈ `bin`).
    fn peaked(bin: usize) -> Vec<f32> {
        (0..8).map(|i| if i == bin { 50.0 } else { 0.0 }).collect()
    }

    /// A 16x16 input: level 0 (stride 8) is 2x2, level 1 (stride 16) is 1x1.
    /// Two classes. Anchor 3 of level 0 (row 1, col 1, centre (12, 12))
    /// scores 0.9 for class 1; its sides are 1, 0, 2, 1 bins.
    fn two_levels() -> (Tensor, Tensor, Tensor, Tensor) {
        let mut s0 = vec![0.0; 4 * 2];
        s0[3 * 2 + 1] = 0.9;
        let mut d0 = vec![0.0; 4 * 32];
        for (k, bin) in [1, 0, 2, 1].into_iter().enumerate() {
            d0[3 * 32 + k * 8..3 * 32 + (k + 1) * 8].copy_from_slice(&peaked(bin));
        }
        let s1 = tensor(&[1, 1, 2], vec![0.3, 0.1]);
        let d1 = tensor(&[1, 1, 32], vec![0.0; 32]);
        (tensor(&[1, 4, 2], s0), tensor(&[1, 4, 32], d0), s1, d1)
    }

    #[test]
    fn peaked_distribution_gives_known_box() {
        let (s0, d0, s1, d1) = two_levels();
        let out = decode_picodet(&[&s0, &s1], &[&d0, &d1], [16, 16], 0.5, 0.5, 100).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 1);
        let d = out[0][0];
        assert_eq!((d.class, d.score), (1, 0.9));
        // Centre (12, 12): left 8, top 0, right 16 (clipped to 16), bottom 8.
        let expect = [4.0, 12.0, 16.0, 16.0];
        for (got, want) in [d.x0, d.y0, d.x1, d.y1].into_iter().zip(expect) {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
    }

    #[test]
    fn uniform_distribution_and_threshold() {
        let (s0, d0, s1, d1) = two_levels();
        // At 0.25 the level-1 anchor (centre (8, 8), uniform bins: 3.5 × 16 = 56
        // each side, clipped to the input) joins as class 0.
        let out = decode_picodet(&[&s0, &s1], &[&d0, &d1], [16, 16], 0.25, 0.5, 100).unwrap();
        assert_eq!(out[0].len(), 2);
        let low = out[0][1];
        assert_eq!((low.class, low.score), (0, 0.3));
        assert_eq!([low.x0, low.y0, low.x1, low.y1], [0.0, 0.0, 16.0, 16.0]);
        // max_detections keeps the best one.
        let out = decode_picodet(&[&s0, &s1], &[&d0, &d1], [16, 16], 0.25, 0.5, 1).unwrap();
        assert_eq!(out[0].len(), 1);
        assert_eq!(out[0][0].score, 0.9);
    }

    #[test]
    fn level_grid_uses_ceil() {
        assert_eq!(picodet_anchor_count([800, 608], 0), 7600);
        assert_eq!(picodet_anchor_count([800, 608], 3), 130);
        assert_eq!(picodet_stride(2), 32);
    }

    #[test]
    fn outputs_are_matched_by_anchor_count() {
        let (s0, d0, s1, d1) = two_levels();
        // Order as exported: all scores, then all boxes.
        let names = ["s0", "s1", "d0", "d1"];
        let (s, d) = match_picodet_outputs(&names, &[&s0, &s1, &d0, &d1], [16, 16]).unwrap();
        assert_eq!(s[0].dims(), &[1, 4, 2]);
        assert_eq!(d[0].dims(), &[1, 4, 32]);
        assert_eq!(s[1].dims(), &[1, 1, 2]);
        assert_eq!(d[1].dims(), &[1, 1, 32]);
        // Interleaved and shuffled: still paired by last axis and anchor count.
        let (s, d) = match_picodet_outputs(&names, &[&d1, &s0, &d0, &s1], [16, 16]).unwrap();
        assert_eq!(s[0].dims(), &[1, 4, 2]);
        assert_eq!(d[0].dims(), &[1, 4, 32]);
        assert_eq!(s[1].dims(), &[1, 1, 2]);
        assert_eq!(d[1].dims(), &[1, 1, 32]);
        // A wrong input size finds no level.
        assert!(match_picodet_outputs(&names, &[&s0, &s1, &d0, &d1], [32, 32]).is_err());
        assert!(match_picodet_outputs(&names, &[&s0, &s1, &d0], [16, 16]).is_err());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let (s0, d0, s1, d1) = two_levels();
        // Swapped levels: anchor counts do not fit.
        assert!(decode_picodet(&[&s1, &s0], &[&d1, &d0], [16, 16], 0.5, 0.5, 10).is_err());
        // Box tensor not a multiple of 4 bins.
        let bad = tensor(&[1, 4, 30], vec![0.0; 120]);
        assert!(decode_picodet(&[&s0], &[&bad], [16, 16], 0.5, 0.5, 10).is_err());
        let flat = tensor(&[8], vec![0.0; 8]);
        assert!(decode_picodet(&[&flat], &[&d0], [16, 16], 0.5, 0.5, 10).is_err());
        assert!(decode_picodet(&[], &[], [16, 16], 0.5, 0.5, 10).is_err());
        let err = match_picodet_outputs(&["a", "b"], &[&flat, &d0], [16, 16]).unwrap_err();
        assert!(err.contains("'a'"), "{err}");
    }
}
