//! The part of a tenant's status document the *source sync* owns (`serve
//! --git-repo`, see `docs/gitops.md`), not the reconciler:
//!
//! * `lastAppliedRevision`: the commit whose specs were last applied to the
//!   tenant;
//! * the condition `SourceSynced`: `True` (reason `Applied`) once a commit
//!   is applied; `False` with reason `InvalidSpec` (the message names file,
//!   line and field) or `PruneRefused` when a newer commit was not applied.
//!
//! The controller rewrites the whole document at the end of every
//! activation from the copy it read at the start; the store carries these
//! keys over from the stored row in the same write ([`carry`]), so a sync
//! that lands mid-activation is never lost. Pure JSON in, JSON out: the
//! status document is read leniently (a missing or odd key is "none").

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Condition, ConditionStatus};

/// The status key of the last applied commit.
pub const REVISION_KEY: &str = "lastAppliedRevision";
/// The condition the source sync sets.
pub const SOURCE_SYNCED: &str = "SourceSynced";

/// Reasons of [`SOURCE_SYNCED`].
pub mod reasons {
    /// The revision's specs are stored.
    pub const APPLIED: &str = "Applied";
    /// A spec of the revision is invalid; nothing of it was applied.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The revision would prune more than allowed; nothing was applied.
    pub const PRUNE_REFUSED: &str = "PruneRefused";

    pub const ALL: &[&str] = &[APPLIED, INVALID_SPEC, PRUNE_REFUSED];
}

/// What a sync records on one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMark {
    /// Sets `lastAppliedRevision` (only when the revision was applied).
    pub revision: Option<String>,
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
    pub at: Timestamp,
}

fn object(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    }
}

fn conditions(m: &Map<String, Value>) -> Vec<Value> {
    match m.get("conditions") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
}

fn is_source_condition(c: &Value) -> bool {
    c.get("type").and_then(Value::as_str) == Some(SOURCE_SYNCED)
}

/// `status` with the mark applied: the revision (if any) and the
/// `SourceSynced` condition, whose `lastTransitionTime` moves only when its
/// status flips. `generation` is the tenant's (the condition's
/// `observedGeneration`).
pub fn mark(status: &Value, m: &SourceMark, generation: i64) -> Value {
    let mut doc = object(status);
    if let Some(rev) = &m.revision {
        doc.insert(REVISION_KEY.to_string(), Value::String(rev.clone()));
    }
    let mut conds = conditions(&doc);
    let new_status = if m.ok {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let old = conds
        .iter()
        .find(|c| is_source_condition(c))
        .and_then(|c| serde_json::from_value::<Condition>(c.clone()).ok());
    let since = match old {
        Some(o) if o.status == new_status => o.last_transition_time,
        _ => m.at,
    };
    let condition = Condition {
        kind: SOURCE_SYNCED.to_string(),
        status: new_status,
        reason: m.reason.to_string(),
        message: m.message.clone(),
        observed_generation: generation,
        last_transition_time: since,
    };
    conds.retain(|c| !is_source_condition(c));
    conds.push(serde_json::to_value(condition).expect("a condition serializes"));
    doc.insert("conditions".to_string(), Value::Array(conds));
    Value::Object(doc)
}

/// `new` (a status the controller derived) with the keys the source sync
/// owns taken from `stored` (the row as it is now): the revision and the
/// `SourceSynced` condition; absent in `stored`, absent in the result.
pub fn carry(stored: &Value, new: &Value) -> Value {
    let Value::Object(_) = new else {
        return new.clone();
    };
    let stored = object(stored);
    let mut doc = object(new);
    match stored.get(REVISION_KEY) {
        Some(v) => doc.insert(REVISION_KEY.to_string(), v.clone()),
        None => doc.remove(REVISION_KEY),
    };
    let mut conds = conditions(&doc);
    conds.retain(|c| !is_source_condition(c));
    conds.extend(
        conditions(&stored)
            .into_iter()
            .filter(is_source_condition)
            .take(1),
    );
    if doc.contains_key("conditions") || !conds.is_empty() {
        doc.insert("conditions".to_string(), Value::Array(conds));
    }
    Value::Object(doc)
}

/// The revision last applied to a tenant, from its stored status.
pub fn last_applied_revision(status: &Value) -> Option<&str> {
    status.get(REVISION_KEY).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::reconcile::status::TenantStatus;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn applied(rev: &str, when: &str) -> SourceMark {
        SourceMark {
            revision: Some(rev.into()),
            ok: true,
            reason: reasons::APPLIED,
            message: format!("applied {rev}"),
            at: at(when),
        }
    }

    #[test]
    fn marks_set_the_revision_and_one_condition() {
        let s = json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Available", "message": "", "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let s = mark(&s, &applied("abc", "2026-01-02T00:00:00Z"), 2);
        let s = mark(&s, &applied("def", "2026-01-03T00:00:00Z"), 2);
        assert_eq!(last_applied_revision(&s), Some("def"));
        let status = TenantStatus::from_json(&s);
        assert_eq!(status.conditions.len(), 2);
        let c = status.condition(SOURCE_SYNCED).unwrap();
        // Still True: the transition time stays at the first.
        assert_eq!(c.last_transition_time, at("2026-01-02T00:00:00Z"));
        assert_eq!(c.message, "applied def");
        // A failure keeps the revision and flips the condition.
        let failed = SourceMark {
            revision: None,
            ok: false,
            reason: reasons::INVALID_SPEC,
            message: "specs/a.yaml:3:5: spec.org: required".into(),
            at: at("2026-01-04T00:00:00Z"),
        };
        let s = mark(&s, &failed, 2);
        assert_eq!(last_applied_revision(&s), Some("def"));
        let c = TenantStatus::from_json(&s)
            .condition(SOURCE_SYNCED)
            .cloned()
            .unwrap();
        assert_eq!(c.status, ConditionStatus::False);
        assert_eq!(c.last_transition_time, at("2026-01-04T00:00:00Z"));
    }

    #[test]
    fn marks_survive_odd_documents() {
        for odd in [
            json!(null),
            json!([]),
            json!({"conditions": "x"}),
            json!({"conditions": [1, {"type": 2}]}),
        ] {
            let s = mark(&odd, &applied("abc", "2026-01-02T00:00:00Z"), 1);
            assert_eq!(last_applied_revision(&s), Some("abc"));
        }
    }

    #[test]
    fn carry_keeps_what_the_sync_wrote_over_a_stale_copy() {
        let read_by_controller = json!({"conditions": []});
        let stored = mark(
            &read_by_controller,
            &applied("abc", "2026-01-02T00:00:00Z"),
            1,
        );
        // The controller derived its status from the copy it read before.
        let derived = json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Available", "message": "", "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let written = carry(&stored, &derived);
        assert_eq!(last_applied_revision(&written), Some("abc"));
        let status = TenantStatus::from_json(&written);
        assert!(status.condition(SOURCE_SYNCED).is_some());
        assert!(status.condition("Ready").is_some());
        assert_eq!(status.observed_generation, 1);
        // Nothing stored: nothing invented, and a stale copy's keys go.
        let stale = mark(&derived, &applied("old", "2026-01-01T00:00:00Z"), 1);
        let written = carry(&json!({}), &stale);
        assert_eq!(last_applied_revision(&written), None);
        assert!(
            TenantStatus::from_json(&written)
                .condition(SOURCE_SYNCED)
                .is_none()
        );
        assert_eq!(carry(&json!({}), &json!({})), json!({}));
    }
}
