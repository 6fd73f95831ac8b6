//! `HttpFly`'s volume calls end to end against the simulator, and a machine
//! config carrying every optional part (init, files, processes, stop
//! config, DNS, statics, a mount, GPUs, https and service-level checks)
//! that reads back equal to what was sent.

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla::fly::{
    CheckConfig, CreateMachine, CreateVolume, DnsConfig, DnsOption, EnvFrom, FileConfig,
    FileSource, FlyApi, FlyError, GpuConfig, GpuKind, HttpHeader, InitConfig, MachineConfig,
    MountConfig, ProcessConfig, ProcessSecret, StaticConfig, StopConfig, UpdateMachine,
    UpdateVolume, WaitState,
};
use flotilla::ids::SecretName;
use flotilla::spec::CpuKind;
use secrecy::SecretString;

use super::{client, config, create_app, sim};

fn volume(name: &str, region: &str, size_gb: u32) -> CreateVolume {
    CreateVolume {
        name: name.into(),
        region: region.into(),
        size_gb,
        encrypted: true,
        require_unique_zone: None,
        snapshot_retention: Some(7),
    }
}

/// `base` with every optional part set, mounting `mount`.
fn rich(base: MachineConfig, mount: MountConfig) -> MachineConfig {
    let https = CheckConfig {
        kind: "http".into(),
        port: 8443,
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(2),
        grace_period: Some(Duration::from_secs(30)),
        method: Some("GET".into()),
        path: Some("/health".into()),
        protocol: Some("https".into()),
        tls_skip_verify: Some(true),
        tls_server_name: Some("coordinator.internal".into()),
        headers: vec![HttpHeader {
            name: "X-Probe".into(),
            values: vec!["flotilla".into()],
        }],
    };
    let mut c = base;
    c.guest.cpu_kind = CpuKind::Performance;
    c.guest.cpus = 8;
    c.guest.memory_mb = 32768;
    c.guest.gpu = Some(GpuConfig {
        kind: GpuKind::A100Sxm4_80gb,
        count: 1,
    });
    c.checks.insert("ready".into(), https.clone());
    c.services[0].checks = vec![https];
    c.init = InitConfig {
        exec: vec![],
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["ollama serve".into()],
        tty: false,
    };
    c.files = vec![
        FileConfig {
            guest_path: "/etc/coordinator.toml".into(),
            source: FileSource::Base64("bW9kZWwgPSAibGxhbWEiCg==".into()),
            mode: Some(0o644),
        },
        FileConfig {
            guest_path: "/run/secrets/token".into(),
            source: FileSource::Secret(SecretName::parse("MODEL_TOKEN").expect("name")),
            mode: None,
        },
    ];
    c.processes = vec![ProcessConfig {
        cmd: vec!["worker".into()],
        env: BTreeMap::from([("ROLE".into(), "worker".into())]),
        secrets: vec![ProcessSecret {
            env_var: "TOKEN".into(),
            name: Some("MODEL_TOKEN".into()),
        }],
        env_from: vec![EnvFrom {
            env_var: "REGION".into(),
            field_ref: "region".into(),
        }],
        ..ProcessConfig::default()
    }];
    c.stop = StopConfig {
        signal: Some("SIGINT".into()),
        timeout: Some(Duration::from_secs(60)),
    };
    c.dns = DnsConfig {
        nameservers: vec!["fdaa::3".into()],
        options: vec![DnsOption {
            name: "ndots".into(),
            value: "1".into(),
        }],
        ..DnsConfig::default()
    };
    c.statics = vec![StaticConfig {
        guest_path: "/app/public".into(),
        url_prefix: "/static/".into(),
        tigris_bucket: None,
        index_document: Some("index.html".into()),
    }];
    c.mounts = vec![mount];
    c
}

