//! `containerd.services.diff.v1.Diff`: applying layers to mounts and
//! writing the layer between two trees, on the daemon.
//!
//! [`RemoteDiff`] is berth-core's [`Applier`] over gRPC, so `berth-image`'s
//! unpack runs in a client exactly as in the daemon: the client prepares
//! snapshots through [`crate::snapshots::RemoteSnapshotter`], hands their
//! mounts to `Apply`, and the daemon extracts the layer blob from its
//! content store into them. [`RemoteDiff::compare`] is the other
//! direction, containerd's `diff.Comparer`: the daemon mounts both trees,
//! writes the layer that turns the lower into the upper into the content
//! store and returns its descriptor.

use std::collections::HashMap;

use berth_core::diff::Applier;
use berth_core::mount::Mount;
use berth_core::{Descriptor, Digest, Result};

use crate::namespaces::expect;
use crate::pb::services::v1::diff_client::DiffClient;
use crate::pb::services::v1::{ApplyRequest, DiffRequest};
use crate::pb::types::Descriptor as WireDescriptor;
use crate::snapshots::mounts_to_wire;
use crate::Client;

/// The diff service as an [`Applier`], in the client's namespace and
/// lease; see [`Client::diff`].
#[derive(Clone, Debug)]
pub struct RemoteDiff {
    client: Client,
}

/// What [`RemoteDiff::compare`] writes.
#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    /// The layer's media type (empty: the daemon's default, gzip).
    pub media_type: String,
    /// The content ingest ref (empty: a unique one).
    pub reference: String,
    /// Labels for the written blob.
    pub labels: HashMap<String, String>,
}

impl Client {
    /// The diff service, in the client's namespace and lease.
    pub fn diff(&self) -> RemoteDiff {
        RemoteDiff {
            client: self.clone(),
        }
    }
}

impl RemoteDiff {
    fn service(&self) -> DiffClient<tonic::transport::Channel> {
        DiffClient::new(self.client.channel())
    }

    /// Writes the layer from `lower` (no mounts: an empty tree) to `upper`
    /// into the content store and returns its descriptor.
    pub async fn compare(
        &self,
        lower: &[Mount],
        upper: &[Mount],
        options: CompareOptions,
    ) -> Result<Descriptor> {
        let request = self.client.request(
            DiffRequest {
                left: mounts_to_wire(lower),
                right: mounts_to_wire(upper),
                media_type: options.media_type,
                r#ref: options.reference,
                labels: options.labels,
                source_date_epoch: None,
            },
            true,
        )?;
        let response = self.client.call(self.service().diff(request)).await?;
        descriptor_from_wire(expect(response.diff, "diff")?)
    }
}

#[async_trait::async_trait]
impl Applier for RemoteDiff {
    async fn apply(
        &self,
        desc: &Descriptor,
        mounts: &[Mount],
        payloads: HashMap<String, Vec<u8>>,
    ) -> Result<Descriptor> {
        let payloads = payloads
            .into_iter()
            .map(|(key, value)| {
                let any = prost_types::Any {
                    type_url: key.clone(),
                    value,
                };
                (key, any)
            })
            .collect();
        let request = self.client.request(
            ApplyRequest {
                diff: Some(descriptor_to_wire(desc)),
                mounts: mounts_to_wire(mounts),
                payloads,
                sync_fs: false,
            },
            true,
        )?;
        let response = self.client.call(self.service().apply(request)).await?;
        descriptor_from_wire(expect(response.applied, "apply")?)
    }
}

fn descriptor_to_wire(desc: &Descriptor) -> WireDescriptor {
    WireDescriptor {
        media_type: desc.media_type.clone(),
        digest: desc.digest.to_string(),
        size: desc.size,
        annotations: desc.annotations.clone(),
    }
}

fn descriptor_from_wire(desc: WireDescriptor) -> Result<Descriptor> {
    Ok(Descriptor {
        media_type: desc.media_type,
        digest: Digest::parse(&desc.digest)?,
        size: desc.size,
        annotations: desc.annotations,
    })
}
