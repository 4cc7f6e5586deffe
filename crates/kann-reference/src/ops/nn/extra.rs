//! `RotaryEmbedding`, `MaxUnpool`, `RoiAlign`, `DeformConv`, `Det` and
//! `BatchNormalization` in training mode, in f64.

use super::{finish, input};
use crate::EvalError;
use kann_ir::ops::nn::{BatchNormTraining, DeformConv, MaxUnpool, RoiAlign, RotaryEmbedding};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

pub fn rotary(r: &RotaryEmbedding, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let d = r.dims(x.dims())?;
    let (cos, sin) = (input(inputs, 1, "cos_cache")?.to_f64_vec(), input(inputs, 2, "sin_cache")?.to_f64_vec());
    let pos = inputs.get(3).copied().flatten().map(|p| p.to_i64_vec());
    let half = d.rotary / 2;
    let xv = x.to_f64_vec();
    let mut y = xv.clone();
    for b in 0..d.batch {
        for s in 0..d.seq {
            // Row of the caches for this (batch, position).
            let row = match &pos {
                Some(p) => {
                    let v = p.get(b * d.seq + s).copied().unwrap_or(-1);
                    usize::try_from(v).ok().filter(|&v| (v + 1) * half <= cos.len().min(sin.len())).ok_or_else(|| format!("position id {v} is outside the caches"))?
                }
                None => b * d.seq + s,
            };
            for h in 0..d.heads {
                let start = if d.three_d { ((b * d.seq + s) * d.heads + h) * d.head } else { ((b * d.heads + h) * d.seq + s) * d.head };
                for k in 0..half {
                    let (i1, i2) = if r.interleaved { (2 * k, 2 * k + 1) } else { (k, k + half) };
                    let (c, sn) = (cos[row * half + k], sin[row * half + k]);
                    let (x1, x2) = (xv[start + i1], xv[start + i2]);
                    y[start + i1] = c * x1 - sn * x2;
                    y[start + i2] = sn * x1 + c * x2;
                }
            }
        }
    }
    finish(out, &y)
}

pub fn max_unpool(m: &MaxUnpool, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let idx = input(inputs, 1, "I")?.to_i64_vec();
    let inferred = m.inferred(x.dims())?;
    let n: usize = inferred.iter().product();
    let mut unpooled = vec![0.0; n];
    for (&i, v) in idx.iter().zip(x.to_f64_vec()) {
        let slot = usize::try_from(i).ok().and_then(|i| unpooled.get_mut(i)).ok_or_else(|| format!("index {i} is outside the unpooled tensor of {n} elements"))?;
        *slot = v;
    }
    // The unpooled tensor sits at the origin of a possibly larger output.
    let dims = out.shape.dims();
    let mut y = vec![0.0; dims.iter().product()];
    for (flat, v) in unpooled.into_iter().enumerate() {
        let at = crate::util::unravel(flat, &inferred);
        let pos = at.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i);
        if let Some(slot) = y.get_mut(pos) {
            *slot = v;
        }
    }
    finish(out, &y)
}

/// Bilinear weights and flat positions of a RoiAlign sample, or `None` when
/// the sample lies outside the feature map.
fn roi_sample(y: f64, x: f64, h: usize, w: usize) -> Option<[(f64, usize); 4]> {
    if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 {
        return None;
    }
    let axis = |v: f64, n: usize| {
        let v = v.max(0.0);
        let low = v as usize;
        if low >= n - 1 {
            (n - 1, n - 1, 0.0)
        } else {
            (low, low + 1, v - low as f64)
        }
    };
    let ((y0, y1, ly), (x0, x1, lx)) = (axis(y, h), axis(x, w));
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    Some([(hy * hx, y0 * w + x0), (hy * lx, y0 * w + x1), (ly * hx, y1 * w + x0), (ly * lx, y1 * w + x1)])
}

