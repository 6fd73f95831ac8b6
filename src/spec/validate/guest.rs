//! Rules for a group's `guest`: a Fly size name (`shared-cpu-2x`) or a CPU
//! kind and count, memory in Fly's steps and per-vCPU bounds, and GPUs (the
//! rules and the table of regions are in `gpu`).

use super::V;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{CpuKind, Guest};
use crate::spec::raw::RawGuest;

const SHARED_CPUS: [u32; 4] = [1, 2, 4, 8];
const PERFORMANCE_CPUS: [u32; 5] = [1, 2, 4, 8, 16];

/// Per-vCPU memory bounds in MB and the memory step for a CPU kind (Fly's
/// rules as flyctl enforces them, `API-NOTES.md` §2).
pub fn memory_rules(kind: CpuKind) -> (u32, u32, u32) {
    match kind {
        CpuKind::Shared => (256, 2048, 256),
        CpuKind::Performance => (2048, 8192, 1024),
    }
}

/// The vCPU counts Fly offers for a CPU kind.
pub fn allowed_cpus(kind: CpuKind) -> &'static [u32] {
    match kind {
        CpuKind::Shared => &SHARED_CPUS,
        CpuKind::Performance => &PERFORMANCE_CPUS,
    }
}

/// All Fly size names flotilla accepts, in order.
pub fn size_names() -> Vec<String> {
    let mut names: Vec<String> = SHARED_CPUS
        .iter()
        .map(|n| format!("shared-cpu-{n}x"))
        .collect();
    names.extend(PERFORMANCE_CPUS.iter().map(|n| format!("performance-{n}x")));
    names
}

/// A Fly size name → its guest: `shared-cpu-Nx` is N shared vCPUs with
/// 256*N MB, `performance-Nx` is N performance vCPUs with 2048*N MB.
pub fn size_guest(size: &str) -> Option<Guest> {
    let (kind, n) = if let Some(n) = size.strip_prefix("shared-cpu-") {
        (CpuKind::Shared, n)
    } else if let Some(n) = size.strip_prefix("performance-") {
        (CpuKind::Performance, n)
    } else {
        return None;
    };
    let cpus: u32 = n.strip_suffix('x')?.parse().ok()?;
    if !allowed_cpus(kind).contains(&cpus) || n.starts_with('0') {
        return None;
    }
    Some(Guest {
        cpu_kind: kind,
        cpus,
        memory_mb: memory_rules(kind).0 * cpus,
        gpu_kind: None,
        gpus: None,
    })
}

/// Fly's memory rules for `cpus` vCPUs of `kind` (cpus already allowed):
/// a multiple of 256 (1024 for performance), within the per-vCPU range.
pub fn memory_errors(kind: CpuKind, cpus: u32, memory_mb: i64) -> Vec<SpecError> {
    let (per_min, per_max, step) = memory_rules(kind);
    let mut errors = Vec::new();
    if memory_mb % 256 != 0 {
        errors.push(SpecError::MemoryNotMultiple {
            kind: kind.as_str(),
            memory_mb,
            multiple: 256,
        });
    } else if memory_mb % i64::from(step) != 0 {
        errors.push(SpecError::MemoryNotMultiple {
            kind: kind.as_str(),
            memory_mb,
            multiple: step,
        });
    }
    let (min, max) = (per_min * cpus, per_max * cpus);
    if memory_mb < i64::from(min) || memory_mb > i64::from(max) {
        errors.push(SpecError::MemoryOutOfRange {
            kind: kind.as_str(),
            cpus,
            memory_mb,
            min,
            max,
            per_cpu_min: per_min,
            per_cpu_max: per_max,
        });
    }
    errors
}

