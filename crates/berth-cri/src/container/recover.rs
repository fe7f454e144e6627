//! A container after a restart of berthd, as containerd's `loadContainer`
//! rebuilds it: the CRI metadata from the record's extension, the status
//! from its file, and the task decides the rest. A task still running
//! gets its log copies and its waiter back; a task that ended meanwhile
//! is deleted and its exit recorded; a container that ran but has no
//! task any more ends as exited with code 255 (`Unknown`).

use super::start::Outputs;
use super::{record_exit, UNKNOWN_EXIT_CODE, UNKNOWN_EXIT_REASON};
use crate::store::{self, ContainerMetadata, ContainerState};
use crate::Cri;
use berth_client::cio::Io;
use berth_client::pb::services::v1::Container as Record;
use berth_client::pb::types::v1::Status as TaskStatus;
use berth_core::{Error, Result};
use std::sync::Arc;
use std::time::SystemTime;

impl Cri {
    /// Puts every CRI container (records labelled
    /// `io.cri-containerd.kind=container`) back into the store; call it
    /// after the sandboxes are back. A container that cannot be loaded is
    /// logged and left out, as containerd leaves it.
    pub(crate) async fn recover_containers(self: &Arc<Self>) -> Result<()> {
        let filter = format!("labels.\"{}\"==container", super::KIND_LABEL);
        for record in self.client.containers().list(&[filter]).await? {
            if let Err(err) = self.recover_container(&record).await {
                tracing::warn!(id = %record.id, %err, "CRI: failed to load container");
            }
        }
        Ok(())
    }

    /// Puts the CRI container of `record` back into the store (and its
    /// name into the index), re-attached to its task if that still runs.
    /// Records without CRI container metadata are not containers of ours:
    /// `InvalidArgument`.
    pub(crate) async fn recover_container(self: &Arc<Self>, record: &Record) -> Result<()> {
        let any = record
            .extensions
            .get(ContainerMetadata::EXTENSION)
            .ok_or_else(|| {
                Error::invalid_argument(format!("{:?} has no CRI container metadata", record.id))
            })?;
        let meta: ContainerMetadata = serde_json::from_slice(&any.value).map_err(|e| {
            Error::invalid_argument(format!("container metadata of {:?}: {e}", record.id))
        })?;
        let container = Arc::new(store::Container::load(
            meta,
            &self.container_root_dir(&record.id),
        ));
        self.recover_task(&container).await?;
        self.container_names
            .reserve(&container.metadata.name, &container.metadata.id)?;
        self.containers.add(container)
    }

    async fn recover_task(self: &Arc<Self>, container: &Arc<store::Container>) -> Result<()> {
        let id = container.metadata.id.clone();
        let process = match self.client.tasks().get(&id).await {
            Ok(process) => Some(process),
            Err(err) if err.is_not_found() => None,
            Err(err) => return Err(err),
        };
        let running = process.as_ref().is_some_and(|p| {
            matches!(
                TaskStatus::try_from(p.status),
                Ok(TaskStatus::Running | TaskStatus::Paused | TaskStatus::Pausing)
            )
        });
        if running && container.status().started_at != 0 {
            return self.reattach(container).await;
        }
        if process.is_some() {
            // Ended, or never started (a start cut short): delete it.
            let exit = self.client.tasks().delete(&id).await;
            if container.status().state() == ContainerState::Created {
                return Ok(());
            }
            let (code, at) = match exit {
                Ok(r) => (
                    r.exit_status as i32,
                    berth_client::time::from_timestamp(r.exited_at.as_ref()),
                ),
                Err(_) => (UNKNOWN_EXIT_CODE, SystemTime::now()),
            };
            return record_exit(container, code, at, None);
        }
        match container.status().state() {
            ContainerState::Running | ContainerState::Unknown => record_exit(
                container,
                UNKNOWN_EXIT_CODE,
                SystemTime::now(),
                Some(UNKNOWN_EXIT_REASON),
            ),
            _ => Ok(()),
        }
    }

    /// Opens the running task's FIFOs again, appends to its log, and
    /// waits for its exit.
    async fn reattach(self: &Arc<Self>, container: &Arc<store::Container>) -> Result<()> {
        let handle = self.client.load_container(&container.metadata.id).await?;
        let task = handle.task(Some(Io::fifos())).await?;
        let outputs: Outputs = self.start_container_logs(container, &task).await?;
        let exit = task.wait().await?;
        container.update(|s| s.pid = task.pid())?;
        self.finish_on_exit(container, task, exit, outputs);
        Ok(())
    }
}
