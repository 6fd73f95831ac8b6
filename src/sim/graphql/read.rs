//! The GraphQL reader: query text → operations, within bounds.
//!
//! A small lexer and recursive-descent parser for operations, aliases,
//! arguments (variables, literals, lists, input objects) and selection sets.
//! Bounds: at most [`MAX_QUERY_BYTES`] bytes and [`MAX_TOKENS`] tokens,
//! nested at most [`MAX_DEPTH`] levels (selection sets and argument
//! lists/objects alike). The parser and everything after it recurse along
//! that nesting, so no document can overflow the stack or make it spin; a
//! document over a bound is a [`ReadError::TooBig`].

use serde_json::Value;

/// Longest query text read, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Most tokens in one query.
pub const MAX_TOKENS: usize = 10_000;
/// Deepest nesting of selection sets and argument values (flotilla's own
/// queries nest 4 levels).
pub const MAX_DEPTH: usize = 32;

/// Why a document could not be read: a syntax error (answered with HTTP 200
/// and a GraphQL error, like a real server) or a bound crossed (HTTP 400).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ReadError {
    Syntax(String),
    TooBig(String),
}

impl From<String> for ReadError {
    fn from(s: String) -> Self {
        ReadError::Syntax(s)
    }
}

impl From<&str> for ReadError {
    fn from(s: &str) -> Self {
        ReadError::Syntax(s.to_string())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Punct(char),
    Spread,
    Name(String),
    Int(String),
    Float(String),
    Str(String),
}

fn lex(src: &str) -> Result<Vec<Tok>, ReadError> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(ReadError::TooBig(format!(
            "query is {} bytes; the limit is {MAX_QUERY_BYTES}",
            src.len()
        )));
    }
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if out.len() > MAX_TOKENS {
            return Err(ReadError::TooBig(format!(
                "query has more than {MAX_TOKENS} tokens"
            )));
        }
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '!' | '$' | '(' | ')' | ':' | '=' | '@' | '[' | ']' | '{' | '}' | '|' | '&' => {
                out.push(Tok::Punct(c));
                i += 1;
            }
            '.' => {
                if chars.get(i + 1) == Some(&'.') && chars.get(i + 2) == Some(&'.') {
                    out.push(Tok::Spread);
                    i += 3;
                } else {
                    return Err(format!("Parse error on \".\" at offset {i}").into());
                }
            }
            '"' => {
                if chars.get(i + 1) == Some(&'"') && chars.get(i + 2) == Some(&'"') {
                    let start = i + 3;
                    let mut j = start;
                    while j + 2 < chars.len()
                        && !(chars[j] == '"' && chars[j + 1] == '"' && chars[j + 2] == '"')
                    {
                        j += 1;
                    }
                    if j + 2 >= chars.len() {
                        return Err("Parse error: unterminated block string".into());
                    }
                    out.push(Tok::Str(chars[start..j].iter().collect()));
                    i = j + 3;
                } else {
                    let mut s = String::new();
                    i += 1;
                    loop {
                        let Some(&ch) = chars.get(i) else {
                            return Err("Parse error: unterminated string".into());
                        };
                        i += 1;
                        match ch {
                            '"' => break,
                            '\\' => {
                                let Some(&esc) = chars.get(i) else {
                                    return Err("Parse error: unterminated string".into());
                                };
                                i += 1;
                                match esc {
                                    'n' => s.push('\n'),
                                    't' => s.push('\t'),
                                    'r' => s.push('\r'),
                                    'b' => s.push('\u{8}'),
                                    'f' => s.push('\u{c}'),
                                    'u' => {
                                        let hex: String = chars
                                            .get(i..i + 4)
                                            .unwrap_or_default()
                                            .iter()
                                            .collect();
                                        let code = u32::from_str_radix(&hex, 16)
                                            .ok()
                                            .and_then(char::from_u32)
                                            .ok_or_else(|| {
                                                format!("Parse error: bad unicode escape \\u{hex}")
                                            })?;
                                        s.push(code);
                                        i += 4;
                                    }
                                    other => s.push(other),
                                }
                            }
                            other => s.push(other),
                        }
                    }
                    out.push(Tok::Str(s));
                }
            }
            c if c == '-' || c.is_ascii_digit() => {
                let start = i;
                i += 1;
                let mut float = false;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || matches!(chars[i], '.' | 'e' | 'E' | '+' | '-'))
                {
                    float |= matches!(chars[i], '.' | 'e' | 'E');
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(if float {
                    Tok::Float(text)
                } else {
                    Tok::Int(text)
                });
            }
            c if c == '_' || c.is_ascii_alphabetic() => {
                let start = i;
                while i < chars.len() && (chars[i] == '_' || chars[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                out.push(Tok::Name(chars[start..i].iter().collect()));
            }
            other => return Err(format!("Parse error on {other:?} at offset {i}").into()),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub(super) enum GValue {
    Var(String),
    Lit(Value),
    List(Vec<GValue>),
    Obj(Vec<(String, GValue)>),
}

#[derive(Debug, Clone)]
pub(super) struct Field {
    pub alias: Option<String>,
    pub name: String,
    pub args: Vec<(String, GValue)>,
    pub selection: Vec<Field>,
}

impl Field {
    pub fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    pub fn arg(&self, name: &str) -> Option<&GValue> {
        self.args.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum OpKind {
    Query,
    Mutation,
}

#[derive(Debug)]
pub(super) struct Operation {
    pub kind: OpKind,
    pub name: Option<String>,
    pub selection: Vec<Field>,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// Open selection sets and argument lists/objects.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, c: char) -> Result<(), ReadError> {
        match self.next() {
            Some(Tok::Punct(p)) if p == c => Ok(()),
            other => Err(format!(
                "Parse error: expected {c:?}, found {}",
                describe(other.as_ref())
            )
            .into()),
        }
    }

    fn name(&mut self) -> Result<String, ReadError> {
        match self.next() {
            Some(Tok::Name(n)) => Ok(n),
            other => Err(format!(
                "Parse error: expected a name, found {}",
                describe(other.as_ref())
            )
            .into()),
        }
    }

    fn is(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    /// Enters one level of nesting, or refuses past [`MAX_DEPTH`].
    fn descend(&mut self) -> Result<(), ReadError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ReadError::TooBig(format!(
                "query is nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    fn document(&mut self) -> Result<Vec<Operation>, ReadError> {
        let mut ops = Vec::new();
        while self.peek().is_some() {
            ops.push(self.operation()?);
        }
        if ops.is_empty() {
            return Err("No query string was present".into());
        }
        Ok(ops)
    }

    fn operation(&mut self) -> Result<Operation, ReadError> {
        if self.is('{') {
            return Ok(Operation {
                kind: OpKind::Query,
                name: None,
                selection: self.selection_set()?,
            });
        }
        let kind = match self.next() {
            Some(Tok::Name(n)) if n == "query" => OpKind::Query,
            Some(Tok::Name(n)) if n == "mutation" => OpKind::Mutation,
            Some(Tok::Name(n)) if n == "fragment" => {
                return Err("fragments are not supported by the simulator".into());
            }
            Some(Tok::Name(n)) if n == "subscription" => {
                return Err("subscriptions are not supported".into());
            }
            other => return Err(format!("Parse error on {}", describe(other.as_ref())).into()),
        };
        let name = match self.peek() {
            Some(Tok::Name(_)) => Some(self.name()?),
            _ => None,
        };
        if self.is('(') {
            self.skip_balanced('(', ')')?;
        }
        if self.is('@') {
            return Err("directives are not supported by the simulator".into());
        }
        Ok(Operation {
            kind,
            name,
            selection: self.selection_set()?,
        })
    }

    fn skip_balanced(&mut self, open: char, close: char) -> Result<(), ReadError> {
        let mut depth = 0usize;
        loop {
            match self.next() {
                Some(Tok::Punct(c)) if c == open => depth += 1,
                Some(Tok::Punct(c)) if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => return Err(format!("Parse error: unbalanced {open:?}").into()),
            }
        }
    }

    fn selection_set(&mut self) -> Result<Vec<Field>, ReadError> {
        self.descend()?;
        self.expect('{')?;
        let mut fields = Vec::new();
        while !self.is('}') {
            if self.peek() == Some(&Tok::Spread) {
                return Err("fragments are not supported by the simulator".into());
            }
            fields.push(self.field()?);
        }
        self.expect('}')?;
        self.depth -= 1;
        if fields.is_empty() {
            return Err("Parse error: empty selection set".into());
        }
        Ok(fields)
    }

    fn field(&mut self) -> Result<Field, ReadError> {
        let first = self.name()?;
        let (alias, name) = if self.is(':') {
            self.next();
            (Some(first), self.name()?)
        } else {
            (None, first)
        };
        let mut args = Vec::new();
        if self.is('(') {
            self.next();
            while !self.is(')') {
                let k = self.name()?;
                self.expect(':')?;
                args.push((k, self.value()?));
            }
            self.expect(')')?;
        }
        if self.is('@') {
            return Err("directives are not supported by the simulator".into());
        }
        let selection = if self.is('{') {
            self.selection_set()?
        } else {
            Vec::new()
        };
        Ok(Field {
            alias,
            name,
            args,
            selection,
        })
    }

    fn value(&mut self) -> Result<GValue, ReadError> {
        match self.next() {
            Some(Tok::Punct('$')) => Ok(GValue::Var(self.name()?)),
            Some(Tok::Int(s)) => s
                .parse::<i64>()
                .map(|n| GValue::Lit(Value::from(n)))
                .map_err(|_| format!("Parse error: bad integer {s}").into()),
            Some(Tok::Float(s)) => s
                .parse::<f64>()
                .map(|n| GValue::Lit(Value::from(n)))
                .map_err(|_| format!("Parse error: bad number {s}").into()),
            Some(Tok::Str(s)) => Ok(GValue::Lit(Value::from(s))),
            Some(Tok::Name(n)) => Ok(GValue::Lit(match n.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => Value::from(n),
            })),
            Some(Tok::Punct('[')) => {
                self.descend()?;
                let mut items = Vec::new();
                while !self.is(']') {
                    items.push(self.value()?);
                }
                self.expect(']')?;
                self.depth -= 1;
                Ok(GValue::List(items))
            }
            Some(Tok::Punct('{')) => {
                self.descend()?;
                let mut fields = Vec::new();
                while !self.is('}') {
                    let k = self.name()?;
                    self.expect(':')?;
                    fields.push((k, self.value()?));
                }
                self.expect('}')?;
                self.depth -= 1;
                Ok(GValue::Obj(fields))
            }
            other => Err(format!(
                "Parse error: expected a value, found {}",
                describe(other.as_ref())
            )
            .into()),
        }
    }
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "end of document".into(),
        Some(Tok::Punct(c)) => format!("{c:?}"),
        Some(Tok::Spread) => "\"...\"".into(),
        Some(Tok::Name(n) | Tok::Int(n) | Tok::Float(n)) => format!("{n:?}"),
        Some(Tok::Str(s)) => format!("string {s:?}"),
    }
}

/// Reads a GraphQL document within the bounds.
pub(super) fn read(query: &str) -> Result<Vec<Operation>, ReadError> {
    lex(query).and_then(|toks| {
        Parser {
            toks,
            pos: 0,
            depth: 0,
        }
        .document()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Vec<Operation>, ReadError> {
        read(q)
    }

    #[test]
    fn rejects_fragments_and_garbage() {
        assert!(parse("query { ...F } fragment F on Query { app { id } }").is_err());
        assert!(parse("query {").is_err());
        assert!(parse("").is_err());
        assert!(parse("query { app(name: \"unterminated) { id } }").is_err());
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let deep = |n: usize| format!("{}{}", "{ app ".repeat(n), "}".repeat(n));
        assert!(parse(&deep(MAX_DEPTH)).is_ok());
        assert!(matches!(
            parse(&deep(MAX_DEPTH + 1)),
            Err(ReadError::TooBig(_))
        ));
        assert!(matches!(parse(&deep(100_000)), Err(ReadError::TooBig(_))));
        let literal = |n: usize| {
            format!(
                "{{ app(name: {}1{}) {{ id }} }}",
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert!(parse(&literal(MAX_DEPTH - 2)).is_ok());
        assert!(matches!(parse(&literal(20_000)), Err(ReadError::TooBig(_))));
        let objects = format!("{{ app(name: {}) {{ id }} }}", "{a: ".repeat(20_000));
        assert!(matches!(parse(&objects), Err(ReadError::TooBig(_))));
        let wide = format!("{{ {} }}", "a ".repeat(MAX_TOKENS + 5));
        assert!(matches!(parse(&wide), Err(ReadError::TooBig(_))));
        let huge = format!(
            "{{ app(name: \"{}\") {{ id }} }}",
            "x".repeat(MAX_QUERY_BYTES)
        );
        assert!(matches!(parse(&huge), Err(ReadError::TooBig(_))));
    }
}
