//! containerd's label rules.
//!
//! Labels are free-form `key=value` strings attached to containers, images,
//! content, snapshots, leases and namespaces. containerd gives them meaning
//! only by convention (`containerd.io/gc.ref.content.*`, …); the one rule it
//! enforces (`pkg/labels`) is size: a key and its value together may not exceed
//! 4096 bytes. Keys are not otherwise validated — an empty key is allowed.
//!
//! The error names the key, cut to its first 64 bytes so that an oversized key
//! does not produce an oversized message.

use crate::{Error, Result};
use std::collections::HashMap;

/// The largest a label's key and value may be together, in bytes.
pub const MAX_SIZE: usize = 4096;

/// How much of the key the error message shows, in bytes.
const KEY_SHOWN: usize = 64;

/// Validates one label key and value: together at most [`MAX_SIZE`] bytes.
///
/// ```
/// use berth_core::labels::validate;
/// assert!(validate("containerd.io/gc.root", "2024-01-01T00:00:00Z").is_ok());
/// assert!(validate("k", &"v".repeat(4096)).is_err());
/// ```
pub fn validate(key: &str, value: &str) -> Result<()> {
    let total = key.len() + value.len();
    if total <= MAX_SIZE {
        return Ok(());
    }
    Err(Error::invalid_argument(format!(
        "label key and value length ({total} bytes) greater than maximum size \
         ({MAX_SIZE} bytes), key: {}: invalid argument",
        key_prefix(key)
    )))
}

/// Validates every label of a map.
///
/// containerd walks the map in Go's random order and reports the first bad
/// label it meets; berth reports the bad label with the smallest key, so the
/// same request always gets the same message.
pub fn validate_all(labels: &HashMap<String, String>) -> Result<()> {
    let worst = labels
        .iter()
        .filter(|(k, v)| k.len() + v.len() > MAX_SIZE)
        .min_by(|a, b| a.0.cmp(b.0));
    match worst {
        Some((k, v)) => validate(k, v),
        None => Ok(()),
    }
}

/// The first [`KEY_SHOWN`] bytes of `key`. Go slices bytes and may split a
/// character; Rust strings cannot hold half a character, so the cut moves back
/// to the nearest character boundary.
fn key_prefix(key: &str) -> &str {
    let mut end = key.len().min(KEY_SHOWN);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn label_of_exactly_4096_bytes_is_valid() {
        validate("key", &"v".repeat(MAX_SIZE - 3)).expect("at the limit");
        validate("", "").expect("empty key and value");
    }

    #[test]
    fn label_over_4096_bytes_is_invalid_argument_naming_the_key() {
        let err = validate("key", &"v".repeat(MAX_SIZE - 2)).expect_err("over");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            err.message(),
            "label key and value length (4097 bytes) greater than maximum size \
             (4096 bytes), key: key: invalid argument"
        );
    }

    #[test]
    fn long_key_is_cut_to_64_bytes_in_the_message() {
        let key = format!("{}{}", "k".repeat(64), "TAIL");
        let err = validate(&key, &"v".repeat(MAX_SIZE)).expect_err("over");
        assert!(err
            .message()
            .ends_with(&format!("key: {}: invalid argument", "k".repeat(64))));
    }

    #[test]
    fn cut_never_splits_a_character() {
        let key = format!("{}é", "k".repeat(63)); // é spans bytes 63..65
        let err = validate(&key, &"v".repeat(MAX_SIZE)).expect_err("over");
        assert!(err
            .message()
            .ends_with(&format!("key: {}: invalid argument", "k".repeat(63))));
    }

    #[test]
    fn validate_all_reports_the_smallest_bad_key() {
        let big = "v".repeat(MAX_SIZE);
        let labels: HashMap<String, String> = [
            ("ok".to_string(), "fine".to_string()),
            ("b".to_string(), big.clone()),
            ("a".to_string(), big),
        ]
        .into_iter()
        .collect();
        let err = validate_all(&labels).expect_err("two bad labels");
        assert!(err.message().ends_with("key: a: invalid argument"));
    }

    #[test]
    fn validate_all_accepts_small_labels() {
        let labels: HashMap<String, String> =
            [("containerd.io/gc.root".to_string(), "x".to_string())]
                .into_iter()
                .collect();
        validate_all(&labels).expect("small labels");
        validate_all(&HashMap::new()).expect("no labels");
    }
}
