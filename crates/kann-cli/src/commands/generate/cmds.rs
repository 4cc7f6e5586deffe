//! `--generate-txt-cmds`: each cluster's command list in readable form,
//! KaNN's "explore clusters commands" files.

use kann_kernels::{BufRef, Command, Program};
use std::fmt::Write as _;

/// `arena@4096+1024` / `weights@0+64`.
pub fn buf(b: &BufRef) -> String {
    match *b {
        BufRef::Arena { offset, len } => format!("arena@{offset}+{len}"),
        BufRef::Weights { offset, len } => format!("weights@{offset}+{len}"),
    }
}

fn bufs(list: &[BufRef]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.iter().map(buf).collect::<Vec<_>>().join(", ")
    }
}

/// The text of `cmds/cluster_<c>.txt`.
pub fn cluster_text(p: &Program, c: usize) -> String {
    let cmds = p.clusters.get(c).map_or(&[][..], |v| &v[..]);
    let runs = cmds.iter().filter(|c| matches!(c, Command::Run { .. })).count();
    let mut o = String::new();
    let _ = writeln!(o, "# cluster {c} of {}: {} commands ({runs} runs, {} barriers)", p.n_clusters(), cmds.len(), cmds.len() - runs);
    let _ = writeln!(o, "# arena {} bytes, scratch {} bytes per cluster", p.arena_bytes, p.scratch_bytes);
    for (i, cmd) in cmds.iter().enumerate() {
        match *cmd {
            Command::Run { step, begin, end } => match p.steps.get(step as usize) {
                Some(s) => {
                    let _ = writeln!(
                        o,
                        "{i:05}  run step #{step} {} {} {} items {begin}..{end} of {}, in: {}, out: {}",
                        s.name,
                        s.op,
                        s.kernel.name(),
                        s.kernel.work_items(),
                        bufs(&s.inputs),
                        bufs(&s.outputs)
                    );
                }
                None => {
                    let _ = writeln!(o, "{i:05}  run step #{step} (missing) items {begin}..{end}");
                }
            },
            Command::Barrier { index } => {
                let _ = writeln!(o, "{i:05}  barrier #{index}");
            }
        }
    }
    o
}
