//! `flotilla schema`: the JSON Schema of a tenant document, for editors and
//! CI linters.

use std::io::Write;
use std::process::ExitCode;

pub fn schema(out: &mut impl Write) -> anyhow::Result<ExitCode> {
    // Interim until `spec::schema::tenant_schema()` lands on branch `spec`:
    // the schema generated straight from the raw (YAML-shaped) types.
    let schema = schemars::schema_for!(crate::spec::raw::RawTenant);
    serde_json::to_writer_pretty(&mut *out, &schema)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}
