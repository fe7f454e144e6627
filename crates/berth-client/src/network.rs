//! Container networking as the client asks for it: none, the host's, or a
//! CNI network set up by berthd between task create and start (with ports
//! published through portmap and name servers for `/etc/resolv.conf`).
//!
//! containerd's task API has no field for a network, so the request travels
//! as labels on the container record (`io.berth.network`,
//! `io.berth.network.ports`, `io.berth.network.dns`), which berthd reads at
//! task create; berthd records the address it got in `io.berth.network.ip`.

use std::collections::HashMap;

use berth_core::{Error, Result};

/// `none`, `host`, `cni` or `cni:NAME`.
pub const LABEL_NETWORK: &str = "io.berth.network";
/// Published ports, JSON (portmap's `portMappings`).
pub const LABEL_PORTS: &str = "io.berth.network.ports";
/// Name servers, comma-separated.
pub const LABEL_DNS: &str = "io.berth.network.dns";
/// The container's addresses, set by berthd once attached.
pub const LABEL_IP: &str = "io.berth.network.ip";

/// Which network a container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// A network namespace of its own with only loopback (down).
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A CNI network by name, or the first configured (else berthd's
    /// default bridge) with `None`.
    Cni(Option<String>),
}

impl std::str::FromStr for NetworkMode {
    type Err = Error;

    /// `none`, `host`, `cni`, `cni:NAME` (or `bridge`, `default`: the
    /// default CNI network, as nerdctl spells it).
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            "cni" | "bridge" | "default" => Ok(NetworkMode::Cni(None)),
            other => match other.strip_prefix("cni:") {
                Some(name) if !name.is_empty() => Ok(NetworkMode::Cni(Some(name.to_string()))),
                _ => Err(Error::invalid_argument(format!(
                    "network {text:?}: want none, host, cni or cni:NAME"
                ))),
            },
        }
    }
}

impl std::fmt::Display for NetworkMode {
    /// The mode as `--net` and the label spell it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::Cni(None) => f.write_str("cni"),
            NetworkMode::Cni(Some(name)) => write!(f, "cni:{name}"),
        }
    }
}

pub use berth_core::network::PortMapping;

/// A container's network: mode, published ports, name servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Which network.
    pub mode: NetworkMode,
    /// Ports to publish (CNI only).
    pub ports: Vec<PortMapping>,
    /// Name servers for `/etc/resolv.conf` (CNI only).
    pub dns: Vec<String>,
}

impl NetworkConfig {
    /// The labels that ask berthd for this network; an error if ports or
    /// name servers are asked for without a CNI network.
    pub fn labels(&self) -> Result<HashMap<String, String>> {
        let mut labels = HashMap::new();
        let mode = self.mode.to_string();
        let is_cni = matches!(self.mode, NetworkMode::Cni(_));
        let wants_cni = !self.ports.is_empty() || !self.dns.is_empty();
        if wants_cni && !is_cni {
            return Err(Error::invalid_argument(format!(
                "published ports and --dns need a CNI network, not {mode:?}"
            )));
        }
        for server in &self.dns {
            server.parse::<std::net::IpAddr>().map_err(|_| {
                Error::invalid_argument(format!("name server {server:?} is not an IP address"))
            })?;
        }
        labels.insert(LABEL_NETWORK.to_string(), mode);
        if !self.ports.is_empty() {
            let json =
                serde_json::to_string(&self.ports).map_err(|e| Error::internal(e.to_string()))?;
            labels.insert(LABEL_PORTS.to_string(), json);
        }
        if !self.dns.is_empty() {
            labels.insert(LABEL_DNS.to_string(), self.dns.join(","));
        }
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_labels() {
        assert_eq!(
            "cni:web".parse::<NetworkMode>().expect("mode"),
            NetworkMode::Cni(Some("web".into()))
        );
        assert!("cni:".parse::<NetworkMode>().is_err());
        let config = NetworkConfig {
            mode: NetworkMode::Cni(None),
            ports: vec!["8080:80".parse().expect("port")],
            dns: vec!["192.0.2.53".into()],
        };
        let labels = config.labels().expect("labels");
        assert_eq!(labels[LABEL_NETWORK], "cni");
        assert_eq!(
            labels[LABEL_PORTS],
            r#"[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]"#
        );
        assert_eq!(labels[LABEL_DNS], "192.0.2.53");
        let host = NetworkConfig {
            mode: NetworkMode::Host,
            ..config
        };
        assert!(host.labels().is_err());
    }
}
