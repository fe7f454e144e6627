//! Pod sandboxes: RunPodSandbox (the pause container, its network
//! namespace and CNI, its files), Stop, Remove, Status and List.
//!
//! | module | owns |
//! |---|---|
//! | `run` | RunPodSandbox and its rollback |
//! | `stop` | StopPodSandbox |
//! | `remove` | RemovePodSandbox |
//! | `status` | PodSandboxStatus |
//! | `list` | ListPodSandbox |
//! | `spec` | the pause container's OCI spec |
//! | `files` | hostname, hosts, resolv.conf and the shm tmpfs |
//! | [`network`] | network namespaces and CNI per runtime handler |
//! | `teardown` | deleting tasks, records and snapshots, gone or not |
//! | `monitor` | NotReady when the pause task exits on its own |
//! | `recover` | reloading pods after a restart |

mod files;
mod list;
pub(crate) mod monitor;
pub mod network;
mod port_forward;
mod recover;
mod remove;
mod run;
mod spec;
mod status;
pub(crate) use status::sandbox_status;
mod stop;
mod teardown;
