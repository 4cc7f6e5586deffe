//! `RNN`, `GRU` and `LSTM`: the ONNX cell equations, one time step at a
//! time, in f64.
//!
//! Gate order in W, R and B: GRU z, r, h; LSTM i, o, f, c; P: i, o, f.
//! The state is rounded to the input dtype after each step, as a run in
//! that dtype stores it.
//! Steps past a batch row's `sequence_lens` are not computed: Y holds zeros
//! there and Y_h / Y_c hold the state after the row's last step.

use super::{finish, input, round_to};
use crate::EvalError;
use kann_ir::ops::nn::{Activation, Direction, Recurrent, RecurrentDims, RecurrentKind};
use kann_ir::TensorInfo;
use kann_tensor::Tensor;

pub fn recurrent(op: &Recurrent, inputs: &[Option<&Tensor>], outputs: &[TensorInfo]) -> Result<Vec<Tensor>, EvalError> {
    let [x, w, r] = [(0, "X"), (1, "W"), (2, "R")].map(|(i, what)| input(inputs, i, what));
    let (x, w, r) = (x?, w?, r?);
    let d = op.dims(x.dims(), w.dims(), r.dims())?;
    let dtype = x.dtype();
    let opt = |i: usize| inputs.get(i).copied().flatten();
    let x = time_major(op, &d, x.to_f64_vec(), d.input);
    let lens = seq_lens(opt(4), &d)?;
    let (w, r) = (w.to_f64_vec(), r.to_f64_vec());
    let g = op.kind.gates();
    let b = opt(3).map(Tensor::to_f64_vec).unwrap_or_else(|| vec![0.0; d.dirs * 2 * g * d.hidden]);
    let h0 = opt(5).map(|t| state_dir_major(op, &d, t.to_f64_vec())).unwrap_or_else(|| vec![0.0; d.dirs * d.batch * d.hidden]);
    let lstm = op.kind == RecurrentKind::Lstm;
    let c0 = opt(6).filter(|_| lstm).map(|t| state_dir_major(op, &d, t.to_f64_vec())).unwrap_or_else(|| vec![0.0; d.dirs * d.batch * d.hidden]);
    let p = opt(7).filter(|_| lstm).map(Tensor::to_f64_vec).unwrap_or_else(|| vec![0.0; d.dirs * 3 * d.hidden]);
    let check = [(w.len(), d.dirs * g * d.hidden * d.input, "W"), (r.len(), d.dirs * g * d.hidden * d.hidden, "R"), (b.len(), d.dirs * 2 * g * d.hidden, "B"), (h0.len(), d.dirs * d.batch * d.hidden, "initial_h"), (c0.len(), d.dirs * d.batch * d.hidden, "initial_c"), (p.len(), d.dirs * 3 * d.hidden, "P")];
    if let Some((_, _, what)) = check.iter().find(|(have, want, _)| have != want) {
        return Err(EvalError::Op(format!("{} input {what} has the wrong size", op.kind.name())));
    }
    let (hs, gh, gi) = (d.hidden, g * d.hidden, d.input);
    // Y as [seq, dirs, batch, hidden]; final states as [dirs, batch, hidden].
    let mut y = vec![0.0; d.seq * d.dirs * d.batch * hs];
    let mut yh = vec![0.0; d.dirs * d.batch * hs];
    let mut yc = vec![0.0; d.dirs * d.batch * hs];
    for dir in 0..d.dirs {
        let reverse = op.direction == Direction::Reverse || dir == 1;
        let per = op.kind.activations();
        let cell = Cell {
            op,
            hidden: hs,
            input: gi,
            w: &w[dir * gh * gi..(dir + 1) * gh * gi],
            r: &r[dir * gh * hs..(dir + 1) * gh * hs],
            wb: &b[dir * 2 * gh..dir * 2 * gh + gh],
            rb: &b[dir * 2 * gh + gh..(dir + 1) * 2 * gh],
            p: &p[dir * 3 * hs..(dir + 1) * 3 * hs],
            acts: &op.activations[dir * per..(dir + 1) * per],
        };
        for bi in 0..d.batch {
            let s0 = (dir * d.batch + bi) * hs;
            let mut h = h0[s0..s0 + hs].to_vec();
            let mut c = c0[s0..s0 + hs].to_vec();
            let len = lens[bi];
            for step in 0..len {
                let t = if reverse { len - 1 - step } else { step };
                let xt = &x[(t * d.batch + bi) * gi..(t * d.batch + bi + 1) * gi];
                cell.step(xt, &mut h, &mut c);
                // The state is stored in the input dtype between steps.
                h.iter_mut().chain(c.iter_mut()).for_each(|v| *v = round_to(dtype, *v));
                let yo = ((t * d.dirs + dir) * d.batch + bi) * hs;
                y[yo..yo + hs].copy_from_slice(&h);
            }
            yh[s0..s0 + hs].copy_from_slice(&h);
            yc[s0..s0 + hs].copy_from_slice(&c);
        }
    }
    let y = if op.batch_major { y_batch_major(&d, &y) } else { y };
    let values = [y, state_layout(op, &d, &yh), state_layout(op, &d, &yc)];
    let mut result = Vec::with_capacity(outputs.len());
    for (o, v) in outputs.iter().zip(values.iter()) {
        result.push(finish(o, v)?);
    }
    Ok(result)
}

