//! kann-kernels owns what the runtime executes: the compiled [`Program`]
//! (steps, per-cluster command lists, buffer references), the closed
//! catalog of [`Kernel`]s with their parameters, and the kernels themselves.
//! Every kernel has a portable Rust twin. The first SIMD path is the packed
//! GEMM of [`packed`] (AVX-512 and AVX2+FMA register tiles, runtime-detected,
//! with a portable twin of the same algorithm), which [`conv_gemm`] runs 2-D
//! convolutions on; the compiler picks the ISA variant from the target arch.
//!
//! It depends on nothing of kann's: both the compiler (which builds programs
//! and packs weights with the functions here) and the runtime (which runs
//! them) link it, and the runtime must stay free of the IR.
//!
//! ## How a step runs
//! A [`Step`] names a kernel, its input and output buffers ([`BufRef`]:
//! arena or weights) and its `work_items`, the extent of the axis along
//! which the compiler splits it across clusters (output channel planes,
//! rows, elements — each kernel says which). A cluster runs one contiguous
//! range of those items (a [`Command::Run`]). Kernels write only the part of
//! each output that their range owns, so parts of one step never overlap.
//!
//! ```
//! use kann_kernels::{Isa, Kernel, KernelImpl, Io, RawBuf, unary::{Unary, UnaryKind}};
//! let k = Kernel::Unary(Unary { kind: UnaryKind::Relu, len: 4, isa: Isa::Generic });
//! let mut x = [-1.0f32, 2.0, -3.0, 4.0];
//! let mut y = [0.0f32; 4];
//! let inputs = [RawBuf::from_f32(&mut x)];
//! let outputs = [RawBuf::from_f32(&mut y)];
//! // SAFETY: the buffers are live and distinct, one thread runs the step.
//! unsafe { k.run(&Io { inputs: &inputs, outputs: &outputs }, 0..k.work_items(), &mut []) };
//! assert_eq!(y, [0.0, 2.0, 0.0, 4.0]);
//! ```

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod buf;
pub mod epilogue;
pub mod kernel;
pub mod program;
pub mod serial;

// Element-wise kernels.
pub mod binary;
pub mod cast;
pub mod unary;
pub mod vmath;

// Convolution, matrix products, pooling, normalisation, softmax.
pub mod conv;
pub mod conv_direct;
pub mod conv_grouped;
pub mod conv_gemm;
pub mod conv_pool;
pub mod fc_gemm;
pub mod depthwise;
pub mod gemm;
pub mod peak;
pub mod norm;
pub mod packed;
pub mod pool;
pub mod softmax;
pub mod pw_dw;
pub mod winograd;
pub mod blocked;

// Data movement, reductions, resampling.
pub mod movement;
pub mod reduce;
pub mod resample;

pub use buf::{Io, RawBuf};
pub use epilogue::{Activation, Epilogue};
pub use kernel::{Kernel, KernelImpl};
pub use packed::Isa;
pub use program::{BufRef, Command, ElemType, EncodedProgram, IoTensor, Program, Step, PROGRAM_VERSION};
