//! RunPodSandbox, as containerd 1.6 runs a pod: reserve the name, then at
//! once, on one side, create the network namespace (unless the pod uses the
//! host's network) and attach CNI in it, and on the other get the sandbox
//! image, write the pod's files and mount its shm, create the pause
//! container (snapshot and record) and, once the namespace exists, its task
//! and start it; then write the addresses into the record's extension and
//! keep the sandbox. A failure at any step undoes the steps before it, last
//! first, and the error names the step.

use super::files::SandboxFiles;
use super::network::PodAttach;
use super::spec::{self, SandboxSpec, SANDBOX_OOM_SCORE_ADJ};
use crate::image::Image;
use crate::store::{sandbox_name, Sandbox, SandboxMetadata, SandboxState, SandboxStatus};
use crate::Cri;
use berth_client::cio::Io;
use berth_client::pb::services::v1::container::Runtime;
use berth_client::pb::services::v1::Container as Record;
use berth_core::snapshots::Snapshotter;
use berth_core::{Error, Result};
use k8s_cri::v1::{PodSandboxConfig, RunPodSandboxRequest, RunPodSandboxResponse};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The label containerd's CRI puts on its container records.
pub const CONTAINER_KIND_LABEL: &str = "io.cri-containerd.kind";
/// The value of [`CONTAINER_KIND_LABEL`] on a pause container.
pub const CONTAINER_KIND_SANDBOX: &str = "sandbox";

/// How long the lease guarding a new pause snapshot may outlive a crash.
const CREATE_LEASE: Duration = Duration::from_secs(3600);

/// What RunPodSandbox has done so far, to be undone if a later step fails.
#[derive(Debug)]
enum Done {
    /// The name was reserved.
    Name(String),
    /// The pod's files were written and shm mounted.
    Files(SandboxFiles),
    /// The network namespace exists and CNI ADD ran.
    Network(String),
    /// The pause snapshot and container record exist.
    Container(String),
    /// The pause task exists.
    Task(String),
}

impl Cri {
    pub(crate) async fn run_pod_sandbox(
        &self,
        request: RunPodSandboxRequest,
    ) -> Result<RunPodSandboxResponse> {
        let config = request
            .config
            .ok_or_else(|| Error::invalid_argument("sandbox config must be set"))?;
        let metadata = config
            .metadata
            .as_ref()
            .ok_or_else(|| Error::invalid_argument("sandbox config must include metadata"))?;
        let (handler, _) = self.config.runtime_handler(&request.runtime_handler)?;
        let id = crate::ids::generate();
        let name = sandbox_name(metadata);
        let mut done = Vec::new();
        let created = self
            .create_sandbox(&id, &name, &handler, &config, &mut done)
            .await;
        match created {
            Ok(sandbox) => {
                let sandbox = Arc::new(sandbox);
                if let Err(err) = self.sandboxes.add(sandbox.clone()) {
                    return Err(self.undo(err, done).await);
                }
                super::monitor::watch(self.client.clone(), sandbox, self.stopping.subscribe());
                Ok(RunPodSandboxResponse { pod_sandbox_id: id })
            }
            Err(err) => Err(self.undo(err, done).await),
        }
    }

