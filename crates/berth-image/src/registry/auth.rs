//! Registry authentication: containerd's `docker.Authorizer`.
//!
//! A request goes out with whatever the host is known to want. When the
//! registry answers 401 its `WWW-Authenticate` header says how to
//! authenticate:
//!
//! - `Bearer realm="…",service="…",scope="…"`: GET the realm with the
//!   service and every scope (the request's and the challenge's), with
//!   basic credentials when there are some and anonymously otherwise; the
//!   answer's `token` (or `access_token`) is cached per host and scope set
//!   until `expires_in` (default 60 s) runs out, and reused by every
//!   request with the same scopes.
//! - `Basic realm="…"`: send the credentials as basic auth from then on.
//!
//! Credentials for a host come from [`RegistryOptions::credentials`]
//! (`--user`) or else the Docker config's `auths`. Unlike containerd,
//! tokens are always fetched with GET (no OAuth2 password grant POST):
//! distribution's token server and Docker Hub both accept it.
//!
//! [`RegistryOptions::credentials`]: super::RegistryOptions::credentials

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use berth_core::{Error, ErrorKind, Result};
use serde::Deserialize;

use super::dockerconfig::DockerConfig;

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lowercased (`bearer`, `basic`).
    pub scheme: String,
    /// The parameters (`realm`, `service`, `scope`), keys lowercased.
    pub params: BTreeMap<String, String>,
}

/// Parses a `WWW-Authenticate` value into its challenges
/// (`Bearer realm="x",service="y", Basic realm="z"`).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        let end = rest.find([' ', '\t', ',', '=']).unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start_matches([' ', '\t']);
        if token.is_empty() {
            break;
        }
        if let (Some(value_text), Some(current)) = (after.strip_prefix('='), out.last_mut()) {
            let (value, remainder) = parse_value(value_text.trim_start());
            current.params.insert(token.to_ascii_lowercase(), value);
            rest = remainder;
        } else {
            out.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
            rest = after;
        }
    }
    out
}

/// A quoted string (with `\` escapes) or a token, and what follows it.
fn parse_value(text: &str) -> (String, &str) {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (value, &quoted[i + 1..]),
                c => value.push(c),
            }
        }
        return (value, "");
    }
    let end = text.find([',', ' ', '\t']).unwrap_or(text.len());
    (text[..end].to_string(), &text[end..])
}

/// The pull (and push) scope of a repository.
pub fn repository_scope(path: &str, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{path}:{actions}")
}

#[derive(Debug, Clone)]
enum HostAuth {
    Basic,
    Bearer { realm: String, service: String },
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    expires: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

/// Per-host authentication state shared by every request of a resolver.
#[derive(Debug, Default)]
pub(crate) struct Authorizer {
    credentials: Option<(String, String)>,
    docker_config: DockerConfig,
    /// What each host asked for in its last challenge.
    hosts: Mutex<HashMap<String, HostAuth>>,
    /// Bearer tokens by host and sorted scope list.
    tokens: Mutex<HashMap<(String, String), Token>>,
}

fn basic_header(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn scope_key(scopes: &[String]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join(" ")
}

impl Authorizer {
    pub(crate) fn new(credentials: Option<(String, String)>, docker_config: DockerConfig) -> Self {
        Authorizer {
            credentials,
            docker_config,
            ..Default::default()
        }
    }

    /// The credentials for `host`, `--user` first.
    pub(crate) fn credentials(&self, host: &str) -> Option<(String, String)> {
        self.credentials
            .clone()
            .or_else(|| self.docker_config.credentials(host))
    }

    /// The `Authorization` value to send to `host` for `scopes`, from what
    /// is known without asking anyone.
    pub(crate) fn authorization(&self, host: &str, scopes: &[String]) -> Option<String> {
        let auth = self.hosts.lock().ok()?.get(host).cloned()?;
        match auth {
            HostAuth::Basic => {
                let (user, pass) = self.credentials(host)?;
                Some(basic_header(&user, &pass))
            }
            HostAuth::Bearer { .. } => {
                let key = (host.to_string(), scope_key(scopes));
                let tokens = self.tokens.lock().ok()?;
                let token = tokens.get(&key)?;
                (token.expires > Instant::now()).then(|| format!("Bearer {}", token.value))
            }
        }
    }

    /// Acts on a 401's challenges from `host`: remembers the scheme and,
    /// for bearer, fetches a token for `scopes`. `context` prefixes errors.
    pub(crate) async fn challenged(
        &self,
        client: &reqwest::Client,
        host: &str,
        scopes: &[String],
        headers: &[String],
        context: &str,
    ) -> Result<()> {
        let challenges: Vec<Challenge> = headers.iter().flat_map(|h| parse_challenges(h)).collect();
        let creds = self.credentials(host);
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer.params.get("realm").cloned().unwrap_or_default();
            if realm.is_empty() {
                return Err(Error::new(
                    ErrorKind::Unauthenticated,
                    format!("{context}: {host}: bearer challenge without a realm"),
                ));
            }
            let service = bearer.params.get("service").cloned().unwrap_or_default();
            let mut all: Vec<String> = scopes.to_vec();
            if let Some(scope) = bearer.params.get("scope") {
                all.extend(scope.split(' ').filter(|s| !s.is_empty()).map(String::from));
            }
            let token = fetch_token(client, &realm, &service, &all, creds.as_ref())
                .await
                .map_err(|e| e.context(format!("{context}: {host}: fetch token from {realm}")))?;
            self.set_host(host, HostAuth::Bearer { realm, service });
            if let Ok(mut tokens) = self.tokens.lock() {
                tokens.insert((host.to_string(), scope_key(scopes)), token);
            }
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            if creds.is_none() {
                return Err(Error::new(
                    ErrorKind::Unauthenticated,
                    format!("{context}: {host}: the registry requires basic auth credentials (--user or a docker config.json)"),
                ));
            }
            self.set_host(host, HostAuth::Basic);
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Unauthenticated,
            format!("{context}: {host}: unauthorized with no supported WWW-Authenticate challenge ({headers:?})"),
        ))
    }

