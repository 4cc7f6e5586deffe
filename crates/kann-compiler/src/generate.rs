//! The compiler's entry point: an imported graph in, a [`Compiled`] network
//! out (optimised graph, program, weights, statistics), and the `.kann`
//! artifact written from it.
//!
//! The phases are public so a front-end can time them and show progress:
//! [`optimize`] (the pass pipeline) then [`build_program`] (lower →
//! memory plan → schedule).

use crate::cost::CostModel;
use crate::lower::{Lowered, Operand, Unlowered};
use crate::plan::{plan_memory, MemoryPlan};
use crate::schedule::{schedule, Schedule};
use crate::{CompileError, PassCx, PassLog, Pipeline};
use kann_artifact::{Arch, ArtifactWriter, SectionKind};
use kann_ir::{ConstEval, Graph};
use kann_kernels::{BufRef, IoTensor, Program, Step, PROGRAM_VERSION};

/// What `generate` decides beyond the graph.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Clusters (worker threads) the schedule splits work across.
    pub n_clusters: usize,
    /// The instruction set the artifact is compiled for.
    pub arch: Arch,
    /// Lets qualifying 3×3 convolutions run by Winograd F(4×4, 3×3) or F(2×2, 3×3) (faster,
    /// ~1e-5 relative error instead of the GEMM's ~1e-6); off for results
    /// bitwise closer to a direct convolution.
    pub winograd: bool,
    /// Lets chains of 1×1 and depthwise convolutions keep their activations
    /// channel-blocked (NCHW8c) between them, on x86-64 arches.
    pub blocked: bool,    /// The cost model's corrections for the machine the artifact will run
    /// on (the schedule's balance and the estimates; `kann devices`
    /// measures them), identity for another machine.
    pub calibration: crate::cost::Calibration,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Pass(#[from] CompileError),
    /// Every node the compiler cannot lower, at once.
    #[error("{} node(s) cannot be compiled: {}", .0.len(), list_unlowered(.0))]
    Unlowered(Vec<Unlowered>),
    /// A bug in the compiler (a plan or program that does not check).
    #[error("internal compiler error: {0}")]
    Internal(String),
}

fn list_unlowered(u: &[Unlowered]) -> String {
    let shown: Vec<String> = u.iter().take(8).map(|x| x.to_string()).collect();
    let more = if u.len() > 8 { format!(" (and {} more)", u.len() - 8) } else { String::new() };
    format!("{}{more}", shown.join("; "))
}

/// A compiled network.
#[derive(Debug)]
pub struct Compiled {
    /// The graph after the pass pipeline.
    pub graph: Graph,
    pub passes: PassLog,
    pub program: Program,
    /// The weights section (packed weights and constants, 64-aligned blocks).
    pub weights: Vec<u8>,
    pub stats: crate::report::Stats,
}

/// Runs the standard pass pipeline on `g`.
pub fn optimize(g: &mut Graph, const_eval: Option<&dyn ConstEval>) -> Result<PassLog, CompileError> {
    Pipeline::standard().run(g, &mut PassCx::new(const_eval))
}

