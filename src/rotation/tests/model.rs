//! The model's helpers: mint names, strict serialization, delivery targets.

use super::*;

#[test]
fn mint_names_round_trip_and_reject_everything_else() {
    let name = mint_name(&tenant(), &token(), rid(5), 3);
    assert_eq!(name, format!("flotilla/acme/deploy/{}/3", rid(5)));
    assert_eq!(
        parse_mint_name(&name),
        Some(MintRef {
            tenant: tenant(),
            token: token(),
            rotation: rid(5),
            attempt: 3
        })
    );
    let id = rid(5).to_string();
    for bad in [
        String::new(),
        "flyctl deploy token".into(),
        format!("flotilla/acme/deploy/{id}"),
        format!("flotilla/acme/deploy/{id}/0"),
        format!("flotilla/acme/deploy/{id}/03"),
        format!("flotilla/acme/deploy/{id}/3/x"),
        format!("flotilla/ACME/deploy/{id}/3"),
        format!("flotilla/acme/deploy/{}/3", id.to_uppercase()),
        format!("other/acme/deploy/{id}/3"),
        "flotilla/acme/deploy/not-a-uuid/1".into(),
    ] {
        assert_eq!(parse_mint_name(&bad), None, "{bad:?}");
    }
}

#[test]
fn records_serialize_strictly() {
    let mut w = World::active().rotating(Phase::SecretsWritten {
        pending: pending(),
        secrets_version: 9,
    });
    w.record.retiring.push(retiring(t(T0) + mins(10)));
    w.record.last_failure = Some(Failure {
        at: t(T0),
        step: StepKind::WriteSecrets,
        error: "500".into(),
    });
    let json = serde_json::to_string(&w.record).unwrap();
    assert!(json.contains(r#""phase":"secretsWritten""#), "{json}");
    assert!(json.contains(r#""secretsVersion":9"#), "{json}");
    let back: TokenRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, w.record);
    let extra = json.replacen('{', r#"{"surprise":1,"#, 1);
    assert!(serde_json::from_str::<TokenRecord>(&extra).is_err());
    let upper = json.replace(&rid(2).to_string(), &rid(2).to_string().to_uppercase());
    assert!(serde_json::from_str::<TokenRecord>(&upper).is_err());
    let bad_fp = json.replacen("sha256:", "sha1:", 1);
    assert!(serde_json::from_str::<TokenRecord>(&bad_fp).is_err());
}

#[test]
fn delivery_targets_union_deliver_to_and_from_token_secrets() {
    let yaml_spec = crate::spec::load_str(
        "t.yaml",
        r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  org: personal
  app: {name: acme-app}
  secrets:
    - {name: DEPLOY_TOKEN, fromToken: deploy}
    - {name: OTHER, generate: {length: 16}}
  tokens:
    - name: deploy
      deliverTo: {appSecrets: [FLY_API_TOKEN]}
"#,
        &Default::default(),
    );
    let tenant = match yaml_spec {
        Ok(docs) => docs.into_iter().next().unwrap().tenant,
        Err(e) => panic!("{e:?}"),
    };
    let got = delivery_targets(&tenant.spec, &token());
    let names: Vec<&str> = got.iter().map(SecretName::as_str).collect();
    assert_eq!(names, ["FLY_API_TOKEN", "DEPLOY_TOKEN"]);
    assert!(delivery_targets(&tenant.spec, &TokenName::parse("none").unwrap()).is_empty());
}
