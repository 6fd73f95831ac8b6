//! Config hashes: the canonical form, its stability under new unset fields,
//! and the planner's hash-version upgrade (a table, row by row).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::*;
use crate::model::fly::{
    CheckConfig, ConcurrencyConfig, FileConfig, FileSource, GpuConfig, GpuKind, HostStatus,
    HttpHeader, Machine, MachineConfig, MachineState, MountConfig, ProcessConfig, StaticConfig,
    meta,
};
use crate::plan::machine::{ConfigDiff, compare, desired_config};
use crate::plan::tests::{World, group, t0, tenant};
use crate::plan::{Action, Desired, PlanOptions, Reason, plan};
use crate::spec::{Check, CheckKind, DurationSecs, MachineGroup, Tenant};

fn sample() -> MachineConfig {
    let t = tenant("acme");
    let mut g = group("web", 2);
    g.checks.insert(
        "alive".into(),
        Check {
            kind: CheckKind::Http,
            port: 8080,
            interval: DurationSecs(60),
            timeout: DurationSecs(5),
            grace_period: None,
            method: None,
            path: Some("/healthz".into()),
            protocol: None,
            tls_skip_verify: false,
            tls_server_name: None,
            headers: Vec::new(),
        },
    );
    desired_config(&t, &g)
}

#[test]
fn the_hash_is_versioned_and_ignores_per_machine_keys() {
    let c = sample();
    let h = config_hash(&c);
    assert!(h.starts_with("v2:") && h.len() == 3 + 32, "{h}");
    assert!(is_current(&h));
    assert_eq!(c.metadata[meta::CONFIG_HASH], h);
    let mut per_machine = c.clone();
    per_machine
        .metadata
        .insert(meta::CREATE_KEY.into(), "web-1".into());
    per_machine
        .metadata
        .insert(meta::SECRETS_VERSION.into(), "7".into());
    per_machine
        .metadata
        .insert(meta::CONFIG_HASH.into(), "whatever".into());
    assert_eq!(config_hash(&per_machine), h);
    for old in ["3fa2c0d1e4b5a697", "v1:abc", "v2", "v20:ab", ""] {
        assert!(!is_current(old), "{old}");
    }
}

#[test]
fn every_sent_field_changes_the_hash() {
    let base = sample();
    let h = config_hash(&base);
    type Edit = fn(&mut MachineConfig);
    let edits: Vec<(&str, Edit)> = vec![
        ("image", |c| c.image = "nginx:1.28".into()),
        ("env", |c| {
            c.env.insert("EMPTY".into(), String::new());
        }),
        ("guest", |c| c.guest.memory_mb = 512),
        ("port order", |c| c.services[0].ports.reverse()),
        ("force_https", |c| c.services[0].ports[1].force_https = true),
        ("autostart", |c| c.services[0].autostart = false),
        ("min running 0", |c| {
            c.services[0].min_machines_running = Some(0)
        }),
        ("concurrency", |c| {
            c.services[0].concurrency = Some(ConcurrencyConfig {
                kind: "requests".into(),
                soft_limit: 20,
                hard_limit: 25,
            })
        }),
        ("check interval", |c| {
            c.checks.get_mut("alive").unwrap().interval = Duration::from_secs(61)
        }),
        ("restart retries", |c| c.restart.max_retries = Some(0)),
        ("user metadata", |c| {
            c.metadata.insert("team".into(), "a".into());
        }),
        ("group", |c| {
            c.metadata.insert(meta::GROUP.into(), "api".into());
        }),
        ("auto_destroy", |c| c.auto_destroy = true),
        ("init cmd", |c| c.init.cmd = vec!["serve".into()]),
        ("init tty", |c| c.init.tty = true),
        ("file", |c| {
            c.files.push(FileConfig {
                guest_path: "/etc/a".into(),
                source: FileSource::Base64("aGk=".into()),
                mode: None,
            })
        }),
        ("process", |c| c.processes.push(ProcessConfig::default())),
        ("stop signal", |c| c.stop.signal = Some("SIGTERM".into())),
        ("dns", |c| c.dns.nameservers.push("fdaa::3".into())),
        ("static", |c| {
            c.statics.push(StaticConfig {
                guest_path: "/app/public".into(),
                url_prefix: "/static".into(),
                tigris_bucket: None,
                index_document: None,
            })
        }),
        ("mount", |c| {
            c.mounts.push(MountConfig {
                volume: None,
                name: Some("data".into()),
                path: "/data".into(),
                extend_threshold_percent: None,
                add_size_gb: None,
                size_gb_limit: None,
            })
        }),
        ("gpu", |c| {
            c.guest.gpu = Some(GpuConfig {
                kind: GpuKind::L40s,
                count: 1,
            })
        }),
        ("https check", |c| {
            c.checks.get_mut("alive").unwrap().protocol = Some("https".into())
        }),
        ("check header", |c| {
            c.checks.get_mut("alive").unwrap().headers.push(HttpHeader {
                name: "Host".into(),
                values: vec![],
            })
        }),
        ("service check", |c| {
            let check = c.checks["alive"].clone();
            c.services[0].checks.push(check);
        }),
    ];
    for (name, edit) in edits {
        let mut c = base.clone();
        edit(&mut c);
        assert_ne!(config_hash(&c), h, "{name} must change the hash");
    }
}

