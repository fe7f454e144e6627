//! [`RegistryResolver`]: references to descriptors, and fetchers and
//! pushers for their repositories.

use std::sync::Arc;

use async_trait::async_trait;
use berth_core::{Digest, Error, ErrorKind, Result};
use reqwest::{Method, Response, StatusCode};
use tokio::io::AsyncReadExt;

use super::auth::repository_scope;
use super::fetcher::RegistryFetcher;
use super::pusher::RegistryPusher;
use super::request::{Call, Req, Target};
use super::session::{Endpoint, Session};
use super::{RegistryOptions, MANIFEST_ACCEPT, MAX_MANIFEST_SIZE};
use crate::mediatypes;
use crate::reference::Reference;
use crate::remotes::{Fetcher, Pusher, Resolver};
use crate::spec::Descriptor;

/// Resolves references against OCI distribution registries.
///
/// Cheap to clone; clones share connections, tokens and host state.
///
/// ```no_run
/// # async fn example() -> berth_core::Result<()> {
/// use berth_image::registry::{RegistryOptions, RegistryResolver};
/// use berth_image::remotes::Resolver;
///
/// let resolver = RegistryResolver::new(RegistryOptions::default())?;
/// let (name, root) = resolver.resolve("busybox").await?;
/// assert_eq!(name, "docker.io/library/busybox:latest");
/// let fetcher = resolver.fetcher(&name).await?;
/// let _index = fetcher.fetch(&root, 0).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RegistryResolver {
    session: Arc<Session>,
}

/// A reference taken apart for requests.
pub(crate) struct RefTarget {
    pub reference: Reference,
    /// The full name with its tag and/or digest, as recorded.
    pub name: String,
}

/// Parses `reference` as Docker does (`busybox` →
/// `docker.io/library/busybox:latest`).
pub(crate) fn parse(reference: &str) -> Result<RefTarget> {
    let reference = Reference::parse_normalized(reference)?.tag_name_only();
    let name = reference.to_string();
    Ok(RefTarget { reference, name })
}

impl RegistryResolver {
    /// A resolver with `opts`. Fails when the Docker config cannot be read.
    pub fn new(opts: RegistryOptions) -> Result<RegistryResolver> {
        Ok(RegistryResolver {
            session: Session::new(opts)?,
        })
    }

    /// The hosts serving registry `domain` (a reference's first part), in
    /// the order they are tried, after `hosts.toml` and the defaults.
    pub fn hosts(&self, domain: &str) -> Result<Vec<super::RegistryHost>> {
        Ok(self
            .session
            .endpoints(domain)?
            .into_iter()
            .map(|e| e.host)
            .collect())
    }

    /// A fetcher with its concrete type (see [`Resolver::fetcher`]).
    pub fn registry_fetcher(&self, reference: &str) -> Result<RegistryFetcher> {
        let target = parse(reference)?;
        let endpoints = self.endpoints(&target, |c| c.pull)?;
        Ok(RegistryFetcher::new(
            self.session.clone(),
            target,
            endpoints,
        ))
    }

    /// A pusher with its concrete type (see [`Resolver::pusher`]).
    pub fn registry_pusher(&self, reference: &str) -> Result<RegistryPusher> {
        let target = parse(reference)?;
        let endpoint = self
            .endpoints(&target, |c| c.push)?
            .into_iter()
            .next()
            .ok_or_else(|| no_hosts("push", &target.name))?;
        Ok(RegistryPusher::new(self.session.clone(), target, endpoint))
    }

    fn endpoints(
        &self,
        target: &RefTarget,
        capable: impl Fn(&super::Capabilities) -> bool,
    ) -> Result<Vec<Endpoint>> {
        Ok(self
            .session
            .endpoints(&target.reference.domain)?
            .into_iter()
            .filter(|e| capable(&e.host.capabilities))
            .collect())
    }
}

fn no_hosts(what: &str, name: &str) -> Error {
    Error::not_found(format!("{name}: no host configured to {what}"))
}

#[async_trait]
impl Resolver for RegistryResolver {
    async fn resolve(&self, reference: &str) -> Result<(String, Descriptor)> {
        let target = parse(reference)?;
        // A digest needs no tag lookup: any pull host can answer for it.
        let endpoints = if target.reference.digest.is_some() {
            self.endpoints(&target, |c| c.pull)?
        } else {
            self.endpoints(&target, |c| c.resolve)?
        };
        let scopes = [repository_scope(&target.reference.path, false)];
        let mut last = None;
        for endpoint in &endpoints {
            let call = Call {
                session: &self.session,
                endpoint,
                action: "resolve",
                reference: &target.name,
                scopes: &scopes,
            };
            match resolve_on(&call, &target).await {
                Ok(desc) => return Ok((target.name.clone(), desc)),
                // As containerd: try the next host after a miss or an
                // outage, stop at any other refusal.
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Unavailable) => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| no_hosts("resolve", &target.name)))
    }

    async fn fetcher(&self, reference: &str) -> Result<Arc<dyn Fetcher>> {
        Ok(Arc::new(self.registry_fetcher(reference)?))
    }

    async fn pusher(&self, reference: &str) -> Result<Arc<dyn Pusher>> {
        Ok(Arc::new(self.registry_pusher(reference)?))
    }
}

