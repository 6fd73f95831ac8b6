//! Small typed edits of a stored tenant (the MCP tools `scale_group` and
//! `set_image`, and `plan` of such an edit): read the stored tenant, change
//! one thing in its model ([`apply_edit`], pure), and store the result
//! through the same path as a put, with the generation that was read (or
//! the caller's) as the precondition. A change stored in between is a
//! `precondition_failed`, never overwritten.
//!
//! The edited spec goes through the loader again, so every spec rule (a
//! group's count, an image's form) is checked once, where it always is. It
//! is stored in canonical YAML form: the stored document's comments and
//! formatting are not kept. A tenant applied from a source (git, `apply
//! --source`) is edited all the same; the next sync of that source puts
//! back what the source says ([`Edited::source`] names it).

use std::collections::BTreeMap;

use super::prune::SOURCE_ANNOTATION;
use super::{Actor, Ops, OpsError, PutOutcome, result_text};
use crate::ids::{GroupName, Region};
use crate::plan::Plan;
use crate::spec::Tenant;
use crate::store::ApplyOutcome;

/// One edit of a tenant's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantEdit {
    /// Change a machine group's size.
    Scale { group: String, to: Scale },
    /// Roll a machine group to another image.
    SetImage { group: String, image: String },
}

/// A group's new size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scale {
    /// Machines in all; only for a group in one region.
    Count(u32),
    /// Each region's machines: exactly the group's regions.
    Regions(BTreeMap<String, u32>),
}

impl TenantEdit {
    /// The audit action and the label diagnostics name as the source.
    fn action(&self) -> &'static str {
        match self {
            TenantEdit::Scale { .. } => "ScaleGroup",
            TenantEdit::SetImage { .. } => "SetImage",
        }
    }

    fn describe(&self) -> String {
        match self {
            TenantEdit::Scale {
                group,
                to: Scale::Count(n),
            } => format!("group {group} to {n} machines"),
            TenantEdit::Scale {
                group,
                to: Scale::Regions(r),
            } => {
                let parts: Vec<String> = r.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("group {group} to {}", parts.join(","))
            }
            TenantEdit::SetImage { group, image } => format!("group {group} to image {image}"),
        }
    }
}

/// What an edit did.
#[derive(Debug, Clone)]
pub struct Edited {
    pub put: PutOutcome,
    /// The source the tenant was applied from, if any: its next sync undoes
    /// this edit.
    pub source: Option<String>,
}

/// `tenant` with `edit` made, or why it cannot be made. Spec rules (bounds,
/// forms) are left to the loader the result goes through.
pub fn apply_edit(tenant: &Tenant, edit: &TenantEdit) -> Result<Tenant, String> {
    let mut out = tenant.clone();
    let (TenantEdit::Scale { group, .. } | TenantEdit::SetImage { group, .. }) = edit;
    let wanted = GroupName::parse(group).map_err(|e| format!("group name {group:?}: {e}"))?;
    let known: Vec<String> = out
        .spec
        .machines
        .iter()
        .map(|g| g.name.to_string())
        .collect();
    let Some(g) = out.spec.machines.iter_mut().find(|g| g.name == wanted) else {
        return Err(if known.is_empty() {
            format!("the tenant has no machine group {wanted}: it has no machine groups")
        } else {
            format!(
                "the tenant has no machine group {wanted}; its groups are {}",
                known.join(", ")
            )
        });
    };
    match edit {
        TenantEdit::SetImage { image, .. } => g.image = image.clone(),
        TenantEdit::Scale { to, .. } => match (to, &g.region) {
            (Scale::Count(n), Some(_)) => g.count = *n,
            (Scale::Count(_), None) => {
                let regions: Vec<String> = g.regions.keys().map(ToString::to_string).collect();
                return Err(format!(
                    "group {wanted} runs in several regions ({}): give each region's count (regions)",
                    regions.join(", ")
                ));
            }
            (Scale::Regions(asked), _) => {
                let mut counts = BTreeMap::new();
                for (name, n) in asked {
                    let region = Region::parse(name)
                        .map_err(|e| format!("regions: {name:?} is not a region: {e}"))?;
                    counts.insert(region, *n);
                }
                let current: Vec<Region> = match &g.region {
                    Some(r) => vec![r.clone()],
                    None => g.regions.keys().cloned().collect(),
                };
                if counts.keys().cloned().collect::<Vec<_>>() != current {
                    let names: Vec<String> = current.iter().map(ToString::to_string).collect();
                    return Err(format!(
                        "regions must name exactly the group's regions ({}); moving a group between regions is a spec change (apply_spec)",
                        names.join(", ")
                    ));
                }
                let total: u64 = counts.values().map(|n| u64::from(*n)).sum();
                g.count = u32::try_from(total).unwrap_or(u32::MAX);
                if g.region.is_none() {
                    g.regions = counts;
                }
            }
        },
    }
    Ok(out)
}

