//! The conditions table of `docs/reconcile.md`, row by row: the test reads
//! the table from the document and runs, for every row, the scenarios that
//! must produce it. A row without a scenario, a scenario without a row, or a
//! reason the code knows that the table leaves out fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::ids::{AppName, GroupName, Hostname, MachineId, VolumeId, VolumeName};
use crate::model::fly::{HostStatus, Machine, MachineState};
use crate::plan::{Action, AppObservation, Blocker, Ledger, Phase, Reason, Step};
use crate::spec::{self, ParseOptions};

const DOC: &str = include_str!("../../../../docs/reconcile.md");

const SPEC: &str = r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: acme
spec:
  org: personal
  machines:
    - name: web
      region: ord
      image: nginx:1.27
  secrets:
    - name: SESSION_KEY
      generate: {}
    - name: DATABASE_URL
      external: {}
"#;

/// One row of the table: (condition, status, reason).
type Row = (String, String, String);

/// The rows of the table under `## Conditions`.
fn doc_rows() -> Vec<Row> {
    let section = DOC
        .split("\n## ")
        .find(|s| s.starts_with("Conditions"))
        .expect("docs/reconcile.md has a Conditions section");
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in section.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.first() == Some(&"condition") {
            assert_eq!(cells, ["condition", "status", "reason", "when"]);
            in_table = true;
            continue;
        }
        if !in_table || cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
            continue;
        }
        assert!(cells.len() >= 3, "short row: {line}");
        rows.push((
            cells[0].to_string(),
            cells[1].to_string(),
            cells[2].to_string(),
        ));
    }
    assert!(!rows.is_empty(), "the Conditions table has rows");
    rows
}

fn t0() -> Timestamp {
    "2026-11-23T00:00:00Z".parse().unwrap()
}

fn tenant(edit: impl Fn(&str) -> String) -> Tenant {
    let docs = spec::load_str("t.yaml", &edit(SPEC), &ParseOptions::default()).expect("valid");
    docs.into_iter().next().unwrap().tenant
}

fn machine(tenant_meta: Option<&str>, state: MachineState) -> Machine {
    let mut metadata = BTreeMap::new();
    if let Some(t) = tenant_meta {
        metadata.insert(meta::TENANT.to_string(), t.to_string());
        metadata.insert(meta::GROUP.to_string(), "web".to_string());
    }
    Machine {
        id: MachineId::parse("3d8d9014b32778").unwrap(),
        name: "m".into(),
        state,
        region: "ord".into(),
        version: "v1".into(),
        host_status: HostStatus::Ok,
        config: None,
        metadata,
        checks: Vec::new(),
        created_at: Some(t0()),
        updated_at: Some(t0()),
    }
}

fn step() -> Step {
    Step {
        phase: Phase::Machines,
        action: Action::StartMachine {
            group: GroupName::parse("web").unwrap(),
            id: MachineId::parse("3d8d9014b32778").unwrap(),
        },
        reason: Reason::StoppedUnexpectedly,
    }
}

fn id() -> MachineId {
    MachineId::parse("3d8d9014b32778").unwrap()
}

fn secret_present() -> crate::model::fly::AppSecret {
    crate::model::fly::AppSecret {
        name: SecretName::parse("DATABASE_URL").unwrap(),
        digest: "d1".into(),
    }
}

