//! The fused kernel against the two portable convolutions it replaces, on
//! random geometries (every ISA this CPU has, 1–3 parts, every epilogue).

use super::*;
use crate::conv::testutil::*;
use crate::conv::{pack_conv_weights, Conv};
use crate::packed::pack::pack_a;
use crate::packed::tests::{all_activations, isas};

/// A random fused layer: the depthwise geometry (kernel 1–5, stride 1–2,
/// dilation 1–2, padding under the kernel's reach) and a band height.
fn random_layer(rng: &mut Rng, activations: [crate::Activation; 2]) -> PointwiseDepthwise {
    let mut axis = || {
        let (k, s, d) = (1 + rng.below(5), 1 + rng.below(2), 1 + rng.below(2));
        let reach = (k - 1) * d;
        let (pb, pe) = (rng.below(reach + 1), rng.below(reach + 1));
        let inp = (reach + 1).saturating_sub(pb + pe).max(1) + rng.below(30);
        let out = (inp + pb + pe - reach - 1) / s + 1;
        (inp, k, s, d, pb, out)
    };
    let (h, w) = (axis(), axis());
    let e = 1 + rng.below(20);
    let depthwise = DepthwiseConv {
        batch: 1 + rng.below(2),
        in_channels: e,
        out_channels: e,
        input: [h.0, w.0],
        kernel: [h.1, w.1],
        strides: [h.2, w.2],
        dilations: [h.3, w.3],
        pad_begin: [h.4, w.4],
        output: [h.5, w.5],
        epilogue: Epilogue { bias: rng.below(2) == 1, residual: false, activation: activations[1] },
        isa: Isa::Generic,
    };
    let band_rows = 1 + rng.below(h.5);
    let pointwise = Epilogue { bias: rng.below(2) == 1, residual: false, activation: activations[0] };
    PointwiseDepthwise { in_channels: 1 + rng.below(24), depthwise, pointwise, band_rows, isa: Isa::Generic }
}

/// The unfused pair: a 1×1 convolution, then the depthwise one (portable).
fn unfused(k: &PointwiseDepthwise, x: &[f32], pw: &[f32], pw_bias: &[f32], taps: &[f32], dw_bias: &[f32]) -> Vec<f32> {
    let d = &k.depthwise;
    let (c, e) = (k.in_channels, d.out_channels);
    let pointwise = Conv {
        batch: d.batch,
        in_channels: c,
        out_channels: e,
        group: 1,
        input: d.input.to_vec(),
        kernel: vec![1, 1],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pad_begin: vec![0, 0],
        output: d.input.to_vec(),
        epilogue: k.pointwise,
    };
    let mut ins = vec![x.to_vec(), pack_conv_weights(pw)];
    if k.pointwise.bias {
        ins.push(pw_bias.to_vec());
    }
    let mid_len = (d.batch * e * d.input[0] * d.input[1]) as usize;
    let mid = run_parts(&pointwise, &ins, &[mid_len], 1).remove(0);
    let depthwise = Conv {
        batch: d.batch,
        in_channels: e,
        out_channels: e,
        group: e,
        input: d.input.to_vec(),
        kernel: d.kernel.to_vec(),
        strides: d.strides.to_vec(),
        dilations: d.dilations.to_vec(),
        pad_begin: d.pad_begin.to_vec(),
        output: d.output.to_vec(),
        epilogue: d.epilogue,
    };
    let mut ins = vec![mid, pack_conv_weights(taps)];
    if d.epilogue.bias {
        ins.push(dw_bias.to_vec());
    }
    run_parts(&depthwise, &ins, &[out_len(k)], 1).remove(0)
}

fn out_len(k: &PointwiseDepthwise) -> usize {
    let d = &k.depthwise;
    (d.batch * d.out_channels * d.output[0] * d.output[1]) as usize
}

