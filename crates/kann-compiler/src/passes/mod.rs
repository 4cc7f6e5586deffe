//! Optimisation passes over a [`Graph`], one file per pass, and the
//! [`Pipeline`] that runs them.
//!
//! [`Pipeline::standard`] runs, in this order:
//!
//! 1. `fold_constants` — first, so that every later pass sees constants
//!    where the importer left nodes on constant inputs (weight transforms
//!    bigger than its small fold limit, such as a `Transpose` or `Cast` of a
//!    weight, or BatchNormalization parameters computed by nodes).
//! 2. `eliminate_dead_code` — drops what nothing reads (including the
//!    nodes folding left without readers), so the rewriting passes below do
//!    not work on dead branches.
//! 3. `remove_identity` — Identity, inference Dropout, Cast to the same
//!    dtype and Reshape to the same shape sit between the producer and the
//!    consumer the folds below look for (Conv → Identity → BatchNormalization).
//! 4. `fold_reshape_chains` — collapses Reshape/Flatten/Squeeze/Unsqueeze
//!    chains into one Reshape with a constant shape; after `remove_identity`
//!    so that no-op links are already gone, and a chain that comes back to
//!    its source's shape disappears entirely.
//! 5. `fold_batch_norm` — folds an inference BatchNormalization into the
//!    Conv (or Gemm) producing its input.
//! 6. `fold_affine` — folds a per-channel constant Mul/Add/Sub/Div into the
//!    Conv producing its input. After `fold_batch_norm`, so that
//!    Conv → BN → Mul → Add chains fold completely; it repeats until the
//!    Conv's output has no more foldable consumer.
//! 7. `fuse_pad` — folds a zero (or, for MaxPool, `-inf`) constant Pad of
//!    the spatial axes into the Conv or pool reading it. Before the
//!    epilogue fusions, so that the Conv they fuse already has its pads.
//! 8. `fuse_residual_add` — makes `Add(Conv(x), other)` one Fused
//!    Conv+Add. Before `fuse_activation`, which only fuses into a producer
//!    without an activation: the other order would fuse the Relu of
//!    `Conv → Add → Relu` into the Add and leave the Conv alone.
//! 9. `fuse_activation` — moves an activation (Relu, Clip, LeakyRelu,
//!    Sigmoid, HardSigmoid, HardSwish, Tanh, SiLU) into the Conv, Gemm,
//!    MatMul, Add or Fused op producing its input. After the folds above,
//!    which need the plain Conv (a BatchNormalization after a Conv+Relu
//!    could not fold).
//! 10. `fuse_channel_scale` — folds a per-(image, channel) Mul (a
//!     squeeze-excitation gate) into the pointwise Conv reading the product.
//!     After the epilogue fusions, so the Conv it scales has its epilogue.
//! 11. `choose_layouts` — last: records the layout every convolution runs
//!     in (NCHW for the portable kernels), counting the final convolutions.
//!
//! Every pass mutates the graph only through the [`Editor`], which compacts
//! and verifies the graph when the pass finishes; the pipeline verifies the
//! graph before the first pass and after each pass when
//! [`PassCx::verify_each`] is set (the default in debug builds and tests).
//! Passes that leave nodes without readers remove them themselves, so the
//! pipeline needs no second dead-code sweep.

mod choose_layouts;
mod eliminate_dead_code;
mod fold_affine;
mod fold_batch_norm;
mod fold_constants;
mod fold_reshape_chains;
mod fuse_activation;
pub(crate) mod fuse_channel_scale;
mod fuse_pad;
mod fuse_residual_add;
mod remove_identity;

pub use choose_layouts::ChooseLayouts;
pub use eliminate_dead_code::EliminateDeadCode;
pub use fold_affine::FoldAffine;
pub use fold_batch_norm::FoldBatchNorm;
pub use fold_constants::{FoldConstants, DEFAULT_FOLD_LIMIT};
pub use fold_reshape_chains::FoldReshapeChains;
pub use fuse_activation::FuseActivation;
pub use fuse_channel_scale::FuseChannelScale;
pub use fuse_pad::FusePad;
pub use fuse_residual_add::FuseResidualAdd;
pub use remove_identity::RemoveIdentity;

use crate::{CompileError, Editor};
use kann_ir::{ConstEval, Graph};
use std::fmt;

/// One optimisation pass.
pub trait Pass {
    /// The pass's file name, `verb_object` (`fold_batch_norm`).
    fn name(&self) -> &'static str;
    /// Rewrites `g` in place and reports what changed. Leaves `g` verified.
    fn run(&self, g: &mut Graph, cx: &mut PassCx) -> Result<PassReport, CompileError>;
}

