//! Tests of the config wire: what is sent, what Fly's echoes read back as,
//! and that the config hash covers exactly what is sent.

use super::*;
use crate::fly::{
    DnsConfig, DnsForwardRule, DnsOption, EnvFrom, FileConfig, FileSource, InitConfig, MountConfig,
    ProcessConfig, ProcessSecret, StaticConfig, StopConfig,
};
use crate::ids::{SecretName, VolumeId};
use serde_json::json;

/// A config without any of the optional parts (what flotilla sent
/// before they existed).
fn base_config() -> MachineConfig {
    MachineConfig {
        image: "registry.fly.io/app:v1".into(),
        env: BTreeMap::from([("PORT".into(), "8080".into())]),
        guest: GuestConfig {
            cpu_kind: CpuKind::Performance,
            cpus: 2,
            memory_mb: 4096,
            gpu: None,
        },
        services: vec![ServiceConfig {
            protocol: "tcp".into(),
            internal_port: 8080,
            ports: vec![
                PortConfig {
                    port: 443,
                    handlers: vec![Handler::Http, Handler::Tls],
                    force_https: false,
                },
                PortConfig {
                    port: 80,
                    handlers: vec![Handler::Http],
                    force_https: true,
                },
            ],
            autostop: AutostopConfig::Stop,
            autostart: true,
            min_machines_running: Some(1),
            concurrency: Some(ConcurrencyConfig {
                kind: "requests".into(),
                soft_limit: 20,
                hard_limit: 25,
            }),
            checks: Vec::new(),
        }],
        checks: BTreeMap::from([("http".into(), http_check())]),
        restart: RestartConfig {
            policy: "on-failure".into(),
            max_retries: Some(10),
        },
        metadata: BTreeMap::from([("flotilla.tenant".into(), "acme".into())]),
        auto_destroy: false,
        init: InitConfig::default(),
        files: Vec::new(),
        processes: Vec::new(),
        stop: StopConfig::default(),
        dns: DnsConfig::default(),
        statics: Vec::new(),
        mounts: Vec::new(),
    }
}

fn http_check() -> CheckConfig {
    CheckConfig {
        kind: "http".into(),
        port: 8080,
        interval: Duration::from_secs(60),
        timeout: Duration::from_millis(1500),
        grace_period: Some(Duration::from_secs(90)),
        method: Some("GET".into()),
        path: Some("/healthz".into()),
        protocol: None,
        tls_skip_verify: None,
        tls_server_name: None,
        headers: Vec::new(),
    }
}

