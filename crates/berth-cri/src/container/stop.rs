//! StopContainer: the stop signal (the image's `StopSignal`, else
//! `SIGTERM`), `timeout` seconds for the process to go, then `SIGKILL` to
//! every process of the task; stopping a container that does not run is
//! a no-op, as in containerd.

use crate::store::{self, ContainerState};
use crate::Cri;
use berth_client::task::{parse_signal, SIGKILL, SIGTERM};
use berth_core::Result;
use k8s_cri::v1::*;
use std::time::Duration;

/// How often a stopping container's status is looked at.
const POLL: Duration = Duration::from_millis(50);
/// Every how many polls a container that still runs is checked for a
/// task that is gone (about every 2 s).
const ORPHAN_CHECK: u32 = 40;

impl Cri {
    pub(crate) async fn stop_container(
        &self,
        r: StopContainerRequest,
    ) -> Result<StopContainerResponse> {
        let container = self.containers.get(&r.container_id)?;
        self.stop_container_within(&container, Duration::from_secs(r.timeout.max(0) as u64))
            .await?;
        Ok(StopContainerResponse {})
    }

    /// Stops `container`, giving it `timeout` after the stop signal.
    pub(crate) async fn stop_container_within(
        &self,
        container: &store::Container,
        timeout: Duration,
    ) -> Result<()> {
        let state = container.status().state();
        if state != ContainerState::Running && state != ContainerState::Unknown {
            return Ok(());
        }
        let id = &container.metadata.id;
        if !timeout.is_zero() {
            let signal = match container.metadata.stop_signal.as_str() {
                "" => SIGTERM,
                name => parse_signal(name).unwrap_or(SIGTERM),
            };
            self.signal_container(id, signal, false).await?;
            if self.container_exited_within(container, Some(timeout)).await {
                return Ok(());
            }
            tracing::info!(%id, ?timeout, "container did not stop in time; killing it");
        }
        self.signal_container(id, SIGKILL, true).await?;
        self.container_exited_within(container, None).await;
        Ok(())
    }

    /// Sends `signal` to the container's task; a task already gone is not
    /// an error.
    async fn signal_container(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        match self.client.tasks().kill(id, "", signal, all).await {
            Err(err) if !err.is_not_found() => Err(err),
            _ => Ok(()),
        }
    }

    /// Waits for the waiter to record the exit; with a timeout, whether it
    /// came in time.
    async fn container_exited_within(
        &self,
        container: &store::Container,
        timeout: Option<Duration>,
    ) -> bool {
        let wait = async {
            let mut polls = 0u32;
            while container.status().state() == ContainerState::Running {
                tokio::time::sleep(POLL).await;
                polls += 1;
                if polls.is_multiple_of(ORPHAN_CHECK) && self.exit_was_lost(container).await {
                    break;
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, wait).await.is_ok(),
            None => {
                wait.await;
                true
            }
        }
    }

    /// Whether the container's task is gone although its status says it
    /// runs (its waiter was lost, e.g. the task was deleted by another
    /// client); the exit is then recorded as unknown, so that a stop does
    /// not wait forever.
    async fn exit_was_lost(&self, container: &store::Container) -> bool {
        let id = &container.metadata.id;
        match self.client.tasks().get(id).await {
            Err(err) if err.is_not_found() => {}
            _ => return false,
        }
        // Give a waiter that is just finishing a moment.
        tokio::time::sleep(POLL * 4).await;
        if container.status().state() != ContainerState::Running {
            return true;
        }
        tracing::warn!(%id, "container task is gone without a recorded exit");
        let recorded = super::record_exit(
            container,
            super::UNKNOWN_EXIT_CODE,
            std::time::SystemTime::now(),
            Some(super::UNKNOWN_EXIT_REASON),
        );
        if let Err(err) = recorded {
            tracing::warn!(%id, %err, "record lost exit");
        }
        true
    }

    /// Stops every container of pod `sandbox_id` at once (no grace), as
    /// StopPodSandbox does before it stops the pause container.
    pub(crate) async fn stop_containers_of(&self, sandbox_id: &str) -> Result<()> {
        for container in self.containers_of(sandbox_id) {
            self.stop_container_within(&container, Duration::ZERO)
                .await?;
        }
        Ok(())
    }

    /// The containers of pod `sandbox_id`.
    pub(crate) fn containers_of(&self, sandbox_id: &str) -> Vec<std::sync::Arc<store::Container>> {
        self.containers
            .list()
            .into_iter()
            .filter(|c| c.metadata.sandbox_id == sandbox_id)
            .collect()
    }
}
