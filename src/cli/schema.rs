//! `flotilla schema`: the JSON Schema of a tenant document, for editors and
//! CI linters. The output is exactly `specs/schema/tenant.schema.json`.

use std::io::Write;
use std::process::ExitCode;

pub fn schema(out: &mut impl Write) -> anyhow::Result<ExitCode> {
    out.write_all(crate::spec::schema::tenant_schema_pretty().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
