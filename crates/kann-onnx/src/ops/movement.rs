//! Shape and data-movement ops. Legacy attributes that later opsets turned
//! into inputs (Squeeze's axes, Split's split, Slice's starts/ends/axes,
//! Pad's pads/value) become constant inputs here, so the IR sees one form.

use crate::node::NodeCx;
use crate::registry::{Imported, Registry, MAX_OPSET};
use crate::tensor::dtype_from_onnx;
use crate::ImportError;
use kann_ir::ops::movement::{shape_range, BlockMode, MovementOp, PadMode, Reduction};
use kann_ir::Op;
use kann_tensor::{DType, Shape, Tensor};

const ALL: &str = "all";

pub(super) fn register(r: &mut Registry) {
    r.add("Reshape", reshape, ALL, "non-constant shape");
    r.add("Flatten", flatten, ALL, "");
    r.add("Transpose", transpose, ALL, "");
    r.add("Squeeze", |cx| squeeze_like(cx, MovementOp::Squeeze), ALL, "non-constant axes");
    r.add("Unsqueeze", |cx| squeeze_like(cx, MovementOp::Unsqueeze), ALL, "non-constant axes");
    r.add("Concat", concat, ALL, "");
    r.add("Split", split, ALL, "non-constant split");
    r.add("Slice", slice, ALL, "non-constant starts/ends/axes/steps");
    r.add("Gather", |cx| axis_op(cx, 0, |axis| MovementOp::Gather { axis }), ALL, "");
    r.add("Shape", shape, ALL, "");
    r.add("Size", size, ALL, "");
    r.add_range("ConstantOfShape", 9, MAX_OPSET, constant_of_shape, ALL, "non-constant shape");
    r.add_range("Expand", 8, MAX_OPSET, |_| Ok(movement(MovementOp::Expand)), ALL, "non-constant shape");
    r.add("Tile", |_| Ok(movement(MovementOp::Tile)), ALL, "non-constant repeats");
    r.add("Pad", pad, ALL, "non-constant pads/axes; mode=wrap before opset 19");
    r.add("DepthToSpace", |cx| block(cx, true), ALL, "");
    r.add("SpaceToDepth", |cx| block(cx, false), ALL, "");
    r.add_range("GatherElements", 11, MAX_OPSET, |cx| axis_op(cx, 0, |axis| MovementOp::GatherElements { axis }), ALL, "");
    r.add_range("GatherND", 11, MAX_OPSET, gather_nd, ALL, "");
    r.add_range("ScatterND", 11, MAX_OPSET, scatter_nd, ALL, "");
    r.add_range("ScatterElements", 11, MAX_OPSET, scatter_elements, ALL, "");
    r.add_range("Scatter", 9, 10, scatter_elements, ALL, "");
    r.add_range("Range", 11, MAX_OPSET, |_| Ok(movement(MovementOp::Range)), "f32 f16 bf16 f64 i8 u8 i32 i64", "non-constant inputs");
    r.add_range("OneHot", 9, MAX_OPSET, |cx| axis_op(cx, -1, |axis| MovementOp::OneHot { axis }), ALL, "non-constant depth");
    r.add_range("Trilu", 14, MAX_OPSET, trilu, ALL, "");
    r.add_range("EyeLike", 9, MAX_OPSET, eye_like, ALL, "");
    r.add_range("ReverseSequence", 10, MAX_OPSET, reverse_sequence, ALL, "");
    r.add_range("Compress", 9, MAX_OPSET, compress, ALL, "non-constant condition");
    r.add_range("Col2Im", 18, MAX_OPSET, col2im, "f32 f16 bf16 f64 i8 u8 i32 i64", "non-constant image_shape/block_shape");
    r.add_range("TensorScatter", 24, MAX_OPSET, tensor_scatter, ALL, "");
    r.add_range("Unique", 11, MAX_OPSET, unique, ALL, "non-constant input");
    r.add_range("CenterCropPad", 18, MAX_OPSET, center_crop_pad, ALL, "non-constant shape");
}

fn movement(op: MovementOp) -> Imported {
    Op::Movement(op).into()
}

/// An op whose only attribute is `axis`.
fn axis_op(cx: &mut NodeCx, default: i64, make: fn(i64) -> MovementOp) -> Result<Imported, ImportError> {
    Ok(movement(make(cx.attr_i("axis", default)?)))
}

