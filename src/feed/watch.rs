//! What the org feed has seen of one organization's machines, and which
//! apps a round of the org-wide machine list shows changed. Pure: the
//! poller (`feed`) fetches, this decides.
//!
//! The list is "a point in time" whose recent changes may show late
//! (`../shared/fly/API-NOTES.md`), so:
//! * an incremental round asks for changes after the newest `updated_at`
//!   seen *minus an overlap*, and recognises what it has seen before by
//!   machine id, version and state, so the overlap wakes nobody twice;
//! * the mark is Fly's own `updated_at`, never this process's clock, so
//!   clock skew between flotilla and Fly cannot open a gap;
//! * a full list (at start, on a schedule, after an error) compares every
//!   live machine with what was seen, and a machine that vanished without a
//!   `destroyed` entry (its app deleted) counts as a change too.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::trust::{Mark, View};
use crate::ids::MachineId;
use crate::model::fly::{MachineState, OrgMachine, OrgMachinesQuery};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    app: String,
    version: String,
    state: MachineState,
    updated_at: Option<Timestamp>,
}

/// One organization's view.
#[derive(Debug, Clone)]
pub struct Watch {
    seen: HashMap<MachineId, Seen>,
    /// The newest `updated_at` seen.
    mark: Option<Timestamp>,
    overlap: SignedDuration,
    /// A full list has been applied since the start (or the last error).
    synced: bool,
}

impl Watch {
    pub fn new(overlap: Duration) -> Self {
        Self {
            seen: HashMap::new(),
            mark: None,
            overlap: SignedDuration::try_from(overlap).unwrap_or(SignedDuration::MAX),
            synced: false,
        }
    }

    /// Whether the next round must be a full list.
    pub fn needs_full(&self) -> bool {
        !self.synced
    }

    /// Forget the sync (after an error): the next round lists everything.
    pub fn desync(&mut self) {
        self.synced = false;
    }

    /// The query of a round's first page: everything (live machines only)
    /// for a full list; else the changes since the mark less the overlap,
    /// destroyed machines included.
    pub fn query(&self, full: bool) -> OrgMachinesQuery {
        if full || self.mark.is_none() {
            return OrgMachinesQuery::default();
        }
        OrgMachinesQuery {
            updated_after: self.mark.and_then(|m| m.checked_sub(self.overlap).ok()),
            include_deleted: true,
            ..OrgMachinesQuery::default()
        }
    }

    /// Applies a whole round (every page); `full` when it was a full list.
    /// Returns the apps with a machine that appeared, changed version or
    /// state, was destroyed, or (full lists) vanished. The first full list
    /// after a start or an error reports nothing: it only learns the fleet
    /// (every tenant is reconciled at start anyway; after an error the
    /// resync catches what was missed).
    pub fn apply(&mut self, machines: &[OrgMachine], full: bool) -> BTreeSet<String> {
        let report = self.synced;
        let mut changed = BTreeSet::new();
        for m in machines {
            let now = Seen {
                app: m.app.clone(),
                version: m.version.clone(),
                state: m.state,
                updated_at: m.updated_at,
            };
            let differs = self
                .seen
                .get(&m.id)
                .is_none_or(|s| s.version != now.version || s.state != now.state);
            if differs && report {
                changed.insert(m.app.clone());
            }
            if let Some(t) = m.updated_at {
                self.mark = Some(self.mark.map_or(t, |mark| mark.max(t)));
            }
            self.seen.insert(m.id.clone(), now);
        }
        if full {
            let listed: BTreeSet<&MachineId> = machines.iter().map(|m| &m.id).collect();
            self.seen.retain(|id, s| {
                let keep = listed.contains(id);
                if !keep && s.state != MachineState::Destroyed && report {
                    changed.insert(s.app.clone());
                }
                keep
            });
            self.synced = true;
        } else {
            self.prune();
        }
        changed
    }

    /// Drops destroyed machines that no incremental round can list again
    /// (older than the mark by more than twice the overlap), so the view
    /// holds about the live fleet.
    fn prune(&mut self) {
        let Some(horizon) = self.mark.and_then(|m| m.checked_sub(self.overlap * 2).ok()) else {
            return;
        };
        self.seen.retain(|_, s| {
            s.state != MachineState::Destroyed || s.updated_at.is_none_or(|t| t >= horizon)
        });
    }

    /// Whether a complete full list was applied since the start or the last
    /// error.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// The live machines (none gone for good) of every app, or of the apps
    /// in `only`, by app: what the machine cache compares its snapshots
    /// with. With `only`, each of those apps is present, an empty view when
    /// it has no live machine.
    pub fn views(&self, only: Option<&BTreeSet<String>>) -> HashMap<String, View> {
        let mut out: HashMap<String, View> = HashMap::new();
        for app in only.into_iter().flatten() {
            out.insert(app.clone(), View::new());
        }
        for (id, s) in &self.seen {
            if s.state.is_gone() || only.is_some_and(|o| !o.contains(&s.app)) {
                continue;
            }
            out.entry(s.app.clone()).or_default().insert(
                id.clone(),
                Mark {
                    version: s.version.clone(),
                    state: s.state,
                },
            );
        }
        out
    }

