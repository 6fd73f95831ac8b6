use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn t(s: &str) -> TenantName {
    TenantName::parse(s).expect("valid name")
}

fn replicas(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}")).collect()
}

fn loads(a: &BTreeMap<Work, String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in a.values() {
        *m.entry(r.clone()).or_insert(0) += 1;
    }
    m
}

/// Pinned: a tenant's shard must never change between versions (two
/// versions in one rolling upgrade would both reconcile it).
#[test]
fn shard_of_is_pinned() {
    let got: Vec<(String, u16)> = ["acme", "globex", "initech", "t-0001", "t-9999", "a"]
        .iter()
        .map(|n| (n.to_string(), shard_of(&t(n)).index()))
        .collect();
    let want: Vec<(String, u16)> = vec![
        ("acme".into(), GOLDEN[0]),
        ("globex".into(), GOLDEN[1]),
        ("initech".into(), GOLDEN[2]),
        ("t-0001".into(), GOLDEN[3]),
        ("t-9999".into(), GOLDEN[4]),
        ("a".into(), GOLDEN[5]),
    ];
    assert_eq!(got, want);
    assert_eq!(SHARDS, 64);
}

/// FNV-1a 64 of each name, mod 64, computed independently of `fnv1a`.
const GOLDEN: [u16; 6] = golden();

const fn golden() -> [u16; 6] {
    const NAMES: [&[u8]; 6] = [b"acme", b"globex", b"initech", b"t-0001", b"t-9999", b"a"];
    let mut out = [0u16; 6];
    let mut i = 0;
    while i < 6 {
        let mut h: u64 = 14695981039346656037;
        let mut j = 0;
        while j < NAMES[i].len() {
            h ^= NAMES[i][j] as u64;
            h = h.wrapping_mul(1099511628211);
            j += 1;
        }
        out[i] = (h % 64) as u16;
        i += 1;
    }
    out
}

#[test]
fn shard_of_known_values() {
    // Literal values, so a change of the hash or of SHARDS fails here even
    // if both sides of the golden computation changed together.
    assert_eq!(
        shard_of(&t("a")).index(),
        (0xaf63dc4c8601ec8c_u64 % 64) as u16
    );
    assert_eq!(shard_of(&t("a")).index(), 12);
}

#[test]
fn work_keys_round_trip_and_reject_strangers() {
    for w in work_list(&Job::ALL) {
        assert_eq!(Work::parse(&w.key()), Some(w));
    }
    for bad in [
        "",
        "shard:",
        "shard:64",
        "shard:+7",
        "shard: 7",
        "shard:007x",
        "job:",
        "job:feed",
        "tenant:a",
    ] {
        assert_eq!(Work::parse(bad), None, "{bad:?}");
    }
    assert_eq!(work_list(&[Job::OrgToken, Job::OrgToken]).len(), 65);
}

#[test]
fn no_replica_no_assignment() {
    assert!(assign::<String>(&work_list(&[]), &[]).is_empty());
}

#[test]
fn one_replica_takes_everything() {
    let work = work_list(&Job::ALL);
    let a = assign(&work, &replicas(1));
    assert_eq!(a.len(), work.len());
    assert!(a.values().all(|r| r == "r0"));
}

#[test]
fn shares_are_even_and_the_order_of_members_does_not_matter() {
    let work = work_list(&Job::ALL);
    for n in 1..=7 {
        let live = replicas(n);
        let a = assign(&work, &live);
        assert_eq!(a.len(), work.len(), "{n} replicas place everything");
        let l = loads(&a);
        let (min, max) = (l.values().min().unwrap(), l.values().max().unwrap());
        assert!(max - min <= 1, "{n} replicas: loads {l:?}");
        assert_eq!(l.len(), n, "every replica gets work");
        let mut reversed = live.clone();
        reversed.reverse();
        assert_eq!(assign(&work, &reversed), a);
    }
}

