//! From the command line and the configuration to an imported graph: which
//! configuration, which arch, how many clusters, which precision, and how
//! the configuration's input shapes, output names and forced batch size bind
//! to the ONNX model.

use crate::args::GenerateArgs;
use anyhow::{bail, Context};
use kann_artifact::Arch;
use kann_config::{Layout, NetworkConfig, ShapeReading, TensorShape};
use kann_onnx::proto::{tensor_shape_proto::dimension::Value as DimV, type_proto, ModelProto, ValueInfoProto};
use kann_onnx::ImportOptions;
use kann_tensor::DType;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The symbolic name given to a batch axis that `--forced-batch-size` rebinds.
const BATCH_PARAM: &str = "kann_forced_batch";

/// A loaded configuration and the warnings of loading it.
pub struct Config {
    pub network: NetworkConfig,
    pub warnings: Vec<String>,
}

/// Reads CONFIG: a network YAML, or a bare `.onnx` model with `--input-shape`s.
pub fn load_config(args: &GenerateArgs) -> anyhow::Result<Config> {
    let path = &args.config;
    let is_onnx = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    if !is_onnx {
        if !args.input_shapes.is_empty() {
            bail!("--input-shape applies to a bare .onnx model; {} gives its shapes in input_nodes_shape", path.display());
        }
        let loaded = NetworkConfig::load(path)?;
        return Ok(Config { network: loaded.config, warnings: loaded.warnings });
    }
    let mut named = Vec::new();
    let mut positional = Vec::new();
    for s in &args.input_shapes {
        let (name, shape) = kann_config::parse_shape_arg(s).map_err(|e| anyhow::anyhow!("--input-shape {e}"))?;
        match name {
            Some(n) => named.push((n, shape)),
            None => positional.push(shape),
        }
    }
    if !named.is_empty() && !positional.is_empty() {
        bail!("--input-shape: name every input shape (NAME=DIMS) or none");
    }
    let mut network = NetworkConfig::from_onnx(path, positional)?;
    if !named.is_empty() {
        let (names, shapes): (Vec<String>, Vec<TensorShape>) = named.into_iter().unzip();
        network.input_nodes_name = names;
        network.input_nodes_shape = shapes;
    }
    Ok(Config { network, warnings: Vec::new() })
}

/// What the command line and the configuration decide together.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--arch` as asked (`native`…).
    pub arch_requested: String,
    pub arch: Arch,
    pub n_clusters: usize,
    pub precision: String,
    pub forced_batch: Option<usize>,
    /// Qualifying 3×3 convolutions may run by Winograd (not `--no-winograd`).
    pub winograd: bool,
    pub blocked: bool,
}

