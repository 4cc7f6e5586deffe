//! Helpers for tests that run the compiled path: random inputs, a serial
//! run of a compiled network ([`kann_kernels::serial`]) with tensors in and
//! out, and an element-wise comparison. Unit tests of the lowerings use
//! `check_against_reference` (test builds only), which compiles a graph,
//! runs it on random inputs and compares with the reference interpreter.

use crate::Compiled;
use kann_ir::Graph;
use kann_tensor::{npy, DType, Shape, Tensor};

/// A small deterministic generator (xorshift64*), so tests need no crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Random inputs for every graph input: floats uniform in [-1, 1), integers
/// in [0, 4), booleans fair.
pub fn random_inputs(g: &Graph, seed: u64) -> Vec<Tensor> {
    let mut rng = Rng::new(seed);
    g.inputs
        .iter()
        .map(|&v| {
            let info = &g.value(v).info;
            let n = info.numel();
            let vals: Vec<f64> = (0..n)
                .map(|_| match info.dtype {
                    d if d.is_float() => rng.uniform(-1.0, 1.0),
                    DType::Bool => rng.below(2) as f64,
                    _ => rng.below(4) as f64,
                })
                .collect();
            Tensor::from_f64(info.dtype, info.shape.clone(), &vals).expect("random values fit the dtype")
        })
        .collect()
}

/// Runs a compiled network once, single-threaded, on tensors.
pub fn run_compiled(c: &Compiled, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
    let bytes: Vec<Vec<u8>> = inputs.iter().map(npy::raw_le_bytes).collect();
    let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
    let outs = kann_kernels::serial::run(&c.program, &c.weights, &refs)?;
    c.program
        .outputs
        .iter()
        .zip(outs)
        .map(|(t, b)| {
            let dtype = DType::parse(t.dtype.name()).ok_or_else(|| format!("unknown dtype {}", t.dtype.name()))?;
            Tensor::new(Shape::new(t.shape.clone()), npy::data_from_le(dtype, &b)).map_err(|e| e.to_string())
        })
        .collect()
}

/// Checks `|got - want| <= atol + rtol * |want|` everywhere (NaN matches NaN).
pub fn compare(got: &[Tensor], want: &[Tensor], atol: f64, rtol: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} outputs, expected {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g.dims() != w.dims() || g.dtype() != w.dtype() {
            return Err(format!("output #{i}: {:?} {} vs expected {:?} {}", g.dims(), g.dtype(), w.dims(), w.dtype()));
        }
        let (gv, wv) = (g.to_f64_vec(), w.to_f64_vec());
        for (j, (a, b)) in gv.iter().zip(&wv).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
            if !ok {
                return Err(format!("output #{i} element {j}: got {a}, expected {b}"));
            }
        }
    }
    Ok(())
}

/// Compiles `g` for `n_clusters`, runs it serially on random inputs and
/// compares with the reference interpreter (atol 1e-4, rtol 1e-4).
#[cfg(test)]
pub fn check_against_reference(g: Graph, n_clusters: usize) -> Result<crate::Compiled, String> {
    check_against_reference_on(g, n_clusters, kann_artifact::Arch::Generic)
}

/// [`check_against_reference`] with the kernels of `arch` (which this CPU must run).
#[cfg(test)]
pub fn check_against_reference_on(g: Graph, n_clusters: usize, arch: kann_artifact::Arch) -> Result<crate::Compiled, String> {
    let inputs = random_inputs(&g, 7);
    let want = kann_reference::run(&g, &inputs).map_err(|e| format!("reference: {e}"))?;
    let opts = crate::CompileOptions { n_clusters, arch, winograd: true, blocked: true, calibration: Default::default() };
    let compiled = crate::compile(g, &opts, Some(&kann_reference::Reference)).map_err(|e| e.to_string())?;
    let got = run_compiled(&compiled, &inputs)?;
    compare(&got, &want, 1e-4, 1e-4)?;
    Ok(compiled)
}
