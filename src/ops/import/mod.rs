//! `flotilla import`: a live Fly app as a tenant spec.
//!
//! [`read_app`] reads one app through the [`FlyApi`] port (the app, its
//! machines, volumes, IP addresses, certificates, secret names and token names; reads
//! only), [`map::to_tenant`] turns that into a [`Tenant`](crate::spec::Tenant)
//! with notes (pure, see there for the rules and what cannot be recovered),
//! and [`render`] writes it as YAML or JSON and loads the text back through
//! the normal spec loader: the text must validate and mean exactly the
//! tenant built (equal canonical JSON), or [`ImportError::Invalid`] says why.
//!
//! The spec carries the annotation `flotilla.dev/adopt: "true"`, so applying
//! it lets flotilla take the app over; for an app flotilla created (found
//! again after losing its database, say) the plan is then empty, but for
//! the adoption of its volumes (their ownership lives in flotilla's ledger).

pub mod map;

use jiff::Timestamp;
use serde_json::Value;

use crate::fly::{FlyApi, FlyError};
use crate::ids::{AppName, OrgSlug};
use crate::spec::{ParseOptions, format_duration, load_str};

pub use map::{DEFAULT_LABEL, Imported, LiveApp, MapError, file_name, to_tenant};

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("app {app} was not found on Fly")]
    NotFound { app: AppName },
    #[error("app {app} belongs to org {actual}, not {wanted}")]
    WrongOrg {
        app: AppName,
        actual: OrgSlug,
        wanted: OrgSlug,
    },
    #[error("reading {what} from Fly: {source}")]
    Fly {
        what: String,
        #[source]
        source: FlyError,
    },
    #[error(transparent)]
    Map(#[from] MapError),
    /// The emitted text does not validate, or means something else than the
    /// tenant built: a bug in import, or something Fly holds that a spec
    /// cannot (a memory size, a count over 100, ...).
    #[error("the spec imported from app {app} does not validate: {}", problems.join("; "))]
    Invalid { app: AppName, problems: Vec<String> },
}

/// Output forms of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

fn fly_err(what: impl Into<String>) -> impl FnOnce(FlyError) -> ImportError {
    let what = what.into();
    move |source| ImportError::Fly { what, source }
}

/// The names of the apps of `org`, sorted.
pub async fn list_apps(fly: &dyn FlyApi, org: &OrgSlug) -> Result<Vec<AppName>, ImportError> {
    let mut names: Vec<AppName> = fly
        .list_apps(org)
        .await
        .map_err(fly_err(format!("the apps of org {org}")))?
        .into_iter()
        .map(|a| a.name)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Reads everything [`map::to_tenant`] needs of `app` (reads only). With
/// `org`, an app of another org is refused. Tokens that cannot be listed are
/// a note, not an error: none is imported either way.
pub async fn read_app(
    fly: &dyn FlyApi,
    name: &AppName,
    org: Option<&OrgSlug>,
    now: Timestamp,
) -> Result<LiveApp, ImportError> {
    let app = match fly.get_app(name).await {
        Ok(app) => app,
        Err(e) if e.is_not_found() => return Err(ImportError::NotFound { app: name.clone() }),
        Err(e) => return Err(fly_err(format!("app {name}"))(e)),
    };
    if let Some(wanted) = org
        && *wanted != app.org_slug
    {
        return Err(ImportError::WrongOrg {
            app: name.clone(),
            actual: app.org_slug.clone(),
            wanted: wanted.clone(),
        });
    }
    let machines = fly
        .list_machines(name, &Default::default())
        .await
        .map_err(fly_err(format!("the machines of app {name}")))?;
    let ips = fly
        .list_ips(name)
        .await
        .map_err(fly_err(format!("the IP addresses of app {name}")))?;
    let certificates = fly
        .list_certificates(name)
        .await
        .map_err(fly_err(format!("the certificates of app {name}")))?;
    let secrets = fly
        .list_secrets(name)
        .await
        .map_err(fly_err(format!("the secrets of app {name}")))?;
    let volumes = fly
        .list_volumes(name)
        .await
        .map_err(fly_err(format!("the volumes of app {name}")))?;
    let tokens = match fly.list_tokens(name).await {
        Ok(list) => Ok(list
            .into_iter()
            .filter(|t| t.is_valid_at(now))
            .map(|t| t.name)
            .collect()),
        Err(e) => Err(e.to_string()),
    };
    Ok(LiveApp {
        app,
        machines,
        ips,
        certificates,
        secrets,
        volumes,
        tokens,
    })
}

/// Reads and maps one app: [`read_app`] then [`map::to_tenant`].
pub async fn import_app(
    fly: &dyn FlyApi,
    name: &AppName,
    org: Option<&OrgSlug>,
    now: Timestamp,
) -> Result<Imported, ImportError> {
    let live = read_app(fly, name, org, now).await?;
    Ok(to_tenant(&live)?)
}

/// The imported tenant as text (YAML with the notes as a comment header, or
/// JSON), checked by loading it back (module doc).
pub fn render(
    imported: &Imported,
    format: Format,
    parse: &ParseOptions,
) -> Result<String, ImportError> {
    let tenant = &imported.tenant;
    let app = tenant.spec.app.name.clone();
    let value = readable(serde_json::to_value(tenant).expect("the tenant model serializes"));
    let text = match format {
        Format::Yaml => {
            let body = yaml_serde::to_string(&value).map_err(|e| ImportError::Invalid {
                app: app.clone(),
                problems: vec![e.to_string()],
            })?;
            format!("{}{body}", header(imported))
        }
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&value).expect("JSON values serialize");
            s.push('\n');
            s
        }
    };
    let label = format!("import of {app}");
    let loaded = load_str(&label, &text, parse).map_err(|diags| ImportError::Invalid {
        app: app.clone(),
        problems: diags.iter().map(ToString::to_string).collect(),
    })?;
    match loaded.as_slice() {
        [doc] if doc.tenant.canonical_json() == tenant.canonical_json() => Ok(text),
        [_] => Err(ImportError::Invalid {
            app,
            problems: vec!["the text reads back as another tenant than the one imported".into()],
        }),
        docs => Err(ImportError::Invalid {
            app,
            problems: vec![format!("the text holds {} documents, not one", docs.len())],
        }),
    }
}

