//! A randomized crash-and-fault simulation of the rotation protocol against
//! a tiny model of Fly (tokens, app secrets by version, one machine).
//!
//! Every step asks `decide`, performs the action against the model with a
//! random fault (fail before or after the effect, crash before or after it:
//! a crash loses the outcome, as SIGKILL would), records the outcome with
//! `apply`, and checks the protocol's guarantees:
//! * a token a consumer holds (the registry's ACTIVE token, the app secret's
//!   token, the machine's token) is never revoked while it is unexpired,
//!   except by teardown;
//! * a token the registry served stays valid for the grace period after it
//!   was replaced (a client that fetched it just before keeps working);
//! * a mint is only sent when every live token of this token on Fly is
//!   recorded (nothing is minted twice, nothing leaks);
//! * no two mints share a name;
//! * once faults stop, the token converges: no rotation in progress, and
//!   the only live token on Fly is the ACTIVE one;
//! * teardown then revokes every token and ends in `Gone`.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::crypto::Fingerprint;
use crate::ids::SecretName;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Ok,
    FailNoEffect,
    FailWithEffect,
    CrashNoEffect,
    CrashWithEffect,
    /// Verification: Fly rejects the token.
    Reject,
    /// A mint times out and lands later, within the settle window.
    Slow,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        12 => Just(Fault::Ok),
        2 => Just(Fault::FailNoEffect),
        2 => Just(Fault::FailWithEffect),
        1 => Just(Fault::CrashNoEffect),
        1 => Just(Fault::CrashWithEffect),
        1 => Just(Fault::Reject),
        1 => Just(Fault::Slow),
    ]
}

#[derive(Debug)]
struct FlyToken {
    id: FlyTokenId,
    name: String,
    revoked: bool,
    expires_at: Timestamp,
}

/// The model: Fly's tokens, the app secret's history by version, and the
/// secrets version the (single) machine runs.
#[derive(Debug, Default)]
struct Model {
    tokens: Vec<FlyToken>,
    /// `secrets[v - 1]` is the token the app secret held at version `v`.
    secrets: Vec<FlyTokenId>,
    machine_version: u64,
    /// When each formerly ACTIVE token was replaced by a promotion.
    superseded: Vec<(FlyTokenId, Timestamp)>,
    /// Mints Fly has accepted but not created yet, with when they land.
    in_flight: Vec<(FlyToken, Timestamp)>,
}

impl Model {
    fn listing(&self) -> Vec<ListedToken> {
        self.tokens
            .iter()
            .map(|t| ListedToken {
                fly_token_id: t.id.clone(),
                name: t.name.clone(),
                revoked: t.revoked,
            })
            .collect()
    }

    fn token(&self, id: &FlyTokenId) -> &FlyToken {
        self.tokens
            .iter()
            .find(|t| &t.id == id)
            .expect("known token")
    }

    fn usable(&self, id: &FlyTokenId, now: Timestamp) -> bool {
        let t = self.token(id);
        !t.revoked && t.expires_at > now
    }

    /// Tokens consumers hold now: the app secret's latest value and the
    /// machine's.
    fn held(&self) -> Vec<FlyTokenId> {
        let mut out: Vec<FlyTokenId> = self.secrets.last().cloned().into_iter().collect();
        if self.machine_version > 0 {
            out.push(self.secrets[self.machine_version as usize - 1].clone());
        }
        out
    }
}

struct Sim {
    model: Model,
    record: TokenRecord,
    spec: crate::spec::model::TokenSpec,
    secrets: Vec<SecretName>,
    policy: Policy,
    now: Timestamp,
    /// A listing and when it was taken.
    listed: Option<(Timestamp, Vec<ListedToken>)>,
    deleting: bool,
    rotations: u8,
    steps: u32,
}

impl Sim {
    fn new(with_secret: bool) -> Self {
        Self {
            model: Model::default(),
            record: TokenRecord::new(token()),
            spec: spec(Some("*/10 * * * *")),
            secrets: if with_secret {
                vec![SecretName::parse("FLY_API_TOKEN").unwrap()]
            } else {
                vec![]
            },
            policy: Policy {
                max_jitter: SignedDuration::from_secs(30),
                ..Policy::default()
            },
            now: t(T0),
            listed: None,
            deleting: false,
            rotations: 0,
            steps: 0,
        }
    }

