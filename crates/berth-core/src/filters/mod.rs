//! containerd's filter language.
//!
//! Every List call in containerd's API (containers, images, content, leases,
//! snapshots, events) takes `filters`: a list of strings that select objects
//! by their fields. berth accepts the same syntax and gives the same answers,
//! so `ctr containers ls 'labels."com.example.tier"==web'` behaves alike
//! against either daemon.
//!
//! # Syntax
//!
//! A filter string is one or more *selectors* separated by `,`; an object
//! passes the string when it passes **all** of its selectors. The strings of
//! a list are alternatives: an object passes the list when it passes **any**
//! string. An empty list, or an empty string in it, matches everything.
//!
//! ```text
//! selectors := selector ("," selector)*
//! selector  := fieldpath (operator value)?
//! fieldpath := field ("." field)*
//! field     := [A-Za-z0-9_-]+ | "quoted"
//! operator  := "==" | "!=" | "~="
//! value     := printable characters up to "," or whitespace | quoted
//! quoted    := "…" (Go escapes); after ~= also /…/ or |…|
//! ```
//!
//! A *field path* names a field the way protobuf field paths do: `id`,
//! `runtime.name`, `labels.env`. Label keys usually contain dots or slashes,
//! so a component may be quoted: `labels."com.example.tier"`. (An adaptor
//! joins the components after `labels` with `.`, so `labels.a.b` and
//! `labels."a.b"` name the same label; `/` always needs quotes.)
//!
//! The *operators*:
//!
//! | selector | an object passes when |
//! |---|---|
//! | `labels.env` | the field is present |
//! | `id==web` | the field is present and equal to `web` |
//! | `id!=web` | the field is not equal to `web` (absent counts as `""`) |
//! | `image~=^docker` | the regular expression matches somewhere in the field (absent counts as `""`) |
//!
//! A *value* needs no quotes unless it holds `,` or whitespace:
//! `image==docker.io/library/redis:7` works as it is. Quoted values use Go
//! string escapes (`\"`, `\\`, `\n`, `\x41`, `\u00e9`, …). For `~=` the value
//! may also be quoted with `/…/` or `|…|`, handy for patterns with `"`:
//! `name~=/^"x"$/`. Quoting is unescaped before the pattern is compiled, so
//! a regex escape inside quotes needs its backslash doubled
//! (`image~=/^quay\\.io\//`); an unquoted value is taken as it is
//! (`image~=^quay\.io/`).
//!
//! # Errors
//!
//! A string that does not parse fails the whole call with `InvalidArgument`,
//! and the message shows where: `filters: parse error: [id== >|,|< x]:
//! expected value or quoted: invalid argument`. Unlike containerd, which
//! silently matches nothing, berth also rejects an invalid regular expression.
//! Patterns are Rust `regex` syntax, which for practical purposes is Go's
//! RE2 syntax; one difference is that `\d`, `\w`, `\s` and `\b` are
//! Unicode-aware here and ASCII-only in Go.
//!
//! # Matching
//!
//! A filter asks an object for fields through the [`Adaptor`] trait. Each
//! kind of object decides which field paths it has (containers have `id`,
//! `image`, `runtime.name`, `labels.*`; images have `name`, `target.digest`,
//! `target.mediatype`, `labels.*`, `annotations.*`; …); [`labels_field`] gives
//! every labelled object containerd's label lookup.
//!
//! ```
//! use berth_core::filters::Filter;
//!
//! let filter = Filter::parse_all(&["id==web,labels.tier", "image~=^docker"]).unwrap();
//! let web = |path: &[String]| match path.join(".").as_str() {
//!     "id" => Some("web".to_string()),
//!     "labels.tier" => Some("front".to_string()),
//!     _ => None,
//! };
//! assert!(filter.matches(&web));
//! ```

mod filter;
mod parser;
mod quote;
mod scanner;

#[cfg(test)]
mod tests;

pub use filter::{labels_field, Adaptor, Filter, LabelMap};
