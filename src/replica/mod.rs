//! Several `flotilla serve` replicas on one PostgreSQL database share the
//! work: tenants are spread over [`assign::SHARDS`] shards, and each shard,
//! like each singleton job ([`assign::Job`]: the git sync, org-token
//! rotation), is worked on by the one replica that holds its lease.
//!
//! * [`assign`] (pure): which shard a tenant is in, how shards and jobs are
//!   shared out among live replicas (evenly, moving little when membership
//!   changes), and what one replica claims, renews and releases each round.
//! * [`fence`]: a held lease's local deadline; Fly writes and status writes
//!   outside it are refused, so a replica that lost its lease (paused, cut
//!   off from the database) writes nothing more for those tenants.
//! * [`coordinator`]: the round every `ttl / 3`: heartbeat, read the leases,
//!   decide, claim/renew/release, split the Fly request budget by the number
//!   of live replicas, and wake the runtime for shards it gained.
//! * The rows: `crate::store::leases` (migration 0007; expiry on the
//!   database's clock).
//! * [`buckets`]: the org's rate buckets in the same database
//!   (`crate::store::org_buckets`, migration 0008) as the Fly client's
//!   shared buckets (`crate::fly::shared_bucket`): app creates and the
//!   org-wide calls of all replicas paced by one bucket.
//!
//! A replica that dies stops renewing: its leases expire after `ttl` and the
//! others claim them with a higher epoch. A replica that stops cleanly
//! releases its leases at once. SQLite serves one process (the controller
//! lock, `crate::store::lock`); replicas need PostgreSQL.

pub mod assign;
pub mod buckets;
pub mod coordinator;
pub mod fence;

pub use coordinator::{ReplicaIdError, ReplicaOptions, Replicas, replica_id};
pub use fence::{Fence, Fenced};
