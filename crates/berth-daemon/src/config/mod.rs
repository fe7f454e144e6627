//! berthd's configuration: containerd's own `config.toml`.
//!
//! The same file that configures containerd 1.x (`version = 2`) or 2.x
//! (`version = 3`) configures berthd. Every key has a default, so an empty
//! or missing file is a valid config. Reading it:
//!
//! 1. [`source`] reads the file and its `imports` and merges them as
//!    containerd does, keeping for every key the file and line it came from;
//! 2. [`plugins`] takes the `[plugins."<type>.<id>"]` sections of the
//!    plugins berth has, and [`containerd`] the top-level keys, into the
//!    typed [`Config`]; a bad value there is an error naming file, line and key;
//! 3. whatever is left — sections of plugins berth does not have, keys
//!    berth does not act on — becomes a [`Warning`] naming file, line and key.
//!
//! Command-line flags override the file (`main.rs`). [`render`] prints a
//! config back in containerd's format (`berthd config default|dump`).

pub mod containerd;
pub mod cri;
pub mod keys;
pub mod plugins;
pub mod render;
pub mod source;

pub use keys::Warning;
pub use plugins::{
    CniConfig, DefaultNetworkConfig, OptConfig, PluginConfigs, SnapshotterConfig, TaskConfig,
};

use anyhow::Result;
use std::path::{Path, PathBuf};

/// The default API socket.
pub const DEFAULT_ADDRESS: &str = "/run/berth/berth.sock";
/// The default persistent root.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";
/// The default state directory (tmpfs in production).
pub const DEFAULT_STATE: &str = "/run/berth";
/// The default config file; absent is fine.
pub const DEFAULT_CONFIG: &str = "/etc/berth/config.toml";

/// The effective configuration: what berth acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file format: 1, 2 (containerd 1.x) or 3 (containerd 2.x).
    pub version: i64,
    /// Persistent data: metadata database, content, snapshots.
    pub root: PathBuf,
    /// Ephemeral state: sockets, task bundles.
    pub state: PathBuf,
    /// `TMPDIR` for berthd and what it starts, if set.
    pub temp: Option<PathBuf>,
    /// berthd's own `oom_score_adj` (0: leave it).
    pub oom_score: i32,
    /// The file [`Config::load`] read, if one was (the default path may
    /// be absent).
    pub file: Option<PathBuf>,
    /// The files imported by the main one, in the order they were read.
    pub imports: Vec<PathBuf>,
    /// The gRPC API listener.
    pub grpc: GrpcConfig,
    /// The ttrpc listener shims publish events to.
    pub ttrpc: TtrpcConfig,
    /// Logging.
    pub debug: DebugConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// Plugins (by `type.id`, or by id in version 1) not to load.
    pub disabled_plugins: Vec<String>,
    /// Plugins (by `type.id`) whose failure must stop the daemon.
    pub required_plugins: Vec<String>,
    /// The settings of berth's plugins.
    pub plugins: PluginConfigs,
}

/// The gRPC API listener.
#[derive(Debug, Clone, PartialEq)]
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

/// The ttrpc listener.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TtrpcConfig {
    /// The unix socket path; unset is `<grpc address>.ttrpc`, as in containerd.
    pub address: Option<PathBuf>,
}

/// Logging.
#[derive(Debug, Clone, PartialEq)]
pub struct DebugConfig {
    /// The log level: trace, debug, info, warn, error.
    pub level: String,
    /// The log format: `text` or `json`.
    pub format: String,
}

/// The Prometheus endpoint (`[metrics]`), as in containerd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsConfig {
    /// `host:port` to serve `GET /v1/metrics` on; empty: no endpoint.
    pub address: String,
    /// Whether to keep the `grpc_server_handling_seconds` histogram.
    pub grpc_histogram: bool,
}

/// A config as read, with what berth ignored in it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// Sections and keys berth read but does not act on.
    pub warnings: Vec<Warning>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: 2,
            root: DEFAULT_ROOT.into(),
            state: DEFAULT_STATE.into(),
            temp: None,
            oom_score: 0,
            file: None,
            imports: Vec::new(),
            grpc: GrpcConfig::default(),
            ttrpc: TtrpcConfig::default(),
            debug: DebugConfig::default(),
            metrics: MetricsConfig::default(),
            disabled_plugins: Vec::new(),
            required_plugins: Vec::new(),
            plugins: PluginConfigs::default(),
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
    /// Loads `path` and its imports; a missing file is the default config
    /// only when `must_exist` is false (the default path), never for an
    /// explicit one.
    pub fn load(path: &Path, must_exist: bool) -> Result<Loaded> {
        if !must_exist && !path.exists() {
            return Ok(Loaded {
                config: Config::default(),
                warnings: Vec::new(),
            });
        }
        let mut loaded = decode(source::load(path)?)?;
        loaded.config.file = Some(path.to_path_buf());
        Ok(loaded)
    }

    /// Parses one file's text, as if read from `file` (imports are not followed).
    pub fn parse(text: &str, file: &Path) -> Result<Loaded> {
        let mut doc = source::parse(text, file)?;
        doc.entries.remove(&vec!["imports".to_string()]);
        decode(source::Merged {
            doc,
            files: vec![file.to_path_buf()],
        })
    }

    /// The ttrpc socket shims publish to.
    pub fn ttrpc_address(&self) -> PathBuf {
        self.ttrpc
            .address
            .clone()
            .unwrap_or_else(|| crate::shim_events::ttrpc_address(&self.grpc.address))
    }
}

