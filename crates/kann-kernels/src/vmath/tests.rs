use super::*;

/// The ISAs this CPU runs.
fn isas() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.available()).collect()
}

/// The f32 spacing at `v` (subnormal spacing below the normal range).
fn ulp(v: f64) -> f64 {
    let a = (v.abs() as f32).max(f32::MIN_POSITIVE);
    if a.is_infinite() {
        return f64::INFINITY;
    }
    (f32::from_bits(a.to_bits() + 1) - a) as f64
}

/// Error of `got` against the exact `want`, in ulps of `want` (0 when
/// both are the same infinity or both NaN).
fn ulps(got: f32, want: f64) -> f64 {
    if got.is_nan() && want.is_nan() || got as f64 == want {
        return 0.0;
    }
    if got.is_nan() || want.is_nan() {
        return f64::INFINITY;
    }
    let w32 = want as f32;
    if w32.is_infinite() {
        return if got == w32 { 0.0 } else { f64::INFINITY };
    }
    (got as f64 - want).abs() / ulp(want)
}

/// Every `stride`-th f32 bit pattern, both signs, plus special values.
fn sweep(stride: u32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..0x7f80_0000u32).step_by(stride as usize).flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)]).collect();
    v.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE, 1e-45, -1e-45, f32::MAX, f32::MIN]);
    v.extend([88.72283, 88.7229, 88.8, 89.0, -87.33654, -103.97, -103.98, -104.0, -150.0, 0.625, -0.625, 0.62499, 9.0, 44.0, 45.0]);
    v
}

/// An exact (f64) form of a function.
type Reference = fn(f64) -> f64;
/// Element `i` of an operand.
type Elem<'a> = Box<dyn Fn(usize) -> f32 + 'a>;

fn exp_ref(x: f64) -> f64 {
    x.exp()
}
fn sigmoid_ref(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        x.exp() / (1.0 + x.exp())
    }
}
fn silu_ref(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        f64::NAN // x · sigmoid(x) = -inf · 0
    } else {
        x * sigmoid_ref(x)
    }
}

/// The largest error in ulps of `f` on `xs` with `isa`, and where.
fn max_ulps(isa: Isa, f: Func, xs: &[f32], reference: fn(f64) -> f64) -> (f64, f32) {
    let mut y = vec![0.0f32; xs.len()];
    map_row(isa, f, xs, &mut y);
    let mut worst = (0.0, 0.0);
    for (&x, &g) in xs.iter().zip(&y) {
        let want = reference(x as f64);
        let mut e = ulps(g, want);
        if f == Func::Silu && x < -87.0 && e > 0.0 {
            // sigmoid(x) is subnormal there: its absolute error, scaled by x.
            e = (g as f64 - want).abs() / (f64::from(x.abs()).max(1.0) * 2f64.powi(-149));
        }
        if e > worst.0 || e.is_nan() {
            worst = (e, x);
        }
    }
    worst
}

#[test]
fn transcendental_functions_stay_within_a_few_ulps_over_the_f32_range() {
    let xs = sweep(1021);
    let cases: [(Func, Reference, f64); 4] = [(Func::Exp, exp_ref, 2.0), (Func::Sigmoid, sigmoid_ref, 3.0), (Func::Silu, silu_ref, 3.5), (Func::Tanh, f64::tanh, 3.0)];
    for isa in isas() {
        for (f, reference, bound) in cases {
            let (e, at) = max_ulps(isa, f, &xs, reference);
            eprintln!("{isa:?} {f:?}: max {e:.2} ulp at {at:e}");
            assert!(e <= bound, "{isa:?} {f:?}: {e} ulp at {at:e}");
        }
    }
}

#[test]
fn transcendental_functions_are_accurate_where_activations_live() {
    // Dense in [-20, 20], where relative error matters most (tanh near 0).
    let xs: Vec<f32> = (-2_000_000..=2_000_000).map(|i| i as f32 * 1e-5).collect();
    for isa in isas() {
        for (f, reference) in [(Func::Exp, exp_ref as fn(f64) -> f64), (Func::Sigmoid, sigmoid_ref), (Func::Silu, silu_ref), (Func::Tanh, f64::tanh)] {
            let (e, at) = max_ulps(isa, f, &xs, reference);
            eprintln!("{isa:?} {f:?} on [-20, 20]: max {e:.2} ulp at {at:e}");
            assert!(e <= 3.5, "{isa:?} {f:?}: {e} ulp at {at:e}");
        }
    }
}

