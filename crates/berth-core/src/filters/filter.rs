//! Parsed filters and how they match objects.

use super::parser;
use crate::{Error, Result};
use regex::Regex;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// Exposes an object's fields to a filter by field path (`["labels", "a.b"]`).
///
/// Return `None` when the field is absent. What "absent" means is the
/// object's call, and containerd's adaptors differ: a container's `id` or
/// `image` is absent when empty, a snapshot's `name` and `parent` are always
/// present (possibly empty), a label is present when its key is in the map.
/// For labels, use [`labels_field`].
///
/// Any `Fn(&[String]) -> Option<String>` closure is an adaptor too.
pub trait Adaptor {
    /// The value at `path`, or `None` when the field is not present.
    fn field(&self, path: &[String]) -> Option<String>;
}

impl<F> Adaptor for F
where
    F: Fn(&[String]) -> Option<String>,
{
    fn field(&self, path: &[String]) -> Option<String> {
        self(path)
    }
}

/// A string map that labels (or annotations) can be looked up in.
pub trait LabelMap {
    /// The value stored under `key`.
    fn label(&self, key: &str) -> Option<&str>;
}

impl<S: BuildHasher> LabelMap for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl LabelMap for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// The adaptor answer for `labels.<rest>`: the label whose key is the rest of
/// the path joined with `.`, as containerd's `checkMap` does.
///
/// So `labels.a.b` and `labels."a.b"` both look up the key `a.b`. Pass the
/// path *after* the `labels` component:
///
/// ```
/// use berth_core::filters::{labels_field, Adaptor, Filter};
/// use std::collections::HashMap;
///
/// let labels = HashMap::from([("com.example.tier".to_string(), "web".to_string())]);
/// let adaptor = |path: &[String]| match path.split_first() {
///     Some((first, rest)) if first == "labels" => labels_field(&labels, rest),
///     _ => None,
/// };
/// let filter = Filter::parse_all(&[r#"labels."com.example.tier"==web"#]).unwrap();
/// assert!(filter.matches(&adaptor));
/// ```
pub fn labels_field<M: LabelMap + ?Sized>(labels: &M, rest: &[String]) -> Option<String> {
    labels.label(&rest.join(".")).map(str::to_string)
}

/// A parsed filter set: alternatives (ORed), each a list of selectors (ANDed).
///
/// The default filter, like [`Filter::always`], matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Empty means "no filters given", which matches everything.
    any: Vec<Vec<Selector>>,
}

impl Filter {
    /// The filter that matches every object.
    pub fn always() -> Filter {
        Filter::default()
    }

    /// Parses one filter string: selectors separated by `,`, all of which must
    /// match. The empty string matches everything.
    ///
    /// Syntax errors are `InvalidArgument`, worded as containerd's:
    /// `filters: parse error: [id== >|,|< x]: expected value or quoted: invalid argument`.
    pub fn parse(filter: &str) -> Result<Filter> {
        Ok(Filter {
            any: vec![parse_one(filter)?],
        })
    }

    /// Parses a List request's filters (ORed); an empty list matches all.
    ///
    /// An object passes when it passes any one of the strings, so an empty
    /// string anywhere in the list makes the whole filter match everything,
    /// as in containerd. The first string that fails to parse fails the call.
    pub fn parse_all<S: AsRef<str>>(filters: &[S]) -> Result<Filter> {
        let any = filters
            .iter()
            .map(|f| parse_one(f.as_ref()))
            .collect::<Result<_>>()?;
        Ok(Filter { any })
    }

    /// Whether `object` passes the filter.
    pub fn matches(&self, object: &dyn Adaptor) -> bool {
        self.any.is_empty()
            || self
                .any
                .iter()
                .any(|all| all.iter().all(|s| s.matches(object)))
    }
}

fn parse_one(filter: &str) -> Result<Vec<Selector>> {
    if filter.is_empty() {
        return Ok(Vec::new());
    }
    parser::parse(filter).map_err(|e| {
        Error::invalid_argument(format!("filters: parse error: {e}: invalid argument"))
    })
}

/// One `<fieldpath>[<operator><value>]` term.
#[derive(Debug, Clone)]
pub(super) struct Selector {
    fieldpath: Vec<String>,
    operator: Operator,
}

/// What a selector checks about its field.
#[derive(Debug, Clone)]
pub(super) enum Operator {
    /// No operator: the field is present.
    Present,
    /// `==`: present and equal.
    Equal(String),
    /// `!=`: not equal, an absent field counting as empty.
    NotEqual(String),
    /// `~=`: the pattern matches somewhere in the value, an absent field
    /// counting as empty.
    Matches(Regex),
}

impl Selector {
    pub(super) fn new(fieldpath: Vec<String>, operator: Operator) -> Self {
        Selector {
            fieldpath,
            operator,
        }
    }

    /// containerd's semantics exactly: only `==` and presence look at whether
    /// the field exists; `!=` and `~=` compare an absent field as `""`, so
    /// `labels.x!=y` holds for objects without the label and `labels.x~=^$`
    /// does too.
    fn matches(&self, object: &dyn Adaptor) -> bool {
        let value = object.field(&self.fieldpath);
        match &self.operator {
            Operator::Present => value.is_some(),
            Operator::Equal(want) => value.as_deref() == Some(want.as_str()),
            Operator::NotEqual(want) => value.as_deref().unwrap_or_default() != want,
            Operator::Matches(re) => re.is_match(value.as_deref().unwrap_or_default()),
        }
    }
}
