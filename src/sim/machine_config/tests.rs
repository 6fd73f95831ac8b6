//! Tests of the config tables and checks: Fly's defaults, normalisation,
//! refusals, GPUs and the echo of the optional parts.

use serde_json::json;

use super::*;

fn norm(v: Value) -> Result<Value, String> {
    let d = gojson::decode_root(&MACHINE_CONFIG, &v)?;
    normalize(d)
}

#[test]
fn fills_defaults_like_fly() {
    let out = norm(json!({"image": "nginx", "env": {}, "metadata": {}})).expect("valid");
    assert_eq!(
        out,
        json!({
            "init": {},
            "image": "nginx",
            "restart": {},
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
            "dns": {}
        })
    );
}

#[test]
fn normalizes_services_and_durations() {
    let out = norm(json!({
        "image": "nginx",
        "auto_stop": "stop",
        "services": [{
            "protocol": "tcp", "internal_port": 8080, "autostop": "off", "autostart": true,
            "ports": [{"port": 443, "handlers": ["tls", "http"], "force_https": false}],
            "checks": [{"type": "http", "interval": "60s", "timeout": "90s", "kind": "readiness"}]
        }],
        "checks": {"alive": {"type": "tcp", "port": 8080, "interval": "10s", "timeout": "2s", "kind": "readiness"}},
        "stop_config": {"timeout": "60s", "signal": "SIGTERM"}
    }))
    .expect("valid");
    assert_eq!(out["services"][0]["autostop"], json!(false));
    assert_eq!(out["services"][0]["force_instance_key"], Value::Null);
    assert!(out["services"][0]["ports"][0].get("force_https").is_none());
    assert_eq!(out["services"][0]["checks"][0]["interval"], json!("1m0s"));
    assert_eq!(out["services"][0]["checks"][0]["timeout"], json!("1m30s"));
    assert!(out["services"][0]["checks"][0].get("kind").is_none());
    assert_eq!(out["checks"]["alive"]["interval"], json!("10s"));
    assert_eq!(out["checks"]["alive"]["kind"], json!("readiness"));
    assert_eq!(out["stop_config"]["timeout"], json!("1m0s"));
    assert!(out.get("auto_stop").is_none());
}

