//! The top level of containerd's `config.toml` (containerd 1.6's
//! `services/server/config/config.go`; version 3 keeps these keys):
//! which keys berth acts on, which it reads and ignores, and their
//! defaults.
//!
//! As in containerd, a top-level key holding Go's zero value (`""`, `0`,
//! `false`) means "the default".

use super::keys::{display_key, path_value, Document, KeyPath, Warning};
use super::{Config, DebugConfig, GrpcConfig, MetricsConfig, TtrpcConfig};
use anyhow::Result;
use std::path::PathBuf;

/// containerd's keys that berth reads but does not act on, with
/// containerd's defaults: a file holding the default is silent, any other
/// value gets a warning. (Written out here, not taken from containerd.)
const IGNORED: &str = r#"
plugin_dir = ""
[cgroup]
path = ""
[grpc]
tcp_address = ""
tcp_tls_ca = ""
tcp_tls_cert = ""
tcp_tls_key = ""
[ttrpc]
uid = 0
gid = 0
[debug]
address = ""
uid = 0
gid = 0
[timeouts]
"io.containerd.timeout.bolt.open" = "0s"
"io.containerd.timeout.shim.cleanup" = "5s"
"io.containerd.timeout.shim.load" = "5s"
"io.containerd.timeout.shim.shutdown" = "3s"
"io.containerd.timeout.task.state" = "2s"
"io.containerd.timeout.cri.defercleanup" = "1m0s"
"io.containerd.timeout.metrics.shimstats" = "2s"
[plugins."io.containerd.snapshotter.v1.overlayfs"]
upperdir_label = false
sync_remove = false
slow_chown = false
mount_options = []
[plugins."io.containerd.runtime.v2.task"]
platforms = ["linux/ARCH"]
sched_core = false
[plugins."io.containerd.grpc.v1.cri"]
device_ownership_from_security_context = false
disable_hugetlb_controller = true
disable_proc_mount = false
disable_tcp_service = true
enable_selinux = false
ignore_image_defined_volumes = false
max_concurrent_downloads = 3
netns_mounts_under_state_dir = false
selinux_category_range = 1024
stats_collect_period = 10
systemd_cgroup = false
tolerate_missing_hugetlb_controller = true
unset_seccomp_profile = ""
[plugins."io.containerd.grpc.v1.cri".cni]
ip_pref = ""
[plugins."io.containerd.grpc.v1.cri".containerd]
disable_snapshot_annotations = true
discard_unpacked_layers = false
ignore_rdt_not_enabled_errors = false
no_pivot = false
[plugins."io.containerd.grpc.v1.cri".containerd.default_runtime]
base_runtime_spec = ""
cni_conf_dir = ""
cni_max_conf_num = 0
container_annotations = []
pod_annotations = []
privileged_without_host_devices = false
runtime_engine = ""
runtime_path = ""
runtime_root = ""
runtime_type = ""
[plugins."io.containerd.grpc.v1.cri".containerd.untrusted_workload_runtime]
base_runtime_spec = ""
cni_conf_dir = ""
cni_max_conf_num = 0
container_annotations = []
pod_annotations = []
privileged_without_host_devices = false
runtime_engine = ""
runtime_path = ""
runtime_root = ""
runtime_type = ""
[plugins."io.containerd.grpc.v1.cri".image_decryption]
key_model = "node"
[plugins."io.containerd.service.v1.tasks-service"]
rdt_config_file = ""
blockio_config_file = ""
"#;

/// containerd's default for a key berth ignores, if containerd has the key.
pub fn ignored_default(path: &[String]) -> Option<toml::Value> {
    let text = IGNORED.replace("ARCH", go_arch());
    let table: toml::Table = text.parse().expect("IGNORED is valid TOML");
    let mut value = table.get(path.first()?)?;
    for segment in &path[1..] {
        value = value.as_table()?.get(segment)?;
    }
    Some(value.clone())
}

/// The host architecture in Go's (and OCI's) words.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Decodes the top-level keys into `config`, leaving `[plugins]` in `doc`.
pub fn decode(doc: &mut Document, config: &mut Config, warnings: &mut Vec<Warning>) -> Result<()> {
    doc.take::<i64>(&["version"])?;
    if let Some(root) = doc.take_nonzero::<PathBuf>(&["root"])? {
        config.root = root;
    }
    if let Some(state) = doc.take_nonzero::<PathBuf>(&["state"])? {
        config.state = state;
    }
    config.temp = doc.take_nonzero::<PathBuf>(&["temp"])?;
    if let Some(score) = doc.take_with(&["oom_score"], oom_score)? {
        config.oom_score = score;
    }
    decode_grpc(doc, &mut config.grpc)?;
    decode_ttrpc(doc, &mut config.ttrpc)?;
    decode_debug(doc, &mut config.debug)?;
    decode_metrics(doc, &mut config.metrics)?;
    for (key, list) in [
        ("disabled_plugins", &mut config.disabled_plugins),
        ("required_plugins", &mut config.required_plugins),
    ] {
        list.extend(doc.take::<Vec<String>>(&[key])?.unwrap_or_default());
    }
    legacy_runtime_shims(doc, config, warnings)?;
    Ok(())
}

fn oom_score(value: toml::Value) -> std::result::Result<i32, String> {
    match value.as_integer() {
        Some(v @ -1000..=1000) => Ok(v as i32),
        Some(v) => Err(format!("{v} is outside -1000..=1000")),
        None => Err(format!("expected an integer, found {}", value.type_str())),
    }
}

