//! The Winograd kernel against the direct convolution on random geometries
//! (every ISA this CPU has, 1–3 parts, every epilogue), and its error
//! against an f64 direct convolution next to the packed GEMM's.

use super::*;
use crate::conv::testutil::*;
use crate::conv::{pack_conv_weights, Conv};
use crate::conv_gemm::{pack_conv_gemm_weights, ConvGemm, GemmAxis};
use crate::packed::tests::{all_activations, isas};

/// The portable direct kernel for the same convolution.
fn direct(k: &WinogradConv) -> Conv {
    Conv {
        batch: k.batch,
        in_channels: k.in_channels,
        out_channels: k.out_channels,
        group: 1,
        input: k.input.to_vec(),
        kernel: vec![3, 3],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pad_begin: k.pad_begin.to_vec(),
        output: k.output.to_vec(),
        epilogue: k.epilogue,
    }
}

fn out_len(k: &WinogradConv) -> usize {
    (k.batch * k.out_channels * k.output[0] * k.output[1]) as usize
}

/// Random inputs for `k`: X, W `[K, C, 3, 3]`, bias, residual.
fn inputs(k: &WinogradConv, rng: &mut Rng) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (c, m) = (k.in_channels as usize, k.out_channels as usize);
    let x = rng.vec(k.batch as usize * c * (k.input[0] * k.input[1]) as usize);
    (x, rng.vec(m * c * 9), rng.vec(m), rng.vec(out_len(k)))
}

/// Compares every available ISA, run as 1, 2 and 3 parts, with the direct kernel.
fn compare(base: &WinogradConv, rng: &mut Rng) {
    let (x, w, bias, res) = inputs(base, rng);
    let mut ins = vec![x, pack_conv_weights(&w)];
    if base.epilogue.bias {
        ins.push(bias);
    }
    if base.epilogue.residual {
        ins.push(res);
    }
    let want = run_parts(&direct(base), &ins, &[out_len(base)], 1).remove(0);
    // F(4x4, 3x3) rounds about 2-4x more than a plain dot product of
    // 9·C terms: the tolerance grows as sqrt(C) (random-walk rounding).
    let tol = 1e-5 * (9.0 * base.in_channels as f32).sqrt();
    for isa in isas() {
        for tile in [WinogradTile::F4x4, WinogradTile::F2x2] {
            ins[1] = pack_winograd_weights(&w, base.out_channels as usize, isa, tile, WinogradConv { isa, tile, ..base.clone() }.k_block());
            for axis in [WinogradAxis::Tiles, WinogradAxis::Channels] {
                let k = WinogradConv { isa, axis, tile, ..base.clone() };
                for parts in [1, 2, 3] {
                    let got = run_parts(&k, &ins, &[out_len(base)], parts).remove(0);
                    assert_close(&got, &want, tol);
                }
            }
        }
    }
}

fn random_conv(rng: &mut Rng, epilogue: Epilogue) -> WinogradConv {
    let mut k =
        WinogradConv { batch: 1 + rng.below(2), in_channels: 1 + rng.below(40), out_channels: 1 + rng.below(40), input: [0; 2], pad_begin: [0; 2], output: [0; 2], epilogue, isa: Isa::Generic, axis: WinogradAxis::Tiles, tile: WinogradTile::F4x4 };
    for a in 0..2 {
        let (pb, pe) = (rng.below(3), rng.below(3));
        let inp = 3u64.saturating_sub(pb + pe).max(1) + rng.below(14);
        k.input[a] = inp;
        k.pad_begin[a] = pb;
        k.output[a] = inp + pb + pe - 2;
    }
    k
}

#[test]
fn matches_direct_on_random_geometries() {
    let mut rng = Rng(41);
    for i in 0..90 {
        let e = Epilogue { bias: rng.below(2) == 1, residual: rng.below(2) == 1, activation: all_activations()[i % 9] };
        let k = random_conv(&mut rng, e);
        compare(&k, &mut rng);
    }
}

