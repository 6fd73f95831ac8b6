//! May observe take an app's machines from the machine cache at this
//! instant, instead of listing them? Pure: [`decide`] answers from facts the
//! cache (`feed::cache`) gathered; nothing here reads a clock or does I/O.
//!
//! The cache pairs two independent sources for each app:
//! * a **snapshot**: the app's full machines (configs, checks) as the
//!   tenant's last direct list (`GET /v1/apps/{app}/machines`) returned
//!   them, with the instant that list was sent;
//! * the **feed view**: the id, version and state of each of the app's live
//!   machines as the org feed (`GET /v1/orgs/{org}/machines`) last showed
//!   them. The org list carries no full config, so it can never stand in
//!   for a snapshot; it only says whether the snapshot is still current.
//!
//! # Invariant
//! Observe uses a snapshot only when every one of these holds, else it lists
//! the app directly (today's path) and that list becomes the new snapshot:
//! 1. the org is watched, and its feed has applied a complete full list
//!    since it started or last failed ([`Miss::NeverFullListed`]);
//! 2. the org's last successful round started at most twice the feed
//!    interval ago ([`Miss::StalePoll`]);
//! 3. the tenant's spec is settled: its generation was already observed, it
//!    is not being deleted, and it has no pending intent
//!    ([`Miss::SpecUnsettled`]), so a snapshot never feeds a plan that
//!    creates or removes machines for a spec change;
//! 4. a snapshot exists ([`Miss::NoSnapshot`]);
//! 5. no write of this process that can change the app's machines is in
//!    flight, and none finished after the snapshot's list was sent
//!    ([`Miss::OwnWrite`]): after its own create, update, destroy, start or
//!    stop a tenant always lists directly at least once, so its next plan
//!    sees the machine it just made;
//! 6. the snapshot is at most `max_snapshot_age` old ([`Miss::SnapshotOld`]):
//!    health-check results and host status are not in the org list, so this
//!    bounds how stale they can be;
//! 7. every live machine of the snapshot is settled: not in a transition,
//!    its host reachable (full config known), its state known
//!    ([`Miss::MachinesUnsettled`]);
//! 8. the feed view agrees with the snapshot: the same live machine ids,
//!    each with the same version and state ([`Miss::FeedDisagrees`]).
//!
//! Why this is safe: a duplicate create needs a view missing a live machine
//! flotilla owns. Flotilla's own creates are excluded by 5 (the snapshot is
//! listed after them, and Fly's per-app list is current), and a create whose
//! outcome is unknown leaves an intent (3). What remains is a change made
//! by someone else after the snapshot that the feed does not show yet (its
//! propagation delay plus at most two intervals): during that window the
//! snapshot is what a direct list showed just before the change, and with a
//! settled spec (3) and no own write since (5) the planner does what it did
//! then. A machine created by someone else is not flotilla's and is never
//! touched; one destroyed, stopped or updated by someone else is repaired
//! once the feed shows it, 8 fails and the woken tenant lists. A scale-down
//! never plans from a snapshot (3), so a machine destroyed behind
//! flotilla's back cannot make it destroy a live one in its place.
//! Writes by another process (a second controller) are not seen by 5: the
//! controller lock keeps `serve` single-writer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ids::MachineId;
use crate::model::fly::{HostStatus, Machine, MachineState};

/// What the feed saw of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub version: String,
    pub state: MachineState,
}

/// The feed's view of one app: its live machines (none gone for good).
pub type View = BTreeMap<MachineId, Mark>;

/// The feed's standing for one org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgFacts {
    /// A complete full list was applied since the start or the last error.
    pub synced: bool,
    /// When the last successful round started.
    pub last_ok_round: Option<Instant>,
}

/// This process's writes to one app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Writes {
    /// Started and not yet finished.
    pub in_flight: u32,
    /// When the last one finished (successfully or not).
    pub last_done: Option<Instant>,
}

/// An app's machines from a direct list.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When the list was sent.
    pub listed_at: Instant,
    /// Every machine the list returned, gone ones included.
    pub machines: Vec<Machine>,
}

