//! The daemon side of containerd's runtime v2.
//!
//! A task is a container's running process tree, owned by a *shim*: a small
//! process started per container that outlives the daemon. For every task the
//! daemon:
//!
//! 1. writes a [`bundle`] — `<state>/io.containerd.runtime.v2.task/<ns>/<id>/`
//!    with `config.json` (the container's OCI spec) and a `rootfs` directory;
//! 2. resolves the runtime name to a shim [`binary`] and runs
//!    `<shim> -namespace NS -address SOCK -publish-binary BERTHD -id ID start`
//!    in the bundle, reading the shim's ttrpc address from its stdout;
//! 3. talks to the shim over ttrpc ([`shim`]), under the `containerd.task.v2.Task`
//!    service name that containerd 1.6's shims answer, or `v3` for 2.x shims;
//! 4. watches for the shim's death ([`manager`]) so a killed shim is reported
//!    as an exit, and cleans up with the shim's `delete` command.
//!
//! After a daemon restart [`TaskManager::recover`] walks the bundles, reconnects
//! live shims and deletes what is left of dead ones.

pub mod binary;
pub mod bundle;
mod convert;
mod error;
mod log;
pub mod manager;
pub mod retiring;
pub mod shim;
pub mod task;

pub use binary::{Resolver, ShimCommand};
pub use convert::{from_shim, timestamp_to_shim, to_shim};
pub use error::from_ttrpc;
pub use manager::{DaemonAddresses, Publisher, TaskManager};
pub use task::{CreateOpts, ExecOpts, Exit, ProcessState, Status, Task};

/// The shim API types (rust-protobuf), for the daemon's ttrpc events server.
pub use containerd_shim_protos as protos;
/// The ttrpc crate the shim API is built on.
pub use ttrpc;

/// The directory below the state dir that holds bundles (containerd's plugin id).
pub const TASK_DIR: &str = "io.containerd.runtime.v2.task";

/// The ttrpc metadata key carrying the namespace.
pub const TTRPC_NAMESPACE_HEADER: &str = "containerd-namespace-ttrpc";
