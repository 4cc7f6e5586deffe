//! `TensorProto` ⇄ [`Tensor`], with every size checked before allocation.

use crate::proto::{data_type as dt, TensorProto};
use crate::ImportError;
use kann_tensor::{bf16, f16, npy, DType, Data, Shape, Tensor};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Maps an ONNX data type code to a kann dtype, naming the type when it is
/// not one kann computes with.
pub fn dtype_from_onnx(code: i32, what: &str) -> Result<DType, ImportError> {
    Ok(match code {
        dt::FLOAT => DType::F32,
        dt::UINT8 => DType::U8,
        dt::INT8 => DType::I8,
        dt::INT32 => DType::I32,
        dt::INT64 => DType::I64,
        dt::BOOL => DType::Bool,
        dt::FLOAT16 => DType::F16,
        dt::DOUBLE => DType::F64,
        dt::BFLOAT16 => DType::BF16,
        other => return Err(ImportError::UnsupportedDType { what: what.to_string(), dtype: dt::name(other) }),
    })
}

/// The ONNX data type code of a kann dtype.
pub fn dtype_to_onnx(d: DType) -> i32 {
    match d {
        DType::F32 => dt::FLOAT,
        DType::U8 => dt::UINT8,
        DType::I8 => dt::INT8,
        DType::I32 => dt::INT32,
        DType::I64 => dt::INT64,
        DType::Bool => dt::BOOL,
        DType::F16 => dt::FLOAT16,
        DType::F64 => dt::DOUBLE,
        DType::BF16 => dt::BFLOAT16,
    }
}

/// Checked dims of a tensor: non-negative and within kann's element limit.
pub fn checked_dims(dims: &[i64], name: &str) -> Result<Vec<usize>, ImportError> {
    let mut out = Vec::with_capacity(dims.len());
    for (axis, &d) in dims.iter().enumerate() {
        if d < 0 {
            return Err(ImportError::tensor(name, format!("dimension {axis} is negative ({d})")));
        }
        out.push(d as usize);
    }
    Tensor::check_size(&out).map_err(|e| ImportError::tensor(name, e))?;
    Ok(out)
}

/// Decodes a tensor. `base_dir` is the model's folder, where external data
/// files live; `None` refuses external data.
pub fn tensor_from_proto(t: &TensorProto, base_dir: Option<&Path>) -> Result<Tensor, ImportError> {
    let name = if t.name.is_empty() { "<unnamed>" } else { t.name.as_str() };
    let dtype = dtype_from_onnx(t.data_type, &format!("tensor '{name}'"))?;
    let dims = checked_dims(&t.dims, name)?;
    let n: usize = dims.iter().product();
    let bytes_needed = n * dtype.size();
    let data = if t.data_location == 1 {
        let raw = read_external(t, name, base_dir, bytes_needed)?;
        npy::data_from_le(dtype, &raw)
    } else if !t.raw_data.is_empty() || n == 0 && typed_len(t, dtype) == 0 {
        if t.raw_data.len() != bytes_needed {
            return Err(ImportError::tensor(name, format!("raw data holds {} bytes but shape {:?} of {} needs {}", t.raw_data.len(), dims, dtype, bytes_needed)));
        }
        npy::data_from_le(dtype, &t.raw_data)
    } else {
        let have = typed_len(t, dtype);
        if have != n {
            return Err(ImportError::tensor(name, format!("holds {have} values but shape {dims:?} needs {n}")));
        }
        typed_data(t, dtype)
    };
    Tensor::new(Shape::new(dims), data).map_err(|e| ImportError::tensor(name, e))
}

fn typed_len(t: &TensorProto, dtype: DType) -> usize {
    match dtype {
        DType::F32 => t.float_data.len(),
        DType::F64 => t.double_data.len(),
        DType::I64 => t.int64_data.len(),
        _ => t.int32_data.len(),
    }
}

