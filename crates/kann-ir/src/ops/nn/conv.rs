//! Sliding-window geometry (shared with pooling) and the convolutions:
//! `Conv`, `ConvTranspose`, `ConvInteger`, `QLinearConv`.

use super::super::{check_dtype, optional, required, InferInput, InferResult, FLOATS};
use super::product;
use crate::TensorInfo;
use kann_tensor::{DType, Shape};

/// ONNX `auto_pad`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoPad {
    /// Explicit `pads`.
    NotSet,
    /// Output `ceil(in / stride)`, odd padding at the end.
    SameUpper,
    /// Output `ceil(in / stride)`, odd padding at the beginning.
    SameLower,
    /// No padding.
    Valid,
}

/// Window attributes as the model gives them. Empty vectors stand for the
/// ONNX defaults (kernel from the weight, strides and dilations 1, pads 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub kernel_shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// All beginnings, then all ends.
    pub pads: Vec<usize>,
    pub auto_pad: AutoPad,
    /// Pooling only: round the output size up.
    pub ceil_mode: bool,
}

/// Resolved per-axis geometry of a window over given spatial extents.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPlan {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Padding before/after each axis (negative only for ConvTranspose).
    pub pad_begin: Vec<i64>,
    pub pad_end: Vec<i64>,
    /// Output spatial extents.
    pub out: Vec<usize>,
}

/// Largest kernel extent, stride, dilation, pad or requested extent kann
/// accepts: keeps every index computation far from overflow.
pub const MAX_WINDOW_VALUE: usize = 1 << 24;

/// `v` if given (with `n` entries), else `n` copies of `default`.
fn per_axis(v: &[usize], n: usize, default: usize, what: &str) -> Result<Vec<usize>, String> {
    if v.is_empty() {
        return Ok(vec![default; n]);
    }
    if v.len() != n {
        return Err(format!("{what} has {} values but the window has {n} spatial axes", v.len()));
    }
    if let Some(big) = v.iter().find(|&&x| x > MAX_WINDOW_VALUE) {
        return Err(format!("{what} value {big} is larger than {MAX_WINDOW_VALUE}, which is not supported"));
    }
    Ok(v.to_vec())
}

/// Strides, dilations and pads with defaults filled in.
type Resolved = (Vec<usize>, Vec<usize>, Vec<usize>);

impl Window {
    /// A window with every attribute at its default.
    pub fn new(auto_pad: AutoPad) -> Window {
        Window { kernel_shape: vec![], strides: vec![], dilations: vec![], pads: vec![], auto_pad, ceil_mode: false }
    }

    /// Resolves strides, dilations and pads and checks their lengths.
    fn resolve(&self, kernel: &[usize]) -> Result<Resolved, String> {
        let n = kernel.len();
        if !self.kernel_shape.is_empty() && self.kernel_shape != kernel {
            return Err(format!("kernel_shape {:?} does not match the weight's spatial shape {kernel:?}", self.kernel_shape));
        }
        if kernel.contains(&0) {
            return Err(format!("kernel shape {kernel:?} has a zero extent"));
        }
        per_axis(kernel, kernel.len(), 1, "kernel_shape")?;
        let strides = per_axis(&self.strides, n, 1, "strides")?;
        let dilations = per_axis(&self.dilations, n, 1, "dilations")?;
        if strides.contains(&0) || dilations.contains(&0) {
            return Err(format!("strides {strides:?} and dilations {dilations:?} must be positive"));
        }
        let pads = per_axis(&self.pads, 2 * n, 0, "pads")?;
        Ok((strides, dilations, pads))
    }

