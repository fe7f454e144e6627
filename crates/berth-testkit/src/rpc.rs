//! gRPC plumbing for tests that talk to the daemon directly.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tonic::transport::Channel;

use crate::pb::services::v1::container::Runtime;
use crate::pb::services::v1::containers_client::ContainersClient;
use crate::pb::services::v1::version_client::VersionClient;
use crate::pb::services::v1::{Container, CreateContainerRequest, VersionResponse};

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
/// (where `Runtime::block_on` would panic). A panic in the future (a failed
/// assertion) is re-raised in the caller with its own message.
pub fn block_on<F>(future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        let joined = scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("building a tokio runtime")?;
                Ok(rt.block_on(future))
            })
            .join();
        joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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

/// containerd's type URL for an OCI runtime spec, which travels as JSON.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// A container record like the one `ctr containers create --rootfs ROOTFS ID sh`
/// sends (runtime `io.containerd.runc.v2`, a small spec running `sh` in
/// `rootfs`), with `labels`. No image, snapshot or task is involved.
pub fn container_record(id: &str, rootfs: &Path, labels: &[(&str, &str)]) -> Container {
    let spec = serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": rootfs},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]},
    });
    Container {
        id: id.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        runtime: Some(Runtime {
            name: "io.containerd.runc.v2".to_owned(),
            options: None,
        }),
        spec: Some(prost_types::Any {
            type_url: SPEC_TYPE_URL.to_owned(),
            value: spec.to_string().into_bytes(),
        }),
        ..Default::default()
    }
}

/// Creates `container` in `namespace` through the Containers API.
pub async fn create_container(
    channel: Channel,
    namespace: &str,
    container: Container,
) -> Result<Container> {
    let id = container.id.clone();
    let req = with_namespace(
        CreateContainerRequest {
            container: Some(container),
        },
        namespace,
    )?;
    let reply = ContainersClient::new(channel)
        .create(req)
        .await
        .with_context(|| format!("creating container {id:?} in namespace {namespace:?}"))?;
    reply
        .into_inner()
        .container
        .ok_or_else(|| anyhow!("create of {id:?} answered without a container"))
}
