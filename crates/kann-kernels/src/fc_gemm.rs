//! Fully connected layers: `Y[M×N] = X[M×K] · W[K×N]` with a constant W
//! (ONNX Gemm and MatMul with constant weights), computed as
//! `Yᵀ = Wᵀ · Xᵀ` so the weights are the packed operand.
//!
//! W is packed at generate by [`pack_fc_weights`] (alpha folded in) into
//! panels of `PR` output features: `[ceil(N/PR)][K][PR]`, features past N
//! zero, so one SIMD vector holds one step `k` of `PR` dot products.
//! At batch 1 the layer is a matrix-vector product bound by streaming the
//! weights, so the panel kernel reads each panel once per group of up to
//! `RB` batch rows and keeps `PR` lanes × 4 partial sums per row in
//! registers (four independent FMA chains hide the FMA latency).
//!
//! Accuracy: sums are f32. Within a block of [`KB`] steps each lane keeps
//! four partial sums; block sums are then added into a running total, so
//! no single f32 chain is longer than `KB / 4 + K / KB` terms.
//!
//! Work split: panels of output features (`ceil(N/PR)` items); a part writes
//! only its features' columns of every row. Bias (per feature), residual
//! (Y's shape) and activation are applied as the panel's values are stored.
//!
//! Inputs: X (`[M, K]`, or `[K, M]` when `trans_a`), packed W, then the bias
//! `[N]` if `epilogue.bias`, then the residual `[M, N]` if
//! `epilogue.residual`. Output: Y `[M, N]`.

use crate::kernel::{expect_io, KernelImpl};
use crate::packed::Isa;
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Steps of K summed into one block sum before it joins the total.
pub const KB: usize = 256;
/// Partial sums per lane inside a block.
const U: usize = 4;
/// The widest panel of any ISA.
const MAX_PR: usize = 16;
/// The most batch rows one panel pass computes.
const MAX_RB: usize = 4;

/// A fully connected layer on packed weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FcGemm {
    pub m: u64,
    pub k: u64,
    pub n: u64,
    /// X is stored `[K, M]`.
    pub trans_a: bool,
    pub epilogue: Epilogue,
    pub isa: Isa,
}

/// Output features per packed panel: one vector of the ISA.
pub fn panel_rows(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 | Isa::Generic => 8,
    }
}

/// Batch rows per panel pass (bounded by the vector registers).
fn batch_rows(isa: Isa) -> usize {
    match isa {
        Isa::Avx2 => 2,
        Isa::Avx512 | Isa::Generic => MAX_RB,
    }
}

/// Packs W (`[K, N]`, or `[N, K]` when `trans_b`) times `alpha` into
/// panels of [`panel_rows`] features: `[ceil(N/PR)][K][PR]`.
pub fn pack_fc_weights(
    w: &[f32],
    k: usize,
    n: usize,
    trans_b: bool,
    alpha: f32,
    isa: Isa,
) -> Vec<f32> {
    assert_eq!(
        w.len(),
        k * n,
        "pack_fc_weights: {} values for {k}x{n}",
        w.len()
    );
    let pr = panel_rows(isa);
    let mut out = vec![0.0f32; n.div_ceil(pr) * k * pr];
    for j in 0..n {
        let (p, lane) = (j / pr, j % pr);
        let panel = &mut out[p * k * pr..][..k * pr];
        for kk in 0..k {
            let v = if trans_b {
                w[j * k + kk]
            } else {
                w[kk * n + j]
            };
            panel[kk * pr + lane] = alpha * v;
        }
    }
    out
}

/// One batch row's view of X: element `kk` at `base + kk * step`.
#[derive(Clone, Copy)]
struct XRow {
    ptr: *const f32,
    step: usize,
}

impl XRow {
    /// # Safety
    /// `kk < K`.
    #[inline(always)]
    unsafe fn at(self, kk: usize) -> f32 {
        // SAFETY: the caller's bound; the row spans K steps.
        unsafe { *self.ptr.add(kk * self.step) }
    }
}

