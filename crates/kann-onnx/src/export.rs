//! Writes a kann IR [`Graph`] back out as an ONNX model (`optimized-model.onnx`):
//! graph inputs and outputs with their types and shapes, constants as
//! initializers, and each op in its ONNX form (opset [`OPSET`], IR version
//! [`IR_VERSION`]) with its attributes; every computed value's type is in
//! the graph's `value_info`.
//!
//! [`Op::Fused`] expands back into standard nodes: the base op keeps the
//! node's name, the residual Add is `<node>/residual` and the activation
//! `<node>/act`, so the file runs anywhere and Netron shows the fusion. Ops
//! ONNX cannot express in this opset (kann-internal forms such as SwiGLU,
//! or ops the exporter does not write yet) go into the `ai.kann` domain
//! under their name, with the op's full description as the node's
//! doc string: the file still shows them, but only kann could run it.

use crate::proto::{
    attribute_type as at, tensor_shape_proto::{dimension, Dimension}, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::tensor::{dtype_to_onnx, tensor_to_proto};
use kann_ir::ops::elementwise::{Activation, BinaryKind, ElementwiseOp};
use kann_ir::ops::fused::{Fused, FusedActivation};
use kann_ir::ops::movement::{BlockMode, MovementOp, PadMode, Reduction};
use kann_ir::ops::nn::{AutoPad, NnOp, PoolKind, SoftmaxKind, Window};
use kann_ir::ops::reduce::ReduceOp;
use kann_ir::ops::resample::{AspectPolicy, CoordMode, NearestMode, ResampleOp, Resize, ResizeMode};
use kann_ir::{Graph, Node, Op, TensorInfo, ValueId};
use kann_tensor::{Shape, Tensor};
use prost::Message;
use std::collections::HashSet;

/// The `ai.onnx` opset the exported model imports.
pub const OPSET: i64 = 21;
/// The ONNX IR version of the exported model.
pub const IR_VERSION: i64 = 10;
/// Domain of the ops exported under their kann name.
pub const KANN_DOMAIN: &str = "ai.kann";

/// Why a graph could not be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot export {what}: {reason}")]
pub struct ExportError {
    /// The node or value concerned.
    pub what: String,
    pub reason: String,
}

/// Encodes `g` as a serialized ONNX `ModelProto`.
pub fn export_model(g: &Graph) -> Result<Vec<u8>, ExportError> {
    Ok(to_model_proto(g)?.encode_to_vec())
}

/// `g` as an ONNX `ModelProto`.
pub fn to_model_proto(g: &Graph) -> Result<ModelProto, ExportError> {
    let mut ex = Exporter::new(g);
    for &v in &g.inputs {
        let info = value_info(&ex.names[v.index()], &g.value(v).info);
        ex.graph.input.push(info);
    }
    ex.add_initializers();
    for node in &g.nodes {
        ex.node(node)?;
    }
    ex.add_outputs()?;
    ex.add_value_infos();
    let mut opset_import = vec![OperatorSetIdProto { domain: String::new(), version: OPSET }];
    if ex.used_kann_domain {
        opset_import.push(OperatorSetIdProto { domain: KANN_DOMAIN.into(), version: 1 });
    }
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import,
        producer_name: "kann".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(ex.graph),
        ..ModelProto::default()
    })
}

/// A `ValueInfoProto` of a tensor with a static shape.
fn value_info(name: &str, info: &TensorInfo) -> ValueInfoProto {
    let dim = info.shape.dims().iter().map(|&d| Dimension { value: Some(dimension::Value::DimValue(d as i64)), denotation: String::new() }).collect();
    let tensor = type_proto::Tensor { elem_type: dtype_to_onnx(info.dtype), shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: name.into(), r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), denotation: String::new() }), doc_string: String::new() }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: at::INT, i, ..AttributeProto::default() }
}

fn ints(name: &str, v: impl IntoIterator<Item = i64>) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: at::INTS, ints: v.into_iter().collect(), ..AttributeProto::default() }
}

fn float(name: &str, f: f64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: at::FLOAT, f: f as f32, ..AttributeProto::default() }
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: at::STRING, s: s.as_bytes().to_vec(), ..AttributeProto::default() }
}

fn usizes(name: &str, v: &[usize]) -> AttributeProto {
    ints(name, v.iter().map(|&x| x as i64))
}

/// The window attributes shared by Conv, ConvTranspose and the pools
/// (defaults left out).
fn window_attrs(w: &Window, attrs: &mut Vec<AttributeProto>) {
    let list = [("kernel_shape", &w.kernel_shape), ("strides", &w.strides), ("dilations", &w.dilations), ("pads", &w.pads)];
    for (name, v) in list {
        if !v.is_empty() {
            attrs.push(usizes(name, v));
        }
    }
    let auto = match w.auto_pad {
        AutoPad::NotSet => None,
        AutoPad::SameUpper => Some("SAME_UPPER"),
        AutoPad::SameLower => Some("SAME_LOWER"),
        AutoPad::Valid => Some("VALID"),
    };
    if let Some(a) = auto {
        attrs.push(string("auto_pad", a));
    }
}

