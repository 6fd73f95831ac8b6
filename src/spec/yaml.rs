//! YAML text → documents → position-annotated node trees.
//!
//! Owns two things: splitting a file into per-document text at its `---` lines
//! (`split`: so each document's exact text can be stored and exported
//! byte-identical), and building (here) a tree of [`Node`]s (`tree`) from
//! `saphyr-parser` events in which every node and every mapping key carries
//! its 1-based line and column. Scalars are resolved with the YAML 1.2 core
//! schema (`scalar`): `yes`/`no`/`on`/`off` are strings, only `true`/`false`
//! (and their capitalised forms) are booleans.
//!
//! Problems that do not stop parsing (duplicate keys, unsupported tags,
//! non-string keys) are collected as issues; a syntax error stops the document.
//!
//! Bounds (`budget`): nesting depth ([`MAX_DEPTH`]) and nodes per document
//! ([`MAX_NODES`]) are checked per document; a [`Budget`] shared by every
//! document of every file in one load caps the total nodes and the total bytes
//! of scalar text, counting each use of an alias as a copy of what it refers to
//! (it *is* copied), so an alias bomb stops at the alias that crosses the limit.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use super::error::{Path, SpecError};

mod budget;
mod scalar;
mod split;
mod tree;

pub use budget::{Budget, MAX_LOAD_BYTES, MAX_LOAD_NODES};
pub(crate) use budget::{MAX_DEPTH, MAX_NODES};
use scalar::resolve_plain;
#[cfg(test)]
use split::Chunk;
pub(crate) use split::split_documents;
pub(crate) use tree::{Entry, Issue, Node, Pos, Value};

/// The result of parsing one chunk.
pub(crate) struct Parsed {
    /// The document's root, `None` for an empty document.
    pub root: Option<Node>,
    pub issues: Vec<Issue>,
}

/// Parses one chunk (at most one document). `line_offset` is added to every
/// line so positions are file positions. A syntax error, or a limit crossed,
/// is returned as the `Err` issue (with the path of the innermost open
/// collection and the position of the node or alias that crossed it).
/// Everything built is taken from `budget`.
pub(crate) fn parse_document(
    text: &str,
    line_offset: usize,
    budget: &mut Budget,
) -> Result<Parsed, Box<Issue>> {
    let mut b = Builder {
        line_offset,
        stack: Vec::new(),
        anchors: HashMap::new(),
        issues: Vec::new(),
        root: None,
        nodes: 0,
        documents: 0,
        budget,
    };
    for ev in Parser::new_from_str(text) {
        match ev {
            Ok((event, span)) => b.event(event, span)?,
            Err(e) => {
                let m = e.marker();
                return Err(Box::new(Issue {
                    path: b.current_path(),
                    pos: Pos {
                        line: m.line() + line_offset,
                        column: m.col() + 1,
                    },
                    error: SpecError::Syntax {
                        message: e.info().to_string(),
                    },
                }));
            }
        }
    }
    Ok(Parsed {
        root: b.root,
        issues: b.issues,
    })
}

enum Frame {
    Seq {
        node: Node,
        path: Path,
        anchor: usize,
    },
    Map {
        node: Node,
        path: Path,
        anchor: usize,
        /// The key read, waiting for its value.
        key: Option<(String, Pos)>,
        /// Set when the key cannot be used (not a string); its value is dropped.
        skip: bool,
        /// Keys already in this mapping, so a duplicate is found in O(1).
        keys: HashSet<String>,
    },
}

/// An anchored node with its size, so each use of the alias is charged
/// without walking the node again.
struct Anchored {
    node: Node,
    nodes: usize,
    bytes: usize,
}

struct Builder<'b> {
    line_offset: usize,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    issues: Vec<Issue>,
    root: Option<Node>,
    nodes: usize,
    documents: usize,
    budget: &'b mut Budget,
}