/// What passes may use besides the graph.
pub struct PassCx<'a> {
    /// Evaluates constant nodes (usually `kann_reference::Reference`).
    /// Without it `fold_constants` folds nothing and says so.
    pub const_eval: Option<&'a dyn ConstEval>,
    /// `fold_constants` leaves nodes whose outputs together hold more
    /// elements than this.
    pub fold_limit: usize,
    /// Verify the graph after each pass (default: in debug builds).
    pub verify_each: bool,
}

impl<'a> PassCx<'a> {
    pub fn new(const_eval: Option<&'a dyn ConstEval>) -> PassCx<'a> {
        PassCx { const_eval, fold_limit: DEFAULT_FOLD_LIMIT, verify_each: cfg!(debug_assertions) }
    }
}

/// One counter of a report: `folded 53 BatchNormalization into Conv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub verb: &'static str,
    pub what: String,
    pub count: usize,
}

/// What one pass changed: counters that print as the log line, plus notes
/// (things it left alone and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub pass: &'static str,
    pub counters: Vec<Counter>,
    pub notes: Vec<String>,
}

impl PassReport {
    pub fn new(pass: &'static str) -> PassReport {
        PassReport { pass, counters: Vec::new(), notes: Vec::new() }
    }

    /// Adds `n` to the counter `verb what`, creating it at its first use.
    pub fn add(&mut self, verb: &'static str, what: &str, n: usize) {
        match self.counters.iter_mut().find(|c| c.verb == verb && c.what == what) {
            Some(c) => c.count += n,
            None => self.counters.push(Counter { verb, what: what.to_string(), count: n }),
        }
    }

    /// The counter `verb what` (0 when absent).
    pub fn get(&self, verb: &str, what: &str) -> usize {
        self.counters.iter().find(|c| c.verb == verb && c.what == what).map_or(0, |c| c.count)
    }

    /// Sum of every counter: how many rewrites the pass made.
    pub fn total(&self) -> usize {
        self.counters.iter().map(|c| c.count).sum()
    }
}

impl fmt::Display for PassReport {
    /// `fold_batch_norm: folded 53 BatchNormalization into Conv` (counters
    /// joined by `, `, notes after `; `), or `…: no change`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.pass)?;
        let counters: Vec<String> = self.counters.iter().filter(|c| c.count > 0).map(|c| format!("{} {} {}", c.verb, c.count, c.what)).collect();
        if counters.is_empty() {
            write!(f, "no change")?;
        } else {
            write!(f, "{}", counters.join(", "))?;
        }
        for n in &self.notes {
            write!(f, "; {n}")?;
        }
        Ok(())
    }
}

/// The reports of a pipeline run, one per pass, in order. Displays one line
/// per pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassLog {
    pub reports: Vec<PassReport>,
}

impl PassLog {
    /// The report of the pass named `pass` (the first, if it ran twice).
    pub fn report(&self, pass: &str) -> Option<&PassReport> {
        self.reports.iter().find(|r| r.pass == pass)
    }
}

impl fmt::Display for PassLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.reports {
            writeln!(f, "{r}")?;
        }
        Ok(())
    }
}

/// An ordered list of passes.
pub struct Pipeline {
    passes: Vec<Box<dyn Pass>>,
}

impl Pipeline {
    /// The standard order; the module documentation says why.
    pub fn standard() -> Pipeline {
        Pipeline {
            passes: vec![
                Box::new(FoldConstants),
                Box::new(EliminateDeadCode),
                Box::new(RemoveIdentity),
                Box::new(FoldReshapeChains),
                Box::new(FoldBatchNorm),
                Box::new(FoldAffine),
                Box::new(FusePad),
                Box::new(FuseResidualAdd),
                Box::new(FuseActivation),
                Box::new(FuseChannelScale),
                Box::new(ChooseLayouts),
            ],
        }
    }

    /// A pipeline of the given passes, in order.
    pub fn new(passes: Vec<Box<dyn Pass>>) -> Pipeline {
        Pipeline { passes }
    }

    /// Names of the passes, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs every pass in order. Errors name the pass.
    pub fn run(&self, g: &mut Graph, cx: &mut PassCx) -> Result<PassLog, CompileError> {
        if cx.verify_each {
            kann_ir::verify(g).map_err(|source| CompileError::InvalidInput { source })?;
        }
        let mut log = PassLog::default();
        for p in &self.passes {
            let wrap = |e: CompileError| CompileError::Pass { pass: p.name(), source: Box::new(e) };
            let report = p.run(g, cx).map_err(wrap)?;
            if cx.verify_each {
                kann_ir::verify(g).map_err(|source| wrap(CompileError::Invalid { source }))?;
            }
            log.reports.push(report);
        }
        Ok(log)
    }
}

