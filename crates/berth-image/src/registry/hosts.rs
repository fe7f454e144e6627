//! Which hosts serve a registry name, in the order to try them:
//! containerd's `remotes/docker/config` (`ConfigureHosts`).
//!
//! With a hosts directory, `<dir>/<host>_<port>_/`, `<dir>/<host:port>/` or
//! `<dir>/_default/` may hold a `hosts.toml`:
//!
//! ```toml
//! server = "https://registry.example.com"   # tried last
//!
//! [host."http://127.0.0.1:5000"]            # mirrors, tried in file order
//!   capabilities = ["pull", "resolve"]      # default: pull, resolve, push
//!   skip_verify = true
//!   ca = "mirror-ca.pem"                    # or a list; relative to the dir
//!   client = [["client.cert", "client.key"]] # or "both-in-one.pem"
//!   override_path = false
//!   [host."http://127.0.0.1:5000".header]
//!     x-custom = "value"
//! ```
//!
//! A directory without `hosts.toml` contributes its `*.crt` files as CAs
//! and its `*.cert` files (with the `*.key` of the same name) as client
//! certificates for the server (Docker's `certs.d` layout). rustls presents
//! one client certificate: the first one configured. Without any configuration a
//! name is served by itself over HTTPS, `docker.io` by
//! `registry-1.docker.io`, and a localhost name (`localhost`, `127.0.0.1`,
//! `::1`) with a port other than 443 by plain HTTP — trying HTTPS without
//! verification first unless the port is 80, and falling back to HTTP when
//! the TLS handshake fails, as containerd 2.x does.

use std::path::{Path, PathBuf};

use berth_core::{Error, Result};
use serde::Deserialize;

use super::RegistryOptions;

/// What a host may be used for (containerd's `HostCapabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Fetch blobs and manifests by digest.
    pub pull: bool,
    /// Resolve tags to digests.
    pub resolve: bool,
    /// Push blobs and manifests.
    pub push: bool,
}

impl Capabilities {
    /// Every capability.
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
    const NONE: Capabilities = Capabilities {
        pull: false,
        resolve: false,
        push: false,
    };
}

/// One endpoint serving a registry name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryHost {
    /// `https` or `http`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// The API root, normally `/v2`.
    pub path: String,
    /// What this host may be used for.
    pub capabilities: Capabilities,
    /// Skip certificate verification (`None`: the global option).
    pub skip_verify: Option<bool>,
    /// CA files trusted for this host, beside the global ones.
    pub ca: Vec<PathBuf>,
    /// Client certificate and key files (the key may sit in the
    /// certificate's file: `None`).
    pub client: Vec<(PathBuf, Option<PathBuf>)>,
    /// Extra headers sent with every request.
    pub header: Vec<(String, String)>,
    /// Start with HTTPS and switch to HTTP when the TLS handshake fails
    /// (the scheme is `https` then).
    pub http_fallback: bool,
}

impl RegistryHost {
    fn unconfigured() -> RegistryHost {
        RegistryHost {
            scheme: String::new(),
            host: String::new(),
            path: "/v2".to_string(),
            capabilities: Capabilities::ALL,
            skip_verify: None,
            ca: Vec::new(),
            client: Vec::new(),
            header: Vec::new(),
            http_fallback: false,
        }
    }

    /// The URL of `rest` (which starts with `/`) under this host's API root.
    pub fn url(&self, scheme: &str, rest: &str) -> String {
        format!("{scheme}://{}{}{rest}", self.host, self.path)
    }
}

/// Whether `host` (with or without a port) is the local machine, by name.
pub fn is_localhost(host: &str) -> bool {
    let name = split_port(host).0;
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

/// `host[:port]` → (`host`, `port`), understanding `[v6]:port`.
fn split_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((name, after)) = rest.split_once(']') {
            return (name, after.strip_prefix(':'));
        }
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (host, None),
    }
}

