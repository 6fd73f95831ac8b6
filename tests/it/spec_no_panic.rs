//! Property: the loader never panics, whatever the input, and every
//! diagnostic it returns points inside the text (1-based line and column).

use flotilla::spec::{ParseOptions, load_str};
use proptest::prelude::*;

const FULL: &str = include_str!("../../specs/examples/full.yaml");

fn check(text: &str) -> Result<(), TestCaseError> {
    let lines = text.split('\n').count().max(1);
    if let Err(diags) = load_str("f.yaml", text, &ParseOptions::default()) {
        prop_assert!(!diags.is_empty());
        for d in diags {
            prop_assert!(d.line >= 1 && d.line <= lines + 1, "{d} (of {lines} lines)");
            prop_assert!(d.column >= 1, "{d}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text)?;
    }

    #[test]
    fn mutated_specs_never_panic(
        cut in 0usize..FULL.len(),
        len in 0usize..40,
        insert in prop::sample::select(vec!["", ":", "- ", "\n", "  ", "{", "[", "\"", "*a", "&a ", "!!int ", "---\n", "\t", "~", "0x", "é"]),
    ) {
        let mut text = FULL.to_string();
        let start = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        text.replace_range(start..end, insert);
        check(&text)?;
    }
}
