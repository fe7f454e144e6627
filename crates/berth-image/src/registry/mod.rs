//! A client for the OCI distribution protocol: containerd's
//! `remotes/docker` package, implementing the [`crate::remotes`] seam.
//!
//! [`RegistryResolver::new`] takes [`RegistryOptions`] (plain HTTP,
//! a `hosts.toml` directory, credentials, a Docker `config.json`, CAs) and
//! answers [`Resolver`](crate::remotes::Resolver) calls:
//!
//! - **resolve**: `HEAD` (then, when the answer is incomplete, `GET`)
//!   `/v2/<repo>/manifests/<tag|digest>` with containerd's `Accept` list;
//!   the digest comes from `Docker-Content-Digest` or from hashing the body,
//!   and a digest reference is checked against it.
//! - **fetch**: a streaming `GET` of a blob or manifest, resuming with
//!   `Range: bytes=N-` (a server that ignores the range is handled by
//!   skipping N bytes); the reader fails on a short body but verifies
//!   nothing else — the pull engine hashes what it stores.
//! - **push**: `HEAD` to skip what exists, a cross-repository mount, an
//!   upload session (`POST`, streaming `PATCH`, `PUT ?digest=`), and a
//!   manifest `PUT` under the tag or the digest.
//!
//! Each registry name maps to an ordered list of hosts ([`hosts`]): the
//! mirrors of `<hosts_dir>/<host>/hosts.toml` (asked with `?ns=<name>`, as
//! containerd does), then the server itself
//! (`docker.io` is served by `registry-1.docker.io`). Requests carry
//! credentials as the registry asks for them ([`auth`]): a bearer token
//! fetched from the realm of a `WWW-Authenticate` challenge (anonymous, or
//! with basic credentials) and cached per host and scope, or basic auth.
//! Transient failures (connection errors, 429, 5xx) are retried with
//! exponential backoff; every error names the host, the reference and the
//! HTTP status, and carries a [`berth_core::ErrorKind`] ([`errors`]).

pub mod auth;
pub mod dockerconfig;
pub mod errors;
mod fetcher;
pub mod hosts;
mod options;
mod pusher;
mod reader;
mod request;
mod resolver;
mod session;
mod tls;

pub use fetcher::RegistryFetcher;
pub use hosts::{Capabilities, RegistryHost};
pub use options::RegistryOptions;
pub use pusher::RegistryPusher;
pub use resolver::RegistryResolver;

/// The `Accept` header containerd sends when resolving and fetching
/// manifests: Docker schema 2 manifest and list, OCI manifest and index,
/// then anything.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, */*";

/// The largest manifest or index read into memory (containerd's
/// `MaxManifestSize`, 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