/// One ONNX node: op type, domain and attributes.
struct Spec {
    op_type: String,
    domain: &'static str,
    attrs: Vec<AttributeProto>,
    doc: String,
}

impl Spec {
    fn onnx(op_type: &str, attrs: Vec<AttributeProto>) -> Spec {
        Spec { op_type: op_type.into(), domain: "", attrs, doc: String::new() }
    }

    /// An op under its kann name in the `ai.kann` domain.
    fn kann(op: &Op) -> Spec {
        Spec { op_type: op.name().into(), domain: KANN_DOMAIN, attrs: vec![], doc: format!("kann op {op:?}") }
    }
}

/// The ONNX form of `op`, or `None` when it needs more than one node
/// (handled by the caller) or has no ONNX form here.
fn spec(op: &Op) -> Option<Spec> {
    let name = op.name();
    let s = |attrs| Some(Spec::onnx(name, attrs));
    match op {
        Op::Elementwise(e) => elementwise(e, name),
        Op::Nn(n) => nn(n, name),
        Op::Movement(m) => movement(m, name),
        Op::Reduce(ReduceOp::Reduce(r)) => s(vec![int("keepdims", r.keepdims.into()), int("noop_with_empty_axes", r.noop_with_empty_axes.into())]),
        Op::Reduce(ReduceOp::Arg(a)) => s(vec![int("axis", a.axis), int("keepdims", a.keepdims.into()), int("select_last_index", a.select_last_index.into())]),
        Op::Reduce(ReduceOp::TopK(t)) => s(vec![int("axis", t.axis), int("largest", t.largest.into()), int("sorted", t.sorted.into())]),
        Op::Reduce(ReduceOp::CumSum(c)) => s(vec![int("exclusive", c.exclusive.into()), int("reverse", c.reverse.into())]),
        Op::Reduce(ReduceOp::NonZero) => s(vec![]),
        Op::Resample(ResampleOp::Resize(r)) => resize(r),
        Op::Reduce(_) | Op::Resample(_) | Op::Fused(_) => None,
    }
}

/// Resize's attributes (`tf_half_pixel_for_nn` left opset 11 behind: none).
fn resize(r: &Resize) -> Option<Spec> {
    let mode = match r.mode {
        ResizeMode::Nearest => "nearest",
        ResizeMode::Linear => "linear",
        ResizeMode::Cubic => "cubic",
    };
    let coord = match r.coord {
        CoordMode::HalfPixel => "half_pixel",
        CoordMode::HalfPixelSymmetric => "half_pixel_symmetric",
        CoordMode::PytorchHalfPixel => "pytorch_half_pixel",
        CoordMode::AlignCorners => "align_corners",
        CoordMode::Asymmetric => "asymmetric",
        CoordMode::TfCropAndResize => "tf_crop_and_resize",
        CoordMode::TfHalfPixelForNn => return None,
    };
    let nearest = match r.nearest {
        NearestMode::RoundPreferFloor => "round_prefer_floor",
        NearestMode::RoundPreferCeil => "round_prefer_ceil",
        NearestMode::Floor => "floor",
        NearestMode::Ceil => "ceil",
    };
    let policy = match r.keep_aspect_ratio {
        AspectPolicy::Stretch => "stretch",
        AspectPolicy::NotLarger => "not_larger",
        AspectPolicy::NotSmaller => "not_smaller",
    };
    let mut attrs = vec![
        string("mode", mode),
        string("coordinate_transformation_mode", coord),
        string("nearest_mode", nearest),
        float("cubic_coeff_a", r.cubic_coeff_a),
        int("exclude_outside", r.exclude_outside.into()),
        float("extrapolation_value", r.extrapolation_value),
        string("keep_aspect_ratio_policy", policy),
        int("antialias", r.antialias.into()),
    ];
    if let Some(axes) = &r.axes {
        attrs.push(ints("axes", axes.iter().copied()));
    }
    Some(Spec::onnx("Resize", attrs))
}

