//! Spec errors: one `SpecError` variant per rule, the YAML path an error
//! belongs to, and the `Diagnostic` that ties both to a file position.
//!
//! Every message says what is wrong and what is allowed, so a user can fix a
//! spec from the message alone. Messages never contain secret values: specs
//! carry none, and the one rule about them (`PlaintextSecretValue`) does not
//! echo the value it rejects.
//!
//! Messages echo what the user wrote (keys, values, file names). A
//! [`Diagnostic`] therefore displays through [`sanitize`]: control, bidi and
//! line-separator characters are escaped, so input cannot forge a second
//! `file:line:col:` line or colour a terminal, and over-long text is cut in
//! the middle, so a 50 MB value is not echoed whole.

use std::fmt;

use crate::ids::IdError;

/// Why a spec was rejected. One variant per rule, so callers and tests match on
/// the rule, not on message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    // ---- reading -------------------------------------------------------
    #[error("cannot read spec file: {message}")]
    Unreadable { message: String },
    #[error(
        "file is larger than the limit of {max} bytes; raise it with --max-spec-bytes (or FLOTILLA_MAX_SPEC_BYTES) if the file is meant to be this large"
    )]
    FileTooLarge { max: u64 },
    #[error(
        "not a regular file ({kind}); flotilla reads specs only from regular files and directories"
    )]
    NotARegularFile { kind: &'static str },

    // ---- YAML structure ------------------------------------------------
    #[error("invalid YAML: {message}")]
    Syntax { message: String },
    #[error(
        "YAML tag `{tag}` is not supported; use no tag, or one of the core tags !!str, !!int, !!float, !!bool, !!null, !!map and !!seq"
    )]
    UnsupportedTag { tag: String },
    #[error("mapping keys must be plain strings, not lists or mappings")]
    NonStringKey,
    #[error(
        "duplicate key `{key}` (first given on line {first_line}); YAML mapping keys must be unique"
    )]
    DuplicateKey { key: String, first_line: usize },
    #[error("document is nested deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("document expands to more than {max} nodes (check for alias loops or alias bombs)")]
    TooLarge { max: usize },
    #[error(
        "the specs of this load hold more than {max} YAML nodes (each use of an alias counts as a copy of what it names); check for alias bombs, or load fewer files at once"
    )]
    LoadTooManyNodes { max: usize },
    #[error(
        "the specs of this load hold more than {max} bytes of text (each use of an alias counts as a copy of what it names); check for alias bombs, or load fewer files at once"
    )]
    LoadTooManyBytes { max: usize },
    #[error("{count} more problem(s) in this document are not shown; fix the ones above first")]
    MoreProblems { count: usize },

    // ---- shape (what the JSON Schema also says) -------------------------
    #[error("unknown field `{field}`{}; allowed fields: {}", did_you_mean(.suggestion), list_or_none(.allowed))]
    UnknownField {
        field: String,
        allowed: Vec<String>,
        suggestion: Option<String>,
    },
    #[error("missing required field `{field}`")]
    MissingField { field: &'static str },
    #[error("expected {expected}, found {found}{}", hint_suffix(.hint))]
    WrongType {
        expected: String,
        found: String,
        hint: Option<String>,
    },
    #[error("unknown value {value:?}; allowed values: {}", list_or_none(.allowed))]
    UnknownVariant { value: String, allowed: Vec<String> },
    #[error("must be between {min} and {max} (got {value})")]
    OutOfRange { value: i128, min: i128, max: i128 },
    #[error("{0}")]
    Custom(String),

    // ---- document ------------------------------------------------------
    #[error(
        "a tenant document must be a mapping with apiVersion, kind, metadata and spec; found {found}"
    )]
    NotAMapping { found: String },
    #[error(
        "unsupported apiVersion {found:?}; the only supported apiVersion is `flotilla.dev/v1alpha1`"
    )]
    BadApiVersion { found: String },
    #[error("unsupported kind {found:?}; the only supported kind is `Tenant`")]
    BadKind { found: String },
    #[error("tenant `{name}` is already defined at {first}; tenant names must be unique")]
    DuplicateTenant { name: String, first: String },
    #[error(
        "Fly app `{app}`{} is already used by tenant `{tenant}` at {first}; app names must be unique{}",
        if *.from_template { " (rendered from the app-name template)" } else { "" },
        if *.from_template { "; set spec.app.name" } else { "" }
    )]
    AppNameTaken {
        app: String,
        tenant: String,
        first: String,
        from_template: bool,
    },

    // ---- names ---------------------------------------------------------
    #[error("{value:?} is not a valid {what}: {reason}")]
    BadId {
        what: &'static str,
        value: String,
        reason: IdError,
    },
    #[error("duplicate {what} `{name}` (first defined at {first}); {what}s must be unique")]
    DuplicateName {
        what: &'static str,
        name: String,
        first: String,
    },
    #[error(
        "app name template {template:?} renders {rendered:?}, which is not a valid Fly app name: {reason}; set `spec.app.name` or change the template"
    )]
    BadRenderedAppName {
        template: String,
        rendered: String,
        reason: IdError,
    },
    #[error(
        "app name template {template:?} uses unknown placeholder `{placeholder}`; allowed placeholders: {{tenant}}, {{org}}"
    )]
    BadAppNameTemplate {
        template: String,
        placeholder: String,
    },

    // ---- machines ------------------------------------------------------
    #[error(
        "a group may run at most {max} machines (got {count}); split larger fleets into several groups"
    )]
    TooManyMachines { count: i64, max: u32 },
    #[error(
        "{value:?} is not a valid image reference: must be non-empty and contain no whitespace (for example `nginx:1.27` or `registry.fly.io/my-app:latest`)"
    )]
    BadImage { value: String },
    #[error("unknown machine size {size:?}; allowed sizes: {}", list_or_none(.allowed))]
    UnknownSize { size: String, allowed: Vec<String> },
    #[error(
        "`size` already sets cpu_kind and cpus; remove `{field}` or remove `size` (memory_mb may be combined with size)"
    )]
    SizeConflict { field: &'static str },
    #[error("{kind} machines support cpus {}; got {cpus}", list_u32(.allowed))]
    BadCpuCount {
        kind: &'static str,
        cpus: i64,
        allowed: Vec<u32>,
    },
    #[error("memory_mb must be a multiple of {multiple} for {kind} machines (got {memory_mb})")]
    MemoryNotMultiple {
        kind: &'static str,
        memory_mb: i64,
        multiple: u32,
    },
    #[error(
        "{memory_mb} MB is out of range for {cpus} {kind} vCPU(s): allowed {min}..={max} MB ({per_cpu_min}..={per_cpu_max} MB per vCPU)"
    )]
    MemoryOutOfRange {
        kind: &'static str,
        cpus: u32,
        memory_mb: i64,
        min: u32,
        max: u32,
        per_cpu_min: u32,
        per_cpu_max: u32,
    },
    #[error(
        "{key:?} is not a valid environment variable name: use letters, digits and '_', not starting with a digit"
    )]
    BadEnvName { key: String },
    #[error(
        "metadata key {key:?} is reserved: keys starting with `flotilla.` or `fly_` belong to flotilla and Fly"
    )]
    ReservedMetadataKey { key: String },
    #[error("metadata keys must not be empty")]
    EmptyMetadataKey,
    #[error("{key:?} is not a valid {what}: {rule}")]
    BadKey {
        what: &'static str,
        key: String,
        rule: &'static str,
    },
    #[error("soft_limit ({soft}) must not exceed hard_limit ({hard})")]
    SoftLimitAboveHard { soft: i64, hard: i64 },
    #[error("force_https needs the `http` handler on the same port")]
    ForceHttpsWithoutHttp,
    #[error("duplicate {what} {value}; each may appear once")]
    DuplicateValue { what: &'static str, value: String },
    #[error("`{field}` only applies to http checks")]
    HttpOnlyCheckField { field: &'static str },
    #[error(
        "check port is required when the group has no services (otherwise it defaults to the first service's internal_port)"
    )]
    CheckPortRequired,
    #[error(
        "unknown HTTP method {method:?}; allowed: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    )]
    BadHttpMethod { method: String },
    #[error("check path {path:?} must start with '/'")]
    BadCheckPath { path: String },
    #[error("timeout ({timeout}) must not be longer than interval ({interval})")]
    CheckTimeoutTooLong { timeout: String, interval: String },
    #[error("max_retries only applies to the `on-failure` restart policy (policy is `{policy}`)")]
    MaxRetriesWithoutOnFailure { policy: &'static str },
    #[error("min_machines_running ({min}) must not exceed count ({count})")]
    MinMachinesAboveCount { min: i64, count: u32 },
    #[error("{value:?} is not a valid {what}: {rule}")]
    BadValue {
        what: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("`{field}` needs at least one {what}")]
    EmptyList {
        field: &'static str,
        what: &'static str,
    },

    // ---- regions ---------------------------------------------------------
    #[error(
        "a group needs `region` (one region) or `regions` (several: a list, or a mapping of region to count)"
    )]
    RegionRequired,
    #[error(
        "`region` and `regions` cannot both be given; use `region` for one region and `regions` for several"
    )]
    RegionAndRegions,
    #[error(
        "count ({count}) must equal the sum of the per-region counts ({sum}); leave count out to use the sum"
    )]
    RegionCountsSum { count: i64, sum: i64 },

    // ---- GPUs ------------------------------------------------------------
    #[error("`gpus` needs `gpu_kind` (a10, l40s, a100-pcie-40gb or a100-sxm4-80gb)")]
    GpusWithoutKind,
    #[error("Fly offers 1, 2, 4 or 8 GPUs per machine (got {gpus})")]
    BadGpuCount { gpus: i64 },
    #[error(
        "GPU machines run performance CPUs, not {cpu_kind}; set `cpu_kind: performance` or a `performance-*` size (Fly's GPU presets use performance-8x)"
    )]
    GpuNeedsPerformance { cpu_kind: &'static str },
    #[error(
        "{kind} GPUs are not offered in region {region}; regions that offer them: {}",
        list_or_none(.offered)
    )]
    GpuNotInRegion {
        kind: &'static str,
        region: String,
        offered: Vec<String>,
    },

    // ---- files, processes, stop, checks ----------------------------------
    #[error("a file needs exactly one of `content`, `raw_value` or `secret_name` (found {})", found_sources(.found))]
    FileSourceCount { found: Vec<&'static str> },
    #[error(
        "{path:?} is not an absolute path: it must start with '/', name a file (not end with '/') and hold no control characters"
    )]
    NotAbsolutePath { path: String },
    #[error("raw_value is not valid base64 (standard alphabet with `=` padding, as Fly requires)")]
    BadBase64,
    #[error(
        "file contents are {size} bytes; flotilla allows at most {max} bytes per file (machine configs are sent whole on every create and update)"
    )]
    FileContentTooLarge { size: usize, max: usize },
    #[error(
        "{value:?} is not a file mode: write one to four octal digits as a string, such as \"0644\" or \"0600\" (at most \"7777\")"
    )]
    BadFileMode { value: String },
    #[error("`{field}` names secret `{name}`, but no entry of spec.secrets (or a token's deliverTo.appSecrets) has that name (secrets: {})", list_or_none(.known))]
    UnknownSecret {
        field: &'static str,
        name: String,
        known: Vec<String>,
    },
    #[error(
        "file contents can come only from an `external` secret, and `{name}` is a `{origin}` secret: Fly writes the file from the base64 the secret holds, so the secret must hold the base64 of the file's contents (set it as an external value)"
    )]
    FileSecretNotExternal { name: String, origin: &'static str },
    #[error("must be at most {max} (got {value})")]
    DurationTooLong { value: String, max: String },
    #[error("`{field}` only applies to https checks; set `protocol: https`")]
    HttpsOnlyCheckField { field: &'static str },

    // ---- durations and schedules ----------------------------------------
    #[error("invalid duration {value:?}: {reason}")]
    BadDuration {
        value: String,
        reason: DurationError,
    },
    #[error("must be longer than 0s")]
    ZeroDuration,
    #[error("invalid cron expression {expr:?}: {reason}")]
    BadCron { expr: String, reason: String },
    #[error(
        "unknown time zone {name:?}: use an IANA time zone name such as `UTC` or `Europe/Oslo`"
    )]
    BadTimeZone { name: String },

    // ---- secrets and tokens ----------------------------------------------
    #[error(
        "plaintext values are never allowed in specs; use `generate`, `fromToken` or `external` (declare it `external` and store its value with `flotilla secrets set TENANT NAME`, which keeps it encrypted)"
    )]
    PlaintextSecretValue,
    #[error("a secret needs exactly one of `generate`, `fromToken` or `external` (found {})", found_sources(.found))]
    SecretSourceCount { found: Vec<&'static str> },
    #[error("`fromToken` names token `{token}`, but spec.tokens has no such token (tokens: {})", list_or_none(.known))]
    UnknownToken { token: String, known: Vec<String> },
    #[error("renewBefore ({renew_before}) must be shorter than expiry ({expiry})")]
    RenewBeforeNotBelowExpiry {
        renew_before: String,
        expiry: String,
    },
    #[error("grace ({grace}) must be shorter than expiry ({expiry})")]
    GraceNotBelowExpiry { grace: String, expiry: String },
    #[error(
        "app secret `{secret}` receives token `{token}`, but spec.secrets also declares it {declared}; declare it as `fromToken: {token}` or drop it from one place"
    )]
    DeliveredSecretCollision {
        secret: String,
        token: String,
        declared: String,
    },

    // ---- volumes and mounts ----------------------------------------------
    #[error("a machine mounts at most one volume (Fly's rule); got {count} mounts")]
    TooManyMounts { count: usize },
    #[error("mount names volume `{name}`, but spec.volumes has no such volume (volumes: {})", list_or_none(.known))]
    UnknownVolume { name: String, known: Vec<String> },
    #[error(
        "volume `{volume}` is already mounted by the group at {first}; each volume spec belongs to one group (every machine of it gets its own volume), so declare another volume for this group"
    )]
    VolumeMountedTwice { volume: String, first: String },
    #[error(
        "{path:?} is not a mount path: it must be an absolute directory such as `/data`: start with '/', not be `/` itself, not end with '/', hold no `.` or `..` segment, no empty segment and no control characters, at most 4096 bytes"
    )]
    BadMountPath { path: String },
    #[error(
        "group `{group}` mounts volume `{volume}` and runs in {region}, which the volume's regions ({}) do not include; each machine's volume is created in its machine's region, so leave the volume's regions out or add {region}",
        list_or_none(.allowed)
    )]
    VolumeRegionNotAllowed {
        volume: String,
        group: String,
        region: String,
        allowed: Vec<String>,
    },
    #[error(
        "volume `{name}` is mounted by no group, so it needs `region` or `regions` (one volume is created in each)"
    )]
    VolumeNeedsRegion { name: String },

    // ---- certificates and IPs --------------------------------------------
    #[error("`network` is only allowed for `private_v6` IPs (this one is `{kind}`)")]
    NetworkNotAllowed { kind: &'static str },
    #[error("an app can have at most one `shared_v4` IP (first at {first})")]
    TooManySharedV4 { first: String },
}

