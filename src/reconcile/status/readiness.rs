//! Whether a tenant is Ready *for its current spec*: the decision `wait_ready`
//! (MCP) polls. Pure: it reads what the controller last stored.
//!
//! Ready means the controller has reconciled the current generation (the
//! row's `observedGeneration` is at least its `generation`) and the `Ready`
//! condition it wrote for that generation is `True`. A `True` left over from
//! an older generation is not Ready: the change just stored has not been
//! looked at yet.

use serde::Serialize;

use super::{ConditionStatus, READY, TenantStatus};

/// Where a tenant stands, as `wait_ready` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Readiness {
    /// Reconciled at the current generation and Ready.
    Ready,
    /// The current generation has not been reconciled yet.
    NotObserved { generation: i64, observed: i64 },
    /// Reconciled, but the `Ready` condition is not `True` (or absent).
    NotReady { reason: String, message: String },
    /// Marked for deletion: it will never be Ready again.
    Deleting,
}

impl Readiness {
    /// The state's name as it is serialized (`state` in JSON), for callers
    /// that report it as a plain string.
    pub fn name(&self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::NotObserved { .. } => "notObserved",
            Readiness::NotReady { .. } => "notReady",
            Readiness::Deleting => "deleting",
        }
    }

    /// Whether waiting for it can end with Ready.
    pub fn is_final(&self) -> bool {
        matches!(self, Readiness::Ready | Readiness::Deleting)
    }

    /// One line for people (progress messages).
    pub fn describe(&self) -> String {
        match self {
            Readiness::Ready => "Ready".to_string(),
            Readiness::NotObserved {
                generation,
                observed,
            } => format!(
                "waiting for the controller to reconcile generation {generation} (it has seen {observed})"
            ),
            Readiness::NotReady { reason, message } if message.is_empty() => {
                format!("not Ready: {reason}")
            }
            Readiness::NotReady { reason, message } => format!("not Ready: {reason}: {message}"),
            Readiness::Deleting => "being deleted".to_string(),
        }
    }
}

/// The readiness of a tenant stored at `generation`, reconciled up to
/// `observed_generation`, with `status`; `deleting` when marked for deletion.
pub fn readiness(
    generation: i64,
    observed_generation: i64,
    status: &TenantStatus,
    deleting: bool,
) -> Readiness {
    if deleting {
        return Readiness::Deleting;
    }
    if observed_generation < generation {
        return Readiness::NotObserved {
            generation,
            observed: observed_generation,
        };
    }
    match status.condition(READY) {
        Some(c) if c.status == ConditionStatus::True && c.observed_generation >= generation => {
            Readiness::Ready
        }
        Some(c) if c.observed_generation < generation => Readiness::NotObserved {
            generation,
            observed: c.observed_generation,
        },
        Some(c) => Readiness::NotReady {
            reason: c.reason.clone(),
            message: c.message.clone(),
        },
        None => Readiness::NotReady {
            reason: "Unknown".to_string(),
            message: "the controller has written no Ready condition yet".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::super::Condition;
    use super::*;

    fn status(ready: ConditionStatus, reason: &str, observed: i64) -> TenantStatus {
        let mut s = TenantStatus::default();
        s.set_condition(Condition {
            kind: READY.to_string(),
            status: ready,
            reason: reason.to_string(),
            message: "m".to_string(),
            observed_generation: observed,
            last_transition_time: Timestamp::UNIX_EPOCH,
        });
        s
    }

    #[test]
    fn name_is_the_serialized_state() {
        let all = [
            Readiness::Ready,
            Readiness::NotObserved {
                generation: 2,
                observed: 1,
            },
            Readiness::NotReady {
                reason: "r".to_string(),
                message: String::new(),
            },
            Readiness::Deleting,
        ];
        for r in all {
            let json = serde_json::to_value(&r).unwrap();
            assert_eq!(json["state"], r.name(), "{r:?}");
        }
    }

    #[test]
    fn ready_only_for_the_current_generation() {
        let s = status(ConditionStatus::True, "Available", 3);
        assert_eq!(readiness(3, 3, &s, false), Readiness::Ready);
        // A True from generation 3 says nothing of generation 4.
        assert_eq!(
            readiness(4, 3, &s, false),
            Readiness::NotObserved {
                generation: 4,
                observed: 3
            }
        );
        // The row says observed, but the condition is older.
        assert_eq!(
            readiness(4, 4, &s, false),
            Readiness::NotObserved {
                generation: 4,
                observed: 3
            }
        );
    }

    #[test]
    fn not_ready_carries_the_reason_and_deletion_wins() {
        let s = status(ConditionStatus::False, "Progressing", 2);
        assert_eq!(
            readiness(2, 2, &s, false),
            Readiness::NotReady {
                reason: "Progressing".into(),
                message: "m".into()
            }
        );
        assert_eq!(
            readiness(2, 2, &status(ConditionStatus::True, "Available", 2), true),
            Readiness::Deleting
        );
        assert!(matches!(
            readiness(1, 1, &TenantStatus::default(), false),
            Readiness::NotReady { .. }
        ));
        assert!(Readiness::Ready.is_final() && Readiness::Deleting.is_final());
        assert!(!readiness(1, 0, &TenantStatus::default(), false).is_final());
    }
}