    /// Fetches a token ahead of the request when `host` is known to want
    /// bearer tokens and none is cached for `scopes`: a new scope then
    /// costs no 401 round trip.
    pub(crate) async fn prepare(
        &self,
        client: &reqwest::Client,
        host: &str,
        scopes: &[String],
        context: &str,
    ) -> Result<()> {
        let known = self.hosts.lock().ok().and_then(|h| h.get(host).cloned());
        let Some(HostAuth::Bearer { realm, service }) = known else {
            return Ok(());
        };
        if self.authorization(host, scopes).is_some() {
            return Ok(());
        }
        let creds = self.credentials(host);
        let token = fetch_token(client, &realm, &service, scopes, creds.as_ref())
            .await
            .map_err(|e| e.context(format!("{context}: {host}: fetch token from {realm}")))?;
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert((host.to_string(), scope_key(scopes)), token);
        }
        Ok(())
    }

    fn set_host(&self, host: &str, auth: HostAuth) {
        if let Ok(mut hosts) = self.hosts.lock() {
            hosts.insert(host.to_string(), auth);
        }
    }

    /// Forgets the cached token of `host` for `scopes` (after it was
    /// refused).
    pub(crate) fn invalidate(&self, host: &str, scopes: &[String]) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&(host.to_string(), scope_key(scopes)));
        }
    }
}

async fn fetch_token(
    client: &reqwest::Client,
    realm: &str,
    service: &str,
    scopes: &[String],
    creds: Option<&(String, String)>,
) -> Result<Token> {
    let mut url = reqwest::Url::parse(realm)
        .map_err(|e| Error::invalid_argument(format!("invalid realm: {e}")))?;
    {
        let mut query = url.query_pairs_mut();
        if !service.is_empty() {
            query.append_pair("service", service);
        }
        for scope in scopes {
            query.append_pair("scope", scope);
        }
    }
    let mut request = client.get(url);
    if let Some((user, pass)) = creds {
        request = request.basic_auth(user, Some(pass));
    }
    let response = request
        .send()
        .await
        .map_err(|e| Error::unavailable(e.to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::unavailable(e.to_string()))?;
    if !status.is_success() {
        return Err(Error::new(
            super::errors::status_kind(status),
            format!("unexpected status {status}"),
        ));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| Error::unavailable(format!("invalid token response: {e}")))?;
    let value = if parsed.token.is_empty() {
        parsed.access_token
    } else {
        parsed.token
    };
    if value.is_empty() {
        return Err(Error::unavailable("token response without a token"));
    }
    let lifetime = if parsed.expires_in == 0 {
        60
    } else {
        parsed.expires_in
    };
    // Renew a little early rather than send a token that expires in flight.
    let lifetime = Duration::from_secs(lifetime) * 9 / 10;
    Ok(Token {
        value,
        expires: Instant::now() + lifetime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let got = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push", Basic realm="x\"y""#,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].scheme, "bearer");
        assert_eq!(got[0].params["realm"], "https://auth.example/token");
        assert_eq!(got[0].params["service"], "registry.example");
        assert_eq!(got[0].params["scope"], "repository:a/b:pull,push");
        assert_eq!(got[1].scheme, "basic");
        assert_eq!(got[1].params["realm"], "x\"y");
        let got = parse_challenges("Basic realm=Registry");
        assert_eq!(got[0].params["realm"], "Registry");
    }

    #[test]
    fn scope_keys_ignore_order_and_duplicates() {
        let a = vec!["b".to_string(), "a".to_string(), "a".to_string()];
        assert_eq!(scope_key(&a), "a b");
        assert_eq!(repository_scope("x/y", true), "repository:x/y:pull,push");
    }

    #[test]
    fn user_credentials_win_over_docker_config() {
        let config = DockerConfig::parse(br#"{"auths":{"h":{"username":"d","password":"p"}}}"#)
            .expect("config");
        let auth = Authorizer::new(None, config.clone());
        assert_eq!(auth.credentials("h"), Some(("d".into(), "p".into())));
        let auth = Authorizer::new(Some(("u".into(), "v".into())), config);
        assert_eq!(auth.credentials("h"), Some(("u".into(), "v".into())));
        assert_eq!(auth.authorization("h", &[]), None);
    }
}
