//! `kann bench MODEL… [-n N] [--warmup W] [--nbr-clusters N]
//! [--vs-onnxruntime] [--json FILE]`: times networks on random inputs and
//! puts the time next to what the machine could do. For each model (a
//! generated folder or `.kann` file; a network YAML or ONNX model is first
//! generated into a temporary folder): W untimed frames, then N timed
//! `process_frame`s; median, min, max and the p10–p90 spread; the program's
//! GFLOP per frame and the achieved GFLOP/s; the device's peak (`kann
//! devices`' best fp32 rate of one core × the cores the clusters run on);
//! the time the FLOPs would take at that peak; efficiency = time at peak /
//! median. With `--vs-onnxruntime`, ONNX Runtime (its Python package, in a
//! venv kann creates once and reuses) runs the same ONNX model with as many
//! intra-op threads, one of its runs after each of kann's, and the table
//! gains its median and the ratio kann/ORT, with the geometric mean over
//! the models.

use super::devices;
use super::generate::dump;
use super::infer::{random_frame, XorShift};
use super::run::{find_artifact, specs};
use crate::args::{BenchArgs, GenerateArgs};
use anyhow::{bail, Context};
use kann_runtime::{Device, Service};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

/// The Python ONNX Runtime runs in: loads the model with every graph
/// optimisation, the given intra-op threads, one inter-op thread and
/// sequential execution; feeds random inputs of the shapes kann runs;
/// warms up; prints `{"ready": version}`; then for each line `K` on stdin
/// runs K timed inferences and prints their seconds as a JSON list.
const ORT_SCRIPT: &str = r#"
import json, sys, time
import numpy as np
import onnxruntime as ort
cfg = json.loads(sys.argv[1])
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
so.intra_op_num_threads = cfg["threads"]
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
sess = ort.InferenceSession(cfg["model"], so, providers=["CPUExecutionProvider"])
types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
         "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
         "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}
