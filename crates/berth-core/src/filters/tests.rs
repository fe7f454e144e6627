//! Behaviour of parsed filters against objects, after containerd's
//! `filter_test.go` corpus.

use super::*;
use crate::ErrorKind;
use std::collections::HashMap;

/// A labelled object with a couple of plain fields.
#[derive(Debug, Default)]
struct Entry {
    id: &'static str,
    image: &'static str,
    labels: HashMap<String, String>,
}

impl Entry {
    fn new(id: &'static str, image: &'static str, labels: &[(&str, &str)]) -> Self {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Entry { id, image, labels }
    }
}

/// Shaped like containerd's container adaptor: empty fields are absent.
impl Adaptor for Entry {
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        let present = |v: &str| (!v.is_empty()).then(|| v.to_string());
        match first.as_str() {
            "id" => present(self.id),
            "image" => present(self.image),
            "labels" => labels_field(&self.labels, rest),
            _ => None,
        }
    }
}

fn corpus() -> Vec<Entry> {
    vec![
        Entry::new("x", "docker.io/library/redis:7", &[("a.b", "c")]),
        Entry::new("y", "quay.io/x", &[("a.b", "d"), ("tier", "web")]),
        Entry::new("z", "", &[("note", "too complex, yo")]),
        Entry::new("w", "docker.io/busybox", &[("k\"q\\", "v")]),
    ]
}

/// The ids of the corpus entries that pass `filters`.
fn ids(filters: &[&str]) -> Vec<&'static str> {
    let filter = Filter::parse_all(filters).unwrap_or_else(|e| panic!("{filters:?}: {e}"));
    corpus()
        .into_iter()
        .filter(|e| filter.matches(e))
        .map(|e| e.id)
        .collect()
}

fn parse_error(filter: &str) -> crate::Error {
    let err = Filter::parse_all(&[filter]).expect_err(filter);
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{filter:?}");
    err
}

#[test]
fn equality_selects_by_field() {
    assert_eq!(ids(&["id==x"]), ["x"]);
    assert_eq!(ids(&["id==nope"]), Vec::<&str>::new());
}

