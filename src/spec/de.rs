//! Node tree → raw serde types, reporting every shape error in one pass.
//!
//! A plain serde deserializer stops at the first error. This one checks each
//! value against what the target type asks for (`deserialize_u16`,
//! `deserialize_struct` with its field list, `deserialize_enum` with its
//! variants) *before* handing it to the visitor. On a mismatch it records an
//! [`Issue`] with the node's path and position and feeds the visitor a
//! placeholder (zero, empty string, empty collection, first variant), so
//! deserialization carries on and finds the next problem. Unknown fields are
//! reported and skipped the same way.
//!
//! This works because every field of every raw type is optional (`Option` or
//! `#[serde(default)]`): the derived visitors never fail on their own. Later
//! rules must ignore placeholder values; `load` does that by dropping semantic
//! errors at or under a path that already has a shape error.

use std::cell::RefCell;
use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

use super::error::{Path, SpecError};
use super::yaml::{Entry, Issue, Node, Value};

/// Deserializes `T` from `node`, appending every problem to `issues`. Returns
/// `None` only when a type's own `Deserialize` impl failed (which raw types
/// avoid); the failure is then among the issues.
pub(crate) fn from_node<T: DeserializeOwned>(node: &Node, issues: &mut Vec<Issue>) -> Option<T> {
    let sink = RefCell::new(Vec::new());
    let de = De {
        node,
        path: Path::root(),
        sink: &sink,
    };
    let result = T::deserialize(de);
    let mut found = sink.into_inner();
    let value = match result {
        Ok(v) => Some(v),
        Err(e) => {
            if !e.reported {
                found.push(Issue {
                    path: Path::root(),
                    pos: node.pos,
                    error: SpecError::Custom(e.message),
                });
            }
            None
        }
    };
    issues.extend(found);
    value
}

/// Error type for the serde plumbing. `reported` is set once the error has
/// been turned into an [`Issue`], so it is recorded only at the innermost
/// value it came from.
#[derive(Debug)]
pub(crate) struct DeError {
    message: String,
    reported: bool,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            reported: false,
        }
    }
}

struct De<'a> {
    node: &'a Node,
    path: Path,
    sink: &'a RefCell<Vec<Issue>>,
}

impl<'a> De<'a> {
    fn report(&self, error: SpecError) {
        self.sink.borrow_mut().push(Issue {
            path: self.path.clone(),
            pos: self.node.pos,
            error,
        });
    }

    fn wrong_type(&self, expected: &str) {
        let hint = match (&self.node.value, expected) {
            (Value::Bool(_) | Value::Int(_) | Value::Float(_), "a string") => Some(format!(
                "quote it to make it a string: \"{}\"",
                self.node.text
            )),
            _ => None,
        };
        self.report(SpecError::WrongType {
            expected: expected.to_string(),
            found: self.node.describe(),
            hint,
        });
    }

    /// The node as an integer within `min..=max`, or `None` after reporting.
    fn int(&self, min: i128, max: i128) -> Option<i128> {
        match self.node.value {
            Value::Int(i) if (min..=max).contains(&i) => Some(i),
            Value::Int(i) => {
                self.report(SpecError::OutOfRange { value: i, min, max });
                None
            }
            Value::Float(f) if f.is_infinite() && !self.node.text.contains('.') => {
                self.report(SpecError::Custom(format!(
                    "integer {} is too large; allowed {min}..={max}",
                    self.node.text
                )));
                None
            }
            _ => {
                self.wrong_type("an integer");
                None
            }
        }
    }

    fn str_value(&self) -> &'a str {
        match &self.node.value {
            Value::Str(s) => s,
            _ => {
                self.wrong_type("a string");
                ""
            }
        }
    }

    fn child(&self, node: &'a Node, path: Path) -> De<'a> {
        De {
            node,
            path,
            sink: self.sink,
        }
    }
}

macro_rules! int_method {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let v = self
                .int(i128::from(<$ty>::MIN), i128::from(<$ty>::MAX))
                .unwrap_or(0);
            // In range by the check above; 0 is the placeholder.
            visitor.$visit(<$ty>::try_from(v).unwrap_or_default())
        }
    };
}

