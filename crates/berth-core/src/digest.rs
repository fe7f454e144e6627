//! Content digests: `algorithm:encoded`, as OCI and containerd write them.
//!
//! berth stores and verifies `sha256` (every registry and containerd use it);
//! other algorithms parse, so a descriptor naming one gets a clear
//! "unsupported" error where content is written rather than a parse error.

use crate::{Error, Result};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A validated digest such as `sha256:e3b0c442…`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

/// The algorithm berth computes.
pub const SHA256: &str = "sha256";

impl Digest {
    /// Parses and validates `algorithm:encoded` (sha256 needs 64 lowercase
    /// hex characters; other algorithms need `[a-z0-9]+` and `[a-zA-Z0-9=_-]+`).
    pub fn parse(s: &str) -> Result<Digest> {
        let invalid = || Error::invalid_argument(format!("invalid digest {s:?}: invalid argument"));
        let (algorithm, encoded) = s.split_once(':').ok_or_else(invalid)?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        let encoded_ok = match algorithm {
            SHA256 => {
                encoded.len() == 64
                    && encoded
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }
            _ => {
                !encoded.is_empty()
                    && encoded
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
            }
        };
        if algorithm_ok && encoded_ok {
            Ok(Digest(s.to_string()))
        } else {
            Err(invalid())
        }
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::from_sha256(Sha256::digest(bytes).into())
    }

    /// The digest of a finished sha256 hash.
    pub fn from_sha256(hash: [u8; 32]) -> Digest {
        Digest(format!("{SHA256}:{}", hex(&hash)))
    }

    /// The algorithm, e.g. `sha256`.
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or_default()
    }

    /// The encoded hash, e.g. the 64 hex characters of a sha256 digest.
    pub fn encoded(&self) -> &str {
        self.0.split_once(':').map(|(_, e)| e).unwrap_or_default()
    }

    /// The whole digest string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        Digest::parse(s)
    }
}

/// Computes a sha256 digest incrementally, for streams.
#[derive(Debug, Clone, Default)]
pub struct Digester(Sha256);

impl Digester {
    /// A fresh sha256 digester.
    pub fn new() -> Self {
        Digester(Sha256::new())
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        Digest::from_sha256(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(Digest::sha256_of(b"").as_str(), EMPTY);
        assert_eq!(Digester::new().finish().as_str(), EMPTY);
    }

    #[test]
    fn parse_accepts_and_splits() {
        let d = Digest::parse(EMPTY).expect("valid");
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(d.encoded().len(), 64);
    }

    #[test]
    fn parse_rejects_malformed_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            ":abc",
            "SHA256:00",
            &EMPTY.to_uppercase(),
        ] {
            let err = Digest::parse(bad).expect_err(bad);
            assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
        }
    }
}
