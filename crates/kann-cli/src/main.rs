//! `kann`: parses arguments, calls the libraries, prints. Errors print as one
//! line `error: …`; exit codes: 0 ok, 1 a check failed, 2 an error.

mod args;
mod commands;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    match commands::dispatch(cli.command) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
