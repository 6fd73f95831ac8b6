//! GPU guests: Fly's GPU kinds, the regions that offer each ([`GPU_REGIONS`],
//! the one table flotilla checks specs against), and the rules for
//! `guest.gpu_kind` and `guest.gpus`.
//!
//! Where the table comes from (read 2026 from stored copies of Fly's docs;
//! no live access):
//! * the kinds: Fly's "Using GPUs with FKS" page (`fly.io/docs/kubernetes/
//!   using-gpus/`): "The available GPU types are: `a10`, `l40s`,
//!   `a100-pcie-40gb` and `a100-sxm4-80gb`", and "The valid number of GPUs
//!   you can request are: 1, 2, 4 and 8" (the counts in [`GPU_COUNTS`]);
//! * the regions: Fly's GPU quickstart (`fly.io/docs/gpus/gpu-quickstart/`):
//!   "a10: ord, l40s: ord, a100-40gb: ord, a100-80gb: iad, sjc, syd, ams";
//!   the preset `a100-40gb` is `gpu_kind` `a100-pcie-40gb` ("Getting started
//!   with Fly GPUs": "The `a100-40gb` preset specifies a `a100-pcie-40gb` GPU
//!   with the `performance-8x` CPU config"), and `a100-80gb` is
//!   `a100-sxm4-80gb`;
//! * performance CPUs: the same page (GPU presets run `performance-8x`) and
//!   fly-go's `DefaultGPUVMSize = "performance-8x"`.
//!
//! Unverified: an older revision of the quickstart (in superfly/docs' history)
//! lists `a100-80gb` in `mia` as well and has no `a10`; Fly's FKS page says
//! "GPUs are deprecated and will be unavailable after August 1" (for FKS;
//! whether Machines GPUs follow is not stated). Regions change without notice:
//! when Fly moves a kind, this table is the one place to edit. The simulator
//! keeps its own copy of Fly's behaviour (`sim::machine_config::GPU_KINDS`);
//! `tests/it/reconcile_parts.rs` checks that the two agree.

use super::V;
use crate::ids::Region;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{CpuKind, GpuKind};

/// Each GPU kind and the Fly regions that offer it (see the module doc).
pub const GPU_REGIONS: [(GpuKind, &[&str]); 4] = [
    (GpuKind::A10, &["ord"]),
    (GpuKind::L40s, &["ord"]),
    (GpuKind::A100Pcie40gb, &["ord"]),
    (GpuKind::A100Sxm4_80gb, &["iad", "sjc", "syd", "ams"]),
];

/// GPU counts Fly offers per machine.
pub const GPU_COUNTS: [u32; 4] = [1, 2, 4, 8];

/// The regions that offer `kind`.
pub fn gpu_regions(kind: GpuKind) -> &'static [&'static str] {
    GPU_REGIONS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&[], |(_, r)| *r)
}

impl V {
    /// `gpu_kind` and `gpus` of a guest with `cpu_kind`: both or neither
    /// (the count defaults to 1), a count Fly offers, performance CPUs.
    pub(super) fn gpu(
        &mut self,
        kind: Option<GpuKind>,
        gpus: Option<i64>,
        cpu_kind: Option<CpuKind>,
        p: &Path,
    ) -> Option<(Option<GpuKind>, Option<u32>)> {
        let Some(kind) = kind else {
            if gpus.is_some() {
                self.err(p.key("gpus"), SpecError::GpusWithoutKind);
                return None;
            }
            return Some((None, None));
        };
        let count = match gpus {
            None => Some(1),
            Some(n) => match u32::try_from(n) {
                Ok(c) if GPU_COUNTS.contains(&c) => Some(c),
                _ => {
                    self.err(p.key("gpus"), SpecError::BadGpuCount { gpus: n });
                    None
                }
            },
        };
        if let Some(cpu) = cpu_kind
            && cpu != CpuKind::Performance
        {
            self.err(
                p.key("gpu_kind"),
                SpecError::GpuNeedsPerformance {
                    cpu_kind: cpu.as_str(),
                },
            );
            return None;
        }
        Some((Some(kind), Some(count?)))
    }

