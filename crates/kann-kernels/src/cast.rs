//! Element type conversion (ONNX Cast and CastLike). Work items are
//! elements.
//!
//! The rules are the reference's (kann-tensor's `Tensor::cast`), bit for bit:
//! - integer and bool sources are read as an exact i64; integer targets
//!   wrap (two's complement), bool is `v != 0`, float targets convert the
//!   value through f64;
//! - float sources are read as f64; float targets round to nearest (f16 and
//!   bf16 with the `half` crate), integer targets truncate toward zero and
//!   saturate (NaN gives 0), bool is `x != 0` (NaN is true);
//! - a cast to the same type copies the bytes.

use crate::kernel::{expect_io, KernelImpl};
use crate::{ElemType, Io};
use half::{bf16, f16};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// `y[i] = x[i] as to` over `len` elements (little-endian data).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cast {
    pub from: ElemType,
    pub to: ElemType,
    pub len: u64,
}

/// One source element: exact integers stay integers, floats widen to f64.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Int(i64),
    Float(f64),
}

/// Reads the element in `b` (exactly `from.size()` bytes).
fn read(from: ElemType, b: &[u8]) -> Value {
    let a2 = |b: &[u8]| [b[0], b[1]];
    let a4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
    let a8 = |b: &[u8]| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
    match from {
        ElemType::F32 => Value::Float(f32::from_le_bytes(a4(b)) as f64),
        ElemType::F16 => Value::Float(f16::from_le_bytes(a2(b)).to_f64()),
        ElemType::BF16 => Value::Float(bf16::from_le_bytes(a2(b)).to_f64()),
        ElemType::F64 => Value::Float(f64::from_le_bytes(a8(b))),
        ElemType::I8 => Value::Int(b[0] as i8 as i64),
        ElemType::U8 => Value::Int(b[0] as i64),
        ElemType::I32 => Value::Int(i32::from_le_bytes(a4(b)) as i64),
        ElemType::I64 => Value::Int(i64::from_le_bytes(a8(b))),
        ElemType::Bool => Value::Int((b[0] != 0) as i64),
    }
}

/// Writes `v` as a `to` element into `out` (exactly `to.size()` bytes).
fn write(to: ElemType, v: Value, out: &mut [u8]) {
    match v {
        Value::Int(i) => match to {
            ElemType::I8 => out[0] = i as i8 as u8,
            ElemType::U8 => out[0] = i as u8,
            ElemType::I32 => out.copy_from_slice(&(i as i32).to_le_bytes()),
            ElemType::I64 => out.copy_from_slice(&i.to_le_bytes()),
            ElemType::Bool => out[0] = (i != 0) as u8,
            _ => write(to, Value::Float(i as f64), out),
        },
        Value::Float(x) => match to {
            ElemType::F32 => out.copy_from_slice(&(x as f32).to_le_bytes()),
            ElemType::F16 => out.copy_from_slice(&f16::from_f64(x).to_le_bytes()),
            ElemType::BF16 => out.copy_from_slice(&bf16::from_f64(x).to_le_bytes()),
            ElemType::F64 => out.copy_from_slice(&x.to_le_bytes()),
            // `as` truncates toward zero, saturates and sends NaN to 0.
            ElemType::I8 => out[0] = x as i8 as u8,
            ElemType::U8 => out[0] = x as u8,
            ElemType::I32 => out.copy_from_slice(&(x as i32).to_le_bytes()),
            ElemType::I64 => out.copy_from_slice(&(x as i64).to_le_bytes()),
            ElemType::Bool => out[0] = (x != 0.0) as u8,
        },
    }
}

impl KernelImpl for Cast {
    fn name(&self) -> String {
        format!("{}_cast_to_{}_generic", self.from.name(), self.to.name())
    }