impl Ops {
    /// Makes `edit` on the stored tenant `name` (module docs). With
    /// `expected_generation` the tenant must be at that generation.
    pub async fn edit(
        &self,
        actor: &Actor,
        name: &str,
        edit: &TenantEdit,
        expected_generation: Option<i64>,
    ) -> Result<Edited, OpsError> {
        let record = self.get(actor, name).await?;
        let result = self
            .edit_checked(actor, &record, edit, expected_generation)
            .await;
        let reason = match &result {
            Ok(e) => format!("{}: {}", edit.describe(), e.put.outcome.as_str()),
            Err(_) => edit.describe(),
        };
        self.audit(
            actor,
            &record.name,
            edit.action(),
            &reason,
            &result_text(&result),
        )
        .await;
        result
    }

    async fn edit_checked(
        &self,
        actor: &Actor,
        record: &crate::store::TenantRecord,
        edit: &TenantEdit,
        expected_generation: Option<i64>,
    ) -> Result<Edited, OpsError> {
        if record.deletion_requested_at.is_some() {
            return Err(OpsError::Edit {
                tenant: record.name.clone(),
                problem: "it is being deleted".to_string(),
            });
        }
        if let Some(expected) = expected_generation
            && expected != record.generation
        {
            return Err(OpsError::PreconditionFailed {
                name: record.name.clone(),
                expected,
                actual: Some(record.generation),
            });
        }
        let source = record
            .tenant
            .metadata
            .annotations
            .get(SOURCE_ANNOTATION)
            .cloned();
        let edited = apply_edit(&record.tenant, edit).map_err(|problem| OpsError::Edit {
            tenant: record.name.clone(),
            problem,
        })?;
        if edited == record.tenant {
            return Ok(Edited {
                put: PutOutcome {
                    outcome: ApplyOutcome::Unchanged,
                    record: record.clone(),
                },
                source,
            });
        }
        let text = edited_text(&edited);
        let put = self
            .put_checked(
                actor,
                &record.name,
                edit.action(),
                &text,
                Some(record.generation),
                None,
            )
            .await?;
        Ok(Edited { put, source })
    }

    /// Plans the stored tenant `name` with `edit` made, storing nothing.
    pub async fn plan_edit(
        &self,
        actor: &Actor,
        name: &str,
        edit: &TenantEdit,
    ) -> Result<Plan, OpsError> {
        let record = self.get(actor, name).await?;
        let edited = apply_edit(&record.tenant, edit).map_err(|problem| OpsError::Edit {
            tenant: record.name.clone(),
            problem,
        })?;
        let doc = self.load_one(&record.name, edit.action(), &edited_text(&edited))?;
        self.plan_doc(doc).await
    }
}

