//! Container networking in the daemon: step 5 of DESIGN.md §1. A container
//! whose record carries the label [`LABEL_NETWORK`] (`cni` or `cni:NAME`,
//! as `berth run --net` and `berth-client`'s `NetworkConfig` set it) gets,
//! at task create, a network namespace of its own with the CNI network
//! attached (`berth-cni`), its published ports, and `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname` written from the result and
//! bind-mounted into the spec. Task delete tears it down; a daemon that
//! starts tears down what a previous one left for containers without a
//! task. The requests travel as labels because containerd's task API has
//! no field for them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_cni::{AttachRequest, Cni, PortMapping};
use berth_core::{Error, Result};
use berth_store::{Container, MetadataStore};
use serde_json::Value;

use super::blocking;

/// `cni` or `cni:NAME`: attach the container to a CNI network.
pub const LABEL_NETWORK: &str = "io.berth.network";
/// Published ports, as a JSON list of portmap's `portMappings`.
pub const LABEL_PORTS: &str = "io.berth.network.ports";
/// Name servers for `/etc/resolv.conf`, comma-separated.
pub const LABEL_DNS: &str = "io.berth.network.dns";
/// Set by berthd once attached: the container's addresses, comma-separated.
pub const LABEL_IP: &str = "io.berth.network.ip";

/// What a container record asks of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRequest {
    /// The CNI network by name; `None` for the configured default.
    pub network: Option<String>,
    /// Ports to publish.
    pub ports: Vec<PortMapping>,
    /// Name servers.
    pub dns: Vec<String>,
}

impl NetworkRequest {
    /// The request in a container's labels; `None` if it asks for none.
    pub fn from_labels(
        labels: &std::collections::HashMap<String, String>,
    ) -> Result<Option<NetworkRequest>> {
        let Some(mode) = labels.get(LABEL_NETWORK) else {
            return Ok(None);
        };
        let network = match mode.as_str() {
            "none" | "host" | "" => return Ok(None),
            "cni" => None,
            other => match other.strip_prefix("cni:") {
                Some(name) if !name.is_empty() => Some(name.to_string()),
                _ => {
                    return Err(Error::invalid_argument(format!(
                        "label {LABEL_NETWORK}={other:?}: want none, host, cni or cni:NAME"
                    )))
                }
            },
        };
        let ports = match labels.get(LABEL_PORTS) {
            Some(text) if !text.is_empty() => serde_json::from_str(text).map_err(|e| {
                Error::invalid_argument(format!("label {LABEL_PORTS}={text:?}: {e}"))
            })?,
            _ => Vec::new(),
        };
        let dns = labels
            .get(LABEL_DNS)
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(NetworkRequest {
            network,
            ports,
            dns,
        }))
    }
}

/// A background teardown, which any number of callers may wait for.
type Detaching = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;

/// The daemon's networking: the CNI engine and the per-container files.
pub struct Networking {
    cni: Arc<Cni>,
    files_dir: PathBuf,
    store: MetadataStore,
    /// Teardowns still running after their task's Delete answered, by
    /// (namespace, id): a new task of the same id waits for its
    /// predecessor's, and the daemon for all of them as it stops.
    detaching: std::sync::Mutex<HashMap<(String, String), Detaching>>,
}

impl Networking {
    /// Networking over `cni`, with per-container files under `files_dir`.
    pub fn new(cni: Cni, files_dir: PathBuf, store: MetadataStore) -> Self {
        Networking {
            cni: Arc::new(cni),
            files_dir,
            store,
            detaching: Default::default(),
        }
    }

    /// Tears the container's network down after its task's Delete has
    /// answered: DEL runs while the namespace still exists (so the bridge
    /// plugin removes the veth and the masquerade rules itself), which is
    /// most of a networked run's cost and nothing the client need wait for.
    /// If the daemon dies first, the next one finds the attachment in the
    /// result cache and tears it down at start ([`Networking::cleanup_orphans`]).
    ///
    /// A teardown of the same container still under way is left to finish
    /// alone (the losing one of two concurrent Deletes asks again), so
    /// [`Networking::wait_detached`] keeps waiting for it.
    pub fn teardown_in_background(self: &Arc<Self>, namespace: &str, id: &str) {
        use futures::FutureExt;
        let key = (namespace.to_string(), id.to_string());
        // One lock from the check to the insert: two callers cannot both
        // start one.
        let mut detaching = self.detaching.lock().unwrap_or_else(|e| e.into_inner());
        detaching.retain(|_, d| d.peek().is_none());
        if detaching.contains_key(&key) {
            return;
        }
        let (this, ns, cid) = (self.clone(), namespace.to_string(), id.to_string());
        let handle = tokio::spawn(async move {
            if let Err(err) = this.teardown(&ns, &cid).await {
                tracing::warn!(namespace = %ns, id = %cid, error = %err, "network teardown");
            }
        });
        let done: Detaching = async move {
            let _ = handle.await;
        }
        .boxed()
        .shared();
        detaching.insert(key, done);
    }

