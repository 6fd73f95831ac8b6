//! Work in flight: certificate checks, unconfirmed and in-flight creates, IP releases, deleted tenants, leases left behind.

use super::*;

#[test]
fn pending_certificates_are_checked_at_most_once_per_interval() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    let host = t.spec.certificates[0].hostname.clone();
    let c = &mut w.observed.certificates[0];
    c.summary.has_fly_certificate = false;
    c.detail = Some(CertificateDetail {
        hostname: host.to_string(),
        status: "pending".into(),
        configured: false,
        acme_requested: true,
        issued: false,
        rate_limited_until: None,
        dns_records: vec![],
        validation_errors: vec![],
    });
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    assert_eq!(names(&plan(&d, &w.observed, t0())), ["CheckCertificate"]);
    w.observed
        .ledger
        .certificate_checks
        .insert(host.clone(), t0());
    assert!(plan(&d, &w.observed, t0()).is_empty());
    let later = t0()
        .checked_add(jiff::SignedDuration::from_secs(301))
        .unwrap();
    assert_eq!(names(&plan(&d, &w.observed, later)), ["CheckCertificate"]);
    // Rate limited: no check until the limit passes.
    w.observed.certificates[0]
        .detail
        .as_mut()
        .unwrap()
        .rate_limited_until = Some(
        later
            .checked_add(jiff::SignedDuration::from_secs(60))
            .unwrap(),
    );
    let p = plan(&d, &w.observed, later);
    assert!(p.is_empty());
    assert!(matches!(
        &p.findings[0],
        Finding::CertificatePending {
            rate_limited_until: Some(_),
            ..
        }
    ));
}

#[test]
fn an_unconfirmed_create_is_resumed_with_its_key() {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 1;
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines.clear();
    w.observed.pending_machines.push(PendingMachine {
        key: "web-abc".into(),
        group: t.spec.machines[0].name.clone(),
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
    assert_eq!(names(&p), ["CreateMachine"]);
    assert!(matches!(&p.steps[0].action, Action::CreateMachine { key, .. } if key == "web-abc"));
    assert_eq!(p.steps[0].reason, Reason::ResumeCreate);
}

#[test]
fn undesired_ips_are_released_only_when_ours() {
    let mut t = tenant("acme");
    let o = opts();
    let w = converged(&t);
    t.spec.ips.retain(|i| i.kind != IpKind::SharedV4);
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["ReleaseIp"]);
    assert_eq!(p.steps[0].reason, Reason::IpNotDesired);
    let mut w2 = w.clone();
    w2.observed.ledger.ips.clear();
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w2.observed,
        t0(),
    );
    assert!(p.is_empty());
}

#[test]
fn creates_in_flight_are_not_repeated() {
    let t = tenant("acme");
    let o = opts();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    let mut w = converged(&t);
    // The v6 address and the certificate were requested, and are not
    // visible yet (a lost response, Fly's eventual consistency).
    w.observed.ips.retain(|i| i.kind != IpKind::V6);
    w.observed.certificates.clear();
    w.observed.pending.ips.push(t.spec.ips[0].clone());
    w.observed
        .pending
        .certificates
        .insert(t.spec.certificates[0].hostname.clone());
    let p = plan(&d, &w.observed, t0());
    assert!(p.is_empty(), "{}", p.render());
    let waiting: Vec<String> = p.findings.iter().map(ToString::to_string).collect();
    assert_eq!(
        waiting,
        [
            "ip v6: an earlier create may still land; waiting for it before acting again",
            "certificate app.example.com: an earlier create may still land; waiting for it before acting again"
        ]
    );
    // One assignment in flight stands for one address: a second v6 is
    // assigned.
    let mut t2 = t.clone();
    t2.spec.ips.push(t.spec.ips[0].clone());
    let p = plan(
        &Desired {
            tenant: &t2,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["AssignIp"], "{}", p.render());
}

#[test]
fn a_deleted_tenant_is_not_forgotten_while_its_app_create_may_land() {
    let t = tenant("acme");
    let o = opts();
    let d = Desired {
        tenant: &t,
        deleting: true,
        options: &o,
    };
    let mut w = World::empty();
    w.observed.pending.app = true;
    let p = plan(&d, &w.observed, t0());
    assert!(p.is_empty(), "{}", p.render());
    assert_eq!(
        p.findings[0].to_string(),
        "app acme: an earlier create may still land; waiting for it before acting again"
    );
    w.observed.pending.app = false;
    assert_eq!(names(&plan(&d, &w.observed, t0())), ["Forget"]);
}

#[test]
fn a_lease_left_behind_is_released_unless_a_step_uses_it() {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 1;
    let o = opts();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    let mut w = converged(&t);
    let id = w.observed.machines[0].id.clone();
    let own = OwnLease {
        key: "lease-1".into(),
        nonce: Some(crate::state::LeaseNonce::new("n")),
        expires_at: t0(),
    };
    w.observed.pending.leases.insert(id.clone(), own.clone());
    let p = plan(&d, &w.observed, t0());
    assert_eq!(names(&p), ["ReleaseLease"]);
    assert_eq!(p.steps[0].action, Action::ReleaseLease { id: id.clone() });
    assert_eq!(p.steps[0].reason, Reason::LeaseLeftBehind);
    assert_eq!(
        p.render().lines().nth(1).unwrap().trim(),
        format!(
            "~ release lease on machine {id}  # flotilla's lease from an earlier attempt is still held"
        )
    );
    // Nonce unknown: nothing to release with; it runs out on its own.
    w.observed.pending.leases.insert(
        id.clone(),
        OwnLease {
            nonce: None,
            ..own.clone()
        },
    );
    assert!(plan(&d, &w.observed, t0()).is_empty());
    // An update of the machine uses the lease instead.
    let mut t2 = t.clone();
    t2.spec.machines[0].image = "nginx:1.28".into();
    w.observed.pending.leases.insert(id.clone(), own);
    let p = plan(
        &Desired {
            tenant: &t2,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(
        !names(&p).contains(&"ReleaseLease") && names(&p).contains(&"UpdateMachine"),
        "{}",
        p.render()
    );
}
