//! Credentials from a Docker `config.json` (`docker login` writes them):
//!
//! ```json
//! {"auths": {"registry.example.com": {"auth": "base64(user:password)"},
//!            "https://index.docker.io/v1/": {"username": "u", "password": "p"}}}
//! ```
//!
//! Credential helpers (`credsStore`, `credHelpers`) are not run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use berth_core::{Error, Result};
use serde::Deserialize;

/// The `auths` of a Docker config file.
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    auths: HashMap<String, (String, String)>,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    auths: HashMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// `https://host/v1/` → `host`; `docker.io` names share one key.
fn normalize_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

impl DockerConfig {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<DockerConfig> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::from(e).context(format!("read {}", path.display()))),
        };
        Self::parse(&text).map_err(|e| e.context(format!("docker config {}", path.display())))
    }

    /// Parses the JSON text of a config file.
    pub fn parse(text: &[u8]) -> Result<DockerConfig> {
        let file: File =
            serde_json::from_slice(text).map_err(|e| Error::invalid_argument(e.to_string()))?;
        let mut auths = HashMap::new();
        for (key, entry) in file.auths {
            let creds = if !entry.auth.is_empty() {
                decode_auth(&entry.auth)
                    .ok_or_else(|| Error::invalid_argument(format!("invalid auth for {key}")))?
            } else if !entry.username.is_empty() {
                (entry.username, entry.password)
            } else {
                continue;
            };
            auths.insert(normalize_key(&key), creds);
        }
        Ok(DockerConfig { auths })
    }

    /// The username and password stored for `host` (`host[:port]`).
    pub fn credentials(&self, host: &str) -> Option<(String, String)> {
        self.auths.get(&normalize_key(host)).cloned()
    }
}

fn decode_auth(auth: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_by_auth_string_or_username() {
        let config = DockerConfig::parse(
            br#"{"auths": {
                "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcjN0"},
                "https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
                "empty.example": {}
            }}"#,
        )
        .expect("parse");
        assert_eq!(
            config.credentials("127.0.0.1:5000"),
            Some(("alice".into(), "s3cr3t".into()))
        );
        assert_eq!(
            config.credentials("registry-1.docker.io"),
            Some(("bob".into(), "pw".into()))
        );
        assert_eq!(config.credentials("empty.example"), None);
        assert!(DockerConfig::parse(br#"{"auths":{"x":{"auth":"!!"}}}"#).is_err());
    }
}
