//! The checks Fly applies to what runs inside a machine and what it is
//! given: `init`, `files`, `processes`, `statics`, `stop_config` and
//! `mounts`. Each returns the message of a 400 naming the field.
//!
//! Sources: the OpenAPI document's descriptions (`fly.File`: "GuestPath ...
//! must be an absolute path", "One of RawValue or SecretName must be set",
//! `raw_value` is base64; `fly.Static` requires `guest_path` and
//! `url_prefix`; `fly.EnvFrom.field_ref`'s enum; `fly.MachineSecret` and
//! `fly.EnvFrom`: "EnvVar is required ... must be a valid environment variable
//! name") and Fly's machine docs (`mounts`: "you may only mount one volume
//! per Machine"; `add_size_gb` is "required with `extend_threshold_percent`").
//! Which volume a mount names, and whether it may attach, is decided with the
//! app at hand (`sim::volumes`).

use std::collections::BTreeSet;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::sim::gojson::{self, Decoded};

const FIELD_REFS: &[&str] = &["id", "version", "app_name", "private_ip", "region", "image"];

type Obj = Map<String, Value>;

fn items<'a>(cfg: &'a Decoded, field: &str) -> impl Iterator<Item = (usize, &'a Obj)> {
    cfg.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| v.as_object().map(|o| (i, o)))
}

/// An environment variable name as Fly takes one: letters, digits and `_`,
/// not starting with a digit.
pub fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn absolute(path: &str, at: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err(format!("invalid_argument: {at}: a path is required"));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "invalid_argument: {at}: {path:?} is not an absolute path"
        ));
    }
    Ok(())
}

/// `init`: a swap size is not negative.
pub fn check_init(cfg: &Decoded) -> Result<(), String> {
    if let Some(init) = cfg.get("init").and_then(Value::as_object)
        && gojson::get_i64(init, "swap_size_mb").is_some_and(|n| n < 0)
    {
        return Err("invalid_argument: config.init.swap_size_mb: must not be negative".into());
    }
    Ok(())
}

/// `files`: an absolute, unique guest path; exactly one source (`raw_value`
/// in base64, `secret_name`, or `image_config`); a mode within `0o7777`.
pub fn check_files(cfg: &Decoded) -> Result<(), String> {
    let mut paths = BTreeSet::new();
    for (i, file) in items(cfg, "files") {
        let at = format!("config.files[{i}]");
        let path = gojson::get_str(file, "guest_path");
        absolute(path, &format!("{at}.guest_path"))?;
        if !paths.insert(path) {
            return Err(format!(
                "invalid_argument: {at}.guest_path: {path:?} is written by another file"
            ));
        }
        let sources: Vec<&str> = ["raw_value", "secret_name", "image_config"]
            .into_iter()
            .filter(|k| file.contains_key(*k))
            .collect();
        if sources.len() != 1 {
            return Err(format!(
                "invalid_argument: {at}: exactly one of raw_value, secret_name or image_config must be set (got {})",
                if sources.is_empty() {
                    "none".to_owned()
                } else {
                    sources.join(", ")
                }
            ));
        }
        if let Some(raw) = file.get("raw_value").and_then(Value::as_str)
            && base64::engine::general_purpose::STANDARD
                .decode(raw)
                .is_err()
        {
            return Err(format!(
                "invalid_argument: {at}.raw_value: not valid base64 (standard alphabet, padded)"
            ));
        }
        if let Some(name) = file.get("secret_name").and_then(Value::as_str)
            && !is_env_name(name)
        {
            return Err(format!(
                "invalid_argument: {at}.secret_name: {name:?} is not a secret name"
            ));
        }
        if gojson::get_u64(file, "mode").is_some_and(|m| m > 0o7777) {
            return Err(format!(
                "invalid_argument: {at}.mode: permission bits must be within 0o7777"
            ));
        }
    }
    Ok(())
}

/// The secret names `files` read (checked against the app's secrets at
/// launch).
pub fn file_secrets(config: &Value) -> Vec<(usize, &str)> {
    config
        .get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, f)| f.get("secret_name").and_then(Value::as_str).map(|n| (i, n)))
        .collect()
}