fn reshape(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let allowzero = match cx.attr_i("allowzero", 0)? {
        0 => false,
        1 => true,
        v => return Err(cx.unsupported("allowzero", v)),
    };
    Ok(movement(MovementOp::Reshape { allowzero }))
}

fn flatten(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    Ok(movement(MovementOp::Flatten { axis: cx.attr_i("axis", 1)? }))
}

fn transpose(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    Ok(movement(MovementOp::Transpose { perm: cx.attr_ints("perm")? }))
}

/// Squeeze / Unsqueeze: `axes` is an attribute before opset 13, input 1 after.
fn squeeze_like(cx: &mut NodeCx, op: MovementOp) -> Result<Imported, ImportError> {
    if cx.opset < 13 {
        if let Some(axes) = cx.attr_ints("axes")? {
            cx.set_const_input(1, Tensor::vec_i64(axes), "axes");
        }
    }
    Ok(movement(op))
}

fn concat(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let axis = cx.attr_i_opt("axis")?.ok_or_else(|| cx.error("Concat needs the 'axis' attribute"))?;
    Ok(movement(MovementOp::Concat { axis }))
}

/// Split: `split` is an attribute before opset 13, input 1 after; opset 18
/// adds `num_outputs` (chunks of equal size, the last possibly smaller).
fn split(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let axis = cx.attr_i("axis", 0)?;
    if cx.opset < 13 {
        if let Some(split) = cx.attr_ints("split")? {
            cx.set_const_input(1, Tensor::vec_i64(split), "split");
        }
    }
    let outputs = cx.n_outputs();
    let mut uneven = false;
    if cx.opset >= 18 {
        if let Some(n) = cx.attr_i_opt("num_outputs")? {
            if n != outputs as i64 {
                return Err(cx.error(format!("num_outputs is {n} but the node has {outputs} outputs")));
            }
            uneven = true;
        }
    }
    Ok(movement(MovementOp::Split { axis, outputs, uneven }))
}

/// Slice: `starts`, `ends`, `axes` are attributes before opset 10.
fn slice(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    if cx.opset < 10 {
        let starts = cx.attr_ints("starts")?.ok_or_else(|| cx.error("Slice needs 'starts'"))?;
        let ends = cx.attr_ints("ends")?.ok_or_else(|| cx.error("Slice needs 'ends'"))?;
        let axes = cx.attr_ints("axes")?;
        cx.inputs.truncate(1);
        cx.set_const_input(1, Tensor::vec_i64(starts), "starts");
        cx.set_const_input(2, Tensor::vec_i64(ends), "ends");
        if let Some(axes) = axes {
            cx.set_const_input(3, Tensor::vec_i64(axes), "axes");
        }
    }
    Ok(movement(MovementOp::Slice))
}

/// Shape (with `start`/`end` from opset 15) and Size. Shapes are static,
/// so both become constants: what reads them (Reshape, Expand…) then sees
/// constant inputs.
fn shape(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let (start, end) = if cx.opset >= 15 { (cx.attr_i("start", 0)?, cx.attr_i_opt("end")?) } else { (0, None) };
    match cx.input_info(0) {
        Some(info) => {
            let (s, e) = shape_range(info.rank(), start, end);
            Ok(Imported::Constant(Tensor::vec_i64(info.shape.dims()[s..e].iter().map(|&d| d as i64).collect())))
        }
        None => Ok(movement(MovementOp::Shape { start, end })),
    }
}

fn size(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    match cx.input_info(0) {
        Some(info) => Ok(Imported::Constant(Tensor::scalar_i64(info.numel() as i64))),
        None => Ok(movement(MovementOp::Size)),
    }
}

fn constant_of_shape(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let value = cx.attr_t("value")?.unwrap_or_else(|| Tensor::scalar_f32(0.0));
    if value.len() != 1 {
        return Err(cx.error(format!("'value' must hold one element, found shape {}", value.shape())));
    }
    let value = value.reshape(Shape::from([1])).map_err(|e| cx.error(e))?;
    Ok(movement(MovementOp::ConstantOfShape { value }))
}

