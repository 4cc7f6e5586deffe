//! Dev-only helpers: build small ONNX models in code (no Python needed) for
//! importer, robustness and CLI tests.

use kann_onnx::proto::{
    attribute_type as at, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use kann_onnx::tensor::tensor_to_proto;
use kann_tensor::Tensor;
use prost::Message;

/// A node `op_type(inputs) -> outputs` with attributes.
pub fn node(op_type: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op_type.to_string(),
        name: format!("{}_{}", op_type, outputs.first().copied().unwrap_or("")),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..NodeProto::default()
    }
}

pub fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: at::INT, i: v, ..AttributeProto::default() }
}

pub fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: at::FLOAT, f: v, ..AttributeProto::default() }
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: at::INTS, ints: v.to_vec(), ..AttributeProto::default() }
}

pub fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: at::STRING, s: v.as_bytes().to_vec(), ..AttributeProto::default() }
}

/// A tensor-typed value info; `None` dims are symbolic (`dim_param` = "N").
pub fn value_info(name: &str, elem_type: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    use tensor_shape_proto::dimension::Value as V;
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension { value: Some(match d { Some(v) => V::DimValue(*v), None => V::DimParam("N".into()) }), denotation: String::new() })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type, shape: Some(TensorShapeProto { dim }) })), denotation: String::new() }),
        doc_string: String::new(),
    }
}

pub fn initializer(name: &str, t: &Tensor) -> TensorProto {
    tensor_to_proto(name, t)
}

/// A model of the default domain at `opset`.
pub fn model(opset: i64, nodes: Vec<NodeProto>, inputs: Vec<ValueInfoProto>, outputs: Vec<ValueInfoProto>, initializers: Vec<TensorProto>) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        producer_name: "kann-testkit".into(),
        graph: Some(GraphProto { node: nodes, name: "test".into(), initializer: initializers, input: inputs, output: outputs, ..GraphProto::default() }),
        ..ModelProto::default()
    }
}

pub fn encode(m: &ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}

/// Relative-and-absolute closeness, numpy's `allclose` rule.
pub fn assert_close(got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= atol + rtol * w.abs(), "element {i}: got {g}, want {w}");
    }
}

/// A fresh directory under the system's temp dir, removed with its contents
/// when dropped: tests that write files leave nothing behind (the CLI tests
/// left ~90 MB in /tmp a run). Derefs to its path.
pub struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    /// `<temp dir>/<name>`, emptied first if a killed run left it.
    pub fn new(name: &str) -> ScratchDir {
        let d = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
        ScratchDir(d)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for ScratchDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for ScratchDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
