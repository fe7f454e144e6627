//! One-time tokens for streaming URLs: Exec, Attach and PortForward store
//! their request under a fresh random token, and the streaming endpoint
//! takes it out once. As in the kubelet's streaming package, a token lives
//! one minute, at most 1,000 wait at once, and a token is 8 characters of
//! URL-safe base64.

use base64::Engine;
use berth_core::{Error, ErrorKind, Result};
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a URL stays valid.
pub(crate) const TTL: Duration = Duration::from_secs(60);
/// How many unused URLs may exist at once.
const MAX_IN_FLIGHT: usize = 1000;
const TOKEN_LEN: usize = 8;

/// A request waiting for its client to connect.
#[derive(Clone, Debug)]
pub(crate) enum Pending {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

impl Pending {
    /// The URL path segment of its kind.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        }
    }
}

pub(crate) struct Tokens {
    pending: Mutex<HashMap<String, (Instant, Pending)>>,
    ttl: Duration,
}

impl Default for Tokens {
    /// Tokens living [`TTL`], or as long as the test hook
    /// `BERTH_TEST_STREAM_TOKEN_TTL_MS` says (so a test can see one
    /// expire without waiting a minute).
    fn default() -> Tokens {
        let ttl = std::env::var("BERTH_TEST_STREAM_TOKEN_TTL_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(TTL);
        Tokens {
            pending: Mutex::new(HashMap::new()),
            ttl,
        }
    }
}

impl Tokens {
    /// Stores `request` under a new token.
    pub(crate) fn insert(&self, request: Pending) -> Result<String> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        pending.retain(|_, (expires, _)| *expires > now);
        if pending.len() >= MAX_IN_FLIGHT {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                "maximum number of in-flight requests exceeded",
            ));
        }
        let token = loop {
            let token = random_token();
            if !pending.contains_key(&token) {
                break token;
            }
        };
        pending.insert(token.clone(), (now + self.ttl, request));
        Ok(token)
    }

    /// Takes the request of `token` if it exists and has not expired.
    pub(crate) fn consume(&self, token: &str) -> Option<Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (expires, request) = pending.remove(token)?;
        (expires > Instant::now()).then_some(request)
    }

    #[cfg(test)]
    fn expire_all(&self) {
        let past = Instant::now() - Duration::from_secs(1);
        for (expires, _) in self.pending.lock().expect("ok").values_mut() {
            *expires = past;
        }
    }
}

/// Six random bytes (a v4 UUID's first six are all random) as 8
/// characters of URL-safe base64.
fn random_token() -> String {
    let uuid = uuid::Uuid::new_v4();
    let raw = &uuid.as_bytes()[..TOKEN_LEN * 6 / 8];
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> Pending {
        Pending::Exec(ExecRequest {
            container_id: "c".into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_token_is_used_once() {
        let tokens = Tokens::default();
        let token = tokens.insert(exec()).expect("ok");
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert!(matches!(tokens.consume(&token), Some(Pending::Exec(_))));
        assert!(tokens.consume(&token).is_none());
        assert!(tokens.consume("nonsense").is_none());
    }

    #[test]
    fn expired_tokens_are_refused_and_make_room() {
        let tokens = Tokens::default();
        let token = tokens.insert(exec()).expect("ok");
        tokens.expire_all();
        assert!(tokens.consume(&token).is_none());
        for _ in 0..MAX_IN_FLIGHT {
            tokens.insert(exec()).expect("ok");
        }
        let err = tokens.insert(exec()).expect_err("an error");
        assert_eq!(err.kind(), ErrorKind::ResourceExhausted);
        tokens.expire_all();
        tokens.insert(exec()).expect("expired ones make room");
    }
}
