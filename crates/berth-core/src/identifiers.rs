//! containerd's identifier rules.
//!
//! Namespaces, container ids, lease ids, snapshot keys of containers and the
//! components of event topics are *identifiers*: short names that end up as
//! path components on disk and as keys in the metadata database. containerd
//! (`pkg/identifiers`) allows one or more runs of ASCII letters and digits
//! joined by single `.`, `_` or `-` characters, at most 76 bytes in all — in
//! the spirit of DNS labels (RFC 1035 §2.3.1) but mixed case, and a digit may
//! follow a dot. Anything that passes is safe as a file name.
//!
//! Failures are `InvalidArgument`, with containerd's message text, including
//! the `: invalid argument` suffix that Go's error wrapping prints.

use crate::{goquote, Error, Result};

/// The longest identifier containerd accepts, in bytes.
pub const MAX_LENGTH: usize = 76;

/// The rule as containerd states it (and prints it in its error message).
pub const PATTERN: &str = r"^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$";

/// Validates an object identifier (namespace, container id, lease id, …).
///
/// The checks run in containerd's order, so the same bad input gets the same
/// message: empty, then too long, then the character rule.
///
/// ```
/// use berth_core::identifiers::validate;
/// assert!(validate("redis-7.2_alpine").is_ok());
/// assert_eq!(
///     validate("a..b").unwrap_err().message(),
///     r#"identifier "a..b" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument"#,
/// );
/// ```
pub fn validate(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid_argument(
            "identifier must not be empty: invalid argument",
        ));
    }
    if id.len() > MAX_LENGTH {
        return Err(Error::invalid_argument(format!(
            "identifier {} greater than maximum length ({MAX_LENGTH} characters): invalid argument",
            goquote::quote(id)
        )));
    }
    if !matches_pattern(id) {
        return Err(Error::invalid_argument(format!(
            "identifier {} must match {PATTERN}: invalid argument",
            goquote::quote(id)
        )));
    }
    Ok(())
}

/// [`PATTERN`] without a regex: only alphanumerics and separators, no
/// separator first, last or next to another one.
fn matches_pattern(id: &str) -> bool {
    // Start as if after a separator, so a leading one (or "") fails.
    let mut after_separator = true;
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() {
            after_separator = false;
        } else if matches!(b, b'.' | b'_' | b'-') && !after_separator {
            after_separator = true;
        } else {
            return false;
        }
    }
    !after_separator
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn containerd_examples_are_valid() {
        for id in [
            "default",
            "Default",
            "k8s.io",
            "moby",
            "a",
            "0",
            "foo.bar.baz",
            "foo-bar_baz",
            "0.1.2",
            "A1-b2_C3.d4",
            &"a".repeat(MAX_LENGTH),
        ] {
            validate(id).unwrap_or_else(|e| panic!("{id:?}: {e}"));
        }
    }

    #[test]
    fn misplaced_or_foreign_characters_must_match_pattern() {
        for id in [
            ".foo", "foo.", "-foo", "foo-", "_foo", "foo_", "foo..bar", "foo._bar", "foo--bar",
            "foo/bar", "foo bar", "foo:bar", "foo@bar", "föo", "foo\n", "\0", "..",
        ] {
            let err = validate(id).expect_err(id);
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{id:?}");
            assert_eq!(
                err.message(),
                format!(
                    "identifier {} must match {PATTERN}: invalid argument",
                    goquote::quote(id)
                )
            );
        }
    }

    #[test]
    fn empty_identifier_is_invalid_argument() {
        let err = validate("").expect_err("empty");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            err.message(),
            "identifier must not be empty: invalid argument"
        );
    }

    #[test]
    fn identifier_over_76_bytes_is_too_long_even_if_well_formed() {
        let id = "a".repeat(MAX_LENGTH + 1);
        let err = validate(&id).expect_err("too long");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            err.message(),
            format!(
                "identifier \"{id}\" greater than maximum length (76 characters): invalid argument"
            )
        );
    }

    #[test]
    fn length_is_checked_before_characters() {
        let id = "/".repeat(MAX_LENGTH + 1);
        let err = validate(&id).expect_err("too long");
        assert!(err.message().contains("greater than maximum length"));
    }

    #[test]
    fn message_quotes_like_go() {
        let err = validate("a\tb\0").expect_err("control characters");
        assert!(err
            .message()
            .starts_with(r#"identifier "a\tb\x00" must match"#));
    }
}
