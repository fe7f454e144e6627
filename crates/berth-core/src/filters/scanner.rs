//! The filter scanner: input text to tokens.
//!
//! This follows containerd's `pkg/filters/scanner.go` closely, because the
//! token boundaries decide which inputs are accepted and where errors point:
//!
//! - Whitespace between tokens is skipped.
//! - `,` and `.` are separators.
//! - A run of `=`, `!`, `~` is one operator token (`==`, but also `=!~`,
//!   which the parser then rejects).
//! - `"`, `/` and `|` open a quoted token, closed by the same character, with
//!   Go escapes inside and no raw newline.
//! - Right after an operator, anything else starts a *value*: a run of
//!   printable characters up to a `,` or whitespace. So `a==b.c` has the value
//!   `b.c`, and dots and slashes need no quoting in values.
//! - Otherwise `[A-Za-z0-9_-]+` is a field.
//! - A NUL character is illegal anywhere.
//!
//! The scanner records only its first error, as containerd's does: a later
//! problem in the same token (an unterminated string after a bad escape) does
//! not replace the message.

use crate::goquote;

/// One character of input, or the end, or an illegal character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rune {
    Eof,
    Illegal,
    Char(char),
}

/// A token and the input text it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token<'a> {
    Eof,
    /// A quoted string, quotes and escapes included.
    Quoted(&'a str),
    Value(&'a str),
    Field(&'a str),
    Separator,
    Operator(&'a str),
    /// A token that could not be scanned; [`Scanner::error`] says why.
    Illegal,
    /// A character that starts no token here (`?`, `#`, …).
    Unexpected(char),
}

/// Walks the input one character at a time, keeping byte offsets.
#[derive(Debug)]
pub(super) struct Scanner<'a> {
    input: &'a str,
    /// Start of the current character.
    pos: usize,
    /// End of the current character: where the next one starts.
    ppos: usize,
    /// Whether the next token is a value (we just read an operator).
    value: bool,
    err: Option<&'static str>,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(input: &'a str) -> Self {
        Scanner {
            input,
            pos: 0,
            ppos: 0,
            value: false,
            err: None,
        }
    }

    /// Where the character [`peek`](Self::peek) would return starts.
    pub(super) fn offset(&self) -> usize {
        self.ppos
    }

    /// The first error met, for an [`Token::Illegal`].
    pub(super) fn error(&self) -> &'static str {
        self.err.unwrap_or("illegal token")
    }

    fn record(&mut self, msg: &'static str) {
        self.err.get_or_insert(msg);
    }

    fn next(&mut self) -> Rune {
        self.pos = self.ppos;
        let Some(c) = self.input.get(self.ppos..).and_then(|s| s.chars().next()) else {
            return Rune::Eof;
        };
        self.ppos += c.len_utf8();
        if c == '\0' {
            self.record("unexpected null");
            return Rune::Illegal;
        }
        Rune::Char(c)
    }

    /// The next character, without consuming it.
    pub(super) fn peek(&mut self) -> Rune {
        let (pos, ppos) = (self.pos, self.ppos);
        let rune = self.next();
        (self.pos, self.ppos) = (pos, ppos);
        rune
    }

    /// The next token and the offset where it starts.
    pub(super) fn scan(&mut self) -> (usize, Token<'a>) {
        let mut rune = self.next();
        while matches!(rune, Rune::Char(c) if c.is_whitespace()) {
            rune = self.next();
        }
        let start = self.pos;
        let c = match rune {
            Rune::Eof => return (self.pos, Token::Eof),
            Rune::Illegal => return (self.pos, Token::Illegal),
            Rune::Char(c) => c,
        };
        let token = if is_quote(c) {
            if !self.scan_quoted(c) {
                return (start, Token::Illegal);
            }
            Token::Quoted(self.text(start))
        } else if c == ',' || c == '.' {
            self.value = false;
            Token::Separator
        } else if is_operator(c) {
            self.skip_while(is_operator);
            self.value = true;
            Token::Operator(self.text(start))
        } else if self.value {
            self.skip_while(is_value);
            self.value = false;
            Token::Value(self.text(start))
        } else if is_field(c) {
            self.skip_while(is_field);
            Token::Field(self.text(start))
        } else {
            Token::Unexpected(c)
        };
        (start, token)
    }

    fn text(&self, start: usize) -> &'a str {
        self.input.get(start..self.ppos).unwrap_or_default()
    }

    fn skip_while(&mut self, accept: fn(char) -> bool) {
        while matches!(self.peek(), Rune::Char(c) if accept(c)) {
            self.next();
        }
    }

    /// Consumes a quoted string whose opening `quote` was just read.
    /// False when it is unterminated or holds a bad escape.
    fn scan_quoted(&mut self, quote: char) -> bool {
        let mut legal = true;
        let mut rune = self.next();
        while rune != Rune::Char(quote) {
            match rune {
                Rune::Eof | Rune::Illegal | Rune::Char('\n') => {
                    self.record("quoted literal not terminated");
                    return false;
                }
                Rune::Char('\\') => {
                    let (after, ok) = self.scan_escape(quote);
                    legal &= ok;
                    rune = after;
                }
                Rune::Char(_) => rune = self.next(),
            }
        }
        legal
    }

    /// Consumes an escape after its `\`; returns the character after it.
    fn scan_escape(&mut self, quote: char) -> (Rune, bool) {
        let rune = self.next();
        match rune {
            Rune::Char('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\') => (self.next(), true),
            Rune::Char(c) if c == quote => (self.next(), true),
            Rune::Char('0'..='7') => self.scan_digits(rune, 8, 3),
            Rune::Char('x') => self.scan_escape_digits(16, 2),
            Rune::Char('u') => self.scan_escape_digits(16, 4),
            Rune::Char('U') => self.scan_escape_digits(16, 8),
            _ => {
                self.record("illegal escape sequence");
                (rune, false)
            }
        }
    }

    fn scan_escape_digits(&mut self, base: u32, count: u32) -> (Rune, bool) {
        let first = self.next();
        self.scan_digits(first, base, count)
    }

    /// Consumes `count` digits of `base`, `rune` being the first.
    fn scan_digits(&mut self, mut rune: Rune, base: u32, mut count: u32) -> (Rune, bool) {
        while count > 0 && digit_value(rune) < base {
            rune = self.next();
            count -= 1;
        }
        if count > 0 {
            self.record("illegal numeric escape sequence");
            return (rune, false);
        }
        (rune, true)
    }
}

