//! Rendered plans compared with golden files, and token-delivered secrets.

use super::*;

#[test]
fn golden_plans() {
    let o = opts();
    let t = tenant("acme");
    golden(
        "create",
        &plan(
            &Desired {
                tenant: &t,
                deleting: false,
                options: &o,
            },
            &World::empty().observed,
            t0(),
        ),
    );

    // Drift, a spec change and a foreign machine in one picture.
    let mut t3 = tenant("acme");
    t3.spec.machines[0].count = 3;
    let mut w = converged(&t3);
    w.observed.machines[0].config.as_mut().unwrap().image = "evil:latest".into();
    let mut foreign = w.machine(&t3, &t3.spec.machines[0], MachineState::Started);
    foreign.metadata.clear();
    w.observed.machines.push(foreign);
    w.observed.ips.retain(|i| i.kind != IpKind::SharedV4);
    t3.spec.machines[0].env.insert("NEW".into(), "1".into());
    golden(
        "drift",
        &plan(
            &Desired {
                tenant: &t3,
                deleting: false,
                options: &o,
            },
            &w.observed,
            t0(),
        ),
    );

    let w = converged(&t);
    golden(
        "teardown",
        &plan(
            &Desired {
                tenant: &t,
                deleting: true,
                options: &o,
            },
            &w.observed,
            t0(),
        ),
    );

    let mut w = World::empty();
    w.observed.app = AppObservation::OtherOrg;
    golden(
        "blocked",
        &plan(
            &Desired {
                tenant: &t,
                deleting: false,
                options: &o,
            },
            &w.observed,
            t0(),
        ),
    );

    let mut w = converged(&t);
    let c = &mut w.observed.certificates[0];
    c.summary.has_fly_certificate = false;
    c.detail = Some(CertificateDetail {
        hostname: "app.example.com".into(),
        status: "Awaiting configuration".into(),
        configured: false,
        acme_requested: true,
        issued: false,
        rate_limited_until: None,
        dns_records: vec![
            crate::model::fly::DnsRecord {
                kind: "A".into(),
                name: "app.example.com".into(),
                value: "66.241.124.3".into(),
            },
            crate::model::fly::DnsRecord {
                kind: "AAAA".into(),
                name: "app.example.com".into(),
                value: "2a09:8280:1::2".into(),
            },
        ],
        validation_errors: vec![],
    });
    golden(
        "certificate-pending",
        &plan(
            &Desired {
                tenant: &t,
                deleting: false,
                options: &o,
            },
            &w.observed,
            t0(),
        ),
    );
}

#[test]
fn secrets_a_token_delivers_into_are_not_unset() {
    let mut t = tenant("acme");
    let target = SecretName::parse("FLY_DEPLOY_TOKEN").unwrap();
    t.spec.tokens.push(crate::spec::model::TokenSpec {
        name: crate::ids::TokenName::parse("ci").unwrap(),
        kind: crate::spec::model::TokenKind::Deploy,
        expiry: crate::spec::model::DurationSecs(86_400),
        schedule: None,
        renew_before: crate::spec::model::DurationSecs(3_600),
        grace: crate::spec::model::DurationSecs(60),
        deliver_to: crate::spec::model::DeliverTo {
            app_secrets: vec![target.clone()],
            registry: true,
        },
    });
    let o = PlanOptions {
        tokens_managed: true,
        ..opts()
    };
    let mut w = converged(&t);
    w.observed.secrets.push(crate::model::fly::AppSecret {
        name: target.clone(),
        digest: "d".into(),
    });
    w.observed.ledger.secrets.insert(target);
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.is_empty(), "{p:#?}");
    assert!(p.findings.is_empty(), "{:?}", p.findings);
}
