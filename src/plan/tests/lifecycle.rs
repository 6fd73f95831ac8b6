//! Creating, converging, adopting; foreign resources, drift and unreachable hosts.

use super::*;

#[test]
fn a_new_tenant_is_created_in_dependency_order() {
    let t = tenant("acme");
    let o = opts();
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &World::empty().observed,
        t0(),
    );
    assert_eq!(
        names(&p),
        [
            "CreateApp",
            "AssignIp",
            "AssignIp",
            "RequestCertificate",
            "UpdateSecrets",
            "CreateMachine",
            "CreateMachine"
        ]
    );
    assert!(p.blockers.is_empty());
    // Each step carries its reason.
    assert_eq!(p.steps[0].reason, Reason::AppMissing);
    assert_eq!(
        p.steps[5].reason,
        Reason::ScaleUp {
            have: 0,
            want: 2,
            region: None
        }
    );
}

#[test]
fn a_converged_tenant_plans_nothing() {
    let t = tenant("acme");
    let o = opts();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    let mut w = World::empty();
    let rounds = w.converge(&d, 5);
    assert!(rounds <= 2, "took {rounds} rounds");
    assert!(plan(&d, &w.observed, t0()).is_empty());
    assert_eq!(w.observed.machines.len(), 2);
    assert_eq!(w.observed.ips.len(), 2);
}

#[test]
fn creates_get_distinct_keys() {
    let t = tenant("acme");
    let o = opts();
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &World::empty().observed,
        t0(),
    );
    let keys: Vec<&String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::CreateMachine { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
}

#[test]
fn an_app_held_by_another_org_blocks_everything() {
    let t = tenant("acme");
    let o = opts();
    let mut w = World::empty();
    w.observed.app = AppObservation::OtherOrg;
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.is_empty());
    assert_eq!(
        p.blockers,
        [Blocker::AppNameTaken {
            name: t.spec.app.name.clone()
        }]
    );
}

#[test]
fn an_existing_app_is_not_adopted_silently() {
    let mut t = tenant("acme");
    let o = opts();
    let mut w = World::empty();
    w.observed.app = AppObservation::InOrg;
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.is_empty());
    assert_eq!(
        p.blockers,
        [Blocker::AppNotOwned {
            name: t.spec.app.name.clone()
        }]
    );

    t.metadata
        .annotations
        .insert(ADOPT_ANNOTATION.into(), "true".into());
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.blockers.is_empty());
    assert!(!names(&p).contains(&"CreateApp"));
    assert!(names(&p).contains(&"CreateMachine"));
}

#[test]
fn foreign_resources_are_reported_and_never_touched() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    let mut foreign = w.machine(&t, &t.spec.machines[0], MachineState::Started);
    foreign.metadata.clear();
    foreign.config.as_mut().unwrap().metadata.clear();
    w.observed.machines.push(foreign.clone());
    w.observed.ips.push(IpAssignment {
        ip: "137.66.9.9".into(),
        kind: IpKind::V4,
        region: None,
        service_name: None,
        created_at: None,
    });
    w.observed.secrets.push(AppSecret {
        name: SecretName::parse("HAND_MADE").unwrap(),
        digest: "x".into(),
    });
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.is_empty(), "{}", p.render());
    assert!(p.findings.contains(&Finding::ForeignMachine {
        id: foreign.id.clone()
    }));
    assert!(p.findings.contains(&Finding::ForeignIp {
        ip: "137.66.9.9".into()
    }));
    assert!(p.findings.contains(&Finding::ForeignSecret {
        name: SecretName::parse("HAND_MADE").unwrap()
    }));
}

#[test]
fn an_image_changed_behind_our_back_is_drift() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines[0].config.as_mut().unwrap().image = "evil:latest".into();
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
    assert_eq!(
        p.steps[0].reason,
        Reason::Drifted {
            fields: vec!["image"]
        }
    );
}

#[test]
fn an_unreachable_host_is_never_diffed() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines[0].config = None;
    w.observed.machines[0].host_status = HostStatus::Unreachable;
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.is_empty());
    assert!(matches!(
        p.findings[..],
        [Finding::HostUnreachable { .. }, ..]
    ));
}
