//! The numpy `.npy` format (versions 1.0 to 3.0), little-endian, C order.
//! bf16 has no numpy type: it is written as `<u2` bits would lose meaning, so
//! it is refused on write.

use crate::{bf16, f16, Data, DType, Shape, Tensor, TensorError};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

fn err(msg: impl Into<String>) -> TensorError {
    TensorError::Npy(msg.into())
}

fn descr(dtype: DType) -> Result<&'static str, TensorError> {
    Ok(match dtype {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
        DType::F64 => "<f8",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::Bool => "|b1",
        DType::BF16 => return Err(err("bf16 has no .npy type; cast to f32 first")),
    })
}

fn dtype_of(descr: &str) -> Result<DType, TensorError> {
    Ok(match descr {
        "<f4" => DType::F32,
        "<f2" => DType::F16,
        "<f8" => DType::F64,
        "|i1" | "<i1" => DType::I8,
        "|u1" | "<u1" => DType::U8,
        "<i4" => DType::I32,
        "<i8" => DType::I64,
        "|b1" => DType::Bool,
        other => return Err(err(format!("unsupported dtype descr '{other}' (kann reads f2/f4/f8, i1/u1/i4/i8, b1, little-endian)"))),
    })
}

/// Serialises a tensor to `.npy` bytes (format 1.0).
pub fn to_bytes(t: &Tensor) -> Result<Vec<u8>, TensorError> {
    let dims = t.dims();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr(t.dtype())?, shape);
    // Pad so the data starts on a 64-byte boundary, header ends with '\n'.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(header.len() + 10 + t.len() * t.dtype().size());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    write_le(&mut out, t.data());
    Ok(out)
}

/// The raw little-endian bytes of a tensor's elements (bool as 0/1 bytes),
/// as the compiled program and the input streams store them.
pub fn raw_le_bytes(t: &Tensor) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len() * t.dtype().size());
    write_le(&mut out, t.data());
    out
}

fn write_le(out: &mut Vec<u8>, data: &Data) {
    match data {
        Data::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::F16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::BF16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::I8(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::U8(v) => out.extend_from_slice(v),
        Data::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Bool(v) => v.iter().for_each(|&x| out.push(x as u8)),
    }
}

/// Decodes little-endian raw bytes of `dtype` into `n` elements.
/// The caller guarantees `bytes.len() == n * dtype.size()`.
pub fn data_from_le(dtype: DType, bytes: &[u8]) -> Data {
    fn chunks<const N: usize, T>(b: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        b.chunks_exact(N).map(|c| f(c.try_into().expect("exact chunk"))).collect()
    }
    match dtype {
        DType::F32 => Data::F32(chunks(bytes, f32::from_le_bytes)),
        DType::F16 => Data::F16(chunks(bytes, f16::from_le_bytes)),
        DType::BF16 => Data::BF16(chunks(bytes, bf16::from_le_bytes)),
        DType::F64 => Data::F64(chunks(bytes, f64::from_le_bytes)),
        DType::I8 => Data::I8(bytes.iter().map(|&b| b as i8).collect()),
        DType::U8 => Data::U8(bytes.to_vec()),
        DType::I32 => Data::I32(chunks(bytes, i32::from_le_bytes)),
        DType::I64 => Data::I64(chunks(bytes, i64::from_le_bytes)),
        DType::Bool => Data::Bool(bytes.iter().map(|&b| b != 0).collect()),
    }
}

/// Parses `.npy` bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<Tensor, TensorError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("not a .npy file (bad magic)"));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("truncated header"));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(err(format!("unsupported .npy format version {v}"))),
    };
    let end = start.checked_add(header_len).filter(|&e| e <= bytes.len()).ok_or_else(|| err("truncated header"))?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| err("header is not UTF-8"))?;
    let descr = dict_value(header, "descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order")?;
    if fortran.trim() != "False" {
        return Err(err("fortran_order arrays are not supported; save with np.ascontiguousarray"));
    }
    let dims = parse_shape(&dict_value(header, "shape")?)?;
    let dtype = dtype_of(descr)?;
    let n = Tensor::check_size(&dims)?;
    let payload = &bytes[end..];
    let need = n.checked_mul(dtype.size()).ok_or_else(|| err("size overflow"))?;
    if payload.len() < need {
        return Err(err(format!("data truncated: shape {:?} of {} needs {} bytes, file has {}", dims, dtype, need, payload.len())));
    }
    Tensor::new(Shape::new(dims), data_from_le(dtype, &payload[..need]))
}

/// Value text of `key` in the header's Python dict literal.
fn dict_value(header: &str, key: &str) -> Result<String, TensorError> {
    let pat = format!("'{key}'");
    let at = header.find(&pat).ok_or_else(|| err(format!("header lacks '{key}'")))?;
    let rest = header[at + pat.len()..].trim_start();
    let rest = rest.strip_prefix(':').ok_or_else(|| err("malformed header"))?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find(',').or_else(|| rest.find('}'))
    }
    .ok_or_else(|| err("malformed header"))?;
    Ok(rest[..end].to_string())
}

fn parse_shape(s: &str) -> Result<Vec<usize>, TensorError> {
    let inner = s.trim().trim_start_matches('(').trim_end_matches(')');
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('L').parse::<usize>().map_err(|_| err(format!("bad shape entry '{p}'"))))
        .collect()
}

pub fn read(path: &Path) -> Result<Tensor, TensorError> {
    let bytes = std::fs::read(path)?;
    from_bytes(&bytes)
}

pub fn write(path: &Path, t: &Tensor) -> Result<(), TensorError> {
    std::fs::write(path, to_bytes(t)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_each_dtype() {
        for dtype in DType::ALL {
            if dtype == DType::BF16 {
                continue;
            }
            let t = Tensor::from_f64(dtype, Shape::from([2, 3]), &[0.0, 1.0, 2.0, 3.0, -1.0, 5.0]).unwrap();
            let back = from_bytes(&to_bytes(&t).unwrap()).unwrap();
            assert_eq!(back, t, "{dtype}");
        }
    }

    #[test]
    fn scalar_and_vector_shapes() {
        let s = Tensor::scalar_f32(2.5);
        assert_eq!(from_bytes(&to_bytes(&s).unwrap()).unwrap(), s);
        let v = Tensor::vec_i64(vec![7]);
        assert_eq!(from_bytes(&to_bytes(&v).unwrap()).unwrap(), v);
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = from_bytes(&bytes);
        }

        #[test]
        fn never_panics_on_truncation(cut in 0usize..200) {
            let t = Tensor::from_f32(Shape::from([3, 4]), (0..12).map(|x| x as f32).collect()).unwrap();
            let b = to_bytes(&t).unwrap();
            let _ = from_bytes(&b[..cut.min(b.len())]);
        }
    }
}
