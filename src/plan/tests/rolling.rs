//! Rolling updates (one machine at a time, failed and unready versions), scaling, secrets reaching machines, restarts.

use super::*;

#[test]
fn spec_changes_roll_one_machine_at_a_time() {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 3;
    let o = opts();
    let mut w = converged(&t);
    t.spec.machines[0].image = "nginx:1.28".into();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    let p = plan(&d, &w.observed, t0());
    assert_eq!(names(&p), ["UpdateMachine"]);
    assert_eq!(p.steps[0].reason, Reason::SpecChanged);
    assert!(p.findings.contains(&Finding::RolloutInProgress {
        group: t.spec.machines[0].name.clone(),
        pending: 3
    }));

    // While one machine is replacing, nothing else is touched.
    w.observed.machines[0].state = MachineState::Replacing;
    assert!(plan(&d, &w.observed, t0()).is_empty());

    // With max_unavailable 2, two machines roll at once.
    w.observed.machines[0].state = MachineState::Started;
    let o2 = PlanOptions {
        max_unavailable: 2,
        ..opts()
    };
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o2,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["UpdateMachine", "UpdateMachine"]);
}

/// A group of 3 rolling to `nginx:1.28`, with the first update applied and
/// the updated machine in `state` with `checks`. Returns the plan.
fn roll_after_first_update(
    state: MachineState,
    checks: &[(&str, CheckState)],
    autostop: AutoStop,
) -> (Plan, MachineId) {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 3;
    t.spec.machines[0].autostop = autostop;
    let o = opts();
    let mut w = converged(&t);
    t.spec.machines[0].image = "nginx:1.28".into();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    let p = plan(&d, &w.observed, t0());
    w.apply(&p.steps[0]);
    let Action::UpdateMachine { id, .. } = &p.steps[0].action else {
        panic!("{}", p.render())
    };
    let m = w
        .observed
        .machines
        .iter_mut()
        .find(|m| &m.id == id)
        .unwrap();
    m.state = state;
    m.checks = checks
        .iter()
        .map(|(name, state)| CheckStatus {
            name: (*name).into(),
            state: *state,
        })
        .collect();
    (plan(&d, &w.observed, t0()), id.clone())
}

#[test]
fn a_failed_new_version_stops_the_roll() {
    let (p, id) = roll_after_first_update(MachineState::Failed, &[], AutoStop::Off);
    assert!(p.is_empty(), "{}", p.render());
    let stopped = Finding::RolloutFailed {
        group: GroupName::parse("web").unwrap(),
        id,
    };
    assert!(p.findings.contains(&stopped) && stopped.degrades());
}

#[test]
fn a_new_version_is_not_ready_until_its_checks_pass() {
    for waiting in [CheckState::Warning, CheckState::Critical] {
        let (p, _) = roll_after_first_update(
            MachineState::Started,
            &[("alive", CheckState::Passing), ("http", waiting)],
            AutoStop::Off,
        );
        assert!(p.is_empty(), "{waiting:?}: {}", p.render());
        assert!(
            p.findings
                .iter()
                .any(|f| matches!(f, Finding::RolloutInProgress { pending: 2, .. }))
        );
    }
    // Only critical checks are reported (and degrade Ready).
    let (p, id) = roll_after_first_update(
        MachineState::Started,
        &[("http", CheckState::Critical)],
        AutoStop::Off,
    );
    let failing = Finding::ChecksFailing {
        id: id.clone(),
        checks: vec!["http".into()],
    };
    assert!(p.findings.contains(&failing) && failing.degrades());
    assert_eq!(
        failing.to_string(),
        format!("machine {id}: health check(s) failing: http")
    );
    // Passing (or unknown) checks let the roll go on.
    for fine in [CheckState::Passing, CheckState::Unknown] {
        let (p, _) =
            roll_after_first_update(MachineState::Started, &[("alive", fine)], AutoStop::Off);
        assert_eq!(names(&p), ["UpdateMachine"], "{fine:?}");
    }
}

#[test]
fn a_new_version_that_stops_stops_the_roll_unless_autostop_may_stop_it() {
    let (p, id) = roll_after_first_update(MachineState::Stopped, &[], AutoStop::Off);
    assert_eq!(names(&p), ["StartMachine"], "{}", p.render());
    assert!(p.findings.contains(&Finding::RolloutFailed {
        group: GroupName::parse("web").unwrap(),
        id,
    }));
    // With autostop a stopped machine is normal: the roll goes on.
    let (p, _) = roll_after_first_update(MachineState::Stopped, &[], AutoStop::Stop);
    assert_eq!(names(&p), ["UpdateMachine"], "{}", p.render());
}

#[test]
fn a_machine_failed_on_an_old_version_is_updated_first_without_budget() {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 3;
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines[2].state = MachineState::Failed;
    let failed = w.observed.machines[2].id.clone();
    t.spec.machines[0].image = "nginx:1.28".into();
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    // The failed machine uses the only unit of budget already, yet it is
    // updated; the healthy ones wait.
    assert_eq!(names(&p), ["UpdateMachine"], "{}", p.render());
    assert!(matches!(&p.steps[0].action, Action::UpdateMachine { id, .. } if *id == failed));
    assert!(p.findings.contains(&Finding::RolloutInProgress {
        group: GroupName::parse("web").unwrap(),
        pending: 2
    }));
}

#[test]
fn scaling_down_removes_failed_machines_first() {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 3;
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines[1].state = MachineState::Failed;
    let failed = w.observed.machines[1].id.clone();
    t.spec.machines[0].count = 2;
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["DestroyMachine"]);
    assert_eq!(
        p.steps[0].action,
        Action::DestroyMachine {
            group: Some(t.spec.machines[0].name.clone()),
            id: failed
        }
    );
    assert_eq!(
        p.steps[0].reason,
        Reason::ScaleDown {
            have: 3,
            want: 2,
            region: None
        }
    );
}

#[test]
fn new_secrets_reach_running_machines() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    w.observed.ledger.secrets_version = Some(7);
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["UpdateMachine"]);
    assert!(matches!(
        p.steps[0].reason,
        Reason::SecretsChanged { current: 7, .. }
    ));
}

#[test]
fn a_stopped_machine_is_started_when_autostop_is_off() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines[0].state = MachineState::Stopped;
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["StartMachine"]);
}