/// Portable panel pass: `out[r][l] = Σ_k a[k·PR + l] · x_r[k]`.
///
/// # Safety
/// `a` holds `k * PR` floats; each row in `x` spans `k` steps.
unsafe fn panel_generic<const PR: usize, const R: usize>(
    k: usize,
    a: *const f32,
    x: &[XRow; R],
    out: &mut [[f32; MAX_PR]; MAX_RB],
) {
    let mut total = [[0.0f32; PR]; R];
    for k0 in (0..k).step_by(KB) {
        let kb = KB.min(k - k0);
        let mut acc = [[[0.0f32; PR]; U]; R];
        for kk in k0..k0 + kb {
            // SAFETY: kk < k.
            let w = unsafe { std::slice::from_raw_parts(a.add(kk * PR), PR) };
            for (r, xr) in x.iter().enumerate() {
                // SAFETY: kk < k.
                let xv = unsafe { xr.at(kk) };
                let acc = &mut acc[r][kk % U];
                for l in 0..PR {
                    acc[l] += w[l] * xv;
                }
            }
        }
        for r in 0..R {
            for l in 0..PR {
                total[r][l] += (acc[r][0][l] + acc[r][1][l]) + (acc[r][2][l] + acc[r][3][l]);
            }
        }
    }
    for r in 0..R {
        out[r][..PR].copy_from_slice(&total[r]);
    }
}

