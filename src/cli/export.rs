//! `flotilla export -d DIR`: one `<name>.yaml` per tenant holding the YAML
//! exactly as it was applied (comments included), so the directory can be
//! applied again or committed to git.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::store::{LabelSelector, SharedStore};

pub async fn export(
    store: &SharedStore,
    dir: &Path,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let tenants = store.list(&LabelSelector::default()).await?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for t in &tenants {
        // Tenant names are DNS labels, so they are safe file names.
        let path = dir.join(format!("{}.yaml", t.name));
        std::fs::write(&path, t.yaml.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        writeln!(out, "tenant/{} exported to {}", t.name, path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
