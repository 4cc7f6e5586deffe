//! `network.dump.yaml`: the resolved configuration plus what generation
//! decided, written as a network configuration that kann-config reads back
//! (`kann genref GEN_DIR` finds the model and the bound input shapes
//! through it; `kann generate GEN_DIR/network.dump.yaml` regenerates).
//! The decisions without a configuration key sit under `generated:`, which
//! a reader that does not know it reports as an unknown key and ignores.
//!
//! Strings are written as JSON strings, which are valid YAML double-quoted
//! scalars, so no name or path needs YAML escaping rules of its own.

use super::setup::{Io, Options};
use anyhow::Context;
use kann_config::{NetworkConfig, Postprocessing, Preprocessing};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The file name inside the generated folder.
pub const DUMP_FILE: &str = "network.dump.yaml";

/// What the dump records beyond the configuration.
pub struct Decided<'a> {
    pub opts: &'a Options,
    pub inputs: &'a [Io],
    pub outputs: &'a [Io],
    pub batch: usize,
    /// File name of the artifact inside the folder.
    pub artifact: &'a str,
    /// Names (inside the folder) of the copied `extra_data`.
    pub extra_data: &'a [String],
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn q_path(p: &Path) -> String {
    q(&p.to_string_lossy())
}

fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", items.iter().map(f).collect::<Vec<_>>().join(", "))
}

fn dims(d: &[usize]) -> String {
    list(d, |x| x.to_string())
}

/// The text of `network.dump.yaml`.
pub fn render(net: &NetworkConfig, d: &Decided) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Written by kann generate {}: the resolved configuration and what generation decided.", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(o, "# Shapes are the bound ones, batch first, in the model's axis order.");
    let _ = writeln!(o, "name: {}", q(&net.name));
    let _ = writeln!(o, "framework: {}", net.framework.name());
    let _ = writeln!(o, "onnx_model: {}", q_path(&net.model_path));
    let _ = writeln!(o, "input_nodes_name: {}", list(d.inputs, |t| q(&t.name)));
    let _ = writeln!(o, "input_nodes_shape: {}", list(d.inputs, |t| dims(&t.shape)));
    let _ = writeln!(o, "input_nodes_dtype: {}", list(d.inputs, |t| q(t.dtype.name())));
    let _ = writeln!(o, "output_nodes_name: {}", list(d.outputs, |t| q(&t.name)));
    let _ = writeln!(o, "output_nodes_shape: {}", list(d.outputs, |t| dims(&t.shape)));
    let _ = writeln!(o, "output_nodes_dtype: {}", list(d.outputs, |t| q(t.dtype.name())));
    let _ = writeln!(o, "generate_options:");
    let _ = writeln!(o, "  arch: {}", d.opts.arch);
    let _ = writeln!(o, "  nbr_clusters: {}", d.opts.n_clusters);
    let _ = writeln!(o, "  quantize_fp32_to_fp16: false");
    if let Some(b) = d.opts.forced_batch {
        let _ = writeln!(o, "  forced_batch_size: {b}");
    }
    if !d.extra_data.is_empty() {
        let _ = writeln!(o, "extra_data: {}", list(d.extra_data, |s| q(s)));
    }
    if let Some(p) = &net.preprocessing {
        preprocessing(&mut o, p);
    }
    if let Some(p) = &net.postprocessing {
        postprocessing(&mut o, p);
    }
    let _ = writeln!(o, "generated:");
    let _ = writeln!(o, "  kann_version: {}", q(env!("CARGO_PKG_VERSION")));
    let _ = writeln!(o, "  config: {}", net.source.as_deref().map_or("null".into(), q_path));
    let _ = writeln!(o, "  artifact: {}", q(d.artifact));
    let _ = writeln!(o, "  arch_requested: {}", d.opts.arch_requested);
    let _ = writeln!(o, "  precision: {}", d.opts.precision);
    let _ = writeln!(o, "  batch_size: {}", d.batch);
    let _ = writeln!(o, "  input_layouts: {}", list(d.inputs, |t| t.layout.clone()));
    let _ = writeln!(o, "  output_layouts: {}", list(d.outputs, |t| t.layout.clone()));
    o
}

fn floats(v: &[f64]) -> String {
    list(v, |x| format!("{x:?}"))
}

