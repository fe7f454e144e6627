//! `containerd.services.leases.v1.Leases`: leases, which protect content,
//! images and snapshots from garbage collection while work is in progress.
//!
//! A lease is an id with labels (`containerd.io/gc.expire` makes it expire).
//! Calls made through [`Client::with_lease`] carry it in the
//! `containerd-lease` header, and what they create belongs to the lease
//! until the lease is deleted. [`Client::with_new_lease`] does what
//! containerd's `client.WithLease` does for imports and pulls: a fresh lease
//! that expires in a day, to be deleted once the work is done.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use berth_core::Result;

use crate::namespaces::expect;
use crate::pb::services::v1::leases_client::LeasesClient;
use crate::pb::services::v1::{
    AddResourceRequest, CreateRequest, DeleteRequest, DeleteResourceRequest, Lease, ListRequest,
    ListResourcesRequest, Resource,
};
use crate::Client;

/// The label that makes a lease expire (RFC 3339 time).
pub const EXPIRE_LABEL: &str = "containerd.io/gc.expire";

/// The leases service, in the client's namespace; see [`Client::leases`].
#[derive(Clone, Debug)]
pub struct Leases {
    client: Client,
}

impl Client {
    /// The leases service, in the client's namespace.
    pub fn leases(&self) -> Leases {
        Leases {
            client: self.clone(),
        }
    }

    /// Creates a lease with a random id that expires after `expire`, and
    /// returns a client working under it with the lease's id. The caller
    /// deletes the lease ([`Leases::delete`]) when the work is done.
    pub async fn with_new_lease(&self, expire: Duration) -> Result<(Client, String)> {
        let mut labels = HashMap::new();
        labels.insert(EXPIRE_LABEL.to_string(), expiry(SystemTime::now() + expire));
        let lease = self
            .with_lease(None)
            .leases()
            .create(&random_id(), labels)
            .await?;
        Ok((self.with_lease(Some(lease.id.clone())), lease.id))
    }
}

impl Leases {
    fn service(&self) -> LeasesClient<tonic::transport::Channel> {
        LeasesClient::new(self.client.channel())
    }

    /// Creates lease `id` (empty: the daemon picks one) with `labels`.
    pub async fn create(&self, id: &str, labels: HashMap<String, String>) -> Result<Lease> {
        let request = self.client.request(
            CreateRequest {
                id: id.to_string(),
                labels,
            },
            true,
        )?;
        let response = self.client.call(self.service().create(request)).await?;
        expect(response.lease, "create")
    }

    /// The leases matching any of `filters` (`id==x`, `labels.k==v`; none:
    /// all).
    pub async fn list<S: AsRef<str>>(&self, filters: &[S]) -> Result<Vec<Lease>> {
        let filters = filters.iter().map(|f| f.as_ref().to_string()).collect();
        let request = self.client.request(ListRequest { filters }, true)?;
        Ok(self.client.call(self.service().list(request)).await?.leases)
    }

    /// Deletes lease `id`; with `sync`, garbage collection has run when
    /// this returns.
    pub async fn delete(&self, id: &str, sync: bool) -> Result<()> {
        let request = self.client.request(
            DeleteRequest {
                id: id.to_string(),
                sync,
            },
            true,
        )?;
        self.client.call(self.service().delete(request)).await
    }

    /// Adds a resource (`kind` is `content`, `ingests` or
    /// `snapshots/<snapshotter>`) to lease `id`.
    pub async fn add_resource(&self, id: &str, resource_id: &str, kind: &str) -> Result<()> {
        let request = self.client.request(
            AddResourceRequest {
                id: id.to_string(),
                resource: Some(resource(resource_id, kind)),
            },
            true,
        )?;
        self.client.call(self.service().add_resource(request)).await
    }

    /// Removes a resource from lease `id`.
    pub async fn delete_resource(&self, id: &str, resource_id: &str, kind: &str) -> Result<()> {
        let request = self.client.request(
            DeleteResourceRequest {
                id: id.to_string(),
                resource: Some(resource(resource_id, kind)),
            },
            true,
        )?;
        self.client
            .call(self.service().delete_resource(request))
            .await
    }

    /// The resources lease `id` holds.
    pub async fn list_resources(&self, id: &str) -> Result<Vec<Resource>> {
        let request = self
            .client
            .request(ListResourcesRequest { id: id.to_string() }, true)?;
        let response = self
            .client
            .call(self.service().list_resources(request))
            .await?;
        Ok(response.resources)
    }
}

fn resource(id: &str, kind: &str) -> Resource {
    Resource {
        id: id.to_string(),
        r#type: kind.to_string(),
    }
}

/// A lease id as containerd's `leases.WithRandomID` makes them:
/// `<nanoseconds of now>-<4 base64url characters>`.
pub fn random_id() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    // Three bytes from the clock and the process id, enough to tell apart
    // leases made in the same nanosecond by different processes.
    let seed = now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 20);
    let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let bytes = [
        (mixed >> 40) as u8,
        (mixed >> 48) as u8,
        (mixed >> 56) as u8,
    ];
    format!("{}-{}", now.subsec_nanos(), base64url(&bytes))
}

fn base64url(bytes: &[u8; 3]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
    (0..4)
        .map(|i| ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char)
        .collect()
}

/// An expiry label value: RFC 3339 in UTC, to the second (Go's
/// `time.Time.Format(time.RFC3339)` of a UTC time).
pub fn expiry(at: SystemTime) -> String {
    berth_core::time::rfc3339_utc(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_look_like_containerds() {
        let id = random_id();
        let (nanos, suffix) = id.split_once('-').expect("dash");
        assert!(nanos.parse::<u32>().is_ok(), "{id}");
        assert_eq!(suffix.len(), 4, "{id}");
    }

    #[test]
    fn expiry_is_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_327_336);
        assert_eq!(expiry(t), "2026-11-22T06:02:16Z");
    }
}