/// The hosts serving `name` (a reference's domain), in the order to try.
pub fn configure_hosts(name: &str, opts: &RegistryOptions) -> Result<Vec<RegistryHost>> {
    let mut hosts = match &opts.hosts_dir {
        Some(root) => match host_dir(root, name) {
            Some(dir) => load_host_dir(&dir)?,
            None => vec![RegistryHost::unconfigured()],
        },
        None => vec![RegistryHost::unconfigured()],
    };
    if let Some(last) = hosts.last_mut().filter(|h| h.host.is_empty()) {
        default_server(last, name, opts.plain_http);
    }
    let global_tls = opts.skip_verify || !opts.ca_files.is_empty();
    for host in &mut hosts {
        let explicit_tls = global_tls
            || host.skip_verify.is_some()
            || !host.ca.is_empty()
            || !host.client.is_empty();
        if host.scheme == "http" && explicit_tls && split_port(&host.host).1 != Some("80") {
            host.scheme = "https".to_string();
            host.http_fallback = true;
        }
    }
    Ok(hosts)
}

/// Fills in the server for `name` when no `hosts.toml` named one.
fn default_server(host: &mut RegistryHost, name: &str, plain_http: bool) {
    if name == "docker.io" {
        host.scheme = "https".to_string();
        host.host = "registry-1.docker.io".to_string();
        return;
    }
    host.host = name.to_string();
    if plain_http {
        host.scheme = "http".to_string();
    } else if is_localhost(name) {
        let port = split_port(name).1;
        host.scheme = match port {
            None | Some("443") => "https",
            Some(_) => "http",
        }
        .to_string();
        if port != Some("80") {
            host.skip_verify = Some(true);
        }
    } else {
        host.scheme = "https".to_string();
    }
}

/// containerd's `HostDirFromRoot`: `host_port_`, then `host:port`, then
/// `_default`.
fn host_dir(root: &Path, name: &str) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(i) = name.rfind(':').filter(|&i| i > 0) {
        candidates.push(format!("{}_{}_", &name[..i], &name[i + 1..]));
    }
    candidates.push(name.to_string());
    candidates.push("_default".to_string());
    candidates
        .into_iter()
        .map(|c| root.join(c))
        .find(|p| p.is_dir())
}

fn load_host_dir(dir: &Path) -> Result<Vec<RegistryHost>> {
    let file = dir.join("hosts.toml");
    match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => parse_hosts_file(dir, &text)
            .map_err(|err| err.context(format!("hosts file {}", file.display()))),
        Ok(_) => load_cert_files(dir),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => load_cert_files(dir),
        Err(err) => Err(Error::from(err).context(format!("read {}", file.display()))),
    }
}

/// Docker's `certs.d` layout: `*.crt` files are CAs for the server.
fn load_cert_files(dir: &Path) -> Result<Vec<RegistryHost>> {
    let mut host = RegistryHost::unconfigured();
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::from(e).context(dir.display().to_string()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => host.ca.push(path),
            Some("cert") => {
                let key = path.with_extension("key");
                host.client.push((path, key.is_file().then_some(key)));
            }
            _ => {}
        }
    }
    host.ca.sort();
    host.client.sort();
    Ok(vec![host])
}

