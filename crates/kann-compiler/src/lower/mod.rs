//! Lowering: each node of the optimised graph becomes kernel steps from the
//! catalog of kann-kernels, with its weights packed the way the kernel
//! reads them. One file per group of ops (`conv.rs`, `elementwise.rs`…);
//! [`lower_graph`] walks the nodes in order and reports every node it cannot
//! lower at once.
//!
//! A lowering sees the node through [`LowerCx`]: the static types of its
//! values, constant inputs (which land in the weights section on their own
//! when a step reads them), [`LowerCx::weights_f32`] for packed weights,
//! [`LowerCx::temp`] for intermediate buffers, and [`LowerCx::alias`] for
//! ops that are only a new view of the same bytes (Reshape, Flatten…).
//! Buffers get their places later, in the memory plan; lowering only says
//! which values a step reads and writes.

mod elementwise;
mod movement;
pub(crate) mod nn;
mod reduce;
mod resample;

use kann_artifact::Arch;
use kann_ir::{Graph, Node, NodeId, Op, TensorInfo, ValueId};
use kann_kernels::{ElemType, Kernel};
use kann_tensor::{DType, Tensor};
use std::collections::HashMap;

/// A buffer a lowered step reads or writes, before the memory plan places it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// A graph value (activations; a constant one goes to the weights).
    Value(ValueId),
    /// Bytes `offset..offset+len` of the weights section.
    Weights { offset: u64, len: u64 },
    /// An intermediate buffer of a multi-step lowering ([`LowerCx::temp`]).
    Temp(u32),
}

/// A step before placement.
#[derive(Clone, Debug)]
pub struct LoweredStep {
    /// The node it comes from.
    pub node: NodeId,
    pub kernel: Kernel,
    pub inputs: Vec<Operand>,
    pub outputs: Vec<Operand>,
    pub flops: u64,
}

/// The lowered graph: steps in execution order, the weights section, and
/// which values are views of others.
#[derive(Debug, Default)]
pub struct Lowered {
    pub steps: Vec<LoweredStep>,
    /// The weights section, each block 64-byte aligned.
    pub weights: Vec<u8>,
    /// Value → the value whose bytes it shares (resolved to the root).
    pub aliases: HashMap<ValueId, ValueId>,
    /// Byte sizes of the temps.
    pub temps: Vec<u64>,
    /// Where constant values landed in the weights.
    pub constants: HashMap<ValueId, (u64, u64)>,
}

/// Why a node cannot be lowered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlowered {
    /// `node #12 "Conv_3" (Conv)`.
    pub node: String,
    /// The op type (`describe()` of the op).
    pub op: String,
    pub reason: String,
}

impl std::fmt::Display for Unlowered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.node, self.reason)
    }
}

/// What a lowering function may use.
pub struct LowerCx<'g> {
    pub graph: &'g Graph,
    /// The instruction set the artifact is compiled for (picks kernel variants).
    pub arch: Arch,
    /// Whether qualifying 3×3 convolutions may run by Winograd.
    pub winograd: bool,
    /// Clusters the program will be scheduled on (some lowerings split work
    /// that every cluster would otherwise repeat into a step of its own).
    pub clusters: usize,
    /// The nodes reading each value (a graph output counts as a reader too).
    readers: HashMap<ValueId, Vec<Option<NodeId>>>,
    /// Pointwise convolutions lowered together with the depthwise
    /// convolution that alone reads them (by their output).
    pending_pointwise: HashMap<ValueId, nn::PendingPointwise>,
    /// Stem convolutions lowered together with the MaxPool that alone
    /// reads them (by their output).
    pending_direct: HashMap<ValueId, nn::PendingDirect>,
    /// The convolutions lowered on channel-blocked activations, and which
    /// values are kept blocked ([`nn::blocked`]).
    pub(crate) blocked: nn::blocked::Regions,
    out: Lowered,
}

