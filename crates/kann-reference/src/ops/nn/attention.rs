//! `Attention`: scaled dot-product attention computed in f64, rounded to the
//! input dtype after each step the ONNX function rounds (scaling, products,
//! soft cap, bias, softmax) so half-precision results match it.

use super::{finish, input, round_to};
use crate::util::broadcast_index;
use crate::EvalError;
use kann_ir::ops::nn::{Attention, AttentionDims};
use kann_ir::TensorInfo;
use kann_tensor::{DType, Tensor};

pub fn attention(a: &Attention, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let [q, k, v] = [(0, "Q"), (1, "K"), (2, "V")].map(|(i, w)| input(inputs, i, w));
    let (q, k, v) = (q?, k?, v?);
    let (past_k, past_v) = (inputs.get(4).copied().flatten(), inputs.get(5).copied().flatten());
    let d = a.dims(q.dims(), k.dims(), v.dims(), past_k.map(|p| p.dims()))?;
    let dt = q.dtype();
    let qv = heads_first(q, &d, d.q_heads, d.q_len, d.head);
    let kv = with_past(past_k, heads_first(k, &d, d.kv_heads, d.kv_len, d.head), &d, d.head)?;
    let vv = with_past(past_v, heads_first(v, &d, d.kv_heads, d.kv_len, d.v_head), &d, d.v_head)?;
    let bias = bias(a, inputs, &d, dt)?;
    let (y, qk) = compute(a, &d, dt, &qv, &kv, &vv, &bias);
    let y = if d.three_d { heads_last(&y, &d) } else { y };
    let values = [y, kv, vv, qk];
    let mut result = Vec::with_capacity(outputs.len());
    for (o, v) in outputs.iter().zip(values.iter()) {
        result.push(finish(o, v)?);
    }
    Ok(result)
}

/// The values of `x` in `[batch, heads, seq, size]` order (3-D inputs are
/// `[batch, seq, heads * size]`).
fn heads_first(x: &Tensor, d: &AttentionDims, heads: usize, seq: usize, size: usize) -> Vec<f64> {
    let v = x.to_f64_vec();
    if !d.three_d {
        return v;
    }
    let mut out = Vec::with_capacity(v.len());
    for b in 0..d.batch {
        for h in 0..heads {
            for s in 0..seq {
                let start = (b * seq + s) * heads * size + h * size;
                out.extend_from_slice(&v[start..start + size]);
            }
        }
    }
    out
}

/// Y from `[batch, heads, seq, size]` back to `[batch, seq, heads * size]`.
fn heads_last(y: &[f64], d: &AttentionDims) -> Vec<f64> {
    let (heads, seq, size) = (d.q_heads, d.q_len, d.v_head);
    let mut out = Vec::with_capacity(y.len());
    for b in 0..d.batch {
        for s in 0..seq {
            for h in 0..heads {
                let start = ((b * heads + h) * seq + s) * size;
                out.extend_from_slice(&y[start..start + size]);
            }
        }
    }
    out
}

/// The past cache followed by the new keys (or values) along the sequence axis.
fn with_past(past: Option<&Tensor>, new: Vec<f64>, d: &AttentionDims, size: usize) -> Result<Vec<f64>, EvalError> {
    let Some(past) = past else { return Ok(new) };
    let p = past.to_f64_vec();
    let (pl, nl) = (d.past_len * size, d.kv_len * size);
    if p.len() != d.batch * d.kv_heads * pl || new.len() != d.batch * d.kv_heads * nl {
        return Err("past cache does not match the key/value shapes".into());
    }
    let mut out = Vec::with_capacity(p.len() + new.len());
    for (pc, nc) in p.chunks(pl.max(1)).zip(new.chunks(nl.max(1))) {
        out.extend_from_slice(if pl == 0 { &[] } else { pc });
        out.extend_from_slice(if nl == 0 { &[] } else { nc });
    }
    Ok(out)
}

/// The additive bias `[batch, q_heads, q_len, total]`: the mask (boolean
/// false and keys past a short mask are `-inf`), the causal frontier, the
/// sliding window and the padding of `nonpad_kv_seqlen`.
fn bias(a: &Attention, inputs: &[Option<&Tensor>], d: &AttentionDims, dt: DType) -> Result<Vec<f64>, EvalError> {
    let total = d.total_len();
    let shape = [d.batch, d.q_heads, d.q_len, total];
    let mut bias = match inputs.get(3).copied().flatten() {
        Some(m) => mask_bias(m, &shape, dt),
        None => vec![0.0; shape.iter().product()],
    };
    let nonpad = inputs.get(6).copied().flatten().map(|t| t.to_i64_vec());
    let offset = |b: usize| -> i64 {
        match (&nonpad, d.past_len) {
            (Some(n), 0) => n.get(b).copied().unwrap_or(0) - d.q_len as i64,
            _ => d.past_len as i64,
        }
    };
    for (idx, x) in bias.iter_mut().enumerate() {
        let (j, i, b) = ((idx % total) as i64, ((idx / total) % d.q_len) as i64, idx / (total * d.q_len * d.q_heads));
        let pos = i + offset(b);
        let causal = a.is_causal && j > pos;
        let left = a.left_window >= 0 && pos - j > a.left_window;
        let right = a.right_window >= 0 && j - pos > a.right_window;
        let padded = nonpad.as_ref().is_some_and(|n| j >= n.get(b).copied().unwrap_or(0));
        if causal || left || right || padded {
            *x = f64::NEG_INFINITY;
        }
    }
    Ok(bias)
}

