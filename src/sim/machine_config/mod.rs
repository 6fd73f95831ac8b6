//! Machine configs as Fly accepts, validates and echoes them.
//!
//! The struct tables follow `fly.MachineConfig` and its parts in the OpenAPI
//! document, with Go's pointer and `omitempty` choices taken from fly-go (the
//! same types the API marshals). [`normalize`] then applies the server's
//! defaults and checks:
//! * `guest` missing → `shared`, 1 CPU, 256 MB (or the `size` preset); missing
//!   parts of a `guest` are filled the same way;
//! * `restart` missing → `{}` (the behaviour is on-failure with 10 retries).
//!   An empty policy is omitted, as current fly-go's `policy,omitempty`
//!   marshals it: the document's enum has no `""`, so the `{"policy": ""}`
//!   of a 2022 docs example would be a response the document forbids;
//! * `dns` missing → `{}`; `init` always present (`{}` when empty);
//! * memory must be a multiple of 256 MB (shared) or 1024 MB (performance) and
//!   within 256–2048 MB (shared) or 2048–8192 MB (performance) per CPU;
//! * GPUs ([`GPU_KINDS`]): a known `gpu_kind`, 1, 2, 4 or 8 `gpus` (1 when
//!   left out), performance CPUs; `gpus` without a kind is refused; which
//!   regions offer a kind is checked at launch ([`check_gpu_region`]);
//! * checks: `protocol` is `http` or `https`, headers have names;
//! * `image` is required; enums (`restart.policy`, protocols, handlers, check
//!   types, signals) are checked;
//! * `init`, `files`, `processes`, `statics`, `stop_config` and `mounts` as
//!   [`process`] describes.

use serde_json::{Map, Value};

use super::gojson::{self, Decoded, Field, Kind, StructDef, always, f, p};

pub mod process;

static STR: Kind = Kind::Str;
static RAW: Kind = Kind::Raw;

pub static MACHINE_GUEST: StructDef = StructDef {
    go_name: "MachineGuest",
    fields: &[
        f("cpu_kind", Kind::Str),
        f("cpus", Kind::Int),
        f("memory_mb", Kind::Int),
        f("max_memory_mb", Kind::Int),
        f("gpus", Kind::Int),
        f("gpu_kind", Kind::Str),
        f("host_dedication_id", Kind::Str),
        f("persist_rootfs", Kind::Str),
        f("kernel_args", Kind::List(&STR)),
    ],
};

pub static MACHINE_INIT: StructDef = StructDef {
    go_name: "MachineInit",
    fields: &[
        f("exec", Kind::List(&STR)),
        f("entrypoint", Kind::List(&STR)),
        f("cmd", Kind::List(&STR)),
        f("tty", Kind::Bool),
        p("swap_size_mb", Kind::Int),
        f("kernel_args", Kind::List(&STR)),
    ],
};

pub static MACHINE_RESTART: StructDef = StructDef {
    go_name: "MachineRestart",
    fields: &[
        // `policy,omitempty` in current fly-go; `""` is not in the enum.
        f("policy", Kind::Str),
        f("max_retries", Kind::Int),
        f("gpu_bid_price", Kind::Float),
    ],
};

static HTTP_HEADER: StructDef = StructDef {
    go_name: "MachineHTTPHeader",
    fields: &[f("name", Kind::Str), f("values", Kind::List(&STR))],
};
static HTTP_HEADER_KIND: Kind = Kind::Struct(&HTTP_HEADER);

/// Fields shared by service checks and top-level checks; the latter add `kind`.
macro_rules! check_fields {
    ($($extra:expr),*) => {
        [
            p("port", Kind::Int),
            p("type", Kind::Str),
            $($extra,)*
            p("interval", Kind::Duration),
            p("timeout", Kind::Duration),
            p("grace_period", Kind::Duration),
            p("method", Kind::Str),
            p("path", Kind::Str),
            p("protocol", Kind::Str),
            p("tls_skip_verify", Kind::Bool),
            p("tls_server_name", Kind::Str),
            f("headers", Kind::List(&HTTP_HEADER_KIND)),
        ]
    };
}