    /// Waits until the background teardowns that `request` could collide
    /// with are over: that of the same container (same namespace path and
    /// cache entry) and, when it publishes ports, every one (a deleted
    /// container's ports are free only once its DEL has run).
    pub async fn wait_detached(&self, namespace: &str, id: &str, publishes_ports: bool) {
        let key = (namespace.to_string(), id.to_string());
        let pending: Vec<Detaching> = self
            .detaching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _)| publishes_ports || **k == key)
            .map(|(_, d)| d.clone())
            .collect();
        futures::future::join_all(pending).await;
    }

    /// Waits for every background teardown: the daemon calls it as it stops.
    pub async fn settle(&self) {
        let pending: Vec<Detaching> = self
            .detaching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, d)| d)
            .collect();
        futures::future::join_all(pending).await;
    }

    /// The engine.
    pub fn cni(&self) -> &Cni {
        &self.cni
    }

    fn files(&self, namespace: &str, id: &str) -> PathBuf {
        self.files_dir.join(namespace).join(id)
    }

    /// Attaches the container and returns its spec rewritten to join the
    /// network namespace and mount the files. On failure nothing is left.
    pub async fn setup(
        &self,
        namespace: &str,
        container: &Container,
        request: &NetworkRequest,
        spec: &[u8],
    ) -> Result<Vec<u8>> {
        let mut spec: Value = serde_json::from_slice(spec)
            .map_err(|e| Error::invalid_argument(format!("container spec: {e}")))?;
        let netns_entry = spec
            .pointer_mut("/linux/namespaces")
            .and_then(Value::as_array_mut)
            .and_then(|list| list.iter_mut().find(|n| n["type"] == "network"));
        let Some(netns_entry) = netns_entry else {
            return Err(Error::invalid_argument(format!(
                "container {:?} shares the host's network namespace and asks for CNI network {}",
                container.id,
                request.network.as_deref().unwrap_or("(default)")
            )));
        };
        // `--dns` also goes to plugins that declare the `dns` capability,
        // in CRI's shape.
        let mut capability_args = serde_json::Map::new();
        if !request.dns.is_empty() {
            capability_args.insert("dns".into(), serde_json::json!({ "servers": request.dns }));
        }
        let attach = AttachRequest {
            namespace: namespace.into(),
            id: container.id.clone(),
            network: request.network.clone(),
            max_networks: 1,
            ports: request.ports.clone(),
            capability_args,
        };
        let attachment = self.cni.attach(&attach).await?;
        netns_entry["path"] = Value::String(attachment.netns.display().to_string());
        let hostname = match spec["hostname"].as_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => {
                let h: String = container.id.chars().take(63).collect();
                spec["hostname"] = Value::String(h.clone());
                h
            }
        };
        let ips = attachment.ips();
        let written = self.write_files(
            namespace,
            &container.id,
            &hostname,
            &ips,
            request,
            &attachment.primary().result,
        );
        let files = match written {
            Ok(files) => files,
            Err(err) => {
                let _ = self.teardown(namespace, &container.id).await;
                return Err(err);
            }
        };
        add_mounts(&mut spec, &files);
        let ip_text = ips
            .iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(",");
        if let Err(err) = self.set_ip_label(namespace, &container.id, &ip_text).await {
            tracing::warn!(id = %container.id, error = %err, "record container IP");
        }
        tracing::info!(namespace, id = %container.id, network = %attachment.primary().network, ip = %ip_text, "network attached");
        serde_json::to_vec(&spec).map_err(|e| Error::internal(e.to_string()))
    }

    fn write_files(
        &self,
        namespace: &str,
        id: &str,
        hostname: &str,
        ips: &[std::net::IpAddr],
        request: &NetworkRequest,
        result: &berth_cni::CniResult,
    ) -> Result<Vec<(PathBuf, &'static str)>> {
        let dir = self.files(namespace, id);
        let io = |e: std::io::Error| Error::unavailable(format!("write {}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let files = [
            (
                "hosts",
                "/etc/hosts",
                berth_cni::files::hosts(hostname, ips),
            ),
            (
                "resolv.conf",
                "/etc/resolv.conf",
                berth_cni::files::resolv_conf(&request.dns, result.dns(), &host_resolv),
            ),
            ("hostname", "/etc/hostname", format!("{hostname}\n")),
        ];
        let mut out = Vec::new();
        for (name, dest, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(io)?;
            out.push((path, dest));
        }
        Ok(out)
    }

    async fn set_ip_label(&self, namespace: &str, id: &str, ips: &str) -> Result<()> {
        let (store, ns, id, ips) = (
            self.store.clone(),
            namespace.to_string(),
            id.to_string(),
            ips.to_string(),
        );
        blocking(move || {
            let mut c = store.get_container(&ns, &id)?;
            c.labels.insert(LABEL_IP.into(), ips);
            store.update_container(&ns, c, &[format!("labels.{LABEL_IP}")])?;
            Ok(())
        })
        .await
    }

    /// Detaches the container and removes its files. Idempotent.
    pub async fn teardown(&self, namespace: &str, id: &str) -> Result<()> {
        let result = self.cni.detach(namespace, id).await;
        let dir = self.files(namespace, id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "remove network files");
            }
        }
        if self
            .store
            .get_container(namespace, id)
            .is_ok_and(|c| c.labels.contains_key(LABEL_IP))
        {
            if let Err(err) = self.set_ip_label(namespace, id, "").await {
                tracing::warn!(id, error = %err, "clear container IP");
            }
        }
        if result.is_ok() {
            tracing::info!(namespace, id, "network detached");
        }
        result
    }

    /// Tears down networks whose container has no task (its shim died with
    /// or after a previous daemon): attachments in the result cache and
    /// namespaces still mounted.
    pub async fn cleanup_orphans(&self, has_task: impl Fn(&str, &str) -> bool) {
        let mut candidates = match self.cni.attached() {
            Ok(list) => list,
            Err(err) => {
                tracing::warn!(error = %err, "read CNI result cache");
                Vec::new()
            }
        };
        candidates.extend(self.cni.mounted_netns());
        candidates.sort();
        candidates.dedup();
        for (ns, id) in candidates {
            if has_task(&ns, &id) {
                continue;
            }
            match self.teardown(&ns, &id).await {
                Ok(()) => tracing::info!(namespace = %ns, %id, "orphaned network removed"),
                Err(err) => tracing::warn!(namespace = %ns, %id, error = %err, "orphaned network"),
            }
        }
    }
}

