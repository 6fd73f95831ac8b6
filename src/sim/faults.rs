//! Fault injection: the ways Fly's API and Fly's machines misbehave in
//! production, on demand.
//!
//! A [`FaultProfile`] is a set of rates; [`Faults`] turns it into one decision
//! per request, drawn from an RNG seeded by the simulator seed, so a given
//! request sequence meets the same faults every run. Faults never apply to the
//! inspection surface (`/__sim/`).
//!
//! [`MachineFault`] rules make machines misbehave rather than requests
//! ([`machine`]); lost mint answers (a token created, its answer never
//! received) are in [`mints`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

pub mod machine;
pub mod mints;

pub use machine::{CrashState, FaultTarget, MachineFault, MachineFaultKind, machine_fault};
use mints::MintFaults;
pub use mints::{LostMint, LostResponse, PendingLostMints};

/// A latency distribution: most requests take `base_ms`, a fraction spikes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Uniform range for ordinary requests, in milliseconds.
    pub base_ms: (u64, u64),
    /// Fraction of requests that spike.
    pub spike_rate: f64,
    /// Uniform range for spikes, in milliseconds.
    pub spike_ms: (u64, u64),
}

/// Rates of each kind of fault. All rates are probabilities in `0.0..=1.0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultProfile {
    /// The name it was built from (`none`, `flaky`, ...) or `custom`.
    pub name: String,
    /// Requests answered 500, 502 or 503 without taking effect.
    pub error_rate: f64,
    /// Per-operation overrides of `error_rate`, keyed by OpenAPI operationId
    /// (`Machines_create`) or `graphql`.
    pub endpoint_error_rates: BTreeMap<String, f64>,
    /// Chance that a request starts a burst of 429s.
    pub rate_limit_burst_rate: f64,
    /// Length of a 429 burst, inclusive range.
    pub rate_limit_burst_len: (u32, u32),
    /// Fraction of injected 429s that carry `Retry-After: 1`.
    pub retry_after_rate: f64,
    pub latency: Option<Latency>,
    /// Mutations (POST/PUT/PATCH/DELETE) that take effect and then lose their
    /// response: answered 502, or stalled for `stall` (beyond a client timeout).
    pub lost_rate: f64,
    /// Fraction of lost responses that stall instead of answering 502.
    pub lost_stall_rate: f64,
    /// Requests that stall for `stall` and then answer 504 without taking effect.
    pub timeout_rate: f64,
    /// `createLimitedAccessToken` mutations that mint the token and then lose
    /// the answer (split between 502 and a stall by `lost_stall_rate`); see
    /// [`mints`].
    pub lost_mint_rate: f64,
    /// How long a stalled request hangs.
    #[serde(with = "duration_ms")]
    pub stall: Duration,
    /// Machine-level faults (see [`MachineFault`]).
    pub machines: Vec<MachineFault>,
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl Default for FaultProfile {
    fn default() -> Self {
        Self::none()
    }
}

/// Names accepted by [`FaultProfile::from_name`].
pub const PROFILE_NAMES: &[&str] = &[
    "none",
    "flaky",
    "ratelimit",
    "slow",
    "lost",
    "timeouts",
    "chaos",
];

impl FaultProfile {
    pub fn none() -> Self {
        Self {
            name: "none".into(),
            error_rate: 0.0,
            endpoint_error_rates: BTreeMap::new(),
            rate_limit_burst_rate: 0.0,
            rate_limit_burst_len: (2, 6),
            retry_after_rate: 0.0,
            latency: None,
            lost_rate: 0.0,
            lost_stall_rate: 0.5,
            timeout_rate: 0.0,
            lost_mint_rate: 0.0,
            stall: Duration::from_secs(30),
            machines: Vec::new(),
        }
    }

    /// Builds a named profile:
    /// * `none`: no faults;
    /// * `flaky`: 20% of requests answer 500/502/503 without taking effect;
    /// * `ratelimit`: 10% of requests start a burst of 2–6 429s, half of them
    ///   with `Retry-After: 1`;
    /// * `slow`: 1–10 ms per request (p50 ≈ 5 ms), 5% spike to 0.5–2 s;
    /// * `lost`: 20% of mutations take effect and lose their response (half
    ///   answer 502, half stall for 30 s);
    /// * `timeouts`: 10% of requests stall 30 s, then 504, without taking effect;
    /// * `chaos`: all of the above at lower rates.
    pub fn from_name(name: &str) -> Result<Self, String> {
        let base = Self {
            name: name.to_owned(),
            ..Self::none()
        };
        let profile = match name {
            "none" => base,
            "flaky" => Self {
                error_rate: 0.2,
                ..base
            },
            "ratelimit" => Self {
                rate_limit_burst_rate: 0.1,
                rate_limit_burst_len: (2, 6),
                retry_after_rate: 0.5,
                ..base
            },
            "slow" => Self {
                latency: Some(Latency {
                    base_ms: (1, 10),
                    spike_rate: 0.05,
                    spike_ms: (500, 2000),
                }),
                ..base
            },
            "lost" => Self {
                lost_rate: 0.2,
                lost_stall_rate: 0.5,
                ..base
            },
            "timeouts" => Self {
                timeout_rate: 0.1,
                ..base
            },
            "chaos" => Self {
                error_rate: 0.05,
                rate_limit_burst_rate: 0.03,
                rate_limit_burst_len: (1, 4),
                retry_after_rate: 0.5,
                latency: Some(Latency {
                    base_ms: (0, 5),
                    spike_rate: 0.02,
                    spike_ms: (200, 1000),
                }),
                lost_rate: 0.05,
                lost_stall_rate: 0.5,
                timeout_rate: 0.02,
                ..base
            },
            other => {
                return Err(format!(
                    "unknown fault profile {other:?}: expected one of {}",
                    PROFILE_NAMES.join(", ")
                ));
            }
        };
        Ok(profile)
    }

