//! `kann generate [OPTIONS] CONFIG`: compiles a network into a generated
//! folder (`<name>.kann`, `network.dump.yaml`, `log.txt`, and on request
//! the graph drawing and the readable command lists), logging each phase in
//! the spirit of KaNN's generation log.

mod cmds;
mod draw;
pub mod dump;
mod log;
pub mod setup;

use crate::args::GenerateArgs;
use anyhow::{bail, Context};
use kann_compiler::report::Stats;
use kann_compiler::{build_program, optimize, CompileOptions, Compiled};
use kann_config::{NetworkConfig, ShapeReading};
use log::{ms, GenLog};
use setup::{Io, Options};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Runs `kann generate`; on failure the log so far (and the error) is still
/// written to `log.txt` when the destination folder exists.
pub fn run(args: &GenerateArgs) -> anyhow::Result<i32> {
    let mut log = GenLog::new(!args.quiet);
    let mut dest = None;
    let result = generate(args, &mut log, &mut dest);
    if let (Err(e), Some(dest)) = (&result, &dest) {
        let text = format!("{}\n[ERROR] {e:#}\n", log.text());
        let _ = std::fs::write(dest.join("log.txt"), text);
    }
    result.map(|_| 0)
}

fn generate(args: &GenerateArgs, log: &mut GenLog, dest_out: &mut Option<PathBuf>) -> anyhow::Result<()> {
    let start = Instant::now();
    log.raw(&format!("kann generate {} (artifact format {}.{})", env!("CARGO_PKG_VERSION"), kann_artifact::FORMAT_MAJOR, kann_artifact::FORMAT_MINOR));
    let setup::Config { network: net, mut warnings } = setup::load_config(args)?;
    let opts = setup::resolve_options(args, &net, &mut warnings)?;
    if net.framework != kann_config::Framework::Onnx {
        bail!("{}: {} models are not supported yet; convert the model to ONNX", net.model_path.display(), net.framework);
    }
    let dest = args.dest.clone().unwrap_or_else(|| setup::default_dest(&net.name, &opts));
    if dest.exists() && !dest.is_dir() {
        bail!("destination {} exists and is not a folder", dest.display());
    }
    std::fs::create_dir_all(&dest).with_context(|| format!("cannot create destination {}", dest.display()))?;
    *dest_out = Some(dest.clone());

    let imported = parse_graph(log, &net, &opts, &mut warnings)?;
    configuration(log, &net, &opts, &imported, &warnings);
    let compiled = compile(log, imported.model.graph, &opts)?;
    log_stats(log, &compiled.stats);

    let extra = copy_extra_data(log, &net, &dest)?;
    exports(log, args, &compiled, &dest)?;

    log.section("SERIALISATION");
    let artifact_name = format!("{}.kann", setup::safe_name(&net.name));
    let artifact = dest.join(&artifact_name);
    let metadata = metadata(&net, &opts, &imported.inputs, &imported.outputs, imported.batch, &compiled.stats);
    let bytes = compiled.artifact(opts.arch, &metadata)?.write_to(&artifact).with_context(|| format!("cannot write {}", artifact.display()))?;
    log.info(format!("~> artifact written to '{}' ({bytes} bytes)", artifact.display()));
    let decided = dump::Decided { opts: &opts, inputs: &imported.inputs, outputs: &imported.outputs, batch: imported.batch, artifact: &artifact_name, extra_data: &extra };
    let dump_path = dest.join(dump::DUMP_FILE);
    std::fs::write(&dump_path, dump::render(&net, &decided)).with_context(|| format!("cannot write {}", dump_path.display()))?;
    log.info(format!("~> network's yaml dumped at '{}'", dump_path.display()));
    let log_path = dest.join("log.txt");
    log.info(format!("~> all logs generated in '{}'", log_path.display()));
    log.info(format!("kann compilation completed into '{}' in {}", dest.display(), ms(start.elapsed())));
    std::fs::write(&log_path, log.text()).with_context(|| format!("cannot write {}", log_path.display()))?;
    Ok(())
}

