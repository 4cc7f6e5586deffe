mod conformance;
mod convert;
mod diff;
mod generate;
mod genref;
mod infer;
mod run;
mod supported_ops;

use crate::args::Command;

/// Runs a command; returns the process exit code (0 ok, 1 check failed).
pub fn dispatch(cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Conformance { dir, filter, json, allow_list, quiet, compiled } => conformance::run(dir, filter, json, allow_list, quiet, compiled),
        Command::Generate(args) => generate::run(&args),
        Command::Run { gen, io_dir, nb_frames, n_clusters, dump_inputs } => run::run(&gen, &io_dir, nb_frames, n_clusters, dump_inputs),
        Command::Infer { gen, n } => infer::run(&gen, n),
        Command::Genref { model, io_dir, input_shapes } => genref::run(&model, &io_dir, &input_shapes),
        Command::Diff { a, b, atol, rtol, top_k } => diff::run(&a, &b, kann_io::diff::Tolerance { atol, rtol }, top_k),
        Command::Convert { files, output } => convert::run(&files, &output),
        Command::SupportedOps { markdown } => supported_ops::run(markdown),
    }
}
