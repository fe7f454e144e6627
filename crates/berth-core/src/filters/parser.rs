//! The filter parser: tokens to selectors.
//!
//! A recursive-descent parser over the grammar in the module docs, shaped like
//! containerd's `pkg/filters/parser.go` so that the same input fails at the
//! same place with the same words. Errors render as containerd's do:
//! `[before >|at|< after]: what was expected`, or `[input]: …` when the
//! problem is the end of the input.
//!
//! Two containerd details kept on purpose: only `peek` (not `scan`) looks
//! between a selector and the next `,`, so whitespace *after* a value or a
//! bare field path is "unexpected input" even though whitespace before an
//! operator or value is skipped; and `/…/` or `|…|` quoting is allowed only
//! for the value of `~=`.

use super::filter::{Operator, Selector};
use super::quote;
use super::scanner::{self, Rune, Scanner, Token};
use crate::goquote;
use regex::Regex;
use std::fmt;

/// Where parsing stopped and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ParseError {
    input: String,
    pos: usize,
    msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self
            .input
            .get(self.pos..)
            .and_then(|rest| rest.chars().next());
        match at {
            Some(c) => {
                let before = self.input.get(..self.pos).unwrap_or_default();
                let after = self
                    .input
                    .get(self.pos + c.len_utf8()..)
                    .unwrap_or_default();
                write!(f, "[{before} >|{c}|< {after}]: {}", self.msg)
            }
            None => write!(f, "[{}]: {}", self.input, self.msg),
        }
    }
}

/// Parses one non-empty filter string into the selectors that must all match.
pub(super) fn parse(input: &str) -> Result<Vec<Selector>, ParseError> {
    Parser {
        input,
        scanner: Scanner::new(input),
    }
    .selectors()
}

struct Parser<'a> {
    input: &'a str,
    scanner: Scanner<'a>,
}

impl Parser<'_> {
    fn selectors(&mut self) -> Result<Vec<Selector>, ParseError> {
        let mut all = vec![self.selector()?];
        loop {
            match self.scanner.peek() {
                Rune::Char(',') => {
                    let (pos, token) = self.scanner.scan();
                    if token != Token::Separator {
                        return Err(self.error(pos, "expected a separator"));
                    }
                    all.push(self.selector()?);
                }
                Rune::Eof => return Ok(all),
                other => {
                    let msg = format!("unexpected input: {}", scanner::display(other));
                    return Err(self.error(self.scanner.offset(), msg));
                }
            }
        }
    }

    fn selector(&mut self) -> Result<Selector, ParseError> {
        let fieldpath = self.fieldpath()?;
        if matches!(self.scanner.peek(), Rune::Char(',') | Rune::Eof) {
            return Ok(Selector::new(fieldpath, Operator::Present));
        }
        let op = self.operator()?;
        let is_match = op == "~=";
        let (pos, value) = self.value(is_match)?;
        let operator = match op {
            "==" => Operator::Equal(value),
            "!=" => Operator::NotEqual(value),
            _ => Operator::Matches(self.regex(pos, &value)?),
        };
        Ok(Selector::new(fieldpath, operator))
    }

    fn fieldpath(&mut self) -> Result<Vec<String>, ParseError> {
        let mut path = vec![self.field()?];
        while self.scanner.peek() == Rune::Char('.') {
            let (pos, token) = self.scanner.scan();
            if token != Token::Separator {
                return Err(self.error(pos, "expected a field separator (`.`)"));
            }
            path.push(self.field()?);
        }
        Ok(path)
    }

    fn field(&mut self) -> Result<String, ParseError> {
        match self.scanner.scan() {
            (_, Token::Field(s)) => Ok(s.to_string()),
            (pos, Token::Quoted(s)) => self.unquote(pos, s, false),
            (pos, Token::Illegal) => Err(self.error(pos, self.scanner.error())),
            (pos, _) => Err(self.error(pos, "expected field or quoted")),
        }
    }

    /// The operator text, one of `==`, `!=`, `~=`.
    fn operator(&mut self) -> Result<&'static str, ParseError> {
        match self.scanner.scan() {
            (_, Token::Operator("==")) => Ok("=="),
            (_, Token::Operator("!=")) => Ok("!="),
            (_, Token::Operator("~=")) => Ok("~="),
            (pos, Token::Operator(other)) => {
                let msg = format!("unsupported operator {}", goquote::quote(other));
                Err(self.error(pos, msg))
            }
            (pos, Token::Illegal) => Err(self.error(pos, self.scanner.error())),
            (pos, _) => Err(self.error(pos, r#"expected an operator ("=="|"!="|"~=")"#)),
        }
    }

    /// The value and where it starts.
    fn value(&mut self, allow_alt_quotes: bool) -> Result<(usize, String), ParseError> {
        match self.scanner.scan() {
            (pos, Token::Value(s) | Token::Field(s)) => Ok((pos, s.to_string())),
            (pos, Token::Quoted(s)) => Ok((pos, self.unquote(pos, s, allow_alt_quotes)?)),
            (pos, Token::Illegal) => Err(self.error(pos, self.scanner.error())),
            (pos, _) => Err(self.error(pos, "expected value or quoted")),
        }
    }

    fn unquote(&self, pos: usize, quoted: &str, allow_alts: bool) -> Result<String, ParseError> {
        if !allow_alts && !quoted.starts_with('"') {
            return Err(self.error(pos, "invalid quote encountered"));
        }
        quote::unquote(quoted).map_err(|e| self.error(pos, format!("unquoting failed: {e}")))
    }

    /// containerd compiles the pattern only when matching, and an invalid one
    /// then silently matches nothing; berth rejects it up front instead.
    fn regex(&self, pos: usize, pattern: &str) -> Result<Regex, ParseError> {
        Regex::new(pattern).map_err(|e| {
            let msg = format!(
                "invalid regular expression {}: {}",
                goquote::quote(pattern),
                regex_reason(&e)
            );
            self.error(pos, msg)
        })
    }

    fn error(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        ParseError {
            input: self.input.to_string(),
            pos,
            msg: msg.into(),
        }
    }
}

