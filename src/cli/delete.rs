//! `flotilla delete tenant NAME`: sets the deletion mark; the controller does
//! the teardown and removes the row.

use std::io::Write;
use std::process::ExitCode;

use super::target::Target;

pub async fn tenant(target: &Target, name: &str, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    target.delete(name).await?;
    writeln!(out, "tenant/{name} marked for deletion")?;
    Ok(ExitCode::SUCCESS)
}
