//! When a tenant is looked at again: the kinds of [`Next`], the
//! [`RequeuePolicy`] that turns one into a delay, and the per-tenant resync
//! annotation. Pure: randomness (jitter) arrives as a sample from the caller.
//!
//! The reconciler decides the delay (jitter included) and records it as
//! `status.nextReconcileAt`; the runtime schedules exactly that, so the status
//! says when the controller will really come back (unless a spec change or a
//! restart wakes the tenant earlier).

use std::time::Duration;

use crate::spec::Tenant;

/// `metadata.annotations` key overriding the resync interval of one tenant
/// (a duration such as `30s`, `10m`, `1h`).
pub const RESYNC_ANNOTATION: &str = "flotilla.dev/resync-interval";

/// Jitter of a resync, as a fraction (±10%), so a fleet does not resync in
/// lockstep.
pub const RESYNC_JITTER: f64 = 0.1;
/// Jitter of a backoff, as a fraction (±50%).
pub const BACKOFF_JITTER: f64 = 0.5;

/// What an activation asks of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Converged, blocked or waiting on someone else: the resync interval
    /// applies.
    Resync,
    /// Look again soon (after this nominal delay): changes were made or are
    /// settling.
    Soon(Duration),
    /// Failed: back off exponentially with the tenant's consecutive failures.
    Backoff,
    /// The tenant no longer exists.
    Done,
}

/// How long each kind of [`Next`] waits. Controller settings, not part of a
/// spec.
#[derive(Debug, Clone, PartialEq)]
pub struct RequeuePolicy {
    /// How soon to look again after changes were made, to confirm them.
    pub confirm_after: Duration,
    /// How soon to look again while something settles on Fly's side
    /// (pending certificates, rolling updates, teardown).
    pub progress_after: Duration,
    /// The resync interval of a converged tenant (±10% jitter), unless its
    /// [`RESYNC_ANNOTATION`] says otherwise.
    pub resync: Duration,
    /// Backoff after the first failure; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Cap on one backoff (before jitter).
    pub backoff_max: Duration,
    /// Factor (at least 1) every resync interval is multiplied by while the
    /// fleet's resyncs do not fit the Fly request budget
    /// (`status::budget`); 1 otherwise.
    pub resync_stretch: f64,
}

impl Default for RequeuePolicy {
    fn default() -> Self {
        Self {
            confirm_after: Duration::from_secs(2),
            progress_after: Duration::from_secs(15),
            resync: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            resync_stretch: 1.0,
        }
    }
}

impl RequeuePolicy {
    /// The resync interval for `tenant`: its annotation when it holds a valid
    /// duration, else the controller's; before any stretch.
    pub fn base_resync_for(&self, tenant: &Tenant) -> Duration {
        self.base_resync_annotated(
            tenant
                .metadata
                .annotations
                .get(RESYNC_ANNOTATION)
                .map(String::as_str),
        )
    }

    /// [`Self::base_resync_for`] from the annotation's value alone (the
    /// runtime weighs the fleet without loading specs).
    pub fn base_resync_annotated(&self, annotation: Option<&str>) -> Duration {
        annotation
            .and_then(parse_simple_duration)
            .unwrap_or(self.resync)
    }

    /// The resync interval for `tenant` in force: [`Self::base_resync_for`]
    /// times [`Self::resync_stretch`] (when that is above 1).
    pub fn resync_for(&self, tenant: &Tenant) -> Duration {
        let base = self.base_resync_for(tenant);
        if self.resync_stretch > 1.0 {
            super::budget::scale(base, self.resync_stretch)
        } else {
            base
        }
    }

    /// The delay before the next activation. `failures` counts consecutive
    /// failures including this one; `jitter` is a uniform sample in `[0, 1)`
    /// (0.5 means no jitter).
    pub fn delay(&self, next: Next, resync: Duration, failures: u32, jitter: f64) -> Duration {
        match next {
            Next::Done => Duration::ZERO,
            Next::Soon(d) => d,
            Next::Resync => spread(resync, RESYNC_JITTER, jitter),
            Next::Backoff => {
                let n = failures.max(1) - 1;
                let exp = self.backoff_base.saturating_mul(1u32 << n.min(20));
                spread(exp.min(self.backoff_max), BACKOFF_JITTER, jitter)
            }
        }
    }
}

/// `d · (1 ± fraction)`, with `sample` in `[0, 1)` choosing where.
fn spread(d: Duration, fraction: f64, sample: f64) -> Duration {
    let sample = if sample.is_finite() {
        sample.clamp(0.0, 1.0)
    } else {
        0.5
    };
    super::budget::scale(d, 1.0 + fraction * (2.0 * sample - 1.0))
}

/// `30s`, `10m`, `2h` (one unit). Used only for the resync annotation.
pub fn parse_simple_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resync_annotation_durations() {
        assert_eq!(parse_simple_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_simple_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_simple_duration("0s"), None);
        assert_eq!(parse_simple_duration("1d"), None);
        assert_eq!(parse_simple_duration("m"), None);
        assert_eq!(parse_simple_duration("99999999999999999999h"), None);
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap_with_half_jitter() {
        let p = RequeuePolicy::default();
        let r = p.resync;
        assert_eq!(p.delay(Next::Backoff, r, 1, 0.5), Duration::from_secs(1));
        assert_eq!(p.delay(Next::Backoff, r, 4, 0.5), Duration::from_secs(8));
        assert_eq!(p.delay(Next::Backoff, r, 40, 0.5), Duration::from_secs(300));
        assert_eq!(p.delay(Next::Backoff, r, 4, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(Next::Backoff, r, 4, 1.0), Duration::from_secs(12));
    }

    #[test]
    fn a_stretch_multiplies_every_resync_interval() {
        let mut p = RequeuePolicy::default();
        let tenant = |annotations: &str| -> Tenant {
            let yaml = format!(
                "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: a\n{annotations}spec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: nginx:1.27\n"
            );
            let docs =
                crate::spec::load_str("t.yaml", &yaml, &crate::spec::ParseOptions::default())
                    .expect("valid spec");
            docs.into_iter().next().expect("one tenant").tenant
        };
        let plain = tenant("");
        let annotated = tenant("  annotations:\n    flotilla.dev/resync-interval: 1m\n");
        assert_eq!(p.resync_for(&plain), Duration::from_secs(300));
        p.resync_stretch = 2.5;
        assert_eq!(p.resync_for(&plain), Duration::from_secs(750));
        assert_eq!(p.resync_for(&annotated), Duration::from_secs(150));
        assert_eq!(p.base_resync_for(&annotated), Duration::from_secs(60));
        // Below 1 or not a number: no stretch.
        p.resync_stretch = 0.5;
        assert_eq!(p.resync_for(&plain), Duration::from_secs(300));
        p.resync_stretch = f64::NAN;
        assert_eq!(p.resync_for(&plain), Duration::from_secs(300));
        // A huge interval saturates instead of panicking.
        assert!(p.delay(Next::Resync, Duration::MAX, 0, 1.0) >= Duration::from_secs(1));
    }

    #[test]
    fn resync_has_ten_percent_jitter_and_soon_none() {
        let p = RequeuePolicy::default();
        let r = Duration::from_secs(100);
        assert_eq!(p.delay(Next::Resync, r, 0, 0.0), Duration::from_secs(90));
        assert_eq!(p.delay(Next::Resync, r, 0, 1.0), Duration::from_secs(110));
        assert_eq!(p.delay(Next::Resync, r, 0, f64::NAN), r);
        let soon = Duration::from_secs(2);
        assert_eq!(p.delay(Next::Soon(soon), r, 0, 0.9), soon);
    }
}
