use crate::{bf16, f16, DType, Shape, TensorError, MAX_ELEMENTS};

/// Typed element storage of a [`Tensor`], row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F64(Vec<f64>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

/// Applies `$body` to the vector inside a [`Data`], whatever its type.
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::Data::F32($v) => $body,
            $crate::Data::F16($v) => $body,
            $crate::Data::BF16($v) => $body,
            $crate::Data::F64($v) => $body,
            $crate::Data::I8($v) => $body,
            $crate::Data::U8($v) => $body,
            $crate::Data::I32($v) => $body,
            $crate::Data::I64($v) => $body,
            $crate::Data::Bool($v) => $body,
        }
    };
}

/// Like [`with_data!`] but rebuilds a `Data` of the same variant from the
/// expression's vector result.
macro_rules! map_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            Data::F32($v) => Data::F32($body),
            Data::F16($v) => Data::F16($body),
            Data::BF16($v) => Data::BF16($body),
            Data::F64($v) => Data::F64($body),
            Data::I8($v) => Data::I8($body),
            Data::U8($v) => Data::U8($body),
            Data::I32($v) => Data::I32($body),
            Data::I64($v) => Data::I64($body),
            Data::Bool($v) => Data::Bool($body),
        }
    };
}

impl Data {
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F16(_) => DType::F16,
            Data::BF16(_) => DType::BF16,
            Data::F64(_) => DType::F64,
            Data::I8(_) => DType::I8,
            Data::U8(_) => DType::U8,
            Data::I32(_) => DType::I32,
            Data::I64(_) => DType::I64,
            Data::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` zero (false) elements of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> Data {
        match dtype {
            DType::F32 => Data::F32(vec![0.0; n]),
            DType::F16 => Data::F16(vec![f16::ZERO; n]),
            DType::BF16 => Data::BF16(vec![bf16::ZERO; n]),
            DType::F64 => Data::F64(vec![0.0; n]),
            DType::I8 => Data::I8(vec![0; n]),
            DType::U8 => Data::U8(vec![0; n]),
            DType::I32 => Data::I32(vec![0; n]),
            DType::I64 => Data::I64(vec![0; n]),
            DType::Bool => Data::Bool(vec![false; n]),
        }
    }
}

/// A host tensor: a static shape and row-major typed data whose length always
/// equals the shape's element count.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Shape,
    data: Data,
}

impl Tensor {
    /// Builds a tensor, checking that `data` holds exactly `shape.numel()` values.
    pub fn new(shape: Shape, data: Data) -> Result<Tensor, TensorError> {
        let expected = shape.numel();
        if expected != data.len() {
            return Err(TensorError::LengthMismatch { shape, expected, actual: data.len() });
        }
        Ok(Tensor { shape, data })
    }

    /// Checks that a tensor of `shape` may be allocated at all.
    pub fn check_size(shape: &[usize]) -> Result<usize, TensorError> {
        let elements: u128 = shape.iter().map(|&d| d as u128).product();
        if elements > MAX_ELEMENTS as u128 {
            return Err(TensorError::TooLarge { elements, limit: MAX_ELEMENTS });
        }
        Ok(elements as usize)
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: DType, shape: Shape) -> Tensor {
        let n = shape.numel();
        Tensor { shape, data: Data::zeros(dtype, n) }
    }

    pub fn from_f32(shape: Shape, v: Vec<f32>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, Data::F32(v))
    }

    pub fn from_i64(shape: Shape, v: Vec<i64>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, Data::I64(v))
    }

    pub fn scalar_f32(x: f32) -> Tensor {
        Tensor { shape: Shape::scalar(), data: Data::F32(vec![x]) }
    }

    pub fn scalar_i64(x: i64) -> Tensor {
        Tensor { shape: Shape::scalar(), data: Data::I64(vec![x]) }
    }

    /// A 1-D i64 tensor, the usual carrier of shapes, axes and pads.
    pub fn vec_i64(v: Vec<i64>) -> Tensor {
        Tensor { shape: Shape::from([v.len()]), data: Data::I64(v) }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut Data {
        &mut self.data
    }

    pub fn into_data(self) -> Data {
        self.data
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Same data under another shape with the same element count.
    pub fn reshape(self, shape: Shape) -> Result<Tensor, TensorError> {
        Tensor::new(shape, self.data)
    }

    pub fn as_f32(&self) -> Result<&[f32], TensorError> {
        match &self.data {
            Data::F32(v) => Ok(v),
            d => Err(TensorError::WrongDType { expected: DType::F32, actual: d.dtype() }),
        }
    }

    pub fn as_i64(&self) -> Result<&[i64], TensorError> {
        match &self.data {
            Data::I64(v) => Ok(v),
            d => Err(TensorError::WrongDType { expected: DType::I64, actual: d.dtype() }),
        }
    }

    /// Every element as f64 (bools as 0/1). Exact for all types but i64
    /// values beyond 2^53.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
            Data::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
            Data::F64(v) => v.clone(),
            Data::I8(v) => v.iter().map(|&x| x as f64).collect(),
            Data::U8(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// Every element as f32 (see [`Tensor::to_f64_vec`]).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            _ => self.to_f64_vec().into_iter().map(|x| x as f32).collect(),
        }
    }

    /// Every element as i64: floats truncate toward zero (NaN gives 0), bools are 0/1.
    pub fn to_i64_vec(&self) -> Vec<i64> {
        match &self.data {
            Data::I8(v) => v.iter().map(|&x| x as i64).collect(),
            Data::U8(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
            Data::Bool(v) => v.iter().map(|&x| x as i64).collect(),
            _ => self.to_f64_vec().into_iter().map(|x| x as i64).collect(),
        }
    }

    /// Builds a tensor of `dtype` from f64 values: floats round to nearest,
    /// integers truncate toward zero and saturate, bools are `x != 0`.
    pub fn from_f64(dtype: DType, shape: Shape, v: &[f64]) -> Result<Tensor, TensorError> {
        let data = match dtype {
            DType::F32 => Data::F32(v.iter().map(|&x| x as f32).collect()),
            DType::F16 => Data::F16(v.iter().map(|&x| f16::from_f64(x)).collect()),
            DType::BF16 => Data::BF16(v.iter().map(|&x| bf16::from_f64(x)).collect()),
            DType::F64 => Data::F64(v.to_vec()),
            DType::I8 => Data::I8(v.iter().map(|&x| x as i8).collect()),
            DType::U8 => Data::U8(v.iter().map(|&x| x as u8).collect()),
            DType::I32 => Data::I32(v.iter().map(|&x| x as i32).collect()),
            DType::I64 => Data::I64(v.iter().map(|&x| x as i64).collect()),
            DType::Bool => Data::Bool(v.iter().map(|&x| x != 0.0).collect()),
        };
        Tensor::new(shape, data)
    }

    /// Builds a tensor of `dtype` from i64 values: integers wrap (two's
    /// complement, as numpy does), floats convert, bools are `x != 0`.
    pub fn from_i64_values(dtype: DType, shape: Shape, v: &[i64]) -> Result<Tensor, TensorError> {
        let data = match dtype {
            DType::I8 => Data::I8(v.iter().map(|&x| x as i8).collect()),
            DType::U8 => Data::U8(v.iter().map(|&x| x as u8).collect()),
            DType::I32 => Data::I32(v.iter().map(|&x| x as i32).collect()),
            DType::I64 => Data::I64(v.to_vec()),
            DType::Bool => Data::Bool(v.iter().map(|&x| x != 0).collect()),
            _ => {
                let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
                return Tensor::from_f64(dtype, shape, &f);
            }
        };
        Tensor::new(shape, data)
    }

    pub fn from_bools(shape: Shape, v: Vec<bool>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, Data::Bool(v))
    }

    pub fn to_bool_vec(&self) -> Vec<bool> {
        match &self.data {
            Data::Bool(v) => v.clone(),
            _ => self.to_f64_vec().into_iter().map(|x| x != 0.0).collect(),
        }
    }

    /// A new tensor of `shape` whose element `i` is `self`'s element `index[i]`
    /// (flat, row-major). The workhorse of every data-movement op.
    pub fn gather_flat(&self, shape: Shape, index: &[usize]) -> Result<Tensor, TensorError> {
        let data = map_data!(&self.data, v => index.iter().map(|&i| v[i]).collect());
        Tensor::new(shape, data)
    }

    /// Converts to another dtype with the rules of [`Tensor::from_f64`] /
    /// [`Tensor::from_i64_values`] (integer sources keep exact values).
    pub fn cast(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        let shape = self.shape.clone();
        let out = if self.dtype().is_int() || self.dtype() == DType::Bool {
            Tensor::from_i64_values(dtype, shape, &self.to_i64_vec())
        } else if dtype == DType::Bool {
            Tensor::from_bools(shape, self.to_f64_vec().iter().map(|&x| x != 0.0).collect())
        } else {
            Tensor::from_f64(dtype, shape, &self.to_f64_vec())
        };
        out.expect("cast keeps the element count")
    }

    /// Concatenates flat data of tensors with the same dtype, in order.
    pub fn concat_flat(dtype: DType, shape: Shape, parts: &[&Tensor]) -> Result<Tensor, TensorError> {
        let mut data = Data::zeros(dtype, 0);
        for p in parts {
            if p.dtype() != dtype {
                return Err(TensorError::WrongDType { expected: dtype, actual: p.dtype() });
            }
            append(&mut data, &p.data);
        }
        Tensor::new(shape, data)
    }
}

fn append(dst: &mut Data, src: &Data) {
    match (dst, src) {
        (Data::F32(a), Data::F32(b)) => a.extend_from_slice(b),
        (Data::F16(a), Data::F16(b)) => a.extend_from_slice(b),
        (Data::BF16(a), Data::BF16(b)) => a.extend_from_slice(b),
        (Data::F64(a), Data::F64(b)) => a.extend_from_slice(b),
        (Data::I8(a), Data::I8(b)) => a.extend_from_slice(b),
        (Data::U8(a), Data::U8(b)) => a.extend_from_slice(b),
        (Data::I32(a), Data::I32(b)) => a.extend_from_slice(b),
        (Data::I64(a), Data::I64(b)) => a.extend_from_slice(b),
        (Data::Bool(a), Data::Bool(b)) => a.extend_from_slice(b),
        _ => unreachable!("dtypes checked by the caller"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_checked() {
        assert!(Tensor::from_f32(Shape::from([2, 2]), vec![1.0; 3]).is_err());
    }

    #[test]
    fn gather_flat_picks_elements() {
        let t = Tensor::from_i64(Shape::from([4]), vec![10, 20, 30, 40]).unwrap();
        let g = t.gather_flat(Shape::from([2]), &[3, 0]).unwrap();
        assert_eq!(g.as_i64().unwrap(), &[40, 10]);
    }

    #[test]
    fn cast_wraps_integers_and_truncates_floats() {
        let t = Tensor::from_i64(Shape::from([2]), vec![300, -1]).unwrap();
        assert_eq!(t.cast(DType::U8).data(), &Data::U8(vec![44, 255]));
        let f = Tensor::from_f32(Shape::from([2]), vec![-1.7, 2.9]).unwrap();
        assert_eq!(f.cast(DType::I32).data(), &Data::I32(vec![-1, 2]));
    }

    #[test]
    fn absurd_sizes_are_refused() {
        assert!(Tensor::check_size(&[1 << 40, 1 << 10]).is_err());
    }
}
