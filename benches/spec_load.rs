//! Spec loading on hostile input: a mapping with 49,000 keys (the duplicate
//! check once compared each key with every earlier one: 7 s) and the issue's
//! alias bomb (a 1 MiB string aliased 3,000 times: 6 GB once expanded).
//!
//! Runs on a counting allocator, so the peak memory of each case is measured,
//! not guessed. Writes `target/bench/spec_load.json` and prints one line per
//! case. Run with `cargo bench --bench spec_load`.

use std::alloc::System;
use std::path::PathBuf;
use std::time::Instant;

use cap::Cap;
use flotilla::spec::{ParseOptions, SpecError, load_str};
use serde_json::json;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const HEADER: &str = "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: acme\n";
const SPEC: &str =
    "spec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: nginx\n";

fn many_keys(duplicate: bool) -> String {
    let mut text = format!("{HEADER}  labels:\n");
    for i in 0..49_000 {
        text.push_str(&format!("    key-{i}: v\n"));
    }
    if duplicate {
        text.push_str("    key-7: again\n");
    }
    text + SPEC
}

fn bomb() -> String {
    let mut text = format!(
        "{HEADER}  labels:\n    big: &big \"{}\"\n{SPEC}      env:\n",
        "x".repeat(1024 * 1024)
    );
    for i in 0..3000 {
        text.push_str(&format!("        V{i}: *big\n"));
    }
    text
}

/// Loads `text` once; returns (milliseconds, peak bytes allocated while
/// loading, above what was held before, and what came out). Each case runs
/// in a process of its own, so the allocator's high-water mark is its own.
fn measure(text: &str) -> (f64, usize, String) {
    let base = ALLOC.allocated();
    let start = Instant::now();
    let result = load_str("bench.yaml", text, &ParseOptions::default());
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let peak = ALLOC.max_allocated().saturating_sub(base);
    let outcome = match result {
        Ok(docs) => format!("{} tenant(s)", docs.len()),
        Err(diags) => match &diags[0].error {
            SpecError::LoadTooManyBytes { .. } => {
                format!("rejected at {}:{}", diags[0].line, diags[0].column)
            }
            other => format!("{} problem(s): {other}", diags.len()),
        },
    };
    (ms, peak, outcome)
}

fn case(i: usize) -> (&'static str, String) {
    match i {
        0 => ("49000 keys", many_keys(false)),
        1 => ("49000 keys + 1 duplicate", many_keys(true)),
        _ => ("alias bomb 1 MiB x 3000", bomb()),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let (name, text) = case(args[i + 1].parse()?);
        let (ms, peak, outcome) = measure(&text);
        let row = json!({"case": name, "input_bytes": text.len(), "ms": ms, "peak_bytes": peak, "outcome": outcome});
        println!("{row}");
        return Ok(());
    }
    let me = std::env::current_exe()?;
    let mut rows = Vec::new();
    for i in 0..3 {
        let out = std::process::Command::new(&me)
            .args(["--case", &i.to_string()])
            .output()?;
        if !out.status.success() {
            return Err(
                format!("case {i} failed: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
        let row: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        println!(
            "{}: {:.1} ms, peak {:.1} MB, {}",
            row["case"].as_str().unwrap_or_default(),
            row["ms"].as_f64().unwrap_or_default(),
            row["peak_bytes"].as_f64().unwrap_or_default() / 1e6,
            row["outcome"].as_str().unwrap_or_default()
        );
        rows.push(row);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("spec_load.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    Ok(())
}
