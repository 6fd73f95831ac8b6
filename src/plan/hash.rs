//! Config hashes: which desired config a machine was last written from.
//!
//! The hash covers the Fly machine config flotilla sends, not the spec model
//! it came from, so a spec-model field that does not reach Fly cannot roll a
//! machine. [`canonical`] is that config as JSON, in Fly's field names and
//! value forms (what `fly::wire` sends; a wire test holds the two together),
//! canonicalised:
//! * keys sorted at every level;
//! * a member that is `null`, `false`, an empty list or an empty object is
//!   left out ([`prune`]), so a field added to the config later changes no
//!   hash while it is unset (as `init`, `files`, `processes`, `stop_config`,
//!   `dns`, `statics`, `mounts`, GPUs and the richer check fields were:
//!   `tests/golden/config-hashes.txt` did not change with them). A new field must therefore send nothing, `null`,
//!   `false`, `[]` or `{}` when unset (an empty string or `0` would count);
//!   the maps flotilla sends (`env`, `metadata`, `checks`) hold strings or
//!   non-empty objects, so none of their entries is ever pruned;
//! * the per-machine metadata keys ([`MACHINE_KEYS`]: the hash itself, the
//!   create key, the secrets version) are left out.
//!
//! The value is [`HASH_VERSION`], a colon, then the first 16 bytes of the
//! SHA-256 of the canonical text in hex: `v2:1f0c…`. A machine carrying a hash
//! of another version (or none, or flotilla's first, unversioned hash) is not
//! rolled for that alone: when its observed config matches, the planner only
//! rewrites the hash (`Action::UpgradeConfigHash`). Changing the canonical form
//! therefore needs a new `HASH_VERSION`; `tests/golden/config-hashes.txt` pins
//! the hashes of the example specs, and of frozen copies of the examples as
//! they were before the optional parts existed (`tests/golden/specs`), so
//! that no change goes unnoticed.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::model::fly::duration::format_go_duration;
use crate::model::fly::{AutostopConfig, CheckConfig, FileSource, MachineConfig, meta};

/// The version of the canonical form, the prefix of every hash.
pub const HASH_VERSION: &str = "v2";

/// Metadata keys that differ per machine of one group and are not hashed.
pub const MACHINE_KEYS: [&str; 3] = [meta::CONFIG_HASH, meta::CREATE_KEY, meta::SECRETS_VERSION];

/// The hash of `config` (see the module doc).
pub fn config_hash(config: &MachineConfig) -> String {
    hash_value(canonical(config))
}

