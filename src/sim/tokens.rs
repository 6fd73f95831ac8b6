//! Which token authenticated what: per token, the requests it authenticated
//! and when it was last used, and the requests refused because it was
//! revoked or expired; and the token view (`SimHandle::tokens`, `GET
//! /__sim/tokens`) that joins them with each token's identity, scope and
//! lifetime. Never a value: the world stores only hashes of token secrets,
//! and nothing here has a place for one.
//!
//! A request counts for its token when the gate authenticates it, before
//! any injected fault answers it: the token was presented and accepted (or
//! refused) either way. The ledger is a history since the simulator started;
//! `reset-counters` does not clear it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use jiff::Timestamp;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use super::endpoint::{JsonBody, json_response};
use super::error::{ApiError, ApiResult};
use super::faults::{LostResponse, PendingLostMints};
use super::server::Sim;
use super::state::{Profile, State as World};

/// Why a known token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Revoked,
    Expired,
}

/// What one token did, as the gate saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenUse {
    /// Requests this token authenticated.
    pub requests: u64,
    /// The simulator clock's time of the last of them.
    pub last_used_at: Option<Timestamp>,
    /// Requests refused (401) because the token was revoked.
    pub rejected_revoked: u64,
    /// Requests refused (401) because the token had expired.
    pub rejected_expired: u64,
    /// The time of the last refusal.
    pub last_rejected_at: Option<Timestamp>,
}

/// Per token id, what it did. Behind its own lock, so counting a request
/// never takes the world's write lock.
#[derive(Default)]
pub struct TokenLedger {
    uses: Mutex<BTreeMap<String, TokenUse>>,
}

impl TokenLedger {
    /// A request `token_id` authenticated at `now`.
    pub fn used(&self, token_id: &str, now: Timestamp) {
        let mut uses = lock(&self.uses);
        let u = uses.entry(token_id.to_owned()).or_default();
        u.requests += 1;
        u.last_used_at = Some(now);
    }

    /// A request refused at `now` because `token_id` was revoked or expired.
    pub fn refused(&self, token_id: &str, why: Refusal, now: Timestamp) {
        let mut uses = lock(&self.uses);
        let u = uses.entry(token_id.to_owned()).or_default();
        match why {
            Refusal::Revoked => u.rejected_revoked += 1,
            Refusal::Expired => u.rejected_expired += 1,
        }
        u.last_rejected_at = Some(now);
    }

    pub fn get(&self, token_id: &str) -> TokenUse {
        lock(&self.uses).get(token_id).cloned().unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where a token stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Valid,
    Expired,
    Revoked,
}

/// One token as the control surface shows it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    #[serde(serialize_with = "profile_name")]
    pub profile: Profile,
    pub org: String,
    /// For deploy tokens: the app's name at mint time.
    pub app: Option<String>,
    /// For deploy tokens: the id of the one app they reach.
    pub app_id: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// At the time of the view.
    pub status: TokenStatus,
    pub uses: TokenUse,
}

fn profile_name<S: Serializer>(p: &Profile, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// Every token (the configured org token included), in id order.
pub fn views(st: &World, ledger: &TokenLedger, now: Timestamp) -> Vec<TokenView> {
    st.tokens
        .values()
        .map(|t| TokenView {
            id: t.id.clone(),
            name: t.name.clone(),
            profile: t.profile,
            org: t.org.clone(),
            app: t.app.as_ref().map(|(name, _)| name.clone()),
            app_id: t.app.as_ref().map(|(_, id)| id.clone()),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            status: if t.revoked_at.is_some() {
                TokenStatus::Revoked
            } else if t.expires_at.is_some_and(|e| e <= now) {
                TokenStatus::Expired
            } else {
                TokenStatus::Valid
            },
            uses: ledger.get(&t.id),
        })
        .collect()
}

/// `GET /__sim/tokens`: every token with its use counts, and the mint
/// answers still to be lost.
pub async fn list(State(sim): State<Arc<Sim>>) -> Response {
    let pending: PendingLostMints = sim.faults.pending_lost_mints();
    json_response(
        StatusCode::OK,
        json!({
            "tokens": sim.token_views(),
            "lost_mints_pending": pending,
        }),
    )
}

/// Body of `POST /__sim/tokens/lose-next-mints`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoseNextMints {
    count: u32,
    #[serde(default)]
    how: LostResponse,
}

/// `POST /__sim/tokens/lose-next-mints` `{"count": N, "how":
/// "error"|"stall"|"drop"}`: the next N mints create their token and lose
/// the answer (0 cancels). Answers the pending losses.
pub async fn lose_next_mints(State(sim): State<Arc<Sim>>, JsonBody(body): JsonBody) -> ApiResult {
    let req: LoseNextMints = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"count\": N, \"how\": \"error\"|\"stall\"|\"drop\"}}: {e}"
        ))
    })?;
    sim.faults.lose_next_mints(req.count, req.how);
    tracing::info!(
        count = req.count,
        how = req.how.as_str(),
        "lost mint answers set"
    );
    Ok(json_response(
        StatusCode::OK,
        json!({"lost_mints_pending": sim.faults.pending_lost_mints()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_counts_uses_and_refusals_per_token() {
        let at = |s: i64| Timestamp::from_second(s).expect("ts");
        let l = TokenLedger::default();
        l.used("a", at(1));
        l.used("a", at(5));
        l.refused("a", Refusal::Revoked, at(7));
        l.refused("b", Refusal::Expired, at(9));
        assert_eq!(
            l.get("a"),
            TokenUse {
                requests: 2,
                last_used_at: Some(at(5)),
                rejected_revoked: 1,
                rejected_expired: 0,
                last_rejected_at: Some(at(7)),
            }
        );
        assert_eq!(l.get("b").rejected_expired, 1);
        assert_eq!(l.get("b").requests, 0);
        assert_eq!(l.get("never"), TokenUse::default());
    }
}
