//! Deleting what a pod's containers leave in the daemon: a task (killed
//! first if it still runs) and a container record with its snapshot, each
//! tolerating that it is gone already, so Stop, Remove and the rollback of
//! RunPodSandbox can all call them.

use crate::Cri;
use berth_core::{Error, ErrorKind, Result};
use std::time::{Duration, Instant};

/// What a call to a task whose shim has died answers (containerd's
/// `ttrpc.ErrClosed`) until the daemon has cleaned up after the shim.
const SHIM_CLOSED: &str = "ttrpc: closed";
/// How long the daemon may take to clean up after a dead shim.
const DEAD_SHIM_CLEANUP: Duration = Duration::from_secs(10);

fn shim_gone(e: &Error) -> bool {
    e.kind() == ErrorKind::Unknown && e.message().contains(SHIM_CLOSED)
}

impl Cri {
    /// Kills the pause task (and whatever else runs in its container) and
    /// deletes it; a task that is gone is fine.
    pub(crate) async fn kill_and_delete_task(&self, id: &str) -> Result<()> {
        let tasks = self.client.tasks();
        match tasks.kill(id, "", libc::SIGKILL as u32, true).await {
            Ok(()) => {
                let _ = tasks.wait(id, "").await;
            }
            // No task, or one whose process has exited already (which
            // cannot be signalled): what is left is deleted below.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::NotFound | ErrorKind::FailedPrecondition
                ) => {}
            // Its shim died: the daemon is reporting the exit and removing
            // the task; wait for that rather than fail the stop.
            Err(e) if shim_gone(&e) => return self.wait_task_gone(id).await,
            Err(e) => return Err(e.context(format!("kill sandbox task {id:?}"))),
        }
        match tasks.delete(id).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) if shim_gone(&e) => self.wait_task_gone(id).await,
            Err(e) => Err(e.context(format!("delete sandbox task {id:?}"))),
        }
    }

    /// Waits until the daemon no longer lists task `id` (its dead shim
    /// cleaned up), then deletes whatever is left.
    async fn wait_task_gone(&self, id: &str) -> Result<()> {
        let tasks = self.client.tasks();
        let deadline = Instant::now() + DEAD_SHIM_CLEANUP;
        loop {
            match tasks.get(id).await {
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                _ if Instant::now() >= deadline => {
                    return Err(Error::unavailable(format!(
                        "sandbox task {id:?}: its shim died and the daemon has not cleaned up after it yet"
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Deletes a container record and its snapshot; absent is fine.
    pub(crate) async fn delete_record_and_snapshot(&self, id: &str) -> Result<()> {
        match self.client.load_container(id).await {
            Ok(container) => match container.delete(true).await {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    Err(e.context(format!("delete container {id:?}")))
                }
                _ => Ok(()),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
