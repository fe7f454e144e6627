//! `containerd.services.snapshots.v1.Snapshots`: looking up and removing
//! snapshots.

use berth_core::Result;

use crate::pb::services::v1::snapshots::snapshots_client::SnapshotsClient;
use crate::pb::services::v1::snapshots::{Info, RemoveSnapshotRequest, StatSnapshotRequest};
use crate::Client;

/// The snapshots service, in the client's namespace; see
/// [`Client::snapshots`].
#[derive(Clone, Debug)]
pub struct Snapshots {
    client: Client,
}

impl Client {
    /// The snapshots service, in the client's namespace.
    pub fn snapshots(&self) -> Snapshots {
        Snapshots {
            client: self.clone(),
        }
    }
}

impl Snapshots {
    /// Removes snapshot `key` from `snapshotter`; `NotFound` if it does not
    /// exist, `FailedPrecondition` if it has children.
    pub async fn remove(&self, snapshotter: &str, key: &str) -> Result<()> {
        let request = self.client.request(
            RemoveSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            },
            true,
        )?;
        self.client
            .call(SnapshotsClient::new(self.client.channel()).remove(request))
            .await
    }

    /// Snapshot `key` of `snapshotter` (for an unpacked image, its chain
    /// ID); `NotFound` if it does not exist.
    pub async fn stat(&self, snapshotter: &str, key: &str) -> Result<Info> {
        let request = self.client.request(
            StatSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            },
            true,
        )?;
        let response = self
            .client
            .call(SnapshotsClient::new(self.client.channel()).stat(request))
            .await?;
        crate::namespaces::expect(response.info, "stat")
    }
}
