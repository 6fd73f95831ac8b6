//! `flotilla export -d DIR`: one `<name>.yaml` per tenant holding the YAML
//! exactly as it was applied (comments included), so the directory can be
//! applied again or committed to git. Against the database, or a server
//! (`--server`: each tenant's applied YAML through the API; a tenant
//! credential exports only its own tenant).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::target::Target;
use crate::ids::TenantName;

pub async fn export(target: &Target, dir: &Path, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let tenants = target.applied_documents().await?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, yaml) in &tenants {
        // Tenant names are DNS labels, so they are safe file names; a
        // server's answer is checked before it names a file.
        let name = TenantName::parse(name.as_str())
            .map_err(|e| anyhow::anyhow!("refusing to write a tenant named {name:?}: {e}"))?;
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, yaml.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        writeln!(out, "tenant/{name} exported to {}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