    fn work_items(&self) -> u64 {
        self.len
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (fs, ts) = (self.from.size(), self.to.size());
        let (start, end) = (part.start as usize, part.end as usize);
        // SAFETY: this part owns these output bytes (the run contract).
        let out = unsafe { io.outputs[0].bytes_part(start * ts..end * ts) };
        // SAFETY: no one writes the input during the step.
        let x = unsafe { &io.inputs[0].bytes()[start * fs..end * fs] };
        if self.from == self.to {
            out.copy_from_slice(x);
            return;
        }
        for (o, b) in out.chunks_exact_mut(ts).zip(x.chunks_exact(fs)) {
            write(self.to, read(self.from, b), o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawBuf;
    use kann_tensor::{npy::raw_le_bytes, DType, Shape, Tensor};

    const ALL: [(ElemType, DType); 9] = [
        (ElemType::F32, DType::F32),
        (ElemType::F16, DType::F16),
        (ElemType::BF16, DType::BF16),
        (ElemType::F64, DType::F64),
        (ElemType::I8, DType::I8),
        (ElemType::U8, DType::U8),
        (ElemType::I32, DType::I32),
        (ElemType::I64, DType::I64),
        (ElemType::Bool, DType::Bool),
    ];

    /// Edge values of every kind, as a tensor of `d`.
    fn edge_tensor(d: DType) -> Tensor {
        let floats = [
            0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.7, 3.999, 127.0, 128.0, -128.0, -129.0, 255.0, 256.0, 300.7,
            -300.7, 65504.0, 65520.0, 1e5, -1e5, 3.0e9, -3.0e9, 1e20, -1e20, 1e-8, 1.0 / 3.0, f64::from(f32::MAX), f64::MAX, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -f64::NAN,
        ];
        let ints = [0, 1, -1, 2, 127, 128, -128, -129, 255, 256, 300, -300, 2049, 65535, 1 << 24, (1 << 24) + 1, i32::MAX as i64, i32::MIN as i64, (1 << 40) + 3, i64::MAX, i64::MIN, 9_007_199_254_740_993];
        let shape = |n: usize| Shape::from([n]);
        if d.is_int() || d == DType::Bool {
            Tensor::from_i64_values(d, shape(ints.len()), &ints).unwrap()
        } else {
            Tensor::from_f64(d, shape(floats.len()), &floats).unwrap()
        }
    }

    /// Runs `k` in the given parts over `x`, returning the output bytes.
    fn run_parts(k: &Cast, x: &mut [u8], parts: &[Range<u64>]) -> Vec<u8> {
        let mut y = vec![0xAAu8; k.len as usize * k.to.size()];
        let ins = [RawBuf::from_bytes(x)];
        let outs = [RawBuf::from_bytes(&mut y)];
        for p in parts {
            // SAFETY: live distinct buffers, one thread.
            unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, p.clone(), &mut []) };
        }
        y
    }

    #[test]
    fn every_pair_matches_the_reference_bit_for_bit_in_parts() {
        for (from, fd) in ALL {
            let t = edge_tensor(fd);
            let n = t.len() as u64;
            let mut x = raw_le_bytes(&t);
            for (to, td) in ALL {
                let k = Cast { from, to, len: n };
                let want = raw_le_bytes(&t.cast(td));
                let parts = [0..n / 3, n / 3..n / 2, n / 2..n];
                assert_eq!(run_parts(&k, &mut x, &parts), want, "{}", k.name());
                assert_eq!(run_parts(&k, &mut x, &[0..n / 2, n / 2..n]), want, "{} in 2 parts", k.name());
            }
        }
    }

    #[test]
    fn a_part_writes_only_its_elements() {
        let t = edge_tensor(DType::F64);
        let mut x = raw_le_bytes(&t);
        let k = Cast { from: ElemType::F64, to: ElemType::I32, len: t.len() as u64 };
        let y = run_parts(&k, &mut x, &[2..5, 7..9]);
        assert!(y[..8].iter().chain(&y[20..28]).chain(&y[36..]).all(|&b| b == 0xAA));
        let want = raw_le_bytes(&t.cast(DType::I32));
        assert_eq!((&y[8..20], &y[28..36]), (&want[8..20], &want[28..36]));
    }

    #[test]
    fn known_values() {
        let t = Tensor::from_f32(Shape::from([5]), vec![-1.7, 2.9, f32::NAN, 1e10, -1e10]).unwrap();
        let mut x = raw_le_bytes(&t);
        let k = Cast { from: ElemType::F32, to: ElemType::I32, len: 5 };
        let y = run_parts(&k, &mut x, &[0..2, 2..5]);
        let got: Vec<i32> = y.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(got, [-1, 2, 0, i32::MAX, i32::MIN]);
        let k = Cast { from: ElemType::F32, to: ElemType::Bool, len: 5 };
        assert_eq!(run_parts(&k, &mut x, &[0..1, 1..5]), [1, 1, 1, 1, 1]);
        assert_eq!(k.name(), "f32_cast_to_bool_generic");
    }
}
