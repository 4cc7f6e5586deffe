mod bench;
mod conformance;
mod convert;
pub mod demo;
mod devices;
mod diff;
mod generate;
mod genref;
mod infer;
mod prepare;
mod quickstart;
mod random_images;
mod run;
mod supported_ops;
mod zoo;

use crate::args::{Command, ZooAction};

/// Runs a command; returns the process exit code (0 ok, 1 check failed).
pub fn dispatch(cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Conformance { dir, filter, json, allow_list, quiet, compiled } => conformance::run(dir, filter, json, allow_list, quiet, compiled),
        Command::Generate(args) => generate::run(&args),
        Command::Run { gen, io_dir, nb_frames, n_clusters, dump_inputs, step_median } => run::run(&gen, &io_dir, nb_frames, n_clusters, dump_inputs, step_median),
        Command::Infer { gen, n, step_median } => infer::run(&gen, n, step_median),
        Command::Genref { model, io_dir, input_shapes } => genref::run(&model, &io_dir, &input_shapes),
        Command::Diff { a, b, atol, rtol, top_k } => diff::run(&a, &b, kann_io::diff::Tolerance { atol, rtol }, top_k),
        Command::Convert { files, output } => convert::run(&files, &output),
        Command::Prepare { network, io_dir, batch_size, sources } => prepare::run(&network, &io_dir, batch_size.map(|b| b as usize), &sources),
        Command::RandomImages { out, config, format, shape, dtype, range, nb_images } => {
            let format = random_images::Format::parse(&format).map_err(|e| anyhow::anyhow!("--format: {e}"))?;
            let range = range.map(|r| (r[0], r[1]));
            random_images::run(&out, &config, &random_images::Options { format, shape, dtype, range, count: nb_images })
        }
        Command::Devices { refresh, json } => devices::run(refresh, json),
        Command::Bench(args) => bench::run(&args),
        Command::SupportedOps { markdown } => supported_ops::run(markdown),
        Command::Demo { gen, source, no_display, save_img, device, n_clusters, verbose, no_replay: _ } => {
            demo::run(&demo::DemoOptions { gen: &gen, source: &source, save_img: save_img.as_deref(), device, n_clusters, verbose, no_display })
        }
        Command::Quickstart { images, n_clusters } => quickstart::run(&images, n_clusters),
        Command::Zoo { action: ZooAction::List } => zoo::list(),
        Command::Zoo { action: ZooAction::Fetch { name, zoo_dir } } => zoo::fetch_command(&name, zoo_dir.as_deref()),
    }
}