    /// Machines in the view (tests, metrics).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn machine(id: &str, app: &str, version: &str, state: MachineState, at: i64) -> OrgMachine {
        OrgMachine {
            app: app.into(),
            id: MachineId::parse(id).unwrap(),
            name: String::new(),
            state,
            region: "ord".into(),
            version: version.into(),
            image: None,
            metadata: BTreeMap::new(),
            updated_at: Some(Timestamp::from_second(at).unwrap()),
        }
    }

    const A: &str = "0000000000000a";
    const B: &str = "0000000000000b";

    #[test]
    fn the_first_full_list_learns_and_later_rounds_report_changes_once() {
        let mut w = Watch::new(Duration::from_secs(10));
        assert!(w.needs_full());
        assert_eq!(w.query(true), OrgMachinesQuery::default());
        let first = [
            machine(A, "shop", "v1", MachineState::Started, 100),
            machine(B, "blog", "v1", MachineState::Started, 110),
        ];
        assert!(w.apply(&first, true).is_empty(), "learning, not reporting");
        assert!(!w.needs_full());
        // The next round starts at the mark less the overlap, with deletes.
        let q = w.query(false);
        assert_eq!(q.updated_after, Some(Timestamp::from_second(100).unwrap()));
        assert!(q.include_deleted);
        // The overlap lists B again, unchanged: nobody is woken.
        assert!(w.apply(&first[1..], false).is_empty());
        // A new version of A wakes shop, once.
        let changed = [machine(A, "shop", "v2", MachineState::Started, 120)];
        assert_eq!(
            w.apply(&changed, false),
            BTreeSet::from(["shop".to_string()])
        );
        assert!(w.apply(&changed, false).is_empty());
        // A stopped machine is a change of state.
        let stopped = [machine(B, "blog", "v1", MachineState::Stopped, 121)];
        assert_eq!(
            w.apply(&stopped, false),
            BTreeSet::from(["blog".to_string()])
        );
    }

    #[test]
    fn destroyed_and_vanished_machines_wake_their_app_and_leave_the_view() {
        let mut w = Watch::new(Duration::from_secs(10));
        w.apply(
            &[
                machine(A, "shop", "v1", MachineState::Started, 100),
                machine(B, "blog", "v1", MachineState::Started, 100),
            ],
            true,
        );
        let gone = [machine(A, "shop", "v1", MachineState::Destroyed, 130)];
        assert_eq!(w.apply(&gone, false), BTreeSet::from(["shop".to_string()]));
        // Far past the overlap the tombstone is pruned.
        w.apply(
            &[machine(B, "blog", "v2", MachineState::Started, 200)],
            false,
        );
        assert_eq!(w.len(), 1);
        // A full list without B (its app deleted, no tombstone): blog changed.
        assert_eq!(w.apply(&[], true), BTreeSet::from(["blog".to_string()]));
        assert!(w.is_empty());
    }

    #[test]
    fn views_hold_each_apps_live_machines() {
        let mut w = Watch::new(Duration::from_secs(10));
        w.apply(
            &[
                machine(A, "shop", "v1", MachineState::Started, 100),
                machine(B, "blog", "v1", MachineState::Stopped, 100),
            ],
            true,
        );
        let all = w.views(None);
        assert_eq!(all.len(), 2);
        assert_eq!(
            all["shop"][&MachineId::parse(A).unwrap()],
            Mark {
                version: "v1".into(),
                state: MachineState::Started
            }
        );
        // A destroyed machine leaves its app's view; an app asked for with
        // no live machine is an empty view; others are left out.
        w.apply(
            &[machine(A, "shop", "v1", MachineState::Destroyed, 120)],
            false,
        );
        let only = BTreeSet::from(["shop".to_string(), "gone".to_string()]);
        let some = w.views(Some(&only));
        assert_eq!(some.len(), 2);
        assert!(some["shop"].is_empty() && some["gone"].is_empty());
    }

    #[test]
    fn after_an_error_the_next_full_list_only_relearns() {
        let mut w = Watch::new(Duration::from_secs(10));
        w.apply(
            &[machine(A, "shop", "v1", MachineState::Started, 100)],
            true,
        );
        w.desync();
        assert!(w.needs_full());
        let relisted = [machine(A, "shop", "v9", MachineState::Started, 300)];
        assert!(w.apply(&relisted, true).is_empty());
        assert_eq!(
            w.query(false).updated_after,
            Some(Timestamp::from_second(290).unwrap())
        );
    }
}
