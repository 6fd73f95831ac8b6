//! `HttpFly`'s volume calls and the optional machine-config parts against
//! the scripted server of `client_http.rs`: request shapes, answers read
//! from Fly's documented examples, retries by operation, error classes.

use flotilla::fly::{
    CreateMachine, CreateVolume, FileConfig, FileSource, FlyApi, FlyError, GpuConfig, GpuKind,
    HttpHeader, InitConfig, MountConfig, StopConfig, UpdateVolume, VolumeState,
};
use flotilla::ids::{MachineId, SecretName, VolumeId};
use serde_json::json;

use super::{Server, app, config, empty, fly_error, machine_json, reply};

fn vid() -> VolumeId {
    VolumeId::parse("vol_9vw681egy1jj5xm4").expect("id")
}

/// Fly's docs example of a volume (nulls and members the document lacks
/// included).
fn volume_json(size: u32, attached: Option<&str>) -> serde_json::Value {
    json!({
        "id": "vol_9vw681egy1jj5xm4", "name": "disk", "state": "created", "size_gb": size,
        "region": "yul", "zone": "09cd", "encrypted": true, "attached_machine_id": attached,
        "attached_alloc_id": null, "created_at": "2023-09-01T19:47:14.774Z", "blocks": 768250,
        "block_size": 4096, "blocks_free": 768244, "blocks_avail": 730163, "fstype": "ext4",
        "snapshot_retention": 5, "host_dedication_key": ""
    })
}

fn create_volume() -> CreateVolume {
    CreateVolume {
        name: "disk".into(),
        region: "yul".into(),
        size_gb: 3,
        encrypted: true,
        require_unique_zone: Some(false),
        snapshot_retention: None,
    }
}

#[tokio::test]
async fn volume_request_shapes() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(reply(
        200,
        json!([volume_json(3, Some("908057ef21e487")), {
            "id": "vol_q4qeekqzxze29dw4", "name": "disk", "state": "pending_destroy",
            "size_gb": 3, "region": "iad", "attached_machine_id": null}]),
    ));
    let listed = fly.list_volumes(&app()).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].attached_machine_id,
        Some(MachineId::parse("908057ef21e487").expect("id"))
    );
    assert_eq!(listed[0].zone.as_deref(), Some("09cd"));
    assert_eq!(listed[1].state, VolumeState::Destroying);
    assert!(listed[1].state.is_gone());

    s.push(reply(200, volume_json(3, None)));
    let got = fly.get_volume(&app(), &vid()).await.expect("get");
    assert_eq!(got.attached_machine_id, None);
    assert_eq!(got.state, VolumeState::Created);

    s.push(reply(200, volume_json(3, None)));
    let created = fly
        .create_volume(&app(), &create_volume())
        .await
        .expect("create");
    assert_eq!(created.id, vid());
    assert!(created.encrypted);

    s.push(reply(200, volume_json(3, None)));
    fly.update_volume(
        &app(),
        &vid(),
        &UpdateVolume {
            snapshot_retention: Some(14),
            auto_backup_enabled: None,
        },
    )
    .await
    .expect("update");

    s.push(reply(
        200,
        json!({"volume": volume_json(10, None), "needs_restart": true}),
    ));
    let grown = fly.extend_volume(&app(), &vid(), 10).await.expect("extend");
    assert_eq!(grown.volume.size_gb, 10);
    assert!(grown.needs_restart);

    s.push(reply(200, volume_json(3, None)));
    fly.delete_volume(&app(), &vid()).await.expect("delete");

    let v = "/v1/apps/acme-web/volumes";
    assert_eq!(
        s.lines(),
        vec![
            format!("GET {v}"),
            format!("GET {v}/vol_9vw681egy1jj5xm4"),
            format!("POST {v}"),
            format!("PUT {v}/vol_9vw681egy1jj5xm4"),
            format!("PUT {v}/vol_9vw681egy1jj5xm4/extend"),
            format!("DELETE {v}/vol_9vw681egy1jj5xm4"),
        ]
    );
    let seen = s.seen();
    assert_eq!(
        seen[2].json(),
        json!({"name": "disk", "region": "yul", "size_gb": 3, "encrypted": true, "require_unique_zone": false})
    );
    assert_eq!(seen[3].json(), json!({"snapshot_retention": 14}));
    assert_eq!(seen[4].json(), json!({"size_gb": 10}));
    assert_eq!(
        seen[2].header("content-type"),
        Some("application/json"),
        "bodies are JSON"
    );
}

#[tokio::test]
async fn volume_calls_retry_only_where_safe() {
    let s = Server::start().await;
    let fly = s.client();
    // Reads and the idempotent update are retried.
    s.push(empty(503)).push(reply(200, json!([])));
    assert!(fly.list_volumes(&app()).await.expect("list").is_empty());
    s.push(empty(502)).push(reply(200, volume_json(3, None)));
    fly.update_volume(&app(), &vid(), &UpdateVolume::default())
        .await
        .expect("update retried");
    // A delete whose first answer was lost: the 404 of the retry is success.
    s.push(empty(502))
        .push(fly_error(404, "volume not found", None));
    fly.delete_volume(&app(), &vid())
        .await
        .expect("an earlier attempt took effect");
    // Create and extend are sent once.
    s.push(empty(502));
    let e = fly
        .create_volume(&app(), &create_volume())
        .await
        .expect_err("create 502");
    assert!(e.outcome_unknown(), "{e:?}");
    s.push(empty(503));
    fly.extend_volume(&app(), &vid(), 20)
        .await
        .expect_err("extend 503");
    let v = "/v1/apps/acme-web/volumes";
    assert_eq!(
        s.lines(),
        vec![
            format!("GET {v}"),
            format!("GET {v}"),
            format!("PUT {v}/vol_9vw681egy1jj5xm4"),
            format!("PUT {v}/vol_9vw681egy1jj5xm4"),
            format!("DELETE {v}/vol_9vw681egy1jj5xm4"),
            format!("DELETE {v}/vol_9vw681egy1jj5xm4"),
            format!("POST {v}"),
            format!("PUT {v}/vol_9vw681egy1jj5xm4/extend"),
        ]
    );
}