    fn decide(&self) -> Decision {
        let tenant = tenant();
        let machines_behind = match self.record.rotation.as_ref().map(|r| &r.phase) {
            Some(Phase::SecretsWritten {
                secrets_version, ..
            }) => u32::from(self.model.machine_version < *secrets_version),
            _ => 0,
        };
        decide(
            &self.record,
            &Desired {
                tenant: &tenant,
                spec: Some(&self.spec),
                deleting: self.deleting,
                app_secrets: &self.secrets,
            },
            &Facts {
                app_exists: true,
                listed: self
                    .listed
                    .as_ref()
                    .map(|(at, tokens)| Listing { at: *at, tokens }),
                machines_behind,
            },
            self.now,
            &self.policy,
        )
        .expect("records written by apply are always decidable")
    }

    fn apply(&mut self, outcome: Outcome) {
        apply(&mut self.record, outcome.clone(), self.now, &self.policy)
            .unwrap_or_else(|e| panic!("{outcome:?} refused: {e}\n{:#?}", self.record));
    }

    fn failed(&mut self, step: StepKind) {
        self.apply(Outcome::Failed {
            step,
            error: format!("{step:?} failed"),
        });
    }

    /// One decision and its execution under `fault`. A wait moves the clock
    /// `wake / 255` of the way to its end (at least a second): the
    /// controller may wake early (resync, other events) and must decide
    /// correctly at any instant. Returns false once the record is gone.
    fn step(&mut self, fault: Fault, wake: u8) -> bool {
        self.steps += 1;
        let now = self.now;
        let (landed, flying) = std::mem::take(&mut self.model.in_flight)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.model.in_flight = flying;
        self.model.tokens.extend(landed.into_iter().map(|(t, _)| t));
        let decision = self.decide();
        let action = match decision {
            Decision::Gone => return false,
            Decision::Wait { until, .. } => {
                let until = until.unwrap_or(self.now + SignedDuration::from_mins(1));
                let span = until.duration_since(self.now).as_nanos().max(0);
                let by = SignedDuration::from_nanos_i128(span * i128::from(wake) / 255);
                self.now += by.max(SignedDuration::from_secs(1));
                self.listed = None;
                return true;
            }
            Decision::Halted { .. } => {
                self.apply(Outcome::Resumed);
                return true;
            }
            Decision::Act { action, .. } => action,
        };
        // A listing is only good for the activation that fetched it.
        let listing = self.listed.take();
        // Slow only means something to a mint; elsewhere it is a plain failure.
        let fault = match (fault, &action) {
            (Fault::Slow, Action::Mint { .. }) => Fault::Slow,
            (Fault::Slow, _) => Fault::FailNoEffect,
            (f, _) => f,
        };
        let effect = matches!(
            fault,
            Fault::Ok | Fault::FailWithEffect | Fault::CrashWithEffect | Fault::Reject
        );
        let report = matches!(fault, Fault::Ok | Fault::FailWithEffect | Fault::Reject);
        let ok = matches!(fault, Fault::Ok | Fault::Reject);
        match action {
            Action::ListTokens => match fault {
                Fault::Ok | Fault::Reject => self.listed = Some((self.now, self.model.listing())),
                Fault::FailNoEffect | Fault::FailWithEffect => self.failed(StepKind::ListTokens),
                Fault::CrashNoEffect | Fault::CrashWithEffect | Fault::Slow => {}
            },
            Action::BeginRotation { cause, zero_grace } => {
                // A database-only step: "with effect" means the write committed.
                if effect {
                    self.rotations += 1;
                    let mut id = [0xcd; 16];
                    id[0] = self.rotations;
                    self.apply(Outcome::RotationStarted {
                        id: RotationId::from_uuid(Uuid::from_bytes(id)),
                        cause,
                        zero_grace,
                    });
                } else if fault == Fault::FailNoEffect {
                    self.failed(StepKind::BeginRotation);
                }
            }
            Action::Mint { name, expiry } => {
                if fault == Fault::CrashNoEffect {
                    return true; // crashed before `sent_at` was written
                }
                self.apply(Outcome::MintSent);
                if fault == Fault::Slow {
                    self.check_nothing_unrecorded_is_live(&name);
                    let delay = SignedDuration::from_secs(i64::from(wake) * 119 / 255);
                    let token = FlyToken {
                        id: FlyTokenId::parse(format!("slow-{}", self.steps)).unwrap(),
                        name,
                        revoked: false,
                        expires_at: self.now + SignedDuration::from_secs(expiry.0 as i64),
                    };
                    self.model.in_flight.push((token, self.now + delay));
                    self.failed(StepKind::Mint);
                } else if effect {
                    self.check_nothing_unrecorded_is_live(&name);
                    let id = FlyTokenId::parse(format!("fly-{}", self.model.tokens.len())).unwrap();
                    let expires_at = self.now + SignedDuration::from_secs(expiry.0 as i64);
                    self.model.tokens.push(FlyToken {
                        id: id.clone(),
                        name,
                        revoked: false,
                        expires_at,
                    });
                    if ok {
                        let rotation_id = self.record.rotation.as_ref().unwrap().id;
                        self.apply(Outcome::Minted {
                            credential: Credential {
                                fly_token_id: id.clone(),
                                rotation_id,
                                fingerprint: Fingerprint::of_bytes(id.as_str().as_bytes()),
                                minted_at: self.now,
                                expires_at,
                            },
                        });
                    }
                }
                if matches!(fault, Fault::FailNoEffect | Fault::FailWithEffect) {
                    self.failed(StepKind::Mint);
                }
            }
            Action::Verify { fly_token_id } => {
                let usable = self.model.usable(&fly_token_id, self.now);
                match fault {
                    Fault::Ok if usable => self.apply(Outcome::Verified),
                    Fault::Ok | Fault::Reject => self.apply(Outcome::VerifyRejected {
                        error: "token rejected".into(),
                    }),
                    Fault::FailNoEffect | Fault::FailWithEffect => self.failed(StepKind::Verify),
                    Fault::CrashNoEffect | Fault::CrashWithEffect | Fault::Slow => {}
                }
            }
            Action::WriteSecrets { fly_token_id, .. } => {
                if effect {
                    self.model.secrets.push(fly_token_id);
                    // The machine is created with the first version.
                    self.model.machine_version = self.model.machine_version.max(1);
                }
                if ok {
                    self.apply(Outcome::SecretsWritten {
                        version: self.model.secrets.len() as u64,
                    });
                } else if report || fault == Fault::FailNoEffect {
                    self.failed(StepKind::WriteSecrets);
                }
            }
            Action::UpdateMachines {
                min_secrets_version,
                ..
            } => {
                if effect {
                    self.model.machine_version =
                        self.model.machine_version.max(min_secrets_version);
                }
                if matches!(fault, Fault::FailNoEffect | Fault::FailWithEffect) {
                    self.failed(StepKind::UpdateMachines);
                }
            }
            Action::Promote { grace } => {
                if effect {
                    if let Some(a) = &self.record.active {
                        self.model
                            .superseded
                            .push((a.credential.fly_token_id.clone(), self.now));
                    }
                    self.apply(Outcome::Promoted { grace });
                } else if fault == Fault::FailNoEffect {
                    self.failed(StepKind::Promote);
                }
            }
            Action::Revoke { fly_token_id } => {
                self.check_revocation_is_safe(&fly_token_id);
                if effect {
                    self.model
                        .tokens
                        .iter_mut()
                        .find(|t| t.id == fly_token_id)
                        .unwrap()
                        .revoked = true;
                }
                if ok {
                    self.apply(Outcome::Revoked { fly_token_id });
                } else if matches!(fault, Fault::FailNoEffect | Fault::FailWithEffect) {
                    self.failed(StepKind::Revoke);
                }
            }
            Action::AbandonMintAttempt => {
                // Only after a listing proved the attempt is not live.
                let (_, listing) = listing.expect("abandon follows a listing");
                let name = self.current_mint_name();
                assert!(listing.iter().all(|l| l.name != name || l.revoked));
                if effect {
                    self.apply(Outcome::MintAttemptAbandoned);
                }
            }
            Action::DropRotation => {
                if effect {
                    self.apply(Outcome::RotationDropped);
                }
            }
        }
        self.now += SignedDuration::from_secs(5);
        self.check_consumers_hold_usable_tokens();
        true
    }

