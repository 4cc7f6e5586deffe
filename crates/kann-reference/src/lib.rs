//! kann-reference evaluates a [`kann_ir::Graph`] with deliberately simple,
//! obviously-correct loops written from the ONNX operator spec: one module
//! per op family under `ops`, f32 data with f64 accumulation where sums get
//! long. It is the oracle: it shares no compute code with the compiler, the
//! kernels or the runtime, and must never depend on them.
//!
//! ```
//! # use kann_ir::{GraphBuilder, TensorInfo, Op, ops::elementwise::*};
//! # use kann_tensor::{DType, Shape, Tensor};
//! let mut b = GraphBuilder::new("g", None);
//! let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([2]))).unwrap();
//! let y = b.add_node("r", Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu })), vec![Some(x)], &[]).unwrap();
//! b.add_output(y[0]);
//! let g = b.finish().unwrap();
//! let out = kann_reference::run(&g, &[Tensor::from_f32(Shape::from([2]), vec![-1.0, 2.0]).unwrap()]).unwrap();
//! assert_eq!(out[0].as_f32().unwrap(), &[0.0, 2.0]);
//! ```

mod ops;
mod run;
pub mod util;

pub use run::{eval_op, run, run_named, EvalError, Reference};
