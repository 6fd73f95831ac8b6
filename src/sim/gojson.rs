//! Decoding and encoding JSON the way Fly's Go server does.
//!
//! Fly decodes request bodies into Go structs and encodes responses from them,
//! which shapes what a client sees: unknown fields vanish, `null` means "unset",
//! zero values of `omitempty` fields disappear, non-`omitempty` fields appear
//! even when unset (`"init": {}`), durations are
//! re-rendered by `time.Duration.String()` and `autostop` comes back as a
//! boolean. A type mismatch fails the whole request with Go's error text, which
//! names the struct and the field path.
//!
//! A [`StructDef`] describes one Go struct (field names, kinds, pointer-ness
//! and `omitempty`, in Go declaration order). [`decode_root`] checks a request
//! body against it and yields the decoded fields; [`encode`] renders decoded
//! fields back the way `encoding/json` would.
//!
//! Bounded: both walks recurse along the static struct definitions, never
//! along the request; `Raw` values are cloned as they are, and their depth is
//! bounded by `serde_json`'s recursion limit (128) when the body is parsed.

use serde_json::{Map, Value};

use super::goduration;

/// The JSON-relevant shape of a Go type.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Str,
    /// Go `int` (64-bit).
    Int,
    /// Go `uint64`.
    Uint,
    Bool,
    Float,
    /// `fly.Duration`: a string for `time.ParseDuration` or a number of nanoseconds.
    Duration,
    /// `fly.MachineAutostop`: `true`/`false`/`"off"`/`"stop"`/`"suspend"`.
    Autostop,
    Struct(&'static StructDef),
    List(&'static Kind),
    /// `map[string]T`.
    Map(&'static Kind),
    /// A type the simulator does not model field by field; passed through as-is.
    Raw,
}

/// One field of a Go struct.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    /// A Go pointer (or interface): `null` means nil, and a present zero value
    /// survives `omitempty`.
    pub ptr: bool,
    pub omitempty: bool,
}

/// A Go struct: its (unqualified) Go type name and fields in declaration order.
#[derive(Debug)]
pub struct StructDef {
    pub go_name: &'static str,
    pub fields: &'static [Field],
}

/// Shorthand constructors for field tables.
pub const fn f(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        ptr: false,
        omitempty: true,
    }
}

/// A pointer field with `omitempty`.
pub const fn p(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        ptr: true,
        omitempty: true,
    }
}

/// A field without `omitempty`.
pub const fn always(name: &'static str, kind: Kind, ptr: bool) -> Field {
    Field {
        name,
        kind,
        ptr,
        omitempty: false,
    }
}

/// Decoded struct fields: only fields that were present and not `null`
/// (for scalars, a `null` leaves the Go zero value, which is the same as absent).
/// Durations are stored as nanoseconds, autostop as `"off"|"stop"|"suspend"`,
/// nested structs as decoded maps.
pub type Decoded = Map<String, Value>;

/// Decodes a request body into `def`, the way `json.Unmarshal` into a struct
/// value would, returning Go's error text on the first mismatch.
pub fn decode_root(def: &StructDef, v: &Value) -> Result<Decoded, String> {
    match v {
        Value::Object(obj) => decode_struct(def, obj, ""),
        Value::Null => Ok(Map::new()),
        other => Err(format!(
            "json: cannot unmarshal {} into Go value of type {}",
            json_type(other, Kind::Raw),
            def.go_name
        )),
    }
}

fn decode_struct(def: &StructDef, obj: &Map<String, Value>, path: &str) -> Result<Decoded, String> {
    let mut out = Map::new();
    for field in def.fields {
        // encoding/json matches keys case-insensitively, preferring an exact match.
        let found = obj.get(field.name).or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(field.name))
                .map(|(_, v)| v)
        });
        let Some(v) = found else { continue };
        if v.is_null() {
            continue;
        }
        let fpath = join(path, field.name);
        let decoded = decode_value(field.kind, v, def.go_name, &fpath)?;
        out.insert(field.name.to_owned(), decoded);
    }
    Ok(out)
}

