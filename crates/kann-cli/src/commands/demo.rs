//! `kann demo GEN_DIR SOURCE`: the network on real pictures, one frame at a
//! time, as a user would deploy it. Each image is read, prepared by the
//! configuration's `preprocessing`, run (on the compiled artifact, or on the
//! reference interpreter with `--device reference`), decoded by its
//! `postprocessing` and drawn; every stage is timed and printed:
//! read / pre / send / infer / post / draw / total and fps.
//!
//! There is no window here (kann has no GUI dependency): results go to the
//! terminal and, with `--save-img`, to annotated copies of the images.
//! Video files are refused with a hint: no well-kept pure-Rust video decoder
//! fits, so frames are extracted first (e.g. with ffmpeg).

use super::run::{find_artifact, specs, start_service, Log};
use anyhow::{bail, Context};
use kann_config::{NetworkConfig, Postprocessing};
use kann_image::decode::{collect_sources, read_source, Source};
use kann_image::draw::{annotate, postprocess, Outcome};
use kann_image::prepare::Plan;
use kann_io::stream::IoSpec;
use kann_runtime::Service;
use kann_tensor::{npy, Shape, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which engine runs the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoDevice {
    /// The compiled artifact on the runtime's clusters.
    Kann,
    /// The reference interpreter on the original model.
    Reference,
    /// KaNN's spelling of the host path: the reference interpreter.
    Cpu,
}

/// What `kann demo` was asked.
pub struct DemoOptions<'a> {
    pub gen: &'a Path,
    pub source: &'a Path,
    pub save_img: Option<&'a Path>,
    pub device: DemoDevice,
    pub n_clusters: Option<usize>,
    pub verbose: bool,
    pub no_display: bool,
}

/// Video containers refused with a hint.
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "avi", "mkv", "mov", "webm", "m4v", "mpg", "mpeg"];

/// The configuration a generated folder was made from, with its decisions.
fn generated_config(gen: &Path) -> anyhow::Result<NetworkConfig> {
    let dump = gen.join(super::generate::dump::DUMP_FILE);
    if !gen.exists() {
        bail!("{} does not exist: pass a folder written by `kann generate`", gen.display());
    }
    if !dump.is_file() {
        bail!("{} is not a generated folder (no {}): run `kann generate` first", gen.display(), super::generate::dump::DUMP_FILE);
    }
    Ok(NetworkConfig::load(&dump)?.config)
}

/// The engine behind `--device`.
enum Engine {
    Kann { service: Box<Service>, outputs: Vec<IoSpec>, buffers: Vec<Vec<u8>> },
    Reference { graph: kann_ir::Graph },
}

/// One frame's named outputs, with its send and infer times.
type Ran = (Vec<(String, Tensor)>, Duration, Duration);

/// Times of one frame's stages.
#[derive(Default, Clone, Copy)]
struct Times {
    read: Duration,
    pre: Duration,
    send: Duration,
    infer: Duration,
    post: Duration,
    draw: Duration,
}

impl Times {
    fn total(&self) -> Duration {
        self.read + self.pre + self.send + self.infer + self.post + self.draw
    }

    fn line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let total = ms(self.total());
        format!(
            "read {:.1} | pre {:.1} | send {:.2} | infer {:.1} | post {:.2} | draw {:.1} | total {:.1} ms ({:.1} fps)",
            ms(self.read),
            ms(self.pre),
            ms(self.send),
            ms(self.infer),
            ms(self.post),
            ms(self.draw),
            total,
            if total > 0.0 { 1e3 / total } else { 0.0 }
        )
    }
}

impl Engine {
    fn start(opts: &DemoOptions) -> anyhow::Result<Engine> {
        match opts.device {
            DemoDevice::Kann => {
                let artifact = find_artifact(opts.gen)?;
                let mut log = Log::default();
                let service = start_service(&artifact, opts.n_clusters, &mut log)?;
                let outputs = specs(service.outputs())?;
                let buffers = outputs.iter().map(|s| vec![0u8; s.frame_bytes()]).collect();
                Ok(Engine::Kann { service: Box::new(service), outputs, buffers })
            }
            DemoDevice::Reference | DemoDevice::Cpu => Ok(Engine::Reference { graph: super::genref::reference_graph(opts.gen)? }),
        }
    }

    /// The network's input specs.
    fn inputs(&self) -> anyhow::Result<Vec<IoSpec>> {
        match self {
            Engine::Kann { service, .. } => specs(service.inputs()),
            Engine::Reference { graph } => Ok(graph
                .inputs
                .iter()
                .map(|&v| {
                    let val = graph.value(v);
                    IoSpec { name: val.name.clone(), dtype: val.info.dtype, shape: val.info.shape.dims().to_vec() }
                })
                .collect()),
        }
    }

    /// Runs one frame: the named output tensors, and the send and infer times.
    fn run(&mut self, spec: &IoSpec, frame: &[u8]) -> anyhow::Result<Ran> {
        match self {
            Engine::Kann { service, outputs, buffers } => {
                let mut outs: Vec<&mut [u8]> = buffers.iter_mut().map(|b| b.as_mut_slice()).collect();
                let st = service.process_frame(&[frame], &mut outs)?;
                let start = Instant::now();
                let tensors = outputs
                    .iter()
                    .zip(buffers.iter())
                    .map(|(s, b)| Ok((s.name.clone(), Tensor::new(Shape::from(s.shape.as_slice()), npy::data_from_le(s.dtype, b))?)))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                // `send` is what the host spends around the compute: copies in and out.
                let send = st.host.saturating_sub(st.device) + start.elapsed();
                Ok((tensors, send, st.device))
            }
            Engine::Reference { graph } => {
                let start = Instant::now();
                let t = Tensor::new(Shape::from(spec.shape.as_slice()), npy::data_from_le(spec.dtype, frame))?;
                let inputs: HashMap<String, Tensor> = [(spec.name.clone(), t)].into();
                let send = start.elapsed();
                let start = Instant::now();
                let outs = kann_reference::run_named(graph, &inputs)?;
                let infer = start.elapsed();
                let named = graph.outputs.iter().zip(outs).map(|(&id, t)| (graph.value(id).name.clone(), t)).collect();
                Ok((named, send, infer))
            }
        }
    }
}

