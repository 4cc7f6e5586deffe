//! ONNX model → [`kann_ir::Graph`].

use crate::node::NodeCx;
use crate::proto::{type_proto, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use crate::registry::{Imported, Registry, MAX_OPSET, MIN_OPSET};
use crate::tensor::{dtype_from_onnx, tensor_from_proto};
use crate::ImportError;
use kann_ir::{ConstEval, Graph, GraphBuilder, TensorInfo, ValueId};
use kann_tensor::{Shape, Tensor};
use prost::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// How the caller binds what the file leaves open.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Full shapes for named inputs, overriding the file's.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Values for symbolic dimensions (`batch_size` → 1).
    pub dim_params: HashMap<String, usize>,
    /// Inputs bound to fixed values: they become constants of the graph.
    pub constant_inputs: HashMap<String, Tensor>,
}

/// An imported model.
#[derive(Debug, Clone)]
pub struct Model {
    pub graph: Graph,
    /// Opset of the default domain.
    pub opset: i64,
    pub ir_version: i64,
    pub producer: String,
    /// Number of ONNX nodes in the file.
    pub onnx_nodes: usize,
}

/// Reads and decodes an `.onnx` file.
pub fn read_model(path: &Path) -> Result<ModelProto, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io { path: path.display().to_string(), source: e })?;
    decode_model(&bytes, &path.display().to_string())
}

/// Decodes `.onnx` bytes; `what` names the source in errors.
pub fn decode_model(bytes: &[u8], what: &str) -> Result<ModelProto, ImportError> {
    let model = ModelProto::decode(bytes).map_err(|e| ImportError::Decode { path: what.to_string(), reason: e.to_string() })?;
    if model.graph.is_none() {
        return Err(ImportError::Decode { path: what.to_string(), reason: "it holds no graph".into() });
    }
    Ok(model)
}

/// Reads and imports a model file; external data are looked up beside it.
pub fn import_file(path: &Path, opts: &ImportOptions, eval: Option<&dyn ConstEval>) -> Result<Model, ImportError> {
    let model = read_model(path)?;
    let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    import_model(&model, Some(&dir), opts, eval)
}

/// Imports a decoded model. `eval` folds constant subgraphs (shape
/// computations) so that every shape is static.
pub fn import_model(model: &ModelProto, base_dir: Option<&Path>, opts: &ImportOptions, eval: Option<&dyn ConstEval>) -> Result<Model, ImportError> {
    let graph = model.graph.as_ref().ok_or_else(|| ImportError::Graph("the model holds no graph".into()))?;
    let opset = default_opset(model, graph)?;
    let registry = Registry::standard();
    let domains = opset_map(model);
    check_ops(graph, &registry, &domains)?;

    let mut b = GraphBuilder::new(&graph.name, eval);
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    for t in &graph.initializer {
        let tensor = tensor_from_proto(t, base_dir)?;
        b.add_constant(&t.name, tensor);
    }
    if !graph.sparse_initializer.is_empty() {
        return Err(ImportError::Graph("sparse initializers are not supported".into()));
    }
    for vi in &graph.input {
        if initializers.contains(vi.name.as_str()) {
            continue; // IR < 4 lists initializers among the inputs.
        }
        if let Some(t) = opts.constant_inputs.get(&vi.name) {
            b.add_constant(&vi.name, t.clone());
        } else {
            let info = input_info(vi, opts)?;
            b.add_input(&vi.name, info)?;
        }
    }
    for name in opts.input_shapes.keys().chain(opts.constant_inputs.keys()) {
        if !graph.input.iter().any(|vi| &vi.name == name) {
            let known: Vec<_> = graph.input.iter().filter(|v| !initializers.contains(v.name.as_str())).map(|v| v.name.as_str()).collect();
            return Err(ImportError::Input { input: name.clone(), reason: format!("the model has no such input (inputs: {})", known.join(", ")) });
        }
    }

    for (i, node) in topological(graph)?.into_iter().enumerate() {
        import_node(&mut b, &registry, node, i, &domains)?;
    }
    for out in &graph.output {
        let id = b.lookup(&out.name).ok_or_else(|| ImportError::Graph(format!("graph output '{}' is produced by no node", out.name)))?;
        b.add_output(id);
    }
    Ok(Model { graph: b.finish()?, opset, ir_version: model.ir_version, producer: model.producer_name.clone(), onnx_nodes: graph.node.len() })
}

