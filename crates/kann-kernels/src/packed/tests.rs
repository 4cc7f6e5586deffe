//! The packed GEMM against a naive triple loop (f64 sums) for every ISA this
//! CPU has: every remainder of M, N and K around the tile and block sizes,
//! every epilogue.

use super::pack::{pack_a, PackedA};
use super::*;
use crate::conv::testutil::Rng;

/// The activations of the epilogue, each kind once.
pub(crate) fn all_activations() -> Vec<Activation> {
    vec![
        Activation::None,
        Activation::Relu,
        Activation::Clip { min: -0.25, max: 0.5 },
        Activation::LeakyRelu { alpha: 0.1 },
        Activation::Sigmoid,
        Activation::HardSigmoid { alpha: 0.3, beta: 0.4 },
        Activation::HardSwish,
        Activation::Silu,
        Activation::Tanh,
    ]
}

struct Case {
    m: usize,
    k: usize,
    n: usize,
    bias: bool,
    residual: bool,
    act: Activation,
}

/// Runs one case through `isa` with C embedded in a wider matrix (ldc > n),
/// B too (its whole panels packed by their first tile, all in a pass of
/// its own from B's rows, or from `fill` runs), and checks it against the
/// naive product; the columns outside C stay NaN.
fn check(isa: Isa, cs: &Case, rng: &mut Rng) {
    for (strided, rows) in [(true, true), (false, true), (false, false)] {
        check_with(isa, cs, rng, strided, rows);
    }
}

fn check_with(isa: Isa, cs: &Case, rng: &mut Rng, strided: bool, rows: bool) {
    let (m, k, n, ldc, ldb) = (cs.m, cs.k, cs.n, cs.n + 3, cs.n + 5);
    let (a, b, bias, res) = (rng.vec(m * k), rng.vec(k * ldb), rng.vec(m), rng.vec(m * ldc));
    let packed = pack_a(&a, m, k, isa, k_block(isa, n));
    let mut c = vec![f32::NAN; m * ldc];
    let mut scratch = vec![0.0f32; scratch_floats(isa, k, n)];
    let call = GemmCall {
        m,
        k,
        n,
        a: PackedA::new(&packed, m, k, isa, k_block(isa, n)),
        c: c.as_mut_ptr(),
        ldc,
        bias: cs.bias.then_some(&bias[..]),
        residual: if cs.residual { res.as_ptr() } else { std::ptr::null() },
        act: cs.act,
    };
    // SAFETY: the buffers have the sizes the call states; the ISA is present.
    unsafe { gemm(isa, &call, &Matrix { data: &b, ld: ldb, strided, rows }, &mut scratch) };
    let tol = 1e-6 * (k as f64).max(16.0) * 4.0;
    for i in 0..m {
        for j in 0..ldc {
            let got = c[i * ldc + j];
            if j >= n {
                assert!(got.is_nan(), "{isa:?}: wrote outside C at ({i}, {j})");
                continue;
            }
            let mut acc: f64 = (0..k).map(|p| f64::from(a[i * k + p]) * f64::from(b[p * ldb + j])).sum();
            if cs.bias {
                acc += f64::from(bias[i]);
            }
            if cs.residual {
                acc += f64::from(res[i * ldc + j]);
            }
            let want = f64::from(cs.act.apply(acc as f32));
            let err = (f64::from(got) - want).abs();
            assert!(err <= tol * (1.0 + want.abs()), "{isa:?} m{m} k{k} n{n} strided {strided} rows {rows} {:?} bias {} res {}: ({i},{j}) got {got}, want {want}", cs.act, cs.bias, cs.residual);
        }
    }
}

/// The ISAs this CPU runs; says which are skipped.
pub(crate) fn isas() -> Vec<Isa> {
    for isa in Isa::ALL.into_iter().filter(|i| !i.available()) {
        println!("skipping the {} kernels: this CPU lacks the ISA", isa.name());
    }
    Isa::ALL.into_iter().filter(|i| i.available()).collect()
}

