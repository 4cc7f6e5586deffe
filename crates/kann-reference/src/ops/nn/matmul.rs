//! Matrix products in f64 with row accumulators (i-k-j order), exact for the
//! integer forms.

use super::{at, finish, input, round_to, saturate, values_or};
use crate::util::broadcast_index;
use crate::EvalError;
use kann_ir::ops::nn::matmul::{plan_matmul, MatMulPlan};
use kann_ir::ops::nn::Gemm;
use kann_ir::TensorInfo;
use kann_tensor::{DType, Tensor};

/// Right-hand operand data: f32 is read in place (weight matrices can be
/// hundreds of megabytes), anything else is converted to f64 once.
enum Rhs<'a> {
    F32(&'a [f32]),
    F64(Vec<f64>),
}

impl Rhs<'_> {
    fn of(t: &Tensor) -> Rhs<'_> {
        match t.as_f32() {
            Ok(v) => Rhs::F32(v),
            Err(_) => Rhs::F64(t.to_f64_vec()),
        }
    }
}

/// `out[m×n] += a[m×k] · b[k×n]`, all row-major.
fn matmul_acc<T: Copy + Into<f64>>(a: &[f64], b: &[T], m: usize, k: usize, n: usize, out: &mut [f64]) {
    for i in 0..m {
        let row = &mut out[i * n..(i + 1) * n];
        for (p, &av) in a[i * k..(i + 1) * k].iter().enumerate() {
            for (o, &bv) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *o += av * bv.into();
            }
        }
    }
}

/// `out[m×n] += a[m×k] · bᵀ` with b stored `[n×k]`: dot products of rows.
fn matmul_bt_acc<T: Copy + Into<f64>>(a: &[f64], b: &[T], m: usize, k: usize, n: usize, out: &mut [f64]) {
    for i in 0..m {
        let ar = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let br = &b[j * k..(j + 1) * k];
            out[i * n + j] += ar.iter().zip(br).map(|(&x, &y)| x * y.into()).sum::<f64>();
        }
    }
}

/// The transpose of an `r×c` row-major matrix.
fn transpose(v: &[f64], r: usize, c: usize) -> Vec<f64> {
    let mut t = vec![0.0; v.len()];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = v[i * c + j];
        }
    }
    t
}

pub fn gemm(g: &Gemm, inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (a, b) = (input(inputs, 0, "A")?, input(inputs, 1, "B")?);
    let (m, k, n) = g.dims(a.dims(), b.dims())?;
    let av = if g.trans_a { transpose(&a.to_f64_vec(), k, m) } else { a.to_f64_vec() };
    let mut y = vec![0.0; m * n];
    match (Rhs::of(b), g.trans_b) {
        (Rhs::F32(bv), true) => matmul_bt_acc(&av, bv, m, k, n, &mut y),
        (Rhs::F32(bv), false) => matmul_acc(&av, bv, m, k, n, &mut y),
        (Rhs::F64(bv), true) => matmul_bt_acc(&av, &bv, m, k, n, &mut y),
        (Rhs::F64(bv), false) => matmul_acc(&av, &bv, m, k, n, &mut y),
    }
    y.iter_mut().for_each(|v| *v *= g.alpha);
    if let Some(c) = inputs.get(2).copied().flatten() {
        let cv = c.to_f64_vec();
        for (v, &ci) in y.iter_mut().zip(&broadcast_index(c.dims(), &[m, n])) {
            *v += g.beta * cv[ci];
        }
    }
    finish(out, &y)
}

/// Batched `matmul` of prepared f64 operands by the plan's broadcasting.
fn batched(plan: &MatMulPlan, a: &[f64], b: &Rhs) -> Vec<f64> {
    let (m, k, n) = (plan.m, plan.k, plan.n);
    let ia = broadcast_index(&plan.a_batch, &plan.batch);
    let ib = broadcast_index(&plan.b_batch, &plan.batch);
    let mut y = vec![0.0; ia.len() * m * n];
    for (t, (&i, &j)) in ia.iter().zip(&ib).enumerate() {
        let (ar, yr) = (&a[i * m * k..(i + 1) * m * k], &mut y[t * m * n..(t + 1) * m * n]);
        match b {
            Rhs::F32(bv) => matmul_acc(ar, &bv[j * k * n..(j + 1) * k * n], m, k, n, yr),
            Rhs::F64(bv) => matmul_acc(ar, &bv[j * k * n..(j + 1) * k * n], m, k, n, yr),
        }
    }
    y
}

pub fn matmul(inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (a, b) = (input(inputs, 0, "A")?, input(inputs, 1, "B")?);
    let plan = plan_matmul(a.dims(), b.dims())?;
    finish(out, &batched(&plan, &a.to_f64_vec(), &Rhs::of(b)))
}

/// `a - zp[row]` for A's rows and `b - zp[column]` for B's columns.
fn shift_operands(plan: &MatMulPlan, a: &Tensor, a_zp: &[f64], b: &Tensor, b_zp: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (k, n) = (plan.k.max(1), plan.n.max(1));
    let av = a.to_f64_vec().into_iter().enumerate().map(|(i, v)| v - at(a_zp, (i / k) % plan.m.max(1))).collect();
    let bv = b.to_f64_vec().into_iter().enumerate().map(|(i, v)| v - at(b_zp, i % n)).collect();
    (av, bv)
}

pub fn matmul_integer(inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (a, b) = (input(inputs, 0, "A")?, input(inputs, 1, "B")?);
    let plan = plan_matmul(a.dims(), b.dims())?;
    let (av, bv) = shift_operands(&plan, a, &values_or(inputs, 2, 0.0), b, &values_or(inputs, 3, 0.0));
    finish(out, &batched(&plan, &av, &Rhs::F64(bv)))
}

pub fn qlinear_matmul(inputs: &[Option<&Tensor>], out: &TensorInfo) -> Result<Tensor, EvalError> {
    let (a, b) = (input(inputs, 0, "a")?, input(inputs, 3, "b")?);
    let plan = plan_matmul(a.dims(), b.dims())?;
    let (av, bv) = shift_operands(&plan, a, &values_or(inputs, 2, 0.0), b, &values_or(inputs, 5, 0.0));
    let mut y = batched(&plan, &av, &Rhs::F64(bv));
    let a_scale = input(inputs, 1, "a_scale")?;
    let d = if a_scale.dtype() == DType::F64 { DType::F64 } else { a_scale.dtype() };
    let (sa, sb, sy) = (a_scale.to_f64_vec(), values_or(inputs, 4, 1.0), values_or(inputs, 6, 1.0));
    let zy = values_or(inputs, 7, 0.0);
    let (m, n) = (plan.m.max(1), plan.n.max(1));
    for (i, v) in y.iter_mut().enumerate() {
        let (row, col) = ((i / n) % m, i % n);
        // Scales combine in their own precision, as the ONNX reference does.
        let mult = round_to(d, round_to(d, at(&sa, row) * at(&sb, col)) / at(&sy, row));
        *v = saturate(out.dtype, *v * mult + at(&zy, row));
    }
    finish(out, &y)
}