/// The default domain's opset. A model made only of other domains' ops
/// (`ai.onnx.ml`…) gets 0, so that the op check names those ops.
fn default_opset(model: &ModelProto, graph: &GraphProto) -> Result<i64, ImportError> {
    let found = model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map(|o| o.version);
    let v = match found {
        Some(v) => v,
        None if graph.node.iter().all(|n| !n.domain.is_empty() && n.domain != "ai.onnx") => return Ok(0),
        None => return Err(ImportError::Opset("the model uses default-domain ops but imports no version of the default ONNX domain".into())),
    };
    if !(MIN_OPSET..=MAX_OPSET).contains(&v) {
        return Err(ImportError::Opset(format!("opset {v} is outside the supported range {MIN_OPSET}–{MAX_OPSET}")));
    }
    Ok(v)
}

fn opset_map(model: &ModelProto) -> HashMap<String, i64> {
    model.opset_import.iter().map(|o| (if o.domain == "ai.onnx" { String::new() } else { o.domain.clone() }, o.version)).collect()
}

fn domain_opset(domains: &HashMap<String, i64>, domain: &str) -> i64 {
    let d = if domain == "ai.onnx" { "" } else { domain };
    domains.get(d).copied().unwrap_or(0)
}

/// Reports every unsupported op type of the model at once.
fn check_ops(graph: &GraphProto, registry: &Registry, domains: &HashMap<String, i64>) -> Result<(), ImportError> {
    let mut missing: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        let opset = domain_opset(domains, &node.domain);
        if registry.find(&node.domain, &node.op_type, opset).is_some() {
            continue;
        }
        let qualified = if node.domain.is_empty() || node.domain == "ai.onnx" { node.op_type.clone() } else { format!("{}::{}", node.domain, node.op_type) };
        let why = match registry.knows(&node.domain, &node.op_type) {
            Some((lo, hi)) => format!(" (supported in opsets {lo}–{hi}, model has {opset})"),
            None => String::new(),
        };
        let first = if node.name.is_empty() { format!("#{i}") } else { format!("\"{}\"", node.name) };
        let entry = missing.entry(format!("{qualified}{why}")).or_insert((0, first));
        entry.0 += 1;
    }
    if missing.is_empty() {
        return Ok(());
    }
    let ops = missing.into_iter().map(|(op, (n, first))| format!("{op} ({n} node{}, first {first})", if n == 1 { "" } else { "s" })).collect();
    Err(ImportError::UnsupportedOps { ops })
}

fn input_info(vi: &ValueInfoProto, opts: &ImportOptions) -> Result<TensorInfo, ImportError> {
    let err = |reason: String| ImportError::Input { input: vi.name.clone(), reason };
    let tensor_type = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        Some(_) => return Err(err("only tensor inputs are supported (not sequences, maps or optionals)".into())),
        None => return Err(err("the model gives no type".into())),
    };
    let dtype = dtype_from_onnx(tensor_type.elem_type, &format!("input '{}'", vi.name))?;
    if let Some(shape) = opts.input_shapes.get(&vi.name) {
        Tensor::check_size(shape).map_err(|e| err(e.to_string()))?;
        check_binding(shape, tensor_type.shape.as_ref()).map_err(err)?;
        return Ok(TensorInfo::new(dtype, Shape::from(shape.as_slice())));
    }
    let dims = tensor_type.shape.as_ref().ok_or_else(|| err("the model gives no shape; bind it with an input shape".into()))?;
    let mut shape = Vec::with_capacity(dims.dim.len());
    for (axis, d) in dims.dim.iter().enumerate() {
        use crate::proto::tensor_shape_proto::dimension::Value as V;
        let v = match &d.value {
            Some(V::DimValue(v)) if *v >= 0 => *v as usize,
            Some(V::DimValue(v)) => return Err(err(format!("axis {axis} has negative size {v}"))),
            Some(V::DimParam(p)) => *opts.dim_params.get(p).ok_or_else(|| ImportError::UnboundDim { input: vi.name.clone(), axis, param: p.clone() })?,
            None => return Err(ImportError::UnboundDim { input: vi.name.clone(), axis, param: "?".into() }),
        };
        shape.push(v);
    }
    Tensor::check_size(&shape).map_err(|e| err(e.to_string()))?;
    Ok(TensorInfo::new(dtype, Shape::new(shape)))
}

