//! Fly's request ids in error messages: the mark they are appended with and
//! how to compare two messages without them. Pure text; the client appends
//! the ids (`fly::error`), status derivation compares without them.

/// How a Fly request id is appended to an error message:
/// `<message> [fly-request-id <id>]`.
pub const REQUEST_ID_MARK: &str = " [fly-request-id ";

/// `message` without the request ids Fly's answers carry, so two failures
/// that differ only in the request are recognised as the same error.
pub fn without_request_ids(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(REQUEST_ID_MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + REQUEST_ID_MARK.len()..];
        match after.find(']') {
            Some(end) => rest = &after[end + 1..],
            None => {
                rest = &rest[at..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_dropped_and_nothing_else() {
        assert_eq!(
            without_request_ids(
                "create: no room [fly-request-id 01-iad]; retry: no room [fly-request-id 02-ord]"
            ),
            "create: no room; retry: no room"
        );
        assert_eq!(without_request_ids("plain"), "plain");
        assert_eq!(
            without_request_ids("cut [fly-request-id 01"),
            "cut [fly-request-id 01",
            "an unterminated mark is kept"
        );
    }
}