#[test]
fn every_remainder_around_the_tile() {
    let mut rng = Rng(3);
    for isa in isas() {
        let (mr, nr) = (isa.mr(), isa.nr());
        for m in [1, mr - 1, mr, mr + 1, 2 * mr + 1] {
            // nr / 2 and nr / 2 + 1: the one-vector (half) tile's edge;
            // up to 4 columns past a vector (4, nr / 2 + 4, nr + 3): the
            // AVX-512 tile's narrow column products; 5 and nr / 2 + 5 just past.
            // nr + 1 to nr + nr / 2 + 4: AVX-512's wide tile over a full panel
            // and the last (its third vector masked, whole, or with a narrow
            // tail); nr + nr / 2 + 5 just past; 2 nr + 3: a wide tile after a
            // full one.
            for n in [1, 4, 5, nr / 2, nr / 2 + 1, nr / 2 + 4, nr / 2 + 5, nr - 1, nr, nr + 1, nr + 3, nr + 5, nr + nr / 2, nr + nr / 2 + 4, nr + nr / 2 + 5, 2 * nr + 3] {
                for k in [1, 2, 7, 17] {
                    check(isa, &Case { m, k, n, bias: true, residual: true, act: Activation::Relu }, &mut rng);
                }
            }
        }
    }
}

#[test]
fn only_one_wide_tile_takes_shallower_blocks() {
    for isa in Isa::ALL {
        let wide = (isa.nr() + NARROW_COLS + 1..=isa.wide_cols()).collect::<Vec<_>>();
        for n in 1..4 * isa.nr() {
            let want = if wide.contains(&n) { KC_WIDE } else { KC };
            assert_eq!(k_block(isa, n), want, "{isa:?} over {n} columns");
        }
    }
    assert_eq!(k_block(Isa::Avx512, 49), KC_WIDE, "a 7×7 map on AVX-512");
    assert_eq!(Isa::Avx2.wide_cols(), 0);
}

#[test]
fn every_remainder_around_the_blocks() {
    let mut rng = Rng(5);
    for isa in isas() {
        // 49 columns: a 7×7 map (a narrow tail accumulated across K blocks).
        // Shallow K over more than NC columns: wider blocks (block_columns).
        // Every other case with SiLU (applied after the tiles, row panel by
        // row panel in a shallow block).
        for (i, (m, k, n)) in [(MC + 3, KC + 1, 40), (17, 2 * KC + 5, NC + 7), (MC, KC, NC), (MC + isa.mr(), KC - 1, NC - 1), (20, 2 * KC + 5, 49), (13, 16, 3 * NC + 5), (MC + 1, 64, 2 * NC + 1), (9, 60, 5 * NC), (7, 5, 30 * NC + 3), (MC + 5, 16, 3 * NC + 2)].into_iter().enumerate() {
            let act = if i % 2 == 0 { Activation::Clip { min: -1.0, max: 1.0 } } else { Activation::Silu };
            check(isa, &Case { m, k, n, bias: true, residual: false, act }, &mut rng);
        }
    }
}

#[test]
fn every_epilogue_on_full_and_edge_tiles() {
    let mut rng = Rng(11);
    for isa in isas() {
        for act in all_activations() {
            for (bias, residual) in [(false, false), (true, false), (false, true), (true, true)] {
                for (m, n) in [(isa.mr(), isa.nr()), (2 * isa.mr() + 1, 3 * isa.nr() - 2), (isa.mr() + 3, isa.nr() + isa.nr() / 2 + 3)] {
                    check(isa, &Case { m, k: 33, n, bias, residual, act }, &mut rng);
                }
            }
        }
    }
}