/// One example of every finding. The exhaustive match makes a new variant
/// fail to compile here until it has an example (and so a place in the
/// Degraded check below).
fn every_finding() -> Vec<Finding> {
    let all = vec![
        Finding::ForeignMachine { id: id() },
        Finding::ForeignIp {
            ip: "1.2.3.4".into(),
        },
        Finding::ForeignCertificate {
            hostname: "x.example.com".into(),
        },
        Finding::ForeignSecret {
            name: SecretName::parse("OTHER").unwrap(),
        },
        Finding::HostUnreachable { id: id() },
        Finding::ChecksFailing {
            id: id(),
            checks: vec!["alive".into()],
        },
        Finding::CertificatePending {
            hostname: Hostname::parse("a.example.com").unwrap(),
            dns_records: Vec::new(),
            rate_limited_until: None,
        },
        Finding::ExternalSecretMissing {
            name: SecretName::parse("DATABASE_URL").unwrap(),
        },
        Finding::TokenNotManaged {
            name: "deploy".into(),
        },
        Finding::RolloutFailed {
            group: GroupName::parse("web").unwrap(),
            id: id(),
        },
        Finding::RolloutInProgress {
            group: GroupName::parse("web").unwrap(),
            pending: 1,
        },
        Finding::WaitsForSecret {
            group: GroupName::parse("web").unwrap(),
            secret: SecretName::parse("TLS_KEY").unwrap(),
        },
        Finding::DeletionBlocked {
            foreign_machines: 1,
        },
        Finding::CreateInFlight {
            what: "address v6".into(),
        },
        Finding::VolumeRetained {
            id: VolumeId::parse("vol_9vw681egy1jj5xm4").unwrap(),
            name: "data".into(),
            region: "ord".into(),
            size_gb: 1,
            declared: true,
        },
        Finding::VolumeShrinkRefused {
            id: VolumeId::parse("vol_9vw681egy1jj5xm4").unwrap(),
            name: VolumeName::parse("data").unwrap(),
            size_gb: 10,
            want_gb: 5,
        },
        Finding::WaitsForVolume {
            group: GroupName::parse("web").unwrap(),
            region: "ord".into(),
        },
        Finding::ForeignVolume {
            id: VolumeId::parse("vol_9vw681egy1jj5xm4").unwrap(),
            name: "data".into(),
        },
        Finding::VolumesKeepApp {
            retained: 1,
            foreign: 0,
        },
    ];
    for f in &all {
        match f {
            Finding::ForeignMachine { .. }
            | Finding::ForeignIp { .. }
            | Finding::ForeignCertificate { .. }
            | Finding::ForeignSecret { .. }
            | Finding::HostUnreachable { .. }
            | Finding::ChecksFailing { .. }
            | Finding::CertificatePending { .. }
            | Finding::ExternalSecretMissing { .. }
            | Finding::TokenNotManaged { .. }
            | Finding::RolloutFailed { .. }
            | Finding::RolloutInProgress { .. }
            | Finding::WaitsForSecret { .. }
            | Finding::DeletionBlocked { .. }
            | Finding::CreateInFlight { .. }
            | Finding::VolumeRetained { .. }
            | Finding::VolumeShrinkRefused { .. }
            | Finding::WaitsForVolume { .. }
            | Finding::ForeignVolume { .. }
            | Finding::VolumesKeepApp { .. } => {}
        }
    }
    all
}

/// An activation to derive from. By default: a live tenant whose external
/// secret has a value, an empty plan, nothing attempted.
#[derive(Clone)]
struct Scenario {
    label: String,
    tenant: Tenant,
    deleting: bool,
    observe_error: Option<&'static str>,
    unreadable: Option<&'static str>,
    plan: Plan,
    observed: Observed,
    attempt: (usize, usize, Option<&'static str>, Option<&'static str>),
    /// Of the attempt's changes, revocations.
    unobserved: usize,
    tokens_pending: Vec<TokenName>,
    tokens_halted: Vec<(TokenName, String)>,
}

impl Scenario {
    fn new(label: impl Into<String>) -> Self {
        let mut observed = Observed::absent(Ledger::default(), t0());
        observed.app = AppObservation::InOrg;
        observed.secrets.push(secret_present());
        Self {
            label: label.into(),
            tenant: tenant(str::to_string),
            unobserved: 0,
            deleting: false,
            observe_error: None,
            unreadable: None,
            plan: Plan::default(),
            observed,
            attempt: (0, 0, None, None),
            tokens_pending: Vec::new(),
            tokens_halted: Vec::new(),
        }
    }

    fn token_pending(mut self) -> Self {
        self.tokens_pending
            .push(TokenName::parse("deploy").unwrap());
        self
    }

    fn token_halted(mut self) -> Self {
        self.tokens_halted.push((
            TokenName::parse("deploy").unwrap(),
            "mint: Fly unavailable (503)".to_string(),
        ));
        self
    }

    fn spec(mut self, edit: impl Fn(&str) -> String) -> Self {
        self.tenant = tenant(edit);
        self
    }

    fn paused(self) -> Self {
        self.spec(|s| s.replace("  org: personal\n", "  org: personal\n  paused: true\n"))
    }