/// The imported network and what binding it decided.
struct Imported {
    model: kann_onnx::Model,
    inputs: Vec<Io>,
    outputs: Vec<Io>,
    batch: usize,
}

/// GRAPH CREATION AND PARSING: reads, binds and imports the model.
fn parse_graph(log: &mut GenLog, net: &NetworkConfig, opts: &Options, warnings: &mut Vec<String>) -> anyhow::Result<Imported> {
    log.section("GRAPH CREATION AND PARSING");
    log.info(format!("network: {}", net.name));
    if let Some(src) = &net.source {
        log.info(format!("configuration: {}", src.display()));
    }
    log.info(format!("model file: {}", net.model_path.display()));
    let mut proto = kann_onnx::read_model(&net.model_path)?;
    setup::prepare_model(&mut proto, &net.output_nodes_name, opts.forced_batch).with_context(|| format!("{}", net.model_path.display()))?;
    let binding = setup::bind_inputs(net, &proto, opts.forced_batch)?;
    let dir = setup::folder_of(&net.model_path);
    let (model, took) = log.phase("importing the model", || kann_onnx::import_model(&proto, Some(&dir), &binding.import, Some(&kann_reference::Reference)));
    let model = model.with_context(|| format!("cannot import {}", net.model_path.display()))?;
    log.info(format!("producer: {} (ONNX IR version {}), opset {}", if model.producer.is_empty() { "unknown" } else { &model.producer }, model.ir_version, model.opset));
    log.info(format!("ONNX nodes: {}, imported graph nodes: {} ({})", model.onnx_nodes, model.graph.nodes.len(), ms(took)));
    let g = &model.graph;
    let io = |v: kann_ir::ValueId, layout: Option<&String>| {
        let val = g.value(v);
        let shape = val.info.shape.dims().to_vec();
        let layout = layout.cloned().unwrap_or_else(|| setup::layout_of(&shape, ShapeReading::AsWritten));
        Io { name: val.name.clone(), dtype: val.info.dtype, shape, layout }
    };
    let inputs: Vec<Io> = g.inputs.iter().map(|&v| io(v, binding.layouts.get(&g.value(v).name))).collect();
    let outputs: Vec<Io> = g.outputs.iter().map(|&v| io(v, None)).collect();
    for t in &inputs {
        log.info(format!("input  {}: {}{:?} ({})", t.name, t.dtype, t.shape, t.layout));
    }
    for t in &outputs {
        log.info(format!("output {}: {}{:?}", t.name, t.dtype, t.shape));
    }
    check_declared(net, &inputs, &outputs, warnings);
    let batch = opts.forced_batch.or_else(|| inputs.iter().find_map(|t| t.shape.first().copied())).unwrap_or(1);
    Ok(Imported { model, inputs, outputs, batch })
}

/// Warns where the configuration's dtypes or output shapes disagree with
/// what the model computes (the model wins).
fn check_declared(net: &NetworkConfig, inputs: &[Io], outputs: &[Io], warnings: &mut Vec<String>) {
    for (name, dtype) in net.input_nodes_name.iter().zip(&net.input_nodes_dtype) {
        if let Some(t) = inputs.iter().find(|t| &t.name == name) {
            if t.dtype != *dtype {
                warnings.push(format!("input_nodes_dtype: input '{name}' is {} in the model, not {dtype}; the model's dtype is used", t.dtype));
            }
        }
    }
    for (name, shape) in net.output_nodes_name.iter().zip(&net.output_nodes_shape) {
        if let Some(t) = outputs.iter().find(|t| &t.name == name) {
            if t.shape != shape.dims {
                warnings.push(format!("output_nodes_shape: output '{name}' is {:?} as computed, written {shape}; the computed shape is used", t.shape));
            }
        }
    }
    for (name, dtype) in net.output_nodes_name.iter().zip(&net.output_nodes_dtype) {
        if let Some(t) = outputs.iter().find(|t| &t.name == name) {
            if t.dtype != *dtype {
                warnings.push(format!("output_nodes_dtype: output '{name}' is {} as computed, not {dtype}", t.dtype));
            }
        }
    }
}

