//! f32 matrix products: ONNX `Gemm` (`alpha * A' B' + beta * C`) and
//! `MatMul` (numpy batched broadcasting), one kernel for both, with a fused
//! epilogue (residual, activation).
//!
//! Operands are read through element strides, so transposed or broadcast
//! operands need no copy; a constant B is packed once by [`pack_gemm_b`]
//! into row-major `[K, N]`, which makes the innermost loop a contiguous
//! multiply-add over output columns.
//!
//! Work items are (output row, column block) pairs in row-major order: the
//! lowering picks `col_block` (whole rows when there are many rows, smaller
//! blocks for batch-1 fully connected layers), and a part owns a contiguous
//! range of the flattened output `[batch * M, N]`.
//!
//! Inputs: A, B, then C if `epilogue.bias`, then the residual (Y's shape)
//! if `epilogue.residual`. Output: Y `[batch..., M, N]`.

use crate::conv::{finish, unravel};
use crate::kernel::{expect_io, KernelImpl};
use crate::{Epilogue, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A (batched) matrix product `Y[b] = alpha * A[b] B[b] + beta * C`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gemm {
    /// Broadcast batch shape (empty for a single product).
    pub batch: Vec<u64>,
    /// Element stride of A and B per batch axis (0 where the operand is broadcast).
    pub a_batch_strides: Vec<u64>,
    pub b_batch_strides: Vec<u64>,
    pub m: u64,
    pub k: u64,
    pub n: u64,
    /// Element strides of A's `(row i, column k)` and B's `(row k, column j)`.
    pub a_strides: [u64; 2],
    pub b_strides: [u64; 2],
    pub alpha: f32,
    pub beta: f32,
    /// Element strides of C over `(i, j)` (0 where C is broadcast).
    pub c_strides: [u64; 2],
    /// Output columns per work item (> 0).
    pub col_block: u64,
    pub epilogue: Epilogue,
}

/// Packs B (`[K, N]`, or `[N, K]` when `trans_b`) into row-major `[K, N]`.
pub fn pack_gemm_b(b: &[f32], k: usize, n: usize, trans_b: bool) -> Vec<f32> {
    if !trans_b {
        return b.to_vec();
    }
    let mut out = vec![0.0; k * n];
    for (j, row) in b.chunks(k.max(1)).enumerate().take(n) {
        for (kk, &v) in row.iter().enumerate() {
            out[kk * n + j] = v;
        }
    }
    out
}

/// Row-major element strides of a contiguous `[rows, cols]` matrix, transposed or not.
pub fn matrix_strides(rows: u64, cols: u64, transposed: bool) -> [u64; 2] {
    if transposed {
        // The stored matrix is [cols, rows].
        [1, rows]
    } else {
        [cols, 1]
    }
}

impl Gemm {
    fn blocks(&self) -> u64 {
        self.n.div_ceil(self.col_block.max(1))
    }

    fn batch_len(&self) -> u64 {
        self.batch.iter().product()
    }

    /// Output element where work item `item` starts (`end`: where it ends).
    fn item_bounds(&self, item: u64) -> (usize, usize) {
        let blocks = self.blocks();
        let (row, blk) = (item / blocks, item % blocks);
        let cb = self.col_block.max(1);
        let start = row * self.n + blk * cb;
        (start as usize, (row * self.n + ((blk + 1) * cb).min(self.n)) as usize)
    }

    /// Offsets of A and B for batch index `bi`.
    fn batch_offsets(&self, bi: usize) -> (usize, usize) {
        let idx = unravel(bi, &self.batch);
        let dot = |s: &[u64]| idx.iter().zip(s).map(|(&i, &s)| i * s as usize).sum::<usize>();
        (dot(&self.a_batch_strides), dot(&self.b_batch_strides))
    }
}

impl KernelImpl for Gemm {
    fn name(&self) -> String {
        if self.batch.is_empty() {
            "f32_gemm_direct_generic".into()
        } else {
            "f32_matmul_batched_generic".into()
        }
    }

    fn work_items(&self) -> u64 {
        self.batch_len() * self.m * self.blocks()
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        let want = 2 + usize::from(self.epilogue.bias) + usize::from(self.epilogue.residual);
        expect_io(n_inputs, n_outputs, want..want + 1, 1)?;
        if self.a_batch_strides.len() != self.batch.len() || self.b_batch_strides.len() != self.batch.len() {
            return Err("gemm batch strides need one value per batch axis".into());
        }
        if self.col_block == 0 {
            return Err("gemm column block must be positive".into());
        }
        Ok(())
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        if part.start >= part.end {
            return;
        }
        let (m, k, n) = (self.m as usize, self.k as usize, self.n as usize);
        let [as0, as1] = self.a_strides.map(|v| v as usize);
        let [bs0, bs1] = self.b_strides.map(|v| v as usize);
        let [cs0, cs1] = self.c_strides.map(|v| v as usize);
        // SAFETY: inputs are not written during the step (the run contract).
        let (a, b) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        let mut next = 2;
        // SAFETY: as above.
        let c = self.epilogue.bias.then(|| unsafe { io.inputs[next].f32() });
        next += usize::from(self.epilogue.bias);
        // SAFETY: as above.
        let residual = self.epilogue.residual.then(|| unsafe { io.inputs[next].f32() });
        let (first, _) = self.item_bounds(part.start);
        let (_, last) = self.item_bounds(part.end - 1);
        // SAFETY: this part owns output elements first..last (the run contract).
        let y = unsafe { io.outputs[0].f32_part(first..last) };
        for item in part {
            let (start, end) = self.item_bounds(item);
            let row = start / n;
            let (bi, i) = (row / m, row % m);
            let (j0, j1) = (start - row * n, end - row * n);
            let (a_off, b_off) = self.batch_offsets(bi);
            let acc = &mut y[start - first..end - first];
            acc.fill(0.0);
            for kk in 0..k {
                let av = a[a_off + i * as0 + kk * as1];
                let brow = &b[b_off + kk * bs0 + j0 * bs1..];
                crate::conv::axpy_strided(acc, av, brow, bs1);
            }
            for (j, v) in (j0..j1).zip(acc.iter_mut()) {
                *v *= self.alpha;
                if let Some(c) = c {
                    *v += self.beta * c[i * cs0 + j * cs1];
                }
            }
            finish(acc, residual.map(|r| &r[start..end]), self.epilogue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::testutil::*;
    use crate::Activation;

    /// Row-major contiguous strides of `dims` with zeros where the operand's
    /// (right-aligned) extent is 1 but the batch's is not.
    fn batch_strides(own: &[u64], batch: &[u64], mat: u64) -> Vec<u64> {
        let mut s = vec![0; batch.len()];
        let mut stride = mat;
        for a in (0..own.len()).rev() {
            let ba = a + batch.len() - own.len();
            s[ba] = if own[a] == 1 { 0 } else { stride };
            stride *= own[a];
        }
        s
    }

    #[test]
    fn gemm_matches_naive_with_transposes_and_bias() {
        let mut rng = Rng(3);
        for case in 0..200 {
            let (m, k, n) = (1 + rng.below(5), rng.below(6), 1 + rng.below(9));
            let (ta, tb) = (rng.below(2) == 1, rng.below(2) == 1);
            let a = rng.vec((m * k) as usize);
            let b = rng.vec((k * n) as usize);
            let c_shape = [(1, 1), (1, n), (m, 1), (m, n)][case % 4];
            let cvals = rng.vec((c_shape.0 * c_shape.1) as usize);
            let c_strides = [if c_shape.0 == 1 { 0 } else { c_shape.1 }, if c_shape.1 == 1 { 0 } else { 1 }];
            let (alpha, beta) = (0.5 + rng.next(), rng.next());
            let res = rng.vec((m * n) as usize);
            let packed = pack_gemm_b(&b, k as usize, n as usize, tb);
            let g = Gemm {
                batch: vec![],
                a_batch_strides: vec![],
                b_batch_strides: vec![],
                m,
                k,
                n,
                a_strides: matrix_strides(m, k, ta),
                b_strides: [n, 1],
                alpha,
                beta,
                c_strides,
                col_block: 1 + rng.below(n + 1),
                epilogue: Epilogue { bias: true, residual: true, activation: Activation::LeakyRelu { alpha: 0.1 } },
            };
            let mut want = vec![0.0; (m * n) as usize];
            for i in 0..m as usize {
                for j in 0..n as usize {
                    let mut s = 0.0;
                    for kk in 0..k as usize {
                        let av = if ta { a[kk * m as usize + i] } else { a[i * k as usize + kk] };
                        let bv = if tb { b[j * k as usize + kk] } else { b[kk * n as usize + j] };
                        s += av * bv;
                    }
                    let cv = cvals[i * c_strides[0] as usize + j * c_strides[1] as usize];
                    want[i * n as usize + j] = g.epilogue.activation.apply(alpha * s + beta * cv + res[i * n as usize + j]);
                }
            }
            for parts in [1, 2, 3] {
                let got = run_parts(&g, &[a.clone(), packed.clone(), cvals.clone(), res.clone()], &[(m * n) as usize], parts);
                assert_close(&got[0], &want, 1e-5);
            }
        }
    }

    #[test]
    fn batched_matmul_broadcasts() {
        let mut rng = Rng(11);
        for _ in 0..100 {
            let batch: Vec<u64> = (0..rng.below(3)).map(|_| 1 + rng.below(3)).collect();
            let a_b: Vec<u64> = batch.iter().map(|&d| if rng.below(2) == 1 { 1 } else { d }).collect();
            let b_b: Vec<u64> = batch[rng.below(batch.len() as u64 + 1) as usize..].iter().map(|&d| if rng.below(2) == 1 { 1 } else { d }).collect();
            let (m, k, n) = (1 + rng.below(4), 1 + rng.below(4), 1 + rng.below(4));
            let a = rng.vec((a_b.iter().product::<u64>() * m * k) as usize);
            let b = rng.vec((b_b.iter().product::<u64>() * k * n) as usize);
            let g = Gemm {
                batch: batch.clone(),
                a_batch_strides: batch_strides(&a_b, &batch, m * k),
                b_batch_strides: batch_strides(&b_b, &batch, k * n),
                m,
                k,
                n,
                a_strides: [k, 1],
                b_strides: [n, 1],
                alpha: 1.0,
                beta: 0.0,
                c_strides: [0, 0],
                col_block: n,
                epilogue: Epilogue::default(),
            };
            let total: u64 = batch.iter().product();
            let mut want = Vec::new();
            for bi in 0..total as usize {
                let idx = unravel(bi, &batch);
                let off = |own: &[u64], mat: u64| {
                    let s = batch_strides(own, &batch, mat);
                    idx.iter().zip(&s).map(|(&i, &s)| i * s as usize).sum::<usize>()
                };
                let (ao, bo) = (off(&a_b, m * k), off(&b_b, k * n));
                for i in 0..m as usize {
                    for j in 0..n as usize {
                        want.push((0..k as usize).map(|kk| a[ao + i * k as usize + kk] * b[bo + kk * n as usize + j]).sum::<f32>());
                    }
                }
            }
            let got = run_parts(&g, &[a, b], &[want.len()], 3);
            assert_close(&got[0], &want, 1e-5);
        }
    }
}
