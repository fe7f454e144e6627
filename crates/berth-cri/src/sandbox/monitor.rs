//! The sandbox exit monitor: when a pause task ends on its own (killed,
//! crashed, OOM), its task is deleted and its sandbox becomes NotReady, as
//! containerd's `startSandboxExitMonitor` handles it.

use crate::store::{Sandbox, SandboxState};
use berth_client::Client;
use berth_core::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait before asking again when the daemon could not answer.
const RETRY: Duration = Duration::from_secs(1);

/// Watches `sandbox`'s pause task in the background, until it exits or
/// `stopping` turns true (the daemon stops).
pub(crate) fn watch(
    client: Client,
    sandbox: Arc<Sandbox>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        tokio::select! {
            () = follow(client, sandbox) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    });
}

async fn follow(client: Client, sandbox: Arc<Sandbox>) {
    let id = sandbox.metadata.id.clone();
    loop {
        match client.tasks().wait(&id, "").await {
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Err(e) => {
                if sandbox.status().state != SandboxState::Ready {
                    return;
                }
                tracing::debug!(sandbox = %id, error = %e, "wait for the pause task; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    tracing::debug!(sandbox = %id, "pause task exited");
    // As containerd's exit handler does, the stopped task goes (and
    // its shim with it). Stop and Remove delete it too: taking turns
    // with them, whoever comes second finds it gone.
    let _turn = sandbox.lifecycle.lock().await;
    match client.tasks().delete(&id).await {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            tracing::warn!(sandbox = %id, error = %e, "delete the exited pause task");
        }
        _ => {}
    }
    sandbox.update(|status| {
        status.state = SandboxState::NotReady;
        status.pid = 0;
    });
}