/// Runs `f` on an editor over `g` and finishes (compacts, verifies) it.
pub(crate) fn edit<T>(g: &mut Graph, f: impl FnOnce(&mut Editor) -> Result<T, CompileError>) -> Result<T, CompileError> {
    let mut ed = Editor::new(g);
    let out = f(&mut ed)?;
    ed.finish()?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use kann_ir::ops::movement::MovementOp;
    use kann_ir::Op;

    /// Conv → Identity → BN → Mul(2·k) → Relu → Flatten → Reshape, with a
    /// dead branch: every pass has something to do.
    fn graph() -> Graph {
        let mut b = builder();
        let x = b.input("x", &[1, 2, 4, 4]);
        let c = b.conv("conv", x, 2, 3, 3, true);
        let i = b.unary("id", UnaryKind::Identity, c);
        let n = b.batch_norm("bn", i, 3);
        let k = b.random("k", &[3, 1, 1]);
        let two = b.constant("two", &[], vec![2.0]);
        let k2 = b.binary("k2", BinaryKind::Mul, k, two);
        let m = b.binary("m", BinaryKind::Mul, n, k2);
        let r = b.unary("relu", UnaryKind::Relu, m);
        let _dead = b.unary("dead", UnaryKind::Exp, r);
        let f = b.node("flat", Op::Movement(MovementOp::Flatten { axis: 1 }), &[Some(r)])[0];
        let shape = b.constant_i64("shape", vec![4, 12]);
        let y = b.node("y", Op::Movement(MovementOp::Reshape { allowzero: false }), &[Some(f), Some(shape)])[0];
        b.output(y);
        b.finish()
    }

    #[test]
    fn standard_pipeline_log_snapshot() {
        let mut g = graph();
        let before = g.clone();
        let log = Pipeline::standard().run(&mut g, &mut PassCx::new(Some(&kann_reference::Reference))).unwrap();
        assert_eq!(op_names(&g), ["Fused", "Reshape"]);
        assert_eq!(
            log.to_string(),
            "fold_constants: folded 1 constant nodes\n\
             eliminate_dead_code: eliminated 1 dead nodes\n\
             remove_identity: removed 1 Identity\n\
             fold_reshape_chains: collapsed 1 reshape chains, removed 1 links\n\
             fold_batch_norm: folded 1 BatchNormalization into Conv\n\
             fold_affine: folded 1 Mul into Conv\n\
             fuse_pad: no change\n\
             fuse_residual_add: no change\n\
             fuse_activation: fused 1 Relu; Relu: 1/1 fused\n\
             fuse_channel_scale: no change\n\
             choose_layouts: no change; layout: NCHW for 1 convolutions, 0 transposes\n"
        );
        assert_same_outputs(&before, &g);
    }

    /// A pass that breaks the graph behind the editor's back.
    struct Break;
    impl Pass for Break {
        fn name(&self) -> &'static str {
            "break_graph"
        }
        fn run(&self, g: &mut Graph, _cx: &mut PassCx) -> Result<PassReport, CompileError> {
            g.nodes.remove(0);
            Ok(PassReport::new(self.name()))
        }
    }

    #[test]
    fn a_pass_that_breaks_the_graph_is_caught_and_named() {
        let mut g = graph();
        let mut cx = PassCx::new(None);
        cx.verify_each = true;
        let err = Pipeline::new(vec![Box::new(Break)]).run(&mut g, &mut cx).unwrap_err();
        assert_eq!(err.to_string(), "pass break_graph: the edited graph is invalid: invalid graph: node #0 \"id\" (Identity): input 3 is used before it is defined");
    }

    #[test]
    fn standard_order_is_documented() {
        let names = Pipeline::standard().names();
        assert_eq!(names, ["fold_constants", "eliminate_dead_code", "remove_identity", "fold_reshape_chains", "fold_batch_norm", "fold_affine", "fuse_pad", "fuse_residual_add", "fuse_activation", "fuse_channel_scale", "choose_layouts"]);
        let doc = include_str!("mod.rs");
        let mut at = 0;
        for n in names {
            at += doc[at..].find(&format!("`{n}`")).unwrap_or_else(|| panic!("{n} is not documented in order"));
        }
    }
}