/// `kann demo`. Returns the exit code.
pub fn run(opts: &DemoOptions) -> anyhow::Result<i32> {
    let net = generated_config(opts.gen)?;
    let sources = demo_sources(opts.source)?;
    let mut engine = Engine::start(opts)?;
    let inputs = engine.inputs()?;
    let [spec] = inputs.as_slice() else {
        bail!("kann demo feeds one image input; this network has {} inputs ({})", inputs.len(), inputs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "));
    };
    if spec.shape.first().copied().unwrap_or(1) != 1 {
        bail!("kann demo runs one image per frame; input '{}' has batch {} (generate with --forced-batch-size 1)", spec.name, spec.shape[0]);
    }
    let plan = Plan::new(net.preprocessing.as_ref(), spec)?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let post = net.postprocessing.clone().unwrap_or_else(|| Postprocessing::new(kann_config::PostKind::None));
    let names = match &post.classes {
        Some(p) => kann_io::post::read_class_names(p)?,
        None => Vec::new(),
    };
    if let Some(dir) = opts.save_img {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if !opts.no_display {
        match opts.save_img {
            Some(dir) => println!("note: this build has no display; results are printed and drawn into {}", dir.display()),
            None => println!("note: this build has no display; results are printed (--save-img=DIR draws them)"),
        }
    }
    println!(
        "demo: {} on {} ({} image(s)), postprocessing {}",
        net.name,
        match opts.device {
            DemoDevice::Kann => "kann",
            _ => "the reference interpreter",
        },
        sources.len(),
        post.kind
    );
    let mut all = Vec::with_capacity(sources.len());
    for (i, path) in sources.iter().enumerate() {
        let (times, lines) = frame(&mut engine, spec, &plan, &post, &names, path, opts.save_img)?;
        println!("[{i}] {}: {}", path.display(), times.line());
        for l in lines.iter().take(if opts.verbose { usize::MAX } else { 10 }) {
            println!("{l}");
        }
        if !opts.verbose && lines.len() > 10 {
            println!("  … {} more (-v shows all)", lines.len() - 10);
        }
        all.push(times);
    }
    if all.len() > 1 {
        let n = all.len() as u32;
        let mean = Times {
            read: all.iter().map(|t| t.read).sum::<Duration>() / n,
            pre: all.iter().map(|t| t.pre).sum::<Duration>() / n,
            send: all.iter().map(|t| t.send).sum::<Duration>() / n,
            infer: all.iter().map(|t| t.infer).sum::<Duration>() / n,
            post: all.iter().map(|t| t.post).sum::<Duration>() / n,
            draw: all.iter().map(|t| t.draw).sum::<Duration>() / n,
        };
        println!("mean over {n} frames: {}", mean.line());
    }
    if let Engine::Kann { service, .. } = engine {
        service.terminate();
    }
    Ok(0)
}

/// The images of SOURCE; a video file is refused with a hint.
fn demo_sources(source: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let ext = source.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if VIDEO_EXTENSIONS.contains(&ext.as_str()) {
        bail!(
            "{}: video files are not supported by this build (no pure-Rust video decoder); extract the frames first, e.g. `ffmpeg -i {} frames/%05d.png`, and pass the folder",
            source.display(),
            source.display()
        );
    }
    Ok(collect_sources(&[source.to_path_buf()])?)
}

/// One image through the whole pipeline: its times and prediction lines.
fn frame(
    engine: &mut Engine,
    spec: &IoSpec,
    plan: &Plan,
    post: &Postprocessing,
    names: &[String],
    path: &Path,
    save_img: Option<&Path>,
) -> anyhow::Result<(Times, Vec<String>)> {
    let mut t = Times::default();
    let start = Instant::now();
    let source = read_source(path)?;
    t.read = start.elapsed();
    let start = Instant::now();
    let (input, geometry, image) = match source {
        Source::Image(img) => {
            let (input, geometry) = plan.prepare(&img).map_err(|e| e.at(path))?;
            (input, geometry, Some(img))
        }
        // An array is already the network's view: nothing to draw on.
        Source::Array(a) => {
            let (input, geometry) = plan.prepare_array(&a, path)?;
            (input, geometry, None)
        }
    };
    t.pre = start.elapsed();
    let (outputs, send, infer) = engine.run(spec, &input).with_context(|| format!("{}", path.display()))?;
    t.send = send;
    t.infer = infer;
    let start = Instant::now();
    let input_hw = [geometry.net_h as usize, geometry.net_w as usize];
    let outcome: Outcome = postprocess(post, names, &outputs, input_hw).map_err(anyhow::Error::msg).with_context(|| format!("{}: postprocessing {}", path.display(), post.kind))?;
    let lines = outcome.to_source(&geometry).lines(names);
    t.post = start.elapsed();
    if let (Some(dir), Some(mut canvas)) = (save_img, image) {
        let start = Instant::now();
        annotate(&mut canvas, &outcome, &geometry, names);
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "frame".into());
        let out = dir.join(format!("{name}.png"));
        canvas.save(&out).with_context(|| format!("cannot write {}", out.display()))?;
        t.draw = start.elapsed();
    }
    Ok((t, lines))
}