impl Snapshot {
    /// The live machines' marks.
    pub fn view(&self) -> View {
        self.machines
            .iter()
            .filter(|m| !m.state.is_gone())
            .map(|m| {
                (
                    m.id.clone(),
                    Mark {
                        version: m.version.clone(),
                        state: m.state,
                    },
                )
            })
            .collect()
    }
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub now: Instant,
    /// The feed's interval.
    pub interval: Duration,
    pub max_snapshot_age: Duration,
    /// `None`: the feed does not watch the app's org.
    pub org: Option<OrgFacts>,
    /// `None`: the feed shows no live machine of the app.
    pub view: Option<&'a View>,
    pub snapshot: Option<&'a Snapshot>,
    pub writes: Writes,
    /// Condition 3 of the invariant, decided by the reconciler.
    pub spec_settled: bool,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Use the snapshot.
    Use,
    /// List the app's machines directly, for this reason.
    List(Miss),
}

/// Why the cache was not used (the first condition that failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    NotWatched,
    NeverFullListed,
    StalePoll,
    SpecUnsettled,
    NoSnapshot,
    OwnWrite,
    SnapshotOld,
    MachinesUnsettled,
    FeedDisagrees,
}

impl Miss {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotWatched => "not_watched",
            Self::NeverFullListed => "never_full_listed",
            Self::StalePoll => "stale_poll",
            Self::SpecUnsettled => "spec_unsettled",
            Self::NoSnapshot => "no_snapshot",
            Self::OwnWrite => "own_write",
            Self::SnapshotOld => "snapshot_old",
            Self::MachinesUnsettled => "machines_unsettled",
            Self::FeedDisagrees => "feed_disagrees",
        }
    }
}

/// Whether a live machine is steady enough to be served from a snapshot.
fn settled(m: &Machine) -> bool {
    m.state.is_gone()
        || (!m.state.is_transient()
            && m.state != MachineState::Unknown
            && m.host_status == HostStatus::Ok
            && m.config.is_some())
}

