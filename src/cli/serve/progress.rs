//! `serve`'s progress display while a lone controller converges its fleet:
//! a bar on stderr, one line on stdout when every tenant is Ready.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::ids::TenantName;
use crate::reconcile::Outcome;
use crate::store::{LabelSelector, SharedStore};

/// Progress until every tenant is Ready, then one line on stdout.
#[derive(Clone)]
pub(super) struct Progress {
    inner: Arc<Mutex<ProgressState>>,
}

struct ProgressState {
    bar: ProgressBar,
    ready: BTreeMap<TenantName, bool>,
    total: usize,
    started: Instant,
    announced: bool,
    addr: SocketAddr,
}

impl Progress {
    pub(super) async fn new(store: &SharedStore, addr: SocketAddr) -> anyhow::Result<Self> {
        let records = store.list(&LabelSelector::default()).await?;
        let total = records.len();
        let ready = records
            .iter()
            .map(|r| {
                let s = crate::reconcile::status::TenantStatus::from_json(&r.status);
                (
                    r.name.clone(),
                    s.is_ready() && r.observed_generation == r.generation,
                )
            })
            .collect::<BTreeMap<_, _>>();
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos}/{len} tenants Ready {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Ok(Self {
            inner: Arc::new(Mutex::new(ProgressState {
                bar,
                ready,
                total,
                started: Instant::now(),
                announced: false,
                addr,
            })),
        })
    }

    pub(super) fn observe(&self, name: &TenantName, outcome: &Outcome) {
        let mut s = self.inner.lock().expect("progress lock");
        s.ready.insert(name.clone(), outcome.ready);
        s.total = s.total.max(s.ready.len());
        let done = s.ready.values().filter(|r| **r).count();
        s.bar.set_length(s.total as u64);
        s.bar.set_position(done as u64);
        s.bar.set_message(format!(
            "(last: {name} {})",
            if outcome.ready {
                "Ready"
            } else {
                "in progress"
            }
        ));
        if done == s.total && s.total > 0 && !s.announced {
            s.announced = true;
            s.bar.finish_and_clear();
            println!(
                "All {} tenant(s) Ready after {:.1}s; still serving on http://{} (Ctrl-C to stop)",
                s.total,
                s.started.elapsed().as_secs_f64(),
                s.addr
            );
        }
    }

    pub(super) fn finish(&self) {
        self.inner
            .lock()
            .expect("progress lock")
            .bar
            .finish_and_clear();
    }
}