/// `processes`: environment names, per-process secrets with an `env_var`,
/// `env_from` with an `env_var` and a known `field_ref`.
pub fn check_processes(cfg: &Decoded) -> Result<(), String> {
    for (i, proc) in items(cfg, "processes") {
        let at = format!("config.processes[{i}]");
        if let Some(env) = proc.get("env").and_then(Value::as_object)
            && let Some(bad) = env.keys().find(|k| !is_env_name(k))
        {
            return Err(format!(
                "invalid_argument: {at}.env: {bad:?} is not an environment variable name"
            ));
        }
        for (j, secret) in items(proc, "secrets") {
            let var = gojson::get_str(secret, "env_var");
            if !is_env_name(var) {
                return Err(format!(
                    "invalid_argument: {at}.secrets[{j}].env_var: {var:?} is not an environment variable name (env_var is required)"
                ));
            }
            let name = gojson::get_str(secret, "name");
            if !name.is_empty() && !is_env_name(name) {
                return Err(format!(
                    "invalid_argument: {at}.secrets[{j}].name: {name:?} is not a secret name"
                ));
            }
        }
        for (j, from) in items(proc, "env_from") {
            let var = gojson::get_str(from, "env_var");
            if !is_env_name(var) {
                return Err(format!(
                    "invalid_argument: {at}.env_from[{j}].env_var: {var:?} is not an environment variable name (env_var is required)"
                ));
            }
            let field = gojson::get_str(from, "field_ref");
            if !FIELD_REFS.contains(&field) {
                return Err(format!(
                    "invalid_argument: {at}.env_from[{j}].field_ref: {field:?} is not one of {}",
                    FIELD_REFS.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// `statics`: an absolute guest path and a URL prefix, both required.
pub fn check_statics(cfg: &Decoded) -> Result<(), String> {
    for (i, st) in items(cfg, "statics") {
        let at = format!("config.statics[{i}]");
        absolute(
            gojson::get_str(st, "guest_path"),
            &format!("{at}.guest_path"),
        )?;
        let prefix = gojson::get_str(st, "url_prefix");
        if !prefix.starts_with('/') {
            return Err(format!(
                "invalid_argument: {at}.url_prefix: {prefix:?} must start with \"/\" (url_prefix is required)"
            ));
        }
    }
    Ok(())
}

/// `stop_config.timeout` is not negative (the signal is checked with the
/// other enums).
pub fn check_stop_config(cfg: &Decoded) -> Result<(), String> {
    if let Some(stop) = cfg.get("stop_config").and_then(Value::as_object)
        && gojson::get_i64(stop, "timeout").is_some_and(|ns| ns < 0)
    {
        return Err("invalid_argument: config.stop_config.timeout: must not be negative".into());
    }
    Ok(())
}

/// `mounts`: at most one; an absolute path; a volume named by id
/// (`volume`) or by `name`; auto-extension settings that fit together.
pub fn check_mounts(cfg: &Decoded) -> Result<(), String> {
    let mounts: Vec<(usize, &Obj)> = items(cfg, "mounts").collect();
    if mounts.len() > 1 {
        return Err(format!(
            "invalid_argument: config.mounts: a machine mounts at most one volume (got {})",
            mounts.len()
        ));
    }
    for (i, mount) in mounts {
        let at = format!("config.mounts[{i}]");
        absolute(gojson::get_str(mount, "path"), &format!("{at}.path"))?;
        if gojson::get_str(mount, "volume").is_empty() && gojson::get_str(mount, "name").is_empty()
        {
            return Err(format!(
                "invalid_argument: {at}: a volume id (volume) or a volume name (name) is required"
            ));
        }
        let threshold = gojson::get_i64(mount, "extend_threshold_percent").unwrap_or(0);
        if !(0..=100).contains(&threshold) {
            return Err(format!(
                "invalid_argument: {at}.extend_threshold_percent: must be between 0 and 100"
            ));
        }
        let add = gojson::get_i64(mount, "add_size_gb").unwrap_or(0);
        let limit = gojson::get_i64(mount, "size_gb_limit").unwrap_or(0);
        if add < 0 || limit < 0 || gojson::get_i64(mount, "size_gb").unwrap_or(0) < 0 {
            return Err(format!(
                "invalid_argument: {at}: sizes must not be negative"
            ));
        }
        if threshold > 0 && add == 0 {
            return Err(format!(
                "invalid_argument: {at}.add_size_gb: required with extend_threshold_percent"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decoded(v: Value) -> Decoded {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn files_need_one_source_and_an_absolute_unique_path() {
        let ok = decoded(json!({"files": [
            {"guest_path": "/etc/a", "raw_value": "aGk="},
            {"guest_path": "/etc/b", "secret_name": "API_KEY", "mode": 384}
        ]}));
        check_files(&ok).expect("valid");
        for (bad, needle) in [
            (
                json!({"files": [{"guest_path": "etc/a", "raw_value": "aGk="}]}),
                "absolute",
            ),
            (
                json!({"files": [{"raw_value": "aGk="}]}),
                "path is required",
            ),
            (json!({"files": [{"guest_path": "/a"}]}), "got none"),
            (
                json!({"files": [{"guest_path": "/a", "raw_value": "aGk=", "secret_name": "K"}]}),
                "raw_value, secret_name",
            ),
            (
                json!({"files": [{"guest_path": "/a", "raw_value": "not base64!"}]}),
                "base64",
            ),
            (
                json!({"files": [{"guest_path": "/a", "raw_value": "aGk="}, {"guest_path": "/a", "raw_value": "aGk="}]}),
                "another file",
            ),
            (
                json!({"files": [{"guest_path": "/a", "secret_name": "9x"}]}),
                "secret name",
            ),
            (
                json!({"files": [{"guest_path": "/a", "raw_value": "", "mode": 65535}]}),
                "0o7777",
            ),
        ] {
            let err = check_files(&decoded(bad.clone())).expect_err(&bad.to_string());
            assert!(err.contains(needle), "{bad}: {err}");
            assert!(err.contains("config.files["), "{err}");
        }
    }

    #[test]
    fn processes_statics_and_mounts_are_checked() {
        let ok = decoded(json!({
            "processes": [{"cmd": ["serve"], "env": {"MODE": "web"},
                "secrets": [{"env_var": "KEY", "name": "API_KEY"}],
                "env_from": [{"env_var": "REGION", "field_ref": "region"}]}],
            "statics": [{"guest_path": "/app/public", "url_prefix": "/static"}],
            "mounts": [{"volume": "vol_1", "path": "/data", "extend_threshold_percent": 80, "add_size_gb": 1}]
        }));
        check_processes(&ok).expect("processes");
        check_statics(&ok).expect("statics");
        check_mounts(&ok).expect("mounts");
        let bad = [
            (
                json!({"processes": [{"secrets": [{"name": "API_KEY"}]}]}),
                check_processes as fn(&Decoded) -> Result<(), String>,
                "secrets[0].env_var",
            ),
            (
                json!({"processes": [{"env_from": [{"env_var": "R", "field_ref": "zone"}]}]}),
                check_processes,
                "field_ref",
            ),
            (
                json!({"processes": [{"env": {"bad-name": "x"}}]}),
                check_processes,
                "env",
            ),
            (
                json!({"statics": [{"guest_path": "/p"}]}),
                check_statics,
                "url_prefix",
            ),
            (
                json!({"statics": [{"url_prefix": "/s"}]}),
                check_statics,
                "guest_path",
            ),
            (
                json!({"mounts": [{"volume": "a", "path": "/a"}, {"volume": "b", "path": "/b"}]}),
                check_mounts,
                "at most one",
            ),
            (json!({"mounts": [{"volume": "a"}]}), check_mounts, "path"),
            (
                json!({"mounts": [{"path": "/a"}]}),
                check_mounts,
                "volume id",
            ),
            (
                json!({"mounts": [{"name": "a", "path": "/a", "extend_threshold_percent": 80}]}),
                check_mounts,
                "add_size_gb",
            ),
            (
                json!({"mounts": [{"name": "a", "path": "/a", "extend_threshold_percent": 180, "add_size_gb": 1}]}),
                check_mounts,
                "between 0 and 100",
            ),
        ];
        for (cfg, check, needle) in bad {
            let err = check(&decoded(cfg.clone())).expect_err(&cfg.to_string());
            assert!(err.contains(needle), "{cfg}: {err}");
        }
    }
}
