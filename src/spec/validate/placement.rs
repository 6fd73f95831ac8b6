//! Rules for where a group's machines run: `region` (one region) or
//! `regions` (several, one config), and `count`.
//!
//! * `regions: [ord, iad]` spreads `count` evenly, in the order written: the
//!   first `count % n` regions take one machine more (count 5 over
//!   `[iad, ord]` is iad 3, ord 2). `count` defaults to one per region.
//! * `regions: {ord: 2, iad: 1}` gives each region its count; `count` may be
//!   left out, or must equal the sum.
//! * A `regions` of one region means the same as `region` (the model stores
//!   it so, and canonical JSON writes it so).
//! * At most [`MAX_MACHINES_PER_GROUP`] machines in all.

use std::collections::{BTreeMap, HashSet};

use super::V;
use super::machines::{DEFAULT_COUNT, MAX_MACHINES_PER_GROUP};
use crate::ids::Region;
use crate::spec::error::{Path, SpecError};
use crate::spec::raw::{RawMachineGroup, RawRegions};

/// Where a group runs, as the model stores it (see `MachineGroup`).
pub(super) struct Placement {
    pub region: Option<Region>,
    pub count: u32,
    pub regions: BTreeMap<Region, u32>,
}

pub(super) const REGION_KEY_RULE: &str =
    "a Fly region code is three lowercase letters, such as `ord`";

impl Placement {
    /// Every region of the placement.
    pub fn region_list(&self) -> Vec<&Region> {
        self.region.iter().chain(self.regions.keys()).collect()
    }
}

impl V {
    pub(super) fn placement(&mut self, g: &RawMachineGroup, p: &Path) -> Option<Placement> {
        match (&g.region, &g.regions) {
            (None, None) => {
                self.err(p.clone(), SpecError::RegionRequired);
                None
            }
            (Some(_), Some(_)) => {
                self.err(p.key("regions"), SpecError::RegionAndRegions);
                None
            }
            (Some(r), None) => {
                let region = self.id(Region::parse, "region", r, p.key("region"));
                let count = self.count(g.count, p)?;
                Some(Placement {
                    region: Some(region?),
                    count,
                    regions: BTreeMap::new(),
                })
            }
            (None, Some(regions)) => {
                let rp = p.key("regions");
                let counts = match regions {
                    RawRegions::Invalid(found) => {
                        self.err(
                            rp,
                            SpecError::WrongType {
                                expected: "a list of regions or a mapping of region to count"
                                    .into(),
                                found: found.clone(),
                                hint: None,
                            },
                        );
                        return None;
                    }
                    RawRegions::List(list) => self.spread(list, g.count, p)?,
                    RawRegions::Counts(counts) => self.region_counts(counts, g.count, p)?,
                };
                Some(normalize(counts))
            }
        }
    }

    /// `count` of a group: default 1, at most [`MAX_MACHINES_PER_GROUP`].
    fn count(&mut self, count: Option<i64>, p: &Path) -> Option<u32> {
        match count {
            None => Some(DEFAULT_COUNT),
            Some(c) => self.total(c, p.key("count")),
        }
    }

    fn total(&mut self, c: i64, path: Path) -> Option<u32> {
        if c > i64::from(MAX_MACHINES_PER_GROUP) {
            self.err(
                path,
                SpecError::TooManyMachines {
                    count: c,
                    max: MAX_MACHINES_PER_GROUP,
                },
            );
            return None;
        }
        self.range(c, 0, MAX_MACHINES_PER_GROUP, path)
    }

    /// A `regions` list at `rp`: each a valid region, none twice, in the
    /// order given (a group's and a volume's list follow the same rule).
    pub(super) fn unique_regions(&mut self, list: &[String], rp: &Path) -> Option<Vec<Region>> {
        let mut seen = HashSet::new();
        self.each(list, rp, |v, r, ip| {
            let region = v.id(Region::parse, "region", r, ip.clone())?;
            if !seen.insert(region.clone()) {
                v.err(
                    ip.clone(),
                    SpecError::DuplicateValue {
                        what: "region",
                        value: region.to_string(),
                    },
                );
                return None;
            }
            Some(region)
        })
    }

