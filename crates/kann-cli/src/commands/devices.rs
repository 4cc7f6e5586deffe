//! `kann devices [--refresh] [--json]`: what this machine offers kann — the
//! CPU model, its ISA features, the cores this process may use, the cache
//! sizes, and the measured peak throughput of one core and of all of them
//! at once for each vector width (kann_kernels::peak's loops; all cores
//! run the loop simultaneously, one thread pinned to each).
//!
//! The peaks take a few seconds to measure, so the whole description is
//! cached per machine in `<data dir>/devices/<key>.json`, the key hashing
//! the CPU model, the features and the cores; `--refresh` measures again.
//! `KANN_PEAK_MS` sets the window of each measurement (default 150 ms).
//!
//! The cache also holds the cost model's calibration for this machine
//! ([`calibrate`]): `kann generate` for this CPU reads it (never measures
//! it), so that the schedule's balance and the estimated latency are this
//! machine's. It is measured with the peaks, and again when the probes or
//! the program format change.

mod calibrate;

use super::zoo::data_dir;
use anyhow::Context;
use kann_kernels::peak::{self, PeakLoop};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Measurement window of one loop without `KANN_PEAK_MS`.
const DEFAULT_WINDOW_MS: u64 = 150;

/// One cache of core 0's hierarchy.
#[derive(Clone, Debug, PartialEq)]
pub struct Cache {
    pub level: u32,
    /// `Data`, `Instruction` or `Unified`.
    pub kind: String,
    pub bytes: u64,
    /// The CPUs sharing it, as the kernel lists them (`0-1`).
    pub shared_with: String,
}

/// One measured peak.
#[derive(Clone, Debug, PartialEq)]
pub struct PeakRow {
    pub name: String,
    /// `fp32`, `bf16` or `int8`.
    pub kind: String,
    pub unit: String,
    pub instruction: String,
    /// Giga-operations per second on one core.
    pub per_core: f64,
    /// All usable cores at once.
    pub all_cores: f64,
}

/// What `kann devices` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    pub model: String,
    pub arch: String,
    pub features: Vec<String>,
    pub cores: Vec<usize>,
    pub caches: Vec<Cache>,
    pub peaks: Vec<PeakRow>,
    pub window_ms: u64,
    /// The cost model's corrections here (absent from older caches).
    pub calibration: Option<calibrate::Record>,
}

impl DeviceInfo {
    /// The fp32 loop with the best rate on one core.
    pub fn best_fp32(&self) -> Option<&PeakRow> {
        self.peaks.iter().filter(|p| p.kind == "fp32").max_by(|a, b| a.per_core.total_cmp(&b.per_core))
    }

    fn to_json(&self) -> Value {
        json!({
            "kann_version": env!("CARGO_PKG_VERSION"),
            "model": self.model,
            "arch": self.arch,
            "features": self.features,
            "cores": self.cores,
            "caches": self.caches.iter().map(|c| json!({"level": c.level, "type": c.kind, "bytes": c.bytes, "shared_with": c.shared_with})).collect::<Vec<_>>(),
            "window_ms": self.window_ms,
            "peaks": self.peaks.iter().map(|p| json!({"name": p.name, "kind": p.kind, "unit": p.unit, "instruction": p.instruction, "per_core": p.per_core, "all_cores": p.all_cores})).collect::<Vec<_>>(),
            "calibration": self.calibration.as_ref().map(calibrate::Record::to_json),
        })
    }

