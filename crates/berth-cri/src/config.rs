//! The CRI plugin's settings: containerd 1.6's `[plugins."io.containerd.grpc.v1.cri"]`
//! section, with its key names and defaults. berthd's config loader fills
//! this from the TOML file; nothing here reads files.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// containerd 1.6's default sandbox (pause) image.
pub const DEFAULT_SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.6";

/// `[plugins."io.containerd.grpc.v1.cri"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CriConfig {
    /// `sandbox_image`: the pause image every pod starts from.
    pub sandbox_image: String,
    /// `stream_server_address`.
    pub stream_server_address: String,
    /// `stream_server_port` ("0": a free port).
    pub stream_server_port: String,
    /// `stream_idle_timeout`: a streaming connection without traffic for
    /// this long is closed ("0": never).
    pub stream_idle_timeout: String,
    /// `enable_tls_streaming`: serve streams over TLS.
    pub enable_tls_streaming: bool,
    /// `[x509_key_pair_streaming] tls_cert_file` (PEM).
    pub tls_cert_file: String,
    /// `[x509_key_pair_streaming] tls_key_file` (PEM).
    pub tls_key_file: String,
    /// `max_container_log_line_size`: longer lines are split into partial
    /// (`P`) lines; negative means no limit.
    pub max_container_log_line_size: i64,
    /// `restrict_oom_score_adj`: a requested OOM score below berthd's own
    /// is raised to it.
    pub restrict_oom_score_adj: bool,
    /// `disable_cgroup`: no cgroup settings in specs (rootless setups).
    pub disable_cgroup: bool,
    /// `disable_apparmor`.
    pub disable_apparmor: bool,
    /// `enable_unprivileged_ports`: pods get
    /// `net.ipv4.ip_unprivileged_port_start=0`.
    pub enable_unprivileged_ports: bool,
    /// `enable_unprivileged_icmp`: pods get `net.ipv4.ping_group_range=0 2147483647`.
    pub enable_unprivileged_icmp: bool,
    /// `[…containerd]`.
    pub containerd: ContainerdConfig,
    /// `[…cni]`.
    pub cni: CniConfig,
    /// `[…registry] config_path`: a directory of `<host>/hosts.toml`.
    pub registry_config_path: Option<PathBuf>,
}

/// `[plugins."io.containerd.grpc.v1.cri".containerd]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerdConfig {
    /// `snapshotter`.
    pub snapshotter: String,
    /// `default_runtime_name`: the handler used when a pod names none.
    pub default_runtime_name: String,
    /// `[…containerd.runtimes.<handler>]`.
    pub runtimes: BTreeMap<String, RuntimeHandler>,
}

/// `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<handler>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeHandler {
    /// `runtime_type`, e.g. `io.containerd.runc.v2`: resolved to a shim
    /// binary as containerd resolves it.
    pub runtime_type: String,
    /// `options`: the shim's options (for runc shims `containerd.runc.v1.Options`:
    /// `BinaryName`, `SystemdCgroup`, …), as JSON.
    pub options: serde_json::Map<String, serde_json::Value>,
    /// `pod_annotations`: pod annotation keys (with `*` globs) passed on
    /// to the shim and the OCI spec.
    pub pod_annotations: Vec<String>,
    /// `container_annotations`: the same for container annotations.
    pub container_annotations: Vec<String>,
    /// `cni_conf_dir`: this handler's own CNI configuration directory.
    pub cni_conf_dir: Option<PathBuf>,
    /// `cni_max_conf_num`.
    pub cni_max_conf_num: i64,
}

/// `[plugins."io.containerd.grpc.v1.cri".cni]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CniConfig {
    /// `bin_dir`.
    pub bin_dir: PathBuf,
    /// `conf_dir`.
    pub conf_dir: PathBuf,
    /// `max_conf_num`: how many network configs a pod is attached to
    /// (0: all of them).
    pub max_conf_num: i64,
    /// `conf_template`: a Go-template-style file that UpdateRuntimeConfig
    /// fills with the pod CIDR into `<conf_dir>/10-containerd-net.conflist`.
    pub conf_template: Option<PathBuf>,
}

