//! What a caller configures: the knobs of `ctr images pull/push`.

use std::path::PathBuf;
use std::time::Duration;

/// How a [`RegistryResolver`](super::RegistryResolver) reaches registries.
///
/// Its `Debug` output leaves the password out.
#[derive(Clone)]
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
    /// A Docker `config.json` to read `auths` from (it must parse). `None`
    /// reads `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` when
    /// present, ignoring it with a warning when it does not parse.
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

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.credentials.as_ref().map(|(user, _)| user);
        f.debug_struct("RegistryOptions")
            .field("plain_http", &self.plain_http)
            .field("hosts_dir", &self.hosts_dir)
            .field("user", &user)
            .field("docker_config", &self.docker_config)
            .field("ca_files", &self.ca_files)
            .field("skip_verify", &self.skip_verify)
            .field("user_agent", &self.user_agent)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_the_password_out() {
        let opts = RegistryOptions {
            credentials: Some(("alice".into(), "s3cret".into())),
            ..RegistryOptions::default()
        };
        let text = format!("{opts:?}");
        assert!(text.contains("alice"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