    /// Every step; each one pushed to `done` once it has happened.
    ///
    /// Two branches run at once: the network namespace and then CNI ADD in
    /// it, and the sandbox image, the pod's files and the pause container
    /// (created while the namespace is made; its task created once the
    /// namespace exists, started while CNI ADD still runs: nothing in the
    /// pause process needs the network). The pod is Ready once both are
    /// done.
    async fn create_sandbox(
        &self,
        id: &str,
        name: &str,
        handler_name: &str,
        config: &PodSandboxConfig,
        done: &mut Vec<Done>,
    ) -> Result<Sandbox> {
        self.sandbox_names
            .reserve(name, id)
            .map_err(|e| e.context(format!("failed to reserve sandbox name {name:?}")))?;
        done.push(Done::Name(name.to_string()));

        let network_failed =
            |e: Error| e.context(format!("failed to setup network for sandbox {id:?}"));
        let mut metadata = SandboxMetadata {
            id: id.to_string(),
            name: name.to_string(),
            config: config.clone(),
            runtime_handler: handler_name.to_string(),
            ..SandboxMetadata::default()
        };
        let pod_network = !spec::host_network(config);
        if pod_network {
            self.network.check(handler_name).map_err(network_failed)?;
            metadata.netns_path = self.network.netns_path(id).display().to_string();
            done.push(Done::Network(id.to_string()));
        }
        let files = SandboxFiles::new(&self.options.root, &self.options.state, id);
        done.push(Done::Files(files.clone()));

        let (netns_made, netns_ready) = tokio::sync::oneshot::channel();
        let network = async {
            if !pod_network {
                let _ = netns_made.send(());
                return Ok(None);
            }
            self.network.create_netns(id).await?;
            let _ = netns_made.send(());
            self.setup_network(&metadata).await.map(Some)
        };
        let mut started = Vec::new();
        let pause = async {
            let (image, made) = tokio::join!(self.sandbox_image(), files.create(config));
            let image = image.map_err(|e| {
                e.context(format!(
                    "failed to get sandbox image {:?}",
                    self.config.sandbox_image
                ))
            })?;
            made.map_err(|e| e.context("failed to setup sandbox files"))?;
            let netns = async {
                netns_ready
                    .await
                    .map_err(|_| Error::unavailable("the pod's network namespace was not created"))
            };
            self.start_pause(&metadata, &image, &files, netns, &mut started)
                .await
        };
        let (network, pause) = tokio::join!(network, pause);
        done.extend(started);
        // The network's error first: without a namespace the pause
        // container fails only because of it.
        let network = network.map_err(network_failed)?;
        let (record, pid) = pause?;
        if let Some(addresses) = network {
            metadata.netns_path = addresses.netns_path;
            metadata.ip = addresses.ip;
            metadata.additional_ips = addresses.additional_ips;
            metadata.cni_result = addresses.cni_result;
            self.update_metadata(record.clone(), &metadata)
                .await
                .map_err(|e| {
                    e.context(format!(
                        "failed to update the network namespace for the sandbox container {id:?}"
                    ))
                })?;
        }

        let created_at = record
            .created_at
            .as_ref()
            .map(|t| berth_client::time::from_timestamp(Some(t)))
            .unwrap_or_else(SystemTime::now);
        Ok(Sandbox::new(
            metadata,
            SandboxStatus {
                pid,
                created_at: nanos(created_at),
                state: SandboxState::Ready,
            },
        ))
    }

    /// The pause container (snapshot and record) and, once `netns` says
    /// the pod's namespace exists, its task, started; each step pushed to
    /// `done` once it has happened.
    async fn start_pause(
        &self,
        metadata: &SandboxMetadata,
        image: &Image,
        files: &SandboxFiles,
        netns: impl std::future::Future<Output = Result<()>>,
        done: &mut Vec<Done>,
    ) -> Result<(Record, u32)> {
        let id = metadata.id.as_str();
        let record = self.create_pause_container(metadata, image, files).await?;
        done.push(Done::Container(id.to_string()));
        netns.await?;
        let container = self.client.load_container(id).await?;
        let task = container
            .new_task(Io::null())
            .await
            .map_err(|e| e.context("failed to create containerd task"))?;
        done.push(Done::Task(id.to_string()));
        let pid = task
            .start()
            .await
            .map_err(|e| e.context(format!("failed to start sandbox container task {id:?}")))?;
        Ok((record, pid))
    }

    /// Writes `metadata` (now with the pod's addresses) into the record's
    /// extension, as containerd updates it after the network is set up.
    async fn update_metadata(&self, mut record: Record, metadata: &SandboxMetadata) -> Result<()> {
        record.extensions.insert(
            SandboxMetadata::EXTENSION.to_string(),
            metadata_extension(metadata)?,
        );
        let path = format!("extensions.{}", SandboxMetadata::EXTENSION);
        self.client.containers().update(record, &[path]).await?;
        Ok(())
    }