#[test]
fn count_and_region_are_not_part_of_the_hash() {
    let t = tenant("acme");
    let g = group("web", 2);
    let mut scaled: MachineGroup = g.clone();
    scaled.count = 7;
    scaled.region = Some(crate::ids::Region::parse("ams").unwrap());
    let mut spread = g.clone();
    spread.region = None;
    spread.regions = [("ams", 3), ("ord", 4)]
        .into_iter()
        .map(|(r, n)| (crate::ids::Region::parse(r).unwrap(), n))
        .collect();
    assert_eq!(
        desired_config(&t, &g).metadata[meta::CONFIG_HASH],
        desired_config(&t, &scaled).metadata[meta::CONFIG_HASH]
    );
    // A group in several regions runs the same config.
    assert_eq!(
        desired_config(&t, &g).metadata[meta::CONFIG_HASH],
        desired_config(&t, &spread).metadata[meta::CONFIG_HASH]
    );
}

#[test]
fn canonical_text_does_not_depend_on_key_order() {
    let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
    let b = json!({"a": {"x": "s", "y": [1, 2]}, "b": 1});
    assert_eq!(hash_value(a), hash_value(b));
    // List order counts.
    assert_ne!(
        hash_value(json!({"l": [1, 2]})),
        hash_value(json!({"l": [2, 1]}))
    );
}

/// A later flotilla's config, simulated: the config as sent today plus
/// fields it may add (Fly's `files`, `init`, `stop_config`, ...), here unset.
#[derive(Serialize)]
struct Extended {
    #[serde(flatten)]
    today: Value,
    files: Vec<Value>,
    init: Option<Value>,
    stop_config: Option<Value>,
    processes: Vec<Value>,
    standbys: Vec<String>,
    dns: BTreeMap<String, String>,
    skip_launch: bool,
}

#[test]
fn a_new_optional_field_changes_no_hash_while_unset() {
    let c = sample();
    let h = config_hash(&c);
    let unset = Extended {
        today: canonical(&c),
        files: vec![],
        init: None,
        stop_config: None,
        processes: vec![],
        standbys: vec![],
        dns: BTreeMap::new(),
        skip_launch: false,
    };
    let mut extended = serde_json::to_value(&unset).unwrap();
    // Nested too: a new service, port and check field, unset.
    extended["services"][0]["force_instance_key"] = Value::Null;
    extended["services"][0]["ports"][0]["tls_options"] = json!({});
    extended["checks"]["alive"]["headers"] = json!([]);
    extended["guest"]["gpus"] = Value::Null;
    assert_eq!(hash_value(extended.clone()), h);

    // The same fields, set, do change it: the test can fail.
    let mut set = serde_json::to_value(Extended {
        init: Some(json!({"cmd": ["run"]})),
        ..unset
    })
    .unwrap();
    assert_ne!(hash_value(set.clone()), h);
    set["init"] = Value::Null;
    assert_eq!(hash_value(set), h);
    extended["checks"]["alive"]["headers"] = json!([{"name": "X", "values": ["1"]}]);
    assert_ne!(hash_value(extended), h);
}

