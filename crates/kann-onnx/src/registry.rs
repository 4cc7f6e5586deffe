//! The importer's op registry: which ONNX op types kann imports, for which
//! opsets, with which dtypes and attribute limits. `SUPPORTED-OPS.md` is
//! generated from it, so the documentation cannot claim what does not exist.

use crate::node::NodeCx;
use crate::ImportError;
use kann_ir::Op;

/// Turns one ONNX node into a kann op (possibly rewriting its inputs).
pub type ImportFn = fn(&mut NodeCx) -> Result<Imported, ImportError>;

/// What a node becomes.
pub enum Imported {
    /// A graph node.
    Op(Op),
    /// A constant value (the `Constant` op): the node's single output.
    Constant(kann_tensor::Tensor),
}

impl From<Op> for Imported {
    fn from(op: Op) -> Imported {
        Imported::Op(op)
    }
}

/// One registry row.
#[derive(Clone)]
pub struct OpRow {
    /// ONNX op type, e.g. `Conv`.
    pub op_type: &'static str,
    /// Domain: `""` for the default `ai.onnx` domain.
    pub domain: &'static str,
    /// Model opset range (inclusive) this row handles.
    pub since: i64,
    pub until: i64,
    pub import: ImportFn,
    /// Dtypes accepted, for the documentation.
    pub dtypes: &'static str,
    /// Attribute values refused, for the documentation (empty: none).
    pub limits: &'static str,
}

/// Lowest and highest opset of the default domain kann accepts.
pub const MIN_OPSET: i64 = 7;
pub const MAX_OPSET: i64 = 28;

#[derive(Clone, Default)]
pub struct Registry {
    rows: Vec<OpRow>,
}

impl Registry {
    /// Every op kann imports.
    pub fn standard() -> Registry {
        let mut r = Registry::default();
        crate::ops::register_all(&mut r);
        r
    }

    /// Adds a row covering every accepted opset.
    pub fn add(&mut self, op_type: &'static str, import: ImportFn, dtypes: &'static str, limits: &'static str) {
        self.add_range(op_type, MIN_OPSET, MAX_OPSET, import, dtypes, limits);
    }

    /// Adds a row covering opsets `since..=until`.
    pub fn add_range(&mut self, op_type: &'static str, since: i64, until: i64, import: ImportFn, dtypes: &'static str, limits: &'static str) {
        self.rows.push(OpRow { op_type, domain: "", since, until, import, dtypes, limits });
    }

    pub fn rows(&self) -> &[OpRow] {
        &self.rows
    }

    /// The row handling `op_type` of `domain` at `opset`.
    pub fn find(&self, domain: &str, op_type: &str, opset: i64) -> Option<&OpRow> {
        let domain = if domain == "ai.onnx" { "" } else { domain };
        self.rows.iter().find(|r| r.domain == domain && r.op_type == op_type && (r.since..=r.until).contains(&opset))
    }

    /// Whether some opset supports `op_type` (to tell "unknown op" from "not at this opset").
    pub fn knows(&self, domain: &str, op_type: &str) -> Option<(i64, i64)> {
        let domain = if domain == "ai.onnx" { "" } else { domain };
        let rows: Vec<_> = self.rows.iter().filter(|r| r.domain == domain && r.op_type == op_type).collect();
        let lo = rows.iter().map(|r| r.since).min()?;
        let hi = rows.iter().map(|r| r.until).max()?;
        Some((lo, hi))
    }

    /// `SUPPORTED-OPS.md`, generated.
    pub fn markdown(&self) -> String {
        let mut rows: Vec<&OpRow> = self.rows.iter().collect();
        rows.sort_by(|a, b| (a.domain, a.op_type, a.since).cmp(&(b.domain, b.op_type, b.since)));
        let mut s = String::new();
        s.push_str("# Supported ONNX operators\n\n");
        s.push_str("Generated from the importer's registry by `kann supported-ops --markdown > SUPPORTED-OPS.md`; a test fails when this file is stale.\n");
        s.push_str(&format!("Model opsets {MIN_OPSET} to {MAX_OPSET} of the default domain are accepted.\n\n"));
        s.push_str(&format!("{} operator types.\n\n", {
            let mut names: Vec<_> = rows.iter().map(|r| r.op_type).collect();
            names.dedup();
            names.len()
        }));
        s.push_str("| op | opsets | dtypes | not supported |\n|---|---|---|---|\n");
        for r in rows {
            let limits = if r.limits.is_empty() { "—" } else { r.limits };
            s.push_str(&format!("| {} | {}–{} | {} | {} |\n", r.op_type, r.since, r.until, r.dtypes, limits));
        }
        s
    }
}
