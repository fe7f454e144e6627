//! A plugin's result (spec 0.3.0 to 1.1.0) and error, parsed and validated.

use std::net::IpAddr;

use berth_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An interface the plugins made or touched.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address, if known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The netns path it is in; empty for a host interface.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// An address given to an interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length (`10.88.0.2/16`).
    pub address: String,
    /// The gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The index into `interfaces` the address belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Destination network (`0.0.0.0/0`).
    pub dst: String,
    /// Next hop, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// DNS settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// The typed view of a result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Typed {
    #[serde(default)]
    cni_version: String,
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

/// A plugin's result: the JSON as the plugin wrote it (passed on as
/// `prevResult` and cached unchanged) and its parsed fields.
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    raw: Value,
    typed: Typed,
}

/// Parses `a.b.c.d/n` or `x::y/n`.
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = text.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

impl CniResult {
    /// Parses and validates a result: a supported `cniVersion`, addresses
    /// and routes that parse, interface indexes that exist.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let raw: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::internal(format!("invalid result JSON: {e}")))?;
        Self::from_value(raw)
    }

    /// As [`CniResult::parse`], from JSON already decoded.
    pub fn from_value(raw: Value) -> Result<Self> {
        let invalid = |what: String| Error::internal(format!("invalid result: {what}"));
        if raw.get("ip4").is_some() || raw.get("ip6").is_some() {
            return Err(invalid(
                "spec 0.1/0.2 results (ip4/ip6) are not supported".into(),
            ));
        }
        let typed: Typed =
            serde_json::from_value(raw.clone()).map_err(|e| invalid(e.to_string()))?;
        if !crate::version::SUPPORTED.contains(&typed.cni_version.as_str()) {
            return Err(invalid(format!(
                "unsupported cniVersion {:?}",
                typed.cni_version
            )));
        }
        for ip in &typed.ips {
            if parse_cidr(&ip.address).is_none() {
                return Err(invalid(format!("address {:?} is not a CIDR", ip.address)));
            }
            if let Some(gw) = &ip.gateway {
                gw.parse::<IpAddr>()
                    .map_err(|_| invalid(format!("gateway {gw:?} is not an IP")))?;
            }
            if let Some(i) = ip.interface {
                if i >= typed.interfaces.len() {
                    return Err(invalid(format!(
                        "address {} names interface {i} of {}",
                        ip.address,
                        typed.interfaces.len()
                    )));
                }
            }
        }
        for route in &typed.routes {
            if parse_cidr(&route.dst).is_none() {
                return Err(invalid(format!("route {:?} is not a CIDR", route.dst)));
            }
            if let Some(gw) = &route.gw {
                gw.parse::<IpAddr>()
                    .map_err(|_| invalid(format!("route gateway {gw:?} is not an IP")))?;
            }
        }
        for server in &typed.dns.nameservers {
            server
                .parse::<IpAddr>()
                .map_err(|_| invalid(format!("nameserver {server:?} is not an IP")))?;
        }
        Ok(CniResult { raw, typed })
    }

    /// The JSON as the plugin wrote it.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The result's spec version.
    pub fn cni_version(&self) -> &str {
        &self.typed.cni_version
    }

    /// The interfaces.
    pub fn interfaces(&self) -> &[Interface] {
        &self.typed.interfaces
    }

    /// The addresses.
    pub fn ips(&self) -> &[IpConfig] {
        &self.typed.ips
    }

    /// The routes.
    pub fn routes(&self) -> &[Route] {
        &self.typed.routes
    }

    /// DNS settings.
    pub fn dns(&self) -> &Dns {
        &self.typed.dns
    }

    /// The addresses (without prefix) of interfaces inside the container's
    /// namespace (or of no particular interface), IPv4 first.
    pub fn container_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .typed
            .ips
            .iter()
            .filter(|ip| {
                ip.interface.is_none_or(|i| {
                    self.typed
                        .interfaces
                        .get(i)
                        .is_some_and(|iface| !iface.sandbox.is_empty())
                })
            })
            .filter_map(|ip| parse_cidr(&ip.address).map(|(a, _)| a))
            .collect();
        ips.sort_by_key(|ip| ip.is_ipv6());
        ips
    }
}