    fn from_json(v: &Value) -> Option<DeviceInfo> {
        let s = |v: &Value, k: &str| v.get(k)?.as_str().map(str::to_string);
        let caches = v
            .get("caches")?
            .as_array()?
            .iter()
            .map(|c| Some(Cache { level: c.get("level")?.as_u64()? as u32, kind: s(c, "type")?, bytes: c.get("bytes")?.as_u64()?, shared_with: s(c, "shared_with")? }))
            .collect::<Option<_>>()?;
        let peaks = v.get("peaks")?.as_array()?.iter().map(|p| {
            Some(PeakRow {
                name: s(p, "name")?,
                kind: s(p, "kind")?,
                unit: s(p, "unit")?,
                instruction: s(p, "instruction")?,
                per_core: p.get("per_core")?.as_f64()?,
                all_cores: p.get("all_cores")?.as_f64()?,
            })
        });
        Some(DeviceInfo {
            model: s(v, "model")?,
            arch: s(v, "arch")?,
            features: v.get("features")?.as_array()?.iter().map(|f| f.as_str().map(str::to_string)).collect::<Option<_>>()?,
            cores: v.get("cores")?.as_array()?.iter().map(|c| c.as_u64().map(|c| c as usize)).collect::<Option<_>>()?,
            caches,
            peaks: peaks.collect::<Option<_>>()?,
            window_ms: v.get("window_ms")?.as_u64()?,
            calibration: v.get("calibration").and_then(calibrate::Record::from_json),
        })
    }
}

/// `kann devices`. Returns the exit code.
pub fn run(refresh: bool, as_json: bool) -> anyhow::Result<i32> {
    let (info, path, cached) = load_or_measure(refresh, !as_json)?;
    if as_json {
        let mut v = info.to_json();
        v["cache_file"] = json!(path.to_string_lossy());
        v["cached"] = json!(cached);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&info));
        let how = if cached { "read from" } else { "saved to" };
        println!("peaks {how} {} (kann devices --refresh measures again)", path.display());
    }
    Ok(0)
}

/// This machine's description: the cached one unless `refresh` (or none
/// is cached, or it does not read back), else measured and cached.
/// Returns it, the cache file, and whether it came from the cache.
/// This machine's description from the cache, measured first if the cache
/// lacks it (or its calibration is stale) or `refresh`; the flag says
/// whether the peaks came from the cache.
pub fn load_or_measure(refresh: bool, say_measuring: bool) -> anyhow::Result<(DeviceInfo, PathBuf, bool)> {
    let path = cache_path();
    let cores = kann_runtime::Device::all().core_ids().to_vec();
    let cached = if refresh { None } else { read_cached_info(&path) };
    let (mut info, from_cache) = match cached {
        Some(info) => (info, true),
        None => {
            let window = window();
            if say_measuring {
                eprintln!("measuring the peak throughput ({} ms per loop, one core then {} at once)…", window.as_millis(), cores.len());
            }
            let peaks = peak::loops().iter().map(|l| measure_row(l, &cores, window)).collect();
            let info = DeviceInfo { model: cpu_model(), arch: std::env::consts::ARCH.to_string(), features: features(), cores: cores.clone(), caches: caches(), peaks, window_ms: window.as_millis() as u64, calibration: None };
            (info, false)
        }
    };
    if !from_cache || !info.calibration.as_ref().is_some_and(|c| c.is_current() && c.chosen_arch().is_some()) {
        if say_measuring {
            eprintln!("calibrating the cost model on this machine (six small networks on one core, one on all)…");
        }
        info.calibration = Some(calibrate::measure(&cores, window())?);
        write_cache(&path, &info)?;
    }
    Ok((info, path, from_cache))
}

/// This machine's cache file.
fn cache_path() -> PathBuf {
    let cores = kann_runtime::Device::all().core_ids().to_vec();
    data_dir().join("devices").join(format!("{:016x}.json", cache_key(&cpu_model(), &features(), &cores)))
}

fn read_cached_info(path: &Path) -> Option<DeviceInfo> {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()).and_then(|v| DeviceInfo::from_json(&v))
}

/// The cached calibration, if this version of kann measured it here (never
/// measures); `KANN_NO_CALIBRATION=1` ignores it.
fn current_calibration() -> Option<calibrate::Record> {
    if std::env::var("KANN_NO_CALIBRATION").is_ok_and(|v| v == "1") {
        return None;
    }
    read_cached_info(&cache_path())?.calibration.filter(|c| c.is_current())
}

