//! `flotilla diff -f DIR`: what applying the files would change in the
//! store, for pull-request checks. Each tenant is compared by its canonical
//! form (`ops::source`; every default explicit, keys in a fixed order,
//! comments and formatting gone), so reformatting a file or editing a
//! comment is no difference; the annotation `flotilla.dev/source` is
//! compared as `apply` would set it. Tenants of the source that the files no
//! longer define are listed as `removed` (`apply --prune` deletes them).
//!
//! `--live` also plans each file's tenant against Fly (the dry run of
//! `flotilla plan`) and prints the steps. Output: a unified diff per tenant
//! (coloured only when stdout is a terminal, or with `--color always`),
//! `-o json`, or `--summary`, one line for a pull-request comment.
//!
//! Over `--server` the server compares the files with its stored tenants
//! (`POST /api/v1/diff`) and, with `--live`, plans each document against
//! its own Fly (`POST /api/v1/tenants/{name}/plan`); the output is the same.
//!
//! Exit codes: 0 no difference, 2 differences (or planned Fly changes with
//! `--live`), 1 an error (an invalid spec included).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use similar::TextDiff;

use super::apply::load;
use super::fly::FlyArgs;
use super::target::Target;
use crate::clock::SharedClock;
use crate::ops::source::{Change, TenantDiff};
use crate::spec::ParseOptions;

/// Exit code when there are differences.
const DIFFERENCES: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// When stdout is a terminal.
    Auto,
    Always,
    Never,
}

/// How `diff -f` reports.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub source: String,
    pub live: bool,
    pub summary: bool,
    pub format: DiffFormat,
    pub color: Color,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonTenant<'a> {
    name: String,
    change: Change,
    /// The unified diff of the canonical forms (empty when unchanged).
    diff: String,
    /// With `--live`: the planned Fly steps, as `plan` prints them.
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    source: &'a str,
    differences: bool,
    summary: String,
    tenants: Vec<JsonTenant<'a>>,
}

/// The unified diff of one tenant's canonical forms.
pub fn unified(d: &TenantDiff) -> String {
    let old = d.stored.as_deref().unwrap_or("");
    let new = d.proposed.as_deref().unwrap_or("");
    if d.change == Change::Unchanged {
        return String::new();
    }
    let (a, b) = (
        if d.stored.is_some() {
            format!("store/{}", d.name)
        } else {
            "/dev/null".to_string()
        },
        if d.proposed.is_some() {
            format!("files/{}", d.name)
        } else {
            "/dev/null".to_string()
        },
    );
    let text = TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string();
    if text.is_empty() {
        // Same canonical text, but stored with a deletion mark: applying
        // brings the tenant back.
        return format!(
            "--- {a}\n+++ {b}\n# tenant {} is marked for deletion; apply brings it back\n",
            d.name
        );
    }
    text
}

/// One line for a pull-request comment.
pub fn summary(source: &str, diffs: &[TenantDiff], planned: Option<(usize, usize)>) -> String {
    let count = |c: Change| diffs.iter().filter(|d| d.change == c).count();
    let (created, changed, removed, unchanged) = (
        count(Change::Created),
        count(Change::Changed),
        count(Change::Removed),
        count(Change::Unchanged),
    );
    let mut line = if created + changed + removed == 0 {
        format!("{source}: no differences ({unchanged} tenant(s) unchanged)")
    } else {
        format!(
            "{source}: {created} to create, {changed} to change, {removed} to prune (with apply --prune), {unchanged} unchanged"
        )
    };
    if let Some((steps, tenants)) = planned {
        line.push_str(&format!(
            "; Fly: {steps} planned change(s) in {tenants} tenant(s)"
        ));
    }
    line
}