static SERVICE_CHECK_FIELDS: [Field; 11] = check_fields!();
static MACHINE_CHECK_FIELDS: [Field; 12] = check_fields!(p("kind", Kind::Str));

pub static MACHINE_SERVICE_CHECK: StructDef = StructDef {
    go_name: "MachineServiceCheck",
    fields: &SERVICE_CHECK_FIELDS,
};
pub static MACHINE_CHECK: StructDef = StructDef {
    go_name: "MachineCheck",
    fields: &MACHINE_CHECK_FIELDS,
};
static SERVICE_CHECK_KIND: Kind = Kind::Struct(&MACHINE_SERVICE_CHECK);
static MACHINE_CHECK_KIND: Kind = Kind::Struct(&MACHINE_CHECK);

static CONCURRENCY: StructDef = StructDef {
    go_name: "MachineServiceConcurrency",
    fields: &[
        f("type", Kind::Str),
        f("hard_limit", Kind::Int),
        f("soft_limit", Kind::Int),
    ],
};

static MACHINE_PORT: StructDef = StructDef {
    go_name: "MachinePort",
    fields: &[
        p("port", Kind::Int),
        p("start_port", Kind::Int),
        p("end_port", Kind::Int),
        f("handlers", Kind::List(&STR)),
        f("force_https", Kind::Bool),
        p("tls_options", Kind::Raw),
        p("http_options", Kind::Raw),
        p("proxy_proto_options", Kind::Raw),
    ],
};
static PORT_KIND: Kind = Kind::Struct(&MACHINE_PORT);

pub static MACHINE_SERVICE: StructDef = StructDef {
    go_name: "MachineService",
    fields: &[
        f("protocol", Kind::Str),
        f("internal_port", Kind::Int),
        p("autostop", Kind::Autostop),
        p("autostart", Kind::Bool),
        p("min_machines_running", Kind::Int),
        f("ports", Kind::List(&PORT_KIND)),
        f("checks", Kind::List(&SERVICE_CHECK_KIND)),
        p("concurrency", Kind::Struct(&CONCURRENCY)),
        // The document types it as a plain string: omitted when unset.
        p("force_instance_key", Kind::Str),
        p("force_instance_description", Kind::Str),
    ],
};
static SERVICE_KIND: Kind = Kind::Struct(&MACHINE_SERVICE);

static STOP_CONFIG: StructDef = StructDef {
    go_name: "StopConfig",
    fields: &[p("timeout", Kind::Duration), p("signal", Kind::Str)],
};

static METRICS: StructDef = StructDef {
    go_name: "MachineMetrics",
    fields: &[
        f("port", Kind::Int),
        f("path", Kind::Str),
        f("https", Kind::Bool),
    ],
};

static MOUNT: StructDef = StructDef {
    go_name: "MachineMount",
    fields: &[
        f("encrypted", Kind::Bool),
        f("path", Kind::Str),
        f("size_gb", Kind::Int),
        f("volume", Kind::Str),
        f("name", Kind::Str),
        f("extend_threshold_percent", Kind::Int),
        f("add_size_gb", Kind::Int),
        f("size_gb_limit", Kind::Int),
    ],
};
static MOUNT_KIND: Kind = Kind::Struct(&MOUNT);

static DNS_OPTION: StructDef = StructDef {
    go_name: "dnsOption",
    fields: &[f("name", Kind::Str), f("value", Kind::Str)],
};
static DNS_OPTION_KIND: Kind = Kind::Struct(&DNS_OPTION);

static DNS_FORWARD_RULE: StructDef = StructDef {
    go_name: "dnsForwardRule",
    fields: &[f("basename", Kind::Str), f("addr", Kind::Str)],
};
static DNS_FORWARD_RULE_KIND: Kind = Kind::Struct(&DNS_FORWARD_RULE);