    fn observe_only(self) -> Self {
        self.spec(|s| {
            s.replace(
                "  org: personal\n",
                "  org: personal\n  managementPolicy: ObserveOnly\n",
            )
        })
    }

    fn step(mut self) -> Self {
        self.plan.steps.push(step());
        self
    }

    fn finding(mut self, f: Finding) -> Self {
        self.plan.findings.push(f);
        self
    }

    fn blocker(mut self) -> Self {
        self.plan.blockers.push(Blocker::AppNameTaken {
            name: AppName::parse("acme").unwrap(),
        });
        self
    }

    fn missing_secret(self) -> Self {
        self.finding(Finding::ExternalSecretMissing {
            name: SecretName::parse("DATABASE_URL").unwrap(),
        })
    }

    fn applied(mut self, changes: usize) -> Self {
        self.attempt.0 = changes;
        self
    }

    /// `n` more changes, each a replaced token revoked.
    fn revoked(mut self, n: usize) -> Self {
        self.attempt.0 += n;
        self.unobserved += n;
        self
    }

    fn failed(mut self) -> Self {
        self.attempt = (1, 1, Some("create machine: Fly unavailable (503)"), None);
        self
    }

    fn deferred(mut self) -> Self {
        self.attempt = (
            1,
            0,
            None,
            Some("app acme created; Fly does not show it yet"),
        );
        self
    }

    fn deleting(mut self) -> Self {
        self.deleting = true;
        self
    }

    fn machine(mut self, owner: Option<&str>, state: MachineState) -> Self {
        self.observed.machines.push(machine(owner, state));
        self
    }

    fn observe_failed(mut self) -> Self {
        self.observe_error = Some("observing Fly failed: Fly unavailable (503)");
        self
    }

    fn state_unreadable(mut self) -> Self {
        self.unreadable = Some("ledger of acme: unknown field `owned`");
        self
    }

    fn derive(&self, previous: &TenantStatus) -> Derived {
        let (changes, failed, first_error, deferred) = self.attempt;
        let activation = match (self.unreadable, self.observe_error) {
            (Some(error), _) => Activation::StateUnreadable { error },
            (None, Some(error)) => Activation::ObserveFailed { error },
            (None, None) => Activation::Planned {
                plan: &self.plan,
                observed: &self.observed,
                attempt: Attempt {
                    changes,
                    unobserved: self.unobserved,
                    failed,
                    first_error,
                    deferred,
                },
                tokens: TokenFacts {
                    pending: &self.tokens_pending,
                    halted: &self.tokens_halted,
                    wake_at: None,
                    progressing: false,
                },
            },
        };
        derive(&Inputs {
            tenant: &self.tenant,
            generation: 3,
            deleting: self.deleting,
            hold: Hold::of(&self.tenant),
            activation,
            previous,
            started: t0(),
            finished: t0() + jiff::SignedDuration::from_millis(250),
            requeue: &RequeuePolicy::default(),
            jitter: 0.5,
        })
    }
}

/// The rows this test has scenarios for, in the document's order.
const ROWS: &[(&str, &str, &str)] = &[
    ("Ready", "True", "Available"),
    ("Ready", "False", "Progressing"),
    ("Ready", "False", "SecretsPending"),
    ("Ready", "False", "TokensPending"),
    ("Ready", "False", "Degraded"),
    ("Ready", "False", "Blocked"),
    ("Ready", "True", "Paused"),
    ("Ready", "False", "Paused"),
    ("Ready", "True", "ObserveOnly"),
    ("Ready", "False", "ObserveOnly"),
    ("Ready", "False", "Deleting"),
    ("Ready", "False", "DeletionBlocked"),
    ("Ready", "False", "StateUnreadable"),
    ("Synced", "True", "ReconcileSuccess"),
    ("Synced", "False", "ReconcileError"),
    ("Synced", "False", "Blocked"),
    ("Synced", "True", "Paused"),
    ("Synced", "False", "Paused"),
    ("Synced", "True", "ObserveOnly"),
    ("Synced", "False", "DriftDetected"),
    ("Synced", "False", "StateUnreadable"),
];