/// The text an edited tenant is stored as: its model as YAML, which loads
/// back to the same model (`tests/it/spec_examples.rs`).
fn edited_text(tenant: &Tenant) -> String {
    yaml_serde::to_string(tenant).unwrap_or_else(|_| tenant.canonical_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ParseOptions, load_str};

    fn tenant(machines: &str) -> Tenant {
        let text = format!(
            "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: acme\nspec:\n  org: personal\n  machines:\n{machines}"
        );
        load_str("t.yaml", &text, &ParseOptions::default())
            .unwrap_or_else(|e| panic!("{e:?}"))
            .remove(0)
            .tenant
    }

    const ONE: &str = "    - name: web\n      region: ord\n      count: 2\n      image: nginx:1\n";
    const MANY: &str = "    - name: web\n      regions: {ord: 2, iad: 1}\n      image: nginx:1\n";

    fn scale(group: &str, to: Scale) -> TenantEdit {
        TenantEdit::Scale {
            group: group.into(),
            to,
        }
    }

    #[test]
    fn scaling_a_one_region_group_sets_its_count_and_nothing_else() {
        let t = tenant(ONE);
        let e = apply_edit(&t, &scale("web", Scale::Count(5))).unwrap();
        assert_eq!(e.spec.machines[0].count, 5);
        let mut back = e.clone();
        back.spec.machines[0].count = 2;
        assert_eq!(back, t);
        let by_region = BTreeMap::from([("ord".to_string(), 4)]);
        let e = apply_edit(&t, &scale("web", Scale::Regions(by_region))).unwrap();
        assert_eq!(e.spec.machines[0].count, 4);
        assert!(e.spec.machines[0].regions.is_empty());
    }

    #[test]
    fn a_group_in_several_regions_needs_each_region_and_only_its_own() {
        let t = tenant(MANY);
        let err = apply_edit(&t, &scale("web", Scale::Count(4))).unwrap_err();
        assert!(err.contains("several regions (iad, ord)"), "{err}");
        let ok = BTreeMap::from([("ord".to_string(), 0), ("iad".to_string(), 3)]);
        let e = apply_edit(&t, &scale("web", Scale::Regions(ok))).unwrap();
        assert_eq!(e.spec.machines[0].count, 3);
        assert_eq!(e.spec.machines[0].regions.len(), 2);
        let moved = BTreeMap::from([("ord".to_string(), 1), ("fra".to_string(), 1)]);
        let err = apply_edit(&t, &scale("web", Scale::Regions(moved))).unwrap_err();
        assert!(
            err.contains("exactly the group's regions (iad, ord)"),
            "{err}"
        );
        let bad = BTreeMap::from([("ORD!".to_string(), 1)]);
        let err = apply_edit(&t, &scale("web", Scale::Regions(bad))).unwrap_err();
        assert!(err.contains("not a region"), "{err}");
    }

    #[test]
    fn an_unknown_group_names_the_groups_there_are() {
        let t = tenant(ONE);
        let err = apply_edit(&t, &scale("api", Scale::Count(1))).unwrap_err();
        assert!(
            err.contains("no machine group api; its groups are web"),
            "{err}"
        );
        let err = apply_edit(
            &t,
            &TenantEdit::SetImage {
                group: "Not A Group".into(),
                image: "x".into(),
            },
        )
        .unwrap_err();
        assert!(err.starts_with("group name"), "{err}");
    }

    #[test]
    fn the_edited_text_loads_back_to_the_edited_model() {
        for machines in [ONE, MANY] {
            let t = tenant(machines);
            let e = apply_edit(
                &t,
                &TenantEdit::SetImage {
                    group: "web".into(),
                    image: "registry.fly.io/acme-web:v2".into(),
                },
            )
            .unwrap();
            let back = load_str("e.yaml", &edited_text(&e), &ParseOptions::default()).unwrap();
            assert_eq!(back[0].tenant, e);
            assert_eq!(
                back[0].tenant.spec.machines[0].image,
                "registry.fly.io/acme-web:v2"
            );
        }
    }
}
