//! The volume and GPU part of the minimal pass: volume creates with every
//! member left out in turn, updates, extend, snapshots, reads and a delete;
//! GPU machines with a full and a minimal guest. Judged with the rest of
//! the pass's traffic.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use super::super::support::openapi::{OpenApi, Rules};
use super::{Raw, expect_2xx, variants};

/// Omissions from the full volume create that Fly refuses: `name` and
/// `region` are required (Fly's volumes docs).
pub const VOLUME_REFUSED: &[&str] = &["/name", "/region"];

/// A volume create that sets every member of `CreateVolumeRequest` the
/// simulator models (restoring from `snapshot_id` and forking from
/// `source_volume_id` are not simulated).
fn full_volume() -> Value {
    json!({
        "name": "full_vol",
        "region": "ams",
        "size_gb": 2,
        "encrypted": true,
        "fstype": "ext4",
        "require_unique_zone": true,
        "unique_zone_app_wide": false,
        "snapshot_retention": 7,
        "auto_backup_enabled": true,
        "compute": {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096},
        "compute_image": "registry.fly.io/minimal:v1"
    })
}

/// Volumes: every create variant (each its own name, so zones never run
/// out), update variants, extend, snapshots, reads, delete.
pub async fn volume_requests(api: &OpenApi, rules: &Rules, raw: &Raw, volumes: &str) {
    let mut refused = BTreeSet::new();
    let mut last = None;
    for (i, v) in variants(api, rules, "CreateVolumeRequest", &full_volume())
        .iter()
        .enumerate()
    {
        let mut body = v.body.clone();
        if body.get("name").is_some() {
            body["name"] = Value::from(format!("vol_{i}"));
        }
        let a = raw.post(volumes, &body).await;
        match a.status {
            200 => last = a.body["id"].as_str().map(str::to_owned),
            400 => {
                refused.insert(v.label.trim_start_matches('-').to_owned());
            }
            other => panic!("volume create {}: {other} {}", v.label, a.body),
        }
    }
    let refused: BTreeSet<&str> = refused
        .iter()
        .map(String::as_str)
        .filter(|l| !l.ends_with("=empty"))
        .collect();
    assert_eq!(
        refused,
        VOLUME_REFUSED.iter().copied().collect(),
        "volume creates refused"
    );
    let minimal = raw
        .post(volumes, &json!({"name": "tiny", "region": "iad"}))
        .await;
    expect_2xx("create a volume with name and region only", &minimal);
    assert_eq!(minimal.body["size_gb"], json!(3), "Fly's default size");
    let id = last.expect("a created volume");
    let path = format!("{volumes}/{id}");
    for body in [
        json!({"snapshot_retention": 10, "auto_backup_enabled": false}),
        json!({"snapshot_retention": 12}),
        json!({"auto_backup_enabled": true}),
        json!({}),
    ] {
        expect_2xx(
            &format!("update volume with {body}"),
            &raw.send(Method::PUT, &path, Some(&body), None).await,
        );
    }
    let grown = raw
        .send(
            Method::PUT,
            &format!("{path}/extend"),
            Some(&json!({"size_gb": 20})),
            None,
        )
        .await;
    expect_2xx("extend", &grown);
    assert_eq!(grown.body["volume"]["size_gb"], json!(20));
    let shrink = raw
        .send(
            Method::PUT,
            &format!("{path}/extend"),
            Some(&json!({"size_gb": 5})),
            None,
        )
        .await;
    assert_eq!(shrink.status, 400, "shrinking is refused: {}", shrink.body);
    expect_2xx("snapshot", &raw.bare(&format!("{path}/snapshots")).await);
    let snaps = raw.get(&format!("{path}/snapshots")).await;
    expect_2xx("list snapshots", &snaps);
    assert_eq!(snaps.body.as_array().map(Vec::len), Some(1));
    expect_2xx("show volume", &raw.get(&path).await);
    expect_2xx("list volumes", &raw.get(volumes).await);
    expect_2xx(
        "list volumes (summary)",
        &raw.get(&format!("{volumes}?summary=true")).await,
    );
    let gone = raw.send(Method::DELETE, &path, None, None).await;
    expect_2xx("delete volume", &gone);
    assert_eq!(gone.body["state"], json!("destroyed"));
    expect_2xx("list with a deleted volume", &raw.get(volumes).await);
}

/// GPU machines: a full guest, and a minimal one (the count defaults to 1).
pub async fn gpu_machines(raw: &Raw, machines: &str) {
    for (region, guest) in [
        (
            "ams",
            json!({"cpu_kind": "performance", "cpus": 8, "memory_mb": 32768,
                   "gpu_kind": "a100-sxm4-80gb", "gpus": 2, "kernel_args": ["quiet"]}),
        ),
        (
            "ord",
            json!({"cpu_kind": "performance", "gpu_kind": "l40s"}),
        ),
    ] {
        let a = raw
            .post(
                machines,
                &json!({"region": region, "config": {"image": "registry.fly.io/gpu:v1", "guest": guest}}),
            )
            .await;
        expect_2xx("create a GPU machine", &a);
        assert!(
            a.body["config"]["guest"]["gpus"]
                .as_i64()
                .is_some_and(|n| n >= 1)
        );
    }
    let wrong = raw
        .post(
            machines,
            &json!({"region": "ams", "config": {"image": "x", "guest": {"cpu_kind": "performance", "gpu_kind": "a10"}}}),
        )
        .await;
    assert_eq!(
        wrong.status, 400,
        "a10 is not offered in ams: {}",
        wrong.body
    );
}
