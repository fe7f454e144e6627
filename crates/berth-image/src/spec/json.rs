//! JSON encoded the way Go's `encoding/json` encodes it, so that documents
//! berth writes (the index and manifests an import creates, an export's
//! `index.json` and `manifest.json`) have the same bytes — and so the same
//! digests — as those containerd writes for the same input.
//!
//! serde_json already matches Go for what berth encodes: struct fields in
//! declaration order, maps as sorted `BTreeMap`s, compact output. What
//! differs is string escaping: Go escapes `<`, `>` and `&` as `\u003c`,
//! `\u003e`, `\u0026`, and U+2028/U+2029 as `\u2028`/`\u2029`. Those
//! characters can only occur inside JSON strings, so replacing them in the
//! encoded text is exact.

use berth_core::{Error, Result};
use serde::Serialize;

/// Encodes `value` as Go's `json.Marshal` would.
pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let text = serde_json::to_string(value)
        .map_err(|err| Error::internal(format!("encoding JSON: {err}")))?;
    Ok(go_escape(&text).into_bytes())
}

/// Applies Go's extra escapes to encoded JSON text.
fn go_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn escapes_like_go() {
        let mut map = BTreeMap::new();
        map.insert("b", "<a&b>\u{2028}");
        map.insert("a", "plain");
        let bytes = to_vec(&map).expect("encode");
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            r#"{"a":"plain","b":"\u003ca\u0026b\u003e\u2028"}"#
        );
    }
}
