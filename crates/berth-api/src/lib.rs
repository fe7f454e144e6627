//! Everything berth puts on the wire.
//!
//! - [`server`]: a gRPC server trait per containerd v1 service, generated in
//!   `build.rs` over the message types of the `containerd-client` crate
//!   (re-exported as [`pb`]). Each method defaults to `Unimplemented`, naming
//!   its route.
//! - [`status`]: the one conversion between berth's error kinds and gRPC
//!   statuses, both directions.
//! - [`typeurl`]: packing messages into `Any` with containerd's type URLs.
//! - [`metadata`]: the namespace and lease request headers.
//! - [`flow`]: flow-controlled bytes on a transfer stream, for both ends.
#![warn(missing_docs)]

pub mod flow;
pub mod metadata;
pub mod server;
pub mod status;
pub mod typeurl;

/// containerd's protobuf message types and gRPC clients.
pub use containerd_client as pb;

/// `google.protobuf.Empty`: the generated code needs a type path for it.
pub type Empty = ();
