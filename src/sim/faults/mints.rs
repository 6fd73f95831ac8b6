//! Lost mint answers: `createLimitedAccessToken` mints the token and the
//! client never gets it.
//!
//! Two ways to ask for it: a rate in the profile
//! ([`FaultProfile::lost_mint_rate`](super::FaultProfile::lost_mint_rate),
//! split between a 502 and a stall by `lost_stall_rate`, like `lost_rate`),
//! and a one-shot count ("lose the next N mint answers", [`LostResponse`]
//! saying how), set through `SimHandle::lose_next_mints` or `POST
//! /__sim/tokens/lose-next-mints`. The count is used first and is kept
//! across profile changes; the rate draws from its own RNG, seeded like the
//! request faults and restarted with every profile change, so turning it on
//! changes no other fault decision.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// How a mint answer is lost (the token exists either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostResponse {
    /// HTTP 502 with an empty body, as an edge proxy answers.
    #[default]
    Error,
    /// The request hangs for the profile's `stall` (beyond a client
    /// timeout), then 504.
    Stall,
    /// The connection closes before the answer is complete (the client
    /// sees a transport failure).
    Drop,
}

impl LostResponse {
    pub const ALL: &[Self] = &[Self::Error, Self::Stall, Self::Drop];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Stall => "stall",
            Self::Drop => "drop",
        }
    }
}

impl std::str::FromStr for LostResponse {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("unknown lost response {s:?}: expected error, stall or drop"))
    }
}

/// One mint's fate: lost this way, after (for a stall) this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostMint {
    pub how: LostResponse,
    pub stall: Duration,
}

/// The pending one-shot losses, as `/__sim/tokens` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PendingLostMints {
    pub count: u32,
    pub how: LostResponse,
}

/// The mint-loss state of one simulator (inside the fault lock).
pub(super) struct MintFaults {
    rng: StdRng,
    pending: PendingLostMints,
}

fn mint_seed(seed: u64) -> u64 {
    seed ^ 0x6d69_6e74_6c6f_7374
}

impl MintFaults {
    pub(super) fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(mint_seed(seed)),
            pending: PendingLostMints::default(),
        }
    }

    /// A new profile: the rate's decisions start over; pending losses stay.
    pub(super) fn restart(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(mint_seed(seed));
    }

    pub(super) fn set_pending(&mut self, count: u32, how: LostResponse) {
        self.pending = PendingLostMints { count, how };
    }

    pub(super) fn pending(&self) -> PendingLostMints {
        self.pending
    }

    /// Decides the fate of one mint: a pending loss first, else the rate.
    pub(super) fn decide(
        &mut self,
        rate: f64,
        stall_rate: f64,
        stall: Duration,
    ) -> Option<LostMint> {
        if self.pending.count > 0 {
            self.pending.count -= 1;
            return Some(LostMint {
                how: self.pending.how,
                stall,
            });
        }
        if rate <= 0.0 || !self.rng.random_bool(rate.min(1.0)) {
            return None;
        }
        let how = if self.rng.random_bool(stall_rate.clamp(0.0, 1.0)) {
            LostResponse::Stall
        } else {
            LostResponse::Error
        };
        Some(LostMint { how, stall })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(30);

    #[test]
    fn pending_losses_come_first_and_run_out() {
        let mut m = MintFaults::new(1);
        m.set_pending(2, LostResponse::Drop);
        let lost = m.decide(0.0, 0.0, STALL).expect("first is lost");
        assert_eq!(lost.how, LostResponse::Drop);
        assert!(m.decide(0.0, 0.0, STALL).is_some());
        assert_eq!(m.pending().count, 0);
        assert_eq!(m.decide(0.0, 0.0, STALL), None, "then mints answer");
        m.set_pending(1, LostResponse::Stall);
        m.restart(1);
        assert_eq!(m.pending().count, 1, "a profile change keeps them");
    }

    #[test]
    fn the_rate_is_seeded_and_about_right() {
        let run = |seed| {
            let mut m = MintFaults::new(seed);
            (0..1000)
                .map(|_| m.decide(0.3, 0.5, STALL).map(|l| l.how))
                .collect::<Vec<_>>()
        };
        let a = run(4);
        assert_eq!(a, run(4));
        assert_ne!(a, run(5));
        let lost = a.iter().filter(|l| l.is_some()).count();
        assert!((230..370).contains(&lost), "{lost} of 1000 at 0.3");
        assert!(a.contains(&Some(LostResponse::Stall)));
        assert!(a.contains(&Some(LostResponse::Error)));
        assert!(
            !a.contains(&Some(LostResponse::Drop)),
            "the rate never drops"
        );
        let mut always = MintFaults::new(4);
        assert!((0..50).all(|_| always.decide(1.0, 0.0, STALL).is_some()));
    }

    #[test]
    fn lost_responses_parse_by_name() {
        for l in LostResponse::ALL {
            assert_eq!(l.as_str().parse::<LostResponse>(), Ok(*l));
        }
        assert!("reset".parse::<LostResponse>().is_err());
    }
}
