//! A thin Rust client for containerd's v1 gRPC API, served by `berthd` and by
//! containerd itself.
//!
//! A [`Client`] is one gRPC channel over a unix socket plus two settings that
//! travel with every call: the *namespace* (sent in the `containerd-namespace`
//! header, as containerd's Go client does) and an optional per-call *timeout*
//! (sent as `grpc-timeout` and enforced locally). Clients are cheap to clone;
//! [`Client::with_namespace`] and [`Client::with_timeout`] return copies that
//! share the channel.
//!
//! [`Client::version`] asks for the daemon's version; every other service is
//! a small handle made from the client — [`Client::introspection`],
//! [`Client::namespaces`], [`Client::containers`], [`Client::events`],
//! [`Client::tasks`], [`Client::snapshots`], [`Client::leases`] — whose
//! methods take and return containerd's own message types ([`pb`]). The
//! content store and the image records are berth's domain traits instead:
//! [`Client::content`] is a `ContentStore` and [`Client::images`] an
//! `ImageStore`, so `berth-image`'s archive import and export run over
//! them. [`Client::transfer`] runs pulls, pushes, imports and exports
//! inside the daemon (containerd's transfer service), with progress and
//! registry credentials over streams. [`Client::with_lease`] makes every
//! call work under a lease (the `containerd-lease` header). Errors are [`Error`]s whose [`ErrorKind`] comes
//! from the gRPC status code, so `err.kind() == ErrorKind::NotFound` works the
//! same against any daemon.
//!
//! ```no_run
//! # async fn demo() -> berth_client::Result<()> {
//! use std::time::Duration;
//!
//! let client = berth_client::Client::connect("/run/berth/berth.sock")
//!     .await?
//!     .with_namespace("web")
//!     .with_timeout(Some(Duration::from_secs(5)));
//! for container in client.containers().list(&["labels.app==nginx"]).await? {
//!     println!("{}", container.id);
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cio;
mod client;
pub mod container;
pub mod containers;
pub mod content;
pub mod diff;
pub mod events;
pub mod images;
pub mod introspection;
pub mod leases;
pub mod namespaces;
pub mod network;
pub mod runc_options;
pub mod snapshots;
pub mod spec;
pub mod task;
pub mod tasks;
pub mod time;
pub mod transfer;
mod version;

pub use client::{Builder, Client, DEFAULT_ADDRESS};

/// containerd's protobuf messages and generated gRPC clients.
pub use berth_api::pb;
/// A gRPC status code's name as Go prints it.
pub use berth_api::status::code_name;
/// Packing and unpacking `Any` with containerd's type URLs.
pub use berth_api::typeurl;
/// berth's shared vocabulary (errors, namespaces, identifiers, the
/// `ContentStore` and `ImageStore` traits).
pub use berth_core;
pub use berth_core::{Error, ErrorKind, Result};
/// The image model and archives (import, export), which run over
/// [`Client::content`] and [`Client::images`].
pub use berth_image;
/// The OCI runtime spec and its options, as containers are built with.
pub use berth_oci;
/// Well-known protobuf types (`Any`, `Timestamp`, `FieldMask`) used in [`pb`].
pub use prost_types;
