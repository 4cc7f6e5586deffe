//! Lowering of the movement family. Every op here only moves elements, so
//! each works for every dtype (kernels see element sizes):
//!
//! - pure views (Reshape, Flatten, Squeeze, Unsqueeze, and any op that turns
//!   out to copy its input unchanged) alias their input; a view of a
//!   constant is a [`Copy`] from the weights instead;
//! - Transpose, Slice, Expand, Tile, Pad, Gather (constant indices),
//!   DepthToSpace and SpaceToDepth become one [`Remap`]: per output axis an
//!   affine map or a table of input offsets;
//! - Concat and Split become slab kernels; Shape, Size and ConstantOfShape
//!   (when not already folded) read their values from the weights.

use super::{elem_type, LowerCx, LowerResult, Operand};
use kann_ir::ops::movement::{center_crop_offsets, gather_nd_geometry, pad_plan, slice_plan, split_sizes, transpose_perm, BlockMode, MovementOp, PadMode};
use kann_ir::ops::norm_axis;
use kann_ir::{Node, NodeId, ValueId};
use kann_kernels::movement::{Concat, Copy, Remap, RemapAxis, RemapOp, Split, FILL};
use kann_kernels::{Kernel, KernelImpl};
use kann_tensor::{npy, DType, Shape, Tensor};

pub(super) fn lower(cx: &mut LowerCx, id: NodeId, node: &Node, op: &MovementOp) -> LowerResult {
    match op {
        MovementOp::Reshape { .. } | MovementOp::Flatten { .. } | MovementOp::Squeeze | MovementOp::Unsqueeze => view_or_copy(cx, id, node.outputs[0], cx.input(node, 0)?),
        MovementOp::Transpose { perm } => transpose(cx, id, node, perm.as_deref()),
        MovementOp::Slice => slice(cx, id, node),
        MovementOp::Expand => expand(cx, id, node),
        MovementOp::Tile => tile(cx, id, node),
        MovementOp::Pad { mode } => pad(cx, id, node, *mode),
        MovementOp::Gather { axis } => gather(cx, id, node, *axis),
        MovementOp::DepthToSpace { blocksize, mode } => depth_to_space(cx, id, node, *blocksize, *mode),
        MovementOp::SpaceToDepth { blocksize, mode } => space_to_depth(cx, id, node, *blocksize, *mode),
        MovementOp::Concat { axis } => concat(cx, id, node, *axis),
        MovementOp::Split { axis, .. } => split(cx, id, node, *axis),
        MovementOp::Shape { .. } | MovementOp::Size => shape_value(cx, id, node, op),
        MovementOp::ConstantOfShape { value } => constant_of_shape(cx, id, node, value),
        MovementOp::CenterCropPad { axes } => center_crop_pad(cx, id, node, axes.as_deref()),
        MovementOp::Compress { axis } => compress(cx, id, node, *axis),
        MovementOp::GatherElements { axis } => gather_elements(cx, id, node, *axis),
        MovementOp::GatherNd { batch_dims } => gather_nd(cx, id, node, *batch_dims),
        MovementOp::Trilu { upper } => trilu(cx, id, node, *upper),
        MovementOp::ReverseSequence { batch_axis, time_axis } => reverse_sequence(cx, id, node, *batch_axis, *time_axis),
        MovementOp::EyeLike { k, .. } => eye_like(cx, id, node, *k),
        _ => Err(format!("the compiler does not lower {} yet", op.name())),
    }
}

/// `y` shares `x`'s bytes; a constant `x` is copied from the weights.
pub(super) fn view_or_copy(cx: &mut LowerCx, id: NodeId, y: ValueId, x: ValueId) -> LowerResult {
    if cx.constant(x).is_none() {
        return cx.alias(y, x);
    }
    let info = cx.info(y);
    let bytes = (info.numel() * info.dtype.size()) as u64;
    cx.push(id, Kernel::Copy(Copy { bytes }), vec![Operand::Value(x)], vec![Operand::Value(y)], 0);
    Ok(())
}

/// Row-major element strides of `dims`.
pub(super) fn strides(dims: &[usize]) -> Vec<i64> {
    let mut st = vec![1i64; dims.len()];
    for a in (0..dims.len().saturating_sub(1)).rev() {
        st[a] = st[a + 1] * dims[a + 1] as i64;
    }
    st
}