fn decode_value(kind: Kind, v: &Value, owner: &str, path: &str) -> Result<Value, String> {
    let mismatch = |v: &Value| {
        format!(
            "json: cannot unmarshal {} into Go struct field {}.{} of type {}",
            json_type(v, kind),
            owner,
            path,
            go_type(kind)
        )
    };
    match kind {
        Kind::Str => match v {
            Value::String(_) => Ok(v.clone()),
            _ => Err(mismatch(v)),
        },
        Kind::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            _ => Err(mismatch(v)),
        },
        Kind::Int => match v {
            Value::Number(n) if n.is_i64() => Ok(v.clone()),
            _ => Err(mismatch(v)),
        },
        Kind::Uint => match v {
            Value::Number(n) if n.is_u64() => Ok(v.clone()),
            _ => Err(mismatch(v)),
        },
        Kind::Float => match v {
            Value::Number(_) => Ok(v.clone()),
            _ => Err(mismatch(v)),
        },
        Kind::Duration => match v {
            Value::String(s) => goduration::parse(s)
                .map(Value::from)
                .map_err(|e| format!("{path}: {e}")),
            Value::Number(n) => {
                // fly.Duration takes a JSON number as nanoseconds (truncating floats).
                let ns = n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .unwrap_or_default();
                Ok(Value::from(ns))
            }
            other => Err(format!(
                "{path}: unknown duration type: {}",
                go_dynamic_type(other)
            )),
        },
        Kind::Autostop => match v {
            Value::Bool(true) => Ok(Value::from("stop")),
            Value::Bool(false) => Ok(Value::from("off")),
            Value::String(s) if matches!(s.as_str(), "off" | "stop" | "suspend") => Ok(v.clone()),
            _ => Err(format!(
                "{path}: autostop value is not a valid bool or string"
            )),
        },
        Kind::Struct(def) => match v {
            Value::Object(obj) => Ok(Value::Object(decode_struct(def, obj, path)?)),
            _ => Err(mismatch(v)),
        },
        Kind::List(elem) => match v {
            Value::Array(items) => items
                .iter()
                .map(|item| decode_elem(*elem, item, owner, path))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            _ => Err(mismatch(v)),
        },
        Kind::Map(elem) => match v {
            Value::Object(obj) => {
                let mut out = Map::new();
                for (k, item) in obj {
                    out.insert(k.clone(), decode_elem(*elem, item, owner, path)?);
                }
                Ok(Value::Object(out))
            }
            _ => Err(mismatch(v)),
        },
        Kind::Raw => Ok(v.clone()),
    }
}

/// A list or map element: `null` decodes to the element type's zero value.
fn decode_elem(kind: Kind, v: &Value, owner: &str, path: &str) -> Result<Value, String> {
    if v.is_null() {
        return Ok(zero_internal(kind));
    }
    decode_value(kind, v, owner, path)
}

/// The decoded (internal) zero value of a kind.
fn zero_internal(kind: Kind) -> Value {
    match kind {
        Kind::Str => Value::from(""),
        Kind::Int | Kind::Uint | Kind::Duration => Value::from(0),
        Kind::Float => Value::from(0.0),
        Kind::Bool => Value::Bool(false),
        Kind::Autostop => Value::from("off"),
        Kind::Struct(_) => Value::Object(Map::new()),
        Kind::List(_) | Kind::Map(_) | Kind::Raw => Value::Null,
    }
}

/// Renders decoded fields as `encoding/json` would render the struct.
pub fn encode(def: &StructDef, decoded: &Decoded) -> Value {
    let mut out = Map::new();
    for field in def.fields {
        match decoded.get(field.name) {
            Some(v) => {
                if field.omitempty && omitted(field, v) {
                    continue;
                }
                out.insert(field.name.to_owned(), encode_value(field.kind, v));
            }
            None => {
                // Nil pointers, slices and maps are omitted under omitempty; Go
                // never omits a struct value, and without omitempty the zero
                // value is written out.
                let struct_value = matches!(field.kind, Kind::Struct(_)) && !field.ptr;
                if field.omitempty && !struct_value {
                    continue;
                }
                out.insert(field.name.to_owned(), encode_zero(field));
            }
        }
    }
    Value::Object(out)
}

fn omitted(field: &Field, v: &Value) -> bool {
    if field.ptr {
        return false;
    }
    match field.kind {
        Kind::Str => v.as_str().is_some_and(str::is_empty),
        Kind::Int | Kind::Uint | Kind::Duration => v.as_i64() == Some(0) || v.as_u64() == Some(0),
        Kind::Float => v.as_f64() == Some(0.0),
        Kind::Bool => v == &Value::Bool(false),
        Kind::Autostop => v.as_str() == Some("off"),
        Kind::List(_) => v.as_array().is_none_or(Vec::is_empty),
        Kind::Map(_) => v.as_object().is_none_or(Map::is_empty),
        Kind::Struct(_) => false,
        Kind::Raw => v.is_null(),
    }
}

fn encode_zero(field: &Field) -> Value {
    if field.ptr {
        return Value::Null;
    }
    match field.kind {
        Kind::Struct(def) => encode(def, &Map::new()),
        Kind::List(_) | Kind::Map(_) | Kind::Raw => Value::Null,
        kind => encode_value(kind, &zero_internal(kind)),
    }
}

