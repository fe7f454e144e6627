//! [`RegistryPusher`]: writing blobs and manifests into a repository.
//!
//! Blobs: a cross-repository mount is tried from each `mount_from`
//! repository (`POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<repo>`:
//! 201 means done; 202 opens an ordinary upload, which is then used); else
//! an upload session is opened with `POST`, the bytes streamed in one
//! `PATCH`, and the upload closed with `PUT <location>?digest=<digest>`.
//!
//! Manifests and indexes: `PUT /v2/<repo>/manifests/<object>` with the
//! media type as `Content-Type`, where the object follows containerd's
//! `getManifestPath`: for a pusher made for `repo:tag@<digest>`, the
//! manifest with that digest goes to the tag and every other one by
//! digest; for `repo:tag`, every manifest goes to the tag (the engine
//! pushes the root last, so the tag ends on it); for `repo@<digest>`,
//! everything goes by digest.

use std::sync::Arc;

use async_trait::async_trait;
use berth_core::{ErrorKind, Result};
use reqwest::{Method, Response, StatusCode};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::auth::repository_scope;
use super::fetcher::is_manifest_like;
use super::request::{Body, Call, Req, Target};
use super::resolver::RefTarget;
use super::session::{Endpoint, Session};
use super::MAX_MANIFEST_SIZE;
use crate::remotes::{Pusher, RemoteReader};
use crate::spec::Descriptor;

/// Writes into one repository on the first push-capable host.
#[derive(Debug)]
pub struct RegistryPusher {
    session: Arc<Session>,
    name: String,
    domain: String,
    path: String,
    /// containerd's pusher object: `tag`, `tag@digest` or `@digest`.
    object: String,
    endpoint: Endpoint,
    scopes: Vec<String>,
}

impl RegistryPusher {
    pub(crate) fn new(session: Arc<Session>, target: RefTarget, endpoint: Endpoint) -> Self {
        let r = &target.reference;
        let mut object = r.tag.clone().unwrap_or_default();
        if let Some(digest) = &r.digest {
            object = format!("{object}@{digest}");
        }
        RegistryPusher {
            session,
            domain: r.domain.clone(),
            path: r.path.clone(),
            scopes: vec![repository_scope(&r.path, true)],
            object,
            name: target.name,
            endpoint,
        }
    }

