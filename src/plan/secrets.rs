//! The secrets rule: one `UpdateSecrets` step (or none) per plan.
//!
//! * A `generate` secret missing on the app gets a fresh random value.
//! * An `external` secret is set from the value flotilla holds sealed in its
//!   vault (`flotilla secrets set`) when the app lacks it, or when the stored
//!   value's fingerprint differs from the one flotilla last delivered (the
//!   ledger's `external_delivered`). The step names the secret only; the
//!   executor opens the value when it runs. An `external` secret with no
//!   stored value and none on the app is reported
//!   ([`Finding::ExternalSecretMissing`]); one the app has but flotilla holds
//!   no value for was set by hand and is left alone.
//! * A `fromToken` secret, and a token's `deliverTo.appSecrets`, are the
//!   token phase's (`reconcile::tokens`).
//! * A secret flotilla set (ledger) that left the spec (`secrets` and the
//!   tokens' `deliverTo.appSecrets`) is unset; any other secret not in the
//!   spec is foreign and only reported.

use std::collections::BTreeSet;

use super::{Action, Finding, Observed, Phase, Plan, Reason};
use crate::ids::SecretName;
use crate::spec::{SecretSource, Tenant};

pub(super) fn plan_secrets(
    plan: &mut Plan,
    tenant: &Tenant,
    observed: &Observed,
    tokens_managed: bool,
) {
    let present: BTreeSet<&SecretName> = observed.secrets.iter().map(|s| &s.name).collect();
    let mut generate = Vec::new();
    let mut external = Vec::new();
    let mut first_reason = None;
    for s in &tenant.spec.secrets {
        let on_app = present.contains(&s.name);
        match &s.source {
            SecretSource::Generate { length, charset } if !on_app => {
                generate.push((s.name.clone(), *length, *charset));
                first_reason.get_or_insert(Reason::SecretMissing);
            }
            SecretSource::Generate { .. } => {}
            SecretSource::External => {
                let delivered = observed.ledger.external_delivered.get(&s.name);
                match observed.stored_external.get(&s.name) {
                    Some(_) if !on_app => {
                        external.push(s.name.clone());
                        first_reason.get_or_insert(Reason::SecretMissing);
                    }
                    Some(stored) if delivered != Some(stored) => {
                        external.push(s.name.clone());
                        first_reason.get_or_insert(Reason::ExternalValueChanged);
                    }
                    Some(_) => {}
                    None if !on_app => plan.findings.push(Finding::ExternalSecretMissing {
                        name: s.name.clone(),
                    }),
                    None => {}
                }
            }
            // The token phase delivers it (and reports a token not minted
            // yet as TokensPending).
            SecretSource::FromToken { .. } if tokens_managed || on_app => {}
            SecretSource::FromToken { token } => plan.findings.push(Finding::TokenNotManaged {
                name: format!("{token} (secret {})", s.name),
            }),
        }
    }
    // A token's `deliverTo.appSecrets` are the spec's too: the token phase
    // writes them (and records them in the ledger), so they are never
    // "no longer in the spec".
    let desired: BTreeSet<&SecretName> = tenant
        .spec
        .secrets
        .iter()
        .map(|s| &s.name)
        .chain(
            tenant
                .spec
                .tokens
                .iter()
                .flat_map(|t| t.deliver_to.app_secrets.iter()),
        )
        .collect();
    let mut unset = Vec::new();
    for s in &observed.secrets {
        if desired.contains(&s.name) {
            continue;
        }
        if observed.ledger.secrets.contains(&s.name) {
            unset.push(s.name.clone());
            first_reason.get_or_insert(Reason::SecretNotDesired);
        } else {
            plan.findings.push(Finding::ForeignSecret {
                name: s.name.clone(),
            });
        }
    }
    if let Some(reason) = first_reason {
        plan.push(
            Phase::Network,
            Action::UpdateSecrets {
                generate,
                external,
                unset,
            },
            reason,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{World, t0, tenant};
    use super::super::{Desired, PlanOptions, plan};
    use super::*;
    use crate::crypto::{Fingerprint, ValueFingerprint};

    /// A fingerprint for the planner's comparisons (how it is made does not
    /// matter to the plan).
    fn fp(v: &[u8]) -> ValueFingerprint {
        ValueFingerprint::Unkeyed(Fingerprint::of_bytes(v))
    }
    use crate::model::fly::AppSecret;
    use crate::spec::SecretSpec;

    fn name(s: &str) -> SecretName {
        SecretName::parse(s).unwrap()
    }

    /// The test tenant with an `external` secret DB_PASSWORD beside its
    /// generated SESSION_KEY.
    fn with_external() -> Tenant {
        let mut t = tenant("acme");
        t.spec.secrets.push(SecretSpec {
            name: name("DB_PASSWORD"),
            source: SecretSource::External,
        });
        t
    }

    fn plan_of(t: &Tenant, o: &Observed) -> Plan {
        let options = PlanOptions::default();
        plan(
            &Desired {
                tenant: t,
                deleting: false,
                options: &options,
            },
            o,
            t0(),
        )
    }

    /// The secrets step, if any: (external names, reason).
    fn secrets_step(p: &Plan) -> Option<(Vec<SecretName>, Reason)> {
        p.steps.iter().find_map(|s| match &s.action {
            Action::UpdateSecrets { external, .. } => Some((external.clone(), s.reason.clone())),
            _ => None,
        })
    }

    fn missing(p: &Plan) -> Vec<&SecretName> {
        p.findings
            .iter()
            .filter_map(|f| match f {
                Finding::ExternalSecretMissing { name } => Some(name),
                _ => None,
            })
            .collect()
    }

    /// A converged world: every step applied until the plan is empty.
    fn converged(t: &Tenant, stored: &[(&str, &[u8])]) -> World {
        let mut w = World::empty();
        for (n, v) in stored {
            w.observed.stored_external.insert(name(n), fp(v));
        }
        for _ in 0..20 {
            let p = plan_of(t, &w.observed);
            if p.is_empty() {
                return w;
            }
            for s in &p.steps {
                w.apply(s);
            }
        }
        panic!("did not converge: {:?}", plan_of(t, &w.observed));
    }

    #[test]
    fn a_stored_value_missing_on_the_app_is_delivered_by_name() {
        let t = with_external();
        let mut o = World::empty().observed;
        o.stored_external
            .insert(name("DB_PASSWORD"), fp(b"hunter2"));
        let p = plan_of(&t, &o);
        let (external, reason) = secrets_step(&p).expect("a secrets step");
        assert_eq!(external, [name("DB_PASSWORD")]);
        assert_eq!(reason, Reason::SecretMissing);
        assert!(missing(&p).is_empty(), "{:?}", p.findings);
        // The plan names the secret; it holds no value (nothing to show).
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn no_stored_value_and_none_on_the_app_stays_missing() {
        let t = with_external();
        let p = plan_of(&t, &World::empty().observed);
        assert_eq!(missing(&p), [&name("DB_PASSWORD")]);
        let (external, _) = secrets_step(&p).expect("SESSION_KEY is generated");
        assert!(external.is_empty());
    }

    #[test]
    fn a_delivered_value_is_left_alone_and_a_changed_one_is_delivered_again() {
        let t = with_external();
        let mut w = converged(&t, &[("DB_PASSWORD", b"one")]);
        assert_eq!(
            w.observed
                .ledger
                .external_delivered
                .get(&name("DB_PASSWORD")),
            Some(&fp(b"one"))
        );
        assert!(plan_of(&t, &w.observed).is_empty());

        // Set again with another value: delivered again, and the machines
        // then roll onto the new secrets version.
        w.observed
            .stored_external
            .insert(name("DB_PASSWORD"), fp(b"two"));
        let p = plan_of(&t, &w.observed);
        assert_eq!(
            secrets_step(&p),
            Some((vec![name("DB_PASSWORD")], Reason::ExternalValueChanged))
        );
        for s in &p.steps {
            w.apply(s);
        }
        let p = plan_of(&t, &w.observed);
        assert!(
            p.steps.iter().all(|s| matches!(
                (&s.action, &s.reason),
                (Action::UpdateMachine { .. }, Reason::SecretsChanged { .. })
            )) && !p.steps.is_empty(),
            "{:#?}",
            p.steps
        );
    }

    #[test]
    fn a_value_set_on_the_app_by_hand_is_kept_until_one_is_stored() {
        let t = with_external();
        let mut o = World::empty().observed;
        o.app = super::super::AppObservation::InOrg;
        o.ledger.app_owned = true;
        for n in ["DB_PASSWORD", "SESSION_KEY"] {
            o.secrets.push(AppSecret {
                name: name(n),
                digest: "by-hand".into(),
            });
        }
        let p = plan_of(&t, &o);
        assert!(missing(&p).is_empty());
        assert_eq!(secrets_step(&p), None);
        // Once a value is stored it wins: flotilla never delivered it.
        o.stored_external.insert(name("DB_PASSWORD"), fp(b"v"));
        assert_eq!(
            secrets_step(&plan_of(&t, &o)),
            Some((vec![name("DB_PASSWORD")], Reason::ExternalValueChanged))
        );
    }

    #[test]
    fn a_tokens_delivery_secret_is_never_unset_as_not_in_the_spec() {
        use crate::spec::{DeliverTo, DurationSecs, TokenKind, TokenSpec};
        let mut t = tenant("acme");
        t.spec.tokens.push(TokenSpec {
            name: crate::ids::TokenName::parse("ci").unwrap(),
            kind: TokenKind::Deploy,
            expiry: DurationSecs(3600),
            schedule: None,
            renew_before: DurationSecs(600),
            grace: DurationSecs(60),
            deliver_to: DeliverTo {
                app_secrets: vec![name("FLY_DEPLOY_TOKEN")],
                registry: true,
            },
        });
        let mut w = converged(&t, &[]);
        // The token phase wrote it and recorded it as flotilla's.
        w.observed.secrets.push(AppSecret {
            name: name("FLY_DEPLOY_TOKEN"),
            digest: "d".into(),
        });
        w.observed.ledger.secrets.insert(name("FLY_DEPLOY_TOKEN"));
        assert!(plan_of(&t, &w.observed).is_empty());
        // Once the token (and so the delivery) leaves the spec, it goes.
        t.spec.tokens.clear();
        let p = plan_of(&t, &w.observed);
        assert!(
            p.steps.iter().any(|s| matches!(
                &s.action,
                Action::UpdateSecrets { unset, .. } if unset == &[name("FLY_DEPLOY_TOKEN")]
            )),
            "{:?}",
            p.steps
        );
    }

    #[test]
    fn stored_values_of_secrets_that_are_not_external_are_ignored() {
        // SESSION_KEY is `generate`: a stored value under its name (the spec
        // changed since) is neither delivered nor reported.
        let t = with_external();
        let mut w = converged(&t, &[("DB_PASSWORD", b"x")]);
        w.observed
            .stored_external
            .insert(name("SESSION_KEY"), fp(b"y"));
        w.observed
            .stored_external
            .insert(name("NOT_IN_SPEC"), fp(b"z"));
        assert!(plan_of(&t, &w.observed).is_empty());
    }
}
