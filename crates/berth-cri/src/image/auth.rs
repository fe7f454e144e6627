//! Registry credentials from a PullImage request's `AuthConfig`, as
//! containerd's CRI `ParseAuth` reads them: user name and password, or
//! `auth` (base64 of `user:password`), or an identity token (a refresh
//! token, sent with an empty user name); none of these if the config names
//! another server.

use base64::Engine;
use berth_client::transfer::Credentials;
use berth_core::{Error, Result};
use k8s_cri::v1::AuthConfig;

/// The credentials `auth` gives for registry `host`; `None` for anonymous
/// access.
pub(crate) fn credentials(auth: &AuthConfig, host: &str) -> Result<Option<Credentials>> {
    if !auth.server_address.is_empty() && server_host(&auth.server_address) != host {
        return Ok(None);
    }
    if !auth.username.is_empty() {
        return Ok(Some(Credentials {
            username: auth.username.clone(),
            secret: auth.password.clone(),
        }));
    }
    if !auth.identity_token.is_empty() {
        return Ok(Some(Credentials {
            username: String::new(),
            secret: auth.identity_token.clone(),
        }));
    }
    if !auth.auth.is_empty() {
        return decode(&auth.auth).map(Some);
    }
    Ok(None)
}

/// The host (and port) of a server address, with or without a scheme and
/// path (`https://127.0.0.1:5000/v2/` → `127.0.0.1:5000`).
fn server_host(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// `auth`: base64 of `user:password` (trailing NULs trimmed, as containerd
/// trims them).
fn decode(auth: &str) -> Result<Credentials> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .map_err(|e| Error::invalid_argument(format!("invalid auth in AuthConfig: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| Error::invalid_argument("invalid decoded auth in AuthConfig: no ':'"))?;
    Ok(Credentials {
        username: user.to_string(),
        secret: password.trim_matches('\0').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, secret: &str) -> Option<Credentials> {
        Some(Credentials {
            username: user.into(),
            secret: secret.into(),
        })
    }

    #[test]
    fn user_and_password_come_first() {
        let auth = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            auth: "eDp5".into(),
            ..AuthConfig::default()
        };
        assert_eq!(credentials(&auth, "r.io").expect("ok"), creds("u", "p"));
    }

    #[test]
    fn auth_is_base64_user_colon_password() {
        let auth = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("alice:s3:cret\0"),
            ..AuthConfig::default()
        };
        assert_eq!(
            credentials(&auth, "r.io").expect("ok"),
            creds("alice", "s3:cret")
        );
        let bad = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("nocolon"),
            ..AuthConfig::default()
        };
        assert!(credentials(&bad, "r.io").is_err());
        let not_base64 = AuthConfig {
            auth: "!!".into(),
            ..AuthConfig::default()
        };
        assert!(credentials(&not_base64, "r.io").is_err());
    }

    #[test]
    fn an_identity_token_is_a_refresh_token() {
        let auth = AuthConfig {
            identity_token: "tok".into(),
            ..AuthConfig::default()
        };
        assert_eq!(credentials(&auth, "r.io").expect("ok"), creds("", "tok"));
    }

    #[test]
    fn credentials_for_another_server_are_not_sent() {
        let auth = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            server_address: "https://127.0.0.1:5000/v2/".into(),
            ..AuthConfig::default()
        };
        assert_eq!(
            credentials(&auth, "127.0.0.1:5000").expect("ok"),
            creds("u", "p")
        );
        assert_eq!(credentials(&auth, "127.0.0.1:5001").expect("ok"), None);
        let bare = AuthConfig {
            server_address: "r.io".into(),
            ..auth
        };
        assert_eq!(credentials(&bare, "r.io").expect("ok"), creds("u", "p"));
        assert_eq!(
            credentials(&AuthConfig::default(), "r.io").expect("ok"),
            None
        );
    }
}
