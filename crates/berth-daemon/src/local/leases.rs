//! Leases: the lease records clients hold while they work, and the
//! resources each holds. containerd's Go client wraps every container
//! create in a lease, so `ctr c create` needs these even before any
//! resource can be leased. A `sync` delete returns once a garbage
//! collection has run (`ctr leases rm --sync`).

use super::blocking;
use crate::gc::GcScheduler;
use berth_core::{filters::Filter, Result};
use berth_store::{Lease, LeaseResource, MetadataStore};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The leases service.
pub struct Leases {
    store: MetadataStore,
    gc: Arc<GcScheduler>,
}

impl Leases {
    /// A service over `store`, waiting on `gc` for `sync` deletes.
    pub fn new(store: MetadataStore, gc: Arc<GcScheduler>) -> Self {
        Leases { store, gc }
    }

    /// Creates a lease; an empty `id` gets a random one shaped like
    /// containerd's `WithRandomID` (`<nanoseconds>-<4 chars>`), drawn from
    /// letters and digits only so it is also a valid identifier.
    pub async fn create(
        &self,
        namespace: String,
        id: String,
        labels: HashMap<String, String>,
    ) -> Result<Lease> {
        let id = if id.is_empty() { random_id() } else { id };
        let lease = Lease {
            id,
            created_at: UNIX_EPOCH,
            labels,
        };
        let store = self.store.clone();
        blocking(move || store.create_lease(&namespace, lease)).await
    }

    /// Deletes a lease; with `sync`, returns once a garbage collection has
    /// run after the delete.
    pub async fn delete(&self, namespace: String, id: String, sync: bool) -> Result<()> {
        let store = self.store.clone();
        blocking(move || store.delete_lease(&namespace, &id)).await?;
        if sync {
            self.gc.schedule_and_wait().await?;
        }
        Ok(())
    }

    /// Adds a resource to a lease.
    pub async fn add_resource(
        &self,
        namespace: String,
        id: String,
        resource: LeaseResource,
    ) -> Result<()> {
        let store = self.store.clone();
        blocking(move || store.add_lease_resource(&namespace, &id, &resource)).await
    }

    /// Removes a resource from a lease.
    pub async fn delete_resource(
        &self,
        namespace: String,
        id: String,
        resource: LeaseResource,
    ) -> Result<()> {
        let store = self.store.clone();
        blocking(move || store.delete_lease_resource(&namespace, &id, &resource)).await
    }

    /// The resources a lease holds.
    pub async fn list_resources(
        &self,
        namespace: String,
        id: String,
    ) -> Result<Vec<LeaseResource>> {
        let store = self.store.clone();
        blocking(move || store.list_lease_resources(&namespace, &id)).await
    }

    /// Deletes, in every namespace, the leases that carry label `key`
    /// (no collection is waited for); returns how many it deleted.
    pub async fn delete_labelled_everywhere(&self, key: &str) -> Result<usize> {
        let filter = Filter::parse_all(&[format!("labels.\"{key}\"")])?;
        let store = self.store.clone();
        blocking(move || {
            let mut deleted = 0;
            for ns in store.list_namespaces()? {
                for lease in store.list_leases(&ns.name, &filter)? {
                    store.delete_lease(&ns.name, &lease.id)?;
                    deleted += 1;
                }
            }
            Ok(deleted)
        })
        .await
    }

    /// Lists the leases passing `filters`.
    pub async fn list(&self, namespace: String, filters: Vec<String>) -> Result<Vec<Lease>> {
        let filter = Filter::parse_all(&filters)?;
        let store = self.store.clone();
        blocking(move || store.list_leases(&namespace, &filter)).await
    }
}

fn random_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let mut random = uuid::Uuid::new_v4().as_u128();
    let suffix: String = (0..4)
        .map(|_| {
            let c = ALPHABET[(random % 62) as usize] as char;
            random /= 62;
            c
        })
        .collect();
    format!("{nanos}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_valid_identifiers() {
        for _ in 0..200 {
            let id = random_id();
            berth_core::identifiers::validate(&id).expect(&id);
        }
    }
}
