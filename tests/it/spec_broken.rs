//! Broken specs produce exactly these diagnostics. Every line and column below
//! was checked by hand against the fixture (`cat -n`): value errors point at
//! the value's first character, unknown fields at the key, missing fields and
//! whole-entry rules at the start of the enclosing mapping.

use std::path::PathBuf;

use flotilla::source::load_files;
use flotilla::spec::{ParseOptions, load_str};

const DIR: &str = "tests/fixtures/broken";

/// Diagnostics for one fixture, displayed; also checks that `load_str` on the
/// same text agrees with `load_files`.
fn diagnostics(name: &str) -> (usize, Vec<String>) {
    let path = PathBuf::from(DIR).join(name);
    let (docs, diags) = load_files(std::slice::from_ref(&path), &ParseOptions::default());
    let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
    let text = std::fs::read_to_string(&path).unwrap();
    let from_str = load_str(&path.display().to_string(), &text, &ParseOptions::default())
        .expect_err("a broken fixture must not load");
    assert_eq!(
        from_str, diags,
        "load_str and load_files disagree on {name}"
    );
    (docs.len(), shown)
}

fn check(name: &str, want_valid_docs: usize, want: &[&str]) {
    let (valid, got) = diagnostics(name);
    let want: Vec<String> = want.iter().map(|w| format!("{DIR}/{name}:{w}")).collect();
    assert_eq!(got, want, "{name}");
    assert_eq!(valid, want_valid_docs, "{name}: valid documents");
}

#[test]
fn malformed_yaml() {
    check(
        "malformed.yaml",
        0,
        &["11:12: spec.machines[0].image[0]: invalid YAML: illegal placement of ':' indicator"],
    );
    check(
        "bad_indent.yaml",
        0,
        &[
            "10:6: spec.machines[1]: invalid YAML: while parsing a block collection, did not find expected '-' indicator",
        ],
    );
}

#[test]
fn unknown_fields() {
    check(
        "unknown_field.yaml",
        0,
        &[
            "11:7: spec.machines[0].replicas: unknown field `replicas`; allowed fields: name, region, regions, count, image, guest, env, services, checks, metadata, restart, autostop, autostart, min_machines_running, init, files, processes, stop_config, dns, statics, mounts",
            "13:9: spec.machines[0].guest.memoryMb: unknown field `memoryMb` (did you mean `memory_mb`?); allowed fields: size, cpu_kind, cpus, memory_mb, gpu_kind, gpus",
            "14:3: spec.secret: unknown field `secret` (did you mean `secrets`?); allowed fields: org, app, machines, secrets, tokens, certificates, ips, volumes, deletionPolicy, paused, managementPolicy",
        ],
    );
}

#[test]
fn wrong_types() {
    check(
        "wrong_type.yaml",
        0,
        &[
            "7:11: spec.paused: expected a boolean (true or false), found a string \"yes\"",
            "12:14: spec.machines[0].count: expected an integer, found a string \"two\"",
            "14:15: spec.machines[0].env.PORT: expected a string, found an integer `8080`; quote it to make it a string: \"8080\"",
            "16:9: spec.machines[0].services: expected a list, found a mapping",
        ],
    );
}

#[test]
fn invalid_names() {
    check(
        "invalid_name.yaml",
        0,
        &[
            "4:9: metadata.name: \"Acme_Corp\" is not a valid tenant name: may only contain lowercase letters a-z, digits 0-9 and '-' (found 'A')",
            "8:11: spec.app.name: \"acme--prod\" is not a valid Fly app name: must not contain \"--\"",
            "10:13: spec.machines[0].name: \"web-\" is not a valid group name: must not end with '-'",
            "11:15: spec.machines[0].region: \"ORD\" is not a valid region: must be a Fly region code: three lowercase letters such as `ord` or `fra`",
            "14:17: spec.certificates[0].hostname: \"portal.*.example.com\" is not a valid hostname: a wildcard is only allowed as the whole first label (`*.example.com`)",
        ],
    );
}

#[test]
fn bad_memory() {
    check(
        "bad_memory.yaml",
        0,
        &[
            "13:20: spec.machines[0].guest.memory_mb: memory_mb must be a multiple of 256 for shared machines (got 300)",
            "20:20: spec.machines[1].guest.memory_mb: 3072 MB is out of range for 2 performance vCPU(s): allowed 4096..=16384 MB (2048..=8192 MB per vCPU)",
            "25:15: spec.machines[2].guest.size: unknown machine size \"performance-3x\"; allowed sizes: shared-cpu-1x, shared-cpu-2x, shared-cpu-4x, shared-cpu-8x, performance-1x, performance-2x, performance-4x, performance-8x, performance-16x",
        ],
    );
}

#[test]
fn bad_cron_time_zone_and_durations() {
    check(
        "bad_cron.yaml",
        0,
        &[
            "9:15: spec.tokens[0].expiry: invalid duration \"1y\": `y` is not a fixed length of time (years and months vary); use d or w, such as `365d` or `52w`",
            "11:15: spec.tokens[0].schedule.cron: invalid cron expression \"0 3 * *\": expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found 4",
            "12:19: spec.tokens[0].schedule.timeZone: unknown time zone \"Europe/Atlantis\": use an IANA time zone name such as `UTC` or `Europe/Oslo`",
            "15:15: spec.tokens[1].schedule.cron: invalid cron expression \"0 25 * * *\": the hour field \"25\" is invalid (number out of bounds); it allows 0-23, with `*`, `,`, `-` and `/`",
        ],
    );
}

