//! What every request of one resolver shares: options, HTTP clients (one
//! per TLS configuration, each with its connection pool), authentication
//! state, and which hosts fell back from HTTPS to HTTP.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::{Error, Result};

use super::auth::Authorizer;
use super::dockerconfig::{self, DockerConfig};
use super::hosts::{configure_hosts, RegistryHost};
use super::tls::{client_config, TlsSettings};
use super::RegistryOptions;

/// A host to send requests to, with the client for its TLS settings.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub host: RegistryHost,
    pub client: reqwest::Client,
    /// The registry name a mirror serves, sent as `?ns=` (containerd does
    /// this for every host that is not the name itself).
    pub namespace: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub opts: RegistryOptions,
    pub auth: Authorizer,
    clients: Mutex<HashMap<TlsSettings, reqwest::Client>>,
    /// Hosts (`host[:port]`) whose HTTPS handshake failed: HTTP from now on.
    http_hosts: Mutex<HashSet<String>>,
}

impl Session {
    pub(crate) fn new(opts: RegistryOptions) -> Result<Arc<Session>> {
        // A config named in the options must load; the default one only
        // may, so a broken ~/.docker/config.json does not stop public pulls.
        let docker_config = match (&opts.docker_config, dockerconfig::default_path()) {
            (Some(path), _) => DockerConfig::load(path)?,
            (None, Some(path)) => DockerConfig::load(&path).unwrap_or_else(|err| {
                tracing::warn!(error = %err, "ignoring the docker config");
                DockerConfig::default()
            }),
            (None, None) => DockerConfig::default(),
        };
        let auth = Authorizer::new(opts.credentials.clone(), docker_config);
        Ok(Arc::new(Session {
            opts,
            auth,
            clients: Mutex::new(HashMap::new()),
            http_hosts: Mutex::new(HashSet::new()),
        }))
    }

    /// The endpoints serving registry `domain`, in the order to try them.
    pub(crate) fn endpoints(&self, domain: &str) -> Result<Vec<Endpoint>> {
        configure_hosts(domain, &self.opts)?
            .into_iter()
            .map(|host| {
                let client = self.client_for(&host)?;
                let is_server = host.host == domain
                    || (domain == "docker.io" && host.host == "registry-1.docker.io");
                let namespace = (!is_server).then(|| domain.to_string());
                Ok(Endpoint {
                    host,
                    client,
                    namespace,
                })
            })
            .collect()
    }

    fn client_for(&self, host: &RegistryHost) -> Result<reqwest::Client> {
        let mut ca_files = self.opts.ca_files.clone();
        ca_files.extend(host.ca.iter().cloned());
        let key = TlsSettings {
            ca_files,
            skip_verify: host.skip_verify.unwrap_or(self.opts.skip_verify),
            client: host.client.first().cloned(),
        };
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| Error::internal("registry client cache poisoned"))?;
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let tls = client_config(&key)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .user_agent(self.opts.user_agent.clone())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| Error::internal(format!("build HTTP client: {e}")))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// The scheme to use for `host` now.
    pub(crate) fn scheme(&self, host: &RegistryHost) -> String {
        let fell_back = host.http_fallback
            && self
                .http_hosts
                .lock()
                .map(|set| set.contains(&host.host))
                .unwrap_or(false);
        if fell_back {
            "http".to_string()
        } else {
            host.scheme.clone()
        }
    }

    /// Switches `host` to plain HTTP; false when it may not fall back.
    pub(crate) fn fall_back_to_http(&self, host: &RegistryHost) -> bool {
        // True also when a concurrent request switched the host first: the
        // caller's request went out over TLS and must be sent again.
        host.http_fallback
            && self
                .http_hosts
                .lock()
                .map(|mut set| {
                    set.insert(host.host.clone());
                })
                .is_ok()
    }
}
