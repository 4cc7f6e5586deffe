use kann_ir::IrError;
use kann_tensor::TensorError;

/// Everything that can go wrong turning an ONNX file into a kann graph. Each
/// variant names the file, node, attribute, tensor or input at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a valid ONNX model: {reason}")]
    Decode { path: String, reason: String },
    #[error("unsupported ONNX opset: {0}")]
    Opset(String),
    #[error("the model uses {} unsupported op type{}: {}", ops.len(), if ops.len() == 1 { "" } else { "s" }, ops.join("; "))]
    UnsupportedOps { ops: Vec<String> },
    #[error("{node}: attribute '{attr}' = {value} is not supported")]
    UnsupportedAttribute { node: String, attr: String, value: String },
    #[error("{what}: data type {dtype} is not supported (kann handles f32, f16, bf16, f64, i8, u8, i32, i64, bool)")]
    UnsupportedDType { what: String, dtype: String },
    #[error("input '{input}' axis {axis}: symbolic dimension '{param}' is not bound (give the input shape, e.g. --input-shape {input}=1,3,224,224)")]
    UnboundDim { input: String, axis: usize, param: String },
    #[error("input '{input}': {reason}")]
    Input { input: String, reason: String },
    #[error("tensor '{name}': {reason}")]
    Tensor { name: String, reason: String },
    #[error("{node}: {reason}")]
    Node { node: String, reason: String },
    #[error("{0}")]
    Graph(String),
    #[error(transparent)]
    Ir(#[from] IrError),
}

impl ImportError {
    pub(crate) fn tensor(name: &str, e: impl std::fmt::Display) -> ImportError {
        ImportError::Tensor { name: name.to_string(), reason: e.to_string() }
    }
}

impl From<(String, TensorError)> for ImportError {
    fn from((name, e): (String, TensorError)) -> ImportError {
        ImportError::tensor(&name, e)
    }
}
