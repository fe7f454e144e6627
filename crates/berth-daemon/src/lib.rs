//! The berth daemon: plugin registry, configuration, the gRPC server and the
//! thin service adapters that translate containerd's wire types into calls on
//! berth's domain crates. The `berthd` binary (`main.rs`) only parses flags,
//! sets up logging and calls [`server::run`].
#![warn(missing_docs)]

pub mod builtins;
pub mod config;
pub mod convert;
pub mod dirs;
pub mod events;
pub mod gc;
pub mod local;
pub mod metrics;
pub mod notify;
pub mod plugin;
pub mod server;
pub mod services;
pub mod shim_events;
pub mod socket;
