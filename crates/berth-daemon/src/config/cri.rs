//! `[plugins."io.containerd.grpc.v1.cri"]`: the CRI plugin's section, with
//! containerd 1.6's key names and defaults, decoded into
//! [`berth_cri::CriConfig`].
//!
//! Keys berth acts on are taken out of the document here; the keys of
//! containerd's CRI that berth does not act on are listed (with their
//! defaults) in `containerd::IGNORED`, so a file holding the defaults is
//! silent. Per-runtime keys berth ignores are checked here, because the
//! runtime's name varies.

use super::keys::{bad_value, display_key, path_value, Document, KeyPath, Warning};
use anyhow::Result;
use berth_cri::config::{CriConfig, RuntimeHandler};
use std::path::PathBuf;

/// The section's plugin URI.
pub const CRI: &str = "io.containerd.grpc.v1.cri";

/// containerd's default for a per-runtime key berth reads but does not act
/// on.
fn ignored_runtime_default(key: &str) -> Option<toml::Value> {
    match key {
        "base_runtime_spec" | "runtime_engine" | "runtime_path" | "runtime_root" => {
            Some(toml::Value::String(String::new()))
        }
        "privileged_without_host_devices" => Some(toml::Value::Boolean(false)),
        _ => None,
    }
}

/// Decodes the CRI section of `doc` into a config built on containerd's
/// defaults.
pub fn decode(doc: &mut Document, warnings: &mut Vec<Warning>) -> Result<CriConfig> {
    let mut cri = CriConfig::default();
    let key = |k: &'static str| ["plugins", CRI, k];
    for (k, field) in [
        ("sandbox_image", &mut cri.sandbox_image),
        ("stream_server_address", &mut cri.stream_server_address),
        ("stream_server_port", &mut cri.stream_server_port),
        ("stream_idle_timeout", &mut cri.stream_idle_timeout),
    ] {
        if let Some(value) = doc.take::<String>(&key(k))? {
            *field = value;
        }
    }
    let x509 = |k: &'static str| ["plugins", CRI, "x509_key_pair_streaming", k];
    for (k, field) in [
        ("tls_cert_file", &mut cri.tls_cert_file),
        ("tls_key_file", &mut cri.tls_key_file),
    ] {
        if let Some(value) = doc.take::<String>(&x509(k))? {
            *field = value;
        }
    }
    if let Some(size) = doc.take(&key("max_container_log_line_size"))? {
        cri.max_container_log_line_size = size;
    }
    for (k, field) in [
        ("restrict_oom_score_adj", &mut cri.restrict_oom_score_adj),
        ("enable_tls_streaming", &mut cri.enable_tls_streaming),
        ("disable_cgroup", &mut cri.disable_cgroup),
        ("disable_apparmor", &mut cri.disable_apparmor),
        (
            "enable_unprivileged_ports",
            &mut cri.enable_unprivileged_ports,
        ),
        (
            "enable_unprivileged_icmp",
            &mut cri.enable_unprivileged_icmp,
        ),
    ] {
        if let Some(value) = doc.take(&key(k))? {
            *field = value;
        }
    }
    let containerd = |k: &'static str| ["plugins", CRI, "containerd", k];
    if let Some(name) = doc.take::<String>(&containerd("snapshotter"))? {
        cri.containerd.snapshotter = name;
    }
    if let Some(name) = doc.take::<String>(&containerd("default_runtime_name"))? {
        cri.containerd.default_runtime_name = name;
    }
    decode_runtimes(doc, &mut cri, warnings)?;
    let cni = |k: &'static str| ["plugins", CRI, "cni", k];
    if let Some(dir) = doc.take_with(&cni("bin_dir"), path_value)? {
        cri.cni.bin_dir = dir;
    }
    if let Some(dir) = doc.take_with(&cni("conf_dir"), path_value)? {
        cri.cni.conf_dir = dir;
    }
    if let Some(n) = doc.take(&cni("max_conf_num"))? {
        cri.cni.max_conf_num = n;
    }
    cri.cni.conf_template = nonempty_path(doc.take_with(&cni("conf_template"), path_value)?);
    cri.registry_config_path =
        nonempty_path(doc.take_with(&["plugins", CRI, "registry", "config_path"], path_value)?);
    Ok(cri)
}

fn nonempty_path(path: Option<PathBuf>) -> Option<PathBuf> {
    path.filter(|p| !p.as_os_str().is_empty())
}

