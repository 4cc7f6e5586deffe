//! Measuring the cost model's [`Calibration`] on this machine: each probe
//! of [`kann_compiler::calibrate::probes`] compiled for this CPU and one
//! cluster, run by the runtime on the first usable core, each step's median
//! over the frames set against the uncalibrated model's parts of it.

use anyhow::Context;
use kann_artifact::{Arch, CpuFeatures};
use kann_compiler::calibrate::{fit, probes, Sample, CALIBRATION_VERSION};
use kann_compiler::cost::{Calibration, CostModel, Family};
use kann_compiler::CompileOptions;
use kann_runtime::{Device, Service};
use serde_json::{json, Value};
use std::time::Duration;

/// Frames of a probe: untimed, then timed (the most; a short peak window,
/// as the tests set, times fewer).
const WARMUP: usize = 2;
const FRAMES: usize = 15;

/// Bytes read before each frame to push the probe's weights and
/// activations out of the caches: in a network each layer's weights come
/// from memory (the other layers' evicted them), and a probe run warm
/// frame after frame had Winograd F(4×4) at 0.56 of the model where whole
/// networks ran at 0.70, the depthwise steps at 0.43 against 0.6-1.0.
const EVICT_BYTES: usize = 96 << 20;

/// A calibration and what it was measured for.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub calibration: Calibration,
    /// The arch the probes were compiled for (this CPU's best).
    pub arch: String,
    /// [`CALIBRATION_VERSION`] and the program format the probes ran in.
    pub version: u32,
    pub program_version: u32,
    /// The probes' time on one core (ms) for each arch this CPU runs that
    /// was tried; the fastest is `arch`, what `--arch native` means here.
    pub probe_ms: Vec<(String, f64)>,
}

impl Record {
    /// Whether it holds for artifacts compiled now for `arch`.
    pub fn applies_to(&self, arch: Arch) -> bool {
        self.is_current() && self.arch == arch.to_string()
    }

    /// Whether this version of kann measured it.
    pub fn is_current(&self) -> bool {
        self.version == CALIBRATION_VERSION && self.program_version == kann_kernels::PROGRAM_VERSION
    }

    /// The arch it chose, if it is one this CPU runs.
    pub fn chosen_arch(&self) -> Option<Arch> {
        candidates().into_iter().find(|a| a.to_string() == self.arch)
    }

    pub fn to_json(&self) -> Value {
        let c = &self.calibration;
        let mut factors: serde_json::Map<String, Value> = Family::ALL.iter().map(|&f| (f.name().to_string(), json!(c.compute_factor(f)))).collect();
        factors.insert("weights".into(), json!(c.weights));
        let probe_ms: Vec<Value> = self.probe_ms.iter().map(|(a, ms)| json!({"arch": a, "ms": ms})).collect();
        json!({"version": self.version, "program_version": self.program_version, "arch": self.arch, "factors": factors, "bandwidth_cores": c.bandwidth_cores, "probe_ms": probe_ms})
    }

    pub fn from_json(v: &Value) -> Option<Record> {
        let factors = v.get("factors")?;
        let factor = |name: &str| factors.get(name)?.as_f64().filter(|f| f.is_finite() && *f > 0.0);
        let mut compute = [1.0; 5];
        for (slot, f) in compute.iter_mut().zip(Family::ALL) {
            *slot = factor(f.name())?;
        }
        let bandwidth_cores = match v.get("bandwidth_cores") {
            None | Some(Value::Null) => None,
            Some(b) => Some(b.as_f64().filter(|b| b.is_finite() && *b >= 1.0)?),
        };
        Some(Record {
            calibration: Calibration { compute, weights: factor("weights")?, bandwidth_cores },
            arch: v.get("arch")?.as_str()?.to_string(),
            version: v.get("version")?.as_u64()? as u32,
            program_version: v.get("program_version")?.as_u64()? as u32,
            probe_ms: match v.get("probe_ms") {
                Some(Value::Array(runs)) => runs.iter().map(|r| Some((r.get("arch")?.as_str()?.to_string(), r.get("ms")?.as_f64()?))).collect::<Option<_>>()?,
                _ => Vec::new(),
            },
        })
    }