static DNS_CONFIG: StructDef = StructDef {
    go_name: "DNSConfig",
    fields: &[
        f("skip_registration", Kind::Bool),
        f("nameservers", Kind::List(&STR)),
        f("searches", Kind::List(&STR)),
        f("options", Kind::List(&DNS_OPTION_KIND)),
        f("dns_forward_rules", Kind::List(&DNS_FORWARD_RULE_KIND)),
        f("hostname", Kind::Str),
        f("hostname_fqdn", Kind::Str),
    ],
};

static FILE: StructDef = StructDef {
    go_name: "File",
    fields: &[
        f("guest_path", Kind::Str),
        p("raw_value", Kind::Str),
        p("secret_name", Kind::Str),
        p("image_config", Kind::Str),
        f("mode", Kind::Uint),
    ],
};
static FILE_KIND: Kind = Kind::Struct(&FILE);

/// `fly.Static`: every field without `omitempty`.
static STATIC: StructDef = StructDef {
    go_name: "Static",
    fields: &[
        always("guest_path", Kind::Str, false),
        always("url_prefix", Kind::Str, false),
        always("tigris_bucket", Kind::Str, false),
        always("index_document", Kind::Str, false),
    ],
};
static STATIC_KIND: Kind = Kind::Struct(&STATIC);

/// `fly.MachineSecret`: both fields without `omitempty`.
static MACHINE_SECRET: StructDef = StructDef {
    go_name: "MachineSecret",
    fields: &[
        always("env_var", Kind::Str, false),
        always("name", Kind::Str, false),
    ],
};
static MACHINE_SECRET_KIND: Kind = Kind::Struct(&MACHINE_SECRET);

/// `fly.EnvFrom`: both fields without `omitempty`.
static ENV_FROM: StructDef = StructDef {
    go_name: "EnvFrom",
    fields: &[
        always("env_var", Kind::Str, false),
        always("field_ref", Kind::Str, false),
    ],
};
static ENV_FROM_KIND: Kind = Kind::Struct(&ENV_FROM);

static MACHINE_PROCESS: StructDef = StructDef {
    go_name: "MachineProcess",
    fields: &[
        f("exec", Kind::List(&STR)),
        f("entrypoint", Kind::List(&STR)),
        f("cmd", Kind::List(&STR)),
        f("user", Kind::Str),
        f("env", Kind::Map(&STR)),
        f("secrets", Kind::List(&MACHINE_SECRET_KIND)),
        f("ignore_app_secrets", Kind::Bool),
        f("env_from", Kind::List(&ENV_FROM_KIND)),
    ],
};
static PROCESS_KIND: Kind = Kind::Struct(&MACHINE_PROCESS);

static ROOTFS: StructDef = StructDef {
    go_name: "MachineRootfs",
    fields: &[f("persist", Kind::Str), f("size_gb", Kind::Int)],
};
static CACHE_DRIVE: StructDef = StructDef {
    go_name: "MachineCacheDrive",
    fields: &[f("size_mb", Kind::Int)],
};
static SPOT: StructDef = StructDef {
    go_name: "MachineSpot",
    fields: &[f("max_price_fraction", Kind::Float)],
};