/// A caller's shape must agree with the model's declared rank and fixed dims.
fn check_binding(shape: &[usize], declared: Option<&crate::proto::TensorShapeProto>) -> Result<(), String> {
    use crate::proto::tensor_shape_proto::dimension::Value as V;
    let Some(declared) = declared else { return Ok(()) };
    let fixed: Vec<Option<i64>> = declared.dim.iter().map(|d| match d.value { Some(V::DimValue(v)) => Some(v), _ => None }).collect();
    let show = || fixed.iter().map(|d| d.map_or("?".to_string(), |v| v.to_string())).collect::<Vec<_>>().join(", ");
    if fixed.len() != shape.len() {
        return Err(format!("shape {:?} has rank {} but the model declares [{}]", shape, shape.len(), show()));
    }
    for (axis, (&got, want)) in shape.iter().zip(&fixed).enumerate() {
        if let Some(w) = want {
            if *w != got as i64 {
                return Err(format!("shape {:?} differs from the model's [{}] at axis {axis}", shape, show()));
            }
        }
    }
    Ok(())
}

/// Nodes in an order where every input is defined first (ONNX requires
/// files to be sorted, but not every exporter complies).
fn topological(graph: &GraphProto) -> Result<Vec<&NodeProto>, ImportError> {
    let mut defined: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).chain(graph.input.iter().map(|v| v.name.as_str())).collect();
    defined.insert("");
    let mut pending: Vec<&NodeProto> = graph.node.iter().collect();
    let mut order = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for n in pending {
            if n.input.iter().all(|i| defined.contains(i.as_str())) {
                defined.extend(n.output.iter().map(String::as_str));
                order.push(n);
            } else {
                rest.push(n);
            }
        }
        if rest.len() == before {
            let n = rest[0];
            let missing = n.input.iter().find(|i| !defined.contains(i.as_str())).cloned().unwrap_or_default();
            return Err(ImportError::Graph(format!("node \"{}\" ({}) reads '{}', which nothing defines (or the graph has a cycle)", n.name, n.op_type, missing)));
        }
        pending = rest;
    }
    Ok(order)
}

fn import_node(b: &mut GraphBuilder, registry: &Registry, node: &NodeProto, index: usize, domains: &HashMap<String, i64>) -> Result<(), ImportError> {
    let opset = domain_opset(domains, &node.domain);
    let row = registry.find(&node.domain, &node.op_type, opset).expect("checked by check_ops");
    let name = if node.name.is_empty() { format!("{}_{}", node.op_type, index) } else { node.name.clone() };
    let locator = format!("node #{index} \"{name}\" ({})", node.op_type);
    let inputs: Vec<Option<ValueId>> = node
        .input
        .iter()
        .map(|i| if i.is_empty() { Ok(None) } else { b.lookup(i).map(Some).ok_or_else(|| ImportError::Node { node: locator.clone(), reason: format!("input '{i}' is not defined") }) })
        .collect::<Result<_, _>>()?;
    let mut cx = NodeCx::new(node, opset, inputs, locator.clone(), b);
    let imported = (row.import)(&mut cx)?;
    if let Some(attr) = cx.unread().into_iter().next() {
        return Err(ImportError::UnsupportedAttribute { node: locator, attr, value: "(an attribute kann does not know for this op)".into() });
    }
    let inputs = std::mem::take(&mut cx.inputs);
    drop(cx);
    match imported {
        Imported::Constant(t) => {
            let out = node.output.first().ok_or_else(|| ImportError::Node { node: locator.clone(), reason: "Constant without output".into() })?;
            b.add_constant(out, t);
        }
        Imported::Op(op) => {
            let outs = b.add_node(&name, op, inputs, &node.output)?;
            if node.output.len() > outs.len() {
                return Err(ImportError::Node { node: locator, reason: format!("names {} outputs but the op produces {}", node.output.len(), outs.len()) });
            }
        }
    }
    Ok(())
}