impl Default for CriConfig {
    fn default() -> Self {
        CriConfig {
            sandbox_image: DEFAULT_SANDBOX_IMAGE.into(),
            stream_server_address: "127.0.0.1".into(),
            stream_server_port: "0".into(),
            stream_idle_timeout: "4h0m0s".into(),
            enable_tls_streaming: false,
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            max_container_log_line_size: 16 * 1024,
            restrict_oom_score_adj: false,
            disable_cgroup: false,
            disable_apparmor: false,
            enable_unprivileged_ports: false,
            enable_unprivileged_icmp: false,
            containerd: ContainerdConfig::default(),
            cni: CniConfig::default(),
            registry_config_path: None,
        }
    }
}

impl Default for ContainerdConfig {
    fn default() -> Self {
        ContainerdConfig {
            snapshotter: "overlayfs".into(),
            default_runtime_name: "runc".into(),
            runtimes: BTreeMap::from([("runc".to_string(), RuntimeHandler::default())]),
        }
    }
}

impl Default for RuntimeHandler {
    fn default() -> Self {
        RuntimeHandler {
            runtime_type: "io.containerd.runc.v2".into(),
            options: serde_json::Map::new(),
            pod_annotations: Vec::new(),
            container_annotations: Vec::new(),
            cni_conf_dir: None,
            cni_max_conf_num: 0,
        }
    }
}

impl RuntimeHandler {
    /// The runtime options for a container record of this handler: for
    /// runc shims (`io.containerd.runc.v1`/`v2`), `options` as
    /// `containerd.runc.v1.Options`; for other runtime types none, and
    /// the shim runs with its defaults.
    pub fn runtime_options(&self) -> berth_core::Result<Option<prost_types::Any>> {
        match self.runtime_type.as_str() {
            "io.containerd.runc.v1" | "io.containerd.runc.v2" => {
                let options = berth_client::runc_options::RuncOptions::from_config(&self.options)?;
                Ok(Some(options.to_any()))
            }
            _ => Ok(None),
        }
    }
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            bin_dir: "/opt/cni/bin".into(),
            conf_dir: "/etc/cni/net.d".into(),
            max_conf_num: 1,
            conf_template: None,
        }
    }
}

impl CriConfig {
    /// The handler a pod asked for by name; the empty name is
    /// `default_runtime_name`. An unknown name is an error, as in containerd.
    pub fn runtime_handler(&self, name: &str) -> berth_core::Result<(String, &RuntimeHandler)> {
        let name = if name.is_empty() {
            self.containerd.default_runtime_name.as_str()
        } else {
            name
        };
        self.containerd
            .runtimes
            .get(name)
            .map(|h| (name.to_string(), h))
            .ok_or_else(|| {
                berth_core::Error::invalid_argument(format!(
                    "no runtime for {name:?} is configured"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_resolve_by_name_with_the_default_for_none() {
        let config = CriConfig::default();
        let (name, runc) = config.runtime_handler("").expect("the default handler");
        assert_eq!(name, "runc");
        assert_eq!(runc.runtime_type, "io.containerd.runc.v2");
        let err = config.runtime_handler("kata").expect_err("no such handler");
        assert_eq!(err.kind(), berth_core::ErrorKind::InvalidArgument);
    }

    #[test]
    fn runc_handlers_carry_runc_options() {
        let mut handler = RuntimeHandler::default();
        handler
            .options
            .insert("BinaryName".into(), "/usr/bin/crun".into());
        let any = handler
            .runtime_options()
            .expect("valid options")
            .expect("runc options");
        assert_eq!(any.type_url, "containerd.runc.v1.Options");
        handler.runtime_type = "io.containerd.kata.v2".into();
        assert!(handler.runtime_options().expect("no options").is_none());
    }
}