/// A column block's last 1 to 4 columns past its panels (a 7×7 map's 49th,
/// a 14×14 map's last 4), which AVX2 computes across row panels at once:
/// more panels than a pass takes and a partial last one, both epilogue
/// ends, across K blocks.
#[test]
fn narrow_last_panels_across_row_panels() {
    let mut rng = Rng(29);
    for isa in isas() {
        let (mr, nr) = (isa.mr(), isa.nr());
        for n in [1, 2, 3, 4, nr + 1, nr + 2, nr + 3, nr + 4, 3 * nr + 1, 12 * nr + 4] {
            for m in [9 * mr + 1, 8 * mr, 2 * mr + 5] {
                for (k, act) in [(33, Activation::HardSwish), (KC + 9, Activation::Relu), (5, Activation::Sigmoid), (1, Activation::None)] {
                    for (bias, residual) in [(true, true), (false, false), (true, false)] {
                        check(isa, &Case { m, k, n, bias, residual, act }, &mut rng);
                    }
                }
            }
        }
    }
}

#[test]
fn simd_tiles_agree_with_the_portable_one() {
    let mut rng = Rng(19);
    let (m, k, n) = (37, 300, 101);
    let (a, b) = (rng.vec(m * k), rng.vec(k * n));
    let run = |isa: Isa| {
        let packed = pack_a(&a, m, k, isa, k_block(isa, n));
        let mut c = vec![0.0f32; m * n];
        let mut scratch = vec![0.0f32; scratch_floats(isa, k, n)];
        let call = GemmCall { m, k, n, a: PackedA::new(&packed, m, k, isa, k_block(isa, n)), c: c.as_mut_ptr(), ldc: n, bias: None, residual: std::ptr::null(), act: Activation::HardSwish };
        // SAFETY: sizes as stated; the ISA is present.
        unsafe { gemm(isa, &call, &Matrix { data: &b, ld: n, strided: true, rows: true }, &mut scratch) };
        c
    };
    let want = run(Isa::Generic);
    for isa in isas() {
        crate::conv::testutil::assert_close(&run(isa), &want, 1e-4);
    }
}

/// Seconds this thread has run on a CPU (`CLOCK_THREAD_CPUTIME_ID`), so a
/// busy shared machine does not count the time others hold the core; wall
/// time off Linux.
pub(crate) fn cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut t = Timespec { sec: 0, nsec: 0 };
        // SAFETY: libc's clock_gettime writes one timespec (two 64-bit fields on 64-bit Linux).
        if unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0 {
            return t.sec as f64 + t.nsec as f64 * 1e-9;
        }
    }
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
}

/// GFLOP/s of each ISA on ResNet-50 GEMM shapes, one thread, in CPU time
/// ([`cpu_seconds`]). Run by hand:
/// `cargo test --release -p kann-kernels packed::tests::speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn speed() {
    let mut rng = Rng(1);
    // KANN_SPEED_SHAPES=512x4608x49,... measures other M×K×N shapes.
    let shapes: Vec<(usize, usize, usize)> = std::env::var("KANN_SPEED_SHAPES").map_or(vec![(256, 2304, 196), (64, 576, 3136), (512, 4608, 49), (256, 64, 3136), (2048, 512, 49)], |v| {
        v.split(',')
            .map(|s| {
                let d: Vec<usize> = s.split('x').map(|x| x.parse().expect("KANN_SPEED_SHAPES: MxKxN")).collect();
                (d[0], d[1], d[2])
            })
            .collect()
    });
    for (m, k, n) in shapes {
        let (a, b) = (rng.vec(m * k), rng.vec(k * n));
        // KANN_SPEED_ISA=avx512 measures one ISA (for a profiler).
        let only = std::env::var("KANN_SPEED_ISA").ok();
        // KANN_SPEED_KC=128,192 tries these K blocks instead of k_block's.
        let kcs: Vec<Option<usize>> = std::env::var("KANN_SPEED_KC").map_or(vec![None], |v| v.split(',').map(|x| Some(x.parse().expect("KANN_SPEED_KC"))).collect());
        for (isa, kc_max) in isas().into_iter().filter(|i| only.as_deref().is_none_or(|o| o == i.name())).flat_map(|i| kcs.iter().map(move |&kc| (i, kc.unwrap_or(k_block(i, n))))) {
            let packed = pack_a(&a, m, k, isa, kc_max);
            let mut c = vec![0.0f32; m * n];
            let mut scratch = vec![0.0f32; scratch_floats(isa, k, n)];
            let call = GemmCall { m, k, n, a: PackedA::new(&packed, m, k, isa, kc_max), c: c.as_mut_ptr(), ldc: n, bias: None, residual: std::ptr::null(), act: Activation::Relu };
            let mut times = Vec::new();
            for _ in 0..21 {
                let t = cpu_seconds();
                // SAFETY: sizes as stated; the ISA is present.
                unsafe { gemm(isa, &call, &Matrix { data: &b, ld: n, strided: true, rows: true }, &mut scratch) };
                times.push(cpu_seconds() - t);
            }
            times.sort_by(f64::total_cmp);
            let gf = |t: f64| 2.0 * (m * k * n) as f64 / t / 1e9;
            println!("M={m} K={k} N={n} {:>8} kc {kc_max}: {:.3} ms, {:.1} GFLOP/s (median), {:.1} (best)", isa.name(), times[10] * 1e3, gf(times[10]), gf(times[0]));
        }
    }
}

