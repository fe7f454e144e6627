//! Local services: the domain operations behind the gRPC adapters. Each call
//! runs its store transaction off the async runtime and publishes containerd's
//! event once the transaction has committed.

pub mod containers;
pub mod content;
pub mod diff;
pub mod images;
pub mod leases;
pub mod namespaces;
pub mod network;
pub mod snapshots;
pub mod streaming;
pub mod tasks;
pub mod transfer;

use berth_core::{Error, Result};

/// Runs blocking work (a redb transaction) on tokio's blocking pool.
pub async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Error::internal(format!("blocking task failed: {err}")))?
}
