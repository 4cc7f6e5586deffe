//! A small YAML node tree with positions, built from saphyr-parser's events.
//!
//! Why not saphyr's own `MarkedYaml`: we need a nesting limit (a deep tree
//! would overflow the stack when dropped or walked), duplicate keys as errors,
//! and mapping keys as plain strings with their position. Building the tree
//! ourselves from the event stream gives all three without recursion; scalars
//! are still resolved by saphyr (YAML 1.2 core schema).

use std::borrow::Cow;

use saphyr::{Scalar, ScalarStyle};
use saphyr_parser::{Event, Parser, Span, Tag};

/// Deepest nesting accepted. A network configuration needs 4.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes that alias expansion (`*anchor`) may add to the tree.
const ALIAS_BUDGET: usize = 10_000;

/// A position in the source: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in source order: key, key position, value.
    Map(Vec<(String, Pos, Node)>),
}

impl Kind {
    /// How an error message names what was found ("found a string").
    pub fn describe(&self) -> String {
        match self {
            Kind::Null => "nothing (null)".to_string(),
            Kind::Bool(b) => format!("a boolean ({b})"),
            Kind::Int(i) => format!("an integer ({i})"),
            Kind::Float(f) => format!("a number ({f})"),
            Kind::Str(s) => {
                let short: String = s.chars().take(40).collect();
                let ell = if short.len() < s.len() { "…" } else { "" };
                format!("a string (\"{short}{ell}\")")
            }
            Kind::Seq(_) => "a list".to_string(),
            Kind::Map(_) => "a mapping".to_string(),
        }
    }
}

/// A syntax-level failure, with its position.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub reason: String,
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(String, Pos, Node)>,
        key: Option<(String, Pos)>,
    },
}

fn count_nodes(node: &Node) -> usize {
    // Iterative, so a wide alias cannot recurse deeply (depth is bounded anyway).
    let mut n = 0;
    let mut stack = vec![node];
    while let Some(x) = stack.pop() {
        n += 1;
        match &x.kind {
            Kind::Seq(items) => stack.extend(items.iter()),
            Kind::Map(entries) => stack.extend(entries.iter().map(|(_, _, v)| v)),
            _ => {}
        }
    }
    n
}

fn scalar_node(
    value: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Cow<'_, Tag>>,
    pos: Pos,
) -> Result<Node, SyntaxError> {
    let raw = value.to_string();
    let kind = match Scalar::parse_from_cow_and_metadata(value, style, tag) {
        Some(Scalar::Null) => Kind::Null,
        Some(Scalar::Boolean(b)) => Kind::Bool(b),
        Some(Scalar::Integer(i)) => Kind::Int(i),
        Some(Scalar::FloatingPoint(f)) => Kind::Float(f.into_inner()),
        Some(Scalar::String(s)) => Kind::Str(s.into_owned()),
        None => {
            let tag = tag
                .map(|t| format!("{}{}", t.handle, t.suffix))
                .unwrap_or_default();
            return Err(SyntaxError {
                pos,
                reason: format!("\"{raw}\" is not a valid {tag}"),
            });
        }
    };
    Ok(Node { pos, kind })
}

