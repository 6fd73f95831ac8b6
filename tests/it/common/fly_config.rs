//! One machine config for the tests that talk to Fly (the client against the
//! simulator, the client against a scripted server, the conformance
//! scenario). Each test starts from [`machine_config`] and changes only what
//! it is about, so a field added to `MachineConfig` is added here once.

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla::fly::{
    AutostopConfig, CheckConfig, GuestConfig, MachineConfig, PortConfig, RestartConfig,
    ServiceConfig,
};
use flotilla::model::fly::meta;
use flotilla::spec::{CpuKind, Handler};

/// Flotilla's metadata for tenant `acme`, group `web`, with `create_key`.
pub fn acme_web_metadata(create_key: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (meta::TENANT.to_owned(), "acme".to_owned()),
        (meta::GROUP.to_owned(), "web".to_owned()),
        (meta::CREATE_KEY.to_owned(), create_key.to_owned()),
    ])
}

/// A tcp liveness check on port 8080.
pub fn tcp_check(interval: Duration, timeout: Duration, grace: Option<Duration>) -> CheckConfig {
    CheckConfig {
        kind: "tcp".into(),
        port: 8080,
        interval,
        timeout,
        grace_period: grace,
        method: None,
        path: None,
        protocol: None,
        tls_skip_verify: None,
        tls_server_name: None,
        headers: Vec::new(),
    }
}

/// A web machine: `image`, one tcp service on 8080 behind 443 (tls, http)
/// and 80 (http, forced to https), a tcp check `alive`, restart on failure
/// at most 5 times, `metadata`, and none of the optional parts.
pub fn machine_config(image: &str, metadata: BTreeMap<String, String>) -> MachineConfig {
    MachineConfig {
        image: image.into(),
        env: BTreeMap::from([("PORT".into(), "8080".into())]),
        guest: GuestConfig {
            cpu_kind: CpuKind::Shared,
            cpus: 1,
            memory_mb: 512,
            gpu: None,
        },
        services: vec![ServiceConfig {
            protocol: "tcp".into(),
            internal_port: 8080,
            ports: vec![
                PortConfig {
                    port: 443,
                    handlers: vec![Handler::Tls, Handler::Http],
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
            min_machines_running: Some(0),
            concurrency: None,
            checks: Vec::new(),
        }],
        checks: BTreeMap::from([(
            "alive".into(),
            tcp_check(
                Duration::from_secs(60),
                Duration::from_millis(2500),
                Some(Duration::from_secs(10)),
            ),
        )]),
        restart: RestartConfig {
            policy: "on-failure".into(),
            max_retries: Some(5),
        },
        metadata,
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
