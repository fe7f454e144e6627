//! CNI spec versions: parsing and ordering of `cniVersion` strings.

use berth_core::{Error, Result};

/// The spec versions whose results berth parses (0.1.x/0.2.x results, with
/// `ip4`/`ip6` keys, are not supported).
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// `"1.0.0"` as a comparable triple; an empty version is libcni's default,
/// 0.1.0.
pub fn parse(version: &str) -> Result<(u32, u32, u32)> {
    if version.is_empty() {
        return Ok((0, 1, 0));
    }
    let mut parts = version.split('.').map(|p| p.parse::<u32>());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) => Ok((a, b, c)),
        (Some(Ok(a)), Some(Ok(b)), None, None) => Ok((a, b, 0)),
        _ => Err(Error::invalid_argument(format!(
            "invalid cniVersion {version:?}"
        ))),
    }
}

/// Whether `version` is at least `min`.
pub fn at_least(version: &str, min: &str) -> Result<bool> {
    Ok(parse(version)? >= parse(min)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert!(at_least("1.0.0", "0.4.0").expect("parse"));
        assert!(at_least("0.10.0", "0.4.0").expect("parse"));
        assert!(!at_least("0.3.1", "0.4.0").expect("parse"));
        assert!(!at_least("", "0.3.0").expect("parse"));
        assert!(parse("one").is_err());
    }
}