#[test]
fn several_blocks_per_part() {
    // 30x30 outputs (8x8 tiles, the last cropped) with enough channels that
    // a block is one panel of tiles: several blocks per image and part.
    let mut rng = Rng(43);
    let k = WinogradConv {
        batch: 2,
        in_channels: 150,
        out_channels: 130,
        input: [30, 29],
        pad_begin: [1, 0],
        output: [30, 30],
        epilogue: Epilogue { bias: true, residual: true, activation: crate::Activation::Relu },
        isa: Isa::Generic,
        axis: WinogradAxis::Tiles,
        tile: WinogradTile::F4x4,
    };
    assert!(k.block_tiles() < k.tiles_per_image());
    compare(&k, &mut rng);
}

#[test]
fn deeper_than_a_k_block() {
    // 300 input channels: each U[ξ] is packed in two K blocks, whose
    // partial sums meet in M[ξ].
    let mut rng = Rng(47);
    let k = WinogradConv {
        batch: 1,
        in_channels: crate::packed::KC as u64 + 44,
        out_channels: 20,
        input: [9, 10],
        pad_begin: [1, 1],
        output: [9, 10],
        epilogue: Epilogue { bias: true, residual: false, activation: crate::Activation::Relu },
        isa: Isa::Generic,
        axis: WinogradAxis::Tiles,
        tile: WinogradTile::F4x4,
    };
    compare(&k, &mut rng);
}