/// Pad: before opset 11 `pads` and `value` are attributes.
fn pad(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let mode = match cx.attr_s("mode")?.as_deref().unwrap_or("constant") {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" if cx.opset >= 19 => PadMode::Wrap,
        m => return Err(cx.unsupported("mode", m)),
    };
    if cx.opset < 11 {
        let pads = cx.attr_ints("pads")?.ok_or_else(|| cx.error("Pad needs 'pads'"))?;
        let value = cx.attr_f("value", 0.0)?;
        let dtype = cx.input_info(0).map(|i| i.dtype).ok_or_else(|| cx.error("Pad needs its data input"))?;
        let value = Tensor::from_f64(dtype, Shape::scalar(), &[value as f64]).map_err(|e| cx.error(e))?;
        cx.set_const_input(1, Tensor::vec_i64(pads), "pads");
        cx.set_const_input(2, value, "value");
    }
    Ok(movement(MovementOp::Pad { mode }))
}

/// DepthToSpace (`to_space`) / SpaceToDepth.
fn block(cx: &mut NodeCx, to_space: bool) -> Result<Imported, ImportError> {
    let b = cx.attr_i_opt("blocksize")?.ok_or_else(|| cx.error("'blocksize' is required"))?;
    let blocksize = usize::try_from(b).ok().filter(|&b| b > 0).ok_or_else(|| cx.unsupported("blocksize", b))?;
    let mode = match cx.attr_s("mode")?.as_deref().unwrap_or("DCR") {
        "DCR" => BlockMode::Dcr,
        "CRD" => BlockMode::Crd,
        m => return Err(cx.unsupported("mode", m)),
    };
    Ok(movement(if to_space { MovementOp::DepthToSpace { blocksize, mode } } else { MovementOp::SpaceToDepth { blocksize, mode } }))
}

fn gather_nd(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let b = cx.attr_i("batch_dims", 0)?;
    let batch_dims = usize::try_from(b).map_err(|_| cx.unsupported("batch_dims", b))?;
    Ok(movement(MovementOp::GatherNd { batch_dims }))
}

fn reduction(cx: &NodeCx) -> Result<Reduction, ImportError> {
    Ok(match cx.attr_s("reduction")?.as_deref().unwrap_or("none") {
        "none" => Reduction::None,
        "add" => Reduction::Add,
        "mul" => Reduction::Mul,
        "max" => Reduction::Max,
        "min" => Reduction::Min,
        r => return Err(cx.unsupported("reduction", r)),
    })
}

fn scatter_nd(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    Ok(movement(MovementOp::ScatterNd { reduction: reduction(cx)? }))
}

/// ScatterElements, and the deprecated Scatter (opsets 9–10) it replaced.
fn scatter_elements(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let axis = cx.attr_i("axis", 0)?;
    Ok(movement(MovementOp::ScatterElements { axis, reduction: reduction(cx)? }))
}

fn trilu(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    Ok(movement(MovementOp::Trilu { upper: cx.attr_i("upper", 1)? != 0 }))
}

fn eye_like(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let dtype: Option<DType> = match cx.attr_i_opt("dtype")? {
        Some(code) => {
            let code = i32::try_from(code).map_err(|_| cx.unsupported("dtype", code))?;
            Some(dtype_from_onnx(code, "EyeLike 'dtype'")?)
        }
        None => None,
    };
    Ok(movement(MovementOp::EyeLike { dtype, k: cx.attr_i("k", 0)? }))
}

fn reverse_sequence(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let axis = |name: &str, default: i64| -> Result<usize, ImportError> {
        match cx.attr_i(name, default)? {
            0 => Ok(0),
            1 => Ok(1),
            v => Err(cx.unsupported(name, v)),
        }
    };
    let (batch_axis, time_axis) = (axis("batch_axis", 1)?, axis("time_axis", 0)?);
    if batch_axis == time_axis {
        return Err(cx.error("batch_axis and time_axis must differ"));
    }
    Ok(movement(MovementOp::ReverseSequence { batch_axis, time_axis }))
}

fn compress(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    Ok(movement(MovementOp::Compress { axis: cx.attr_i_opt("axis")? }))
}

fn center_crop_pad(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    Ok(movement(MovementOp::CenterCropPad { axes: cx.attr_ints("axes")? }))
}

fn col2im(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let dilations = cx.attr_ints("dilations")?;
    let pads = cx.attr_ints("pads")?;
    let strides = cx.attr_ints("strides")?;
    Ok(movement(MovementOp::Col2Im { dilations, pads, strides }))
}

/// TensorScatter-24: `axis` (default -2) and `mode` linear / circular.
fn tensor_scatter(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let axis = cx.attr_i("axis", -2)?;
    let circular = match cx.attr_s("mode")?.as_deref().unwrap_or("linear") {
        "linear" => false,
        "circular" => true,
        other => return Err(cx.unsupported("mode", other)),
    };
    Ok(movement(MovementOp::TensorScatter { axis, circular }))
}