impl Builder<'_> {
    fn pos(&self, span: &Span) -> Pos {
        Pos {
            line: span.start.line() + self.line_offset,
            column: span.start.col() + 1,
        }
    }

    fn current_path(&self) -> Path {
        match self.stack.last() {
            None => Path::root(),
            Some(Frame::Seq { path, node, .. }) => match &node.value {
                Value::Seq(items) => path.index(items.len()),
                _ => path.clone(),
            },
            Some(Frame::Map { path, key, .. }) => match key {
                Some((k, _)) => path.key(k.clone()),
                None => path.clone(),
            },
        }
    }

    fn fatal(&self, pos: Pos, error: SpecError) -> Box<Issue> {
        Box::new(Issue {
            path: self.current_path(),
            pos,
            error,
        })
    }

    /// Charges `nodes` nodes and `bytes` bytes of text built at `pos` to
    /// this document and to the load.
    fn count(&mut self, nodes: usize, bytes: usize, pos: Pos) -> Result<(), Box<Issue>> {
        self.nodes += nodes;
        if self.nodes > MAX_NODES {
            return Err(self.fatal(pos, SpecError::TooLarge { max: MAX_NODES }));
        }
        if let Err(e) = self.budget.take(nodes, bytes) {
            return Err(self.fatal(pos, e));
        }
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Box<Issue>> {
        let pos = self.pos(&span);
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self.fatal(
                        pos,
                        SpecError::Syntax {
                            message: "a new document must start with a `---` line".to_string(),
                        },
                    ));
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                self.count(1, value.len(), pos)?;
                let node = self.scalar(value.into_owned(), style, tag.as_deref(), pos);
                self.push_value(node, anchor, pos)?;
            }
            Event::Alias(id) => {
                let Some((nodes, bytes)) = self.anchors.get(&id).map(|a| (a.nodes, a.bytes)) else {
                    return Err(self.fatal(
                        pos,
                        SpecError::Syntax {
                            message: "alias refers to an unknown anchor".to_string(),
                        },
                    ));
                };
                // Charged before the copy is made: the alias that would cross
                // a limit is the one reported, and nothing is copied.
                self.count(nodes, bytes, pos)?;
                let node = self.anchors[&id].node.clone();
                // The alias is reported where it is used, not where the anchor is.
                let node = Node { pos, ..node };
                self.push_value(node, 0, pos)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.count(1, 0, pos)?;
                self.check_collection_tag(tag.as_deref(), "seq", pos);
                self.open(pos)?;
                let path = self.current_path();
                self.stack.push(Frame::Seq {
                    node: Node {
                        pos,
                        value: Value::Seq(Vec::new()),
                        text: String::new(),
                    },
                    path,
                    anchor,
                });
            }
            Event::MappingStart(anchor, tag) => {
                self.count(1, 0, pos)?;
                self.check_collection_tag(tag.as_deref(), "map", pos);
                self.open(pos)?;
                let path = self.current_path();
                self.stack.push(Frame::Map {
                    node: Node {
                        pos,
                        value: Value::Map(Vec::new()),
                        text: String::new(),
                    },
                    path,
                    anchor,
                    key: None,
                    skip: false,
                    keys: HashSet::new(),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { node, anchor, .. }) => (node, anchor),
                    Some(Frame::Map { node, anchor, .. }) => (node, anchor),
                    None => return Ok(()),
                };
                self.push_value(node, anchor, pos)?;
            }
        }
        Ok(())
    }

    /// Called before a collection starts: rejects too-deep nesting.
    fn open(&mut self, pos: Pos) -> Result<(), Box<Issue>> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.fatal(pos, SpecError::TooDeep { max: MAX_DEPTH }));
        }
        Ok(())
    }

    fn check_collection_tag(&mut self, tag: Option<&Tag>, expected: &str, pos: Pos) {
        if let Some(tag) = tag
            && !(tag.is_yaml_core_schema() && tag.suffix == expected)
        {
            let path = self.current_path();
            self.issues.push(Issue {
                path,
                pos,
                error: SpecError::UnsupportedTag { tag: tag_text(tag) },
            });
        }
    }

    /// Places a finished node: as a mapping key, a mapping value, a list item
    /// or the document root.
    fn push_value(&mut self, node: Node, anchor: usize, pos: Pos) -> Result<(), Box<Issue>> {
        if anchor != 0 {
            // The anchor keeps a copy of the node: charged like any other.
            let (nodes, bytes) = node_size(&node);
            self.count(nodes, bytes, node.pos)?;
            self.anchors.insert(
                anchor,
                Anchored {
                    node: node.clone(),
                    nodes,
                    bytes,
                },
            );
        }
        let mut issue = None;
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { node: seq, .. }) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map {
                node: map,
                path,
                key,
                skip,
                keys,
                ..
            }) => match key.take() {
                None => {
                    let is_collection = matches!(node.value, Value::Seq(_) | Value::Map(_));
                    if is_collection {
                        *skip = true;
                        *key = Some((String::new(), node.pos));
                        issue = Some(Issue {
                            path: path.clone(),
                            pos,
                            error: SpecError::NonStringKey,
                        });
                    } else {
                        *skip = false;
                        let key_pos = node.pos;
                        let text = match node.value {
                            Value::Str(s) => s,
                            _ => node.text,
                        };
                        *key = Some((text, key_pos));
                    }
                }
                Some((k, key_pos)) => {
                    if std::mem::take(skip) {
                        return Ok(());
                    }
                    if let Value::Map(entries) = &mut map.value {
                        if keys.contains(&k) {
                            // Rare: only now is the first entry looked up.
                            let first = entries.iter().find(|e| e.key == k);
                            let first_line = first.map_or(key_pos.line, |e| e.key_pos.line);
                            issue = Some(Issue {
                                path: path.key(k.clone()),
                                pos: key_pos,
                                error: SpecError::DuplicateKey { key: k, first_line },
                            });
                        } else {
                            keys.insert(k.clone());
                            entries.push(Entry {
                                key: k,
                                key_pos,
                                value: node,
                            });
                        }
                    }
                }
            },
        }
        if let Some(issue) = issue {
            self.issues.push(issue);
        }
        Ok(())
    }

    fn scalar(&mut self, text: String, style: ScalarStyle, tag: Option<&Tag>, pos: Pos) -> Node {
        let value = match tag {
            None if style == ScalarStyle::Plain => resolve_plain(&text),
            None => Value::Str(String::new()),
            Some(tag) if tag.handle.is_empty() && tag.suffix == "!" => Value::Str(String::new()),
            Some(tag) if tag.is_yaml_core_schema() => {
                let resolved = resolve_plain(&text);
                match (tag.suffix.as_str(), resolved) {
                    ("str", _) => Value::Str(String::new()),
                    ("null", v @ Value::Null)
                    | ("bool", v @ Value::Bool(_))
                    | ("int", v @ Value::Int(_))
                    | ("float", v @ Value::Float(_)) => v,
                    ("float", Value::Int(i)) => Value::Float(i as f64),
                    (suffix, _) => {
                        self.tag_issue(tag, pos, suffix);
                        Value::Str(String::new())
                    }
                }
            }
            Some(tag) => {
                self.tag_issue(tag, pos, "");
                Value::Str(String::new())
            }
        };
        // A string holds its text once, as its value (see `Node::text`).
        match value {
            Value::Str(_) => Node {
                pos,
                value: Value::Str(text),
                text: String::new(),
            },
            value => Node { pos, value, text },
        }
    }

    fn tag_issue(&mut self, tag: &Tag, pos: Pos, suffix: &str) {
        let error = if matches!(suffix, "null" | "bool" | "int" | "float") {
            SpecError::Syntax {
                message: format!("value does not match its tag `{}`", tag_text(tag)),
            }
        } else {
            SpecError::UnsupportedTag { tag: tag_text(tag) }
        };
        let path = self.current_path();
        self.issues.push(Issue { path, pos, error });
    }
}

