//! Attach: a client joins a running container's own stdio. The CRI log
//! copier already reads the container's stdout and stderr; each chunk is
//! also handed to the attached clients ([`Tee`]). The container's stdin
//! FIFO is kept here for attached clients to write to.
//!
//! As containerd does: when a client's stdin ends and the container has
//! `stdin_once` (without a tty), the container's stdin is closed;
//! otherwise the client's output ends with its stdin. The attach ends
//! when the container's output does.

use super::StreamIo;
use crate::store::ContainerState;
use crate::stream::Pending;
use crate::Cri;
use berth_core::{Error, Result};
use bytes::Bytes;
use k8s_cri::v1::{AttachRequest, AttachResponse};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How many chunks an attached client may lag before it is dropped (a
/// stuck client must never block the container's log).
const LAG: usize = 256;

/// A container's stdio as attached clients see it.
#[derive(Debug, Default)]
pub(crate) struct AttachPoint {
    stdin: tokio::sync::Mutex<Option<pipe::Sender>>,
    pub(crate) stdout: Tee,
    pub(crate) stderr: Tee,
}

impl AttachPoint {
    /// Keeps the container's stdin FIFO for attached clients.
    pub(crate) async fn set_stdin(&self, stdin: Option<pipe::Sender>) {
        *self.stdin.lock().await = stdin;
    }

    /// The container's output ended: its stdin goes and every attached
    /// client's output ends.
    pub(crate) async fn close(&self) {
        self.stdin.lock().await.take();
        self.stdout.close();
        self.stderr.close();
    }
}

/// Copies of one output stream for the attached clients.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tee(Arc<Mutex<Vec<mpsc::Sender<Bytes>>>>);

impl Tee {
    /// Hands `data` to every client; one that lags too far is dropped.
    pub(crate) fn send(&self, data: &[u8]) {
        let mut clients = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if clients.is_empty() {
            return;
        }
        let chunk = Bytes::copy_from_slice(data);
        clients.retain(|client| match client.try_send(chunk.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("attach: a client fell behind the container's output; detaching it");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    fn subscribe(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(LAG);
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        rx
    }

    fn close(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Cri {
    /// Attach: checks the request and hands out the streaming URL.
    pub(crate) async fn attach_url(&self, mut r: AttachRequest) -> Result<AttachResponse> {
        super::check_streams(&r.container_id, r.tty, r.stdin, r.stdout, r.stderr)?;
        r.container_id = self.running_container(&r.container_id)?;
        let url = self.stream.url(Pending::Attach(r))?;
        Ok(AttachResponse { url })
    }

    /// Attaches `io` to the running container of `r`, until its output
    /// ends or the client leaves.
    pub(crate) async fn attach(&self, r: &AttachRequest, io: StreamIo) -> Result<()> {
        let container = self.containers.get(&r.container_id)?;
        let state = container.status().state();
        if state != ContainerState::Running {
            return Err(Error::failed_precondition(format!(
                "container is in {} state",
                super::start::state_name(state)
            )));
        }
        let config = &container.metadata.config;
        let task = Arc::new(
            self.client
                .load_container(&container.metadata.id)
                .await?
                .task(None)
                .await?,
        );
        if let Some(mut sizes) = io.resize {
            let task = task.clone();
            tokio::spawn(async move {
                while let Some(size) = sizes.recv().await {
                    let _ = task.resize(size.width.into(), size.height.into()).await;
                }
            });
        }
        let point = &container.attach;
        let stop = CancellationToken::new();
        let mut pumps = Vec::new();
        let outputs = [
            (io.stdout, &point.stdout),
            (io.stderr.filter(|_| !config.tty), &point.stderr),
        ];
        for (out, tee) in outputs {
            if let Some(out) = out {
                let (mut rx, stop) = (tee.subscribe(), stop.clone());
                pumps.push(tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            chunk = rx.recv() => match chunk {
                                Some(chunk) => out.send(&chunk).await,
                                None => break,
                            },
                            () = stop.cancelled() => break,
                        }
                    }
                }));
            }
        }
        let once = config.stdin_once && !config.tty;
        let feeding = io.stdin.filter(|_| config.stdin).map(|mut input| {
            let (container, task, stop) = (container.clone(), task.clone(), stop.clone());
            tokio::spawn(async move {
                while let Some(chunk) = input.next().await {
                    let mut stdin = container.attach.stdin.lock().await;
                    let Some(fifo) = stdin.as_mut() else { return };
                    if fifo.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                if once {
                    container.attach.stdin.lock().await.take();
                    let _ = task.close_stdin().await;
                } else {
                    stop.cancel();
                }
            })
        });
        if pumps.is_empty() {
            if let Some(feeding) = feeding {
                let _ = feeding.await;
            }
            return Ok(());
        }
        for pump in pumps {
            let _ = pump.await;
        }
        if let Some(feeding) = feeding {
            feeding.abort();
        }
        Ok(())
    }
}
