//! Label selectors as text: `key=value[,key=value...]`, as `-l` and
//! `?labelSelector=` take them.

use std::collections::BTreeMap;

use crate::store::LabelSelector;

/// Parses `key=value[,key=value...]` (whitespace around pairs is ignored).
/// Keys follow the spec's label-key rule, so every label a spec can carry can
/// be selected: 1 to 253 characters from `A-Z a-z 0-9 . _ - /`. Values are any
/// text without `,` (the spec does not restrict label values), possibly empty.
pub fn parse_selector(s: &str) -> Result<LabelSelector, String> {
    let mut map = BTreeMap::new();
    for pair in s.split(',') {
        let pair = pair.trim();
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("{pair:?} is not key=value"));
        };
        let (k, v) = (k.trim(), v.trim());
        let key_ok = (1..=253).contains(&k.len())
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !key_ok {
            return Err(format!(
                "label key {k:?}: use 1 to 253 characters from A-Z, a-z, 0-9, '.', '_', '-' and '/'"
            ));
        }
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("label key {k:?} appears twice"));
        }
    }
    Ok(LabelSelector(map))
}

/// The selector back in `key=value,...` form (for `?labelSelector=`).
pub fn format_selector(sel: &LabelSelector) -> String {
    sel.0
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_validate() {
        let sel = parse_selector("tier=gold, flotilla.dev/team=core,empty=").unwrap();
        assert_eq!(sel.0.len(), 3);
        assert_eq!(sel.0["flotilla.dev/team"], "core");
        assert_eq!(sel.0["empty"], "");
        assert!(parse_selector("tier").unwrap_err().contains("key=value"));
        assert!(
            parse_selector("bad key=x")
                .unwrap_err()
                .contains("label key")
        );
        assert!(parse_selector("=x").unwrap_err().contains("label key"));
        assert!(parse_selector("a=1,a=2").unwrap_err().contains("twice"));
        assert!(parse_selector(&format!("{}=x", "k".repeat(254))).is_err());
        assert!(parse_selector("a=1,,b=2").is_err());
        assert_eq!(parse_selector(&format_selector(&sel)).unwrap(), sel);
    }
}