/// `fly.MachineConfig`, in the order Fly's responses list the fields
/// (`env, init, image, metadata, auto_destroy, restart, services, guest,
/// checks, dns`, then the rest).
pub static MACHINE_CONFIG: StructDef = StructDef {
    go_name: "MachineConfig",
    fields: &[
        f("env", Kind::Map(&STR)),
        always("init", Kind::Struct(&MACHINE_INIT), false),
        f("image", Kind::Str),
        f("metadata", Kind::Map(&STR)),
        f("auto_destroy", Kind::Bool),
        p("restart", Kind::Struct(&MACHINE_RESTART)),
        f("services", Kind::List(&SERVICE_KIND)),
        p("guest", Kind::Struct(&MACHINE_GUEST)),
        f("checks", Kind::Map(&MACHINE_CHECK_KIND)),
        p("dns", Kind::Struct(&DNS_CONFIG)),
        f("mounts", Kind::List(&MOUNT_KIND)),
        p("metrics", Kind::Struct(&METRICS)),
        f("statics", Kind::List(&STATIC_KIND)),
        f("files", Kind::List(&FILE_KIND)),
        f("schedule", Kind::Str),
        f("processes", Kind::List(&PROCESS_KIND)),
        f("standbys", Kind::List(&STR)),
        p("stop_config", Kind::Struct(&STOP_CONFIG)),
        f("containers", Kind::List(&RAW)),
        p("rootfs", Kind::Struct(&ROOTFS)),
        p("cache_drive", Kind::Struct(&CACHE_DRIVE)),
        p("spot", Kind::Struct(&SPOT)),
        f("size", Kind::Str),
        p("disable_machine_autostart", Kind::Bool),
    ],
};

/// Shared: 256 MB per CPU minimum, 2 GB per CPU maximum. Performance: 2 GB and 8 GB.
const SHARED_MIN_MB: i64 = 256;
const SHARED_MAX_MB: i64 = 2048;
const PERF_MIN_MB: i64 = 2048;
const PERF_MAX_MB: i64 = 8192;

fn preset(size: &str) -> Option<(&'static str, i64)> {
    let (kind, cpus) = match size {
        "shared-cpu-1x" => ("shared", 1),
        "shared-cpu-2x" => ("shared", 2),
        "shared-cpu-4x" => ("shared", 4),
        "shared-cpu-6x" => ("shared", 6),
        "shared-cpu-8x" => ("shared", 8),
        "performance-1x" => ("performance", 1),
        "performance-2x" => ("performance", 2),
        "performance-4x" => ("performance", 4),
        "performance-6x" => ("performance", 6),
        "performance-8x" => ("performance", 8),
        "performance-10x" => ("performance", 10),
        "performance-12x" => ("performance", 12),
        "performance-14x" => ("performance", 14),
        "performance-16x" => ("performance", 16),
        _ => return None,
    };
    Some((kind, cpus))
}

const HANDLERS: &[&str] = &["http", "tls", "proxy_proto", "pg_tls", "edge"];
const SIGNALS: &[&str] = &[
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM",
];

/// Fly's GPU kinds and the regions that offer them, from Fly's GPU
/// quickstart (`docs/gpus/gpu-quickstart`: "a10: ord, l40s: ord, a100-40gb:
/// ord, a100-80gb: iad, sjc, syd, ams") and fly-go's presets
/// (`a100-40gb` is `gpu_kind` `a100-pcie-40gb`, `a100-80gb` is
/// `a100-sxm4-80gb`; every GPU preset runs performance CPUs). Fly's FKS
/// GPU page says "GPUs are deprecated and will be unavailable after August
/// 1"; the simulator keeps the last published table.
pub const GPU_KINDS: &[(&str, &[&str])] = &[
    ("a10", &["ord"]),
    ("l40s", &["ord"]),
    ("a100-pcie-40gb", &["ord"]),
    ("a100-sxm4-80gb", &["iad", "sjc", "syd", "ams"]),
];

/// GPU counts a machine may ask for.
const GPU_COUNTS: &[i64] = &[1, 2, 4, 8];

/// Whether `region` offers the GPU kind a normalized `config` asks for; the
/// error is the message for a 400.
pub fn check_gpu_region(config: &Value, region: &str) -> Result<(), String> {
    let Some(kind) = config
        .get("guest")
        .and_then(|g| g.get("gpu_kind"))
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
    else {
        return Ok(());
    };
    let offered = GPU_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&[][..], |(_, regions)| *regions);
    if offered.contains(&region) {
        Ok(())
    } else {
        Err(format!(
            "invalid_argument: config.guest.gpu_kind: {kind} GPUs are not offered in region {region} (offered in: {})",
            offered.join(", ")
        ))
    }
}