/// Bind-mounts the files over the image's, unless the spec mounts
/// something there already.
fn add_mounts(spec: &mut Value, files: &[(PathBuf, &'static str)]) {
    if !spec["mounts"].is_array() {
        spec["mounts"] = Value::Array(Vec::new());
    }
    let mounts = spec["mounts"].as_array_mut().expect("made an array above");
    for (source, dest) in files {
        if mounts.iter().any(|m| m["destination"] == *dest) {
            continue;
        }
        mounts.push(mount(source, dest));
    }
}

fn mount(source: &Path, dest: &str) -> Value {
    serde_json::json!({
        "destination": dest,
        "type": "bind",
        "source": source.display().to_string(),
        "options": ["rbind", "rprivate"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn requests_are_read_from_labels() {
        assert_eq!(
            NetworkRequest::from_labels(&labels(&[])).expect("none"),
            None
        );
        assert_eq!(
            NetworkRequest::from_labels(&labels(&[(LABEL_NETWORK, "host")])).expect("host"),
            None
        );
        let req = NetworkRequest::from_labels(&labels(&[
            (LABEL_NETWORK, "cni:mynet"),
            (
                LABEL_PORTS,
                r#"[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]"#,
            ),
            (LABEL_DNS, "192.0.2.1, 192.0.2.2"),
        ]))
        .expect("parse")
        .expect("some");
        assert_eq!(req.network.as_deref(), Some("mynet"));
        assert_eq!(req.ports[0].host_port, 8080);
        assert_eq!(req.dns, ["192.0.2.1", "192.0.2.2"]);
        assert!(NetworkRequest::from_labels(&labels(&[(LABEL_NETWORK, "bogus")])).is_err());
        assert!(NetworkRequest::from_labels(&labels(&[
            (LABEL_NETWORK, "cni"),
            (LABEL_PORTS, "x")
        ]))
        .is_err());
    }

    #[test]
    fn files_are_mounted_unless_the_spec_mounts_there() {
        let mut spec =
            serde_json::json!({"mounts": [{"destination": "/etc/resolv.conf", "source": "/mine"}]});
        add_mounts(
            &mut spec,
            &[
                ("/s/hosts".into(), "/etc/hosts"),
                ("/s/resolv.conf".into(), "/etc/resolv.conf"),
            ],
        );
        let mounts = spec["mounts"].as_array().expect("mounts");
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[1]["destination"], "/etc/hosts");
        assert_eq!(mounts[1]["source"], "/s/hosts");
    }
}
