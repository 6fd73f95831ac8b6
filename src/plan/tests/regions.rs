//! Planner tests for groups in several regions, for the optional parts of a
//! machine config (process config, files, GPUs, richer checks), and for a
//! group held while a file's external secret is missing.

use std::time::Duration;

use super::*;
use crate::model::fly::AppSecret;

fn region(r: &str) -> Region {
    Region::parse(r).unwrap()
}

/// `tenant("acme")` with its group `web` spread as `counts`.
fn spread(counts: &[(&str, u32)]) -> Tenant {
    let mut t = tenant("acme");
    let g = &mut t.spec.machines[0];
    g.region = None;
    g.regions = counts.iter().map(|(r, n)| (region(r), *n)).collect();
    g.count = counts.iter().map(|(_, n)| n).sum();
    t
}

fn desired<'a>(t: &'a Tenant, o: &'a PlanOptions) -> Desired<'a> {
    Desired {
        tenant: t,
        deleting: false,
        options: o,
    }
}

/// Machines of the tenant per region.
fn per_region(w: &World) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in &w.observed.machines {
        *out.entry(m.region.clone()).or_insert(0) += 1;
    }
    out
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect()
}

#[test]
fn a_group_in_two_regions_places_each_count_and_converges() {
    let t = spread(&[("ord", 2), ("iad", 1)]);
    let o = opts();
    let p = plan(&desired(&t, &o), &World::empty().observed, t0());
    let creates: Vec<(String, Reason)> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::CreateMachine { region, .. } => Some((region.clone(), s.reason.clone())),
            _ => None,
        })
        .collect();
    let up = |have, want, r: &str| Reason::ScaleUp {
        have,
        want,
        region: Some(region(r)),
    };
    assert_eq!(
        creates,
        [
            ("iad".to_string(), up(0, 1, "iad")),
            ("ord".to_string(), up(0, 2, "ord")),
            ("ord".to_string(), up(0, 2, "ord")),
        ],
        "{}",
        p.render()
    );
    assert!(p.render().contains("group has 0 of 2 machines in ord"));
    // Every create carries the same config and its own key.
    let keys: BTreeSet<&String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::CreateMachine { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 3);
    let mut w = World::empty();
    w.converge(&desired(&t, &o), 5);
    assert_eq!(per_region(&w), counts(&[("iad", 1), ("ord", 2)]));
    assert!(plan(&desired(&t, &o), &w.observed, t0()).is_empty());
}

#[test]
fn counts_move_between_regions_and_a_dropped_region_goes_last() {
    let o = opts();
    let mut w = World::empty();
    w.converge(&desired(&spread(&[("ord", 2), ("iad", 1)]), &o), 5);

    let moved = spread(&[("ord", 1), ("iad", 2)]);
    let p = plan(&desired(&moved, &o), &w.observed, t0());
    assert_eq!(
        names(&p),
        ["CreateMachine", "DestroyMachine"],
        "{}",
        p.render()
    );
    assert!(matches!(&p.steps[0].action, Action::CreateMachine { region, .. } if region == "iad"));
    assert_eq!(
        p.steps[1].reason,
        Reason::ScaleDown {
            have: 2,
            want: 1,
            region: Some(region("ord"))
        }
    );
    w.converge(&desired(&moved, &o), 5);
    assert_eq!(per_region(&w), counts(&[("iad", 2), ("ord", 1)]));

    // Back to one region: iad's machines go once ord runs its full count.
    let mut single = tenant("acme");
    single.spec.machines[0].count = 3;
    let p = plan(&desired(&single, &o), &w.observed, t0());
    assert_eq!(
        names(&p),
        ["CreateMachine", "CreateMachine"],
        "{}",
        p.render()
    );
    for s in &p.steps {
        w.apply(s);
    }
    let p = plan(&desired(&single, &o), &w.observed, t0());
    assert_eq!(names(&p), ["DestroyMachine", "DestroyMachine"]);
    assert!(p.steps.iter().all(|s| s.reason
        == Reason::WrongRegion {
            region: "iad".into()
        }));
    w.converge(&desired(&single, &o), 5);
    assert_eq!(per_region(&w), counts(&[("ord", 3)]));
}