impl<'de, 'a> de::Deserializer<'de> for De<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    visitor.visit_i64(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    visitor.visit_u64(v)
                } else {
                    visitor.visit_i128(*i)
                }
            }
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(_) => self.deserialize_seq(visitor),
            Value::Map(_) => self.deserialize_map(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Bool(b) => visitor.visit_bool(b),
            _ => {
                self.wrong_type("a boolean (true or false)");
                visitor.visit_bool(false)
            }
        }
    }

    int_method!(deserialize_i8, visit_i8, i8);
    int_method!(deserialize_i16, visit_i16, i16);
    int_method!(deserialize_i32, visit_i32, i32);
    int_method!(deserialize_i64, visit_i64, i64);
    int_method!(deserialize_u8, visit_u8, u8);
    int_method!(deserialize_u16, visit_u16, u16);
    int_method!(deserialize_u32, visit_u32, u32);
    int_method!(deserialize_u64, visit_u64, u64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Float(f) => visitor.visit_f64(f),
            Value::Int(i) => visitor.visit_f64(i as f64),
            _ => {
                self.wrong_type("a number");
                visitor.visit_f64(0.0)
            }
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let s = self.str_value();
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => {
                if !s.is_empty() {
                    self.wrong_type("a single character");
                }
                visitor.visit_char(' ')
            }
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.str_value())
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_bytes(self.str_value().as_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.value != Value::Null {
            self.wrong_type("null");
        }
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let items: &'a [Node] = match &self.node.value {
            Value::Seq(items) => items,
            _ => {
                self.wrong_type("a list");
                &[]
            }
        };
        visitor.visit_seq(SeqAcc {
            items: items.iter().enumerate(),
            parent: &self,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let entries: Vec<&'a Entry> = match &self.node.value {
            Value::Map(entries) => entries.iter().collect(),
            _ => {
                self.wrong_type("a mapping");
                Vec::new()
            }
        };
        visitor.visit_map(MapAcc {
            entries: entries.into_iter(),
            value: None,
            parent: &self,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let mut kept = Vec::new();
        match &self.node.value {
            Value::Map(entries) => {
                for e in entries {
                    if fields.contains(&e.key.as_str()) {
                        kept.push(e);
                        continue;
                    }
                    let error = super::raw::forbidden_field(name, &e.key).unwrap_or_else(|| {
                        SpecError::UnknownField {
                            field: e.key.clone(),
                            allowed: fields.iter().map(|f| f.to_string()).collect(),
                            suggestion: suggest(&e.key, fields),
                        }
                    });
                    self.sink.borrow_mut().push(Issue {
                        path: self.path.key(e.key.clone()),
                        pos: e.key_pos,
                        error,
                    });
                }
            }
            _ => self.wrong_type("a mapping"),
        }
        visitor.visit_map(MapAcc {
            entries: kept.into_iter(),
            value: None,
            parent: &self,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let allowed = || variants.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        let chosen: &str = match &self.node.value {
            Value::Str(s) if variants.contains(&s.as_str()) => s,
            // `autostop: false`: a YAML boolean selects a variant named after it.
            Value::Bool(b) if variants.contains(&if *b { "true" } else { "false" }) => {
                if *b {
                    "true"
                } else {
                    "false"
                }
            }
            Value::Str(s) => {
                self.report(SpecError::UnknownVariant {
                    value: s.clone(),
                    allowed: allowed(),
                });
                variants.first().copied().unwrap_or_default()
            }
            _ => {
                self.wrong_type(&format!("one of {}", allowed().join(", ")));
                variants.first().copied().unwrap_or_default()
            }
        };
        visitor.visit_enum(IntoDeserializer::<DeError>::into_deserializer(chosen))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// Records an error raised by a value's own `Deserialize` impl at that value,
/// once.
fn localize(mut err: DeError, de: &De<'_>) -> DeError {
    if !err.reported {
        de.report(SpecError::Custom(err.message.clone()));
        err.reported = true;
    }
    err
}

struct SeqAcc<'p, 'a, I> {
    items: I,
    parent: &'p De<'a>,
}

impl<'de, 'p, 'a, I> SeqAccess<'de> for SeqAcc<'p, 'a, I>
where
    I: Iterator<Item = (usize, &'a Node)>,
{
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let de = self.parent.child(node, self.parent.path.index(i));
                let at = self.parent.child(node, self.parent.path.index(i));
                seed.deserialize(de).map(Some).map_err(|e| localize(e, &at))
            }
        }
    }
}

struct MapAcc<'p, 'a, I> {
    entries: I,
    value: Option<&'a Entry>,
    parent: &'p De<'a>,
}

impl<'de, 'p, 'a, I> MapAccess<'de> for MapAcc<'p, 'a, I>
where
    I: Iterator<Item = &'a Entry>,
{
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            None => Ok(None),
            Some(e) => {
                self.value = Some(e);
                let key: StrDeserializer<'a, DeError> = e.key.as_str().into_deserializer();
                seed.deserialize(key).map(Some)
            }
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        let Some(e) = self.value.take() else {
            return Err(de::Error::custom("value requested before its key"));
        };
        let path = self.parent.path.key(e.key.clone());
        let de = self.parent.child(&e.value, path.clone());
        let at = self.parent.child(&e.value, path);
        seed.deserialize(de).map_err(|err| localize(err, &at))
    }
}

/// A close allowed field name for a mistyped one: same letters ignoring case
/// and `_`/`-` (`memoryMb` → `memory_mb`), or within two edits.
pub(crate) fn suggest(field: &str, allowed: &[&str]) -> Option<String> {
    // No field name is this long; comparing would only cost time (the edit
    // distance is quadratic in the lengths).
    if field.len() > 64 {
        return None;
    }
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let nf = norm(field);
    if let Some(a) = allowed.iter().find(|a| norm(a) == nf) {
        return Some(a.to_string());
    }
    allowed
        .iter()
        .map(|a| (edit_distance(&nf, &norm(a)), a))
        .filter(|(d, a)| *d <= 2 && *d < a.len().max(2) / 2 + 1)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::spec::yaml::{Budget, parse_document};

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        port: Option<u16>,
        name: Option<String>,
        on: Option<bool>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        items: Option<Vec<Inner>>,
        env: Option<BTreeMap<String, String>>,
        kind: Option<crate::spec::Protocol>,
    }

    fn run(text: &str) -> (Option<Outer>, Vec<String>) {
        let root = parse_document(text, 0, &mut Budget::default())
            .unwrap()
            .root
            .unwrap();
        let mut issues = Vec::new();
        let v = from_node::<Outer>(&root, &mut issues);
        issues.sort_by_key(|i| i.pos);
        let msgs = issues
            .iter()
            .map(|i| format!("{}:{}: {}: {}", i.pos.line, i.pos.column, i.path, i.error))
            .collect();
        (v, msgs)
    }

    #[test]
    fn valid_input_deserializes_without_issues() {
        let (v, msgs) = run("items:\n  - port: 80\n    name: web\nenv: {A: b}\nkind: udp\n");
        assert!(msgs.is_empty(), "{msgs:?}");
        let v = v.unwrap();
        assert_eq!(v.items.unwrap()[0].port, Some(80));
        assert_eq!(v.kind, Some(crate::spec::Protocol::Udp));
    }

    #[test]
    fn every_shape_error_is_reported_in_one_pass() {
        let (v, msgs) = run(
            "items:\n  - port: 70000\n    name: 12\n    on: yes\n    nmae: x\n  - port: http\nenv: {A: 1}\nkind: sctp\nextra: 1\n",
        );
        assert!(v.is_some());
        assert_eq!(
            msgs,
            vec![
                "2:11: items[0].port: must be between 0 and 65535 (got 70000)",
                "3:11: items[0].name: expected a string, found an integer `12`; quote it to make it a string: \"12\"",
                "4:9: items[0].on: expected a boolean (true or false), found a string \"yes\"",
                "5:5: items[0].nmae: unknown field `nmae` (did you mean `name`?); allowed fields: port, name, on",
                "6:11: items[1].port: expected an integer, found a string \"http\"",
                "7:10: env.A: expected a string, found an integer `1`; quote it to make it a string: \"1\"",
                "8:7: kind: unknown value \"sctp\"; allowed values: tcp, udp",
                "9:1: extra: unknown field `extra`; allowed fields: items, env, kind",
            ]
        );
    }

    #[test]
    fn suggestions_catch_case_and_separator_slips() {
        assert_eq!(
            suggest("memoryMb", &["cpu_kind", "memory_mb"]),
            Some("memory_mb".into())
        );
        assert_eq!(suggest("imgae", &["image", "name"]), Some("image".into()));
        assert_eq!(suggest("zzz", &["image", "name"]), None);
    }
}