/// Every field set, the optional parts included.
fn sample_config() -> MachineConfig {
    let mut c = base_config();
    c.guest.gpu = Some(GpuConfig {
        kind: GpuKind::A100Sxm4_80gb,
        count: 2,
    });
    let https = CheckConfig {
        protocol: Some("https".into()),
        tls_skip_verify: Some(true),
        tls_server_name: Some("app.internal".into()),
        headers: vec![HttpHeader {
            name: "Host".into(),
            values: vec!["app.example".into()],
        }],
        ..http_check()
    };
    c.services[0].checks = vec![https.clone()];
    c.checks.insert("https".into(), https);
    c.init = InitConfig {
        exec: vec!["/app".into()],
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["serve".into()],
        tty: true,
    };
    c.files = vec![
        FileConfig {
            guest_path: "/etc/app.conf".into(),
            source: FileSource::Base64("aGk=".into()),
            mode: Some(0o644),
        },
        FileConfig {
            guest_path: "/run/token".into(),
            source: FileSource::Secret(SecretName::parse("API_KEY").expect("name")),
            mode: None,
        },
        FileConfig {
            guest_path: "/etc/image.json".into(),
            source: FileSource::ImageConfig("registry.fly.io/app:v1".into()),
            mode: None,
        },
    ];
    c.processes = vec![ProcessConfig {
        exec: vec!["/worker".into()],
        entrypoint: vec!["/bin/sh".into()],
        cmd: vec!["work".into()],
        user: Some("app".into()),
        env: BTreeMap::from([("ROLE".into(), "worker".into())]),
        secrets: vec![ProcessSecret {
            env_var: "KEY".into(),
            name: Some("API_KEY".into()),
        }],
        ignore_app_secrets: true,
        env_from: vec![EnvFrom {
            env_var: "REGION".into(),
            field_ref: "region".into(),
        }],
    }];
    c.stop = StopConfig {
        signal: Some("SIGINT".into()),
        timeout: Some(Duration::from_secs(45)),
    };
    c.dns = DnsConfig {
        skip_registration: true,
        nameservers: vec!["fdaa::3".into()],
        searches: vec!["internal".into()],
        options: vec![DnsOption {
            name: "ndots".into(),
            value: "1".into(),
        }],
        forward_rules: vec![DnsForwardRule {
            basename: "corp".into(),
            addr: "10.0.0.1".into(),
        }],
        hostname: Some("web".into()),
        hostname_fqdn: Some("web.internal".into()),
    };
    c.statics = vec![StaticConfig {
        guest_path: "/app/public".into(),
        url_prefix: "/static".into(),
        tigris_bucket: Some("bucket".into()),
        index_document: Some("index.html".into()),
    }];
    c.mounts = vec![MountConfig {
        volume: Some(VolumeId::parse("vol_9vw681egy1jj5xm4").expect("id")),
        name: Some("data".into()),
        path: "/data".into(),
        extend_threshold_percent: Some(80),
        add_size_gb: Some(1),
        size_gb_limit: Some(10),
    }];
    c
}

fn read(value: Value) -> Result<MachineConfig, String> {
    ConfigWire::deserialize(&value)
        .map_err(|e| e.to_string())
        .and_then(ConfigWire::into_domain)
}

/// The config hash (`plan::hash`) covers exactly the config this client
/// sends: the sent JSON, pruned and without the per-machine metadata
/// keys, is the hash's canonical form. A field added to `ConfigOut` fails
/// this test (set it in `sample_config`) until the canonical form has it.
#[test]
fn the_config_hash_covers_exactly_what_is_sent() {
    use crate::plan::hash::{MACHINE_KEYS, canonical, prune};
    let full = sample_config();
    let mut minimal = base_config();
    minimal.env.clear();
    minimal.services.clear();
    minimal.checks.clear();
    minimal.restart.max_retries = None;
    let mut per_machine = sample_config();
    per_machine.auto_destroy = true;
    for key in MACHINE_KEYS {
        per_machine.metadata.insert(key.into(), "x".into());
    }
    // Optional parts set to their "empty" values: sent as nothing.
    let mut hollow = base_config();
    hollow.processes = vec![ProcessConfig::default()];
    hollow.stop.timeout = Some(Duration::ZERO);
    hollow
        .checks
        .get_mut("http")
        .expect("check")
        .tls_skip_verify = Some(false);
    for c in [full, minimal, per_machine, base_config(), hollow] {
        let mut sent = serde_json::to_value(ConfigOut::from_domain(&c)).expect("serializes");
        let md = sent["metadata"].as_object_mut().expect("metadata");
        md.retain(|k, _| !MACHINE_KEYS.contains(&k.as_str()));
        assert_eq!(prune(sent), canonical(&c));
    }
}

#[test]
fn written_config_reads_back_equal() {
    let c = sample_config();
    let sent = serde_json::to_value(ConfigOut::from_domain(&c)).expect("serializes");
    assert_eq!(sent["services"][0]["autostop"], json!("stop"));
    assert_eq!(sent["checks"]["http"]["interval"], json!("1m0s"));
    assert_eq!(sent["checks"]["http"]["timeout"], json!("1.5s"));
    assert_eq!(read(sent), Ok(c));
}

