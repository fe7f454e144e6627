//! `containerd.services.snapshots.v1.Snapshots`: every request names its
//! snapshotter (empty = overlayfs) and runs against that snapshotter as
//! the request's namespace sees it, leasing under `containerd-lease`.

use super::{grpc, mask_paths, namespace, required};
use crate::convert::timestamp;
use crate::local::snapshots::{Namespaced, Snapshots};
use berth_api::pb::services::v1::snapshots::{
    CleanupRequest, CommitSnapshotRequest, Info as WireInfo, Kind as WireKind,
    ListSnapshotsRequest, ListSnapshotsResponse, MountsRequest, MountsResponse,
    PrepareSnapshotRequest, PrepareSnapshotResponse, RemoveSnapshotRequest, StatSnapshotRequest,
    StatSnapshotResponse, UpdateSnapshotRequest, UpdateSnapshotResponse, UsageRequest,
    UsageResponse, ViewSnapshotRequest, ViewSnapshotResponse,
};
use berth_api::pb::types::Mount as WireMount;
use berth_api::server::snapshots::snapshots_server::{self, SnapshotsServer};
use berth_core::mount::Mount;
use berth_core::snapshots::{Info, Kind, Snapshotter};
use std::sync::Arc;
use std::time::SystemTime;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// Infos per List message (containerd sends batches of 100).
const LIST_BLOCK: usize = 100;

/// The snapshots gRPC adapter.
pub struct SnapshotsService(pub Arc<Snapshots>);

/// The tonic server for it.
pub fn server(local: Arc<Snapshots>) -> SnapshotsServer<SnapshotsService> {
    SnapshotsServer::new(SnapshotsService(local))
}

impl SnapshotsService {
    fn snapshotter<T>(&self, request: &Request<T>, name: &str) -> Result<Namespaced, Status> {
        let ns = namespace(request)?;
        let lease = berth_api::metadata::lease(request).map(str::to_owned);
        grpc(self.0.namespaced(&ns, name, lease))
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

fn info_to_wire(info: Info) -> WireInfo {
    WireInfo {
        name: info.name,
        parent: info.parent,
        kind: kind_to_wire(info.kind),
        created_at: timestamp(info.created),
        updated_at: timestamp(info.updated),
        labels: info.labels,
    }
}

fn info_from_wire(info: WireInfo) -> Info {
    Info {
        kind: Kind::Unknown,
        name: info.name,
        parent: info.parent,
        labels: info.labels,
        created: SystemTime::UNIX_EPOCH,
        updated: SystemTime::UNIX_EPOCH,
    }
}

fn mounts_to_wire(mounts: Vec<Mount>) -> Vec<WireMount> {
    mounts
        .into_iter()
        .map(|m| WireMount {
            r#type: m.mount_type,
            source: m.source,
            target: m.target,
            options: m.options,
        })
        .collect()
}

#[tonic::async_trait]
impl snapshots_server::Snapshots for SnapshotsService {
    async fn prepare(
        &self,
        request: Request<PrepareSnapshotRequest>,
    ) -> Result<Response<PrepareSnapshotResponse>, Status> {
        let s = self.snapshotter(&request, &request.get_ref().snapshotter)?;
        let req = request.into_inner();
        let mounts = grpc(s.prepare(&req.key, &req.parent, req.labels).await)?;
        Ok(Response::new(PrepareSnapshotResponse {
            mounts: mounts_to_wire(mounts),
        }))
    }

    async fn view(
        &self,
        request: Request<ViewSnapshotRequest>,
    ) -> Result<Response<ViewSnapshotResponse>, Status> {
        let s = self.snapshotter(&request, &request.get_ref().snapshotter)?;
        let req = request.into_inner();
        let mounts = grpc(s.view(&req.key, &req.parent, req.labels).await)?;
        Ok(Response::new(ViewSnapshotResponse {
            mounts: mounts_to_wire(mounts),
        }))
    }

    async fn mounts(
        &self,
        request: Request<MountsRequest>,
    ) -> Result<Response<MountsResponse>, Status> {
        let s = self.snapshotter(&request, &request.get_ref().snapshotter)?;
        let mounts = grpc(s.mounts(&request.get_ref().key).await)?;
        Ok(Response::new(MountsResponse {
            mounts: mounts_to_wire(mounts),
        }))
    }

    async fn commit(
        &self,
        request: Request<CommitSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let s = self.snapshotter(&request, &request.get_ref().snapshotter)?;
        let req = request.into_inner();
        grpc(s.commit(&req.name, &req.key, req.labels).await)?;
        Ok(Response::new(()))
    }

    async fn remove(
        &self,
        request: Request<RemoveSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let s = self.snapshotter(&request, &request.get_ref().snapshotter)?;
        grpc(s.remove(&request.get_ref().key).await)?;
        Ok(Response::new(()))
    }

    async fn stat(
        &self,
        request: Request<StatSnapshotRequest>,
    ) -> Result<Response<StatSnapshotResponse>, Status> {
        let s = self.snapshotter(&request, &request.get_ref().snapshotter)?;
        let info = grpc(s.stat(&request.get_ref().key).await)?;
        Ok(Response::new(StatSnapshotResponse {
            info: Some(info_to_wire(info)),
        }))
    }

    async fn update(
        &self,
        request: Request<UpdateSnapshotRequest>,
    ) -> Result<Response<UpdateSnapshotResponse>, Status> {
        let s = self.snapshotter(&request, &request.get_ref().snapshotter)?;
        let req = request.into_inner();
        let info = info_from_wire(required(req.info, "info")?);
        let updated = grpc(s.update(info, &mask_paths(req.update_mask)).await)?;
        Ok(Response::new(UpdateSnapshotResponse {
            info: Some(info_to_wire(updated)),
        }))
    }

    async fn list(
        &self,
        request: Request<ListSnapshotsRequest>,
    ) -> Result<Response<BoxStream<ListSnapshotsResponse>>, Status> {
        let s = self.snapshotter(&request, &request.get_ref().snapshotter)?;
        let infos = grpc(s.walk(&request.get_ref().filters).await)?;
        let mut blocks = Vec::new();
        let mut infos = infos.into_iter().map(info_to_wire).peekable();
        while infos.peek().is_some() {
            let info: Vec<WireInfo> = infos.by_ref().take(LIST_BLOCK).collect();
            blocks.push(Ok(ListSnapshotsResponse { info }));
        }
        Ok(Response::new(Box::pin(futures::stream::iter(blocks))))
    }

    async fn usage(
        &self,
        request: Request<UsageRequest>,
    ) -> Result<Response<UsageResponse>, Status> {
        let s = self.snapshotter(&request, &request.get_ref().snapshotter)?;
        let usage = grpc(s.usage(&request.get_ref().key).await)?;
        Ok(Response::new(UsageResponse {
            size: usage.size,
            inodes: usage.inodes,
        }))
    }

    async fn cleanup(&self, request: Request<CleanupRequest>) -> Result<Response<()>, Status> {
        let s = self.snapshotter(&request, &request.get_ref().snapshotter)?;
        grpc(s.cleanup().await)?;
        Ok(Response::new(()))
    }
}
