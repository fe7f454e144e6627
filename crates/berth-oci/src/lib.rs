//! The OCI runtime spec, built the way containerd builds it.
//!
//! [`default_spec`] is containerd 1.6's default Linux spec
//! (`pkg/oci/spec.go` `populateDefaultUnixSpec`): pid, ipc, uts, mount and
//! network namespaces; `/proc`, `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`,
//! `/sys` and `/run` mounts; the fourteen default capabilities; masked and
//! read-only proc paths; `RLIMIT_NOFILE` 1024; all devices denied; and the
//! cgroups path `/<namespace>/<id>`. The [`opts`] module holds the spec
//! options (`spec_opts.go`): args, env, cwd, tty, mounts, host networking,
//! privileged, read-only rootfs, resources, hostname, users and groups
//! resolved from the rootfs, and an image's config.
//!
//! The types in [`spec`] serialise in the field order of the Go structs in
//! `runtime-spec/specs-go`, so a spec berth writes reads like one containerd
//! writes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod defaults;
pub mod opts;
pub mod seccomp;
pub mod spec;
mod users;

pub use defaults::{default_spec, DEFAULT_CAPABILITIES, DEFAULT_PATH_ENV, OCI_VERSION};
pub use spec::Spec;
pub use users::{resolve_user, ResolvedUser};
