//! Sources and pruning: which tenants an apply of one *source* (a directory
//! of spec files, a path in a git branch) removes, and when that needs the
//! operator's explicit confirmation. Pure: the store's rows go in, a
//! [`PrunePlan`] or a [`PruneRefusal`] comes out; `Ops::apply_source` acts
//! on it in one transaction.
//!
//! Every tenant an apply stores carries the annotation [`SOURCE_ANNOTATION`]
//! naming its source. With prune on, the tenants of that source that are not
//! in the input are marked for deletion (the normal teardown). Guard rails:
//!
//! * an input with no tenant is refused (an empty checkout or a wrong path
//!   must never read as "delete everything");
//! * removing more than the threshold, the larger of
//!   [`PrunePolicy::max_count`] tenants (5) and [`PrunePolicy::max_percent`]
//!   (10%, rounded down) of the source's tenants, or removing **all** of a
//!   source's tenants, needs a confirmation naming the exact count
//!   (`--confirm-prune N`);
//! * a confirmation that does not match the count is refused too: the
//!   operator expected another deletion than the one about to happen.
//!
//! Tenants already marked for deletion are neither counted nor marked again.

use std::collections::BTreeSet;

use crate::ids::TenantName;

/// The annotation that names the source a tenant was applied from.
pub const SOURCE_ANNOTATION: &str = "flotilla.dev/source";
/// Longest source name (it is an annotation value and appears in messages).
pub const MAX_SOURCE_CHARS: usize = 253;

/// When a prune needs confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Removing up to this many tenants needs no confirmation...
    pub max_count: usize,
    /// ...nor up to this percentage of the source's tenants (rounded down),
    /// whichever allows more.
    pub max_percent: u8,
}

impl Default for PrunePolicy {
    fn default() -> Self {
        Self {
            max_count: 5,
            max_percent: 10,
        }
    }
}

impl PrunePolicy {
    /// How many of `total` tenants may be removed without confirmation
    /// (removing all of them always needs it).
    pub fn threshold(&self, total: usize) -> usize {
        let percent = total.saturating_mul(usize::from(self.max_percent)) / 100;
        self.max_count.max(percent)
    }
}

/// A stored tenant, as the prune decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub name: TenantName,
    /// Its [`SOURCE_ANNOTATION`], if any.
    pub source: Option<String>,
    pub generation: i64,
    pub marked_for_deletion: bool,
}

/// Tenants to mark for deletion, each with the generation it was decided
/// on (the store refuses the whole apply if one changed meanwhile).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunePlan {
    pub prune: Vec<(TenantName, i64)>,
    /// The source's tenants before this apply (not marked for deletion).
    pub source_total: usize,
}

/// Why a prune was refused; nothing is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PruneRefusal {
    #[error(
        "source {source_name} has no tenant documents; refusing to prune (that would delete every tenant of the source)"
    )]
    EmptySource { source_name: String },
    #[error(
        "pruning would delete {count} of the {total} tenants of source {source_name} ({}); pass --confirm-prune {count} to confirm: {}",
        if *.all { "all of them".to_string() } else { format!("more than the threshold of {threshold}") },
        names.join(", ")
    )]
    NeedsConfirmation {
        source_name: String,
        count: usize,
        total: usize,
        threshold: usize,
        all: bool,
        /// The first few names, for the message.
        names: Vec<String>,
    },
    #[error(
        "--confirm-prune {given} does not match: pruning would delete {count} tenant(s) of source {source_name}"
    )]
    ConfirmMismatch {
        source_name: String,
        count: usize,
        given: usize,
    },
}

/// How many names a refusal lists.
const NAMES_SHOWN: usize = 10;

/// Decides what an apply of `input` from `source` prunes.
///
/// `stored` is every stored tenant (any source); `input` the tenants the
/// apply stores; `confirm` the operator's `--confirm-prune N`.
pub fn decide(
    source: &str,
    stored: &[Stored],
    input: &BTreeSet<TenantName>,
    policy: PrunePolicy,
    confirm: Option<usize>,
) -> Result<PrunePlan, PruneRefusal> {
    if input.is_empty() {
        return Err(PruneRefusal::EmptySource {
            source_name: source.to_string(),
        });
    }
    let of_source: Vec<&Stored> = stored
        .iter()
        .filter(|s| !s.marked_for_deletion && s.source.as_deref() == Some(source))
        .collect();
    let total = of_source.len();
    let mut prune: Vec<(TenantName, i64)> = of_source
        .iter()
        .filter(|s| !input.contains(&s.name))
        .map(|s| (s.name.clone(), s.generation))
        .collect();
    prune.sort();
    let count = prune.len();
    let threshold = policy.threshold(total);
    let all = count > 0 && count == total;
    match confirm {
        Some(given) if given != count => Err(PruneRefusal::ConfirmMismatch {
            source_name: source.to_string(),
            count,
            given,
        }),
        None if all || count > threshold => Err(PruneRefusal::NeedsConfirmation {
            source_name: source.to_string(),
            count,
            total,
            threshold,
            all,
            names: prune
                .iter()
                .take(NAMES_SHOWN)
                .map(|(n, _)| n.to_string())
                .collect(),
        }),
        _ => Ok(PrunePlan {
            prune,
            source_total: total,
        }),
    }
}

