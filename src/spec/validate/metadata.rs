//! Rules for the document header (`apiVersion`, `kind`) and `metadata`:
//! the tenant name, and label and annotation keys.

use std::collections::BTreeMap;

use super::V;
use crate::ids::TenantName;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{API_VERSION, KIND_TENANT, Metadata};
use crate::spec::raw::{RawMetadata, RawTenant};

pub(super) const LABEL_KEY_RULE: &str =
    "use 1 to 253 characters from A-Z, a-z, 0-9, '.', '_', '-' and '/'";

impl V {
    /// `apiVersion` and `kind`: present, and the ones flotilla reads.
    pub(super) fn header(&mut self, raw: &RawTenant, root: &Path) {
        match self.required(&raw.api_version, root, "apiVersion") {
            Some(a) if a != API_VERSION => self.err(
                root.key("apiVersion"),
                SpecError::BadApiVersion { found: a.clone() },
            ),
            _ => {}
        }
        match self.required(&raw.kind, root, "kind") {
            Some(k) if k != KIND_TENANT => {
                self.err(root.key("kind"), SpecError::BadKind { found: k.clone() })
            }
            _ => {}
        }
    }

    pub(super) fn metadata(&mut self, m: &RawMetadata, p: &Path) -> Option<Metadata> {
        let name = self
            .required(&m.name, p, "name")
            .and_then(|n| self.id(TenantName::parse, "tenant name", n, p.key("name")));
        let labels = self.keys(m.labels.as_ref(), &p.key("labels"), "label key");
        let annotations = self.keys(
            m.annotations.as_ref(),
            &p.key("annotations"),
            "annotation key",
        );
        Some(Metadata {
            name: name?,
            labels,
            annotations,
        })
    }

    /// Label and annotation keys: Kubernetes-like, checked one by one.
    fn keys(
        &mut self,
        map: Option<&BTreeMap<String, String>>,
        path: &Path,
        what: &'static str,
    ) -> BTreeMap<String, String> {
        let map = map.cloned().unwrap_or_default();
        for key in map.keys() {
            let ok = (1..=253).contains(&key.len())
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
            if !ok {
                self.err(
                    path.key(key.clone()),
                    SpecError::BadKey {
                        what,
                        key: key.clone(),
                        rule: LABEL_KEY_RULE,
                    },
                );
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::ids::IdError;
    use crate::spec::ParseOptions;

    #[test]
    fn document_header_and_metadata_rules() {
        let text = "apiVersion: flotilla.dev/v1\nkind: Tennant\nmetadata:\n  name: -x\n  labels:\n    \"bad key\": v\n";
        assert_eq!(
            errors_of(text, &ParseOptions::default()),
            vec![
                // Missing fields are reported where their parent starts.
                (
                    "spec".to_string(),
                    SpecError::MissingField { field: "spec" }
                ),
                (
                    "apiVersion".to_string(),
                    SpecError::BadApiVersion {
                        found: "flotilla.dev/v1".into()
                    }
                ),
                (
                    "kind".to_string(),
                    SpecError::BadKind {
                        found: "Tennant".into()
                    }
                ),
                (
                    "metadata.name".to_string(),
                    id_err("tenant name", "-x", IdError::BadStart)
                ),
                (
                    "metadata.labels[\"bad key\"]".to_string(),
                    SpecError::BadKey {
                        what: "label key",
                        key: "bad key".into(),
                        rule: LABEL_KEY_RULE,
                    }
                ),
            ]
        );
    }
}