/// See the module doc: the conditions in order, the first failing one named.
pub fn decide(i: &Inputs<'_>) -> Verdict {
    use Verdict::List;
    let Some(org) = i.org else {
        return List(Miss::NotWatched);
    };
    let Some(last_ok) = org.last_ok_round.filter(|_| org.synced) else {
        return List(Miss::NeverFullListed);
    };
    if i.now.saturating_duration_since(last_ok) > i.interval.saturating_mul(2) {
        return List(Miss::StalePoll);
    }
    if !i.spec_settled {
        return List(Miss::SpecUnsettled);
    }
    let Some(snapshot) = i.snapshot else {
        return List(Miss::NoSnapshot);
    };
    if i.writes.in_flight > 0 || i.writes.last_done.is_some_and(|t| t >= snapshot.listed_at) {
        return List(Miss::OwnWrite);
    }
    if i.now.saturating_duration_since(snapshot.listed_at) > i.max_snapshot_age {
        return List(Miss::SnapshotOld);
    }
    if !snapshot.machines.iter().all(settled) {
        return List(Miss::MachinesUnsettled);
    }
    let empty = View::new();
    if snapshot.view() != *i.view.unwrap_or(&empty) {
        return List(Miss::FeedDisagrees);
    }
    Verdict::Use
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::fly::{GuestConfig, MachineConfig, RestartConfig, RestartPolicy};
    use crate::spec::CpuKind;

    fn config() -> MachineConfig {
        MachineConfig {
            image: "img".into(),
            env: BTreeMap::new(),
            guest: GuestConfig {
                cpu_kind: CpuKind::Shared,
                cpus: 1,
                memory_mb: 256,
                gpu: None,
            },
            services: Vec::new(),
            checks: BTreeMap::new(),
            restart: RestartConfig {
                policy: RestartPolicy::OnFailure,
                max_retries: None,
            },
            metadata: BTreeMap::new(),
            auto_destroy: false,
            init: Default::default(),
            files: Vec::new(),
            processes: Vec::new(),
            stop: Default::default(),
            dns: Default::default(),
            statics: Vec::new(),
            mounts: Vec::new(),
        }
    }

    const A: &str = "0000000000000a";
    const B: &str = "0000000000000b";

    fn machine(id: &str, version: &str, state: MachineState) -> Machine {
        Machine {
            id: MachineId::parse(id).unwrap(),
            name: String::new(),
            state,
            region: "ord".into(),
            version: version.into(),
            host_status: HostStatus::Ok,
            config: Some(config()),
            metadata: BTreeMap::new(),
            checks: Vec::new(),
            created_at: None,
            updated_at: None,
        }
    }

    fn mark(version: &str, state: MachineState) -> Mark {
        Mark {
            version: version.into(),
            state,
        }
    }

    struct Case {
        t0: Instant,
        snapshot: Snapshot,
        view: View,
        org: OrgFacts,
        writes: Writes,
    }

    const INTERVAL: Duration = Duration::from_secs(5);
    const MAX_AGE: Duration = Duration::from_secs(1800);

    /// A trusted case at `t0 + 10 s`: the org synced, last polled 2 s ago,
    /// a snapshot listed at `t0` after the last own write, the feed agreeing.
    fn trusted() -> Case {
        let t0 = Instant::now();
        Case {
            t0,
            snapshot: Snapshot {
                listed_at: t0,
                machines: vec![
                    machine(A, "v1", MachineState::Started),
                    machine(B, "v1", MachineState::Destroyed),
                ],
            },
            view: View::from([(
                MachineId::parse(A).unwrap(),
                mark("v1", MachineState::Started),
            )]),
            org: OrgFacts {
                synced: true,
                last_ok_round: Some(t0 + Duration::from_secs(8)),
            },
            writes: Writes {
                in_flight: 0,
                last_done: Some(t0 - Duration::from_secs(1)),
            },
        }
    }

    fn decide_at(c: &Case, after: Duration, spec_settled: bool) -> Verdict {
        decide(&Inputs {
            now: c.t0 + after,
            interval: INTERVAL,
            max_snapshot_age: MAX_AGE,
            org: Some(c.org),
            view: Some(&c.view),
            snapshot: Some(&c.snapshot),
            writes: c.writes,
            spec_settled,
        })
    }

    const AT: Duration = Duration::from_secs(10);

    #[test]
    fn a_synced_recent_agreeing_feed_after_the_last_write_is_trusted() {
        let c = trusted();
        assert_eq!(decide_at(&c, AT, true), Verdict::Use);
        // Exactly twice the interval after the last round is still recent.
        assert_eq!(decide_at(&c, Duration::from_secs(18), true), Verdict::Use);
    }

    #[test]
    fn an_unwatched_or_never_full_listed_org_is_not_trusted() {
        let c = trusted();
        let i = Inputs {
            now: c.t0 + AT,
            interval: INTERVAL,
            max_snapshot_age: MAX_AGE,
            org: None,
            view: Some(&c.view),
            snapshot: Some(&c.snapshot),
            writes: c.writes,
            spec_settled: true,
        };
        assert_eq!(decide(&i), Verdict::List(Miss::NotWatched));
        let mut c = trusted();
        c.org.synced = false;
        assert_eq!(
            decide_at(&c, AT, true),
            Verdict::List(Miss::NeverFullListed)
        );
        let mut c = trusted();
        c.org.last_ok_round = None;
        assert_eq!(
            decide_at(&c, AT, true),
            Verdict::List(Miss::NeverFullListed)
        );
    }

    #[test]
    fn a_stale_poll_is_not_trusted() {
        let c = trusted();
        // The last round started at 8 s: past 18 s it is more than 2 × 5 s old.
        assert_eq!(
            decide_at(&c, Duration::from_millis(18_001), true),
            Verdict::List(Miss::StalePoll)
        );
    }

    #[test]
    fn an_unsettled_spec_or_no_snapshot_lists() {
        let c = trusted();
        assert_eq!(decide_at(&c, AT, false), Verdict::List(Miss::SpecUnsettled));
        let i = Inputs {
            now: c.t0 + AT,
            interval: INTERVAL,
            max_snapshot_age: MAX_AGE,
            org: Some(c.org),
            view: Some(&c.view),
            snapshot: None,
            writes: c.writes,
            spec_settled: true,
        };
        assert_eq!(decide(&i), Verdict::List(Miss::NoSnapshot));
    }

    #[test]
    fn a_recent_own_write_lists_until_a_later_list_is_the_snapshot() {
        // In flight.
        let mut c = trusted();
        c.writes.in_flight = 1;
        assert_eq!(decide_at(&c, AT, true), Verdict::List(Miss::OwnWrite));
        // Finished after the snapshot was listed (a create the snapshot
        // cannot show), even with the feed agreeing and recent.
        let mut c = trusted();
        c.writes.last_done = Some(c.t0 + Duration::from_secs(3));
        assert_eq!(decide_at(&c, AT, true), Verdict::List(Miss::OwnWrite));
        // Finished at the very instant the list was sent: not provably in it.
        c.writes.last_done = Some(c.t0);
        assert_eq!(decide_at(&c, AT, true), Verdict::List(Miss::OwnWrite));
        // A list sent after the write is a usable snapshot again.
        c.snapshot.listed_at = c.t0 + Duration::from_secs(4);
        assert_eq!(decide_at(&c, AT, true), Verdict::Use);
    }

    #[test]
    fn an_old_snapshot_or_an_unsettled_machine_lists() {
        let c = trusted();
        let mut late = c.org;
        late.last_ok_round = Some(c.t0 + MAX_AGE + Duration::from_secs(5));
        let c2 = Case { org: late, ..c };
        assert_eq!(
            decide_at(&c2, MAX_AGE + Duration::from_secs(6), true),
            Verdict::List(Miss::SnapshotOld)
        );
        let spoils: [fn(&mut Machine); 4] = [
            |m: &mut Machine| m.state = MachineState::Starting,
            |m: &mut Machine| m.state = MachineState::Unknown,
            |m: &mut Machine| m.host_status = HostStatus::Unreachable,
            |m: &mut Machine| m.config = None,
        ];
        for spoil in spoils {
            let mut c = trusted();
            spoil(&mut c.snapshot.machines[0]);
            assert_eq!(
                decide_at(&c, AT, true),
                Verdict::List(Miss::MachinesUnsettled)
            );
        }
    }

    #[test]
    fn a_feed_that_disagrees_with_the_snapshot_lists() {
        let id_a = MachineId::parse(A).unwrap();
        let id_b = MachineId::parse(B).unwrap();
        let disagreeing = [
            // Destroyed behind flotilla's back.
            View::new(),
            // Updated behind flotilla's back.
            View::from([(id_a.clone(), mark("v2", MachineState::Started))]),
            // Stopped.
            View::from([(id_a.clone(), mark("v1", MachineState::Stopped))]),
            // A machine the snapshot does not have.
            View::from([
                (id_a, mark("v1", MachineState::Started)),
                (id_b, mark("v1", MachineState::Started)),
            ]),
        ];
        for view in disagreeing {
            let mut c = trusted();
            c.view = view;
            assert_eq!(decide_at(&c, AT, true), Verdict::List(Miss::FeedDisagrees));
        }
        // No view at all is an app with no live machine: agrees only with an
        // empty snapshot.
        let c = trusted();
        let mut i = Inputs {
            now: c.t0 + AT,
            interval: INTERVAL,
            max_snapshot_age: MAX_AGE,
            org: Some(c.org),
            view: None,
            snapshot: Some(&c.snapshot),
            writes: c.writes,
            spec_settled: true,
        };
        assert_eq!(decide(&i), Verdict::List(Miss::FeedDisagrees));
        let empty = Snapshot {
            listed_at: c.t0,
            machines: Vec::new(),
        };
        i.snapshot = Some(&empty);
        assert_eq!(decide(&i), Verdict::Use);
    }
}
