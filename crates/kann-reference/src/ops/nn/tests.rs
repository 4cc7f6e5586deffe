//! Hand-computed cases and cross-checks of the optimised loop nests
//! against direct, obviously-correct formulations.

use super::eval;
use crate::util::unravel;
use kann_ir::ops::nn::*;
use kann_ir::InferInput;
use kann_tensor::{DType, Data, Shape, Tensor};

/// Infers and evaluates `op` on constant inputs.
fn run(op: &NnOp, inputs: &[Option<&Tensor>]) -> Vec<Tensor> {
    let infos: Vec<_> = inputs.iter().map(|t| t.map(kann_ir::TensorInfo::of)).collect();
    let inf: Vec<Option<InferInput>> = inputs.iter().zip(&infos).map(|(t, i)| i.as_ref().map(|info| InferInput { info, value: *t })).collect();
    let outs = op.infer(&inf).unwrap();
    eval(op, inputs, &outs).unwrap()
}

fn f64s(shape: &[usize], v: Vec<f64>) -> Tensor {
    Tensor::from_f64(DType::F64, Shape::from(shape), &v).unwrap()
}

/// Deterministic pseudo-random values in [-1, 1).
fn noise(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let v = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    f64s(shape, v)
}

fn window(kernel: &[usize], strides: &[usize], dilations: &[usize], pads: &[usize], auto_pad: AutoPad) -> Window {
    Window { kernel_shape: kernel.to_vec(), strides: strides.to_vec(), dilations: dilations.to_vec(), pads: pads.to_vec(), auto_pad, ceil_mode: false }
}

/// Direct convolution: every output element sums its window.
fn naive_conv(x: &Tensor, w: &Tensor, attrs: &ConvAttrs) -> Vec<f64> {
    let plan = attrs.plan(x.dims(), w.dims()).unwrap();
    let (xd, wd) = (x.dims(), w.dims());
    let (xv, wv) = (x.to_f64_vec(), w.to_f64_vec());
    let (cg, mg) = (xd[1] / attrs.group, wd[0] / attrs.group);
    let mut out_dims = vec![xd[0], wd[0]];
    out_dims.extend(&plan.out);
    let n: usize = out_dims.iter().product();
    (0..n)
        .map(|i| {
            let o = unravel(i, &out_dims);
            let g = o[1] / mg;
            let mut acc = 0.0;
            for ci in 0..cg {
                for kf in 0..plan.kernel.iter().product() {
                    let k = unravel(kf, &plan.kernel);
                    let mut xi = vec![o[0], g * cg + ci];
                    let mut inside = true;
                    for a in 0..k.len() {
                        let p = o[a + 2] as i64 * plan.strides[a] as i64 - plan.pad_begin[a] + (k[a] * plan.dilations[a]) as i64;
                        inside &= p >= 0 && p < xd[a + 2] as i64;
                        xi.push(p.max(0) as usize);
                    }
                    if inside {
                        let mut wi = vec![o[1], ci];
                        wi.extend(&k);
                        acc += xv[flat(&xi, xd)] * wv[flat(&wi, wd)];
                    }
                }
            }
            acc
        })
        .collect()
}

/// Direct transposed convolution: every input element scatters its products.
fn naive_conv_transpose(x: &Tensor, w: &Tensor, ct: &ConvTranspose) -> Vec<f64> {
    let plan = ct.plan(x.dims(), w.dims()).unwrap();
    let (xd, wd) = (x.dims(), w.dims());
    let (xv, wv) = (x.to_f64_vec(), w.to_f64_vec());
    let (cg, mg) = (xd[1] / ct.group, wd[1]);
    let mut out_dims = vec![xd[0], mg * ct.group];
    out_dims.extend(&plan.out);
    let mut y = vec![0.0; out_dims.iter().product()];
    for (i, &xval) in xv.iter().enumerate() {
        let xi = unravel(i, xd);
        let g = xi[1] / cg;
        for mo in 0..mg {
            for kf in 0..plan.kernel.iter().product() {
                let k = unravel(kf, &plan.kernel);
                let mut oi = vec![xi[0], g * mg + mo];
                let mut inside = true;
                for a in 0..k.len() {
                    let p = xi[a + 2] as i64 * plan.strides[a] as i64 - plan.pad_begin[a] + (k[a] * plan.dilations[a]) as i64;
                    inside &= p >= 0 && p < plan.out[a] as i64;
                    oi.push(p.max(0) as usize);
                }
                if inside {
                    let mut wi = vec![xi[1], mo];
                    wi.extend(&k);
                    y[flat(&oi, &out_dims)] += xval * wv[flat(&wi, wd)];
                }
            }
        }
    }
    y
}