/// GFLOP/s of each ISA's full register tile alone, its A and B panels hot
/// in L1 (the ceiling the blocking can reach). Run by hand like [`speed`].
#[test]
#[ignore]
fn tile_speed() {
    fn run<M: Micro>(name: &str) {
        // Depths alternated round by round (this machine's speed drifts):
        // per-tile costs weigh more in shallow tiles.
        let depths = [KC, 64, 32, 16];
        let mut rng = Rng(2);
        // B 64-byte aligned, as the runtime's scratch is: split lines cost ~10 %.
        let (a, b0) = (rng.vec(KC * M::MR), rng.vec(KC * M::NR + 16));
        let b = &b0[b0.as_ptr().align_offset(64)..];
        let mut c = vec![0.0f32; M::MR * M::NR];
        let mut best = [f64::INFINITY; 4];
        for _ in 0..50 {
            for (kc, best) in depths.iter().zip(&mut best) {
                let reps = 1_000_000 / kc;
                let t = cpu_seconds();
                for _ in 0..reps {
                    // SAFETY: panels of kc; C is one MR × NR tile; the ISA is present (checked by the caller).
                    unsafe { M::tile(*kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), M::NR, M::MR, M::NR, &TileEpi::PLAIN) };
                }
                *best = best.min((cpu_seconds() - t) / (reps * kc) as f64);
            }
        }
        for (kc, best) in depths.iter().zip(best) {
            println!("tile {name} {}x{} kc {kc}: {:.1} GFLOP/s", M::MR, M::NR, 2.0 * (M::MR * M::NR) as f64 / best / 1e9);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if Isa::Avx512.available() {
            run::<micro_avx512::Avx512>("avx512");
        }
        if Isa::Avx2.available() {
            run::<micro_avx2::Avx2>("avx2");
        }
    }
    run::<micro_generic::Generic>("generic");
}