#[test]
fn rejects_bad_memory_and_missing_image() {
    let err =
        norm(json!({"image": "x", "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 300}}))
            .unwrap_err();
    assert!(
        err.contains("config.guest.memory_mb") && err.contains("multiple of 256"),
        "{err}"
    );
    let err =
        norm(json!({"image": "x", "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 4096}}))
            .unwrap_err();
    assert!(err.contains("out of range"), "{err}");
    let err = norm(json!({"env": {"A": "b"}})).unwrap_err();
    assert!(err.contains("config.image"), "{err}");
    let ok = norm(json!({"image": "x", "guest": {"cpu_kind": "performance", "cpus": 2}}))
        .expect("valid");
    assert_eq!(ok["guest"]["memory_mb"], json!(4096));
}

#[test]
fn gpus_need_a_known_kind_a_count_and_performance_cpus() {
    let gpu = |guest: Value| norm(json!({"image": "x", "guest": guest}));
    let ok = gpu(json!({"cpu_kind": "performance", "cpus": 8, "memory_mb": 32768, "gpu_kind": "a100-sxm4-80gb"}))
        .expect("valid");
    assert_eq!(ok["guest"]["gpus"], json!(1), "the count defaults to 1");
    assert_eq!(ok["guest"]["gpu_kind"], json!("a100-sxm4-80gb"));
    check_gpu_region(&ok, "ams").expect("ams offers a100-80gb");
    let err = check_gpu_region(&ok, "ord").unwrap_err();
    assert!(
        err.contains("not offered in region ord") && err.contains("iad, sjc, syd, ams"),
        "{err}"
    );
    check_gpu_region(&norm(json!({"image": "x"})).expect("valid"), "ord").expect("no GPU");
    for (guest, needle) in [
        (
            json!({"cpu_kind": "performance", "cpus": 8, "gpu_kind": "h100"}),
            "unknown GPU kind",
        ),
        (
            json!({"cpu_kind": "performance", "cpus": 8, "gpu_kind": "l40s", "gpus": 3}),
            "GPU count",
        ),
        (
            json!({"cpu_kind": "shared", "cpus": 1, "gpu_kind": "a10"}),
            "performance CPUs",
        ),
        (
            json!({"cpu_kind": "performance", "cpus": 8, "gpus": 1}),
            "needs a gpu_kind",
        ),
    ] {
        let err = gpu(guest.clone()).expect_err(&guest.to_string());
        assert!(
            err.contains(needle) && err.contains("config.guest."),
            "{guest}: {err}"
        );
    }
}

#[test]
fn richer_checks_and_process_config_echo_like_fly() {
    let out = norm(json!({
        "image": "x",
        "init": {"cmd": ["serve", "--port", "8080"], "entrypoint": ["/bin/sh", "-c"], "exec": ["/app"], "tty": true},
        "checks": {"web": {"type": "http", "port": 8443, "protocol": "https", "tls_skip_verify": true,
            "headers": [{"name": "Host", "values": ["app.example"], "extra": 1}], "kind": "readiness"}},
        "services": [{"protocol": "tcp", "internal_port": 8080, "ports": [{"port": 443}],
            "checks": [{"type": "http", "protocol": "https", "path": "/", "kind": "readiness"}]}],
        "statics": [{"guest_path": "/app/public", "url_prefix": "/static"}],
        "processes": [{"cmd": ["worker"], "secrets": [{"env_var": "KEY"}], "surprise": true}],
        "files": [{"guest_path": "/etc/app.conf", "raw_value": "aGk="}],
        "stop_config": {"signal": "SIGINT", "timeout": "30s"},
        "dns": {"options": [{"name": "ndots", "value": "1", "x": 2}]}
    }))
    .expect("valid");
    assert_eq!(
        out["init"],
        json!({"exec": ["/app"], "entrypoint": ["/bin/sh", "-c"], "cmd": ["serve", "--port", "8080"], "tty": true})
    );
    assert_eq!(out["checks"]["web"]["protocol"], json!("https"));
    assert_eq!(out["checks"]["web"]["tls_skip_verify"], json!(true));
    assert_eq!(
        out["checks"]["web"]["headers"],
        json!([{"name": "Host", "values": ["app.example"]}])
    );
    assert_eq!(out["services"][0]["checks"][0]["protocol"], json!("https"));
    assert!(
        out["services"][0]["checks"][0].get("kind").is_none(),
        "service checks have no kind"
    );
    assert_eq!(
        out["statics"],
        json!([{"guest_path": "/app/public", "url_prefix": "/static", "tigris_bucket": "", "index_document": ""}]),
        "fly.Static has no omitempty"
    );
    assert_eq!(
        out["processes"],
        json!([{"cmd": ["worker"], "secrets": [{"env_var": "KEY", "name": ""}]}])
    );
    assert_eq!(
        out["stop_config"],
        json!({"timeout": "30s", "signal": "SIGINT"})
    );
    assert_eq!(
        out["dns"],
        json!({"options": [{"name": "ndots", "value": "1"}]})
    );
    for (checks, needle) in [
        (json!({"c": {"type": "http", "protocol": "h2"}}), "protocol"),
        (
            json!({"c": {"type": "http", "headers": [{"values": ["x"]}]}}),
            "headers[0].name",
        ),
        (
            json!({"c": {"type": "http", "headers": [{"name": "Bad Name"}]}}),
            "headers[0].name",
        ),
    ] {
        let err = norm(json!({"image": "x", "checks": checks})).expect_err("refused");
        assert!(
            err.contains(needle) && err.contains("config.checks.c"),
            "{err}"
        );
    }
}