    /// Checks every rate is a probability.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("error_rate", self.error_rate),
            ("rate_limit_burst_rate", self.rate_limit_burst_rate),
            ("retry_after_rate", self.retry_after_rate),
            ("lost_rate", self.lost_rate),
            ("lost_stall_rate", self.lost_stall_rate),
            ("timeout_rate", self.timeout_rate),
            ("lost_mint_rate", self.lost_mint_rate),
        ];
        for (name, r) in rates {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{name} must be between 0 and 1, got {r}"));
            }
        }
        for (op, r) in &self.endpoint_error_rates {
            if !super::routes::operation_ids().any(|known| known == op) {
                return Err(format!(
                    "endpoint_error_rates: {op:?} is not an operation the simulator serves (expected an OpenAPI operationId such as Machines_create_lease, or graphql)"
                ));
            }
            if !(0.0..=1.0).contains(r) {
                return Err(format!(
                    "endpoint_error_rates.{op} must be between 0 and 1, got {r}"
                ));
            }
        }
        if let Some(l) = &self.latency {
            if l.base_ms.0 > l.base_ms.1 || l.spike_ms.0 > l.spike_ms.1 {
                return Err("latency ranges must be (low, high) with low <= high".into());
            }
            if !(0.0..=1.0).contains(&l.spike_rate) {
                return Err(format!(
                    "latency.spike_rate must be between 0 and 1, got {}",
                    l.spike_rate
                ));
            }
        }
        if self.rate_limit_burst_len.0 > self.rate_limit_burst_len.1 {
            return Err("rate_limit_burst_len must be (low, high) with low <= high".into());
        }
        for m in &self.machines {
            m.validate()?;
        }
        Ok(())
    }

    fn is_quiet(&self) -> bool {
        self.error_rate == 0.0
            && self.endpoint_error_rates.values().all(|r| *r == 0.0)
            && self.rate_limit_burst_rate == 0.0
            && self.latency.is_none()
            && self.lost_rate == 0.0
            && self.timeout_rate == 0.0
    }
}

impl std::str::FromStr for FaultProfile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Pass,
    /// Answer this 5xx without running the handler.
    Error(u16),
    /// Answer 429, optionally with `Retry-After` in seconds.
    RateLimited {
        retry_after: Option<u64>,
    },
    /// Hang, then answer 504, without running the handler.
    Timeout(Duration),
    /// Run the handler, then lose the response: stall for the duration if
    /// given, else answer 502.
    Lost {
        stall: Option<Duration>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub latency: Duration,
    pub action: Action,
}

struct FaultState {
    profile: FaultProfile,
    rng: StdRng,
    burst_left: u32,
    mints: MintFaults,
}

/// The live fault injector of one simulator.
pub struct Faults {
    seed: u64,
    state: Mutex<FaultState>,
}

impl Faults {
    pub fn new(profile: FaultProfile, seed: u64) -> Self {
        Self {
            seed,
            state: Mutex::new(FaultState {
                profile,
                rng: StdRng::seed_from_u64(fault_seed(seed)),
                burst_left: 0,
                mints: MintFaults::new(seed),
            }),
        }
    }

    /// Replaces the profile and restarts the decision sequence from the seed,
    /// so the requests after a switch meet the same faults on every run.
    pub fn set(&self, profile: FaultProfile) {
        let mut st = lock(&self.state);
        st.profile = profile;
        st.rng = StdRng::seed_from_u64(fault_seed(self.seed));
        st.burst_left = 0;
        st.mints.restart(self.seed);
    }

    /// Decides whether one minted token's answer is lost (a pending one-shot
    /// loss first, else `lost_mint_rate`).
    pub fn decide_mint(&self) -> Option<LostMint> {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        let p = &st.profile;
        st.mints
            .decide(p.lost_mint_rate, p.lost_stall_rate, p.stall)
    }

    /// Loses the answers of the next `count` mints, `how` (0 cancels).
    pub fn lose_next_mints(&self, count: u32, how: LostResponse) {
        lock(&self.state).mints.set_pending(count, how);
    }

