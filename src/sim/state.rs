//! The simulated Fly world: organizations, apps and everything inside them,
//! tokens, DNS facts and host health, plus the seeded RNG every generated
//! identifier comes from.
//!
//! Invariants: app names are unique across all organizations (Fly's global
//! namespace); machine ids and certificate hostnames are unique across apps;
//! token secrets are never stored, only their SHA-256, so no state dump can
//! leak one.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::faults::{FaultTarget, MachineFault, MachineFaultKind, machine_fault};

const HEX: &[u8] = b"0123456789abcdef";
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The organization that holds [`crate::sim::SimConfig::foreign_apps`].
pub const FOREIGN_ORG: &str = "other-org";

#[derive(Debug, Clone)]
pub struct Org {
    pub slug: String,
    pub name: String,
    pub gql_id: String,
    pub internal_numeric_id: u64,
    /// The org's 6PN prefix, e.g. `fdaa:0:3ec2`.
    pub net_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `deploy_organization`: everything in the org.
    Org,
    /// `deploy`: one app, by app id (a new app reusing the name is another app).
    Deploy,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Org => "deploy_organization",
            Profile::Deploy => "deploy",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub profile: Profile,
    pub org: String,
    /// For `deploy` tokens: (app name at mint time, app id).
    pub app: Option<(String, String)>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl Token {
    /// Lease owner and audit identity, shaped like Fly's `<id>@tokens.fly.io`.
    pub fn owner(&self) -> String {
        format!("{}@tokens.fly.io", self.id)
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub kind: &'static str,
    pub status: String,
    pub source: &'static str,
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Lease {
    pub nonce: String,
    pub owner: String,
    pub description: String,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Machine {
    pub id: String,
    pub name: String,
    pub region: String,
    pub state: String,
    pub instance_id: String,
    pub private_ip: String,
    /// The config exactly as the API renders it (already normalized).
    pub config: Value,
    pub image_ref: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Newest last.
    pub events: Vec<Event>,
    /// Earlier versions, oldest first: (version, config). All are `replaced`.
    pub old_versions: Vec<(String, Value)>,
    pub lease: Option<Lease>,
    /// The app secrets version this machine's current version runs with.
    pub secrets_version: u64,
    /// Bumped by every operation that starts a new transition, so timers of a
    /// superseded transition do nothing.
    pub generation: u64,
    /// States still to step through, one per `transition_delay`.
    pub plan: VecDeque<String>,
    pub cordoned: bool,
}

impl Machine {
    pub fn is_destroyed(&self) -> bool {
        self.state == "destroyed"
    }

    /// The live lease, if any (an expired lease no longer counts).
    pub fn active_lease(&self, now: Timestamp) -> Option<&Lease> {
        self.lease.as_ref().filter(|l| l.expires_at > now)
    }

    pub fn metadata(&self) -> Map<String, Value> {
        self.config
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

/// Transient states, which settle on their own.
pub fn is_transient(state: &str) -> bool {
    matches!(
        state,
        "creating"
            | "starting"
            | "stopping"
            | "restarting"
            | "suspending"
            | "updating"
            | "replacing"
            | "destroying"
            | "launch_failed"
    )
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub digest: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Ip {
    pub ip: String,
    pub kind: String,
    pub region: String,
    pub service_name: String,
    pub network: String,
    pub shared: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Cert {
    pub hostname: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When Fly saw the DNS records in place.
    pub configured_at: Option<Timestamp>,
    /// When the certificate was issued (sticky once set).
    pub issued_at: Option<Timestamp>,
    /// `acme`/`check` requests in the rate-limit window.
    pub requests: VecDeque<Timestamp>,
    pub rate_limited_until: Option<Timestamp>,
    /// A check ran and found DNS missing.
    pub last_check_failed: Option<Timestamp>,
    /// Per-hostname values shown in `dns_requirements`.
    pub acme_target: String,
    pub ownership_app_value: String,
}

/// A volume snapshot (`POST .../snapshots`; Fly's scheduled daily ones are
/// not simulated).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub created_at: Timestamp,
    pub size_bytes: i64,
    pub digest: String,
}

/// A volume: one region, one zone (a host group), attached to at most one
/// machine.
#[derive(Debug, Clone)]
pub struct Volume {
    pub id: String,
    pub name: String,
    pub region: String,
    pub zone: String,
    pub size_gb: i64,
    pub encrypted: bool,
    pub fstype: String,
    pub snapshot_retention: i64,
    pub auto_backup_enabled: bool,
    /// `created`, or `pending_destroy` between a delete and the purge.
    pub state: String,
    /// The machine holding it (until that machine is destroyed).
    pub attached_machine: Option<String>,
    pub created_at: Timestamp,
    pub snapshots: Vec<Snapshot>,
}

impl Volume {
    /// Deleted, waiting for its purge: readable, never attachable.
    pub fn is_deleted(&self) -> bool {
        self.state != "created"
    }
}

#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub id: String,
    pub gql_id: String,
    pub internal_numeric_id: u64,
    pub org: String,
    pub network: String,
    pub created_at: Timestamp,
    pub visible_at: Timestamp,
    pub deleting: bool,
    pub machines: BTreeMap<String, Machine>,
    pub secrets: BTreeMap<String, Secret>,
    pub secrets_version: u64,
    pub ips: Vec<Ip>,
    pub certs: BTreeMap<String, Cert>,
    /// Volumes by id.
    pub volumes: BTreeMap<String, Volume>,
    /// Salt for secret digests, so equal values in two apps differ.
    pub salt: String,
    pub ever_started: bool,
}

impl App {
    pub fn live_machines(&self) -> impl Iterator<Item = &Machine> {
        self.machines.values().filter(|m| !m.is_destroyed())
    }

    /// `pending` until a machine has run, then `deployed`, or `suspended`
    /// when nothing runs any more.
    pub fn status(&self) -> &'static str {
        if !self.ever_started {
            return "pending";
        }
        let running = self.live_machines().any(|m| {
            matches!(
                m.state.as_str(),
                "started" | "starting" | "replacing" | "updating"
            )
        });
        if running { "deployed" } else { "suspended" }
    }
}

/// Mixed into the seed for the timers' stream (`State::timer_ulid`).
const TIMER_STREAM: u64 = 0x7469_6d65_7273_2121;

pub struct State {
    rng: StdRng,
    /// What timer-driven steps draw (`timer_ulid`): a stream of its own, so
    /// a step that falls between two requests, as the wall clock lets it,
    /// does not shift what the requests draw.
    timer_rng: StdRng,
    pub orgs: BTreeMap<String, Org>,
    pub apps: BTreeMap<String, App>,
    pub tokens: BTreeMap<String, Token>,
    /// SHA-256 of a token's header value (without scheme) → token id.
    pub token_index: HashMap<[u8; 32], String>,
    /// Hostnames whose DNS points at Fly, with when that became true.
    pub dns_configured: BTreeMap<String, Timestamp>,
    pub unreachable_hosts: BTreeSet<String>,
    /// Every machine id ever issued (ids are never reused).
    pub machine_ids: BTreeSet<String>,
    /// Every volume and snapshot id ever issued.
    pub volume_ids: BTreeSet<String>,
    pub ips_in_use: BTreeSet<String>,
    pub next_numeric_id: u64,
    /// The machine-level rules of the current fault profile.
    pub machine_faults: Vec<MachineFault>,
    /// Seeds the per-machine fault decisions.
    pub fault_seed: u64,
    /// Machine create requests so far: the key of per-request fault decisions.
    pub create_requests: u64,
    /// App name → secret names the simulator gives a placeholder value when
    /// the app exists (the demo's stand-in for an operator; see
    /// `SimHandle::supply_placeholder_secrets`).
    pub placeholder_secrets: BTreeMap<String, BTreeSet<String>>,
}

impl State {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            timer_rng: StdRng::seed_from_u64(seed ^ TIMER_STREAM),
            orgs: BTreeMap::new(),
            apps: BTreeMap::new(),
            tokens: BTreeMap::new(),
            token_index: HashMap::new(),
            dns_configured: BTreeMap::new(),
            unreachable_hosts: BTreeSet::new(),
            machine_ids: BTreeSet::new(),
            volume_ids: BTreeSet::new(),
            ips_in_use: BTreeSet::new(),
            next_numeric_id: 1000 + seed % 1000,
            machine_faults: Vec::new(),
            fault_seed: seed,
            create_requests: 0,
            placeholder_secrets: BTreeMap::new(),
        }
    }

    /// The first machine fault of `kind` that hits machine `m` of `app`;
    /// `key` is what the rate is decided on (the machine id, or a version).
    pub fn machine_fault(
        &self,
        kind: MachineFaultKind,
        app: &str,
        m: &Machine,
        key: &str,
    ) -> Option<&MachineFault> {
        let image = m.config.get("image").and_then(Value::as_str).unwrap_or("");
        machine_fault(
            &self.machine_faults,
            kind,
            self.fault_seed,
            &FaultTarget {
                app,
                region: &m.region,
                image,
                key,
            },
        )
    }

    /// Whether Fly can reach the host of machine `m` of `app`: marked
    /// unreachable, or hit by a `host_unreachable` fault.
    pub fn host_unreachable(&self, app: &str, m: &Machine) -> bool {
        self.unreachable_hosts.contains(&m.id)
            || self
                .machine_fault(MachineFaultKind::HostUnreachable, app, m, &m.id)
                .is_some()
    }

    fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[self.rng.random_range(0..alphabet.len())]))
            .collect()
    }

