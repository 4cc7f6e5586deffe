//! Element-wise kernels of several inputs with numpy broadcasting: f32
//! arithmetic ([`Binary`], with an optional residual and fused activation),
//! comparisons and logic with a bool output ([`Compare`]) and `Where`
//! ([`Where`], any element size); integer kernels live in [`int`].
//!
//! Every kernel here walks the output in row-major order; each input is read
//! through per-dimension element strides that are 0 on broadcast dimensions
//! ([`broadcast_strides`]), computed by the compiler and simplified with
//! [`coalesce`]. Work items are output elements.

pub mod int;

use crate::kernel::{expect_io, KernelImpl};
use crate::vmath::{self, Arith, Operand};
use crate::{Activation, Io, Isa};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Element strides of an input of shape `in_dims` read as the broadcast
/// shape `out_dims` (numpy rules: dimensions align at the end; a dimension
/// of 1, or a missing one, is read with stride 0).
pub fn broadcast_strides(in_dims: &[usize], out_dims: &[usize]) -> Vec<u64> {
    let mut strides = vec![0u64; out_dims.len()];
    let mut step = 1u64;
    for (k, &d) in in_dims.iter().enumerate().rev() {
        let o = out_dims.len() + k - in_dims.len();
        if d != 1 {
            strides[o] = step;
        }
        step *= d as u64;
    }
    strides
}

/// Row-major strides of a contiguous tensor of shape `dims`.
pub fn contiguous_strides(dims: &[u64]) -> Vec<u64> {
    let mut strides = vec![0u64; dims.len()];
    let mut step = 1u64;
    for (s, &d) in strides.iter_mut().zip(dims).rev() {
        *s = step;
        step *= d;
    }
    strides
}

/// Simplifies a broadcast walk: drops dimensions of size 1 and merges
/// neighbours that every input reads contiguously. The result has rank ≥ 1
/// and visits the same elements in the same order.
pub fn coalesce(dims: &[u64], strides: &[Vec<u64>]) -> (Vec<u64>, Vec<Vec<u64>>) {
    let mut out_dims: Vec<u64> = Vec::new();
    let mut out_strides: Vec<Vec<u64>> = vec![Vec::new(); strides.len()];
    for (d, &n) in dims.iter().enumerate() {
        if n == 1 {
            continue;
        }
        // The previous kept dimension steps exactly over this one in every input.
        let mergeable = strides.iter().zip(&out_strides).all(|(s, o)| o.last().is_some_and(|&prev| prev == s[d] * n));
        if let (true, Some(last)) = (mergeable, out_dims.last_mut()) {
            *last *= n;
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                if let Some(prev) = o.last_mut() {
                    *prev = s[d];
                }
            }
        } else {
            out_dims.push(n);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    if out_dims.is_empty() || dims.contains(&0) {
        let n = dims.iter().product();
        return (vec![n], vec![vec![0]; strides.len()]);
    }
    (out_dims, out_strides)
}

/// Calls `f(pos, n, offsets)` for each run of output elements of `part`
/// that lies in one innermost row: `pos` is the run's first element
/// relative to `part.start`, `n` its length, `offsets[i]` the element
/// offset of input `i` at the run's start (inputs beyond `strides.len()`
/// get 0). Along the run input `i` advances by its innermost stride.
pub(crate) fn for_each_row(dims: &[u64], strides: &[Vec<u64>], part: Range<u64>, mut f: impl FnMut(usize, usize, [usize; 3])) {
    let rank = dims.len();
    if rank == 0 || part.start >= part.end {
        return;
    }
    // Multi-index of part.start.
    let mut idx = vec![0u64; rank];
    let mut rest = part.start;
    for d in (0..rank).rev() {
        idx[d] = rest % dims[d];
        rest /= dims[d];
    }
    let mut i = part.start;
    while i < part.end {
        let n = (dims[rank - 1] - idx[rank - 1]).min(part.end - i);
        let mut offsets = [0usize; 3];
        for (o, s) in offsets.iter_mut().zip(strides) {
            *o = idx.iter().zip(s).map(|(&k, &s)| k * s).sum::<u64>() as usize;
        }
        f((i - part.start) as usize, n as usize, offsets);
        i += n;
        idx[rank - 1] += n;
        for d in (1..rank).rev() {
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
            idx[d - 1] += 1;
        }
    }
}

/// The innermost stride of each input (0 past `strides.len()`).
fn inner_strides(strides: &[Vec<u64>]) -> [usize; 3] {
    let mut inner = [0usize; 3];
    for (o, s) in inner.iter_mut().zip(strides) {
        *o = s.last().copied().unwrap_or(0) as usize;
    }
    inner
}

/// Checks the shape of broadcast parameters: every stride list has one
/// entry per dimension.
fn check_strides(dims: &[u64], strides: &[Vec<u64>]) -> Result<(), String> {
    if dims.is_empty() || strides.iter().any(|s| s.len() != dims.len()) {
        return Err(format!("broadcast strides {strides:?} do not match dimensions {dims:?}"));
    }
    Ok(())
}

/// The f32 arithmetic [`Binary`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
    /// `a^b` (computed in f64).
    Pow,
    /// Larger of the two; NaN if either is NaN.
    Max,
    /// Smaller of the two; NaN if either is NaN.
    Min,
    /// Python's `%`: the remainder takes the divisor's sign.
    Mod,
    /// C's `fmod`: the remainder takes the dividend's sign.
    Fmod,
    /// `a < 0 ? a * b : a` (b is the slope).
    PRelu,
    /// `a * sigmoid(alpha * a) * b`.
    SwiGlu { alpha: f64 },
}

