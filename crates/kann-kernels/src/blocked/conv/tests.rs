use super::*;
use crate::blocked::{to_blocked, to_planar};
use crate::conv::testutil::*;
use crate::conv::{pack_conv_weights, Conv};
use crate::Activation;

use crate::blocked::testutil::{activation, alternate, per_image};

/// The portable NCHW convolution with the same geometry.
fn as_conv(k: &BlockedConv) -> Conv {
    Conv {
        batch: k.batch,
        in_channels: k.in_channels,
        out_channels: k.out_channels,
        group: k.group,
        input: k.input.to_vec(),
        kernel: k.kernel.to_vec(),
        strides: k.strides.to_vec(),
        dilations: k.dilations.to_vec(),
        pad_begin: k.pad_begin.to_vec(),
        output: k.output.to_vec(),
        epilogue: k.epilogue,
    }
}

/// Output extent of an axis of `n` with kernel `k`, stride `s`,
/// dilation `d`, padding `p` before and `e` after.
fn out_len(n: u64, k: u64, s: u64, d: u64, p: u64, e: u64) -> u64 {
    (n + p + e - (k - 1) * d - 1) / s + 1
}

/// Checks `k` with every available ISA, in 1, 2 and 3 parts, against the
/// portable convolution on random values.
fn check(k: &BlockedConv, rng: &mut Rng) {
    let (n, c, m) = (k.batch as usize, k.in_channels as usize, k.out_channels as usize);
    let (ihw, ohw) = ((k.input[0] * k.input[1]) as usize, (k.output[0] * k.output[1]) as usize);
    let taps = (k.kernel[0] * k.kernel[1]) as usize;
    let x = rng.vec(n * c * ihw);
    let w = rng.vec(m * c / k.group as usize * taps);
    let bias = rng.vec(m);
    let residual = rng.vec(n * m * ohw);
    let mut conv_ins = vec![x.clone(), pack_conv_weights(&w)];
    let mut ins = vec![per_image(&x, c, ihw, to_blocked), pack_blocked_conv_weights(&w, m, k.group as usize, taps)];
    if k.epilogue.bias {
        conv_ins.push(bias.clone());
        ins.push(bias);
    }
    if k.epilogue.residual {
        conv_ins.push(residual.clone());
        ins.push(per_image(&residual, m, ohw, to_blocked));
    }
    let want = run_parts(&as_conv(k), &conv_ins, &[n * m * ohw], 1);
    for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
        let k = BlockedConv { isa, ..k.clone() };
        for parts in [1, 2, 3] {
            let got = run_parts(&k, &ins, &[n * m * ohw], parts);
            assert_close(&per_image(&got[0], m, ohw, to_planar), &want[0], 1e-4);
        }
    }
}

/// A random geometry: groups of 8 to 32 channels in and out (or dense
/// up to 48 in), kernels 1 to 5, strides 1 to 2 (3 sometimes), dilations
/// 1 and 2, random padding, maps 1×1 to 30×30.
fn random(rng: &mut Rng, epilogue: Epilogue) -> BlockedConv {
    let (kh, kw) = (1 + rng.below(5), 1 + rng.below(5));
    let s = |rng: &mut Rng| if rng.below(6) == 0 { 3 } else { 1 + rng.below(2) };
    let (sh, sw) = (s(rng), s(rng));
    let (dh, dw) = (1 + rng.below(2), 1 + rng.below(2));
    let (ph, pw) = (rng.below(kh), rng.below(kw));
    let (eh, ew) = (rng.below(ph + 1), rng.below(pw + 1));
    // At least one output: the padded input covers the window.
    // At least the window less the padding (at most 9), at most 30.
    let side = |rng: &mut Rng, k: u64, d: u64, p: u64, e: u64| {
        let most = if rng.below(4) == 0 { 22 } else { 10 };
        ((k - 1) * d + 1).saturating_sub(p + e).max(1) + rng.below(most)
    };
    let (ih, iw) = (side(rng, kh, dh, ph, eh), side(rng, kw, dw, pw, ew));
    let (group, cg, mg) = if rng.below(3) == 0 { (1, 8 * (1 + rng.below(6)), 8 * (1 + rng.below(7))) } else { (1 + rng.below(3), 8 * (1 + rng.below(4)), 8 * (1 + rng.below(4))) };
    BlockedConv {
        batch: 1 + rng.below(2),
        in_channels: group * cg,
        out_channels: group * mg,
        group,
        input: [ih, iw],
        output: [out_len(ih, kh, sh, dh, ph, eh), out_len(iw, kw, sw, dw, pw, ew)],
        kernel: [kh, kw],
        strides: [sh, sw],
        dilations: [dh, dw],
        pad_begin: [ph, pw],
        epilogue,
        isa: Isa::Generic,
    }
}