/// True if `stored` is a hash of the current [`HASH_VERSION`].
pub fn is_current(stored: &str) -> bool {
    stored
        .strip_prefix(HASH_VERSION)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// The hash of any JSON value, pruned and canonicalised first. `config_hash`
/// is `hash_value(canonical(config))`.
pub fn hash_value(value: Value) -> String {
    let mut text = String::new();
    write_canonical(&prune(value), &mut text);
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{HASH_VERSION}:{hex}")
}

/// The config flotilla sends, as Fly's JSON, without the per-machine metadata
/// keys, pruned.
pub fn canonical(c: &MachineConfig) -> Value {
    let metadata: Map<String, Value> = c
        .metadata
        .iter()
        .filter(|(k, _)| !MACHINE_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    let services: Vec<Value> = c
        .services
        .iter()
        .map(|s| {
            json!({
                "protocol": s.protocol.as_str(),
                "internal_port": s.internal_port,
                "ports": s.ports.iter().map(|p| json!({
                    "port": p.port,
                    "handlers": p.handlers.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
                    "force_https": p.force_https,
                })).collect::<Vec<_>>(),
                "autostop": match s.autostop {
                    AutostopConfig::Off => "off",
                    AutostopConfig::Stop => "stop",
                    AutostopConfig::Suspend => "suspend",
                },
                "autostart": s.autostart,
                "min_machines_running": s.min_machines_running,
                "concurrency": s.concurrency.as_ref().map(|k| json!({
                    "type": k.kind.as_str(),
                    "soft_limit": k.soft_limit,
                    "hard_limit": k.hard_limit,
                })),
                "checks": s.checks.iter().map(check_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let checks: Map<String, Value> = c
        .checks
        .iter()
        .map(|(name, ch)| (name.clone(), check_json(ch)))
        .collect();
    prune(json!({
        "image": c.image,
        "env": c.env,
        "guest": {
            "cpu_kind": c.guest.cpu_kind.as_str(),
            "cpus": c.guest.cpus,
            "memory_mb": c.guest.memory_mb,
            "gpu_kind": c.guest.gpu.map(|g| g.kind.as_str()),
            "gpus": c.guest.gpu.map(|g| g.count),
        },
        "services": services,
        "checks": checks,
        "restart": {
            "policy": c.restart.policy.as_str(),
            "max_retries": c.restart.max_retries,
        },
        "metadata": metadata,
        "auto_destroy": c.auto_destroy,
        "init": {
            "exec": c.init.exec,
            "entrypoint": c.init.entrypoint,
            "cmd": c.init.cmd,
            "tty": c.init.tty,
        },
        "files": c.files.iter().map(|f| {
            let (raw, secret, image) = match &f.source {
                FileSource::Base64(v) => (Some(v.as_str()), None, None),
                FileSource::Secret(n) => (None, Some(n.as_str()), None),
                FileSource::ImageConfig(i) => (None, None, Some(i.as_str())),
            };
            json!({
                "guest_path": f.guest_path,
                "raw_value": raw,
                "secret_name": secret,
                "image_config": image,
                "mode": f.mode,
            })
        }).collect::<Vec<_>>(),
        "processes": c.processes.iter().map(|p| json!({
            "exec": p.exec,
            "entrypoint": p.entrypoint,
            "cmd": p.cmd,
            "user": p.user,
            "env": p.env,
            "secrets": p.secrets.iter().map(|s| json!({
                "env_var": s.env_var,
                "name": s.name,
            })).collect::<Vec<_>>(),
            "ignore_app_secrets": p.ignore_app_secrets,
            "env_from": p.env_from.iter().map(|e| json!({
                "env_var": e.env_var,
                "field_ref": e.field_ref,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "stop_config": {
            "signal": c.stop.signal,
            "timeout": c.stop.timeout.map(format_go_duration),
        },
        "dns": {
            "skip_registration": c.dns.skip_registration,
            "nameservers": c.dns.nameservers,
            "searches": c.dns.searches,
            "options": c.dns.options.iter().map(|o| json!({
                "name": o.name,
                "value": o.value,
            })).collect::<Vec<_>>(),
            "dns_forward_rules": c.dns.forward_rules.iter().map(|r| json!({
                "basename": r.basename,
                "addr": r.addr,
            })).collect::<Vec<_>>(),
            "hostname": c.dns.hostname,
            "hostname_fqdn": c.dns.hostname_fqdn,
        },
        "statics": c.statics.iter().map(|st| json!({
            "guest_path": st.guest_path,
            "url_prefix": st.url_prefix,
            "tigris_bucket": st.tigris_bucket,
            "index_document": st.index_document,
        })).collect::<Vec<_>>(),
        "mounts": c.mounts.iter().map(|m| json!({
            "volume": m.volume.as_ref().map(|v| v.as_str()),
            "name": m.name,
            "path": m.path,
            "extend_threshold_percent": m.extend_threshold_percent,
            "add_size_gb": m.add_size_gb,
            "size_gb_limit": m.size_gb_limit,
        })).collect::<Vec<_>>(),
    }))
}

/// A machine- or service-level check as sent.
fn check_json(ch: &CheckConfig) -> Value {
    json!({
        "type": ch.kind.as_str(),
        "port": ch.port,
        "interval": format_go_duration(ch.interval),
        "timeout": format_go_duration(ch.timeout),
        "grace_period": ch.grace_period.map(format_go_duration),
        "method": ch.method,
        "path": ch.path,
        "protocol": ch.protocol,
        "tls_skip_verify": ch.tls_skip_verify,
        "tls_server_name": ch.tls_server_name,
        "headers": ch.headers.iter().map(|h| json!({
            "name": h.name,
            "values": h.values,
        })).collect::<Vec<_>>(),
    })
}

/// Drops, at every level, object members that are `null`, `false`, `[]` or
/// `{}` (after pruning their own members). List elements are kept, so a
/// list's length and order always count.
pub fn prune(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, prune(v)))
                .filter(|(_, v)| !is_unset(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(prune).collect()),
        other => other,
    }
}

fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// JSON text with object keys sorted and no whitespace, independent of the
/// order a map was built in.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests;
