//! Mutation fuzzer over the example specs, run in CI for a bounded time
//! (a few thousand cases, seconds): whatever the mutations, the loader never
//! panics, never allocates more than 256 MB, and every diagnostic is located
//! (`file:line:col` inside the text) and printed as one bounded, escaped line.
//!
//! The memory bound is enforced, not sampled: this test binary runs on a
//! counting allocator whose limit is set 256 MB above what the harness holds,
//! so an allocation past it fails and aborts the run.

use std::alloc::System;
use std::sync::{Mutex, MutexGuard};

use cap::Cap;
use flotilla::spec::{ParseOptions, SpecError, load_str};
use proptest::prelude::*;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const BUDGET: usize = 256 * 1024 * 1024;

/// The allocator is shared by the whole binary: its tests run one at a time
/// and each caps what it may allocate above what is already held.
fn capped() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    ALLOC
        .set_limit(ALLOC.allocated() + BUDGET)
        .expect("limit above what is allocated");
    guard
}

const EXAMPLES: [&str; 3] = [
    include_str!("../specs/examples/minimal.yaml"),
    include_str!("../specs/examples/full.yaml"),
    include_str!("../specs/examples/edgecoder.yaml"),
];

/// Text that means something to YAML, to the spec rules, or to a terminal.
const PIECES: &[&str] = &[
    "",
    ":",
    ": ",
    "- ",
    "\n",
    "\r",
    "\r\n",
    "  ",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    ",",
    "*a",
    "&a ",
    "*zz",
    "!!int ",
    "!!str ",
    "!foo ",
    "!<tag:x> ",
    "---\n",
    "...\n",
    "\t",
    "~",
    "0x",
    "é",
    "\u{1b}[31m",
    "\u{202e}",
    "\0",
    "? ",
    "| ",
    ">- ",
    "#",
    "%YAML 1.2\n",
    "<<: *a\n",
    "1.5h",
    "0 99 * * *",
    "1.2.3.4",
    "flotilla.x",
    "null",
    "true",
    "99999999999999999999999",
    "-1",
    "shared-cpu-3x",
    "\u{feff}",
    "\\",
    "%",
    "@",
    "`",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// Delete `len` bytes at `at` (rounded to character boundaries).
    Delete { at: usize, len: usize },
    /// Insert a piece at `at`.
    Insert { at: usize, piece: &'static str },
    /// Insert a piece repeated `times` times.
    Repeat {
        at: usize,
        piece: &'static str,
        times: usize,
    },
    /// Copy the line at `from` to before the line at `to`.
    CopyLine { from: usize, to: usize },
    /// An anchor on a long string and many aliases of it, at a line start.
    Bomb {
        at: usize,
        bytes: usize,
        aliases: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        6 => (any::<usize>(), prop::sample::select(PIECES))
            .prop_map(|(at, piece)| Mutation::Insert { at, piece }),
        1 => (any::<usize>(), prop::sample::select(PIECES), 1usize..2000)
            .prop_map(|(at, piece, times)| Mutation::Repeat { at, piece, times }),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(from, to)| Mutation::CopyLine { from, to }),
        1 => (any::<usize>(), 1usize..20_000, 1usize..300)
            .prop_map(|(at, bytes, aliases)| Mutation::Bomb { at, bytes, aliases }),
    ]
}

fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    starts
}

fn apply(text: &mut String, m: &Mutation) {
    match m {
        Mutation::Delete { at, len } => {
            let start = boundary(text, *at);
            let end = boundary(text, (start + len).min(text.len()));
            text.replace_range(start..end.max(start), "");
        }
        Mutation::Insert { at, piece } => {
            let at = boundary(text, *at);
            text.insert_str(at, piece);
        }
        Mutation::Repeat { at, piece, times } => {
            let at = boundary(text, *at);
            text.insert_str(at, &piece.repeat(*times));
        }
        Mutation::CopyLine { from, to } => {
            let starts = line_starts(text);
            let from = starts[from % starts.len()];
            let end = text[from..].find('\n').map_or(text.len(), |i| from + i + 1);
            let line = text[from..end].to_string();
            let to = starts[to % starts.len()];
            text.insert_str(to, &line);
        }
        Mutation::Bomb { at, bytes, aliases } => {
            let starts = line_starts(text);
            let at = starts[at % starts.len()];
            let mut bomb = format!("bomb: &b \"{}\"\nboom: [", "x".repeat(*bytes));
            bomb.push_str(&vec!["*b"; *aliases].join(", "));
            bomb.push_str("]\n");
            text.insert_str(at, &bomb);
        }
    }
}

/// Lines as YAML counts them: `\n`, `\r\n` and a lone `\r` each end one.
fn yaml_lines(text: &str) -> usize {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .split('\n')
        .count()
}

fn check(text: &str) -> Result<(), TestCaseError> {
    let result = load_str("fuzz.yaml", text, &ParseOptions::default());
    let lines = yaml_lines(text);
    if let Err(diags) = result {
        prop_assert!(!diags.is_empty());
        for d in &diags {
            prop_assert!(d.line >= 1 && d.line <= lines + 1, "{d} (of {lines} lines)");
            prop_assert!(d.column >= 1, "{d}");
            let shown = d.to_string();
            let prefix = format!("fuzz.yaml:{}:{}: ", d.line, d.column);
            prop_assert!(shown.starts_with(&prefix), "{shown}");
            prop_assert!(
                !shown.contains(['\n', '\r', '\u{1b}', '\0', '\u{202e}']),
                "{shown:?}"
            );
            prop_assert!(
                shown.chars().count() < 2000,
                "{} chars",
                shown.chars().count()
            );
            if let SpecError::MoreProblems { .. } = d.error {
                prop_assert!(d.path == "<document>");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_examples_load_within_bounds(
        which in 0usize..4,
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let _cap = capped();
        let mut text = match which {
            3 => EXAMPLES.join("---\n"),
            i => EXAMPLES[i].to_string(),
        };
        for m in &mutations {
            apply(&mut text, m);
        }
        check(&text)?;
    }
}

/// The issue's memory bomb: a 1 MiB string anchored once and aliased 3,000
/// times (6 GB once expanded). Under the 256 MB cap it is an error at the
/// alias that crosses the load's byte budget, not an abort.
#[test]
fn the_alias_bomb_from_the_issue_is_an_error_within_the_memory_cap() {
    let _cap = capped();
    let before = ALLOC.allocated();
    let mut text = format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: acme\n  labels:\n    big: &big \"{}\"\nspec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: nginx\n      env:\n",
        "x".repeat(1024 * 1024)
    );
    for i in 0..3000 {
        text.push_str(&format!("        V{i}: *big\n"));
    }
    let diags = load_str("bomb.yaml", &text, &ParseOptions::default()).unwrap_err();
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!(
        d.error,
        SpecError::LoadTooManyBytes {
            max: flotilla::spec::MAX_LOAD_BYTES
        }
    );
    // The scalar and the anchor's copy take 2 MiB; 30 aliases fit in 32 MiB.
    assert_eq!((d.line, d.column), (14 + 29, 14), "{d}");
    assert_eq!(d.path, "spec.machines[0].env.V29");
    // The hard guarantee is the cap itself: an allocation past `before +
    // BUDGET` fails and aborts this binary. The recorded peak is a second
    // look; `cap` keeps its counters with relaxed atomics, so a free on
    // another thread (the harness's own) can make it wrap transiently to
    // near `usize::MAX`: such a reading says nothing and is skipped.
    let peak = ALLOC.max_allocated();
    if peak < usize::MAX / 2 {
        assert!(peak < before + BUDGET, "peak {peak} bytes");
    }
}