#[test]
fn a_roll_spends_one_budget_across_regions() {
    let t = spread(&[("ord", 2), ("iad", 2)]);
    let o = opts();
    let mut w = World::empty();
    w.converge(&desired(&t, &o), 5);
    let mut changed = t.clone();
    changed.spec.machines[0].image = "nginx:1.28".into();

    // max_unavailable 1: one update per plan, whichever region it is in.
    let p = plan(&desired(&changed, &o), &w.observed, t0());
    assert_eq!(names(&p), ["UpdateMachine"], "{}", p.render());
    assert!(p.findings.contains(&Finding::RolloutInProgress {
        group: GroupName::parse("web").unwrap(),
        pending: 4,
    }));

    // A machine busy in iad uses the whole budget: nothing in ord rolls.
    let mut busy = w.clone();
    let iad = busy
        .observed
        .machines
        .iter_mut()
        .find(|m| m.region == "iad")
        .unwrap();
    iad.state = MachineState::Starting;
    let p = plan(&desired(&changed, &o), &busy.observed, t0());
    assert!(!names(&p).contains(&"UpdateMachine"), "{}", p.render());

    // Two at a time with max_unavailable 2; every machine ends updated.
    let two = PlanOptions {
        max_unavailable: 2,
        ..PlanOptions::default()
    };
    let p = plan(&desired(&changed, &two), &w.observed, t0());
    assert_eq!(names(&p), ["UpdateMachine", "UpdateMachine"]);
    let rounds = w.converge(&desired(&changed, &two), 5);
    assert_eq!(rounds, 2);
    assert!(
        w.observed
            .machines
            .iter()
            .all(|m| m.config.as_ref().unwrap().image == "nginx:1.28")
    );
    assert_eq!(per_region(&w), counts(&[("iad", 2), ("ord", 2)]));
}

#[test]
fn a_create_is_resumed_in_a_region_short_of_machines() {
    let t = spread(&[("ord", 1), ("iad", 1)]);
    let o = opts();
    let mut w = World::empty();
    let mut ord_only = tenant("acme");
    ord_only.spec.machines[0].count = 1;
    w.converge(&desired(&ord_only, &o), 5);
    w.observed.pending_machines.push(PendingMachine {
        key: "web-pending".into(),
        group: GroupName::parse("web").unwrap(),
    });
    let p = plan(&desired(&t, &o), &w.observed, t0());
    assert_eq!(names(&p), ["CreateMachine"], "{}", p.render());
    assert_eq!(p.steps[0].reason, Reason::ResumeCreate);
    assert!(matches!(
        &p.steps[0].action,
        Action::CreateMachine { region, key, .. } if region == "iad" && key == "web-pending"
    ));
}

fn with_secret_file(t: &mut Tenant) {
    t.spec.secrets.push(SecretSpec {
        name: SecretName::parse("TLS_KEY").unwrap(),
        source: SecretSource::External,
    });
    t.spec.machines[0].files.push(FileSpec {
        guest_path: "/etc/tls/key.pem".into(),
        content: FileContent::Secret(SecretName::parse("TLS_KEY").unwrap()),
        mode: FileMode::parse("0600"),
    });
}