/// The direct convolution in f64 (no epilogue).
fn conv_f64(k: &WinogradConv, x: &[f32], w: &[f32]) -> Vec<f64> {
    let (c, m) = (k.in_channels as usize, k.out_channels as usize);
    let [ih, iw] = k.input.map(|v| v as isize);
    let [oh, ow] = k.output.map(|v| v as usize);
    let [ph, pw] = k.pad_begin.map(|v| v as isize);
    let mut y = vec![0.0f64; out_len(k)];
    for b in 0..k.batch as usize {
        for mo in 0..m {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0f64;
                    for ci in 0..c {
                        for t in 0..9 {
                            let (iy, ix) = (oy as isize + (t / 3) as isize - ph, ox as isize + (t % 3) as isize - pw);
                            if iy >= 0 && iy < ih && ix >= 0 && ix < iw {
                                acc += x[((b * c + ci) * ih as usize + iy as usize) * iw as usize + ix as usize] as f64 * w[(mo * c + ci) * 9 + t] as f64;
                            }
                        }
                    }
                    y[((b * m + mo) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}

/// Max abs error of `got` against `want` and the largest |want|.
fn max_err(got: &[f32], want: &[f64]) -> (f64, f64) {
    got.iter().zip(want).fold((0.0, 0.0), |(e, a), (&g, &w)| (e.max((g as f64 - w).abs()), a.max(w.abs())))
}

/// Runs one layer by Winograd and by the packed GEMM (best ISA).
fn both(k: &WinogradConv, x: &[f32], w: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let isa = *isas().last().unwrap();
    let wk = WinogradConv { isa, ..k.clone() };
    let g = ConvGemm {
        batch: k.batch,
        in_channels: k.in_channels,
        out_channels: k.out_channels,
        group: 1,
        input: k.input,
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pad_begin: k.pad_begin,
        output: k.output,
        epilogue: k.epilogue,
        isa,
        axis: GemmAxis::Columns,
        input_scale: false,
    };
    let m = k.out_channels as usize;
    let wino = run_parts(&wk, &[x.to_vec(), pack_winograd_weights(w, m, isa, k.tile, wk.k_block())], &[out_len(k)], 2).remove(0);
    let gemm = run_parts(&g, &[x.to_vec(), pack_conv_gemm_weights(w, m, 1, isa, g.k_block())], &[out_len(k)], 2).remove(0);
    (wino, gemm)
}

/// He-scaled weights (|w| ≤ sqrt(6 / 9C), unit-variance outputs).
fn he_weights(rng: &mut Rng, k: &WinogradConv) -> Vec<f32> {
    let s = (6.0 / (9.0 * k.in_channels as f32)).sqrt();
    rng.vec((k.out_channels * k.in_channels * 9) as usize).into_iter().map(|v| v * s).collect()
}

#[test]
fn error_against_f64_stays_near_the_gemm() {
    // One 256-channel layer on 28x28, inputs in [-1, 1), He weights.
    let mut rng = Rng(47);
    for tile in [WinogradTile::F4x4, WinogradTile::F2x2] {
        let k = WinogradConv { batch: 1, in_channels: 256, out_channels: 64, input: [28, 28], pad_begin: [1, 1], output: [28, 28], epilogue: Epilogue::default(), isa: Isa::Generic, axis: WinogradAxis::Tiles, tile };
        let x = rng.vec((256 * 28 * 28) as usize);
        let w = he_weights(&mut rng, &k);
        let want = conv_f64(&k, &x, &w);
        let (wino, gemm) = both(&k, &x, &w);
        let ((ew, scale), (eg, _)) = (max_err(&wino, &want), max_err(&gemm, &want));
        println!("one layer C=256 {tile:?}: max |y| {scale:.3}, max abs error winograd {ew:.3e}, gemm {eg:.3e}");
        // F(2x2)'s transforms have constants of at most 1: about the GEMM's error.
        let bound = if tile == WinogradTile::F2x2 { 5.0 } else { 50.0 };
        assert!(ew < 1.5e-5 * scale.max(1.0) && ew < bound * eg.max(1e-7), "{tile:?} winograd error {ew} (gemm {eg})");
    }
}

#[test]
fn error_through_a_chain_of_layers() {
    // Eight 64-channel conv + relu layers on 20x20, each fed the f64
    // reference's previous output rounded to f32 (the per-layer error), and
    // a second chain fed its own outputs (the accumulated error).
    let mut rng = Rng(53);
    let k = WinogradConv { batch: 1, in_channels: 64, out_channels: 64, input: [20, 20], pad_begin: [1, 1], output: [20, 20], epilogue: Epilogue::default(), isa: Isa::Generic, axis: WinogradAxis::Tiles, tile: WinogradTile::F4x4 };
    let mut x_ref: Vec<f64> = rng.vec(64 * 400).into_iter().map(f64::from).collect();
    let (mut xw, mut xg) = (x_ref.iter().map(|&v| v as f32).collect::<Vec<_>>(), x_ref.iter().map(|&v| v as f32).collect::<Vec<_>>());
    for layer in 0..8 {
        let w = he_weights(&mut rng, &k);
        let xr32: Vec<f32> = x_ref.iter().map(|&v| v as f32).collect();
        let want: Vec<f64> = conv_f64(&k, &xr32, &w).into_iter().map(|v| v.max(0.0)).collect();
        let relu = |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|x| x.max(0.0)).collect() };
        let (w1, _) = both(&k, &xw, &w);
        let (_, g1) = both(&k, &xg, &w);
        (xw, xg) = (relu(w1), relu(g1));
        let (ew, scale) = max_err(&xw, &want);
        let (eg, _) = max_err(&xg, &want);
        println!("layer {layer}: max |y| {scale:.3}, accumulated max abs error winograd {ew:.3e}, gemm {eg:.3e}");
        assert!(ew < 1e-4 * scale.max(1.0), "layer {layer}: winograd error {ew} (gemm {eg})");
        x_ref = want;
    }
}

#[test]
fn scratch_is_bounded_and_names_the_isa() {
    let k = WinogradConv { batch: 1, in_channels: 512, out_channels: 512, input: [56, 56], pad_begin: [1, 1], output: [56, 56], epilogue: Epilogue::default(), isa: Isa::Avx512, axis: WinogradAxis::Tiles, tile: WinogradTile::F4x4 };
    assert_eq!(k.block_tiles(), 32);
    assert!(k.scratch_bytes(k.work_items()) <= 4 * (36 * 1024 * 32 + 512 * 32));
    assert_eq!(k.name(), "f32_conv2d_winograd4x4_avx512");
    assert!(k.check(2, 1).is_ok() && k.check(3, 1).is_err());
}

/// The timing tests' layers from `KANN_WG_SHAPES=C,M,HW;...` (input
/// channels, output channels, extent), if set.
fn timed_shapes() -> Option<Vec<(u64, u64, u64)>> {
    let v = std::env::var("KANN_WG_SHAPES").ok()?;
    let shape = |s: &str| {
        let d: Vec<u64> = s.split(',').map(|x| x.parse().expect("KANN_WG_SHAPES: C,M,HW;...")).collect();
        (d[0], d[1], d[2])
    };
    Some(v.split(';').map(shape).collect())
}

/// The timing tests' layer: `c` → `m` channels on `hw`×`hw` maps, "same"
/// padding, bias and ReLU, split by tiles.
fn timed_layer(c: u64, m: u64, hw: u64, isa: Isa, tile: WinogradTile) -> WinogradConv {
    WinogradConv {
        batch: 1,
        in_channels: c,
        out_channels: m,
        input: [hw, hw],
        pad_begin: [1, 1],
        output: [hw, hw],
        epilogue: Epilogue { bias: true, residual: false, activation: crate::Activation::Relu },
        isa,
        axis: WinogradAxis::Tiles,
        tile,
    }
}

/// Times Winograd against the packed GEMM on VGG/ResNet 3×3 layers (best
/// ISA, one part, min of 7): `cargo test --release -p kann-kernels
/// winograd_vs_gemm_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn winograd_vs_gemm_timing() {
    let mut rng = Rng(59);
    let best = *isas().last().unwrap();
    let shapes = [(64, 64, 112), (128, 128, 56), (256, 256, 28), (512, 512, 14), (64, 64, 56), (128, 128, 28), (256, 256, 14), (512, 512, 7), (32, 32, 16), (32, 32, 56)];
    let more = [(128, 32, 56), (128, 32, 28), (128, 32, 14), (16, 16, 56), (3, 64, 224), (64, 96, 28), (96, 128, 28), (192, 192, 14)];
    let portable = [(64, 64, 56), (128, 128, 28), (256, 256, 28)];
    // KANN_WG_SHAPES=C,M,HW;... times these (the best ISA) instead; SqueezeNet's: 16,64,55;32,128,27;48,192,13;64,256,13.
    let only = timed_shapes();
    let cases: Vec<(Isa, (u64, u64, u64))> = match only {
        Some(v) => v.into_iter().map(|s| (best, s)).collect(),
        None => shapes.into_iter().chain(more).map(|s| (best, s)).chain(portable.into_iter().map(|s| (Isa::Generic, s))).collect(),
    };
    for ((isa, (c, m, hw)), tile) in cases.into_iter().flat_map(|c| [(c, WinogradTile::F4x4), (c, WinogradTile::F2x2)]) {
        let k = timed_layer(c, m, hw, isa, tile);
        let x = rng.vec((c * hw * hw) as usize);
        let w = rng.vec((m * c * 9) as usize);
        let bias = rng.vec(m as usize);
        let g = ConvGemm {
            batch: 1,
            in_channels: c,
            out_channels: m,
            group: 1,
            input: k.input,
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pad_begin: k.pad_begin,
            output: k.output,
            epilogue: k.epilogue,
            isa,
            axis: if hw * hw <= 256 { GemmAxis::Channels } else { GemmAxis::Columns },
            input_scale: false,
        };
        let mut wi = vec![x.clone(), pack_winograd_weights(&w, m as usize, isa, tile, k.k_block()), bias.clone()];
        let mut gi = vec![x.clone(), pack_conv_gemm_weights(&w, m as usize, 1, isa, g.k_block()), bias.clone()];
        let tw = time_kernel(&k, &mut wi, out_len(&k));
        let tg = time_kernel(&g, &mut gi, out_len(&k));
        println!("C={c} K={m} {hw}x{hw} {} {tile:?}: winograd {tw:.0} µs, gemm {tg:.0} µs, speed-up {:.2}", isa.name(), tg / tw);
    }
}

/// Splits one Winograd layer's time into its phases (input transform, the
/// 36 GEMMs, output transform) for ResNet shapes: `cargo test --release -p
/// kann-kernels winograd_phases -- --ignored --nocapture`.
#[test]
#[ignore]
fn winograd_phases() {
    let mut rng = Rng(61);
    let isa = *isas().last().unwrap();
    // KANN_WG_SHAPES=C,M,HW;... splits these layers instead.
    let shapes = timed_shapes().unwrap_or(vec![(64, 64, 56), (128, 128, 28), (256, 256, 14), (512, 512, 7)]);
    for ((c, m, hw), tile) in shapes.into_iter().flat_map(|s| [(s, WinogradTile::F4x4), (s, WinogradTile::F2x2)]) {
        let k = timed_layer(c, m, hw, isa, tile);
        let x = rng.vec((c * hw * hw) as usize);
        let w = rng.vec((m * c * 9) as usize);
        let mut ins = [x, pack_winograd_weights(&w, m as usize, isa, tile, k.k_block()), rng.vec(m as usize)];
        let mut out = vec![0.0f32; out_len(&k)];
        let bufs: Vec<crate::RawBuf> = ins.iter_mut().map(|v| crate::RawBuf::from_f32(v)).collect();
        let outs = [crate::RawBuf::from_f32(&mut out)];
        let io = Io { inputs: &bufs, outputs: &outs };
        let items = k.work_items() as usize;
        let (tb, _) = k.part_shape(items);
        let (cc, kk) = (c as usize, m as usize);
        let mut scratch = vec![0.0f32; k.scratch_bytes(items as u64) / 4];
        let mut times = [f64::INFINITY; 3];
        for _ in 0..7 {
            let mut t = [0.0f64; 3];
            // SAFETY: nothing writes the inputs meanwhile.
            let (x, u) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
            let mut t0 = 0;
            while t0 < items {
                let n = tb.min(items - t0);
                let (v, m) = scratch.split_at_mut(k.v_len(tb));
                let s = std::time::Instant::now();
                k.transform_block(x, t0, n, tb, v);
                t[0] += s.elapsed().as_secs_f64();
                let s = std::time::Instant::now();
                k.gemms(u, v, n, tb, m, 0, kk);
                t[1] += s.elapsed().as_secs_f64();
                let s = std::time::Instant::now();
                // SAFETY: Y is the output buffer; one block at a time.
                unsafe { k.finish_block(&io, Block { img: 0, t0, n, tb, k0: 0, k1: kk }, m, outs[0].as_ptr() as *mut f32) };
                t[2] += s.elapsed().as_secs_f64();
                t0 += n;
            }
            for (b, v) in times.iter_mut().zip(t) {
                *b = b.min(v * 1e6);
            }
        }
        let gflop = 2.0 * (tile.positions() * cc * kk * items) as f64 / 1e3;
        println!("C={c} K={m} {hw}x{hw} {tile:?} block {tb}: input {:.0} µs, gemms {:.0} µs ({:.0} GFLOP/s), output {:.0} µs", times[0], times[1], gflop / times[1], times[2]);
    }
}


/// Times a block's GEMMs by the general packed driver against
/// [`packed::gemm_shallow`], alternated, median of 15 rounds each (best
/// ISA): `cargo test --release -p kann-kernels shallow_gemms_timing --
/// --ignored --nocapture`; KANN_WG_SHAPES=C,M,HW;... as for the phases.
#[test]
#[ignore]
fn shallow_gemms_timing() {
    let mut rng = Rng(67);
    let isa = *isas().last().unwrap();
    let shapes = timed_shapes().unwrap_or(vec![(16, 64, 55), (32, 128, 27), (48, 192, 13), (64, 256, 13), (64, 64, 56)]);
    for ((c, m, hw), tile) in shapes.into_iter().flat_map(|s| [(s, WinogradTile::F4x4), (s, WinogradTile::F2x2)]) {
        let k = timed_layer(c, m, hw, isa, tile);
        let x = rng.vec((c * hw * hw) as usize);
        let u = pack_winograd_weights(&rng.vec((m * c * 9) as usize), m as usize, isa, tile, k.k_block());
        if c as usize > k.k_block() {
            continue;
        }
        let items = k.work_items() as usize;
        let (tb, _) = k.part_shape(items);
        let mut scratch = vec![0.0f32; k.scratch_bytes(items as u64) / 4];
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..15 {
            for (way, t) in times.iter_mut().enumerate() {
                let s = std::time::Instant::now();
                let mut t0 = 0;
                while t0 < items {
                    let n = tb.min(items - t0);
                    let (v, mm) = scratch.split_at_mut(k.v_len(tb));
                    k.transform_block(&x, t0, n, tb, v);
                    k.gemms_by(&u, v, n, tb, mm, 0, m as usize, way == 1);
                    t0 += n;
                }
                t.push(s.elapsed().as_secs_f64() * 1e6);
            }
        }
        let [general, shallow] = times.map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        });
        println!("C={c} K={m} {hw}x{hw} {tile:?} block {tb}: transforms + GEMMs by the driver {general:.0} µs, shallow {shallow:.0} µs");
    }
}