    pub fn hex(&mut self, n: usize) -> String {
        self.pick(HEX, n)
    }

    pub fn alnum(&mut self, n: usize) -> String {
        self.pick(ALNUM, n)
    }

    pub fn numeric_id(&mut self) -> u64 {
        self.next_numeric_id += 1 + self.rng.random_range(0..50u64);
        self.next_numeric_id
    }

    /// A ULID: 48-bit millisecond time, then 80 random bits, Crockford base32.
    pub fn ulid(&mut self, now: Timestamp) -> String {
        let ms = u64::try_from(now.as_millisecond()).unwrap_or(0) & ((1 << 48) - 1);
        let mut out = String::with_capacity(26);
        for i in (0..10).rev() {
            out.push(char::from(CROCKFORD[((ms >> (i * 5)) & 31) as usize]));
        }
        out.push_str(&self.pick(CROCKFORD, 16));
        out
    }

    /// A ULID for a timer-driven step (`machines::lifecycle::step`), from
    /// the timers' own stream: requests' ids, names, IPs and tokens stay a
    /// function of the seed and the requests, however a run's timers
    /// interleave with them (a loaded machine once shifted a seeded run's
    /// minted token).
    pub fn timer_ulid(&mut self, now: Timestamp) -> String {
        std::mem::swap(&mut self.rng, &mut self.timer_rng);
        let id = self.ulid(now);
        std::mem::swap(&mut self.rng, &mut self.timer_rng);
        id
    }