rng = np.random.default_rng(0)
feeds = {}
for i in sess.get_inputs():
    if i.type not in types:
        sys.exit("input %s: type %s is not supported by kann bench" % (i.name, i.type))
    shape = cfg["shapes"].get(i.name) or [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
    t = types[i.type]
    if np.issubdtype(t, np.floating):
        feeds[i.name] = rng.random(shape).astype(t)
    elif t is np.bool_:
        feeds[i.name] = rng.random(shape) < 0.5
    else:
        feeds[i.name] = rng.integers(0, 10, size=shape).astype(t)
known = {o.name for o in sess.get_outputs()}
outputs = [o for o in cfg["outputs"] if o in known] or None
for _ in range(cfg["warmup"]):
    sess.run(outputs, feeds)
print(json.dumps({"ready": ort.__version__}), flush=True)
for line in sys.stdin:
    k = int(line)
    if k <= 0:
        break
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        sess.run(outputs, feeds)
        times.append(time.perf_counter() - t0)
    print(json.dumps(times), flush=True)
"#;

/// The pause before each runtime's turn when kann and ONNX Runtime take
/// turns: both runtimes' threads spin a while after their work before they
/// sleep (ONNX Runtime's for more than 10 ms), and a spinning thread of one
/// steals a core from the other's run (measured: MobileNetV2 at 2 threads,
/// kann 9.8 ms after a 10 ms pause, 7.2 after 100 ms). After the pause each
/// runtime runs once untimed, then once timed: both are measured warm, as
/// in a stream of frames. `KANN_BENCH_SETTLE_MS` overrides it.
fn settle() -> std::time::Duration {
    let ms = std::env::var("KANN_BENCH_SETTLE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    std::time::Duration::from_millis(ms)
}

/// The ONNX Runtime version the venv gets.
const ORT_VERSION: &str = "1.32.0";

/// Median, extremes and the p10–p90 spread of a series, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub p10: f64,
    pub p90: f64,
}

impl Summary {
    /// Of `ms` (not empty).
    pub fn of(ms: &[f64]) -> Summary {
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        Summary { median: quantile(&v, 0.5), min: v[0], max: v[v.len() - 1], p10: quantile(&v, 0.1), p90: quantile(&v, 0.9) }
    }

    fn to_json(self) -> Value {
        json!({"median_ms": self.median, "min_ms": self.min, "max_ms": self.max, "p10_ms": self.p10, "p90_ms": self.p90})
    }
}

/// The `q` quantile of sorted values, interpolating between neighbours.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// One model's results.
struct Row {
    name: String,
    source: PathBuf,
    clusters: usize,
    threads: usize,
    gflop: f64,
    /// The cost model's latency estimate stored at generate, ms.
    estimate_ms: Option<f64>,
    kann: Summary,
    /// ONNX Runtime's times and version, with --vs-onnxruntime.
    ort: Option<(Summary, String)>,
}

/// The device's fp32 peak: GFLOP/s of one core and where it comes from.
struct Peak {
    per_core: f64,
    /// The same loop on all `all_cores` usable cores at once.
    all: f64,
    all_cores: usize,
    what: String,
}

/// `kann bench`. Returns the exit code.
pub fn run(args: &BenchArgs) -> anyhow::Result<i32> {
    let python = if args.vs_onnxruntime { Some(ort_python()?) } else { None };
    // Models to generate need the cost model's calibration first (measured
    // once per machine with the peaks) for their estimates; otherwise the
    // peaks come after the models, so that a bad one fails before any
    // measurement.
    let measured = if args.models.iter().any(|m| to_generate(m)) { Some(devices::load_or_measure(false, true)?) } else { None };
    let mut rows = Vec::new();
    for model in &args.models {
        rows.push(bench_one(model, args, python.as_deref())?);
    }
    let (info, cache, _) = match measured {
        Some(m) => m,
        None => devices::load_or_measure(false, true)?,
    };
    let best = info.best_fp32().context("kann devices measured no fp32 peak")?;
    let what = format!("{} on {}; kann devices, cached in {}", best.name, info.model, cache.display());
    let peak = Peak { per_core: best.per_core, all: best.all_cores, all_cores: info.cores.len(), what };
    print!("{}", table(&rows, &peak, args));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&to_json(&rows, &peak, args))?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    Ok(0)
}

/// A temporary folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let base = std::env::temp_dir();
        for k in 0..1000 {
            let d = base.join(format!("kann-bench-{}-{k}", std::process::id()));
            if std::fs::create_dir(&d).is_ok() {
                return Ok(TempDir(d));
            }
        }
        bail!("cannot create a folder under {}", base.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `model` is a network YAML or an ONNX model (generated first).
fn to_generate(model: &Path) -> bool {
    let ext = model.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    model.is_file() && matches!(ext.as_str(), "yaml" | "yml" | "onnx")
}

/// The artifact to run and the ONNX model behind it (from the generated
/// folder's network.dump.yaml), generating YAML/ONNX inputs first.
fn resolve(model: &Path, args: &BenchArgs, tmp: &mut Option<TempDir>) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let ext = model.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    if to_generate(model) {
        let dir = TempDir::new()?;
        let gen = GenerateArgs {
            config: model.to_path_buf(),
            dest: Some(dir.0.clone()),
            arch: None,
            nbr_clusters: args.nbr_clusters,
            forced_batch_size: None,
            precision: None,
            generate_txt_cmds: false,
            draw_graph: false,
            draw_graph_pdf: false,
            input_shapes: args.input_shapes.clone(),
            no_winograd: false,
            no_blocked_layout: false,
            quiet: true,
        };
        super::generate::run(&gen).with_context(|| format!("cannot generate {}", model.display()))?;
        let found = (find_artifact(&dir.0)?, dump::read(&dir.0).ok().map(|d| d.model_path));
        *tmp = Some(dir);
        return Ok(found);
    }
    if !model.exists() {
        bail!("{} does not exist", model.display());
    }
    if model.is_file() && ext != "kann" {
        bail!("{} is neither a generated folder, a .kann file, a network YAML nor an ONNX model", model.display());
    }
    let artifact = find_artifact(model)?;
    let gen_dir = if model.is_dir() { model.to_path_buf() } else { model.parent().map(Path::to_path_buf).unwrap_or_default() };
    Ok((artifact, dump::read(&gen_dir).ok().map(|d| d.model_path)))
}