/// Lowers, plans and schedules an optimised graph.
pub fn build_program(g: &Graph, opts: &CompileOptions) -> Result<(Program, Vec<u8>, BuildInfo), GenerateError> {
    let mut lowered = crate::lower::lower_graph_opts(g, opts.arch, &crate::lower::LowerOptions { winograd: opts.winograd, clusters: opts.n_clusters, blocked: opts.blocked }).map_err(GenerateError::Unlowered)?;
    let plan = plan_memory(g, &mut lowered).map_err(GenerateError::Internal)?;
    let steps = place_steps(g, &lowered, &plan)?;
    let cost = CostModel::portable().calibrated(opts.calibration);
    let sched = schedule(&steps, opts.n_clusters, &cost);
    let io = |ids: &[kann_ir::ValueId]| -> Result<Vec<IoTensor>, GenerateError> {
        ids.iter()
            .map(|&v| {
                let val = g.value(v);
                let buf = plan.value(v).ok_or_else(|| GenerateError::Internal(format!("tensor '{}' has no buffer", val.name)))?;
                Ok(IoTensor { name: val.name.clone(), dtype: crate::lower::elem_type(val.info.dtype), shape: val.info.shape.dims().to_vec(), buf })
            })
            .collect()
    };
    let inputs = io(&g.inputs)?;
    for t in &inputs {
        if !matches!(t.buf, BufRef::Arena { .. }) {
            return Err(GenerateError::Internal(format!("input '{}' is not in the arena", t.name)));
        }
    }
    let scratch = steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            sched.clusters.iter().flatten().filter_map(move |c| match *c {
                kann_kernels::Command::Run { step, begin, end } if step as usize == i => Some(s.kernel.scratch_bytes(end - begin) as u64),
                _ => None,
            })
        })
        .max()
        .unwrap_or(0)
        .next_multiple_of(64);
    let program = Program {
        version: PROGRAM_VERSION,
        inputs,
        outputs: io(&g.outputs)?,
        steps,
        clusters: sched.clusters.clone(),
        arena_bytes: plan.arena_bytes.max(64),
        scratch_bytes: scratch,
    };
    program.validate(lowered.weights.len() as u64).map_err(GenerateError::Internal)?;
    let info = BuildInfo { plan, schedule: sched, cost, lowered_steps: lowered.steps.len() };
    Ok((program, lowered.weights, info))
}

/// What building the program decided, for the statistics.
#[derive(Debug)]
pub struct BuildInfo {
    pub plan: MemoryPlan,
    pub schedule: Schedule,
    pub cost: CostModel,
    pub lowered_steps: usize,
}

/// Gives each lowered step its buffers. A graph output that no step
/// writes (a constant, or a view of an input) is read from where it lives.
fn place_steps(g: &Graph, lowered: &Lowered, plan: &MemoryPlan) -> Result<Vec<Step>, GenerateError> {
    let resolve = |op: &Operand| plan.resolve(op).ok_or_else(|| GenerateError::Internal(format!("operand {op:?} has no buffer")));
    lowered
        .steps
        .iter()
        .map(|s| {
            let node = g.node(s.node);
            Ok(Step {
                name: node.name.clone(),
                op: node.op.describe(),
                kernel: s.kernel.clone(),
                inputs: s.inputs.iter().map(resolve).collect::<Result<_, _>>()?,
                outputs: s.outputs.iter().map(resolve).collect::<Result<_, _>>()?,
                flops: s.flops,
            })
        })
        .collect()
}

/// Optimises and compiles `graph`.
pub fn compile(mut graph: Graph, opts: &CompileOptions, const_eval: Option<&dyn ConstEval>) -> Result<Compiled, GenerateError> {
    let passes = optimize(&mut graph, const_eval)?;
    let (program, weights, info) = build_program(&graph, opts)?;
    let stats = crate::report::Stats::collect(&graph, &program, &weights, &info);
    Ok(Compiled { graph, passes, program, weights, stats })
}

impl Compiled {
    /// The `.kann` artifact: metadata (the caller's JSON), the steps
    /// (Program 0), one command list per cluster (Program 1+c), the memory
    /// plan and the weights.
    pub fn artifact(&self, arch: Arch, metadata_json: &str) -> Result<ArtifactWriter<'_>, GenerateError> {
        let enc = self.program.encode().map_err(GenerateError::Internal)?;
        let mut w = ArtifactWriter::new(arch);
        let internal = |e: kann_artifact::ArtifactError| GenerateError::Internal(e.to_string());
        w.add_section(SectionKind::Metadata, 0, "metadata", metadata_json.as_bytes().to_vec()).map_err(internal)?;
        w.add_section(SectionKind::Program, 0, "steps", enc.steps).map_err(internal)?;
        for (c, bytes) in enc.clusters.into_iter().enumerate() {
            w.add_section(SectionKind::Program, 1 + c as u32, &format!("cluster.{c}"), bytes).map_err(internal)?;
        }
        w.add_section(SectionKind::MemoryPlan, 0, "memory_plan", enc.memory_plan).map_err(internal)?;
        w.add_section_aligned(SectionKind::Weights, 0, "weights", 4096, &self.weights[..]).map_err(internal)?;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::check_against_reference;
    use kann_ir::ops::elementwise::{ElementwiseOp, Unary, UnaryKind};
    use kann_ir::{GraphBuilder, Op, TensorInfo};
    use kann_kernels::Command;
    use kann_tensor::{DType, Shape};

