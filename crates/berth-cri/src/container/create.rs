//! CreateContainer: reserve the name, resolve the image, prepare the
//! rootfs snapshot, build the spec (with the snapshot mounted for users,
//! groups and volume copy-up), write the container record, and keep the
//! container in the store. Everything done is undone if a later step
//! fails.

use super::{mounts, spec, volumes, KIND_LABEL};
use crate::store::{self, ContainerMetadata, ContainerStatus};
use crate::{ids, Cri};
use berth_client::pb::services::v1::Container as Record;
use berth_core::mount::TempMount;
use berth_core::snapshots::Snapshotter;
use berth_core::{Error, Result};
use k8s_cri::v1::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long the lease that guards a new snapshot may live.
const CREATE_LEASE: Duration = Duration::from_secs(24 * 3600);

/// What CreateContainer has done so far, to undo on failure.
#[derive(Default)]
struct Undo {
    dirs: Vec<PathBuf>,
    snapshot: Option<(String, String)>,
    record: Option<String>,
}

impl Cri {
    pub(crate) async fn create_container(
        &self,
        r: CreateContainerRequest,
    ) -> Result<CreateContainerResponse> {
        let config = r
            .config
            .ok_or_else(|| Error::invalid_argument("container config must be set"))?;
        let sandbox = self
            .sandboxes
            .get(&r.pod_sandbox_id)
            .map_err(|e| e.context(format!("failed to find sandbox id {:?}", r.pod_sandbox_id)))?;
        let sandbox_config = r
            .sandbox_config
            .unwrap_or_else(|| sandbox.metadata.config.clone());
        let meta = config
            .metadata
            .clone()
            .ok_or_else(|| Error::invalid_argument("container config must include metadata"))?;
        let pod_meta = sandbox_config.metadata.clone().unwrap_or_default();
        let name = store::container_name(&meta, &pod_meta);
        let id = ids::generate();
        self.container_names
            .reserve(&name, &id)
            .map_err(|e| e.context(format!("failed to reserve container name {name:?}")))?;
        let mut undo = Undo::default();
        let made = self
            .create_container_record(&id, &name, &sandbox, config, &sandbox_config, &mut undo)
            .await;
        if let Err(err) = made {
            self.undo_container_create(undo).await;
            self.container_names.release(&name);
            return Err(err);
        }
        let kind = ContainerEventType::ContainerCreatedEvent;
        self.container_event(&id, &r.pod_sandbox_id, kind).await;
        Ok(CreateContainerResponse { container_id: id })
    }

    async fn create_container_record(
        &self,
        id: &str,
        name: &str,
        sandbox: &store::Sandbox,
        config: ContainerConfig,
        sandbox_config: &PodSandboxConfig,
        undo: &mut Undo,
    ) -> Result<()> {
        let sandbox_id = sandbox.metadata.id.clone();
        let sandbox_pid = sandbox.status().pid;
        if sandbox_pid == 0 {
            return Err(Error::failed_precondition(format!(
                "sandbox container {sandbox_id:?} is not running"
            )));
        }
        let reference = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let image = self
            .local_image(&reference)
            .await
            .map_err(|e| e.context(format!("failed to resolve image {reference:?}")))?;
        // The record names the image by a name, not its id, if it has one.
        let image_name = image
            .references
            .iter()
            .find(|r| **r != image.id)
            .cloned()
            .unwrap_or_else(|| image.id.clone());
        let sandbox_record = self.client.containers().get(&sandbox_id).await?;
        let (_, handler) = self
            .config
            .runtime_handler(&sandbox.metadata.runtime_handler)?;
        let target_pid = self.target_pid(&sandbox_id, sandbox_pid, &config)?;

        let root_dir = self.container_root_dir(id);
        let state_dir = self.container_state_dir(id);
        for dir in [&root_dir, &state_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::internal(format!("create {}: {e}", dir.display())))?;
            undo.dirs.push(dir.clone());
        }
        let volumes = volumes::volume_mounts(&root_dir, &config.mounts, &image.config.volumes);
        let mut extra = self.container_pod_mounts(&sandbox_id, &config);
        extra.extend(volumes.iter().cloned());

