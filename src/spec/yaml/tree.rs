//! The position-annotated tree a YAML document is built into: every node and
//! every mapping key carries its 1-based line and column, so a rule error at
//! a YAML path can be reported where it was written.

use crate::spec::error::{Path, SpecError};

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
    /// For scalars other than strings: the text as written (`0x1f`, `yes`),
    /// for messages. Empty for strings (the text is the value) and
    /// collections, so a string is held once.
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
    /// The scalar as written: the string itself, or `text` for other scalars.
    pub fn scalar_text(&self) -> &str {
        match &self.value {
            Value::Str(s) => s,
            _ => &self.text,
        }
    }

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

    /// The child at one path segment, if there is one.
    fn child(&self, seg: &crate::spec::error::Seg) -> Option<&Node> {
        use crate::spec::error::Seg;
        match (seg, &self.value) {
            (Seg::Key(k), Value::Map(entries)) => {
                entries.iter().find(|e| &e.key == k).map(|e| &e.value)
            }
            (Seg::Index(i), Value::Seq(items)) => items.get(*i),
            _ => None,
        }
    }

    /// The node at `segs`, or `Err` with the deepest existing ancestor.
    fn walk(&self, segs: &[crate::spec::error::Seg]) -> Result<&Node, &Node> {
        let mut node = self;
        for seg in segs {
            node = node.child(seg).ok_or(node)?;
        }
        Ok(node)
    }

    /// The position of the node at `path`, or of its deepest existing
    /// ancestor when the path leads to something that is not there (a missing
    /// field is reported where its parent is).
    pub fn position_of(&self, path: &Path) -> Pos {
        match self.walk(path.segments()) {
            Ok(n) | Err(n) => n.pos,
        }
    }

    /// The position of the *key* that `path` ends with (for errors about a
    /// key itself, such as an invalid label key), or [`Self::position_of`]
    /// when the path does not end at a mapping entry.
    pub fn key_position_of(&self, path: &Path) -> Pos {
        use crate::spec::error::Seg;
        if let Some((Seg::Key(k), parent)) = path.segments().split_last()
            && let Ok(Node {
                value: Value::Map(entries),
                ..
            }) = self.walk(parent)
            && let Some(e) = entries.iter().find(|e| &e.key == k)
        {
            return e.key_pos;
        }
        self.position_of(path)
    }
}
