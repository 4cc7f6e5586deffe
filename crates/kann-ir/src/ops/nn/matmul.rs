//! Matrix products: `Gemm`, `MatMul` (numpy batched broadcasting),
//! `MatMulInteger` and `QLinearMatMul`.

use super::super::{broadcast, check_dtype, optional, required, InferInput, InferResult, FLOATS};
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

/// `Gemm`: `alpha * A' * B' + beta * C` with `'` an optional transpose and C
/// unidirectionally broadcast to `[M, N]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gemm {
    pub alpha: f64,
    pub beta: f64,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// Dtypes `Gemm` and `MatMul` accept.
pub const MATMUL_DTYPES: &[DType] = &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64];

impl Gemm {
    /// `(M, K, N)` of the product, checking A and B.
    pub fn dims(&self, a: &[usize], b: &[usize]) -> Result<(usize, usize, usize), String> {
        if a.len() != 2 || b.len() != 2 {
            return Err(format!("A and B must be matrices, found shapes {a:?} and {b:?}"));
        }
        let (m, k) = if self.trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
        let (kb, n) = if self.trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
        if k != kb {
            return Err(format!("inner extents differ: A {a:?} (transA {}) and B {b:?} (transB {})", self.trans_a, self.trans_b));
        }
        Ok((m, k, n))
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let a = required(inputs, 0, "A")?;
        let b = required(inputs, 1, "B")?;
        check_dtype(a.info, MATMUL_DTYPES, "A")?;
        if b.info.dtype != a.info.dtype {
            return Err(format!("A is {} but B is {}", a.info.dtype, b.info.dtype));
        }
        let (m, _, n) = self.dims(a.info.shape.dims(), b.info.shape.dims())?;
        if let Some(c) = optional(inputs, 2) {
            if c.info.dtype != a.info.dtype {
                return Err(format!("A is {} but C is {}", a.info.dtype, c.info.dtype));
            }
            let cd = c.info.shape.dims();
            if cd.len() > 2 || broadcast(cd, &[m, n]).ok().as_deref() != Some(&[m, n][..]) {
                return Err(format!("C of shape {cd:?} does not broadcast to [{m}, {n}]"));
            }
        }
        Ok(vec![TensorInfo::new(a.info.dtype, Shape::from([m, n]))])
    }

    pub fn flops(&self, a: Option<&TensorInfo>, b: Option<&TensorInfo>, out: u64) -> u64 {
        let k = match (a, b) {
            (Some(a), Some(b)) => self.dims(a.shape.dims(), b.shape.dims()).map(|d| d.1).unwrap_or(0),
            _ => 0,
        };
        out.saturating_mul(2 * k as u64 + 2)
    }
}

/// Geometry of a numpy `matmul`: broadcast batch, matrix extents and the output shape.
#[derive(Debug, Clone, PartialEq)]
pub struct MatMulPlan {
    /// Broadcast batch shape, and A's and B's batch shapes (1-D operands: empty).
    pub batch: Vec<usize>,
    pub a_batch: Vec<usize>,
    pub b_batch: Vec<usize>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub out: Vec<usize>,
}

/// Plans `matmul(a, b)` by numpy's rules: a 1-D A is a row `[1, K]`, a 1-D B
/// a column `[K, 1]`, and those unit axes are dropped from the result.
pub fn plan_matmul(a: &[usize], b: &[usize]) -> Result<MatMulPlan, String> {
    if a.is_empty() || b.is_empty() {
        return Err(format!("matmul operands must have rank >= 1, found shapes {a:?} and {b:?}"));
    }
    let (a_batch, m, k) = if a.len() == 1 { (vec![], 1, a[0]) } else { (a[..a.len() - 2].to_vec(), a[a.len() - 2], a[a.len() - 1]) };
    let (b_batch, kb, n) = if b.len() == 1 { (vec![], b[0], 1) } else { (b[..b.len() - 2].to_vec(), b[b.len() - 2], b[b.len() - 1]) };
    if k != kb {
        return Err(format!("inner extents differ: {a:?} @ {b:?}"));
    }
    let batch = broadcast(&a_batch, &b_batch)?;
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(MatMulPlan { batch, a_batch, b_batch, m, k, n, out })
}