impl SpecError {
    /// True for errors about a mapping key itself (an invalid label or env
    /// name): they are reported at the key, not at its value.
    pub fn is_about_a_key(&self) -> bool {
        matches!(
            self,
            SpecError::BadKey { .. }
                | SpecError::BadEnvName { .. }
                | SpecError::ReservedMetadataKey { .. }
                | SpecError::EmptyMetadataKey
        )
    }
}

/// What is wrong with a duration string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty; write a number followed by a unit, such as `30s`, `5m`, `1h30m` or `30d`")]
    Empty,
    #[error(
        "expected a number at {position:?}; write numbers followed by units (s, m, h, d, w), such as `1h30m`"
    )]
    ExpectedNumber { position: String },
    #[error("number {number} has no unit; allowed units: s, m, h, d, w")]
    MissingUnit { number: String },
    #[error(
        "fractions are not allowed; write whole numbers of smaller units, such as `1h30m` instead of `1.5h`"
    )]
    Fraction,
    #[error(
        "`{unit}` is not a fixed length of time (years and months vary); use d or w, such as `365d` or `52w`"
    )]
    CalendarUnit { unit: String },
    #[error(
        "unknown unit `{unit}`; allowed units: s (seconds), m (minutes), h (hours), d (days), w (weeks)"
    )]
    UnknownUnit { unit: String },
    #[error("unit `{unit}` appears more than once")]
    RepeatedUnit { unit: char },
    #[error("units must go from largest to smallest (w, d, h, m, s); `{unit}` comes too late")]
    UnitOrder { unit: char },
    #[error("too long; durations must fit in 64 bits of seconds")]
    Overflow,
}

