//! Rate buckets shared by every replica of an org ([`OrgBuckets`]): the
//! seam through which [`super::ratelimit::FlyRateLimiter`] paces the calls
//! Fly counts against the organization (app creation, the org-wide actions)
//! when several `flotilla serve` replicas share one PostgreSQL database.
//!
//! Split evenly, each replica's bucket bursts on its own, so K replicas
//! together can send K small bursts at once into Fly's one bucket (measured:
//! 26 app-create 429s at K = 3 with 200 tenants). One bucket for the org,
//! kept in the database, never lets the replicas together exceed it.
//!
//! # The algorithm: GCRA by reservation
//! A bucket of emission interval `T` (the period) and burst `b` has the
//! burst tolerance `τ = (b - 1)·T` and one state, its theoretical arrival
//! time `TAT` (none: a full bucket). A caller asking at time `t` is given
//!
//! ```text
//! departure = max(t, TAT - τ)        (t when the bucket has no TAT)
//! TAT'      = max(TAT, t) + T        (t + T when it has none)
//! wait      = departure - t = max(0, TAT' - b·T - t)
//! ```
//!
//! and sends after `wait`. Every caller gets a slot at once (first come,
//! first served, no retry loop); the slots it hands out conform to the GCRA:
//! **in any window of length `w` at most `b + ⌊w/T⌋` departures**, whatever
//! order the callers' `t` come in (proof at [`reserve`]). The database's
//! implementation (`crate::store::org_buckets`) runs this one step as one
//! statement on its own clock, after taking the row's lock, so the
//! replicas' clocks play no part and concurrent reservations are ordered.
//!
//! # Why that keeps to Fly's bucket
//! Fly's bucket for these actions holds `B = 3` at 1 req/s; a sequence of
//! arrivals passes such a token bucket (full at the start) exactly when every
//! window of length `w` holds at most `B + w/T` of them. The client's burst
//! is one less (`b = B - 1`, `super::ratelimit`'s module docs): if each
//! request reaches Fly between `D` and `D + J` after its departure, with
//! `J ≤ T`, the arrivals in a window of length `w` departed within a window
//! of length `w + J`, so they are at most `b + (w + J)/T ≤ B + w/T`. The
//! jitter `J` includes the reservation's own: the answer reaches the
//! replica after the database read its clock (commit and network), and the
//! replica sleeps `wait` from then, so it only ever sends late.
//!
//! # Failures
//! An [`OrgBuckets`] that fails answers [`SharedBucketError`]; the limiter
//! then paces that call with its own bucket, split among the replicas as
//! without a shared bucket (never unpaced), warns once per outage and counts
//! `flotilla_fly_ratelimit_shared_fallbacks_total`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// One bucket's limit: `burst` requests at once, then one per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketQuota {
    /// The emission interval `T` (at least a microsecond).
    pub period: Duration,
    /// The burst `b` (at least 1).
    pub burst: u32,
}

impl BucketQuota {
    /// `T` in whole microseconds, rounded up (never a faster pace than
    /// asked), at least 1.
    pub fn period_micros(&self) -> i64 {
        let us = self.period.as_nanos().div_ceil(1000).max(1);
        i64::try_from(us).unwrap_or(i64::MAX)
    }

    /// `b·T = T + τ` in microseconds: how far past a reservation's time the
    /// new `TAT` may lie before it has to wait.
    pub fn tolerance_micros(&self) -> i64 {
        self.period_micros()
            .saturating_mul(i64::from(self.burst.max(1)))
    }
}

/// A shared bucket could not be reached or answered nonsense. The text is
/// already scrubbed of credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared rate bucket: {0}")]
pub struct SharedBucketError(pub String);

/// The org's rate buckets, shared by every replica.
#[async_trait]
pub trait OrgBuckets: Send + Sync + std::fmt::Debug {
    /// Reserves the next departure in `org`'s bucket for `action` (`org` is
    /// the org the call names, `""` for the client's own) under `quota`,
    /// and answers how long the caller must wait before sending. The slot
    /// is taken even if the caller then does not send.
    async fn reserve(
        &self,
        org: &str,
        action: &str,
        quota: BucketQuota,
    ) -> Result<Duration, SharedBucketError>;
}

/// The shared buckets the limiter is given (`RateLimitConfig::shared`).
/// Compares by identity.
#[derive(Debug, Clone)]
pub struct SharedBuckets(pub Arc<dyn OrgBuckets>);