    /// CNI ADD in the pod's network namespace: its addresses.
    async fn setup_network(&self, metadata: &SandboxMetadata) -> Result<Addresses> {
        let config = &metadata.config;
        let meta = config.metadata.clone().unwrap_or_default();
        let attach = PodAttach {
            id: metadata.id.clone(),
            handler: metadata.runtime_handler.clone(),
            pod_namespace: meta.namespace,
            pod_name: meta.name,
            pod_uid: meta.uid,
            ports: port_mappings(config)?,
        };
        let attachment = self.network.attach(&attach).await?;
        let mut ips = attachment.ips().into_iter().map(|ip| ip.to_string());
        Ok(Addresses {
            netns_path: attachment.netns.display().to_string(),
            ip: ips.next().unwrap_or_default(),
            additional_ips: ips.collect(),
            cni_result: Some(attachment.summary()),
        })
    }

    /// The pause container's snapshot (on the image's chain ID) and record,
    /// made under a lease so garbage collection cannot take the snapshot
    /// before the record holds it.
    async fn create_pause_container(
        &self,
        metadata: &SandboxMetadata,
        image: &Image,
        files: &SandboxFiles,
    ) -> Result<Record> {
        let id = metadata.id.as_str();
        let config = &metadata.config;
        let (_, handler) = self.config.runtime_handler(&metadata.runtime_handler)?;
        let image_name = image
            .references
            .first()
            .cloned()
            .unwrap_or_else(|| self.config.sandbox_image.clone());
        let spec = SandboxSpec {
            id,
            config,
            image,
            image_name: &image_name,
            netns_path: &metadata.netns_path,
            shm_path: &files.shm_for(config),
            resolv_path: &files.resolv_conf(),
            handler,
            cri: &self.config,
            oom_score_adj: self.oom_score_adj(SANDBOX_OOM_SCORE_ADJ),
        }
        .build()
        .map_err(|e| e.context("failed to generate sandbox container spec"))?;
        let options = handler
            .runtime_options()
            .map_err(|e| e.context("failed to generate runtime options"))?;
        let mut labels: HashMap<String, String> = config.labels.clone();
        labels.insert(CONTAINER_KIND_LABEL.into(), CONTAINER_KIND_SANDBOX.into());
        let extension = metadata_extension(metadata)?;
        let snapshotter = self.config.containerd.snapshotter.clone();
        let record = Record {
            id: id.to_string(),
            labels,
            image: image_name,
            runtime: Some(Runtime {
                name: handler.runtime_type.clone(),
                options,
            }),
            spec: Some(berth_client::spec::to_any(&spec)),
            snapshotter: snapshotter.clone(),
            snapshot_key: id.to_string(),
            extensions: HashMap::from([(SandboxMetadata::EXTENSION.to_string(), extension)]),
            ..Record::default()
        };
        let snapshot_labels = inherited_snapshot_labels(&config.annotations);
        let parent = image.chain_id.clone().unwrap_or_default();

        let (leased, lease) = self.client.with_new_lease(CREATE_LEASE).await?;
        let created = async {
            let remote = leased.snapshotter(snapshotter.clone());
            remote
                .prepare(id, &parent, snapshot_labels)
                .await
                .map_err(|e| {
                    e.context(format!("failed to prepare snapshot {id:?} on {parent:?}"))
                })?;
            match leased.containers().create(record).await {
                Ok(record) => Ok(record),
                Err(err) => {
                    let _ = remote.remove(id).await;
                    Err(err)
                }
            }
        }
        .await;
        let released = self.client.leases().delete(&lease, false).await;
        let record = created.map_err(|e| e.context("failed to create containerd container"))?;
        if let Err(e) = released {
            tracing::warn!(lease, error = %e, "delete the pause container's lease");
        }
        Ok(record)
    }