/// Where in a document an error is: `spec.machines[1].guest.memory_mb`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(Vec<Seg>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl Path {
    pub fn root() -> Self {
        Self::default()
    }

    /// This path extended by a mapping key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.into()));
        p
    }

    /// This path extended by a list index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    pub fn segments(&self) -> &[Seg] {
        &self.0
    }

    /// True when `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &Path) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<document>");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Keys printed bare in paths; anything else (dots, spaces) is quoted so the
/// path stays unambiguous: `metadata["flotilla.group"]`.
fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// One problem found in a spec file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the caller named it (or any label for in-memory text).
    pub source: String,
    /// 1-based line in the file.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// YAML path such as `spec.machines[1].guest.memory_mb`; `<document>` for
    /// problems with a document as a whole.
    pub path: String,
    pub error: SpecError,
}

/// Longest message a diagnostic shows, in characters; longer ones lose their
/// middle (where an echoed value sits; the rule comes last).
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Longest file name or YAML path a diagnostic shows, in characters.
pub const MAX_LABEL_CHARS: usize = 300;

impl Diagnostic {
    /// A problem with a whole input (unreadable, too large, not text),
    /// reported at its first line and column.
    pub fn at_start(source: &str, error: SpecError) -> Self {
        Self {
            source: source.to_string(),
            line: 1,
            column: 1,
            path: "<document>".to_string(),
            error,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            sanitize(&self.source, MAX_LABEL_CHARS),
            self.line,
            self.column,
            sanitize(&self.path, MAX_LABEL_CHARS),
            sanitize(&self.error.to_string(), MAX_MESSAGE_CHARS)
        )
    }
}

