//! Integer element-wise kernels (i8, u8, i32, i64): arithmetic, bit
//! operations and comparisons with broadcasting ([`IntBinary`]) and a few
//! unary functions ([`IntUnary`]). Values are widened to i64, computed with
//! numpy's wrapping (division by zero gives 0) and truncated to the
//! element type, as the reference does.

use super::{check_strides, for_each_row, inner_strides};
use crate::kernel::{expect_io, KernelImpl};
use crate::Io;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// An integer element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntType {
    I8,
    U8,
    I32,
    I64,
}

impl IntType {
    pub fn bytes(self) -> usize {
        match self {
            IntType::I8 | IntType::U8 => 1,
            IntType::I32 => 4,
            IntType::I64 => 8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IntType::I8 => "i8",
            IntType::U8 => "u8",
            IntType::I32 => "i32",
            IntType::I64 => "i64",
        }
    }

    /// Element `i` of `b`, widened.
    #[inline]
    fn read(self, b: &[u8], i: usize) -> i64 {
        match self {
            IntType::I8 => b[i] as i8 as i64,
            IntType::U8 => b[i] as i64,
            IntType::I32 => i32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]) as i64,
            IntType::I64 => {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[8 * i..8 * i + 8]);
                i64::from_le_bytes(w)
            }
        }
    }

    /// Stores `v` truncated as element `i` of `b`.
    #[inline]
    fn write(self, b: &mut [u8], i: usize, v: i64) {
        let n = self.bytes();
        b[n * i..n * (i + 1)].copy_from_slice(&v.to_le_bytes()[..n]);
    }
}

/// What [`IntBinary`] computes; comparisons give a bool output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntOp {
    Add,
    Sub,
    Mul,
    /// Truncates toward zero.
    Div,
    /// The remainder takes the divisor's sign.
    Mod,
    /// The remainder takes the dividend's sign.
    Fmod,
    Max,
    Min,
    BitAnd,
    BitOr,
    BitXor,
    ShiftLeft,
    ShiftRight,
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
}

impl IntOp {
    pub fn is_comparison(self) -> bool {
        matches!(self, IntOp::Equal | IntOp::Less | IntOp::Greater | IntOp::LessOrEqual | IntOp::GreaterOrEqual)
    }

    /// Applies the operator; `width` is the element type's bit width.
    #[inline]
    fn apply(self, a: i64, b: i64, width: i64) -> i64 {
        use IntOp::*;
        match self {
            Add => a.wrapping_add(b),
            Sub => a.wrapping_sub(b),
            Mul => a.wrapping_mul(b),
            Div | Mod | Fmod if b == 0 => 0,
            Div => a.wrapping_div(b),
            Mod => {
                let r = a.wrapping_rem(b);
                if r != 0 && (r < 0) != (b < 0) {
                    r + b
                } else {
                    r
                }
            }
            Fmod => a.wrapping_rem(b),
            Max => a.max(b),
            Min => a.min(b),
            BitAnd => a & b,
            BitOr => a | b,
            BitXor => a ^ b,
            ShiftLeft if !(0..width).contains(&b) => 0,
            ShiftLeft => a << b,
            ShiftRight if !(0..width).contains(&b) => -((a < 0) as i64),
            ShiftRight => a >> b,
            Equal => (a == b) as i64,
            Less => (a < b) as i64,
            Greater => (a > b) as i64,
            LessOrEqual => (a <= b) as i64,
            GreaterOrEqual => (a >= b) as i64,
        }
    }
}

/// `y = a ⋄ b` over integers of type `ty` with broadcasting (see
/// [`super::Binary`] for `dims` and `strides`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntBinary {
    pub op: IntOp,
    pub ty: IntType,
    pub dims: Vec<u64>,
    pub strides: Vec<Vec<u64>>,
}

impl KernelImpl for IntBinary {
    fn name(&self) -> String {
        format!("{}_{:?}_generic", self.ty.name(), self.op).to_lowercase()
    }

