//! An image config in full (`ocispec.Image`): what the CRI plugin shows in
//! ImageStatus' verbose info and reads a container's run settings from.
//! Fields and `omitempty` follow the Go type, so encoding it gives the
//! JSON containerd's `json.Marshal` gives (maps sorted, as Go sorts them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{nullable, RootFs};

/// An image config, every field the OCI image spec defines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// When the image was created (RFC 3339), as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// Operating system version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// Operating system features.
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// How containers from it run (Go's `omitempty` has no effect on a
    /// struct: always written).
    #[serde(default, deserialize_with = "nullable")]
    pub config: RunConfig,
    /// The layers' diff IDs.
    #[serde(default)]
    pub rootfs: RootFs,
    /// How each layer was made.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
}

/// An image config's `config`: the defaults of a container run from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Ports to expose (`80/tcp`), as a set.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `NAME=value` entries.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// The command's first words.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entrypoint: Vec<String>,
    /// The default arguments.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cmd: Vec<String>,
    /// Paths to be volumes, as a set.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, Empty>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// Labels.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// The signal that stops the container (`SIGTERM` when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// Windows: the command line is already escaped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
}

/// The `{}` of Go's `map[string]struct{}` sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// One entry of an image's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When (RFC 3339), as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command that made the layer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// Who.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// A comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// Whether the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_config_reads_and_encodes_as_go_does() {
        let json = r#"{"architecture":"amd64","config":{"Hostname":"","Env":["PATH=/bin"],"Cmd":["sh"],"Volumes":{"/data":{}},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null,"StopSignal":"SIGQUIT","User":"1000:1000"},"container_config":{},"created":"2023-01-01T00:00:00Z","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created":"2023-01-01T00:00:00Z","created_by":"ADD x /","empty_layer":false}]}"#;
        let spec: ImageSpec = serde_json::from_slice(json.as_bytes()).expect("parse");
        assert_eq!(spec.config.stop_signal, "SIGQUIT");
        assert_eq!(spec.config.volumes.keys().collect::<Vec<_>>(), ["/data"]);
        assert_eq!(spec.config.user, "1000:1000");
        let out =
            String::from_utf8(super::super::json::to_vec(&spec).expect("encode")).expect("utf8");
        assert_eq!(
            out,
            r#"{"created":"2023-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"User":"1000:1000","Env":["PATH=/bin"],"Cmd":["sh"],"Volumes":{"/data":{}},"StopSignal":"SIGQUIT"},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created":"2023-01-01T00:00:00Z","created_by":"ADD x /"}]}"#
        );
    }

    #[test]
    fn a_config_without_run_settings_reads() {
        let spec: ImageSpec =
            serde_json::from_slice(br#"{"architecture":"arm64","os":"linux","config":null,"rootfs":{"type":"layers","diff_ids":null}}"#)
                .expect("parse");
        assert_eq!(spec.config, RunConfig::default());
        assert!(spec.rootfs.diff_ids.is_empty());
    }
}
