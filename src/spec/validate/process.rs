//! Rules for what a group's machines run and how they stop: `init`,
//! `processes[]` and `stop_config`.
//!
//! * Command lines (`exec`, `entrypoint`, `cmd`) are lists of arguments;
//!   an argument may be empty but holds no NUL (a process argument cannot).
//! * A process's `env` keys follow the group's env rule; `secrets[]` and
//!   `env_from[]` set environment variable names (`env_var`) by the same
//!   rule. A process secret names an app secret the spec declares (in
//!   `spec.secrets`, or delivered by a token): the value never appears here.
//! * `stop_config.timeout` is longer than 0s and at most
//!   [`MAX_STOP_TIMEOUT_SECS`] (flotilla's bound; Fly documents none).

use std::collections::{BTreeMap, HashMap};

use super::{KnownSecrets, V};
use crate::ids::SecretName;
use crate::spec::duration::format_duration;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{EnvFromSpec, InitSpec, ProcessSecretSpec, ProcessSpec, StopSpec};
use crate::spec::raw::{RawInit, RawProcess, RawStopConfig};

/// The longest `stop_config.timeout` flotilla accepts: one day. Fly's docs
/// state no maximum (unverified); a longer wait is most likely a typo.
pub const MAX_STOP_TIMEOUT_SECS: u64 = 86_400;

const ARG_RULE: &str = "process arguments cannot hold NUL characters";
const USER_RULE: &str =
    "a user name or uid: 1 to 64 characters, no whitespace or control characters";