/// `MatMul`: A, B of one dtype.
pub fn infer_matmul(inputs: &[Option<InferInput>]) -> InferResult {
    let a = required(inputs, 0, "A")?;
    let b = required(inputs, 1, "B")?;
    check_dtype(a.info, MATMUL_DTYPES, "A")?;
    if b.info.dtype != a.info.dtype {
        return Err(format!("A is {} but B is {}", a.info.dtype, b.info.dtype));
    }
    let plan = plan_matmul(a.info.shape.dims(), b.info.shape.dims())?;
    Ok(vec![TensorInfo::new(a.info.dtype, Shape::new(plan.out))])
}

/// Checks a quantisation parameter: one value, or `len` values (per row / column).
fn check_param(inp: Option<InferInput>, len: usize, what: &str) -> Result<(), String> {
    if let Some(i) = inp {
        let n = i.info.numel();
        if i.info.rank() > 1 || !(n == 1 || n == len) {
            return Err(format!("{what} must hold 1 or {len} values, found shape {}", i.info.shape));
        }
    }
    Ok(())
}

/// `MatMulInteger`: A, B (u8/i8), optional a_zero_point (per row), b_zero_point (per column) → i32.
pub fn infer_matmul_integer(inputs: &[Option<InferInput>]) -> InferResult {
    let a = required(inputs, 0, "A")?;
    let b = required(inputs, 1, "B")?;
    check_dtype(a.info, &[DType::U8, DType::I8], "A")?;
    check_dtype(b.info, &[DType::U8, DType::I8], "B")?;
    let plan = plan_matmul(a.info.shape.dims(), b.info.shape.dims())?;
    check_param(optional(inputs, 2), plan.m, "a_zero_point")?;
    check_param(optional(inputs, 3), plan.n, "b_zero_point")?;
    Ok(vec![TensorInfo::new(DType::I32, Shape::new(plan.out))])
}

/// `QLinearMatMul`: a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp.
pub fn infer_qlinear_matmul(inputs: &[Option<InferInput>]) -> InferResult {
    let a = required(inputs, 0, "a")?;
    let b = required(inputs, 3, "b")?;
    check_dtype(a.info, &[DType::U8, DType::I8], "a")?;
    check_dtype(b.info, &[DType::U8, DType::I8], "b")?;
    let plan = plan_matmul(a.info.shape.dims(), b.info.shape.dims())?;
    let a_scale = required(inputs, 1, "a_scale")?;
    check_dtype(a_scale.info, FLOATS, "a_scale")?;
    check_param(Some(a_scale), plan.m, "a_scale")?;
    check_param(optional(inputs, 2), plan.m, "a_zero_point")?;
    check_param(Some(required(inputs, 4, "b_scale")?), plan.n, "b_scale")?;
    check_param(optional(inputs, 5), plan.n, "b_zero_point")?;
    check_param(Some(required(inputs, 6, "y_scale")?), plan.m, "y_scale")?;
    let y_zp = required(inputs, 7, "y_zero_point")?;
    check_dtype(y_zp.info, &[DType::U8, DType::I8], "y_zero_point")?;
    check_param(Some(y_zp), plan.m, "y_zero_point")?;
    Ok(vec![TensorInfo::new(y_zp.info.dtype, Shape::new(plan.out))])
}

/// Multiply-adds of a (batched) matrix product.
pub fn matmul_flops(a: Option<&TensorInfo>, out: u64) -> u64 {
    let k = a.and_then(|a| a.shape.dims().last().copied()).unwrap_or(0);
    out.saturating_mul(2 * k as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_shapes_follow_numpy() {
        assert_eq!(plan_matmul(&[3], &[3]).unwrap().out, Vec::<usize>::new());
        assert_eq!(plan_matmul(&[3], &[2, 3, 4]).unwrap().out, vec![2, 4]);
        assert_eq!(plan_matmul(&[2, 1, 3, 4], &[5, 4, 6]).unwrap().out, vec![2, 5, 3, 6]);
        assert_eq!(plan_matmul(&[2, 3, 4], &[4]).unwrap().out, vec![2, 3]);
        assert!(plan_matmul(&[2, 3], &[4, 2]).is_err());
    }
}
