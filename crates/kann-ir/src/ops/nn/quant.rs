//! `QuantizeLinear` and `DequantizeLinear`, per tensor or per axis.

use super::super::{check_dtype, norm_axis, optional, required, InferInput, InferResult, FLOATS};
use crate::TensorInfo;
use kann_tensor::DType;

/// `y = saturate(round_half_even(x / y_scale) + y_zero_point)`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeLinear {
    /// Axis of a 1-D scale (may be negative).
    pub axis: i64,
    /// The `output_dtype` attribute, when set (the zero point's dtype wins otherwise).
    pub output_dtype: Option<DType>,
    /// Float type the division `x / y_scale` is computed in (`precision`);
    /// `None`: the scale's type.
    pub precision: Option<DType>,
}

/// `y = (x - x_zero_point) * x_scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct DequantizeLinear {
    pub axis: i64,
    /// The `output_dtype` attribute, when set (else the scale's dtype).
    pub output_dtype: Option<DType>,
}

/// Integer types quantisation produces.
pub const QUANT_DTYPES: &[DType] = &[DType::U8, DType::I8];

/// Which axis a scale applies along: `None` for a per-tensor (single value) scale.
pub fn scale_axis(x: &[usize], scale: &[usize], axis: i64) -> Result<Option<usize>, String> {
    let n: usize = scale.iter().product();
    if scale.is_empty() || scale.len() == 1 && n == 1 {
        return Ok(None);
    }
    if scale.len() > 1 {
        return Err(format!("a scale of shape {scale:?} (blocked quantisation) is not supported"));
    }
    let a = norm_axis(axis, x.len())?;
    if x[a] != n {
        return Err(format!("the scale holds {n} values but axis {a} of the input has {}", x[a]));
    }
    Ok(Some(a))
}

/// Checks scale and zero point (inputs 1, 2) against X; returns the zero point's dtype.
fn check_params(inputs: &[Option<InferInput>], x: &TensorInfo, axis: i64) -> Result<Option<DType>, String> {
    let scale = required(inputs, 1, "scale")?;
    check_dtype(scale.info, FLOATS, "scale")?;
    scale_axis(x.shape.dims(), scale.info.shape.dims(), axis)?;
    match optional(inputs, 2) {
        None => Ok(None),
        Some(z) => {
            if z.info.shape != scale.info.shape {
                return Err(format!("zero point shape {} differs from the scale's {}", z.info.shape, scale.info.shape));
            }
            Ok(Some(z.info.dtype))
        }
    }
}

impl QuantizeLinear {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "x")?;
        check_dtype(x.info, &[DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32], "x")?;
        let zp = check_params(inputs, x.info, self.axis)?;
        let dtype = match (zp, self.output_dtype) {
            (Some(z), Some(o)) if z != o => return Err(format!("y_zero_point is {z} but output_dtype is {o}")),
            (Some(z), _) => z,
            (None, Some(o)) => o,
            (None, None) => DType::U8,
        };
        if !QUANT_DTYPES.contains(&dtype) {
            return Err(format!("quantising to {dtype} is not supported (only u8 and i8)"));
        }
        Ok(vec![TensorInfo::new(dtype, x.info.shape.clone())])
    }
}

impl DequantizeLinear {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "x")?;
        check_dtype(x.info, &[DType::U8, DType::I8, DType::I32], "x")?;
        if let Some(z) = check_params(inputs, x.info, self.axis)? {
            if z != x.info.dtype {
                return Err(format!("x is {} but x_zero_point is {z}", x.info.dtype));
            }
        }
        let scale = required(inputs, 1, "x_scale")?.info.dtype;
        let dtype = self.output_dtype.unwrap_or(scale);
        check_dtype(&TensorInfo::new(dtype, x.info.shape.clone()), FLOATS, "output")?;
        Ok(vec![TensorInfo::new(dtype, x.info.shape.clone())])
    }
}

/// `DynamicQuantizeLinear`: x (f32) → y (u8), y_scale (f32 scalar),
/// y_zero_point (u8 scalar), with the range taken from x itself.
pub fn infer_dynamic_quantize(inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "x")?;
    check_dtype(x.info, &[DType::F32], "x")?;
    let scalar = |d| TensorInfo::new(d, kann_tensor::Shape::scalar());
    Ok(vec![TensorInfo::new(DType::U8, x.info.shape.clone()), scalar(DType::F32), scalar(DType::U8)])
}
