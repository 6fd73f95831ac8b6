//! `GET /v1/tokens/current` on the wire: one entry per macaroon in the
//! header, merged into one [`TokenInfo`].

use serde::Deserialize;

use super::{non_empty, nullable};
use crate::fly::TokenInfo;

#[derive(Debug, Deserialize)]
struct TokenInfoWire {
    #[serde(default)]
    org_slug: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    apps: Vec<String>,
    #[serde(default)]
    token_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CurrentTokenWire {
    #[serde(default, deserialize_with = "nullable")]
    tokens: Vec<TokenInfoWire>,
}

impl CurrentTokenWire {
    /// A token header may hold several macaroons; their scopes are merged.
    pub fn into_domain(self) -> TokenInfo {
        let mut org_slug = None;
        let mut apps: Vec<String> = Vec::new();
        let mut token_ids: Vec<String> = Vec::new();
        for t in self.tokens {
            if org_slug.is_none() {
                org_slug = non_empty(t.org_slug);
            }
            if let Some(id) = non_empty(t.token_id)
                && !token_ids.contains(&id)
            {
                token_ids.push(id);
            }
            for a in t.apps {
                if !apps.contains(&a) {
                    apps.push(a);
                }
            }
        }
        TokenInfo {
            org_slug,
            apps,
            token_ids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_info_merges_macaroons() {
        let t: CurrentTokenWire = serde_json::from_value(json!({"tokens": [
            {"org_slug": "acme", "apps": ["a"], "token_id": "tok1"},
            {"org_slug": "", "apps": ["a", "b"], "token_id": ""},
            {"apps": null, "token_id": null},
            {"token_id": "tok2"},
            {"token_id": "tok1"}
        ]}))
        .expect("reads");
        assert_eq!(
            t.into_domain(),
            TokenInfo {
                org_slug: Some("acme".into()),
                apps: vec!["a".into(), "b".into()],
                token_ids: vec!["tok1".into(), "tok2".into()],
            }
        );
    }
}
