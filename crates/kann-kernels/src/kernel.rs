//! The kernel catalog: one variant per kernel, each a parameter struct in
//! its own module implementing [`KernelImpl`]. Closed set, static dispatch.

use crate::{binary, reduce, unary, Io};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// What every kernel provides.
pub trait KernelImpl {
    /// The catalog name, `<dtype>_<op>_<variant>_<isa>` (`f32_conv2d_direct_generic`).
    fn name(&self) -> String;
    /// The extent of the axis the compiler splits across clusters; a part is
    /// a contiguous range of it.
    fn work_items(&self) -> u64;
    /// Scratch bytes a cluster needs to run `items` work items.
    fn scratch_bytes(&self, _items: u64) -> usize {
        0
    }
    /// Work items the boundaries between parts fall on multiples of, where
    /// it matters (the compiler rounds its even split to them).
    fn split_granule(&self) -> u64 {
        1
    }
    /// Whether output 0 may share input 0's buffer (the memory plan then
    /// may compute in place; the kernel sees `inputs[0].same_as(&outputs[0])`).
    fn in_place_ok(&self) -> bool {
        false
    }
    /// Checks the number of inputs and outputs the step gives it.
    fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String>;
    /// Runs work items `part`.
    ///
    /// # Safety
    /// The buffers are valid for their lengths; no one writes an input while
    /// this runs; parts of this step running at once are disjoint; `scratch`
    /// holds at least `scratch_bytes(part.len())` bytes.
    unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]);
}

/// Every kernel kann has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Kernel {
    // --- element-wise kernels (unary.rs, binary.rs) ---
    Unary(unary::Unary),
    Predicate(unary::Predicate),
    CopyBytes(unary::CopyBytes),
    Binary(binary::Binary),
    Compare(binary::Compare),
    Where(binary::Where),
    IntBinary(binary::int::IntBinary),
    IntUnary(binary::int::IntUnary),
    Cast(crate::cast::Cast),
    // --- end of element-wise kernels ---

    // --- nn kernels (conv.rs, conv_gemm.rs, conv_direct.rs, conv_grouped.rs, conv_pool.rs, winograd.rs, depthwise.rs, pw_dw.rs, gemm.rs, pool.rs, norm.rs, softmax.rs, blocked/) ---
    Conv(crate::conv::Conv),
    ConvGemm(crate::conv_gemm::ConvGemm),
    Im2colPack(crate::conv_gemm::Im2colPack),
    Winograd(crate::winograd::WinogradConv),
    ConvDirect(crate::conv_direct::ConvDirect),
    ConvGrouped(crate::conv_grouped::ConvGrouped),
    ConvPool(crate::conv_pool::ConvPool),
    FcGemm(crate::fc_gemm::FcGemm),
    DepthwiseConv(crate::depthwise::DepthwiseConv),
    PointwiseDepthwise(crate::pw_dw::PointwiseDepthwise),
    ConvTranspose(crate::conv::ConvTranspose),
    Gemm(crate::gemm::Gemm),
    Pool(crate::pool::Pool),
    Pool2d(crate::pool::plane2d::Pool2d),
    GlobalPool(crate::pool::global::GlobalPool),
    Lrn(crate::norm::Lrn),
    BatchNorm(crate::norm::BatchNorm),
    InstanceNorm(crate::norm::InstanceNorm),
    LayerNorm(crate::norm::LayerNorm),
    GroupNorm(crate::norm::GroupNorm),
    LpNorm(crate::norm::LpNorm),
    Softmax(crate::softmax::Softmax),
    // channel-blocked (NCHW8c) kernels (blocked/)
    BlockedPointwise(crate::blocked::pointwise::BlockedPointwise),
    BlockedDepthwise(crate::blocked::depthwise::BlockedDepthwise),
    BlockedConv(crate::blocked::conv::BlockedConv),
    Reorder(crate::blocked::reorder::Reorder),
    BlockedGlobalPool(crate::blocked::global_pool::BlockedGlobalPool),
    BlockedPool(crate::blocked::pool::BlockedPool),
    BlockedBatchNorm(crate::blocked::batch_norm::BlockedBatchNorm),
    // --- end of nn kernels ---

    // --- movement, reduce and resample kernels (movement.rs, reduce.rs, resample.rs) ---
    Copy(crate::movement::Copy),
    Remap(crate::movement::Remap),
    Concat(crate::movement::Concat),
    Split(crate::movement::Split),
    Gather(crate::movement::Gather),
    Resize(crate::resample::Resize),
    Reduce(reduce::Reduce),
    ArgReduce(reduce::ArgReduce),
    // --- end of movement kernels ---
}

