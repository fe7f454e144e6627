//! `runtime.v1.ImageService`.

use super::reply;
use crate::Cri;
use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::*;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The ImageService adapter.
#[derive(Debug)]
pub struct Images(pub Arc<Cri>);

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ImageService for Images {
    async fn list_images(&self, r: Request<ListImagesRequest>) -> Reply<ListImagesResponse> {
        reply(
            self.0
                .after_recovery(self.0.list_images(r.into_inner()))
                .await,
        )
    }
    async fn image_status(&self, r: Request<ImageStatusRequest>) -> Reply<ImageStatusResponse> {
        reply(
            self.0
                .after_recovery(self.0.image_status(r.into_inner()))
                .await,
        )
    }
    async fn pull_image(&self, r: Request<PullImageRequest>) -> Reply<PullImageResponse> {
        reply(
            self.0
                .after_recovery(self.0.pull_image(r.into_inner()))
                .await,
        )
    }
    async fn remove_image(&self, r: Request<RemoveImageRequest>) -> Reply<RemoveImageResponse> {
        reply(
            self.0
                .after_recovery(self.0.remove_image(r.into_inner()))
                .await,
        )
    }
    async fn image_fs_info(&self, r: Request<ImageFsInfoRequest>) -> Reply<ImageFsInfoResponse> {
        reply(
            self.0
                .after_recovery(self.0.image_fs_info(r.into_inner()))
                .await,
        )
    }
}
