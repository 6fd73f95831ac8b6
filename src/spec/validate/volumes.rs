//! Rules for `spec.volumes[]` and a group's `mounts[]`: volume names
//! (Fly's rule, unique), regions, size (1 to [`MAX_VOLUME_GB`]), snapshot
//! retention; at most one mount per group, naming a declared volume, at an
//! absolute directory; each volume mounted by one group at most, the
//! regions of a mounted volume including its group's, and a volume no
//! group mounts placed by its own regions.
//!
//! Shrinking a volume cannot be judged here (the spec does not know the
//! current size): the planner refuses it.

use std::collections::HashMap;

use super::V;
use crate::ids::{Region, VolumeName};
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{
    MAX_VOLUME_GB, MachineGroup, MountSpec, SNAPSHOT_RETENTION_DAYS, VolumeDeletionPolicy,
    VolumeSpec,
};
use crate::spec::raw::{RawMount, RawVolume};

/// Longest mount path accepted (Linux's `PATH_MAX`).
const MAX_MOUNT_PATH_BYTES: usize = 4096;

/// An absolute directory other than `/`, in normal form.
fn is_mount_path(p: &str) -> bool {
    p.len() > 1
        && p.len() <= MAX_MOUNT_PATH_BYTES
        && p.starts_with('/')
        && !p.ends_with('/')
        && !p.chars().any(char::is_control)
        && p[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// The names `spec.volumes` declares (valid or not), for mount checks.
pub(super) fn declared_volumes(volumes: &[RawVolume]) -> Vec<String> {
    volumes.iter().filter_map(|v| v.name.clone()).collect()
}

impl V {
    pub(super) fn volumes(&mut self, volumes: &[RawVolume], p: &Path) -> Option<Vec<VolumeSpec>> {
        let mut seen = HashMap::new();
        self.each(volumes, p, |v, vol, vp| v.volume(vol, vp, &mut seen))
    }

    fn volume(
        &mut self,
        raw: &RawVolume,
        p: &Path,
        seen: &mut HashMap<String, Path>,
    ) -> Option<VolumeSpec> {
        let name = self.unique_name(
            &raw.name,
            p,
            VolumeName::parse,
            ("volume name", "volume name"),
            seen,
        );
        let regions = match (&raw.region, &raw.regions) {
            (Some(_), Some(_)) => {
                self.err(p.key("regions"), SpecError::RegionAndRegions);
                None
            }
            (Some(r), None) => self
                .id(Region::parse, "region", r, p.key("region"))
                .map(|r| vec![r]),
            (None, Some(list)) if list.is_empty() => {
                self.err(
                    p.key("regions"),
                    SpecError::EmptyList {
                        field: "regions",
                        what: "region",
                    },
                );
                None
            }
            (None, Some(list)) => {
                let checked = self.unique_regions(list, &p.key("regions"));
                checked.map(|mut rs| {
                    rs.sort();
                    rs
                })
            }
            (None, None) => Some(Vec::new()),
        };
        let size_gb = self
            .required(&raw.size_gb, p, "sizeGb")
            .and_then(|s| self.range(*s, 1, MAX_VOLUME_GB, p.key("sizeGb")));
        let snapshot_retention = match raw.snapshot_retention {
            None => Some(None),
            Some(d) => {
                let (min, max) = SNAPSHOT_RETENTION_DAYS;
                self.range(d, min, max, p.key("snapshotRetention"))
                    .map(Some)
            }
        };
        Some(VolumeSpec {
            name: name?,
            regions: regions?,
            size_gb: size_gb?,
            encrypted: raw.encrypted.unwrap_or(true),
            snapshot_retention: snapshot_retention?,
            require_unique_zone: raw.require_unique_zone,
            deletion_policy: raw.deletion_policy.unwrap_or(VolumeDeletionPolicy::Retain),
        })
    }

    /// A group's `mounts`: at most one, naming a declared volume, at a
    /// mount path.
    pub(super) fn mounts(
        &mut self,
        mounts: &[RawMount],
        declared: &[String],
        p: &Path,
    ) -> Option<Vec<MountSpec>> {
        if mounts.len() > 1 {
            self.err(
                p.index(1),
                SpecError::TooManyMounts {
                    count: mounts.len(),
                },
            );
            return None;
        }
        self.each(mounts, p, |v, m, mp| {
            let volume = v.required(&m.volume, mp, "volume").and_then(|name| {
                if !declared.contains(name) {
                    v.err(
                        mp.key("volume"),
                        SpecError::UnknownVolume {
                            name: name.clone(),
                            known: declared.to_vec(),
                        },
                    );
                    return None;
                }
                v.id(VolumeName::parse, "volume name", name, mp.key("volume"))
            });
            let path = v.required(&m.path, mp, "path").and_then(|path| {
                if is_mount_path(path) {
                    Some(path.clone())
                } else {
                    v.err(
                        mp.key("path"),
                        SpecError::BadMountPath { path: path.clone() },
                    );
                    None
                }
            });
            Some(MountSpec {
                volume: volume?,
                path: path?,
            })
        })
    }

    /// Rules between volumes and the groups that mount them (both valid).
    pub(super) fn volume_mounts(
        &mut self,
        volumes: &[VolumeSpec],
        groups: &[MachineGroup],
        p: &Path,
    ) {
        let mut first: HashMap<&VolumeName, Path> = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            let Some(m) = g.mount() else { continue };
            let at = p.key("machines").index(i).key("mounts").index(0);
            if let Some(prev) = first.get(&m.volume) {
                self.err(
                    at.key("volume"),
                    SpecError::VolumeMountedTwice {
                        volume: m.volume.to_string(),
                        first: prev.to_string(),
                    },
                );
                continue;
            }
            first.insert(&m.volume, at.key("volume"));
            let Some((j, vol)) = volumes.iter().enumerate().find(|(_, v)| v.name == m.volume)
            else {
                continue;
            };
            if vol.regions.is_empty() {
                continue;
            }
            for region in g.region_list() {
                if !vol.regions.contains(&region) {
                    let vp = p.key("volumes").index(j);
                    self.err(
                        vp.key("regions"),
                        SpecError::VolumeRegionNotAllowed {
                            volume: vol.name.to_string(),
                            group: g.name.to_string(),
                            region: region.to_string(),
                            allowed: vol.regions.iter().map(ToString::to_string).collect(),
                        },
                    );
                }
            }
        }
        for (j, vol) in volumes.iter().enumerate() {
            if vol.regions.is_empty() && !first.contains_key(&vol.name) {
                self.err(
                    p.key("volumes").index(j),
                    SpecError::VolumeNeedsRegion {
                        name: vol.name.to_string(),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ids::IdError;
    use crate::spec::error::SpecError;
    use crate::spec::model::{MountSpec, VolumeDeletionPolicy};

    const VOL: &str = "volumes:\n  - name: data\n    sizeGb: 10\n";

    fn mounted(extra: &str) -> String {
        format!(
            "{}{VOL}",
            group(&format!(
                "mounts:\n  - volume: data\n    path: /data\n{extra}"
            ))
        )
    }

    #[test]
    fn the_minimal_volume_takes_the_defaults() {
        let t = load(&mounted(""));
        let v = &t.spec.volumes[0];
        assert_eq!(v.name.as_str(), "data");
        assert_eq!(v.size_gb, 10);
        assert!(v.encrypted);
        assert!(v.regions.is_empty());
        assert_eq!(v.snapshot_retention, None);
        assert_eq!(v.require_unique_zone, None);
        assert_eq!(v.deletion_policy, VolumeDeletionPolicy::Retain);
        assert_eq!(
            t.spec.machines[0].mounts,
            [MountSpec {
                volume: v.name.clone(),
                path: "/data".into(),
            }]
        );
        // A standalone volume with its own region.
        let t = load("volumes:\n  - name: spare\n    region: fra\n    sizeGb: 1\n");
        assert_eq!(t.spec.volumes[0].regions[0].as_str(), "fra");
    }

    #[test]
    fn every_field_is_kept() {
        let t = load(&format!(
            "{}volumes:\n  - name: data\n    regions: [ord, fra]\n    sizeGb: 500\n    encrypted: false\n    snapshotRetention: 60\n    requireUniqueZone: false\n    deletionPolicy: Delete\n",
            group("mounts:\n  - volume: data\n    path: /var/lib/data")
        ));
        let v = &t.spec.volumes[0];
        let regions: Vec<&str> = v.regions.iter().map(|r| r.as_str()).collect();
        assert_eq!(regions, ["fra", "ord"]);
        assert_eq!((v.size_gb, v.encrypted), (500, false));
        assert_eq!(v.snapshot_retention, Some(60));
        assert_eq!(v.require_unique_zone, Some(false));
        assert_eq!(v.deletion_policy, VolumeDeletionPolicy::Delete);
    }

    #[test]
    fn volume_rules_report_errors_at_their_paths() {
        use SpecError as E;
        let two_groups = format!(
            "{GROUP}    mounts:\n      - volume: data\n        path: /data\n  - name: api\n    region: ord\n    image: x\n    mounts:\n      - volume: data\n        path: /data\n{VOL}"
        );
        assert_cases(vec![
            (
                "missing size",
                "volumes:\n  - name: data\n    region: ord\n".into(),
                one(
                    "spec.volumes[0].sizeGb",
                    E::MissingField { field: "sizeGb" },
                ),
            ),
            (
                "size too large",
                mounted("").replace("sizeGb: 10", "sizeGb: 501"),
                one(
                    "spec.volumes[0].sizeGb",
                    E::OutOfRange {
                        value: 501,
                        min: 1,
                        max: 500,
                    },
                ),
            ),
            (
                "size zero",
                mounted("").replace("sizeGb: 10", "sizeGb: 0"),
                one(
                    "spec.volumes[0].sizeGb",
                    E::OutOfRange {
                        value: 0,
                        min: 1,
                        max: 500,
                    },
                ),
            ),
            (
                "huge negative size",
                mounted("").replace("sizeGb: 10", "sizeGb: -9223372036854775808"),
                one(
                    "spec.volumes[0].sizeGb",
                    E::OutOfRange {
                        value: i64::MIN.into(),
                        min: 1,
                        max: 500,
                    },
                ),
            ),
            (
                "retention",
                mounted("").replace("sizeGb: 10", "sizeGb: 10\n    snapshotRetention: 61"),
                one(
                    "spec.volumes[0].snapshotRetention",
                    E::OutOfRange {
                        value: 61,
                        min: 1,
                        max: 60,
                    },
                ),
            ),
            (
                "bad name",
                mounted("").replace("name: data", "name: my-data"),
                vec![
                    (
                        "spec.machines[0].mounts[0].volume".into(),
                        E::UnknownVolume {
                            name: "data".into(),
                            known: vec!["my-data".into()],
                        },
                    ),
                    (
                        "spec.volumes[0].name".into(),
                        id_err(
                            "volume name",
                            "my-data",
                            IdError::BadVolumeNameChar { found: '-' },
                        ),
                    ),
                ],
            ),
            (
                "duplicate name",
                format!(
                    "{}  - name: data\n    region: ord\n    sizeGb: 1\n",
                    mounted("")
                ),
                one(
                    "spec.volumes[1].name",
                    E::DuplicateName {
                        what: "volume name",
                        name: "data".into(),
                        first: "spec.volumes[0].name".into(),
                    },
                ),
            ),
            (
                "unknown volume",
                format!(
                    "{}volumes:\n  - name: other\n    region: ord\n    sizeGb: 1\n",
                    group("mounts:\n  - volume: data\n    path: /data")
                ),
                one(
                    "spec.machines[0].mounts[0].volume",
                    E::UnknownVolume {
                        name: "data".into(),
                        known: vec!["other".into()],
                    },
                ),
            ),
            (
                "two mounts",
                format!(
                    "{}{VOL}",
                    group(
                        "mounts:\n  - volume: data\n    path: /a\n  - volume: data\n    path: /b"
                    )
                ),
                one("spec.machines[0].mounts[1]", E::TooManyMounts { count: 2 }),
            ),
            (
                "mounted by two groups",
                two_groups,
                one(
                    "spec.machines[1].mounts[0].volume",
                    E::VolumeMountedTwice {
                        volume: "data".into(),
                        first: "spec.machines[0].mounts[0].volume".into(),
                    },
                ),
            ),
            (
                "region not allowed",
                mounted("").replace("sizeGb: 10", "sizeGb: 10\n    regions: [fra]"),
                one(
                    "spec.volumes[0].regions",
                    E::VolumeRegionNotAllowed {
                        volume: "data".into(),
                        group: "web".into(),
                        region: "ord".into(),
                        allowed: vec!["fra".into()],
                    },
                ),
            ),
            (
                "unmounted without region",
                "volumes:\n  - name: data\n    sizeGb: 1\n".into(),
                one(
                    "spec.volumes[0]",
                    E::VolumeNeedsRegion {
                        name: "data".into(),
                    },
                ),
            ),
            (
                "region and regions",
                "volumes:\n  - name: data\n    region: ord\n    regions: [fra]\n    sizeGb: 1\n"
                    .into(),
                one("spec.volumes[0].regions", E::RegionAndRegions),
            ),
            (
                "empty regions",
                "volumes:\n  - name: data\n    regions: []\n    sizeGb: 1\n".into(),
                one(
                    "spec.volumes[0].regions",
                    E::EmptyList {
                        field: "regions",
                        what: "region",
                    },
                ),
            ),
            (
                "repeated region",
                "volumes:\n  - name: data\n    regions: [ord, ord]\n    sizeGb: 1\n".into(),
                one(
                    "spec.volumes[0].regions[1]",
                    E::DuplicateValue {
                        what: "region",
                        value: "ord".into(),
                    },
                ),
            ),
            (
                "unknown policy",
                mounted("").replace("sizeGb: 10", "sizeGb: 10\n    deletionPolicy: Orphan"),
                one(
                    "spec.volumes[0].deletionPolicy",
                    E::UnknownVariant {
                        value: "Orphan".into(),
                        allowed: vec!["Retain".into(), "Delete".into()],
                    },
                ),
            ),
            (
                "mount without path",
                format!("{}{VOL}", group("mounts:\n  - volume: data")),
                one(
                    "spec.machines[0].mounts[0].path",
                    E::MissingField { field: "path" },
                ),
            ),
        ]);
    }

    #[test]
    fn wrong_shapes_are_reported_at_their_paths() {
        let paths =
            |body: &str| -> Vec<String> { errors(body).into_iter().map(|(p, _)| p).collect() };
        assert_eq!(
            paths(&mounted("").replace("sizeGb: 10", "sizeGb: ten")),
            ["spec.volumes[0].sizeGb"]
        );
        assert_eq!(
            paths(&mounted("").replace("sizeGb: 10", "sizeGb: 1.5")),
            ["spec.volumes[0].sizeGb"]
        );
        // The mount is unreadable, so the volume is mounted by no group.
        assert_eq!(
            paths(&format!("{}{VOL}", group("mounts: data"))),
            ["spec.machines[0].mounts", "spec.volumes[0]"]
        );
        assert_eq!(paths("volumes: {}\n"), ["spec.volumes"]);
        assert_eq!(
            paths(&mounted("").replace("sizeGb: 10", "sizeGb: 10\n    size: 5")),
            ["spec.volumes[0].size"]
        );
        assert_eq!(
            paths(&format!(
                "{}{VOL}",
                group("mounts:\n  - volume: data\n    path: /data\n    readOnly: true")
            )),
            ["spec.machines[0].mounts[0].readOnly"]
        );
        // An empty list means no volumes and no mount.
        let t = load("volumes: []\n");
        assert!(t.spec.volumes.is_empty());
        let t = load(&group("mounts: []"));
        assert!(t.spec.machines[0].mounts.is_empty());
    }

    #[test]
    fn mount_paths_are_absolute_directories() {
        for bad in [
            "data",
            "/",
            "/data/",
            "//data",
            "/a//b",
            "/a/./b",
            "/a/../etc",
            "/..",
            "/da\nta",
            "/da\u{7}ta",
            "",
        ] {
            let body = format!(
                "{}{VOL}",
                group(&format!(
                    "mounts:\n  - volume: data\n    path: {}",
                    serde_json::to_string(bad).unwrap()
                ))
            );
            assert_eq!(
                errors(&body),
                one(
                    "spec.machines[0].mounts[0].path",
                    SpecError::BadMountPath { path: bad.into() }
                ),
                "{bad:?}"
            );
        }
        let long = format!("/{}", "a".repeat(4096));
        let body = format!(
            "{}{VOL}",
            group(&format!("mounts:\n  - volume: data\n    path: {long}"))
        );
        assert_eq!(errors(&body).len(), 1);
        for ok in ["/data", "/var/lib/model-cache", "/a/b.c/d_e"] {
            let t = load(&format!(
                "{}{VOL}",
                group(&format!("mounts:\n  - volume: data\n    path: {ok}"))
            ));
            assert_eq!(t.spec.machines[0].mounts[0].path, ok);
        }
    }
}
