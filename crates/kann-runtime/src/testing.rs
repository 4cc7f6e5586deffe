//! Building artifacts by hand, for tests of the runtime and its clients:
//! the section layout the compiler writes, from a [`Program`] and weights.

use kann_artifact::{Arch, ArtifactWriter, SectionKind};
use kann_kernels::unary::{Unary, UnaryKind};
use kann_kernels::{BufRef, Command, ElemType, IoTensor, Kernel, Program, Step, PROGRAM_VERSION};

/// The bytes of an artifact holding `program`, `weights` and `metadata`
/// (JSON text), laid out as the compiler does: Metadata 0, Program 0 (steps),
/// Program 1+c (cluster c's commands), MemoryPlan 0, Weights 0.
pub fn artifact_bytes(program: &Program, weights: &[u8], metadata: &str) -> Result<Vec<u8>, String> {
    let enc = program.encode()?;
    let mut w = ArtifactWriter::new(Arch::Generic);
    let err = |e: kann_artifact::ArtifactError| e.to_string();
    w.add_section(SectionKind::Metadata, 0, "metadata", metadata.as_bytes().to_vec()).map_err(err)?;
    w.add_section(SectionKind::Program, 0, "program", enc.steps).map_err(err)?;
    for (c, cmds) in enc.clusters.into_iter().enumerate() {
        w.add_section(SectionKind::Program, 1 + c as u32, &format!("cluster.{c}"), cmds).map_err(err)?;
    }
    w.add_section(SectionKind::MemoryPlan, 0, "memory_plan", enc.memory_plan).map_err(err)?;
    w.add_section(SectionKind::Weights, 0, "weights", weights.to_vec()).map_err(err)?;
    w.to_bytes().map_err(err)
}

/// The start of the next 64-byte-aligned buffer after `bytes`.
fn align64(bytes: u64) -> u64 {
    bytes.div_ceil(64) * 64
}

fn relu(len: u64, inputs: Vec<BufRef>, outputs: Vec<BufRef>, name: &str) -> Step {
    Step { name: name.into(), op: "Relu".into(), kernel: Kernel::Unary(Unary { kind: UnaryKind::Relu, len, isa: kann_kernels::Isa::Generic }), inputs, outputs, flops: len }
}

/// The contiguous part `c` of `n` of `items` work items.
pub fn part(items: u64, n: usize, c: usize) -> (u64, u64) {
    let (n, c) = (n as u64, c as u64);
    (items * c / n, items * (c + 1) / n)
}

/// A test network of `len` f32 over `n_clusters` clusters:
/// - `t = relu(x)`, split evenly (cluster c runs part c);
/// - a barrier;
/// - `y = relu(t)`, split with the parts rotated (cluster c runs part c+1),
///   so each cluster reads what another wrote: wrong without the barrier;
/// - `w = relu(weights[0..wlen])` on cluster 0 alone (reads the mapping).
///
/// Inputs: `x` [len]; outputs: `y` [len], `w` [wlen]; weights: `wlen` f32.
pub fn relu_chain(n_clusters: usize, len: u64, wlen: u64) -> Program {
    let bytes = len * 4;
    let x = BufRef::Arena { offset: 0, len: bytes };
    let t = BufRef::Arena { offset: align64(bytes), len: bytes };
    let y = BufRef::Arena { offset: 2 * align64(bytes), len: bytes };
    let w_out = BufRef::Arena { offset: 3 * align64(bytes), len: wlen * 4 };
    let w_in = BufRef::Weights { offset: 0, len: wlen * 4 };
    let steps = vec![relu(len, vec![x], vec![t], "relu1"), relu(len, vec![t], vec![y], "relu2"), relu(wlen, vec![w_in], vec![w_out], "relu_w")];
    let clusters = (0..n_clusters)
        .map(|c| {
            let (b0, e0) = part(len, n_clusters, c);
            let (b1, e1) = part(len, n_clusters, (c + 1) % n_clusters);
            let mut cmds = vec![Command::Run { step: 0, begin: b0, end: e0 }, Command::Barrier { index: 0 }, Command::Run { step: 1, begin: b1, end: e1 }];
            if c == 0 {
                cmds.push(Command::Run { step: 2, begin: 0, end: wlen });
            }
            cmds
        })
        .collect();
    let io = |name: &str, n: u64, buf| IoTensor { name: name.into(), dtype: ElemType::F32, shape: vec![n as usize], buf };
    Program {
        version: PROGRAM_VERSION,
        inputs: vec![io("x", len, x)],
        outputs: vec![io("y", len, y), io("w", wlen, w_out)],
        steps,
        clusters,
        arena_bytes: 3 * align64(bytes) + align64(wlen * 4),
        scratch_bytes: 0,
    }
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// f32 values of little-endian bytes (a trailing partial value is dropped).
pub fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}
