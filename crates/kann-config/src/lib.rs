//! kann-config owns the network configuration: [`NetworkConfig`] read from the
//! YAML of SPEC.md, which is the Kalray model zoo's `network_*.yaml` format
//! plus kann's `preprocessing` / `postprocessing` blocks; the generate options
//! ([`GenerateOptions`], [`Arch`]); and the shapes as written
//! ([`TensorShape`], with the rule that reads the zoo's `[H, B, W, C]`). It
//! depends only on kann-tensor (for [`DType`]) and must not depend on kann-ir,
//! kann-onnx or anything that reads a model: it checks that the model file
//! exists, and leaves binding names and shapes to the importer
//! ([`TensorShape::bind`] is the helper for that).
//!
//! Loading reports problems the way a user can act on them: unknown keys are
//! warnings naming the key path, with a "did you mean" hint for typos
//! (returned in [`Loaded::warnings`]; the caller logs them); wrong types,
//! bad values, missing required keys and missing files are a
//! [`ConfigError`] naming the file, the line and column where known, and the
//! key path. Paths in the file are resolved relative to its folder and
//! returned absolute. No input makes it panic.
//!
//! **YAML crate.** `serde_yaml` is deprecated. The file is parsed by
//! [`saphyr-parser`](https://docs.rs/saphyr-parser), the YAML 1.2 parser of
//! the maintained saphyr project (the line of yaml-rust → yaml-rust2 →
//! saphyr; `cargo info` shows 0.3.4, MSRV 1.85 like ours, MIT/Apache-2.0),
//! into a small tree of our own with the position of every
//! key and value; scalars resolve through `saphyr::Scalar` (YAML 1.2 core
//! schema). The serde forks (`serde_yaml_ng`, `serde_norway`) were passed
//! over: serde derive rejects or silently drops unknown keys rather than
//! listing them as warnings with paths, and loses positions past the first
//! error. Owning the tree also bounds the nesting depth and the alias
//! expansion, and makes duplicate keys an error.
//!
//! ```no_run
//! use kann_config::NetworkConfig;
//! let loaded = NetworkConfig::load("networks/resnet50/network.yaml")?;
//! for w in &loaded.warnings {
//!     eprintln!("warning: {w}");
//! }
//! println!("{} from {}", loaded.config.name, loaded.config.model_path.display());
//! # Ok::<(), kann_config::ConfigError>(())
//! ```

mod error;
mod options;
mod processing;
mod read;
mod shape;
mod yaml;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, Location};
pub use kann_tensor::DType;
pub use options::{Arch, Framework, GenerateOptions};
pub use processing::{Color, Layout, PostKind, Postprocessing, Preprocessing};
pub use shape::{parse_shape_arg, BoundShape, ShapeBindError, ShapeReading, TensorShape};

use read::{Cx, Result};
use yaml::{Kind, Node};

/// Largest configuration file accepted (zoo files are under 2 KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A network configuration, resolved: paths absolute, types checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// `name`.
    pub name: String,
    /// `framework`; when absent, taken from the model key.
    pub framework: Framework,
    /// Absolute path of the model, from `onnx_model` or `tflite_model`
    /// (the zoo writes `tflite_file`, also accepted).
    pub model_path: PathBuf,
    /// The YAML file this came from (absolute); `None` from [`Self::from_onnx`].
    pub source: Option<PathBuf>,
    /// `input_nodes_name`. Empty (only from [`Self::from_onnx`]): the model's
    /// graph inputs, in order.
    pub input_nodes_name: Vec<String>,
    /// `input_nodes_shape`, as written, one per input (see [`TensorShape`]).
    pub input_nodes_shape: Vec<TensorShape>,
    /// `input_nodes_dtype` (zoo): empty, or one per input.
    pub input_nodes_dtype: Vec<DType>,
    /// `output_nodes_name`. Empty: the model's graph outputs.
    pub output_nodes_name: Vec<String>,
    /// `output_nodes_shape`, as written: empty (computed from the model), or
    /// one per output name.
    pub output_nodes_shape: Vec<TensorShape>,
    /// `output_nodes_dtype` (zoo): empty, or one per output.
    pub output_nodes_dtype: Vec<DType>,
    pub generate_options: GenerateOptions,
    /// `extra_data`: files and folders copied into the generated folder
    /// (absolute, checked to exist). The zoo's mapping form (`classes`,
    /// `input_preparators`, `output_preparator`) and a plain list are accepted.
    pub extra_data: Vec<PathBuf>,
    pub preprocessing: Option<Preprocessing>,
    pub postprocessing: Option<Postprocessing>,
}

/// A loaded configuration and the warnings its loading raised (unknown keys,
/// ignored values), each a full line naming file, position and key path.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: NetworkConfig,
    pub warnings: Vec<String>,
}

