//! Pod networks: a network namespace per pod and the CNI network of the
//! pod's runtime handler attached in it, through `berth-cni`.
//!
//! As containerd's CRI keeps one CNI instance for `[cni]` and one per
//! runtime handler that sets `cni_conf_dir`, [`PodNetworks`] keeps one
//! `berth-cni` engine per configuration directory. All of them share the
//! result cache and the netns directory, so a pod is detached by whichever
//! engine: DEL runs with the configuration cached at ADD.

use crate::{CriOptions, NAMESPACE};
use berth_cni::{AttachRequest, Attachment, Cni, CniOptions, PortMapping};
use berth_core::{Error, ErrorKind, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The CNI engines: the plugin's own (`[…cni]`) and one per runtime
/// handler that has its own `cni_conf_dir`.
#[derive(Debug)]
pub struct PodNetworks {
    default: Engine,
    handlers: BTreeMap<String, Engine>,
}

/// One configuration directory's engine, and how many of its networks a
/// pod is attached to (`max_conf_num`, or the handler's
/// `cni_max_conf_num`: 0 or less for all, as go-cni counts).
#[derive(Debug)]
struct Engine {
    cni: Arc<Cni>,
    max_networks: usize,
}

/// What a pod asks of the network.
#[derive(Debug, Clone, Default)]
pub struct PodAttach {
    /// The sandbox id.
    pub id: String,
    /// The runtime handler (its CNI configuration directory, if it has one).
    pub handler: String,
    /// The pod's Kubernetes namespace, name and uid.
    pub pod_namespace: String,
    /// See [`PodAttach::pod_namespace`].
    pub pod_name: String,
    /// See [`PodAttach::pod_namespace`].
    pub pod_uid: String,
    /// Host ports to map (the `portMappings` capability).
    pub ports: Vec<PortMapping>,
}

impl PodNetworks {
    /// The engines for `options`.
    pub fn new(options: &CriOptions) -> Self {
        let engine = |conf_dir: &Path, max_conf_num: i64| Engine {
            cni: Arc::new(Cni::new(CniOptions {
                bin_dirs: vec![options.config.cni.bin_dir.clone()],
                conf_dir: conf_dir.to_path_buf(),
                cache_dir: options.cni_cache_dir.clone(),
                netns_dir: options.netns_dir.clone(),
                ..CniOptions::default()
            })),
            max_networks: usize::try_from(max_conf_num).unwrap_or(0),
        };
        let handlers = options
            .config
            .containerd
            .runtimes
            .iter()
            .filter_map(|(name, h)| {
                let dir = h.cni_conf_dir.as_deref()?;
                Some((name.clone(), engine(dir, h.cni_max_conf_num)))
            })
            .collect();
        let cni = &options.config.cni;
        PodNetworks {
            default: engine(&cni.conf_dir, cni.max_conf_num),
            handlers,
        }
    }

    /// The engine of runtime handler `handler`.
    fn engine(&self, handler: &str) -> &Engine {
        self.handlers.get(handler).unwrap_or(&self.default)
    }

    /// Whether the default CNI configuration directory holds a network
    /// configuration (NetworkReady).
    pub fn ready(&self) -> std::result::Result<(), String> {
        network_name(self.default.cni.options().conf_dir.as_path())
            .map(|_| ())
            .map_err(|e| e.message().to_string())
    }

    /// Whether runtime handler `handler` has a network configured
    /// (containerd's "cni plugin not initialized" error if not).
    pub fn check(&self, handler: &str) -> Result<()> {
        network_name(&self.engine(handler).cni.options().conf_dir).map(|_| ())
    }

    /// Where [`PodNetworks::create_netns`] puts pod `id`'s network namespace.
    pub fn netns_path(&self, id: &str) -> std::path::PathBuf {
        self.default.cni.netns_path(NAMESPACE, id)
    }

    /// Creates the pod's network namespace (for [`PodNetworks::attach`]);
    /// its path.
    pub async fn create_netns(&self, id: &str) -> Result<std::path::PathBuf> {
        // Unshare and bind-mount block; keep them off the async runtime.
        let (engine, id) = (self.default.cni.clone(), id.to_string());
        tokio::task::spawn_blocking(move || engine.create_netns(NAMESPACE, &id))
            .await
            .map_err(|e| Error::internal(format!("create netns: {e}")))?
    }

    /// Attaches the handler's networks in the pod's network namespace
    /// (made by [`PodNetworks::create_netns`]), with containerd's
    /// `CNI_ARGS`: the first `max_conf_num` of its configuration directory,
    /// as `eth0`, `eth1`, …. On failure nothing is left, the namespace
    /// included (the error names the failing plugin and its message).
    pub async fn attach(&self, pod: &PodAttach) -> Result<Attachment> {
        let Engine { cni, max_networks } = self.engine(&pod.handler);
        if let Err(err) = network_name(&cni.options().conf_dir) {
            let _ = berth_cni::netns::remove(&cni.netns_path(NAMESPACE, &pod.id));
            return Err(err);
        }
        let request = AttachRequest {
            namespace: NAMESPACE.into(),
            id: pod.id.clone(),
            network: None,
            max_networks: *max_networks,
            ports: pod.ports.clone(),
            capability_args: Default::default(),
        };
        let args = [
            ("K8S_POD_NAMESPACE", pod.pod_namespace.as_str()),
            ("K8S_POD_NAME", pod.pod_name.as_str()),
            ("K8S_POD_INFRA_CONTAINER_ID", pod.id.as_str()),
            ("K8S_POD_UID", pod.pod_uid.as_str()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        cni.attach_prepared(&request, &args).await
    }

    /// CNI DEL of everything the pod is attached to, then its namespace
    /// goes. Idempotent.
    pub async fn detach(&self, id: &str) -> Result<()> {
        self.default.cni.detach(NAMESPACE, id).await
    }
}

/// The name of the network `conf_dir` configures (its first valid one);
/// containerd's "not initialized" error when it has none.
fn network_name(conf_dir: &Path) -> Result<String> {
    match berth_cni::config::load_dir(conf_dir, None) {
        Ok(Some(list)) => Ok(list.name),
        Ok(None) => Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!(
                "cni config load failed: no network config found in {}: cni plugin not initialized",
                conf_dir.display()
            ),
        )),
        Err(e) => Err(e.context(format!(
            "cni config load failed in {}: cni plugin not initialized",
            conf_dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> CriOptions {
        let mut config = crate::CriConfig::default();
        config.cni.conf_dir = dir.join("net.d");
        let mut handler = config.containerd.runtimes["runc"].clone();
        handler.cni_conf_dir = Some(dir.join("other.d"));
        config.containerd.runtimes.insert("other".into(), handler);
        CriOptions {
            config,
            address: dir.join("sock"),
            root: dir.join("root"),
            state: dir.join("state"),
            netns_dir: dir.join("netns"),
            cni_cache_dir: dir.join("cache"),
        }
    }

    #[test]
    fn each_handler_with_a_conf_dir_has_its_engine() {
        let dir = tempfile::tempdir().expect("test step");
        let networks = PodNetworks::new(&options(dir.path()));
        let runc = networks.engine("runc");
        assert_eq!(runc.cni.options().conf_dir, dir.path().join("net.d"));
        assert_eq!(runc.max_networks, 1);
        let other = networks.engine("other");
        assert_eq!(other.cni.options().conf_dir, dir.path().join("other.d"));
        assert_eq!(other.max_networks, 0, "a handler's 0: all networks");
        assert_eq!(
            networks.default.cni.netns_path(NAMESPACE, "abc"),
            dir.path().join("netns").join(NAMESPACE).join("abc")
        );
    }

    #[test]
    fn no_config_is_not_ready_with_containerds_words() {
        let dir = tempfile::tempdir().expect("test step");
        let networks = PodNetworks::new(&options(dir.path()));
        let err = networks.ready().expect_err("should fail");
        assert!(err.contains("cni plugin not initialized"), "{err}");
        std::fs::create_dir_all(dir.path().join("net.d")).expect("test step");
        std::fs::write(
            dir.path().join("net.d/10-a.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"loopback"}]}"#,
        )
        .expect("test step");
        networks.ready().expect("test step");
        assert_eq!(
            network_name(&dir.path().join("net.d")).expect("test step"),
            "a"
        );
    }
}