    fn work_items(&self) -> u64 {
        self.dims.iter().product()
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 2..3, 1)?;
        if self.strides.len() != 2 {
            return Err(format!("needs strides for 2 inputs, has {}", self.strides.len()));
        }
        check_strides(&self.dims, &self.strides)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (op, ty) = (self.op, self.ty);
        let out_ty = if op.is_comparison() { IntType::U8 } else { ty };
        let width = 8 * ty.bytes() as i64;
        let inner = inner_strides(&self.strides);
        let es = out_ty.bytes();
        // SAFETY: this part owns these output bytes (the run contract).
        let out = unsafe { io.outputs[0].bytes_part(part.start as usize * es..part.end as usize * es) };
        // SAFETY: no one writes the inputs during the step.
        let (a, b) = unsafe { (io.inputs[0].bytes(), io.inputs[1].bytes()) };
        for_each_row(&self.dims, &self.strides, part, |pos, n, off| {
            for k in 0..n {
                let v = op.apply(ty.read(a, off[0] + k * inner[0]), ty.read(b, off[1] + k * inner[1]), width);
                out_ty.write(out, pos + k, v);
            }
        });
    }
}

/// What [`IntUnary`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntUnaryOp {
    Relu,
    Abs,
    Neg,
    Sign,
    BitwiseNot,
    /// `min(max(x, min), max)`.
    Clip { min: i64, max: i64 },
}

/// `y[i] = f(x[i])` over `len` integers of type `ty`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntUnary {
    pub op: IntUnaryOp,
    pub ty: IntType,
    pub len: u64,
}

impl KernelImpl for IntUnary {
    fn name(&self) -> String {
        let op = format!("{:?}", self.op).to_lowercase();
        format!("{}_{}_generic", self.ty.name(), op.split(' ').next().unwrap_or_default())
    }

    fn work_items(&self) -> u64 {
        self.len
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 1..2, 1)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let ty = self.ty;
        let es = ty.bytes();
        // SAFETY: this part owns these output bytes (the run contract).
        let out = unsafe { io.outputs[0].bytes_part(part.start as usize * es..part.end as usize * es) };
        // SAFETY: no one writes the input during the step.
        let x = unsafe { io.inputs[0].bytes() };
        for (k, i) in part.enumerate() {
            let v = ty.read(x, i as usize);
            let y = match self.op {
                IntUnaryOp::Relu => v.max(0),
                IntUnaryOp::Abs => v.wrapping_abs(),
                IntUnaryOp::Neg => v.wrapping_neg(),
                IntUnaryOp::Sign => v.signum(),
                IntUnaryOp::BitwiseNot => !v,
                IntUnaryOp::Clip { min, max } => v.max(min).min(max),
            };
            ty.write(out, k, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawBuf;

    #[test]
    fn i8_arithmetic_wraps_and_mod_follows_the_divisor() {
        let mut a: Vec<u8> = [7i8, -7, 100, -128].iter().map(|&v| v as u8).collect();
        let mut b: Vec<u8> = [2i8, 2, 100, 0].iter().map(|&v| v as u8).collect();
        for (op, want) in [(IntOp::Add, [9i8, -5, -56, -128]), (IntOp::Mod, [1, 1, 0, 0]), (IntOp::Div, [3, -3, 1, 0]), (IntOp::Less, [0, 1, 0, 1])] {
            let k = IntBinary { op, ty: IntType::I8, dims: vec![4], strides: vec![vec![1], vec![1]] };
            let mut y = vec![0u8; 4];
            let ins = [RawBuf::from_bytes(&mut a), RawBuf::from_bytes(&mut b)];
            let outs = [RawBuf::from_bytes(&mut y)];
            for p in [0..3u64, 3..4] {
                // SAFETY: live distinct buffers, one thread.
                unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, p, &mut []) };
            }
            assert_eq!(y.iter().map(|&v| v as i8).collect::<Vec<_>>(), want, "{op:?}");
        }
    }

    #[test]
    fn i64_unary() {
        let mut x: Vec<u8> = [-3i64, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut y = vec![0u8; 16];
        let k = IntUnary { op: IntUnaryOp::Clip { min: -1, max: 2 }, ty: IntType::I64, len: 2 };
        let ins = [RawBuf::from_bytes(&mut x)];
        let outs = [RawBuf::from_bytes(&mut y)];
        // SAFETY: live distinct buffers, one thread.
        unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, 1..2, &mut []) };
        assert_eq!(i64::from_le_bytes(y[8..].try_into().unwrap()), 2);
    }
}