/// One `[host."…"]` table, or the top level of the file.
#[derive(Debug, Default, Deserialize)]
struct HostFileConfig {
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    ca: Option<OneOrMany>,
    #[serde(default)]
    client: Option<ClientConfig>,
    #[serde(default)]
    skip_verify: Option<bool>,
    #[serde(default)]
    header: std::collections::BTreeMap<String, OneOrMany>,
    #[serde(default)]
    override_path: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `client`: one file, a list of files, or a list of `[cert, key]` pairs.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ClientConfig {
    One(String),
    Many(Vec<OneOrMany>),
}

impl ClientConfig {
    fn into_pairs(self, dir: &Path) -> Result<Vec<(PathBuf, Option<PathBuf>)>> {
        let entries = match self {
            ClientConfig::One(file) => vec![OneOrMany::One(file)],
            ClientConfig::Many(entries) => entries,
        };
        entries
            .into_iter()
            .map(|entry| match entry {
                OneOrMany::One(file) => Ok((dir.join(file), None)),
                OneOrMany::Many(pair) if pair.len() == 2 => {
                    Ok((dir.join(&pair[0]), Some(dir.join(&pair[1]))))
                }
                OneOrMany::Many(other) => Err(Error::invalid_argument(format!(
                    "invalid pair {other:?} for \"client\""
                ))),
            })
            .collect()
    }
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
struct HostsFile {
    #[serde(default)]
    server: String,
    #[serde(flatten)]
    root: HostFileConfig,
    #[serde(default)]
    host: std::collections::HashMap<String, HostFileConfig>,
}

/// Parses a `hosts.toml`: the `[host."…"]` mirrors in file order, then the
/// server (left unconfigured, to be defaulted, when `server` is absent).
pub fn parse_hosts_file(dir: &Path, text: &str) -> Result<Vec<RegistryHost>> {
    let mut file: HostsFile =
        toml::from_str(text).map_err(|e| Error::invalid_argument(e.to_string()))?;
    let mut hosts = Vec::new();
    for name in host_table_order(text) {
        if let Some(config) = file.host.remove(&name) {
            hosts.push(parse_host(dir, &name, config)?);
        }
    }
    let server = file.server.clone();
    hosts.push(parse_host(dir, &server, file.root)?);
    Ok(hosts)
}

/// The keys of `[host."…"]` tables in the order the file writes them (a
/// TOML map does not keep it, and the order is the mirrors' priority).
fn host_table_order(text: &str) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(inner) = line.strip_prefix('[').and_then(|l| l.split(']').next()) else {
            continue;
        };
        let Some(rest) = inner.trim().strip_prefix("host") else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('.') else {
            continue;
        };
        let rest = rest.trim_start();
        let quote = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => continue,
        };
        let Some(name) = rest[1..].split(quote).next() else {
            continue;
        };
        if !order.iter().any(|o| o == name) {
            order.push(name.to_string());
        }
    }
    order
}