/// The `type.id` of every plugin berth has.
fn known_plugins() -> Vec<String> {
    crate::builtins::registrations()
        .iter()
        .map(|r| r.uri())
        .collect()
}

fn decode(merged: source::Merged) -> Result<Loaded> {
    let mut doc = merged.doc;
    let mut warnings = Vec::new();
    let version = source::check_version(&doc)?;
    let main = merged.files.first().cloned().unwrap_or_default();
    if version == 1 && !(doc.entries.is_empty() && doc.tables.is_empty()) {
        warnings.push(Warning {
            origin: keys::file_origin(&main),
            key: "version".into(),
            message: "not set: read as version 1 (plugin sections by id); write version = 2 (containerd 1.x) or 3 (2.x)".into(),
        });
    }
    let mut config = Config {
        plugins: plugins::decode(&mut doc, version, &known_plugins(), &mut warnings)?,
        ..Config::default()
    };
    containerd::decode(&mut doc, &mut config, &mut warnings)?;
    containerd::warn_leftovers(&mut doc, &mut warnings);
    config.version = version.max(2);
    config.imports = merged.files.into_iter().skip(1).collect();
    Ok(Loaded { config, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Loaded> {
        Config::parse(text, Path::new("/etc/containerd/config.toml"))
    }

    #[test]
    fn empty_file_is_the_default() {
        let loaded = parse("").expect("parse");
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn keys_override_defaults_and_zero_means_default() {
        let loaded = parse(
            "version = 2\nroot = \"/r\"\nstate = \"\"\noom_score = -5\n[grpc]\naddress = \"/s.sock\"\n\
             max_recv_message_size = 0\n[ttrpc]\naddress = \"/t.sock\"\n[debug]\nformat = \"json\"\nlevel = \"\"\n",
        )
        .expect("parse");
        let config = loaded.config;
        assert_eq!(config.root, PathBuf::from("/r"));
        assert_eq!(config.state, PathBuf::from(DEFAULT_STATE));
        assert_eq!(config.oom_score, -5);
        assert_eq!(config.grpc.address, PathBuf::from("/s.sock"));
        assert_eq!(config.grpc.max_recv_message_size, 16 << 20);
        assert_eq!(config.ttrpc_address(), PathBuf::from("/t.sock"));
        assert_eq!(config.debug.format, "json");
        assert_eq!(config.debug.level, "info");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn an_unknown_key_is_a_warning_naming_file_line_and_key() {
        let loaded = parse("version = 2\n[grpc]\nadress = \"/x\"\n").expect("parse");
        let text: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            text,
            ["/etc/containerd/config.toml line 3: grpc.adress: not a key berth or containerd reads: ignored"]
        );
    }

    #[test]
    fn keys_berth_ignores_warn_only_when_not_containerds_default() {
        let loaded = parse(
            "version = 2\nplugin_dir = \"\"\n[grpc]\ntcp_address = \"\"\n[metrics]\naddress = \"\"\n\
             [timeouts]\n\"io.containerd.timeout.shim.load\" = \"5s\"\n\"io.containerd.timeout.shim.cleanup\" = \"9s\"\n",
        )
        .expect("parse");
        let keys: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, ["timeouts.\"io.containerd.timeout.shim.cleanup\""]);
    }

    #[test]
    fn a_bad_value_is_an_error_naming_file_line_and_key() {
        for (text, key, line) in [
            ("version = 2\n\n[grpc]\n  uid = \"root\"\n", "grpc.uid", 4),
            ("version = 2\noom_score = 5000\n", "oom_score", 2),
            ("version = 2\n[debug]\nlevel = \"loud\"\n", "debug.level", 3),
            (
                "version = 2\n[debug]\nformat = \"xml\"\n",
                "debug.format",
                3,
            ),
            ("version = 9\n", "version", 1),
            (
                "version = 2\ndisabled_plugins = \"x\"\n",
                "disabled_plugins",
                2,
            ),
        ] {
            let err = parse(text).expect_err(text);
            let msg = format!("{err:#}");
            assert!(
                msg.contains(&format!(
                    "/etc/containerd/config.toml line {line}: key {key}:"
                )),
                "{text:?}: {msg}"
            );
        }
    }

    #[test]
    fn berths_old_runtime_shims_still_work_with_a_warning() {
        let loaded = parse(
            "[runtime.shims]\n\"io.containerd.runc.v2\" = \"/usr/bin/containerd-shim-runc-v2\"\n",
        )
        .expect("parse");
        assert_eq!(
            loaded.config.plugins.task.shims["io.containerd.runc.v2"],
            PathBuf::from("/usr/bin/containerd-shim-runc-v2")
        );
        assert!(loaded.warnings.iter().any(|w| w
            .message
            .contains("[plugins.\"io.containerd.runtime.v2.task\".shims]")));
    }

    #[test]
    fn version_3_reads_the_same_sections() {
        let loaded = parse(
            "version = 3\n[plugins.'io.containerd.gc.v1.scheduler']\nmutation_threshold = 3\n\
             [plugins.'io.containerd.cri.v1.images']\nsnapshotter = 'overlayfs'\n",
        )
        .expect("parse");
        assert_eq!(loaded.config.version, 3);
        assert_eq!(loaded.config.plugins.gc.mutation_threshold, 3);
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0]
            .key
            .contains("io.containerd.cri.v1.images"));
    }

    /// A version 3 file shaped like containerd 2.x's `config default`
    /// output (written for this test): CRI split in two, the streaming
    /// keys left in `io.containerd.grpc.v1.cri`, 2.x's extra keys.
    const CONTAINERD_2X: &str = r#"
version = 3
root = '/var/lib/containerd'
state = '/run/containerd'
temp = ''
disabled_plugins = []
required_plugins = []
oom_score = 0
imports = []

[grpc]
  address = '/run/containerd/containerd.sock'
  tcp_address = ''
  uid = 0
  gid = 0
  max_recv_message_size = 16777216
  max_send_message_size = 16777216

[ttrpc]
  address = ''
  uid = 0
  gid = 0

[debug]
  address = ''
  uid = 0
  gid = 0
  level = ''
  format = ''

[metrics]
  address = ''
  grpc_histogram = false

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    max_concurrent_downloads = 3
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10'
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/opt/cni/bin']
      conf_dir = '/etc/cni/net.d'
  [plugins.'io.containerd.gc.v1.scheduler']
    pause_threshold = 0.02
    deletion_threshold = 0
    mutation_threshold = 100
    schedule_delay = '0s'
    startup_delay = '100ms'
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
    stream_idle_timeout = '4h0m0s'
  [plugins.'io.containerd.internal.v1.opt']
    path = '/opt/containerd'
  [plugins.'io.containerd.metadata.v1.bolt']
    content_sharing_policy = 'shared'
    no_sync = false
  [plugins.'io.containerd.nri.v1.nri']
    disable = false
  [plugins.'io.containerd.runtime.v2.task']
    platforms = ['linux/ARCH']
  [plugins.'io.containerd.service.v1.tasks-service']
    blockio_config_file = ''
    rdt_config_file = ''
  [plugins.'io.containerd.snapshotter.v1.native']
    root_path = ''
  [plugins.'io.containerd.snapshotter.v1.overlayfs']
    root_path = ''
    upperdir_label = false
    sync_remove = false
    slow_chown = false
    mount_options = []

[cgroup]
  path = ''

[timeouts]
  'io.containerd.timeout.bolt.open' = '0s'
  'io.containerd.timeout.cri.defercleanup' = '1m0s'
  'io.containerd.timeout.metrics.shimstats' = '2s'
  'io.containerd.timeout.shim.cleanup' = '5s'
  'io.containerd.timeout.shim.load' = '5s'
  'io.containerd.timeout.shim.shutdown' = '3s'
  'io.containerd.timeout.task.state' = '2s'
"#;

    #[test]
    fn a_containerd_2x_file_warns_only_about_plugins_berth_lacks() {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let loaded = parse(&CONTAINERD_2X.replace("ARCH", arch)).expect("parse");
        let config = loaded.config;
        assert_eq!(config.version, 3);
        assert_eq!(config.root, PathBuf::from("/var/lib/containerd"));
        assert_eq!(
            config.grpc.address,
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(config.debug, DebugConfig::default());
        assert_eq!(config.plugins, PluginConfigs::default());
        let warned: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(
            warned,
            [
                "plugins.\"io.containerd.cri.v1.images\"",
                "plugins.\"io.containerd.cri.v1.runtime\"",
                "plugins.\"io.containerd.metadata.v1.bolt\"",
                "plugins.\"io.containerd.nri.v1.nri\"",
            ]
        );
    }
}