impl BinaryKind {
    fn name(self) -> &'static str {
        match self {
            BinaryKind::Add => "add",
            BinaryKind::Sub => "sub",
            BinaryKind::Mul => "mul",
            BinaryKind::Div => "div",
            BinaryKind::Pow => "pow",
            BinaryKind::Max => "max",
            BinaryKind::Min => "min",
            BinaryKind::Mod => "mod",
            BinaryKind::Fmod => "fmod",
            BinaryKind::PRelu => "prelu",
            BinaryKind::SwiGlu { .. } => "swiglu",
        }
    }

    /// The vectorised form of the operator, if it has one.
    fn arith(self) -> Option<Arith> {
        match self {
            BinaryKind::Add => Some(Arith::Add),
            BinaryKind::Sub => Some(Arith::Sub),
            BinaryKind::Mul => Some(Arith::Mul),
            BinaryKind::Div => Some(Arith::Div),
            BinaryKind::Max => Some(Arith::Max),
            BinaryKind::Min => Some(Arith::Min),
            _ => None,
        }
    }

    /// Whether [`Binary`] runs this operator with SIMD (the compiler gives
    /// the others the generic ISA).
    pub fn vectorised(self) -> bool {
        self.arith().is_some()
    }

    /// Applies the operator to one pair.
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryKind::Add => a + b,
            BinaryKind::Sub => a - b,
            BinaryKind::Mul => a * b,
            BinaryKind::Div => a / b,
            BinaryKind::Pow => (a as f64).powf(b as f64) as f32,
            BinaryKind::Max => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.max(b)
                }
            }
            BinaryKind::Min => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.min(b)
                }
            }
            BinaryKind::Mod => python_mod(a as f64, b as f64) as f32,
            BinaryKind::Fmod => a % b,
            BinaryKind::PRelu => {
                if a < 0.0 {
                    a * b
                } else {
                    a
                }
            }
            BinaryKind::SwiGlu { alpha } => {
                let a = a as f64;
                (a / (1.0 + (-alpha * a).exp()) * b as f64) as f32
            }
        }
    }
}

/// Python's float `%`: the remainder takes the divisor's sign.
fn python_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r == 0.0 {
        0.0f64.copysign(b)
    } else if (r < 0.0) != (b < 0.0) {
        r + b
    } else {
        r
    }
}

/// `y = act(op(a, b) [+ r])` with broadcasting over the output shape
/// `dims`. Inputs: a, b, and the residual r when `strides` has three entries.
///
/// Each output row (the innermost dimension) is computed in passes over
/// the row: the operator, then `+ r`, then the activation. A pass whose
/// operands are contiguous or broadcast (inner stride 1 or 0) and whose
/// operator is add/sub/mul/div/max/min runs vectorised with `isa`
/// ([`vmath::binary_row`], exact); other operators and strides run element
/// by element. The activation runs with [`vmath`] (piecewise-linear ones
/// exact, sigmoid/silu/tanh within a few ulps).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binary {
    pub kind: BinaryKind,
    /// The output's dimensions (possibly [`coalesce`]d).
    pub dims: Vec<u64>,
    /// Per input, element strides over `dims` (0 on broadcast dimensions).
    pub strides: Vec<Vec<u64>>,
    pub activation: Activation,
    pub isa: Isa,
}