#[test]
fn a_file_reading_a_missing_external_secret_holds_the_group() {
    let mut t = tenant("acme");
    with_secret_file(&mut t);
    let o = opts();
    let mut w = World::empty();
    // Everything but the group converges; the group waits, and says why.
    for _ in 0..5 {
        let p = plan(&desired(&t, &o), &w.observed, t0());
        for s in &p.steps {
            w.apply(s);
        }
    }
    let p = plan(&desired(&t, &o), &w.observed, t0());
    assert!(w.observed.machines.is_empty());
    assert!(p.is_empty(), "{}", p.render());
    let waits = Finding::WaitsForSecret {
        group: GroupName::parse("web").unwrap(),
        secret: SecretName::parse("TLS_KEY").unwrap(),
    };
    assert!(p.findings.contains(&waits), "{:?}", p.findings);
    assert!(p.render().contains("reads external secret TLS_KEY"));

    // The value arrives: the machines are created, and the plan settles.
    w.observed.secrets.push(AppSecret {
        name: SecretName::parse("TLS_KEY").unwrap(),
        digest: "d".into(),
    });
    let p = plan(&desired(&t, &o), &w.observed, t0());
    assert_eq!(names(&p), ["CreateMachine", "CreateMachine"]);
    w.converge(&desired(&t, &o), 5);

    // Gone again: a spec change rolls nothing until it is back.
    w.observed.secrets.retain(|s| s.name.as_str() != "TLS_KEY");
    let mut changed = t.clone();
    changed.spec.machines[0].image = "nginx:1.28".into();
    let p = plan(&desired(&changed, &o), &w.observed, t0());
    assert!(!names(&p).contains(&"UpdateMachine"), "{}", p.render());
    assert!(p.findings.contains(&waits));
}

/// A group using every optional part of the machine config.
fn rich(t: &mut Tenant) {
    let g = &mut t.spec.machines[0];
    g.init.cmd = vec!["serve".into(), "--port".into(), "8080".into()];
    g.files.push(FileSpec {
        guest_path: "/etc/app.toml".into(),
        content: FileContent::Base64("cG9ydCA9IDgwODAK".into()),
        mode: FileMode::parse("0644"),
    });
    g.processes.push(ProcessSpec {
        cmd: vec!["worker".into()],
        ..ProcessSpec::default()
    });
    g.stop_config = StopSpec {
        signal: Some(StopSignal::Term),
        timeout: Some(DurationSecs(30)),
    };
    g.dns.nameservers.push("fdaa::3".into());
    g.statics.push(StaticSpec {
        guest_path: "/app/public".into(),
        url_prefix: "/static".into(),
        tigris_bucket: None,
        index_document: None,
    });
    g.guest = Guest {
        cpu_kind: CpuKind::Performance,
        cpus: 8,
        memory_mb: 32768,
        gpu_kind: Some(GpuKind::L40s),
        gpus: Some(1),
    };
    let https = Check {
        kind: CheckKind::Http,
        port: 8443,
        interval: DurationSecs(15),
        timeout: DurationSecs(2),
        grace_period: None,
        method: Some("GET".into()),
        path: Some("/".into()),
        protocol: Some(CheckProtocol::Https),
        tls_skip_verify: true,
        tls_server_name: None,
        headers: vec![HeaderSpec {
            name: "Host".into(),
            values: vec!["app.example.com".into()],
        }],
    };
    g.checks.insert("tls".into(), https.clone());
    g.services[0].checks.push(https);
}

#[test]
fn the_new_parts_reach_the_config_and_roll_once() {
    let t = tenant("acme");
    let o = opts();
    let mut w = World::empty();
    w.converge(&desired(&t, &o), 5);
    let mut r = t.clone();
    rich(&mut r);
    let config = machine::desired_config(&r, &r.spec.machines[0]);
    assert_eq!(config.init.cmd, ["serve", "--port", "8080"]);
    assert_eq!(config.files[0].mode, Some(0o644));
    assert_eq!(config.processes[0].cmd, ["worker"]);
    assert_eq!(config.stop.signal.as_deref(), Some("SIGTERM"));
    assert_eq!(config.stop.timeout, Some(Duration::from_secs(30)));
    assert_eq!(config.dns.nameservers, ["fdaa::3"]);
    assert_eq!(config.statics[0].url_prefix, "/static");
    assert_eq!(
        config.guest.gpu.map(|g| (g.kind.as_str(), g.count)),
        Some(("l40s", 1))
    );
    let tls = &config.checks["tls"];
    assert_eq!(tls.protocol.as_deref(), Some("https"));
    assert_eq!(tls.tls_skip_verify, Some(true));
    assert_eq!(tls.headers[0].values, ["app.example.com"]);
    assert_eq!(config.services[0].checks.len(), 1);

    let p = plan(&desired(&r, &o), &w.observed, t0());
    assert_eq!(names(&p), ["UpdateMachine"], "{}", p.render());
    assert_eq!(p.steps[0].reason, Reason::SpecChanged);
    w.converge(&desired(&r, &o), 5);
    assert!(plan(&desired(&r, &o), &w.observed, t0()).is_empty());
}