/// Runs `base` on random inputs with every ISA, split in each of `parts`,
/// against the unfused pair.
fn check_against_unfused(base: &PointwiseDepthwise, rng: &mut Rng, parts: &[u64]) {
    let d = &base.depthwise;
    let (c, e) = (base.in_channels as usize, d.out_channels as usize);
    let (kh, kw) = (d.kernel[0] as usize, d.kernel[1] as usize);
    let x = rng.vec(d.batch as usize * c * (d.input[0] * d.input[1]) as usize);
    let (pw, pw_bias, taps, dw_bias) = (rng.vec(e * c), rng.vec(e), rng.vec(e * kh * kw), rng.vec(e));
    let want = unfused(base, &x, &pw, &pw_bias, &taps, &dw_bias);
    for isa in isas() {
        let k = PointwiseDepthwise { isa, depthwise: DepthwiseConv { isa, ..base.depthwise.clone() }, ..base.clone() };
        k.check(3 + usize::from(k.pointwise.bias) + usize::from(d.epilogue.bias), 1).unwrap_or_else(|m| panic!("{m}"));
        let mut ins = vec![x.clone(), pack_a(&pw, e, c, isa, k.k_block())];
        if k.pointwise.bias {
            ins.push(pw_bias.clone());
        }
        ins.push(taps.clone());
        if d.epilogue.bias {
            ins.push(dw_bias.clone());
        }
        for &n in parts {
            let got = run_parts(&k, &ins, &[out_len(&k)], n).remove(0);
            assert_close(&got, &want, 2e-5 * (c as f32).sqrt());
        }
    }
}

#[test]
fn matches_the_unfused_pair_on_random_geometries() {
    let mut rng = Rng(71);
    let acts = all_activations();
    for i in 0..60 {
        let base = random_layer(&mut rng, [acts[i % acts.len()], acts[(i / 3) % acts.len()]]);
        check_against_unfused(&base, &mut rng, &[1, 2, 3]);
    }
}

#[test]
fn expands_from_more_channels_than_a_k_block() {
    // The 1×1's weights span two K blocks: its partial sums meet in the
    // expanded rows before the depthwise reads them.
    let mut rng = Rng(73);
    let acts = all_activations();
    let mut base = random_layer(&mut rng, [acts[1], acts[2]]);
    base.in_channels = crate::packed::KC as u64 + 9;
    check_against_unfused(&base, &mut rng, &[2]);
}

/// Stride-2 layers as MobileNet and EfficientNet have them (3×3 and 5×5,
/// even and odd widths, several bands): on an AVX-512 CPU every band runs
/// the depthwise path over split rows, and the result matches the pair.
#[test]
fn stride_two_bands_read_split_rows() {
    let mut rng = Rng(83);
    let isa = Isa::Avx512;
    // (C, E, input side, kernel, band rows)
    for (c, e, hw, kk, band) in [(16u64, 20u64, 34u64, 3u64, 5u64), (8, 12, 33, 5, 4), (5, 9, 17, 3, 9), (6, 17, 40, 3, 20)] {
        let p = kk / 2;
        let out = (hw + 2 * p - kk) / 2 + 1;
        let relu6 = crate::Activation::Clip { min: 0.0, max: 6.0 };
        let depthwise = DepthwiseConv {
            batch: 1,
            in_channels: e,
            out_channels: e,
            input: [hw, hw],
            kernel: [kk, kk],
            strides: [2, 2],
            dilations: [1, 1],
            pad_begin: [p, p],
            output: [out, out],
            epilogue: Epilogue { bias: true, residual: false, activation: relu6 },
            isa,
        };
        let k = PointwiseDepthwise { in_channels: c, depthwise, pointwise: Epilogue { bias: true, residual: false, activation: relu6 }, band_rows: band, isa };
        if isa.available() {
            for b in 0..k.bands() {
                let (r0, r1) = k.band(b);
                let (y0, y1) = k.input_rows(r0, r1);
                assert!(k.band_conv(r0, r1, y0, y1).register_rows_split(), "band {b} of {k:?} does not read split rows");
            }
        }
        let (cu, eu) = (c as usize, e as usize);
        let x = rng.vec(cu * (hw * hw) as usize);
        let (pw, pw_bias, taps, dw_bias) = (rng.vec(eu * cu), rng.vec(eu), rng.vec(eu * (kk * kk) as usize), rng.vec(eu));
        let want = unfused(&k, &x, &pw, &pw_bias, &taps, &dw_bias);
        for isa in isas() {
            let k = PointwiseDepthwise { isa, depthwise: DepthwiseConv { isa, ..k.depthwise.clone() }, ..k.clone() };
            let ins = [x.clone(), pack_a(&pw, eu, cu, isa, k.k_block()), pw_bias.clone(), taps.clone(), dw_bias.clone()];
            for parts in [1, 3] {
                let got = run_parts(&k, &ins, &[out_len(&k)], parts).remove(0);
                assert_close(&got, &want, 2e-5 * (c as f32).sqrt());
            }
        }
    }
}