/// The cost model's calibration for artifacts compiled for `arch` on this
/// machine: the cached one if it was measured here for `arch`.
pub fn cached_calibration(arch: kann_artifact::Arch) -> Option<calibrate::Record> {
    current_calibration().filter(|c| c.applies_to(arch))
}

/// What `--arch native` means here: the arch the calibration found
/// fastest among those this CPU runs (x86-64-v3 or -v4 on an AVX-512 CPU),
/// else the CPU's best.
pub fn native_arch() -> kann_artifact::Arch {
    current_calibration().and_then(|c| c.chosen_arch()).unwrap_or_else(|| kann_artifact::Arch::best_for(&kann_artifact::CpuFeatures::detect()))
}

fn write_cache(path: &Path, info: &DeviceInfo) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&info.to_json())?).with_context(|| format!("cannot write {}", path.display()))
}

/// The measurement window: `KANN_PEAK_MS` milliseconds, else the default.
fn window() -> Duration {
    let ms = std::env::var("KANN_PEAK_MS").ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(DEFAULT_WINDOW_MS);
    Duration::from_millis(ms.clamp(1, 10_000))
}

fn measure_row(l: &PeakLoop, cores: &[usize], window: Duration) -> PeakRow {
    let per_core = on_cores(l, &cores[..1.min(cores.len())], window);
    let all_cores = if cores.len() > 1 { on_cores(l, cores, window) } else { per_core };
    PeakRow { name: l.name.into(), kind: l.kind.name().into(), unit: l.kind.unit().into(), instruction: l.instruction.into(), per_core, all_cores }
}

/// The summed rate of one thread per core (pinned where the OS lets us),
/// all starting together; the calling thread when `cores` is empty.
fn on_cores(l: &PeakLoop, cores: &[usize], window: Duration) -> f64 {
    if cores.is_empty() {
        return l.measure(window);
    }
    let start = Arc::new(Barrier::new(cores.len()));
    let threads: Vec<_> = cores
        .iter()
        .map(|&core| {
            let (l, start) = (*l, Arc::clone(&start));
            std::thread::spawn(move || {
                // Unpinned, the loop still runs; the OS then places it.
                let _ = kann_runtime::pin_current_thread(core);
                start.wait();
                l.measure(window)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap_or(0.0)).sum()
}

/// FNV-1a over the model, the features and the cores: stable across runs
/// and Rust versions, unlike std's hasher.
fn cache_key(model: &str, features: &[String], cores: &[usize]) -> u64 {
    let text = format!("{model}|{}|{cores:?}", features.join(","));
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The CPU's name from /proc/cpuinfo (`model name`, or the ARM fields).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| model_from_cpuinfo(&t)).unwrap_or_else(|| "unknown CPU".into())
}

fn model_from_cpuinfo(text: &str) -> Option<String> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    };
    field("model name").or_else(|| field("Model")).or_else(|| field("Hardware")).or_else(|| {
        let (imp, part) = (field("CPU implementer")?, field("CPU part")?);
        Some(format!("implementer {imp}, part {part}"))
    })
}

/// The ISA features kann cares about that this CPU (and OS) supports.
fn features() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        let detected = [
            ("sse4.2", std::is_x86_feature_detected!("sse4.2")),
            ("avx", std::is_x86_feature_detected!("avx")),
            ("avx2", std::is_x86_feature_detected!("avx2")),
            ("fma", std::is_x86_feature_detected!("fma")),
            ("f16c", std::is_x86_feature_detected!("f16c")),
            ("avx512f", std::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::is_x86_feature_detected!("avx512bw")),
            ("avx512dq", std::is_x86_feature_detected!("avx512dq")),
            ("avx512vl", std::is_x86_feature_detected!("avx512vl")),
            ("avx512vnni", std::is_x86_feature_detected!("avx512vnni")),
            ("avx512bf16", std::is_x86_feature_detected!("avx512bf16")),
            ("avx512fp16", std::is_x86_feature_detected!("avx512fp16")),
            ("avxvnni", std::is_x86_feature_detected!("avxvnni")),
        ];
        out.extend(detected.iter().filter(|d| d.1).map(|d| d.0.to_string()));
        // AMX: from the kernel's flags (which also say the OS enabled it).
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags = flags.lines().find(|l| l.starts_with("flags")).unwrap_or("");
        for (flag, name) in [("amx_tile", "amx-tile"), ("amx_bf16", "amx-bf16"), ("amx_int8", "amx-int8")] {
            if flags.split_whitespace().any(|f| f == flag) {
                out.push(name.into());
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let detected = [
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            ("fp16", std::arch::is_aarch64_feature_detected!("fp16")),
            ("dotprod", std::arch::is_aarch64_feature_detected!("dotprod")),
            ("i8mm", std::arch::is_aarch64_feature_detected!("i8mm")),
            ("bf16", std::arch::is_aarch64_feature_detected!("bf16")),
            ("sve", std::arch::is_aarch64_feature_detected!("sve")),
        ];
        out.extend(detected.iter().filter(|d| d.1).map(|d| d.0.to_string()));
    }
    out
}

/// Core 0's caches from /sys (empty where it is not exposed).
fn caches() -> Vec<Cache> {
    let core = kann_runtime::Device::all().core_ids().first().copied().unwrap_or(0);
    let dir = PathBuf::from(format!("/sys/devices/system/cpu/cpu{core}/cache"));
    let mut out: Vec<Cache> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("index")).filter_map(|e| read_cache(&e.path())).collect())
        .unwrap_or_default();
    out.sort_by(|a, b| (a.level, &a.kind).cmp(&(b.level, &b.kind)));
    out
}