/// Applies Fly's defaults and checks to a decoded `config` and renders it the
/// way the API returns it. The error is the message for a 400.
pub fn normalize(mut cfg: Decoded) -> Result<Value, String> {
    if gojson::get_str(&cfg, "image").trim().is_empty() {
        return Err("invalid_argument: config.image: an image is required".into());
    }
    normalize_guest(&mut cfg)?;
    normalize_restart(&mut cfg)?;
    if !cfg.contains_key("dns") {
        cfg.insert("dns".into(), Value::Object(Map::new()));
    }
    check_services(&cfg)?;
    check_checks(&cfg)?;
    process::check_init(&cfg)?;
    process::check_files(&cfg)?;
    process::check_processes(&cfg)?;
    process::check_statics(&cfg)?;
    process::check_stop_config(&cfg)?;
    process::check_mounts(&cfg)?;
    if let Some(stop) = cfg.get("stop_config").and_then(Value::as_object)
        && let Some(sig) = stop.get("signal").and_then(Value::as_str)
        && !SIGNALS.contains(&sig)
    {
        return Err(format!(
            "invalid_argument: config.stop_config.signal: unknown signal {sig:?}, expected one of {}",
            SIGNALS.join(", ")
        ));
    }
    if let Some(meta) = cfg.get("metadata").and_then(Value::as_object)
        && meta.keys().any(String::is_empty)
    {
        return Err("invalid_argument: config.metadata: keys must not be empty".into());
    }
    Ok(gojson::encode(&MACHINE_CONFIG, &cfg))
}

fn normalize_guest(cfg: &mut Decoded) -> Result<(), String> {
    let mut guest = match cfg.get("guest") {
        Some(Value::Object(g)) => g.clone(),
        _ => {
            let size = gojson::get_str(cfg, "size");
            let (kind, cpus) = if size.is_empty() {
                ("shared", 1)
            } else {
                preset(size).ok_or_else(|| {
                    format!("invalid_argument: config.size: unknown machine size {size:?}")
                })?
            };
            let mut g = Map::new();
            g.insert("cpu_kind".into(), kind.into());
            g.insert("cpus".into(), cpus.into());
            g
        }
    };
    let kind = match gojson::get_str(&guest, "cpu_kind") {
        "" => "shared".to_owned(),
        k => k.to_owned(),
    };
    let (allowed, min_per, max_per, step): (&[i64], i64, i64, i64) = match kind.as_str() {
        "shared" => (&[1, 2, 4, 6, 8], SHARED_MIN_MB, SHARED_MAX_MB, 256),
        "performance" => (
            &[1, 2, 4, 6, 8, 10, 12, 14, 16],
            PERF_MIN_MB,
            PERF_MAX_MB,
            1024,
        ),
        other => {
            return Err(format!(
                "invalid_argument: config.guest.cpu_kind: unknown cpu kind {other:?}, expected \"shared\" or \"performance\""
            ));
        }
    };
    let cpus = match gojson::get_i64(&guest, "cpus").unwrap_or(0) {
        0 => 1,
        n => n,
    };
    if !allowed.contains(&cpus) {
        return Err(format!(
            "invalid_argument: config.guest.cpus: {cpus} is not a valid number of {kind} CPUs (allowed: {allowed:?})"
        ));
    }
    let memory = match gojson::get_i64(&guest, "memory_mb").unwrap_or(0) {
        0 => min_per * cpus,
        n => n,
    };
    if memory % step != 0 {
        return Err(format!(
            "invalid_argument: config.guest.memory_mb: {memory} MB is not a multiple of {step} MB, which {kind} CPUs require"
        ));
    }
    if memory < min_per * cpus || memory > max_per * cpus {
        return Err(format!(
            "invalid_argument: config.guest.memory_mb: {memory} MB is out of range for {cpus} {kind} CPU(s): must be between {} and {} MB",
            min_per * cpus,
            max_per * cpus
        ));
    }
    normalize_gpu(&mut guest, &kind)?;
    guest.insert("cpu_kind".into(), kind.into());
    guest.insert("cpus".into(), cpus.into());
    guest.insert("memory_mb".into(), memory.into());
    cfg.insert("guest".into(), Value::Object(guest));
    Ok(())
}

