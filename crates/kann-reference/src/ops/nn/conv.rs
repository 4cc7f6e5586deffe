//! Convolutions. The loop nests keep one f64 accumulator plane per output
//! channel; the innermost loop runs over a contiguous range of positions on
//! the last spatial axis whose bounds (the padding) are computed once per
//! kernel offset, so it carries no per-element checks.

use super::{at, ceil_div, finish, input, round_to, saturate, values_or};
use crate::util::unravel;
use crate::EvalError;
use kann_ir::ops::nn::{Conv, ConvAttrs, ConvTranspose, WindowPlan};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

fn product(d: &[usize]) -> usize {
    d.iter().product()
}

/// How the positions of an iterated grid meet those of the other grid
/// through the window: `other = it * stride - pad_begin + k * dilation`.
/// (Forward convolution iterates the output and reads the input;
/// transposed convolution iterates the input and writes the output.)
struct Geometry {
    /// Rows are multi-indices over all spatial axes but the last.
    rows: usize,
    /// Kernel offsets over those axes.
    k_outer: usize,
    /// `[k_outer][rows]`: the other grid's row, if inside it.
    outer: Vec<Option<usize>>,
    /// Per last-axis kernel offset: iterated range `lo..hi` and the other grid's position at `lo`.
    last: Vec<(usize, usize, usize)>,
    /// Extents of the last axis in the iterated and the other grid, and its stride.
    iter_w: usize,
    other_w: usize,
    stride: usize,
}

fn geometry(iter: &[usize], other: &[usize], plan: &WindowPlan) -> Geometry {
    let nsp = iter.len();
    let a = nsp - 1;
    let (s, d, pb) = (&plan.strides, &plan.dilations, &plan.pad_begin);
    let rows = product(&iter[..a]);
    let k_outer = product(&plan.kernel[..a]);
    let mut outer = Vec::with_capacity(k_outer * rows);
    for ko in 0..k_outer {
        let kk = unravel(ko, &plan.kernel[..a]);
        for r in 0..rows {
            let rr = unravel(r, &iter[..a]);
            let mut flat = Some(0usize);
            for ax in 0..a {
                let pos = rr[ax] as i64 * s[ax] as i64 - pb[ax] + (kk[ax] * d[ax]) as i64;
                flat = match flat {
                    Some(f) if pos >= 0 && pos < other[ax] as i64 => Some(f * other[ax] + pos as usize),
                    _ => None,
                };
            }
            outer.push(flat);
        }
    }
    let (sa, iw, ow) = (s[a] as i64, iter[a] as i64, other[a] as i64);
    let last = (0..plan.kernel[a])
        .map(|kx| {
            let off = (kx * d[a]) as i64 - pb[a];
            let lo = ceil_div(-off, sa).max(0);
            let hi = ceil_div(ow - off, sa).min(iw);
            if lo < hi {
                (lo as usize, hi as usize, (lo * sa + off) as usize)
            } else {
                (0, 0, 0)
            }
        })
        .collect();
    Geometry { rows, k_outer, outer, last, iter_w: iter[a], other_w: other[a], stride: s[a] }
}

