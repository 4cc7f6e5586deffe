use super::*;
use crate::blocked::testutil::{alternate, per_image};
use crate::blocked::{to_blocked, to_planar};
use crate::conv::testutil::*;
use crate::pool::plane2d::Pool2d;
use crate::pool::Pool;

const KINDS: [PoolKind; 3] = [PoolKind::Max, PoolKind::Average { count_include_pad: true }, PoolKind::Average { count_include_pad: false }];

/// The portable NCHW pool with the same geometry.
fn as_pool(k: &BlockedPool) -> Pool {
    Pool {
        kind: k.kind,
        planes: k.batch * k.channels,
        input: k.input.to_vec(),
        kernel: k.kernel.to_vec(),
        strides: k.strides.to_vec(),
        dilations: k.dilations.to_vec(),
        pad_begin: k.pad_begin.to_vec(),
        pad_end: k.pad_end.to_vec(),
        output: k.output.to_vec(),
        indices: None,
    }
}

/// One axis: input, kernel, stride, dilation, padding before and after,
/// output; kernel 1-4, stride 1-3, dilation 1-2, padding below the kernel,
/// inputs 1 to about 30 (at least the window less the padding), and with
/// `ceil` the `ceil_mode` output (one more window, past the end padding,
/// when it starts inside the input or the padding before).
fn random_axis(rng: &mut Rng, ceil: bool) -> [u64; 7] {
    let (k, s, d) = (1 + rng.below(4), 1 + rng.below(3), 1 + rng.below(2));
    let (pb, pe) = (rng.below(k), rng.below(k));
    let eff = (k - 1) * d + 1;
    let most = if rng.below(4) == 0 { 3 } else { 26 };
    let inp = eff.saturating_sub(pb + pe).max(1) + rng.below(most);
    let span = inp + pb + pe - eff;
    let mut out = span / s + 1;
    if ceil && span % s != 0 && out * s < inp + pb {
        out += 1;
    }
    [inp, k, s, d, pb, pe, out]
}

fn geometry(kind: PoolKind, batch: u64, channels: u64, h: [u64; 7], w: [u64; 7]) -> BlockedPool {
    let pair = |i: usize| [h[i], w[i]];
    BlockedPool { kind, batch, channels, input: pair(0), kernel: pair(1), strides: pair(2), dilations: pair(3), pad_begin: pair(4), pad_end: pair(5), output: pair(6), isa: Isa::Generic }
}

/// A random geometry: maps 1×1 to about 30×30, 8-32 channels, batch 1-2.
fn random(rng: &mut Rng, kind: PoolKind) -> BlockedPool {
    let ceil = rng.below(2) == 1;
    let (h, w) = (random_axis(rng, ceil), random_axis(rng, ceil));
    geometry(kind, 1 + rng.below(2), 8 * (1 + rng.below(4)), h, w)
}

/// `got` against the reference's `want`: the same value (any NaN for a
/// NaN), or for the AVX2 path's averages (which sum columns first) within
/// 1e-5 relative.
fn compare(k: &BlockedPool, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    let exact = k.is_max() || !k.simd();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = g == w || (g.is_nan() && w.is_nan()) || (!exact && (g - w).abs() <= 1e-5 * (1.0 + w.abs()));
        assert!(ok, "{k:?} element {i}: got {g}, want {w}");
    }
}

/// `k` on the NCHW input `x`, with every ISA (an AVX-512 kernel runs the
/// AVX2 path on a CPU without AVX-512, any the portable one on a CPU
/// without AVX2), in 1, 2 and 3 parts, against the portable pool.
fn check_on(k: &BlockedPool, x: &[f32]) {
    let (c, ihw, ohw) = (k.channels as usize, (k.input[0] * k.input[1]) as usize, (k.output[0] * k.output[1]) as usize);
    let n_out = k.batch as usize * c * ohw;
    let want = run_parts(&as_pool(k), &[x.to_vec()], &[n_out], 1);
    let blocked = [per_image(x, c, ihw, to_blocked)];
    for isa in Isa::ALL {
        let k = BlockedPool { isa, ..k.clone() };
        for parts in [1, 2, 3] {
            let got = run_parts(&k, &blocked, &[n_out], parts);
            compare(&k, &per_image(&got[0], c, ohw, to_planar), &want[0]);
        }
    }
}

fn check(k: &BlockedPool, rng: &mut Rng) {
    let x = rng.vec((k.batch * k.channels * k.input[0] * k.input[1]) as usize);
    check_on(k, &x);
}

#[test]
fn matches_the_portable_pool_on_random_geometries() {
    let mut rng = Rng(31);
    for case in 0..240 {
        let k = random(&mut rng, KINDS[case % 3]);
        assert!(k.check(1, 1).is_ok(), "{k:?}");
        check(&k, &mut rng);
    }
}