/// Parses one YAML document into a tree. An empty stream yields `None`.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: Vec<(usize, Node)> = Vec::new();
    let mut alias_budget = ALIAS_BUDGET;
    let mut root: Option<Node> = None;
    let mut documents = 0usize;

    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            reason: e.info().to_string(),
        })?;
        let pos = Pos::of(&span);
        // A finished node, with the anchor it defines (0 = none).
        let done: Option<(Node, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        pos,
                        reason: "a second YAML document (`---`); a network configuration is one document"
                            .to_string(),
                    });
                }
                None
            }
            Event::Scalar(value, style, anchor, tag) => {
                Some((scalar_node(value, style, tag.as_ref(), pos)?, anchor))
            }
            Event::Alias(id) => {
                let Some((_, node)) = anchors.iter().rev().find(|(a, _)| *a == id) else {
                    return Err(SyntaxError {
                        pos,
                        reason: "alias to an unknown anchor".to_string(),
                    });
                };
                let n = count_nodes(node);
                if n > alias_budget {
                    return Err(SyntaxError {
                        pos,
                        reason: "aliases expand to too many nodes".to_string(),
                    });
                }
                alias_budget -= n;
                let mut node = node.clone();
                node.pos = pos;
                Some((node, 0))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError {
                        pos,
                        reason: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        pos,
                        anchor,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        pos,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                    }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => Some((
                    Node {
                        pos,
                        kind: Kind::Seq(items),
                    },
                    anchor,
                )),
                Some(Frame::Map {
                    pos,
                    anchor,
                    entries,
                    ..
                }) => Some((
                    Node {
                        pos,
                        kind: Kind::Map(entries),
                    },
                    anchor,
                )),
                None => None,
            },
        };
        let Some((node, anchor)) = done else { continue };
        if anchor != 0 {
            anchors.push((anchor, node.clone()));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let name = match node.kind {
                        Kind::Str(s) => s,
                        Kind::Int(i) => i.to_string(),
                        Kind::Float(f) => f.to_string(),
                        Kind::Bool(b) => b.to_string(),
                        Kind::Null => "null".to_string(),
                        Kind::Seq(_) | Kind::Map(_) => {
                            return Err(SyntaxError {
                                pos: node.pos,
                                reason:
                                    "a mapping key must be a plain value, not a list or mapping"
                                        .to_string(),
                            })
                        }
                    };
                    if let Some((_, first, _)) = entries.iter().find(|(k, _, _)| *k == name) {
                        return Err(SyntaxError {
                            pos: node.pos,
                            reason: format!(
                                "duplicate key \"{name}\" (first at line {})",
                                first.line
                            ),
                        });
                    }
                    *key = Some((name, node.pos));
                }
                Some((name, key_pos)) => entries.push((name, key_pos, node)),
            },
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let root = parse("a: 1\nb:\n  c: [1, 2]\n").unwrap().unwrap();
        let Kind::Map(entries) = &root.kind else {
            panic!()
        };
        assert_eq!(entries[1].0, "b");
        assert_eq!(entries[1].1, Pos { line: 2, column: 1 });
        let Kind::Map(inner) = &entries[1].2.kind else {
            panic!()
        };
        assert_eq!(inner[0].1, Pos { line: 3, column: 3 });
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let root = parse("[1, 2.5, true, ~, '3', x, 0x10]").unwrap().unwrap();
        let Kind::Seq(items) = root.kind else {
            panic!()
        };
        let kinds: Vec<String> = items.iter().map(|n| n.kind.describe()).collect();
        assert_eq!(
            kinds,
            [
                "an integer (1)",
                "a number (2.5)",
                "a boolean (true)",
                "nothing (null)",
                "a string (\"3\")",
                "a string (\"x\")",
                "an integer (16)"
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos.line, 3);
        assert!(
            err.reason.contains("duplicate key \"a\" (first at line 1)"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = "- ".repeat(100_000) + "x";
        let err = parse(&text).unwrap_err();
        assert!(err.reason.contains("nesting deeper"), "{}", err.reason);
        let text = "[".repeat(300);
        assert!(parse(&text).is_err());
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            text += &format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n");
        }
        let err = parse(&text).unwrap_err();
        assert!(err.reason.contains("too many nodes"), "{}", err.reason);
        // A modest alias is fine.
        let root = parse("a: &x [1, 2]\nb: *x\n").unwrap().unwrap();
        let Kind::Map(entries) = root.kind else {
            panic!()
        };
        assert!(matches!(&entries[1].2.kind, Kind::Seq(v) if v.len() == 2));
    }

    #[test]
    fn empty_stream_is_none() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("# only a comment\n").unwrap().is_none());
    }
}
