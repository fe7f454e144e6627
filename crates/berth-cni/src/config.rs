//! Network configuration: `.conflist` lists, `.conf` files wrapped as lists,
//! and the configuration directory read as libcni and containerd read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_core::{Error, Result};
use serde_json::{Map, Value};

/// One plugin of a chain: its `type`, the capabilities it declares and its
/// whole configuration object as written.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    /// The plugin binary's name (`bridge`, `portmap`, …).
    pub plugin_type: String,
    /// `capabilities`: which `runtimeConfig` keys the plugin takes.
    pub capabilities: BTreeMap<String, bool>,
    /// The configuration object as written.
    pub raw: Map<String, Value>,
}

/// A network: a named chain of plugins.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// The network's name.
    pub name: String,
    /// The spec version every plugin of the chain is called with.
    pub cni_version: String,
    /// `disableCheck`: CHECK is a no-op.
    pub disable_check: bool,
    /// `disableGC`: GC is a no-op.
    pub disable_gc: bool,
    /// The chain, in ADD order.
    pub plugins: Vec<PluginConf>,
    /// The list as JSON (what the result cache records).
    pub bytes: Vec<u8>,
    /// The file it was read from, if any.
    pub source: Option<PathBuf>,
}

/// libcni's `ValidateNetworkName` / `ValidateContainerID` alphabet.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn parse_plugin(index: usize, value: &Value) -> Result<PluginConf> {
    let raw = value
        .as_object()
        .ok_or_else(|| Error::invalid_argument(format!("plugin {index}: not a JSON object")))?
        .clone();
    let plugin_type = match raw.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => {
            return Err(Error::invalid_argument(format!(
                "plugin {index}: missing \"type\""
            )))
        }
    };
    if plugin_type.contains('/') {
        return Err(Error::invalid_argument(format!(
            "plugin {index}: type {plugin_type:?} must be a file name"
        )));
    }
    let mut capabilities = BTreeMap::new();
    if let Some(caps) = raw.get("capabilities") {
        let caps = caps.as_object().ok_or_else(|| {
            Error::invalid_argument(format!("plugin {index}: \"capabilities\" is not an object"))
        })?;
        for (key, value) in caps {
            capabilities.insert(key.clone(), value.as_bool().unwrap_or(false));
        }
    }
    Ok(PluginConf {
        plugin_type,
        capabilities,
        raw,
    })
}

fn bool_field(object: &Map<String, Value>, key: &str) -> Result<bool> {
    match object.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::invalid_argument(format!(
            "invalid {key} {other}: not a boolean"
        ))),
    }
}

