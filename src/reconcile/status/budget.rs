//! Whether the fleet's resyncs fit the Fly request budget, and how far the
//! resync interval stretches when they do not. Pure: the runtime supplies the
//! fleet (each tenant's resync interval), the budget and the clock readings.
//!
//! Demand is `reads_per_resync / interval` summed over the tenants (requests
//! per second that resyncs alone need). Resyncs may use the budget less the
//! [`ResyncBudget::reserve`] kept for priority work (spec changes,
//! rotations, retries, follow-ups). When the demand is above that share,
//! every tenant's interval is multiplied by the same factor
//! (`demand / share`), so the fleet stretches evenly instead of building a
//! silent backlog; the factor is capped at [`MAX_STRETCH`], beyond which the
//! resync lag shows what is left.

use std::time::Duration;

/// Reads of one in-sync activation: machines, IPs, certificates, secrets
/// (docs/reconcile.md, "Expected flow").
pub const READS_PER_RESYNC: u32 = 4;

/// Reads of one in-sync activation while the org feed is on: its machines
/// come from the feed's machine cache (`feed::trust` decides when), so
/// IPs, certificates and secrets remain. When the cache cannot stand in
/// (the feed behind, a spec change settling) the activation lists machines
/// too: that is the reserve's to absorb.
pub const READS_PER_RESYNC_WITH_FEED: u32 = 3;

/// Share of the budget kept for priority work by default.
pub const DEFAULT_RESERVE: f64 = 0.25;

/// The largest factor an interval is stretched by.
pub const MAX_STRETCH: f64 = 1000.0;

/// The request budget resyncs share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResyncBudget {
    /// Requests per second over all Fly calls (the client's global budget).
    pub rps: u32,
    /// Fraction of `rps` kept for priority work, in `[0, 0.95]` (clamped).
    pub reserve: f64,
    /// Fly reads of one in-sync activation.
    pub reads_per_resync: u32,
}

impl ResyncBudget {
    pub fn new(rps: u32) -> Self {
        Self {
            rps,
            reserve: DEFAULT_RESERVE,
            reads_per_resync: READS_PER_RESYNC,
        }
    }

    /// Requests per second resyncs may use.
    pub fn resync_share(&self) -> f64 {
        let reserve = if self.reserve.is_finite() {
            self.reserve.clamp(0.0, 0.95)
        } else {
            DEFAULT_RESERVE
        };
        f64::from(self.rps) * (1.0 - reserve)
    }
}

/// The outcome of [`stretch`]: by how much every resync interval is
/// multiplied, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stretch {
    /// At least 1; 1 when the fleet fits (or there is no budget).
    pub factor: f64,
    /// Requests per second the fleet's resyncs need at their own intervals.
    pub demand_rps: f64,
    /// Requests per second resyncs may use (`None`: no global budget).
    pub share_rps: Option<f64>,
    /// Tenants counted.
    pub tenants: usize,
}

impl Stretch {
    /// Whether the intervals are stretched.
    pub fn stretched(&self) -> bool {
        self.factor > 1.0
    }

    /// `interval` stretched by the factor, saturating.
    pub fn apply(&self, interval: Duration) -> Duration {
        scale(interval, self.factor)
    }
}

/// The stretch for a fleet whose tenants resync every `intervals` (one per
/// tenant), under `budget` (`None`: no global budget, nothing stretches).
/// An interval under one second counts as one second.
pub fn stretch(
    intervals: impl IntoIterator<Item = Duration>,
    budget: Option<ResyncBudget>,
) -> Stretch {
    let reads = f64::from(budget.map_or(READS_PER_RESYNC, |b| b.reads_per_resync));
    let mut tenants = 0usize;
    let mut per_second = 0.0f64;
    for interval in intervals {
        tenants += 1;
        per_second += 1.0 / interval.as_secs_f64().max(1.0);
    }
    stretch_for(tenants, reads * per_second, budget)
}

/// The effective resync interval of a fleet of `tenants` that all resync
/// every `configured` under `budget`: `configured` when their demand fits the
/// resync share, else stretched so it does (at most [`MAX_STRETCH`] times).
pub fn effective_interval(
    tenants: usize,
    configured: Duration,
    budget: Option<ResyncBudget>,
) -> Duration {
    let reads = f64::from(budget.map_or(READS_PER_RESYNC, |b| b.reads_per_resync));
    let demand = tenants as f64 * reads / configured.as_secs_f64().max(1.0);
    stretch_for(tenants, demand, budget).apply(configured)
}

