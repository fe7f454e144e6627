//! Deleting what a pod's containers leave in the daemon: a task (killed
//! first if it still runs) and a container record with its snapshot, each
//! tolerating that it is gone already, so Stop, Remove and the rollback of
//! RunPodSandbox can all call them.

use crate::Cri;
use berth_core::{ErrorKind, Result};

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
            Err(e) => return Err(e.context(format!("kill sandbox task {id:?}"))),
        }
        match tasks.delete(id).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.context(format!("delete sandbox task {id:?}"))),
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
