//! `kann genref MODEL.onnx|GEN_DIR IO_DIR`: golden outputs from the
//! reference interpreter. Given a folder written by `kann generate`, the
//! original model, its bound input shapes, its chosen outputs and the forced
//! batch come from the folder's `network.dump.yaml`, and the inputs are read
//! as the runtime reads them (the IO folder's streams, see
//! `kann_io::stream`). Outputs go to `IO_DIR/genref/`: one stream per output
//! (`<output>.bin` + `manifest.yaml`, what `kann run` writes) and the same
//! tensors as `.npy` (frames stacked on the first axis).

use super::generate;
use anyhow::{bail, Context};
use kann_io::stream::{frame_count, read_input_stream, write_output_stream, IoSpec, Manifest};
use kann_io::tensor_set::{find_tensor_file, read_raw_frames, write_npy};
use kann_onnx::proto::ModelProto;
use kann_onnx::ImportOptions;
use kann_tensor::{npy, Shape, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Parses `NAME=D0,D1,…`.
pub fn parse_input_shape(s: &str) -> anyhow::Result<(String, Vec<usize>)> {
    let (name, dims) = s.rsplit_once('=').with_context(|| format!("--input-shape '{s}' should look like NAME=1,3,224,224"))?;
    let dims = dims.split(',').map(|d| d.trim().parse::<usize>().with_context(|| format!("--input-shape '{s}': '{d}' is not a dimension"))).collect::<anyhow::Result<Vec<_>>>()?;
    Ok((name.to_string(), dims))
}

type Frame = HashMap<String, Tensor>;

/// The original model of a generated folder, imported for the reference
/// interpreter with the folder's bound input shapes, outputs and batch.
pub fn reference_graph(gen_dir: &Path) -> anyhow::Result<kann_ir::Graph> {
    let dumped = generate::dump::read(gen_dir)?;
    let mut model = kann_onnx::read_model(&dumped.model_path)?;
    generate::setup::prepare_model(&mut model, &dumped.outputs, dumped.forced_batch).with_context(|| dumped.model_path.display().to_string())?;
    let mut opts = ImportOptions::default();
    opts.input_shapes.extend(dumped.inputs);
    let dir = dumped.model_path.parent().unwrap_or(Path::new("."));
    let imported = kann_onnx::import_model(&model, Some(dir), &opts, Some(&kann_reference::Reference)).with_context(|| format!("cannot import {}", dumped.model_path.display()))?;
    Ok(imported.graph)
}

pub fn run(source: &Path, io_dir: &Path, input_shapes: &[String]) -> anyhow::Result<i32> {
    if !io_dir.is_dir() {
        bail!("IO folder {} does not exist", io_dir.display());
    }
    let mut opts = ImportOptions::default();
    let generated = generate::dump::is_generated(source);
    let (model_path, model) = if generated {
        let dumped = generate::dump::read(source)?;
        let mut model = kann_onnx::read_model(&dumped.model_path)?;
        generate::setup::prepare_model(&mut model, &dumped.outputs, dumped.forced_batch).with_context(|| dumped.model_path.display().to_string())?;
        opts.input_shapes.extend(dumped.inputs);
        (dumped.model_path, model)
    } else {
        (source.to_path_buf(), kann_onnx::read_model(source)?)
    };
    for s in input_shapes {
        let (name, dims) = parse_input_shape(s)?;
        opts.input_shapes.insert(name, dims);
    }
    let streams = generated || Manifest::read(io_dir)?.is_some();
    // Files that carry their own shape bind it (npy, pb); streams and raw files need the model's.
    let preloaded = if streams { None } else { Some(preload_inputs(&model, io_dir, &mut opts)?) };
    let dir = model_path.parent().unwrap_or(Path::new("."));
    let imported = kann_onnx::import_model(&model, Some(dir), &opts, Some(&kann_reference::Reference)).with_context(|| format!("cannot import {}", model_path.display()))?;
    let g = &imported.graph;
    let frames = match preloaded {
        None => stream_frames(g, io_dir)?,
        Some((loaded, raw)) => file_frames(g, loaded, raw)?,
    };

    let start = Instant::now();
    let mut per_output: Vec<Vec<Tensor>> = vec![Vec::new(); g.outputs.len()];
    for f in &frames {
        let outs = kann_reference::run_named(g, f)?;
        for (slot, t) in per_output.iter_mut().zip(outs) {
            slot.push(t);
        }
    }
    let elapsed = start.elapsed();
    let out_dir = io_dir.join("genref");
    for (&id, parts) in g.outputs.iter().zip(per_output) {
        let name = &g.value(id).name;
        if let Some(first) = parts.first() {
            let spec = IoSpec { name: name.clone(), dtype: first.dtype(), shape: first.dims().to_vec() };
            let bytes: Vec<Vec<u8>> = parts.iter().map(npy::raw_le_bytes).collect();
            let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
            write_output_stream(&out_dir, &spec, &refs)?;
        }
        let t = stack_frames(parts)?;
        let path = write_npy(&out_dir, name, &t)?;
        println!("{name}: {}{} -> {}", t.dtype(), t.shape(), path.display());
    }
    println!("reference: {} frame(s) of {} in {:.1} ms", frames.len(), model_path.display(), elapsed.as_secs_f64() * 1e3);
    Ok(0)
}

/// Every frame of the IO folder's input streams (manifest, `.bin`, `.npy`
/// or KaNN's extension-less raw files), typed and shaped as the graph's inputs.
fn stream_frames(g: &kann_ir::Graph, io_dir: &Path) -> anyhow::Result<Vec<Frame>> {
    let specs: Vec<IoSpec> = g
        .inputs
        .iter()
        .map(|&v| {
            let val = g.value(v);
            IoSpec { name: val.name.clone(), dtype: val.info.dtype, shape: val.info.shape.dims().to_vec() }
        })
        .collect();
    let streams = read_input_stream(io_dir, &specs)?;
    let n = frame_count(&streams).max(1);
    (0..n)
        .map(|i| {
            streams
                .iter()
                .map(|s| {
                    let t = Tensor::new(Shape::from(s.spec.shape.as_slice()), npy::data_from_le(s.spec.dtype, s.frame(i)))?;
                    Ok((s.spec.name.clone(), t))
                })
                .collect()
        })
        .collect()
}

/// Reads `.npy`/`.pb` inputs (binding their shapes into `opts`) and lists
/// the raw `.bin` files left for after the import.
fn preload_inputs(model: &ModelProto, io_dir: &Path, opts: &mut ImportOptions) -> anyhow::Result<(Frame, Vec<(String, PathBuf)>)> {
    let graph = model.graph.as_ref().context("the model holds no graph")?;
    let init: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let input_names: Vec<String> = graph.input.iter().filter(|v| !init.contains(&v.name.as_str())).map(|v| v.name.clone()).collect();
    let mut loaded = Frame::new();
    let mut raw_files = Vec::new();
    for name in &input_names {
        let file = find_tensor_file(io_dir, name).with_context(|| format!("input '{name}': no file {name}.npy, .pb or .bin in {}", io_dir.display()))?;
        match file.extension().and_then(|e| e.to_str()) {
            Some("npy") => {
                let t = npy::read(&file).with_context(|| format!("input '{name}': cannot read {}", file.display()))?;
                opts.input_shapes.entry(name.clone()).or_insert_with(|| t.dims().to_vec());
                loaded.insert(name.clone(), t);
            }
            Some("pb") => {
                let (_, t) = kann_onnx::tensor::read_tensor_file(&file)?;
                opts.input_shapes.entry(name.clone()).or_insert_with(|| t.dims().to_vec());
                loaded.insert(name.clone(), t);
            }
            _ => raw_files.push((name.clone(), file)),
        }
    }
    Ok((loaded, raw_files))
}

/// One frame per tensor file; raw files may hold several frames.
fn file_frames(g: &kann_ir::Graph, loaded: Frame, raw_files: Vec<(String, PathBuf)>) -> anyhow::Result<Vec<Frame>> {
    let mut frames: Vec<Frame> = vec![loaded];
    for (name, file) in raw_files {
        let id = g.find_value(&name).with_context(|| format!("input '{name}' vanished during import"))?;
        let info = &g.value(id).info;
        let parts = read_raw_frames(&file, info.dtype, &info.shape)?;
        if frames.len() == 1 && parts.len() > 1 {
            frames = vec![frames[0].clone(); parts.len()];
        }
        if parts.len() != frames.len() {
            bail!("input '{name}': {} holds {} frames but other inputs hold {}", file.display(), parts.len(), frames.len());
        }
        for (f, t) in frames.iter_mut().zip(parts) {
            f.insert(name.clone(), t);
        }
    }
    Ok(frames)
}

/// Joins per-frame outputs along the first axis (frames of batch B give k·B rows).
fn stack_frames(parts: Vec<Tensor>) -> anyhow::Result<Tensor> {
    if parts.len() == 1 {
        return Ok(parts.into_iter().next().expect("one part"));
    }
    let first = &parts[0];
    if first.rank() == 0 {
        bail!("cannot stack scalar outputs of several frames");
    }
    let mut dims = first.dims().to_vec();
    dims[0] *= parts.len();
    let refs: Vec<&Tensor> = parts.iter().collect();
    Ok(Tensor::concat_flat(first.dtype(), Shape::new(dims), &refs)?)
}
