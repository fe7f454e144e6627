//! Go's `%q` string quoting.
//!
//! containerd builds most of its messages with `fmt.Errorf("… %q …", value)`,
//! and clients compare, log and sometimes parse that text. Rust's `{:?}` looks
//! similar but differs on exactly the inputs that end up in error messages
//! (control characters, invisible Unicode): `"\0"` vs `"\x00"`,
//! `"\u{200b}"` vs `"\u200b"`. [`quote`] follows Go's `strconv.Quote`, so a
//! berth message that names a user-supplied string reads byte for byte as
//! containerd's does.

use regex::Regex;
use std::fmt::Write as _;
use std::sync::OnceLock;

/// Quotes `s` the way Go's `%q` verb (`strconv.Quote`) does.
///
/// Printable characters stay as they are; `"` and `\` are escaped; the usual
/// C escapes (`\n`, `\t`, …) are used where they exist; other ASCII control
/// characters become `\xNN`, other non-printable characters `\uNNNN` or
/// `\UNNNNNNNN` (lowercase hex).
///
/// ```
/// assert_eq!(berth_core::goquote::quote("a\"b\0"), r#""a\"b\x00""#);
/// ```
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out.push('"');
    out
}

fn push_escaped(out: &mut String, c: char) {
    if c == '"' || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_print(c) {
        out.push(c);
        return;
    }
    let escape = match c {
        '\x07' => "\\a",
        '\x08' => "\\b",
        '\x0c' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\x0b' => "\\v",
        _ => "",
    };
    if !escape.is_empty() {
        out.push_str(escape);
        return;
    }
    // Writing to a String cannot fail.
    let code = u32::from(c);
    let _ = if code < 0x20 || code == 0x7f {
        write!(out, "\\x{code:02x}")
    } else if code < 0x10000 {
        write!(out, "\\u{code:04x}")
    } else {
        write!(out, "\\U{code:08x}")
    };
}

/// Whether Go's `strconv.IsPrint` holds for `c`: a letter, mark, number,
/// punctuation or symbol, or the ASCII space.
pub(crate) fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    is_graphic_non_space(c)
}

/// Whether `c` is in one of the general categories L, M, N, P or S.
///
/// Go answers this from its Unicode tables; std has no such tables, but the
/// `regex` crate (already a dependency for `~=`) carries them.
pub(crate) fn is_graphic_non_space(c: char) -> bool {
    static CLASS: OnceLock<Option<Regex>> = OnceLock::new();
    let class = CLASS.get_or_init(|| Regex::new(r"\A[\p{L}\p{M}\p{N}\p{P}\p{S}]\z").ok());
    match class {
        Some(re) => re.is_match(c.encode_utf8(&mut [0; 4])),
        // Unreachable: the pattern is fixed and valid.
        None => !c.is_control() && !c.is_whitespace(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_only_wrapped() {
        assert_eq!(quote("hello world"), r#""hello world""#);
        assert_eq!(quote(""), r#""""#);
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn control_characters_use_go_escapes() {
        assert_eq!(quote("\x07\x08\x0c\n\r\t\x0b"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(quote("\0\x1b\x7f"), r#""\x00\x1b\x7f""#);
    }

    #[test]
    fn printable_unicode_is_kept_and_invisible_unicode_escaped() {
        assert_eq!(quote("牛é"), "\"牛é\"");
        assert_eq!(quote("\u{200b}\u{a0}"), r#""\u200b\u00a0""#);
        assert_eq!(quote("\u{e0001}"), r#""\U000e0001""#);
    }
}