/// A plugin's error (spec "Error" object): its code, message and details.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginError {
    /// The error code (1–99 are the spec's; 100+ the plugin's).
    #[serde(default)]
    pub code: u32,
    /// A short message.
    #[serde(default)]
    pub msg: String,
    /// Longer details.
    #[serde(default)]
    pub details: String,
}

impl PluginError {
    /// Parses a plugin's error output; `None` if it is not an error object.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let err: PluginError = serde_json::from_slice(bytes).ok()?;
        (err.code != 0 || !err.msg.is_empty()).then_some(err)
    }

    /// The berth error kind for the spec's code: 4 (invalid configuration)
    /// and 7 (invalid network config) are bad input, 11 (try again later)
    /// is unavailable, the rest unknown.
    pub fn kind(&self) -> ErrorKind {
        match self.code {
            1 | 2 | 4 | 7 => ErrorKind::InvalidArgument,
            11 => ErrorKind::Unavailable,
            _ => ErrorKind::Unknown,
        }
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "code {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `cni_result` fuzz target: a long number in a field berth
    /// does not read changed by one ulp between the plugin's answer and the
    /// cached copy read back, until floats were parsed correctly rounded.
    #[test]
    fn a_cached_result_reads_back_unchanged() {
        let text = br#"{"cniVersion":"1.0.0","ips":[{"address":"10.10.0.1/24"}],
            "dns":{"domainsearch":[333333333333333333333333333333333333333333333333333333333333333333]}}"#;
        let result = CniResult::parse(text).expect("parse");
        let cached = serde_json::to_vec(result.raw()).expect("serialize");
        assert_eq!(CniResult::parse(&cached).expect("parse again"), result);
    }

    #[test]
    fn results_of_0_4_and_1_0_parse() {
        let r = CniResult::parse(
            br#"{"cniVersion":"0.4.0","interfaces":[{"name":"b0","mac":"aa"},{"name":"eth0","sandbox":"/x"}],
                "ips":[{"version":"4","address":"10.1.0.2/24","gateway":"10.1.0.1","interface":1}],
                "routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.1"]}}"#,
        )
        .expect("0.4.0");
        assert_eq!(
            r.container_ips(),
            vec!["10.1.0.2".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(r.dns().nameservers, ["10.1.0.1"]);
        let r = CniResult::parse(
            br#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}],
                "ips":[{"address":"fd00::2/64","interface":0},{"address":"10.1.0.2/24","interface":0}]}"#,
        )
        .expect("1.0.0");
        assert_eq!(r.container_ips()[0].to_string(), "10.1.0.2");
        assert_eq!(r.raw()["ips"][0]["address"], "fd00::2/64");
    }

    #[test]
    fn invalid_results_are_rejected() {
        for (bytes, want) in [
            (
                &br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1"}]}"#[..],
                "not a CIDR",
            ),
            (
                br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/8","interface":2}]}"#,
                "interface 2",
            ),
            (br#"{"cniVersion":"1.0.0","routes":[{"dst":"x"}]}"#, "route"),
            (br#"{"cniVersion":"9.9.9"}"#, "unsupported"),
            (
                br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/8"}}"#,
                "0.1/0.2",
            ),
            (
                br#"{"cniVersion":"1.0.0","dns":{"nameservers":["x"]}}"#,
                "nameserver",
            ),
            (b"nope", "JSON"),
        ] {
            let err = CniResult::parse(bytes).expect_err("invalid");
            assert!(err.message().contains(want), "{err} should say {want}");
        }
    }

    #[test]
    fn plugin_errors_keep_code_message_and_details() {
        let err =
            PluginError::parse(br#"{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"why"}"#)
                .expect("error");
        assert_eq!(err.to_string(), "code 7: bad: why");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(PluginError::parse(b"{}"), None);
        assert_eq!(PluginError::parse(b"garbage"), None);
    }
}