fn encode_value(kind: Kind, v: &Value) -> Value {
    match kind {
        Kind::Duration => Value::from(goduration::format(v.as_i64().unwrap_or_default())),
        Kind::Autostop => match v.as_str() {
            Some("suspend") => Value::from("suspend"),
            Some("stop") => Value::Bool(true),
            _ => Value::Bool(false),
        },
        Kind::Struct(def) => match v {
            Value::Object(m) => encode(def, m),
            _ => encode(def, &Map::new()),
        },
        Kind::List(elem) => match v {
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| encode_value(*elem, i)).collect())
            }
            _ => Value::Null,
        },
        Kind::Map(elem) => match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, i)| (k.clone(), encode_value(*elem, i)))
                    .collect(),
            ),
            _ => Value::Null,
        },
        _ => v.clone(),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// How `encoding/json` names a JSON value in its errors: a number carries its
/// literal only when it was a number that did not fit a numeric Go type.
fn json_type(v: &Value, target: Kind) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) if matches!(target, Kind::Int | Kind::Uint) => format!("number {n}"),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

/// How Go's `%T` names a JSON value decoded into `any`.
fn go_dynamic_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn go_type(kind: Kind) -> String {
    match kind {
        Kind::Str => "string".into(),
        Kind::Int => "int".into(),
        Kind::Uint => "uint64".into(),
        Kind::Bool => "bool".into(),
        Kind::Float => "float64".into(),
        Kind::Duration => "fly.Duration".into(),
        Kind::Autostop => "fly.MachineAutostop".into(),
        Kind::Struct(def) => format!("fly.{}", def.go_name),
        Kind::List(elem) => format!("[]{}", go_type(*elem)),
        Kind::Map(elem) => format!("map[string]{}", go_type(*elem)),
        Kind::Raw => "interface {}".into(),
    }
}

/// Reads a decoded string field (absent → `""`, Go's zero value).
pub fn get_str<'a>(d: &'a Decoded, name: &str) -> &'a str {
    d.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Reads a decoded integer field (absent → `None`).
pub fn get_i64(d: &Decoded, name: &str) -> Option<i64> {
    d.get(name).and_then(Value::as_i64)
}

/// Reads a decoded unsigned field (absent → `None`).
pub fn get_u64(d: &Decoded, name: &str) -> Option<u64> {
    d.get(name).and_then(Value::as_u64)
}

/// Reads a decoded bool field (absent → `false`).
pub fn get_bool(d: &Decoded, name: &str) -> bool {
    d.get(name).and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    static INNER: StructDef = StructDef {
        go_name: "Inner",
        fields: &[
            f("n", Kind::Int),
            p("d", Kind::Duration),
            f("flag", Kind::Bool),
        ],
    };
    static OUTER: StructDef = StructDef {
        go_name: "Outer",
        fields: &[
            f("name", Kind::Str),
            always("inner", Kind::Struct(&INNER), false),
            always("key", Kind::Str, true),
            f("tags", Kind::List(&Kind::Str)),
            p("stop", Kind::Autostop),
            f("env", Kind::Map(&Kind::Str)),
        ],
    };

    #[test]
    fn drops_unknown_fields_and_applies_omitempty() {
        let d = decode_root(
            &OUTER,
            &json!({"name": "", "unknown": 1, "tags": [], "env": {}, "inner": {"n": 0, "d": "60s", "flag": false}}),
        )
        .expect("decodes");
        assert_eq!(
            encode(&OUTER, &d),
            json!({"inner": {"d": "1m0s"}, "key": null})
        );
    }

    #[test]
    fn autostop_comes_back_as_bool_except_suspend() {
        for (sent, back) in [
            (json!("off"), json!(false)),
            (json!("stop"), json!(true)),
            (json!(true), json!(true)),
            (json!("suspend"), json!("suspend")),
        ] {
            let d = decode_root(&OUTER, &json!({ "stop": sent })).expect("decodes");
            assert_eq!(encode(&OUTER, &d)["stop"], back);
        }
        let err = decode_root(&OUTER, &json!({"stop": "sometimes"})).unwrap_err();
        assert!(
            err.contains("stop: autostop value is not a valid bool or string"),
            "{err}"
        );
    }

    #[test]
    fn type_errors_name_struct_and_path() {
        let err = decode_root(&OUTER, &json!({"inner": {"n": "three"}})).unwrap_err();
        assert_eq!(
            err,
            "json: cannot unmarshal string into Go struct field Inner.inner.n of type int"
        );
        let err = decode_root(&OUTER, &json!({"inner": {"n": 1.5}})).unwrap_err();
        assert_eq!(
            err,
            "json: cannot unmarshal number 1.5 into Go struct field Inner.inner.n of type int"
        );
        let err = decode_root(&OUTER, &json!([1])).unwrap_err();
        assert_eq!(
            err,
            "json: cannot unmarshal array into Go value of type Outer"
        );
        let err = decode_root(&OUTER, &json!({"inner": {"d": "soon"}})).unwrap_err();
        assert_eq!(err, "inner.d: time: invalid duration \"soon\"");
    }
}
