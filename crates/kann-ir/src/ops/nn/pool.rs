//! Pooling: `MaxPool`, `AveragePool`, `LpPool` and their global forms.

use super::super::{check_dtype, required, InferInput, InferResult, FLOATS};
use super::conv::{Window, WindowPlan};
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

/// What a window reduces to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PoolKind {
    Max,
    /// Mean; with `count_include_pad` padding counts in the divisor.
    Average { count_include_pad: bool },
    /// `(sum |x|^p)^(1/p)`.
    Lp { p: f64 },
}

/// A windowed pooling. `window.kernel_shape` is required.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub kind: PoolKind,
    pub window: Window,
    /// MaxPool's `storage_order = 1`: Indices count column-major within each plane.
    pub column_major_indices: bool,
    /// MaxPool's optional second output, Indices.
    pub with_indices: bool,
}

/// Pooling over all spatial axes at once.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalPool {
    pub kind: PoolKind,
}

const MAX_DTYPES: &[DType] = &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I8, DType::U8];

impl PoolKind {
    fn dtypes(self) -> &'static [DType] {
        match self {
            PoolKind::Max => MAX_DTYPES,
            _ => FLOATS,
        }
    }
}

/// X with rank >= 3 and a dtype `kind` accepts.
fn pool_input<'a>(inputs: &[Option<InferInput<'a>>], kind: PoolKind) -> Result<&'a TensorInfo, String> {
    let x = required(inputs, 0, "X")?;
    check_dtype(x.info, kind.dtypes(), "X")?;
    if x.info.rank() < 3 {
        return Err(format!("X must have rank >= 3 (N, C, spatial...), found shape {}", x.info.shape));
    }
    Ok(x.info)
}

impl Pool {
    pub fn name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "MaxPool",
            PoolKind::Average { .. } => "AveragePool",
            PoolKind::Lp { .. } => "LpPool",
        }
    }

    /// The window's geometry over X's spatial axes.
    pub fn plan(&self, x: &[usize]) -> Result<WindowPlan, String> {
        if self.window.kernel_shape.is_empty() {
            return Err("kernel_shape is required".into());
        }
        if x.len() < 3 {
            return Err(format!("X must have rank >= 3, found shape {x:?}"));
        }
        self.window.plan(&x[2..], &self.window.kernel_shape)
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = pool_input(inputs, self.kind)?;
        let plan = self.plan(x.shape.dims())?;
        let mut dims = x.shape.dims()[..2].to_vec();
        dims.extend(plan.out);
        let mut out = vec![TensorInfo::new(x.dtype, Shape::new(dims.clone()))];
        if self.with_indices {
            if self.kind != PoolKind::Max {
                return Err("only MaxPool has an Indices output".into());
            }
            out.push(TensorInfo::new(DType::I64, Shape::new(dims)));
        }
        Ok(out)
    }

    pub fn flops(&self, out: u64) -> u64 {
        let k = self.window.kernel_shape.iter().fold(1u64, |a, &k| a.saturating_mul(k as u64));
        out.saturating_mul(k)
    }
}

impl GlobalPool {
    pub fn name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "GlobalMaxPool",
            PoolKind::Average { .. } => "GlobalAveragePool",
            PoolKind::Lp { .. } => "GlobalLpPool",
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = pool_input(inputs, self.kind)?;
        let mut dims = x.shape.dims()[..2].to_vec();
        dims.resize(x.rank(), 1);
        Ok(vec![TensorInfo::new(x.dtype, Shape::new(dims))])
    }
}
