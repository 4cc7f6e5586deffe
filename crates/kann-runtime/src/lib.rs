//! kann-runtime runs a compiled `.kann` artifact: it maps the file, checks
//! it (format, checksums, CPU features, program consistency), starts one
//! persistent worker thread per cluster pinned to a core, and runs frames.
//!
//! It links only kann-kernels (the program types and kernels) and
//! kann-artifact (the container), never the IR, ONNX or the compiler.
//!
//! ```no_run
//! use kann_runtime::{Device, Service};
//! let mut service = Service::load("gen/model.kann")?;
//! service.init_device(&Device::all())?;
//! let input = vec![0u8; service.inputs()[0].bytes()];
//! let mut output = vec![0u8; service.outputs()[0].bytes()];
//! let stats = service.process_frame(&[&input], &mut [&mut output])?;
//! println!("{:?} on the device", stats.device);
//! if let Some(profile) = service.last_profile() {
//!     for s in &profile.steps { println!("{} {:?}", s.name, s.per_cluster); }
//! }
//! service.terminate();
//! # Ok::<(), kann_runtime::RuntimeError>(())
//! ```
//!
//! ## Contracts
//! - [`Service::load`] refuses, with one line naming the file, a file that
//!   is not a valid artifact, one this CPU cannot run, and a program that
//!   does not decode or validate.
//! - [`Service::init_device`] allocates everything a frame needs (arena,
//!   scratch, profile records); [`Service::process_frame`] then neither
//!   allocates nor takes a lock, except to wake or park threads.
//! - Worker `c` runs cluster `c`'s command list; the calling thread only
//!   copies inputs in and outputs out and waits.
//! - Inputs and outputs are raw little-endian bytes in each tensor's dtype
//!   and shape ([`kann_kernels::IoTensor::bytes`]).

mod device;
mod error;
mod memory;
pub mod profile;
mod service;
mod sync;
pub mod testing;
mod worker;

pub use device::{pin_current_thread, Device};
pub use error::RuntimeError;
pub use profile::{Profile, StepProfile};
pub use service::{FrameStats, Service};

/// The runtime's version, printed by `kann run` beside the artifact format's.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The program encoding this runtime reads.
pub use kann_kernels::PROGRAM_VERSION;
/// The interface types [`Service::inputs`] and [`Service::outputs`] return.
pub use kann_kernels::{ElemType, IoTensor};
