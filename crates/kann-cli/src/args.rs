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
    },
    /// List the ONNX operators kann imports (the source of SUPPORTED-OPS.md).
    SupportedOps {
        /// Print the Markdown table of SUPPORTED-OPS.md.
        #[arg(long)]
        markdown: bool,
    },
}