        let (leased, lease) = self.client.with_new_lease(CREATE_LEASE).await?;
        let snapshotter_name = self.config.containerd.snapshotter.clone();
        let built = async {
            let snapshotter = leased.snapshotter(snapshotter_name.clone());
            let parent = image.chain_id.clone().unwrap_or_default();
            let labels = snapshot_labels(&config.annotations);
            let rootfs = snapshotter.prepare(id, &parent, labels).await?;
            undo.snapshot = Some((snapshotter_name.clone(), id.to_string()));
            let oom_score_adj = config
                .linux
                .as_ref()
                .and_then(|l| l.resources.as_ref())
                .map(|r| self.oom_score_adj(r.oom_score_adj));
            let mount_parent = state_dir.clone();
            let spec = with_rootfs(rootfs, mount_parent, |root| {
                let spec = spec::build(&spec::SpecInput {
                    id,
                    sandbox_id: &sandbox_id,
                    sandbox_pid,
                    target_pid,
                    config: &config,
                    sandbox_config,
                    image: &image.config,
                    image_name: &image_name,
                    extra_mounts: &extra,
                    handler,
                    cri: &self.config,
                    oom_score_adj,
                    rootfs: root,
                    unified_cgroups: Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
                })?;
                volumes::copy_up(root, &volumes)?;
                Ok(spec)
            })?;
            let log_path = log_path(sandbox_config, &config);
            let metadata = ContainerMetadata {
                id: id.to_string(),
                name: name.to_string(),
                sandbox_id: sandbox_id.clone(),
                config: config.clone(),
                image_ref: image.id.clone(),
                log_path,
                stop_signal: image.config.stop_signal.clone(),
            };
            let record = Record {
                id: id.to_string(),
                image: image_name.clone(),
                labels: container_labels(&config.labels, &image.spec.config.labels),
                runtime: sandbox_record.runtime.clone(),
                spec: Some(berth_client::spec::to_any(&spec)),
                snapshotter: snapshotter_name.clone(),
                snapshot_key: id.to_string(),
                extensions: HashMap::from([(
                    ContainerMetadata::EXTENSION.to_string(),
                    metadata_any(&metadata)?,
                )]),
                ..Record::default()
            };
            leased.containers().create(record).await?;
            undo.record = Some(id.to_string());
            Ok::<_, Error>(metadata)
        }
        .await;
        let released = self.client.leases().delete(&lease, false).await;
        let metadata = built?;
        released.map_err(|e| e.context(format!("delete lease {lease}")))?;

        let status = ContainerStatus {
            created_at: super::unix_nanos(SystemTime::now()),
            resources: config
                .linux
                .as_ref()
                .and_then(|l| l.resources.clone())
                .map(|linux| ContainerResources {
                    linux: Some(linux),
                    ..ContainerResources::default()
                }),
            ..ContainerStatus::default()
        };
        let container = store::Container::new(metadata, status, &root_dir)?;
        self.containers.add(Arc::new(container))
    }

    /// The pid whose PID namespace the container joins: the pause
    /// process's, or with `TARGET`, the running target container's in the
    /// same pod.
    fn target_pid(&self, sandbox_id: &str, pause: u32, config: &ContainerConfig) -> Result<u32> {
        let options = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref());
        let Some(options) = options.filter(|o| o.pid == NamespaceMode::Target as i32) else {
            return Ok(pause);
        };
        let target = self
            .containers
            .get(&options.target_id)
            .map_err(|e| e.context("invalid target container"))?;
        if target.metadata.sandbox_id != sandbox_id {
            return Err(Error::invalid_argument(format!(
                "invalid target container: container {:?} (sandbox {:?}) does not belong to sandbox {sandbox_id:?}",
                options.target_id, target.metadata.sandbox_id
            )));
        }
        let status = target.status();
        if status.state() != store::ContainerState::Running {
            return Err(Error::failed_precondition(format!(
                "invalid target container: container {:?} is not running",
                options.target_id
            )));
        }
        Ok(status.pid)
    }

    /// The pod's files: `/etc/hostname` (if the pod has one), `/etc/hosts`,
    /// `/etc/resolv.conf` (read-only with a read-only rootfs) and
    /// `/dev/shm` (the host's for host IPC), unless a CRI mount has the
    /// same destination.
    fn container_pod_mounts(&self, sandbox_id: &str, config: &ContainerConfig) -> Vec<Mount> {
        let security = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.clone())
            .unwrap_or_default();
        let readonly = security.readonly_rootfs;
        let root = super::pod_files_dir(&self.options, sandbox_id);
        let bind = |dst: &str, src: PathBuf, readonly: bool| Mount {
            container_path: dst.into(),
            host_path: src.to_string_lossy().into_owned(),
            readonly,
            selinux_relabel: true,
            ..Mount::default()
        };
        let mut out = Vec::new();
        let hostname = root.join("hostname");
        if hostname.exists() {
            out.push(bind("/etc/hostname", hostname, readonly));
        }
        out.push(bind("/etc/hosts", root.join("hosts"), readonly));
        out.push(bind("/etc/resolv.conf", root.join("resolv.conf"), readonly));
        let host_ipc = security
            .namespace_options
            .as_ref()
            .is_some_and(|n| n.ipc == NamespaceMode::Node as i32);
        let shm = if host_ipc {
            PathBuf::from("/dev/shm")
        } else {
            super::pod_shm_parent(&self.options, sandbox_id).join("shm")
        };
        out.push(bind("/dev/shm", shm, false));
        out.retain(|m| !mounts::in_cri_mounts(&m.container_path, &config.mounts));
        out
    }

    async fn undo_container_create(&self, undo: Undo) {
        if let Some(id) = undo.record {
            if let Err(err) = self.client.containers().delete(&id).await {
                tracing::warn!(%id, %err, "undo create: delete container record");
            }
        }
        if let Some((snapshotter, key)) = undo.snapshot {
            if let Err(err) = self.client.snapshots().remove(&snapshotter, &key).await {
                if !err.is_not_found() {
                    tracing::warn!(%key, %err, "undo create: remove snapshot");
                }
            }
        }
        for dir in undo.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Mounts `rootfs` under `parent` for the time `work` runs.
fn with_rootfs<T>(
    rootfs: Vec<berth_core::mount::Mount>,
    parent: PathBuf,
    work: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    let run = move || {
        let mounted = TempMount::new(&rootfs, &parent)?;
        let out = work(mounted.path());
        mounted.unmount()?;
        out
    };
    // The work mounts, reads and copies files: on a multi-threaded
    // runtime (berthd's) other tasks move off this thread meanwhile.
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(run),
        _ => run(),
    }
}