    /// Every region of a GPU group must offer its kind.
    pub(super) fn gpu_regions(&mut self, kind: GpuKind, regions: &[&Region], p: &Path) {
        let offered = gpu_regions(kind);
        for r in regions {
            if !offered.contains(&r.as_str()) {
                self.err(
                    p.clone(),
                    SpecError::GpuNotInRegion {
                        kind: kind.as_str(),
                        region: r.to_string(),
                        offered: offered.iter().map(|s| s.to_string()).collect(),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn gpu_group(region: &str, guest: &str) -> String {
        group(&format!("guest:\n  {guest}")).replace("region: ord", &format!("region: {region}"))
    }

    #[test]
    fn every_kind_has_regions_and_every_kind_is_in_the_table() {
        for kind in GpuKind::ALL {
            assert!(!gpu_regions(kind).is_empty(), "{kind:?}");
            for r in gpu_regions(kind) {
                assert!(Region::parse(*r).is_ok(), "{r}");
            }
        }
        assert_eq!(GPU_REGIONS.len(), GpuKind::ALL.len());
    }

    #[test]
    fn a_gpu_guest_in_a_region_that_offers_it() {
        let t = load(&gpu_group("ord", "size: performance-8x\n  gpu_kind: l40s"));
        let g = t.spec.machines[0].guest;
        assert_eq!((g.gpu_kind, g.gpus), (Some(GpuKind::L40s), Some(1)));
        let t = load(&gpu_group(
            "iad",
            "cpu_kind: performance\n  cpus: 8\n  gpu_kind: a100-sxm4-80gb\n  gpus: 2",
        ));
        let g = t.spec.machines[0].guest;
        assert_eq!(
            (g.gpu_kind, g.gpus),
            (Some(GpuKind::A100Sxm4_80gb), Some(2))
        );
        // A guest without GPUs carries none (and canonical JSON says nothing).
        let t = load(&group(""));
        assert_eq!(t.spec.machines[0].guest.gpu_kind, None);
        assert!(!t.canonical_json().contains("gpu"));
    }

    #[test]
    fn gpu_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
            (
                "shared CPUs",
                gpu_group("ord", "gpu_kind: a10"),
                one(
                    "spec.machines[0].guest.gpu_kind",
                    E::GpuNeedsPerformance { cpu_kind: "shared" },
                ),
            ),
            (
                "a count without a kind",
                gpu_group("ord", "cpu_kind: performance\n  gpus: 1"),
                one("spec.machines[0].guest.gpus", E::GpusWithoutKind),
            ),
            (
                "a count Fly does not offer",
                gpu_group("ord", "size: performance-8x\n  gpu_kind: a10\n  gpus: 3"),
                one("spec.machines[0].guest.gpus", E::BadGpuCount { gpus: 3 }),
            ),
            (
                "a region without that kind",
                gpu_group("fra", "size: performance-8x\n  gpu_kind: a100-sxm4-80gb"),
                one(
                    "spec.machines[0].guest.gpu_kind",
                    E::GpuNotInRegion {
                        kind: "a100-sxm4-80gb",
                        region: "fra".into(),
                        offered: ["iad", "sjc", "syd", "ams"].map(String::from).to_vec(),
                    },
                ),
            ),
            (
                "one of several regions without that kind",
                group("guest:\n  size: performance-8x\n  gpu_kind: l40s")
                    .replace("region: ord", "regions: [ord, ams]"),
                one(
                    "spec.machines[0].guest.gpu_kind",
                    E::GpuNotInRegion {
                        kind: "l40s",
                        region: "ams".into(),
                        offered: vec!["ord".into()],
                    },
                ),
            ),
            (
                "an unknown kind",
                gpu_group("ord", "size: performance-8x\n  gpu_kind: h100"),
                one(
                    "spec.machines[0].guest.gpu_kind",
                    E::UnknownVariant {
                        value: "h100".into(),
                        allowed: ["a10", "l40s", "a100-pcie-40gb", "a100-sxm4-80gb"]
                            .map(String::from)
                            .to_vec(),
                    },
                ),
            ),
        ]);
    }
}