    /// A fresh, never-issued 14-hex-digit machine id.
    pub fn machine_id(&mut self) -> String {
        loop {
            let id = self.hex(14);
            if self.machine_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    /// A fresh, never-issued id with `prefix` and 16 lowercase letters or
    /// digits: `vol_9vw681egy1jj5xm4` for volumes, `vs_…` for snapshots.
    pub fn volume_id(&mut self, prefix: &str) -> String {
        loop {
            let id = format!("{prefix}{}", self.alnum(16));
            if self.volume_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    /// An index in `0..n` from the seeded RNG (`n` > 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    /// A macaroon-looking secret: `fm2_` and ~330 base64 characters.
    pub fn macaroon(&mut self) -> String {
        format!("fm2_{}", self.pick(B64, 332))
    }

    /// Fly-style machine names: `adjective-noun-1234`.
    pub fn machine_name(&mut self) -> String {
        const ADJ: &[&str] = &[
            "aged",
            "billowing",
            "bold",
            "crimson",
            "damp",
            "falling",
            "holy",
            "late",
            "lingering",
            "misty",
            "patient",
            "quiet",
            "red",
            "rough",
            "shy",
            "silent",
            "snowy",
            "summer",
            "wandering",
            "young",
        ];
        const NOUN: &[&str] = &[
            "bird", "brook", "cloud", "dawn", "dew", "field", "fire", "forest", "grass", "lake",
            "leaf", "moon", "morning", "night", "pond", "river", "sea", "sun", "thunder", "wind",
        ];
        let a = ADJ[self.rng.random_range(0..ADJ.len())];
        let n = NOUN[self.rng.random_range(0..NOUN.len())];
        let num = self.rng.random_range(1..10_000u32);
        format!("{a}-{n}-{num}")
    }

    pub fn new_org(&mut self, slug: &str, name: &str) -> Org {
        let org = Org {
            slug: slug.to_owned(),
            name: name.to_owned(),
            gql_id: self.pick(ALNUM, 12),
            internal_numeric_id: self.numeric_id(),
            net_prefix: format!(
                "fdaa:{:x}:{:x}",
                self.rng.random_range(0..16u32),
                self.rng.random_range(0x100..=0xffffu32)
            ),
        };
        self.orgs.insert(slug.to_owned(), org.clone());
        org
    }

    /// Registers a token secret and returns the token id.
    pub fn register_token(&mut self, secret: &str, token: Token) {
        self.token_index
            .insert(token_hash(secret), token.id.clone());
        self.tokens.insert(token.id.clone(), token);
    }

    /// A public IP of the given kind that is not yet assigned anywhere
    /// (shared IPv4 addresses are shared by design and come from a small pool).
    pub fn public_ip(&mut self, kind: &str, org_prefix: &str) -> String {
        loop {
            let ip = match kind {
                "v4" => format!(
                    "137.66.{}.{}",
                    self.rng.random_range(0..=255u8),
                    self.rng.random_range(1..=254u8)
                ),
                "shared_v4" => {
                    return format!("66.241.124.{}", self.rng.random_range(1..=254u8));
                }
                "v6" => format!("2a09:8280:1::{}:{}", self.hex(2), self.hex(4)),
                _ => format!("{org_prefix}:0:1::{}", self.rng.random_range(2..=0xfffu32)),
            };
            let ip = compress_v6(&ip);
            if self.ips_in_use.insert(ip.clone()) {
                return ip;
            }
        }
    }

    pub fn private_ip(&mut self, org_prefix: &str) -> String {
        let ip = format!(
            "{org_prefix}:a7b:{:x}:{:x}:{:x}:2",
            self.rng.random_range(1..=0xffffu32),
            self.rng.random_range(1..=0xffffu32),
            self.rng.random_range(1..=0xffffu32),
        );
        compress_v6(&ip)
    }

    /// Fills `buf` from the seeded RNG.
    pub fn fill(&mut self, buf: &mut [u8]) {
        self.rng.fill_bytes(buf);
    }
}

/// Canonical form for the small set of IPv6 shapes the simulator mints.
fn compress_v6(ip: &str) -> String {
    ip.parse::<std::net::IpAddr>()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| ip.to_owned())
}

pub fn token_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Secret digests as Fly shows them: 16 hex digits, never the value.
pub fn secret_digest(salt: &str, name: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    h.update([0]);
    h.update(value.as_bytes());
    let d = h.finalize();
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 with whole seconds, as Fly renders machine timestamps.
pub fn ts(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// `image_ref` as Fly resolves an image reference.
pub fn image_ref(image: &str) -> Value {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d.to_owned())),
        None => (image, None),
    };
    let (path, tag) = match name.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, t),
        _ => (name, "latest"),
    };
    let (registry, repository) = match path.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), rest.to_owned())
        }
        Some(_) => ("registry-1.docker.io".to_owned(), path.to_owned()),
        None => ("registry-1.docker.io".to_owned(), format!("library/{path}")),
    };
    let digest = digest.unwrap_or_else(|| {
        let d = Sha256::digest(image.as_bytes());
        format!(
            "sha256:{}",
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    });
    json!({
        "registry": registry,
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "labels": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_fly_shapes_and_repeat_under_a_seed() {
        let now = Timestamp::from_second(1_700_000_000).expect("valid");
        let mut a = State::new(42);
        let mut b = State::new(42);
        let (ida, idb) = (a.machine_id(), b.machine_id());
        assert_eq!(ida, idb);
        assert_eq!(ida.len(), 14);
        assert!(
            ida.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let u = a.ulid(now);
        assert_eq!(u.len(), 26);
        assert!(u.bytes().all(|c| CROCKFORD.contains(&c)));
        assert_eq!(u, b.ulid(now));
        assert!(a.macaroon().starts_with("fm2_"));
        assert_ne!(State::new(1).machine_id(), State::new(2).machine_id());
    }

    #[test]
    fn timer_steps_do_not_shift_what_requests_draw() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let (mut quiet, mut busy) = (State::new(42), State::new(42));
        assert_eq!(quiet.machine_id(), busy.machine_id());
        // Timers fire on one run between its requests, not on the other.
        let step = busy.timer_ulid(now);
        assert_ne!(step, State::new(42).ulid(now), "a stream of its own");
        assert_eq!(quiet.macaroon(), busy.macaroon());
        assert_eq!(quiet.ulid(now), busy.ulid(now));
    }

    #[test]
    fn image_refs_resolve_like_docker() {
        let r = image_ref("nginx");
        assert_eq!(r["registry"], "registry-1.docker.io");
        assert_eq!(r["repository"], "library/nginx");
        assert_eq!(r["tag"], "latest");
        let r = image_ref("registry.fly.io/my-app:deployment-01H");
        assert_eq!(r["registry"], "registry.fly.io");
        assert_eq!(r["repository"], "my-app");
        assert_eq!(r["tag"], "deployment-01H");
        let r = image_ref("flyio/app@sha256:abc");
        assert_eq!(r["digest"], "sha256:abc");
        assert_eq!(r["repository"], "flyio/app");
    }

    #[test]
    fn minted_ips_have_the_right_families() {
        let mut s = State::new(5);
        assert!(s.public_ip("v4", "fdaa:0:1").starts_with("137.66."));
        assert!(
            s.public_ip("shared_v4", "fdaa:0:1")
                .starts_with("66.241.124.")
        );
        assert!(s.public_ip("v6", "fdaa:0:1").starts_with("2a09:8280:1::"));
        assert!(
            s.public_ip("private_v6", "fdaa:0:1")
                .starts_with("fdaa:0:1:")
        );
        let p = s.private_ip("fdaa:0:1");
        assert!(p.parse::<std::net::Ipv6Addr>().is_ok(), "{p}");
    }
}