/// The little-endian bytes of a one-element tensor converted to `dtype`.
pub(super) fn scalar_bytes(t: &Tensor, dtype: DType) -> Result<Vec<u8>, String> {
    let one = t.cast(dtype).reshape(Shape::from([1])).map_err(|e| format!("a fill value must hold one element: {e}"))?;
    Ok(npy::raw_le_bytes(&one))
}

/// The values of input `i` if given; it must be a constant.
fn const_i64s(cx: &LowerCx, node: &Node, i: usize, what: &str) -> Result<Option<Vec<i64>>, String> {
    match cx.optional_input(node, i) {
        None => Ok(None),
        Some(v) => cx.constant(v).map(|t| Some(t.to_i64_vec())).ok_or_else(|| format!("input '{what}' must be a constant")),
    }
}

/// One [`Remap`] step from `x` to `y`, or a view when it changes nothing.
fn remap(cx: &mut LowerCx, id: NodeId, x: ValueId, y: ValueId, op: RemapOp, axes: Vec<RemapAxis>, fill: Vec<u8>) -> LowerResult {
    let (xi, yi) = (cx.info(x), cx.info(y));
    let k = Remap::new(elem_type(yi.dtype), op, axes, fill);
    if k.work_items() != yi.numel() as u64 {
        return Err(format!("internal: the {op:?} remap covers {} elements, the output has {}", k.work_items(), yi.numel()));
    }
    if xi.numel() == yi.numel() && k.is_identity(xi.numel() as u64) {
        return view_or_copy(cx, id, y, x);
    }
    cx.push(id, Kernel::Remap(k), vec![Operand::Value(x)], vec![Operand::Value(y)], 0);
    Ok(())
}

/// Input 0, output 0 and the input's dims and strides.
fn io(cx: &LowerCx, node: &Node) -> Result<(ValueId, ValueId, Vec<usize>, Vec<i64>), String> {
    let x = cx.input(node, 0)?;
    let dims = cx.info(x).shape.to_vec();
    let st = strides(&dims);
    Ok((x, node.outputs[0], dims, st))
}

fn transpose(cx: &mut LowerCx, id: NodeId, node: &Node, perm: Option<&[i64]>) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let perm = transpose_perm(perm, dims.len())?;
    let axes = perm.iter().map(|&p| RemapAxis::affine(dims[p] as u64, 0, st[p])).collect();
    remap(cx, id, x, y, RemapOp::Transpose, axes, Vec::new())
}

fn slice(cx: &mut LowerCx, id: NodeId, node: &Node) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let starts = const_i64s(cx, node, 1, "starts")?.ok_or("input 'starts' is missing")?;
    let ends = const_i64s(cx, node, 2, "ends")?.ok_or("input 'ends' is missing")?;
    let plan = slice_plan(&dims, &starts, &ends, const_i64s(cx, node, 3, "axes")?.as_deref(), const_i64s(cx, node, 4, "steps")?.as_deref())?;
    let axes = plan.iter().zip(&st).map(|(p, &s)| RemapAxis::affine(p.len as u64, p.start * s, p.step * s)).collect();
    remap(cx, id, x, y, RemapOp::Slice, axes, Vec::new())
}

fn expand(cx: &mut LowerCx, id: NodeId, node: &Node) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let out = cx.info(y).shape.to_vec();
    let lead = out.len().checked_sub(dims.len()).ok_or("Expand's output has a lower rank than its input")?;
    let axes = out
        .iter()
        .enumerate()
        .map(|(i, &d)| match i.checked_sub(lead) {
            Some(a) if dims[a] == d => RemapAxis::affine(d as u64, 0, st[a]),
            _ => RemapAxis::affine(d as u64, 0, 0),
        })
        .collect();
    remap(cx, id, x, y, RemapOp::Expand, axes, Vec::new())
}

/// Each axis becomes two: the repeat (stride 0) and the input axis.
fn tile(cx: &mut LowerCx, id: NodeId, node: &Node) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let out = cx.info(y).shape.to_vec();
    let mut axes = Vec::with_capacity(2 * dims.len());
    for (a, (&d, &o)) in dims.iter().zip(&out).enumerate() {
        let reps = if d == 0 { 0 } else { o / d };
        axes.push(RemapAxis::affine(reps as u64, 0, 0));
        axes.push(RemapAxis::affine(d as u64, 0, st[a]));
    }
    remap(cx, id, x, y, RemapOp::Tile, axes, Vec::new())
}

