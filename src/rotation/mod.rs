//! Rotation decisions for scoped deploy tokens: when a token rotates, and
//! which single step comes next. Pure: no I/O, no clock, no RNG, no token
//! values (a [`Fingerprint`](crate::crypto::Fingerprint) identifies a token).
//!
//! # Lifecycle
//!
//! Each token of a tenant has at most one ACTIVE credential (what consumers
//! use and the registry endpoint serves), at most one PENDING one (minted by a
//! rotation, not yet promoted), RETIRING ones (replaced, still valid until
//! their grace ends) and REVOKED ones (history). [`TokenRecord`] holds them in
//! a shape where these limits are structural.
//!
//! # Protocol of one rotation
//!
//! 1. `BeginRotation`: record a rotation id (database only).
//! 2. `Mint`: record `sent_at`, then create the token under the name
//!    [`mint_name`] (tenant, token, rotation id, attempt). A response that never
//!    arrives is resolved by listing the app's tokens for that name: if it
//!    landed, it is revoked (its value was never received, so nobody holds
//!    it) and the next attempt is minted; if it did not land within the
//!    policy's `mint_settle` window, the next attempt is minted. A mint is
//!    never repeated blind.
//! 3. `Verify`: `GET /v1/tokens/current` with the pending token must show the
//!    tenant's app. Rejected: the token is revoked (never delivered) and a new
//!    attempt minted. Verification comes *before* delivery (the issue lists
//!    delivery first): a token Fly rejects never reaches a consumer, so a
//!    failed verification needs no rollback.
//! 4. `WriteSecrets`: the app secrets get the pending token (recording the
//!    secrets version), then `UpdateMachines` with `min_secrets_version` until
//!    no machine is behind.
//! 5. `Promote`, in one transaction: pending → ACTIVE (the registry endpoint
//!    now serves it), previous ACTIVE → RETIRING with `revoke_after = now +
//!    grace` (zero for the regenerate endpoint), `lastRotated = now`.
//! 6. After the grace period: `Revoke` the RETIRING token.
//!
//! Every step is one idempotent attempt; its outcome is recorded with
//! [`apply`], and [`decide`] is asked again. A crash between any two steps
//! leaves a record from which `decide` continues: nothing is minted twice,
//! nothing delivered is revoked early.
//!
//! # Failures
//!
//! A failed step is recorded ([`Outcome::Failed`]) and backs off; after the
//! policy's number of failed cycles the token is halted (`TokenRecord::halted`)
//! until an operator resumes it ([`Outcome::Resumed`]). No failure path
//! revokes a token that may have reached a consumer.
//!
//! # Scheduling
//!
//! [`schedule`] computes when a token is due: cron schedule (in its time zone)
//! or `expiry - renewBefore`, whichever is first, plus deterministic jitter.

mod apply;
mod decide;
mod model;
pub mod org;
pub mod schedule;

#[cfg(test)]
mod tests;

pub use apply::{Outcome, TransitionError, apply};
pub use decide::{Action, DecideError, Decision, Reason, WaitReason, decide};
pub use model::{
    Active, Credential, Desired, Facts, Failure, FlyTokenId, FlyTokenIdError, Halt, ListedToken,
    Listing, MintRef, Phase, Policy, RecordError, Retiring, Revoked, Rotation, RotationCause,
    RotationId, RotationIdError, RotationRequest, StepKind, TokenRecord, TokenState,
    delivery_targets, mint_name, parse_mint_name,
};
pub use schedule::{
    DueCause, Jitter, NextRotation, RotationSchedule, ScheduleError, jitter_seed, next_rotation,
};
