//! `containerd.services.images.v1.Images`.

use super::{grpc, mask_paths, namespace, required};
use crate::convert::timestamp;
use crate::local::images::Images;
use berth_api::metadata::lease;
use berth_api::pb::services::v1::{
    CreateImageRequest, CreateImageResponse, DeleteImageRequest, GetImageRequest, GetImageResponse,
    Image as WireImage, ListImagesRequest, ListImagesResponse, UpdateImageRequest,
    UpdateImageResponse,
};
use berth_api::pb::types::Descriptor as WireDescriptor;
use berth_api::server::images::images_server::{self, ImagesServer};
use berth_core::images::Image;
use berth_core::{Descriptor, Digest, Error, ErrorKind, Result};
use berth_store::images::{parse_target_digest, update_reads_target};
use std::sync::Arc;
use std::time::UNIX_EPOCH;
use tonic::{Request, Response, Status};

/// The images gRPC adapter.
pub struct ImagesService(pub Arc<Images>);

/// The tonic server for it.
pub fn server(local: Arc<Images>) -> ImagesServer<ImagesService> {
    ImagesServer::new(ImagesService(local))
}

/// A stored image on the wire.
pub fn image_to_wire(image: Image) -> WireImage {
    WireImage {
        name: image.name,
        labels: image.labels,
        target: Some(WireDescriptor {
            media_type: image.target.media_type,
            digest: image.target.digest.to_string(),
            size: image.target.size,
            annotations: image.target.annotations,
        }),
        created_at: timestamp(image.created_at),
        updated_at: timestamp(image.updated_at),
    }
}

/// A wire image as the store takes it. The name is checked first, as
/// containerd's service does (`Image.Name required`). When the target is
/// not read (`read_target` false: an update of labels or annotations only,
/// which `ctr images label` sends without a target), an absent or malformed
/// digest stands in as the empty blob's digest, which the store never
/// copies.
pub fn image_from_wire(image: WireImage, read_target: bool) -> Result<Image> {
    if image.name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "Image.Name required",
        ));
    }
    let target = image.target.unwrap_or_default();
    let digest = match parse_target_digest(&target.digest) {
        Ok(digest) => digest,
        Err(err) if read_target => return Err(err),
        Err(_) => Digest::sha256_of(b""),
    };
    Ok(Image {
        name: image.name,
        labels: image.labels,
        target: Descriptor {
            media_type: target.media_type,
            digest,
            size: target.size,
            annotations: target.annotations,
        },
        created_at: UNIX_EPOCH,
        updated_at: UNIX_EPOCH,
    })
}

/// The digest a delete must match, if the request names one.
fn delete_target(target: Option<WireDescriptor>) -> Result<Option<Digest>> {
    match target {
        Some(t) if !t.digest.is_empty() => Ok(Some(parse_target_digest(&t.digest)?)),
        _ => Ok(None),
    }
}

fn lease_of<T>(request: &Request<T>) -> Option<String> {
    lease(request).map(str::to_owned)
}

#[tonic::async_trait]
impl images_server::Images for ImagesService {
    async fn get(
        &self,
        request: Request<GetImageRequest>,
    ) -> Result<Response<GetImageResponse>, Status> {
        let ns = namespace(&request)?;
        let image = grpc(self.0.get(ns, request.into_inner().name).await)?;
        Ok(Response::new(GetImageResponse {
            image: Some(image_to_wire(image)),
        }))
    }

    async fn list(
        &self,
        request: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let ns = namespace(&request)?;
        let images = grpc(self.0.list(ns, request.into_inner().filters).await)?;
        Ok(Response::new(ListImagesResponse {
            images: images.into_iter().map(image_to_wire).collect(),
        }))
    }

    async fn create(
        &self,
        request: Request<CreateImageRequest>,
    ) -> Result<Response<CreateImageResponse>, Status> {
        let ns = namespace(&request)?;
        let lease = lease_of(&request);
        let image = required(request.into_inner().image, "image")?;
        let image = grpc(image_from_wire(image, true))?;
        let created = grpc(self.0.create(ns, image, lease).await)?;
        Ok(Response::new(CreateImageResponse {
            image: Some(image_to_wire(created)),
        }))
    }

    async fn update(
        &self,
        request: Request<UpdateImageRequest>,
    ) -> Result<Response<UpdateImageResponse>, Status> {
        let ns = namespace(&request)?;
        let lease = lease_of(&request);
        let req = request.into_inner();
        let paths = mask_paths(req.update_mask);
        let image = required(req.image, "image")?;
        let image = grpc(image_from_wire(image, update_reads_target(&paths)))?;
        let updated = grpc(self.0.update(ns, image, paths, lease).await)?;
        Ok(Response::new(UpdateImageResponse {
            image: Some(image_to_wire(updated)),
        }))
    }

    async fn delete(&self, request: Request<DeleteImageRequest>) -> Result<Response<()>, Status> {
        let ns = namespace(&request)?;
        let lease = lease_of(&request);
        let req = request.into_inner();
        let target = grpc(delete_target(req.target))?;
        grpc(self.0.delete(ns, req.name, target, req.sync, lease).await)?;
        Ok(Response::new(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str, digest: &str) -> WireImage {
        WireImage {
            name: name.into(),
            target: Some(WireDescriptor {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: digest.into(),
                size: 3,
                annotations: Default::default(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn image_round_trips_except_timestamps() {
        let digest = Digest::sha256_of(b"m").to_string();
        let image = image_from_wire(wire("a", &digest), true).expect("valid");
        let back = image_to_wire(image);
        assert_eq!(back.target, wire("a", &digest).target);
        assert_eq!(back.name, "a");
    }

    #[test]
    fn name_is_checked_before_the_target() {
        let err = image_from_wire(wire("", "bad"), true).expect_err("no name");
        assert_eq!(err.message(), "Image.Name required");
        let err = image_from_wire(wire("a", "bad"), true).expect_err("bad digest");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(image_from_wire(wire("a", ""), false).is_ok());
    }
}
