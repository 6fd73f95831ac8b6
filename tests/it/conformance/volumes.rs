//! The volume part of the conformance scenario: every volume call `FlyApi`
//! makes, and a machine whose config carries every optional part (a mount,
//! GPUs, init, files, processes, stop config, DNS, statics, https and
//! service-level checks), so both the client's requests and the
//! simulator's answers are judged against the document.

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla::fly::http::HttpFly;
use flotilla::fly::{
    CheckConfig, CreateMachine, CreateVolume, DnsConfig, EnvFrom, FileConfig, FileSource, FlyApi,
    FlyError, GpuConfig, GpuKind, HttpHeader, InitConfig, MountConfig, ProcessConfig, StaticConfig,
    StopConfig, UpdateVolume, WaitState,
};
use flotilla::ids::{AppName, SecretName};
use flotilla::spec::CpuKind;

use super::machine_config;

/// Runs the volume calls on `app`, which holds the secret `secret`.
pub async fn scenario(fly: &HttpFly, app: &AppName, secret: &SecretName) {
    let vol = fly
        .create_volume(
            app,
            &CreateVolume {
                name: "model_cache".into(),
                region: "ams".into(),
                size_gb: 1,
                encrypted: true,
                require_unique_zone: Some(true),
                snapshot_retention: Some(5),
            },
        )
        .await
        .expect("create volume");
    assert_eq!(
        fly.get_volume(app, &vol.id).await.expect("get volume").id,
        vol.id
    );
    assert!(
        fly.list_volumes(app)
            .await
            .expect("list volumes")
            .iter()
            .any(|v| v.id == vol.id)
    );
    fly.update_volume(
        app,
        &vol.id,
        &UpdateVolume {
            snapshot_retention: Some(10),
            auto_backup_enabled: Some(true),
        },
    )
    .await
    .expect("update volume");

    let mut cfg = machine_config("registry.fly.io/coordinator:v1", "ck-vol");
    cfg.guest.cpu_kind = CpuKind::Performance;
    cfg.guest.cpus = 8;
    cfg.guest.memory_mb = 32768;
    cfg.guest.gpu = Some(GpuConfig {
        kind: GpuKind::A100Sxm4_80gb,
        count: 1,
    });
    let https = CheckConfig {
        kind: "http".into(),
        port: 8443,
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(2),
        grace_period: None,
        method: Some("GET".into()),
        path: Some("/health".into()),
        protocol: Some("https".into()),
        tls_skip_verify: Some(true),
        tls_server_name: None,
        headers: vec![HttpHeader {
            name: "Host".into(),
            values: vec!["coordinator.example".into()],
        }],
    };
    cfg.checks.insert("ready".into(), https.clone());
    cfg.services[0].checks = vec![https];
    cfg.init = InitConfig {
        exec: vec![],
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["ollama serve".into()],
        tty: false,
    };
    cfg.files = vec![
        FileConfig {
            guest_path: "/etc/coordinator.toml".into(),
            source: FileSource::Base64("bW9kZWwgPSAibGxhbWEiCg==".into()),
            mode: Some(0o644),
        },
        FileConfig {
            guest_path: "/run/secrets/db".into(),
            source: FileSource::Secret(secret.clone()),
            mode: None,
        },
    ];
    cfg.processes = vec![ProcessConfig {
        cmd: vec!["serve".into()],
        env: BTreeMap::from([("ROLE".into(), "coordinator".into())]),
        env_from: vec![EnvFrom {
            env_var: "MACHINE_REGION".into(),
            field_ref: "region".into(),
        }],
        ..ProcessConfig::default()
    }];
    cfg.stop = StopConfig {
        signal: Some("SIGTERM".into()),
        timeout: Some(Duration::from_secs(30)),
    };
    cfg.dns = DnsConfig {
        nameservers: vec!["fdaa::3".into()],
        ..DnsConfig::default()
    };
    cfg.statics = vec![StaticConfig {
        guest_path: "/app/public".into(),
        url_prefix: "/static/".into(),
        tigris_bucket: None,
        index_document: None,
    }];
    cfg.mounts = vec![MountConfig {
        volume: Some(vol.id.clone()),
        name: Some("model_cache".into()),
        path: "/models".into(),
        extend_threshold_percent: Some(80),
        add_size_gb: Some(1),
        size_gb_limit: Some(10),
    }];
    let m = fly
        .create_machine(
            app,
            &CreateMachine {
                name: Some("coordinator-1".into()),
                region: "ams".into(),
                config: cfg.clone(),
                skip_launch: false,
                min_secrets_version: None,
            },
        )
        .await
        .expect("create a machine with a volume");
    assert_eq!(m.config.as_ref(), Some(&cfg));

    let grown = fly.extend_volume(app, &vol.id, 2).await.expect("extend");
    assert_eq!(grown.volume.size_gb, 2);
    let e = fly
        .extend_volume(app, &vol.id, 1)
        .await
        .expect_err("shrinking is refused");
    assert!(matches!(e, FlyError::InvalidRequest { .. }), "{e:?}");

    fly.delete_machine(app, &m.id, true, None)
        .await
        .expect("delete the machine");
    fly.wait_machine(
        app,
        &m.id,
        WaitState::Destroyed,
        None,
        Duration::from_secs(10),
    )
    .await
    .expect("machine destroyed");
    fly.delete_volume(app, &vol.id)
        .await
        .expect("delete the freed volume");
}