#[test]
fn common_windows_every_row_width() {
    // The windows whose interiors run by columns (2×2/2, 3×3/1, 3×3/2) and
    // ones beside them, on rows 1-24 wide (no interior, or little), with
    // any padding and ceil_mode.
    let mut rng = Rng(37);
    for (kk, s) in [(2u64, 2u64), (3, 1), (3, 2), (2, 1), (3, 3), (4, 2)] {
        for iw in 1..=24u64 {
            let ceil = iw % 2 == 0;
            let (pb, pe) = (rng.below(kk), rng.below(kk));
            if iw + pb + pe < kk {
                continue;
            }
            let span = iw + pb + pe - kk;
            let mut ow = span / s + 1;
            if ceil && span % s != 0 && ow * s < iw + pb {
                ow += 1;
            }
            let h = random_axis(&mut rng, ceil);
            let k = geometry(KINDS[iw as usize % 3], 1, 8 * (1 + rng.below(2)), h, [iw, kk, s, 1, pb, pe, ow]);
            check(&k, &mut rng);
        }
    }
}

#[test]
fn squeezenet_and_googlenet_shapes() {
    // 3×3/2 over 111, 55 and 27 (SqueezeNet), 3×3/2 ceil_mode over 112 and
    // 56 (GoogLeNet: the last window overhangs), the inception branches'
    // 3×3/1 pad 1, and Inception-v3's average pool (padding not counted).
    let mut rng = Rng(41);
    for (hw, s, p, ceil, kind) in [
        (111u64, 2u64, 0u64, false, PoolKind::Max),
        (55, 2, 0, true, PoolKind::Max),
        (27, 2, 0, true, PoolKind::Max),
        (112, 2, 0, true, PoolKind::Max),
        (56, 2, 0, true, PoolKind::Max),
        (28, 1, 1, false, PoolKind::Max),
        (35, 1, 1, false, PoolKind::Average { count_include_pad: false }),
        (17, 1, 1, false, PoolKind::Average { count_include_pad: true }),
    ] {
        let span = hw + 2 * p - 3;
        let out = span / s + 1 + u64::from(ceil && span % s != 0);
        let a = [hw, 3, s, 1, p, p, out];
        check(&geometry(kind, 1, 16, a, a), &mut rng);
    }
}

#[test]
fn max_propagates_nan_from_every_tap_and_keeps_infinities() {
    // One NaN (or infinity) at every position of a 7×7 map in turn, in one
    // lane, under each window that runs by columns (over 1 to 5 window
    // rows) and one tap by tap.
    let mut rng = Rng(43);
    for (kh, kw, s, p) in [(2u64, 2u64, 2u64, 0u64), (3, 3, 1, 1), (3, 3, 2, 0), (3, 3, 2, 1), (4, 4, 1, 1), (4, 3, 1, 1), (5, 3, 2, 1), (1, 3, 1, 0)] {
        let out = |kk: u64| (7 + 2 * p - kk) / s + 1;
        let (h, w) = ([7, kh, s, 1, p, p, out(kh)], [7, kw, s, 1, p, p, out(kw)]);
        let k = geometry(PoolKind::Max, 1, 8, h, w);
        for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in 0..49 {
                let mut x = rng.vec(8 * 49);
                x[(at % 8) * 49 + at] = special;
                check_on(&k, &x);
            }
        }
        // A plane of -inf stays -inf.
        check_on(&k, &[f32::NEG_INFINITY; 8 * 49]);
    }
}

#[test]
fn random_geometries_with_nan_and_infinities() {
    let mut rng = Rng(47);
    for case in 0..90 {
        let k = random(&mut rng, KINDS[case % 3]);
        let mut x = rng.vec((k.batch * k.channels * k.input[0] * k.input[1]) as usize);
        for _ in 0..1 + x.len() / 40 {
            let i = rng.below(x.len() as u64) as usize;
            x[i] = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY][rng.below(3) as usize];
        }
        check_on(&k, &x);
    }
}

#[test]
fn windows_outside_the_input() {
    // Outputs past the ceil_mode ones: windows with no tap inside the
    // input (max -inf, average 0 / 0) or only in the end padding.
    let mut rng = Rng(53);
    for kind in KINDS {
        for (inp, kk, s, pb, pe, out) in [(3u64, 2u64, 3u64, 0u64, 1u64, 3u64), (4, 3, 2, 2, 2, 5), (1, 2, 2, 1, 1, 3), (2, 3, 1, 1, 1, 5), (5, 2, 2, 0, 1, 5)] {
            let h = [inp, kk, s, 1, pb, pe, out];
            // Columns as the rows (by columns where the AVX2 path has the
            // window), or dilated (tap by tap).
            for w in [h, [inp + 1, kk, 1, 2, pb, pe, out]] {
                check(&geometry(kind, 2, 8, h, w), &mut rng);
            }
        }
    }
}

