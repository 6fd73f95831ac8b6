//! The machine cache's compact form of a machine ([`Packed`]): what
//! `super::cache` keeps per app between reconciles, for every managed app
//! at once (10,000 apps, 20,000 machines).
//!
//! A `Machine` keeps four `BTreeMap`s (its metadata, and its config's
//! environment, checks and metadata). Each non-empty one allocates at least
//! a whole B-tree leaf of 11 entries, however few it holds: about 0.5 KB
//! for `String` pairs and over 1 KB for the checks, so a machine with one
//! check and a handful of metadata keys spent most of its ~4 KB in empty
//! leaf slots (measured: a 3,000-tenant fleet's live heap, heaptrack,
//! `docs/benchmarks.md`). Packed, each map is a boxed slice of exactly its
//! entries, in the map's order, and the machine's metadata is not kept a
//! second time when it is its config's (the usual case: Fly reports
//! `config.metadata`; it differs only for a machine whose host is
//! unreachable, where it comes from the incomplete config).
//!
//! Invariant: `Packed::new(m).unpack() == m` for every machine `m` (the
//! cache hands out exactly what it was given).

use std::collections::BTreeMap;

use crate::fly::Machine;
use crate::model::fly::CheckConfig;

/// A map's entries, sorted by key as the map held them.
type Entries<V> = Box<[(String, V)]>;

fn pack<V>(map: BTreeMap<String, V>) -> Entries<V> {
    map.into_iter().collect()
}

fn unpack<V: Clone>(entries: &[(String, V)]) -> BTreeMap<String, V> {
    entries.iter().cloned().collect()
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The machine with its maps and its config's taken out (an empty
    /// `BTreeMap` allocates nothing).
    bare: Machine,
    /// The machine's metadata; `None`: the same as its config's.
    metadata: Option<Entries<String>>,
    env: Entries<String>,
    checks: Entries<CheckConfig>,
    config_metadata: Entries<String>,
}

impl Packed {
    pub fn new(machine: &Machine) -> Self {
        let mut bare = machine.clone();
        let metadata = std::mem::take(&mut bare.metadata);
        let (env, checks, config_metadata) = match bare.config.as_mut() {
            Some(c) => (
                pack(std::mem::take(&mut c.env)),
                pack(std::mem::take(&mut c.checks)),
                std::mem::take(&mut c.metadata),
            ),
            None => (Box::default(), Box::default(), BTreeMap::new()),
        };
        let metadata = match bare.config {
            Some(_) if metadata == config_metadata => None,
            _ => Some(pack(metadata)),
        };
        Self {
            bare,
            metadata,
            env,
            checks,
            config_metadata: pack(config_metadata),
        }
    }

    /// The machine as it was given to [`Packed::new`].
    pub fn unpack(&self) -> Machine {
        let mut m = self.bare.clone();
        if let Some(c) = m.config.as_mut() {
            c.env = unpack(&self.env);
            c.checks = unpack(&self.checks);
            c.metadata = unpack(&self.config_metadata);
        }
        m.metadata = match (&self.metadata, &m.config) {
            (Some(own), _) => unpack(own),
            (None, Some(c)) => c.metadata.clone(),
            (None, None) => BTreeMap::new(),
        };
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fly::{HostStatus, MachineState};
    use crate::ids::MachineId;
    use crate::plan::machine::desired_config;
    use crate::plan::tests::{group, tenant};
    use crate::spec::{Check, CheckKind, DurationSecs};

    fn machine() -> Machine {
        let mut g = group("web", 1);
        for name in ["alive", "ready"] {
            g.checks.insert(
                name.into(),
                Check {
                    kind: CheckKind::Http,
                    port: 8080,
                    interval: DurationSecs(15),
                    timeout: DurationSecs(2),
                    grace_period: None,
                    method: None,
                    path: Some(format!("/{name}")),
                    protocol: None,
                    tls_skip_verify: false,
                    tls_server_name: None,
                    headers: Vec::new(),
                },
            );
        }
        let mut config = desired_config(&tenant("acme"), &g);
        config.env.insert("LOG".into(), "debug".into());
        config.env.insert("A".into(), "1".into());
        Machine {
            id: MachineId::parse("0000000000000a").unwrap(),
            name: "web-1".into(),
            state: MachineState::Started,
            region: "ord".into(),
            version: "v1".into(),
            host_status: HostStatus::Ok,
            metadata: config.metadata.clone(),
            config: Some(config),
            checks: Vec::new(),
            created_at: None,
            updated_at: None,
        }
    }

    #[test]
    fn a_packed_machine_unpacks_to_itself() {
        let m = machine();
        assert!(!m.metadata.is_empty());
        assert_eq!(m.config.as_ref().map(|c| c.checks.len()), Some(2));
        let p = Packed::new(&m);
        assert!(p.metadata.is_none(), "its config's metadata, kept once");
        assert_eq!(p.unpack(), m);

        // Metadata of its own (an unreachable host's incomplete config).
        let mut own = machine();
        own.metadata.insert("extra".into(), "x".into());
        let p = Packed::new(&own);
        assert!(p.metadata.is_some());
        assert_eq!(p.unpack(), own);

        // No config: the metadata is the machine's alone; empty maps too.
        let mut bare = machine();
        bare.config = None;
        assert_eq!(Packed::new(&bare).unpack(), bare);
        bare.metadata.clear();
        assert_eq!(Packed::new(&bare).unpack(), bare);

        // A config with empty maps, the machine's metadata empty as well.
        let mut empty = machine();
        if let Some(c) = empty.config.as_mut() {
            c.env.clear();
            c.checks.clear();
            c.metadata.clear();
        }
        empty.metadata.clear();
        assert_eq!(Packed::new(&empty).unpack(), empty);
    }
}