/// Resolves on one host: HEAD, then GET when HEAD leaves something out.
async fn resolve_on(call: &Call<'_>, target: &RefTarget) -> Result<Descriptor> {
    let r = &target.reference;
    let object = r
        .digest
        .clone()
        .or_else(|| r.tag.clone())
        .unwrap_or_default();
    let path = format!("/{}/manifests/{object}", r.path);
    let head = Req::new(Method::HEAD, Target::Api(path.clone())).header("accept", MANIFEST_ACCEPT);
    let response = call.send(head).await?;
    let status = response.status();
    if matches!(status.as_u16(), 401 | 403 | 404) {
        return Err(call.status_error(status, &[]));
    }
    // Anything else HEAD cannot answer (405, 5xx after retries) is left to GET.
    if status.is_success() {
        if let Some(desc) = descriptor_from_headers(&response) {
            let wanted = r.digest.as_deref();
            if wanted.is_none() || wanted == Some(desc.digest.as_str()) {
                return Ok(desc);
            }
        }
    }
    let get = Req::new(Method::GET, Target::Api(path)).header("accept", MANIFEST_ACCEPT);
    let response = call.send(get).await?;
    if response.status() != StatusCode::OK {
        return Err(call.fail(response).await);
    }
    let content_type = header(&response, "content-type");
    let body = read_manifest(call, response).await?;
    let digest = Digest::sha256_of(&body);
    if let Some(wanted) = &r.digest {
        if wanted != digest.as_str() {
            return Err(call.error(
                ErrorKind::DataLoss,
                format!("manifest digest {digest} does not match the reference"),
            ));
        }
    }
    let media_type = known_media_type(&content_type).unwrap_or_else(|| sniff_media_type(&body));
    let size = i64::try_from(body.len()).unwrap_or(i64::MAX);
    Ok(Descriptor::new(media_type, digest, size))
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A descriptor from a HEAD answer that has digest, size and a manifest
/// media type.
fn descriptor_from_headers(response: &Response) -> Option<Descriptor> {
    let digest = Digest::parse(&header(response, "docker-content-digest")).ok()?;
    let size: i64 = header(response, "content-length").parse().ok()?;
    let media_type = known_media_type(&header(response, "content-type"))?;
    Some(Descriptor::new(media_type, digest, size))
}

fn known_media_type(content_type: &str) -> Option<String> {
    let base = content_type.split(';').next().unwrap_or_default().trim();
    (mediatypes::is_manifest(base) || mediatypes::is_index(base)).then(|| base.to_string())
}

/// The media type of a manifest served as plain JSON: its `mediaType`
/// field, else an index when it lists manifests.
fn sniff_media_type(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(mt) = value.get("mediaType").and_then(|m| m.as_str()) {
        return mt.to_string();
    }
    if value.get("manifests").is_some() {
        mediatypes::OCI_INDEX.to_string()
    } else {
        mediatypes::OCI_MANIFEST.to_string()
    }
}

/// Reads a manifest body, refusing more than [`MAX_MANIFEST_SIZE`].
pub(crate) async fn read_manifest(call: &Call<'_>, response: Response) -> Result<Vec<u8>> {
    let what = format!("{} {}", call.action, call.reference);
    let mut reader = super::reader::BodyReader::new(response, 0, None, what);
    let mut body = Vec::new();
    (&mut reader)
        .take(MAX_MANIFEST_SIZE + 1)
        .read_to_end(&mut body)
        .await
        .map_err(|e| call.error(ErrorKind::Unavailable, e))?;
    if body.len() as u64 > MAX_MANIFEST_SIZE {
        return Err(call.error(
            ErrorKind::InvalidArgument,
            format!("manifest larger than {MAX_MANIFEST_SIZE} bytes"),
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalized_like_docker() {
        let cases = [
            (
                "busybox",
                "docker.io",
                "library/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("foo/bar:1", "docker.io", "foo/bar", "docker.io/foo/bar:1"),
            (
                "127.0.0.1:5000/x/y",
                "127.0.0.1:5000",
                "x/y",
                "127.0.0.1:5000/x/y:latest",
            ),
        ];
        for (input, domain, path, name) in cases {
            let t = parse(input).expect(input);
            assert_eq!(t.reference.domain, domain);
            assert_eq!(t.reference.path, path);
            assert_eq!(t.name, name);
        }
        let digest = format!("sha256:{}", "c".repeat(64));
        let t = parse(&format!("localhost:5000/a@{digest}")).expect("digest");
        assert_eq!(t.reference.tag, None);
        assert_eq!(t.name, format!("localhost:5000/a@{digest}"));
        assert!(parse("Busybox").is_err());
    }

    #[test]
    fn media_type_is_sniffed_from_plain_json() {
        assert_eq!(
            sniff_media_type(br#"{"manifests":[]}"#),
            mediatypes::OCI_INDEX
        );
        assert_eq!(
            sniff_media_type(
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            ),
            mediatypes::DOCKER_MANIFEST
        );
        assert_eq!(known_media_type("application/json"), None);
        assert_eq!(
            known_media_type("application/vnd.oci.image.index.v1+json; charset=utf-8").as_deref(),
            Some(mediatypes::OCI_INDEX)
        );
    }
}