fn decode_grpc(doc: &mut Document, grpc: &mut GrpcConfig) -> Result<()> {
    if let Some(address) = doc.take_nonzero::<PathBuf>(&["grpc", "address"])? {
        grpc.address = address;
    }
    if let Some(uid) = doc.take_nonzero(&["grpc", "uid"])? {
        grpc.uid = uid;
    }
    if let Some(gid) = doc.take_nonzero(&["grpc", "gid"])? {
        grpc.gid = gid;
    }
    if let Some(size) = doc.take_nonzero(&["grpc", "max_recv_message_size"])? {
        grpc.max_recv_message_size = size;
    }
    if let Some(size) = doc.take_nonzero(&["grpc", "max_send_message_size"])? {
        grpc.max_send_message_size = size;
    }
    Ok(())
}

fn decode_ttrpc(doc: &mut Document, ttrpc: &mut TtrpcConfig) -> Result<()> {
    if let Some(address) = doc.take_with(&["ttrpc", "address"], path_value)? {
        ttrpc.address = Some(address).filter(|a| !a.as_os_str().is_empty());
    }
    Ok(())
}

fn decode_debug(doc: &mut Document, debug: &mut DebugConfig) -> Result<()> {
    if let Some(level) = doc.take_with(&["debug", "level"], log_level)? {
        debug.level = level;
    }
    let format = |v: toml::Value| match v.as_str() {
        Some("") => Ok(None),
        Some(f @ ("text" | "json")) => Ok(Some(f.to_string())),
        _ => Err(format!("log format must be \"text\" or \"json\", not {v}")),
    };
    if let Some(Some(f)) = doc.take_with(&["debug", "format"], format)? {
        debug.format = f;
    }
    Ok(())
}

fn decode_metrics(doc: &mut Document, metrics: &mut MetricsConfig) -> Result<()> {
    if let Some(address) = doc.take::<String>(&["metrics", "address"])? {
        metrics.address = address;
    }
    if let Some(on) = doc.take::<bool>(&["metrics", "grpc_histogram"])? {
        metrics.grpc_histogram = on;
    }
    Ok(())
}

/// containerd's (logrus's) level names, and `EnvFilter` directives
/// (`info,berth_daemon=trace`) as berth's own extension; `""` is the default.
fn log_level(value: toml::Value) -> std::result::Result<String, String> {
    let Some(level) = value.as_str() else {
        return Err(format!(
            "expected a level string, found {}",
            value.type_str()
        ));
    };
    match level {
        "" => Ok(DebugConfig::default().level),
        "trace" | "debug" | "info" | "warn" | "error" => Ok(level.into()),
        "warning" => Ok("warn".into()),
        "fatal" | "panic" => Ok("error".into()),
        directives if directives.contains(['=', ',']) => Ok(directives.into()),
        other => Err(format!(
            "unknown log level {other:?}: use trace, debug, info, warn, error, fatal or panic"
        )),
    }
}

/// berth's old `[runtime.shims]` table: still read, with a warning saying
/// where it lives now.
fn legacy_runtime_shims(
    doc: &mut Document,
    config: &mut Config,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    for (key, entry) in doc.take_below(&["runtime", "shims"]) {
        let mut full: KeyPath = vec!["runtime".into(), "shims".into()];
        full.extend(key.iter().cloned());
        let path = path_value(entry.value)
            .map_err(|why| super::keys::bad_value(&entry.origin, &full, why))?;
        warnings.push(Warning {
            origin: entry.origin,
            key: display_key(&full),
            message: format!(
                "berth's old format: move it to [plugins.\"{}\".shims]",
                super::plugins::TASK
            ),
        });
        config
            .plugins
            .task
            .shims
            .entry(key.join("."))
            .or_insert(path);
    }
    Ok(())
}

/// Warns about every top-level key left in `doc` (all but `[plugins]`).
pub fn warn_leftovers(doc: &mut Document, warnings: &mut Vec<Warning>) {
    for (section, message) in [
        (
            "proxy_plugins",
            "berth does not load proxy plugins: ignored",
        ),
        (
            "stream_processors",
            "berth has no stream processors: ignored",
        ),
    ] {
        for name in doc.children(&[section]) {
            let path: KeyPath = vec![section.into(), name.clone()];
            let origin = doc.table_origin(&path);
            doc.take_below(&[section, &name]);
            if let Some(origin) = origin {
                warnings.push(Warning {
                    origin,
                    key: display_key(&path),
                    message: message.into(),
                });
            }
        }
    }
    let keys: Vec<KeyPath> = doc
        .entries
        .keys()
        .filter(|k| k[0] != "plugins")
        .cloned()
        .collect();
    for key in keys {
        let Some(entry) = doc.entries.remove(&key) else {
            continue;
        };
        let message = match (key[0].as_str(), ignored_default(&key)) {
            (_, Some(default)) if default == entry.value => continue,
            (_, Some(_)) => "berth does not act on this key: ignored",
            ("timeouts", None) => "not a timeout containerd has: ignored",
            _ => "not a key berth or containerd reads: ignored",
        };
        warnings.push(Warning {
            origin: entry.origin,
            key: display_key(&key),
            message: message.into(),
        });
    }
}