    fn relu_chain(n: usize, len: usize) -> kann_ir::Graph {
        let mut b = GraphBuilder::new("chain", None);
        let mut v = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([len]))).unwrap();
        for i in 0..n {
            let relu = Op::Elementwise(ElementwiseOp::Unary(Unary { kind: UnaryKind::Relu }));
            v = b.add_node(&format!("relu{i}"), relu, vec![Some(v)], &[format!("y{i}")]).unwrap()[0];
        }
        b.add_output(v);
        b.finish().unwrap()
    }

    #[test]
    fn a_chain_runs_on_one_and_three_clusters() {
        for clusters in [1, 3] {
            let c = check_against_reference(relu_chain(4, 1 << 16), clusters).unwrap();
            assert_eq!(c.program.n_clusters(), clusters);
            // The input must survive; after the first step the chain computes in place.
            assert_eq!(c.stats.in_place, 3);
            let barriers = c.program.clusters[0].iter().filter(|c| matches!(c, Command::Barrier { .. })).count();
            assert_eq!(barriers, if clusters == 1 { 0 } else { 3 });
        }
    }

    /// Branches that join, with buffers reused across them: on 3 clusters
    /// every split step needs its barriers (read-after-write on the join,
    /// write-after-read when a dead branch's bytes are reused).
    #[test]
    fn diamonds_on_three_clusters_match_the_reference() {
        use kann_ir::ops::elementwise::{Binary, BinaryKind};
        let unary = |k| Op::Elementwise(ElementwiseOp::Unary(Unary { kind: k }));
        let binary = |k| Op::Elementwise(ElementwiseOp::Binary(Binary { kind: k }));
        let mut b = GraphBuilder::new("diamonds", None);
        let mut x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([3, 70_001]))).unwrap();
        for i in 0..4 {
            let a = b.add_node(&format!("relu{i}"), unary(UnaryKind::Relu), vec![Some(x)], &[format!("a{i}")]).unwrap()[0];
            let s = b.add_node(&format!("sig{i}"), unary(UnaryKind::Sigmoid), vec![Some(x)], &[format!("s{i}")]).unwrap()[0];
            let j = b.add_node(&format!("add{i}"), binary(BinaryKind::Add), vec![Some(a), Some(s)], &[format!("j{i}")]).unwrap()[0];
            x = b.add_node(&format!("mul{i}"), binary(BinaryKind::Mul), vec![Some(j), Some(a)], &[format!("m{i}")]).unwrap()[0];
        }
        b.add_output(x);
        let g = b.finish().unwrap();
        for clusters in [1, 2, 3] {
            let c = check_against_reference(g.clone(), clusters).unwrap();
            assert!(c.stats.arena_bytes < c.stats.naive_bytes, "buffers are reused");
            if clusters > 1 {
                assert!(c.stats.barriers >= 4, "joins need barriers: {}", c.stats.barriers);
            }
        }
    }

    /// Branches concatenated along channels at batch 1 write straight into
    /// the concat's output (the step is dropped), including a branch that a
    /// later step reads again and one reading a sibling slab; a concat at
    /// batch 2 (slabs interleaved) and one of a graph input stay copies.
    #[test]
    fn channel_concats_are_zero_copy() {
        use kann_ir::ops::movement::MovementOp;
        let unary = |k| Op::Elementwise(ElementwiseOp::Unary(Unary { kind: k }));
        let concat = Op::Movement(MovementOp::Concat { axis: 1 });
        for (batch, want) in [(1, 1), (2, 0)] {
            let mut b = GraphBuilder::new("concat", None);
            let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([batch, 3, 50, 50]))).unwrap();
            let a = b.add_node("relu", unary(UnaryKind::Relu), vec![Some(x)], &["a".into()]).unwrap()[0];
            let s = b.add_node("sig", unary(UnaryKind::Sigmoid), vec![Some(a)], &["s".into()]).unwrap()[0];
            let t = b.add_node("tanh", unary(UnaryKind::Tanh), vec![Some(s)], &["t".into()]).unwrap()[0];
            let y = b.add_node("cat", concat.clone(), vec![Some(a), Some(s), Some(t)], &["y".into()]).unwrap()[0];
            let z = b.add_node("neg", unary(UnaryKind::Neg), vec![Some(y)], &["z".into()]).unwrap()[0];
            // The branch `s` is read again after the concat.
            let w = b.add_node("abs", unary(UnaryKind::Abs), vec![Some(s)], &["w".into()]).unwrap()[0];
            // A concat of a graph input keeps its copy.
            let v = b.add_node("cat_in", concat.clone(), vec![Some(x), Some(w)], &["v".into()]).unwrap()[0];
            b.add_output(z);
            b.add_output(v);
            let g = b.finish().unwrap();
            for clusters in [1, 2, 3] {
                let c = check_against_reference(g.clone(), clusters).unwrap();
                assert_eq!(c.stats.zero_copy_concats, want, "batch {batch}, {clusters} clusters");
                let copies = c.program.steps.iter().filter(|s| s.kernel.name().contains("concat")).count();
                assert_eq!(copies, 2 - want, "batch {batch}");
            }
        }
    }

    /// A DenseNet-like chain: each concat takes the previous concat whole
    /// and one new branch computed from it. All of them are zero-copy, the
    /// chain living in the last concat's buffer; a step reading an early
    /// concat after later branches were written still reads its own channels.
    #[test]
    fn chained_concats_share_one_buffer() {
        use kann_ir::ops::movement::MovementOp;
        let unary = |k| Op::Elementwise(ElementwiseOp::Unary(Unary { kind: k }));
        let concat = Op::Movement(MovementOp::Concat { axis: 1 });
        let mut b = GraphBuilder::new("dense", None);
        let x = b.add_input("x", TensorInfo::new(DType::F32, Shape::from([1, 2, 40, 40]))).unwrap();
        let mut y = b.add_node("stem", unary(UnaryKind::Relu), vec![Some(x)], &["c0".into()]).unwrap()[0];
        let mut first = None;
        for i in 0..4 {
            let (kind, name) = if i % 2 == 0 { (UnaryKind::Sigmoid, "sig") } else { (UnaryKind::Tanh, "tanh") };
            let n = b.add_node(&format!("{name}{i}"), unary(kind), vec![Some(y)], &[format!("n{i}")]).unwrap()[0];
            y = b.add_node(&format!("cat{i}"), concat.clone(), vec![Some(y), Some(n)], &[format!("c{}", i + 1)]).unwrap()[0];
            first.get_or_insert(y);
        }
        let z = b.add_node("neg", unary(UnaryKind::Neg), vec![Some(y)], &["z".into()]).unwrap()[0];
        // The first concat read once more at the end.
        let w = b.add_node("abs", unary(UnaryKind::Abs), vec![first], &["w".into()]).unwrap()[0];
        b.add_output(z);
        b.add_output(w);
        let g = b.finish().unwrap();
        for clusters in [1, 2, 3] {
            let c = check_against_reference(g.clone(), clusters).unwrap();
            assert_eq!(c.stats.zero_copy_concats, 4, "{clusters} clusters");
            assert!(!c.program.steps.iter().any(|s| s.kernel.name().contains("concat")));
        }
    }

    #[test]
    fn small_steps_stay_on_one_cluster_without_barriers() {
        let c = check_against_reference(relu_chain(3, 64), 2).unwrap();
        let runs: Vec<usize> = c.program.clusters.iter().map(|l| l.iter().filter(|c| matches!(c, Command::Run { .. })).count()).collect();
        assert_eq!(runs.iter().sum::<usize>(), 3);
        assert_eq!(c.stats.barriers, 0);
    }
}