/// How a rune reads in an "unexpected input" message (Go prints U+FFFD for
/// its illegal and end markers).
pub(super) fn display(rune: Rune) -> char {
    match rune {
        Rune::Char(c) => c,
        Rune::Eof | Rune::Illegal => char::REPLACEMENT_CHARACTER,
    }
}

fn digit_value(rune: Rune) -> u32 {
    match rune {
        Rune::Char(c) => c.to_digit(16).unwrap_or(16),
        _ => 16,
    }
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '/' | '|')
}

fn is_operator(c: char) -> bool {
    matches!(c, '=' | '!' | '~')
}

fn is_field(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn is_value(c: char) -> bool {
    c != ',' && !c.is_whitespace() && goquote::is_graphic_non_space(c)
}

#[cfg(test)]
mod tests {
    use super::Token::*;
    use super::*;

    fn tokens(input: &str) -> Vec<(usize, Token<'_>)> {
        let mut scanner = Scanner::new(input);
        let mut out = Vec::new();
        loop {
            let (pos, token) = scanner.scan();
            out.push((pos, token));
            if token == Eof {
                return out;
            }
            assert!(out.len() <= input.len() + 1, "scanner must progress");
        }
    }

    #[test]
    fn selectors_with_operators_and_field_paths() {
        assert_eq!(
            tokens("name==value,labels.foo!=bar"),
            [
                (0, Field("name")),
                (4, Operator("==")),
                (6, Value("value")),
                (11, Separator),
                (12, Field("labels")),
                (18, Separator),
                (19, Field("foo")),
                (22, Operator("!=")),
                (24, Value("bar")),
                (27, Eof),
            ]
        );
    }

    #[test]
    fn value_after_operator_takes_punctuation_and_unicode() {
        assert_eq!(
            tokens(r"a~=[abc]\+.x-y,b==牛"),
            [
                (0, Field("a")),
                (1, Operator("~=")),
                (3, Value(r"[abc]\+.x-y")),
                (14, Separator),
                (15, Field("b")),
                (16, Operator("==")),
                (18, Value("牛")),
                (21, Eof),
            ]
        );
    }

    #[test]
    fn quoted_tokens_keep_their_quotes_and_escapes() {
        assert_eq!(
            tokens(r#"input~=/foo\/bar/,"a \"b\"".c~=|x/y|"#),
            [
                (0, Field("input")),
                (5, Operator("~=")),
                (7, Quoted(r"/foo\/bar/")),
                (17, Separator),
                (18, Quoted(r#""a \"b\"""#)),
                (27, Separator),
                (28, Field("c")),
                (29, Operator("~=")),
                (31, Quoted("|x/y|")),
                (36, Eof),
            ]
        );
    }

    #[test]
    fn whitespace_between_tokens_is_skipped() {
        assert_eq!(
            tokens("foo = bar    "),
            [
                (0, Field("foo")),
                (4, Operator("=")),
                (6, Value("bar")),
                (13, Eof)
            ]
        );
    }

    #[test]
    fn null_is_illegal() {
        let mut scanner = Scanner::new("foo\0bar");
        assert_eq!(scanner.scan(), (0, Field("foo")));
        assert_eq!(scanner.scan(), (3, Illegal));
        assert_eq!(scanner.error(), "unexpected null");
        assert_eq!(scanner.scan(), (4, Field("bar")));
    }

    #[test]
    fn unterminated_quote_is_illegal_at_its_start() {
        for (input, pos) in [("labels.containerd.io/key==value", 20), ("a.\"x\ny\"", 2)] {
            let mut scanner = Scanner::new(input);
            let illegal = std::iter::from_fn(|| Some(scanner.scan()))
                .find(|(_, t)| matches!(t, Illegal | Eof));
            assert_eq!(illegal, Some((pos, Illegal)), "{input:?}");
            assert_eq!(scanner.error(), "quoted literal not terminated");
        }
    }

    #[test]
    fn bad_escapes_are_illegal() {
        for (input, err) in [
            (r#""\g""#, "illegal escape sequence"),
            (r#""\xaz""#, "illegal numeric escape sequence"),
            (r#""\u12""#, "illegal numeric escape sequence"),
            (r#""\8""#, "illegal escape sequence"),
            (r#""abc\"#, "illegal escape sequence"),
            (r#"/\"/"#, "illegal escape sequence"),
        ] {
            let mut scanner = Scanner::new(input);
            assert_eq!(scanner.scan(), (0, Illegal), "{input:?}");
            assert_eq!(scanner.error(), err, "{input:?}");
        }
    }

    #[test]
    fn legal_escapes_scan_as_one_quoted_token() {
        let input = r#""\a\b\f\n\r\t\v\\\"\101\x41\u0041\U00000041""#;
        assert_eq!(tokens(input), [(0, Quoted(input)), (input.len(), Eof)]);
    }

    #[test]
    fn operator_runs_are_one_token() {
        assert_eq!(tokens("a=!~b")[1], (1, Operator("=!~")));
    }
}