#[test]
fn quoted_label_key_with_dots_selects_by_label() {
    assert_eq!(ids(&[r#"labels."a.b"==c"#]), ["x"]);
    assert_eq!(ids(&["labels.a.b==d"]), ["y"], "dotted path joins with '.'");
}

#[test]
fn regex_match_is_unanchored_unless_anchored() {
    assert_eq!(ids(&["image~=^docker"]), ["x", "w"]);
    assert_eq!(ids(&["image~=redis"]), ["x"]);
    assert_eq!(ids(&[r"image~=^quay\.io/"]), ["y"]);
    assert_eq!(ids(&["image~=|box$|"]), ["w"]);
}

#[test]
fn regex_escapes_inside_quotes_are_doubled() {
    // Quoted strings are unescaped first (Go rules), so `\.` is an illegal
    // escape there; `\\.` reaches the regex as `\.`. Unquoted values are raw.
    assert_eq!(ids(&[r"image~=/^quay\\.io\//"]), ["y"]);
    assert!(parse_error(r"image~=/^quay\.io/")
        .message()
        .ends_with("illegal escape sequence: invalid argument"));
}

#[test]
fn comma_requires_every_selector() {
    assert_eq!(ids(&["labels.a.b,image~=^docker"]), ["x"]);
    assert_eq!(ids(&["id==x,labels.tier"]), Vec::<&str>::new());
}

#[test]
fn separate_filters_are_alternatives() {
    assert_eq!(ids(&["id==x", "labels.tier==web"]), ["x", "y"]);
    assert_eq!(ids(&["id==nope", "id==z"]), ["z"]);
}

#[test]
fn field_path_alone_tests_presence() {
    assert_eq!(ids(&["labels.tier"]), ["y"]);
    assert_eq!(ids(&["image"]), ["x", "y", "w"], "empty image is absent");
    assert_eq!(ids(&["unknown"]), Vec::<&str>::new());
}

#[test]
fn not_equal_counts_absent_fields_as_empty() {
    assert_eq!(ids(&["id!=x"]), ["y", "z", "w"]);
    assert_eq!(ids(&["labels.tier!=web"]), ["x", "z", "w"]);
    assert_eq!(ids(&[r#"image!="""#]), ["x", "y", "w"]);
}

#[test]
fn regex_sees_absent_fields_as_empty() {
    assert_eq!(ids(&["labels.tier~=/^$/"]), ["x", "z", "w"]);
}

#[test]
fn quoted_values_may_hold_commas_spaces_and_escapes() {
    assert_eq!(ids(&[r#"labels.note=="too complex, yo""#]), ["z"]);
    assert_eq!(ids(&[r#"labels."k\"q\\"==v"#]), ["w"]);
    assert_eq!(ids(&[r#"id=="\x78""#]), ["x"]);
    assert_eq!(ids(&[r#"id=="\u0079""#]), ["y"]);
}

#[test]
fn unquoted_values_may_hold_punctuation() {
    assert_eq!(ids(&["image==docker.io/library/redis:7"]), ["x"]);
}

#[test]
fn empty_input_matches_everything() {
    let all = ["x", "y", "z", "w"];
    assert_eq!(ids(&[]), all);
    assert_eq!(ids(&[""]), all);
    assert_eq!(ids(&["", ""]), all);
    assert_eq!(ids(&["id==x", ""]), all, "an empty alternative passes all");
    assert!(Filter::always().matches(&corpus()[0]));
    assert!(Filter::default().matches(&corpus()[0]));
    assert!(Filter::parse("").expect("empty").matches(&corpus()[0]));
}

#[test]
fn missing_value_is_invalid_argument() {
    assert_eq!(
        parse_error("id==").message(),
        "filters: parse error: [id==]: expected value or quoted: invalid argument"
    );
}

#[test]
fn missing_field_path_is_invalid_argument() {
    assert_eq!(
        parse_error("==x").message(),
        "filters: parse error: [ >|=|< =x]: expected field or quoted: invalid argument"
    );
}

#[test]
fn unterminated_quote_is_invalid_argument() {
    for (filter, want) in [
        (
            r#"labels."a.b==c"#,
            r#"filters: parse error: [labels. >|"|< a.b==c]: quoted literal not terminated: invalid argument"#,
        ),
        (
            r#"id=="x"#,
            r#"filters: parse error: [id== >|"|< x]: quoted literal not terminated: invalid argument"#,
        ),
        (
            "image~=/^docker",
            "filters: parse error: [image~= >|/|< ^docker]: quoted literal not terminated: invalid argument",
        ),
    ] {
        assert_eq!(parse_error(filter).message(), want);
    }
}

#[test]
fn bad_regex_is_invalid_argument() {
    assert_eq!(
        parse_error("image~=[").message(),
        r#"filters: parse error: [image~= >|[|< ]: invalid regular expression "[": unclosed character class: invalid argument"#
    );
    parse_error("image~=a{2,1}");
}

#[test]
fn one_bad_filter_fails_the_list() {
    let err = Filter::parse_all(&["id==x", "id=="]).expect_err("second is bad");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn alternate_quotes_are_only_for_regex_values() {
    assert!(parse_error("labels.|a|==x")
        .message()
        .ends_with("invalid quote encountered: invalid argument"));
    assert!(parse_error("id==/x/")
        .message()
        .ends_with("invalid quote encountered: invalid argument"));
}

#[test]
fn trailing_or_doubled_separators_are_invalid_argument() {
    for filter in [
        "id==x,",
        ",id==x",
        "id==x,,id==y",
        "labels.",
        "labels..a",
        "id==x y",
    ] {
        parse_error(filter);
    }
}

#[test]
fn closures_are_adaptors() {
    let filter = Filter::parse("topic~=^/tasks/,namespace==default").expect("valid");
    let event = |path: &[String]| match path {
        [f] if f == "topic" => Some("/tasks/exit".to_string()),
        [f] if f == "namespace" => Some("default".to_string()),
        _ => None,
    };
    assert!(filter.matches(&event));
}

/// A fixed-seed xorshift generator: deterministic, no dependency.
struct Garbler(u64);

impl Garbler {
    const ALPHABET: &'static str = "ab_-09.,=!~\"/|\\ \t\n\0?xuU7牛é\u{200b}\u{fffd}[](){}*+^$";

    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as usize
    }

    fn char(&mut self) -> char {
        let alphabet: Vec<char> = Self::ALPHABET.chars().collect();
        alphabet[self.next() % alphabet.len()]
    }

    fn random(&mut self) -> String {
        let len = self.next() % 40;
        (0..len).map(|_| self.char()).collect()
    }

    /// A few random edits of a valid filter, so the parser gets deep too.
    fn mutate(&mut self, valid: &str) -> String {
        let mut chars: Vec<char> = valid.chars().collect();
        for _ in 0..self.next() % 4 {
            let i = self.next() % (chars.len() + 1);
            let c = self.char();
            match (self.next() % 3, i < chars.len()) {
                (0, true) => chars[i] = c,
                (1, true) => {
                    chars.remove(i);
                }
                _ => chars.insert(i, c),
            }
        }
        chars.into_iter().collect()
    }
}

#[test]
fn garbled_input_is_parsed_or_rejected_without_panicking() {
    let valid = [
        r#"labels."a.b"==c,id~=/^x\/y$/,image!=q"#,
        r#"id=="\x41\101\u0041\U00000041",labels.tier"#,
        "image~=|^docker|,labels.note",
    ];
    let mut garbler = Garbler(0x9e37_79b9_7f4a_7c15);
    let objects = corpus();
    let mut accepted = 0;
    for round in 0..20_000 {
        let input = match round % 2 {
            0 => garbler.random(),
            _ => garbler.mutate(valid[round % valid.len()]),
        };
        match Filter::parse_all(&[input.as_str()]) {
            Ok(filter) => {
                accepted += 1;
                for object in &objects {
                    filter.matches(object);
                }
            }
            Err(err) => assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{input:?}"),
        }
    }
    assert!(accepted > 100, "mutations should leave some filters valid");
}
