//! `containerd.services.snapshots.v1.Snapshots`: looking up and removing
//! snapshots ([`Snapshots`]), and each of the daemon's snapshotters as a
//! berth-core [`Snapshotter`] ([`RemoteSnapshotter`]).

use std::collections::HashMap;

use berth_core::mount::Mount;
use berth_core::snapshots::{self, Kind, Snapshotter, Usage};
use berth_core::Result;
use prost_types::FieldMask;

use crate::client::status_error;
use crate::namespaces::expect;
use crate::pb::services::v1::snapshots::snapshots_client::SnapshotsClient;
use crate::pb::services::v1::snapshots::{
    CleanupRequest, CommitSnapshotRequest, Info, Kind as WireKind, ListSnapshotsRequest,
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
    UpdateSnapshotRequest, UsageRequest, ViewSnapshotRequest,
};
use crate::pb::types::Mount as WireMount;
use crate::time::{from_timestamp, to_timestamp};
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

/// One snapshotter of the daemon as a berth-core [`Snapshotter`], in the
/// client's namespace and lease; see [`Client::snapshotter`].
///
/// Every call names the snapshotter, as containerd's remote snapshotter
/// (`snapshots/proxy`) does, so code written against the trait — unpack
/// in `berth-image`, the conformance suite — runs unchanged over gRPC.
#[derive(Clone, Debug)]
pub struct RemoteSnapshotter {
    client: Client,
    name: String,
}

impl Client {
    /// Snapshotter `name` (empty: the daemon's default) as a
    /// [`Snapshotter`], in the client's namespace and lease.
    pub fn snapshotter(&self, name: impl Into<String>) -> RemoteSnapshotter {
        RemoteSnapshotter {
            client: self.clone(),
            name: name.into(),
        }
    }
}

impl RemoteSnapshotter {
    /// The snapshotter's name, as sent in every request.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn service(&self) -> SnapshotsClient<tonic::transport::Channel> {
        SnapshotsClient::new(self.client.channel())
    }
}

#[async_trait::async_trait]
impl Snapshotter for RemoteSnapshotter {
    async fn stat(&self, key: &str) -> Result<snapshots::Info> {
        let request = self.client.request(
            StatSnapshotRequest {
                snapshotter: self.name.clone(),
                key: key.to_string(),
            },
            true,
        )?;
        let response = self.client.call(self.service().stat(request)).await?;
        Ok(info_from_wire(expect(response.info, "stat")?))
    }

    async fn update(&self, info: snapshots::Info, paths: &[String]) -> Result<snapshots::Info> {
        let update_mask = (!paths.is_empty()).then(|| FieldMask {
            paths: paths.to_vec(),
        });
        let request = self.client.request(
            UpdateSnapshotRequest {
                snapshotter: self.name.clone(),
                info: Some(info_to_wire(info)),
                update_mask,
            },
            true,
        )?;
        let response = self.client.call(self.service().update(request)).await?;
        Ok(info_from_wire(expect(response.info, "update")?))
    }

    async fn usage(&self, key: &str) -> Result<Usage> {
        let request = self.client.request(
            UsageRequest {
                snapshotter: self.name.clone(),
                key: key.to_string(),
            },
            true,
        )?;
        let response = self.client.call(self.service().usage(request)).await?;
        Ok(Usage {
            size: response.size,
            inodes: response.inodes,
        })
    }

    async fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let request = self.client.request(
            MountsRequest {
                snapshotter: self.name.clone(),
                key: key.to_string(),
            },
            true,
        )?;
        let response = self.client.call(self.service().mounts(request)).await?;
        Ok(mounts_from_wire(response.mounts))
    }

    async fn prepare(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        let request = self.client.request(
            PrepareSnapshotRequest {
                snapshotter: self.name.clone(),
                key: key.to_string(),
                parent: parent.to_string(),
                labels,
            },
            true,
        )?;
        let response = self.client.call(self.service().prepare(request)).await?;
        Ok(mounts_from_wire(response.mounts))
    }

    async fn view(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        let request = self.client.request(
            ViewSnapshotRequest {
                snapshotter: self.name.clone(),
                key: key.to_string(),
                parent: parent.to_string(),
                labels,
            },
            true,
        )?;
        let response = self.client.call(self.service().view(request)).await?;
        Ok(mounts_from_wire(response.mounts))
    }

    async fn commit(&self, name: &str, key: &str, labels: HashMap<String, String>) -> Result<()> {
        let request = self.client.request(
            CommitSnapshotRequest {
                snapshotter: self.name.clone(),
                name: name.to_string(),
                key: key.to_string(),
                labels,
            },
            true,
        )?;
        self.client.call(self.service().commit(request)).await
    }

    async fn remove(&self, key: &str) -> Result<()> {
        let request = self.client.request(
            RemoveSnapshotRequest {
                snapshotter: self.name.clone(),
                key: key.to_string(),
            },
            true,
        )?;
        self.client.call(self.service().remove(request)).await
    }

    async fn walk(&self, filters: &[String]) -> Result<Vec<snapshots::Info>> {
        let request = self.client.request(
            ListSnapshotsRequest {
                snapshotter: self.name.clone(),
                filters: filters.to_vec(),
            },
            false,
        )?;
        let mut stream = self.client.call(self.service().list(request)).await?;
        let mut infos = Vec::new();
        while let Some(block) = stream.message().await.map_err(status_error)? {
            infos.extend(block.info.into_iter().map(info_from_wire));
        }
        Ok(infos)
    }

    async fn cleanup(&self) -> Result<()> {
        let request = self.client.request(
            CleanupRequest {
                snapshotter: self.name.clone(),
            },
            true,
        )?;
        self.client.call(self.service().cleanup(request)).await
    }
}

fn kind_from_wire(kind: i32) -> Kind {
    match WireKind::try_from(kind) {
        Ok(WireKind::View) => Kind::View,
        Ok(WireKind::Active) => Kind::Active,
        Ok(WireKind::Committed) => Kind::Committed,
        _ => Kind::Unknown,
    }
}

fn kind_to_wire(kind: Kind) -> i32 {
    let wire = match kind {
        Kind::Unknown => WireKind::Unknown,
        Kind::View => WireKind::View,
        Kind::Active => WireKind::Active,
        Kind::Committed => WireKind::Committed,
    };
    wire as i32
}

fn info_from_wire(info: Info) -> snapshots::Info {
    snapshots::Info {
        kind: kind_from_wire(info.kind),
        name: info.name,
        parent: info.parent,
        labels: info.labels,
        created: from_timestamp(info.created_at.as_ref()),
        updated: from_timestamp(info.updated_at.as_ref()),
    }
}

fn info_to_wire(info: snapshots::Info) -> Info {
    Info {
        name: info.name,
        parent: info.parent,
        kind: kind_to_wire(info.kind),
        created_at: Some(to_timestamp(info.created)),
        updated_at: Some(to_timestamp(info.updated)),
        labels: info.labels,
    }
}

/// Mounts as the daemon sent them, in berth-core's type.
pub(crate) fn mounts_from_wire(mounts: Vec<WireMount>) -> Vec<Mount> {
    mounts
        .into_iter()
        .map(|m| Mount {
            mount_type: m.r#type,
            source: m.source,
            target: m.target,
            options: m.options,
        })
        .collect()
}

/// Mounts in the wire's type.
pub(crate) fn mounts_to_wire(mounts: &[Mount]) -> Vec<WireMount> {
    mounts
        .iter()
        .map(|m| WireMount {
            r#type: m.mount_type.clone(),
            source: m.source.clone(),
            target: m.target.clone(),
            options: m.options.clone(),
        })
        .collect()
}
