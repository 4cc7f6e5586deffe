//! `--draw-graph`: the compiled network as Graphviz: one box per step (op,
//! kernel, output shapes, the clusters that run it, filled with the colour
//! of its first cluster), one ellipse per network input and output, and an
//! edge per buffer a step reads from the step (or input) that last wrote
//! it, labelled with the buffer's place in the arena.

use super::cmds::buf;
use kann_ir::Graph;
use kann_kernels::{BufRef, Command, Program};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

const PALETTE: [&str; 8] = ["#cfe2f3", "#d9ead3", "#fff2cc", "#f4cccc", "#d9d2e9", "#fce5cd", "#d0e0e3", "#ead1dc"];

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Clusters that run a part of each step.
fn clusters_of(p: &Program) -> Vec<BTreeSet<usize>> {
    let mut out = vec![BTreeSet::new(); p.steps.len()];
    for (c, cmds) in p.clusters.iter().enumerate() {
        for cmd in cmds {
            if let Command::Run { step, .. } = *cmd {
                if let Some(set) = out.get_mut(step as usize) {
                    set.insert(c);
                }
            }
        }
    }
    out
}

/// The DOT text.
pub fn dot(p: &Program, g: &Graph) -> String {
    let shapes: HashMap<&str, Vec<String>> = g
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.outputs.iter().map(|&o| format!("{}{}", g.value(o).info.dtype, g.value(o).info.shape)).collect()))
        .collect();
    let clusters = clusters_of(p);
    let mut o = String::new();
    let _ = writeln!(o, "digraph \"{}\" {{", esc(&g.name));
    let _ = writeln!(o, "  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=8];");
    // Who last wrote each buffer, in program order: (buffer, node id).
    let mut writers: Vec<(BufRef, String)> = Vec::new();
    for (i, t) in p.inputs.iter().enumerate() {
        let id = format!("in{i}");
        let _ = writeln!(o, "  {id} [shape=ellipse, label=\"input {}\\n{} {:?}\"];", esc(&t.name), t.dtype.name(), t.shape);
        writers.push((t.buf, id));
    }
    for (k, s) in p.steps.iter().enumerate() {
        let id = format!("s{k}");
        let on = &clusters[k];
        let colour = on.iter().next().map_or("#ffffff", |c| PALETTE[c % PALETTE.len()]);
        let outs = shapes.get(s.name.as_str()).map(|v| v.join(", ")).unwrap_or_default();
        let list: Vec<String> = on.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            o,
            "  {id} [shape=box, style=filled, fillcolor=\"{colour}\", label=\"#{k} {}\\n{}\\n{}\\n{}\\nclusters {}\"];",
            esc(&s.name),
            esc(&s.op),
            esc(&s.kernel.name()),
            esc(&outs),
            list.join(",")
        );
        for b in &s.inputs {
            if let Some((_, from)) = writers.iter().rev().find(|(w, _)| w.overlaps(b)) {
                let _ = writeln!(o, "  {from} -> {id} [label=\"{}\"];", buf(b));
            }
        }
        for b in &s.outputs {
            writers.push((*b, id.clone()));
        }
    }
    for (i, t) in p.outputs.iter().enumerate() {
        let id = format!("out{i}");
        let _ = writeln!(o, "  {id} [shape=ellipse, style=bold, label=\"output {}\\n{} {:?}\"];", esc(&t.name), t.dtype.name(), t.shape);
        if let Some((_, from)) = writers.iter().rev().find(|(w, _)| w.overlaps(&t.buf)) {
            let _ = writeln!(o, "  {from} -> {id} [label=\"{}\"];", buf(&t.buf));
        }
    }
    o.push_str("}\n");
    o
}

/// Renders `dot_file` with Graphviz's `dot` into `out` (format from its
/// extension). `Ok(false)` when `dot` is not installed.
pub fn render(dot_file: &Path, out: &Path) -> anyhow::Result<bool> {
    let format = out.extension().and_then(|e| e.to_str()).unwrap_or("svg");
    let run = std::process::Command::new("dot").arg(format!("-T{format}")).arg(dot_file).arg("-o").arg(out).output();
    match run {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => anyhow::bail!("cannot run Graphviz's dot: {e}"),
        Ok(r) if r.status.success() => Ok(true),
        Ok(r) => anyhow::bail!("Graphviz's dot failed on {}: {}", dot_file.display(), String::from_utf8_lossy(&r.stderr).lines().next().unwrap_or("")),
    }
}