fn elementwise(e: &ElementwiseOp, name: &str) -> Option<Spec> {
    let s = |attrs| Some(Spec::onnx(name, attrs));
    match e {
        ElementwiseOp::Unary(_) | ElementwiseOp::Variadic(_) | ElementwiseOp::Where | ElementwiseOp::Clip | ElementwiseOp::PRelu | ElementwiseOp::CastLike | ElementwiseOp::Dropout(_) => s(vec![]),
        ElementwiseOp::Binary(b) => match b.kind {
            BinaryKind::Mod => s(vec![int("fmod", 0)]),
            BinaryKind::Fmod => s(vec![int("fmod", 1)]),
            BinaryKind::ShiftLeft => s(vec![string("direction", "LEFT")]),
            BinaryKind::ShiftRight => s(vec![string("direction", "RIGHT")]),
            _ => s(vec![]),
        },
        ElementwiseOp::Activation(a) => match *a {
            Activation::LeakyRelu { alpha } | Activation::Elu { alpha } | Activation::Celu { alpha } | Activation::ThresholdedRelu { alpha } => s(vec![float("alpha", alpha)]),
            Activation::Selu { alpha, gamma } => s(vec![float("alpha", alpha), float("gamma", gamma)]),
            Activation::HardSigmoid { alpha, beta } => s(vec![float("alpha", alpha), float("beta", beta)]),
            Activation::Shrink { bias, lambd } => s(vec![float("bias", bias), float("lambd", lambd)]),
            Activation::Gelu { tanh } => s(vec![string("approximate", if tanh { "tanh" } else { "none" })]),
            // Swish joined ai.onnx after this opset: expanded by the caller.
            Activation::Swish { .. } => None,
        },
        ElementwiseOp::IsInf(i) => s(vec![int("detect_negative", i.detect_negative.into()), int("detect_positive", i.detect_positive.into())]),
        ElementwiseOp::Cast(c) => s(vec![int("to", dtype_to_onnx(c.to).into())]),
        ElementwiseOp::SwiGlu { .. } => None,
    }
}

fn nn(n: &NnOp, name: &str) -> Option<Spec> {
    let s = |attrs| Some(Spec::onnx(name, attrs));
    match n {
        NnOp::Conv(c) => {
            let mut attrs = vec![int("group", c.attrs.group as i64)];
            window_attrs(&c.attrs.window, &mut attrs);
            s(attrs)
        }
        NnOp::ConvTranspose(c) => {
            let mut attrs = vec![int("group", c.group as i64)];
            window_attrs(&c.window, &mut attrs);
            if !c.output_padding.is_empty() {
                attrs.push(usizes("output_padding", &c.output_padding));
            }
            if !c.output_shape.is_empty() {
                attrs.push(usizes("output_shape", &c.output_shape));
            }
            s(attrs)
        }
        NnOp::Gemm(g) => s(vec![float("alpha", g.alpha), float("beta", g.beta), int("transA", g.trans_a.into()), int("transB", g.trans_b.into())]),
        NnOp::MatMul | NnOp::MatMulInteger | NnOp::QLinearMatMul | NnOp::DynamicQuantizeLinear | NnOp::Det => s(vec![]),
        NnOp::ConvInteger(c) | NnOp::QLinearConv(c) => {
            let mut attrs = vec![int("group", c.group as i64)];
            window_attrs(&c.window, &mut attrs);
            s(attrs)
        }
        NnOp::Einsum(e) => s(vec![string("equation", &e.equation)]),
        // `precision` joined ai.onnx after this opset.
        NnOp::QuantizeLinear(q) if q.precision.is_none() => s(std::iter::once(int("axis", q.axis)).chain(q.output_dtype.map(|d| int("output_dtype", dtype_to_onnx(d).into()))).collect()),
        // Dequantize's `output_dtype` joined ai.onnx after this opset.
        NnOp::DequantizeLinear(d) if d.output_dtype.is_none() => s(vec![int("axis", d.axis)]),
        NnOp::BatchNorm(b) => s(vec![float("epsilon", b.epsilon)]),
        NnOp::InstanceNorm(i) => s(vec![float("epsilon", i.epsilon)]),
        // Opset 18's per-group scale and bias have no opset-21 form.
        NnOp::GroupNorm(g) if !g.per_group_affine => s(vec![int("num_groups", g.num_groups as i64), float("epsilon", g.epsilon)]),
        NnOp::LpNorm(l) => s(vec![int("axis", l.axis), int("p", l.p.into())]),
        NnOp::MeanVarianceNorm(m) => s(vec![ints("axes", m.axes.iter().copied())]),
        NnOp::LayerNorm(l) => s(vec![int("axis", l.axis), float("epsilon", l.epsilon), int("stash_type", dtype_to_onnx(l.stash).into())]),
        NnOp::Lrn(l) => s(vec![int("size", l.size as i64), float("alpha", l.alpha), float("beta", l.beta), float("bias", l.bias)]),
        NnOp::Pool(p) => {
            let mut attrs = Vec::new();
            window_attrs(&p.window, &mut attrs);
            if p.window.ceil_mode {
                attrs.push(int("ceil_mode", 1));
            }
            match p.kind {
                PoolKind::Max if p.column_major_indices => attrs.push(int("storage_order", 1)),
                PoolKind::Average { count_include_pad: true } => attrs.push(int("count_include_pad", 1)),
                PoolKind::Lp { p } if p.fract() == 0.0 => attrs.push(int("p", p as i64)),
                PoolKind::Lp { .. } => return None,
                _ => {}
            }
            s(attrs)
        }
        NnOp::GlobalPool(g) => match g.kind {
            PoolKind::Lp { p } if p.fract() == 0.0 => s(vec![int("p", p as i64)]),
            PoolKind::Lp { .. } => None,
            _ => s(vec![]),
        },
        // A flattening (pre-13) Softmax is expanded by the caller.
        NnOp::Softmax(sm) if !sm.flatten => s(vec![int("axis", sm.axis)]),
        _ => None,
    }
}

