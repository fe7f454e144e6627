//! containerd's filter language (STUB: the real parser lands with the filters work).
//!
//! Interface that the rest of berth codes against:
//! - [`Filter::parse_all`] parses the `filters` list of a List request: each
//!   string is a conjunction of selectors separated by `,`; the strings are ORed;
//!   an empty list matches everything.
//! - [`Filter::matches`] evaluates it against an [`Adaptor`].

use crate::Result;

/// Exposes an object's fields to a filter by field path (`["labels", "a.b"]`).
pub trait Adaptor {
    /// The value at `path`, or `None` when the field is not present.
    fn field(&self, path: &[String]) -> Option<String>;
}

/// A parsed filter set.
#[derive(Debug, Clone, Default)]
pub struct Filter {}

impl Filter {
    /// Parses a List request's filters (ORed); an empty list matches all.
    pub fn parse_all<S: AsRef<str>>(_filters: &[S]) -> Result<Filter> {
        Ok(Filter {})
    }

    /// Whether `object` passes the filter.
    pub fn matches(&self, _object: &dyn Adaptor) -> bool {
        true
    }
}