pub fn roi_align(r: &RoiAlign, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let rois = input(inputs, 1, "rois")?.to_f64_vec();
    let batch = input(inputs, 2, "batch_indices")?.to_i64_vec();
    let [n, c, h, w] = [0, 1, 2, 3].map(|i| x.dims()[i]);
    let xv = x.to_f64_vec();
    let (oh, ow) = (r.output_height, r.output_width);
    if h == 0 || w == 0 {
        return finish(out, &vec![0.0; out.numel()]);
    }
    let mut y = Vec::with_capacity(batch.len() * c * oh * ow);
    let offset = if r.half_pixel { 0.5 } else { 0.0 };
    for (k, &bi) in batch.iter().enumerate() {
        let b = usize::try_from(bi).ok().filter(|&b| b < n).ok_or_else(|| format!("batch index {bi} is out of range"))?;
        let roi: Vec<f64> = rois.get(k * 4..k * 4 + 4).ok_or("rois hold fewer boxes than batch_indices")?.iter().map(|v| v * r.spatial_scale - offset).collect();
        let (x0, y0) = (roi[0], roi[1]);
        let (mut rw, mut rh) = (roi[2] - x0, roi[3] - y0);
        if !r.half_pixel {
            (rw, rh) = (rw.max(1.0), rh.max(1.0));
        }
        let (bh, bw) = (rh / oh as f64, rw / ow as f64);
        let grid = |size: f64, bins: usize| if r.sampling_ratio > 0 { r.sampling_ratio } else { (size / bins as f64).ceil().max(0.0) as usize };
        let (gh, gw) = (grid(rh, oh), grid(rw, ow));
        let count = (gh * gw).max(1) as f64;
        for ch in 0..c {
            let plane = &xv[(b * c + ch) * h * w..][..h * w];
            for py in 0..oh {
                for px in 0..ow {
                    let mut acc: Option<f64> = None;
                    for iy in 0..gh {
                        let sy = y0 + py as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
                        for ix in 0..gw {
                            let sx = x0 + px as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
                            let taps = roi_sample(sy, sx, h, w).unwrap_or([(0.0, 0); 4]);
                            let vals = taps.map(|(wt, p)| wt * plane[p]);
                            let v = if r.max { vals.into_iter().fold(f64::NEG_INFINITY, f64::max) } else { vals.iter().sum() };
                            acc = Some(match acc {
                                None => v,
                                Some(a) if r.max => a.max(v),
                                Some(a) => a + v,
                            });
                        }
                    }
                    let v = acc.unwrap_or(0.0);
                    y.push(if r.max { v } else { v / count });
                }
            }
        }
    }
    finish(out, &y)
}

/// Bilinear sample of a plane at real coordinates, zero outside.
fn bilinear(plane: &[f64], h: usize, w: usize, y: f64, x: f64) -> f64 {
    let (y0, x0) = (y.floor(), x.floor());
    let (ly, lx) = (y - y0, x - x0);
    let mut v = 0.0;
    for (dy, wy) in [(0.0, 1.0 - ly), (1.0, ly)] {
        for (dx, wx) in [(0.0, 1.0 - lx), (1.0, lx)] {
            let (yy, xx) = (y0 + dy, x0 + dx);
            if wy * wx != 0.0 && yy >= 0.0 && xx >= 0.0 && (yy as usize) < h && (xx as usize) < w {
                v += wy * wx * plane[yy as usize * w + xx as usize];
            }
        }
    }
    v
}

