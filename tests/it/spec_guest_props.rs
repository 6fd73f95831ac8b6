//! Property: any machine group size and memory either loads with exactly that
//! guest, or is rejected with exactly the errors Fly's rules predict, at the
//! right path. The oracle below restates Fly's rules independently of
//! `spec::validate`.

use flotilla::spec::{CpuKind, ParseOptions, SpecError, load_str};
use proptest::prelude::*;

fn doc(kind: &str, cpus: i64, memory: i64, count: i64) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: acme\nspec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: nginx:1.27\n      count: {count}\n      guest:\n        cpu_kind: {kind}\n        cpus: {cpus}\n        memory_mb: {memory}\n"
    )
}

/// What Fly accepts, straight from its documented rules.
fn expected(kind: &str, cpus: i64, memory: i64, count: i64) -> Vec<(&'static str, String)> {
    let mut want = Vec::new();
    if count > 100 {
        want.push(("spec.machines[0].count", "TooManyMachines".to_string()));
    } else if count < 0 {
        want.push(("spec.machines[0].count", "OutOfRange".to_string()));
    }
    let (cpu_set, per_min, per_max, step): (&[i64], i64, i64, i64) = match kind {
        "shared" => (&[1, 2, 4, 8], 256, 2048, 256),
        _ => (&[1, 2, 4, 8, 16], 2048, 8192, 1024),
    };
    if !cpu_set.contains(&cpus) {
        want.push(("spec.machines[0].guest.cpus", "BadCpuCount".to_string()));
        return want;
    }
    if memory % 256 != 0 {
        want.push((
            "spec.machines[0].guest.memory_mb",
            "MemoryNotMultiple/256".to_string(),
        ));
    } else if memory % step != 0 {
        want.push((
            "spec.machines[0].guest.memory_mb",
            format!("MemoryNotMultiple/{step}"),
        ));
    }
    if memory < per_min * cpus || memory > per_max * cpus {
        want.push((
            "spec.machines[0].guest.memory_mb",
            "MemoryOutOfRange".to_string(),
        ));
    }
    want
}

fn label(e: &SpecError) -> String {
    match e {
        SpecError::TooManyMachines { .. } => "TooManyMachines".into(),
        SpecError::OutOfRange { .. } => "OutOfRange".into(),
        SpecError::BadCpuCount { .. } => "BadCpuCount".into(),
        SpecError::MemoryNotMultiple { multiple, .. } => format!("MemoryNotMultiple/{multiple}"),
        SpecError::MemoryOutOfRange { .. } => "MemoryOutOfRange".into(),
        other => format!("unexpected: {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn group_sizes_validate_or_fail_with_the_rule_that_applies(
        performance in any::<bool>(),
        cpus in prop_oneof![Just(1i64), Just(2), Just(4), Just(8), Just(16), -2i64..40],
        // Mostly multiples of 256 near the interesting ranges, some arbitrary.
        memory in prop_oneof![(0i64..160).prop_map(|k| k * 256), -1024i64..200_000],
        count in prop_oneof![0i64..=100, -5i64..300],
    ) {
        let kind = if performance { "performance" } else { "shared" };
        let want = expected(kind, cpus, memory, count);
        match load_str("p.yaml", &doc(kind, cpus, memory, count), &ParseOptions::default()) {
            Ok(docs) => {
                prop_assert!(want.is_empty(), "accepted, but expected {want:?}");
                let g = &docs[0].tenant.spec.machines[0];
                let want_kind = if performance { CpuKind::Performance } else { CpuKind::Shared };
                prop_assert_eq!(g.guest.cpu_kind, want_kind);
                prop_assert_eq!(i64::from(g.guest.cpus), cpus);
                prop_assert_eq!(i64::from(g.guest.memory_mb), memory);
                prop_assert_eq!(i64::from(g.count), count);
            }
            Err(diags) => {
                let got: Vec<(String, String)> =
                    diags.iter().map(|d| (d.path.clone(), label(&d.error))).collect();
                let want: Vec<(String, String)> =
                    want.into_iter().map(|(p, l)| (p.to_string(), l)).collect();
                prop_assert_eq!(got, want);
                for d in &diags {
                    // Every diagnostic points into the document, on the line of its field.
                    prop_assert!(d.line >= 11 && d.line <= 15, "{d}");
                }
            }
        }
    }

    #[test]
    fn size_names_with_memory_overrides(
        idx in 0usize..9,
        memory in prop::option::of((1i64..=80).prop_map(|k| k * 256)),
    ) {
        let sizes = [
            ("shared-cpu-1x", "shared", 1), ("shared-cpu-2x", "shared", 2),
            ("shared-cpu-4x", "shared", 4), ("shared-cpu-8x", "shared", 8),
            ("performance-1x", "performance", 1), ("performance-2x", "performance", 2),
            ("performance-4x", "performance", 4), ("performance-8x", "performance", 8),
            ("performance-16x", "performance", 16),
        ];
        let (size, kind, cpus) = sizes[idx];
        let default_mem = if kind == "shared" { 256 * cpus } else { 2048 * cpus };
        let mem_line = memory.map(|m| format!("        memory_mb: {m}\n")).unwrap_or_default();
        let text = format!(
            "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: acme\nspec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: nginx:1.27\n      guest:\n        size: {size}\n{mem_line}"
        );
        let mem = memory.unwrap_or(default_mem);
        let want = expected(kind, cpus, mem, 1);
        match load_str("s.yaml", &text, &ParseOptions::default()) {
            Ok(docs) => {
                prop_assert!(want.is_empty(), "accepted, but expected {want:?}");
                prop_assert_eq!(i64::from(docs[0].tenant.spec.machines[0].guest.memory_mb), mem);
            }
            Err(diags) => {
                let got: Vec<String> = diags.iter().map(|d| label(&d.error)).collect();
                let want: Vec<String> = want.into_iter().map(|(_, l)| l).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