/// `text` made safe to print on one terminal line: every control character
/// (C0, DEL, C1: newlines, carriage returns, escape sequences, NUL), every
/// bidirectional-text control and the Unicode line/paragraph separators are
/// written as `\n`, `\r`, `\t` or `\u{..}`; and when the escaped text is
/// longer than `max_chars` characters, it keeps its start and end around a
/// note of how many characters of `text` were left out.
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let total: usize = text.chars().map(escaped_len).sum();
    if total <= max_chars {
        let mut out = String::with_capacity(text.len());
        text.chars().for_each(|c| push_escaped(&mut out, c));
        return out;
    }
    let budget = max_chars * 2 / 5;
    // Whole characters from each end while their escapes fit the budget.
    let take = |chars: &mut dyn Iterator<Item = char>| {
        let mut used = 0;
        let mut kept = Vec::new();
        for c in chars {
            used += escaped_len(c);
            if used > budget {
                break;
            }
            kept.push(c);
        }
        kept
    };
    let head = take(&mut text.chars());
    let mut tail = take(&mut text.chars().rev());
    tail.reverse();
    let left_out = text.chars().count() - head.len() - tail.len();
    let mut out = String::with_capacity(max_chars + 64);
    head.into_iter().for_each(|c| push_escaped(&mut out, c));
    out.push_str(&format!(" … ({left_out} characters left out) … "));
    tail.into_iter().for_each(|c| push_escaped(&mut out, c));
    out
}