fn preprocessing(o: &mut String, p: &Preprocessing) {
    let _ = writeln!(o, "preprocessing:");
    if let Some(s) = p.resize_shorter_side {
        let _ = writeln!(o, "  resize_shorter_side: {s}");
    }
    if let Some(r) = p.resize {
        let _ = writeln!(o, "  resize: {}", dims(&r));
    }
    if let Some(c) = p.center_crop {
        let _ = writeln!(o, "  center_crop: {}", dims(&c));
    }
    let _ = writeln!(o, "  color: {}", p.color.name());
    let _ = writeln!(o, "  scale: {:?}", p.scale);
    if !p.mean.is_empty() {
        let _ = writeln!(o, "  mean: {}", floats(&p.mean));
    }
    if !p.std.is_empty() {
        let _ = writeln!(o, "  std: {}", floats(&p.std));
    }
    if let Some(l) = p.layout {
        let _ = writeln!(o, "  layout: {}", l.name());
    }
    if let Some(t) = p.dtype {
        let _ = writeln!(o, "  dtype: {}", t.name());
    }
}

fn postprocessing(o: &mut String, p: &Postprocessing) {
    let _ = writeln!(o, "postprocessing:");
    let _ = writeln!(o, "  kind: {}", p.kind.name());
    if let Some(c) = &p.classes {
        let _ = writeln!(o, "  classes: {}", q_path(c));
    }
    if p.kind == kann_config::PostKind::Classification {
        let _ = writeln!(o, "  top_k: {}", p.top_k);
    }
    if p.kind.is_detection() || p.kind == kann_config::PostKind::Dbnet {
        let _ = writeln!(o, "  conf_threshold: {:?}", p.conf_threshold);
    }
    if p.kind.is_detection() {
        let _ = writeln!(o, "  iou_threshold: {:?}", p.iou_threshold);
        let _ = writeln!(o, "  max_detections: {}", p.max_detections);
    }
}

/// What `kann genref GEN_DIR` needs from a generated folder.
pub struct Dumped {
    pub model_path: PathBuf,
    /// Input name → bound shape.
    pub inputs: Vec<(String, Vec<usize>)>,
    pub outputs: Vec<String>,
    pub forced_batch: Option<usize>,
}

/// Reads `GEN_DIR/network.dump.yaml` back.
pub fn read(gen_dir: &Path) -> anyhow::Result<Dumped> {
    let path = gen_dir.join(DUMP_FILE);
    let loaded = NetworkConfig::load(&path).with_context(|| format!("{} is not a readable generated folder", gen_dir.display()))?;
    let net = loaded.config;
    let inputs = net.input_nodes_name.iter().cloned().zip(net.input_nodes_shape.iter().map(|s| s.dims.clone())).collect();
    Ok(Dumped { model_path: net.model_path, inputs, outputs: net.output_nodes_name, forced_batch: net.generate_options.forced_batch_size })
}

/// Whether `dir` is a folder written by `kann generate`.
pub fn is_generated(dir: &Path) -> bool {
    dir.is_dir() && dir.join(DUMP_FILE).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_config::{Arch as ConfigArch, Layout};
    use kann_tensor::DType;

    #[test]
    fn the_dump_reads_back_as_a_configuration() {
        let dir = std::env::temp_dir().join(format!("kann-dump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let model = dir.join("m \"odd\".onnx");
        std::fs::write(&model, b"x").unwrap();
        let mut net = NetworkConfig::from_onnx(&model, vec![]).unwrap();
        net.preprocessing = Some(Preprocessing { mean: vec![0.5, 0.25, 0.125], scale: 1.0 / 255.0, layout: Some(Layout::Nchw), ..Preprocessing::default() });
        let opts = Options { arch_requested: "native".into(), arch: kann_artifact::Arch::X86_64V3, n_clusters: 3, precision: "fp32".into(), forced_batch: Some(2), winograd: true, blocked: true };
        let io = |name: &str, shape: Vec<usize>| Io { name: name.into(), dtype: DType::F32, shape, layout: "nchw".into() };
        let inputs = [io("in:0", vec![2, 3, 8, 8])];
        let outputs = [io("out", vec![2, 10])];
        let d = Decided { opts: &opts, inputs: &inputs, outputs: &outputs, batch: 2, artifact: "m.kann", extra_data: &[] };
        let text = render(&net, &d);
        let back = NetworkConfig::from_yaml_str(&text, &dir.join(DUMP_FILE)).unwrap();
        let c = back.config;
        assert_eq!(c.model_path, net.model_path);
        assert_eq!(c.input_nodes_name, ["in:0"]);
        assert_eq!(c.input_nodes_shape[0].dims, [2, 3, 8, 8]);
        assert_eq!(c.output_nodes_name, ["out"]);
        assert_eq!(c.generate_options.arch, Some(ConfigArch::X86_64V3));
        assert_eq!(c.generate_options.n_clusters, Some(3));
        assert_eq!(c.generate_options.forced_batch_size, Some(2));
        assert_eq!(c.preprocessing, net.preprocessing);
        // The reader knows the `generated` block: no warning.
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