impl Binary {
    fn len(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Whether input 0 is read exactly like the output is written.
    fn first_input_is_output_shaped(&self) -> bool {
        self.strides.first().is_some_and(|s| *s == contiguous_strides(&self.dims))
    }
}

impl KernelImpl for Binary {
    fn name(&self) -> String {
        let mut name = format!("f32_{}", self.kind.name());
        if self.strides.len() > 2 {
            name.push_str("_add");
        }
        if self.activation != Activation::None {
            name.push('_');
            name.push_str(self.activation.name());
        }
        format!("{name}_{}", self.isa.name())
    }

    fn work_items(&self) -> u64 {
        self.len()
    }

    fn in_place_ok(&self) -> bool {
        self.first_input_is_output_shaped()
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 2..4, 1)?;
        if n_inputs != self.strides.len() {
            return Err(format!("has strides for {} inputs but is given {n_inputs}", self.strides.len()));
        }
        check_strides(&self.dims, &self.strides)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let (op, act, isa) = (self.kind, self.activation, self.isa);
        let residual = self.strides.len() > 2;
        let inner = inner_strides(&self.strides);
        // SAFETY: this part owns these output elements (the run contract).
        let out = unsafe { io.outputs[0].f32_part(part.start as usize..part.end as usize) };
        // In place, input 0's element k is the output's element k (it has
        // the output's shape), read from `out` just before it is overwritten.
        let in_place = io.inputs[0].same_as(&io.outputs[0]) && self.first_input_is_output_shaped();
        // SAFETY: no one writes the inputs during the step; input 0 is not
        // viewed when it is the output.
        let a: &[f32] = if in_place { &[] } else { unsafe { io.inputs[0].f32() } };
        // SAFETY: as above.
        let b = unsafe { io.inputs[1].f32() };
        // SAFETY: as above.
        let r: &[f32] = if residual { unsafe { io.inputs[2].f32() } } else { &[] };
        for_each_row(&self.dims, &self.strides, part, |pos, n, off| {
            let row = &mut out[pos..pos + n];
            let a_row = if in_place { Some(Operand::Out) } else { operand(a, off[0], inner[0], n) };
            match (op.arith(), a_row, operand(b, off[1], inner[1], n)) {
                (Some(arith), Some(x), Some(y)) => vmath::binary_row(isa, arith, x, y, row),
                _ => {
                    for (k, o) in row.iter_mut().enumerate() {
                        let av = if in_place { *o } else { a[off[0] + k * inner[0]] };
                        *o = op.apply(av, b[off[1] + k * inner[1]]);
                    }
                }
            }
            if residual {
                match operand(r, off[2], inner[2], n) {
                    Some(y) => vmath::binary_row(isa, Arith::Add, Operand::Out, y, row),
                    None => row.iter_mut().enumerate().for_each(|(k, o)| *o += r[off[2] + k * inner[2]]),
                }
            }
            if act != Activation::None {
                vmath::map_in_place(isa, vmath::Func::Act(act), row);
            }
        });
    }
}

/// A row of `n` elements of `v` from `off` on with element stride `stride`,
/// as a vectorisable operand: contiguous or broadcast, else `None`.
fn operand(v: &[f32], off: usize, stride: usize, n: usize) -> Option<Operand<'_>> {
    match stride {
        1 => Some(Operand::Row(&v[off..off + n])),
        0 => Some(Operand::Scalar(v[off])),
        _ => None,
    }
}

/// Comparisons and logic with a bool output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareKind {
    /// f32 inputs.
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    /// Bool inputs.
    And,
    Or,
    Xor,
}

impl CompareKind {
    /// Whether the inputs are bool (logic) rather than f32 (comparisons).
    pub fn is_logic(self) -> bool {
        matches!(self, CompareKind::And | CompareKind::Or | CompareKind::Xor)
    }

    fn name(self) -> String {
        let dtype = if self.is_logic() { "bool" } else { "f32" };
        format!("{dtype}_{self:?}_generic").to_lowercase()
    }
}

/// `y = a ⋄ b` with broadcasting, a bool output (one byte, 0 or 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compare {
    pub kind: CompareKind,
    pub dims: Vec<u64>,
    /// Two stride lists (a, b).
    pub strides: Vec<Vec<u64>>,
}