impl NetworkConfigList {
    /// Parses a configuration list (`.conflist`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid_argument(format!("error parsing configuration list: {e}"))
        })?;
        let object = value
            .as_object()
            .ok_or_else(|| Error::invalid_argument("configuration list is not a JSON object"))?;
        let name = match object.get("name") {
            Some(Value::String(name)) => name.clone(),
            Some(other) => {
                return Err(Error::invalid_argument(format!(
                    "invalid network name {other}"
                )))
            }
            None => return Err(Error::invalid_argument("configuration list has no name")),
        };
        if !valid_name(&name) {
            return Err(Error::invalid_argument(format!(
                "invalid network name {name:?}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
            )));
        }
        let cni_version = match object.get("cniVersion") {
            None => String::new(),
            Some(Value::String(v)) => v.clone(),
            Some(other) => {
                return Err(Error::invalid_argument(format!(
                    "invalid cniVersion {other}"
                )))
            }
        };
        crate::version::parse(&cni_version)?;
        let plugins = match object.get("plugins") {
            Some(Value::Array(plugins)) if !plugins.is_empty() => plugins
                .iter()
                .enumerate()
                .map(|(i, p)| parse_plugin(i, p))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| e.context(format!("network {name:?}")))?,
            Some(Value::Array(_)) => {
                return Err(Error::invalid_argument(format!(
                    "network {name:?}: no plugins in list"
                )))
            }
            Some(_) => {
                return Err(Error::invalid_argument(format!(
                    "network {name:?}: \"plugins\" is not a list"
                )))
            }
            None => {
                return Err(Error::invalid_argument(format!(
                    "network {name:?}: no \"plugins\" key"
                )))
            }
        };
        Ok(NetworkConfigList {
            disable_check: bool_field(object, "disableCheck")?,
            disable_gc: bool_field(object, "disableGC")?,
            name,
            cni_version,
            plugins,
            bytes: bytes.to_vec(),
            source: None,
        })
    }

    /// Parses a single plugin's configuration (`.conf`) and wraps it as a
    /// list of one, as libcni's `ConfListFromConf` does.
    pub fn from_conf_bytes(bytes: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid_argument(format!("error parsing configuration: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| Error::invalid_argument("configuration is not a JSON object"))?;
        let list = serde_json::json!({
            "name": object.get("name").cloned().unwrap_or(Value::Null),
            "cniVersion": object.get("cniVersion").cloned().unwrap_or(Value::String(String::new())),
            "plugins": [value.clone()],
        });
        let bytes = serde_json::to_vec(&list).map_err(|e| Error::internal(e.to_string()))?;
        Self::from_bytes(&bytes)
    }

    /// Reads a file: `.conflist` as a list, anything else as one plugin.
    /// Errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::invalid_argument(format!("read {}: {e}", path.display())))?;
        let list = if path.extension().is_some_and(|e| e == "conflist") {
            Self::from_bytes(&bytes)
        } else {
            Self::from_conf_bytes(&bytes)
        };
        let mut list = list.map_err(|e| e.context(format!("CNI config {}", path.display())))?;
        list.source = Some(path.to_path_buf());
        Ok(list)
    }

    /// What the network is called in messages: its name and file.
    pub fn describe(&self) -> String {
        match &self.source {
            Some(path) => format!("network {:?} ({})", self.name, path.display()),
            None => format!("network {:?}", self.name),
        }
    }
}

/// The configuration files of `dir` (`.conf`, `.conflist`, `.json`), sorted
/// by name. A missing directory holds none.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::unavailable(format!(
                "read CNI config dir {}: {e}",
                dir.display()
            )))
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "conf" || e == "conflist" || e == "json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The network `name` (or, with no name, the first valid network) of the
/// files in `dir`, read in name order. Invalid files are skipped with a
/// warning naming them; if none is valid, the first one's error is the
/// answer. `Ok(None)`: the directory holds no configuration at all.
pub fn load_dir(dir: &Path, name: Option<&str>) -> Result<Option<NetworkConfigList>> {
    let mut found = None;
    let first_error = scan(dir, |list| {
        if name.is_none_or(|n| n == list.name) {
            found = Some(list);
            return false;
        }
        true
    })?;
    match (found, name, first_error) {
        (Some(list), _, _) => Ok(Some(list)),
        (None, None, Some(err)) => Err(err),
        (None, Some(name), Some(err)) => Err(Error::not_found(format!(
            "CNI network {name:?} in {} (and {})",
            dir.display(),
            err.message()
        ))),
        (None, Some(name), None) => Err(Error::not_found(format!(
            "CNI network {name:?} in {}",
            dir.display()
        ))),
        (None, None, None) => Ok(None),
    }
}

/// The first `max` valid networks of `dir` (all of them with `max` 0, as
/// containerd's `max_conf_num`), in name order. Invalid files are skipped
/// as by [`load_dir`]; if none is valid, the first one's error is the
/// answer. Empty: the directory holds no configuration at all.
pub fn load_dir_all(dir: &Path, max: usize) -> Result<Vec<NetworkConfigList>> {
    let mut lists = Vec::new();
    let first_error = scan(dir, |list| {
        lists.push(list);
        max == 0 || lists.len() < max
    })?;
    match first_error {
        Some(err) if lists.is_empty() => Err(err),
        _ => Ok(lists),
    }
}