    /// Mint answers still to be lost by [`Faults::lose_next_mints`].
    pub fn pending_lost_mints(&self) -> PendingLostMints {
        lock(&self.state).mints.pending()
    }

    pub fn profile(&self) -> FaultProfile {
        lock(&self.state).profile.clone()
    }

    /// Draws the decision for one request to `operation` (`mutating`: the
    /// method changes state).
    pub fn decide(&self, operation: &str, mutating: bool) -> Decision {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        let p = &st.profile;
        if p.is_quiet() {
            return Decision {
                latency: Duration::ZERO,
                action: Action::Pass,
            };
        }
        let rng = &mut st.rng;
        let latency = match &p.latency {
            Some(l) => {
                let (lo, hi) = if rng.random_bool(l.spike_rate) {
                    l.spike_ms
                } else {
                    l.base_ms
                };
                Duration::from_millis(rng.random_range(lo..=hi))
            }
            None => Duration::ZERO,
        };
        // A running 429 burst continues regardless of the other rates.
        if st.burst_left > 0 {
            st.burst_left -= 1;
            let retry_after = rng.random_bool(p.retry_after_rate).then_some(1);
            return Decision {
                latency,
                action: Action::RateLimited { retry_after },
            };
        }
        let error_rate = p
            .endpoint_error_rates
            .get(operation)
            .copied()
            .unwrap_or(p.error_rate);
        let action = if rng.random_bool(error_rate) {
            Action::Error([500, 502, 503][rng.random_range(0..3usize)])
        } else if rng.random_bool(p.rate_limit_burst_rate) {
            let (lo, hi) = p.rate_limit_burst_len;
            let len = rng.random_range(lo.max(1)..=hi.max(1));
            st.burst_left = len - 1;
            let retry_after = rng.random_bool(p.retry_after_rate).then_some(1);
            Action::RateLimited { retry_after }
        } else if rng.random_bool(p.timeout_rate) {
            Action::Timeout(p.stall)
        } else if mutating && rng.random_bool(p.lost_rate) {
            let stall = rng.random_bool(p.lost_stall_rate).then_some(p.stall);
            Action::Lost { stall }
        } else {
            Action::Pass
        };
        Decision { latency, action }
    }
}

fn fault_seed(seed: u64) -> u64 {
    seed ^ 0x6661_756c_7473_2121
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the fault state invalid.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_profile_parses_and_validates() {
        for name in PROFILE_NAMES {
            let p = FaultProfile::from_name(name).expect("named profile");
            p.validate().expect("valid rates");
            assert_eq!(&p.name, name);
        }
        assert!(FaultProfile::from_name("sometimes").is_err());
    }

    #[test]
    fn decisions_repeat_under_the_same_seed() {
        let run = |seed| {
            let f = Faults::new(FaultProfile::from_name("chaos").expect("chaos"), seed);
            (0..200)
                .map(|i| f.decide("Machines_list", i % 2 == 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn flaky_errors_about_a_fifth_of_requests() {
        let f = Faults::new(FaultProfile::from_name("flaky").expect("flaky"), 1);
        let errors = (0..2000)
            .filter(|_| matches!(f.decide("Apps_show", false).action, Action::Error(_)))
            .count();
        assert!((300..500).contains(&errors), "{errors} errors in 2000");
    }

    #[test]
    fn lost_only_hits_mutations() {
        let f = Faults::new(FaultProfile::from_name("lost").expect("lost"), 1);
        assert!((0..500).all(|_| f.decide("Machines_list", false).action == Action::Pass));
        assert!((0..500).any(|_| matches!(
            f.decide("Machines_create", true).action,
            Action::Lost { .. }
        )));
    }

    #[test]
    fn machine_faults_round_trip_as_json_and_refuse_unknown_fields() {
        let mut p = FaultProfile::from_name("flaky").expect("flaky");
        p.machines.push(MachineFault {
            image: Some("app:2".into()),
            crash_to: CrashState::Stopped,
            ..MachineFault::new(MachineFaultKind::Crash)
        });
        let v = serde_json::to_value(&p).expect("serialises");
        assert_eq!(
            v["machines"],
            serde_json::json!([{"kind": "crash", "image": "app:2", "crash_to": "stopped"}])
        );
        let back: FaultProfile = serde_json::from_value(v).expect("parses");
        assert_eq!(back, p);
        let typo = serde_json::json!({"machines": [{"kind": "crash", "imgae": "x"}]});
        assert!(serde_json::from_value::<FaultProfile>(typo).is_err());
    }

    #[test]
    fn endpoint_override_wins() {
        let mut p = FaultProfile::none();
        p.name = "custom".into();
        p.endpoint_error_rates.insert("Machines_create".into(), 1.0);
        let f = Faults::new(p, 3);
        assert!(matches!(
            f.decide("Machines_create", true).action,
            Action::Error(_)
        ));
        assert_eq!(f.decide("Machines_list", false).action, Action::Pass);
    }
}
