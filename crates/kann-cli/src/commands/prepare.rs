//! `kann prepare GEN_DIR -o IO_DIR [--batch-size B] SOURCES…`: images and
//! `.npy` arrays into the network's input stream (SPEC "Input
//! preparation"). The work is kann-image's `prepare_sources`; this file
//! finds the network's inputs and preprocessing, writes
//! `IO_DIR/<input>.bin` + `manifest.yaml` and reports.
//!
//! The network is a folder written by `kann generate` (its
//! `network.dump.yaml` holds the bound input names, shapes and dtypes), or
//! a network YAML (its shapes are bound against the model as `kann
//! generate` binds them; dtypes from `input_nodes_dtype`, else float32).

use super::generate::{dump, setup};
use anyhow::{bail, Context};
use kann_config::NetworkConfig;
use kann_image::prepare::prepare_sources;
use kann_io::stream::{write_input_stream, IoSpec};
use kann_tensor::DType;
use std::path::{Path, PathBuf};

/// A network's configuration and its inputs as the artifact takes them.
pub struct Network {
    pub config: NetworkConfig,
    pub inputs: Vec<IoSpec>,
}

/// Reads a generated folder or a network YAML (see the module doc).
pub fn load_network(path: &Path) -> anyhow::Result<Network> {
    if !path.exists() {
        bail!(
            "{} does not exist (expected a folder written by kann generate, or a network YAML)",
            path.display()
        );
    }
    if path.is_dir() && !dump::is_generated(path) {
        bail!(
            "{} is not a folder written by kann generate (no {})",
            path.display(),
            dump::DUMP_FILE
        );
    }
    let file = if path.is_dir() {
        path.join(dump::DUMP_FILE)
    } else {
        path.to_path_buf()
    };
    let config = NetworkConfig::load(&file)?.config;
    let inputs = if path.is_dir() {
        dumped_inputs(&config)
    } else {
        bound_inputs(&config)?
    };
    Ok(Network { config, inputs })
}

fn dtype_of(net: &NetworkConfig, i: usize) -> DType {
    net.input_nodes_dtype.get(i).copied().unwrap_or(DType::F32)
}

/// The dump's inputs: shapes are already bound, batch first.
fn dumped_inputs(net: &NetworkConfig) -> Vec<IoSpec> {
    net.input_nodes_name
        .iter()
        .zip(&net.input_nodes_shape)
        .enumerate()
        .map(|(i, (name, shape))| IoSpec {
            name: name.clone(),
            dtype: dtype_of(net, i),
            shape: shape.dims.clone(),
        })
        .collect()
}

/// A network YAML's inputs, bound against its model.
fn bound_inputs(net: &NetworkConfig) -> anyhow::Result<Vec<IoSpec>> {
    let mut model = kann_onnx::read_model(&net.model_path)?;
    let forced = net.generate_options.forced_batch_size;
    setup::prepare_model(&mut model, &[], forced)
        .with_context(|| net.model_path.display().to_string())?;
    let binding = setup::bind_inputs(net, &model, forced)?;
    let declared = setup::model_inputs(&model);
    let names: Vec<String> = if net.input_nodes_name.is_empty() {
        declared.iter().map(|(n, _)| n.clone()).collect()
    } else {
        net.input_nodes_name.clone()
    };
    let mut specs = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let shape = match binding.import.input_shapes.get(name) {
            Some(dims) => dims.clone(),
            None => declared
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, d)| d.as_ref())
                .and_then(|d| d.iter().copied().collect::<Option<Vec<usize>>>())
                .with_context(|| {
                    format!(
                        "input '{name}' has no static shape in {}; give it in input_nodes_shape",
                        net.model_path.display()
                    )
                })?,
        };
        specs.push(IoSpec {
            name: name.clone(),
            dtype: dtype_of(net, i),
            shape,
        });
    }
    Ok(specs)
}

/// `kann prepare`. Returns the exit code.
pub fn run(
    network: &Path,
    io_dir: &Path,
    batch: Option<usize>,
    sources: &[PathBuf],
) -> anyhow::Result<i32> {
    let net = load_network(network)?;
    let prepared = prepare_sources(
        sources,
        net.config.preprocessing.as_ref(),
        &net.inputs,
        batch,
    )?;
    for w in &prepared.warnings {
        eprintln!("warning: {w}");
    }
    for name in &prepared.not_fed {
        eprintln!("warning: input '{name}' is not an image and is not prepared; give its stream in {} yourself", io_dir.display());
    }
    let spec = &prepared.input;
    let per_frame = spec.shape.first().copied().unwrap_or(1).max(1);
    for (i, src) in prepared.sources.iter().enumerate() {
        println!(
            "{} -> frame {} [{}]",
            src.display(),
            i / per_frame,
            i % per_frame
        );
    }
    let refs: Vec<&[u8]> = prepared.frames.iter().map(Vec::as_slice).collect();
    let path = write_input_stream(io_dir, spec, &refs)?;
    let padding = match prepared.padded {
        0 => String::new(),
        1 => ", last frame padded with 1 copy of the last image".to_string(),
        n => format!(", last frame padded with {n} copies of the last image"),
    };
    println!(
        "prepared {} source(s) into {} frame(s) of input '{}' ({} {:?}, batch {per_frame}){padding}: {}",
        prepared.sources.len(),
        prepared.frames.len(),
        spec.name,
        spec.dtype,
        spec.shape,
        path.display()
    );
    Ok(0)
}