fn read_cache(dir: &Path) -> Option<Cache> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok().map(|s| s.trim().to_string());
    Some(Cache { level: read("level")?.parse().ok()?, kind: read("type")?, bytes: parse_size(&read("size")?)?, shared_with: read("shared_cpu_list").unwrap_or_default() })
}

/// `48K`, `2048K`, `32M`, `512` (bytes) → bytes.
fn parse_size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.trim().parse::<u64>().ok().map(|n| n * mult)
}

/// 49152 → `48 KiB`, 2097152 → `2 MiB`.
fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// The text `kann devices` prints (without the cache line).
fn render(info: &DeviceInfo) -> String {
    let mut o = String::new();
    let n = info.cores.len();
    o += &format!("CPU:      {} ({})\n", info.model, info.arch);
    o += &format!("ISA:      {}\n", if info.features.is_empty() { "baseline only".to_string() } else { info.features.join(" ") });
    let list = info.cores.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
    o += &format!("cores:    {n} usable by this process ({list})\n");
    if !info.caches.is_empty() {
        let short = |c: &Cache| match c.kind.as_str() {
            "Data" => format!("L{}d", c.level),
            "Instruction" => format!("L{}i", c.level),
            _ => format!("L{}", c.level),
        };
        let caches: Vec<String> = info.caches.iter().map(|c| format!("{} {} (cpus {})", short(c), human_bytes(c.bytes), c.shared_with)).collect();
        o += &format!("caches:   {}\n", caches.join(", "));
    }
    o += &format!("peak (best ~0.5 ms slice of a {} ms run; last column: {n} core(s) running the loop at once):\n", info.window_ms);
    o += &format!("  {:<18} {:<20} {:>16} {:>16}\n", "loop", "instruction", "one core", format!("{n} core(s)"));
    for p in &info.peaks {
        let line = format!("  {:<18} {:<20} {:>8.1} {:<7} {:>8.1} {:<7}", p.name, p.instruction, p.per_core, p.unit, p.all_cores, p.unit);
        o += line.trim_end();
        o.push('\n');
    }
    if let Some(c) = &info.calibration {
        o += &format!("cost model calibration ({}; measured / modelled time on one core): {}\n", c.arch, c.describe());
        if c.probe_ms.len() > 1 {
            let times: Vec<String> = c.probe_ms.iter().map(|(a, ms)| format!("{a} {ms:.1} ms")).collect();
            o += &format!("native arch: {} (the calibration probes on one core: {})\n", c.arch, times.join(", "));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("48K"), Some(48 * 1024));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
        assert_eq!(human_bytes(48 * 1024), "48 KiB");
        assert_eq!(human_bytes(491_520 * 1024), "480 MiB");
        assert_eq!(human_bytes(100), "100 B");
    }

    #[test]
    fn models_come_from_cpuinfo() {
        assert_eq!(model_from_cpuinfo("processor\t: 0\nmodel name\t: AMD EPYC 9R14\n").as_deref(), Some("AMD EPYC 9R14"));
        assert_eq!(model_from_cpuinfo("CPU implementer\t: 0x41\nCPU part\t: 0xd0c\n").as_deref(), Some("implementer 0x41, part 0xd0c"));
        assert_eq!(model_from_cpuinfo("nothing: \n"), None);
    }

    #[test]
    fn the_key_changes_with_the_cores() {
        let f = vec!["avx2".to_string()];
        assert_eq!(cache_key("cpu", &f, &[0, 1]), cache_key("cpu", &f, &[0, 1]));
        assert_ne!(cache_key("cpu", &f, &[0, 1]), cache_key("cpu", &f, &[0]));
        assert_ne!(cache_key("cpu", &f, &[0]), cache_key("cpu2", &f, &[0]));
    }

    #[test]
    fn the_description_reads_back_and_renders() {
        let info = DeviceInfo {
            model: "Test CPU".into(),
            arch: "x86_64".into(),
            features: vec!["avx2".into(), "fma".into()],
            cores: vec![0, 1],
            caches: vec![Cache { level: 1, kind: "Data".into(), bytes: 49152, shared_with: "0".into() }],
            peaks: vec![
                PeakRow { name: "fp32-avx2".into(), kind: "fp32".into(), unit: "GFLOP/s".into(), instruction: "vfmadd231ps ymm".into(), per_core: 100.0, all_cores: 190.0 },
                PeakRow { name: "int8-x".into(), kind: "int8".into(), unit: "GOP/s".into(), instruction: "vpdpbusd".into(), per_core: 400.0, all_cores: 790.0 },
            ],
            window_ms: 150,
            calibration: None,
        };
        assert_eq!(DeviceInfo::from_json(&info.to_json()), Some(info.clone()));
        let record = calibrate::Record {
            calibration: kann_compiler::cost::Calibration { compute: [0.9, 1.0, 0.7, 0.8, 1.1], weights: 0.65, bandwidth_cores: Some(1.2) },
            arch: "x86-64-v3".into(),
            version: 1,
            program_version: 1,
            probe_ms: vec![("x86-64-v4".into(), 20.0), ("x86-64-v3".into(), 18.5)],
        };
        let calibrated = DeviceInfo { calibration: Some(record), ..info.clone() };
        assert_eq!(DeviceInfo::from_json(&calibrated.to_json()), Some(calibrated.clone()));
        assert!(render(&calibrated).contains("winograd4x4 0.70"), "{}", render(&calibrated));
        assert!(render(&calibrated).contains("native arch: x86-64-v3 (the calibration probes on one core: x86-64-v4 20.0 ms, x86-64-v3 18.5 ms)"), "{}", render(&calibrated));
        assert_eq!(info.best_fp32().map(|p| p.name.as_str()), Some("fp32-avx2"));
        let text = render(&info);
        for want in ["Test CPU", "avx2 fma", "2 usable", "L1d 48 KiB", "fp32-avx2", "190.0"] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        assert_eq!(DeviceInfo::from_json(&json!({"model": "x"})), None);
    }

    #[test]
    fn all_cores_measure_at_least_one() {
        let l = peak::loops()[0];
        let cores = kann_runtime::Device::all().core_ids().to_vec();
        let row = measure_row(&l, &cores, Duration::from_millis(3));
        // Both measured; how they compare depends on what else runs (a
        // second process on the other core halved all_cores once).
        assert!(row.per_core > 0.0 && row.all_cores > 0.0, "{row:?}");
    }
}