/// `gpu_kind` and `gpus`: a known kind, a count Fly offers (1 when left
/// out), performance CPUs; a count without a kind is refused.
fn normalize_gpu(guest: &mut Map<String, Value>, cpu_kind: &str) -> Result<(), String> {
    let kind = gojson::get_str(guest, "gpu_kind").to_owned();
    let gpus = gojson::get_i64(guest, "gpus").unwrap_or(0);
    if kind.is_empty() {
        if gpus != 0 {
            return Err("invalid_argument: config.guest.gpus: a GPU count needs a gpu_kind".into());
        }
        return Ok(());
    }
    if !GPU_KINDS.iter().any(|(k, _)| *k == kind) {
        return Err(format!(
            "invalid_argument: config.guest.gpu_kind: unknown GPU kind {kind:?}, expected one of {}",
            GPU_KINDS
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let gpus = if gpus == 0 { 1 } else { gpus };
    if !GPU_COUNTS.contains(&gpus) {
        return Err(format!(
            "invalid_argument: config.guest.gpus: {gpus} is not a GPU count Fly offers (1, 2, 4 or 8)"
        ));
    }
    if cpu_kind != "performance" {
        return Err(format!(
            "invalid_argument: config.guest.cpu_kind: GPU machines run performance CPUs, not {cpu_kind}"
        ));
    }
    guest.insert("gpus".into(), gpus.into());
    Ok(())
}

fn normalize_restart(cfg: &mut Decoded) -> Result<(), String> {
    let restart = cfg
        .entry("restart")
        .or_insert_with(|| Value::Object(Map::new()));
    let policy = restart.get("policy").and_then(Value::as_str).unwrap_or("");
    if !matches!(policy, "" | "no" | "always" | "on-failure" | "spot-price") {
        return Err(format!(
            "invalid_argument: config.restart.policy: unknown policy {policy:?}, expected one of no, always, on-failure, spot-price"
        ));
    }
    if gojson::get_i64(restart.as_object().unwrap_or(&Map::new()), "max_retries").unwrap_or(0) < 0 {
        return Err("invalid_argument: config.restart.max_retries: must not be negative".into());
    }
    Ok(())
}

fn check_port(n: i64, field: &str) -> Result<(), String> {
    if (1..=65535).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "invalid_argument: {field}: {n} is not a valid port (1-65535)"
        ))
    }
}