impl PartialEq for SharedBuckets {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedBuckets {}

/// One GCRA step in microseconds on one clock: the bucket's `tat` (`None`:
/// full) and a caller's time `now` give the new `TAT` and the caller's
/// wait. The reference for the database's statement, which computes the
/// same.
///
/// Why the departures conform, with the callers' `t` in any order (a caller
/// may read the clock before one that is served first). Number the steps
/// as they are served; `S_k` is `TAT` after step `k`, `d_k` its departure.
/// 1. `S_k ≥ S_{k-1} + T`: each step adds at least `T`.
/// 2. `S_k ≥ d_k + T`: `d_k = max(t_k, S_{k-1} - τ) ≤ max(t_k, S_{k-1})`.
/// 3. `d_k ≥ S_{k-1} - τ`.
///
/// Take `n ≥ 2` departures in a window `[a, a + w]`, served first at step
/// `i` and last at step `j` (so `j - i ≥ n - 1`). Then
/// `a + w ≥ d_j ≥ S_{j-1} - τ ≥ S_i + (j - 1 - i)·T - τ ≥ d_i + (j - i)·T - τ
/// ≥ a + (n - 1)·T - (b - 1)·T`, hence `n ≤ b + w/T`.
pub fn reserve(tat: Option<i64>, now: i64, quota: BucketQuota) -> (i64, i64) {
    let t_us = quota.period_micros();
    let new_tat = tat.map_or(now, |tat| tat.max(now)).saturating_add(t_us);
    let wait = (new_tat - quota.tolerance_micros() - now).max(0);
    (new_tat, wait)
}

/// True when every window of `departures` (microseconds, any order) of
/// length `w` holds at most `burst + ⌊w/T⌋` of them: the GCRA's promise
/// (also used by the PostgreSQL test of the shared bucket).
pub fn conforms(departures: &[i64], quota: BucketQuota) -> Result<(), String> {
    let mut d = departures.to_vec();
    d.sort_unstable();
    let t = quota.period_micros();
    for i in 0..d.len() {
        for j in i..d.len() {
            let n = (j - i + 1) as i64;
            let allowed = i64::from(quota.burst) + (d[j] - d[i]) / t;
            if n > allowed {
                return Err(format!(
                    "{n} departures within {} µs (at most {allowed}): {:?}",
                    d[j] - d[i],
                    &d[i..=j]
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    const SECOND: BucketQuota = BucketQuota {
        period: Duration::from_secs(1),
        burst: 2,
    };

    /// Departures for callers arriving at `times` (served in that order).
    fn departures(times: &[i64], quota: BucketQuota) -> Vec<i64> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| {
                let (next, wait) = reserve(tat, now, quota);
                tat = Some(next);
                now + wait
            })
            .collect()
    }

    #[test]
    fn a_full_bucket_lets_the_burst_through_then_one_per_period() {
        let got = departures(&[0, 0, 0, 0, 10, 5_000_000], SECOND);
        assert_eq!(got, [0, 0, 1_000_000, 2_000_000, 3_000_000, 5_000_000]);
        // After an idle spell the burst is back.
        let (tat, wait) = reserve(Some(4_000_000), 9_000_000, SECOND);
        assert_eq!((tat, wait), (10_000_000, 0));
        let (_, wait) = reserve(Some(tat), 9_000_000, SECOND);
        assert_eq!(wait, 0);
    }

    #[test]
    fn periods_round_up_to_the_microsecond() {
        let q = BucketQuota {
            period: Duration::from_secs(60) / 7,
            burst: 2,
        };
        assert_eq!(q.period_micros(), 8_571_429);
        assert_eq!(q.tolerance_micros(), 2 * 8_571_429);
    }

    /// Callers served in an order unrelated to the times they read (up to
    /// 3 s apart, bursts and idle spells): the departures still conform.
    #[test]
    fn departures_conform_whatever_order_callers_are_served_in() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        for burst in 1..=4 {
            let quota = BucketQuota {
                period: Duration::from_millis(50),
                burst,
            };
            for _ in 0..200 {
                let mut clock = 0i64;
                let times: Vec<i64> = (0..40)
                    .map(|_| {
                        clock += rng.random_range(0..120_000);
                        clock - rng.random_range(0..3_000_000)
                    })
                    .collect();
                let got = departures(&times, quota);
                assert!(got.iter().zip(&times).all(|(d, t)| d >= t));
                conforms(&got, quota).unwrap();
            }
        }
    }

    #[test]
    fn the_window_check_catches_an_extra_departure() {
        assert!(conforms(&[0, 0, 1_000_000], SECOND).is_ok());
        assert!(conforms(&[0, 0, 999_999], SECOND).is_err());
        assert!(conforms(&[5, 0, 5, 0], SECOND).is_err());
    }
}
