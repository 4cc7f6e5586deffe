use super::*;
use crate::blocked::{to_blocked, to_planar};
use crate::conv::testutil::*;
use crate::conv::{pack_conv_weights, Conv};
use crate::Activation;

use crate::blocked::testutil::{activation, per_image};

/// Checks `k` in 1, 2 and 3 parts against the portable convolution on
/// random values, `[h, w]` a split of its pixels.
fn check(k: &BlockedPointwise, hw2: [u64; 2], rng: &mut Rng) {
    let (n, c, m, hw) = (k.batch as usize, k.in_channels as usize, k.out_channels as usize, k.pixels as usize);
    let x = rng.vec(n * c * hw);
    let w = rng.vec(m * c);
    let bias = rng.vec(m);
    let residual = rng.vec(n * m * hw);
    let scale = rng.vec(n * c);
    // The reference convolves the scaled X.
    let scaled: Vec<f32> = x.iter().enumerate().map(|(i, v)| if k.input_scale { v * scale[i / hw] } else { *v }).collect();
    let conv = Conv { batch: k.batch, in_channels: k.in_channels, out_channels: k.out_channels, group: 1, input: hw2.to_vec(), kernel: vec![1, 1], strides: vec![1, 1], dilations: vec![1, 1], pad_begin: vec![0, 0], output: hw2.to_vec(), epilogue: k.epilogue };
    let mut conv_ins = vec![scaled, pack_conv_weights(&w)];
    let mut ins = vec![per_image(&x, c, hw, to_blocked), pack_blocked_pointwise_weights(&w, m, c)];
    if k.epilogue.bias {
        conv_ins.push(bias.clone());
        ins.push(bias);
    }
    if k.epilogue.residual {
        conv_ins.push(residual.clone());
        ins.push(per_image(&residual, m, hw, to_blocked));
    }
    if k.input_scale {
        ins.push(scale);
    }
    let want = run_parts(&conv, &conv_ins, &[n * m * hw], 1);
    for parts in [1, 2, 3] {
        let got = run_parts(k, &ins, &[n * m * hw], parts);
        assert_close(&per_image(&got[0], m, hw, to_planar), &want[0], 1e-5);
    }
}

#[test]
fn matches_the_portable_conv_on_random_shapes_every_isa() {
    let mut rng = Rng(11);
    for case in 0..60 {
        let hw2 = [1 + rng.below(9), 1 + rng.below(12)];
        let k = BlockedPointwise {
            batch: 1 + rng.below(2),
            in_channels: 8 * (1 + rng.below(12)),
            out_channels: 8 * (1 + rng.below(9)),
            pixels: hw2[0] * hw2[1],
            epilogue: Epilogue { bias: rng.below(2) == 0, residual: rng.below(2) == 0, activation: activation(case) },
            input_scale: case % 3 == 0,
            by_channels: case % 2 == 1,
            isa: Isa::Generic,
        };
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            check(&BlockedPointwise { isa, ..k.clone() }, hw2, &mut rng);
        }
    }
}

#[test]
fn every_tile_remainder_and_group_shape() {
    // 1 to 14 pixels cover every tile width of every group (8/4/2/1,
    // 6/4/2/1, 4/3/2/1 and their leftovers); 1 to 7 blocks every grouping.
    let mut rng = Rng(12);
    for blocks in 1..=7u64 {
        for pixels in 1..=14u64 {
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let e = Epilogue { bias: true, residual: pixels % 2 == 0, activation: Activation::Relu };
                let k = BlockedPointwise { batch: 1, in_channels: 16, out_channels: 8 * blocks, pixels, epilogue: e, input_scale: false, by_channels: pixels % 3 == 0, isa };
                check(&k, [1, pixels], &mut rng);
            }
        }
    }
}

#[test]
fn groups_cover_the_blocks_in_pairs_and_one_three() {
    let all = |b| groups(b).collect::<Vec<_>>();
    assert_eq!(all(1), [(0, 1)]);
    assert_eq!(all(2), [(0, 2)]);
    assert_eq!(all(3), [(0, 3)]);
    assert_eq!(all(4), [(0, 2), (2, 2)]);
    assert_eq!(all(9), [(0, 3), (3, 2), (5, 2), (7, 2)]);
    assert_eq!(all(0), []);
    // Two even shares of groups differ by at most one block (one pair
    // when all are pairs).
    for blocks in 4..200 {
        let g = all(blocks);
        let half: usize = g[..g.len() / 2].iter().map(|&(_, v)| v).sum();
        assert!(half.abs_diff(blocks - half) <= 2 - blocks % 2, "{blocks} blocks: {half} and {}", blocks - half);
    }
}