/// What [`lower_graph_opts`] may choose.
#[derive(Clone, Debug)]
pub struct LowerOptions {
    /// Whether qualifying 3×3 convolutions may run by Winograd.
    pub winograd: bool,
    /// Clusters the program will be scheduled on.
    pub clusters: usize,
    /// Whether chains of 1×1 and depthwise convolutions may keep their
    /// activations channel-blocked (NCHW8c).
    pub blocked: bool,
}

/// The SIMD variant of kernels for the target arch (the runtime refuses an
/// artifact whose arch the CPU lacks, so the kernels need not check again).
pub fn kernel_isa(arch: Arch) -> kann_kernels::Isa {
    match arch {
        Arch::X86_64V4 => kann_kernels::Isa::Avx512,
        Arch::X86_64V3 => kann_kernels::Isa::Avx2,
        _ => kann_kernels::Isa::Generic,
    }
}

/// Result of lowering one node: `Err` holds the reason it is not supported.
pub type LowerResult = Result<(), String>;

impl<'g> LowerCx<'g> {
    fn new(graph: &'g Graph, arch: Arch, winograd: bool, clusters: usize) -> LowerCx<'g> {
        let mut readers: HashMap<ValueId, Vec<Option<NodeId>>> = HashMap::new();
        for (i, n) in graph.nodes.iter().enumerate() {
            for v in n.inputs.iter().flatten() {
                readers.entry(*v).or_default().push(Some(NodeId(i as u32)));
            }
        }
        for v in &graph.outputs {
            readers.entry(*v).or_default().push(None);
        }
        LowerCx { graph, arch, winograd, clusters, readers, pending_pointwise: HashMap::new(), pending_direct: HashMap::new(), blocked: nn::blocked::Regions::default(), out: Lowered::default() }
    }

    /// The one node reading `v`, when exactly one node (and no graph output) does.
    pub fn sole_reader(&self, v: ValueId) -> Option<NodeId> {
        match self.readers.get(&v).map(Vec::as_slice) {
            Some([Some(n)]) => Some(*n),
            _ => None,
        }
    }

    /// The static type of a value.
    pub fn info(&self, v: ValueId) -> &'g TensorInfo {
        &self.graph.value(v).info
    }

    /// The value of a constant.
    pub fn constant(&self, v: ValueId) -> Option<&'g Tensor> {
        self.graph.value(v).constant.as_deref()
    }

    /// Input `i` of `node`, which must be present.
    pub fn input(&self, node: &Node, i: usize) -> Result<ValueId, String> {
        node.inputs.get(i).copied().flatten().ok_or_else(|| format!("input #{i} is missing"))
    }

    /// Input `i` of `node` if present.
    pub fn optional_input(&self, node: &Node, i: usize) -> Option<ValueId> {
        node.inputs.get(i).copied().flatten()
    }

    /// Appends f32 values (packed as the kernel wants them) to the weights.
    pub fn weights_f32(&mut self, values: &[f32]) -> Operand {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.weights_bytes(&bytes)
    }

    /// Appends raw bytes to the weights, 64-byte aligned.
    pub fn weights_bytes(&mut self, bytes: &[u8]) -> Operand {
        let w = &mut self.out.weights;
        w.resize(w.len().next_multiple_of(64), 0);
        let offset = w.len() as u64;
        w.extend_from_slice(bytes);
        Operand::Weights { offset, len: bytes.len() as u64 }
    }

    /// A fresh intermediate buffer of `bytes` bytes.
    pub fn temp(&mut self, bytes: u64) -> Operand {
        self.out.temps.push(bytes);
        Operand::Temp(self.out.temps.len() as u32 - 1)
    }

    /// Declares `output` a view of `input`'s bytes (same size, new shape).
    pub fn alias(&mut self, output: ValueId, input: ValueId) -> LowerResult {
        let (a, b) = (self.info(output), self.info(input));
        if a.numel() * a.dtype.size() != b.numel() * b.dtype.size() {
            return Err(format!("cannot view {b} as {a}"));
        }
        let root = self.out.aliases.get(&input).copied().unwrap_or(input);
        self.out.aliases.insert(output, root);
        Ok(())
    }

    /// Adds a step reading and writing graph values or temps/weights.
    pub fn push(&mut self, node: NodeId, kernel: Kernel, inputs: Vec<Operand>, outputs: Vec<Operand>, flops: u64) {
        self.out.steps.push(LoweredStep { node, kernel, inputs, outputs, flops });
    }
}

