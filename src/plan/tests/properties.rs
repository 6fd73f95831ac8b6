//! The property test: random tenants converge on the model from random starts.

use super::*;

proptest! {
    /// From any starting point (a previous spec's converged state, plus
    /// foreign resources), planning and applying converges in a bounded number
    /// of rounds, with exact machine counts, nothing duplicated and nothing
    /// foreign touched.
    #[test]
    fn planning_converges_from_any_start(
        before in arb_tenant(),
        after in arb_tenant(),
        foreign_machines in 0usize..3,
        foreign_ip in any::<bool>(),
        max_unavailable in 1u32..3,
    ) {
        let o = PlanOptions { max_unavailable, ..PlanOptions::default() };
        let mut w = World::empty();
        w.converge(&Desired { tenant: &before, deleting: false, options: &o }, 10);
        let mut foreign_ids = Vec::new();
        for _ in 0..foreign_machines {
            let g = group("other", 1);
            let mut m = w.machine(&before, &g, MachineState::Started);
            m.metadata.clear();
            foreign_ids.push(m.id.clone());
            w.observed.machines.push(m);
        }
        if foreign_ip {
            w.observed.ips.push(IpAssignment { ip: "137.66.200.1".into(), kind: IpKind::V4, region: None, service_name: None, created_at: None });
        }
        let d = Desired { tenant: &after, deleting: false, options: &o };
        // Each round may update max_unavailable machines per group.
        w.converge(&d, 20);
        for g in &after.spec.machines {
            let n = w.observed.machines.iter().filter(|m| m.metadata.get(meta::GROUP).map(String::as_str) == Some(g.name.as_str())).count();
            prop_assert_eq!(n, g.count as usize);
            // Each region runs its own count, every machine the one config.
            let want = machine::desired_config(&after, g);
            for (r, count) in g.placement() {
                let here: Vec<&Machine> = w.observed.machines.iter().filter(|m| m.metadata.get(meta::GROUP).map(String::as_str) == Some(g.name.as_str()) && m.region == r.as_str()).collect();
                prop_assert_eq!(here.len(), count as usize);
                for m in here {
                    prop_assert!(machine::compare(&want, m).runs_desired());
                }
            }
        }
        for id in &foreign_ids {
            prop_assert!(w.observed.machines.iter().any(|m| &m.id == id));
        }
        prop_assert_eq!(foreign_ip, w.observed.ips.iter().any(|i| i.ip == "137.66.200.1"));
        // No duplicates: flotilla's own addresses never exceed the spec (a
        // foreign address that matches a spec may satisfy it, unreleased).
        let owned = w.observed.ips.iter().filter(|i| w.observed.ledger.ips.contains(&i.ip)).count();
        prop_assert!(owned <= after.spec.ips.len());
        prop_assert!(w.observed.ips.len() <= after.spec.ips.len() + usize::from(foreign_ip));
        prop_assert_eq!(w.observed.certificates.len(), after.spec.certificates.len());

        // Teardown from there removes everything flotilla made, and only that.
        let del = Desired { tenant: &after, deleting: true, options: &o };
        for _ in 0..5 {
            let p = plan(&del, &w.observed, t0());
            if p.steps.iter().any(|s| s.action == Action::Forget) { break; }
            for s in &p.steps { w.apply(s); }
        }
        if foreign_ids.is_empty() {
            prop_assert_eq!(w.observed.app.clone(), AppObservation::Absent);
        } else {
            for id in &foreign_ids {
                prop_assert!(w.observed.machines.iter().any(|m| &m.id == id));
            }
        }
    }
}
