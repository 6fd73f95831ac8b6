//! Splitting a file into per-document text at its `---` lines, so each
//! document's exact text can be stored and exported byte-identical. Line
//! breaks are `\n`, `\r\n` or a lone `\r`, as in YAML.

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

/// The lines of `text`, each with its line break. A line break is `\n`,
/// `\r\n` or a lone `\r`, as in YAML, so files with old Mac line endings split
/// into documents and count lines the way the parser does.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match rest.find(['\n', '\r']) {
            None => rest.len(),
            Some(i) if rest[i..].starts_with("\r\n") => i + 2,
            Some(i) => i + 1,
        };
        let (line, after) = rest.split_at(end);
        rest = after;
        Some(line)
    })
}

/// Splits `text` at its `---` lines. Concatenating the chunks gives back
/// `text` exactly. Comments and directives before the first `---` belong to
/// the first document.
pub(crate) fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut starts: Vec<(usize, usize)> = vec![(0, 1)]; // (byte offset, line)
    let mut offset = 0;
    for (i, line) in lines(text).enumerate() {
        if i > 0 && is_document_marker(line) {
            starts.push((offset, i + 1));
        }
        offset += line.len();
    }
    // A leading chunk of only comments/blank lines/directives is the preamble
    // of the first explicit document, not a document of its own.
    if starts.len() > 1 {
        let first = &text[..starts[1].0];
        if lines(first).all(is_preamble_line) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
