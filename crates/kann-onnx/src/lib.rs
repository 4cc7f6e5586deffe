//! kann-onnx reads ONNX models into [`kann_ir::Graph`]: the protobuf schema
//! ([`proto`], no `protoc` needed), tensors with checked sizes and external
//! data ([`tensor`]), and the importer with its opset-ranged registry of op
//! import functions ([`registry`], one module per op family under `ops`),
//! and the exporter writing a graph back as ONNX ([`export`]).
//! It must not depend on the reference, compiler or runtime.
//!
//! ```no_run
//! let model = kann_onnx::import_file(std::path::Path::new("model.onnx"), &Default::default(), None)?;
//! println!("{} nodes", model.graph.nodes.len());
//! # Ok::<(), kann_onnx::ImportError>(())
//! ```

mod error;
pub mod export;
mod import;
mod node;
pub mod ops;
pub mod proto;
pub mod registry;
pub mod tensor;

pub use error::ImportError;
pub use export::{export_model, ExportError};
pub use import::{decode_model, import_file, import_model, read_model, ImportOptions, Model};
pub use node::NodeCx;
pub use registry::{Imported, Registry};