    /// `regions: [..]`: valid, unique regions; `count` spread in order.
    fn spread(
        &mut self,
        list: &[String],
        count: Option<i64>,
        p: &Path,
    ) -> Option<Vec<(Region, u32)>> {
        let rp = p.key("regions");
        if list.is_empty() {
            self.err(
                rp,
                SpecError::EmptyList {
                    field: "regions",
                    what: "region",
                },
            );
            return None;
        }
        let regions = self.unique_regions(list, &rp);
        let total = match count {
            None => Some(u32::try_from(list.len()).unwrap_or(u32::MAX)),
            Some(c) => self.total(c, p.key("count")),
        };
        let (regions, total) = (regions?, total?);
        if total > MAX_MACHINES_PER_GROUP {
            self.err(
                rp,
                SpecError::TooManyMachines {
                    count: i64::from(total),
                    max: MAX_MACHINES_PER_GROUP,
                },
            );
            return None;
        }
        let n = u32::try_from(regions.len()).unwrap_or(u32::MAX);
        Some(
            regions
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let extra = u32::from(u32::try_from(i).unwrap_or(u32::MAX) < total % n);
                    (r, total / n + extra)
                })
                .collect(),
        )
    }

    /// `regions: {ord: 2}`: valid region keys, counts in range, the sum
    /// within the group limit and equal to `count` when that is given.
    fn region_counts(
        &mut self,
        counts: &[(String, i64)],
        count: Option<i64>,
        p: &Path,
    ) -> Option<Vec<(Region, u32)>> {
        let rp = p.key("regions");
        if counts.is_empty() {
            self.err(
                rp,
                SpecError::EmptyList {
                    field: "regions",
                    what: "region",
                },
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (key, n) in counts {
            let kp = rp.key(key.clone());
            let region = match Region::parse(key.clone()) {
                Ok(r) => Some(r),
                Err(_) => {
                    self.err(
                        kp.clone(),
                        SpecError::BadKey {
                            what: "region",
                            key: key.clone(),
                            rule: REGION_KEY_RULE,
                        },
                    );
                    None
                }
            };
            let n = self.range(*n, 0, MAX_MACHINES_PER_GROUP, kp);
            match (region, n) {
                (Some(r), Some(n)) => out.push((r, n)),
                _ => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let sum: i64 = out.iter().map(|(_, n)| i64::from(*n)).sum();
        if sum > i64::from(MAX_MACHINES_PER_GROUP) {
            self.err(
                rp,
                SpecError::TooManyMachines {
                    count: sum,
                    max: MAX_MACHINES_PER_GROUP,
                },
            );
            return None;
        }
        if let Some(c) = count
            && c != sum
        {
            self.err(p.key("count"), SpecError::RegionCountsSum { count: c, sum });
            return None;
        }
        Some(out)
    }
}

/// One region is a plain `region`; several are `regions` with the total.
fn normalize(counts: Vec<(Region, u32)>) -> Placement {
    let count = counts.iter().map(|(_, n)| n).sum();
    if let [(region, _)] = counts.as_slice() {
        return Placement {
            region: Some(region.clone()),
            count,
            regions: BTreeMap::new(),
        };
    }
    Placement {
        region: None,
        count,
        regions: counts.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::test_support::*;
    use super::REGION_KEY_RULE;
    use crate::ids::{IdError, Region};
    use crate::spec::error::SpecError;

    const BASE: &str = "machines:\n  - name: web\n    image: nginx:1.27\n";

    fn with(extra: &str) -> String {
        let mut s = BASE.to_string();
        for line in extra.lines() {
            s.push_str("    ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    fn counts(pairs: &[(&str, u32)]) -> BTreeMap<Region, u32> {
        pairs
            .iter()
            .map(|(r, n)| (Region::parse(*r).unwrap(), *n))
            .collect()
    }

    #[test]
    fn a_list_spreads_count_in_the_order_written() {
        for (extra, want, total) in [
            (
                "regions: [iad, ord]\ncount: 5",
                counts(&[("iad", 3), ("ord", 2)]),
                5,
            ),
            (
                "regions: [ord, iad]\ncount: 5",
                counts(&[("ord", 3), ("iad", 2)]),
                5,
            ),
            (
                "regions: [ord, iad, ams]",
                counts(&[("ord", 1), ("iad", 1), ("ams", 1)]),
                3,
            ),
            (
                "regions: [ord, iad]\ncount: 1",
                counts(&[("ord", 1), ("iad", 0)]),
                1,
            ),
            (
                "regions: {ord: 2, iad: 1}",
                counts(&[("ord", 2), ("iad", 1)]),
                3,
            ),
            (
                "regions: {ord: 2, iad: 1}\ncount: 3",
                counts(&[("ord", 2), ("iad", 1)]),
                3,
            ),
        ] {
            let g = &load(&with(extra)).spec.machines[0];
            assert_eq!(g.region, None, "{extra}");
            assert_eq!(g.regions, want, "{extra}");
            assert_eq!(g.count, total, "{extra}");
        }
    }

    #[test]
    fn one_region_in_regions_means_region() {
        let plain = load(&with("region: ord\ncount: 2"));
        for extra in ["regions: [ord]\ncount: 2", "regions: {ord: 2}"] {
            let t = load(&with(extra));
            assert_eq!(t, plain, "{extra}");
            assert_eq!(t.canonical_json(), plain.canonical_json());
        }
        assert!(!plain.canonical_json().contains("regions"));
    }

    #[test]
    fn placement_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
            (
                "neither region nor regions",
                with(""),
                one("spec.machines[0]", E::RegionRequired),
            ),
            (
                "both",
                with("region: ord\nregions: [iad]"),
                one("spec.machines[0].regions", E::RegionAndRegions),
            ),
            (
                "empty list",
                with("regions: []"),
                one(
                    "spec.machines[0].regions",
                    E::EmptyList {
                        field: "regions",
                        what: "region",
                    },
                ),
            ),
            (
                "empty mapping",
                with("regions: {}"),
                one(
                    "spec.machines[0].regions",
                    E::EmptyList {
                        field: "regions",
                        what: "region",
                    },
                ),
            ),
            (
                "bad and repeated regions in a list",
                with("regions: [ord, Chicago, ord]"),
                vec![
                    (
                        "spec.machines[0].regions[1]".into(),
                        id_err("region", "Chicago", IdError::BadRegion),
                    ),
                    (
                        "spec.machines[0].regions[2]".into(),
                        E::DuplicateValue {
                            what: "region",
                            value: "ord".into(),
                        },
                    ),
                ],
            ),
            (
                "bad region key and count",
                with("regions: {ORD: 1, iad: -2}"),
                vec![
                    (
                        "spec.machines[0].regions.ORD".into(),
                        E::BadKey {
                            what: "region",
                            key: "ORD".into(),
                            rule: REGION_KEY_RULE,
                        },
                    ),
                    (
                        "spec.machines[0].regions.iad".into(),
                        E::OutOfRange {
                            value: -2,
                            min: 0,
                            max: 100,
                        },
                    ),
                ],
            ),
            (
                "count differs from the sum",
                with("regions: {ord: 2, iad: 1}\ncount: 4"),
                one(
                    "spec.machines[0].count",
                    E::RegionCountsSum { count: 4, sum: 3 },
                ),
            ),
            (
                "the sum is over the group limit",
                with("regions: {ord: 60, iad: 60}"),
                one(
                    "spec.machines[0].regions",
                    E::TooManyMachines {
                        count: 120,
                        max: 100,
                    },
                ),
            ),
            (
                "a spread count over the limit",
                with("regions: [ord, iad]\ncount: 101"),
                one(
                    "spec.machines[0].count",
                    E::TooManyMachines {
                        count: 101,
                        max: 100,
                    },
                ),
            ),
            (
                "regions of the wrong type",
                with("regions: ord"),
                one(
                    "spec.machines[0].regions",
                    E::WrongType {
                        expected: "a list of regions or a mapping of region to count".into(),
                        found: "a string \"ord\"".into(),
                        hint: None,
                    },
                ),
            ),
            (
                "min_machines_running counts every region",
                with("regions: {ord: 1, iad: 1}\nmin_machines_running: 3"),
                one(
                    "spec.machines[0].min_machines_running",
                    E::MinMachinesAboveCount { min: 3, count: 2 },
                ),
            ),
        ]);
    }
}