#[test]
fn plaintext_secret_values_are_never_allowed() {
    let (_, got) = diagnostics("plaintext_secret.yaml");
    // The value itself never appears in any message.
    assert!(got.iter().all(|d| !d.contains("hunter2")), "{got:?}");
    check(
        "plaintext_secret.yaml",
        0,
        &[
            "8:7: spec.secrets[0]: a secret needs exactly one of `generate`, `fromToken` or `external` (found none)",
            "9:7: spec.secrets[0].value: plaintext values are never allowed in specs; use `generate`, `fromToken` or `external` (declare it `external` and store its value with `flotilla secrets set TENANT NAME`, which keeps it encrypted)",
            "10:7: spec.secrets[1]: a secret needs exactly one of `generate`, `fromToken` or `external` (found `generate` and `external`)",
            "14:18: spec.secrets[2].fromToken: `fromToken` names token `deploy`, but spec.tokens has no such token (tokens: (none))",
        ],
    );
}

#[test]
fn duplicate_names() {
    check(
        "duplicate_names.yaml",
        0,
        &[
            "11:13: spec.machines[1].name: duplicate group name `web` (first defined at spec.machines[0].name); group names must be unique",
            "17:13: spec.secrets[1].name: duplicate secret `API_KEY` (first defined at spec.secrets[0].name); secrets must be unique",
            "21:17: spec.certificates[1].hostname: duplicate certificate hostname `acme.example.com` (first defined at spec.certificates[0].hostname); certificate hostnames must be unique",
            "26:9: metadata.name: tenant `acme` is already defined at tests/fixtures/broken/duplicate_names.yaml:4; tenant names must be unique",
        ],
    );
}

#[test]
fn errors_in_the_second_document_of_three() {
    // load_files keeps the valid first and third documents; load_str (checked
    // inside `diagnostics`) rejects the whole file.
    check(
        "multi_doc.yaml",
        2,
        &[
            "21:14: spec.machines[0].count: a group may run at most 100 machines (got 500); split larger fleets into several groups",
            "25:25: spec.machines[0].services[0].concurrency.soft_limit: soft_limit (50) must not exceed hard_limit (25)",
            "29:16: spec.ips[0].network: `network` is only allowed for `private_v6` IPs (this one is `v4`)",
        ],
    );
}

#[test]
fn bad_machine_parts() {
    check(
        "bad_machine_parts.yaml",
        0,
        &[
            "9:25: spec.machines[0].regions.CHI: \"CHI\" is not a valid region: a Fly region code is three lowercase letters, such as `ord`",
            "13:19: spec.machines[0].guest.gpu_kind: GPU machines run performance CPUs, not shared; set `cpu_kind: performance` or a `performance-*` size (Fly's GPU presets use performance-8x)",
            "18:28: spec.machines[0].checks.tls.tls_skip_verify: `tls_skip_verify` only applies to https checks; set `protocol: https`",
            "20:21: spec.machines[0].checks.tls.headers[0].name: \"X Bad\" is not a valid header name: an HTTP header name: 1 to 256 characters from A-Z, a-z, 0-9 and !#$%&'*+-.^_`|~",
            "23:23: spec.machines[0].files[0].guest_path: \"etc/app.toml\" is not an absolute path: it must start with '/', name a file (not end with '/') and hold no control characters",
            "25:17: spec.machines[0].files[0].mode: expected an octal mode string such as \"0644\", found an integer `644`; quote it: YAML 1.2 reads 0644 as the decimal number 644",
            "26:11: spec.machines[0].files[1]: a file needs exactly one of `content`, `raw_value` or `secret_name` (found none)",
            "28:24: spec.machines[0].files[2].secret_name: file contents can come only from an `external` secret, and `SESSION` is a `generate` secret: Fly writes the file from the base64 the secret holds, so the secret must hold the base64 of the file's contents (set it as an external value)",
            "31:24: spec.machines[0].processes[0].secrets[0].env_var: `processes[].secrets` names secret `DB_URL`, but no entry of spec.secrets (or a token's deliverTo.appSecrets) has that name (secrets: SESSION)",
            "33:17: spec.machines[0].stop_config.signal: unknown value \"SIGSTOP\"; allowed values: SIGHUP, SIGINT, SIGQUIT, SIGKILL, SIGUSR1, SIGUSR2, SIGTERM",
            "34:18: spec.machines[0].stop_config.timeout: must be at most 1d (got 3d)",
            "36:23: spec.machines[0].dns.nameservers[0]: \"dns.google\" is not a valid name server: an IPv4 or IPv6 address, such as `fdaa::3` or `1.1.1.1`",
            "39:16: spec.machines[1].regions: `region` and `regions` cannot both be given; use `region` for one region and `regions` for several",
        ],
    );
}

#[test]
fn every_fixture_is_covered() {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bad_cron.yaml",
            "bad_indent.yaml",
            "bad_machine_parts.yaml",
            "bad_memory.yaml",
            "duplicate_names.yaml",
            "invalid_name.yaml",
            "malformed.yaml",
            "multi_doc.yaml",
            "plaintext_secret.yaml",
            "unknown_field.yaml",
            "wrong_type.yaml",
        ]
    );
}