fn colored(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let code = if line.starts_with("+++") || line.starts_with("---") {
            Some("1")
        } else if line.starts_with('+') {
            Some("32")
        } else if line.starts_with('-') {
            Some("31")
        } else if line.starts_with("@@") {
            Some("36")
        } else {
            None
        };
        match code {
            Some(c) => {
                let body = line.strip_suffix('\n').unwrap_or(line);
                out.push_str(&format!("\u{1b}[{c}m{body}\u{1b}[0m"));
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

/// `diff -f` against `target` (the database, or a server that compares
/// and plans on its side).
pub async fn diff_files(
    paths: &[PathBuf],
    opts: &ParseOptions,
    how: &DiffOptions,
    target: Target,
    fly: &FlyArgs,
    clock: SharedClock,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let Some(docs) = load(paths, opts)? else {
        return Ok(ExitCode::FAILURE);
    };
    let diffs = match target.diff_source(docs.clone(), &how.source).await? {
        Ok(diffs) => diffs,
        // Found by the server (its options may differ from this side's).
        Err(lines) => {
            let mut err = std::io::stderr().lock();
            for l in &lines {
                let _ = writeln!(err, "{l}");
            }
            let n = lines.len();
            let _ = writeln!(err, "{n} problem{} found", if n == 1 { "" } else { "s" });
            return Ok(ExitCode::FAILURE);
        }
    };
    let plans = if how.live {
        Some(target.plan_docs(docs, fly, clock).await?)
    } else {
        None
    };
    let planned = plans.as_ref().map(|ps| {
        let steps: usize = ps.iter().map(|p| p.steps).sum();
        let tenants = ps.iter().filter(|p| p.steps > 0).count();
        (steps, tenants)
    });
    let rendered: Vec<(String, Option<String>)> = diffs
        .iter()
        .map(|d| {
            let plan = plans.as_ref().and_then(|ps| {
                ps.iter()
                    .find(|p| p.name == d.name.as_str())
                    .map(|p| p.rendered.clone())
            });
            (unified(d), plan)
        })
        .collect();
    let differences = diffs.iter().any(|d| d.change != Change::Unchanged)
        || planned.is_some_and(|(steps, _)| steps > 0);
    let line = summary(&how.source, &diffs, planned);
    match how.format {
        DiffFormat::Json => {
            let report = JsonReport {
                source: &how.source,
                differences,
                summary: line,
                tenants: diffs
                    .iter()
                    .zip(&rendered)
                    .map(|(d, (text, plan))| JsonTenant {
                        name: d.name.to_string(),
                        change: d.change,
                        diff: text.clone(),
                        plan: plan.as_deref(),
                    })
                    .collect(),
            };
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
        DiffFormat::Text if how.summary => writeln!(out, "{line}")?,
        DiffFormat::Text => {
            let color = match how.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => std::io::stdout().is_terminal(),
            };
            for (d, (text, plan)) in diffs.iter().zip(&rendered) {
                if !text.is_empty() {
                    writeln!(out, "tenant/{} {}", d.name, change_word(d.change))?;
                    if color {
                        write!(out, "{}", colored(text))?;
                    } else {
                        write!(out, "{text}")?;
                    }
                }
                if let Some(p) = plan {
                    write!(out, "{p}")?;
                }
            }
            writeln!(out, "{line}")?;
        }
    }
    Ok(if differences {
        ExitCode::from(DIFFERENCES)
    } else {
        ExitCode::SUCCESS
    })
}

fn change_word(c: Change) -> &'static str {
    match c {
        Change::Created => "would be created",
        Change::Changed => "would change",
        Change::Unchanged => "unchanged",
        Change::Removed => "would be pruned (apply --prune)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantName;

    fn d(change: Change, stored: Option<&str>, proposed: Option<&str>) -> TenantDiff {
        TenantDiff {
            name: TenantName::parse("acme").unwrap(),
            change,
            stored: stored.map(str::to_string),
            proposed: proposed.map(str::to_string),
        }
    }

    #[test]
    fn unified_diffs_name_both_sides() {
        let text = unified(&d(
            Change::Changed,
            Some("a: 1\nb: 2\n"),
            Some("a: 1\nb: 3\n"),
        ));
        assert!(
            text.starts_with("--- store/acme\n+++ files/acme\n@@"),
            "{text}"
        );
        assert!(text.contains("-b: 2\n+b: 3\n"), "{text}");
        let created = unified(&d(Change::Created, None, Some("a: 1\n")));
        assert!(
            created.starts_with("--- /dev/null\n+++ files/acme\n"),
            "{created}"
        );
        let removed = unified(&d(Change::Removed, Some("a: 1\n"), None));
        assert!(
            removed.contains("+++ /dev/null\n") && removed.contains("-a: 1"),
            "{removed}"
        );
        assert_eq!(unified(&d(Change::Unchanged, Some("a\n"), Some("a\n"))), "");
        let marked = unified(&d(Change::Changed, Some("a\n"), Some("a\n")));
        assert!(marked.contains("marked for deletion"), "{marked}");
    }

    #[test]
    fn colour_wraps_only_changed_lines() {
        let c = colored("--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n z\n");
        assert!(c.contains("\u{1b}[31m-x\u{1b}[0m\n"));
        assert!(c.contains("\u{1b}[32m+y\u{1b}[0m\n"));
        assert!(c.ends_with(" z\n"));
    }

    #[test]
    fn summaries_fit_one_line() {
        let all = [
            d(Change::Created, None, Some("a")),
            d(Change::Unchanged, Some("a"), Some("a")),
            d(Change::Removed, Some("a"), None),
        ];
        assert_eq!(
            summary("specs", &all, None),
            "specs: 1 to create, 0 to change, 1 to prune (with apply --prune), 1 unchanged"
        );
        assert_eq!(
            summary("specs", &all[1..2], Some((3, 1))),
            "specs: no differences (1 tenant(s) unchanged); Fly: 3 planned change(s) in 1 tenant(s)"
        );
    }
}