fn parse_host(dir: &Path, server: &str, config: HostFileConfig) -> Result<RegistryHost> {
    let mut host = RegistryHost::unconfigured();
    if !server.is_empty() {
        let url = if server.starts_with("http") {
            server.to_string()
        } else {
            format!("https://{server}")
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::invalid_argument(format!("unable to parse server {server}")))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        host.scheme = scheme.to_string();
        host.host = authority.to_string();
        host.path = if config.override_path || path.ends_with("/v2") {
            path.to_string()
        } else {
            format!("{path}/v2")
        };
    }
    host.skip_verify = config.skip_verify;
    if !config.capabilities.is_empty() {
        host.capabilities = Capabilities::NONE;
        for c in &config.capabilities {
            match c.to_ascii_lowercase().as_str() {
                "pull" => host.capabilities.pull = true,
                "resolve" => host.capabilities.resolve = true,
                "push" => host.capabilities.push = true,
                other => {
                    return Err(Error::invalid_argument(format!(
                        "unknown capability {other}"
                    )))
                }
            }
        }
    }
    if let Some(ca) = config.ca {
        host.ca = ca.into_vec().into_iter().map(|p| dir.join(p)).collect();
    }
    if let Some(client) = config.client {
        host.client = client.into_pairs(dir)?;
    }
    for (key, values) in config.header {
        for value in values.into_vec() {
            host.header.push((key.clone(), value));
        }
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RegistryOptions {
        RegistryOptions::default()
    }

    #[test]
    fn docker_io_is_served_by_registry_1() {
        let hosts = configure_hosts("docker.io", &opts()).expect("hosts");
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].host, "registry-1.docker.io");
        assert_eq!(hosts[0].scheme, "https");
        assert_eq!(
            hosts[0].url("https", "/x"),
            "https://registry-1.docker.io/v2/x"
        );
    }

    #[test]
    fn localhost_with_port_tries_https_then_http() {
        let hosts = configure_hosts("127.0.0.1:5000", &opts()).expect("hosts");
        assert_eq!(hosts[0].scheme, "https");
        assert!(hosts[0].http_fallback);
        assert_eq!(hosts[0].skip_verify, Some(true));
        let hosts = configure_hosts("localhost:80", &opts()).expect("hosts");
        assert_eq!(
            (hosts[0].scheme.as_str(), hosts[0].http_fallback),
            ("http", false)
        );
        let hosts = configure_hosts("localhost", &opts()).expect("hosts");
        assert_eq!(
            (hosts[0].scheme.as_str(), hosts[0].http_fallback),
            ("https", false)
        );
        assert!(is_localhost("[::1]:5000"));
        assert!(!is_localhost("example.com:5000"));
    }

    #[test]
    fn plain_http_applies_to_unconfigured_hosts() {
        let o = RegistryOptions {
            plain_http: true,
            ..opts()
        };
        let hosts = configure_hosts("example.com:5000", &o).expect("hosts");
        assert_eq!(
            (hosts[0].scheme.as_str(), hosts[0].http_fallback),
            ("http", false)
        );
        let hosts = configure_hosts("example.com", &opts()).expect("hosts");
        assert_eq!(hosts[0].scheme, "https");
    }

    #[test]
    fn hosts_toml_lists_mirrors_in_file_order_then_server() {
        let text = r#"
server = "https://registry.example.com"
skip_verify = true

[host."http://mirror-b:5000"]
  capabilities = ["pull", "resolve"]
  [host."http://mirror-b:5000".header]
    x-a = ["1", "2"]

[host."https://mirror-a/custom"]
  capabilities = ["pull"]
  ca = ["ca.pem", "/abs.pem"]
  client = [["c.cert", "c.key"], "both.pem"]
"#;
        let hosts = parse_hosts_file(Path::new("/etc/h"), text).expect("parse");
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[0].host, "mirror-b:5000");
        assert_eq!(hosts[0].scheme, "http");
        assert!(hosts[0].capabilities.resolve && !hosts[0].capabilities.push);
        assert_eq!(hosts[0].header.len(), 2);
        assert_eq!(hosts[1].host, "mirror-a");
        assert_eq!(hosts[1].path, "/custom/v2");
        assert_eq!(
            hosts[1].ca,
            vec![PathBuf::from("/etc/h/ca.pem"), PathBuf::from("/abs.pem")]
        );
        assert_eq!(
            hosts[1].client,
            vec![
                (
                    PathBuf::from("/etc/h/c.cert"),
                    Some(PathBuf::from("/etc/h/c.key"))
                ),
                (PathBuf::from("/etc/h/both.pem"), None)
            ]
        );
        assert_eq!(hosts[2].host, "registry.example.com");
        assert_eq!(hosts[2].skip_verify, Some(true));
        assert_eq!(hosts[2].capabilities, Capabilities::ALL);
        assert!(parse_hosts_file(Path::new("/"), "[host.\"x\"]\ncapabilities=[\"fly\"]").is_err());
    }

    #[test]
    fn hosts_dir_uses_the_port_directory_and_defaults_the_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("example.com_5000_");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(
            sub.join("hosts.toml"),
            "[host.\"http://127.0.0.1:9\"]\ncapabilities = [\"pull\", \"resolve\"]\n",
        )
        .expect("write");
        let o = RegistryOptions {
            hosts_dir: Some(dir.path().to_path_buf()),
            ..opts()
        };
        let hosts = configure_hosts("example.com:5000", &o).expect("hosts");
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].host, "127.0.0.1:9");
        assert_eq!(hosts[1].host, "example.com:5000");
        assert_eq!(hosts[1].scheme, "https");
    }
}