/// GFLOP/s of whole GEMMs on ResNet-50's shapes (B a row-major matrix, as
/// a pointwise convolution reads it); not a test of correctness:
/// `cargo test --release -p kann-kernels --lib packed::tests::gemm_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn gemm_speed() {
    let shapes = [(256, 64, 3136), (64, 256, 3136), (64, 576, 3136), (256, 1024, 196), (256, 2304, 196), (512, 4608, 49), (2048, 512, 49), (512, 2048, 49), (64, 27, 12321), (64, 27, 1887), (64, 147, 12544), (96, 16, 12544), (96, 16, 1024)];
    for isa in [Isa::Avx512] {
        if !isa.available() {
            continue;
        }
        for (m, k, n) in shapes {
            let mut rng = Rng(3);
            let (a, b) = (rng.vec(m * k), rng.vec(k * n));
            let packed = pack_a(&a, m, k, isa, k_block(isa, n));
            let mut c = vec![0.0f32; m * n];
            let mut scratch0 = vec![0.0f32; scratch_floats(isa, k, n) + 16];
            let lead = scratch0.as_ptr().align_offset(64);
            let scratch = &mut scratch0[lead..];
            let bias = rng.vec(m);
            let call = GemmCall { m, k, n, a: PackedA::new(&packed, m, k, isa, k_block(isa, n)), c: c.as_mut_ptr(), ldc: n, bias: Some(&bias), residual: std::ptr::null(), act: Activation::Relu };
            let src = Matrix { data: &b, ld: n, strided: true, rows: true };
            let reps = (2e9 / (2.0 * (m * k * n) as f64)).ceil() as usize;
            let mut best = f64::INFINITY;
            for _ in 0..7 {
                let t = cpu_seconds();
                for _ in 0..reps {
                    // SAFETY: C is m × n; the scratch is sized by scratch_floats; the ISA is present.
                    unsafe { gemm(isa, &call, &src, scratch) };
                }
                best = best.min(cpu_seconds() - t);
            }
            let gf = 2.0 * (m * k * n * reps) as f64 / best / 1e9;
            println!("gemm {} m {m} k {k} n {n}: {gf:.1} GFLOP/s", isa.name());
        }
    }
}

/// GFLOP/s of the AVX2 indirect tile (B rows by an offset table, as the
/// direct convolution reads them) against the packed one, both hot in L1;
/// not a test of correctness: `cargo test --release -p kann-kernels
/// tile_indirect_speed -- --ignored --nocapture`. On Zen 3 a 7×7/2 stem's
/// offsets ran at 95 GFLOP/s against the packed tile's 97 (147 steps).
#[test]
#[ignore]
#[cfg(target_arch = "x86_64")]
fn tile_indirect_speed() {
    if !Isa::Avx2.available() {
        return;
    }
    type M = micro_avx2::Avx2;
    let kc = 147;
    let mut rng = Rng(3);
    let (a, b0) = (rng.vec(kc * M::MR), rng.vec(kc * M::NR + 4096));
    let b = &b0[b0.as_ptr().align_offset(64)..];
    let mut c = vec![0.0f32; M::MR * M::NR];
    // Offsets as a 7x7/2 stem's over 3 channels x 2 phases of rows 64 floats wide.
    let offs: Vec<usize> = (0..kc).map(|p| { let (ci, ky, kx) = (p / 49, (p / 7) % 7, p % 7); ((ci * 2 + kx % 2) * 7 + ky) * 64 + kx / 2 }).collect();
    let contiguous: Vec<usize> = (0..kc).map(|p| p * M::NR).collect();
    let reps = 4_000;
    for (name, offs) in [("indirect stem", &offs), ("indirect contiguous", &contiguous)] {
        let mut best = f64::INFINITY;
        let mut best_tile = f64::INFINITY;
        for _ in 0..30 {
            let t = cpu_seconds();
            for _ in 0..reps {
                // SAFETY: offsets inside b (max < 4096 + kc·NR); the ISA is present.
                unsafe { M::tile_indirect(kc, a.as_ptr(), b.as_ptr(), offs.as_ptr(), c.as_mut_ptr(), M::NR, M::MR, M::NR, &TileEpi::PLAIN) };
            }
            best = best.min(cpu_seconds() - t);
            let t = cpu_seconds();
            for _ in 0..reps {
                // SAFETY: panels of kc; the ISA is present.
                unsafe { M::tile(kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), M::NR, M::MR, M::NR, &TileEpi::PLAIN) };
            }
            best_tile = best_tile.min(cpu_seconds() - t);
        }
        let gf = |t: f64| 2.0 * (M::MR * M::NR * kc * reps) as f64 / t / 1e9;
        println!("{name}: {:.1} GFLOP/s, packed tile {:.1}", gf(best), gf(best_tile));
    }
}
