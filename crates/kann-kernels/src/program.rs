//! The compiled program: what `kann generate` decides and the runtime
//! executes without further thought.

use crate::Kernel;
use serde::{Deserialize, Serialize};

/// Bumped when the serialised program changes incompatibly; the runtime
/// refuses another version with a message.
pub const PROGRAM_VERSION: u32 = 17;

/// Where a buffer lives. Offsets and lengths are in bytes; every buffer
/// starts 64-byte aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BufRef {
    /// In the activation arena, allocated once at `init_device`.
    Arena { offset: u64, len: u64 },
    /// In the artifact's weights section, mapped read-only.
    Weights { offset: u64, len: u64 },
}

impl BufRef {
    pub fn len(&self) -> u64 {
        match *self {
            BufRef::Arena { len, .. } | BufRef::Weights { len, .. } => len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether two references share a byte (same region kind, overlapping ranges).
    pub fn overlaps(&self, other: &BufRef) -> bool {
        match (*self, *other) {
            (BufRef::Arena { offset: a, len: la }, BufRef::Arena { offset: b, len: lb })
            | (BufRef::Weights { offset: a, len: la }, BufRef::Weights { offset: b, len: lb }) => {
                la > 0 && lb > 0 && a < b + lb && b < a + la
            }
            _ => false,
        }
    }
}

/// Element types the program's interface carries (the runtime does not
/// depend on kann-tensor's full tensor type, only on these names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElemType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    U8,
    I32,
    I64,
    Bool,
}

impl ElemType {
    pub fn size(self) -> usize {
        match self {
            ElemType::F64 | ElemType::I64 => 8,
            ElemType::F32 | ElemType::I32 => 4,
            ElemType::F16 | ElemType::BF16 => 2,
            ElemType::I8 | ElemType::U8 | ElemType::Bool => 1,
        }
    }

    /// The name kann-tensor's `DType::name` uses (`f32`, `i64`…).
    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::F16 => "f16",
            ElemType::BF16 => "bf16",
            ElemType::F64 => "f64",
            ElemType::I8 => "i8",
            ElemType::U8 => "u8",
            ElemType::I32 => "i32",
            ElemType::I64 => "i64",
            ElemType::Bool => "bool",
        }
    }
}

/// A network input or output: its name, type and where it lives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IoTensor {
    pub name: String,
    pub dtype: ElemType,
    pub shape: Vec<usize>,
    pub buf: BufRef,
}

impl IoTensor {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> usize {
        self.elements() * self.dtype.size()
    }
}

/// One kernel call over the whole of its outputs; clusters run parts of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The graph node(s) it computes, for tables and traces (`conv1+relu1`).
    pub name: String,
    /// The op type(s) as the log shows them (`Conv+Relu`).
    pub op: String,
    pub kernel: Kernel,
    pub inputs: Vec<BufRef>,
    pub outputs: Vec<BufRef>,
    /// Floating-point operations of the whole step (a multiply-add is 2).
    pub flops: u64,
}

/// One entry of a cluster's command list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Run work items `begin..end` of step `step`.
    Run { step: u32, begin: u64, end: u64 },
    /// Wait until every cluster reaches its barrier with the same index.
    /// Every cluster's list holds the same barriers in the same order.
    Barrier { index: u32 },
}

/// The whole compiled network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub version: u32,
    pub inputs: Vec<IoTensor>,
    pub outputs: Vec<IoTensor>,
    pub steps: Vec<Step>,
    /// One command list per cluster.
    pub clusters: Vec<Vec<Command>>,
    /// Bytes of the activation arena.
    pub arena_bytes: u64,
    /// Scratch bytes each cluster needs (im2col panels and the like).
    pub scratch_bytes: u64,
}

impl Program {
    pub fn n_clusters(&self) -> usize {
        self.clusters.len()
    }

