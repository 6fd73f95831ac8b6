//! Rules for `spec.machines[]`, one machine group each: name (unique),
//! image, env names, metadata keys, restart policy, autostop and
//! `min_machines_running`. Where a group runs (`region`, `regions`,
//! `count`), its `guest` (with GPUs), `services`, `checks`, `init`,
//! `processes`, `stop_config`, `files`, `statics`, `dns` and `mounts` have
//! files of their own.

use std::collections::HashMap;

use super::{KnownSecrets, V};
use crate::ids::GroupName;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{AutoStop, MachineGroup, RestartKind, RestartPolicy};
use crate::spec::raw::{RawAutoStop, RawMachineGroup, RawRestart};

/// Machines per group. Fly rate-limits machine creation per app (about one
/// request per second, bursts of three; see `API-NOTES.md` §3), so a group of N
/// machines takes at least N seconds to converge and holds up the tenant's
/// other work meanwhile. A tenant slice with more than 100 identical machines
/// in one group is far outside what flotilla is for and is most often a typo
/// (`1000` for `100`); several groups remain possible.
pub const MAX_MACHINES_PER_GROUP: u32 = 100;

pub const DEFAULT_COUNT: u32 = 1;

impl V {
    /// Every group of `spec.machines`; group names are unique. `secrets`
    /// are the app secrets the spec declares (for `files` and `processes`).
    pub(super) fn machines(
        &mut self,
        groups: &[RawMachineGroup],
        secrets: &KnownSecrets,
        volumes: &[String],
        p: &Path,
    ) -> Option<Vec<MachineGroup>> {
        let mut seen = HashMap::new();
        self.each(groups, p, |v, g, gp| {
            v.group(g, gp, secrets, volumes, &mut seen)
        })
    }

    fn group(
        &mut self,
        g: &RawMachineGroup,
        p: &Path,
        secrets: &KnownSecrets,
        volumes: &[String],
        seen: &mut HashMap<String, Path>,
    ) -> Option<MachineGroup> {
        let name = self.unique_name(
            &g.name,
            p,
            GroupName::parse,
            ("group name", "group name"),
            seen,
        );
        let placement = self.placement(g, p);
        let image = self.required(&g.image, p, "image").and_then(|i| {
            if i.is_empty() || i.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.err(p.key("image"), SpecError::BadImage { value: i.clone() });
                None
            } else {
                Some(i.clone())
            }
        });
        let guest = self.guest(g.guest.as_ref(), &p.key("guest"));
        if let (Some(guest), Some(placement)) = (&guest, &placement)
            && let Some(kind) = guest.gpu_kind
        {
            self.gpu_regions(
                kind,
                &placement.region_list(),
                &p.key("guest").key("gpu_kind"),
            );
        }

        let env = g.env.clone().unwrap_or_default();
        self.env_names(&env, &p.key("env"));

        let services = self.services(
            g.services.as_deref().unwrap_or_default(),
            &p.key("services"),
        );

        let first_port = g
            .services
            .as_ref()
            .and_then(|s| s.first())
            .and_then(|s| s.internal_port);
        let checks = self.checks(g.checks.as_ref(), &p.key("checks"), first_port);

        let metadata = g.metadata.clone().unwrap_or_default();
        for key in metadata.keys() {
            if key.is_empty() {
                self.err(
                    p.key("metadata").key(key.clone()),
                    SpecError::EmptyMetadataKey,
                );
            } else if key.starts_with("flotilla.") || key.starts_with("fly_") {
                self.err(
                    p.key("metadata").key(key.clone()),
                    SpecError::ReservedMetadataKey { key: key.clone() },
                );
            }
        }

        let restart = self.restart(g.restart.as_ref(), &p.key("restart"));
        let autostop = match g.autostop {
            None | Some(RawAutoStop::Off) | Some(RawAutoStop::False) => AutoStop::Off,
            Some(RawAutoStop::Stop) | Some(RawAutoStop::True) => AutoStop::Stop,
            Some(RawAutoStop::Suspend) => AutoStop::Suspend,
        };
        let count = placement.as_ref().map(|pl| pl.count);
        let min_machines_running = match (g.min_machines_running, count) {
            (None, _) => Some(None),
            (Some(m), Some(c)) if m > i64::from(c) => {
                self.err(
                    p.key("min_machines_running"),
                    SpecError::MinMachinesAboveCount { min: m, count: c },
                );
                None
            }
            (Some(m), _) => self
                .range(m, 0, MAX_MACHINES_PER_GROUP, p.key("min_machines_running"))
                .map(Some),
        };
        let init = self.init(g.init.as_ref(), &p.key("init"));
        let files = self.files(
            g.files.as_deref().unwrap_or_default(),
            secrets,
            &p.key("files"),
        );
        let processes = self.processes(
            g.processes.as_deref().unwrap_or_default(),
            secrets,
            &p.key("processes"),
        );
        let stop_config = self.stop_config(g.stop_config.as_ref(), &p.key("stop_config"));
        let dns = self.dns(g.dns.as_ref(), &p.key("dns"));
        let statics = self.statics(g.statics.as_deref().unwrap_or_default(), &p.key("statics"));
        let mounts = self.mounts(
            g.mounts.as_deref().unwrap_or_default(),
            volumes,
            &p.key("mounts"),
        );