/// A config without the optional parts is sent exactly as before they
/// existed: none of their members appear.
#[test]
fn unset_optional_parts_are_not_sent() {
    let sent = serde_json::to_value(ConfigOut::from_domain(&base_config())).expect("ser");
    let keys =
        |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
    assert_eq!(
        keys(&sent),
        [
            "image",
            "env",
            "guest",
            "services",
            "checks",
            "restart",
            "metadata",
            "auto_destroy"
        ]
    );
    assert_eq!(keys(&sent["guest"]), ["cpu_kind", "cpus", "memory_mb"]);
    assert_eq!(
        keys(&sent["checks"]["http"]),
        [
            "type",
            "port",
            "interval",
            "timeout",
            "grace_period",
            "method",
            "path"
        ]
    );
    assert!(sent["services"][0].get("checks").is_none());
}

#[test]
fn optional_parts_are_sent_in_fly_shapes() {
    let sent = serde_json::to_value(ConfigOut::from_domain(&sample_config())).expect("ser");
    assert_eq!(sent["guest"]["gpu_kind"], json!("a100-sxm4-80gb"));
    assert_eq!(sent["guest"]["gpus"], json!(2));
    assert_eq!(
        sent["init"],
        json!({"exec": ["/app"], "entrypoint": ["/bin/sh", "-c"], "cmd": ["serve"], "tty": true})
    );
    assert_eq!(
        sent["files"],
        json!([
            {"guest_path": "/etc/app.conf", "raw_value": "aGk=", "mode": 420},
            {"guest_path": "/run/token", "secret_name": "API_KEY"},
            {"guest_path": "/etc/image.json", "image_config": "registry.fly.io/app:v1"}
        ])
    );
    assert_eq!(
        sent["stop_config"],
        json!({"signal": "SIGINT", "timeout": "45s"})
    );
    assert_eq!(sent["checks"]["https"]["protocol"], json!("https"));
    assert_eq!(
        sent["services"][0]["checks"][0]["headers"],
        json!([{"name": "Host", "values": ["app.example"]}])
    );
    assert_eq!(
        sent["mounts"],
        json!([{"volume": "vol_9vw681egy1jj5xm4", "name": "data", "path": "/data",
            "extend_threshold_percent": 80, "add_size_gb": 1, "size_gb_limit": 10}])
    );
    assert_eq!(
        sent["dns"]["dns_forward_rules"],
        json!([{"basename": "corp", "addr": "10.0.0.1"}])
    );
}

/// What Fly (and the simulator) echo for the optional parts reads back
/// as what was sent: `"init": {}` and `"dns": {}` always present,
/// `fly.Static`'s empty strings, a mount filled in from its volume, a
/// GPU count Fly defaulted.
#[test]
fn fly_echoes_of_the_optional_parts_read_back_equal() {
    let mut echoed = serde_json::to_value(ConfigOut::from_domain(&sample_config())).expect("ser");
    echoed["mounts"][0]["encrypted"] = json!(true);
    echoed["mounts"][0]["size_gb"] = json!(3);
    echoed["stop_config"]["timeout"] = json!(45_000_000_000u64);
    assert_eq!(read(echoed), Ok(sample_config()));

    let mut plain = serde_json::to_value(ConfigOut::from_domain(&base_config())).expect("ser");
    plain["init"] = json!({});
    plain["dns"] = json!({});
    plain["processes"] = json!(null);
    assert_eq!(read(plain.clone()), Ok(base_config()));

    plain["statics"] = json!([{"guest_path": "/p", "url_prefix": "/s", "tigris_bucket": "", "index_document": ""}]);
    plain["guest"]["gpu_kind"] = json!("l40s");
    let c = read(plain).expect("reads");
    assert_eq!(c.statics[0].tigris_bucket, None);
    assert_eq!(
        c.guest.gpu,
        Some(GpuConfig {
            kind: GpuKind::L40s,
            count: 1
        })
    );
}