/// Reads the files of `dir` in name order, giving each valid network to
/// `take` until it answers false; the first invalid file's error.
fn scan(dir: &Path, mut take: impl FnMut(NetworkConfigList) -> bool) -> Result<Option<Error>> {
    let mut first_error = None;
    for file in &config_files(dir)? {
        match NetworkConfigList::from_file(file) {
            Ok(list) => {
                if !take(list) {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(file = %file.display(), error = %err, "invalid CNI config skipped");
                first_error.get_or_insert(err);
            }
        }
    }
    Ok(first_error)
}

/// The network berth uses when the config directory holds none: a bridge
/// with host-local IPAM, portmap and firewall, like nerdctl's and Podman's
/// default `bridge` networks. (Loopback is attached to every container on
/// its own, as containerd's CRI does.)
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultNetwork {
    /// The network's name.
    pub name: String,
    /// The bridge device.
    pub bridge: String,
    /// The IPv4 subnet.
    pub subnet: String,
    /// An IPv6 subnet, when IPv6 is wanted.
    pub subnet6: Option<String>,
    /// host-local's `dataDir` (its default, `/var/lib/cni/networks`, if unset).
    pub ipam_data_dir: Option<PathBuf>,
}

impl Default for DefaultNetwork {
    fn default() -> Self {
        DefaultNetwork {
            name: "berth".into(),
            bridge: "berth0".into(),
            subnet: "10.88.0.0/16".into(),
            subnet6: None,
            ipam_data_dir: None,
        }
    }
}

impl DefaultNetwork {
    /// The network as a configuration list.
    pub fn config(&self) -> Result<NetworkConfigList> {
        let mut ranges = vec![serde_json::json!([{ "subnet": self.subnet }])];
        let mut routes = vec![serde_json::json!({ "dst": "0.0.0.0/0" })];
        if let Some(subnet6) = &self.subnet6 {
            ranges.push(serde_json::json!([{ "subnet": subnet6 }]));
            routes.push(serde_json::json!({ "dst": "::/0" }));
        }
        let mut ipam = serde_json::json!({
            "type": "host-local",
            "ranges": ranges,
            "routes": routes,
        });
        if let Some(dir) = &self.ipam_data_dir {
            ipam["dataDir"] = Value::String(dir.display().to_string());
        }
        let list = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": ipam,
                },
                { "type": "portmap", "capabilities": { "portMappings": true } },
                { "type": "firewall" },
            ],
        });
        let bytes = serde_json::to_vec_pretty(&list).map_err(|e| Error::internal(e.to_string()))?;
        NetworkConfigList::from_bytes(&bytes)
    }
}

