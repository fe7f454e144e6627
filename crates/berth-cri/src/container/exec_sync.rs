//! ExecSync: a command run in a running container (its process spec with
//! other args), its stdout and stderr captured up to 16 MiB each (the
//! rest is read and dropped), its exit code returned. Past the timeout
//! the process is killed and the call fails with `DeadlineExceeded`
//! (`timeout 1s exceeded: context deadline exceeded`, as containerd says).

use crate::store::ContainerState;
use crate::{ids, Cri};
use berth_client::cio::Io;
use berth_client::task::{Task, SIGKILL};
use berth_core::{Error, ErrorKind, Result};
use berth_oci::spec::Process;
use k8s_cri::v1::*;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;

/// The most output of one stream ExecSync returns (containerd's
/// `maxStreamSize`).
const MAX_STREAM_SIZE: usize = 16 * 1024 * 1024;

impl Cri {
    /// The task of a running container and its process spec with `cmd`
    /// as the arguments: what ExecSync and Exec start.
    pub(crate) async fn exec_process(
        &self,
        container_id: &str,
        cmd: &[String],
    ) -> Result<(Task, Process)> {
        let container = self.containers.get(container_id)?;
        let id = container.metadata.id.clone();
        let state = container.status().state();
        if state != ContainerState::Running {
            return Err(Error::failed_precondition(format!(
                "container is in {} state",
                super::start::state_name(state)
            )));
        }
        if cmd.is_empty() {
            return Err(Error::invalid_argument("exec command must be set"));
        }
        let handle = self.client.load_container(&id).await?;
        let mut process = handle
            .spec()
            .await?
            .process
            .ok_or_else(|| Error::internal(format!("container {id:?} has no process spec")))?;
        process.args = cmd.to_vec();
        let task = handle.task(None).await?;
        Ok((task, process))
    }

    pub(crate) async fn exec_sync(&self, r: ExecSyncRequest) -> Result<ExecSyncResponse> {
        let (task, mut process) = self.exec_process(&r.container_id, &r.cmd).await?;
        process.terminal = false;
        let id = task.id().to_string();
        let (stdout, stderr) = (Capped::default(), Capped::default());
        let io = Io::with_streams(
            None,
            Some(Box::new(stdout.clone())),
            Some(Box::new(stderr.clone())),
        )
        .fifo_dir(self.container_state_dir(&id).join("io"));
        let exec_id = ids::generate();
        let exec = task.exec(&exec_id, process, io).await?;
        let exit = exec.wait().await?;
        if let Err(err) = exec.start().await {
            let _ = exec.delete().await;
            return Err(err.context(format!("failed to start exec {exec_id:?}")));
        }
        let timeout = Duration::from_secs(r.timeout.max(0) as u64);
        let exited = if timeout.is_zero() {
            Some(exit.await)
        } else {
            tokio::select! {
                result = exit => Some(result),
                () = tokio::time::sleep(timeout) => None,
            }
        };
        let Some(exited) = exited else {
            if let Err(err) = exec.kill(SIGKILL).await {
                if !err.is_not_found() {
                    return Err(err.context(format!("failed to kill exec {exec_id:?}")));
                }
            }
            // Wait for the exit before deleting the process.
            while let Ok(s) = exec.status().await {
                if s.status == berth_client::pb::types::v1::Status::Stopped {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = exec.delete().await;
            return Err(Error::new(
                ErrorKind::DeadlineExceeded,
                format!(
                    "timeout {}s exceeded: context deadline exceeded",
                    timeout.as_secs()
                ),
            ));
        };
        let deleted = exec.delete().await;
        let code = match (exited, deleted) {
            (Ok(status), _) => status.code,
            (Err(_), Ok(status)) => status.code,
            (Err(err), Err(_)) => {
                return Err(err.context(format!("failed while waiting for exec {exec_id:?}")))
            }
        };
        Ok(ExecSyncResponse {
            stdout: stdout.take(),
            stderr: stderr.take(),
            exit_code: code as i32,
        })
    }
}

/// A stream's output, kept up to [`MAX_STREAM_SIZE`] bytes; more is
/// accepted and dropped so the process never blocks.
#[derive(Clone, Default)]
struct Capped(Arc<Mutex<Vec<u8>>>);

impl Capped {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_STREAM_SIZE.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn output_past_the_cap_is_dropped_but_accepted() {
        let mut capped = Capped::default();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..17 {
            capped.write_all(&chunk).await.expect("write");
        }
        assert_eq!(capped.take().len(), MAX_STREAM_SIZE);
    }
}
