//! `kann run GEN_DIR|FILE.kann IO_DIR [--nb-frames N] [--nbr-clusters N]
//! [--dump-inputs]`: runs the frames of an IO folder's input streams on the
//! runtime, writes the outputs back (`IO_DIR/<output>.bin` + manifest), and
//! prints — and saves as `IO_DIR/inference_<name>_<n>.log` — the versions,
//! per-frame latency, the per-kernel per-cluster table of the last frame (or each step's median over the frames)
//! and the PERF summary.

use anyhow::{bail, Context};
use kann_io::stream::{frame_count, read_input_stream, write_input_stream, write_output_stream, IoSpec, Stream};
use kann_runtime::{Device, FrameStats, IoTensor, Profile, Service, StepProfile};
use kann_tensor::DType;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `kann run` prints, kept to be saved as the run log too.
#[derive(Default)]
pub struct Log {
    text: String,
}

impl Log {
    pub fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }
}

/// The artifact of `gen`: `gen` itself when it is a file, else the single
/// `*.kann` file of the folder.
pub fn find_artifact(gen: &Path) -> anyhow::Result<PathBuf> {
    if gen.is_file() {
        return Ok(gen.to_path_buf());
    }
    if !gen.is_dir() {
        bail!("{} is neither a generated folder nor a .kann file", gen.display());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(gen)
        .with_context(|| format!("cannot list {}", gen.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "kann"))
        .collect();
    found.sort();
    match found.len() {
        0 => bail!("{} holds no .kann artifact: run `kann generate` first", gen.display()),
        1 => Ok(found.remove(0)),
        _ => bail!(
            "{} holds {} .kann artifacts ({}): pass the one to run",
            gen.display(),
            found.len(),
            found.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The stream specs of the network's inputs or outputs.
pub fn specs(tensors: &[IoTensor]) -> anyhow::Result<Vec<IoSpec>> {
    tensors
        .iter()
        .map(|t| {
            let dtype = DType::parse(t.dtype.name()).with_context(|| format!("tensor '{}': unknown dtype {}", t.name, t.dtype.name()))?;
            Ok(IoSpec { name: t.name.clone(), dtype, shape: t.shape.clone() })
        })
        .collect()
}

/// The network's name: the metadata's `name`, else the artifact's stem.
fn network_name(service: &Service, artifact: &Path) -> String {
    serde_json::from_str::<serde_json::Value>(service.metadata())
        .ok()
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| artifact.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "network".into()))
}

/// `kann run`. `nb_frames` runs that many frames (the input frames again
/// from the first when it exceeds them; default: every frame);
/// `n_clusters` runs the service on that many cores (default: all cores
/// this process may use); `dump_inputs` writes the inputs consumed to
/// `IO_DIR/check/`; `step_median` tables each step's median over the frames
/// instead of the last frame's times. Returns the exit code.
pub fn run(gen: &Path, io: &Path, nb_frames: Option<usize>, n_clusters: Option<usize>, dump_inputs: bool, step_median: bool) -> anyhow::Result<i32> {
    let artifact = find_artifact(gen)?;
    if !io.is_dir() {
        bail!("IO folder {} does not exist", io.display());
    }
    let mut log = Log::default();
    let mut service = start_service(&artifact, n_clusters, &mut log)?;
    let inputs = read_input_stream(io, &specs(service.inputs())?)?;
    let available = frame_count(&inputs);
    let frames = nb_frames.unwrap_or(available);
    if frames == 0 {
        bail!("nothing to run: --nb-frames 0");
    }
    if frames > available {
        log.line(format!("note: {frames} frames requested, the inputs hold {available}: they repeat (outputs are written once per input frame)"));
    }
    if dump_inputs {
        dump(io, &inputs, frames)?;
    }
    let (outputs, stats, profiles) = run_frames(&mut service, &inputs, frames, step_median, &mut log)?;
    for (spec, data) in specs(service.outputs())?.iter().zip(&outputs) {
        let per_frame: Vec<&[u8]> = data.chunks(spec.frame_bytes().max(1)).collect();
        let path = write_output_stream(io, spec, &per_frame)?;
        log.line(format!("output {}: {} {:?} x {} -> {}", spec.name, spec.dtype, spec.shape, per_frame.len(), path.display()));
    }
    let estimate = Estimate::of(&service);
    let (profile, what) = if step_median { (median_profile(&profiles), format!("median over {} frames", profiles.len())) } else { (service.last_profile(), "the last frame".to_string()) };
    if let Some(profile) = profile {
        kernel_table(&profile, estimate.as_ref(), &mut log, &what);
    }
    summary(&service, &stats, estimate.as_ref(), &mut log);
    let name = network_name(&service, &artifact);
    let log_path = io.join(format!("inference_{}_{frames}.log", kann_io::tensor_set::file_stem(&name)));
    log.line(format!("log saved to {}", log_path.display()));
    std::fs::write(&log_path, &log.text).with_context(|| format!("cannot write {}", log_path.display()))?;
    service.terminate();
    Ok(0)
}

/// Loads the artifact, prints the versions, starts the device.
pub fn start_service(artifact: &Path, n_cores: Option<usize>, log: &mut Log) -> anyhow::Result<Service> {
    let mut service = Service::load(artifact)?;
    log.line(format!(
        "artifact {}: format {}, program v{}; runtime {} (program v{})",
        artifact.display(),
        service.artifact_version(),
        service.program().version,
        kann_runtime::RUNTIME_VERSION,
        kann_runtime::PROGRAM_VERSION
    ));
    let all = Device::all();
    let device = match n_cores {
        None => all,
        Some(0) => bail!("--nbr-clusters must be at least 1"),
        Some(n) => Device::cores(all.core_ids().iter().copied().cycle().take(n).collect()),
    };
    service.init_device(&device)?;
    log.line(format!(
        "device: {} cluster(s) on cores {:?}; arena {} bytes, scratch {} bytes per cluster",
        service.n_clusters(),
        device.core_ids(),
        service.program().arena_bytes,
        service.program().scratch_bytes
    ));
    for w in service.warnings() {
        log.line(format!("warning: {w}"));
    }
    Ok(service)
}

/// What [`run_frames`] returns: each output's frames, each frame's times
/// and (when asked for) profile.
type Ran = (Vec<Vec<u8>>, Vec<FrameStats>, Vec<Profile>);

/// Runs `frames` frames; returns each output's frames (contiguous) and the
/// per-frame times (and each frame's profile when `keep_profiles`).
/// Repeated input frames run again (timing) but their outputs are kept
/// once, so the output stream matches the input stream frame for frame
/// (what `kann genref` computes).
fn run_frames(service: &mut Service, inputs: &[Stream], frames: usize, keep_profiles: bool, log: &mut Log) -> anyhow::Result<Ran> {
    let available = frame_count(inputs).max(1);
    let sizes: Vec<usize> = service.outputs().iter().map(|t| t.bytes()).collect();
    let kept = frames.min(available);
    let mut outputs: Vec<Vec<u8>> = sizes.iter().map(|&s| Vec::with_capacity(s * kept)).collect();
    let mut buffers: Vec<Vec<u8>> = sizes.iter().map(|&s| vec![0u8; s]).collect();
    let mut stats = Vec::with_capacity(frames);
    let mut profiles = Vec::with_capacity(frames);
    for f in 0..frames {
        let ins: Vec<&[u8]> = inputs.iter().map(|s| s.frame(f % available)).collect();
        let mut outs: Vec<&mut [u8]> = buffers.iter_mut().map(|b| b.as_mut_slice()).collect();
        let st = service.process_frame(&ins, &mut outs).with_context(|| format!("frame {f}"))?;
        log.line(format!("frame {f}: {:.3} ms, {:.1} fps (device {:.3} ms)", ms(st.host), per_s(st.host), ms(st.device)));
        if f < kept {
            for (o, b) in outputs.iter_mut().zip(&buffers) {
                o.extend_from_slice(b);
            }
        }
        stats.push(st);
        if keep_profiles {
            profiles.extend(service.last_profile());
        }
    }
    Ok((outputs, stats, profiles))
}

/// Writes the frames the runtime consumed to `IO_DIR/check/`.
fn dump(io: &Path, inputs: &[Stream], frames: usize) -> anyhow::Result<()> {
    let available = frame_count(inputs).max(1);
    let dir = io.join("check");
    for s in inputs {
        let per_frame: Vec<&[u8]> = (0..frames).map(|f| s.frame(f % available)).collect();
        write_input_stream(&dir, &s.spec, &per_frame)?;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Events per second of one event taking `d`.
fn per_s(d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        1.0 / d.as_secs_f64()
    }
}

fn percent(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() {
        0.0
    } else {
        100.0 * part.as_secs_f64() / whole.as_secs_f64()
    }
}

/// The per-kernel, per-cluster table of the last frame: µs and % of the
/// cluster's span, then each cluster's barrier waits and span.
/// The cost model's figures that `kann generate` stored in the artifact's
/// metadata (absent from artifacts of older versions).
pub(crate) struct Estimate {
    pub latency_ms: f64,
    pub busy_ms: Vec<f64>,
    /// `[step][cluster]`, µs.
    pub steps_us: Vec<Vec<f64>>,
}

impl Estimate {
    pub(crate) fn of(service: &Service) -> Option<Estimate> {
        let meta: serde_json::Value = serde_json::from_str(service.metadata()).ok()?;
        let e = meta.get("estimate")?;
        let floats = |v: &serde_json::Value| -> Option<Vec<f64>> { v.as_array()?.iter().map(|x| x.as_f64()).collect() };
        Some(Estimate {
            latency_ms: e.get("latency_ms")?.as_f64()?,
            busy_ms: floats(e.get("busy_ms")?)?,
            steps_us: e.get("steps_us")?.as_array()?.iter().map(floats).collect::<Option<_>>()?,
        })
    }

    /// The slowest cluster's estimate for `step`, µs.
    fn step_us(&self, step: usize) -> Option<f64> {
        self.steps_us.get(step).map(|s| s.iter().cloned().fold(0.0, f64::max))
    }
}

/// Each step's, barrier's and span's median over the frames, per cluster: on
/// a shared machine one frame's table moves by tens of percent from step to
/// step, the median over a few frames much less.
fn median_profile(profiles: &[Profile]) -> Option<Profile> {
    let last = profiles.last()?;
    let median = |pick: &dyn Fn(&Profile) -> Duration| -> Duration {
        let mut v: Vec<Duration> = profiles.iter().map(pick).collect();
        v.sort();
        v[v.len() / 2]
    };
    let per_cluster = |pick: &dyn Fn(&Profile, usize) -> Duration| -> Vec<Duration> { (0..last.n_clusters).map(|c| median(&|p| pick(p, c))).collect() };
    let steps = last
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepProfile { per_cluster: per_cluster(&|p, c| p.steps.get(i).map_or(Duration::ZERO, |t| t.per_cluster[c])), ..s.clone() })
        .collect();
    Some(Profile { n_clusters: last.n_clusters, steps, barrier_wait: per_cluster(&|p, c| p.barrier_wait[c]), span: per_cluster(&|p, c| p.span[c]) })
}

/// Per step and cluster: measured µs (of `what`: a frame, or a median) and
/// share of the cluster's time, with the cost model's estimate for the step
/// (its slowest part) when known.
fn kernel_table(p: &Profile, estimate: Option<&Estimate>, log: &mut Log, what: &str) {
    log.line("");
    log.line(format!("kernels of {what} (µs, % of the cluster's time; est.: the cost model's µs for the step):"));
    let name_w = p.steps.iter().map(|s| s.name.len()).max().unwrap_or(4).clamp(4, 40);
    let kernel_w = p.steps.iter().map(|s| s.kernel.len()).max().unwrap_or(6).clamp(6, 40);
    let est = |step: usize| estimate.and_then(|e| e.step_us(step)).map_or_else(|| format!("{:>9}", "-"), |t| format!("{t:>9.1}"));
    let mut header = format!("{:>4}  {:<name_w$}  {:<kernel_w$}  {:>9}", "#", "step", "kernel", "est.");
    for c in 0..p.n_clusters {
        header += &format!("  {:>19}", format!("cluster {c}"));
    }
    log.line(header);
    let row = |label: String, times: &[Duration]| {
        let mut line = label;
        for (c, t) in times.iter().enumerate() {
            line += &format!("  {:>10.1} ({:>5.1}%)", us(*t), percent(*t, p.span[c]));
        }
        line
    };
    for s in &p.steps {
        let kernel: String = s.kernel.chars().take(kernel_w).collect();
        let name: String = s.name.chars().take(name_w).collect();
        log.line(row(format!("{:>4}  {name:<name_w$}  {kernel:<kernel_w$}  {}", s.step, est(s.step)), &s.per_cluster));
    }
    log.line(row(format!("{:>4}  {:<name_w$}  {:<kernel_w$}  {:>9}", "", "barrier wait", "", ""), &p.barrier_wait));
    log.line(row(format!("{:>4}  {:<name_w$}  {:<kernel_w$}  {:>9}", "", "total", "", ""), &p.span));
    if let Some(e) = estimate {
        let busy: Vec<String> = e.busy_ms.iter().map(|t| format!("{:.3}", t * 1e3)).collect();
        log.line(format!("estimated busy µs per cluster (cost model): {}", busy.join(", ")));
    }
}

/// Batch size, number of queries, PERF HOST (with copies) and PERF DEVICE
/// (compute only), averaged over the frames.
fn summary(service: &Service, stats: &[FrameStats], estimate: Option<&Estimate>, log: &mut Log) {
    // The leading axis of a multi-dimensional first input (NCHW, NHWC…).
    let batch = service.inputs().first().filter(|t| t.shape.len() >= 2).map_or(1, |t| t.shape[0]).max(1);
    let n = stats.len().max(1) as u32;
    let host: Duration = stats.iter().map(|s| s.host).sum::<Duration>() / n;
    let device: Duration = stats.iter().map(|s| s.device).sum::<Duration>() / n;
    log.line("");
    log.line(format!("batch size: {batch}"));
    log.line(format!("number of queries: {}", stats.len()));
    for (what, d) in [("PERF HOST  ", host), ("PERF DEVICE", device)] {
        log.line(format!("{what}: {:.3} ms, {:.1} qps, {:.1} fps", ms(d), per_s(d), per_s(d) * batch as f64));
    }
    if let Some(e) = estimate.filter(|e| e.latency_ms > 0.0) {
        log.line(format!("estimated latency (cost model): {:.3} ms; measured device / estimated: {:.2}", e.latency_ms, ms(device) / e.latency_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_runtime::testing::{artifact_bytes, bytes_f32, f32_bytes, relu_chain};

    fn temp_dir(name: &str) -> kann_testkit::ScratchDir {
        kann_testkit::ScratchDir::new(&format!("kann-cli-run-{}-{name}", std::process::id()))
    }

    #[test]
    fn runs_a_generated_folder_and_writes_outputs_and_log() {
        let gen = temp_dir("gen");
        let io = temp_dir("io");
        let bytes = artifact_bytes(&relu_chain(2, 6, 2), &f32_bytes(&[-1.0, 1.0]), r#"{"name":"chain"}"#).unwrap();
        std::fs::write(gen.join("chain.kann"), bytes).unwrap();
        let x: Vec<f32> = vec![-1.0, 2.0, -3.0, 4.0, -5.0, 6.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0];
        std::fs::write(io.join("x"), f32_bytes(&x)).unwrap(); // KaNN's extension-less raw file, 2 frames
        assert_eq!(run(&gen, &io, None, Some(1), true, false).unwrap(), 0);
        let y = bytes_f32(&std::fs::read(io.join("y.bin")).unwrap());
        assert_eq!(y, x.iter().map(|v| v.max(0.0)).collect::<Vec<_>>());
        assert_eq!(bytes_f32(&std::fs::read(io.join("w.bin")).unwrap()), [0.0, 1.0, 0.0, 1.0]);
        let manifest = std::fs::read_to_string(io.join("manifest.yaml")).unwrap();
        assert!(manifest.contains("name: \"y\"") && manifest.contains("frames: 2"), "{manifest}");
        assert_eq!(std::fs::read(io.join("check/x.bin")).unwrap(), f32_bytes(&x));
        let log = std::fs::read_to_string(io.join("inference_chain_2.log")).unwrap();
        for want in ["format 1.0", "frame 1:", "barrier wait", "f32_relu_generic", "PERF HOST", "PERF DEVICE", "number of queries: 2"] {
            assert!(log.contains(want), "{want} missing from\n{log}");
        }
        // --nb-frames beyond the inputs repeats them (outputs once per input
        // frame); the .kann file itself works too.
        assert_eq!(run(&gen.join("chain.kann"), &io, Some(3), None, false, true).unwrap(), 0);
        assert_eq!(std::fs::read(io.join("y.bin")).unwrap().len(), 2 * 24);
        let log = std::fs::read_to_string(io.join("inference_chain_3.log")).unwrap();
        assert!(log.contains("kernels of median over 3 frames"), "{log}");
    }

    #[test]
    fn step_median_takes_each_cell_apart() {
        let us = Duration::from_micros;
        let frame = |a: u64, b: u64, wait: u64| Profile {
            n_clusters: 2,
            steps: vec![StepProfile { step: 0, name: "s".into(), op: "Relu".into(), kernel: "k".into(), per_cluster: vec![us(a), us(b)] }],
            barrier_wait: vec![us(wait), us(wait + 1)],
            span: vec![us(a + wait), us(b + wait)],
        };
        let m = median_profile(&[frame(10, 90, 5), frame(30, 70, 1), frame(20, 80, 9)]).unwrap();
        assert_eq!(m.steps[0].per_cluster, [us(20), us(80)]);
        assert_eq!(m.barrier_wait, [us(5), us(6)]);
        assert_eq!(m.span, [us(29), us(89)]);
        assert!(median_profile(&[]).is_none());
    }

    #[test]
    fn clear_errors() {
        let gen = temp_dir("empty");
        let e = run(&gen, &gen, None, None, false, false).unwrap_err().to_string();
        assert!(e.contains("holds no .kann artifact"), "{e}");
        let bytes = artifact_bytes(&relu_chain(1, 4, 0), &[], "{}").unwrap();
        std::fs::write(gen.join("a.kann"), bytes).unwrap();
        let e = format!("{:#}", run(&gen, &gen, None, None, false, false).unwrap_err());
        assert!(e.contains("input 'x'"), "{e}");
    }
}