#[tokio::test]
async fn volume_refusals_are_classified() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(fly_error(
        422,
        "insufficient resources",
        Some("insufficient_capacity"),
    ));
    let e = fly
        .create_volume(&app(), &create_volume())
        .await
        .expect_err("no room");
    assert_eq!(
        e,
        FlyError::InsufficientCapacity {
            region: Some("yul".into()),
            message: "Volumes_create: insufficient resources".into()
        }
    );
    s.push(fly_error(
        400,
        "invalid_argument: size_gb: a volume can only grow",
        None,
    ));
    let e = fly
        .extend_volume(&app(), &vid(), 1)
        .await
        .expect_err("shrink");
    assert!(
        matches!(e, FlyError::InvalidRequest { status: 400, .. }),
        "{e:?}"
    );
    s.push(fly_error(
        412,
        "failed_precondition: volume is currently bound to machine: 784eee3f40130",
        None,
    ));
    let e = fly
        .delete_volume(&app(), &vid())
        .await
        .expect_err("attached");
    assert!(matches!(e, FlyError::PreconditionFailed { .. }), "{e:?}");
    s.push(reply(
        200,
        json!([{"id": "disk-1", "name": "disk", "region": "iad"}]),
    ));
    let e = fly.list_volumes(&app()).await.expect_err("not a volume id");
    assert!(matches!(e, FlyError::Unexpected { .. }), "{e:?}");
}

/// The optional config parts reach the wire in Fly's shapes, and a config
/// without them sends none of their members.
#[tokio::test]
async fn optional_config_parts_on_the_wire() {
    let s = Server::start().await;
    let fly = s.client();
    let plain = config(Some("ck-1"));
    let mut rich = plain.clone();
    rich.init = InitConfig {
        exec: vec![],
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["ollama serve".into()],
        tty: false,
    };
    rich.files = vec![
        FileConfig {
            guest_path: "/etc/app.toml".into(),
            source: FileSource::Base64("aGk=".into()),
            mode: Some(0o600),
        },
        FileConfig {
            guest_path: "/run/token".into(),
            source: FileSource::Secret(SecretName::parse("MODEL_TOKEN").expect("name")),
            mode: None,
        },
    ];
    rich.stop = StopConfig {
        signal: Some("SIGTERM".into()),
        timeout: Some(std::time::Duration::from_secs(90)),
    };
    rich.mounts = vec![MountConfig {
        volume: Some(vid()),
        name: Some("disk".into()),
        path: "/models".into(),
        extend_threshold_percent: None,
        add_size_gb: None,
        size_gb_limit: None,
    }];
    rich.guest.cpu_kind = flotilla::spec::CpuKind::Performance;
    rich.guest.gpu = Some(GpuConfig {
        kind: GpuKind::L40s,
        count: 1,
    });
    let check = rich.checks.get_mut("alive").expect("a check");
    check.kind = "http".into();
    check.protocol = Some("https".into());
    check.tls_skip_verify = Some(true);
    check.headers = vec![HttpHeader {
        name: "Host".into(),
        values: vec!["app.example".into()],
    }];
    for cfg in [&plain, &rich] {
        s.push(reply(200, machine_json(cfg)));
        fly.create_machine(
            &app(),
            &CreateMachine {
                config: cfg.clone(),
                ..super::create_req(Some("ck-1"))
            },
        )
        .await
        .expect("create");
    }
    let seen = s.seen();
    let plain_sent = seen[0].json();
    for key in [
        "init",
        "files",
        "processes",
        "stop_config",
        "dns",
        "statics",
        "mounts",
    ] {
        assert!(plain_sent["config"].get(key).is_none(), "{key} sent unset");
    }
    assert!(plain_sent["config"]["guest"].get("gpu_kind").is_none());
    assert!(
        plain_sent["config"]["checks"]["alive"]
            .get("protocol")
            .is_none()
    );
    let c = &seen[1].json()["config"];
    assert_eq!(
        c["init"],
        json!({"entrypoint": ["/bin/sh", "-c"], "cmd": ["ollama serve"]})
    );
    assert_eq!(
        c["files"],
        json!([{"guest_path": "/etc/app.toml", "raw_value": "aGk=", "mode": 384},
               {"guest_path": "/run/token", "secret_name": "MODEL_TOKEN"}])
    );
    assert_eq!(
        c["stop_config"],
        json!({"signal": "SIGTERM", "timeout": "1m30s"})
    );
    assert_eq!(
        c["mounts"],
        json!([{"volume": "vol_9vw681egy1jj5xm4", "name": "disk", "path": "/models"}])
    );
    assert_eq!(c["guest"]["gpu_kind"], json!("l40s"));
    assert_eq!(c["guest"]["gpus"], json!(1));
    assert_eq!(c["checks"]["alive"]["protocol"], json!("https"));
    assert_eq!(c["checks"]["alive"]["tls_skip_verify"], json!(true));
    assert_eq!(
        c["checks"]["alive"]["headers"],
        json!([{"name": "Host", "values": ["app.example"]}])
    );
}
