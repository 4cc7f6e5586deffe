//! Command-line arguments (clap derive only; no logic here).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "kann", version, about = "kann: an ahead-of-time neural-network compiler and runtime for CPUs")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
    /// Compute golden outputs with the reference interpreter: reads IO_DIR/<input>.npy|.pb|.bin, writes IO_DIR/genref/<output>.npy.
    Genref {
        /// The ONNX model.
        model: PathBuf,
        /// Folder holding one file per model input.
        io_dir: PathBuf,
        /// Shape of an input, for raw .bin files or symbolic dimensions: NAME=D0,D1,… (repeatable).
        #[arg(long = "input-shape", value_name = "NAME=DIMS")]
        input_shapes: Vec<String>,
    },
    /// Compare two output sets (folders of .npy files, or two .npy files) tensor by tensor; B is the reference.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// Absolute tolerance.
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
    /// List the ONNX operators kann imports (the source of SUPPORTED-OPS.md).
    SupportedOps {
        /// Print the Markdown table of SUPPORTED-OPS.md.
        #[arg(long)]
        markdown: bool,
    },
}