/// CONFIGURATION: what was decided, and the configuration's warnings.
fn configuration(log: &mut GenLog, net: &NetworkConfig, opts: &Options, imported: &Imported, warnings: &[String]) {
    log.section("CONFIGURATION");
    log.info(format!("arch: {} (asked: {})", opts.arch, opts.arch_requested));
    log.info(format!("clusters: {}", opts.n_clusters));
    log.info(format!("precision: {}", opts.precision));
    let forced = if opts.forced_batch.is_some() { " (forced)" } else { "" };
    log.info(format!("batch size: {}{forced}", imported.batch));
    if !net.generate_options.ignored_keys.is_empty() {
        log.info(format!("generate_options ignored (no meaning on a CPU): {}", net.generate_options.ignored_keys.join(", ")));
    }
    for w in warnings {
        log.warn(w);
    }
}

/// OPTIMISATION PASSES, then lowering, memory plan and schedule.
fn compile(log: &mut GenLog, mut graph: kann_ir::Graph, opts: &Options) -> anyhow::Result<Compiled> {
    log.section("OPTIMISATION PASSES");
    let before = graph.nodes.len();
    let (passes, took) = log.phase("optimising", || optimize(&mut graph, Some(&kann_reference::Reference)));
    let passes = passes?;
    log.block(&passes.to_string());
    log.info(format!("graph: {before} nodes before, {} after ({})", graph.nodes.len(), ms(took)));

    log.section("LOWERING, MEMORY PLAN AND SCHEDULE");
    let calibration = super::devices::cached_calibration(opts.arch);
    match &calibration {
        Some(c) => log.info(format!("cost model: calibrated on this machine by `kann devices` ({})", c.describe())),
        None => log.info("cost model: not calibrated for this machine and arch (`kann devices` measures it here)"),
    }
    let calibration = calibration.map(|c| c.calibration).unwrap_or_default();
    let copts = CompileOptions { n_clusters: opts.n_clusters, arch: opts.arch, winograd: opts.winograd, blocked: opts.blocked, calibration };
    let (built, took) = log.phase("lowering and scheduling", || build_program(&graph, &copts));
    let (program, weights, info) = built?;
    log.info(format!("{} steps on {} cluster(s), arena {} bytes, weights {} bytes ({})", program.steps.len(), program.n_clusters(), program.arena_bytes, weights.len(), ms(took)));
    let stats = Stats::collect(&graph, &program, &weights, &info);
    Ok(Compiled { graph, passes, program, weights, stats })
}

fn log_stats(log: &mut GenLog, s: &Stats) {
    for (title, body) in [
        ("OPERATION STATISTICS", s.operations()),
        ("PARAMETER STATISTICS", s.parameters()),
        ("MEMORY STATISTICS", s.memory()),
        ("COMMAND COUNTS PER CLUSTER", s.commands()),
        ("ESTIMATED LATENCY", s.latency()),
    ] {
        log.section(title);
        log.block(&body);
    }
}