#[test]
fn matches_the_portable_conv_on_random_geometries() {
    let mut rng = Rng(31);
    for case in 0..120 {
        let e = Epilogue { bias: rng.below(2) == 0, residual: rng.below(2) == 0, activation: activation(case) };
        let k = random(&mut rng, e);
        assert!(k.check(2 + usize::from(e.bias) + usize::from(e.residual), 1).is_ok(), "{k:?}");
        check(&k, &mut rng);
    }
}

#[test]
fn regnet_grouped_and_projection_shapes() {
    let mut rng = Rng(37);
    // 24 channels a group, 3×3, pad 1, stride 1 and 2, at 56/28/14/7
    // (a few groups' worth each).
    for (hw, s, groups) in [(56u64, 1u64, 1u64), (56, 2, 2), (28, 1, 2), (28, 2, 3), (14, 1, 3), (14, 2, 2), (7, 1, 4), (7, 2, 1)] {
        let out = out_len(hw, 3, s, 1, 1, 1);
        let e = Epilogue { bias: true, residual: s == 1, activation: Activation::Relu };
        let k = BlockedConv { batch: 1, in_channels: 24 * groups, out_channels: 24 * groups, group: groups, input: [hw, hw], output: [out, out], kernel: [3, 3], strides: [s, s], dilations: [1, 1], pad_begin: [1, 1], epilogue: e, isa: Isa::Generic };
        assert_eq!(k.work_items(), groups * out);
        check(&k, &mut rng);
    }
    // Strided 1×1 projections, dense: read in place.
    for (c, m, hw) in [(16u64, 24u64, 20u64), (24, 56, 14), (32, 72, 9)] {
        let out = hw.div_ceil(2);
        let e = Epilogue { bias: true, residual: false, activation: Activation::None };
        let k = BlockedConv { batch: 2, in_channels: c, out_channels: m, group: 1, input: [hw, hw], output: [out, out], kernel: [1, 1], strides: [2, 2], dilations: [1, 1], pad_begin: [0, 0], epilogue: e, isa: Isa::Generic };
        assert!(k.geom().in_place());
        check(&k, &mut rng);
    }
}

#[test]
fn dense_layers_take_their_steps_in_passes() {
    // 64 and 136 channels in: 576 and 1224 steps, several passes for each
    // chunk (21 steps a pass for three blocks); 1, 2 and 3 parts cut rows.
    let mut rng = Rng(43);
    for (c, m, hw, s, act) in [(64u64, 40u64, 9u64, 2u64, Activation::Relu), (136, 24, 6, 1, Activation::Sigmoid), (64, 72, 5, 1, Activation::None)] {
        assert!(c as usize / BLOCK * 9 > 3 * pass_steps(3));
        let out = out_len(hw, 3, s, 1, 1, 1);
        let e = Epilogue { bias: true, residual: s == 1, activation: act };
        let k = BlockedConv { batch: 2, in_channels: c, out_channels: m, group: 1, input: [hw, hw], output: [out, out], kernel: [3, 3], strides: [s, s], dilations: [1, 1], pad_begin: [1, 1], epilogue: e, isa: Isa::Generic };
        check(&k, &mut rng);
    }
}

#[test]
fn spans_cover_each_item_once() {
    // [N][group][oh][chunk]: every part of 2 images × 3 groups × 5 rows ×
    // 4 chunks, cut anywhere, is its items exactly.
    let (n_chunks, oh, groups) = (4usize, 5usize, 3usize);
    let total = 2 * groups * oh * n_chunks;
    for start in 0..total {
        for end in start..=total {
            let mut seen = Vec::new();
            for sp in spans(start as u64..end as u64, n_chunks, oh, groups) {
                assert!(sp.oys >= 1 && sp.oy0 + sp.oys <= oh && sp.chunks.end <= n_chunks && !sp.chunks.is_empty());
                for oy in sp.oy0..sp.oy0 + sp.oys {
                    for ch in sp.chunks.clone() {
                        seen.push(((sp.b * groups + sp.gi) * oh + oy) * n_chunks + ch);
                    }
                }
            }
            seen.sort_unstable();
            assert_eq!(seen, (start..end).collect::<Vec<_>>(), "part {start}..{end}");
        }
    }
}

