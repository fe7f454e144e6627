//! The tonic adapters: each method hands its request to the plugin's
//! domain method and turns the error kind into a gRPC status.

mod image;
mod runtime;

use crate::Cri;
use std::sync::Arc;

/// The `runtime.v1.RuntimeService` server.
pub type RuntimeServer =
    k8s_cri::v1::runtime_service_server::RuntimeServiceServer<runtime::Runtime>;
/// The `runtime.v1.ImageService` server.
pub type ImageServer = k8s_cri::v1::image_service_server::ImageServiceServer<image::Images>;

/// Both services over one plugin.
pub fn services(cri: Arc<Cri>) -> (RuntimeServer, ImageServer) {
    (
        RuntimeServer::new(runtime::Runtime(cri.clone())),
        ImageServer::new(image::Images(cri)),
    )
}

/// A domain result as a gRPC response.
fn reply<T>(result: berth_core::Result<T>) -> Result<tonic::Response<T>, tonic::Status> {
    result
        .map(tonic::Response::new)
        .map_err(berth_api::status::to_status)
}

/// What part 2 of the CRI work adds (streaming, stats, events, updates).
fn not_yet<T>(what: &str) -> Result<tonic::Response<T>, tonic::Status> {
    Err(tonic::Status::unimplemented(format!(
        "{what} is not supported by berth yet"
    )))
}