fn flat(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |f, (&i, &d)| f * d + i)
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-9 * (1.0 + w.abs()), "element {i}: got {g}, want {w}");
    }
}

#[test]
fn conv_matches_direct_formulation() {
    let cases: Vec<(Vec<usize>, Vec<usize>, Window, usize)> = vec![
        (vec![2, 3, 7, 6], vec![4, 3, 3, 3], window(&[], &[], &[], &[1, 1, 1, 1], AutoPad::NotSet), 1),
        (vec![1, 4, 9, 8], vec![6, 2, 3, 2], window(&[3, 2], &[2, 3], &[1, 2], &[2, 0, 1, 3], AutoPad::NotSet), 2),
        (vec![1, 4, 5, 5], vec![4, 1, 3, 3], window(&[], &[2, 2], &[], &[], AutoPad::SameLower), 4),
        (vec![2, 2, 11], vec![3, 2, 4], window(&[], &[3], &[2], &[], AutoPad::SameUpper), 1),
        (vec![1, 2, 4, 5, 6], vec![2, 2, 2, 3, 2], window(&[], &[1, 2, 1], &[], &[1, 0, 1, 0, 2, 1], AutoPad::NotSet), 1),
        (vec![1, 1, 3, 3], vec![1, 1, 5, 5], window(&[], &[], &[], &[2, 2, 2, 2], AutoPad::NotSet), 1),
        (vec![1, 2, 6, 6], vec![2, 2, 2, 2], window(&[], &[], &[], &[], AutoPad::Valid), 1),
    ];
    for (i, (xs, ws, win, group)) in cases.into_iter().enumerate() {
        let (x, w, b) = (noise(&xs, i as u64), noise(&ws, 100 + i as u64), noise(&[ws[0]], 200 + i as u64));
        let attrs = ConvAttrs { window: win, group };
        let got = run(&NnOp::Conv(Conv { attrs: attrs.clone() }), &[Some(&x), Some(&w), None]);
        assert_close(&got[0].to_f64_vec(), &naive_conv(&x, &w, &attrs));
        let with_bias = run(&NnOp::Conv(Conv { attrs: attrs.clone() }), &[Some(&x), Some(&w), Some(&b)]);
        let plane: usize = with_bias[0].dims()[2..].iter().product();
        let want: Vec<f64> = naive_conv(&x, &w, &attrs).iter().enumerate().map(|(j, v)| v + b.to_f64_vec()[(j / plane) % ws[0]]).collect();
        assert_close(&with_bias[0].to_f64_vec(), &want);
    }
}

#[test]
fn conv_transpose_matches_direct_formulation() {
    let ct = |win: Window, group: usize, output_padding: Vec<usize>, output_shape: Vec<usize>| ConvTranspose { window: win, group, output_padding, output_shape };
    let cases = vec![
        (vec![1, 2, 3, 3], vec![2, 3, 3, 3], ct(window(&[], &[], &[], &[], AutoPad::NotSet), 1, vec![], vec![])),
        (vec![2, 4, 4, 3], vec![4, 1, 3, 2], ct(window(&[], &[2, 3], &[1, 2], &[1, 0, 2, 1], AutoPad::NotSet), 2, vec![1, 1], vec![])),
        (vec![1, 1, 5], vec![1, 2, 3], ct(window(&[], &[2], &[], &[], AutoPad::SameUpper), 1, vec![], vec![])),
        (vec![1, 1, 3, 3], vec![1, 2, 3, 3], ct(window(&[], &[3, 2], &[], &[], AutoPad::NotSet), 1, vec![], vec![10, 8])),
        (vec![1, 2, 2, 3, 2], vec![2, 2, 2, 2, 3], ct(window(&[], &[2, 1, 2], &[], &[], AutoPad::NotSet), 1, vec![], vec![])),
    ];
    for (i, (xs, ws, op)) in cases.into_iter().enumerate() {
        let (x, w) = (noise(&xs, i as u64), noise(&ws, 50 + i as u64));
        let got = run(&NnOp::ConvTranspose(op.clone()), &[Some(&x), Some(&w)]);
        assert_close(&got[0].to_f64_vec(), &naive_conv_transpose(&x, &w, &op));
    }
}

#[test]
fn conv_transpose_known_values() {
    // 1-D: x = [1, 2], w = [1, 1, 1], stride 2 → [1, 1, 3, 2, 2].
    let op = NnOp::ConvTranspose(ConvTranspose { window: window(&[], &[2], &[], &[], AutoPad::NotSet), group: 1, output_padding: vec![], output_shape: vec![] });
    let y = run(&op, &[Some(&f64s(&[1, 1, 2], vec![1.0, 2.0])), Some(&f64s(&[1, 1, 3], vec![1.0; 3]))]);
    assert_eq!(y[0].to_f64_vec(), vec![1.0, 1.0, 3.0, 2.0, 2.0]);
}

