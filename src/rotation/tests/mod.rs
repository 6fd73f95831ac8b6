//! Rotation tests: shared fixtures here; table tests per transition of
//! `decide` and `apply`, the model's helpers, and the randomized crash/fault
//! simulation in the submodules.

mod apply;
mod decide;
mod model;
mod sim;

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use super::*;
use crate::crypto::Fingerprint;
use crate::ids::{SecretName, TenantName, TokenName};
use crate::spec::model::{CronSchedule, DeliverTo, DurationSecs, TokenKind, TokenSpec};

pub(super) fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub(super) fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

pub(super) const T0: &str = "2026-05-01T12:00:00Z";
const HOUR: u64 = 3600;

pub(super) fn tenant() -> TenantName {
    TenantName::parse("acme").unwrap()
}

pub(super) fn token() -> TokenName {
    TokenName::parse("deploy").unwrap()
}

/// Rotation ids with hex letters in them, so case matters.
pub(super) fn rid(n: u8) -> RotationId {
    let mut b = [0xab; 16];
    b[0] = n;
    RotationId::from_uuid(Uuid::from_bytes(b))
}

pub(super) fn fly(id: &str) -> FlyTokenId {
    FlyTokenId::parse(id).unwrap()
}

/// A daily token with an 8 h renewal margin and a 10 min grace, delivered
/// to `FLY_API_TOKEN`; `cron` optional.
pub(super) fn spec(cron: Option<&str>) -> TokenSpec {
    TokenSpec {
        name: token(),
        kind: TokenKind::Deploy,
        expiry: DurationSecs(24 * HOUR),
        schedule: cron.map(|c| CronSchedule {
            cron: c.into(),
            time_zone: None,
        }),
        renew_before: DurationSecs(8 * HOUR),
        grace: DurationSecs(600),
        deliver_to: DeliverTo {
            app_secrets: vec![SecretName::parse("FLY_API_TOKEN").unwrap()],
            registry: true,
        },
    }
}

pub(super) fn cred(id: &str, rotation: RotationId, minted: Timestamp) -> Credential {
    Credential {
        fly_token_id: fly(id),
        rotation_id: rotation,
        fingerprint: Fingerprint::of_bytes(id.as_bytes()),
        minted_at: minted,
        expires_at: minted + SignedDuration::from_hours(24),
    }
}

/// Policy without jitter, so due times are exact.
pub(super) fn policy() -> Policy {
    Policy {
        max_jitter: SignedDuration::ZERO,
        ..Policy::default()
    }
}

/// One token's world for a decision.
struct World {
    record: TokenRecord,
    spec: Option<TokenSpec>,
    deleting: bool,
    app_exists: bool,
    secrets: Vec<SecretName>,
    listed: Option<Vec<ListedToken>>,
    /// When the listing was taken; `None`: at the decision's `now`.
    listed_at: Option<Timestamp>,
    machines_behind: u32,
}

impl World {
    fn new() -> Self {
        let spec = spec(None);
        Self {
            record: TokenRecord::new(token()),
            secrets: spec.deliver_to.app_secrets.clone(),
            spec: Some(spec),
            deleting: false,
            app_exists: true,
            listed: None,
            listed_at: None,
            machines_behind: 0,
        }
    }

    /// A token minted and promoted at T0 by rotation 1 as `tok-1`.
    fn active() -> Self {
        let mut w = Self::new();
        w.record.active = Some(Active {
            credential: cred("tok-1", rid(1), t(T0)),
            since: t(T0),
        });
        w.record.last_rotated = Some(t(T0));
        w
    }

    fn rotating(mut self, phase: Phase) -> Self {
        self.record.rotation = Some(Rotation {
            id: rid(2),
            cause: RotationCause::Schedule,
            started_at: t(T0),
            zero_grace: false,
            attempt: 1,
            phase,
        });
        self
    }

    fn decide(&self, now: Timestamp) -> Decision {
        self.try_decide(now).unwrap()
    }

    fn try_decide(&self, now: Timestamp) -> Result<Decision, DecideError> {
        let tenant = tenant();
        let desired = Desired {
            tenant: &tenant,
            spec: self.spec.as_ref(),
            deleting: self.deleting,
            app_secrets: &self.secrets,
        };
        let facts = Facts {
            app_exists: self.app_exists,
            listed: self.listed.as_deref().map(|tokens| Listing {
                at: self.listed_at.unwrap_or(now),
                tokens,
            }),
            machines_behind: self.machines_behind,
        };
        decide(&self.record, &desired, &facts, now, &policy())
    }
}

fn listed(id: &str, name: String, revoked: bool) -> ListedToken {
    ListedToken {
        fly_token_id: fly(id),
        name,
        revoked,
    }
}

fn acts(d: &Decision) -> (&Action, &Reason) {
    match d {
        Decision::Act { action, reason } => (action, reason),
        other => panic!("expected an action, got {other:?}"),
    }
}

/// `tok-0`, replaced at T0, in its grace period until `revoke_after`.
fn retiring(revoke_after: Timestamp) -> Retiring {
    Retiring {
        credential: cred("tok-0", rid(0), t(T0)),
        since: t(T0),
        revoke_after,
    }
}

fn pending() -> Credential {
    cred("tok-2", rid(2), t(T0))
}
