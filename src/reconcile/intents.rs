//! Turning outstanding create intents into ownership, before planning.
//!
//! An intent is recorded before every create whose result flotilla must
//! claim (`crate::state::IntentDetail`), and is left behind when flotilla
//! stopped or lost a response between recording it and recording the
//! result. Here each one is settled against what Fly shows now. An intent is
//! resolved only by seeing its result, or by proof that it cannot land: Fly
//! refused the call (the executor resolves those itself), its window
//! ([`CREATE_INTENT_TTL`] from when it was recorded) has passed, or the app it
//! would land in does not exist and no app create is in flight. One
//! observation that does not show a create yet never resolves it: Fly's
//! reads are eventually consistent, and a create whose response was lost may
//! land after the restart.
//!
//! | kind | observed | outcome |
//! |---|---|---|
//! | app | app in the tenant's org | ledger owns the app; resolved |
//! | app | app in another org | resolved (someone else has the name) |
//! | app | absent, within the window | kept: in flight; a deleted tenant is not forgotten yet |
//! | ip | an unowned address matching the intent's spec | ledger owns it; resolved |
//! | ip | none, within the window | kept: in flight; it stands for one address of its spec (no second assign) |
//! | certificate | the hostname's certificate | ledger owns it; resolved |
//! | certificate | none, within the window | kept: in flight; not requested again |
//! | secrets | every name present | ledger owns them; resolved |
//! | secrets | some names missing, within the window | present names owned; kept |
//! | machine | a machine with the key | resolved (metadata proves ownership) |
//! | machine | none, within the window | kept: the plan resumes the create with the same key |
//! | lease | machine live, before the lease's expiry | kept: flotilla's own lease; reused (nonce known, or recognised by its description), released if no step needs it |
//! | lease | machine gone, or expiry passed | resolved |
//! | volume | an unowned live volume of the intent's name and region, created no earlier than [`CLOCK_SKEW`] before the intent | ledger owns it; resolved |
//! | volume | none, within the window | kept: in flight; it stands for one volume of that name and region (no second create) |
//! | any create | window passed | resolved: the plan creates afresh if still desired |
//! | any create | Fly refused the call (not a timeout or 5xx) | resolved by the executor at once (`Executor::not_landed`) |
//! | ip, certificate, secrets, machine, volume | app absent, no app create in flight | resolved: nothing can land in an app that does not exist |
//!
//! This is pure: it updates the observation (ledger, pending creates) and
//! returns the keys of resolved intents, which the reconciler deletes in the
//! same transaction that writes the ledger recording their results.
//!
//! # Caveat
//! An address carries no owner on Fly, so an IP intent is matched by type,
//! region and service against addresses the ledger does not hold. A foreign
//! address of the same spec that appears while the intent is outstanding
//! would be adopted in its place (and its own address, if it lands, seen as
//! foreign). The window is the intent's, at most [`CREATE_INTENT_TTL`].
//! Volumes carry no owner either; a volume intent is matched by name and
//! region against volumes the ledger does not hold that were created after
//! the intent (less [`CLOCK_SKEW`]), so a foreign volume created before it
//! is never adopted, and one created by someone else while the intent is
//! outstanding could be.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

use crate::model::fly::meta;
use crate::plan::{AppObservation, Observed, OwnLease, PendingMachine, ip_matches};
use crate::state::{Intent, IntentDetail};

/// How long an unconfirmed create may still land. Fly's lists are eventually
/// consistent (seconds); ten minutes leaves a wide margin. Past it, the
/// create is considered never to have happened.
pub const CREATE_INTENT_TTL: SignedDuration = SignedDuration::from_secs(600);

/// The window of machine creates, resumed with their key until it ends.
pub const MACHINE_INTENT_TTL: SignedDuration = CREATE_INTENT_TTL;

/// How far Fly's clock (a volume's `created_at`) may be behind flotilla's
/// (an intent's `created_at`) for a volume to still count as the intent's.
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(300);