/// The scenarios that must produce `row`.
fn scenarios(row: (&str, &str, &str)) -> Vec<Scenario> {
    let s = Scenario::new;
    match row {
        ("Ready", "True", "Available") => vec![
            s("converged"),
            s("converged with a foreign machine in transition")
                .finding(Finding::ForeignMachine { id: id() })
                .machine(None, MachineState::Starting),
            s("converged, token findings do not hold Ready back yet").finding(
                Finding::TokenNotManaged {
                    name: "deploy".into(),
                },
            ),
        ],
        ("Ready", "False", "Progressing") => vec![
            s("changes applied").step().applied(1),
            s("certificate pending").finding(Finding::CertificatePending {
                hostname: Hostname::parse("a.example.com").unwrap(),
                dns_records: Vec::new(),
                rate_limited_until: None,
            }),
            s("rolling update").finding(Finding::RolloutInProgress {
                group: GroupName::parse("web").unwrap(),
                pending: 1,
            }),
            s("host unreachable").finding(Finding::HostUnreachable { id: id() }),
            s("own machine in transition").machine(Some("acme"), MachineState::Starting),
            s("new app not visible yet").step().deferred(),
            s("an address assignment in flight").finding(Finding::CreateInFlight {
                what: "address v6".into(),
            }),
        ],
        ("Ready", "False", "SecretsPending") => vec![
            s("external secret missing").missing_secret(),
            s("external secret missing while changes are made")
                .missing_secret()
                .step()
                .applied(1),
        ],
        ("Ready", "False", "TokensPending") => vec![
            s("a spec'd token not minted yet").token_pending(),
            s("token not minted while changes are made")
                .token_pending()
                .step()
                .applied(1),
        ],
        ("Ready", "False", "Degraded") => {
            let mut v = vec![
                s("a step failed").step().failed(),
                s("a token halted after repeated failures").token_halted(),
            ];
            for f in every_finding().into_iter().filter(Finding::degrades) {
                v.push(Scenario::new(format!("degrading finding: {f}")).finding(f));
            }
            v
        }
        ("Ready", "False", "Blocked") | ("Synced", "False", "Blocked") => {
            vec![s("app name taken").blocker()]
        }
        ("Ready", "True", "Paused") | ("Synced", "True", "Paused") => vec![s("paused").paused()],
        ("Ready", "False", "Paused") => vec![
            s("paused with changes").paused().step(),
            s("paused, secret missing").paused().missing_secret(),
            s("paused, certificate pending")
                .paused()
                .finding(Finding::CertificatePending {
                    hostname: Hostname::parse("a.example.com").unwrap(),
                    dns_records: Vec::new(),
                    rate_limited_until: None,
                }),
        ],
        ("Synced", "False", "Paused") => vec![s("paused with changes").paused().step()],
        ("Ready", "True", "ObserveOnly") | ("Synced", "True", "ObserveOnly") => {
            vec![s("observe-only").observe_only()]
        }
        ("Ready", "False", "ObserveOnly") => vec![
            s("observe-only with drift").observe_only().step(),
            s("observe-only, secret missing")
                .observe_only()
                .missing_secret(),
        ],
        ("Synced", "False", "DriftDetected") => {
            vec![s("observe-only with drift").observe_only().step()]
        }
        ("Ready", "False", "Deleting") => vec![
            s("teardown").deleting().step().applied(1),
            s("teardown while paused").deleting().paused(),
        ],
        ("Ready", "False", "DeletionBlocked") => {
            vec![
                s("teardown blocked")
                    .deleting()
                    .finding(Finding::DeletionBlocked {
                        foreign_machines: 1,
                    }),
            ]
        }
        ("Ready", "False", "StateUnreadable") | ("Synced", "False", "StateUnreadable") => vec![
            s("ledger unreadable").state_unreadable(),
            s("ledger unreadable while deleting")
                .state_unreadable()
                .deleting(),
            s("ledger unreadable while paused")
                .state_unreadable()
                .paused(),
        ],
        ("Synced", "True", "ReconcileSuccess") => vec![
            s("nothing to do"),
            s("changes applied").step().applied(2),
            s("new app not visible yet").step().deferred(),
        ],
        ("Synced", "False", "ReconcileError") => vec![
            s("a step failed").step().failed(),
            s("observing failed").observe_failed(),
        ],
        _ => Vec::new(),
    }
}