/// The one-line reason from a regex error, whose text is a multi-line
/// diagram ending in `error: <reason>`.
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    match text
        .lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
    {
        Some(reason) => reason.to_string(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(input: &str) -> String {
        match parse(input) {
            Ok(selectors) => panic!("{input:?} parsed to {selectors:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_point_at_the_offending_character() {
        for (input, want) in [
            ("==x", "[ >|=|< =x]: expected field or quoted"),
            (
                "labels.|foo|==x",
                "[labels. >|||< foo|==x]: invalid quote encountered",
            ),
            (
                r#"labels.?"a".post==present"#,
                r#"[labels. >|?|< "a".post==present]: expected field or quoted"#,
            ),
            (
                "image~=,id?=?fbaq",
                "[image~= >|,|< id?=?fbaq]: expected value or quoted",
            ),
            (
                "labels.ns/key==value",
                "[labels.ns >|/|< key==value]: quoted literal not terminated",
            ),
            (
                "labels.key==/value",
                "[labels.key== >|/|< value]: quoted literal not terminated",
            ),
            ("name=foo", r#"[name >|=|< foo]: unsupported operator "=""#),
            (
                "name foo",
                r#"[name  >|f|< oo]: expected an operator ("=="|"!="|"~=")"#,
            ),
            ("a==b c", "[a==b >| |< c]: unexpected input:  "),
            ("a==\"x\"y", "[a==\"x\" >|y|< ]: unexpected input: y"),
            (r#"a=="\q""#, r#"[a== >|"|< \q"]: illegal escape sequence"#),
            (
                r#"a=="\400""#,
                r#"[a== >|"|< \400"]: unquoting failed: quote syntax error"#,
            ),
            ("a\0", "[a >|\0|< ]: unexpected null"),
            ("a==b\0", "[a==b >|\0|< ]: unexpected input: \u{fffd}"),
            ("\0", "[ >|\0|< ]: unexpected null"),
            ("a.\"b", "[a. >|\"|< b]: quoted literal not terminated"),
            ("牛", "[ >|牛|< ]: expected field or quoted"),
        ] {
            assert_eq!(error(input), want, "{input:?}");
        }
    }

    #[test]
    fn errors_at_the_end_show_the_whole_input() {
        for (input, want) in [
            ("id==", "[id==]: expected value or quoted"),
            ("name==foo,", "[name==foo,]: expected field or quoted"),
            ("labels.", "[labels.]: expected field or quoted"),
            ("   ", "[   ]: expected field or quoted"),
        ] {
            assert_eq!(error(input), want, "{input:?}");
        }
    }

    #[test]
    fn bad_regex_points_at_the_value() {
        assert_eq!(
            error("image~=["),
            r#"[image~= >|[|< ]: invalid regular expression "[": unclosed character class"#
        );
        assert!(error("image~=/a(/")
            .starts_with("[image~= >|/|< a(/]: invalid regular expression \"a(\""));
    }

    #[test]
    fn whitespace_before_operator_and_value_is_skipped() {
        let selectors = parse("  name  ==  foo").expect("valid");
        assert_eq!(selectors.len(), 1);
    }
}
