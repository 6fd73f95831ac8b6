//! YAML text → documents → position-annotated node trees.
//!
//! Owns two things: splitting a file into per-document text at its `---` lines
//! (so each document's exact text can be stored and exported byte-identical),
//! and building a tree of [`Node`]s from `saphyr-parser` events in which every
//! node and every mapping key carries its 1-based line and column. Scalars are
//! resolved with the YAML 1.2 core schema: `yes`/`no`/`on`/`off` are strings,
//! only `true`/`false` (and their capitalised forms) are booleans.
//!
//! Problems that do not stop parsing (duplicate keys, unsupported tags,
//! non-string keys) are collected as issues; a syntax error stops the document.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use super::error::{Path, SpecError};

/// Deepest nesting we build; deeper documents are rejected rather than risk
/// exhausting the stack in the recursive passes that follow.
pub(crate) const MAX_DEPTH: usize = 64;
/// Upper bound on nodes per document, counting alias expansions, so a
/// "billion laughs" document cannot blow up memory.
pub(crate) const MAX_NODES: usize = 100_000;

/// 1-based line and column (column in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
    /// For scalars: the text as written (after unquoting); empty otherwise.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// A problem tied to a path and a position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issue {
    pub path: Path,
    pub pos: Pos,
    pub error: SpecError,
}

impl Node {
    /// A short description for "found ..." messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".to_string(),
            Value::Bool(_) => format!("a boolean `{}`", self.text),
            Value::Int(_) => format!("an integer `{}`", self.text),
            Value::Float(_) => format!("a number `{}`", self.text),
            Value::Str(s) => format!("a string {s:?}"),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }

    /// The position of the node at `path`, or of its deepest existing
    /// ancestor when the path leads to something that is not there (a missing
    /// field is reported where its parent is).
    pub fn position_of(&self, path: &Path) -> Pos {
        use super::error::Seg;
        let mut node = self;
        for seg in path.segments() {
            let next = match (seg, &node.value) {
                (Seg::Key(k), Value::Map(entries)) => {
                    entries.iter().find(|e| &e.key == k).map(|e| &e.value)
                }
                (Seg::Index(i), Value::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }
}

/// One document's slice of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk<'a> {
    pub text: &'a str,
    /// 1-based line of the chunk's first line in the file.
    pub line: usize,
}

/// True for a line that starts a YAML document: `---` at column 0 followed by
/// a space, a tab or the end of the line. YAML forbids such a line inside any
/// scalar, so a textual split here agrees with the parser.
fn is_document_marker(line: &str) -> bool {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    let line = line.trim_end_matches(['\n', '\r']);
    match line.strip_prefix("---") {
        Some(rest) => rest.is_empty() || rest.starts_with([' ', '\t']),
        None => false,
    }
}

/// Lines that cannot start a document's content: blanks, comments, directives.
fn is_preamble_line(line: &str) -> bool {
    let t = line.strip_prefix('\u{feff}').unwrap_or(line).trim();
    t.is_empty() || t.starts_with('#') || line.starts_with('%')
}

/// Splits `text` at its `---` lines. Concatenating the chunks gives back
/// `text` exactly. Comments and directives before the first `---` belong to
/// the first document.
pub(crate) fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut starts: Vec<(usize, usize)> = vec![(0, 1)]; // (byte offset, line)
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i > 0 && is_document_marker(line) {
            starts.push((offset, i + 1));
        }
        offset += line.len();
    }
    // A leading chunk of only comments/blank lines/directives is the preamble
    // of the first explicit document, not a document of its own.
    if starts.len() > 1 {
        let first = &text[..starts[1].0];
        if first.split_inclusive('\n').all(is_preamble_line) {
            starts.remove(1);
        }
    }
    let mut chunks = Vec::with_capacity(starts.len());
    for (k, &(start, line)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(text.len(), |s| s.0);
        chunks.push(Chunk {
            text: &text[start..end],
            line,
        });
    }
    chunks
}

/// The result of parsing one chunk.
pub(crate) struct Parsed {
    /// The document's root, `None` for an empty document.
    pub root: Option<Node>,
    pub issues: Vec<Issue>,
}

/// Parses one chunk (at most one document). `line_offset` is added to every
/// line so positions are file positions. A syntax error is returned as the
/// `Err` issue (with the path of the innermost open collection).
pub(crate) fn parse_document(text: &str, line_offset: usize) -> Result<Parsed, Box<Issue>> {
    let mut b = Builder {
        line_offset,
        stack: Vec::new(),
        anchors: HashMap::new(),
        issues: Vec::new(),
        root: None,
        nodes: 0,
        documents: 0,
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
    },
}

struct Builder {
    line_offset: usize,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    issues: Vec<Issue>,
    root: Option<Node>,
    nodes: usize,
    documents: usize,
}