/// Settles `intents` against `observed` (updating its ledger and what is in
/// flight) and returns the keys of intents that are resolved.
pub fn resolve(intents: &[Intent], observed: &mut Observed, now: Timestamp) -> Vec<String> {
    let expired = |i: &Intent| {
        i.created_at
            .checked_add(CREATE_INTENT_TTL)
            .is_ok_and(|t| t <= now)
    };
    // An app create in flight keeps everything that would land in the app.
    observed.pending.app = observed.app == AppObservation::Absent
        && intents
            .iter()
            .any(|i| matches!(i.detail, IntentDetail::App { .. }) && !expired(i));
    let app_gone = observed.app == AppObservation::Absent && !observed.pending.app;
    let machine_keys: BTreeSet<String> = observed
        .machines
        .iter()
        .filter_map(|m| m.metadata.get(meta::CREATE_KEY).cloned())
        .collect();

    let mut settled = Vec::new();
    for intent in intents {
        let done = match &intent.detail {
            IntentDetail::App { .. } => match observed.app {
                AppObservation::InOrg | AppObservation::Assumed => {
                    observed.ledger.app_owned = true;
                    true
                }
                AppObservation::OtherOrg => true,
                AppObservation::Absent => expired(intent),
            },
            _ if app_gone => true,
            IntentDetail::Ip { spec } => {
                let found = observed
                    .ips
                    .iter()
                    .find(|ip| !observed.ledger.ips.contains(&ip.ip) && ip_matches(spec, ip))
                    .map(|ip| ip.ip.clone());
                if let Some(ip) = found {
                    observed.ledger.ips.insert(ip);
                    true
                } else if expired(intent) {
                    true
                } else {
                    observed.pending.ips.push(spec.clone());
                    false
                }
            }
            IntentDetail::Certificate { hostname } => {
                let seen = observed
                    .certificates
                    .iter()
                    .any(|c| c.summary.hostname == hostname.as_str());
                if seen {
                    observed.ledger.certificates.insert(hostname.clone());
                    true
                } else if expired(intent) {
                    true
                } else {
                    observed.pending.certificates.insert(hostname.clone());
                    false
                }
            }
            IntentDetail::Secrets { names } => {
                let present: BTreeSet<_> = observed.secrets.iter().map(|s| &s.name).collect();
                let mut all = true;
                for n in names {
                    if present.contains(n) {
                        observed.ledger.secrets.insert(n.clone());
                    } else {
                        all = false;
                    }
                }
                all || expired(intent)
            }
            IntentDetail::Machine { group } => {
                if machine_keys.contains(&intent.key) || expired(intent) {
                    true
                } else {
                    observed.pending_machines.push(PendingMachine {
                        key: intent.key.clone(),
                        group: group.clone(),
                    });
                    false
                }
            }
            IntentDetail::Lease {
                machine,
                nonce,
                expires_at,
            } => {
                let live = observed
                    .machines
                    .iter()
                    .any(|m| &m.id == machine && !m.state.is_gone());
                if !live || *expires_at <= now {
                    true
                } else {
                    observed.pending.leases.insert(
                        machine.clone(),
                        OwnLease {
                            key: intent.key.clone(),
                            nonce: nonce.clone(),
                            expires_at: *expires_at,
                        },
                    );
                    false
                }
            }
            IntentDetail::Volume { name, region } => {
                let since = intent
                    .created_at
                    .checked_sub(CLOCK_SKEW)
                    .unwrap_or(intent.created_at);
                let found = observed
                    .volumes
                    .iter()
                    .filter(|v| {
                        !observed.ledger.volumes.contains(&v.id)
                            && v.name == name.as_str()
                            && v.region == region.as_str()
                            && v.created_at.is_none_or(|t| t >= since)
                    })
                    .min_by_key(|v| (v.created_at, v.id.clone()))
                    .map(|v| v.id.clone());
                if let Some(id) = found {
                    observed.ledger.volumes.insert(id);
                    true
                } else if expired(intent) {
                    true
                } else {
                    observed
                        .pending
                        .volumes
                        .push((name.clone(), region.clone()));
                    false
                }
            }
        };
        if done {
            settled.push(intent.key.clone());
        }
    }
    settled
}

#[cfg(test)]
mod tests {
    //! One test per row of the table in the module docs.

    use std::collections::BTreeMap;

    use super::*;
    use crate::ids::{
        AppName, GroupName, Hostname, MachineId, Region, SecretName, TenantName, VolumeId,
        VolumeName,
    };
    use crate::model::fly::{
        AppSecret, CertificateSummary, HostStatus, IpAssignment, Machine, MachineState, Volume,
        VolumeState,
    };
    use crate::plan::{Ledger, ObservedCertificate};
    use crate::spec::{IpKind, IpSpec};
    use crate::state::LeaseNonce;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// When the intents below were recorded.
    const AT: &str = "2026-01-01T00:00:00Z";
    /// Within the window.
    const SOON: &str = "2026-01-01T00:01:00Z";
    /// Past the window.
    const LATE: &str = "2026-01-01T00:10:00Z";