impl V {
    pub(super) fn guest(&mut self, g: Option<&RawGuest>, p: &Path) -> Option<Guest> {
        let g = g.cloned().unwrap_or_default();
        let base = match &g.size {
            Some(size) => {
                let mut conflict = false;
                if g.cpu_kind.is_some() {
                    self.err(
                        p.key("cpu_kind"),
                        SpecError::SizeConflict { field: "cpu_kind" },
                    );
                    conflict = true;
                }
                if g.cpus.is_some() {
                    self.err(p.key("cpus"), SpecError::SizeConflict { field: "cpus" });
                    conflict = true;
                }
                let Some(base) = size_guest(size) else {
                    self.err(
                        p.key("size"),
                        SpecError::UnknownSize {
                            size: size.clone(),
                            allowed: size_names(),
                        },
                    );
                    return None;
                };
                if conflict {
                    return None;
                }
                base
            }
            None => {
                let kind = g.cpu_kind.unwrap_or(CpuKind::Shared);
                let cpus = g.cpus.unwrap_or(1);
                let allowed = allowed_cpus(kind);
                match u32::try_from(cpus) {
                    Ok(c) if allowed.contains(&c) => Guest {
                        cpu_kind: kind,
                        cpus: c,
                        memory_mb: memory_rules(kind).0 * c,
                        gpu_kind: None,
                        gpus: None,
                    },
                    _ => {
                        self.err(
                            p.key("cpus"),
                            SpecError::BadCpuCount {
                                kind: kind.as_str(),
                                cpus,
                                allowed: allowed.to_vec(),
                            },
                        );
                        return None;
                    }
                }
            }
        };
        let gpu = self.gpu(g.gpu_kind, g.gpus, Some(base.cpu_kind), p);
        let memory_mb = match g.memory_mb {
            None => Some(base.memory_mb),
            Some(memory) => {
                let errors = memory_errors(base.cpu_kind, base.cpus, memory);
                let ok = errors.is_empty();
                for e in errors {
                    self.err(p.key("memory_mb"), e);
                }
                ok.then(|| u32::try_from(memory).ok()).flatten()
            }
        };
        let (gpu_kind, gpus) = gpu?;
        Some(Guest {
            memory_mb: memory_mb?,
            gpu_kind,
            gpus,
            ..base
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn guest_sizes_and_overrides() {
        for (guest, want) in [
            ("size: shared-cpu-4x", (CpuKind::Shared, 4, 1024)),
            ("size: performance-16x", (CpuKind::Performance, 16, 32768)),
            (
                "size: performance-2x\n  memory_mb: 8192",
                (CpuKind::Performance, 2, 8192),
            ),
            ("cpus: 2", (CpuKind::Shared, 2, 512)),
            ("cpu_kind: performance", (CpuKind::Performance, 1, 2048)),
            (
                "cpu_kind: shared\n  cpus: 8\n  memory_mb: 16384",
                (CpuKind::Shared, 8, 16384),
            ),
        ] {
            let t = load(&group(&format!("guest:\n  {guest}")));
            let g = t.spec.machines[0].guest;
            assert_eq!((g.cpu_kind, g.cpus, g.memory_mb), want, "{guest}");
        }
    }

    #[test]
    fn sizes_round_trip_through_their_names() {
        for name in size_names() {
            let g = size_guest(&name).expect(&name);
            let (per_min, _, _) = memory_rules(g.cpu_kind);
            assert_eq!(g.memory_mb, per_min * g.cpus);
            assert!(memory_errors(g.cpu_kind, g.cpus, g.memory_mb.into()).is_empty());
        }
        for bad in [
            "shared-cpu-3x",
            "performance-32x",
            "shared-cpu-01x",
            "shared-cpu-1",
            "huge",
        ] {
            assert_eq!(size_guest(bad), None, "{bad}");
        }
    }

    #[test]
    fn guest_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
            (
                "memory not a multiple of 256",
                group("guest:\n  memory_mb: 300"),
                one(
                    "spec.machines[0].guest.memory_mb",
                    E::MemoryNotMultiple {
                        kind: "shared",
                        memory_mb: 300,
                        multiple: 256,
                    },
                ),
            ),
            (
                "performance memory not a multiple of 1024",
                group("guest:\n  cpu_kind: performance\n  memory_mb: 3328"),
                one(
                    "spec.machines[0].guest.memory_mb",
                    E::MemoryNotMultiple {
                        kind: "performance",
                        memory_mb: 3328,
                        multiple: 1024,
                    },
                ),
            ),
            (
                "memory out of range",
                group("guest:\n  size: performance-2x\n  memory_mb: 32768"),
                one(
                    "spec.machines[0].guest.memory_mb",
                    E::MemoryOutOfRange {
                        kind: "performance",
                        cpus: 2,
                        memory_mb: 32768,
                        min: 4096,
                        max: 16384,
                        per_cpu_min: 2048,
                        per_cpu_max: 8192,
                    },
                ),
            ),
            (
                "unknown size",
                group("guest:\n  size: shared-cpu-3x"),
                one(
                    "spec.machines[0].guest.size",
                    E::UnknownSize {
                        size: "shared-cpu-3x".into(),
                        allowed: size_names(),
                    },
                ),
            ),
            (
                "size with cpus",
                group("guest:\n  size: shared-cpu-2x\n  cpus: 2"),
                one(
                    "spec.machines[0].guest.cpus",
                    E::SizeConflict { field: "cpus" },
                ),
            ),
            (
                "shared cpus",
                group("guest:\n  cpus: 16"),
                one(
                    "spec.machines[0].guest.cpus",
                    E::BadCpuCount {
                        kind: "shared",
                        cpus: 16,
                        allowed: vec![1, 2, 4, 8],
                    },
                ),
            ),
            (
                "performance cpus",
                group("guest:\n  cpu_kind: performance\n  cpus: 3"),
                one(
                    "spec.machines[0].guest.cpus",
                    E::BadCpuCount {
                        kind: "performance",
                        cpus: 3,
                        allowed: vec![1, 2, 4, 8, 16],
                    },
                ),
            ),
            (
                "size with cpu_kind",
                group("guest:\n  size: performance-1x\n  cpu_kind: shared"),
                one(
                    "spec.machines[0].guest.cpu_kind",
                    E::SizeConflict { field: "cpu_kind" },
                ),
            ),
        ]);
    }
}