/// Unique: optional `axis` (flattened input without it), `sorted` (default 1).
fn unique(cx: &mut NodeCx) -> Result<Imported, ImportError> {
    let axis = cx.attr_i_opt("axis")?;
    let sorted = cx.attr_i("sorted", 1)? != 0;
    Ok(movement(MovementOp::Unique { axis, sorted }))
}

#[cfg(test)]
mod tests {
    use crate::proto::{attribute_type as at, data_type as dt, tensor_shape_proto::dimension::Value as Dim, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto};
    use crate::{import_model, ImportOptions};

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: at::INTS, ints: v.to_vec(), ..Default::default() }
    }

    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: at::INT, i: v, ..Default::default() }
    }

    fn float_input(name: &str, dims: &[i64]) -> ValueInfoProto {
        let dim = dims.iter().map(|&d| crate::proto::tensor_shape_proto::Dimension { value: Some(Dim::DimValue(d)), denotation: String::new() }).collect();
        let t = type_proto::Tensor { elem_type: dt::FLOAT, shape: Some(TensorShapeProto { dim }) };
        ValueInfoProto { name: name.into(), r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(t)), denotation: String::new() }), doc_string: String::new() }
    }

    /// Imports a one-node model on a float input `x` of `dims` and returns
    /// the shapes of the node's outputs.
    fn shapes(op: &str, opset: i64, dims: &[i64], attrs: Vec<AttributeProto>, outputs: usize) -> Result<Vec<Vec<usize>>, String> {
        let outs: Vec<String> = (0..outputs).map(|i| format!("y{i}")).collect();
        let node = NodeProto { input: vec!["x".into()], output: outs.clone(), op_type: op.into(), attribute: attrs, ..Default::default() };
        let graph = GraphProto {
            node: vec![node],
            input: vec![float_input("x", dims)],
            output: outs.iter().map(|o| ValueInfoProto { name: o.clone(), ..Default::default() }).collect(),
            ..Default::default()
        };
        let model = ModelProto { ir_version: 7, opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }], graph: Some(graph), ..Default::default() };
        let m = import_model(&model, None, &ImportOptions::default(), None).map_err(|e| e.to_string())?;
        Ok(m.graph.outputs.iter().map(|&o| m.graph.value(o).info.shape.to_vec()).collect())
    }

    #[test]
    fn legacy_attributes_become_inputs() {
        assert_eq!(shapes("Squeeze", 11, &[1, 3, 1], vec![ints("axes", &[-1])], 1).unwrap(), vec![vec![1, 3]]);
        assert_eq!(shapes("Unsqueeze", 11, &[3], vec![ints("axes", &[0, 2])], 1).unwrap(), vec![vec![1, 3, 1]]);
        assert_eq!(shapes("Split", 11, &[6, 2], vec![ints("split", &[1, 5])], 2).unwrap(), vec![vec![1, 2], vec![5, 2]]);
        assert_eq!(shapes("Slice", 9, &[5, 4], vec![ints("starts", &[1, -3]), ints("ends", &[100, -1]), ints("axes", &[0, 1])], 1).unwrap(), vec![vec![4, 2]]);
        assert_eq!(shapes("Pad", 10, &[2, 3], vec![ints("pads", &[1, 0, 1, -1])], 1).unwrap(), vec![vec![4, 2]]);
    }

    #[test]
    fn split_counts_outputs() {
        assert_eq!(shapes("Split", 13, &[6], vec![], 3).unwrap(), vec![vec![2]; 3]);
        assert_eq!(shapes("Split", 18, &[7], vec![int("num_outputs", 3)], 3).unwrap(), vec![vec![3], vec![3], vec![1]]);
        assert!(shapes("Split", 13, &[7], vec![], 3).is_err());
    }

    #[test]
    fn shape_is_a_constant_and_unknown_values_are_refused() {
        assert_eq!(shapes("Shape", 15, &[2, 3, 4], vec![int("start", -2)], 1).unwrap(), vec![vec![2]]);
        let e = shapes("Pad", 18, &[2], vec![AttributeProto { name: "mode".into(), r#type: at::STRING, s: b"wrap".to_vec(), ..Default::default() }], 1).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
    }
}