/// The input coordinate Pad reads at coordinate `i` (relative to the
/// input's start) on an axis of size `d`; `None` for the constant.
fn pad_source(mode: PadMode, i: i64, d: i64) -> Option<i64> {
    if (0..d).contains(&i) {
        return Some(i);
    }
    match mode {
        PadMode::Constant => None,
        _ if d == 0 => None,
        PadMode::Edge => Some(i.clamp(0, d - 1)),
        PadMode::Wrap => Some(i.rem_euclid(d)),
        PadMode::Reflect if d == 1 => Some(0),
        PadMode::Reflect => {
            let period = 2 * (d - 1);
            let m = i.rem_euclid(period);
            Some(if m >= d { period - m } else { m })
        }
    }
}

fn pad(cx: &mut LowerCx, id: NodeId, node: &Node, mode: PadMode) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let pads = const_i64s(cx, node, 1, "pads")?.ok_or("input 'pads' is missing")?;
    let (begin, _) = pad_plan(dims.len(), &pads, const_i64s(cx, node, 3, "axes")?.as_deref())?;
    let dtype = cx.info(y).dtype;
    let fill = match cx.optional_input(node, 2) {
        None => vec![0; dtype.size()],
        Some(v) => match cx.constant(v) {
            Some(t) if t.is_empty() => vec![0; dtype.size()],
            Some(t) => scalar_bytes(t, dtype)?,
            None => return Err("input 'constant_value' must be a constant".into()),
        },
    };
    let out = cx.info(y).shape.to_vec();
    let axes = (0..dims.len())
        .map(|a| {
            let table = (0..out[a] as i64).map(|k| pad_source(mode, k - begin[a], dims[a] as i64).map_or(FILL, |s| s * st[a])).collect();
            RemapAxis::table(table)
        })
        .collect();
    remap(cx, id, x, y, RemapOp::Pad, axes, fill)
}

fn gather(cx: &mut LowerCx, id: NodeId, node: &Node, axis: i64) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let axis = norm_axis(axis, dims.len())?;
    let idx = const_i64s(cx, node, 1, "indices")?.ok_or("input 'indices' is missing")?;
    let d = dims[axis] as i64;
    let mut table = Vec::with_capacity(idx.len());
    for &i in &idx {
        let j = if i < 0 { i + d } else { i };
        if !(0..d).contains(&j) {
            return Err(format!("index {i} is out of range for axis {axis} of size {d}"));
        }
        table.push(j * st[axis]);
    }
    let mut axes: Vec<RemapAxis> = (0..axis).map(|a| RemapAxis::affine(dims[a] as u64, 0, st[a])).collect();
    axes.push(RemapAxis::table(table));
    axes.extend((axis + 1..dims.len()).map(|a| RemapAxis::affine(dims[a] as u64, 0, st[a])));
    remap(cx, id, x, y, RemapOp::Gather, axes, Vec::new())
}

/// Remap axes reading an input viewed with `view` dims, in the order `perm`.
fn permuted(view: &[usize], perm: &[usize]) -> Vec<RemapAxis> {
    let st = strides(view);
    perm.iter().map(|&p| RemapAxis::affine(view[p] as u64, 0, st[p])).collect()
}

/// `[N, C, H, W]` of a rank-4 value.
fn nchw(dims: &[usize]) -> Result<[usize; 4], String> {
    match *dims {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(format!("expects a rank-4 input, found shape {dims:?}")),
    }
}

/// Output `[N, C/b², H, b, W, b]` (i.e. `[N, C/b², H·b, W·b]`) from the
/// input channels split as `[b, b, C/b²]` (DCR) or `[C/b², b, b]` (CRD).
fn depth_to_space(cx: &mut LowerCx, id: NodeId, node: &Node, b: usize, mode: BlockMode) -> LowerResult {
    let (x, y, dims, _) = io(cx, node)?;
    let [n, c, h, w] = nchw(&dims)?;
    let cs = c / (b * b).max(1);
    let axes = match mode {
        BlockMode::Dcr => permuted(&[n, b, b, cs, h, w], &[0, 3, 4, 1, 5, 2]),
        BlockMode::Crd => permuted(&[n, cs, b, b, h, w], &[0, 1, 4, 2, 5, 3]),
    };
    remap(cx, id, x, y, RemapOp::DepthToSpace, axes, Vec::new())
}

