//! PortForward's data path: a TCP connection to `localhost:<port>` dialled
//! inside the pod's network namespace (or the host's, for a pod on the
//! host network), copied both ways with the client's stream, as
//! containerd does.

use crate::store::SandboxState;
use crate::stream::{Inbound, Outbound, Pending};
use crate::Cri;
use berth_core::{Error, Result};
use k8s_cri::v1::{PortForwardRequest, PortForwardResponse};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long a connection attempt may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the second direction may go on once the first has ended.
const GRACE: Duration = Duration::from_secs(1);

impl Cri {
    /// PortForward: checks the pod and hands out the streaming URL.
    pub(crate) async fn port_forward_url(
        &self,
        mut r: PortForwardRequest,
    ) -> Result<PortForwardResponse> {
        if r.pod_sandbox_id.is_empty() {
            return Err(Error::invalid_argument("missing required pod_sandbox_id"));
        }
        let sandbox = self.sandboxes.get(&r.pod_sandbox_id)?;
        if sandbox.status().state != SandboxState::Ready {
            return Err(Error::failed_precondition(
                "sandbox container is not running",
            ));
        }
        r.pod_sandbox_id = sandbox.metadata.id.clone();
        let url = self.stream.url(Pending::PortForward(r))?;
        Ok(PortForwardResponse { url })
    }

    /// Forwards one client stream to `port` in the pod `sandbox_id`.
    pub(crate) async fn port_forward(
        &self,
        sandbox_id: &str,
        port: i32,
        mut from: Inbound,
        mut to: Outbound,
    ) -> Result<()> {
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::invalid_argument(format!("invalid port {port}")))?;
        let sandbox = self.sandboxes.get(sandbox_id)?;
        if sandbox.status().state != SandboxState::Ready {
            return Err(Error::failed_precondition(
                "sandbox container is not running",
            ));
        }
        let netns = sandbox.metadata.netns_path.clone();
        let netns = (!netns.is_empty()).then(|| PathBuf::from(netns));
        let conn = tokio::task::spawn_blocking(move || dial(netns, port))
            .await
            .map_err(|e| Error::internal(format!("dial: {e}")))?
            .map_err(|e| Error::internal(format!("failed to dial {port}: {e}")))?;
        let conn = tokio::net::TcpStream::from_std(conn)
            .map_err(|e| Error::internal(format!("failed to dial {port}: {e}")))?;
        let (mut read, mut write) = conn.into_split();
        let upstream = async move {
            while let Some(chunk) = from.next().await {
                write.write_all(&chunk).await?;
            }
            write.shutdown().await
        };
        let downstream = async move { tokio::io::copy(&mut read, &mut to).await.map(|_| ()) };
        tokio::pin!(upstream, downstream);
        // As containerd: the first direction to end decides the result;
        // the other gets a moment to finish.
        let result = tokio::select! {
            r = &mut upstream => {
                let _ = tokio::time::timeout(GRACE, &mut downstream).await;
                r
            }
            r = &mut downstream => {
                let _ = tokio::time::timeout(GRACE, &mut upstream).await;
                r
            }
        };
        result.map_err(|e| Error::internal(format!("port {port}: {e}")))
    }
}

/// Connects to `127.0.0.1:port` from inside `netns` (a thread of its own
/// joins the namespace and ends, so no other work ever runs there); the
/// socket stays in the namespace it was made in.
fn dial(netns: Option<PathBuf>, port: u16) -> std::io::Result<TcpStream> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Some(netns) = netns else {
        return connect(addr);
    };
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns)?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| std::io::Error::other(format!("join {}: {e}", netns.display())))?;
        connect(addr)
    })
    .join()
    .map_err(|_| std::io::Error::other("dial thread panicked"))?
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let conn = TcpStream::connect_timeout(&addr, DIAL_TIMEOUT)?;
    conn.set_nonblocking(true)?;
    conn.set_nodelay(true)?;
    Ok(conn)
}