    /// Checks what the runtime relies on: buffers in bounds, one command
    /// list per cluster, matching barriers, parts within each step's work.
    /// `weights_len` is the byte length of the weights section.
    pub fn validate(&self, weights_len: u64) -> Result<(), String> {
        if self.version != PROGRAM_VERSION {
            return Err(format!("program version {} is not supported (this runtime reads {PROGRAM_VERSION})", self.version));
        }
        if self.clusters.is_empty() {
            return Err("the program has no cluster".into());
        }
        let in_bounds = |b: &BufRef, what: &str| -> Result<(), String> {
            let (end, limit, region) = match *b {
                BufRef::Arena { offset, len } => (offset.checked_add(len), self.arena_bytes, "arena"),
                BufRef::Weights { offset, len } => (offset.checked_add(len), weights_len, "weights"),
            };
            match end {
                Some(e) if e <= limit => Ok(()),
                _ => Err(format!("{what} lies outside the {region} ({limit} bytes)")),
            }
        };
        for t in self.inputs.iter().chain(&self.outputs) {
            in_bounds(&t.buf, &format!("tensor '{}'", t.name))?;
            if t.buf.len() != t.bytes() as u64 {
                return Err(format!("tensor '{}' has {} bytes but its buffer {}", t.name, t.bytes(), t.buf.len()));
            }
        }
        for (i, s) in self.steps.iter().enumerate() {
            for b in s.inputs.iter().chain(&s.outputs) {
                in_bounds(b, &format!("a buffer of step #{i} '{}'", s.name))?;
            }
            if s.outputs.iter().any(|b| matches!(b, BufRef::Weights { .. })) {
                return Err(format!("step #{i} '{}' writes into the weights", s.name));
            }
            s.kernel.check(s.inputs.len(), s.outputs.len()).map_err(|e| format!("step #{i} '{}': {e}", s.name))?;
        }
        let mut barriers: Option<Vec<u32>> = None;
        for (c, cmds) in self.clusters.iter().enumerate() {
            let mut mine = Vec::new();
            for cmd in cmds {
                match *cmd {
                    Command::Run { step, begin, end } => {
                        let s = self.steps.get(step as usize).ok_or_else(|| format!("cluster {c} runs step #{step}, which does not exist"))?;
                        if begin > end || end > s.kernel.work_items() {
                            return Err(format!("cluster {c} runs items {begin}..{end} of step #{step} '{}', which has {}", s.name, s.kernel.work_items()));
                        }
                    }
                    Command::Barrier { index } => mine.push(index),
                }
            }
            match &barriers {
                None => barriers = Some(mine),
                Some(b) if *b == mine => {}
                Some(_) => return Err(format!("cluster {c}'s barriers do not match cluster 0's")),
            }
        }
        Ok(())
    }
}

/// The program as the artifact stores it: the steps, one command list per
/// cluster, and the memory plan (arena, scratch, inputs and outputs), each
/// its own section so tools can read one without the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedProgram {
    pub steps: Vec<u8>,
    pub clusters: Vec<Vec<u8>>,
    pub memory_plan: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct StepsSection {
    version: u32,
    steps: Vec<Step>,
}

#[derive(Serialize, Deserialize)]
struct MemoryPlanSection {
    arena_bytes: u64,
    scratch_bytes: u64,
    inputs: Vec<IoTensor>,
    outputs: Vec<IoTensor>,
}

impl Program {
    /// Serialises the program into its sections (postcard).
    pub fn encode(&self) -> Result<EncodedProgram, String> {
        let err = |e: postcard::Error| format!("cannot encode the program: {e}");
        let steps = postcard::to_allocvec(&StepsSection { version: self.version, steps: self.steps.clone() }).map_err(err)?;
        let clusters = self.clusters.iter().map(|c| postcard::to_allocvec(c).map_err(err)).collect::<Result<_, _>>()?;
        let plan = MemoryPlanSection {
            arena_bytes: self.arena_bytes,
            scratch_bytes: self.scratch_bytes,
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
        };
        Ok(EncodedProgram { steps, clusters, memory_plan: postcard::to_allocvec(&plan).map_err(err)? })
    }

    /// Reads the sections back; the caller then runs [`Program::validate`].
    pub fn decode(steps: &[u8], clusters: &[&[u8]], memory_plan: &[u8]) -> Result<Program, String> {
        let s: StepsSection = postcard::from_bytes(steps).map_err(|e| format!("the program section cannot be decoded ({e}): the artifact was made by a different kann build; regenerate it with `kann generate`"))?;
        if s.version != PROGRAM_VERSION {
            return Err(format!("program version {} is not supported (this runtime reads {PROGRAM_VERSION})", s.version));
        }
        let clusters = clusters
            .iter()
            .enumerate()
            .map(|(i, b)| postcard::from_bytes(b).map_err(|e| format!("the command list of cluster {i} is corrupt: {e}")))
            .collect::<Result<Vec<Vec<Command>>, _>>()?;
        let p: MemoryPlanSection = postcard::from_bytes(memory_plan).map_err(|e| format!("the memory plan section is corrupt: {e}"))?;
        Ok(Program {
            version: s.version,
            inputs: p.inputs,
            outputs: p.outputs,
            steps: s.steps,
            clusters,
            arena_bytes: p.arena_bytes,
            scratch_bytes: p.scratch_bytes,
        })
    }
}
