//! `containerd.services.diff.v1.Diff`: Apply and Diff, translated to the
//! local walking differ.

use super::{grpc, namespace, required};
use crate::local::diff::{DiffRequest as LocalDiffRequest, DiffService};
use berth_api::pb::services::v1::{ApplyRequest, ApplyResponse, DiffRequest, DiffResponse};
use berth_api::pb::types::{Descriptor as WireDescriptor, Mount as WireMount};
use berth_api::server::diff::diff_server::{self, DiffServer};
use berth_core::mount::Mount;
use berth_core::{Descriptor, Digest};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The diff gRPC adapter.
pub struct DiffGrpc(pub Arc<DiffService>);

/// The tonic server for it.
pub fn server(local: Arc<DiffService>) -> DiffServer<DiffGrpc> {
    DiffServer::new(DiffGrpc(local))
}

fn mounts_from_wire(mounts: Vec<WireMount>) -> Vec<Mount> {
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

fn descriptor_from_wire(d: WireDescriptor) -> Result<Descriptor, Status> {
    let digest = Digest::parse(&d.digest)
        .map_err(|_| Status::invalid_argument(format!("{:?} failed validation", d.digest)))?;
    Ok(Descriptor {
        media_type: d.media_type,
        digest,
        size: d.size,
        annotations: d.annotations,
    })
}

fn descriptor_to_wire(d: Descriptor) -> WireDescriptor {
    WireDescriptor {
        media_type: d.media_type,
        digest: d.digest.to_string(),
        size: d.size,
        annotations: d.annotations,
    }
}

#[tonic::async_trait]
impl diff_server::Diff for DiffGrpc {
    async fn apply(
        &self,
        request: Request<ApplyRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let ns = namespace(&request)?;
        let lease = berth_api::metadata::lease(&request).map(str::to_owned);
        let req = request.into_inner();
        let desc = descriptor_from_wire(required(req.diff, "diff")?)?;
        let mounts = mounts_from_wire(req.mounts);
        let applied = grpc(self.0.apply(&ns, lease.as_deref(), &desc, &mounts).await)?;
        Ok(Response::new(ApplyResponse {
            applied: Some(descriptor_to_wire(applied)),
        }))
    }

    async fn diff(&self, request: Request<DiffRequest>) -> Result<Response<DiffResponse>, Status> {
        let ns = namespace(&request)?;
        let lease = berth_api::metadata::lease(&request).map(str::to_owned);
        let req = request.into_inner();
        let local = LocalDiffRequest {
            lower: mounts_from_wire(req.left),
            upper: mounts_from_wire(req.right),
            media_type: req.media_type,
            reference: req.r#ref,
            labels: req.labels,
        };
        let desc = grpc(self.0.diff(&ns, lease.as_deref(), local).await)?;
        Ok(Response::new(DiffResponse {
            diff: Some(descriptor_to_wire(desc)),
        }))
    }
}
