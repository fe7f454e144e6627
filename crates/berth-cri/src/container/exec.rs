//! Exec (streaming): a command run in a running container with the
//! client's streams as its stdio, a terminal if asked (with `TERM=xterm`,
//! as containerd sets it) resized as the client says, and its exit code
//! returned once its output has all been sent.

use super::{check_streams, StreamIo};
use crate::stream::Pending;
use crate::{ids, Cri};
use berth_client::cio::{Io, Reader, Writer};
use berth_core::{Error, Result};
use k8s_cri::v1::{ExecRequest, ExecResponse};
use std::sync::Arc;

impl Cri {
    /// Exec: checks the request and hands out the streaming URL.
    pub(crate) async fn exec(&self, mut r: ExecRequest) -> Result<ExecResponse> {
        check_streams(&r.container_id, r.tty, r.stdin, r.stdout, r.stderr)?;
        r.container_id = self.running_container(&r.container_id)?;
        let url = self.stream.url(Pending::Exec(r))?;
        Ok(ExecResponse { url })
    }

    /// Runs the exec of `r` with `io`; returns its exit code.
    pub(crate) async fn exec_streaming(&self, r: &ExecRequest, io: StreamIo) -> Result<i32> {
        let (task, mut process) = self.exec_process(&r.container_id, &r.cmd).await?;
        process.terminal = r.tty;
        if r.tty {
            process.env.retain(|e| !e.starts_with("TERM="));
            process.env.push("TERM=xterm".into());
        }
        let id = task.id().to_string();
        let stdin = io.stdin.map(|s| Box::new(s) as Reader);
        let stdout = io.stdout.map(|s| Box::new(s) as Writer);
        let stderr = io.stderr.filter(|_| !r.tty).map(|s| Box::new(s) as Writer);
        let stdio = Io::with_streams(stdin, stdout, stderr)
            .terminal(r.tty)
            .fifo_dir(self.container_state_dir(&id).join("io"));
        let exec_id = ids::generate();
        let exec = Arc::new(task.exec(&exec_id, process, stdio).await?);
        let exit = exec.wait().await?;
        if let Err(err) = exec.start().await {
            let _ = exec.delete().await;
            return Err(err.context(format!("failed to start exec {exec_id:?}")));
        }
        if let Some(mut sizes) = io.resize {
            let exec = exec.clone();
            tokio::spawn(async move {
                while let Some(size) = sizes.recv().await {
                    let _ = exec.resize(size.width.into(), size.height.into()).await;
                }
            });
        }
        let exited = exit.await;
        // Deleting waits for the output copies: all of it is sent first.
        let deleted = exec.delete().await;
        match (exited, deleted) {
            (Ok(status), _) | (Err(_), Ok(status)) => Ok(status.code as i32),
            (Err(err), Err(_)) => Err(Error::internal(format!(
                "failed while waiting for exec {exec_id:?}: {err}"
            ))),
        }
    }
}
