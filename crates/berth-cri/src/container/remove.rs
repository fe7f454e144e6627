//! RemoveContainer: a running container is killed first (containerd 1.6
//! forcibly stops it), then its record, snapshot, directories, store
//! entry and name go. Removing an id that is not there succeeds.

use crate::store::{self, ContainerState};
use crate::Cri;
use berth_core::{Error, Result};
use k8s_cri::v1::*;
use std::time::Duration;

impl Cri {
    pub(crate) async fn remove_container(
        &self,
        r: RemoveContainerRequest,
    ) -> Result<RemoveContainerResponse> {
        let container = match self.containers.get(&r.container_id) {
            Ok(c) => c,
            Err(err) if err.is_not_found() => return Ok(RemoveContainerResponse {}),
            Err(err) => return Err(err),
        };
        self.remove_container_entry(&container).await?;
        Ok(RemoveContainerResponse {})
    }

    /// Removes `container`, stopping it first if it runs.
    pub(crate) async fn remove_container_entry(&self, container: &store::Container) -> Result<()> {
        let id = container.metadata.id.clone();
        let state = container.status().state();
        if state == ContainerState::Running || state == ContainerState::Unknown {
            self.stop_container_within(container, Duration::ZERO)
                .await
                .map_err(|e| e.context(format!("failed to forcibly stop container {id:?}")))?;
        }
        let _turn = container.lifecycle.lock().await;
        container.update_transient(|s| {
            if s.starting {
                return Err(Error::failed_precondition(
                    "container is in starting state, can't be removed",
                ));
            }
            s.removing = true;
            Ok(())
        })?;
        let removed = self.remove_container_parts(container).await;
        if removed.is_err() {
            container.update_transient(|s| s.removing = false);
            return removed;
        }
        self.containers.remove(&id);
        self.container_names.release(&container.metadata.name);
        self.cpu_samples.forget(&id);
        let kind = ContainerEventType::ContainerDeletedEvent;
        self.container_event(&id, &container.metadata.sandbox_id, kind)
            .await;
        Ok(())
    }

    async fn remove_container_parts(&self, container: &store::Container) -> Result<()> {
        let id = &container.metadata.id;
        // A task left behind (the waiter is not done with it) goes first.
        match self.client.tasks().delete(id).await {
            Err(err) if !err.is_not_found() => {
                tracing::debug!(%id, %err, "delete task before removing container")
            }
            _ => {}
        }
        match self.client.load_container(id).await {
            Ok(handle) => handle.delete(true).await.or_else(ignore_not_found)?,
            Err(err) => ignore_not_found(err)?,
        }
        for dir in [self.container_root_dir(id), self.container_state_dir(id)] {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::internal(format!(
                        "failed to remove {}: {e}",
                        dir.display()
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes every container of pod `sandbox_id` (stopping any that
    /// run), as RemovePodSandbox does.
    pub(crate) async fn remove_containers_of(&self, sandbox_id: &str) -> Result<()> {
        for container in self.containers_of(sandbox_id) {
            self.remove_container_entry(&container).await?;
        }
        Ok(())
    }
}

fn ignore_not_found(err: Error) -> Result<()> {
    if err.is_not_found() {
        Ok(())
    } else {
        Err(err)
    }
}