impl KernelImpl for Compare {
    fn name(&self) -> String {
        self.kind.name()
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
        let inner = inner_strides(&self.strides);
        // SAFETY: this part owns these output bytes (the run contract).
        let out = unsafe { io.outputs[0].bytes_part(part.start as usize..part.end as usize) };
        let kind = self.kind;
        if kind.is_logic() {
            // SAFETY: no one writes the inputs during the step.
            let (a, b) = unsafe { (io.inputs[0].bytes(), io.inputs[1].bytes()) };
            for_each_row(&self.dims, &self.strides, part, |pos, n, off| {
                for k in 0..n {
                    let (x, y) = (a[off[0] + k * inner[0]] != 0, b[off[1] + k * inner[1]] != 0);
                    let v = match kind {
                        CompareKind::And => x && y,
                        CompareKind::Or => x || y,
                        _ => x != y,
                    };
                    out[pos + k] = v as u8;
                }
            });
            return;
        }
        // SAFETY: no one writes the inputs during the step.
        let (a, b) = unsafe { (io.inputs[0].f32(), io.inputs[1].f32()) };
        for_each_row(&self.dims, &self.strides, part, |pos, n, off| {
            for k in 0..n {
                let (x, y) = (a[off[0] + k * inner[0]], b[off[1] + k * inner[1]]);
                let v = match kind {
                    CompareKind::Equal => x == y,
                    CompareKind::Less => x < y,
                    CompareKind::Greater => x > y,
                    CompareKind::LessOrEqual => x <= y,
                    _ => x >= y,
                };
                out[pos + k] = v as u8;
            }
        });
    }
}

/// `y = cond ? x : y` with three-way broadcasting; x, y and the output have
/// elements of `elem_bytes` bytes (any dtype), cond is bool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Where {
    pub elem_bytes: u64,
    pub dims: Vec<u64>,
    /// Three stride lists (cond, x, y), in elements.
    pub strides: Vec<Vec<u64>>,
}

impl KernelImpl for Where {
    fn name(&self) -> String {
        format!("x{}_where_generic", self.elem_bytes * 8)
    }