/// Top-level keys kann reads.
const TOP_KEYS: &[&str] = &[
    "name",
    "framework",
    "onnx_model",
    "tflite_model",
    "tflite_file",
    "input_nodes_name",
    "input_nodes_shape",
    "input_nodes_dtype",
    "output_nodes_name",
    "output_nodes_shape",
    "output_nodes_dtype",
    "forced_batch_size",
    "generate_options",
    "extra_data",
    "preprocessing",
    "postprocessing",
];
/// Top-level zoo keys that are known and ignored (graph optimisation is
/// kann's own business).
/// `generated` is the block `kann generate` adds to `network.dump.yaml`
/// (what generation decided), so a dump reads back as a configuration.
const TOP_IGNORED: &[&str] = &["onnx_graph_optim", "tensorflow_graph_optim", "generated"];

impl NetworkConfig {
    /// Reads and validates the YAML file at `path`. Relative paths inside are
    /// resolved against the file's folder.
    pub fn load(path: impl AsRef<Path>) -> std::result::Result<Loaded, ConfigError> {
        let path = path.as_ref();
        let read_err = |reason: String| ConfigError::Read {
            file: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| read_err(io_reason(&e)))?;
        if meta.is_dir() {
            return Err(read_err(
                "is a folder, not a configuration file".to_string(),
            ));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(read_err(format!(
                "{} bytes is too large for a network configuration (limit {MAX_FILE_BYTES})",
                meta.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| read_err(io_reason(&e)))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            read_err(format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Self::from_yaml_str(&text, path)
    }

    /// Parses `text` as if read from `file`: `file` names the errors and its
    /// folder resolves relative paths (which must exist on disk).
    pub fn from_yaml_str(text: &str, file: &Path) -> std::result::Result<Loaded, ConfigError> {
        let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut cx = Cx {
            file: file.to_path_buf(),
            dir,
            warnings: Vec::new(),
        };
        let root = yaml::parse(text).map_err(|e| ConfigError::Syntax {
            file: file.to_path_buf(),
            location: Location {
                line: e.pos.line.max(1),
                column: e.pos.column.max(1),
            },
            reason: e.reason,
        })?;
        let Some(root) = root.filter(|r| !matches!(r.kind, Kind::Null)) else {
            return Err(ConfigError::Read {
                file: file.to_path_buf(),
                reason: "the file holds no configuration (empty YAML)".to_string(),
            });
        };
        let mut config = read_config(&mut cx, &root)?;
        config.source = Some(abs);
        Ok(Loaded {
            config,
            warnings: cx.warnings,
        })
    }

    /// The configuration for a bare `.onnx` file (`kann generate model.onnx
    /// --input-shape …`): named after the file stem, inputs bound by position
    /// to the model's graph inputs, outputs all graph outputs, default
    /// options. `input_shapes` may be empty (the model's own static shapes).
    pub fn from_onnx(
        path: impl AsRef<Path>,
        input_shapes: Vec<TensorShape>,
    ) -> std::result::Result<NetworkConfig, ConfigError> {
        let path = path.as_ref();
        let model_path = path.canonicalize().map_err(|e| ConfigError::Read {
            file: path.to_path_buf(),
            reason: io_reason(&e),
        })?;
        if !model_path.is_file() {
            return Err(ConfigError::Read {
                file: path.to_path_buf(),
                reason: "is not a file".to_string(),
            });
        }
        for (i, s) in input_shapes.iter().enumerate() {
            if s.dims.is_empty() || s.dims.contains(&0) {
                return Err(ConfigError::Key {
                    file: path.to_path_buf(),
                    key: format!("--input-shape #{}", i + 1),
                    location: None,
                    reason: format!("{s} must have positive dims"),
                });
            }
        }
        let name = onnx_name(&model_path);
        Ok(NetworkConfig {
            name,
            framework: Framework::Onnx,
            model_path,
            source: None,
            input_nodes_name: Vec::new(),
            input_nodes_shape: input_shapes,
            input_nodes_dtype: Vec::new(),
            output_nodes_name: Vec::new(),
            output_nodes_shape: Vec::new(),
            output_nodes_dtype: Vec::new(),
            generate_options: GenerateOptions::default(),
            extra_data: Vec::new(),
            preprocessing: None,
            postprocessing: None,
        })
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

fn shapes(cx: &Cx, key: &str, node: &Node) -> Result<Vec<TensorShape>> {
    let items = cx.seq(key, node)?;
    // A single flat shape (`[1, 3, 224, 224]`) for a single input is accepted too.
    if !items.is_empty() && items.iter().all(|n| matches!(n.kind, Kind::Int(_))) {
        return Ok(vec![shape(cx, key, node)?]);
    }
    items
        .iter()
        .enumerate()
        .map(|(i, n)| shape(cx, &format!("{key}[{i}]"), n))
        .collect()
}

fn shape(cx: &Cx, key: &str, node: &Node) -> Result<TensorShape> {
    let dims = cx.seq(key, node)?;
    if dims.is_empty() {
        return Err(cx.error(key, node.pos, "a shape needs at least one dim"));
    }
    let dims = dims
        .iter()
        .enumerate()
        .map(|(j, d)| cx.int(&format!("{key}[{j}]"), d, 1))
        .collect::<Result<Vec<usize>>>()?;
    Ok(TensorShape::new(dims))
}

fn dtypes(cx: &Cx, key: &str, node: &Node) -> Result<Vec<DType>> {
    let names = cx.names(key, node)?;
    names
        .iter()
        .enumerate()
        .map(|(i, s)| {
            DType::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                let item = if matches!(node.kind, Kind::Seq(_)) {
                    format!("{key}[{i}]")
                } else {
                    key.to_string()
                };
                cx.error(
                    &item,
                    node.pos,
                    format!("unknown dtype \"{s}\" (e.g. float32, uint8)"),
                )
            })
        })
        .collect()
}

fn check_count(
    cx: &Cx,
    key: &str,
    node: &Node,
    found: usize,
    names_key: &str,
    want: usize,
) -> Result<()> {
    if found != 0 && found != want {
        return Err(cx.error(
            key,
            node.pos,
            format!("{found} entries for {want} names in {names_key}; give one per name"),
        ));
    }
    Ok(())
}

fn read_config(cx: &mut Cx, root: &Node) -> Result<NetworkConfig> {
    let mut f = cx.map("", root).map_err(|_| {
        cx.error(
            "(top level)",
            root.pos,
            format!(
                "expected a mapping of keys (name, framework, onnx_model …), found {}",
                root.kind.describe()
            ),
        )
    })?;

    let (key, node) = f.require(cx, "name")?;
    let name = cx.name(&key, node)?;

    // The model: one of the model keys; the framework follows from it.
    let mut model: Option<(Framework, String, &Node)> = None;
    for (k, fw) in [
        ("onnx_model", Framework::Onnx),
        ("tflite_model", Framework::Tflite),
        ("tflite_file", Framework::Tflite),
    ] {
        if let Some((key, node)) = f.get(k) {
            if let Some((_, other, _)) = &model {
                return Err(cx.error(
                    &key,
                    node.pos,
                    format!("give one model, not both {other} and {key}"),
                ));
            }
            model = Some((fw, key, node));
        }
    }
    let framework = match f.get("framework") {
        Some((key, node)) => {
            let s = cx.string(&key, node)?;
            let fw = Framework::parse(&s).ok_or_else(|| {
                let hint = if s.eq_ignore_ascii_case("tensorflow") {
                    "; convert the model to ONNX (tf2onnx) or TFLite"
                } else {
                    ""
                };
                cx.error(
                    &key,
                    node.pos,
                    format!("\"{s}\" is not supported (expected onnx or tflite){hint}"),
                )
            })?;
            if let Some((model_fw, model_key, _)) = &model {
                if *model_fw != fw {
                    return Err(cx.error(
                        &key,
                        node.pos,
                        format!("is {fw} but the model is given by {model_key}"),
                    ));
                }
            }
            fw
        }
        None => match &model {
            Some((fw, _, _)) => *fw,
            None => return Err(cx.missing("framework", None)),
        },
    };
    let Some((_, model_key, model_node)) = model else {
        let want = match framework {
            Framework::Onnx => "onnx_model",
            Framework::Tflite => "tflite_model",
        };
        return Err(cx.missing(want, None));
    };
    let model_path = cx.existing_path(&model_key, model_node)?;

    let (key, node) = f.require(cx, "input_nodes_name")?;
    let input_nodes_name = cx.names(&key, node)?;
    if input_nodes_name.is_empty() {
        return Err(cx.error(&key, node.pos, "needs at least one input name"));
    }
    let (key, shape_node) = f.require(cx, "input_nodes_shape")?;
    let input_nodes_shape = shapes(cx, &key, shape_node)?;
    check_count(
        cx,
        &key,
        shape_node,
        input_nodes_shape.len(),
        "input_nodes_name",
        input_nodes_name.len(),
    )?;
    if input_nodes_shape.is_empty() {
        return Err(cx.error(&key, shape_node.pos, "needs one shape per input name"));
    }
    let mut input_nodes_dtype = Vec::new();
    if let Some((key, node)) = f.get("input_nodes_dtype") {
        input_nodes_dtype = dtypes(cx, &key, node)?;
        check_count(
            cx,
            &key,
            node,
            input_nodes_dtype.len(),
            "input_nodes_name",
            input_nodes_name.len(),
        )?;
    }

    let mut output_nodes_name = Vec::new();
    if let Some((key, node)) = f.get("output_nodes_name") {
        output_nodes_name = cx.names(&key, node)?;
    }
    let mut output_nodes_shape = Vec::new();
    if let Some((key, node)) = f.get("output_nodes_shape") {
        output_nodes_shape = shapes(cx, &key, node)?;
        if output_nodes_name.is_empty() {
            return Err(cx.error(&key, node.pos, "output shapes need output_nodes_name"));
        }
        check_count(
            cx,
            &key,
            node,
            output_nodes_shape.len(),
            "output_nodes_name",
            output_nodes_name.len(),
        )?;
    }
    let mut output_nodes_dtype = Vec::new();
    if let Some((key, node)) = f.get("output_nodes_dtype") {
        output_nodes_dtype = dtypes(cx, &key, node)?;
        check_count(
            cx,
            &key,
            node,
            output_nodes_dtype.len(),
            "output_nodes_name",
            output_nodes_name.len(),
        )?;
    }

    let mut generate_options = match f.get("generate_options") {
        Some((key, node)) => {
            let g = cx.map(&key, node)?;
            GenerateOptions::read(cx, g)?
        }
        None => GenerateOptions::default(),
    };
    // The zoo also writes forced_batch_size at the top level.
    if let Some((key, node)) = f.get("forced_batch_size") {
        let b = cx.int(&key, node, 1)?;
        match generate_options.forced_batch_size {
            Some(g) if g != b => {
                return Err(cx.error(
                    &key,
                    node.pos,
                    format!("{b} contradicts generate_options.forced_batch_size {g}; keep one"),
                ))
            }
            _ => generate_options.forced_batch_size = Some(b),
        }
    }

    let mut extra_data = Vec::new();
    if let Some((key, node)) = f.get("extra_data") {
        read_extra_data(cx, &key, node, &mut extra_data)?;
    }
    let preprocessing = match f.get("preprocessing") {
        Some((key, node)) => {
            let m = cx.map(&key, node)?;
            Some(Preprocessing::read(cx, m)?)
        }
        None => None,
    };
    let postprocessing = match f.get("postprocessing") {
        Some((key, node)) => {
            let m = cx.map(&key, node)?;
            Some(Postprocessing::read(cx, m)?)
        }
        None => None,
    };

    let known: Vec<&str> = TOP_KEYS.iter().chain(TOP_IGNORED).copied().collect();
    f.finish(cx, &known);
    Ok(NetworkConfig {
        name,
        framework,
        model_path,
        source: None,
        input_nodes_name,
        input_nodes_shape,
        input_nodes_dtype,
        output_nodes_name,
        output_nodes_shape,
        output_nodes_dtype,
        generate_options,
        extra_data,
        preprocessing,
        postprocessing,
    })
}

/// `extra_data`: a list of paths, or the zoo's mapping whose values are a
/// path or a list of paths. Every path must exist (file or folder).
fn read_extra_data(cx: &Cx, key: &str, node: &Node, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut push_all = |key: &str, node: &Node| -> Result<()> {
        match &node.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    out.push(cx.existing_path(&format!("{key}[{i}]"), item)?);
                }
            }
            Kind::Null => {}
            _ => out.push(cx.existing_path(key, node)?),
        }
        Ok(())
    };
    match &node.kind {
        Kind::Map(entries) => {
            for (name, _, value) in entries {
                push_all(&read::join(key, name), value)?;
            }
            Ok(())
        }
        Kind::Seq(_) | Kind::Str(_) => push_all(key, node),
        _ => Err(cx.expected(key, node, "a list of paths or a mapping of paths")),
    }
}

/// The name of a bare ONNX model: its file stem, or its folder's name when
/// the stem is the generic `model` (the ONNX test layout `<name>/model.onnx`).
fn onnx_name(path: &Path) -> String {
    let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty());
    match stem(path) {
        Some(s) if s == "model" => path.parent().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().into_owned()).unwrap_or(s),
        Some(s) => s,
        None => "network".to_string(),
    }
}

#[cfg(test)]
mod onnx_name_tests {
    use super::onnx_name;
    use std::path::Path;

    #[test]
    fn a_generic_model_file_is_named_after_its_folder() {
        assert_eq!(onnx_name(Path::new("/d/resnet50/model.onnx")), "resnet50");
        assert_eq!(onnx_name(Path::new("/d/resnet50/rn.onnx")), "rn");
        assert_eq!(onnx_name(Path::new("model.onnx")), "model");
    }
}