    fn current_mint_name(&self) -> String {
        let r = self.record.rotation.as_ref().unwrap();
        mint_name(&tenant(), &token(), r.id, r.attempt)
    }

    fn live_recorded(&self) -> Vec<FlyTokenId> {
        self.record
            .credentials()
            .into_iter()
            .filter(|(s, _)| *s != TokenState::Revoked)
            .map(|(_, c)| c.fly_token_id.clone())
            .collect()
    }

    fn check_nothing_unrecorded_is_live(&self, name: &str) {
        assert!(
            self.model.tokens.iter().all(|t| t.name != name),
            "minted {name} twice"
        );
        assert!(
            self.model.in_flight.is_empty(),
            "minting {name} while an earlier mint may still land"
        );
        let recorded = self.live_recorded();
        for tok in self.model.tokens.iter().filter(|t| !t.revoked) {
            assert!(
                recorded.contains(&tok.id),
                "minting {name} while {} ({}) is live and unrecorded\n{:#?}",
                tok.id,
                tok.name,
                self.record
            );
        }
    }

    fn check_revocation_is_safe(&self, id: &FlyTokenId) {
        if self.deleting || !self.model.usable(id, self.now) {
            return;
        }
        let active = self
            .record
            .active
            .as_ref()
            .map(|a| &a.credential.fly_token_id);
        assert_ne!(active, Some(id), "revoking the ACTIVE token");
        let grace = SignedDuration::from_secs(self.spec.grace.0 as i64);
        if let Some((_, at)) = self.model.superseded.iter().find(|(t, _)| t == id) {
            assert!(
                self.now >= *at + grace,
                "revoking {id} {} after it was replaced, within its grace",
                self.now.duration_since(*at)
            );
        }
        assert!(
            !self.model.held().contains(id),
            "revoking {id}, which a consumer holds\n{:#?}\n{:#?}",
            self.model,
            self.record
        );
    }