#[tokio::test]
async fn volumes_end_to_end() {
    let sim = sim().await;
    let fly = client(&sim);
    let app = create_app(&fly, &sim, "acme-volumes").await;

    let created = fly
        .create_volume(&app, &volume("models", "ams", 10))
        .await
        .expect("create volume");
    assert_eq!(created.size_gb, 10);
    assert_eq!(created.snapshot_retention, Some(7));
    assert!(created.encrypted && created.attached_machine_id.is_none());
    let got = fly.get_volume(&app, &created.id).await.expect("get");
    assert_eq!(got, created);
    let updated = fly
        .update_volume(
            &app,
            &created.id,
            &UpdateVolume {
                snapshot_retention: Some(14),
                auto_backup_enabled: Some(false),
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.snapshot_retention, Some(14));
    assert_eq!(updated.auto_backup_enabled, Some(false));

    // A machine with every optional part mounts the volume and reads back
    // as sent.
    fly.update_secrets(
        &app,
        &BTreeMap::from([(
            SecretName::parse("MODEL_TOKEN").expect("name"),
            Some(SecretString::from("dG9rZW4=")),
        )]),
    )
    .await
    .expect("secret");
    let mount = MountConfig {
        volume: Some(created.id.clone()),
        name: Some("models".into()),
        path: "/models".into(),
        extend_threshold_percent: Some(80),
        add_size_gb: Some(5),
        size_gb_limit: Some(100),
    };
    let cfg = rich(config("registry.fly.io/coordinator:v1", "ck-vol"), mount);
    let machine = fly
        .create_machine(
            &app,
            &CreateMachine {
                name: Some("coordinator-1".into()),
                region: "ams".into(),
                config: cfg.clone(),
                skip_launch: false,
                min_secrets_version: None,
            },
        )
        .await
        .expect("create machine with a volume");
    assert_eq!(machine.config.as_ref(), Some(&cfg), "reads back as sent");
    let shown = fly.get_machine(&app, &machine.id).await.expect("get");
    assert_eq!(shown.config.as_ref(), Some(&cfg));
    let attached = fly.get_volume(&app, &created.id).await.expect("get");
    assert_eq!(attached.attached_machine_id.as_ref(), Some(&machine.id));

    // Grow; shrinking is refused.
    let grown = fly
        .extend_volume(&app, &created.id, 20)
        .await
        .expect("extend");
    assert_eq!(grown.volume.size_gb, 20);
    let e = fly
        .extend_volume(&app, &created.id, 15)
        .await
        .expect_err("shrink");
    assert!(matches!(e, FlyError::InvalidRequest { .. }), "{e:?}");

    // The machine holds the volume: deleting it is refused until the
    // machine is destroyed.
    let e = fly
        .delete_volume(&app, &created.id)
        .await
        .expect_err("attached");
    assert!(matches!(e, FlyError::PreconditionFailed { .. }), "{e:?}");

    // An update keeps the mount (same volume) and the rest.
    let mut cfg2 = cfg.clone();
    cfg2.image = "registry.fly.io/coordinator:v2".into();
    let updated = fly
        .update_machine(
            &app,
            &machine.id,
            &UpdateMachine {
                region: None,
                config: cfg2.clone(),
                current_version: Some(machine.version.clone()),
                min_secrets_version: None,
                skip_launch: false,
            },
            None,
        )
        .await
        .expect("update");
    assert_eq!(updated.config.as_ref(), Some(&cfg2));

    fly.delete_machine(&app, &machine.id, true, None)
        .await
        .expect("delete machine");
    fly.wait_machine(
        &app,
        &machine.id,
        WaitState::Destroyed,
        None,
        Duration::from_secs(10),
    )
    .await
    .expect("destroyed");
    let mut freed = false;
    for _ in 0..50 {
        let v = fly.get_volume(&app, &created.id).await.expect("get");
        if v.attached_machine_id.is_none() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "a destroyed machine lets go of its volume");
    fly.delete_volume(&app, &created.id)
        .await
        .expect("delete volume");
    let listed = fly.list_volumes(&app).await.expect("list");
    assert!(
        listed
            .iter()
            .all(|v| v.id != created.id || v.state.is_gone()),
        "{listed:?}"
    );
}

#[tokio::test]
async fn a_group_of_three_gets_three_volumes_on_three_zones() {
    let sim = sim().await;
    let fly = client(&sim);
    let app = create_app(&fly, &sim, "acme-group").await;
    let mut zones = Vec::new();
    for i in 0..3 {
        let v = fly
            .create_volume(&app, &volume("data", "ord", 1))
            .await
            .expect("create");
        zones.push(v.zone.clone().expect("zone"));
        let mut cfg = config("registry.fly.io/acme:v1", &format!("ck-{i}"));
        cfg.mounts = vec![MountConfig {
            volume: Some(v.id.clone()),
            name: Some("data".into()),
            path: "/data".into(),
            extend_threshold_percent: None,
            add_size_gb: None,
            size_gb_limit: None,
        }];
        let m = fly
            .create_machine(
                &app,
                &CreateMachine {
                    name: None,
                    region: "ord".into(),
                    config: cfg.clone(),
                    skip_launch: true,
                    min_secrets_version: None,
                },
            )
            .await
            .expect("create machine");
        assert_eq!(m.config.as_ref(), Some(&cfg));
    }
    zones.sort();
    zones.dedup();
    assert_eq!(
        zones.len(),
        3,
        "require_unique_zone spreads same-named volumes"
    );
    let listed = fly.list_volumes(&app).await.expect("list");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|v| v.attached_machine_id.is_some()));
}