#[test]
fn names_and_check() {
    let k = BlockedPointwise { batch: 1, in_channels: 16, out_channels: 24, pixels: 49, epilogue: Epilogue::default(), input_scale: false, by_channels: false, isa: Isa::Avx2 };
    assert_eq!(k.name(), "f32_conv1x1_nchw8c_avx2");
    assert_eq!(k.work_items(), 13);
    assert!(k.check(2, 1).is_ok());
    assert!(k.check(3, 1).is_err());
    let odd = BlockedPointwise { in_channels: 12, ..k };
    assert!(odd.check(2, 1).unwrap_err().contains("multiples of 8"));
}

/// Microseconds of the blocked 1×1 convolution against the NCHW GEMM on the
/// same shapes, alternated in one loop (median of 41):
/// `cargo test --release -p kann-kernels --lib blocked_pointwise_timing -- --ignored --nocapture`;
/// KANN_PW_SHAPES=C,M,side;... other shapes.
#[test]
#[ignore]
fn blocked_pointwise_timing() {
    use crate::conv_gemm::{pack_conv_gemm_weights, ConvGemm, GemmAxis};
    use crate::RawBuf;
    let shapes: Vec<[usize; 3]> = std::env::var("KANN_PW_SHAPES").map_or(vec![[32, 72, 112], [72, 72, 56], [168, 168, 28], [408, 408, 14], [32, 16, 112], [96, 24, 56], [16, 96, 112], [144, 24, 56], [576, 96, 14], [960, 160, 7]], |v| {
        v.split(';').map(|t| std::array::from_fn(|i| t.split(',').nth(i).and_then(|x| x.parse().ok()).expect("KANN_PW_SHAPES: C,M,side;..."))).collect()
    });
    let isa = Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic);
    for [c, m, side] in shapes {
        let hw = side * side;
        let mut rng = Rng(3);
        let (x, w, mut bias) = (rng.vec(c * hw), rng.vec(m * c), rng.vec(m));
        // KANN_PW_SILU: SiLU instead of Relu (the activation the tiles leave to a pass).
        let act = if std::env::var("KANN_PW_SILU").is_ok() { Activation::Silu } else { Activation::Relu };
        let e = Epilogue { bias: true, residual: false, activation: act };
        let blocked = BlockedPointwise { batch: 1, in_channels: c as u64, out_channels: m as u64, pixels: hw as u64, epilogue: e, input_scale: false, by_channels: false, isa };
        let gemm = ConvGemm { batch: 1, in_channels: c as u64, out_channels: m as u64, group: 1, input: [side as u64; 2], kernel: [1, 1], strides: [1, 1], dilations: [1, 1], pad_begin: [0, 0], output: [side as u64; 2], epilogue: e, isa, axis: GemmAxis::Columns, input_scale: false };
        let (mut xb, mut wb) = (to_blocked(&x, c, hw), pack_blocked_pointwise_weights(&w, m, c));
        let (mut xg, mut wg) = (x.clone(), pack_conv_gemm_weights(&w, m, 1, isa, gemm.k_block()));
        let (mut yb, mut yg) = (vec![0.0f32; m * hw], vec![0.0f32; m * hw]);
        let mut scratch = vec![0u8; gemm.scratch_bytes(gemm.work_items()) + 64];
        let lead = scratch.as_ptr().align_offset(64);
        let (mut tb, mut tg) = (Vec::new(), Vec::new());
        for _ in 0..41 {
            let ins = [RawBuf::from_f32(&mut xb), RawBuf::from_f32(&mut wb), RawBuf::from_f32(&mut bias)];
            let outs = [RawBuf::from_f32(&mut yb)];
            let t = std::time::Instant::now();
            // SAFETY: the buffers outlive the call; one part.
            unsafe { blocked.run(&Io { inputs: &ins, outputs: &outs }, 0..blocked.work_items(), &mut []) };
            tb.push(t.elapsed().as_secs_f64() * 1e6);
            let ins = [RawBuf::from_f32(&mut xg), RawBuf::from_f32(&mut wg), RawBuf::from_f32(&mut bias)];
            let outs = [RawBuf::from_f32(&mut yg)];
            let t = std::time::Instant::now();
            // SAFETY: as above.
            unsafe { gemm.run(&Io { inputs: &ins, outputs: &outs }, 0..gemm.work_items(), &mut scratch[lead..]) };
            tg.push(t.elapsed().as_secs_f64() * 1e6);
        }
        assert_close(&to_planar(&yb, m, hw), &yg, 1e-4);
        tb.sort_by(f64::total_cmp);
        tg.sort_by(f64::total_cmp);
        let gf = |us: f64| 2.0 * (c * m * hw) as f64 / us / 1e3;
        println!("{c} -> {m} over {side}x{side}: blocked {:.0} us ({:.0} GFLOP/s), gemm {:.0} us ({:.0}): {:.2}", tb[20], gf(tb[20]), tg[20], gf(tg[20]), tb[20] / tg[20]);
    }
}