fn reduction_name(r: Reduction) -> &'static str {
    match r {
        Reduction::None => "none",
        Reduction::Add => "add",
        Reduction::Mul => "mul",
        Reduction::Max => "max",
        Reduction::Min => "min",
    }
}

fn movement(m: &MovementOp, name: &str) -> Option<Spec> {
    let s = |attrs| Some(Spec::onnx(name, attrs));
    match m {
        MovementOp::Reshape { allowzero } => s(if *allowzero { vec![int("allowzero", 1)] } else { vec![] }),
        MovementOp::Flatten { axis } => s(vec![int("axis", *axis)]),
        MovementOp::Transpose { perm } => s(perm.iter().map(|p| ints("perm", p.iter().copied())).collect()),
        MovementOp::Squeeze | MovementOp::Unsqueeze | MovementOp::Slice | MovementOp::Size | MovementOp::Expand | MovementOp::Tile | MovementOp::Range => s(vec![]),
        MovementOp::Concat { axis } => s(vec![int("axis", *axis)]),
        MovementOp::Gather { axis } | MovementOp::GatherElements { axis } | MovementOp::OneHot { axis } => s(vec![int("axis", *axis)]),
        MovementOp::Shape { start, end } => s(std::iter::once(int("start", *start)).chain(end.map(|e| int("end", e))).collect()),
        MovementOp::Pad { mode } => {
            let mode = match mode {
                PadMode::Constant => "constant",
                PadMode::Reflect => "reflect",
                PadMode::Edge => "edge",
                PadMode::Wrap => "wrap",
            };
            s(vec![string("mode", mode)])
        }
        MovementOp::DepthToSpace { blocksize, mode } => s(vec![int("blocksize", *blocksize as i64), string("mode", if *mode == BlockMode::Dcr { "DCR" } else { "CRD" })]),
        // SpaceToDepth has no `mode` in this opset: only DCR is expressible.
        MovementOp::SpaceToDepth { blocksize, mode: BlockMode::Dcr } => s(vec![int("blocksize", *blocksize as i64)]),
        MovementOp::EyeLike { dtype, k } => s(std::iter::once(int("k", *k)).chain(dtype.map(|d| int("dtype", dtype_to_onnx(d).into()))).collect()),
        MovementOp::GatherNd { batch_dims } => s(vec![int("batch_dims", *batch_dims as i64)]),
        MovementOp::ScatterNd { reduction } => s(vec![string("reduction", reduction_name(*reduction))]),
        MovementOp::ScatterElements { axis, reduction } => s(vec![int("axis", *axis), string("reduction", reduction_name(*reduction))]),
        MovementOp::ReverseSequence { batch_axis, time_axis } => s(vec![int("batch_axis", *batch_axis as i64), int("time_axis", *time_axis as i64)]),
        MovementOp::Trilu { upper } => s(vec![int("upper", (*upper).into())]),
        _ => None,
    }
}

/// The model being written: unique ONNX names for every IR value, and the
/// graph built so far.
struct Exporter<'g> {
    g: &'g Graph,
    names: Vec<String>,
    taken: HashSet<String>,
    graph: GraphProto,
    used_kann_domain: bool,
}