/// One direction's weights and functions.
struct Cell<'a> {
    op: &'a Recurrent,
    hidden: usize,
    input: usize,
    w: &'a [f64],
    r: &'a [f64],
    wb: &'a [f64],
    rb: &'a [f64],
    p: &'a [f64],
    acts: &'a [Activation],
}

impl Cell<'_> {
    /// `x · W[gate]ᵀ + Wb[gate]` for hidden unit `j`.
    fn xw(&self, gate: usize, j: usize, x: &[f64]) -> f64 {
        let row = (gate * self.hidden + j) * self.input;
        x.iter().zip(&self.w[row..row + self.input]).map(|(a, b)| a * b).sum::<f64>() + self.wb[gate * self.hidden + j]
    }

    /// `h · R[gate]ᵀ + Rb[gate]` for hidden unit `j`.
    fn hr(&self, gate: usize, j: usize, h: &[f64]) -> f64 {
        let row = (gate * self.hidden + j) * self.hidden;
        h.iter().zip(&self.r[row..row + self.hidden]).map(|(a, b)| a * b).sum::<f64>() + self.rb[gate * self.hidden + j]
    }

    /// Activation `k` of the direction, applied after the clip.
    fn act(&self, k: usize, v: f64) -> f64 {
        let v = match self.op.clip {
            Some(c) => v.clamp(-c, c),
            None => v,
        };
        self.acts[k].apply(v)
    }

    /// Advances the state `h` (and `c` for LSTM) by one input row.
    fn step(&self, x: &[f64], h: &mut [f64], c: &mut [f64]) {
        match self.op.kind {
            RecurrentKind::Rnn => self.rnn(x, h),
            RecurrentKind::Gru => self.gru(x, h),
            RecurrentKind::Lstm => self.lstm(x, h, c),
        }
    }

    fn rnn(&self, x: &[f64], h: &mut [f64]) {
        let next: Vec<f64> = (0..self.hidden).map(|j| self.act(0, self.xw(0, j, x) + self.hr(0, j, h))).collect();
        h.copy_from_slice(&next);
    }

    fn gru(&self, x: &[f64], h: &mut [f64]) {
        let n = self.hidden;
        let z: Vec<f64> = (0..n).map(|j| self.act(0, self.xw(0, j, x) + self.hr(0, j, h))).collect();
        let r: Vec<f64> = (0..n).map(|j| self.act(0, self.xw(1, j, x) + self.hr(1, j, h))).collect();
        let rh: Vec<f64> = h.iter().zip(&r).map(|(a, b)| a * b).collect();
        let cand: Vec<f64> = (0..n)
            .map(|j| {
                let rec = if self.op.linear_before_reset { r[j] * self.hr(2, j, h) } else { self.hr(2, j, &rh) };
                self.act(1, self.xw(2, j, x) + rec)
            })
            .collect();
        for j in 0..n {
            h[j] = (1.0 - z[j]) * cand[j] + z[j] * h[j];
        }
    }

    fn lstm(&self, x: &[f64], h: &mut [f64], c: &mut [f64]) {
        let n = self.hidden;
        let mut next_h = vec![0.0; n];
        for j in 0..n {
            let pre = |gate: usize| self.xw(gate, j, x) + self.hr(gate, j, h);
            let i = self.act(0, pre(0) + self.p[j] * c[j]);
            let f = if self.op.input_forget { 1.0 - i } else { self.act(0, pre(2) + self.p[2 * n + j] * c[j]) };
            let cand = self.act(1, pre(3));
            let ct = f * c[j] + i * cand;
            let o = self.act(0, pre(1) + self.p[n + j] * ct);
            c[j] = ct;
            next_h[j] = o * self.acts[2].apply(ct);
        }
        h.copy_from_slice(&next_h);
    }
}