// ---------------------------------------------------------------------------
// The planner: a hash-version change rewrites hashes, it rolls nothing.

/// The pre-v2 hash format: 16 hex digits, no version.
const OLD: &str = "3fa2c0d1e4b5a697";

struct Row {
    name: &'static str,
    /// Changes one converged machine (the first); `all` applies it to every one.
    edit: fn(&mut Machine),
    all: bool,
    /// The ledger's secrets version moves past the machines'.
    new_secrets: bool,
    /// (action, reason) of every step, in order.
    want: Vec<(&'static str, Reason)>,
}

fn set_hash(m: &mut Machine, h: Option<&str>) {
    for md in [
        Some(&mut m.metadata),
        m.config.as_mut().map(|c| &mut c.metadata),
    ]
    .into_iter()
    .flatten()
    {
        match h {
            Some(h) => md.insert(meta::CONFIG_HASH.into(), h.into()),
            None => md.remove(meta::CONFIG_HASH),
        };
    }
}

fn config_mut(m: &mut Machine) -> &mut MachineConfig {
    m.config.as_mut().unwrap()
}

/// A group that leaves Fly's optional fields unset.
fn sparse_group() -> MachineGroup {
    let mut g = group("web", 2);
    g.restart.max_retries = None;
    g.checks.insert(
        "alive".into(),
        Check {
            kind: CheckKind::Http,
            port: 8080,
            interval: DurationSecs(60),
            timeout: DurationSecs(5),
            grace_period: None,
            method: None,
            path: Some("/healthz".into()),
            protocol: None,
            tls_skip_verify: false,
            tls_server_name: None,
            headers: Vec::new(),
        },
    );
    g
}

fn sparse_tenant() -> Tenant {
    let mut t = tenant("acme");
    t.spec.machines = vec![sparse_group()];
    t
}

fn upgrade(stored: Option<&str>) -> (&'static str, Reason) {
    (
        "UpgradeConfigHash",
        Reason::ConfigHashOutdated {
            stored: stored.map(String::from),
        },
    )
}

#[test]
fn hash_version_upgrades_table() {
    let rows = vec![
        Row {
            name: "pre-v2 hash, config matches: rewrite the hash only",
            edit: |m| set_hash(m, Some(OLD)),
            all: false,
            new_secrets: false,
            want: vec![upgrade(Some(OLD))],
        },
        Row {
            name: "no hash at all, config matches",
            edit: |m| set_hash(m, None),
            all: false,
            new_secrets: false,
            want: vec![upgrade(None)],
        },
        Row {
            name: "another version's hash",
            edit: |m| set_hash(m, Some("v1:0123")),
            all: false,
            new_secrets: false,
            want: vec![upgrade(Some("v1:0123"))],
        },
        Row {
            name: "every machine: no roll budget is spent on hashes",
            edit: |m| set_hash(m, Some(OLD)),
            all: true,
            new_secrets: false,
            want: vec![upgrade(Some(OLD)), upgrade(Some(OLD))],
        },
        Row {
            name: "Fly filled in defaults and its own keys: still a match",
            edit: |m| {
                set_hash(m, Some(OLD));
                let c = config_mut(m);
                c.restart.max_retries = Some(10);
                let check = c.checks.get_mut("alive").unwrap();
                check.method = Some("GET".into());
                check.grace_period = Some(Duration::ZERO);
                c.services[0].concurrency = Some(ConcurrencyConfig {
                    kind: "connections".into(),
                    soft_limit: 20,
                    hard_limit: 25,
                });
                c.services[0].min_machines_running = Some(0);
                c.metadata
                    .insert("fly_platform_version".into(), "v2".into());
                let metadata = c.metadata.clone();
                m.metadata = metadata;
            },
            all: false,
            new_secrets: false,
            want: vec![upgrade(Some(OLD))],
        },
        Row {
            name: "pre-v2 hash, image differs: a real roll",
            edit: |m| {
                set_hash(m, Some(OLD));
                config_mut(m).image = "nginx:1.26".into();
            },
            all: false,
            new_secrets: false,
            want: vec![("UpdateMachine", Reason::SpecChanged)],
        },
        Row {
            name: "pre-v2 hash, a user metadata key differs: a real roll",
            edit: |m| {
                set_hash(m, Some(OLD));
                config_mut(m).metadata.insert("team".into(), "b".into());
                m.metadata = config_mut(m).metadata.clone();
            },
            all: false,
            new_secrets: false,
            want: vec![("UpdateMachine", Reason::SpecChanged)],
        },
        Row {
            name: "v2 hash that differs: the spec changed",
            edit: |m| set_hash(m, Some("v2:00000000000000000000000000000000")),
            all: false,
            new_secrets: false,
            want: vec![("UpdateMachine", Reason::SpecChanged)],
        },
        Row {
            name: "pre-v2 hash and older secrets: the update writes the hash",
            edit: |m| set_hash(m, Some(OLD)),
            all: false,
            new_secrets: true,
            // One at a time (max_unavailable 1): the rest wait their turn.
            want: vec![(
                "UpdateMachine",
                Reason::SecretsChanged {
                    machine: Some(1),
                    current: 2,
                },
            )],
        },
        Row {
            name: "stopped with autostop off: hash rewrite, then start",
            edit: |m| {
                set_hash(m, Some(OLD));
                m.state = MachineState::Stopped;
            },
            all: false,
            new_secrets: false,
            want: vec![
                upgrade(Some(OLD)),
                ("StartMachine", Reason::StoppedUnexpectedly),
            ],
        },
        Row {
            name: "host unreachable: never judged",
            edit: |m| {
                set_hash(m, Some(OLD));
                m.config = None;
                m.host_status = HostStatus::Unreachable;
            },
            all: false,
            new_secrets: false,
            want: vec![],
        },
    ];
    let t = sparse_tenant();
    let o = PlanOptions::default();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    for row in rows {
        let mut w = World::empty();
        w.converge(&d, 5);
        assert!(plan(&d, &w.observed, t0()).is_empty(), "{}", row.name);
        let n = if row.all {
            w.observed.machines.len()
        } else {
            1
        };
        for m in w.observed.machines.iter_mut().take(n) {
            (row.edit)(m);
        }
        if row.new_secrets {
            w.observed.ledger.secrets_version = Some(2);
        }
        let p = plan(&d, &w.observed, t0());
        let got: Vec<(&str, Reason)> = p
            .steps
            .iter()
            .map(|s| (s.action.name(), s.reason.clone()))
            .collect();
        assert_eq!(got, row.want, "{}:\n{}", row.name, p.render());
        for s in &p.steps {
            if let Action::UpgradeConfigHash { hash, id, .. } = &s.action {
                assert!(is_current(hash), "{}", row.name);
                assert_eq!(
                    hash,
                    &desired_config(&t, &t.spec.machines[0]).metadata[meta::CONFIG_HASH]
                );
                assert!(w.observed.machines.iter().any(|m| &m.id == id));
            }
        }
        // Applying plans converges, and every machine ends on the v2 hash.
        for s in &p.steps {
            w.apply(s);
        }
        w.converge(&d, 5);
        for m in &w.observed.machines {
            let h = m.metadata.get(meta::CONFIG_HASH).map(String::as_str);
            assert!(
                h.is_some_and(is_current) || m.config.is_none(),
                "{}: {h:?}",
                row.name
            );
        }
    }
}

#[test]
fn compare_sees_a_pre_v2_machine_as_running_the_desired_config() {
    let t = sparse_tenant();
    let desired = desired_config(&t, &t.spec.machines[0]);
    let mut w = World::empty();
    let mut m = w.machine(&t, &t.spec.machines[0], MachineState::Started);
    set_hash(&mut m, Some(OLD));
    let diff = compare(&desired, &m);
    assert_eq!(
        diff,
        ConfigDiff::HashOutdated {
            stored: Some(OLD.into())
        }
    );
    assert!(diff.runs_desired());
    // A drifted check is still drift, whatever the hash.
    config_mut(&mut m).checks.insert(
        "extra".into(),
        CheckConfig {
            kind: "tcp".into(),
            port: 1,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            grace_period: None,
            method: None,
            path: None,
            protocol: None,
            tls_skip_verify: None,
            tls_server_name: None,
            headers: Vec::new(),
        },
    );
    assert_eq!(compare(&desired, &m), ConfigDiff::SpecChanged);
}