    fn call<'a>(&'a self, action: &'a str, scopes: &'a [String]) -> Call<'a> {
        Call {
            session: &self.session,
            endpoint: &self.endpoint,
            action,
            reference: &self.name,
            scopes,
        }
    }

    /// Where a manifest with `desc`'s digest is PUT (see the module doc).
    pub fn manifest_object(&self, desc: &Descriptor) -> String {
        manifest_object(&self.object, desc.digest.as_str())
    }

    async fn push_manifest(&self, desc: &Descriptor, mut content: RemoteReader) -> Result<()> {
        let action = format!("push {}", desc.digest);
        let call = self.call(&action, &self.scopes);
        let mut body = Vec::new();
        (&mut content)
            .take(MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|e| call.error(ErrorKind::Unknown, format!("read content: {e}")))?;
        if body.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(call.error(ErrorKind::InvalidArgument, "manifest too large"));
        }
        let path = format!("/{}/manifests/{}", self.path, self.manifest_object(desc));
        let req = Req::new(Method::PUT, Target::Api(path))
            .header("content-type", desc.media_type.clone())
            .body(Body::Bytes(body));
        expect_success(&call, call.send(req).await?).await
    }

    /// Tries to mount the blob from `from`: `Ok(None)` when mounted, else
    /// the upload location a 202 opened.
    async fn mount(&self, desc: &Descriptor, from: &str) -> Result<Option<String>> {
        let action = format!("mount {} from {from}", desc.digest);
        let scopes = vec![self.scopes[0].clone(), repository_scope(from, false)];
        let call = self.call(&action, &scopes);
        let path = format!(
            "/{}/blobs/uploads/?mount={}&from={from}",
            self.path, desc.digest
        );
        let response = call.send(Req::new(Method::POST, Target::Api(path))).await?;
        match response.status() {
            StatusCode::CREATED => Ok(None),
            StatusCode::ACCEPTED => Ok(Some(upload_location(&call, &response)?)),
            _ => Err(call.fail(response).await),
        }
    }

    async fn push_blob(
        &self,
        desc: &Descriptor,
        mount_from: &[String],
        content: RemoteReader,
    ) -> Result<()> {
        let mut upload = None;
        for from in mount_from {
            let from = self.repository_on_this_host(from);
            match self.mount(desc, &from).await {
                Ok(None) => return Ok(()),
                Ok(Some(location)) => {
                    upload = Some(location);
                    break;
                }
                Err(e) => tracing::debug!(error = %e, "cross-repository mount failed"),
            }
        }
        let action = format!("push {}", desc.digest);
        let call = self.call(&action, &self.scopes);
        let location = match upload {
            Some(location) => location,
            None => {
                let path = format!("/{}/blobs/uploads/", self.path);
                let response = call.send(Req::new(Method::POST, Target::Api(path))).await?;
                if response.status() != StatusCode::ACCEPTED {
                    return Err(call.fail(response).await);
                }
                upload_location(&call, &response)?
            }
        };
        let mut patch = Req::new(Method::PATCH, Target::Location(location))
            .header("content-type", "application/octet-stream")
            .body(Body::Stream(Some(reqwest::Body::wrap_stream(
                ReaderStream::new(content),
            ))));
        if desc.size >= 0 {
            patch = patch.header("content-length", desc.size.to_string());
        }
        let response = call.send(patch).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(call.fail(response).await);
        }
        let mut url = call.location_url(&upload_location(&call, &response)?)?;
        url.query_pairs_mut()
            .append_pair("digest", desc.digest.as_str());
        let put = Req::new(Method::PUT, Target::Location(url.to_string()));
        expect_success(&call, call.send(put).await?).await
    }

    /// `from` as a repository path on this pusher's host (`host/a/b` → `a/b`).
    fn repository_on_this_host(&self, from: &str) -> String {
        from.strip_prefix(&format!("{}/", self.domain))
            .unwrap_or(from)
            .to_string()
    }
}

fn manifest_object(object: &str, digest: &str) -> String {
    let object = match object.split_once('@') {
        Some((tag, wanted)) if wanted == digest => tag,
        Some(_) => "",
        None => object,
    };
    if object.is_empty() {
        digest.to_string()
    } else {
        object.to_string()
    }
}

fn upload_location(call: &Call<'_>, response: &Response) -> Result<String> {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .ok_or_else(|| call.error(ErrorKind::Unknown, "upload answer without a Location"))
}

async fn expect_success(call: &Call<'_>, response: Response) -> Result<()> {
    if response.status().is_success() {
        Ok(())
    } else {
        Err(call.fail(response).await)
    }
}

#[async_trait]
impl Pusher for RegistryPusher {
    async fn exists(&self, desc: &Descriptor) -> Result<bool> {
        let action = format!("check {}", desc.digest);
        let call = self.call(&action, &self.scopes);
        let store = if is_manifest_like(desc) {
            "manifests"
        } else {
            "blobs"
        };
        let path = format!("/{}/{store}/{}", self.path, desc.digest);
        let mut req = Req::new(Method::HEAD, Target::Api(path));
        if store == "manifests" {
            req = req.header("accept", desc.media_type.clone());
        }
        let response = call.send(req).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(call.status_error(s, &[])),
        }
    }

    async fn push(
        &self,
        desc: &Descriptor,
        mount_from: &[String],
        content: RemoteReader,
    ) -> Result<()> {
        if is_manifest_like(desc) {
            self.push_manifest(desc, content).await
        } else {
            self.push_blob(desc, mount_from, content).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_go_to_the_tag_or_by_digest_like_containerd() {
        let root = format!("sha256:{}", "a".repeat(64));
        let child = format!("sha256:{}", "b".repeat(64));
        let tagged_root = format!("v1@{root}");
        assert_eq!(manifest_object(&tagged_root, &root), "v1");
        assert_eq!(manifest_object(&tagged_root, &child), child);
        assert_eq!(manifest_object("v1", &child), "v1");
        assert_eq!(manifest_object(&format!("@{root}"), &root), root);
    }
}