/// The inverse: input viewed as `[N, C, H/b, b, W/b, b]`.
fn space_to_depth(cx: &mut LowerCx, id: NodeId, node: &Node, b: usize, mode: BlockMode) -> LowerResult {
    let (x, y, dims, _) = io(cx, node)?;
    let [n, c, h, w] = nchw(&dims)?;
    let view = [n, c, h / b.max(1), b, w / b.max(1), b];
    let axes = match mode {
        BlockMode::Dcr => permuted(&view, &[0, 3, 5, 1, 2, 4]),
        BlockMode::Crd => permuted(&view, &[0, 1, 3, 5, 2, 4]),
    };
    remap(cx, id, x, y, RemapOp::SpaceToDepth, axes, Vec::new())
}

/// Product of the dims before `axis` and of those after it.
fn outer_inner(dims: &[usize], axis: usize) -> (u64, u64) {
    (dims[..axis].iter().product::<usize>() as u64, dims[axis + 1..].iter().product::<usize>() as u64)
}

fn concat(cx: &mut LowerCx, id: NodeId, node: &Node, axis: i64) -> LowerResult {
    let y = node.outputs[0];
    let out = cx.info(y).shape.to_vec();
    let axis = norm_axis(axis, out.len())?;
    let (outer, inner) = outer_inner(&out, axis);
    let inputs = (0..node.inputs.len()).map(|i| cx.input(node, i)).collect::<Result<Vec<_>, _>>()?;
    if let [x] = inputs[..] {
        return view_or_copy(cx, id, y, x);
    }
    let chunks = inputs.iter().map(|&v| cx.info(v).shape.dims().get(axis).map(|&d| d as u64 * inner)).collect::<Option<Vec<_>>>().ok_or("Concat inputs differ in rank")?;
    let k = Concat { elem: elem_type(cx.info(y).dtype), outer, chunks };
    cx.push(id, Kernel::Concat(k), inputs.into_iter().map(Operand::Value).collect(), vec![Operand::Value(y)], 0);
    Ok(())
}

fn split(cx: &mut LowerCx, id: NodeId, node: &Node, axis: i64) -> LowerResult {
    let (x, _, dims, _) = io(cx, node)?;
    let axis = norm_axis(axis, dims.len())?;
    let (outer, inner) = outer_inner(&dims, axis);
    if let [y] = node.outputs[..] {
        return view_or_copy(cx, id, y, x);
    }
    // The outputs' types already hold the sizes inference resolved.
    let sizes: Vec<usize> = node.outputs.iter().map(|&o| cx.info(o).shape.dims().get(axis).copied()).collect::<Option<_>>().ok_or("Split outputs differ in rank")?;
    split_sizes(dims[axis], Some(&sizes.iter().map(|&s| s as i64).collect::<Vec<_>>()), sizes.len(), false)?;
    let k = Split { elem: elem_type(cx.info(x).dtype), outer, chunks: sizes.iter().map(|&s| s as u64 * inner).collect() };
    cx.push(id, Kernel::Split(k), vec![Operand::Value(x)], node.outputs.iter().map(|&o| Operand::Value(o)).collect(), 0);
    Ok(())
}

/// Shape and Size: the value is known now; copy it from the weights.
fn shape_value(cx: &mut LowerCx, id: NodeId, node: &Node, op: &MovementOp) -> LowerResult {
    let (_, y, dims, _) = io(cx, node)?;
    let values: Vec<i64> = match op {
        MovementOp::Shape { start, end } => {
            let (s, e) = kann_ir::ops::movement::shape_range(dims.len(), *start, *end);
            dims[s..e].iter().map(|&d| d as i64).collect()
        }
        _ => vec![dims.iter().product::<usize>() as i64],
    };
    let info = cx.info(y);
    let t = Tensor::from_i64_values(info.dtype, info.shape.clone(), &values).map_err(|e| e.to_string())?;
    let w = cx.weights_bytes(&npy::raw_le_bytes(&t));
    cx.push(id, Kernel::Copy(Copy { bytes: (values.len() * info.dtype.size()) as u64 }), vec![w], vec![Operand::Value(y)], 0);
    Ok(())
}

