//! RemoveImage: an image goes with all its records — tags, digests and
//! its id record — whichever of them names it; the last record is deleted
//! synchronously so that garbage collection has run when the call returns.
//! Removing an image that is not there succeeds, as in containerd.

use berth_core::images::ImageStore;
use berth_core::Result;
use k8s_cri::v1 as cri;

use crate::Cri;

impl Cri {
    /// RemoveImage.
    pub(crate) async fn remove_image(
        &self,
        request: cri::RemoveImageRequest,
    ) -> Result<cri::RemoveImageResponse> {
        let reference = request.image.map(|i| i.image).unwrap_or_default();
        let image = match self.local_image(&reference).await {
            Ok(image) => image,
            Err(err) if err.is_not_found() => return Ok(cri::RemoveImageResponse::default()),
            Err(err) => return Err(err.context(format!("can not resolve {reference:?} locally"))),
        };
        let images = self.client.images();
        let last = image.references.len().saturating_sub(1);
        for (i, name) in image.references.iter().enumerate() {
            match images.delete(name, i == last).await {
                Ok(()) => {}
                Err(err) if err.is_not_found() => {}
                Err(err) => {
                    return Err(err.context(format!(
                        "failed to delete image reference {name:?} for {:?}",
                        image.id
                    )))
                }
            }
        }
        Ok(cri::RemoveImageResponse::default())
    }
}
