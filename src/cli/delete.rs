//! `flotilla delete tenant NAME`: sets the deletion mark; the controller does
//! the teardown and removes the row.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::ids::TenantName;
use crate::store::SharedStore;

pub async fn tenant(
    store: &SharedStore,
    name: &str,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let name = TenantName::parse(name).with_context(|| format!("tenant name {name:?}"))?;
    if !store.mark_for_deletion(&name).await? {
        bail!("tenant {name} not found");
    }
    writeln!(out, "tenant/{name} marked for deletion")?;
    Ok(ExitCode::SUCCESS)
}
