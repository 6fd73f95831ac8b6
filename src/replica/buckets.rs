//! The replicas' shared rate buckets: [`OrgBucketStore`] (the rows,
//! `crate::store::org_buckets`) as the Fly client's
//! [`OrgBuckets`] (`crate::fly::shared_bucket`). `serve` hands it to the
//! client when it joins a replica set, so the calls Fly counts against the
//! org are paced by one bucket for all replicas instead of a split each.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::fly::shared_bucket::{BucketQuota, OrgBuckets, SharedBucketError, SharedBuckets};
use crate::store::org_buckets::OrgBucketStore;

#[async_trait]
impl OrgBuckets for OrgBucketStore {
    async fn reserve(
        &self,
        org: &str,
        action: &str,
        quota: BucketQuota,
    ) -> Result<Duration, SharedBucketError> {
        OrgBucketStore::reserve(self, org, action, quota.period_micros(), quota.burst)
            .await
            .map(|r| r.wait)
            .map_err(|e| SharedBucketError(e.to_string()))
    }
}

/// The limiter's handle on `store`.
pub fn shared(store: OrgBucketStore) -> SharedBuckets {
    SharedBuckets(Arc::new(store))
}
