//! Fly's error bodies (`{error, message, status}`, or GraphQL `errors[]`) as
//! the classifier reads them, and [`excerpt`]: the bounded, printable piece of
//! a body an error message may quote.

use super::graphql::GqlError;
use serde::Deserialize;

/// Fly's error body (`ErrorResponse`), plus the `message` field fly-go also
/// reads and GraphQL's `errors[]` for error statuses from the GraphQL endpoint.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub errors: Option<Vec<GqlError>>,
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<ErrorBody>(body).ok()
    }

    /// The most specific human text in the body.
    pub fn text(&self) -> Option<String> {
        let error = self.error.as_deref().filter(|s| !s.is_empty());
        let message = self.message.as_deref().filter(|s| !s.is_empty());
        match (error, message) {
            (Some(e), Some(m)) if e != m => Some(format!("{e}: {m}")),
            (Some(e), _) => Some(e.to_owned()),
            (None, Some(m)) => Some(m.to_owned()),
            (None, None) => self
                .errors
                .as_ref()
                .and_then(|es| es.first())
                .map(|e| e.message.clone()),
        }
    }
}

/// At most this many characters of a body go into an error message.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// A bounded, printable excerpt of a response body for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return "<empty body>".into();
    }
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let total = text.chars().count();
    if total > EXCERPT_CHARS {
        out.push_str(&format!("… ({} bytes)", body.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn error_body_text_prefers_error_then_message_then_graphql() {
        let t = |v: Value| ErrorBody::parse(v.to_string().as_bytes()).and_then(|b| b.text());
        assert_eq!(t(json!({"error": "boom"})), Some("boom".into()));
        assert_eq!(t(json!({"message": "m"})), Some("m".into()));
        assert_eq!(
            t(json!({"error": "e", "message": "m"})),
            Some("e: m".into())
        );
        assert_eq!(t(json!({"errors": [{"message": "g"}]})), Some("g".into()));
        assert_eq!(t(json!({})), None);
    }

    #[test]
    fn excerpts_are_bounded_and_printable() {
        let long = "x".repeat(5000);
        let e = excerpt(long.as_bytes());
        assert!(e.chars().count() < EXCERPT_CHARS + 30, "{e}");
        assert!(e.ends_with("(5000 bytes)"));
        assert_eq!(excerpt(b"a\nb"), "a b");
        assert_eq!(excerpt(b""), "<empty body>");
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }
}