fn typed_data(t: &TensorProto, dtype: DType) -> Data {
    let i32s = &t.int32_data;
    match dtype {
        DType::F32 => Data::F32(t.float_data.clone()),
        DType::F64 => Data::F64(t.double_data.clone()),
        DType::I64 => Data::I64(t.int64_data.clone()),
        DType::I32 => Data::I32(i32s.clone()),
        DType::I8 => Data::I8(i32s.iter().map(|&x| x as i8).collect()),
        DType::U8 => Data::U8(i32s.iter().map(|&x| x as u8).collect()),
        DType::Bool => Data::Bool(i32s.iter().map(|&x| x != 0).collect()),
        // 16-bit floats travel as their bit patterns in int32_data.
        DType::F16 => Data::F16(i32s.iter().map(|&x| f16::from_bits(x as u16)).collect()),
        DType::BF16 => Data::BF16(i32s.iter().map(|&x| bf16::from_bits(x as u16)).collect()),
    }
}

fn read_external(t: &TensorProto, name: &str, base_dir: Option<&Path>, bytes_needed: usize) -> Result<Vec<u8>, ImportError> {
    let base = base_dir.ok_or_else(|| ImportError::tensor(name, "external data needs the model's folder"))?;
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        match kv.key.as_str() {
            "location" => location = Some(kv.value.clone()),
            "offset" => offset = kv.value.parse().map_err(|_| ImportError::tensor(name, format!("bad external data offset '{}'", kv.value)))?,
            "length" => length = Some(kv.value.parse::<u64>().map_err(|_| ImportError::tensor(name, format!("bad external data length '{}'", kv.value)))?),
            _ => {}
        }
    }
    let location = location.ok_or_else(|| ImportError::tensor(name, "external data without a location"))?;
    let rel = Path::new(&location);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(ImportError::tensor(name, format!("external data location '{location}' must stay inside the model's folder")));
    }
    let path = base.join(rel);
    if let Some(len) = length {
        if len != bytes_needed as u64 {
            return Err(ImportError::tensor(name, format!("external data length {len} but the shape needs {bytes_needed} bytes")));
        }
    }
    let io = |e: std::io::Error| ImportError::Io { path: path.display().to_string(), source: e };
    let mut f = std::fs::File::open(&path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    if offset.checked_add(bytes_needed as u64).is_none_or(|end| end > file_len) {
        return Err(ImportError::tensor(name, format!("external data file {} holds {} bytes, too few for offset {} + {} bytes", path.display(), file_len, offset, bytes_needed)));
    }
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = vec![0u8; bytes_needed];
    f.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// Encodes a tensor as a `TensorProto` with raw little-endian data.
pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    let mut raw = Vec::with_capacity(t.len() * t.dtype().size());
    match t.data() {
        Data::F32(v) => v.iter().for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        Data::F16(v) => v.iter().for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        Data::BF16(v) => v.iter().for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        Data::F64(v) => v.iter().for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        Data::I8(v) => v.iter().for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        Data::U8(v) => raw.extend_from_slice(v),
        Data::I32(v) => v.iter().for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        Data::I64(v) => v.iter().for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        Data::Bool(v) => v.iter().for_each(|&x| raw.push(x as u8)),
    }
    TensorProto {
        dims: t.dims().iter().map(|&d| d as i64).collect(),
        data_type: dtype_to_onnx(t.dtype()),
        name: name.to_string(),
        raw_data: raw,
        ..TensorProto::default()
    }
}

/// Reads a serialized `TensorProto` file (the ONNX test-data `.pb` files).
pub fn read_tensor_file(path: &Path) -> Result<(String, Tensor), ImportError> {
    use prost::Message;
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io { path: path.display().to_string(), source: e })?;
    let proto = TensorProto::decode(bytes.as_slice()).map_err(|e| ImportError::Decode { path: path.display().to_string(), reason: e.to_string() })?;
    let t = tensor_from_proto(&proto, path.parent())?;
    Ok((proto.name, t))
}
