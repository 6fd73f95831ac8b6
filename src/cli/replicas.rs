//! How one `flotilla serve` takes its place beside others on one database.
//!
//! * **PostgreSQL with `--fly api`**: it joins the replica set
//!   (`crate::replica`): any number of `serve` processes share the tenants
//!   through leases, and the singleton jobs run on one of them at a time.
//! * **SQLite**, or **`--fly sim`** on either backend: one process serves
//!   the database; it takes the controller lock (`crate::store::lock`) and a
//!   second `serve` is refused. (The built-in simulator lives inside its
//!   process: replicas with one each would each see a different Fly.)

use std::time::Duration;

use rand::RngExt;

use crate::fly::shared_bucket::SharedBuckets;
use crate::replica::{self, ReplicaOptions};
use crate::store::leases::LeaseStore;
use crate::store::lock::ControllerLock;
use crate::store::org_buckets::OrgBucketStore;

/// `serve`'s replica settings (PostgreSQL).
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicaArgs {
    /// This replica's id among the `serve` processes sharing a PostgreSQL
    /// database: 1 to 64 letters, digits, '.', '_' or '-', unique among the
    /// live ones (default: `r-<pid>-<random>`). Ignored with SQLite or
    /// `--fly sim`, where one process serves the database.
    #[arg(long = "replica-id", env = "FLOTILLA_REPLICA_ID", value_parser = parse_id)]
    pub id: Option<String>,
    /// How long a replica's leases live without renewal, in seconds (3 to
    /// 3600): the others take a dead replica's tenants over after about
    /// this long. Renewed every third of it. Ignored with SQLite or `--fly
    /// sim`.
    #[arg(
        long = "lease-ttl-secs",
        env = "FLOTILLA_LEASE_TTL_SECS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(3..=3600)
    )]
    pub lease_ttl_secs: u64,
}

fn parse_id(s: &str) -> Result<String, String> {
    replica::replica_id(s).map_err(|e| e.to_string())
}

/// How this `serve` shares its database: the controller lock it holds
/// (exclusive alone, shared as a replica), its replica settings, and the
/// org's rate buckets the replicas share (`crate::replica::buckets`).
#[derive(Debug)]
pub struct Membership {
    pub lock: ControllerLock,
    pub replica: Option<(LeaseStore, ReplicaOptions)>,
    /// Set with `replica`: the Fly client paces the org-wide calls here.
    pub buckets: Option<SharedBuckets>,
}

impl Membership {
    /// Joins the PostgreSQL replica set when `shared_fly` (the real Fly
    /// API, which every replica sees alike; nothing is claimed before
    /// `serve` starts the round), else takes the controller lock
    /// exclusively. Refused when the lock is held the other way.
    pub async fn join(url: &str, args: &ReplicaArgs, shared_fly: bool) -> anyhow::Result<Self> {
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !(postgres && shared_fly) {
            return Ok(Membership {
                lock: ControllerLock::acquire(url).await?,
                replica: None,
                buckets: None,
            });
        }
        let lock = ControllerLock::acquire_shared(url).await?;
        let id = match &args.id {
            Some(id) => id.clone(),
            None => generated_id(),
        };
        Ok(Membership {
            lock,
            replica: Some((
                LeaseStore::connect(url)?,
                ReplicaOptions {
                    id,
                    ttl: Duration::from_secs(args.lease_ttl_secs),
                    jobs: Vec::new(),
                },
            )),
            buckets: Some(replica::buckets::shared(
                OrgBucketStore::connect(url).map_err(|e| anyhow::anyhow!(e))?,
            )),
        })
    }

    /// For messages.
    pub fn describe(&self) -> String {
        match &self.replica {
            None => format!("alone, holding {}", self.lock.describe()),
            Some((_, options)) => format!(
                "replica {} (leases of {}s), holding {} shared",
                options.id,
                options.ttl.as_secs(),
                self.lock.describe()
            ),
        }
    }
}

/// `r-<pid>-<6 hex digits>`: unique enough among live replicas, and says
/// which process it is.
fn generated_id() -> String {
    let n: u32 = rand::rng().random_range(0..0x100_0000);
    format!("r-{}-{n:06x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid() {
        for _ in 0..100 {
            let id = generated_id();
            assert_eq!(replica::replica_id(&id), Ok(id.clone()));
        }
    }
}