/// The mask, padded to `total` keys and broadcast to `shape`, as a bias.
fn mask_bias(m: &Tensor, shape: &[usize; 4], dt: DType) -> Vec<f64> {
    let dims = m.dims();
    let last = dims.last().copied().unwrap_or(1);
    let total = shape[3];
    let values: Vec<f64> = if m.dtype() == DType::Bool {
        m.to_bool_vec().into_iter().map(|t| if t { 0.0 } else { f64::NEG_INFINITY }).collect()
    } else {
        m.to_f64_vec().into_iter().map(|x| round_to(dt, x)).collect()
    };
    let mut padded_dims = dims.to_vec();
    if let Some(l) = padded_dims.last_mut() {
        *l = total;
    }
    let mut padded = Vec::with_capacity(values.len() / last.max(1) * total);
    for row in values.chunks(last.max(1)) {
        padded.extend((0..total).map(|j| row.get(j).copied().unwrap_or(f64::NEG_INFINITY)));
    }
    broadcast_index(&padded_dims, shape).into_iter().map(|i| padded.get(i).copied().unwrap_or(f64::NEG_INFINITY)).collect()
}

/// Numpy's max: NaN if any value is NaN.
fn nan_max(v: &[f64]) -> f64 {
    v.iter().fold(f64::NEG_INFINITY, |m, &x| if x.is_nan() || m.is_nan() { f64::NAN } else { m.max(x) })
}

/// Softmax of one row; a row whose maximum is `-inf` gives zeros.
fn softmax_row(row: &mut [f64], p: DType) {
    row.iter_mut().for_each(|x| *x = round_to(p, *x));
    let m = nan_max(row);
    let m = if m == f64::NEG_INFINITY { 0.0 } else { m };
    row.iter_mut().for_each(|x| *x = round_to(p, (*x - m).exp()));
    let s: f64 = row.iter().sum();
    let s = if s == 0.0 { 1.0 } else { round_to(p, s) };
    row.iter_mut().for_each(|x| *x = round_to(p, *x / s));
}

/// Y `[batch, q_heads, q_len, v_head]` and the qk output `[batch, q_heads, q_len, total]`.
fn compute(a: &Attention, d: &AttentionDims, dt: DType, q: &[f64], k: &[f64], v: &[f64], bias: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let r = |x: f64| round_to(dt, x);
    let total = d.total_len();
    let scale = a.scale.unwrap_or_else(|| 1.0 / (d.head as f64).sqrt());
    let s = r(scale.sqrt());
    let qs: Vec<f64> = q.iter().map(|x| r(x * s)).collect();
    let ks: Vec<f64> = k.iter().map(|x| r(x * s)).collect();
    let group = d.q_heads / d.kv_heads.max(1);
    let mut y = vec![0.0; d.batch * d.q_heads * d.q_len * d.v_head];
    let mut qk_out = vec![0.0; d.batch * d.q_heads * d.q_len * total];
    let mut row = vec![0.0; total];
    for b in 0..d.batch {
        for h in 0..d.q_heads {
            let kh = b * d.kv_heads + h / group.max(1);
            for i in 0..d.q_len {
                let qrow = &qs[((b * d.q_heads + h) * d.q_len + i) * d.head..][..d.head];
                let out_at = ((b * d.q_heads + h) * d.q_len + i) * total;
                let brow = &bias[out_at..out_at + total];
                for (j, x) in row.iter_mut().enumerate() {
                    let krow = &ks[(kh * total + j) * d.head..][..d.head];
                    let raw = r(qrow.iter().zip(krow).map(|(x, y)| x * y).sum());
                    let capped = if a.softcap > 0.0 { r(a.softcap * r((raw / a.softcap).tanh())) } else { raw };
                    *x = r(capped + brow[j]);
                    qk_out[out_at + j] = match a.qk_mode {
                        0 => raw,
                        1 => capped,
                        _ => *x,
                    };
                }
                softmax_row(&mut row, a.softmax_precision.unwrap_or(dt));
                let masked = nan_max(brow) == f64::NEG_INFINITY;
                row.iter_mut().for_each(|x| *x = if masked { 0.0 } else { r(*x) });
                if a.qk_mode == 3 {
                    qk_out[out_at..out_at + total].copy_from_slice(&row);
                }
                let yrow = &mut y[((b * d.q_heads + h) * d.q_len + i) * d.v_head..][..d.v_head];
                for (j, p) in row.iter().enumerate() {
                    let vrow = &v[(kh * total + j) * d.v_head..][..d.v_head];
                    yrow.iter_mut().zip(vrow).for_each(|(y, v)| *y += p * v);
                }
                yrow.iter_mut().for_each(|y| *y = r(*y));
            }
        }
    }
    (y, qk_out)
}