#[test]
fn special_values() {
    for isa in isas() {
        let xs = [0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 100.0, -200.0, 1e-40];
        let mut y = [0.0f32; 8];
        map_row(isa, Func::Exp, &xs, &mut y);
        assert_eq!(y[..4], [1.0, 1.0, f32::INFINITY, 0.0]);
        assert!(y[4].is_nan() && y[5] == f32::INFINITY && y[6] == 0.0 && y[7] == 1.0, "{isa:?} exp {y:?}");
        map_row(isa, Func::Sigmoid, &xs, &mut y);
        assert!(y[..4] == [0.5, 0.5, 1.0, 0.0] && y[4].is_nan() && y[5] == 1.0 && y[6] == 0.0, "{isa:?} sigmoid {y:?}");
        map_row(isa, Func::Tanh, &xs, &mut y);
        assert!(y[..4] == [0.0, -0.0, 1.0, -1.0] && y[4].is_nan() && y[5] == 1.0 && y[6] == -1.0 && y[7] == 1e-40, "{isa:?} tanh {y:?}");
        assert!(y[1].is_sign_negative());
        map_row(isa, Func::Silu, &xs, &mut y);
        assert!(y[..3] == [0.0, 0.0, f32::INFINITY] && y[4].is_nan() && y[5] == 100.0 && y[6] == 0.0, "{isa:?} silu {y:?}");
    }
}

/// Values that exercise every branch: signs, zeros, NaN, infinities,
/// subnormals, huge and ordinary values.
fn mixed(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let special = [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, -1e-40, 3e38, -3e38, 6.0, -3.0];
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let r = (s >> 33) as u32;
            if r % 5 == 0 {
                special[(r / 5) as usize % special.len()]
            } else {
                ((r % 20000) as f32 - 10000.0) / 1000.0
            }
        })
        .collect()
}