impl<'g> Exporter<'g> {
    fn new(g: &'g Graph) -> Exporter<'g> {
        let mut taken = HashSet::new();
        let names = g
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let base = if v.name.is_empty() { format!("v{i}") } else { v.name.clone() };
                unique(&mut taken, &base)
            })
            .collect();
        Exporter { g, names, taken, graph: GraphProto { name: g.name.clone(), ..GraphProto::default() }, used_kann_domain: false }
    }

    /// Every constant some node reads, as an initializer.
    fn add_initializers(&mut self) {
        let mut used = vec![false; self.g.values.len()];
        for v in self.g.nodes.iter().flat_map(|n| n.inputs.iter().flatten()) {
            used[v.index()] = true;
        }
        for (i, v) in self.g.values.iter().enumerate() {
            if let (true, Some(t)) = (used[i], &v.constant) {
                self.graph.initializer.push(tensor_to_proto(&self.names[i], t));
            }
        }
    }

    /// Graph outputs; a constant output is written through an Identity of
    /// an initializer, since outputs must be produced by the graph.
    fn add_outputs(&mut self) -> Result<(), ExportError> {
        for &v in &self.g.outputs {
            let val = self.g.value(v);
            if let Some(t) = &val.constant {
                let src = self.fresh(&format!("{}/value", self.names[v.index()]));
                self.graph.initializer.push(tensor_to_proto(&src, t));
                let out = self.names[v.index()].clone();
                self.push(&format!("{out}/identity"), Spec::onnx("Identity", vec![]), vec![src], vec![out]);
            }
            self.graph.output.push(value_info(&self.names[v.index()], &val.info));
        }
        Ok(())
    }

    /// The types of the values nodes compute (not the graph outputs, which
    /// carry theirs), so that viewers show every edge's shape.
    fn add_value_infos(&mut self) {
        for n in &self.g.nodes {
            for &o in n.outputs.iter().filter(|o| !self.g.outputs.contains(o)) {
                self.graph.value_info.push(value_info(&self.names[o.index()], &self.g.value(o).info));
            }
        }
    }

    /// A name no value uses yet.
    fn fresh(&mut self, base: &str) -> String {
        unique(&mut self.taken, base)
    }

    /// Adds a constant initializer under a fresh name.
    fn constant(&mut self, base: &str, t: &Tensor) -> String {
        let name = self.fresh(base);
        self.graph.initializer.push(tensor_to_proto(&name, t));
        name
    }

    fn push(&mut self, name: &str, spec: Spec, input: Vec<String>, output: Vec<String>) {
        self.used_kann_domain |= spec.domain == KANN_DOMAIN;
        self.graph.node.push(NodeProto { input, output, name: name.into(), op_type: spec.op_type, domain: spec.domain.into(), attribute: spec.attrs, doc_string: spec.doc });
    }

    fn input_names(&self, inputs: &[Option<ValueId>]) -> Vec<String> {
        let mut v: Vec<String> = inputs.iter().map(|i| i.map_or_else(String::new, |v| self.names[v.index()].clone())).collect();
        while v.last().is_some_and(String::is_empty) {
            v.pop();
        }
        v
    }

    fn node(&mut self, node: &Node) -> Result<(), ExportError> {
        let inputs = self.input_names(&node.inputs);
        let outputs: Vec<String> = node.outputs.iter().map(|o| self.names[o.index()].clone()).collect();
        match &node.op {
            Op::Fused(f) => self.fused(node, f, outputs),
            Op::Elementwise(ElementwiseOp::Activation(Activation::Swish { alpha })) => {
                let x = inputs.first().cloned().ok_or_else(|| self.error(node, "Swish has no input"))?;
                self.swish(&node.name, *alpha, x, self.info(node)?, outputs)
            }
            Op::Nn(NnOp::Softmax(sm)) if sm.flatten => self.flat_softmax(node, sm.kind, sm.axis, inputs, outputs),
            Op::Movement(MovementOp::Split { axis, outputs: n, .. }) => {
                let mut attrs = vec![int("axis", *axis)];
                if inputs.len() < 2 {
                    attrs.push(int("num_outputs", *n as i64));
                }
                self.push(&node.name, Spec::onnx("Split", attrs), inputs, outputs);
                Ok(())
            }
            op => {
                let spec = spec(op).unwrap_or_else(|| Spec::kann(op));
                self.push(&node.name, spec, inputs, outputs);
                Ok(())
            }
        }
    }

    fn error(&self, node: &Node, reason: &str) -> ExportError {
        ExportError { what: format!("node '{}' ({})", node.name, node.op.name()), reason: reason.into() }
    }

    /// The type of a node's first output.
    fn info(&self, node: &Node) -> Result<TensorInfo, ExportError> {
        node.outputs.first().map(|&o| self.g.value(o).info.clone()).ok_or_else(|| self.error(node, "it has no output"))
    }

    /// `y = x * sigmoid(alpha * x)` as `[Mul] → Sigmoid → Mul`.
    fn swish(&mut self, name: &str, alpha: f64, x: String, info: TensorInfo, outputs: Vec<String>) -> Result<(), ExportError> {
        let scaled = if alpha == 1.0 {
            x.clone()
        } else {
            let a = Tensor::from_f64(info.dtype, Shape::from([]), &[alpha]).map_err(|e| ExportError { what: format!("node '{name}'"), reason: e.to_string() })?;
            let a = self.constant(&format!("{name}/alpha"), &a);
            let out = self.fresh(&format!("{name}/scaled"));
            self.push(&format!("{name}/scale"), Spec::onnx("Mul", vec![]), vec![x.clone(), a], vec![out.clone()]);
            out
        };
        let sig = self.fresh(&format!("{name}/sigmoid"));
        self.push(&format!("{name}/sigmoid"), Spec::onnx("Sigmoid", vec![]), vec![scaled], vec![sig.clone()]);
        self.push(name, Spec::onnx("Mul", vec![]), vec![x, sig], outputs);
        Ok(())
    }

    /// A pre-13 Softmax (over everything from `axis` on, flattened) as
    /// Flatten → Softmax(axis 1) → Reshape back.
    fn flat_softmax(&mut self, node: &Node, kind: SoftmaxKind, axis: i64, inputs: Vec<String>, outputs: Vec<String>) -> Result<(), ExportError> {
        let info = self.info(node)?;
        let x = inputs.first().cloned().ok_or_else(|| self.error(node, "Softmax has no input"))?;
        let name = &node.name;
        let flat = self.fresh(&format!("{name}/flat"));
        self.push(&format!("{name}/flatten"), Spec::onnx("Flatten", vec![int("axis", axis)]), vec![x], vec![flat.clone()]);
        let soft = self.fresh(&format!("{name}/2d"));
        self.push(name, Spec::onnx(kind.name(), vec![int("axis", 1)]), vec![flat], vec![soft.clone()]);
        let shape = Tensor::vec_i64(info.shape.dims().iter().map(|&d| d as i64).collect());
        let shape = self.constant(&format!("{name}/shape"), &shape);
        let out = outputs.into_iter().next().ok_or_else(|| self.error(node, "Softmax has no output"))?;
        self.push(&format!("{name}/reshape"), Spec::onnx("Reshape", vec![]), vec![soft, shape], vec![out]);
        Ok(())
    }

    /// A fused op as `<node>/scale` (Mul, with an input scale), its base
    /// node, then `<node>/residual` (Add) and `<node>/act` (the
    /// activation), chained through fresh values.
    fn fused(&mut self, node: &Node, f: &Fused, outputs: Vec<String>) -> Result<(), ExportError> {
        let info = self.info(node)?;
        let out = outputs.into_iter().next().ok_or_else(|| self.error(node, "a fused op has one output"))?;
        let mut base_inputs = self.input_names(f.base_slice(&node.inputs));
        let name = node.name.clone();
        if let Some(slot) = f.scale_slot() {
            let s = node.inputs.get(slot).copied().flatten().ok_or_else(|| self.error(node, "the input scale is missing"))?;
            let s = self.names[s.index()].clone();
            let scaled = self.fresh(&format!("{out}/scaled"));
            self.push(&format!("{name}/scale"), Spec::onnx("Mul", vec![]), vec![base_inputs[0].clone(), s], vec![scaled.clone()]);
            base_inputs[0] = scaled;
        }
        let steps = usize::from(f.residual) + usize::from(f.activation.is_some());
        let mut cur = if steps == 0 { out.clone() } else { self.fresh(&format!("{out}/base")) };
        let base = spec(&f.base).ok_or_else(|| self.error(node, &format!("the fused base {} has no ONNX form", f.base.name())))?;
        self.push(&name, base, base_inputs, vec![cur.clone()]);
        if let Some(slot) = f.residual_slot() {
            let r = node.inputs.get(slot).copied().flatten().ok_or_else(|| self.error(node, "the residual input is missing"))?;
            let next = if f.activation.is_some() { self.fresh(&format!("{out}/residual")) } else { out.clone() };
            let r = self.names[r.index()].clone();
            self.push(&format!("{name}/residual"), Spec::onnx("Add", vec![]), vec![cur, r], vec![next.clone()]);
            cur = next;
        }
        if let Some(act) = f.activation {
            self.activation(&format!("{name}/act"), act, cur, &info, out)?;
        }
        Ok(())
    }

    /// A fused activation as its ONNX node(s) named `name`.
    fn activation(&mut self, name: &str, act: FusedActivation, x: String, info: &TensorInfo, out: String) -> Result<(), ExportError> {
        let one = |op: &str, attrs| Spec::onnx(op, attrs);
        let spec = match act {
            FusedActivation::Relu => one("Relu", vec![]),
            FusedActivation::Sigmoid => one("Sigmoid", vec![]),
            FusedActivation::Tanh => one("Tanh", vec![]),
            FusedActivation::HardSwish => one("HardSwish", vec![]),
            FusedActivation::LeakyRelu { alpha } => one("LeakyRelu", vec![float("alpha", alpha)]),
            FusedActivation::HardSigmoid { alpha, beta } => one("HardSigmoid", vec![float("alpha", alpha), float("beta", beta)]),
            FusedActivation::Silu => return self.swish(name, 1.0, x, info.clone(), vec![out]),
            FusedActivation::Clip { min, max } => {
                let bound = |v: f64| Tensor::from_f64(info.dtype, Shape::from([]), &[v]).map_err(|e| ExportError { what: format!("node '{name}'"), reason: e.to_string() });
                let (lo, hi) = (bound(min)?, bound(max)?);
                let lo = self.constant(&format!("{name}/min"), &lo);
                let hi = self.constant(&format!("{name}/max"), &hi);
                self.push(name, one("Clip", vec![]), vec![x, lo, hi], vec![out]);
                return Ok(());
            }
        };
        self.push(name, spec, vec![x], vec![out]);
        Ok(())
    }
}