    fn intent(key: &str, detail: IntentDetail) -> Intent {
        Intent {
            tenant: TenantName::parse("acme").unwrap(),
            key: key.into(),
            detail,
            created_at: t(AT),
        }
    }

    fn app_intent() -> Intent {
        intent(
            "app-1",
            IntentDetail::App {
                name: AppName::parse("acme").unwrap(),
            },
        )
    }

    fn v6() -> IpSpec {
        IpSpec {
            kind: IpKind::V6,
            region: None,
            service_name: None,
            network: None,
        }
    }

    fn ip_intent() -> Intent {
        intent("ip-1", IntentDetail::Ip { spec: v6() })
    }

    fn host() -> Hostname {
        Hostname::parse("acme.example.com").unwrap()
    }

    fn cert_intent() -> Intent {
        intent(
            "certificate-1",
            IntentDetail::Certificate { hostname: host() },
        )
    }

    fn secret(n: &str) -> SecretName {
        SecretName::parse(n).unwrap()
    }

    fn secrets_intent() -> Intent {
        intent(
            "secrets-1",
            IntentDetail::Secrets {
                names: [secret("A"), secret("B")].into(),
            },
        )
    }

    fn machine_intent() -> Intent {
        intent(
            "web-0001",
            IntentDetail::Machine {
                group: GroupName::parse("web").unwrap(),
            },
        )
    }

    fn id() -> MachineId {
        MachineId::parse("3d8d9e1b2c4e87").unwrap()
    }

    fn lease_intent(expires_at: &str) -> Intent {
        intent(
            "lease-1",
            IntentDetail::Lease {
                machine: id(),
                nonce: Some(LeaseNonce::new("n1")),
                expires_at: t(expires_at),
            },
        )
    }

    fn volume_intent() -> Intent {
        intent(
            "volume-1",
            IntentDetail::Volume {
                name: VolumeName::parse("data").unwrap(),
                region: Region::parse("ord").unwrap(),
            },
        )
    }

    fn volume(id: &str, region: &str, created_at: &str) -> Volume {
        Volume {
            id: VolumeId::parse(id).unwrap(),
            name: "data".into(),
            state: VolumeState::Created,
            region: region.into(),
            zone: None,
            size_gb: 1,
            encrypted: true,
            attached_machine_id: None,
            snapshot_retention: None,
            auto_backup_enabled: None,
            created_at: Some(t(created_at)),
        }
    }

    fn observed(app: AppObservation) -> Observed {
        let mut o = Observed::absent(Ledger::default(), t(AT));
        o.app = app;
        o
    }

    fn in_org() -> Observed {
        observed(AppObservation::InOrg)
    }

    fn address(ip: &str) -> IpAssignment {
        IpAssignment {
            ip: ip.into(),
            kind: IpKind::V6,
            region: None,
            service_name: None,
            created_at: None,
        }
    }

    fn machine(key: &str, state: MachineState) -> Machine {
        let metadata: BTreeMap<String, String> =
            [(meta::CREATE_KEY.to_string(), key.to_string())].into();
        Machine {
            id: id(),
            name: "m".into(),
            state,
            region: "ord".into(),
            version: "v1".into(),
            host_status: HostStatus::Ok,
            config: None,
            metadata,
            checks: Vec::new(),
            created_at: None,
            updated_at: None,
        }
    }

    fn run(intents: &[Intent], o: &mut Observed, now: &str) -> Vec<String> {
        resolve(intents, o, t(now))
    }

    #[test]
    fn app_in_the_org_is_owned_and_resolved() {
        let mut o = in_org();
        assert_eq!(run(&[app_intent()], &mut o, SOON), ["app-1"]);
        assert!(o.ledger.app_owned);
    }

    #[test]
    fn app_in_another_org_is_resolved_not_owned() {
        let mut o = observed(AppObservation::OtherOrg);
        assert_eq!(run(&[app_intent()], &mut o, SOON), ["app-1"]);
        assert!(!o.ledger.app_owned);
    }

