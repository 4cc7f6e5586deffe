//! kann-compiler turns an imported [`kann_ir::Graph`] into what the runtime
//! executes. For now it owns the graph [`editor`] and the optimisation
//! [`passes`] ([`Pipeline::standard`]); lowering, scheduling and the memory
//! plan come later. It depends on kann-ir and kann-tensor only: constant
//! folding evaluates through a caller-supplied [`kann_ir::ConstEval`]
//! (usually `kann_reference::Reference`), and it must never be linked by the
//! runtime.
//!
//! ```
//! use kann_compiler::{PassCx, Pipeline};
//! use kann_ir::{GraphBuilder, TensorInfo, Op, ops::elementwise::{ElementwiseOp, Unary, UnaryKind}};
//! use kann_tensor::{DType, Shape};
//! let mut b = GraphBuilder::new("tiny", None);
//! let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([2, 3]))).unwrap();
//! let id = Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Identity }));
//! let y = b.add_node("id", id, vec![Some(x)], &["y".into()]).unwrap();
//! let relu = Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu }));
//! let z = b.add_node("relu", relu, vec![Some(y[0])], &["z".into()]).unwrap();
//! b.add_output(z[0]);
//! let mut g = b.finish().unwrap();
//! let log = Pipeline::standard().run(&mut g, &mut PassCx::new(None)).unwrap();
//! assert_eq!(g.nodes.len(), 1);
//! assert!(log.to_string().contains("removed 1 Identity"));
//! ```

pub mod editor;
mod error;
pub mod lower;
pub mod plan;
pub mod cost;
pub mod calibrate;
pub mod layers;
pub mod schedule;
pub mod generate;
pub mod report;
pub mod testing;
pub mod passes;

pub use editor::Editor;
pub use error::CompileError;
pub use generate::{build_program, compile, optimize, CompileOptions, Compiled, GenerateError};
pub use passes::{Pass, PassCx, PassLog, PassReport, Pipeline};
pub use report::Stats;
