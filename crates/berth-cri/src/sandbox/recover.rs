//! Reloading pods after a restart, as containerd's `loadSandbox` does: each
//! `k8s.io` container record labelled `io.cri-containerd.kind=sandbox`
//! carries the sandbox's metadata in its extension; its task says whether
//! the pod is still Ready. A pod whose pause task is not running is
//! NotReady, and what is left of that task is deleted.

use super::run::{nanos, CONTAINER_KIND_LABEL, CONTAINER_KIND_SANDBOX};
use crate::store::{Sandbox, SandboxMetadata, SandboxState, SandboxStatus};
use crate::Cri;
use berth_client::pb::services::v1::Container as Record;
use berth_client::pb::types::v1::Status as TaskStatus;
use berth_core::{Error, ErrorKind, Result};
use std::sync::Arc;

impl Cri {
    /// Rebuilds the sandbox store (and reserved names) from the daemon's
    /// records and starts watching the running pause tasks. A record that
    /// cannot be read is skipped with a warning, as containerd skips it.
    pub(crate) async fn recover_sandboxes(&self) -> Result<()> {
        let records = self.client.containers().list::<&str>(&[]).await?;
        for record in records {
            if record.labels.get(CONTAINER_KIND_LABEL).map(String::as_str)
                != Some(CONTAINER_KIND_SANDBOX)
            {
                continue;
            }
            let id = record.id.clone();
            match self.load_sandbox(record).await {
                Ok(sandbox) => {
                    let sandbox = Arc::new(sandbox);
                    if let Err(e) = self
                        .sandbox_names
                        .reserve(&sandbox.metadata.name, &sandbox.metadata.id)
                    {
                        tracing::warn!(id, error = %e, "recovered sandbox's name");
                    }
                    let ready = sandbox.status().state == SandboxState::Ready;
                    self.sandboxes.add(sandbox.clone())?;
                    if ready {
                        super::monitor::watch(
                            self.client.clone(),
                            sandbox,
                            self.stopping.subscribe(),
                        );
                    }
                }
                Err(e) => tracing::warn!(id, error = %e, "sandbox not recovered"),
            }
        }
        Ok(())
    }

    /// One sandbox from its record and its task.
    async fn load_sandbox(&self, record: Record) -> Result<Sandbox> {
        let metadata = sandbox_metadata(&record)?;
        let created_at = record
            .created_at
            .as_ref()
            .map(|t| nanos(berth_client::time::from_timestamp(Some(t))))
            .unwrap_or(0);
        let running = match self.client.tasks().get(&record.id).await {
            Ok(process) if process.status() == TaskStatus::Running => Some(process.pid),
            Ok(_) => {
                // Created but never started, or exited while no one
                // watched: the pod is not ready, and the task goes.
                self.kill_and_delete_task(&record.id).await?;
                None
            }
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let status = SandboxStatus {
            pid: running.unwrap_or(0),
            created_at,
            state: if running.is_some() {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            },
        };
        Ok(Sandbox::new(metadata, status))
    }
}

/// The sandbox metadata in a record's extension.
fn sandbox_metadata(record: &Record) -> Result<SandboxMetadata> {
    let any = record
        .extensions
        .get(SandboxMetadata::EXTENSION)
        .ok_or_else(|| Error::not_found(format!("sandbox metadata of {:?}", record.id)))?;
    if any.type_url != SandboxMetadata::TYPE_URL {
        return Err(Error::invalid_argument(format!(
            "sandbox metadata of {:?} is a {:?}",
            record.id, any.type_url
        )));
    }
    serde_json::from_slice(&any.value)
        .map_err(|e| Error::invalid_argument(format!("sandbox metadata of {:?}: {e}", record.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_the_extension() {
        let metadata = SandboxMetadata {
            id: "abc".into(),
            name: "p_ns_u_0".into(),
            ip: "10.0.0.2".into(),
            ..SandboxMetadata::default()
        };
        let mut record = Record {
            id: "abc".into(),
            ..Record::default()
        };
        assert!(sandbox_metadata(&record).is_err());
        record.extensions.insert(
            SandboxMetadata::EXTENSION.into(),
            prost_types::Any {
                type_url: SandboxMetadata::TYPE_URL.into(),
                value: serde_json::to_vec(&metadata).expect("encode"),
            },
        );
        let back = sandbox_metadata(&record).expect("decode");
        assert_eq!(
            (back.id, back.name, back.ip),
            (metadata.id, metadata.name, metadata.ip)
        );
    }
}