#[test]
fn every_chunk_and_every_last_tile() {
    // 1 to 7 blocks a group (every chunking), bands of 1 to 17 outputs
    // (every narrower last tile), one 3×3 pad 1 row or two.
    let mut rng = Rng(41);
    for blocks in 1..=7u64 {
        for ow in [1u64, 2, 3, 5, 7, 9, 13, 17] {
            let e = Epilogue { bias: ow % 2 == 1, residual: blocks % 2 == 0, activation: activation((blocks + ow) as usize) };
            let oh = 1 + blocks % 2;
            let k = BlockedConv { batch: 1, in_channels: 16, out_channels: 8 * blocks, group: 1, input: [oh, ow], output: [oh, ow], kernel: [3, 3], strides: [1, 1], dilations: [1, 1], pad_begin: [1, 1], epilogue: e, isa: Isa::Generic };
            check(&k, &mut rng);
        }
    }
}

#[test]
fn packs_chunks_and_names_and_checks() {
    let all = |b| chunks(b).collect::<Vec<_>>();
    assert_eq!(all(1), [(0, 1)]);
    assert_eq!(all(2), [(0, 2)]);
    assert_eq!(all(3), [(0, 3)]);
    assert_eq!(all(4), [(0, 2), (2, 2)]);
    assert_eq!(all(5), [(0, 3), (3, 2)]);
    assert_eq!(all(7), [(0, 3), (3, 2), (5, 2)]);
    // 8 outputs, 8 inputs, 2 taps: [block][tap][lane][8 outputs].
    let w: Vec<f32> = (0..128).map(|i| i as f32).collect();
    let p = pack_blocked_conv_weights(&w, 8, 1, 2);
    // Output o, input ci, tap t is w[(o · 8 + ci) · 2 + t].
    assert_eq!(&p[..8], &[0.0, 16.0, 32.0, 48.0, 64.0, 80.0, 96.0, 112.0], "tap 0 of channel 0");
    assert_eq!(&p[8..16], &[2.0, 18.0, 34.0, 50.0, 66.0, 82.0, 98.0, 114.0], "tap 0 of channel 1");
    assert_eq!(&p[64..72], &[1.0, 17.0, 33.0, 49.0, 65.0, 81.0, 97.0, 113.0], "tap 1 of channel 0");
    let k = BlockedConv { batch: 2, in_channels: 72, out_channels: 72, group: 3, input: [14, 14], output: [7, 7], kernel: [3, 3], strides: [2, 2], dilations: [1, 1], pad_begin: [1, 1], epilogue: Epilogue::default(), isa: Isa::Avx2 };
    assert_eq!(k.name(), "f32_conv2d_nchw8c_avx2");
    assert_eq!(k.work_items(), 2 * 3 * 7);
    assert!(k.check(2, 1).is_ok());
    assert!(k.check(3, 1).is_err());
    let dense = BlockedConv { in_channels: 408, out_channels: 912, group: 1, kernel: [1, 1], pad_begin: [0, 0], ..k.clone() };
    assert_eq!(dense.work_items(), 2 * 38 * 7, "a dense layer splits by chunks too");
    let odd = BlockedConv { group: 6, ..k };
    assert!(odd.check(2, 1).unwrap_err().contains("multiples of 8"));
}

