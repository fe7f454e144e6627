//! `containerd.services.images.v1.Images`: image records, as an
//! [`ImageStore`].
//!
//! An image record is a name, labels and a target descriptor (a manifest
//! or an index in the content store). [`Images`] implements berth-core's
//! `ImageStore` over gRPC, so `berth-image`'s import runs against the
//! daemon.

use berth_core::images::{Image, ImageStore};
use berth_core::{Descriptor, Digest, Result};
use prost_types::FieldMask;

use crate::namespaces::expect;
use crate::pb::services::v1::images_client::ImagesClient;
use crate::pb::services::v1::{
    self as api, CreateImageRequest, DeleteImageRequest, GetImageRequest, ListImagesRequest,
    UpdateImageRequest,
};
use crate::pb::types;
use crate::time::{from_timestamp, to_timestamp};
use crate::Client;

/// The images service, in the client's namespace; see [`Client::images`].
#[derive(Clone, Debug)]
pub struct Images {
    client: Client,
}

impl Client {
    /// The images service, in the client's namespace.
    pub fn images(&self) -> Images {
        Images {
            client: self.clone(),
        }
    }
}

/// An image record from the wire.
pub fn image_from(image: api::Image) -> Result<Image> {
    let target = image.target.unwrap_or_default();
    Ok(Image {
        name: image.name,
        labels: image.labels,
        target: Descriptor {
            media_type: target.media_type,
            digest: Digest::parse(&target.digest)?,
            size: target.size,
            annotations: target.annotations,
        },
        created_at: from_timestamp(image.created_at.as_ref()),
        updated_at: from_timestamp(image.updated_at.as_ref()),
    })
}

/// An image record for the wire.
pub fn image_to(image: Image) -> api::Image {
    api::Image {
        name: image.name,
        labels: image.labels,
        target: Some(types::Descriptor {
            media_type: image.target.media_type,
            digest: image.target.digest.to_string(),
            size: image.target.size,
            annotations: image.target.annotations,
        }),
        created_at: Some(to_timestamp(image.created_at)),
        updated_at: Some(to_timestamp(image.updated_at)),
    }
}

impl Images {
    fn service(&self) -> ImagesClient<tonic::transport::Channel> {
        ImagesClient::new(self.client.channel())
    }

    /// Sets each of `labels` on image `name` (an empty value removes the
    /// label); with no labels, returns the image as it is.
    pub async fn set_labels(
        &self,
        name: &str,
        labels: std::collections::HashMap<String, String>,
    ) -> Result<Image> {
        if labels.is_empty() {
            return self.get(name).await;
        }
        let paths: Vec<String> = labels.keys().map(|k| format!("labels.{k}")).collect();
        let mut image = self.get(name).await?;
        image.labels = labels.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        self.update(image, &paths).await
    }
}

#[async_trait::async_trait]
impl ImageStore for Images {
    async fn get(&self, name: &str) -> Result<Image> {
        let request = self.client.request(
            GetImageRequest {
                name: name.to_string(),
            },
            true,
        )?;
        let response = self.client.call(self.service().get(request)).await?;
        image_from(expect(response.image, "get")?)
    }

    async fn list(&self, filters: &[String]) -> Result<Vec<Image>> {
        let request = self.client.request(
            ListImagesRequest {
                filters: filters.to_vec(),
            },
            true,
        )?;
        let response = self.client.call(self.service().list(request)).await?;
        response.images.into_iter().map(image_from).collect()
    }

    async fn create(&self, image: Image) -> Result<Image> {
        let request = self.client.request(
            CreateImageRequest {
                image: Some(image_to(image)),
                source_date_epoch: None,
            },
            true,
        )?;
        let response = self.client.call(self.service().create(request)).await?;
        image_from(expect(response.image, "create")?)
    }

    async fn update(&self, image: Image, paths: &[String]) -> Result<Image> {
        let update_mask = (!paths.is_empty()).then(|| FieldMask {
            paths: paths.to_vec(),
        });
        let request = self.client.request(
            UpdateImageRequest {
                image: Some(image_to(image)),
                update_mask,
                source_date_epoch: None,
            },
            true,
        )?;
        let response = self.client.call(self.service().update(request)).await?;
        image_from(expect(response.image, "update")?)
    }

    async fn delete(&self, name: &str, sync: bool) -> Result<()> {
        let request = self.client.request(
            DeleteImageRequest {
                name: name.to_string(),
                sync,
                target: None,
            },
            true,
        )?;
        self.client.call(self.service().delete(request)).await
    }
}