impl Builder {
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

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), Box<Issue>> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(self.fatal(pos, SpecError::TooLarge { max: MAX_NODES }));
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
                self.count(1, pos)?;
                let node = self.scalar(value.into_owned(), style, tag.as_deref(), pos);
                self.push_value(node, anchor, pos)?;
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id).cloned() else {
                    return Err(self.fatal(
                        pos,
                        SpecError::Syntax {
                            message: "alias refers to an unknown anchor".to_string(),
                        },
                    ));
                };
                self.count(node_size(&node), pos)?;
                // The alias is reported where it is used, not where the anchor is.
                let node = Node { pos, ..node };
                self.push_value(node, 0, pos)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.count(1, pos)?;
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
                self.count(1, pos)?;
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
            self.anchors.insert(anchor, node.clone());
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
                        *key = Some((node.text, node.pos));
                    }
                }
                Some((k, key_pos)) => {
                    if std::mem::take(skip) {
                        return Ok(());
                    }
                    if let Value::Map(entries) = &mut map.value {
                        if let Some(first) = entries.iter().find(|e| e.key == k) {
                            issue = Some(Issue {
                                path: path.key(k.clone()),
                                pos: key_pos,
                                error: SpecError::DuplicateKey {
                                    key: k,
                                    first_line: first.key_pos.line,
                                },
                            });
                        } else {
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
            None => Value::Str(text.clone()),
            Some(tag) if tag.handle.is_empty() && tag.suffix == "!" => Value::Str(text.clone()),
            Some(tag) if tag.is_yaml_core_schema() => {
                let resolved = resolve_plain(&text);
                match (tag.suffix.as_str(), resolved) {
                    ("str", _) => Value::Str(text.clone()),
                    ("null", v @ Value::Null)
                    | ("bool", v @ Value::Bool(_))
                    | ("int", v @ Value::Int(_))
                    | ("float", v @ Value::Float(_)) => v,
                    ("float", Value::Int(i)) => Value::Float(i as f64),
                    (suffix, _) => {
                        self.tag_issue(tag, pos, suffix);
                        Value::Str(text.clone())
                    }
                }
            }
            Some(tag) => {
                self.tag_issue(tag, pos, "");
                Value::Str(text.clone())
            }
        };
        Node { pos, value, text }
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

fn node_size(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(node_size).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|e| 1 + node_size(&e.value))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// YAML 1.2 core schema resolution of an untagged plain scalar.
pub(crate) fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(v) = resolve_int(s) {
        return v;
    }
    if is_core_float(s)
        && let Ok(f) = s.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(s.to_string())
}

fn resolve_int(s: &str) -> Option<Value> {
    let (radix, digits, negative) = if let Some(h) = s.strip_prefix("0x") {
        (16, h, false)
    } else if let Some(o) = s.strip_prefix("0o") {
        (8, o, false)
    } else {
        let (neg, d) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        (10, d, neg)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Integers beyond i128 are still integers in YAML; keep them as floats so
    // range checks report them as out of range rather than as strings.
    Some(match i128::from_str_radix(digits, radix) {
        Ok(v) => Value::Int(if negative { -v } else { v }),
        Err(_) => Value::Float(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
    })
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        let parsed = parse_document(text, 0).expect("parses");
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
        let parsed = parse_document("a:\n  b: [1, 22]\n", 10).unwrap();
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
        let parsed = parse_document("a: 1\nb: !foo x\na: 2\n", 0).unwrap();
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
        let err = parse_document("spec:\n  machines:\n    - name: a\n      x: [1, 2\n", 0)
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
        let err = parse_document(&bomb, 0).err().expect("rejected");
        assert_eq!(err.error, SpecError::TooLarge { max: MAX_NODES });
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let text = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let err = parse_document(&text, 0).err().expect("rejected");
        assert_eq!(err.error, SpecError::TooDeep { max: MAX_DEPTH });
    }

    #[test]
    fn split_keeps_every_byte_and_starts_at_marker_lines() {
        let text = "# yaml-language-server: $schema=x\n---\na: 1\n# tail\n--- \nb: 2\n---\n";
        let chunks = split_documents(text);
        let joined: String = chunks.iter().map(|c| c.text).collect();
        assert_eq!(joined, text);
        assert_eq!(
            chunks,
            vec![
                Chunk {
                    text: "# yaml-language-server: $schema=x\n---\na: 1\n# tail\n",
                    line: 1
                },
                Chunk {
                    text: "--- \nb: 2\n",
                    line: 5
                },
                Chunk {
                    text: "---\n",
                    line: 7
                },
            ]
        );
        // `----` and indented `---` are not markers.
        assert_eq!(split_documents("a: |\n  ---\n----: 1\n").len(), 1);
        // A document without a marker before the first `---` stays separate.
        assert_eq!(split_documents("a: 1\n---\nb: 2\n").len(), 2);
        assert_eq!(split_documents("").len(), 1);
    }
}