#[test]
fn refuses_bands_of_padding_alone_and_residuals() {
    let mut rng = Rng(73);
    let mut k = random_layer(&mut rng, [crate::Activation::None; 2]);
    let n = 3 + usize::from(k.pointwise.bias) + usize::from(k.depthwise.epilogue.bias);
    assert!(k.check(n, 1).is_ok());
    k.pointwise.residual = true;
    assert!(k.check(n, 1).is_err());
    k.pointwise.residual = false;
    // A 1-row input under 3 rows of padding: the first output row reads none.
    k.depthwise.input[0] = 1;
    k.depthwise.kernel[0] = 3;
    k.depthwise.dilations[0] = 1;
    k.depthwise.strides[0] = 1;
    k.depthwise.pad_begin[0] = 3;
    k.depthwise.output[0] = 2;
    k.band_rows = 1;
    assert!(k.check(n, 1).unwrap_err().contains("every band"));
}


/// Times the fused kernel against the packed 1×1 GEMM then the depthwise
/// kernel on MobileNetV2's expand layers (best ISA, one part): `cargo test
/// --release -p kann-kernels fused_vs_pair_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn fused_vs_pair_timing() {
    use crate::conv_gemm::{pack_conv_gemm_weights, ConvGemm, GemmAxis};
    let mut rng = Rng(79);
    let isa = *isas().last().unwrap();
    let relu6 = crate::Activation::Clip { min: 0.0, max: 6.0 };
    // (C, E, input side, stride)
    for (c, e, hw, s) in [(16, 96, 112, 2), (24, 144, 56, 1), (24, 144, 56, 2), (32, 192, 28, 1), (64, 384, 14, 1)] {
        let out = (hw + 2 - 3) / s + 1;
        let dw = DepthwiseConv {
            batch: 1,
            in_channels: e,
            out_channels: e,
            input: [hw, hw],
            kernel: [3, 3],
            strides: [s, s],
            dilations: [1, 1],
            pad_begin: [1, 1],
            output: [out, out],
            epilogue: Epilogue { bias: true, residual: false, activation: relu6 },
            isa,
        };
        let pw = ConvGemm {
            batch: 1,
            in_channels: c,
            out_channels: e,
            group: 1,
            input: [hw, hw],
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pad_begin: [0, 0],
            output: [hw, hw],
            epilogue: Epilogue { bias: true, residual: false, activation: relu6 },
            isa,
            axis: GemmAxis::Columns,
            input_scale: false,
        };
        let (cu, eu) = (c as usize, e as usize);
        let x = rng.vec(cu * (hw * hw) as usize);
        let (w, b, taps, db) = (rng.vec(eu * cu), rng.vec(eu), rng.vec(eu * 9), rng.vec(eu));
        let mid_len = eu * (hw * hw) as usize;
        let t_pw = time_kernel(&pw, &mut [x.clone(), pack_conv_gemm_weights(&w, eu, 1, isa, pw.k_block()), b.clone()], mid_len);
        let t_dw = time_kernel(&dw, &mut [rng.vec(mid_len), taps.clone(), db.clone()], eu * (out * out) as usize);
        for band in [2, 4, 8, 16] {
            let k = PointwiseDepthwise { in_channels: c, depthwise: dw.clone(), pointwise: pw.epilogue, band_rows: band.min(out), isa };
            let t = time_kernel(&k, &mut [x.clone(), pack_a(&w, eu, cu, isa, k.k_block()), b.clone(), taps.clone(), db.clone()], eu * (out * out) as usize);
            println!("C={c} E={e} {hw}x{hw}/{s} band {band}: fused {t:.0} µs, pair {:.0} + {:.0} = {:.0} µs", t_pw, t_dw, t_pw + t_dw);
        }
    }
}
