//! `containerd.services.version.v1.Version`.

use berth_api::pb::services::v1::VersionResponse;
use berth_api::server::version::version_server::{Version, VersionServer};
use tonic::{Request, Response, Status};

/// berth's version, as `ctr version` shows it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision berthd was built from.
pub const REVISION: &str = env!("BERTH_GIT_REVISION");

/// The version service.
pub struct VersionService;

#[tonic::async_trait]
impl Version for VersionService {
    async fn version(&self, _: Request<()>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: VERSION.to_string(),
            revision: REVISION.to_string(),
        }))
    }
}

/// The tonic server for it.
pub fn server() -> VersionServer<VersionService> {
    VersionServer::new(VersionService)
}
