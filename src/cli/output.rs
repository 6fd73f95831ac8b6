//! How tenants are shown: the API-style object (`-o json|yaml`) and the table.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::spec::{API_VERSION, KIND_TENANT};
use crate::store::TenantRecord;

/// `{apiVersion, kind, metadata, spec, status}`: the spec is the canonical
/// (defaults-filled) form; `status.observedGeneration` joins the controller's
/// status document.
pub fn tenant_object(r: &TenantRecord) -> Value {
    let mut metadata = json!({
        "name": r.name,
        "labels": r.tenant.metadata.labels,
        "annotations": r.tenant.metadata.annotations,
        "generation": r.generation,
        "creationTimestamp": r.created_at.to_string(),
        "updateTimestamp": r.updated_at.to_string(),
    });
    if let Some(t) = r.deletion_requested_at {
        metadata["deletionTimestamp"] = json!(t.to_string());
    }
    let mut status = serde_json::Map::new();
    status.insert("observedGeneration".into(), json!(r.observed_generation));
    match &r.status {
        Value::Object(fields) => {
            for (k, v) in fields {
                if k != "observedGeneration" {
                    status.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Null => {}
        other => {
            status.insert("document".into(), other.clone());
        }
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND_TENANT,
        "metadata": metadata,
        "spec": r.tenant.spec,
        "status": status,
    })
}

pub fn tenant_list(records: &[TenantRecord]) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": format!("{KIND_TENANT}List"),
        "items": records.iter().map(tenant_object).collect::<Vec<_>>(),
    })
}

/// The `Ready` condition's status (`True`/`False`/`Unknown`), `-` if none.
pub fn ready(status: &Value) -> String {
    ready_field(status, "status")
}

/// The `Ready` condition's reason (`Available`, `SecretsPending`, ...), `-`
/// if none.
pub fn ready_reason(status: &Value) -> String {
    ready_field(status, "reason")
}

fn ready_field(status: &Value, field: &str) -> String {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get(field).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .unwrap_or("-")
        .to_string()
}

/// kubectl-style age: `45s`, `12m`, `5h`, `3d`; `-` for the future.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let secs = now.as_second() - since.as_second();
    match secs {
        s if s < 0 => "-".to_string(),
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Left-aligned columns separated by three spaces, like kubectl.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}   "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s: i64| Timestamp::from_second(t.as_second() + s).unwrap();
        assert_eq!(age(t, at(5)), "5s");
        assert_eq!(age(t, at(119)), "119s");
        assert_eq!(age(t, at(600)), "10m");
        assert_eq!(age(t, at(3 * 3600)), "3h");
        assert_eq!(age(t, at(3 * 86400)), "3d");
        assert_eq!(age(t, at(-1)), "-");
    }

    #[test]
    fn ready_comes_from_the_ready_condition() {
        assert_eq!(ready(&json!({})), "-");
        assert_eq!(
            ready(&json!({"conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True"}
            ]})),
            "True"
        );
        let pending = json!({"conditions": [
            {"type": "Synced", "status": "True", "reason": "ReconcileSuccess"},
            {"type": "Ready", "status": "False", "reason": "SecretsPending"}
        ]});
        assert_eq!(ready(&pending), "False");
        assert_eq!(ready_reason(&pending), "SecretsPending");
        assert_eq!(ready_reason(&json!({})), "-");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["NAME", "APP"],
            &[
                vec!["a".into(), "x".into()],
                vec!["long-name".into(), "y".into()],
            ],
        );
        assert_eq!(t, "NAME        APP\na           x\nlong-name   y\n");
    }
}