#[test]
fn spans_match_the_taps() {
    let mut rng = Rng(59);
    for _ in 0..2000 {
        let [size, k, s, d, pb, pe, out] = random_axis(&mut rng, true);
        let a = Axis { size: size as usize, out: out as usize + 2, k: k as usize, s: s as usize, d: d as usize, pb: pb as usize, pe: pe as usize };
        let inner = a.interior();
        for o in 0..a.out {
            let pos = |t: usize| (o * a.s + t * a.d) as i64 - a.pb as i64;
            let inside: Vec<usize> = (0..a.k).map(pos).filter(|&p| p >= 0 && p < a.size as i64).map(|p| p as usize).collect();
            let padded = (0..a.k).map(pos).filter(|&p| p >= -(a.pb as i64) && p < (a.size + a.pe) as i64).count();
            let want = Span { first: inside.first().copied().unwrap_or(0), n: inside.len(), padded };
            assert_eq!(a.span(o), want, "{a:?} output {o}");
            assert_eq!(inner.contains(&o), inside.len() == a.k, "{a:?} output {o} interior {inner:?}");
        }
    }
}

#[test]
fn names_work_items_and_check() {
    let a = [27, 3, 2, 1, 0, 0, 13];
    let k = BlockedPool { isa: Isa::Avx2, ..geometry(PoolKind::Max, 2, 24, a, a) };
    assert_eq!(k.name(), "f32_maxpool2d_nchw8c_avx2");
    let avg = BlockedPool { kind: PoolKind::Average { count_include_pad: false }, isa: Isa::Generic, ..k.clone() };
    assert_eq!(avg.name(), "f32_avgpool2d_nchw8c_generic");
    assert_eq!(k.work_items(), 2 * 3 * 13);
    assert_eq!(k.scratch_bytes(k.work_items()), 0);
    assert!(k.check(1, 1).is_ok());
    assert!(k.check(2, 1).is_err());
    assert!(k.check(1, 2).is_err());
    assert!(BlockedPool { channels: 12, ..k.clone() }.check(1, 1).unwrap_err().contains("multiples of 8"));
    assert!(BlockedPool { channels: 0, ..k.clone() }.check(1, 1).is_err());
    assert!(BlockedPool { kind: PoolKind::Lp { p: 2.0 }, ..k.clone() }.check(1, 1).unwrap_err().contains("LpPool"));
    assert!(BlockedPool { kernel: [3, 0], ..k.clone() }.check(1, 1).is_err());
    assert!(BlockedPool { strides: [0, 2], ..k.clone() }.check(1, 1).is_err());
    assert!(BlockedPool { dilations: [1, 0], ..k }.check(1, 1).is_err());
}

/// Microseconds of the blocked pool against the NCHW [`Pool2d`] on
/// SqueezeNet's and GoogLeNet's max pools and Inception-v3's average ones
/// (median of 41, alternated); not a test of correctness:
/// `cargo test --release -p kann-kernels --lib blocked_pool_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn blocked_pool_timing() {
    let isa = Isa::ALL.into_iter().rev().find(|i| i.available()).unwrap_or(Isa::Generic);
    let avg = PoolKind::Average { count_include_pad: false };
    let mut rng = Rng(5);
    println!("pool (c, hw, k/s, pad, out)            nchw8c µs   nchw µs   nchw8c/nchw  ({})", isa.name());
    // (kind, channels, input, kernel, stride, padding, ceil_mode)
    for (kind, c, hw, kk, s, p, ceil) in [
        (PoolKind::Max, 64u64, 111u64, 3u64, 2u64, 0u64, true),
        (PoolKind::Max, 128, 55, 3, 2, 0, true),
        (PoolKind::Max, 256, 27, 3, 2, 0, true),
        (PoolKind::Max, 96, 111, 3, 2, 0, true),
        (PoolKind::Max, 64, 112, 3, 2, 0, true),
        (PoolKind::Max, 192, 56, 3, 2, 0, true),
        (PoolKind::Max, 480, 28, 3, 2, 0, true),
        (PoolKind::Max, 832, 14, 3, 2, 0, true),
        (PoolKind::Max, 192, 28, 3, 1, 1, false),
        (PoolKind::Max, 480, 14, 3, 1, 1, false),
        (PoolKind::Max, 832, 7, 3, 1, 1, false),
        (avg, 192, 35, 3, 1, 1, false),
        (avg, 768, 17, 3, 1, 1, false),
    ] {
        let span = hw + 2 * p - kk;
        let out = span / s + 1 + u64::from(ceil && span % s != 0);
        let a = [hw, kk, s, 1, p, p, out];
        let k = BlockedPool { isa, ..geometry(kind, 1, c, a, a) };
        let r = Pool2d::from_pool(&as_pool(&k), isa).unwrap();
        let x = rng.vec((c * hw * hw) as usize);
        let mut bi = vec![to_blocked(&x, c as usize, (hw * hw) as usize)];
        let mut pi = vec![x];
        let (tb, tp) = alternate(&k, &mut bi, &r, &mut pi, (c * out * out) as usize);
        let op = if kind == PoolKind::Max { "max" } else { "avg" };
        println!("{op} ({c:3}, {hw:3}, {kk}/{s}, {p}, {out:2})            {tb:9.1} {tp:9.1}   {:6.2}", tb / tp);
    }
}