/// The one value broadcast over the output shape.
fn constant_of_shape(cx: &mut LowerCx, id: NodeId, node: &Node, value: &Tensor) -> LowerResult {
    let y = node.outputs[0];
    let info = cx.info(y);
    let w = cx.weights_bytes(&scalar_bytes(value, info.dtype)?);
    let axes = info.shape.dims().iter().map(|&d| RemapAxis::affine(d as u64, 0, 0)).collect();
    let k = Remap::new(elem_type(info.dtype), RemapOp::Fill, axes, Vec::new());
    cx.push(id, Kernel::Remap(k), vec![w], vec![Operand::Value(y)], 0);
    Ok(())
}

fn center_crop_pad(cx: &mut LowerCx, id: NodeId, node: &Node, axes: Option<&[i64]>) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let shape = const_i64s(cx, node, 1, "shape")?.ok_or("input 'shape' is missing")?;
    let (out, offsets) = center_crop_offsets(&dims, &shape, axes)?;
    let axes = (0..dims.len())
        .map(|a| {
            let src = |k: i64| k + offsets[a];
            RemapAxis::table((0..out[a] as i64).map(|k| if (0..dims[a] as i64).contains(&src(k)) { src(k) * st[a] } else { FILL }).collect())
        })
        .collect();
    let fill = vec![0; cx.info(y).dtype.size()];
    remap(cx, id, x, y, RemapOp::Pad, axes, fill)
}

/// Compress with a constant condition: a table of the kept positions.
fn compress(cx: &mut LowerCx, id: NodeId, node: &Node, axis: Option<i64>) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let c = cx.input(node, 1)?;
    let cond = cx.constant(c).ok_or("input 'condition' must be a constant")?.to_bool_vec();
    let kept = |len: usize| (0..len.min(cond.len())).filter(|&i| cond[i]).map(|i| i as i64);
    let axes = match axis {
        None => vec![RemapAxis::table(kept(dims.iter().product()).collect())],
        Some(a) => {
            let a = norm_axis(a, dims.len())?;
            (0..dims.len()).map(|i| if i == a { RemapAxis::table(kept(dims[a]).map(|k| k * st[a]).collect()) } else { RemapAxis::affine(dims[i] as u64, 0, st[i]) }).collect()
        }
    };
    remap(cx, id, x, y, RemapOp::Gather, axes, Vec::new())
}

/// Index `i` (negative counts from the end) checked against an axis of size `d`.
fn norm_index(i: i64, d: usize) -> Result<i64, String> {
    let j = if i < 0 { i + d as i64 } else { i };
    if (0..d as i64).contains(&j) {
        Ok(j)
    } else {
        Err(format!("index {i} is out of range for an axis of size {d}"))
    }
}

/// GatherElements with constant indices: one table over every output element.
fn gather_elements(cx: &mut LowerCx, id: NodeId, node: &Node, axis: i64) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let axis = norm_axis(axis, dims.len())?;
    let iv = cx.input(node, 1)?;
    let idx = cx.constant(iv).ok_or("input 'indices' must be a constant")?;
    let (values, idims) = (idx.to_i64_vec(), idx.dims().to_vec());
    let ist = strides(&idims);
    let mut table = Vec::with_capacity(values.len());
    for (f, &v) in values.iter().enumerate() {
        let mut off = 0;
        for a in 0..idims.len() {
            let c = (f as i64 / ist[a]) % idims[a] as i64;
            off += if a == axis { norm_index(v, dims[a])? } else { c } * st[a];
        }
        table.push(off);
    }
    remap(cx, id, x, y, RemapOp::Gather, vec![RemapAxis::table(table)], Vec::new())
}

