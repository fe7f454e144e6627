//! CRI clients for a daemon's socket: `k8s-cri`'s tonic clients for
//! `runtime.v1.RuntimeService` and `runtime.v1.ImageService`, as the
//! kubelet dials them.

use crate::Daemon;
use anyhow::Result;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

/// The kubelet's two CRI clients over one connection.
#[derive(Debug, Clone)]
pub struct CriClient {
    /// `runtime.v1.RuntimeService`.
    pub runtime: RuntimeServiceClient<Channel>,
    /// `runtime.v1.ImageService`.
    pub image: ImageServiceClient<Channel>,
}

impl Daemon {
    /// CRI clients over the daemon's socket, for the calling async runtime.
    pub async fn cri(&self) -> Result<CriClient> {
        let channel = self.connect().await?;
        Ok(CriClient {
            runtime: RuntimeServiceClient::new(channel.clone()),
            image: ImageServiceClient::new(channel),
        })
    }
}