    /// Geometry of a (forward) window of extents `kernel` over `input`.
    pub fn plan(&self, input: &[usize], kernel: &[usize]) -> Result<WindowPlan, String> {
        let n = kernel.len();
        if input.len() != n {
            return Err(format!("the window has {n} spatial axes but the input has {}", input.len()));
        }
        let (strides, dilations, pads) = self.resolve(kernel)?;
        let mut plan = WindowPlan { kernel: kernel.to_vec(), strides, dilations, pad_begin: vec![], pad_end: vec![], out: vec![] };
        for i in 0..n {
            let (s, eff, size) = (plan.strides[i], (kernel[i] - 1) * plan.dilations[i] + 1, input[i]);
            let (pb, pe, out) = match self.auto_pad {
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let out = size.div_ceil(s);
                    let total = ((out.max(1) - 1) * s + eff).saturating_sub(size);
                    let small = total / 2;
                    let pb = if self.auto_pad == AutoPad::SameUpper { small } else { total - small };
                    (pb, total - pb, out)
                }
                AutoPad::NotSet | AutoPad::Valid => {
                    let (pb, pe) = if self.auto_pad == AutoPad::Valid { (0, 0) } else { (pads[i], pads[n + i]) };
                    let total = size + pb + pe;
                    if total < eff {
                        return Err(format!("axis {i}: padded input extent {total} is smaller than the dilated kernel {eff}"));
                    }
                    let mut out = if self.ceil_mode { (total - eff).div_ceil(s) + 1 } else { (total - eff) / s + 1 };
                    // A last window starting in the end padding is dropped.
                    if self.ceil_mode && out > 1 && (out - 1) * s >= size + pb {
                        out -= 1;
                    }
                    (pb, pe, out)
                }
            };
            plan.pad_begin.push(pb as i64);
            plan.pad_end.push(pe as i64);
            plan.out.push(out);
        }
        Ok(plan)
    }
}

/// Attributes of the forward convolutions.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvAttrs {
    pub window: Window,
    pub group: usize,
}

/// `Conv`: inputs X, W, optional B.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub attrs: ConvAttrs,
}

impl ConvAttrs {
    /// Checks X `[N, C, D...]` against W `[M, C/group, k...]` and plans the window.
    pub fn plan(&self, x: &[usize], w: &[usize]) -> Result<WindowPlan, String> {
        if x.len() < 3 {
            return Err(format!("X must have rank >= 3 (N, C, spatial...), found shape {x:?}"));
        }
        if w.len() != x.len() {
            return Err(format!("W has rank {} but X has rank {}", w.len(), x.len()));
        }
        let g = self.group;
        if g == 0 || w[1].checked_mul(g) != Some(x[1]) || w[0] % g != 0 {
            return Err(format!("X {x:?} and W {w:?} do not fit group {g} (need C = W[1] * group and M divisible by group)"));
        }
        self.window.plan(&x[2..], &w[2..])
    }

    /// Output shape `[N, M, out...]`.
    fn out_shape(&self, x: &[usize], w: &[usize]) -> Result<Shape, String> {
        let plan = self.plan(x, w)?;
        let mut dims = vec![x[0], w[0]];
        dims.extend(plan.out);
        Ok(Shape::new(dims))
    }
}

/// Checks that an optional per-output-channel input is a scalar, one value or `[m]`.
fn check_per_channel(inp: Option<InferInput>, m: usize, what: &str) -> Result<(), String> {
    if let Some(i) = inp {
        let n = i.info.numel();
        if !(i.info.rank() <= 1 && (n == 1 || n == m)) {
            return Err(format!("{what} must be a scalar or hold {m} values, found shape {}", i.info.shape));
        }
    }
    Ok(())
}

/// Checks that an input is a single value (scalar or one element).
pub(crate) fn check_scalar(inp: InferInput, what: &str) -> Result<(), String> {
    if inp.info.numel() != 1 || inp.info.rank() > 1 {
        return Err(format!("{what} must be a scalar (per-tensor), found shape {}", inp.info.shape));
    }
    Ok(())
}

impl Conv {
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "X")?;
        let w = required(inputs, 1, "W")?;
        check_dtype(x.info, FLOATS, "X")?;
        if w.info.dtype != x.info.dtype {
            return Err(format!("X is {} but W is {}", x.info.dtype, w.info.dtype));
        }
        let shape = self.attrs.out_shape(x.info.shape.dims(), w.info.shape.dims())?;
        if let Some(b) = optional(inputs, 2) {
            if b.info.dtype != x.info.dtype || b.info.shape.dims() != [shape[1]] {
                return Err(format!("B must be {}[{}], found {}", x.info.dtype, shape[1], b.info));
            }
        }
        Ok(vec![TensorInfo::new(x.info.dtype, shape)])
    }
}

