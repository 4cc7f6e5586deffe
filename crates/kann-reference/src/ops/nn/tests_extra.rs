//! Hand-computed cases for Attention, Einsum, Det, RotaryEmbedding,
//! MaxUnpool and BatchNormalization in training mode.

use super::eval;
use kann_ir::ops::nn::*;
use kann_ir::InferInput;
use kann_tensor::{DType, Shape, Tensor};

fn run(op: &NnOp, inputs: &[Option<&Tensor>]) -> Vec<Tensor> {
    let infos: Vec<_> = inputs.iter().map(|t| t.map(kann_ir::TensorInfo::of)).collect();
    let inf: Vec<Option<InferInput>> = inputs.iter().zip(&infos).map(|(t, i)| i.as_ref().map(|info| InferInput { info, value: *t })).collect();
    let outs = op.infer(&inf).unwrap();
    eval(op, inputs, &outs).unwrap()
}

fn f64s(shape: &[usize], v: Vec<f64>) -> Tensor {
    Tensor::from_f64(DType::F64, Shape::from(shape), &v).unwrap()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
    }
}

fn einsum(eq: &str, inputs: &[&Tensor]) -> Vec<f64> {
    let ins: Vec<Option<&Tensor>> = inputs.iter().map(|t| Some(*t)).collect();
    run(&NnOp::Einsum(Einsum { equation: eq.into() }), &ins)[0].to_f64_vec()
}

#[test]
fn einsum_matmul_trace_diagonal_and_implicit_output() {
    let a = f64s(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
    let b = f64s(&[2, 2], vec![5.0, 6.0, 7.0, 8.0]);
    close(&einsum("ij,jk->ik", &[&a, &b]), &[19.0, 22.0, 43.0, 50.0]);
    close(&einsum("ij,jk", &[&a, &b]), &[19.0, 22.0, 43.0, 50.0]);
    close(&einsum("ii", &[&a]), &[5.0]);
    close(&einsum("ii->i", &[&a]), &[1.0, 4.0]);
    close(&einsum("ji", &[&a]), &[1.0, 3.0, 2.0, 4.0]);
    close(&einsum("...ij->...ji", &[&a]), &[1.0, 3.0, 2.0, 4.0]);
    close(&einsum("ij->", &[&a]), &[10.0]);
}

#[test]
fn det_of_small_matrices() {
    let x = f64s(&[2, 2, 2], vec![1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 1.0, 0.0]);
    close(&run(&NnOp::Det, &[Some(&x)])[0].to_f64_vec(), &[-2.0, -1.0]);
    let y = f64s(&[3, 3], vec![2.0, 0.0, 1.0, 1.0, 3.0, 2.0, 1.0, 1.0, 2.0]);
    close(&run(&NnOp::Det, &[Some(&y)])[0].to_f64_vec(), &[6.0]);
}

fn attention(causal: bool) -> Attention {
    Attention { q_num_heads: None, kv_num_heads: None, scale: None, is_causal: causal, softcap: 0.0, qk_mode: 0, softmax_precision: None, left_window: -1, right_window: -1, outputs: 1 }
}

#[test]
fn attention_causal_first_query_sees_only_first_key() {
    // One head, two queries and keys of size 1; values 10 and 20.
    let q = f64s(&[1, 1, 2, 1], vec![1.0, 1.0]);
    let k = f64s(&[1, 1, 2, 1], vec![0.0, 0.0]);
    let v = f64s(&[1, 1, 2, 1], vec![10.0, 20.0]);
    let y = run(&NnOp::Attention(attention(true)), &[Some(&q), Some(&k), Some(&v)]);
    close(&y[0].to_f64_vec(), &[10.0, 15.0]);
    let y = run(&NnOp::Attention(attention(false)), &[Some(&q), Some(&k), Some(&v)]);
    close(&y[0].to_f64_vec(), &[15.0, 15.0]);
}

#[test]
fn attention_fully_masked_row_is_zero_and_gqa_shares_kv_heads() {
    // Two query heads share one KV head; a boolean mask hides every key from query 0.
    let q = f64s(&[1, 2, 2, 1], vec![1.0, 1.0, 1.0, 1.0]);
    let k = f64s(&[1, 1, 2, 1], vec![0.0, 0.0]);
    let v = f64s(&[1, 1, 2, 1], vec![10.0, 20.0]);
    let mask = Tensor::from_bools(Shape::from(&[2, 2][..]), vec![false, false, true, true]).unwrap();
    let y = run(&NnOp::Attention(attention(false)), &[Some(&q), Some(&k), Some(&v), Some(&mask)]);
    close(&y[0].to_f64_vec(), &[0.0, 15.0, 0.0, 15.0]);
}

#[test]
fn attention_past_cache_is_concatenated() {
    let q = f64s(&[1, 1, 1, 1], vec![1.0]);
    let k = f64s(&[1, 1, 1, 1], vec![0.0]);
    let v = f64s(&[1, 1, 1, 1], vec![30.0]);
    let pk = f64s(&[1, 1, 1, 1], vec![0.0]);
    let pv = f64s(&[1, 1, 1, 1], vec![10.0]);
    let a = Attention { outputs: 3, ..attention(true) };
    let out = run(&NnOp::Attention(a), &[Some(&q), Some(&k), Some(&v), None, Some(&pk), Some(&pv)]);
    close(&out[0].to_f64_vec(), &[20.0]);
    close(&out[2].to_f64_vec(), &[10.0, 30.0]);
}

#[test]
fn rotary_rotates_halves_by_the_cached_angle() {
    // One position, one head of size 2: (x1, x2) = (1, 0) rotated by 90 degrees.
    let x = f64s(&[1, 1, 1, 2], vec![1.0, 0.0]);
    let cos = f64s(&[1, 1, 1], vec![0.0]);
    let sin = f64s(&[1, 1, 1], vec![1.0]);
    let r = RotaryEmbedding { num_heads: None, rotary_dim: 0, interleaved: false };
    close(&run(&NnOp::RotaryEmbedding(r), &[Some(&x), Some(&cos), Some(&sin)])[0].to_f64_vec(), &[0.0, 1.0]);
}

#[test]
fn batch_norm_training_uses_batch_statistics() {
    let x = f64s(&[2, 1], vec![1.0, 3.0]);
    let one = f64s(&[1], vec![1.0]);
    let zero = f64s(&[1], vec![0.0]);
    let bn = BatchNormTraining { epsilon: 0.0, momentum: 0.5, outputs: 3 };
    let out = run(&NnOp::BatchNormTraining(bn), &[Some(&x), Some(&one), Some(&zero), Some(&zero), Some(&one)]);
    close(&out[0].to_f64_vec(), &[-1.0, 1.0]);
    close(&out[1].to_f64_vec(), &[1.0]);
    close(&out[2].to_f64_vec(), &[1.0]);
}

#[test]
fn max_unpool_scatters_to_indices() {
    let x = f64s(&[1, 1, 1, 2], vec![5.0, 6.0]);
    let i = Tensor::from_i64(Shape::from(&[1, 1, 1, 2][..]), vec![1, 2]).unwrap();
    let m = MaxUnpool { kernel_shape: vec![1, 2], strides: vec![1, 2], pads: vec![] };
    close(&run(&NnOp::MaxUnpool(m), &[Some(&x), Some(&i)])[0].to_f64_vec(), &[0.0, 5.0, 6.0, 0.0]);
}
