//! Shape and data movement: reshape, transpose, slice, gather, concat, pad, …
//!
//! Every op here only moves (or generates) elements, so all of them are
//! dtype-generic and cost no FLOPs. Shape-determining inputs (Reshape's
//! shape, Slice's starts…) must be constants; the helpers that resolve them
//! (`slice_plan`, `pad_plan`, `split_sizes`…) are public so the reference
//! evaluates exactly the geometry inference promised.

mod col2im;
mod generate;
mod indexing;
mod layout;
mod slicing;

pub use col2im::{col2im_geometry, tensor_scatter_axis, unique_plan, Col2ImGeometry, UniquePlan};
pub use generate::{range_len, shape_range};
pub use indexing::{gather_nd_geometry, GatherNdGeometry};
pub use layout::{reshape_dims, transpose_perm};
pub use slicing::{center_crop_offsets, pad_plan, slice_plan, split_sizes, SliceAxis};

use super::{InferInput, InferResult};
use crate::TensorInfo;
use kann_tensor::{DType, Tensor};

/// How Pad fills the border.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    /// A constant value (input 2, default 0).
    Constant,
    /// Mirror without repeating the edge element.
    Reflect,
    /// Repeat the edge element.
    Edge,
    /// Wrap around (periodic).
    Wrap,
}

/// How scatter ops combine an update with the existing element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Overwrite.
    None,
    Add,
    Mul,
    Max,
    Min,
}

/// Channel ordering of DepthToSpace / SpaceToDepth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockMode {
    /// depth-column-row: the block offset is the outer part of the channel.
    Dcr,
    /// column-row-depth: the block offset is the inner part of the channel.
    Crd,
}

/// Data-movement operators, in their latest ONNX form. Axes are stored as
/// given (possibly negative) and normalised against the input rank by
/// inference; inputs that used to be attributes are inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum MovementOp {
    /// Inputs: data, shape. `allowzero`: a 0 in shape means 0, not "copy".
    Reshape { allowzero: bool },
    /// To 2-D: dims before `axis` (in `-rank..=rank`) and from `axis` on.
    Flatten { axis: i64 },
    /// `perm` defaults to reversing the axes.
    Transpose { perm: Option<Vec<i64>> },
    /// Inputs: data, optional axes (default: every axis of size 1).
    Squeeze,
    /// Inputs: data, axes (in the output's rank).
    Unsqueeze,
    /// Variadic inputs joined along `axis`.
    Concat { axis: i64 },
    /// Inputs: data, optional split sizes. Without sizes, `outputs` chunks of
    /// equal size; `uneven` lets the last one be smaller (opset 18's
    /// `num_outputs`), otherwise the axis must divide evenly.
    Split { axis: i64, outputs: usize, uneven: bool },
    /// Inputs: data, starts, ends, optional axes, optional steps.
    Slice,
    /// Inputs: data, indices (negative counts from the end).
    Gather { axis: i64 },
    /// The input's shape as i64, dims `start..end` (clamped).
    Shape { start: i64, end: Option<i64> },
    /// Element count as an i64 scalar.
    Size,
    /// Input: the output shape. `value` is a one-element tensor giving the
    /// fill value and the output dtype.
    ConstantOfShape { value: Tensor },
    /// Inputs: data, shape; bidirectional (numpy) broadcast.
    Expand,
    /// Inputs: data, repeats.
    Tile,
    /// Inputs: data, pads, optional constant value, optional axes.
    Pad { mode: PadMode },
    DepthToSpace { blocksize: usize, mode: BlockMode },
    SpaceToDepth { blocksize: usize, mode: BlockMode },
    /// Inputs: data, indices (same rank).
    GatherElements { axis: i64 },
    /// Inputs: data, indices; the first `batch_dims` axes are shared.
    GatherNd { batch_dims: usize },
    /// Inputs: data, indices, updates.
    ScatterNd { reduction: Reduction },
    /// Inputs: data, indices, updates (same rank as data).
    ScatterElements { axis: i64, reduction: Reduction },
    /// Inputs: start, limit, delta (scalars).
    Range,
    /// Inputs: indices, depth, values ([off, on]).
    OneHot { axis: i64 },
    /// Inputs: data, optional k. Keeps the upper (or lower) triangle.
    Trilu { upper: bool },
    /// Identity-like matrix of the input's shape; `dtype` defaults to the input's.
    EyeLike { dtype: Option<DType>, k: i64 },
    /// Inputs: data, sequence_lens.
    ReverseSequence { batch_axis: usize, time_axis: usize },
    /// Inputs: data, condition (a constant, since it decides the shape).
    /// Without `axis` the input is flattened first.
    Compress { axis: Option<i64> },
    /// Inputs: data, shape (of the `axes`, default all).
    CenterCropPad { axes: Option<Vec<i64>> },
    /// Inputs: input (N, C·∏block, L), image_shape, block_shape (constants).
    /// Sums the blocks back into the image; omitted attributes default to
    /// dilations 1, pads 0, strides 1.
    Col2Im { dilations: Option<Vec<i64>>, pads: Option<Vec<i64>>, strides: Option<Vec<i64>> },
    /// Inputs: past_cache, update, optional write_indices (per batch).
    /// `circular` wraps write positions around the axis.
    TensorScatter { axis: i64, circular: bool },
    /// Input: X (a constant). Outputs: Y, indices, inverse_indices, counts.
    Unique { axis: Option<i64>, sorted: bool },
}