        let placement = placement?;
        Some(MachineGroup {
            name: name?,
            region: placement.region,
            count: placement.count,
            regions: placement.regions,
            image: image?,
            guest: guest?,
            env,
            services: services?,
            checks: checks?,
            metadata,
            restart: restart?,
            autostop,
            autostart: g.autostart.unwrap_or(true),
            min_machines_running: min_machines_running?,
            init: init?,
            files: files?,
            processes: processes?,
            stop_config: stop_config?,
            dns: dns?,
            statics: statics?,
            mounts: mounts?,
        })
    }

    fn restart(&mut self, r: Option<&RawRestart>, p: &Path) -> Option<RestartPolicy> {
        let r = r.cloned().unwrap_or_default();
        let policy = r.policy.unwrap_or(RestartKind::OnFailure);
        let max_retries = match r.max_retries {
            None => None,
            Some(_) if policy != RestartKind::OnFailure => {
                self.err(
                    p.key("max_retries"),
                    SpecError::MaxRetriesWithoutOnFailure {
                        policy: policy.as_str(),
                    },
                );
                return None;
            }
            Some(m) => Some(self.range(m, 0, u32::MAX, p.key("max_retries"))?),
        };
        Some(RestartPolicy {
            policy,
            max_retries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ids::IdError;
    use crate::spec::error::SpecError;
    use crate::spec::model::AutoStop;

    #[test]
    fn autostop_accepts_booleans_and_yes_is_a_string() {
        let t = load(&group("autostop: true"));
        assert_eq!(t.spec.machines[0].autostop, AutoStop::Stop);
        let t = load(&group("autostop: false"));
        assert_eq!(t.spec.machines[0].autostop, AutoStop::Off);
        // YAML 1.2: `yes` is a string, so it is an unknown value here.
        assert_eq!(
            errors(&group("autostop: yes")),
            one(
                "spec.machines[0].autostop",
                SpecError::UnknownVariant {
                    value: "yes".into(),
                    allowed: ["off", "stop", "suspend", "false", "true"]
                        .map(String::from)
                        .to_vec(),
                }
            )
        );
        assert_eq!(
            errors("paused: no"),
            one(
                "spec.paused",
                SpecError::WrongType {
                    expected: "a boolean (true or false)".into(),
                    found: "a string \"no\"".into(),
                    hint: None,
                }
            )
        );
    }

    #[test]
    fn machine_group_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
            (
                "missing field",
                "machines:\n  - name: web\n    region: ord\n".into(),
                one("spec.machines[0].image", E::MissingField { field: "image" }),
            ),
            (
                "bad group name",
                "machines:\n  - name: Web\n    region: ord\n    image: x\n".into(),
                one(
                    "spec.machines[0].name",
                    id_err("group name", "Web", IdError::BadLabelChar { found: 'W' }),
                ),
            ),
            (
                "bad region",
                "machines:\n  - name: web\n    region: chicago\n    image: x\n".into(),
                one(
                    "spec.machines[0].region",
                    id_err("region", "chicago", IdError::BadRegion),
                ),
            ),
            (
                "bad image",
                group("").replace("nginx:1.27", "\"nginx latest\""),
                one(
                    "spec.machines[0].image",
                    E::BadImage {
                        value: "nginx latest".into(),
                    },
                ),
            ),
            (
                "count too large",
                group("count: 101"),
                one(
                    "spec.machines[0].count",
                    E::TooManyMachines {
                        count: 101,
                        max: 100,
                    },
                ),
            ),
            (
                "negative count",
                group("count: -1"),
                one(
                    "spec.machines[0].count",
                    E::OutOfRange {
                        value: -1,
                        min: 0,
                        max: 100,
                    },
                ),
            ),
            (
                "env name",
                group("env:\n  1BAD: x"),
                one(
                    "spec.machines[0].env.1BAD",
                    E::BadEnvName { key: "1BAD".into() },
                ),
            ),
            (
                "reserved metadata",
                group("metadata:\n  flotilla.group: x\n  fly_process_group: y\n  ok: z"),
                vec![
                    (
                        "spec.machines[0].metadata[\"flotilla.group\"]".into(),
                        E::ReservedMetadataKey {
                            key: "flotilla.group".into(),
                        },
                    ),
                    (
                        "spec.machines[0].metadata.fly_process_group".into(),
                        E::ReservedMetadataKey {
                            key: "fly_process_group".into(),
                        },
                    ),
                ],
            ),
            (
                "empty metadata key",
                group("metadata:\n  \"\": x"),
                one("spec.machines[0].metadata[\"\"]", E::EmptyMetadataKey),
            ),
            (
                "max_retries needs on-failure",
                group("restart:\n  policy: always\n  max_retries: 3"),
                one(
                    "spec.machines[0].restart.max_retries",
                    E::MaxRetriesWithoutOnFailure { policy: "always" },
                ),
            ),
            (
                "min machines above count",
                group("count: 2\nmin_machines_running: 3"),
                one(
                    "spec.machines[0].min_machines_running",
                    E::MinMachinesAboveCount { min: 3, count: 2 },
                ),
            ),
            (
                "duplicate group",
                format!("{GROUP}  - name: web\n    region: fra\n    image: x\n"),
                one(
                    "spec.machines[1].name",
                    E::DuplicateName {
                        what: "group name",
                        name: "web".into(),
                        first: "spec.machines[0].name".into(),
                    },
                ),
            ),
            (
                "unknown restart policy",
                group("restart:\n  policy: never"),
                one(
                    "spec.machines[0].restart.policy",
                    E::UnknownVariant {
                        value: "never".into(),
                        allowed: ["no", "always", "on-failure", "spot-price"]
                            .map(String::from)
                            .to_vec(),
                    },
                ),
            ),
        ]);
    }
}