/// The kernels' element type for a dtype.
pub fn elem_type(d: DType) -> ElemType {
    match d {
        DType::F32 => ElemType::F32,
        DType::F16 => ElemType::F16,
        DType::BF16 => ElemType::BF16,
        DType::F64 => ElemType::F64,
        DType::I8 => ElemType::I8,
        DType::U8 => ElemType::U8,
        DType::I32 => ElemType::I32,
        DType::I64 => ElemType::I64,
        DType::Bool => ElemType::Bool,
    }
}

/// Refuses a value whose dtype is not f32 (the portable kernels' type).
pub fn require_f32(cx: &LowerCx, v: ValueId, what: &str) -> LowerResult {
    let d = cx.info(v).dtype;
    if d == DType::F32 {
        Ok(())
    } else {
        Err(format!("{what} has dtype {d}; the compiled path supports f32 here"))
    }
}

/// Lowers one node by its op.
fn lower_node(cx: &mut LowerCx, id: NodeId) -> LowerResult {
    let node = cx.graph.node(id);
    match &node.op {
        Op::Elementwise(op) => elementwise::lower(cx, id, node, op),
        Op::Nn(op) => nn::lower(cx, id, node, op),
        Op::Fused(f) => nn::lower_fused(cx, id, node, f),
        Op::Movement(op) => movement::lower(cx, id, node, op),
        Op::Reduce(op) => reduce::lower(cx, id, node, op),
        Op::Resample(op) => resample::lower(cx, id, node, op),
    }
}

/// Lowers every node of `g` (in order) with the kernels of `arch`. Constant
/// graph outputs are copied from the weights. Fails with every node that
/// cannot be lowered.
pub fn lower_graph(g: &Graph, arch: Arch) -> Result<Lowered, Vec<Unlowered>> {
    lower_graph_with(g, arch, true, 1)
}

/// [`lower_graph`], with Winograd convolutions allowed or not, for a
/// program scheduled on `clusters` clusters.
pub fn lower_graph_with(g: &Graph, arch: Arch, winograd: bool, clusters: usize) -> Result<Lowered, Vec<Unlowered>> {
    lower_graph_opts(g, arch, &LowerOptions { winograd, clusters, blocked: false })
}

/// [`lower_graph`] with every choice spelled out.
pub fn lower_graph_opts(g: &Graph, arch: Arch, opts: &LowerOptions) -> Result<Lowered, Vec<Unlowered>> {
    let mut cx = LowerCx::new(g, arch, opts.winograd, opts.clusters);
    if opts.blocked {
        cx.blocked = nn::blocked::Regions::choose(g, arch, opts.winograd, opts.clusters);
    }
    let mut missing = Vec::new();
    for i in 0..g.nodes.len() {
        let id = NodeId(i as u32);
        if let Err(reason) = lower_node(&mut cx, id) {
            missing.push(Unlowered { node: g.locate(id), op: g.node(id).op.describe(), reason });
        }
    }
    if let Some(v) = cx.pending_pointwise.keys().next() {
        // Unreachable by construction (the reader was checked when deferring).
        missing.push(Unlowered { node: g.value(*v).name.clone(), op: "Conv".into(), reason: "a pointwise convolution waited for a depthwise reader that never came".into() });
    }
    if let Some(v) = cx.pending_direct.keys().next() {
        // Unreachable by construction (the reader was checked when deferring).
        missing.push(Unlowered { node: g.value(*v).name.clone(), op: "Conv".into(), reason: "a convolution waited for a MaxPool reader that never came".into() });
    }
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(cx.out)
}
