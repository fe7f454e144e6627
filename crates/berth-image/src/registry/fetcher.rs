//! [`RegistryFetcher`]: streaming blobs and manifests out of a repository.

use std::sync::Arc;

use async_trait::async_trait;
use berth_core::{Error, ErrorKind, Result};
use reqwest::{Method, StatusCode};

use super::auth::repository_scope;
use super::reader::BodyReader;
use super::request::{Call, Req, Target};
use super::resolver::RefTarget;
use super::session::{Endpoint, Session};
use super::MANIFEST_ACCEPT;
use crate::mediatypes;
use crate::remotes::{Fetcher, RemoteReader};
use crate::spec::Descriptor;

/// Reads blobs and manifests of one repository from its pull hosts, in
/// order, moving to the next host when one does not have the object or
/// cannot be reached.
#[derive(Debug)]
pub struct RegistryFetcher {
    session: Arc<Session>,
    name: String,
    path: String,
    endpoints: Vec<Endpoint>,
    scopes: Vec<String>,
}

impl RegistryFetcher {
    pub(crate) fn new(
        session: Arc<Session>,
        target: RefTarget,
        endpoints: Vec<Endpoint>,
    ) -> RegistryFetcher {
        let path = target.reference.path.clone();
        RegistryFetcher {
            session,
            scopes: vec![repository_scope(&path, false)],
            name: target.name,
            path,
            endpoints,
        }
    }
}

/// Whether `desc` lives in the manifest store rather than the blob store.
pub(crate) fn is_manifest_like(desc: &Descriptor) -> bool {
    mediatypes::is_manifest(&desc.media_type) || mediatypes::is_index(&desc.media_type)
}

#[async_trait]
impl Fetcher for RegistryFetcher {
    async fn fetch(&self, desc: &Descriptor, offset: u64) -> Result<RemoteReader> {
        let size = u64::try_from(desc.size).ok();
        if size.is_some_and(|size| offset >= size) {
            if size == Some(offset) {
                return Ok(Box::new(tokio::io::empty()));
            }
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!(
                    "fetch {} of {}: offset {offset} is past its size {}",
                    desc.digest, self.name, desc.size
                ),
            ));
        }
        let action = format!("fetch {}", desc.digest);
        let mut last = None;
        for endpoint in &self.endpoints {
            let call = Call {
                session: &self.session,
                endpoint,
                action: &action,
                reference: &self.name,
                scopes: &self.scopes,
            };
            match fetch_from(&call, &self.path, desc, offset).await {
                Ok(reader) => return Ok(reader),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Unavailable) => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::not_found(format!(
                "{action} of {}: no host configured to pull",
                self.name
            ))
        }))
    }
}

async fn fetch_from(
    call: &Call<'_>,
    path: &str,
    desc: &Descriptor,
    offset: u64,
) -> Result<RemoteReader> {
    let store = if is_manifest_like(desc) {
        "manifests"
    } else {
        "blobs"
    };
    let mut req = Req::new(
        Method::GET,
        Target::Api(format!("/{path}/{store}/{}", desc.digest)),
    );
    if store == "manifests" {
        let accept = format!("{}, {MANIFEST_ACCEPT}", desc.media_type);
        req = req.header("accept", accept);
    }
    if offset > 0 {
        req = req.header("range", format!("bytes={offset}-"));
    }
    let response = call.send(req).await?;
    let skip = match response.status() {
        StatusCode::OK => offset,
        StatusCode::PARTIAL_CONTENT => {
            let start = content_range_start(&response);
            if start.is_some_and(|start| start != offset) {
                return Err(call.error(
                    ErrorKind::Unknown,
                    format!("asked for bytes from {offset}, got a range from {start:?}"),
                ));
            }
            0
        }
        _ => return Err(call.fail(response).await),
    };
    let expected = u64::try_from(desc.size).ok().map(|size| size - offset);
    let what = format!(
        "{} {} from {}",
        call.action, call.reference, call.endpoint.host.host
    );
    Ok(Box::new(BodyReader::new(response, skip, expected, what)))
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get("content-range")?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes")?.trim();
    range.split('-').next()?.trim().parse().ok()
}