/// GatherND with constant indices: a table of slice starts, then the slice.
fn gather_nd(cx: &mut LowerCx, id: NodeId, node: &Node, batch_dims: usize) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let iv = cx.input(node, 1)?;
    let idx = cx.constant(iv).ok_or("input 'indices' must be a constant")?;
    let g = gather_nd_geometry(&dims, idx.dims(), batch_dims)?;
    let values = idx.to_i64_vec();
    let batch_size: i64 = dims[batch_dims..].iter().product::<usize>() as i64;
    let mut table = Vec::with_capacity(g.batch * g.lookups);
    for b in 0..g.batch {
        for l in 0..g.lookups {
            let tuple = &values[(b * g.lookups + l) * g.depth..][..g.depth];
            let mut off = b as i64 * batch_size;
            for (k, &i) in tuple.iter().enumerate() {
                off += norm_index(i, dims[batch_dims + k])? * st[batch_dims + k];
            }
            table.push(off);
        }
    }
    let axes = vec![RemapAxis::table(table), RemapAxis::affine(g.slice as u64, 0, 1)];
    remap(cx, id, x, y, RemapOp::Gather, axes, Vec::new())
}

/// Trilu: the batch axes, then one table over the matrix (kept or zero).
fn trilu(cx: &mut LowerCx, id: NodeId, node: &Node, upper: bool) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let k = const_i64s(cx, node, 1, "k")?.and_then(|v| v.first().copied()).unwrap_or(0);
    let r = dims.len();
    let (m, n) = (dims[r - 2] as i64, dims[r - 1] as i64);
    let mut axes: Vec<RemapAxis> = (0..r - 2).map(|a| RemapAxis::affine(dims[a] as u64, 0, st[a])).collect();
    let keep = |i: i64, j: i64| if upper { j - i >= k } else { j - i <= k };
    axes.push(RemapAxis::table((0..m * n).map(|f| if keep(f / n, f % n) { f } else { FILL }).collect()));
    let fill = vec![0; cx.info(y).dtype.size()];
    remap(cx, id, x, y, RemapOp::Pad, axes, fill)
}

/// ReverseSequence with constant lengths: one table over the batch and
/// time axes (the first two), then the rest.
fn reverse_sequence(cx: &mut LowerCx, id: NodeId, node: &Node, batch_axis: usize, time_axis: usize) -> LowerResult {
    let (x, y, dims, st) = io(cx, node)?;
    let lens = const_i64s(cx, node, 1, "sequence_lens")?.ok_or("input 'sequence_lens' is missing")?;
    let steps = dims[time_axis] as i64;
    let mut table = Vec::with_capacity(dims[0] * dims[1]);
    for i in 0..dims[0] as i64 {
        for j in 0..dims[1] as i64 {
            let (b, t) = if batch_axis == 0 { (i, j) } else { (j, i) };
            let len = *lens.get(b as usize).ok_or("sequence_lens is shorter than the batch")?;
            if !(0..=steps).contains(&len) {
                return Err(format!("sequence length {len} is outside 0..={steps}"));
            }
            let src_t = if t < len { len - 1 - t } else { t };
            table.push(b * st[batch_axis] + src_t * st[time_axis]);
        }
    }
    let mut axes = vec![RemapAxis::table(table)];
    axes.extend((2..dims.len()).map(|a| RemapAxis::affine(dims[a] as u64, 0, st[a])));
    remap(cx, id, x, y, RemapOp::Gather, axes, Vec::new())
}

/// EyeLike: ones on the k-th diagonal, read from a two-element [0, 1].
fn eye_like(cx: &mut LowerCx, id: NodeId, node: &Node, k: i64) -> LowerResult {
    let y = node.outputs[0];
    let info = cx.info(y);
    let [m, n] = *info.shape.dims() else { return Err(format!("EyeLike needs a 2-D output, found {}", info.shape)) };
    let values = Tensor::from_i64_values(info.dtype, Shape::from([2]), &[0, 1]).map_err(|e| e.to_string())?;
    let elem = elem_type(info.dtype);
    let w = cx.weights_bytes(&npy::raw_le_bytes(&values));
    let table = (0..(m * n) as i64).map(|f| i64::from(f % n as i64 - f / n as i64 == k)).collect();
    let k = Remap::new(elem, RemapOp::Fill, vec![RemapAxis::table(table)], Vec::new());
    cx.push(id, Kernel::Remap(k), vec![w], vec![Operand::Value(y)], 0);
    Ok(())
}

#[cfg(test)]
pub(super) mod tests;