    fn work_items(&self) -> u64 {
        self.dims.iter().product()
    }

    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        expect_io(n_inputs, n_outputs, 3..4, 1)?;
        if self.strides.len() != 3 || self.elem_bytes == 0 {
            return Err(format!("needs strides for 3 inputs and a nonzero element size, has {} and {}", self.strides.len(), self.elem_bytes));
        }
        check_strides(&self.dims, &self.strides)
    }

    unsafe fn run(&self, io: &Io, part: Range<u64>, _scratch: &mut [u8]) {
        let es = self.elem_bytes as usize;
        let inner = inner_strides(&self.strides);
        // SAFETY: this part owns these output bytes (the run contract).
        let out = unsafe { io.outputs[0].bytes_part(part.start as usize * es..part.end as usize * es) };
        // SAFETY: no one writes the inputs during the step.
        let (c, x, y) = unsafe { (io.inputs[0].bytes(), io.inputs[1].bytes(), io.inputs[2].bytes()) };
        for_each_row(&self.dims, &self.strides, part, |pos, n, off| {
            for k in 0..n {
                let src = if c[off[0] + k * inner[0]] != 0 {
                    let at = (off[1] + k * inner[1]) * es;
                    &x[at..at + es]
                } else {
                    let at = (off[2] + k * inner[2]) * es;
                    &y[at..at + es]
                };
                out[(pos + k) * es..(pos + k + 1) * es].copy_from_slice(src);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawBuf;

    /// A tiny deterministic generator (xorshift).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn f32(&mut self) -> f32 {
            (self.next() % 2000) as f32 / 500.0 - 2.0
        }
        fn dim(&mut self) -> usize {
            // Mostly small, sometimes long enough for vector bodies and tails.
            let top = if self.next() % 4 == 0 { 40 } else { 4 };
            1 + (self.next() % top) as usize
        }
    }

    /// The numpy broadcast of two shapes.
    fn bshape(a: &[usize], b: &[usize]) -> Vec<usize> {
        let r = a.len().max(b.len());
        (0..r)
            .map(|i| {
                let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
                let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
                da.max(db)
            })
            .collect()
    }

    /// Naive broadcast read: element of `dims`-shaped `v` at output multi-index `idx`.
    fn at(v: &[f32], dims: &[usize], out_idx: &[usize]) -> f32 {
        let off = out_idx.len() - dims.len();
        let mut flat = 0;
        for (k, &d) in dims.iter().enumerate() {
            flat = flat * d + if d == 1 { 0 } else { out_idx[off + k] };
        }
        v[flat]
    }

    fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
        let mut idx = vec![0; dims.len()];
        for d in (0..dims.len()).rev() {
            idx[d] = i % dims[d];
            i /= dims[d];
        }
        idx
    }

    /// A random shape of rank 0..4 and a broadcast partner.
    fn shapes(rng: &mut Rng) -> (Vec<usize>, Vec<usize>) {
        let rank = (rng.next() % 5) as usize;
        let full: Vec<usize> = (0..rank).map(|_| rng.dim()).collect();
        let brank = (rng.next() % (rank as u64 + 1)) as usize;
        let b: Vec<usize> = full[rank - brank..].iter().map(|&d| if rng.next() % 2 == 0 { 1 } else { d }).collect();
        if rng.next() % 2 == 0 {
            (full, b)
        } else {
            (b, full)
        }
    }

    fn binary_kernel(kind: BinaryKind, ins: &[&[usize]], out: &[usize], activation: Activation) -> Binary {
        let odims: Vec<u64> = out.iter().map(|&d| d as u64).collect();
        let strides: Vec<Vec<u64>> = ins.iter().map(|d| broadcast_strides(d, out)).collect();
        let (dims, strides) = coalesce(&odims, &strides);
        Binary { kind, dims, strides, activation, isa: Isa::Generic }
    }

    /// Runs `k` in 1..=3 parts (each separately) into a fresh output.
    fn run_parts(k: &Binary, inputs: &mut [Vec<f32>], n_out: usize, parts: u64) -> Vec<f32> {
        let mut y = vec![0.0f32; n_out];
        let ins: Vec<RawBuf> = inputs.iter_mut().map(|v| RawBuf::from_f32(v)).collect();
        let outs = [RawBuf::from_f32(&mut y)];
        let n = k.work_items();
        for p in 0..parts {
            // SAFETY: live distinct buffers, one thread.
            unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, n * p / parts..n * (p + 1) / parts, &mut []) };
        }
        y
    }

    #[test]
    fn binary_matches_naive_broadcast_in_parts() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let kinds = [BinaryKind::Add, BinaryKind::Sub, BinaryKind::Mul, BinaryKind::Div, BinaryKind::Pow, BinaryKind::Max, BinaryKind::Min, BinaryKind::Mod, BinaryKind::Fmod, BinaryKind::PRelu];
        for case in 0..600 {
            let kind = kinds[case % kinds.len()];
            let (sa, sb) = shapes(&mut rng);
            let so = bshape(&sa, &sb);
            let (na, nb, no) = (sa.iter().product::<usize>(), sb.iter().product::<usize>(), so.iter().product::<usize>());
            let mut inputs = vec![(0..na).map(|_| rng.f32()).collect::<Vec<_>>(), (0..nb).map(|_| rng.f32()).collect()];
            if case % 7 == 0 {
                // Special values: NaN, infinities, signed zeros.
                let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, 1e-40];
                inputs[case % 2].iter_mut().step_by(3).enumerate().for_each(|(i, v)| *v = special[i % special.len()]);
            }
            let acts = [Activation::None, Activation::Relu, Activation::LeakyRelu { alpha: 0.1 }, Activation::HardSwish, Activation::Clip { min: -0.5, max: 0.5 }];
            let act = acts[case % acts.len()];
            let want: Vec<f32> = (0..no)
                .map(|i| {
                    let idx = unravel(i, &so);
                    act.apply(kind.apply(at(&inputs[0], &sa, &idx), at(&inputs[1], &sb, &idx)))
                })
                .collect();
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let k = Binary { isa, ..binary_kernel(kind, &[&sa, &sb], &so, act) };
                let got = run_parts(&k, &mut inputs, no, 1 + (case as u64 % 3));
                for (g, w) in got.iter().zip(&want) {
                    assert!(g == w || (g.is_nan() && w.is_nan()), "{isa:?} {kind:?} {act:?} {sa:?} {sb:?}: {got:?} vs {want:?}");
                }
            }
        }
    }

    #[test]
    fn residual_and_in_place() {
        let mut rng = Rng(77);
        let (sa, sb, sr) = (vec![2usize, 3, 37], vec![37usize], vec![3usize, 1]);
        let a: Vec<f32> = (0..222).map(|_| rng.f32()).collect();
        let b: Vec<f32> = (0..37).map(|_| rng.f32()).collect();
        let r: Vec<f32> = (0..3).map(|_| rng.f32()).collect();
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for act in [Activation::Relu, Activation::Silu, Activation::Sigmoid, Activation::Tanh] {
                let k = Binary { isa, ..binary_kernel(BinaryKind::Add, &[&sa, &sb, &sr], &sa, act) };
                assert!(k.in_place_ok());
                let want: Vec<f32> = (0..222)
                    .map(|i| {
                        let idx = unravel(i, &sa);
                        act.apply(at(&a, &sa, &idx) + at(&b, &sb, &idx) + at(&r, &sr, &idx))
                    })
                    .collect();
                let close = |got: &[f32]| got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 1e-6 * (1.0 + w.abs()));
                assert!(close(&run_parts(&k, &mut [a.clone(), b.clone(), r.clone()], 222, 2)), "{isa:?} {act:?}");
                // In place: input 0 is the output buffer.
                let mut y = a.clone();
                let (mut b2, mut r2) = (b.clone(), r.clone());
                let buf = RawBuf::from_f32(&mut y);
                let ins = [buf, RawBuf::from_f32(&mut b2), RawBuf::from_f32(&mut r2)];
                for p in [0..7u64, 7..100, 100..222] {
                    // SAFETY: live buffers, one thread; input 0 aliases the output as in-place steps do.
                    unsafe { k.run(&Io { inputs: &ins, outputs: &[buf] }, p, &mut []) };
                }
                assert!(close(&y), "{isa:?} {act:?} in place");
                if act == Activation::Relu {
                    assert_eq!(y, want);
                }
            }
        }
        assert!(!binary_kernel(BinaryKind::Add, &[&sb, &sa], &sa, Activation::None).in_place_ok());
    }

    #[test]
    fn compare_and_where() {
        let (sa, sb, so) = ([2usize, 1], [3usize], [2usize, 3]);
        let mut a = vec![1.0f32, 2.0];
        let mut b = vec![0.0f32, 2.0, 3.0];
        let strides = vec![broadcast_strides(&sa, &so), broadcast_strides(&sb, &so)];
        let k = Compare { kind: CompareKind::Less, dims: vec![2, 3], strides: strides.clone() };
        let mut y = vec![9u8; 6];
        let ins = [RawBuf::from_f32(&mut a), RawBuf::from_f32(&mut b)];
        let outs = [RawBuf::from_bytes(&mut y)];
        for p in [0..4u64, 4..6] {
            // SAFETY: live distinct buffers, one thread.
            unsafe { k.run(&Io { inputs: &ins, outputs: &outs }, p, &mut []) };
        }
        assert_eq!(y, [0, 1, 1, 0, 0, 1]);
        let mut c = y.clone();
        let mut x: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let mut e = vec![-1.0f32];
        let w = Where { elem_bytes: 4, dims: vec![2, 3], strides: vec![vec![3, 1], vec![3, 1], vec![0, 0]] };
        let mut out = vec![0.0f32; 6];
        let ins = [RawBuf::from_bytes(&mut c), RawBuf::from_f32(&mut x), RawBuf::from_f32(&mut e)];
        let outs = [RawBuf::from_f32(&mut out)];
        for p in [0..1u64, 1..5, 5..6] {
            // SAFETY: live distinct buffers, one thread.
            unsafe { w.run(&Io { inputs: &ins, outputs: &outs }, p, &mut []) };
        }
        assert_eq!(out, [-1.0, 1.0, 2.0, -1.0, -1.0, 5.0]);
    }

    #[test]
    fn coalesce_merges_contiguous_dims() {
        let (d, s) = coalesce(&[2, 3, 4], &[vec![12, 4, 1], vec![0, 0, 1]]);
        assert_eq!(d, vec![6, 4]);
        assert_eq!(s, vec![vec![4, 1], vec![0, 1]]);
        let (d, s) = coalesce(&[], &[vec![], vec![]]);
        assert_eq!((d, s), (vec![1], vec![vec![0], vec![0]]));
        let (d, _) = coalesce(&[2, 0, 3], &[vec![0, 3, 1]]);
        assert_eq!(d, vec![0]);
    }
}