fn tag_text(tag: &Tag) -> String {
    if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

/// Nodes and bytes of text in `node` (keys count as nodes with their text),
/// computed once per anchor.
fn node_size(node: &Node) -> (usize, usize) {
    match &node.value {
        Value::Seq(items) => items.iter().map(node_size).fold((1, 0), add),
        Value::Map(entries) => entries
            .iter()
            .map(|e| add((1, e.key.len()), node_size(&e.value)))
            .fold((1, 0), add),
        _ => (1, node.scalar_text().len()),
    }
}

fn add(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    (a.0.saturating_add(b.0), a.1.saturating_add(b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        let parsed = parse_document(text, 0, &mut Budget::default()).expect("parses");
        assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
        parsed.root.expect("non-empty")
    }

    fn map_value<'a>(n: &'a Node, key: &str) -> &'a Node {
        match &n.value {
            Value::Map(es) => &es.iter().find(|e| e.key == key).expect("key").value,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn core_schema_scalars() {
        let n = root(
            "a: yes\nb: no\nc: true\nd: FALSE\ne: ~\nf:\ng: 0x1f\nh: 0o17\ni: -12\nj: 1.5\nk: 1e3\nl: '12'\nm: !!str 12\nn: on\no: 1_000\np: .inf\n",
        );
        let v = |k: &str| map_value(&n, k).value.clone();
        assert_eq!(v("a"), Value::Str("yes".into()));
        assert_eq!(v("b"), Value::Str("no".into()));
        assert_eq!(v("c"), Value::Bool(true));
        assert_eq!(v("d"), Value::Bool(false));
        assert_eq!(v("e"), Value::Null);
        assert_eq!(v("f"), Value::Null);
        assert_eq!(v("g"), Value::Int(31));
        assert_eq!(v("h"), Value::Int(15));
        assert_eq!(v("i"), Value::Int(-12));
        assert_eq!(v("j"), Value::Float(1.5));
        assert_eq!(v("k"), Value::Float(1000.0));
        assert_eq!(v("l"), Value::Str("12".into()));
        assert_eq!(v("m"), Value::Str("12".into()));
        assert_eq!(v("n"), Value::Str("on".into()));
        assert_eq!(v("o"), Value::Str("1_000".into()));
        assert_eq!(v("p"), Value::Float(f64::INFINITY));
    }

    #[test]
    fn positions_are_one_based_and_offset_by_chunk_line() {
        let parsed = parse_document("a:\n  b: [1, 22]\n", 10, &mut Budget::default()).unwrap();
        let n = parsed.root.unwrap();
        assert_eq!(
            n.pos,
            Pos {
                line: 11,
                column: 1
            }
        );
        let b = map_value(map_value(&n, "a"), "b");
        assert_eq!(
            b.pos,
            Pos {
                line: 12,
                column: 6
            }
        );
        let Value::Seq(items) = &b.value else {
            panic!()
        };
        assert_eq!(
            items[1].pos,
            Pos {
                line: 12,
                column: 10
            }
        );
        let path = Path::root().key("a").key("b").index(1);
        assert_eq!(
            n.position_of(&path),
            Pos {
                line: 12,
                column: 10
            }
        );
        // Missing leaf: the deepest existing ancestor.
        let missing = Path::root().key("a").key("zzz");
        assert_eq!(
            n.position_of(&missing),
            Pos {
                line: 12,
                column: 3
            }
        );
    }

    #[test]
    fn duplicate_keys_and_bad_tags_are_issues() {
        let parsed = parse_document("a: 1\nb: !foo x\na: 2\n", 0, &mut Budget::default()).unwrap();
        let errors: Vec<_> = parsed
            .issues
            .iter()
            .map(|i| {
                (
                    i.path.to_string(),
                    i.pos.line,
                    i.pos.column,
                    i.error.clone(),
                )
            })
            .collect();
        assert_eq!(
            errors,
            vec![
                (
                    "b".to_string(),
                    2,
                    4,
                    SpecError::UnsupportedTag { tag: "!foo".into() }
                ),
                (
                    "a".to_string(),
                    3,
                    1,
                    SpecError::DuplicateKey {
                        key: "a".into(),
                        first_line: 1
                    }
                ),
            ]
        );
    }

    #[test]
    fn syntax_errors_carry_position_and_enclosing_path() {
        let err = parse_document(
            "spec:\n  machines:\n    - name: a\n      x: [1, 2\n",
            0,
            &mut Budget::default(),
        )
        .err()
        .expect("syntax error");
        assert!(matches!(err.error, SpecError::Syntax { .. }));
        assert_eq!(err.path.to_string(), "spec.machines[0].x[2]");
    }

    #[test]
    fn aliases_expand_and_bombs_are_stopped() {
        let n = root("a: &x {k: 1}\nb: *x\n");
        assert_eq!(map_value(&n, "b").pos, Pos { line: 2, column: 4 });
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let err = parse_document(&bomb, 0, &mut Budget::default())
            .err()
            .expect("rejected");
        assert_eq!(err.error, SpecError::TooLarge { max: MAX_NODES });
    }

    /// The issue's bomb, scaled down: a big string anchored once and aliased
    /// many times. Nodes stay few, bytes do not: the byte budget stops it at
    /// the alias that crosses it, before that copy is made.
    #[test]
    fn an_alias_bomb_of_bytes_stops_at_the_alias_that_crosses_the_budget() {
        let big = "x".repeat(64 * 1024);
        let mut text = format!("a: &big \"{big}\"\nlist:\n");
        for _ in 0..3000 {
            text.push_str("  - *big\n");
        }
        let mut budget = Budget::new(MAX_LOAD_NODES, 1024 * 1024);
        let err = parse_document(&text, 0, &mut budget)
            .err()
            .expect("rejected");
        assert_eq!(err.error, SpecError::LoadTooManyBytes { max: 1024 * 1024 });
        // 64 KiB for the scalar, 64 KiB for the anchor's copy, then 13
        // aliases fit in 1 MiB; the 14th (line 16) crosses it.
        assert_eq!(
            err.pos,
            Pos {
                line: 16,
                column: 5
            }
        );
        assert_eq!(err.path.to_string(), "list[13]");
    }

    #[test]
    fn the_budget_is_shared_by_every_document_of_a_load() {
        let doc = format!("a: \"{}\"\n", "y".repeat(600));
        let mut budget = Budget::new(MAX_LOAD_NODES, 1000);
        assert!(parse_document(&doc, 0, &mut budget).is_ok());
        let err = parse_document(&doc, 40, &mut budget)
            .err()
            .expect("second document crosses the shared budget");
        assert_eq!(err.error, SpecError::LoadTooManyBytes { max: 1000 });
        assert_eq!(
            err.pos,
            Pos {
                line: 41,
                column: 4
            }
        );
        let mut nodes = Budget::new(5, MAX_LOAD_BYTES);
        let err = parse_document("[1, 2, 3, 4, 5, 6]", 0, &mut nodes)
            .err()
            .expect("node budget");
        assert_eq!(err.error, SpecError::LoadTooManyNodes { max: 5 });
        assert_eq!(
            err.pos,
            Pos {
                line: 1,
                column: 14
            }
        );
    }

    #[test]
    fn nested_anchors_are_charged_for_their_copies() {
        // Each level anchors (and so copies) everything below it: 40 levels
        // over 1000 bytes copy 40 000 bytes, though the text is 1 KB.
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("{}k{i}: &a{i}\n", "  ".repeat(i)));
        }
        text.push_str(&format!("{}v: \"{}\"\n", "  ".repeat(40), "z".repeat(1000)));
        let mut budget = Budget::new(MAX_LOAD_NODES, 20_000);
        let err = parse_document(&text, 0, &mut budget)
            .err()
            .expect("anchor copies are charged");
        assert_eq!(err.error, SpecError::LoadTooManyBytes { max: 20_000 });
    }

    #[test]
    fn a_mapping_with_many_keys_is_checked_in_linear_time() {
        let mut text = String::new();
        for i in 0..49_000 {
            text.push_str(&format!("k{i}: v\n"));
        }
        text.push_str("k7: again\n");
        let parsed = parse_document(&text, 0, &mut Budget::default()).unwrap();
        assert_eq!(parsed.issues.len(), 1);
        assert_eq!(
            parsed.issues[0].error,
            SpecError::DuplicateKey {
                key: "k7".into(),
                first_line: 8
            }
        );
    }

    #[test]
    fn lone_carriage_returns_end_lines() {
        let text = "a: 1\r---\rb: 2\r# c\r---\r";
        let chunks = split_documents(text);
        assert_eq!(
            chunks,
            vec![
                Chunk {
                    text: "a: 1\r",
                    line: 1
                },
                Chunk {
                    text: "---\rb: 2\r# c\r",
                    line: 2
                },
                Chunk {
                    text: "---\r",
                    line: 5
                },
            ]
        );
        let parsed = parse_document(chunks[1].text, 1, &mut Budget::default()).unwrap();
        let b = map_value(parsed.root.as_ref().unwrap(), "b");
        assert_eq!(b.pos, Pos { line: 3, column: 4 });
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let text = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let err = parse_document(&text, 0, &mut Budget::default())
            .err()
            .expect("rejected");
        assert_eq!(err.error, SpecError::TooDeep { max: MAX_DEPTH });
    }
}