    /// `gemm 0.85, pointwise 1.01, …, weights 0.66`.
    pub fn describe(&self) -> String {
        let c = &self.calibration;
        let mut parts: Vec<String> = Family::ALL.iter().map(|&f| format!("{} {:.2}", f.name(), c.compute_factor(f))).collect();
        parts.push(format!("weights {:.2}", c.weights));
        if let Some(b) = c.bandwidth_cores {
            parts.push(format!("all cores stream weights at {b:.2} cores' rate"));
        }
        parts.join(", ")
    }
}

/// The archs `--arch native` may mean on this CPU: its best, and AVX2's
/// where that is AVX-512 (a CPU whose AVX-512 runs on 256-bit units, as
/// Zen 4's, gains nothing from it, while the AVX2 target has the
/// channel-blocked layout the AVX-512 one lacks).
pub fn candidates() -> Vec<Arch> {
    let best = Arch::best_for(&CpuFeatures::detect());
    if best == Arch::X86_64V4 {
        vec![Arch::X86_64V4, Arch::X86_64V3]
    } else {
        vec![best]
    }
}

/// The fastest of `probe_ms` (the first where they tie).
pub fn fastest(probe_ms: &[(String, f64)]) -> Option<&str> {
    probe_ms.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|(a, _)| a.as_str())
}

