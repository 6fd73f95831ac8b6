//! Rules for `spec.app`: an explicit Fly app name, or one rendered from the
//! app-name template (`{tenant}`, `{org}`), and the optional network name.

use super::{V, dns_label};
use crate::ids::{AppName, OrgSlug, TenantName};
use crate::spec::ParseOptions;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::AppSpec;
use crate::spec::raw::RawApp;

/// Renders the app-name template.
pub fn render_app_name(template: &str, tenant: &str, org: &str) -> Result<String, SpecError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let Some(close) = after.find('}') else {
            out.push_str(after);
            rest = "";
            break;
        };
        match &after[..=close] {
            "{tenant}" => out.push_str(tenant),
            "{org}" => out.push_str(org),
            other => {
                return Err(SpecError::BadAppNameTemplate {
                    template: template.to_string(),
                    placeholder: other.to_string(),
                });
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl V {
    pub(super) fn app(
        &mut self,
        a: Option<&RawApp>,
        p: &Path,
        tenant: Option<&TenantName>,
        org: Option<&OrgSlug>,
        opts: &ParseOptions,
    ) -> Option<AppSpec> {
        let a = a.cloned().unwrap_or_default();
        let network = match &a.network {
            Some(n) => Some(self.id(
                |s| dns_label(&s).map(|_| s),
                "network name",
                n,
                p.key("network"),
            )?),
            None => None,
        };
        let name = match &a.name {
            Some(n) => self.id(AppName::parse, "Fly app name", n, p.key("name"))?,
            None => {
                // Without a valid tenant name or org the template cannot be
                // rendered; those fields already carry their errors.
                let (tenant, org) = (tenant?, org?);
                let template = &opts.app_name_template;
                let rendered = match render_app_name(template, tenant.as_str(), org.as_str()) {
                    Ok(r) => r,
                    Err(e) => {
                        self.err(p.key("name"), e);
                        return None;
                    }
                };
                match AppName::parse(rendered.clone()) {
                    Ok(n) => n,
                    Err(reason) => {
                        self.err(
                            p.key("name"),
                            SpecError::BadRenderedAppName {
                                template: template.clone(),
                                rendered,
                                reason,
                            },
                        );
                        return None;
                    }
                }
            }
        };
        Some(AppSpec { name, network })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ids::IdError;
    use crate::spec::error::SpecError;
    use crate::spec::{ParseOptions, load_str};

    #[test]
    fn app_names_come_from_the_template() {
        let opts = ParseOptions {
            app_name_template: "{org}-{tenant}".into(),
            ..Default::default()
        };
        let docs = load_str("t.yaml", &doc(""), &opts).unwrap();
        assert_eq!(docs[0].tenant.spec.app.name.as_str(), "personal-acme");
        let bad = ParseOptions {
            app_name_template: "{tenant}--x".into(),
            ..Default::default()
        };
        assert_eq!(
            errors_of(&doc(""), &bad),
            one(
                "spec.app.name",
                SpecError::BadRenderedAppName {
                    template: "{tenant}--x".into(),
                    rendered: "acme--x".into(),
                    reason: IdError::DoubleHyphen,
                }
            )
        );
        let unknown = ParseOptions {
            app_name_template: "{tenant}-{env}".into(),
            ..Default::default()
        };
        assert_eq!(
            errors_of(&doc(""), &unknown),
            one(
                "spec.app.name",
                SpecError::BadAppNameTemplate {
                    template: "{tenant}-{env}".into(),
                    placeholder: "{env}".into(),
                }
            )
        );
        // An explicit name wins over the template and is checked itself.
        assert_eq!(
            errors("app:\n  name: Bad_Name"),
            one(
                "spec.app.name",
                id_err(
                    "Fly app name",
                    "Bad_Name",
                    IdError::BadLabelChar { found: 'B' }
                )
            )
        );
    }

    #[test]
    fn app_rules_report_errors_at_their_paths() {
        assert_cases(vec![(
            "app network name",
            "app:\n  network: Net_1\n".into(),
            one(
                "spec.app.network",
                id_err(
                    "network name",
                    "Net_1",
                    IdError::BadLabelChar { found: 'N' },
                ),
            ),
        )]);
    }
}
