mod conformance;
mod supported_ops;

use crate::args::Command;

/// Runs a command; returns the process exit code (0 ok, 1 check failed).
pub fn dispatch(cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Conformance { dir, filter, json, allow_list, quiet } => conformance::run(dir, filter, json, allow_list, quiet),
        Command::SupportedOps { markdown } => supported_ops::run(markdown),
    }
}