/// Runs the probes on the first of `cores` for each arch of
/// [`candidates`], keeps the fastest, and fits its calibration (its
/// weights' stream again on all the cores): a second or two an arch.
/// `window` is the peaks' measurement window, a tenth of a millisecond a
/// timed frame.
pub fn measure(cores: &[usize], window: Duration) -> anyhow::Result<Record> {
    let dir = std::env::temp_dir().join(format!("kann-calibrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let frames = (window.as_millis() as usize / 10).clamp(3, FRAMES);
    let result = (|| {
        let runs = candidates().into_iter().map(|arch| Ok((arch, run_probes(&dir, arch, cores, frames)?))).collect::<anyhow::Result<Vec<_>>>()?;
        let probe_ms: Vec<(String, f64)> = runs.iter().map(|(a, r)| (a.to_string(), r.total * 1e3)).collect();
        let chosen = fastest(&probe_ms).and_then(|name| runs.iter().position(|(a, _)| a.to_string() == name)).unwrap_or(0);
        let (arch, run) = &runs[chosen];
        let calibration = fit_run(&dir, *arch, run, cores, frames)?;
        Ok(Record { calibration, arch: arch.to_string(), version: CALIBRATION_VERSION, program_version: kann_kernels::PROGRAM_VERSION, probe_ms })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The probes' steps on one core for one arch.
struct ProbeRun {
    samples: Vec<Sample>,
    /// Seconds of all the probes' steps.
    total: f64,
    /// The weight-streaming probe's longest step.
    stream_alone: Option<f64>,
}

fn run_probes(dir: &std::path::Path, arch: Arch, cores: &[usize], frames: usize) -> anyhow::Result<ProbeRun> {
    let first = &cores[..cores.len().min(1)];
    let cost = CostModel::portable();
    let mut run = ProbeRun { samples: Vec::new(), total: 0.0, stream_alone: None };
    for (i, p) in probes().iter().enumerate() {
        let timed = run_probe(&p.graph, arch, first, frames, &dir.join(format!("probe{i}.kann"))).with_context(|| format!("calibration probe '{}' ({arch})", p.name))?;
        for (step, t) in &timed {
            run.samples.push(Sample { family: Family::of(&step.kernel), cost: cost.step_cost(step, 1.0), measured: *t });
            run.total += t;
        }
        // The last probe streams weights: its longest step alone, for the bandwidth below.
        run.stream_alone = timed.iter().map(|s| s.1).reduce(f64::max);
    }
    Ok(run)
}

/// The calibration of `run`, with the weights' stream timed on all `cores`.
fn fit_run(dir: &std::path::Path, arch: Arch, run: &ProbeRun, cores: &[usize], frames: usize) -> anyhow::Result<Calibration> {
    let probes = probes();
    let stream_alone = run.stream_alone;
    let mut calibration = fit(&run.samples);
    if cores.len() > 1 {
        let last = probes.last().context("no calibration probes")?;
        let timed = run_probe(&last.graph, arch, cores, frames, &dir.join("stream.kann")).with_context(|| format!("calibration probe '{}' on {} cores", last.name, cores.len()))?;
        let together = timed.iter().map(|s| s.1).reduce(f64::max);
        if let (Some(alone), Some(together)) = (stream_alone, together) {
            calibration.bandwidth_cores = Some((alone / together).clamp(1.0, cores.len() as f64));
        }
    }
    Ok(calibration)
}

/// A probe compiled for one cluster a core of `cores` and run there: each
/// step run with the median of `frames` (its slowest cluster's), seconds.
fn run_probe(graph: &kann_ir::Graph, arch: Arch, cores: &[usize], frames: usize, path: &std::path::Path) -> anyhow::Result<Vec<(kann_kernels::Step, f64)>> {
    let opts = CompileOptions { n_clusters: cores.len().max(1), arch, winograd: true, blocked: true, calibration: Calibration::default() };
    let compiled = kann_compiler::compile(graph.clone(), &opts, Some(&kann_reference::Reference))?;
    compiled.artifact(arch, "{}")?.write_to(path)?;
    let mut service = Service::load(path)?;
    service.init_device(&Device::cores(cores.to_vec()))?;
    let input: Vec<u8> = kann_compiler::layers::random(service.inputs()[0].bytes() / 4, 3).iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut output = vec![0u8; service.outputs()[0].bytes()];
    let steps = service.program().steps.len();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); steps];
    let mut evict = vec![1u64; EVICT_BYTES / 8];
    for frame in 0..WARMUP + frames {
        // Read and write every line, so that no level keeps the probe's.
        evict.iter_mut().step_by(8).for_each(|v| *v = v.wrapping_add(1));
        std::hint::black_box(&evict);
        service.process_frame(&[&input], &mut [&mut output])?;
        if frame < WARMUP {
            continue;
        }
        for s in service.last_profile().map(|p| p.steps).unwrap_or_default() {
            if let Some(t) = times.get_mut(s.step) {
                t.push(s.max());
            }
        }
    }
    let timed = service
        .program()
        .steps
        .iter()
        .zip(&mut times)
        .filter(|(_, t)| !t.is_empty())
        .map(|(step, t)| {
            t.sort();
            (step.clone(), t[t.len() / 2].as_secs_f64())
        })
        .collect();
    service.terminate();
    Ok(timed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_apply_to_their_arch_only() {
        let calibration = Calibration { compute: [0.8, 1.0, 0.7, 0.75, 1.2], weights: 0.6, bandwidth_cores: Some(1.3) };
        let probe_ms = vec![("x86-64-v4".to_string(), 12.5), ("x86-64-v3".to_string(), 11.0)];
        let r = Record { calibration, arch: Arch::X86_64V3.to_string(), version: CALIBRATION_VERSION, program_version: kann_kernels::PROGRAM_VERSION, probe_ms };
        let back = Record::from_json(&r.to_json()).expect("parses");
        assert_eq!(back, r);
        assert!(r.applies_to(Arch::X86_64V3));
        assert!(!r.applies_to(Arch::Generic));
        assert!(!Record { version: CALIBRATION_VERSION + 1, ..r.clone() }.applies_to(Arch::X86_64V3));
        assert_eq!(r.describe(), "gemm 0.80, pointwise 1.00, winograd4x4 0.70, winograd2x2 0.75, depthwise 1.20, weights 0.60, all cores stream weights at 1.30 cores' rate");
        let unmeasured = Record { calibration: Calibration { bandwidth_cores: None, ..calibration }, probe_ms: Vec::new(), ..r.clone() };
        assert_eq!(Record::from_json(&unmeasured.to_json()), Some(unmeasured));
        assert_eq!(fastest(&r.probe_ms), Some("x86-64-v3"));
        assert_eq!(fastest(&[]), None);
        assert!(candidates().contains(&Arch::best_for(&CpuFeatures::detect())));
        let mut bad = r.to_json();
        bad["factors"]["gemm"] = json!(-1.0);
        assert!(Record::from_json(&bad).is_none(), "a non-positive factor is refused");
    }
}