/// Microseconds of the blocked convolution against the NCHW grouped
/// kernel on RegNet-X-1.6GF's grouped 3×3 layers, and against the GEMM on
/// its strided 1×1 projections (median of 41, alternated); not a test of
/// correctness:
/// `cargo test --release -p kann-kernels --lib blocked_conv_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn blocked_conv_timing() {
    use crate::conv_gemm::{pack_conv_gemm_weights, ConvGemm, GemmAxis};
    use crate::conv_grouped::{pack_grouped_weights, ConvGrouped};
    let isa = Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic);
    let e = Epilogue { bias: true, residual: false, activation: Activation::Relu };
    let mut rng = Rng(5);
    for (c, group, hw, s) in [(72u64, 3u64, 56u64, 1u64), (168, 7, 28, 1), (168, 7, 56, 2), (408, 17, 14, 1), (408, 17, 28, 2), (912, 38, 7, 1), (912, 38, 14, 2)] {
        let out = out_len(hw, 3, s, 1, 1, 1);
        let k = BlockedConv { batch: 1, in_channels: c, out_channels: c, group, input: [hw, hw], output: [out, out], kernel: [3, 3], strides: [s, s], dilations: [1, 1], pad_begin: [1, 1], epilogue: e, isa };
        let r = ConvGrouped { batch: 1, in_channels: c, out_channels: c, group, input: [hw, hw], kernel: [3, 3], strides: [s, s], dilations: [1, 1], pad_begin: [1, 1], output: [out, out], epilogue: e, isa , blocked_output: false };
        let (x, w, bias) = (rng.vec((c * hw * hw) as usize), rng.vec((c * c / group * 9) as usize), rng.vec(c as usize));
        let mut bi = vec![to_blocked(&x, c as usize, (hw * hw) as usize), pack_blocked_conv_weights(&w, c as usize, group as usize, 9), bias.clone()];
        let mut gi = vec![x, pack_grouped_weights(&w, c as usize, group as usize), bias];
        let (tb, tg) = alternate(&k, &mut bi, &r, &mut gi, (c * out * out) as usize);
        let gf = |us: f64| 2.0 * (c * c / group * 9 * out * out) as f64 / us / 1e3;
        println!("grouped {c}/{group} {hw}x{hw}/{s}: blocked {tb:.0} us ({:.0} GFLOP/s), grouped {tg:.0} us ({:.0}): {:.2}", gf(tb), gf(tg), tb / tg);
    }
    for (c, m, hw) in [(32u64, 72u64, 112u64), (72, 168, 56), (168, 408, 28), (408, 912, 14)] {
        let out = hw.div_ceil(2);
        let e = Epilogue { bias: true, residual: false, activation: Activation::None };
        let k = BlockedConv { batch: 1, in_channels: c, out_channels: m, group: 1, input: [hw, hw], output: [out, out], kernel: [1, 1], strides: [2, 2], dilations: [1, 1], pad_begin: [0, 0], epilogue: e, isa };
        let r = ConvGemm { batch: 1, in_channels: c, out_channels: m, group: 1, input: [hw, hw], kernel: [1, 1], strides: [2, 2], dilations: [1, 1], pad_begin: [0, 0], output: [out, out], epilogue: e, isa, axis: GemmAxis::Columns, input_scale: false };
        let (x, w, bias) = (rng.vec((c * hw * hw) as usize), rng.vec((m * c) as usize), rng.vec(m as usize));
        let mut bi = vec![to_blocked(&x, c as usize, (hw * hw) as usize), pack_blocked_conv_weights(&w, m as usize, 1, 1), bias.clone()];
        let mut gi = vec![x, pack_conv_gemm_weights(&w, m as usize, 1, isa, r.k_block()), bias];
        let (tb, tg) = alternate(&k, &mut bi, &r, &mut gi, (m * out * out) as usize);
        let gf = |us: f64| 2.0 * (c * m * out * out) as f64 / us / 1e3;
        println!("1x1/2 {c}->{m} from {hw}x{hw}: blocked {tb:.0} us ({:.0} GFLOP/s), gemm {tg:.0} us ({:.0}): {:.2}", gf(tb), gf(tg), tb / tg);
    }
    // Dense 3×3 layers (ResNet-50's strided ones, SqueezeNet's expands)
    // against the column GEMM.
    for (c, m, hw, s) in [(128u64, 128u64, 56u64, 2u64), (256, 256, 28, 2), (512, 512, 14, 2), (16, 64, 55, 1), (32, 128, 27, 1), (64, 256, 13, 1), (64, 64, 56, 1)] {
        let pad = 1;
        let out = out_len(hw, 3, s, 1, pad, pad);
        let e = Epilogue { bias: true, residual: false, activation: Activation::Relu };
        let k = BlockedConv { batch: 1, in_channels: c, out_channels: m, group: 1, input: [hw, hw], output: [out, out], kernel: [3, 3], strides: [s, s], dilations: [1, 1], pad_begin: [pad, pad], epilogue: e, isa };
        let r = ConvGemm { batch: 1, in_channels: c, out_channels: m, group: 1, input: [hw, hw], kernel: [3, 3], strides: [s, s], dilations: [1, 1], pad_begin: [pad, pad], output: [out, out], epilogue: e, isa, axis: GemmAxis::Columns, input_scale: false };
        let (x, w, bias) = (rng.vec((c * hw * hw) as usize), rng.vec((m * c * 9) as usize), rng.vec(m as usize));
        let mut bi = vec![to_blocked(&x, c as usize, (hw * hw) as usize), pack_blocked_conv_weights(&w, m as usize, 1, 9), bias.clone()];
        let mut gi = vec![x, pack_conv_gemm_weights(&w, m as usize, 1, isa, r.k_block()), bias];
        let (tb, tg) = alternate(&k, &mut bi, &r, &mut gi, (m * out * out) as usize);
        let gf = |us: f64| 2.0 * (c * m * 9 * out * out) as f64 / us / 1e3;
        println!("3x3/{s} {c}->{m} from {hw}x{hw}: blocked {tb:.0} us ({:.0} GFLOP/s), gemm {tg:.0} us ({:.0}): {:.2}", gf(tb), gf(tg), tb / tg);
    }
}