/// COPYING EXTRA DATA: `extra_data` files and folders into the
/// destination. Returns their names there.
fn copy_extra_data(log: &mut GenLog, net: &NetworkConfig, dest: &Path) -> anyhow::Result<Vec<String>> {
    log.section("COPYING EXTRA DATA");
    if net.extra_data.is_empty() {
        log.info("no extra_data in the configuration");
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = Vec::new();
    for src in &net.extra_data {
        let name = src.file_name().map(|n| n.to_string_lossy().into_owned()).with_context(|| format!("extra_data: {} has no file name", src.display()))?;
        if names.contains(&name) {
            log.warn(format!("extra_data: two entries are named '{name}'; {} replaces the first", src.display()));
        } else {
            names.push(name.clone());
        }
        let to = dest.join(&name);
        let same = matches!((src.canonicalize(), to.canonicalize()), (Ok(a), Ok(b)) if a == b);
        if !same {
            copy_tree(src, &to).with_context(|| format!("extra_data: cannot copy {} to {}", src.display(), to.display()))?;
        }
        log.info(format!("~> {} copied to '{}'", src.display(), to.display()));
    }
    Ok(names)
}

/// Copies a file, or a folder recursively (symbolic links are skipped).
fn copy_tree(src: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else if meta.is_file() {
        std::fs::copy(src, to).map(|_| ())
    } else {
        Ok(())
    }
}

/// EXPORTS: the optimised ONNX model, the graph drawing, the command lists.
fn exports(log: &mut GenLog, args: &GenerateArgs, c: &Compiled, dest: &Path) -> anyhow::Result<()> {
    log.section("EXPORTS");
    let onnx = dest.join("optimized-model.onnx");
    match kann_onnx::export_model(&c.graph) {
        Ok(bytes) => {
            std::fs::write(&onnx, &bytes).with_context(|| format!("cannot write {}", onnx.display()))?;
            log.info(format!("~> optimised graph exported to '{}' ({} bytes)", onnx.display(), bytes.len()));
        }
        // The artifact does not depend on it: say why and go on.
        Err(e) => log.warn(format!("optimized-model.onnx not written: {e}")),
    }
    if args.draw_graph || args.draw_graph_pdf {
        let text = draw::dot(&c.program, &c.graph);
        let mut files = vec![("graph.dot", "graph.svg")];
        if args.draw_graph_pdf {
            files.push(("neural_network.dot", "neural_network.pdf"));
        }
        for (dot_name, drawn) in files {
            let dot_path = dest.join(dot_name);
            std::fs::write(&dot_path, &text).with_context(|| format!("cannot write {}", dot_path.display()))?;
            log.info(format!("~> graph drawn in '{}'", dot_path.display()));
            let out = dest.join(drawn);
            if draw::render(&dot_path, &out)? {
                log.info(format!("~> rendered by Graphviz to '{}'", out.display()));
            } else {
                log.info(format!("{drawn} not rendered: Graphviz's dot is not installed"));
            }
        }
    }
    if args.generate_txt_cmds {
        let dir = dest.join("cmds");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for i in 0..c.program.n_clusters() {
            let path = dir.join(format!("cluster_{i}.txt"));
            std::fs::write(&path, cmds::cluster_text(&c.program, i)).with_context(|| format!("cannot write {}", path.display()))?;
        }
        log.info(format!("~> {} command lists written to '{}'", c.program.n_clusters(), dir.display()));
    }
    Ok(())
}

/// The artifact's metadata section (JSON).
/// `estimate` holds the cost model's latency, busy time per cluster (ms)
/// and each step's time per cluster (µs), which `kann run` and `kann bench`
/// print next to what they measure.
fn metadata(net: &NetworkConfig, opts: &Options, inputs: &[Io], outputs: &[Io], batch: usize, stats: &kann_compiler::report::Stats) -> String {
    let round = |x: f64| (x * 1e3).round() / 1e3;
    let io = |list: &[Io]| -> Vec<serde_json::Value> {
        list.iter().map(|t| serde_json::json!({ "name": t.name, "dtype": t.dtype.name(), "shape": t.shape, "layout": t.layout })).collect()
    };
    let model = std::path::absolute(&net.model_path).unwrap_or_else(|_| net.model_path.clone());
    serde_json::json!({
        "name": net.name,
        "model": model.to_string_lossy(),
        "config": net.source.as_ref().map(|p| p.to_string_lossy().into_owned()),
        "kann_version": env!("CARGO_PKG_VERSION"),
        "arch": opts.arch.to_string(),
        "n_clusters": opts.n_clusters,
        "precision": opts.precision,
        "batch": batch,
        "inputs": io(inputs),
        "outputs": io(outputs),
        "estimate": {
            "latency_ms": round(stats.est_latency * 1e3),
            "busy_ms": stats.est_busy.iter().map(|t| round(t * 1e3)).collect::<Vec<_>>(),
            "steps_us": stats.est_steps.iter().map(|s| s.iter().map(|t| round(t * 1e6)).collect::<Vec<_>>()).collect::<Vec<_>>(),
        },
    })
    .to_string()
}