/// Forward convolution of x `[N, C, in...]` by w `[M, C/group, k...]` into
/// `[N, M, out...]`, without bias.
fn conv_f64(x: &[f64], xd: &[usize], w: &[f64], wd: &[usize], group: usize, plan: &WindowPlan) -> Vec<f64> {
    let (n, c, m) = (xd[0], xd[1], wd[0]);
    let (cg, mg) = (c / group, m / group);
    let (in_plane, out_plane) = (product(&xd[2..]), product(&plan.out));
    let geo = geometry(&plan.out, &xd[2..], plan);
    let (ksize, kw, s) = (product(&plan.kernel), plan.kernel[plan.kernel.len() - 1], geo.stride);
    let (iw, ow) = (geo.other_w, geo.iter_w);
    let mut y = vec![0.0; n * m * out_plane];
    for (bo, acc) in y.chunks_mut(out_plane.max(1)).enumerate().take(n * m) {
        let (b, oc) = (bo / m, bo % m);
        let g = oc / mg;
        for ci in 0..cg {
            let xp = &x[(b * c + g * cg + ci) * in_plane..][..in_plane];
            let wk = &w[(oc * cg + ci) * ksize..][..ksize];
            for ko in 0..geo.k_outer {
                for kx in 0..kw {
                    let wv = wk[ko * kw + kx];
                    let (lo, hi, start) = geo.last[kx];
                    if lo >= hi {
                        continue;
                    }
                    for r in 0..geo.rows {
                        let Some(src) = geo.outer[ko * geo.rows + r] else { continue };
                        let dst = &mut acc[r * ow + lo..r * ow + hi];
                        let srow = &xp[src * iw + start..];
                        if s == 1 {
                            for (a, &xv) in dst.iter_mut().zip(srow) {
                                *a += wv * xv;
                            }
                        } else {
                            for (a, &xv) in dst.iter_mut().zip(srow.iter().step_by(s)) {
                                *a += wv * xv;
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// Transposed convolution of x `[N, C, in...]` by w `[C, M/group, k...]` into
/// `[N, M, out...]`, without bias: each input element scatters into the output.
fn conv_transpose_f64(x: &[f64], xd: &[usize], w: &[f64], wd: &[usize], group: usize, plan: &WindowPlan) -> Vec<f64> {
    let (n, c, mg) = (xd[0], xd[1], wd[1]);
    let (m, cg) = (mg * group, c / group);
    let (in_plane, out_plane) = (product(&xd[2..]), product(&plan.out));
    let geo = geometry(&xd[2..], &plan.out, plan);
    let (ksize, kw, s) = (product(&plan.kernel), plan.kernel[plan.kernel.len() - 1], geo.stride);
    let (iw, ow) = (geo.iter_w, geo.other_w);
    let mut y = vec![0.0; n * m * out_plane];
    for (bo, acc) in y.chunks_mut(out_plane.max(1)).enumerate().take(n * m) {
        let (b, oc) = (bo / m, bo % m);
        let (g, mo) = (oc / mg, oc % mg);
        for ci in 0..cg {
            let ic = g * cg + ci;
            let xp = &x[(b * c + ic) * in_plane..][..in_plane];
            let wk = &w[(ic * mg + mo) * ksize..][..ksize];
            for ko in 0..geo.k_outer {
                for kx in 0..kw {
                    let wv = wk[ko * kw + kx];
                    let (lo, hi, start) = geo.last[kx];
                    if lo >= hi {
                        continue;
                    }
                    for r in 0..geo.rows {
                        let Some(dst) = geo.outer[ko * geo.rows + r] else { continue };
                        let src = &xp[r * iw + lo..r * iw + hi];
                        let drow = &mut acc[dst * ow + start..];
                        for (a, &xv) in drow.iter_mut().step_by(s).zip(src) {
                            *a += wv * xv;
                        }
                    }
                }
            }
        }
    }
    y
}

/// Adds `bias[channel]` to each plane of `[N, M, plane]` data.
fn add_bias(y: &mut [f64], bias: &[f64], plane: usize) {
    let m = bias.len().max(1);
    for (i, p) in y.chunks_mut(plane.max(1)).enumerate() {
        let b = at(bias, i % m);
        p.iter_mut().for_each(|v| *v += b);
    }
}

pub fn conv(c: &Conv, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (x, w) = (input(inputs, 0, "X")?, input(inputs, 1, "W")?);
    let plan = c.attrs.plan(x.dims(), w.dims())?;
    let mut y = conv_f64(&x.to_f64_vec(), x.dims(), &w.to_f64_vec(), w.dims(), c.attrs.group, &plan);
    if let Some(b) = inputs.get(2).copied().flatten() {
        add_bias(&mut y, &b.to_f64_vec(), product(&plan.out));
    }
    finish(out, &y)
}

pub fn conv_transpose(c: &ConvTranspose, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (x, w) = (input(inputs, 0, "X")?, input(inputs, 1, "W")?);
    let plan = c.plan(x.dims(), w.dims())?;
    let mut y = conv_transpose_f64(&x.to_f64_vec(), x.dims(), &w.to_f64_vec(), w.dims(), c.group, &plan);
    if let Some(b) = inputs.get(2).copied().flatten() {
        add_bias(&mut y, &b.to_f64_vec(), product(&plan.out));
    }
    finish(out, &y)
}

/// `x - zero_point` (one zero point).
fn shifted(x: &Tensor, zp: &[f64]) -> Vec<f64> {
    let z = at(zp, 0);
    x.to_f64_vec().into_iter().map(|v| v - z).collect()
}

/// `w - zero_point[output channel]` for w `[M, ...]`.
fn shifted_per_channel(w: &Tensor, zp: &[f64]) -> Vec<f64> {
    let per = product(&w.dims()[1..]).max(1);
    w.to_f64_vec().into_iter().enumerate().map(|(i, v)| v - at(zp, i / per)).collect()
}

/// The integer convolution `(x - x_zp) * (w - w_zp)`, exact in f64.
fn integer_conv(c: &ConvAttrs, x: &Tensor, x_zp: &[f64], w: &Tensor, w_zp: &[f64]) -> Result<(Vec<f64>, WindowPlan), EvalError> {
    let plan = c.plan(x.dims(), w.dims())?;
    let y = conv_f64(&shifted(x, x_zp), x.dims(), &shifted_per_channel(w, w_zp), w.dims(), c.group, &plan);
    Ok((y, plan))
}

pub fn conv_integer(c: &ConvAttrs, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (x, w) = (input(inputs, 0, "x")?, input(inputs, 1, "w")?);
    let (y, _) = integer_conv(c, x, &values_or(inputs, 2, 0.0), w, &values_or(inputs, 3, 0.0))?;
    finish(out, &y)
}

pub fn qlinear_conv(c: &ConvAttrs, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (x, w) = (input(inputs, 0, "x")?, input(inputs, 3, "w")?);
    let x_scale = input(inputs, 1, "x_scale")?;
    let (mut y, plan) = integer_conv(c, x, &values_or(inputs, 2, 0.0), w, &values_or(inputs, 5, 0.0))?;
    let plane = product(&plan.out).max(1);
    if let Some(b) = inputs.get(8).copied().flatten() {
        add_bias(&mut y, &b.to_f64_vec(), plane);
    }
    // Scales multiply in their own precision, as the ONNX reference does.
    let d = x_scale.dtype();
    let (xs, ws, ys) = (at(&x_scale.to_f64_vec(), 0), input(inputs, 4, "w_scale")?.to_f64_vec(), at(&values_or(inputs, 6, 1.0), 0));
    let y_zp = at(&values_or(inputs, 7, 0.0), 0);
    let m = w.dims()[0].max(1);
    for (i, p) in y.chunks_mut(plane).enumerate() {
        let mult = round_to(d, round_to(d, xs * at(&ws, i % m)) / ys);
        p.iter_mut().for_each(|v| *v = saturate(out.dtype, *v * mult + y_zp));
    }
    finish(out, &y)
}