fn same(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

#[test]
fn exact_functions_and_piecewise_activations_match_scalar_bit_for_bit() {
    use Activation as A;
    let funcs = [
        (Func::Relu, (|x: f32| if x < 0.0 { 0.0 } else { x }) as fn(f32) -> f32),
        (Func::Abs, f32::abs),
        (Func::Neg, |x| -x),
        (Func::Sqrt, f32::sqrt),
        (Func::Reciprocal, |x| 1.0 / x),
        (Func::Clip { min: -1.0, max: 2.0 }, |x| x.clamp(-1.0, 2.0)),
    ];
    let acts = [A::None, A::Relu, A::Clip { min: -0.5, max: 6.0 }, A::LeakyRelu { alpha: 0.1 }, A::HardSigmoid { alpha: 0.2, beta: 0.5 }, A::HardSwish];
    for isa in isas() {
        for n in 0..100 {
            let x = mixed(n, n as u64 + 1);
            let mut y = vec![0.0f32; n];
            for (f, reference) in funcs {
                map_row(isa, f, &x, &mut y);
                for (&v, &g) in x.iter().zip(&y) {
                    assert!(same(g, reference(v)), "{isa:?} {f:?}({v}) = {g}");
                }
            }
            for act in acts {
                let mut y = x.clone();
                map_in_place(isa, Func::Act(act), &mut y);
                for (&v, &g) in x.iter().zip(&y) {
                    assert!(same(g, act.apply(v)), "{isa:?} {act:?}({v}) = {g}, want {}", act.apply(v));
                }
                // A batch norm's scaling and the activation: the product and
                // the sum each rounded, as the scalar form.
                let (k, shift) = (-1.75f32, 0.375f32);
                map_row(isa, Func::AffineAct { k, shift, act }, &x, &mut y);
                for (&v, &g) in x.iter().zip(&y) {
                    let want = act.apply(v * k + shift);
                    assert!(same(g, want), "{isa:?} affine {act:?}({v}) = {g}, want {want}");
                }
            }
        }
    }
}

#[test]
fn every_length_matches_the_portable_twin_closely() {
    for isa in isas() {
        for n in 0..100 {
            let x = mixed(n, 7 * n as u64 + 3);
            for f in [Func::Exp, Func::Sigmoid, Func::Silu, Func::Tanh] {
                let mut y = x.clone();
                map_in_place(isa, f, &mut y);
                for (&v, &g) in x.iter().zip(&y) {
                    let want = match f {
                        Func::Exp => exp(v),
                        Func::Sigmoid => sigmoid(v),
                        Func::Silu => silu(v),
                        _ => tanh(v),
                    };
                    let ok = same(g, want) || (g - want).abs() <= 4.0 * f32::EPSILON * want.abs();
                    assert!(ok, "{isa:?} n={n} {f:?}({v}) = {g}, portable {want}");
                }
            }
        }
    }
}

#[test]
fn binary_rows_are_exact_for_every_operand_pattern() {
    let ops = [Arith::Add, Arith::Sub, Arith::Mul, Arith::Div, Arith::Max, Arith::Min];
    let scalar = |op: Arith, a: f32, b: f32| match op {
        Arith::Add => a + b,
        Arith::Sub => a - b,
        Arith::Mul => a * b,
        Arith::Div => a / b,
        Arith::Max if a.is_nan() || b.is_nan() => f32::NAN,
        Arith::Min if a.is_nan() || b.is_nan() => f32::NAN,
        Arith::Max => a.max(b),
        Arith::Min => a.min(b),
    };
    for isa in isas() {
        for n in 0..100 {
            let (xa, xb) = (mixed(n, n as u64 + 11), mixed(n, n as u64 + 97));
            let (sa, sb) = (xa.first().copied().unwrap_or(2.5), xb.last().copied().unwrap_or(-1.5));
            for op in ops {
                for pattern in 0..5 {
                    let mut out = if pattern == 4 { xa.clone() } else { vec![0.0; n] };
                    let (a, b, ea, eb): (Operand, Operand, Elem, Elem) = match pattern {
                        0 => (Operand::Row(&xa), Operand::Row(&xb), Box::new(|i| xa[i]), Box::new(|i| xb[i])),
                        1 => (Operand::Row(&xa), Operand::Scalar(sb), Box::new(|i| xa[i]), Box::new(|_| sb)),
                        2 => (Operand::Scalar(sa), Operand::Row(&xb), Box::new(|_| sa), Box::new(|i| xb[i])),
                        3 => (Operand::Scalar(sa), Operand::Scalar(sb), Box::new(|_| sa), Box::new(|_| sb)),
                        _ => (Operand::Out, Operand::Row(&xb), Box::new(|i| xa[i]), Box::new(|i| xb[i])),
                    };
                    binary_row(isa, op, a, b, &mut out);
                    for (i, &g) in out.iter().enumerate() {
                        let want = scalar(op, ea(i), eb(i));
                        assert!(same(g, want), "{isa:?} {op:?} pattern {pattern} n={n} [{i}]: {} ⋄ {} = {g}, want {want}", ea(i), eb(i));
                    }
                }
            }
        }
    }
}

/// Nanoseconds per element of SiLU over long rows and 32-float rows;
/// not a test of correctness:
/// `cargo test --release -p kann-kernels --lib vmath::tests::silu_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn silu_speed() {
    let mut xs: Vec<f32> = (0..1 << 20).map(|i| ((i * 7919) % 2001) as f32 * 0.01 - 10.0).collect();
    for isa in isas() {
        for row in [1 << 20, 32, 7] {
            let mut best = f64::INFINITY;
            for _ in 0..10 {
                let t = std::time::Instant::now();
                for chunk in xs.chunks_mut(row) {
                    map_in_place(isa, Func::Silu, chunk);
                }
                best = best.min(t.elapsed().as_secs_f64());
                // Keep the values in range: SiLU of SiLU drifts towards 0.
                for (i, v) in xs.iter_mut().enumerate() {
                    *v = ((i * 7919) % 2001) as f32 * 0.01 - 10.0;
                }
            }
            println!("silu {isa:?} rows of {row}: {:.3} ns/element", best * 1e9 / xs.len() as f64);
        }
    }
}

/// Nanoseconds an element of each exponential activation on every ISA
/// (best of 20 over 1 M floats, in L2-missing memory as a network's
/// planes are): `cargo test --release -p kann-kernels --lib vmath_timing
/// -- --ignored --nocapture`.
#[test]
#[ignore]
fn vmath_timing() {
    for n in [1 << 14, 1 << 20] {
        timing_over(n);
    }
}

fn timing_over(n: usize) {
    let mut xs: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2000) as f32 / 100.0 - 10.0).collect();
    for f in [Func::Act(Activation::Silu), Func::Act(Activation::Sigmoid), Func::Act(Activation::Relu)] {
        for isa in [Isa::Generic, Isa::Avx2, Isa::Avx512].into_iter().filter(|i| i.available()) {
            let mut best = f64::MAX;
            for _ in 0..(20 << 20) / n {
                let t = std::time::Instant::now();
                map_in_place(isa, f, &mut xs);
                best = best.min(t.elapsed().as_secs_f64());
                // Keep the inputs in range (SiLU of SiLU ... stays finite).
                xs.iter_mut().for_each(|x| *x = x.clamp(-10.0, 10.0));
            }
            println!("{f:?} {:8} over {n}: {:.3} ns an element", isa.name(), best * 1e9 / n as f64);
        }
    }
}