    /// Undoes `done`, last first; `err` with any cleanup failures added.
    async fn undo(&self, err: Error, done: Vec<Done>) -> Error {
        let mut cleanup = Vec::new();
        for step in done.into_iter().rev() {
            let result = match step {
                Done::Task(id) => self.kill_and_delete_task(&id).await,
                Done::Container(id) => self.delete_record_and_snapshot(&id).await,
                Done::Network(id) => self.network.detach(&id).await,
                Done::Files(files) => files.remove().await,
                Done::Name(name) => {
                    self.sandbox_names.release(&name);
                    Ok(())
                }
            };
            if let Err(e) = result {
                cleanup.push(e.message().to_string());
            }
        }
        if cleanup.is_empty() {
            err
        } else {
            let message = format!(
                "{} (and cleaning up failed: {})",
                err.message(),
                cleanup.join("; ")
            );
            Error::new(err.kind(), message)
        }
    }
}

/// What CNI gave a pod.
#[derive(Debug)]
struct Addresses {
    netns_path: String,
    ip: String,
    additional_ips: Vec<String>,
    cni_result: Option<serde_json::Value>,
}

/// The record extension holding `metadata`.
fn metadata_extension(metadata: &SandboxMetadata) -> Result<prost_types::Any> {
    Ok(prost_types::Any {
        type_url: SandboxMetadata::TYPE_URL.into(),
        value: serde_json::to_vec(metadata).map_err(|e| Error::internal(e.to_string()))?,
    })
}

/// The pod's port mappings as CNI's `portMappings` (mappings without a
/// host port are skipped, as containerd skips them).
fn port_mappings(config: &PodSandboxConfig) -> Result<Vec<berth_cni::PortMapping>> {
    let mut out = Vec::new();
    for pm in &config.port_mappings {
        if pm.host_port <= 0 {
            continue;
        }
        let protocol = match k8s_cri::v1::Protocol::try_from(pm.protocol) {
            Ok(k8s_cri::v1::Protocol::Tcp) => "tcp",
            Ok(k8s_cri::v1::Protocol::Udp) => "udp",
            Ok(k8s_cri::v1::Protocol::Sctp) => "sctp",
            Err(_) => {
                return Err(Error::invalid_argument(format!(
                    "unknown protocol {} in port mapping",
                    pm.protocol
                )))
            }
        };
        let port = |p: i32, what: &str| {
            u16::try_from(p)
                .map_err(|_| Error::invalid_argument(format!("{what} port {p} out of range")))
        };
        out.push(berth_cni::PortMapping {
            host_port: port(pm.host_port, "host")?,
            container_port: port(pm.container_port, "container")?,
            protocol: protocol.into(),
            host_ip: pm.host_ip.clone(),
        });
    }
    Ok(out)
}

/// containerd's `snapshots.FilterInheritedLabels`: the pod annotations
/// prefixed `containerd.io/snapshot/` label the pause snapshot.
fn inherited_snapshot_labels(annotations: &HashMap<String, String>) -> HashMap<String, String> {
    annotations
        .iter()
        .filter(|(k, _)| k.starts_with("containerd.io/snapshot/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Nanoseconds since the epoch.
pub(crate) fn nanos(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::PortMapping;

    #[test]
    fn port_mappings_become_cni_port_mappings() {
        let config = PodSandboxConfig {
            port_mappings: vec![
                PortMapping {
                    protocol: k8s_cri::v1::Protocol::Udp as i32,
                    container_port: 53,
                    host_port: 5353,
                    host_ip: "127.0.0.1".into(),
                },
                PortMapping {
                    protocol: 0,
                    container_port: 80,
                    host_port: 0,
                    host_ip: String::new(),
                },
            ],
            ..PodSandboxConfig::default()
        };
        let ports = port_mappings(&config).expect("test step");
        assert_eq!(ports.len(), 1);
        assert_eq!(
            (
                ports[0].host_port,
                ports[0].container_port,
                ports[0].protocol.as_str()
            ),
            (5353, 53, "udp")
        );
        assert_eq!(ports[0].host_ip, "127.0.0.1");
    }

    #[test]
    fn only_snapshot_annotations_label_the_snapshot() {
        let labels = inherited_snapshot_labels(&HashMap::from([
            ("containerd.io/snapshot/x".to_string(), "1".to_string()),
            ("other".to_string(), "2".to_string()),
        ]));
        assert_eq!(labels.len(), 1);
    }
}