/// `ConvInteger`: x, w, optional x_zero_point, optional w_zero_point → i32.
pub fn infer_conv_integer(c: &ConvAttrs, inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "x")?;
    let w = required(inputs, 1, "w")?;
    check_dtype(x.info, &[DType::U8, DType::I8], "x")?;
    check_dtype(w.info, &[DType::U8, DType::I8], "w")?;
    let shape = c.out_shape(x.info.shape.dims(), w.info.shape.dims())?;
    if let Some(z) = optional(inputs, 2) {
        check_scalar(z, "x_zero_point")?;
    }
    check_per_channel(optional(inputs, 3), shape[1], "w_zero_point")?;
    Ok(vec![TensorInfo::new(DType::I32, shape)])
}

/// `QLinearConv`: x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, optional B (i32).
pub fn infer_qlinear_conv(c: &ConvAttrs, inputs: &[Option<InferInput>]) -> InferResult {
    let x = required(inputs, 0, "x")?;
    let w = required(inputs, 3, "w")?;
    check_dtype(x.info, &[DType::U8, DType::I8], "x")?;
    check_dtype(w.info, &[DType::U8, DType::I8], "w")?;
    let shape = c.out_shape(x.info.shape.dims(), w.info.shape.dims())?;
    check_scalar(required(inputs, 1, "x_scale")?, "x_scale")?;
    check_per_channel(optional(inputs, 2), 1, "x_zero_point")?;
    check_per_channel(Some(required(inputs, 4, "w_scale")?), shape[1], "w_scale")?;
    check_per_channel(optional(inputs, 5), shape[1], "w_zero_point")?;
    check_scalar(required(inputs, 6, "y_scale")?, "y_scale")?;
    let out_dtype = match optional(inputs, 7) {
        Some(z) => {
            check_scalar(z, "y_zero_point")?;
            check_dtype(z.info, &[DType::U8, DType::I8], "y_zero_point")?;
            z.info.dtype
        }
        None => DType::U8,
    };
    if let Some(b) = optional(inputs, 8) {
        if b.info.dtype != DType::I32 || b.info.shape.dims() != [shape[1]] {
            return Err(format!("B must be i32[{}], found {}", shape[1], b.info));
        }
    }
    Ok(vec![TensorInfo::new(out_dtype, shape)])
}

/// Multiply-adds of a forward convolution: each output element sums C/group × kernel products.
pub fn conv_flops(_group: usize, w: Option<&TensorInfo>, out: u64) -> u64 {
    let per_out = w.map(|w| product(&w.shape.dims()[1..]) as u64).unwrap_or(0);
    out.saturating_mul(per_out).saturating_mul(2)
}

/// `ConvTranspose`: inputs X `[N, C, D...]`, W `[C, M/group, k...]`, optional B `[M]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvTranspose {
    pub window: Window,
    pub group: usize,
    /// Extra extent at the end of each output axis (empty: zeros).
    pub output_padding: Vec<usize>,
    /// Requested output spatial extents (empty: computed from pads).
    pub output_shape: Vec<usize>,
}