/// Characters `c` takes once escaped.
fn escaped_len(c: char) -> usize {
    match c {
        '\n' | '\r' | '\t' => 2,
        c if needs_escape(c) => format!("{:x}", c as u32).len() + 4,
        _ => 1,
    }
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// Characters that could move the cursor, change colours, end the line or
/// reorder the text around them on a terminal.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

impl std::error::Error for Diagnostic {}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

fn list_u32(items: &[u32]) -> String {
    items
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn did_you_mean(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

fn hint_suffix(h: &Option<String>) -> String {
    match h {
        Some(h) => format!("; {h}"),
        None => String::new(),
    }
}

fn found_sources(found: &[&'static str]) -> String {
    if found.is_empty() {
        "none".to_string()
    } else {
        found
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_like_yaml_accessors() {
        let p = Path::root()
            .key("spec")
            .key("machines")
            .index(1)
            .key("guest")
            .key("memory_mb");
        assert_eq!(p.to_string(), "spec.machines[1].guest.memory_mb");
        let q = Path::root()
            .key("spec")
            .key("machines")
            .index(0)
            .key("metadata")
            .key("flotilla.group");
        assert_eq!(
            q.to_string(),
            "spec.machines[0].metadata[\"flotilla.group\"]"
        );
        assert_eq!(Path::root().to_string(), "<document>");
        assert!(p.starts_with(&Path::root().key("spec").key("machines")));
        assert!(!p.starts_with(&Path::root().key("metadata")));
    }

    #[test]
    fn diagnostics_display_as_file_line_column_path_message() {
        let d = Diagnostic {
            source: "a.yaml".into(),
            line: 3,
            column: 7,
            path: "spec.org".into(),
            error: SpecError::MissingField { field: "org" },
        };
        assert_eq!(
            d.to_string(),
            "a.yaml:3:7: spec.org: missing required field `org`"
        );
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(
            sanitize(
                "a\u{1b}[31mred\nfake.yaml:1:1: x\r\0\u{202e}\u{2028}\t",
                100
            ),
            "a\\u{1b}[31mred\\nfake.yaml:1:1: x\\r\\u{0}\\u{202e}\\u{2028}\\t"
        );
        assert_eq!(sanitize("plain é ✓", 100), "plain é ✓");
    }

    #[test]
    fn long_text_keeps_its_start_and_end() {
        let long = format!("start {} end", "x".repeat(10_000));
        let shown = sanitize(&long, 100);
        assert!(shown.starts_with("start "), "{shown}");
        assert!(shown.ends_with(" end"), "{shown}");
        assert!(shown.contains("(9930 characters left out)"), "{shown}");
        assert!(shown.chars().count() < 150);
        // Escapes count towards the bound, not the characters they stand for.
        let escapes = "\u{202e}".repeat(10_000);
        let shown = sanitize(&escapes, 100);
        assert!(shown.chars().count() < 150, "{shown}");
        assert!(shown.starts_with("\\u{202e}"), "{shown}");
    }

    #[test]
    fn a_diagnostic_is_one_bounded_line_whatever_it_echoes() {
        let d = Diagnostic {
            source: "evil\n.yaml".into(),
            line: 1,
            column: 1,
            path: "metadata.name".into(),
            error: SpecError::DuplicateKey {
                key: format!("k\u{1b}[2J\nfake.yaml:1:1: ok{}", "y".repeat(50_000_000)),
                first_line: 1,
            },
        };
        let shown = d.to_string();
        assert!(!shown.contains(['\n', '\r', '\u{1b}']), "{shown}");
        assert!(shown.starts_with(
            "evil\\n.yaml:1:1: metadata.name: duplicate key `k\\u{1b}[2J\\nfake.yaml:1:1: ok"
        ));
        assert!(shown.ends_with("YAML mapping keys must be unique"));
        assert!(shown.len() < 1500, "{} bytes", shown.len());
    }
}
