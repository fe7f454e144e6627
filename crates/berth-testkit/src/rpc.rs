//! gRPC plumbing for tests that talk to the daemon directly.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tonic::transport::Channel;

use crate::pb::services::v1::version_client::VersionClient;
use crate::pb::services::v1::VersionResponse;

/// A channel to the gRPC server on the unix socket `address`. Call it from the
/// runtime that will use the channel: tonic drives it with a task spawned there.
pub async fn connect(address: &Path) -> Result<Channel> {
    crate::pb::connect(address)
        .await
        .with_context(|| format!("connecting to {}", address.display()))
}

/// Wraps `message` in a request carrying containerd's namespace header.
pub fn with_namespace<T>(message: T, namespace: &str) -> Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(message);
    let value = namespace
        .parse()
        .map_err(|e| anyhow!("namespace {namespace:?} is not a header value: {e}"))?;
    req.metadata_mut().insert("containerd-namespace", value);
    Ok(req)
}

/// Runs `future` to completion on a fresh single-threaded runtime in a scoped
/// thread, so it works from plain `#[test]`s and from inside another runtime
/// (where `Runtime::block_on` would panic).
pub fn block_on<F>(future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("building a tokio runtime")?;
                Ok(rt.block_on(future))
            })
            .join()
            .map_err(|_| anyhow!("the runtime thread panicked"))?
    })
}

/// One Version call on a fresh connection, bounded by `timeout`.
pub(crate) async fn version_once(address: &Path, timeout: Duration) -> Result<VersionResponse> {
    let call = async {
        let channel = connect(address).await?;
        let reply = VersionClient::new(channel)
            .version(())
            .await
            .context("Version RPC")?;
        Ok(reply.into_inner())
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| anyhow!("Version RPC timed out after {timeout:?}"))?
}