#[test]
fn fly_normalised_forms_read_back_equal() {
    // What Fly echoes for the sample config: autostop as a bool, durations
    // re-formatted or as nanoseconds, extra fields we do not model.
    let mut echoed = serde_json::to_value(ConfigOut::from_domain(&base_config())).expect("ser");
    echoed["services"][0]["autostop"] = json!(true);
    echoed["checks"]["http"]["interval"] = json!("60s");
    echoed["checks"]["http"]["grace_period"] = json!(90_000_000_000u64);
    echoed["init"] = json!({"exec": null, "entrypoint": null, "cmd": null, "tty": false});
    echoed["mounts"] = json!(null);
    echoed["restart"] = json!({"policy": "on-failure", "max_retries": 10, "gpu_bid_price": null});
    assert_eq!(read(echoed), Ok(base_config()));
}

#[test]
fn autostop_reads_bool_and_string_forms() {
    let svc = |autostop: Value| {
        read(json!({"services": [{"protocol": "tcp", "internal_port": 80, "ports": [], "autostop": autostop}]}))
            .map(|c| c.services[0].autostop)
    };
    assert_eq!(svc(json!(false)), Ok(AutostopConfig::Off));
    assert_eq!(svc(json!(true)), Ok(AutostopConfig::Stop));
    assert_eq!(svc(json!("off")), Ok(AutostopConfig::Off));
    assert_eq!(svc(json!("stop")), Ok(AutostopConfig::Stop));
    assert_eq!(svc(json!("suspend")), Ok(AutostopConfig::Suspend));
    assert_eq!(svc(json!(null)), Ok(AutostopConfig::Off));
    assert!(svc(json!("hibernate")).is_err());
}

#[test]
fn defaults_fill_in_nulls_and_missing_fields() {
    let c = read(json!({
        "image": "img",
        "env": null,
        "services": null,
        "checks": null,
        "metadata": null,
        "restart": {"policy": ""}
    }))
    .expect("reads");
    assert_eq!(c.guest, DEFAULT_GUEST);
    assert_eq!(c.restart.policy, "on-failure");
    assert!(c.env.is_empty() && c.services.is_empty() && c.checks.is_empty());
    assert!(c.metadata.is_empty());
    let no_restart = read(json!({"image": "img"})).expect("reads");
    assert_eq!(no_restart.restart.policy, "on-failure");
    assert_eq!(no_restart.restart.max_retries, None);
}

#[test]
fn unrepresentable_configs_are_errors_not_guesses() {
    assert!(read(json!({"guest": {"cpu_kind": "a100-80gb"}})).is_err());
    assert!(read(json!({"services": [{"ports": [{"start_port": 1, "end_port": 9}]}]})).is_err());
    assert!(read(json!({"services": [{"ports": [{"port": 80, "handlers": ["h3"]}]}]})).is_err());
    assert!(read(json!({"checks": {"c": {"interval": "soon"}}})).is_err());
    assert!(read(json!({"guest": {"cpus": "two"}})).is_err());
    assert!(read(json!({"guest": {"gpu_kind": "h100"}})).is_err());
    assert!(read(json!({"files": [{"guest_path": "/a"}]})).is_err());
    assert!(
        read(json!({"files": [{"guest_path": "/a", "raw_value": "aGk=", "secret_name": "K"}]}))
            .is_err()
    );
    assert!(read(json!({"files": [{"raw_value": "aGk="}]})).is_err());
    assert!(read(json!({"mounts": [{"volume": "disk-1", "path": "/d"}]})).is_err());
    assert!(read(json!({"processes": [{"secrets": [{"name": "K"}]}]})).is_err());
    assert!(read(json!({"checks": {"c": {"headers": [{"values": ["x"]}]}}})).is_err());
    assert!(read(json!({"stop_config": {"timeout": "later"}})).is_err());
}