/// Sequence length of each batch row: `sequence_lens`, or the full length.
fn seq_lens(t: Option<&Tensor>, d: &RecurrentDims) -> Result<Vec<usize>, EvalError> {
    let Some(t) = t else { return Ok(vec![d.seq; d.batch]) };
    let v = t.to_i64_vec();
    if v.len() != d.batch {
        return Err(EvalError::Op(format!("sequence_lens has {} values for batch {}", v.len(), d.batch)));
    }
    v.iter()
        .map(|&l| match usize::try_from(l) {
            Ok(l) if l <= d.seq => Ok(l),
            _ => Err(EvalError::Op(format!("sequence_lens value {l} is outside 0..={}", d.seq))),
        })
        .collect()
}

/// X as `[seq, batch, size]` (layout 1 gives `[batch, seq, size]`).
fn time_major(op: &Recurrent, d: &RecurrentDims, v: Vec<f64>, size: usize) -> Vec<f64> {
    if !op.batch_major {
        return v;
    }
    let mut out = Vec::with_capacity(v.len());
    for t in 0..d.seq {
        for b in 0..d.batch {
            let start = (b * d.seq + t) * size;
            out.extend_from_slice(&v[start..start + size]);
        }
    }
    out
}

/// An initial state as `[dirs, batch, hidden]` (layout 1 gives `[batch, dirs, hidden]`).
fn state_dir_major(op: &Recurrent, d: &RecurrentDims, v: Vec<f64>) -> Vec<f64> {
    if !op.batch_major || v.len() != d.dirs * d.batch * d.hidden {
        return v;
    }
    let mut out = Vec::with_capacity(v.len());
    for dir in 0..d.dirs {
        for b in 0..d.batch {
            let start = (b * d.dirs + dir) * d.hidden;
            out.extend_from_slice(&v[start..start + d.hidden]);
        }
    }
    out
}

/// A final state from `[dirs, batch, hidden]` to the output layout.
fn state_layout(op: &Recurrent, d: &RecurrentDims, v: &[f64]) -> Vec<f64> {
    if !op.batch_major {
        return v.to_vec();
    }
    let mut out = Vec::with_capacity(v.len());
    for b in 0..d.batch {
        for dir in 0..d.dirs {
            let start = (dir * d.batch + b) * d.hidden;
            out.extend_from_slice(&v[start..start + d.hidden]);
        }
    }
    out
}