#[test]
fn losing_a_replica_moves_its_work_and_little_else() {
    let work = work_list(&Job::ALL);
    let three = assign(&work, &replicas(3));
    let two = assign(&work, &replicas(2));
    let moved_between_survivors = three
        .iter()
        .filter(|(w, r)| r.as_str() != "r2" && two[*w] != **r)
        .count();
    let orphaned = three.values().filter(|r| r.as_str() == "r2").count();
    assert!(orphaned > 0);
    // Capacity shifts may move a few between survivors, never most.
    assert!(
        moved_between_survivors <= work.len() / 4,
        "moved {moved_between_survivors} of {}",
        work.len()
    );
}

fn view(holder: &str, unexpired: bool) -> LeaseView<String> {
    LeaseView {
        holder: holder.to_string(),
        unexpired,
    }
}

#[test]
fn decide_claims_free_and_expired_work_but_never_a_live_lease() {
    let s = |n| Work::Shard(Shard::new(n).unwrap());
    let me = "r0".to_string();
    let assignment: BTreeMap<Work, String> = [
        (s(0), "r0".into()),
        (s(1), "r0".into()),
        (s(2), "r0".into()),
        (s(3), "r0".into()),
        (s(4), "r1".into()),
    ]
    .into();
    let leases: BTreeMap<Work, LeaseView<String>> = [
        (s(1), view("r1", false)), // expired: take over
        (s(2), view("r1", true)),  // still r1's: wait for it to let go
        (s(3), view("r0", true)),  // ours by the row, not known here: re-claim
        (s(4), view("r1", true)),
    ]
    .into();
    let m = decide(&me, &assignment, &leases, &BTreeMap::new(), true);
    assert_eq!(m.claim, vec![s(0), s(1), s(3)]);
    assert!(m.renew.is_empty() && m.release.is_empty() && m.drain.is_empty());
    // Cold: nothing is claimed yet.
    assert_eq!(
        decide(&me, &assignment, &leases, &BTreeMap::new(), false),
        Moves::default()
    );
}

#[test]
fn decide_releases_work_assigned_away_only_once_idle() {
    let s = |n| Work::Shard(Shard::new(n).unwrap());
    let me = "r0".to_string();
    let assignment: BTreeMap<Work, String> = [
        (s(0), "r0".into()),
        (s(1), "r1".into()),
        (s(2), "r1".into()),
    ]
    .into();
    let mine: BTreeMap<Work, Held> = [
        (s(0), Held { busy: true }),
        (s(1), Held { busy: true }),
        (s(2), Held { busy: false }),
    ]
    .into();
    let m = decide(&me, &assignment, &BTreeMap::new(), &mine, true);
    assert_eq!(m.renew, vec![s(0), s(1)]);
    assert_eq!(m.drain, vec![s(1), s(2)]);
    assert_eq!(m.release, vec![s(2)]);
    assert!(m.claim.is_empty());
}

#[test]
fn budget_shares_never_add_up_to_more_than_the_whole() {
    assert_eq!(budget_share(20, 0), 20);
    assert_eq!(budget_share(20, 1), 20);
    assert_eq!(budget_share(20, 3), 6);
    assert_eq!(budget_share(2, 3), 1);
}

proptest! {
    #[test]
    fn any_membership_gets_an_even_complete_split(
        names in proptest::collection::btree_set("[a-z][a-z0-9-]{0,10}", 1..12),
        jobs in proptest::collection::vec(prop_oneof![Just(Job::GitSync), Just(Job::OrgToken)], 0..3),
    ) {
        let live: Vec<String> = names.into_iter().collect();
        let work = work_list(&jobs);
        let a = assign(&work, &live);
        prop_assert_eq!(a.len(), work.len());
        let l = loads(&a);
        let min = live.iter().map(|r| l.get(r).copied().unwrap_or(0)).min().unwrap();
        let max = l.values().copied().max().unwrap();
        prop_assert!(max - min <= 1);
    }

    #[test]
    fn every_name_has_a_shard(name in "[a-z][a-z0-9-]{0,40}[a-z0-9]") {
        let n = t(&name);
        prop_assert!(shard_of(&n).index() < SHARDS);
        prop_assert_eq!(shard_of(&n), shard_of(&n.clone()));
    }
}