impl MovementOp {
    pub fn name(&self) -> &'static str {
        match self {
            MovementOp::Reshape { .. } => "Reshape",
            MovementOp::Flatten { .. } => "Flatten",
            MovementOp::Transpose { .. } => "Transpose",
            MovementOp::Squeeze => "Squeeze",
            MovementOp::Unsqueeze => "Unsqueeze",
            MovementOp::Concat { .. } => "Concat",
            MovementOp::Split { .. } => "Split",
            MovementOp::Slice => "Slice",
            MovementOp::Gather { .. } => "Gather",
            MovementOp::Shape { .. } => "Shape",
            MovementOp::Size => "Size",
            MovementOp::ConstantOfShape { .. } => "ConstantOfShape",
            MovementOp::Expand => "Expand",
            MovementOp::Tile => "Tile",
            MovementOp::Pad { .. } => "Pad",
            MovementOp::DepthToSpace { .. } => "DepthToSpace",
            MovementOp::SpaceToDepth { .. } => "SpaceToDepth",
            MovementOp::GatherElements { .. } => "GatherElements",
            MovementOp::GatherNd { .. } => "GatherND",
            MovementOp::ScatterNd { .. } => "ScatterND",
            MovementOp::ScatterElements { .. } => "ScatterElements",
            MovementOp::Range => "Range",
            MovementOp::OneHot { .. } => "OneHot",
            MovementOp::Trilu { .. } => "Trilu",
            MovementOp::EyeLike { .. } => "EyeLike",
            MovementOp::ReverseSequence { .. } => "ReverseSequence",
            MovementOp::Compress { .. } => "Compress",
            MovementOp::CenterCropPad { .. } => "CenterCropPad",
            MovementOp::Col2Im { .. } => "Col2Im",
            MovementOp::TensorScatter { .. } => "TensorScatter",
            MovementOp::Unique { .. } => "Unique",
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> InferResult {
        match self {
            MovementOp::Reshape { allowzero } => layout::reshape(inputs, *allowzero),
            MovementOp::Flatten { axis } => layout::flatten(inputs, *axis),
            MovementOp::Transpose { perm } => layout::transpose(inputs, perm.as_deref()),
            MovementOp::Squeeze => layout::squeeze(inputs),
            MovementOp::Unsqueeze => layout::unsqueeze(inputs),
            MovementOp::Expand => layout::expand(inputs),
            MovementOp::Tile => layout::tile(inputs),
            MovementOp::DepthToSpace { blocksize, .. } => layout::depth_to_space(inputs, *blocksize),
            MovementOp::SpaceToDepth { blocksize, .. } => layout::space_to_depth(inputs, *blocksize),
            MovementOp::Concat { axis } => slicing::concat(inputs, *axis),
            MovementOp::Split { axis, outputs, uneven } => slicing::split(inputs, *axis, *outputs, *uneven),
            MovementOp::Slice => slicing::slice(inputs),
            MovementOp::Pad { mode } => slicing::pad(inputs, *mode),
            MovementOp::Trilu { .. } => slicing::trilu(inputs),
            MovementOp::ReverseSequence { batch_axis, time_axis } => slicing::reverse_sequence(inputs, *batch_axis, *time_axis),
            MovementOp::Compress { axis } => slicing::compress(inputs, *axis),
            MovementOp::CenterCropPad { axes } => slicing::center_crop_pad(inputs, axes.as_deref()),
            MovementOp::Gather { axis } => indexing::gather(inputs, *axis),
            MovementOp::GatherElements { axis } => indexing::gather_elements(inputs, *axis),
            MovementOp::GatherNd { batch_dims } => indexing::gather_nd(inputs, *batch_dims),
            MovementOp::ScatterNd { .. } => indexing::scatter_nd(inputs),
            MovementOp::ScatterElements { axis, .. } => indexing::scatter_elements(inputs, *axis),
            MovementOp::OneHot { axis } => indexing::one_hot(inputs, *axis),
            MovementOp::Shape { start, end } => generate::shape(inputs, *start, *end),
            MovementOp::Size => generate::size(inputs),
            MovementOp::ConstantOfShape { value } => generate::constant_of_shape(inputs, value),
            MovementOp::Range => generate::range(inputs),
            MovementOp::EyeLike { dtype, .. } => generate::eye_like(inputs, *dtype),
            MovementOp::Col2Im { dilations, pads, strides } => col2im::col2im(inputs, dilations.as_deref(), pads.as_deref(), strides.as_deref()),
            MovementOp::TensorScatter { axis, .. } => col2im::tensor_scatter(inputs, *axis),
            MovementOp::Unique { axis, sorted } => col2im::unique(inputs, *axis, *sorted),
        }
    }

    /// Data movement computes nothing.
    pub fn flops(&self, _inputs: &[Option<&TensorInfo>], _outputs: &[TensorInfo]) -> u64 {
        0
    }
}

/// Converts a non-negative i64 (a size from a constant input) to usize.
pub(crate) fn to_dim(v: i64, what: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("{what} must be non-negative, found {v}"))
}

/// Integer index dtypes accepted for `indices` inputs.
pub(crate) const INDEX_TYPES: &[DType] = &[DType::I32, DType::I64];
