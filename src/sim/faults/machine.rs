//! Machine faults: rules that make machines misbehave rather than requests
//! (a region out of capacity, a launch that fails, a version that crashes
//! after it starts, health checks that fail, a host that goes dark). Each
//! rule selects machines by app, region and image (all optional, ANDed) and
//! a `rate`; whether a rule hits one machine (or one version of it) is a
//! stable hash of the seed and the machine's id, so it does not change from
//! one read to the next. The machine lifecycle (`crate::sim::machines`)
//! applies them; a [`super::FaultProfile`] carries them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a [`MachineFault`] does to the machines it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineFaultKind {
    /// `POST .../machines` answers **422** `{"error": ..., "status":
    /// "insufficient_capacity"}` and creates nothing (fly-go
    /// `flaps_error.go`: a region without capacity is "a proper 422
    /// insufficient_capacity"). Decided per create request.
    InsufficientCapacity,
    /// A new machine is created (200, `created`), then goes `launch_failed`
    /// and `destroyed` instead of starting (API-NOTES §2: `launch_failed`
    /// "goes on to destroyed"). Decided per machine.
    LaunchFailed,
    /// One `transition_delay` after reaching `started` the machine crashes to
    /// `crash_to`; its health checks are critical while it runs. Decided per
    /// machine version, on every start of that version.
    Crash,
    /// Health checks of a started machine report `critical`.
    ChecksFailing,
    /// The machine's host is unreachable, as if marked through
    /// `/__sim/hosts/{id}/unreachable`.
    HostUnreachable,
}

impl MachineFaultKind {
    pub const ALL: &[Self] = &[
        Self::InsufficientCapacity,
        Self::LaunchFailed,
        Self::Crash,
        Self::ChecksFailing,
        Self::HostUnreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientCapacity => "insufficient_capacity",
            Self::LaunchFailed => "launch_failed",
            Self::Crash => "crash",
            Self::ChecksFailing => "checks_failing",
            Self::HostUnreachable => "host_unreachable",
        }
    }
}

/// The state a crashing machine ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashState {
    /// `failed`: restarts exhausted (a `wait` for `settled` sees it).
    #[default]
    Failed,
    /// `stopped`: the main process exited.
    Stopped,
}

impl CrashState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

fn always() -> f64 {
    1.0
}

fn is_always(rate: &f64) -> bool {
    *rate >= 1.0
}

/// One machine-level fault rule: `kind` for the machines of `app`, in
/// `region`, running `image` (each optional; all given must match), for a
/// `rate` fraction of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineFault {
    pub kind: MachineFaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Matched exactly against `config.image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Fraction of the selected machines (versions, create requests) hit.
    #[serde(default = "always", skip_serializing_if = "is_always")]
    pub rate: f64,
    /// For `crash`: where the machine ends up.
    #[serde(default)]
    pub crash_to: CrashState,
    /// For `crash`: how long after reaching `started` (default: one
    /// `transition_delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
}

/// What a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct FaultTarget<'a> {
    pub app: &'a str,
    pub region: &'a str,
    pub image: &'a str,
    /// Stable identity for the rate decision: the machine id, the version
    /// (for crashes), or a per-request counter (for capacity).
    pub key: &'a str,
}

impl MachineFault {
    pub fn new(kind: MachineFaultKind) -> Self {
        Self {
            kind,
            app: None,
            region: None,
            image: None,
            rate: 1.0,
            crash_to: CrashState::default(),
            after_ms: None,
        }
    }

    fn selects(&self, t: &FaultTarget<'_>) -> bool {
        self.app.as_deref().is_none_or(|a| a == t.app)
            && self.region.as_deref().is_none_or(|r| r == t.region)
            && self.image.as_deref().is_none_or(|i| i == t.image)
    }

    /// Whether this rule hits `t`: selected, and within `rate` by a stable
    /// hash of `seed`, the rule's kind and `t.key`.
    pub fn hits(&self, seed: u64, t: &FaultTarget<'_>) -> bool {
        if !self.selects(t) || self.rate <= 0.0 {
            return false;
        }
        if self.rate >= 1.0 {
            return true;
        }
        let mut h = Sha256::new();
        h.update(seed.to_le_bytes());
        h.update(self.kind.as_str().as_bytes());
        h.update([0]);
        h.update(t.key.as_bytes());
        let d = h.finalize();
        let mut eight = [0u8; 8];
        eight.copy_from_slice(&d[..8]);
        // 53 bits give a uniform fraction in [0, 1).
        let x = (u64::from_le_bytes(eight) >> 11) as f64 / (1u64 << 53) as f64;
        x < self.rate
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        let kind = self.kind.as_str();
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(format!(
                "machine fault {kind}: rate must be between 0 and 1, got {}",
                self.rate
            ));
        }
        if let Some(r) = &self.region
            && !crate::sim::regions::is_known(r)
        {
            return Err(format!(
                "machine fault {kind}: region {r:?} is not a known region"
            ));
        }
        if self.kind != MachineFaultKind::Crash
            && (self.crash_to != CrashState::default() || self.after_ms.is_some())
        {
            return Err(format!(
                "machine fault {kind}: crash_to and after_ms are only for crash"
            ));
        }
        Ok(())
    }
}

