//! Private Fly JSON wire types (request and response bodies) and their
//! mapping to and from the domain types in [`super`].
//!
//! Reading is lenient where Fly is inconsistent and strict where a wrong guess
//! would mislead the reconciler:
//! * `null`, missing and empty maps/lists all read as empty.
//! * `services[].autostop` reads from a bool (`false` = off, `true` = stop) or
//!   a string; a restart policy of `""` or none reads as `"on-failure"`; a
//!   missing guest reads as Fly's default `shared-cpu-1x` (1 CPU, 256 MB);
//!   durations read from Go duration strings (`"1m0s"`) or nanosecond numbers.
//! * A config this client cannot represent (an unknown handler, a port range,
//!   an unknown CPU kind, an unparsable duration) reads as `config: None` with
//!   a warning, exactly like an `incomplete_config`: something that must not be
//!   diffed against. One odd machine never fails a whole observation.
//!
//! Writing always sends the full config flotilla manages, because a machine
//! update is a full replace; the optional parts (`init`, `files`,
//! `processes`, `stop_config`, `dns`, `statics`, `mounts`, GPUs, richer
//! checks) only when set. Fly fields this client does not model (`metrics`,
//! `schedule`, `standbys`, `containers`, `rootfs`, ...) are **not**
//! preserved: an update through this client drops them. flotilla owns its
//! machines' whole config, so that is intended; do not point it at machines
//! configured by other tools.
//!
//! One file per resource (`apps`, `machines` with `config` and `process`, `leases`,
//! `secrets`, `ips`, `volumes`, `certificates`, `tokens`, `graphql`), plus `duration`
//! (Go durations) and `errors` (Fly's error bodies). Shared reading helpers
//! live here.

pub(crate) mod apps;
pub(crate) mod certificates;
pub(crate) mod config;
pub(crate) mod duration;
pub(crate) mod errors;
pub(crate) mod graphql;
pub(crate) mod ips;
pub(crate) mod leases;
pub(crate) mod machines;
pub(crate) mod process;
pub(crate) mod secrets;
pub(crate) mod tokens;
pub(crate) mod volumes;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

/// Reads `null` as the type's default (serde's `default` only covers a
/// missing field).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn parse_ts(s: Option<&str>) -> Option<Timestamp> {
    s.filter(|s| !s.is_empty()).and_then(|s| s.parse().ok())
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}