    fn check_consumers_hold_usable_tokens(&self) {
        if self.deleting {
            return;
        }
        let mut held = self.model.held();
        held.extend(
            self.record
                .active
                .as_ref()
                .map(|a| a.credential.fly_token_id.clone()),
        );
        for id in held {
            let tok = self.model.token(&id);
            assert!(
                !tok.revoked || tok.expires_at <= self.now,
                "a consumer holds revoked token {id}\n{:#?}",
                self.record
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rotation_survives_faults_and_crashes(
        faults in proptest::collection::vec((fault(), any::<u8>()), 50..250),
        with_secret in any::<bool>(),
    ) {
        let mut sim = Sim::new(with_secret);
        for (f, wake) in faults {
            prop_assert!(sim.step(f, wake));
        }
        // Faults stop: the token converges to one live token on Fly.
        let mut converged = false;
        for _ in 0..500 {
            prop_assert!(sim.step(Fault::Ok, 255));
            let idle = sim.record.rotation.is_none() && sim.record.retiring.is_empty();
            if idle && sim.record.active.is_some() {
                // Sweep once with a listing, as a periodic resync would.
                sim.listed = Some((sim.now, sim.model.listing()));
                while matches!(sim.decide(), Decision::Act { action: Action::Revoke { .. }, .. }) {
                    sim.step(Fault::Ok, 255);
                    sim.listed = Some((sim.now, sim.model.listing()));
                }
                sim.listed = None;
                let live: Vec<_> = sim.model.tokens.iter().filter(|t| !t.revoked).map(|t| t.id.clone()).collect();
                prop_assert_eq!(live, sim.live_recorded());
                converged = true;
                break;
            }
        }
        prop_assert!(converged, "no convergence:\n{:#?}", sim.record);
        // Teardown revokes everything.
        sim.deleting = true;
        let mut gone = false;
        for _ in 0..200 {
            if !sim.step(Fault::Ok, 255) {
                gone = true;
                break;
            }
        }
        prop_assert!(gone, "teardown did not finish:\n{:#?}", sim.record);
        prop_assert!(sim.model.tokens.iter().all(|t| t.revoked));
    }
}

#[test]
fn a_fault_free_run_rotates_on_schedule() {
    let mut sim = Sim::new(true);
    while sim.now < t(T0) + SignedDuration::from_hours(2) {
        assert!(sim.step(Fault::Ok, 128));
    }
    // Every 10 minutes, held back by the 10-minute grace: a rotation about
    // every 10-11 minutes, each revoking its predecessor.
    assert!(
        (9..=13).contains(&sim.rotations),
        "{} rotations",
        sim.rotations
    );
    let live = sim.model.tokens.iter().filter(|t| !t.revoked).count();
    assert!(live <= 3, "{live} live tokens");
    assert_eq!(
        sim.record.revoked.len() + sim.live_recorded().len(),
        sim.model.tokens.len()
    );
}