/// Y from `[seq, dirs, batch, hidden]` to `[batch, seq, dirs, hidden]`.
fn y_batch_major(d: &RecurrentDims, y: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(y.len());
    for b in 0..d.batch {
        for t in 0..d.seq {
            for dir in 0..d.dirs {
                let start = ((t * d.dirs + dir) * d.batch + b) * d.hidden;
                out.extend_from_slice(&y[start..start + d.hidden]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::eval;
    use kann_ir::ops::nn::*;
    use kann_ir::InferInput;
    use kann_tensor::{DType, Shape, Tensor};

    fn run(op: Recurrent, inputs: &[Option<&Tensor>]) -> Vec<Vec<f64>> {
        let op = NnOp::Recurrent(op);
        let infos: Vec<_> = inputs.iter().map(|t| t.map(kann_ir::TensorInfo::of)).collect();
        let inf: Vec<Option<InferInput>> = inputs.iter().zip(&infos).map(|(t, i)| i.as_ref().map(|info| InferInput { info, value: *t })).collect();
        let outs = op.infer(&inf).unwrap();
        eval(&op, inputs, &outs).unwrap().iter().map(Tensor::to_f64_vec).collect()
    }

    fn t(shape: &[usize], v: &[f64]) -> Tensor {
        Tensor::from_f64(DType::F64, Shape::from(shape), v).unwrap()
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
        }
    }

    fn op(kind: RecurrentKind, direction: Direction, activations: Vec<Activation>) -> Recurrent {
        Recurrent { kind, direction, hidden_size: Some(1), activations, clip: None, input_forget: false, linear_before_reset: false, batch_major: false }
    }

    #[test]
    fn rnn_relu_forward_and_reverse() {
        let x = t(&[3, 1, 1], &[1.0, -1.0, 3.0]);
        let (w, r) = (t(&[1, 1, 1], &[2.0]), t(&[1, 1, 1], &[0.5]));
        let fwd = run(op(RecurrentKind::Rnn, Direction::Forward, vec![Activation::Relu]), &[Some(&x), Some(&w), Some(&r)]);
        close(&fwd[0], &[2.0, 0.0, 6.0]);
        close(&fwd[1], &[6.0]);
        let rev = run(op(RecurrentKind::Rnn, Direction::Reverse, vec![Activation::Relu]), &[Some(&x), Some(&w), Some(&r)]);
        close(&rev[0], &[2.5, 1.0, 6.0]);
        close(&rev[1], &[2.5]);
    }

    #[test]
    fn rnn_bidirectional_batch_major_with_lengths() {
        // Batch 2 (lengths 3 and 1), layout 1: X [batch, seq, 1].
        let x = t(&[2, 3, 1], &[1.0, -1.0, 3.0, 4.0, 9.0, 9.0]);
        let w = t(&[2, 1, 1], &[2.0, 2.0]);
        let r = t(&[2, 1, 1], &[0.5, 0.5]);
        let lens = Tensor::from_i64_values(DType::I32, Shape::from(&[2][..]), &[3, 1]).unwrap();
        let mut o = op(RecurrentKind::Rnn, Direction::Bidirectional, vec![Activation::Relu; 2]);
        o.batch_major = true;
        let out = run(o, &[Some(&x), Some(&w), Some(&r), None, Some(&lens)]);
        // Y [batch, seq, dirs, hidden].
        close(&out[0], &[2.0, 2.5, 0.0, 1.0, 6.0, 6.0, 8.0, 8.0, 0.0, 0.0, 0.0, 0.0]);
        // Y_h [batch, dirs, hidden].
        close(&out[1], &[6.0, 2.5, 8.0, 8.0]);
    }

    #[test]
    fn gru_linear_before_reset() {
        let x = t(&[1, 1, 1], &[1.0]);
        let w = t(&[1, 3, 1], &[0.0, 0.0, 1.0]);
        let r = t(&[1, 3, 1], &[0.0, 0.0, 1.0]);
        let b = t(&[1, 6], &[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let acts = vec![Activation::Sigmoid, Activation::Tanh];
        let plain = run(op(RecurrentKind::Gru, Direction::Forward, acts.clone()), &[Some(&x), Some(&w), Some(&r), Some(&b)]);
        close(&plain[1], &[0.5 * 2f64.tanh()]);
        let mut o = op(RecurrentKind::Gru, Direction::Forward, acts);
        o.linear_before_reset = true;
        let lbr = run(o, &[Some(&x), Some(&w), Some(&r), Some(&b)]);
        close(&lbr[1], &[0.5 * 1.5f64.tanh()]);
    }

    #[test]
    fn lstm_input_forget_and_peepholes() {
        let x = t(&[1, 1, 1], &[1.0]);
        let w = t(&[1, 4, 1], &[3f64.ln(), 0.0, 0.0, 1.0]);
        let r = t(&[1, 4, 1], &[0.0; 4]);
        let h0 = t(&[1, 1, 1], &[0.0]);
        let c0 = t(&[1, 1, 1], &[2.0]);
        let p = t(&[1, 3], &[0.0, 1.0, 0.0]);
        let acts = vec![Activation::Sigmoid, Activation::Tanh, Activation::Tanh];
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let ins = [Some(&x), Some(&w), Some(&r), None, None, Some(&h0), Some(&c0), Some(&p)];
        let out = run(op(RecurrentKind::Lstm, Direction::Forward, acts.clone()), &ins);
        let c = 0.5 * 2.0 + 0.75 * 1f64.tanh();
        close(&out[2], &[c]);
        close(&out[1], &[sig(c) * c.tanh()]);
        let mut o = op(RecurrentKind::Lstm, Direction::Forward, acts);
        o.input_forget = true;
        let out = run(o, &ins);
        let c = 0.25 * 2.0 + 0.75 * 1f64.tanh();
        close(&out[2], &[c]);
        close(&out[0], &[sig(c) * c.tanh()]);
    }

    #[test]
    fn bad_sequence_length_is_an_error() {
        let x = t(&[1, 1, 1], &[1.0]);
        let w = t(&[1, 1, 1], &[1.0]);
        let lens = Tensor::from_i64_values(DType::I32, Shape::from(&[1][..]), &[5]).unwrap();
        let o = NnOp::Recurrent(op(RecurrentKind::Rnn, Direction::Forward, vec![Activation::Tanh]));
        let ins = [Some(&x), Some(&w), Some(&w), None, Some(&lens)];
        let infos: Vec<_> = ins.iter().map(|t| t.map(kann_ir::TensorInfo::of)).collect();
        let inf: Vec<Option<InferInput>> = ins.iter().zip(&infos).map(|(t, i)| i.as_ref().map(|info| InferInput { info, value: *t })).collect();
        let outs = o.infer(&inf).unwrap();
        assert!(eval(&o, &ins, &outs).is_err());
    }
}
