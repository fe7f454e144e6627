//! Container networking vocabulary shared by the CNI engine, the daemon and
//! the client: a published port.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// A published port, in portmap's `portMappings` form; parsed from
/// `[IP:]HOST:CONTAINER[/tcp|udp]`, as `-p` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port on the host.
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The host address; empty for all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

impl std::str::FromStr for PortMapping {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid_argument(format!("port {text:?}: {why}"));
        let (addr, protocol) = match text.rsplit_once('/') {
            Some((addr, proto @ ("tcp" | "udp"))) => (addr, proto),
            Some(_) => return Err(bad("protocol must be tcp or udp")),
            None => (text, "tcp"),
        };
        // `HOST:CONTAINER`, `IP:HOST:CONTAINER`, `[IPv6]:HOST:CONTAINER`.
        let (ip, rest) = if let Some(v6) = addr.strip_prefix('[') {
            let (ip, rest) = v6.split_once("]:").ok_or_else(|| bad("unclosed ["))?;
            (ip.to_string(), rest)
        } else if addr.matches(':').count() == 2 {
            let (ip, rest) = addr.split_once(':').expect("two colons");
            (ip.to_string(), rest)
        } else {
            (String::new(), addr)
        };
        let (host, container) = rest
            .split_once(':')
            .ok_or_else(|| bad("want [IP:]HOST:CONTAINER[/tcp|udp]"))?;
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(&format!("{p:?} is not a port")))
        };
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(&format!("{ip:?} is not an IP address")));
        }
        Ok(PortMapping {
            host_port: port(host)?,
            container_port: port(container)?,
            protocol: protocol.into(),
            host_ip: ip,
        })
    }
}

impl PortMapping {
    /// Whether both publish the same port and protocol on overlapping
    /// host addresses (an empty or unspecified address is every address).
    pub fn conflicts(&self, other: &PortMapping) -> bool {
        let any = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (any(&self.host_ip) || any(&other.host_ip) || self.host_ip == other.host_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_docker_writes_them() {
        let p: PortMapping = "8080:80".parse().expect("port");
        assert_eq!(
            (
                p.host_port,
                p.container_port,
                p.protocol.as_str(),
                p.host_ip.as_str()
            ),
            (8080, 80, "tcp", "")
        );
        let p: PortMapping = "127.0.0.1:53:5353/udp".parse().expect("port");
        assert_eq!(
            (
                p.host_port,
                p.container_port,
                p.protocol.as_str(),
                p.host_ip.as_str()
            ),
            (53, 5353, "udp", "127.0.0.1")
        );
        let p: PortMapping = "[::1]:8080:80".parse().expect("port");
        assert_eq!(p.host_ip, "::1");
        for bad in [
            "80",
            "x:80",
            "8080:80/sctp",
            "1.2.3:8080:80",
            "0:80",
            "70000:80",
        ] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad}");
        }
    }
}