/// The log file: the pod's log directory joined with the config's path;
/// empty (no logs) unless both are set.
fn log_path(sandbox: &PodSandboxConfig, config: &ContainerConfig) -> String {
    if sandbox.log_directory.is_empty() || config.log_path.is_empty() {
        return String::new();
    }
    Path::new(&sandbox.log_directory)
        .join(&config.log_path)
        .to_string_lossy()
        .into_owned()
}

/// containerd's `buildLabels`: the image config's labels (those valid as
/// record labels), the CRI labels over them, and
/// `io.cri-containerd.kind=container`.
fn container_labels<'a>(
    labels: &HashMap<String, String>,
    image_labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = image_labels
        .into_iter()
        .filter(|(k, v)| berth_core::labels::validate(k, v).is_ok())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.insert(KIND_LABEL.into(), "container".into());
    out
}

/// The annotations snapshotters inherit (`containerd.io/snapshot/…`).
fn snapshot_labels(annotations: &HashMap<String, String>) -> HashMap<String, String> {
    annotations
        .iter()
        .filter(|(k, _)| k.starts_with("containerd.io/snapshot/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The metadata as the record extension's `Any`.
pub(super) fn metadata_any(metadata: &ContainerMetadata) -> Result<prost_types::Any> {
    Ok(prost_types::Any {
        type_url: ContainerMetadata::TYPE_URL.to_string(),
        value: serde_json::to_vec(metadata)
            .map_err(|e| Error::internal(format!("encode container metadata: {e}")))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_path_needs_both_parts() {
        let sandbox = PodSandboxConfig {
            log_directory: "/var/log/pods/x".into(),
            ..Default::default()
        };
        let config = ContainerConfig {
            log_path: "app/0.log".into(),
            ..Default::default()
        };
        assert_eq!(log_path(&sandbox, &config), "/var/log/pods/x/app/0.log");
        assert_eq!(log_path(&PodSandboxConfig::default(), &config), "");
        let image = std::collections::BTreeMap::from([
            ("a".to_string(), "image".to_string()),
            ("from-image".to_string(), "1".to_string()),
            ("big".to_string(), "x".repeat(5000)),
        ]);
        let labels = container_labels(&HashMap::from([("a".into(), "cri".into())]), &image);
        assert_eq!(labels[KIND_LABEL], "container");
        assert_eq!(labels["a"], "cri");
        assert_eq!(labels["from-image"], "1");
        assert!(!labels.contains_key("big"));
    }
}