/// Loads and starts the artifact on `n` cores (default: all); returns the
/// service and how many cores its clusters really run on.
fn start(artifact: &Path, n: Option<u32>) -> anyhow::Result<(Service, usize)> {
    let mut service = Service::load(artifact)?;
    let all = Device::all();
    let device = match n {
        None => all,
        Some(n) => Device::cores(all.core_ids().iter().copied().cycle().take(n as usize).collect()),
    };
    service.init_device(&device)?;
    for w in service.warnings() {
        eprintln!("warning: {}: {w}", artifact.display());
    }
    let mut cores = device.core_ids().to_vec();
    cores.sort_unstable();
    cores.dedup();
    let threads = service.n_clusters().min(cores.len()).max(1);
    Ok((service, threads))
}

fn bench_one(model: &Path, args: &BenchArgs, python: Option<&Path>) -> anyhow::Result<Row> {
    let mut tmp = None;
    let (artifact, onnx) = resolve(model, args, &mut tmp)?;
    let (mut service, threads) = start(&artifact, args.nbr_clusters)?;
    let name = network_name(&service, &artifact);
    eprintln!("bench {name}: {} cluster(s) on {threads} core(s), {} warm-up + {} timed frames", service.n_clusters(), args.warmup, args.n);
    let in_specs = specs(service.inputs())?;
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let inputs: Vec<Vec<u8>> = in_specs.iter().map(|s| random_frame(s, &mut rng)).collect::<anyhow::Result<_>>()?;
    let mut outputs: Vec<Vec<u8>> = service.outputs().iter().map(|t| vec![0u8; t.bytes()]).collect();
    let mut ort = match python {
        Some(py) => {
            let onnx = onnx.with_context(|| format!("{}: no network.dump.yaml names its ONNX model, which --vs-onnxruntime needs", model.display()))?;
            Some(Ort::start(py, &onnx, &service, threads, args.warmup)?)
        }
        None => None,
    };
    let mut frame = |service: &mut Service| -> anyhow::Result<f64> {
        let ins: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let mut outs: Vec<&mut [u8]> = outputs.iter_mut().map(Vec::as_mut_slice).collect();
        let t = Instant::now();
        service.process_frame(&ins, &mut outs).with_context(|| format!("{name}: frame"))?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..args.warmup {
        frame(&mut service)?;
    }
    let (mut kann_ms, mut ort_ms) = (Vec::new(), Vec::new());
    for _ in 0..args.n {
        if let Some(o) = ort.as_mut() {
            std::thread::sleep(settle());
            frame(&mut service)?;
            kann_ms.push(frame(&mut service)?);
            std::thread::sleep(settle());
            ort_ms.extend(o.time(2)?.last());
        } else {
            kann_ms.push(frame(&mut service)?);
        }
    }
    let flops: u64 = service.program().steps.iter().map(|s| s.flops).sum();
    let estimate_ms = super::run::Estimate::of(&service).map(|e| e.latency_ms);
    let clusters = service.n_clusters();
    service.terminate();
    let ort = ort.map(|o| o.finish().map(|v| (Summary::of(&ort_ms), v))).transpose()?;
    Ok(Row { name, source: model.to_path_buf(), clusters, threads, gflop: flops as f64 / 1e9, estimate_ms, kann: Summary::of(&kann_ms), ort })
}

/// The metadata's network name, else the artifact's stem.
fn network_name(service: &Service, artifact: &Path) -> String {
    serde_json::from_str::<Value>(service.metadata())
        .ok()
        .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| artifact.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "network".into()))
}