/// The first rule of `kind` that hits `t`.
pub fn machine_fault<'f>(
    rules: &'f [MachineFault],
    kind: MachineFaultKind,
    seed: u64,
    t: &FaultTarget<'_>,
) -> Option<&'f MachineFault> {
    rules.iter().find(|r| r.kind == kind && r.hits(seed, t))
}

/// `flotilla sim --machine-fault KIND[:key=value,...]`, keys `app`, `region`,
/// `image`, `rate` and (for `crash`) `to=failed|stopped` and `after=MS`; for
/// example
/// `crash:image=registry.fly.io/web:v2,to=stopped` or
/// `insufficient_capacity:region=ams`.
impl std::str::FromStr for MachineFault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let kind = MachineFaultKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == kind.trim())
            .ok_or_else(|| {
                format!(
                    "unknown machine fault {kind:?}: expected one of {}",
                    MachineFaultKind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        let mut fault = Self::new(kind);
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected key=value"))?;
            let value = value.trim();
            match key.trim() {
                "app" => fault.app = Some(value.to_owned()),
                "region" => fault.region = Some(value.to_owned()),
                "image" => fault.image = Some(value.to_owned()),
                "rate" => {
                    fault.rate = value
                        .parse()
                        .map_err(|_| format!("rate {value:?} is not a number"))?;
                }
                "after" if kind == MachineFaultKind::Crash => {
                    fault.after_ms =
                        Some(value.parse().map_err(|_| {
                            format!("after {value:?} is not a number of milliseconds")
                        })?);
                }
                "to" if kind == MachineFaultKind::Crash => {
                    fault.crash_to = match value {
                        "failed" => CrashState::Failed,
                        "stopped" => CrashState::Stopped,
                        other => {
                            return Err(format!(
                                "to={other:?}: expected \"failed\" or \"stopped\""
                            ));
                        }
                    };
                }
                other => {
                    return Err(format!(
                        "unknown key {other:?} for machine fault {}: expected app, region, image, rate{}",
                        kind.as_str(),
                        if kind == MachineFaultKind::Crash {
                            ", to or after"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
        fault.validate()?;
        Ok(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(region: &'a str, image: &'a str, key: &'a str) -> FaultTarget<'a> {
        FaultTarget {
            app: "web",
            region,
            image,
            key,
        }
    }

    #[test]
    fn machine_faults_select_by_app_region_and_image() {
        let rule = MachineFault {
            region: Some("ams".into()),
            image: Some("app:2".into()),
            ..MachineFault::new(MachineFaultKind::Crash)
        };
        assert!(rule.hits(0, &target("ams", "app:2", "m1")));
        assert!(!rule.hits(0, &target("ord", "app:2", "m1")));
        assert!(!rule.hits(0, &target("ams", "app:1", "m1")));
        let other_app = MachineFault {
            app: Some("api".into()),
            ..rule.clone()
        };
        assert!(!other_app.hits(0, &target("ams", "app:2", "m1")));
        let rules = [other_app, rule];
        assert!(
            machine_fault(
                &rules,
                MachineFaultKind::Crash,
                0,
                &target("ams", "app:2", "m")
            )
            .is_some()
        );
        assert!(
            machine_fault(
                &rules,
                MachineFaultKind::LaunchFailed,
                0,
                &target("ams", "app:2", "m")
            )
            .is_none()
        );
    }

    #[test]
    fn machine_fault_rates_are_stable_per_key_and_about_right() {
        let rule = MachineFault {
            rate: 0.3,
            ..MachineFault::new(MachineFaultKind::ChecksFailing)
        };
        let keys: Vec<String> = (0..2000).map(|i| format!("machine-{i}")).collect();
        let hit = |seed| {
            keys.iter()
                .map(|k| rule.hits(seed, &target("ams", "x", k)))
                .collect::<Vec<_>>()
        };
        let first = hit(5);
        assert_eq!(
            first,
            hit(5),
            "the same machine always gets the same answer"
        );
        assert_ne!(first, hit(6), "the seed decides");
        let n = first.iter().filter(|h| **h).count();
        assert!((500..700).contains(&n), "{n} of 2000 at rate 0.3");
        let never = MachineFault { rate: 0.0, ..rule };
        assert!(!never.hits(5, &target("ams", "x", "m")));
    }
}