/// `base`, or `base#2`, `base#3`… whichever is not taken yet (and takes it).
fn unique(taken: &mut HashSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut n = 1;
    while !taken.insert(name.clone()) {
        n += 1;
        name = format!("{base}#{n}");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_model, import_model, ImportOptions};
    use kann_ir::ops::elementwise::{Binary, Unary, UnaryKind};
    use kann_ir::ops::nn::{Conv, ConvAttrs};
    use kann_ir::GraphBuilder;
    use kann_tensor::DType;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn conv_op() -> Op {
        let mut window = Window::new(AutoPad::NotSet);
        window.pads = vec![1; 4];
        Op::Nn(NnOp::Conv(Conv { attrs: ConvAttrs { window, group: 1 } }))
    }

    /// x → Fused(Conv+Add(x)+act) → Swish → Softmax (flattening) .
    fn fused_graph(act: FusedActivation) -> Graph {
        let mut b = GraphBuilder::new("fused", None);
        let info = TensorInfo::new(DType::F32, Shape::from([1, 2, 4, 4]));
        let x = b.add_input("x", info).unwrap();
        let w = b.add_constant("w", Tensor::from_f32(Shape::from([2, 2, 3, 3]), random(36, 1)).unwrap());
        let bias = b.add_constant("b", Tensor::from_f32(Shape::from([2]), random(2, 2)).unwrap());
        let fused = Op::Fused(Fused { base: Box::new(conv_op()), base_inputs: 3, residual: true, activation: Some(act), input_scale: false });
        let y = b.add_node("conv", fused, vec![Some(x), Some(w), Some(bias), Some(x)], &["y".into()]).unwrap()[0];
        let z = b.add_node("swish", Op::Elementwise(ElementwiseOp::Activation(Activation::Swish { alpha: 0.5 })), vec![Some(y)], &["z".into()]).unwrap()[0];
        let add = Op::Elementwise(ElementwiseOp::Binary(Binary { kind: BinaryKind::Add }));
        let plain = Op::Fused(Fused { base: Box::new(add), base_inputs: 2, residual: false, activation: None, input_scale: false });
        let p = b.add_node("plain", plain, vec![Some(z), Some(x)], &["p".into()]).unwrap()[0];
        let sm = Op::Nn(NnOp::Softmax(kann_ir::ops::nn::Softmax { kind: SoftmaxKind::Softmax, axis: 2, flatten: true }));
        let s = b.add_node("softmax", sm, vec![Some(p)], &["s".into()]).unwrap()[0];
        b.add_output(s);
        b.add_output(y);
        b.finish().unwrap()
    }

    fn run(g: &Graph) -> Vec<Vec<f64>> {
        let x = Tensor::from_f32(Shape::from([1, 2, 4, 4]), random(32, 7)).unwrap();
        kann_reference::run(g, &[x]).unwrap().iter().map(|t| t.to_f64_vec()).collect()
    }

    fn round_trip(g: &Graph) -> (ModelProto, Graph) {
        let bytes = export_model(g).unwrap();
        let proto = decode_model(&bytes, "exported").unwrap();
        let back = import_model(&proto, None, &ImportOptions::default(), None).unwrap().graph;
        (proto, back)
    }

    fn assert_close(a: &[Vec<f64>], b: &[Vec<f64>]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.len(), y.len());
            for (p, q) in x.iter().zip(y) {
                assert!((p - q).abs() <= 1e-5 * (1.0 + p.abs()), "{p} vs {q}");
            }
        }
    }

    #[test]
    fn a_fused_conv_expands_into_named_standard_nodes_and_runs_the_same() {
        for act in [FusedActivation::Relu, FusedActivation::Clip { min: 0.0, max: 6.0 }, FusedActivation::Silu, FusedActivation::HardSigmoid { alpha: 0.2, beta: 0.5 }] {
            let g = fused_graph(act);
            let (proto, back) = round_trip(&g);
            let graph = proto.graph.as_ref().unwrap();
            let nodes: Vec<(&str, &str)> = graph.node.iter().map(|n| (n.name.as_str(), n.op_type.as_str())).collect();
            assert_eq!(nodes[..2], [("conv", "Conv"), ("conv/residual", "Add")]);
            assert!(nodes.iter().any(|n| n.0 == "conv/act"), "{nodes:?}");
            assert!(nodes.contains(&("plain", "Add")) && nodes.contains(&("softmax/flatten", "Flatten")), "{nodes:?}");
            assert_eq!(proto.opset_import.len(), 1, "no ai.kann op");
            assert_eq!(graph.output.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["s", "y"]);
            assert_close(&run(&g), &run(&back));
        }
    }

    #[test]
    fn a_scaled_conv_expands_into_mul_then_conv_and_runs_the_same() {
        // x → GlobalAveragePool = s; Fused(Mul+Conv+Add(x)+Relu) of x scaled by s.
        let mut b = GraphBuilder::new("scaled", None);
        let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([1, 2, 4, 4]))).unwrap();
        let gap = Op::Nn(NnOp::GlobalPool(kann_ir::ops::nn::GlobalPool { kind: kann_ir::ops::nn::PoolKind::Average { count_include_pad: false } }));
        let s = b.add_node("gap", gap, vec![Some(x)], &["s".into()]).unwrap()[0];
        let w = b.add_constant("w", Tensor::from_f32(Shape::from([2, 2, 1, 1]), random(4, 3)).unwrap());
        let conv = Op::Nn(NnOp::Conv(Conv { attrs: ConvAttrs { window: Window::new(AutoPad::NotSet), group: 1 } }));
        let fused = Op::Fused(Fused { base: Box::new(conv), base_inputs: 2, residual: true, activation: Some(FusedActivation::Relu), input_scale: true });
        let y = b.add_node("conv", fused, vec![Some(x), Some(w), Some(x), Some(s)], &["y".into()]).unwrap()[0];
        b.add_output(y);
        let g = b.finish().unwrap();
        let (proto, back) = round_trip(&g);
        let nodes: Vec<(String, String)> = proto.graph.as_ref().unwrap().node.iter().map(|n| (n.name.clone(), n.op_type.clone())).collect();
        let want = [("gap", "GlobalAveragePool"), ("conv/scale", "Mul"), ("conv", "Conv"), ("conv/residual", "Add"), ("conv/act", "Relu")];
        assert_eq!(nodes, want.map(|(a, b)| (a.to_string(), b.to_string())));
        assert_close(&run(&g), &run(&back));
    }

    #[test]
    fn an_op_without_onnx_form_goes_to_the_kann_domain() {
        let mut b = GraphBuilder::new("swiglu", None);
        let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([2, 4]))).unwrap();
        let r = b.add_node("relu", Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu })), vec![Some(x)], &["r".into()]).unwrap()[0];
        let y = b.add_node("glu", Op::Elementwise(ElementwiseOp::SwiGlu { alpha: 1.0 }), vec![Some(r)], &["y".into()]);
        let Ok(y) = y else { return };
        b.add_output(y[0]);
        let g = b.finish().unwrap();
        let proto = to_model_proto(&g).unwrap();
        let node = &proto.graph.as_ref().unwrap().node[1];
        assert_eq!((node.domain.as_str(), node.op_type.as_str()), (KANN_DOMAIN, "SwiGLU"));
        assert!(proto.opset_import.iter().any(|o| o.domain == KANN_DOMAIN));
    }

    #[test]
    fn names_stay_unique_and_types_are_written() {
        let mut b = GraphBuilder::new("dup", None);
        let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([3]))).unwrap();
        let n = b.add_node("n", Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Neg })), vec![Some(x)], &["y/base".into()]).unwrap()[0];
        let add = Op::Elementwise(ElementwiseOp::Binary(Binary { kind: BinaryKind::Add }));
        let fused = Op::Fused(Fused { base: Box::new(add), base_inputs: 2, residual: false, activation: Some(FusedActivation::Tanh), input_scale: false });
        let y = b.add_node("f", fused, vec![Some(n), Some(x)], &["y".into()]).unwrap()[0];
        b.add_output(y);
        let g = b.finish().unwrap();
        let (proto, back) = round_trip(&g);
        let graph = proto.graph.as_ref().unwrap();
        assert_eq!(graph.input[0], value_info("x", &TensorInfo::new(DType::F32, Shape::from([3]))));
        assert_eq!(graph.output[0], value_info("y", &TensorInfo::new(DType::F32, Shape::from([3]))));
        assert_eq!((proto.ir_version, proto.opset_import[0].version), (IR_VERSION, OPSET));
        let outs: Vec<&str> = graph.node.iter().map(|n| n.output[0].as_str()).collect();
        assert_eq!(outs, ["y/base", "y/base#2", "y"]);
        assert_eq!(graph.value_info.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["y/base"]);
        let x = Tensor::from_f32(Shape::from([3]), vec![0.5, -1.0, 2.0]).unwrap();
        let (a, b) = (kann_reference::run(&g, std::slice::from_ref(&x)).unwrap(), kann_reference::run(&back, &[x]).unwrap());
        assert_eq!(a[0].to_f64_vec(), b[0].to_f64_vec());
    }
}