/// `[…containerd.runtimes.<name>]`: each named runtime, over the default
/// `runc` entry where it names `runc`.
fn decode_runtimes(
    doc: &mut Document,
    cri: &mut CriConfig,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let prefix = ["plugins", CRI, "containerd", "runtimes"];
    for (rest, entry) in doc.take_below(&prefix) {
        let full: KeyPath = prefix
            .iter()
            .map(|s| s.to_string())
            .chain(rest.iter().cloned())
            .collect();
        let bad = |why: String| bad_value(&entry.origin, &full, why);
        let (name, key) = match rest.as_slice() {
            [name, key, ..] => (name.clone(), key.as_str()),
            _ => continue,
        };
        let handler = cri
            .containerd
            .runtimes
            .entry(name)
            .or_insert_with(|| RuntimeHandler {
                runtime_type: String::new(),
                ..RuntimeHandler::default()
            });
        let string = |v: toml::Value| v.as_str().map(str::to_string);
        let strings = |v: toml::Value| -> Option<Vec<String>> {
            v.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        match (key, rest.len()) {
            ("runtime_type", 2) => {
                handler.runtime_type =
                    string(entry.value).ok_or_else(|| bad("expected a string".into()))?
            }
            ("pod_annotations", 2) => {
                handler.pod_annotations = strings(entry.value)
                    .ok_or_else(|| bad("expected an array of strings".into()))?
            }
            ("container_annotations", 2) => {
                handler.container_annotations = strings(entry.value)
                    .ok_or_else(|| bad("expected an array of strings".into()))?
            }
            ("cni_conf_dir", 2) => {
                handler.cni_conf_dir = nonempty_path(Some(path_value(entry.value).map_err(bad)?))
            }
            ("cni_max_conf_num", 2) => {
                handler.cni_max_conf_num = entry
                    .value
                    .as_integer()
                    .ok_or_else(|| bad("expected an integer".into()))?
            }
            ("options", 3) => {
                handler
                    .options
                    .insert(rest[2].clone(), to_json(entry.value));
            }
            (key, 2) => {
                let default = ignored_runtime_default(key);
                let message = match default {
                    Some(default) if default == entry.value => continue,
                    Some(_) => "berth does not act on this key: ignored",
                    None => "not a key of a CRI runtime: ignored",
                };
                warnings.push(Warning {
                    origin: entry.origin,
                    key: display_key(&full),
                    message: message.into(),
                });
            }
            _ => warnings.push(Warning {
                origin: entry.origin,
                key: display_key(&full),
                message: "not a key of a CRI runtime: ignored".into(),
            }),
        }
    }
    Ok(())
}

/// A TOML value as JSON (runtime options travel as JSON to the shim's
/// options message).
fn to_json(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => J::from(f),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.into_iter().map(to_json).collect()),
        toml::Value::Table(t) => J::Object(t.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn decode_text(text: &str) -> (CriConfig, Vec<Warning>) {
        let mut doc =
            super::super::source::parse(text, Path::new("/c.toml")).expect("must succeed");
        let mut warnings = Vec::new();
        let cri = decode(&mut doc, &mut warnings).expect("must succeed");
        (cri, warnings)
    }

    #[test]
    fn containerd_names_set_the_cri_plugin() {
        let (cri, warnings) = decode_text(
            r#"version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.local/pause:1"
  max_container_log_line_size = 100
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "fast"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.fast]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["io.example/*"]
      cni_conf_dir = "/etc/cni/fast"
      cni_max_conf_num = 2
      privileged_without_host_devices = false
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.fast.options]
        BinaryName = "/usr/bin/crun"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/tmp/net.d"
    max_conf_num = 0
    conf_template = ""
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/berth/certs.d"
"#,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(cri.sandbox_image, "registry.local/pause:1");
        assert_eq!(cri.max_container_log_line_size, 100);
        assert!(cri.restrict_oom_score_adj && cri.enable_unprivileged_ports);
        assert_eq!(cri.containerd.snapshotter, "native");
        let (name, fast) = cri.runtime_handler("").expect("must succeed");
        assert_eq!(name, "fast");
        assert_eq!(fast.runtime_type, "io.containerd.runc.v2");
        assert_eq!(fast.pod_annotations, ["io.example/*"]);
        assert_eq!(
            fast.cni_conf_dir.as_deref(),
            Some(Path::new("/etc/cni/fast"))
        );
        assert_eq!(fast.cni_max_conf_num, 2);
        assert_eq!(fast.options["BinaryName"], "/usr/bin/crun");
        assert!(
            cri.runtime_handler("runc").is_ok(),
            "the default runc stays"
        );
        assert_eq!(cri.cni.bin_dir, Path::new("/usr/lib/cni"));
        assert_eq!(cri.cni.max_conf_num, 0);
        assert_eq!(cri.cni.conf_template, None);
        assert_eq!(
            cri.registry_config_path.as_deref(),
            Some(Path::new("/etc/berth/certs.d"))
        );
    }

    #[test]
    fn an_ignored_runtime_key_off_its_default_is_warned_about() {
        let (_, warnings) = decode_text(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n\
             runtime_root = \"/run/other\"\n",
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].key.contains("runtime_root"));
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let mut doc = super::super::source::parse(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = 3\n",
            Path::new("/c.toml"),
        )
        .expect("must succeed");
        let err = decode(&mut doc, &mut Vec::new())
            .expect_err("must fail")
            .to_string();
        assert!(
            err.contains("sandbox_image") && err.contains("line 3"),
            "{err}"
        );
    }
}