/// ONNX Runtime in a Python child process (see [`ORT_SCRIPT`]).
struct Ort {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    model: PathBuf,
    version: String,
}

impl Ort {
    fn start(python: &Path, model: &Path, service: &Service, threads: usize, warmup: u32) -> anyhow::Result<Ort> {
        let shapes: serde_json::Map<String, Value> = service.inputs().iter().map(|t| (t.name.clone(), json!(t.shape))).collect();
        let outputs: Vec<&str> = service.outputs().iter().map(|t| t.name.as_str()).collect();
        let cfg = json!({"model": model.to_string_lossy(), "threads": threads, "warmup": warmup.max(1), "shapes": shapes, "outputs": outputs});
        let mut child = Command::new(python)
            .arg("-c")
            .arg(ORT_SCRIPT)
            .arg(cfg.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", python.display()))?;
        let stdin = child.stdin.take().context("onnxruntime: no stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("onnxruntime: no stdout")?);
        let mut ort = Ort { child, stdin, stdout, model: model.to_path_buf(), version: String::new() };
        let ready = ort.line()?;
        ort.version = ready.get("ready").and_then(Value::as_str).unwrap_or("?").to_string();
        Ok(ort)
    }

    /// The next JSON line, or the child's last error line.
    fn line(&mut self) -> anyhow::Result<Value> {
        let mut text = String::new();
        if self.stdout.read_line(&mut text).unwrap_or(0) == 0 {
            let _ = self.child.wait();
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("it exited without a word");
            bail!("onnxruntime on {}: {}", self.model.display(), last.trim());
        }
        serde_json::from_str(&text).with_context(|| format!("onnxruntime printed '{}'", text.trim()))
    }

    /// Runs `k` timed inferences; their milliseconds.
    fn time(&mut self, k: usize) -> anyhow::Result<Vec<f64>> {
        writeln!(self.stdin, "{k}").context("onnxruntime stopped")?;
        self.stdin.flush().context("onnxruntime stopped")?;
        let v = self.line()?;
        let times = v.as_array().context("onnxruntime: expected a list of times")?;
        Ok(times.iter().filter_map(Value::as_f64).map(|s| s * 1e3).collect())
    }

    /// Stops the child; its ONNX Runtime version.
    fn finish(mut self) -> anyhow::Result<String> {
        let _ = writeln!(self.stdin, "0");
        let _ = self.child.wait();
        Ok(self.version)
    }
}

/// The venv's Python with onnxruntime and numpy, creating the venv
/// (`<data dir>/venv`) and installing them when missing.
fn ort_python() -> anyhow::Result<PathBuf> {
    let venv = super::zoo::data_dir().join("venv");
    let python = venv.join("bin").join("python");
    let has = |py: &Path| Command::new(py).args(["-c", "import onnxruntime, numpy"]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if python.is_file() && has(&python) {
        return Ok(python);
    }
    if !python.is_file() {
        eprintln!("creating the Python venv {} for ONNX Runtime…", venv.display());
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success());
        if !ok {
            bail!("--vs-onnxruntime: cannot create a Python venv at {} (is python3 with venv installed?)", venv.display());
        }
    }
    eprintln!("installing onnxruntime=={ORT_VERSION} and numpy into {}…", venv.display());
    let ok = Command::new(&python).args(["-m", "pip", "install", "--quiet", &format!("onnxruntime=={ORT_VERSION}"), "numpy"]).status().is_ok_and(|s| s.success());
    if !ok || !has(&python) {
        bail!("--vs-onnxruntime: cannot install onnxruntime=={ORT_VERSION} and numpy into {}", venv.display());
    }
    Ok(python)
}

impl Peak {
    /// GFLOP/s of `threads` cores: the all-core measurement when they are
    /// all the cores, else one core's times `threads`.
    fn of(&self, threads: usize) -> f64 {
        if threads == self.all_cores && self.all > 0.0 {
            self.all
        } else {
            self.per_core * threads as f64
        }
    }
}

/// Time at peak (ms), GFLOP/s and efficiency of a row.
fn derived(r: &Row, peak: &Peak) -> (f64, f64, f64) {
    let peak_gflops = peak.of(r.threads);
    let at_peak = if peak_gflops > 0.0 { r.gflop / peak_gflops * 1e3 } else { 0.0 };
    let gflops = if r.kann.median > 0.0 { r.gflop / (r.kann.median / 1e3) } else { 0.0 };
    let eff = if r.kann.median > 0.0 { at_peak / r.kann.median } else { 0.0 };
    (at_peak, gflops, eff)
}

/// The geometric mean of kann/ORT over the rows that have ORT.
fn geomean_ratio(rows: &[Row]) -> Option<f64> {
    let logs: Vec<f64> = rows.iter().filter_map(|r| r.ort.as_ref().map(|(o, _)| (r.kann.median / o.median).ln())).collect();
    (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

fn table(rows: &[Row], peak: &Peak, args: &BenchArgs) -> String {
    let with_ort = rows.iter().any(|r| r.ort.is_some());
    let w = rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(5).max(5);
    let mut o = format!("\nkann bench: {} timed frame(s) after {} warm-up, random inputs; times in ms per frame; est.: the cost model's latency from generate\n", args.n, args.warmup);
    o += &format!("peak: {:.1} GFLOP/s on one core, {:.1} on all {} ({}); a model gets that of the cores it runs on\n\n", peak.per_core, peak.all, peak.all_cores, peak.what);
    o += &format!("{:<w$}  {:>7}  {:>7}  {:>9}  {:>21}  {:>8}  {:>8}  {:>9}  {:>6}  {:>8}", "model", "GFLOP", "cl/thr", "median", "p10 – p90", "max", "GFLOP/s", "at peak", "eff.", "est.");
    if with_ort {
        o += &format!("  {:>9}  {:>8}", "ORT med.", "kann/ORT");
    }
    o += "\n";
    for r in rows {
        let (at_peak, gflops, eff) = derived(r, peak);
        let spread = format!("{:.3} – {:.3}", r.kann.p10, r.kann.p90);
        o += &format!(
            "{:<w$}  {:>7.3}  {:>7}  {:>9.3}  {:>21}  {:>8.3}  {:>8.1}  {:>9.3}  {:>5.1}%  {:>8}",
            r.name,
            r.gflop,
            format!("{}/{}", r.clusters, r.threads),
            r.kann.median,
            spread,
            r.kann.max,
            gflops,
            at_peak,
            eff * 100.0,
            r.estimate_ms.map_or_else(|| "-".to_string(), |e| format!("{e:.3}"))
        );
        if let Some((ort, _)) = &r.ort {
            o += &format!("  {:>9.3}  {:>7.2}x", ort.median, r.kann.median / ort.median);
        } else if with_ort {
            o += &format!("  {:>9}  {:>8}", "-", "-");
        }
        o += "\n";
    }
    if let Some(g) = geomean_ratio(rows) {
        let version = rows.iter().find_map(|r| r.ort.as_ref().map(|(_, v)| v.as_str())).unwrap_or("?");
        o += &format!("\ngeometric mean kann/ORT: {g:.3}x (ONNX Runtime {version}, same intra-op threads, taking turns: {} ms pause, one untimed and one timed run each)\n", settle().as_millis());
    }
    o
}

fn to_json(rows: &[Row], peak: &Peak, args: &BenchArgs) -> Value {
    let models: Vec<Value> = rows
        .iter()
        .map(|r| {
            let (at_peak, gflops, eff) = derived(r, peak);
            let mut v = json!({
                "name": r.name,
                "source": r.source.to_string_lossy(),
                "clusters": r.clusters,
                "threads": r.threads,
                "gflop": r.gflop,
                "kann": r.kann.to_json(),
                "gflops": gflops,
                "peak_gflops": peak.of(r.threads),
                "time_at_peak_ms": at_peak,
                "efficiency": eff,
                "estimate_ms": r.estimate_ms,
            });
            if let Some((ort, version)) = &r.ort {
                v["onnxruntime"] = ort.to_json();
                v["onnxruntime"]["version"] = json!(version);
                v["ratio_kann_ort"] = json!(r.kann.median / ort.median);
            }
            v
        })
        .collect();
    json!({
        "kann_version": env!("CARGO_PKG_VERSION"),
        "frames": args.n,
        "warmup": args.warmup,
        "peak_gflops_per_core": peak.per_core,
        "peak_gflops_all_cores": peak.all,
        "peak_source": peak.what,
        "models": models,
        "geomean_ratio_kann_ort": geomean_ratio(rows),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_interpolate() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        assert!((s.p10 - 1.4).abs() < 1e-12 && (s.p90 - 4.6).abs() < 1e-12, "{s:?}");
        let one = Summary::of(&[7.0]);
        assert_eq!((one.median, one.p10, one.p90), (7.0, 7.0, 7.0));
    }

    fn row(name: &str, kann: f64, ort: Option<f64>) -> Row {
        let s = |m| Summary { median: m, min: m, max: m, p10: m, p90: m };
        Row { name: name.into(), source: PathBuf::from("x"), clusters: 2, threads: 2, gflop: 1.0, estimate_ms: None, kann: s(kann), ort: ort.map(|o| (s(o), "1.32.0".to_string())) }
    }

    #[test]
    fn efficiency_and_ratios() {
        let peak = Peak { per_core: 50.0, all: 90.0, all_cores: 4, what: "test".into() };
        assert_eq!((peak.of(1), peak.of(2), peak.of(4)), (50.0, 100.0, 90.0));
        // 1 GFLOP at 100 GFLOP/s is 10 ms; measured 20 ms → 50%.
        let (at_peak, gflops, eff) = derived(&row("a", 20.0, None), &peak);
        assert!((at_peak - 10.0).abs() < 1e-9 && (gflops - 50.0).abs() < 1e-9 && (eff - 0.5).abs() < 1e-12);
        let rows = [row("a", 20.0, Some(10.0)), row("b", 10.0, Some(20.0)), row("c", 5.0, None)];
        assert!((geomean_ratio(&rows).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(geomean_ratio(&rows[2..]), None);
        let args = BenchArgs { models: vec![], n: 3, warmup: 1, nbr_clusters: None, vs_onnxruntime: true, json: None, input_shapes: vec![] };
        let t = table(&rows, &peak, &args);
        for want in ["kann/ORT", "2.00x", "0.50x", "geometric mean kann/ORT: 1.000x", "50.0%"] {
            assert!(t.contains(want), "{want} missing from\n{t}");
        }
        let j = to_json(&rows, &peak, &args);
        assert_eq!(j["models"][0]["ratio_kann_ort"], json!(2.0));
        assert!(j["models"][2].get("onnxruntime").is_none());
    }

    #[test]
    fn bad_inputs_are_one_clear_error() {
        let args = BenchArgs { models: vec![], n: 1, warmup: 0, nbr_clusters: None, vs_onnxruntime: false, json: None, input_shapes: vec![] };
        let e = resolve(Path::new("/nonexistent/model.kann"), &args, &mut None).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        let txt = std::env::temp_dir().join(format!("kann-bench-test-{}.txt", std::process::id()));
        std::fs::write(&txt, "x").unwrap();
        let e = resolve(&txt, &args, &mut None).unwrap_err().to_string();
        assert!(e.contains("neither a generated folder"), "{e}");
        let _ = std::fs::remove_file(&txt);
    }
}