    #[test]
    fn an_absent_app_is_in_flight_within_its_window_only() {
        let mut o = observed(AppObservation::Absent);
        assert!(run(&[app_intent()], &mut o, SOON).is_empty());
        assert!(o.pending.app);
        let mut o = observed(AppObservation::Absent);
        assert_eq!(run(&[app_intent()], &mut o, LATE), ["app-1"]);
        assert!(!o.pending.app);
    }

    #[test]
    fn an_unowned_address_of_the_spec_is_adopted() {
        let mut o = in_org();
        o.ips = vec![address("2a09::1")];
        assert_eq!(run(&[ip_intent()], &mut o, SOON), ["ip-1"]);
        assert!(o.ledger.ips.contains("2a09::1"));
    }

    #[test]
    fn an_address_not_visible_yet_stays_in_flight() {
        // The leak the first observation after a restart used to cause.
        let mut o = in_org();
        assert!(run(&[ip_intent()], &mut o, SOON).is_empty());
        assert_eq!(o.pending.ips, [v6()]);
        // An address flotilla already owns is no proof of this one.
        let mut o = in_org();
        o.ips = vec![address("2a09::1")];
        o.ledger.ips.insert("2a09::1".into());
        assert!(run(&[ip_intent()], &mut o, SOON).is_empty());
        assert_eq!(o.pending.ips, [v6()]);
    }

    #[test]
    fn a_seen_certificate_is_owned_and_resolved() {
        let mut o = in_org();
        o.certificates = vec![ObservedCertificate {
            summary: CertificateSummary {
                hostname: host().to_string(),
                status: "Awaiting configuration".into(),
                configured: false,
                acme_requested: true,
                has_fly_certificate: false,
            },
            detail: None,
        }];
        assert_eq!(run(&[cert_intent()], &mut o, SOON), ["certificate-1"]);
        assert!(o.ledger.certificates.contains(&host()));
    }

    #[test]
    fn a_certificate_not_visible_yet_stays_in_flight() {
        let mut o = in_org();
        assert!(run(&[cert_intent()], &mut o, SOON).is_empty());
        assert!(o.pending.certificates.contains(&host()));
        assert!(o.ledger.certificates.is_empty());
    }

    #[test]
    fn secrets_are_owned_as_they_appear_and_resolved_when_all_are() {
        let mut o = in_org();
        o.secrets = vec![AppSecret {
            name: secret("A"),
            digest: "d".into(),
        }];
        assert!(run(&[secrets_intent()], &mut o, SOON).is_empty());
        assert_eq!(o.ledger.secrets, [secret("A")].into());
        o.secrets.push(AppSecret {
            name: secret("B"),
            digest: "d".into(),
        });
        assert_eq!(run(&[secrets_intent()], &mut o, SOON), ["secrets-1"]);
        assert_eq!(o.ledger.secrets, [secret("A"), secret("B")].into());
    }

    #[test]
    fn a_machine_with_the_key_resolves_its_intent() {
        let mut o = in_org();
        o.machines = vec![machine("web-0001", MachineState::Started)];
        assert_eq!(run(&[machine_intent()], &mut o, SOON), ["web-0001"]);
        assert!(o.pending_machines.is_empty());
    }

    #[test]
    fn a_machine_not_visible_yet_is_resumed_with_its_key() {
        let mut o = in_org();
        assert!(run(&[machine_intent()], &mut o, SOON).is_empty());
        assert_eq!(o.pending_machines.len(), 1);
        assert_eq!(o.pending_machines[0].key, "web-0001");
    }

    #[test]
    fn an_own_lease_on_a_live_machine_is_kept_until_it_expires() {
        let mut o = in_org();
        o.machines = vec![machine("k", MachineState::Started)];
        assert!(run(&[lease_intent(SOON)], &mut o, AT).is_empty());
        let own = &o.pending.leases[&id()];
        assert_eq!(own.key, "lease-1");
        assert_eq!(own.nonce, Some(LeaseNonce::new("n1")));
        // Past its expiry.
        let mut o = in_org();
        o.machines = vec![machine("k", MachineState::Started)];
        assert_eq!(run(&[lease_intent(SOON)], &mut o, SOON), ["lease-1"]);
        assert!(o.pending.leases.is_empty());
    }