/// The YAML comment header: where the spec came from, what import cannot
/// know, and the notes (escaped: they quote what Fly returned).
fn header(imported: &Imported) -> String {
    let t = &imported.tenant;
    let mut lines = vec![
        format!(
            "Imported by `flotilla import` from Fly app {} (org {}).",
            t.spec.app.name, t.spec.org
        ),
        "The annotation flotilla.dev/adopt lets flotilla take over an app it did not create."
            .to_string(),
        "Not recoverable from Fly, so left at their defaults: deletionPolicy (Delete: deleting"
            .to_string(),
        "this tenant deletes the app; write Orphan to keep it), paused, managementPolicy,"
            .to_string(),
        "labels, secret sources (all external) and tokens (none).".to_string(),
    ];
    if !t.spec.volumes.is_empty() {
        lines.push(
            "Volumes keep deletionPolicy Retain; the first activation adopts them (the ledger only)."
                .to_string(),
        );
    }
    if !imported.notes.is_empty() {
        lines.push("Notes:".to_string());
        for n in &imported.notes {
            lines.push(format!(
                "- {}",
                crate::spec::error::sanitize(n, crate::spec::error::MAX_MESSAGE_CHARS)
            ));
        }
    }
    let mut out = String::new();
    for l in lines {
        out.push_str("# ");
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// The canonical JSON made easier to read, meaning the same: nulls and
/// empty lists and maps (the defaults) left out, except a secret's
/// `external: {}` / `generate: {}`, and durations as `30s` rather than
/// seconds.
fn readable(value: Value) -> Value {
    /// `keep_empty`: a list item (dropping it would shorten the list) or a
    /// secret source.
    fn walk(key: Option<&str>, keep_empty: bool, v: Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Object(map) => {
                let keep = keep_empty || matches!(key, Some("external" | "generate"));
                let out: serde_json::Map<String, Value> = map
                    .into_iter()
                    .filter_map(|(k, v)| walk(Some(&k), false, v).map(|v| (k, v)))
                    .collect();
                (keep || !out.is_empty()).then_some(Value::Object(out))
            }
            Value::Array(items) => {
                let out: Vec<Value> = items
                    .into_iter()
                    .filter_map(|v| walk(None, true, v))
                    .collect();
                (keep_empty || !out.is_empty()).then_some(Value::Array(out))
            }
            Value::Number(n) if matches!(key, Some("interval" | "timeout" | "grace_period")) => {
                Some(match n.as_u64() {
                    Some(secs) => Value::from(format_duration(secs)),
                    None => Value::Number(n),
                })
            }
            other => Some(other),
        }
    }
    walk(None, true, value).unwrap_or(Value::Object(Default::default()))
}

#[cfg(test)]
mod tests;