/// A source name: 1 to [`MAX_SOURCE_CHARS`] printable characters, no
/// control characters. Derived names are cut to fit.
pub fn check_source(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a source name must not be empty".into());
    }
    if name.chars().count() > MAX_SOURCE_CHARS {
        return Err(format!(
            "a source name is at most {MAX_SOURCE_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("a source name must not contain control characters".into());
    }
    Ok(())
}

/// The default source name of `apply -f PATHS`: each path as given,
/// lexically tidied (`./` prefixes, repeated and trailing `/` removed),
/// sorted and joined with `,`; cut to [`MAX_SOURCE_CHARS`] characters with
/// control characters replaced. Relative paths stay relative, so the name
/// is the same on every machine that runs the command from the same
/// directory (a repository's root, say); `--source` names it explicitly.
pub fn source_of_paths(paths: &[String]) -> String {
    let mut tidy: Vec<String> = paths
        .iter()
        .map(|p| {
            let absolute = p.starts_with('/');
            let parts: Vec<&str> = p
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .collect();
            let joined = parts.join("/");
            match (absolute, joined.is_empty()) {
                (true, _) => format!("/{joined}"),
                (false, true) => ".".to_string(),
                (false, false) => joined,
            }
        })
        .collect();
    tidy.sort();
    tidy.dedup();
    tidy.join(",")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_SOURCE_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn name(s: &str) -> TenantName {
        TenantName::parse(s).unwrap()
    }

    fn stored(n: &str, source: Option<&str>) -> Stored {
        Stored {
            name: name(n),
            source: source.map(str::to_string),
            generation: 1,
            marked_for_deletion: false,
        }
    }

    fn fleet(n: usize, source: &str) -> Vec<Stored> {
        (0..n)
            .map(|i| stored(&format!("t{i:03}"), Some(source)))
            .collect()
    }

    fn input(names: &[String]) -> BTreeSet<TenantName> {
        names.iter().map(|n| name(n)).collect()
    }

    #[test]
    fn the_threshold_is_the_larger_of_count_and_percent() {
        let p = PrunePolicy::default();
        assert_eq!(p.threshold(0), 5);
        assert_eq!(p.threshold(3), 5);
        assert_eq!(p.threshold(59), 5);
        assert_eq!(p.threshold(60), 6);
        assert_eq!(p.threshold(1000), 100);
        assert_eq!(p.threshold(usize::MAX), usize::MAX / 100);
    }

    #[test]
    fn an_empty_input_is_refused() {
        let r = decide(
            "specs",
            &fleet(3, "specs"),
            &BTreeSet::new(),
            PrunePolicy::default(),
            Some(3),
        );
        assert_eq!(
            r,
            Err(PruneRefusal::EmptySource {
                source_name: "specs".into()
            })
        );
    }

    #[test]
    fn only_tenants_of_the_source_missing_from_the_input_are_pruned() {
        let mut all = fleet(3, "specs");
        all.push(stored("other", Some("elsewhere")));
        all.push(stored("manual", None));
        let mut gone = stored("gone", Some("specs"));
        gone.marked_for_deletion = true;
        all.push(gone);
        let keep = input(&["t000".into(), "t002".into(), "new".into()]);
        let plan = decide("specs", &all, &keep, PrunePolicy::default(), None).unwrap();
        assert_eq!(plan.prune, vec![(name("t001"), 1)]);
        assert_eq!(plan.source_total, 3);
    }

    #[test]
    fn a_mass_deletion_needs_the_exact_count() {
        let all = fleet(100, "specs");
        // Keep 80: 20 to prune, over the threshold of 10.
        let keep: Vec<String> = (0..80).map(|i| format!("t{i:03}")).collect();
        let refused = decide("specs", &all, &input(&keep), PrunePolicy::default(), None);
        let Err(PruneRefusal::NeedsConfirmation {
            count,
            total,
            threshold,
            all: false,
            names,
            ..
        }) = refused
        else {
            panic!("{refused:?}")
        };
        assert_eq!((count, total, threshold, names.len()), (20, 100, 10, 10));
        let msg = decide("specs", &all, &input(&keep), PrunePolicy::default(), None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("--confirm-prune 20"), "{msg}");
        assert_eq!(
            decide(
                "specs",
                &all,
                &input(&keep),
                PrunePolicy::default(),
                Some(19)
            ),
            Err(PruneRefusal::ConfirmMismatch {
                source_name: "specs".into(),
                count: 20,
                given: 19
            })
        );
        let plan = decide(
            "specs",
            &all,
            &input(&keep),
            PrunePolicy::default(),
            Some(20),
        )
        .unwrap();
        assert_eq!(plan.prune.len(), 20);
        // Exactly at the threshold needs none.
        let keep: Vec<String> = (0..90).map(|i| format!("t{i:03}")).collect();
        let plan = decide("specs", &all, &input(&keep), PrunePolicy::default(), None).unwrap();
        assert_eq!(plan.prune.len(), 10);
    }

    #[test]
    fn removing_every_tenant_of_a_source_needs_confirmation_even_one() {
        let all = fleet(1, "specs");
        let other = input(&["fresh".into()]);
        let r = decide("specs", &all, &other, PrunePolicy::default(), None);
        assert!(
            matches!(
                r,
                Err(PruneRefusal::NeedsConfirmation {
                    all: true,
                    count: 1,
                    ..
                })
            ),
            "{r:?}"
        );
        assert!(r.unwrap_err().to_string().contains("all of them"));
        assert_eq!(
            decide("specs", &all, &other, PrunePolicy::default(), Some(1))
                .unwrap()
                .prune
                .len(),
            1
        );
    }

    #[test]
    fn default_source_names_are_tidy_and_stable() {
        let s =
            |ps: &[&str]| source_of_paths(&ps.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["specs/prod/"]), "specs/prod");
        assert_eq!(s(&["./specs//prod"]), "specs/prod");
        assert_eq!(s(&["."]), ".");
        assert_eq!(s(&["./"]), ".");
        assert_eq!(s(&["/srv/specs/"]), "/srv/specs");
        assert_eq!(s(&["b.yaml", "a.yaml", "./b.yaml"]), "a.yaml,b.yaml");
        assert_eq!(s(&["a\nb"]), "a?b");
        assert_eq!(s(&["x\u{1b}y"]), "x?y");
        assert!(check_source(&s(&[&"d/".repeat(400)])).is_ok());
    }

    #[test]
    fn source_names_are_checked() {
        assert!(check_source("specs/prod").is_ok());
        assert!(check_source("").is_err());
        assert!(check_source("a\nb").is_err());
        assert!(check_source(&"x".repeat(MAX_SOURCE_CHARS + 1)).is_err());
    }

    proptest! {
        #[test]
        fn decisions_keep_their_promises(
            sources in proptest::collection::vec((0u8..3, any::<bool>()), 0..40),
            kept in proptest::collection::vec(any::<bool>(), 40),
            extra in 0usize..3,
            confirm in proptest::option::of(0usize..45),
            max_count in 0usize..8,
            max_percent in 0u8..=100,
        ) {
            let policy = PrunePolicy { max_count, max_percent };
            let stored: Vec<Stored> = sources
                .iter()
                .enumerate()
                .map(|(i, (s, marked))| Stored {
                    name: name(&format!("t{i:03}")),
                    source: (*s > 0).then(|| format!("src{s}")),
                    generation: i as i64,
                    marked_for_deletion: *marked,
                })
                .collect();
            let mut keep: BTreeSet<TenantName> = stored
                .iter()
                .zip(&kept)
                .filter(|(_, k)| **k)
                .map(|(s, _)| s.name.clone())
                .collect();
            for i in 0..extra {
                keep.insert(name(&format!("new{i}")));
            }
            let of_source = stored
                .iter()
                .filter(|s| !s.marked_for_deletion && s.source.as_deref() == Some("src1"))
                .count();
            match decide("src1", &stored, &keep, policy, confirm) {
                Ok(plan) => {
                    prop_assert!(!keep.is_empty());
                    prop_assert_eq!(plan.source_total, of_source);
                    for (n, g) in &plan.prune {
                        let s = stored.iter().find(|s| &s.name == n).unwrap();
                        // Never a kept tenant, another source's, or one already going.
                        prop_assert!(!keep.contains(n));
                        prop_assert_eq!(s.source.as_deref(), Some("src1"));
                        prop_assert!(!s.marked_for_deletion);
                        prop_assert_eq!(*g, s.generation);
                    }
                    // Exactly the source's missing tenants.
                    let missing = stored
                        .iter()
                        .filter(|s| !s.marked_for_deletion && s.source.as_deref() == Some("src1") && !keep.contains(&s.name))
                        .count();
                    prop_assert_eq!(plan.prune.len(), missing);
                    // Unconfirmed: within the threshold and never all.
                    let count = plan.prune.len();
                    if confirm.is_none() {
                        prop_assert!(count <= policy.threshold(of_source));
                        prop_assert!(count == 0 || count < of_source);
                    } else {
                        prop_assert_eq!(confirm, Some(count));
                    }
                }
                Err(PruneRefusal::EmptySource { .. }) => prop_assert!(keep.is_empty()),
                Err(PruneRefusal::ConfirmMismatch { count, given, .. }) => {
                    prop_assert_eq!(confirm, Some(given));
                    prop_assert_ne!(count, given);
                }
                Err(PruneRefusal::NeedsConfirmation { count, total, threshold, all, .. }) => {
                    prop_assert!(confirm.is_none());
                    prop_assert_eq!(total, of_source);
                    prop_assert!(all || count > threshold);
                    prop_assert!(count > 0);
                }
            }
        }
    }
}