#[test]
fn drift_in_a_new_part_is_seen_and_fly_defaults_are_not() {
    let mut t = tenant("acme");
    rich(&mut t);
    t.spec.machines[0].stop_config.signal = None;
    let o = opts();
    let mut w = World::empty();
    w.converge(&desired(&t, &o), 5);
    let config = |w: &mut World| w.observed.machines[0].config.as_mut().unwrap().clone();

    // Fly fills in its defaults: a signal, a file mode, plain http, verify.
    let mut defaults = w.clone();
    let c = defaults.observed.machines[0].config.as_mut().unwrap();
    c.stop.signal = Some("SIGINT".into());
    let desired_cfg = machine::desired_config(&t, &t.spec.machines[0]);
    assert_eq!(
        machine::compare(&desired_cfg, &defaults.observed.machines[0]),
        machine::ConfigDiff::InSync
    );

    for (field, edit) in [
        (
            "init",
            (|c: &mut MachineConfig| c.init.cmd.clear()) as fn(&mut MachineConfig),
        ),
        ("files", |c| c.files.clear()),
        ("processes", |c| c.processes[0].user = Some("root".into())),
        ("stop_config", |c| {
            c.stop.timeout = Some(Duration::from_secs(5))
        }),
        ("dns", |c| c.dns.searches.push("evil".into())),
        ("statics", |c| c.statics.clear()),
        ("guest", |c| c.guest.gpu = None),
        ("checks", |c| {
            c.checks.get_mut("tls").unwrap().tls_skip_verify = Some(false)
        }),
        ("services", |c| c.services[0].checks.clear()),
    ] {
        let mut drifted = w.clone();
        let mut c = config(&mut drifted);
        edit(&mut c);
        drifted.observed.machines[0].config = Some(c);
        assert_eq!(
            machine::compare(&desired_cfg, &drifted.observed.machines[0]),
            machine::ConfigDiff::Drifted(vec![field]),
            "{field}"
        );
    }

    // An https check, or skipped verification, flotilla did not ask for is drift.
    let mut plain = tenant("acme");
    plain.spec.machines[0].checks.insert(
        "alive".into(),
        Check {
            kind: CheckKind::Http,
            port: 8080,
            interval: DurationSecs(15),
            timeout: DurationSecs(2),
            grace_period: None,
            method: None,
            path: None,
            protocol: None,
            tls_skip_verify: false,
            tls_server_name: None,
            headers: vec![],
        },
    );
    let mut w = World::empty();
    w.converge(&desired(&plain, &o), 5);
    let want = machine::desired_config(&plain, &plain.spec.machines[0]);
    for (proto, skip, drift) in [
        (Some("http"), Some(false), false),
        (Some("https"), None, true),
        (None, Some(true), true),
    ] {
        let mut m = w.observed.machines[0].clone();
        let c = m.config.as_mut().unwrap().checks.get_mut("alive").unwrap();
        c.protocol = proto.map(String::from);
        c.tls_skip_verify = skip;
        let diff = machine::compare(&want, &m);
        assert_eq!(
            diff != machine::ConfigDiff::InSync,
            drift,
            "{proto:?} {skip:?}: {diff:?}"
        );
    }
}