/// Defines a SIMD panel pass `$name::<R>` of one `$w`-lane vector per step.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_panel {
    ($name:ident, $feat:literal, lanes = $w:literal, zero = $zero:path, load = $load:path, store = $store:path, set1 = $set1:path, fmadd = $fmadd:path, add = $add:path) => {
        /// SIMD twin of [`panel_generic`].
        ///
        /// # Safety
        /// As [`panel_generic`]; the CPU has the ISA.
        #[target_feature(enable = $feat)]
        unsafe fn $name<const R: usize>(
            k: usize,
            a: *const f32,
            x: &[XRow; R],
            out: &mut [[f32; MAX_PR]; MAX_RB],
        ) {
            let mut total = [$zero(); R];
            for k0 in (0..k).step_by(KB) {
                let kb = KB.min(k - k0);
                let mut acc = [[$zero(); U]; R];
                let mut kk = k0;
                while kk + U <= k0 + kb {
                    for u in 0..U {
                        // SAFETY: kk + u < k: panel step kk + u and X's step kk + u.
                        unsafe {
                            let w = $load(a.add((kk + u) * $w));
                            for r in 0..R {
                                acc[r][u] = $fmadd(w, $set1(x[r].at(kk + u)), acc[r][u]);
                            }
                        }
                    }
                    kk += U;
                }
                while kk < k0 + kb {
                    // SAFETY: kk < k.
                    unsafe {
                        let w = $load(a.add(kk * $w));
                        for r in 0..R {
                            acc[r][0] = $fmadd(w, $set1(x[r].at(kk)), acc[r][0]);
                        }
                    }
                    kk += 1;
                }
                for r in 0..R {
                    total[r] = $add(
                        total[r],
                        $add($add(acc[r][0], acc[r][1]), $add(acc[r][2], acc[r][3])),
                    );
                }
            }
            for r in 0..R {
                // SAFETY: out[r] holds MAX_PR >= $w floats.
                unsafe { $store(out[r].as_mut_ptr(), total[r]) };
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::*;
    use std::arch::x86_64::*;

    simd_panel!(
        panel_avx2,
        "avx2,fma",
        lanes = 8,
        zero = _mm256_setzero_ps,
        load = _mm256_loadu_ps,
        store = _mm256_storeu_ps,
        set1 = _mm256_set1_ps,
        fmadd = _mm256_fmadd_ps,
        add = _mm256_add_ps
    );
    simd_panel!(
        panel_avx512,
        "avx512f",
        lanes = 16,
        zero = _mm512_setzero_ps,
        load = _mm512_loadu_ps,
        store = _mm512_storeu_ps,
        set1 = _mm512_set1_ps,
        fmadd = _mm512_fmadd_ps,
        add = _mm512_add_ps
    );

    /// Runs the ISA's panel pass over `rows` (<= its batch rows) rows.
    ///
    /// # Safety
    /// As [`panel_generic`]; the CPU has `isa`.
    pub(super) unsafe fn panel(
        isa: Isa,
        k: usize,
        a: *const f32,
        x: &[XRow],
        out: &mut [[f32; MAX_PR]; MAX_RB],
    ) {
        // SAFETY: forwarded contract; the slice lengths match R.
        unsafe {
            match (isa, x.len()) {
                (Isa::Avx512, 1) => panel_avx512::<1>(k, a, &[x[0]], out),
                (Isa::Avx512, 2) => panel_avx512::<2>(k, a, &[x[0], x[1]], out),
                (Isa::Avx512, 3) => panel_avx512::<3>(k, a, &[x[0], x[1], x[2]], out),
                (Isa::Avx512, 4) => panel_avx512::<4>(k, a, &[x[0], x[1], x[2], x[3]], out),
                (Isa::Avx2, 1) => panel_avx2::<1>(k, a, &[x[0]], out),
                (Isa::Avx2, 2) => panel_avx2::<2>(k, a, &[x[0], x[1]], out),
                _ => unreachable!("{} rows for {}", x.len(), isa.name()),
            }
        }
    }
}

/// Runs the portable panel pass over `rows` (<= MAX_RB) rows.
///
/// # Safety
/// As [`panel_generic`].
unsafe fn panel_portable(k: usize, a: *const f32, x: &[XRow], out: &mut [[f32; MAX_PR]; MAX_RB]) {
    // SAFETY: forwarded contract.
    unsafe {
        match x.len() {
            1 => panel_generic::<8, 1>(k, a, &[x[0]], out),
            2 => panel_generic::<8, 2>(k, a, &[x[0], x[1]], out),
            3 => panel_generic::<8, 3>(k, a, &[x[0], x[1], x[2]], out),
            _ => panel_generic::<8, 4>(k, a, &[x[0], x[1], x[2], x[3]], out),
        }
    }
}

impl FcGemm {
    fn panels(&self) -> usize {
        (self.n as usize).div_ceil(panel_rows(self.isa))
    }

    /// Batch row `i` of X.
    fn x_row(&self, x: &[f32], i: usize) -> XRow {
        let (m, k) = (self.m as usize, self.k as usize);
        match self.trans_a {
            true => XRow {
                ptr: x[i..].as_ptr(),
                step: m,
            },
            false => XRow {
                ptr: x[i * k..].as_ptr(),
                step: 1,
            },
        }
    }
}

impl KernelImpl for FcGemm {
    fn name(&self) -> String {
        format!("f32_fc_packed_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.panels() as u64
    }

    fn scratch_bytes(&self, _items: u64) -> usize {
        0
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        if self.k == 0 {
            return Err(format!("fully connected product has K = 0: {self:?}"));
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (m, k, n, pr) = (
            self.m as usize,
            self.k as usize,
            self.n as usize,
            panel_rows(self.isa),
        );
        assert!(
            self.isa.available(),
            "the fc kernel needs {}, which this CPU lacks",
            self.isa.name()
        );
        // SAFETY: inputs are not written during the step (the run contract).
        let (x, w) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        assert!(
            x.len() >= m * k && w.len() >= self.panels() * k * pr,
            "fc inputs are too small"
        );
        // SAFETY: as above.
        let bias = self.epilogue.bias.then(|| unsafe { io.inputs[2].f32() });
        // SAFETY: as above.
        let residual = self
            .epilogue
            .residual
            .then(|| unsafe { io.inputs[2 + usize::from(self.epilogue.bias)].f32() });
        let y = &io.outputs[0];
        assert!(m * n <= y.len_bytes() / 4, "fc output is too small");
        let yp = y.as_ptr() as *mut f32;
        let rb = batch_rows(self.isa);
        let mut out = [[0.0f32; MAX_PR]; MAX_RB];
        for p in part.start as usize..part.end as usize {
            let a = w[p * k * pr..][..k * pr].as_ptr();
            let cols = p * pr..((p + 1) * pr).min(n);
            for i0 in (0..m).step_by(rb) {
                let rows: Vec<XRow> = (i0..(i0 + rb).min(m)).map(|i| self.x_row(x, i)).collect();
                // SAFETY: the panel holds k * pr floats; each X row spans k steps
                // (x holds m * k floats); the ISA is present (asserted).
                unsafe {
                    match self.isa {
                        Isa::Generic => panel_portable(k, a, &rows, &mut out),
                        #[cfg(target_arch = "x86_64")]
                        _ => simd::panel(self.isa, k, a, &rows, &mut out),
                        #[cfg(not(target_arch = "x86_64"))]
                        _ => unreachable!("checked by available()"),
                    }
                }
                for (r, vals) in out.iter().enumerate().take(rows.len()) {
                    let i = i0 + r;
                    for j in cols.clone() {
                        let mut v = vals[j - cols.start];
                        if let Some(b) = bias {
                            v += b[j];
                        }
                        if let Some(res) = residual {
                            v += res[i * n + j];
                        }
                        // SAFETY: i < m, j < n (inside Y, asserted); this part
                        // alone owns feature j (the run contract).
                        unsafe { *yp.add(i * n + j) = self.epilogue.activation.apply(v) };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;
    use crate::gemm::{matrix_strides, Gemm};
    use crate::packed::tests::{all_activations, isas};

    /// The portable gemm.rs kernel for the same product (bias as C, beta 1).
    fn reference(f: &FcGemm, trans_b: bool, alpha: f32) -> Gemm {
        Gemm {
            batch: vec![],
            a_batch_strides: vec![],
            b_batch_strides: vec![],
            m: f.m,
            k: f.k,
            n: f.n,
            a_strides: matrix_strides(f.m, f.k, f.trans_a),
            b_strides: matrix_strides(f.k, f.n, trans_b),
            alpha,
            beta: 1.0,
            c_strides: [0, 1],
            col_block: f.n.max(1),
            epilogue: f.epilogue,
        }
    }

    /// `(trans_a, trans_b, alpha)` of a case.
    type Form = (bool, bool, f32);

    fn compare((m, k, n): (usize, usize, usize), (trans_a, trans_b, alpha): Form, e: Epilogue, rng: &mut Rng) {
        let (x, w, bias, res) = (rng.vec(m * k), rng.vec(k * n), rng.vec(n), rng.vec(m * n));
        let base = FcGemm {
            m: m as u64,
            k: k as u64,
            n: n as u64,
            trans_a,
            epilogue: e,
            isa: Isa::Generic,
        };
        let mut inputs = vec![x, w.clone()];
        if e.bias {
            inputs.push(bias);
        }
        if e.residual {
            inputs.push(res);
        }
        let want = run_parts(&reference(&base, trans_b, alpha), &inputs, &[m * n], 1).remove(0);
        for isa in isas() {
            let f = FcGemm {
                isa,
                ..base.clone()
            };
            inputs[1] = pack_fc_weights(&w, k, n, trans_b, alpha, isa);
            for parts in [1, 2, 3] {
                let got = run_parts(&f, &inputs, &[m * n], parts).remove(0);
                assert_close(&got, &want, 2e-6 * (k as f32).sqrt().max(1.0));
            }
        }
    }

    #[test]
    fn matches_the_portable_gemm_on_random_shapes() {
        let mut rng = Rng(31);
        for i in 0..150 {
            let (m, k, n) = (
                1 + rng.below(9) as usize,
                1 + rng.below(70) as usize,
                1 + rng.below(50) as usize,
            );
            let e = Epilogue {
                bias: rng.below(2) == 1,
                residual: rng.below(2) == 1,
                activation: all_activations()[i % 9],
            };
            let alpha = if rng.below(2) == 1 {
                1.0
            } else {
                0.5 + rng.next()
            };
            let form = (rng.below(2) == 1, rng.below(2) == 1, alpha);
            compare((m, k, n), form, e, &mut rng);
        }
    }

    #[test]
    fn long_sums_cross_the_blocks() {
        let mut rng = Rng(37);
        // K past several KB blocks with a remainder, N past several panels.
        for (m, k, n) in [(1, 3 * KB + 7, 37), (5, 2 * KB + 3, 17), (2, 4099, 9)] {
            let e = Epilogue {
                bias: true,
                residual: false,
                activation: crate::Activation::Relu,
            };
            compare((m, k, n), (false, true, 1.0), e, &mut rng);
        }
    }

    #[test]
    fn packing_puts_features_in_lanes() {
        // W [K=2, N=3] with PR = 8: one panel, lanes 3..8 zero.
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let p = pack_fc_weights(&w, 2, 3, false, 2.0, Isa::Generic);
        assert_eq!(p.len(), 16);
        assert_eq!(&p[..4], &[2.0, 4.0, 6.0, 0.0]);
        assert_eq!(&p[8..11], &[8.0, 10.0, 12.0]);
        // The same from W stored [N, K].
        let wt = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        assert_eq!(pack_fc_weights(&wt, 2, 3, true, 2.0, Isa::Generic), p);
    }

    #[test]
    fn items_are_panels_and_names_say_the_isa() {
        let f = FcGemm {
            m: 1,
            k: 25088,
            n: 4096,
            trans_a: false,
            epilogue: Epilogue::default(),
            isa: Isa::Avx512,
        };
        assert_eq!(f.work_items(), 256);
        assert_eq!(f.scratch_bytes(3), 0);
        assert_eq!(f.name(), "f32_fc_packed_avx512");
        assert!(f.check(2, 1).is_ok() && f.check(4, 1).is_err());
    }
}
