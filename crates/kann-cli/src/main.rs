//! `kann`: parses arguments, calls the libraries, prints. Errors print as one
//! line `error: …`; exit codes: 0 ok, 1 a check failed, 2 an error.

mod args;
mod commands;

use clap::{CommandFactory, FromArgMatches};

/// `kann --version`: the versions a KaNN user expects to see side by side.
fn version() -> String {
    let v = env!("CARGO_PKG_VERSION");
    format!("{v} (compiler {v}, runtime {v}, artifact format {}.{})", kann_artifact::FORMAT_MAJOR, kann_artifact::FORMAT_MINOR)
}

fn main() {
    end_quietly_on_a_closed_pipe();
    let matches = args::Cli::command().version(version()).get_matches();
    let cli = match args::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match commands::dispatch(cli.command) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// `kann … | head`: a reader that leaves early ends kann as it ends other
/// Unix tools, by SIGPIPE. Rust programs start with SIGPIPE ignored, so
/// every print to the closed pipe would fail, and `println!` panic.
#[cfg(unix)]
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: sets the signal's disposition back to the default, at start,
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn end_quietly_on_a_closed_pipe() {}