impl ConvTranspose {
    /// Checks shapes and resolves the geometry; `out` is the output's spatial shape.
    pub fn plan(&self, x: &[usize], w: &[usize]) -> Result<WindowPlan, String> {
        if x.len() < 3 || w.len() != x.len() {
            return Err(format!("X {x:?} and W {w:?} must have the same rank >= 3"));
        }
        let g = self.group;
        if g == 0 || w[0] != x[1] || x[1] % g != 0 {
            return Err(format!("X {x:?} and W {w:?} do not fit group {g} (need W[0] = C, C divisible by group)"));
        }
        let kernel = &w[2..];
        let n = kernel.len();
        let (strides, dilations, pads) = self.window.resolve(kernel)?;
        let out_pad = per_axis(&self.output_padding, n, 0, "output_padding")?;
        per_axis(&self.output_shape, self.output_shape.len(), 1, "output_shape")?;
        let requested: &[usize] = match self.output_shape.len() {
            0 => &[],
            l if l == n => &self.output_shape,
            l if l == n + 2 => &self.output_shape[2..],
            l => return Err(format!("output_shape has {l} values but the window has {n} spatial axes")),
        };
        let mut plan = WindowPlan { kernel: kernel.to_vec(), strides, dilations, pad_begin: vec![], pad_end: vec![], out: vec![] };
        for i in 0..n {
            let (s, eff, size) = (plan.strides[i] as i64, ((kernel[i] - 1) * plan.dilations[i] + 1) as i64, x[i + 2] as i64);
            let full = s * (size - 1) + out_pad[i] as i64 + eff;
            let target = if !requested.is_empty() {
                Some(requested[i] as i64)
            } else if matches!(self.window.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
                Some(size * s)
            } else {
                None
            };
            let (pb, pe) = match target {
                Some(t) => {
                    let total = full - t;
                    let half = total.div_euclid(2);
                    if self.window.auto_pad == AutoPad::SameUpper { (half, total - half) } else { (total - half, half) }
                }
                None if self.window.auto_pad == AutoPad::Valid => (0, 0),
                None => (pads[i] as i64, pads[n + i] as i64),
            };
            let out = full - pb - pe;
            if out <= 0 {
                return Err(format!("axis {i}: the output extent {out} is not positive"));
            }
            plan.pad_begin.push(pb);
            plan.pad_end.push(pe);
            plan.out.push(out as usize);
        }
        Ok(plan)
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        let x = required(inputs, 0, "X")?;
        let w = required(inputs, 1, "W")?;
        check_dtype(x.info, FLOATS, "X")?;
        if w.info.dtype != x.info.dtype {
            return Err(format!("X is {} but W is {}", x.info.dtype, w.info.dtype));
        }
        let (xd, wd) = (x.info.shape.dims(), w.info.shape.dims());
        let plan = self.plan(xd, wd)?;
        let m = wd[1].checked_mul(self.group).ok_or("too many output channels")?;
        if let Some(b) = optional(inputs, 2) {
            if b.info.dtype != x.info.dtype || b.info.shape.dims() != [m] {
                return Err(format!("B must be {}[{m}], found {}", x.info.dtype, b.info));
            }
        }
        let mut dims = vec![xd[0], m];
        dims.extend(plan.out);
        Ok(vec![TensorInfo::new(x.info.dtype, Shape::new(dims))])
    }
}

/// Multiply-adds of a transposed convolution: each input element meets M/group × kernel weights.
pub fn conv_transpose_flops(_group: usize, x: Option<&TensorInfo>, w: Option<&TensorInfo>) -> u64 {
    match (x, w) {
        (Some(x), Some(w)) => (x.numel() as u64).saturating_mul(product(&w.shape.dims()[1..]) as u64).saturating_mul(2),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(k: &[usize], s: &[usize], p: &[usize], auto_pad: AutoPad, ceil: bool) -> Window {
        Window { kernel_shape: k.to_vec(), strides: s.to_vec(), dilations: vec![], pads: p.to_vec(), auto_pad, ceil_mode: ceil }
    }

    #[test]
    fn output_sizes() {
        let p = window(&[3, 3], &[2, 2], &[1, 1, 1, 1], AutoPad::NotSet, false).plan(&[7, 5], &[3, 3]).unwrap();
        assert_eq!(p.out, vec![4, 3]);
        let p = window(&[3], &[2], &[], AutoPad::SameUpper, false).plan(&[6], &[3]).unwrap();
        assert_eq!((p.out[0], p.pad_begin[0], p.pad_end[0]), (3, 0, 1));
        let p = window(&[3], &[2], &[], AutoPad::SameLower, false).plan(&[6], &[3]).unwrap();
        assert_eq!((p.pad_begin[0], p.pad_end[0]), (1, 0));
        let p = window(&[3], &[2], &[], AutoPad::NotSet, true).plan(&[6], &[3]).unwrap();
        assert_eq!(p.out[0], 3);
        assert!(window(&[3], &[], &[], AutoPad::NotSet, false).plan(&[2], &[3]).is_err());
    }

    #[test]
    fn transposed_output_sizes() {
        let ct = ConvTranspose { window: Window::new(AutoPad::NotSet), group: 1, output_padding: vec![], output_shape: vec![] };
        assert_eq!(ct.plan(&[1, 1, 3, 3], &[1, 2, 3, 3]).unwrap().out, vec![5, 5]);
        let ct = ConvTranspose { output_shape: vec![10, 8], window: Window { strides: vec![3, 2], ..Window::new(AutoPad::NotSet) }, ..ct };
        let p = ct.plan(&[1, 1, 3, 3], &[1, 2, 3, 3]).unwrap();
        assert_eq!(p.out, vec![10, 8]);
    }
}