/// The loopback network attached (as `lo`) to every container, as
/// containerd's CRI attaches `cni-loopback`.
pub fn loopback() -> NetworkConfigList {
    let bytes = br#"{"cniVersion":"1.0.0","name":"cni-loopback","plugins":[{"type":"loopback"}]}"#;
    NetworkConfigList::from_bytes(bytes).expect("the loopback config is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_is_wrapped_as_a_list_of_one() {
        let list = NetworkConfigList::from_conf_bytes(
            br#"{"cniVersion":"0.4.0","name":"n1","type":"bridge","bridge":"b1"}"#,
        )
        .expect("conf");
        assert_eq!(list.name, "n1");
        assert_eq!(list.cni_version, "0.4.0");
        assert_eq!(list.plugins.len(), 1);
        assert_eq!(list.plugins[0].plugin_type, "bridge");
        assert_eq!(list.plugins[0].raw["bridge"], "b1");
    }

    #[test]
    fn invalid_lists_are_rejected_with_a_reason() {
        for (bytes, want) in [
            (
                &br#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#[..],
                "no name",
            ),
            (br#"{"name":"a","plugins":[]}"#, "no plugins"),
            (br#"{"name":"a"}"#, "no \"plugins\""),
            (
                br#"{"name":"a","plugins":[{"bridge":"x"}]}"#,
                "missing \"type\"",
            ),
            (
                br#"{"name":"a b","plugins":[{"type":"x"}]}"#,
                "invalid network name",
            ),
            (
                br#"{"name":"a","cniVersion":"x","plugins":[{"type":"x"}]}"#,
                "cniVersion",
            ),
            (br#"{"name":"a","plugins":[{"type":"../x"}]}"#, "file name"),
            (b"{", "error parsing"),
        ] {
            let err = NetworkConfigList::from_bytes(bytes).expect_err("invalid");
            assert!(err.message().contains(want), "{err} should say {want}");
        }
    }

    #[test]
    fn capabilities_are_read() {
        let list = NetworkConfigList::from_bytes(
            br#"{"name":"a","cniVersion":"1.0.0","plugins":[{"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]}"#,
        )
        .expect("list");
        let caps = &list.plugins[0].capabilities;
        assert_eq!(caps.get("portMappings"), Some(&true));
        assert_eq!(caps.get("bandwidth"), Some(&false));
    }

    #[test]
    fn the_directory_is_read_in_name_order_and_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load_dir(dir.path(), None).expect("empty"), None);
        std::fs::write(dir.path().join("10-bad.conflist"), b"{not json").expect("write");
        std::fs::write(
            dir.path().join("20-b.conf"),
            br#"{"cniVersion":"1.0.0","name":"b","type":"bridge"}"#,
        )
        .expect("write");
        std::fs::write(
            dir.path().join("30-a.conflist"),
            br#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}"#,
        )
        .expect("write");
        std::fs::write(dir.path().join("05-ignored.txt"), b"x").expect("write");
        let first = load_dir(dir.path(), None).expect("load").expect("some");
        assert_eq!(first.name, "b");
        let a = load_dir(dir.path(), Some("a"))
            .expect("load")
            .expect("some");
        assert_eq!(a.name, "a");
        assert!(a.source.expect("source").ends_with("30-a.conflist"));
        let missing = load_dir(dir.path(), Some("zz")).expect_err("missing");
        assert!(missing.is_not_found());
        assert!(missing.message().contains("10-bad.conflist"), "{missing}");
        let names = |max| -> Vec<String> {
            let lists = load_dir_all(dir.path(), max).expect("load all");
            lists.into_iter().map(|l| l.name).collect()
        };
        assert_eq!(names(0), ["b", "a"]);
        assert_eq!(names(1), ["b"]);
        assert_eq!(names(5), ["b", "a"]);
        std::fs::remove_file(dir.path().join("20-b.conf")).expect("rm");
        std::fs::remove_file(dir.path().join("30-a.conflist")).expect("rm");
        let err = load_dir(dir.path(), None).expect_err("only bad");
        assert!(err.message().contains("10-bad.conflist"), "{err}");
        let err = load_dir_all(dir.path(), 0).expect_err("only bad");
        assert!(err.message().contains("10-bad.conflist"), "{err}");
        std::fs::remove_file(dir.path().join("10-bad.conflist")).expect("rm");
        assert!(load_dir_all(dir.path(), 0).expect("empty").is_empty());
    }

    #[test]
    fn the_default_network_is_a_bridge_with_ipv6_on_request() {
        let mut net = DefaultNetwork::default();
        let list = net.config().expect("config");
        let types: Vec<_> = list
            .plugins
            .iter()
            .map(|p| p.plugin_type.as_str())
            .collect();
        assert_eq!(types, ["bridge", "portmap", "firewall"]);
        assert_eq!(list.plugins[0].raw["bridge"], "berth0");
        assert_eq!(
            list.plugins[0].raw["ipam"]["ranges"][0][0]["subnet"],
            "10.88.0.0/16"
        );
        net.subnet6 = Some("fd88::/64".into());
        let list = net.config().expect("config");
        assert_eq!(
            list.plugins[0].raw["ipam"]["ranges"][1][0]["subnet"],
            "fd88::/64"
        );
        assert_eq!(loopback().plugins[0].plugin_type, "loopback");
    }
}