/// Resolves arch, clusters, precision and batch: the command line first,
/// then `generate_options`, then the defaults. Warnings go to `warnings`.
pub fn resolve_options(args: &GenerateArgs, net: &NetworkConfig, warnings: &mut Vec<String>) -> anyhow::Result<Options> {
    let gen = &net.generate_options;
    let requested = match &args.arch {
        Some(a) => kann_config::Arch::parse(a).ok_or_else(|| anyhow::anyhow!("--arch: {}", a.parse::<kann_config::Arch>().unwrap_err()))?,
        None => gen.arch.unwrap_or(kann_config::Arch::Native),
    };
    let arch = match requested {
        // The fastest this CPU runs, as the calibration measured (`kann devices`).
        kann_config::Arch::Native => crate::commands::devices::native_arch(),
        kann_config::Arch::X86_64V4 => Arch::X86_64V4,
        kann_config::Arch::X86_64V3 => Arch::X86_64V3,
        kann_config::Arch::Generic => Arch::Generic,
        kann_config::Arch::Aarch64 => Arch::Aarch64,
    };
    let n_clusters = match (args.nbr_clusters, gen.n_clusters) {
        (Some(n), _) => n as usize,
        (None, Some(n)) => n,
        (None, None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let precision = match &args.precision {
        Some(p) => p.trim().to_ascii_lowercase(),
        None => {
            if gen.quantize_fp32_to_fp16 {
                warnings.push("generate_options.quantize_fp32_to_fp16: fp16 storage is not supported yet; generating fp32".into());
            }
            "fp32".into()
        }
    };
    match precision.as_str() {
        "fp32" => {}
        "fp16" | "bf16" | "int8" => bail!("--precision {precision} is not supported yet; kann generates fp32 for now (--precision fp32)"),
        other => bail!("--precision: unknown precision \"{other}\" (expected fp32, fp16, bf16 or int8)"),
    }
    let forced_batch = args.forced_batch_size.map(|b| b as usize).or(gen.forced_batch_size);
    Ok(Options { arch_requested: requested.name().to_string(), arch, n_clusters, precision, forced_batch, winograd: !args.no_winograd, blocked: !args.no_blocked_layout })
}

/// One network input or output as generation decided it.
#[derive(Debug, Clone)]
pub struct Io {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// `nchw`, `nhwc`, or `plain` for tensors that are not images.
    pub layout: String,
}

/// How the model is imported: shapes bound, outputs chosen, layouts guessed.
pub struct Binding {
    pub import: ImportOptions,
    /// Input name → layout.
    pub layouts: HashMap<String, String>,
}

/// Edits the model so the configuration's choices hold: the graph outputs
/// become `outputs` (when given; intermediate tensors are allowed, the
/// nodes past them are dropped), and with a forced batch every input's
/// axis 0 becomes symbolic so that it can be rebound.
pub fn prepare_model(model: &mut ModelProto, outputs: &[String], forced_batch: Option<usize>) -> anyhow::Result<()> {
    let graph = model.graph.as_mut().context("the model holds no graph")?;
    if !outputs.is_empty() {
        let mut chosen = Vec::with_capacity(outputs.len());
        for name in outputs {
            if let Some(vi) = graph.output.iter().find(|v| &v.name == name) {
                chosen.push(vi.clone());
                continue;
            }
            let produced = graph.node.iter().any(|n| n.output.iter().any(|o| o == name)) || graph.input.iter().any(|v| &v.name == name);
            if !produced {
                let known: Vec<&str> = graph.output.iter().map(|v| v.name.as_str()).collect();
                bail!("output_nodes_name: the model has no tensor '{name}' (its outputs: {})", known.join(", "));
            }
            chosen.push(ValueInfoProto { name: name.clone(), ..Default::default() });
        }
        graph.output = chosen;
    }
    if forced_batch.is_some() {
        let init: Vec<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
        for vi in graph.input.iter_mut().filter(|v| !init.contains(&v.name)) {
            if let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                if let Some(d0) = t.shape.as_mut().and_then(|s| s.dim.first_mut()) {
                    d0.value = Some(DimV::DimParam(BATCH_PARAM.into()));
                }
            }
        }
    }
    Ok(())
}

/// The graph inputs of `model` (initializers excluded) with their declared
/// dims (`None` = symbolic or unknown; `None` for the whole shape when the
/// model gives none).
pub fn model_inputs(model: &ModelProto) -> Vec<(String, Option<Vec<Option<usize>>>)> {
    let Some(graph) = model.graph.as_ref() else { return Vec::new() };
    let init: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|v| !init.contains(&v.name.as_str()))
        .map(|vi| {
            let dims = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::TensorType(t)) => t.shape.as_ref().map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(DimV::DimValue(v)) if v >= 0 => Some(v as usize),
                            _ => None,
                        })
                        .collect()
                }),
                _ => None,
            };
            (vi.name.clone(), dims)
        })
        .collect()
}

/// Binds the configuration's input names and shapes to the model (after
/// [`prepare_model`]) and applies the forced batch size.
pub fn bind_inputs(net: &NetworkConfig, model: &ModelProto, forced_batch: Option<usize>) -> anyhow::Result<Binding> {
    let inputs = model_inputs(model);
    let names: Vec<String> = if net.input_nodes_name.is_empty() {
        if net.input_nodes_shape.len() > inputs.len() {
            bail!("{} input shapes given for a model with {} input(s)", net.input_nodes_shape.len(), inputs.len());
        }
        inputs.iter().take(net.input_nodes_shape.len()).map(|(n, _)| n.clone()).collect()
    } else {
        net.input_nodes_name.clone()
    };
    let mut import = ImportOptions::default();
    let mut layouts = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let Some((_, declared)) = inputs.iter().find(|(n, _)| n == name) else {
            let known: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
            bail!("input_nodes_name: the model has no input '{name}' (its inputs: {})", known.join(", "));
        };
        let Some(written) = net.input_nodes_shape.get(i) else { continue };
        let dims = match declared {
            Some(d) => {
                let mut d = d.clone();
                if forced_batch.is_some() && !d.is_empty() {
                    d[0] = None;
                }
                let bound = written.bind(&d).with_context(|| format!("input '{name}'"))?;
                layouts.insert(name.clone(), layout_of(&bound.dims, bound.reading));
                bound.dims
            }
            None => written.dims.clone(),
        };
        import.input_shapes.insert(name.clone(), dims);
    }
    if let Some(b) = forced_batch {
        import.dim_params.insert(BATCH_PARAM.into(), b);
        for dims in import.input_shapes.values_mut() {
            if let Some(d0) = dims.first_mut() {
                *d0 = b;
            }
        }
    }
    if let Some(pre) = &net.preprocessing {
        if let Some(l) = pre.layout {
            for name in &names {
                layouts.insert(name.clone(), l.name().to_string());
            }
        }
    }
    Ok(Binding { import, layouts })
}