pub fn deform_conv(d: &DeformConv, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let wt = input(inputs, 1, "W")?;
    let plan = d.attrs.plan(x.dims(), wt.dims())?;
    let (xv, wv, off) = (x.to_f64_vec(), wt.to_f64_vec(), input(inputs, 2, "offset")?.to_f64_vec());
    let bias = inputs.get(3).copied().flatten().map(|b| b.to_f64_vec());
    let mask = inputs.get(4).copied().flatten().map(|m| m.to_f64_vec());
    let [n, c, h, w] = [0, 1, 2, 3].map(|i| x.dims()[i]);
    let m = wt.dims()[0];
    let (kh, kw, oh, ow) = (plan.kernel[0], plan.kernel[1], plan.out[0], plan.out[1]);
    let (cg, mg, cog) = (c / d.attrs.group, m / d.attrs.group, c / d.offset_group);
    let taps = kh * kw;
    let mut y = vec![0.0; n * m * oh * ow];
    for b in 0..n {
        for oc in 0..m {
            let g = oc / mg;
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = bias.as_ref().map_or(0.0, |v| v[oc]);
                    for icg in 0..cg {
                        let ic = g * cg + icg;
                        let og = ic / cog;
                        let plane = &xv[(b * c + ic) * h * w..][..h * w];
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let tap = og * taps + ki * kw + kj;
                                let at = |ch: usize| ((b * off_channels(d, taps) + ch) * oh + i) * ow + j;
                                let sy = (i * plan.strides[0]) as f64 - plan.pad_begin[0] as f64 + (ki * plan.dilations[0]) as f64 + off[at(2 * tap)];
                                let sx = (j * plan.strides[1]) as f64 - plan.pad_begin[1] as f64 + (kj * plan.dilations[1]) as f64 + off[at(2 * tap + 1)];
                                let mk = mask.as_ref().map_or(1.0, |mv| mv[((b * og_taps(d, taps) + tap) * oh + i) * ow + j]);
                                acc += wv[((oc * cg + icg) * kh + ki) * kw + kj] * bilinear(plane, h, w, sy, sx) * mk;
                            }
                        }
                    }
                    y[((b * m + oc) * oh + i) * ow + j] = acc;
                }
            }
        }
    }
    finish(out, &y)
}

/// Channels of the offset input: two per tap and offset group.
fn off_channels(d: &DeformConv, taps: usize) -> usize {
    2 * og_taps(d, taps)
}

/// Channels of the mask input: one per tap and offset group.
fn og_taps(d: &DeformConv, taps: usize) -> usize {
    d.offset_group * taps
}

/// Determinant by Gaussian elimination with partial pivoting.
fn determinant(mut a: Vec<f64>, n: usize) -> f64 {
    let mut det = 1.0;
    for col in 0..n {
        let pivot = (col..n).max_by(|&p, &q| a[p * n + col].abs().total_cmp(&a[q * n + col].abs())).unwrap_or(col);
        if a[pivot * n + col] == 0.0 {
            return 0.0;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
            }
            det = -det;
        }
        let p = a[col * n + col];
        det *= p;
        for r in col + 1..n {
            let f = a[r * n + col] / p;
            for k in col..n {
                a[r * n + k] -= f * a[col * n + k];
            }
        }
    }
    det
}

pub fn det(inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let x = input(inputs, 0, "X")?;
    let n = *x.dims().last().ok_or("Det of a scalar")?;
    let v = x.to_f64_vec();
    let y: Vec<f64> = if n == 0 { vec![1.0; out.numel()] } else { v.chunks(n * n).map(|m| determinant(m.to_vec(), n)).collect() };
    finish(out, &y)
}

pub fn batch_norm_training(bn: &BatchNormTraining, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let x = input(inputs, 0, "X")?;
    let [scale, bias, mean, var] = [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")].map(|(i, w)| input(inputs, i, w).map(|t| t.to_f64_vec()));
    let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
    let c = x.dims()[1];
    let plane: usize = x.dims()[2..].iter().product();
    let mut y = x.to_f64_vec();
    let count = (y.len() / c.max(1)).max(1) as f64;
    let (mut bm, mut bv) = (vec![0.0; c], vec![0.0; c]);
    for (i, p) in y.chunks(plane.max(1)).enumerate() {
        bm[i % c] += p.iter().sum::<f64>() / count;
    }
    for (i, p) in y.chunks(plane.max(1)).enumerate() {
        bv[i % c] += p.iter().map(|v| (v - bm[i % c]).powi(2)).sum::<f64>() / count;
    }
    for (i, p) in y.chunks_mut(plane.max(1)).enumerate() {
        let ch = i % c;
        let k = scale[ch] / (bv[ch] + bn.epsilon).sqrt();
        p.iter_mut().for_each(|v| *v = (*v - bm[ch]) * k + bias[ch]);
    }
    let running = |input: &[f64], batch: &[f64]| -> Vec<f64> { input.iter().zip(batch).map(|(i, b)| i * bn.momentum + b * (1.0 - bn.momentum)).collect() };
    let values = [y, running(&mean, &bm), running(&var, &bv)];
    outputs.iter().zip(values.iter()).map(|(o, v)| finish(o, v)).collect()
}
