//! Typed reading of the YAML tree: every getter knows the key path, so errors
//! and warnings name it.

use std::path::PathBuf;

use crate::error::{ConfigError, Location};
use crate::yaml::{Kind, Node, Pos};

/// The reading context: the file (for messages and relative paths) and the
/// warnings gathered so far.
pub(crate) struct Cx {
    pub file: PathBuf,
    pub dir: PathBuf,
    pub warnings: Vec<String>,
}

pub(crate) type Result<T> = std::result::Result<T, ConfigError>;

fn loc(pos: Pos) -> Option<Location> {
    (pos.line > 0).then_some(Location {
        line: pos.line,
        column: pos.column,
    })
}

/// Levenshtein distance, for "did you mean" hints (keys are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest known name, when close enough to be a likely typo.
pub(crate) fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let best = known.iter().map(|k| (distance(name, k), *k)).min()?;
    let limit = (name.chars().count().max(best.1.len()) / 3).clamp(1, 3);
    (best.0 <= limit).then_some(best.1)
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Cx {
    pub fn error(&self, key: &str, pos: Pos, reason: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            file: self.file.clone(),
            key: key.to_string(),
            location: loc(pos),
            reason: reason.into(),
        }
    }

    /// A required key is absent; `within` is the position of the mapping that
    /// lacks it (`None` at the top level).
    pub fn missing(&self, key: &str, within: Option<Pos>) -> ConfigError {
        ConfigError::Key {
            file: self.file.clone(),
            key: key.to_string(),
            location: within.and_then(loc),
            reason: "required key is missing".to_string(),
        }
    }

    pub fn expected(&self, key: &str, node: &Node, what: &str) -> ConfigError {
        self.error(
            key,
            node.pos,
            format!("expected {what}, found {}", node.kind.describe()),
        )
    }

    pub fn warn(&mut self, key: &str, pos: Pos, message: impl AsRef<str>) {
        let at = match loc(pos) {
            Some(l) => format!("{}:{l}", self.file.display()),
            None => self.file.display().to_string(),
        };
        self.warnings
            .push(format!("{at}: {key}: {}", message.as_ref()));
    }

    pub fn string(&self, key: &str, node: &Node) -> Result<String> {
        match &node.kind {
            Kind::Str(s) => Ok(s.clone()),
            _ => Err(self.expected(key, node, "a string")),
        }
    }

    /// A tensor or network name: a string, or an integer the zoo left
    /// unquoted (`- 495`).
    pub fn name(&self, key: &str, node: &Node) -> Result<String> {
        match &node.kind {
            Kind::Str(s) if !s.is_empty() => Ok(s.clone()),
            Kind::Str(_) => Err(self.error(key, node.pos, "must not be empty")),
            Kind::Int(i) => Ok(i.to_string()),
            _ => Err(self.expected(key, node, "a name (a string)")),
        }
    }

    pub fn bool(&self, key: &str, node: &Node) -> Result<bool> {
        match node.kind {
            Kind::Bool(b) => Ok(b),
            _ => Err(self.expected(key, node, "a boolean (true or false)")),
        }
    }

    /// An integer of at least `min`.
    pub fn int(&self, key: &str, node: &Node, min: usize) -> Result<usize> {
        match node.kind {
            Kind::Int(i) => match usize::try_from(i) {
                Ok(v) if v >= min => Ok(v),
                _ => Err(self.error(key, node.pos, format!("must be at least {min}, found {i}"))),
            },
            _ => Err(self.expected(key, node, "an integer")),
        }
    }

    /// A finite number (integers are accepted).
    pub fn number(&self, key: &str, node: &Node) -> Result<f64> {
        let v = match node.kind {
            Kind::Int(i) => i as f64,
            Kind::Float(f) => f,
            _ => return Err(self.expected(key, node, "a number")),
        };
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.error(key, node.pos, format!("must be a finite number, found {v}")))
        }
    }

    pub fn seq<'n>(&self, key: &str, node: &'n Node) -> Result<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Ok(items),
            _ => Err(self.expected(key, node, "a list")),
        }
    }

    /// A list of strings; a single string is accepted as a list of one.
    pub fn names(&self, key: &str, node: &Node) -> Result<Vec<String>> {
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| self.name(&format!("{key}[{i}]"), n))
                .collect(),
            _ => Ok(vec![self.name(key, node)?]),
        }
    }

    /// A path relative to the YAML file's folder, which must exist; returned
    /// absolute.
    pub fn existing_path(&self, key: &str, node: &Node) -> Result<PathBuf> {
        let written = self.string(key, node)?;
        if written.is_empty() {
            return Err(self.error(key, node.pos, "must not be empty"));
        }
        let joined = self.dir.join(&written);
        match joined.canonicalize() {
            Ok(p) => Ok(p),
            Err(_) => Err(ConfigError::MissingFile {
                file: self.file.clone(),
                key: key.to_string(),
                location: loc(node.pos),
                path: std::path::absolute(&joined).unwrap_or(joined),
            }),
        }
    }

    /// Opens a mapping for reading its fields by name.
    pub fn map<'n>(&self, key: &str, node: &'n Node) -> Result<Fields<'n>> {
        match &node.kind {
            Kind::Map(entries) => Ok(Fields {
                path: key.to_string(),
                pos: node.pos,
                entries,
                used: vec![false; entries.len()],
            }),
            _ => Err(self.expected(key, node, "a mapping (key: value lines)")),
        }
    }
}

/// The fields of one mapping. [`Fields::get`] marks a key as read;
/// [`Fields::finish`] warns about every key that is not known.
pub(crate) struct Fields<'n> {
    pub path: String,
    pos: Pos,
    entries: &'n [(String, Pos, Node)],
    used: Vec<bool>,
}

impl<'n> Fields<'n> {
    /// The value of `name` and its full key path. A null value (`key:` with
    /// nothing after it) counts as absent.
    pub fn get(&mut self, name: &str) -> Option<(String, &'n Node)> {
        let i = self.entries.iter().position(|(k, _, _)| k == name)?;
        self.used[i] = true;
        let node = &self.entries[i].2;
        (!matches!(node.kind, Kind::Null)).then(|| (join(&self.path, name), node))
    }

    pub fn require(&mut self, cx: &Cx, name: &str) -> Result<(String, &'n Node)> {
        let within = (!self.path.is_empty()).then_some(self.pos);
        self.get(name)
            .ok_or_else(|| cx.missing(&join(&self.path, name), within))
    }

    /// Whether the mapping has `name` (even null).
    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| k == name)
    }

    /// Warns about every key that was neither read nor listed in `known`
    /// (which must also hold the keys that were read, for the hints).
    pub fn finish(self, cx: &mut Cx, known: &[&str]) {
        for ((key, pos, _), used) in self.entries.iter().zip(&self.used) {
            if *used || known.contains(&key.as_str()) {
                continue;
            }
            let hint = match suggest(key, known) {
                Some(s) => format!(" (did you mean {s}?)"),
                None => String::new(),
            };
            cx.warn(
                &join(&self.path, key),
                *pos,
                format!("unknown key, ignored{hint}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["nbr_clusters", "arch", "forced_batch_size"];
        assert_eq!(suggest("nbr_cluster", &known), Some("nbr_clusters"));
        assert_eq!(suggest("nb_clusters", &known), Some("nbr_clusters"));
        assert_eq!(suggest("arc", &known), Some("arch"));
        assert_eq!(
            suggest("forced_batchsize", &known),
            Some("forced_batch_size")
        );
        assert_eq!(suggest("colour_space", &known), None);
        assert_eq!(suggest("x", &known), None);
    }
}