    #[test]
    fn a_lease_on_a_machine_that_is_gone_is_resolved() {
        let mut o = in_org();
        assert_eq!(run(&[lease_intent(LATE)], &mut o, AT), ["lease-1"]);
        let mut o = in_org();
        o.machines = vec![machine("k", MachineState::Destroyed)];
        assert_eq!(run(&[lease_intent(LATE)], &mut o, AT), ["lease-1"]);
    }

    #[test]
    fn an_unowned_volume_of_the_name_and_region_is_adopted() {
        let mut o = in_org();
        o.volumes = vec![
            // Another region, and one created long before the intent.
            volume("vol_aaaaaaaaaaaaaaaa", "fra", SOON),
            volume("vol_bbbbbbbbbbbbbbbb", "ord", "2025-12-31T00:00:00Z"),
            volume("vol_cccccccccccccccc", "ord", SOON),
        ];
        assert_eq!(run(&[volume_intent()], &mut o, SOON), ["volume-1"]);
        let owned: Vec<&str> = o.ledger.volumes.iter().map(|v| v.as_str()).collect();
        assert_eq!(owned, ["vol_cccccccccccccccc"]);
        // One already owned is no proof of a second create.
        let mut o = in_org();
        o.volumes = vec![volume("vol_cccccccccccccccc", "ord", SOON)];
        o.ledger
            .volumes
            .insert(VolumeId::parse("vol_cccccccccccccccc").unwrap());
        assert!(run(&[volume_intent()], &mut o, SOON).is_empty());
        assert_eq!(o.pending.volumes.len(), 1);
    }

    #[test]
    fn two_volume_intents_adopt_two_volumes() {
        let mut second = volume_intent();
        second.key = "volume-2".into();
        let mut o = in_org();
        o.volumes = vec![
            volume("vol_cccccccccccccccc", "ord", SOON),
            volume("vol_dddddddddddddddd", "ord", SOON),
        ];
        assert_eq!(
            run(&[volume_intent(), second], &mut o, SOON),
            ["volume-1", "volume-2"]
        );
        assert_eq!(o.ledger.volumes.len(), 2);
    }

    #[test]
    fn a_volume_not_visible_yet_stays_in_flight() {
        let mut o = in_org();
        assert!(run(&[volume_intent()], &mut o, SOON).is_empty());
        assert_eq!(
            o.pending.volumes,
            [(
                VolumeName::parse("data").unwrap(),
                Region::parse("ord").unwrap()
            )]
        );
        assert!(o.ledger.volumes.is_empty());
    }

    #[test]
    fn every_create_is_resolved_when_its_window_passes() {
        let all = [
            app_intent(),
            ip_intent(),
            cert_intent(),
            secrets_intent(),
            machine_intent(),
            volume_intent(),
        ];
        let mut o = in_org();
        let mut got = run(&all, &mut o, LATE);
        got.sort();
        assert_eq!(
            got,
            [
                "app-1",
                "certificate-1",
                "ip-1",
                "secrets-1",
                "volume-1",
                "web-0001"
            ]
        );
        assert!(o.pending.volumes.is_empty());
        assert!(o.pending.ips.is_empty() && o.pending.certificates.is_empty());
        assert!(o.pending_machines.is_empty());
    }

    #[test]
    fn nothing_lands_in_an_app_that_is_gone() {
        let inside = [
            ip_intent(),
            cert_intent(),
            secrets_intent(),
            machine_intent(),
            lease_intent(LATE),
            volume_intent(),
        ];
        let mut o = observed(AppObservation::Absent);
        let mut got = run(&inside, &mut o, SOON);
        got.sort();
        assert_eq!(
            got,
            [
                "certificate-1",
                "ip-1",
                "lease-1",
                "secrets-1",
                "volume-1",
                "web-0001"
            ]
        );
        // Unless the app itself may still land: then they wait with it.
        let mut with_app = inside.to_vec();
        with_app.push(app_intent());
        let mut o = observed(AppObservation::Absent);
        let got = run(&with_app, &mut o, SOON);
        assert_eq!(got, ["lease-1"], "a lease needs its machine");
        assert!(o.pending.app);
        assert_eq!(o.pending.ips, [v6()]);
        assert!(o.pending.certificates.contains(&host()));
        assert_eq!(o.pending_machines.len(), 1);
        assert_eq!(o.pending.volumes.len(), 1);
    }
}
