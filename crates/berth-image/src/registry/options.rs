//! What a caller configures: the knobs of `ctr images pull/push`.

use std::path::PathBuf;
use std::time::Duration;

/// How a [`RegistryResolver`](super::RegistryResolver) reaches registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Use plain HTTP for hosts that `hosts.toml` does not configure
    /// (`--plain-http`; containerd's `DefaultScheme = "http"`). Hosts
    /// written in a `hosts.toml` keep the scheme written there, and
    /// `docker.io` is always HTTPS, as in containerd.
    pub plain_http: bool,
    /// A directory of `<host[:port]>/hosts.toml` files (`--hosts-dir`).
    pub hosts_dir: Option<PathBuf>,
    /// Basic credentials for every host (`--user name:password`); they win
    /// over the Docker config.
    pub credentials: Option<(String, String)>,
    /// A Docker `config.json` to read `auths` from. `None` reads
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` when present.
    pub docker_config: Option<PathBuf>,
    /// Extra CA certificate files (PEM) trusted for every host, beside the
    /// system roots.
    pub ca_files: Vec<PathBuf>,
    /// Skip TLS certificate verification for every host.
    pub skip_verify: bool,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Tries per request for transient failures (connection errors, 429,
    /// 5xx); at least 1.
    pub max_attempts: u32,
    /// The first backoff delay; it doubles after each failed try.
    pub initial_backoff: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            plain_http: false,
            hosts_dir: None,
            credentials: None,
            docker_config: None,
            ca_files: Vec::new(),
            skip_verify: false,
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")).to_string(),
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
        }
    }
}
