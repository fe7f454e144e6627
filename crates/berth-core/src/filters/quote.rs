//! Decoding quoted filter strings.
//!
//! containerd decodes quoted field names and values with a copy of Go's
//! `strconv.Unquote` extended to treat `/…/` and `|…|` like `"…"` (so a
//! regular expression full of `"` reads naturally). The escapes are Go's:
//! `\a \b \f \n \r \t \v \\`, an escaped closing quote, `\NNN` (three octal
//! digits, at most 255), `\xNN` (a byte), `\uNNNN` and `\UNNNNNNNN` (a code
//! point). The scanner has already checked the shape; this pass still rejects
//! octal escapes above `\377` and code points above U+10FFFF.
//!
//! `\x` and octal escapes produce raw bytes, which in Go may leave invalid
//! UTF-8 in the string. A Rust `String` cannot hold that, so invalid sequences
//! become U+FFFD. Such a filter could never have equalled a field in
//! containerd either (protobuf strings are valid UTF-8).

/// The one error Go's unquote reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct QuoteSyntax;

impl std::fmt::Display for QuoteSyntax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("quote syntax error")
    }
}

/// Decodes `quoted`, which starts and ends with the same `"`, `/` or `|`.
pub(super) fn unquote(quoted: &str) -> Result<String, QuoteSyntax> {
    let quote = *quoted.as_bytes().first().ok_or(QuoteSyntax)?;
    if quoted.len() < 2 || quoted.as_bytes().last() != Some(&quote) {
        return Err(QuoteSyntax);
    }
    if !matches!(quote, b'"' | b'/' | b'|') {
        return Err(QuoteSyntax);
    }
    let mut rest = quoted.get(1..quoted.len() - 1).ok_or(QuoteSyntax)?;
    if rest.contains('\n') {
        return Err(QuoteSyntax);
    }
    if !rest.contains('\\') && !rest.as_bytes().contains(&quote) {
        return Ok(rest.to_string());
    }
    let mut out = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        rest = unquote_one(rest, quote, &mut out)?;
    }
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Decodes the first character or escape of `s` into `out`; returns the rest.
fn unquote_one<'a>(s: &'a str, quote: u8, out: &mut Vec<u8>) -> Result<&'a str, QuoteSyntax> {
    let mut chars = s.chars();
    match chars.next() {
        Some('\\') => {}
        Some(c) if c.is_ascii() && c as u8 == quote => return Err(QuoteSyntax),
        Some(c) => {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            return Ok(chars.as_str());
        }
        None => return Err(QuoteSyntax),
    }
    let bytes = s.as_bytes();
    let kind = *bytes.get(1).ok_or(QuoteSyntax)?;
    let simple = match kind {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        b'\\' => Some(b'\\'),
        b'"' | b'/' | b'|' | b'\'' if kind == quote => Some(kind),
        _ => None,
    };
    if let Some(byte) = simple {
        out.push(byte);
        return s.get(2..).ok_or(QuoteSyntax);
    }
    match kind {
        b'x' => {
            let v = digits(bytes, 2, 16)?;
            out.push(u8::try_from(v).map_err(|_| QuoteSyntax)?);
            s.get(4..).ok_or(QuoteSyntax)
        }
        b'u' | b'U' => {
            let n = if kind == b'u' { 4 } else { 8 };
            let v = digits(bytes, n, 16)?;
            if v > 0x10_ffff {
                return Err(QuoteSyntax);
            }
            // Go encodes a surrogate half as U+FFFD.
            let c = char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER);
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            s.get(2 + n..).ok_or(QuoteSyntax)
        }
        b'0'..=b'7' => {
            // The first digit is `kind` itself; `digits` reads from index 2.
            let high = u32::from(kind - b'0');
            let v = (high << 6) | digits(bytes, 2, 8)?;
            out.push(u8::try_from(v).map_err(|_| QuoteSyntax)?);
            s.get(4..).ok_or(QuoteSyntax)
        }
        _ => Err(QuoteSyntax),
    }
}

/// The value of the `n` digits in `base` that follow a two-byte escape
/// introducer (`\x`, `\u`, or a backslash and the first octal digit).
fn digits(bytes: &[u8], n: usize, base: u32) -> Result<u32, QuoteSyntax> {
    let digits = bytes.get(2..2 + n).ok_or(QuoteSyntax)?;
    digits.iter().try_fold(0u32, |acc, &b| {
        let d = char::from(b).to_digit(base).ok_or(QuoteSyntax)?;
        Ok(acc * base + d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_strings_lose_their_quotes() {
        assert_eq!(unquote(r#""a b""#), Ok("a b".to_string()));
        assert_eq!(unquote("/[abc]+/"), Ok("[abc]+".to_string()));
        assert_eq!(unquote("|牛|"), Ok("牛".to_string()));
        assert_eq!(unquote(r#""""#), Ok(String::new()));
    }

    #[test]
    fn go_escapes_are_decoded() {
        assert_eq!(
            unquote(r#""\a\b\f\n\r\t\v\\\"""#),
            Ok("\x07\x08\x0c\n\r\t\x0b\\\"".to_string())
        );
        assert_eq!(
            unquote(r#""\101\x42\u0043\U0001F600""#),
            Ok("ABC😀".to_string())
        );
        assert_eq!(unquote(r"/a\/b/"), Ok("a/b".to_string()));
        assert_eq!(unquote(r"|a\|b|"), Ok("a|b".to_string()));
    }

    #[test]
    fn byte_escapes_may_spell_utf8() {
        assert_eq!(unquote(r#""\xc3\xa9\303\251""#), Ok("éé".to_string()));
    }

    #[test]
    fn invalid_utf8_from_byte_escapes_becomes_replacement_character() {
        assert_eq!(unquote(r#""a\xffb""#), Ok("a\u{fffd}b".to_string()));
    }

    #[test]
    fn surrogate_code_point_becomes_replacement_character() {
        assert_eq!(unquote(r#""\ud800""#), Ok("\u{fffd}".to_string()));
    }

    #[test]
    fn out_of_range_escapes_are_syntax_errors() {
        for bad in [
            r#""\400""#,
            r#""\777""#,
            r#""\U00110000""#,
            r#""\UFFFFFFFF""#,
        ] {
            assert_eq!(unquote(bad), Err(QuoteSyntax), "{bad}");
        }
    }

    #[test]
    fn escaping_a_different_quote_is_a_syntax_error() {
        for bad in [r#""\/""#, r#"/\"/"#, r#"|\/|"#, r#""\'""#] {
            assert_eq!(unquote(bad), Err(QuoteSyntax), "{bad}");
        }
    }

    #[test]
    fn malformed_input_is_a_syntax_error_not_a_panic() {
        for bad in [
            "", "\"", "\"a", "a\"", "'a'", "\"a\nb\"", "\"\\\"", "\"a\"b\"", "\"\\x4\"", "\"\\u\"",
        ] {
            assert_eq!(unquote(bad), Err(QuoteSyntax), "{bad:?}");
        }
    }
}