/// An environment variable name: letters, digits and `_`, not starting
/// with a digit.
pub(super) fn is_env_name(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl V {
    /// Every key of an env map is an environment variable name.
    pub(super) fn env_names(&mut self, env: &BTreeMap<String, String>, p: &Path) {
        for key in env.keys() {
            if !is_env_name(key) {
                self.err(
                    p.key(key.clone()),
                    SpecError::BadEnvName { key: key.clone() },
                );
            }
        }
    }

    fn env_var(&mut self, v: &Option<String>, parent: &Path) -> Option<String> {
        let name = self.required(v, parent, "env_var")?;
        if !is_env_name(name) {
            self.err(
                parent.key("env_var"),
                SpecError::BadValue {
                    what: "environment variable name",
                    value: name.clone(),
                    rule: "use letters, digits and '_', not starting with a digit",
                },
            );
            return None;
        }
        Some(name.clone())
    }

    /// A command line: arguments without NUL.
    fn args(&mut self, args: Option<&Vec<String>>, p: &Path) -> Option<Vec<String>> {
        let args = args.cloned().unwrap_or_default();
        let mut ok = true;
        for (i, a) in args.iter().enumerate() {
            if a.contains('\0') {
                self.err(
                    p.index(i),
                    SpecError::BadValue {
                        what: "argument",
                        value: a.clone(),
                        rule: ARG_RULE,
                    },
                );
                ok = false;
            }
        }
        ok.then_some(args)
    }

    pub(super) fn init(&mut self, init: Option<&RawInit>, p: &Path) -> Option<InitSpec> {
        let init = init.cloned().unwrap_or_default();
        let exec = self.args(init.exec.as_ref(), &p.key("exec"));
        let entrypoint = self.args(init.entrypoint.as_ref(), &p.key("entrypoint"));
        let cmd = self.args(init.cmd.as_ref(), &p.key("cmd"));
        Some(InitSpec {
            exec: exec?,
            entrypoint: entrypoint?,
            cmd: cmd?,
            tty: init.tty.unwrap_or(false),
        })
    }

    pub(super) fn processes(
        &mut self,
        processes: &[RawProcess],
        secrets: &KnownSecrets,
        p: &Path,
    ) -> Option<Vec<ProcessSpec>> {
        self.each(processes, p, |v, proc, pp| v.process(proc, secrets, pp))
    }

    fn process(
        &mut self,
        proc: &RawProcess,
        secrets: &KnownSecrets,
        p: &Path,
    ) -> Option<ProcessSpec> {
        let errors_before = self.errors.len();
        let exec = self.args(proc.exec.as_ref(), &p.key("exec"));
        let entrypoint = self.args(proc.entrypoint.as_ref(), &p.key("entrypoint"));
        let cmd = self.args(proc.cmd.as_ref(), &p.key("cmd"));
        if let Some(user) = &proc.user
            && (user.is_empty()
                || user.chars().count() > 64
                || user.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            self.err(
                p.key("user"),
                SpecError::BadValue {
                    what: "user",
                    value: user.clone(),
                    rule: USER_RULE,
                },
            );
        }
        let env = proc.env.clone().unwrap_or_default();
        self.env_names(&env, &p.key("env"));
        let mut seen = HashMap::new();
        let sp = p.key("secrets");
        let process_secrets = self.each(
            proc.secrets.as_deref().unwrap_or_default(),
            &sp,
            |v, s, ip| {
                let env_var = v.env_var(&s.env_var, ip)?;
                let (name, at) = match &s.name {
                    Some(n) => (n.clone(), ip.key("name")),
                    None => (env_var.clone(), ip.key("env_var")),
                };
                let name = v.known_secret(&name, "processes[].secrets", secrets, at)?;
                v.unique(
                    &mut seen,
                    "process secret env_var",
                    &env_var,
                    ip.key("env_var"),
                )
                .then_some(ProcessSecretSpec { env_var, name })
            },
        );
        let env_from = self.each(
            proc.env_from.as_deref().unwrap_or_default(),
            &p.key("env_from"),
            |v, e, ip| {
                let env_var = v.env_var(&e.env_var, ip);
                let field_ref = v.required(&e.field_ref, ip, "field_ref").copied();
                Some(EnvFromSpec {
                    env_var: env_var?,
                    field_ref: field_ref?,
                })
            },
        );
        if self.errors.len() > errors_before {
            return None;
        }
        Some(ProcessSpec {
            exec: exec?,
            entrypoint: entrypoint?,
            cmd: cmd?,
            user: proc.user.clone(),
            env,
            secrets: process_secrets?,
            ignore_app_secrets: proc.ignore_app_secrets.unwrap_or(false),
            env_from: env_from?,
        })
    }

    /// `name` is an app secret the spec declares.
    pub(super) fn known_secret(
        &mut self,
        name: &str,
        field: &'static str,
        secrets: &KnownSecrets,
        path: Path,
    ) -> Option<SecretName> {
        if secrets.contains_key(name)
            && let Ok(n) = SecretName::parse(name.to_string())
        {
            return Some(n);
        }
        self.err(
            path,
            SpecError::UnknownSecret {
                field,
                name: name.to_string(),
                known: secrets.keys().cloned().collect(),
            },
        );
        None
    }

    pub(super) fn stop_config(
        &mut self,
        stop: Option<&RawStopConfig>,
        p: &Path,
    ) -> Option<StopSpec> {
        let stop = stop.cloned().unwrap_or_default();
        let timeout = match &stop.timeout {
            None => None,
            Some(t) => {
                let tp = p.key("timeout");
                let d = self.positive_duration(Some(t), 0, tp.clone())?;
                if d.0 > MAX_STOP_TIMEOUT_SECS {
                    self.err(
                        tp,
                        SpecError::DurationTooLong {
                            value: format_duration(d.0),
                            max: format_duration(MAX_STOP_TIMEOUT_SECS),
                        },
                    );
                    return None;
                }
                Some(d)
            }
        };
        Some(StopSpec {
            signal: stop.signal,
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::spec::error::SpecError;
    use crate::spec::model::{DurationSecs, FieldRef, StopSignal};

    const SECRETS: &str =
        "secrets:\n  - name: API_KEY\n    external: {}\n  - name: SESSION\n    generate: {}\n";

    #[test]
    fn init_processes_and_stop_config_load() {
        let t = load(&format!(
            "{}{SECRETS}",
            group(
                "init:\n  cmd: [serve, --port, \"8080\"]\n  entrypoint: [/bin/app]\n  tty: true\n\
                 processes:\n  - cmd: [worker]\n    user: app\n    env: {MODE: jobs}\n    \
                 secrets:\n      - env_var: KEY\n        name: API_KEY\n      - env_var: SESSION\n    \
                 env_from:\n      - env_var: MACHINE_ID\n        field_ref: id\n\
                 stop_config:\n  signal: SIGTERM\n  timeout: 30s"
            )
        ));
        let g = &t.spec.machines[0];
        assert_eq!(g.init.cmd, ["serve", "--port", "8080"]);
        assert_eq!(g.init.entrypoint, ["/bin/app"]);
        assert!(g.init.tty && g.init.exec.is_empty());
        let p = &g.processes[0];
        assert_eq!(p.cmd, ["worker"]);
        assert_eq!(p.user.as_deref(), Some("app"));
        assert_eq!(p.secrets[0].name.as_str(), "API_KEY");
        // The name defaults to env_var.
        assert_eq!(p.secrets[1].name.as_str(), "SESSION");
        assert_eq!(p.env_from[0].field_ref, FieldRef::Id);
        assert_eq!(g.stop_config.signal, Some(StopSignal::Term));
        assert_eq!(g.stop_config.timeout, Some(DurationSecs(30)));
    }

    #[test]
    fn empty_parts_mean_unset() {
        let plain = load(&group(""));
        let empty = load(&group(
            "init: {}\nprocesses: []\nstop_config: {}\ndns: {}\nfiles: []\nstatics: []",
        ));
        assert_eq!(empty, plain);
        assert_eq!(empty.canonical_json(), plain.canonical_json());
    }

    #[test]
    fn process_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
            (
                "NUL in an argument",
                group("init:\n  cmd: [\"a\\0b\"]"),
                one(
                    "spec.machines[0].init.cmd[0]",
                    E::BadValue {
                        what: "argument",
                        value: "a\0b".into(),
                        rule: super::ARG_RULE,
                    },
                ),
            ),
            (
                "unknown process secret",
                format!(
                    "{}{SECRETS}",
                    group("processes:\n  - secrets:\n      - env_var: DB_URL")
                ),
                one(
                    "spec.machines[0].processes[0].secrets[0].env_var",
                    E::UnknownSecret {
                        field: "processes[].secrets",
                        name: "DB_URL".into(),
                        known: vec!["API_KEY".into(), "SESSION".into()],
                    },
                ),
            ),
            (
                "bad env_var and env key",
                group(
                    "processes:\n  - env: {1X: a}\n    env_from:\n      - env_var: a-b\n        field_ref: region",
                ),
                vec![
                    (
                        "spec.machines[0].processes[0].env.1X".into(),
                        E::BadEnvName { key: "1X".into() },
                    ),
                    (
                        "spec.machines[0].processes[0].env_from[0].env_var".into(),
                        E::BadValue {
                            what: "environment variable name",
                            value: "a-b".into(),
                            rule: "use letters, digits and '_', not starting with a digit",
                        },
                    ),
                ],
            ),
            (
                "missing field_ref",
                group("processes:\n  - env_from:\n      - env_var: X"),
                one(
                    "spec.machines[0].processes[0].env_from[0].field_ref",
                    E::MissingField { field: "field_ref" },
                ),
            ),
            (
                "bad user",
                group("processes:\n  - user: \"root user\""),
                one(
                    "spec.machines[0].processes[0].user",
                    E::BadValue {
                        what: "user",
                        value: "root user".into(),
                        rule: super::USER_RULE,
                    },
                ),
            ),
            (
                "unknown signal",
                group("stop_config:\n  signal: SIGSTOP"),
                one(
                    "spec.machines[0].stop_config.signal",
                    E::UnknownVariant {
                        value: "SIGSTOP".into(),
                        allowed: [
                            "SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2",
                            "SIGTERM",
                        ]
                        .map(String::from)
                        .to_vec(),
                    },
                ),
            ),
            (
                "zero stop timeout",
                group("stop_config:\n  timeout: 0s"),
                one("spec.machines[0].stop_config.timeout", E::ZeroDuration),
            ),
            (
                "stop timeout too long",
                group("stop_config:\n  timeout: 2d"),
                one(
                    "spec.machines[0].stop_config.timeout",
                    E::DurationTooLong {
                        value: "2d".into(),
                        max: "1d".into(),
                    },
                ),
            ),
            (
                "unknown init field",
                group("init:\n  command: [x]"),
                one(
                    "spec.machines[0].init.command",
                    E::UnknownField {
                        field: "command".into(),
                        allowed: ["exec", "entrypoint", "cmd", "tty"]
                            .map(String::from)
                            .to_vec(),
                        suggestion: None,
                    },
                ),
            ),
        ]);
    }
}
