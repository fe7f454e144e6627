//! berthd's configuration file (TOML).
//!
//! Every key has a default, so an empty or missing file is a valid config.
//! Unknown keys are an error that names the key, so a typo never silently
//! falls back to a default. Command-line flags override the file.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The default API socket.
pub const DEFAULT_ADDRESS: &str = "/run/berth/berth.sock";
/// The default persistent root.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";
/// The default state directory (tmpfs in production).
pub const DEFAULT_STATE: &str = "/run/berth";
/// The default config file; absent is fine.
pub const DEFAULT_CONFIG: &str = "/etc/berth/config.toml";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Config schema version (containerd uses 2 for 1.x and 3 for 2.x).
    pub version: u32,
    /// Persistent data: metadata database, content, snapshots.
    pub root: PathBuf,
    /// Ephemeral state: sockets, task bundles.
    pub state: PathBuf,
    /// The gRPC API listener.
    pub grpc: GrpcConfig,
    /// Logging.
    pub debug: DebugConfig,
    /// Plugins (by `type.id` or id) not to load.
    pub disabled_plugins: Vec<String>,
    /// Plugins (by `type.id`) whose failure must stop the daemon.
    pub required_plugins: Vec<String>,
    /// Task runtimes (runtime v2 shims).
    pub runtime: RuntimeConfig,
    /// CNI networking for containers that ask for it.
    pub cni: CniConfig,
}

/// CNI networking (`berth run --net cni`).
///
/// ```toml
/// [cni]
/// bin_dirs = ["/usr/lib/cni"]
/// conf_dir = "/etc/cni/net.d"
/// [cni.default_network]
/// bridge = "berth0"
/// subnet = "10.88.0.0/16"
/// subnet6 = "fd88::/64"
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CniConfig {
    /// Plugin directories, searched in order.
    pub bin_dirs: Vec<PathBuf>,
    /// The network configuration directory.
    pub conf_dir: PathBuf,
    /// The result cache (libcni's `results/` goes inside); `<state>/cni`
    /// if unset.
    pub cache_dir: Option<PathBuf>,
    /// The longest one plugin call may take, in seconds.
    pub timeout_secs: u64,
    /// The network used when `conf_dir` holds none.
    pub default_network: DefaultNetworkConfig,
}

/// The default network: a bridge with host-local IPAM, portmap, firewall.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultNetworkConfig {
    /// The network's name.
    pub name: String,
    /// The bridge device.
    pub bridge: String,
    /// The IPv4 subnet.
    pub subnet: String,
    /// An IPv6 subnet; IPv6 is on when set.
    pub subnet6: Option<String>,
    /// host-local's lease directory; `<state>/cni/networks` if unset (the
    /// leases go with the namespaces when the machine reboots).
    pub ipam_data_dir: Option<PathBuf>,
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            conf_dir: "/etc/cni/net.d".into(),
            cache_dir: None,
            timeout_secs: 30,
            default_network: DefaultNetworkConfig::default(),
        }
    }
}

impl Default for DefaultNetworkConfig {
    fn default() -> Self {
        DefaultNetworkConfig {
            name: "berth".into(),
            bridge: "berth0".into(),
            subnet: "10.88.0.0/16".into(),
            subnet6: None,
            ipam_data_dir: None,
        }
    }
}

/// Task runtimes: which shim binary serves a runtime name.
///
/// ```toml
/// [runtime.shims]
/// "io.containerd.runc.v2" = "/usr/bin/containerd-shim-runc-v2"
/// ```
///
/// Names not listed resolve as containerd resolves them; `io.containerd.runc.v2`
/// defaults to berth's own `containerd-shim-berth-v2` next to berthd.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Shim binaries by runtime name.
    pub shims: std::collections::BTreeMap<String, PathBuf>,
}

/// The gRPC API listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// The unix socket path.
    pub address: PathBuf,
    /// The socket's owner uid.
    pub uid: u32,
    /// The socket's owner gid.
    pub gid: u32,
    /// Largest message accepted, in bytes.
    pub max_recv_message_size: usize,
    /// Largest message sent, in bytes.
    pub max_send_message_size: usize,
}

/// Logging.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DebugConfig {
    /// The log level: trace, debug, info, warn, error.
    pub level: String,
    /// The log format: `text` or `json`.
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: 2,
            root: DEFAULT_ROOT.into(),
            state: DEFAULT_STATE.into(),
            grpc: GrpcConfig::default(),
            debug: DebugConfig::default(),
            disabled_plugins: Vec::new(),
            required_plugins: Vec::new(),
            runtime: RuntimeConfig::default(),
            cni: CniConfig::default(),
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        // containerd's defaults: 16 MiB each way.
        GrpcConfig {
            address: DEFAULT_ADDRESS.into(),
            uid: 0,
            gid: 0,
            max_recv_message_size: 16 << 20,
            max_send_message_size: 16 << 20,
        }
    }
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

impl Config {
    /// Parses a config from TOML text.
    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Loads `path`; a missing file is the default config only when
    /// `must_exist` is false (the default path), never for an explicit one.
    pub fn load(path: &Path, must_exist: bool) -> Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Config::parse(&text).with_context(|| format!("config file {}", path.display()))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                Ok(Config::default())
            }
            Err(err) => Err(err).with_context(|| format!("read config file {}", path.display())),
        }
    }

    fn validate(&self) -> Result<()> {
        if !matches!(self.debug.format.as_str(), "text" | "json") {
            anyhow::bail!(
                "debug.format must be \"text\" or \"json\", not {:?}",
                self.debug.format
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::parse("").expect("parse"), Config::default());
    }

    #[test]
    fn keys_override_defaults() {
        let config = Config::parse(
            "root = \"/r\"\n[grpc]\naddress = \"/s.sock\"\n[debug]\nformat = \"json\"\n",
        )
        .expect("parse");
        assert_eq!(config.root, PathBuf::from("/r"));
        assert_eq!(config.grpc.address, PathBuf::from("/s.sock"));
        assert_eq!(config.grpc.uid, 0);
        assert_eq!(config.debug.format, "json");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = Config::parse("[grpc]\nadress = \"/x\"\n").expect_err("unknown key");
        assert!(format!("{err:#}").contains("adress"), "{err:#}");
    }

    #[test]
    fn runtime_shims_are_configurable() {
        let config = Config::parse(
            "[runtime.shims]\n\"io.containerd.runc.v2\" = \"/usr/bin/containerd-shim-runc-v2\"\n",
        )
        .expect("parse");
        assert_eq!(
            config.runtime.shims["io.containerd.runc.v2"],
            PathBuf::from("/usr/bin/containerd-shim-runc-v2")
        );
    }

    #[test]
    fn cni_is_configurable() {
        let config = Config::parse(
            "[cni]\nconf_dir = \"/c\"\n[cni.default_network]\nbridge = \"b1\"\nsubnet6 = \"fd00::/64\"\n",
        )
        .expect("parse");
        assert_eq!(config.cni.conf_dir, PathBuf::from("/c"));
        assert_eq!(config.cni.default_network.bridge, "b1");
        assert_eq!(config.cni.default_network.subnet, "10.88.0.0/16");
        assert_eq!(
            config.cni.default_network.subnet6.as_deref(),
            Some("fd00::/64")
        );
    }

    #[test]
    fn bad_format_is_rejected() {
        assert!(Config::parse("[debug]\nformat = \"xml\"\n").is_err());
    }
}
