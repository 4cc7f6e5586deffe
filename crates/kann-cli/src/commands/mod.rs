mod conformance;
mod convert;
mod diff;
mod generate;
mod genref;
mod infer;
mod prepare;
mod random_images;
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
        Command::Prepare { network, io_dir, batch_size, sources } => prepare::run(&network, &io_dir, batch_size.map(|b| b as usize), &sources),
        Command::RandomImages { out, config, format, shape, dtype, range, nb_images } => {
            let format = random_images::Format::parse(&format).map_err(|e| anyhow::anyhow!("--format: {e}"))?;
            let range = range.map(|r| (r[0], r[1]));
            random_images::run(&out, &config, &random_images::Options { format, shape, dtype, range, count: nb_images })
        }
        Command::SupportedOps { markdown } => supported_ops::run(markdown),
    }
}