fn stretch_for(tenants: usize, demand_rps: f64, budget: Option<ResyncBudget>) -> Stretch {
    let share_rps = budget.map(|b| b.resync_share());
    let factor = match share_rps {
        Some(share) if demand_rps > share => {
            if share > 0.0 {
                (demand_rps / share).min(MAX_STRETCH)
            } else {
                MAX_STRETCH
            }
        }
        _ => 1.0,
    };
    Stretch {
        factor,
        demand_rps,
        share_rps,
        tenants,
    }
}

/// `d · factor`, at most one year or `d` if that is longer (and `d` for a
/// factor that is not a finite number ≥ 0).
pub fn scale(d: Duration, factor: f64) -> Duration {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    if !factor.is_finite() || factor < 0.0 {
        return d;
    }
    Duration::try_from_secs_f64(d.as_secs_f64() * factor)
        .unwrap_or(Duration::MAX)
        .min(YEAR.max(d))
}

/// How far behind its due time the oldest due resync is: `now - due`, zero
/// when none is due yet.
pub fn lag<I: Ord + Copy>(
    oldest_due: Option<I>,
    now: I,
    since: impl Fn(I, I) -> Duration,
) -> Duration {
    match oldest_due {
        Some(due) if due < now => since(now, due),
        _ => Duration::ZERO,
    }
}

/// A lag is reported (on `/readyz`) from a tenth of the effective interval,
/// and at least 30 s: resyncs start a little late whenever every reconcile
/// slot is busy, which is no news.
pub fn lag_worth_reporting(lag: Duration, effective: Duration) -> bool {
    lag >= (effective / 10).max(Duration::from_secs(30))
}

