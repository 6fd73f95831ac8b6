//! `GET /v1/orgs/{org_slug}/machines` (`Machines_org_list`): every machine
//! of an organization, oldest change first, the way a controller watches a
//! whole fleet with one poller.
//!
//! What the official document says, and how it is modelled:
//! * machines sorted by `updated_at`, oldest to newest (ties by id);
//! * `updated_after` (RFC 3339): only machines updated after that time;
//! * `cursor` (takes precedence over `updated_after`): opaque, from the
//!   previous page's `next_cursor`; here the position `(updated_at, id)` of
//!   that page's last machine, so a page resumes exactly after it;
//! * `limit`: at most 1,000 (the default), advisory;
//! * "a point in time … recent changes may take time to propagate": a
//!   machine changed within [`SimConfig::org_feed_delay`] is not listed yet;
//!   once listed it carries its real `updated_at`, so a poller that moved its
//!   `updated_after` past that time without an overlap misses it;
//! * `include_deleted`: destroyed machines too (state `destroyed`);
//!   `region` and `state` filters; `summary` omits `config`, which is the
//!   overview `{guest, image, metadata}` (`MachineOverviewConfig`).
//!
//! [`SimConfig::org_feed_delay`]: crate::sim::SimConfig::org_feed_delay

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::sim::endpoint::{Ctx, PathParams, QueryPairs, json_response, rfc3339};
use crate::sim::error::{ApiError, ApiResult};
use crate::sim::state::Machine;

/// The most machines one page holds.
pub const MAX_LIMIT: usize = 1000;

pub async fn list(ctx: Ctx, PathParams(org): PathParams<String>, q: QueryPairs) -> ApiResult {
    ctx.caller.check_org_wide()?;
    ctx.caller.check_org(&org)?;
    let include_deleted = q.flag("include_deleted")?;
    let summary = q.flag("summary")?;
    let region = q.get("region").filter(|r| !r.is_empty());
    let states: Vec<&str> = q
        .all("state")
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => MAX_LIMIT,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_argument: limit must be a positive integer",
                ));
            }
        },
    };
    let after: Option<(Timestamp, String)> = match q.get("cursor").filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_cursor(c)?),
        None => match q.get("updated_after").filter(|u| !u.is_empty()) {
            Some(u) => {
                let t: Timestamp = u.parse().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_argument: updated_after must be an RFC 3339 timestamp",
                    )
                })?;
                // Strictly after `t`: every id sorts after the empty one.
                Some((t, String::new()))
            }
            None => None,
        },
    };
    let st = ctx.read();
    let visible_before = st.now - ctx.sim.cfg.org_feed_delay;
    let mut all: Vec<(&str, &Machine)> = st
        .apps
        .values()
        .filter(|a| a.org == org && st.now >= a.visible_at)
        .flat_map(|a| a.machines.values().map(move |m| (a.name.as_str(), m)))
        .filter(|(_, m)| include_deleted || !m.is_destroyed())
        .filter(|(_, m)| region.is_none_or(|r| m.region == r))
        .filter(|(_, m)| states.is_empty() || states.contains(&m.state.as_str()))
        .filter(|(_, m)| m.updated_at <= visible_before)
        .filter(|(_, m)| match &after {
            None => true,
            Some((t, id)) if id.is_empty() => m.updated_at > *t,
            Some((t, id)) => (m.updated_at, m.id.as_str()) > (*t, id.as_str()),
        })
        .collect();
    all.sort_by(|(_, a), (_, b)| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
    let more = all.len() > limit;
    all.truncate(limit);
    let machines: Vec<Value> = all
        .iter()
        .map(|(app, m)| org_machine(app, m, summary))
        .collect();
    let mut body = Map::new();
    body.insert("machines".into(), Value::Array(machines));
    body.insert("error_regions".into(), json!([]));
    if let Some((_, last)) = all.last() {
        body.insert("last_machine_id".into(), last.id.clone().into());
        body.insert("last_updated_at".into(), rfc3339(last.updated_at).into());
        if more {
            body.insert(
                "next_cursor".into(),
                encode_cursor(last.updated_at, &last.id).into(),
            );
        }
    }
    Ok(json_response(StatusCode::OK, Value::Object(body)))
}

/// One machine as `OrgMachine`.
fn org_machine(app: &str, m: &Machine, summary: bool) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), m.id.clone().into());
    o.insert("name".into(), m.name.clone().into());
    o.insert("app_name".into(), app.into());
    o.insert("state".into(), m.state.clone().into());
    o.insert("region".into(), m.region.clone().into());
    o.insert("private_ip".into(), m.private_ip.clone().into());
    o.insert("version".into(), m.instance_id.clone().into());
    o.insert("created_at".into(), rfc3339(m.created_at).into());
    o.insert("updated_at".into(), rfc3339(m.updated_at).into());
    if !summary {
        let mut config = Map::new();
        for key in ["guest", "image", "metadata"] {
            if let Some(v) = m.config.get(key) {
                config.insert(key.into(), v.clone());
            }
        }
        o.insert("config".into(), Value::Object(config));
    }
    Value::Object(o)
}

/// `<nanoseconds since the epoch>.<machine id>`: opaque to clients, exact
/// (a coarser time would hand the page's last machine out again).
fn encode_cursor(t: Timestamp, id: &str) -> String {
    format!("{}.{id}", t.as_nanosecond())
}

fn decode_cursor(c: &str) -> ApiResult<(Timestamp, String)> {
    let bad = || ApiError::bad_request("invalid_argument: invalid cursor");
    let (nanos, id) = c.split_once('.').ok_or_else(bad)?;
    let nanos: i128 = nanos.parse().map_err(|_| bad())?;
    let t = Timestamp::from_nanosecond(nanos).map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    Ok((t, id.to_string()))
}