#[test]
fn gemm_and_matmul() {
    let a = f64s(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = f64s(&[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let y = run(&NnOp::MatMul, &[Some(&a), Some(&b)]);
    assert_eq!(y[0].to_f64_vec(), vec![4.0, 5.0, 10.0, 11.0]);
    // Gemm with transposed operands and a row-vector C.
    let at = f64s(&[3, 2], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let bt = f64s(&[2, 3], vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
    let c = f64s(&[2], vec![10.0, 20.0]);
    let g = NnOp::Gemm(Gemm { alpha: 2.0, beta: 0.5, trans_a: true, trans_b: true });
    let y = run(&g, &[Some(&at), Some(&bt), Some(&c)]);
    assert_eq!(y[0].to_f64_vec(), vec![13.0, 20.0, 25.0, 32.0]);
    // Batched broadcasting with a 1-D operand.
    let a3 = noise(&[2, 1, 3, 4], 1);
    let v = noise(&[4], 2);
    let y = run(&NnOp::MatMul, &[Some(&a3), Some(&v)]);
    assert_eq!(y[0].dims(), &[2, 1, 3]);
    let (av, vv) = (a3.to_f64_vec(), v.to_f64_vec());
    let want: Vec<f64> = (0..6).map(|r| (0..4).map(|k| av[r * 4 + k] * vv[k]).sum()).collect();
    assert_close(&y[0].to_f64_vec(), &want);
}

#[test]
fn integer_products_subtract_zero_points() {
    let a = Tensor::new(Shape::from([2, 2]), Data::U8(vec![10, 20, 30, 40])).unwrap();
    let b = Tensor::new(Shape::from([2, 1]), Data::U8(vec![1, 2])).unwrap();
    let az = Tensor::new(Shape::from([]), Data::U8(vec![10])).unwrap();
    let y = run(&NnOp::MatMulInteger, &[Some(&a), Some(&b), Some(&az), None]);
    assert_eq!(y[0].data(), &Data::I32(vec![20, 80]));
}

#[test]
fn quantize_rounds_half_to_even_and_saturates() {
    let x = f64s(&[6], vec![0.5, 1.5, 2.5, -0.5, 300.0, -300.0]);
    let s = Tensor::from_f32(Shape::from([]), vec![1.0]).unwrap();
    let y = run(&NnOp::QuantizeLinear(QuantizeLinear { axis: 1, output_dtype: None, precision: None }), &[Some(&x), Some(&s), None]);
    assert_eq!(y[0].data(), &Data::U8(vec![0, 2, 2, 0, 255, 0]));
    let z = Tensor::new(Shape::from([]), Data::I8(vec![1])).unwrap();
    let y = run(&NnOp::QuantizeLinear(QuantizeLinear { axis: 1, output_dtype: None, precision: None }), &[Some(&x), Some(&s), Some(&z)]);
    assert_eq!(y[0].data(), &Data::I8(vec![1, 3, 3, 1, 127, -128]));
    // Per-axis dequantisation along axis 1 of [2, 2].
    let q = Tensor::new(Shape::from([2, 2]), Data::U8(vec![1, 2, 3, 4])).unwrap();
    let sc = Tensor::from_f32(Shape::from([2]), vec![1.0, 10.0]).unwrap();
    let zp = Tensor::new(Shape::from([2]), Data::U8(vec![1, 0])).unwrap();
    let y = run(&NnOp::DequantizeLinear(DequantizeLinear { axis: 1, output_dtype: None }), &[Some(&q), Some(&sc), Some(&zp)]);
    assert_eq!(y[0].to_f64_vec(), vec![0.0, 20.0, 2.0, 40.0]);
}

#[test]
fn pools_handle_padding_and_ceil_mode() {
    let x = f64s(&[1, 1, 4], vec![1.0, 2.0, 3.0, 4.0]);
    let mut w = window(&[3], &[2], &[], &[1, 1], AutoPad::NotSet);
    let avg = |incl: bool, w: &Window| NnOp::Pool(Pool { kind: PoolKind::Average { count_include_pad: incl }, window: w.clone(), column_major_indices: false, with_indices: false });
    assert_eq!(run(&avg(false, &w), &[Some(&x)])[0].to_f64_vec(), vec![1.5, 3.0]);
    assert_eq!(run(&avg(true, &w), &[Some(&x)])[0].to_f64_vec(), vec![1.0, 3.0]);
    w.ceil_mode = true;
    w.pads = vec![0, 0];
    // Ceil mode adds a last window covering only [4]; include_pad does not count beyond the pads.
    assert_eq!(run(&avg(true, &w), &[Some(&x)])[0].to_f64_vec(), vec![2.0, 3.5]);
    let max = NnOp::Pool(Pool { kind: PoolKind::Max, window: window(&[2, 2], &[], &[], &[], AutoPad::NotSet), column_major_indices: true, with_indices: true });
    let x2 = f64s(&[1, 1, 2, 3], vec![1.0, 9.0, 2.0, 3.0, 4.0, 8.0]);
    let y = run(&max, &[Some(&x2)]);
    assert_eq!(y[0].to_f64_vec(), vec![9.0, 9.0]);
    // Element (0, 1) is index 2 column-major in a 2×3 plane.
    assert_eq!(y[1].to_i64_vec(), vec![2, 2]);
}

#[test]
fn softmax_forms() {
    let x = f64s(&[2, 2], vec![0.0, 0.0, 1.0, 1.0]);
    let legacy = NnOp::Softmax(Softmax { kind: SoftmaxKind::Softmax, axis: 0, flatten: true });
    assert_close(&run(&legacy, &[Some(&x)])[0].to_f64_vec(), &{
        let e = std::f64::consts::E;
        let s = 2.0 + 2.0 * e;
        vec![1.0 / s, 1.0 / s, e / s, e / s]
    });
    let hard = NnOp::Softmax(Softmax { kind: SoftmaxKind::Hardmax, axis: -1, flatten: false });
    assert_eq!(run(&hard, &[Some(&x)])[0].to_f64_vec(), vec![1.0, 0.0, 1.0, 0.0]);
}

#[test]
fn lrn_sums_over_neighbouring_channels() {
    let x = f64s(&[1, 3, 1, 1], vec![1.0, 2.0, 3.0]);
    let op = NnOp::Lrn(Lrn { size: 2, alpha: 2.0, beta: 1.0, bias: 1.0 });
    // size 2: channel c sums c and c+1.
    let want = [1.0 / (1.0 + 5.0), 2.0 / (1.0 + 13.0), 3.0 / (1.0 + 9.0)];
    assert_close(&run(&op, &[Some(&x)])[0].to_f64_vec(), &want);
}

#[test]
fn group_norm_per_group_and_per_channel() {
    let x = f64s(&[1, 4, 1], vec![1.0, 3.0, 5.0, 9.0]);
    let ones = f64s(&[4], vec![1.0, 1.0, 2.0, 2.0]);
    let zeros = f64s(&[4], vec![0.0; 4]);
    let op = NnOp::GroupNorm(GroupNorm { num_groups: 2, epsilon: 0.0, per_group_affine: false });
    assert_close(&run(&op, &[Some(&x), Some(&ones), Some(&zeros)])[0].to_f64_vec(), &[-1.0, 1.0, -2.0, 2.0]);
}

#[test]
fn batch_and_layer_norm() {
    let x = f64s(&[1, 2, 1, 1], vec![1.0, 2.0]);
    let p = |v: [f64; 2]| f64s(&[2], v.to_vec());
    let (scale, b, mean, var) = (p([2.0, 3.0]), p([0.0, 1.0]), p([0.0, 1.0]), p([1.0, 4.0]));
    let y = run(&NnOp::BatchNorm(BatchNorm { epsilon: 0.0 }), &[Some(&x), Some(&scale), Some(&b), Some(&mean), Some(&var)]);
    assert_eq!(y[0].to_f64_vec(), vec![2.0, 2.5]);

    let x = f64s(&[2, 2], vec![1.0, 3.0, 0.0, 4.0]);
    let ones = f64s(&[2], vec![1.0, 1.0]);
    let op = NnOp::LayerNorm(LayerNorm { axis: -1, epsilon: 0.0, stash: DType::F32, outputs: 3 });
    let y = run(&op, &[Some(&x), Some(&ones), None]);
    assert_eq!(y[0].to_f64_vec(), vec![-1.0, 1.0, -1.0, 1.0]);
    assert_eq!((y[1].dims(), y[1].dtype()), (&[2usize, 1][..], DType::F32));
    assert_eq!(y[1].to_f64_vec(), vec![2.0, 2.0]);
    assert_eq!(y[2].to_f64_vec(), vec![1.0, 0.5]);
}

#[test]
fn legacy_softmax_normalises_the_flattened_tail() {
    let x = f64s(&[1, 2, 2], vec![0.0; 4]);
    let op = NnOp::Softmax(Softmax { kind: SoftmaxKind::LogSoftmax, axis: 1, flatten: true });
    assert_close(&run(&op, &[Some(&x)])[0].to_f64_vec(), &[-(4.0f64.ln()); 4]);
    let op = NnOp::Softmax(Softmax { kind: SoftmaxKind::Softmax, axis: 1, flatten: false });
    assert_close(&run(&op, &[Some(&x)])[0].to_f64_vec(), &[0.5; 4]);
}
