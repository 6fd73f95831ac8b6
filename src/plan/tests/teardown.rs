//! Teardown order, the orphan policy, and foreign machines holding the app.

use super::*;

#[test]
fn teardown_runs_in_reverse_order() {
    let t = tenant("acme");
    let o = opts();
    let w = converged(&t);
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: true,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(
        names(&p),
        [
            "DestroyMachine",
            "DestroyMachine",
            "ReleaseIp",
            "ReleaseIp",
            "DeleteCertificate"
        ],
        "{}",
        p.render()
    );
    let phases: Vec<Phase> = p.steps.iter().map(|s| s.phase).collect();
    assert!(phases.windows(2).all(|w| w[0] <= w[1]));

    // Once the machines are gone the app goes, then the row.
    let mut w = w;
    let d = Desired {
        tenant: &t,
        deleting: true,
        options: &o,
    };
    for s in &p.steps {
        w.apply(s);
    }
    let p = plan(&d, &w.observed, t0());
    assert_eq!(names(&p), ["DeleteApp"]);
    w.apply(&p.steps[0]);
    assert_eq!(names(&plan(&d, &w.observed, t0())), ["Forget"]);
}

#[test]
fn orphan_policy_leaves_fly_alone() {
    let mut t = tenant("acme");
    t.spec.deletion_policy = DeletionPolicy::Orphan;
    let o = opts();
    let w = converged(&t);
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: true,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["Forget"]);
}

#[test]
fn foreign_machines_block_app_deletion() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    let mut foreign = w.machine(&t, &t.spec.machines[0], MachineState::Started);
    foreign.metadata.clear();
    w.observed.machines.push(foreign);
    w.observed.machines.retain(|m| !m.metadata.is_empty());
    let d = Desired {
        tenant: &t,
        deleting: true,
        options: &o,
    };
    let mut foreign = w.machine(&t, &t.spec.machines[0], MachineState::Started);
    foreign.metadata.clear();
    w.observed.machines = vec![foreign];
    let p = plan(&d, &w.observed, t0());
    assert!(!names(&p).contains(&"DeleteApp"));
    assert!(p.findings.contains(&Finding::DeletionBlocked {
        foreign_machines: 1
    }));
}
