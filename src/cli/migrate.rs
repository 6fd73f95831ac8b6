//! `flotilla migrate`: applies pending migrations (every other command does
//! this too on connect) and says what it did.

use std::io::Write;
use std::process::ExitCode;

use crate::clock::SharedClock;
use crate::store;

pub async fn migrate(
    url: &str,
    clock: SharedClock,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let (_, applied) = store::connect_reporting(url, clock).await?;
    if applied.is_empty() {
        writeln!(out, "database is up to date")?;
    }
    for m in applied {
        writeln!(out, "applied {:04} {}", m.version, m.description)?;
    }
    Ok(ExitCode::SUCCESS)
}