/// The lines `/readyz` adds about resyncs (none while they keep their
/// schedule): a stretched interval, and a lag worth reporting.
pub fn readyz_detail(configured: Duration, stretch: &Stretch, lag: Duration) -> Vec<String> {
    let mut lines = Vec::new();
    let effective = stretch.apply(configured);
    if stretch.stretched() {
        let share = stretch.share_rps.unwrap_or_default();
        lines.push(format!(
            "resync: interval stretched from {}s to {}s: {} tenant(s) need {:.1} req/s of reads, over the {:.1} req/s the Fly budget leaves for resyncs",
            configured.as_secs(),
            effective.as_secs(),
            stretch.tenants,
            stretch.demand_rps,
            share,
        ));
    }
    if lag_worth_reporting(lag, effective) {
        lines.push(format!(
            "resync: lagging {}s behind schedule",
            lag.as_secs()
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn budget(rps: u32) -> Option<ResyncBudget> {
        Some(ResyncBudget::new(rps))
    }

    #[test]
    fn a_fleet_within_the_budget_keeps_its_interval() {
        // 100 tenants × 4 reads / 300 s = 1.3 req/s, under 15 of 20.
        assert_eq!(effective_interval(100, FIVE_MIN, budget(20)), FIVE_MIN);
        assert!(!stretch(vec![FIVE_MIN; 100], budget(20)).stretched());
    }

    #[test]
    fn no_tenants_and_no_budget_stretch_nothing() {
        assert_eq!(effective_interval(0, FIVE_MIN, budget(1)), FIVE_MIN);
        let s = stretch(Vec::new(), budget(1));
        assert_eq!((s.factor, s.demand_rps, s.tenants), (1.0, 0.0, 0));
        assert_eq!(effective_interval(1_000_000, FIVE_MIN, None), FIVE_MIN);
    }

    #[test]
    fn the_operators_fleet_stretches_evenly_to_fit_the_share() {
        // 10,000 tenants × 4 reads = 40,000 reads per round; 15 req/s of
        // the default 20 are for resyncs: 2,666.7 s.
        let e = effective_interval(10_000, FIVE_MIN, budget(20));
        assert_eq!(e.as_millis(), 2_666_666);
        let s = stretch(vec![FIVE_MIN; 10_000], budget(20));
        assert!((s.demand_rps - 133.33).abs() < 0.01, "{s:?}");
        assert_eq!(s.share_rps, Some(15.0));
        // With the budget raised to 200 req/s the schedule holds.
        assert_eq!(effective_interval(10_000, FIVE_MIN, budget(200)), FIVE_MIN);
        // With the org feed on, 3 reads each: 2,000 s.
        let feed = Some(ResyncBudget {
            reads_per_resync: READS_PER_RESYNC_WITH_FEED,
            ..ResyncBudget::new(20)
        });
        assert_eq!(effective_interval(10_000, FIVE_MIN, feed).as_secs(), 2_000);
    }

    #[test]
    fn a_tiny_budget_or_huge_fleet_is_capped() {
        let e = effective_interval(usize::MAX, FIVE_MIN, budget(1));
        assert_eq!(e, FIVE_MIN.mul_f64(MAX_STRETCH));
        let all_reserved = ResyncBudget {
            reserve: 1.0,
            ..ResyncBudget::new(1)
        };
        // The reserve is clamped at 95%: 0.05 req/s for resyncs.
        assert!((all_reserved.resync_share() - 0.05).abs() < 1e-9);
        let nan = ResyncBudget {
            reserve: f64::NAN,
            ..ResyncBudget::new(4)
        };
        assert_eq!(nan.resync_share(), 3.0);
    }

    #[test]
    fn shorter_per_tenant_intervals_count_for_more() {
        // 10 tenants every 10 s (4 req/s) and 10 every 300 s (0.13 req/s),
        // against 3 req/s: factor 1.378.
        let mut intervals = vec![Duration::from_secs(10); 10];
        intervals.extend(vec![FIVE_MIN; 10]);
        let s = stretch(intervals, budget(4));
        assert!(
            (s.factor - (4.0 + 40.0 / 300.0) / 3.0).abs() < 1e-9,
            "{s:?}"
        );
        // Sub-second intervals count as one second.
        let s = stretch(vec![Duration::ZERO], budget(100));
        assert_eq!(s.demand_rps, 4.0);
    }

    #[test]
    fn scale_saturates() {
        assert_eq!(scale(FIVE_MIN, 2.0), Duration::from_secs(600));
        assert_eq!(scale(FIVE_MIN, f64::NAN), FIVE_MIN);
        assert_eq!(scale(FIVE_MIN, f64::INFINITY), FIVE_MIN);
        assert_eq!(scale(Duration::MAX, 2.0), Duration::MAX);
        assert_eq!(scale(FIVE_MIN, 1e300), Duration::from_secs(365 * 24 * 3600));
    }

    #[test]
    fn lag_counts_only_what_is_overdue() {
        let since = |a: u64, b: u64| Duration::from_secs(a - b);
        assert_eq!(lag(None, 10, since), Duration::ZERO);
        assert_eq!(lag(Some(12), 10, since), Duration::ZERO);
        assert_eq!(lag(Some(4), 10, since), Duration::from_secs(6));
    }

    #[test]
    fn readyz_says_nothing_while_the_schedule_holds() {
        let s = stretch(vec![FIVE_MIN; 10], budget(20));
        assert!(readyz_detail(FIVE_MIN, &s, Duration::from_secs(29)).is_empty());
        let lines = readyz_detail(FIVE_MIN, &s, Duration::from_secs(45));
        assert_eq!(lines, ["resync: lagging 45s behind schedule"]);
    }

    #[test]
    fn readyz_names_a_stretched_interval() {
        let s = stretch(vec![FIVE_MIN; 10_000], budget(20));
        let lines = readyz_detail(FIVE_MIN, &s, Duration::from_secs(60));
        assert_eq!(
            lines,
            [
                "resync: interval stretched from 300s to 2666s: 10000 tenant(s) need 133.3 req/s of reads, over the 15.0 req/s the Fly budget leaves for resyncs"
            ]
        );
        // The lag is measured against the stretched interval.
        assert_eq!(
            readyz_detail(FIVE_MIN, &s, Duration::from_secs(300)).len(),
            2
        );
    }

    proptest! {
        /// Stretched, the fleet's demand fits the share (unless capped), the
        /// interval never shrinks, and uniform fleets agree with
        /// [`effective_interval`].
        #[test]
        fn stretched_demand_fits_the_share(
            tenants in 0usize..200_000,
            secs in 1u64..7200,
            rps in 1u32..1000,
            reserve in 0.0f64..0.95,
        ) {
            let b = ResyncBudget { reserve, ..ResyncBudget::new(rps) };
            let configured = Duration::from_secs(secs);
            let e = effective_interval(tenants, configured, Some(b));
            prop_assert!(e >= configured);
            let demand = tenants as f64 * 4.0 / e.as_secs_f64();
            if e < configured.mul_f64(MAX_STRETCH) {
                prop_assert!(demand <= b.resync_share() * (1.0 + 1e-9), "{demand} > {}", b.resync_share());
            }
            let s = stretch(std::iter::repeat_n(configured, tenants.min(2000)), Some(b));
            let e_small = effective_interval(tenants.min(2000), configured, Some(b));
            let diff = (s.apply(configured).as_secs_f64() - e_small.as_secs_f64()).abs();
            prop_assert!(diff < 1e-3, "{diff}");
        }
    }
}
