//! kann-ir owns the graph every other stage works on: [`Graph`] of [`Node`]s
//! over [`Value`]s with static [`TensorInfo`] (dtype and shape), the closed set
//! of operators ([`Op`], grouped in families, one struct per operator),
//! shape/dtype inference with constant propagation ([`GraphBuilder`]) and the
//! [`verify`] check. It knows no file format (no ONNX here) and computes
//! nothing itself: constant folding asks a caller-supplied [`ConstEval`].
//!
//! ```
//! use kann_ir::{GraphBuilder, TensorInfo, Op, ops::elementwise::{ElementwiseOp, Unary, UnaryKind}};
//! use kann_tensor::{DType, Shape};
//! let mut b = GraphBuilder::new("tiny", None);
//! let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([2, 3]))).unwrap();
//! let y = b.add_node("relu", Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu })), vec![Some(x)], &["y".into()]).unwrap();
//! b.add_output(y[0]);
//! let g = b.finish().unwrap();
//! assert_eq!(g.value(g.outputs[0]).info.shape.dims(), &[2, 3]);
//! ```

mod builder;
mod error;
mod graph;
pub mod ops;
mod verify;

pub use builder::{ConstEval, GraphBuilder, FOLD_LIMIT};
pub use error::IrError;
pub use graph::{Graph, Node, NodeId, TensorInfo, Value, ValueId};
pub use ops::{InferInput, Op};
pub use verify::verify;
