mod conformance;
mod convert;
mod diff;
mod generate;
mod genref;
// `kann run` and `kann infer`: the integrator wires their clap arguments.
#[allow(dead_code)]
pub mod infer;
#[allow(dead_code)]
pub mod run;
mod supported_ops;

use crate::args::Command;

/// Runs a command; returns the process exit code (0 ok, 1 check failed).
pub fn dispatch(cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Conformance { dir, filter, json, allow_list, quiet, compiled } => conformance::run(dir, filter, json, allow_list, quiet, compiled),
        Command::Generate(args) => generate::run(&args),
        Command::Genref { model, io_dir, input_shapes } => genref::run(&model, &io_dir, &input_shapes),
        Command::Diff { a, b, atol, rtol, top_k } => diff::run(&a, &b, kann_io::diff::Tolerance { atol, rtol }, top_k),
        Command::Convert { files, output } => convert::run(&files, &output),
        Command::SupportedOps { markdown } => supported_ops::run(markdown),
    }
}