macro_rules! dispatch {
    ($self:ident, $k:ident => $e:expr) => {
        match $self {
            // --- element-wise kernels ---
            Kernel::Unary($k) => $e,
            Kernel::Predicate($k) => $e,
            Kernel::CopyBytes($k) => $e,
            Kernel::Binary($k) => $e,
            Kernel::Compare($k) => $e,
            Kernel::Where($k) => $e,
            Kernel::IntBinary($k) => $e,
            Kernel::IntUnary($k) => $e,
            Kernel::Cast($k) => $e,
            // --- end of element-wise kernels ---

            // --- nn kernels ---
            Kernel::Conv($k) => $e,
            Kernel::ConvGemm($k) => $e,
            Kernel::Im2colPack($k) => $e,
            Kernel::Winograd($k) => $e,
            Kernel::ConvDirect($k) => $e,
            Kernel::ConvGrouped($k) => $e,
            Kernel::ConvPool($k) => $e,
            Kernel::FcGemm($k) => $e,
            Kernel::DepthwiseConv($k) => $e,
            Kernel::PointwiseDepthwise($k) => $e,
            Kernel::ConvTranspose($k) => $e,
            Kernel::Gemm($k) => $e,
            Kernel::Pool($k) => $e,
            Kernel::Pool2d($k) => $e,
            Kernel::GlobalPool($k) => $e,
            Kernel::Lrn($k) => $e,
            Kernel::BatchNorm($k) => $e,
            Kernel::InstanceNorm($k) => $e,
            Kernel::LayerNorm($k) => $e,
            Kernel::GroupNorm($k) => $e,
            Kernel::LpNorm($k) => $e,
            Kernel::Softmax($k) => $e,
            Kernel::BlockedPointwise($k) => $e,
            Kernel::BlockedDepthwise($k) => $e,
            Kernel::BlockedConv($k) => $e,
            Kernel::Reorder($k) => $e,
            Kernel::BlockedGlobalPool($k) => $e,
            Kernel::BlockedPool($k) => $e,
            Kernel::BlockedBatchNorm($k) => $e,
            // --- end of nn kernels ---

            // --- movement, reduce and resample kernels ---
            Kernel::Copy($k) => $e,
            Kernel::Remap($k) => $e,
            Kernel::Concat($k) => $e,
            Kernel::Split($k) => $e,
            Kernel::Gather($k) => $e,
            Kernel::Resize($k) => $e,
            Kernel::Reduce($k) => $e,
            Kernel::ArgReduce($k) => $e,
            // --- end of movement kernels ---
        }
    };
}

impl Kernel {
    pub fn name(&self) -> String {
        dispatch!(self, k => k.name())
    }

    pub fn work_items(&self) -> u64 {
        dispatch!(self, k => k.work_items())
    }

    pub fn scratch_bytes(&self, items: u64) -> usize {
        dispatch!(self, k => k.scratch_bytes(items))
    }

    pub fn in_place_ok(&self) -> bool {
        dispatch!(self, k => k.in_place_ok())
    }

    pub fn split_granule(&self) -> u64 {
        dispatch!(self, k => k.split_granule())
    }

    pub fn check(&self, n_inputs: usize, n_outputs: usize) -> Result<(), String> {
        dispatch!(self, k => k.check(n_inputs, n_outputs))
    }

    /// Runs work items `part` (see [`KernelImpl::run`]).
    ///
    /// # Safety
    /// As [`KernelImpl::run`].
    pub unsafe fn run(&self, io: &Io, part: Range<u64>, scratch: &mut [u8]) {
        // SAFETY: forwarded contract.
        dispatch!(self, k => unsafe { k.run(io, part, scratch) })
    }
}

/// Checks an exact number of inputs and outputs.
pub fn expect_io(n_inputs: usize, n_outputs: usize, want_in: Range<usize>, want_out: usize) -> Result<(), String> {
    if !want_in.contains(&n_inputs) || n_outputs != want_out {
        return Err(format!(
            "expects {}..{} inputs and {want_out} outputs, got {n_inputs} and {n_outputs}",
            want_in.start,
            want_in.end - 1
        ));
    }
    Ok(())
}