fn condition<'d>(d: &'d Derived, kind: &str) -> Option<&'d Condition> {
    match kind {
        "Ready" => d.ready.as_ref(),
        "Synced" => Some(&d.synced),
        other => panic!("unknown condition {other}"),
    }
}

fn status_text(s: ConditionStatus) -> &'static str {
    match s {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    }
}

#[test]
fn every_row_of_the_documented_conditions_table_is_what_derive_decides() {
    let rows = doc_rows();
    let previous = TenantStatus::default();
    for (kind, status, reason) in &rows {
        let cases = scenarios((kind, status, reason));
        assert!(
            !cases.is_empty(),
            "docs/reconcile.md row `{kind} {status} {reason}` has no scenario in this test"
        );
        for case in cases {
            let d = case.derive(&previous);
            let c = condition(&d, kind).unwrap_or_else(|| {
                panic!("{}: no {kind} condition: {d:#?}", case.label);
            });
            assert_eq!(
                (status_text(c.status), c.reason.as_str()),
                (status.as_str(), reason.as_str()),
                "row `{kind} {status} {reason}`, scenario {:?}: {c:#?}",
                case.label
            );
            assert_eq!(c.observed_generation, 3);
            assert_eq!(c.last_transition_time, t0());
        }
    }
}

#[test]
fn the_documented_rows_are_exactly_the_tested_rows() {
    let tested: Vec<Row> = ROWS
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(
        doc_rows(),
        tested,
        "docs/reconcile.md's conditions table and this test's rows differ"
    );
    for row in ROWS {
        assert!(!scenarios(*row).is_empty(), "{row:?} has no scenario");
    }
}

#[test]
fn the_table_lists_every_reason_and_no_row_twice() {
    let rows = doc_rows();
    let unique: BTreeSet<&Row> = rows.iter().collect();
    assert_eq!(unique.len(), rows.len(), "a row appears twice");
    let reasons_in_doc: BTreeSet<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    for reason in reasons::ALL {
        assert!(
            reasons_in_doc.contains(reason),
            "reason {reason} is missing from the conditions table in docs/reconcile.md"
        );
    }
    for reason in &reasons_in_doc {
        assert!(
            reasons::ALL.contains(reason),
            "docs/reconcile.md lists reason {reason}, which the code does not know"
        );
    }
}

#[test]
fn only_degrading_findings_and_failures_make_ready_degraded() {
    for f in every_finding() {
        let degrades = f.degrades();
        let d = Scenario::new(format!("{f}"))
            .finding(f.clone())
            .derive(&TenantStatus::default());
        let reason = &d.ready.as_ref().unwrap().reason;
        assert_eq!(
            reason == reasons::DEGRADED,
            degrades,
            "{f}: Ready reason {reason}"
        );
    }
}

#[test]
fn secrets_pending_names_every_missing_secret() {
    let d = Scenario::new("two missing")
        .missing_secret()
        .finding(Finding::ExternalSecretMissing {
            name: SecretName::parse("RESEND_API_KEY").unwrap(),
        })
        .derive(&TenantStatus::default());
    let ready = d.ready.unwrap();
    assert_eq!(ready.reason, reasons::SECRETS_PENDING);
    assert_eq!(
        ready.message,
        "waiting for external secret(s) DATABASE_URL, RESEND_API_KEY: no value on the app yet"
    );
    assert_eq!(
        d.next,
        Next::Resync,
        "an operator's value is seen at the next resync"
    );
}

#[test]
fn observe_failure_keeps_ready_and_counts_a_failure() {
    let mut previous = TenantStatus::default();
    Scenario::new("converged")
        .derive(&previous)
        .apply(&mut previous);
    assert!(previous.is_ready());
    let d = Scenario::new("observe failed")
        .observe_failed()
        .derive(&previous);
    assert!(d.ready.is_none());
    assert_eq!(d.next, Next::Backoff);
    assert_eq!(d.consecutive_failures, 1);
    let mut status = previous.clone();
    d.apply(&mut status);
    assert!(status.is_ready(), "Ready is left as it was");
    assert_eq!(
        status.condition(SYNCED).unwrap().reason,
        reasons::RECONCILE_ERROR
    );
    assert_eq!(
        status.history[0].result,
        "error: observing Fly failed: Fly unavailable (503)"
    );
}