fn check_services(cfg: &Decoded) -> Result<(), String> {
    let Some(services) = cfg.get("services").and_then(Value::as_array) else {
        return Ok(());
    };
    for (i, svc) in services.iter().enumerate() {
        let Some(svc) = svc.as_object() else { continue };
        let at = format!("config.services[{i}]");
        let protocol = gojson::get_str(svc, "protocol");
        if !matches!(protocol, "tcp" | "udp") {
            return Err(format!(
                "invalid_argument: {at}.protocol: must be \"tcp\" or \"udp\", got {protocol:?}"
            ));
        }
        check_port(
            gojson::get_i64(svc, "internal_port").unwrap_or(0),
            &format!("{at}.internal_port"),
        )?;
        if let Some(ports) = svc.get("ports").and_then(Value::as_array) {
            for (j, port) in ports.iter().enumerate() {
                let Some(port) = port.as_object() else {
                    continue;
                };
                let pat = format!("{at}.ports[{j}]");
                match (
                    gojson::get_i64(port, "port"),
                    gojson::get_i64(port, "start_port"),
                    gojson::get_i64(port, "end_port"),
                ) {
                    (Some(n), _, _) => check_port(n, &format!("{pat}.port"))?,
                    (None, Some(s), Some(e)) => {
                        check_port(s, &format!("{pat}.start_port"))?;
                        check_port(e, &format!("{pat}.end_port"))?;
                        if s > e {
                            return Err(format!(
                                "invalid_argument: {pat}: start_port {s} is after end_port {e}"
                            ));
                        }
                    }
                    _ => {
                        return Err(format!(
                            "invalid_argument: {pat}: either port or start_port and end_port is required"
                        ));
                    }
                }
                if let Some(handlers) = port.get("handlers").and_then(Value::as_array) {
                    for h in handlers.iter().filter_map(Value::as_str) {
                        if !HANDLERS.contains(&h) {
                            return Err(format!(
                                "invalid_argument: {pat}.handlers: unknown handler {h:?}, expected one of {}",
                                HANDLERS.join(", ")
                            ));
                        }
                    }
                }
            }
        }
        if let Some(conc) = svc.get("concurrency").and_then(Value::as_object) {
            let t = gojson::get_str(conc, "type");
            if !matches!(t, "" | "connections" | "requests") {
                return Err(format!(
                    "invalid_argument: {at}.concurrency.type: must be \"connections\" or \"requests\", got {t:?}"
                ));
            }
        }
        if let Some(checks) = svc.get("checks").and_then(Value::as_array) {
            for (j, c) in checks.iter().enumerate() {
                if let Some(c) = c.as_object() {
                    check_one_check(c, &format!("{at}.checks[{j}]"))?;
                }
            }
        }
    }
    Ok(())
}

fn check_checks(cfg: &Decoded) -> Result<(), String> {
    let Some(checks) = cfg.get("checks").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, c) in checks {
        let Some(c) = c.as_object() else { continue };
        let at = format!("config.checks.{name}");
        check_one_check(c, &at)?;
        if let Some(kind) = c.get("kind").and_then(Value::as_str)
            && !matches!(kind, "informational" | "readiness")
        {
            return Err(format!(
                "invalid_argument: {at}.kind: must be \"informational\" or \"readiness\", got {kind:?}"
            ));
        }
    }
    Ok(())
}

fn check_one_check(c: &Map<String, Value>, at: &str) -> Result<(), String> {
    if let Some(t) = c.get("type").and_then(Value::as_str)
        && !matches!(t, "tcp" | "http")
    {
        return Err(format!(
            "invalid_argument: {at}.type: must be \"tcp\" or \"http\", got {t:?}"
        ));
    }
    if let Some(port) = gojson::get_i64(c, "port") {
        check_port(port, &format!("{at}.port"))?;
    }
    for d in ["interval", "timeout", "grace_period"] {
        if let Some(ns) = gojson::get_i64(c, d)
            && ns < 0
        {
            return Err(format!("invalid_argument: {at}.{d}: must not be negative"));
        }
    }
    if let Some(proto) = c.get("protocol").and_then(Value::as_str)
        && !matches!(proto, "http" | "https")
    {
        return Err(format!(
            "invalid_argument: {at}.protocol: must be \"http\" or \"https\", got {proto:?}"
        ));
    }
    if let Some(headers) = c.get("headers").and_then(Value::as_array) {
        for (i, h) in headers.iter().enumerate() {
            let name = h.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(format!(
                    "invalid_argument: {at}.headers[{i}].name: {name:?} is not an HTTP header name"
                ));
            }
        }
    }
    Ok(())
}

/// The partial config Fly reports as `incomplete_config` when the host is
/// unreachable: rebuilt from what the API knows without the host, so services,
/// checks and env are missing.
pub fn incomplete(config: &Value) -> Value {
    let mut out = Map::new();
    for key in ["init", "image", "metadata", "guest"] {
        if let Some(v) = config.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