/// `nchw` / `nhwc` for rank-4 shapes, `plain` otherwise. ONNX models are
/// NCHW unless the shape was written channels-last and reads as an image
/// (1, 3 or 4 channels last, height and width of at least 16).
pub fn layout_of(dims: &[usize], reading: ShapeReading) -> String {
    let [_, d1, d2, d3] = dims[..] else { return "plain".into() };
    let image_last = matches!(d3, 1 | 3 | 4) && d1 >= 16 && d2 >= 16;
    if image_last && reading != ShapeReading::Nchw {
        Layout::Nhwc.name().into()
    } else {
        Layout::Nchw.name().into()
    }
}

/// `generated_<arch>_<name>_<precision>_<N>c`, with the name made safe for a folder.
pub fn default_dest(name: &str, opts: &Options) -> PathBuf {
    PathBuf::from(format!("generated_{}_{}_{}_{}c", opts.arch, safe_name(name), opts.precision, opts.n_clusters))
}

/// The folder of `path`, for resolving external data.
pub fn folder_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// The network name made safe for a file name.
pub fn safe_name(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with('.') {
        format!("network{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kann_onnx::proto::data_type as dt;
    use kann_testkit::{model, node, value_info};

    #[test]
    fn layouts_default_to_nchw() {
        assert_eq!(layout_of(&[1, 3, 224, 224], ShapeReading::AsWritten), "nchw");
        assert_eq!(layout_of(&[1, 8, 4, 4], ShapeReading::AsWritten), "nchw");
        assert_eq!(layout_of(&[1, 224, 224, 3], ShapeReading::AsWritten), "nhwc");
        assert_eq!(layout_of(&[1, 224, 224, 3], ShapeReading::Nchw), "nchw");
        assert_eq!(layout_of(&[1, 1000], ShapeReading::AsWritten), "plain");
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("RegNet X/1.6g"), "RegNet_X_1.6g");
        assert_eq!(safe_name(""), "network");
        assert_eq!(safe_name(".."), "network..");
    }

    fn two_relus(batch: Option<i64>) -> ModelProto {
        let shape = [batch, Some(4)];
        model(13, vec![node("Relu", &["x"], &["h"], vec![]), node("Relu", &["h"], &["y"], vec![])], vec![value_info("x", dt::FLOAT, &shape)], vec![value_info("y", dt::FLOAT, &shape)], vec![])
    }

    #[test]
    fn outputs_can_be_cut_at_an_intermediate_tensor() {
        let mut m = two_relus(Some(1));
        prepare_model(&mut m, &["h".to_string()], None).unwrap();
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.output.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["h"]);
        let err = prepare_model(&mut two_relus(Some(1)), &["nope".to_string()], None).unwrap_err();
        assert!(err.to_string().contains("no tensor 'nope'"), "{err}");
    }

    #[test]
    fn a_forced_batch_rebinds_a_static_batch() {
        let mut m = two_relus(Some(1));
        prepare_model(&mut m, &[], Some(3)).unwrap();
        let mut net = NetworkConfig::from_onnx(std::env::current_exe().unwrap(), vec![]).unwrap();
        net.input_nodes_name = vec!["x".into()];
        net.input_nodes_shape = vec![TensorShape::new(vec![1, 4])];
        let b = bind_inputs(&net, &m, Some(3)).unwrap();
        assert_eq!(b.import.input_shapes["x"], vec![3, 4]);
        assert_eq!(model_inputs(&m)[0].1, Some(vec![None, Some(4)]));
    }
}