#[test]
fn a_repeated_error_is_logged_quietly_and_a_new_one_loudly() {
    let failing = Scenario::new("failing").step().failed();
    let mut status = TenantStatus::default();
    let first = failing.derive(&status);
    assert_eq!(first.error_log, ErrorLog::New);
    first.apply(&mut status);
    let second = failing.derive(&status);
    assert_eq!(second.error_log, ErrorLog::Repeated);
    assert_eq!(second.consecutive_failures, 2);
    second.apply(&mut status);
    let mut same = failing.clone();
    same.attempt.2 = Some("create machine: Fly unavailable (503) [fly-request-id 02-ord]");
    let with_id = TenantStatus {
        last_error: Some("create machine: Fly unavailable (503) [fly-request-id 01-iad]".into()),
        ..status.clone()
    };
    assert_eq!(
        same.derive(&with_id).error_log,
        ErrorLog::Repeated,
        "request ids aside, the same error"
    );
    let mut other = failing.clone();
    other.attempt.2 = Some("create machine: insufficient capacity in region ord");
    let third = other.derive(&status);
    assert_eq!(third.error_log, ErrorLog::New, "a different error is new");
    third.apply(&mut status);
    let ok = Scenario::new("recovered").derive(&status);
    assert_eq!(ok.error_log, ErrorLog::None);
    assert_eq!(ok.consecutive_failures, 0);
    ok.apply(&mut status);
    assert_eq!(
        failing.derive(&status).error_log,
        ErrorLog::New,
        "after a success the old error is new again"
    );
}

#[test]
fn next_reconcile_at_is_when_the_runtime_comes_back() {
    let finished = t0() + jiff::SignedDuration::from_millis(250);
    let at = |d: Duration| finished + jiff::SignedDuration::try_from(d).unwrap();
    let p = RequeuePolicy::default();

    let converged = Scenario::new("converged").derive(&TenantStatus::default());
    assert_eq!(converged.next, Next::Resync);
    assert_eq!(
        converged.requeue_after, p.resync,
        "jitter sample 0.5 is the middle"
    );
    assert_eq!(converged.next_reconcile_at, at(p.resync));

    let changed = Scenario::new("changed")
        .step()
        .applied(1)
        .derive(&TenantStatus::default());
    assert_eq!(changed.next, Next::Soon(p.confirm_after));
    assert_eq!(changed.next_reconcile_at, at(p.confirm_after));

    let settling = Scenario::new("settling")
        .machine(Some("acme"), MachineState::Starting)
        .derive(&TenantStatus::default());
    assert_eq!(settling.next, Next::Soon(p.progress_after));

    // Only a replaced token revoked: nothing to confirm, the resync comes
    // back; with any other change, the confirmation.
    let revoked = Scenario::new("revoked")
        .revoked(1)
        .derive(&TenantStatus::default());
    assert_eq!(revoked.next, Next::Resync);
    assert_eq!(revoked.record.actions, 1, "still counted as a step");
    assert_eq!(revoked.record.result, "changed");
    let revoked_and_changed = Scenario::new("revoked and changed")
        .step()
        .applied(1)
        .revoked(1)
        .derive(&TenantStatus::default());
    assert_eq!(revoked_and_changed.next, Next::Soon(p.confirm_after));

    let mut status = TenantStatus {
        consecutive_failures: 3,
        ..TenantStatus::default()
    };
    let failed = Scenario::new("failed").step().failed().derive(&status);
    assert_eq!(failed.next, Next::Backoff);
    assert_eq!(
        failed.requeue_after,
        Duration::from_secs(8),
        "4th failure: 1s · 2^3"
    );
    failed.apply(&mut status);
    assert_eq!(status.next_reconcile_at, Some(at(Duration::from_secs(8))));
    assert_eq!(status.history[0].duration_ms, 250);

    let annotated = Scenario::new("annotated")
        .spec(|s| {
            s.replace(
                "  name: acme\n",
                "  name: acme\n  annotations:\n    flotilla.dev/resync-interval: 30s\n",
            )
        })
        .derive(&TenantStatus::default());
    assert_eq!(annotated.requeue_after, Duration::from_secs(30));
}
