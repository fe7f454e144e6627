//! Keys as the files set them: every value with the file and line it came
//! from, so an error or a warning can say where to look.
//!
//! A file is flattened to its leaves (`["grpc", "uid"] → 0`); arrays are
//! leaves. Decoding *takes* the keys berth acts on out of the [`Document`];
//! whatever is left over is what berth ignores, and gets a warning.

use anyhow::{anyhow, Result};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A key's path from the top of the file: `["plugins", "io.containerd.gc.v1.scheduler", "pause_threshold"]`.
pub type KeyPath = Vec<String>;

/// Where a key was set.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// The file.
    pub file: Arc<PathBuf>,
    /// The line, from 1.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.file.display(), self.line)
    }
}

/// One key's value and where it was set.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The value (never a table).
    pub value: toml::Value,
    /// Where it was set.
    pub origin: Origin,
}

/// The leaves of one file, or of several merged, and where each table began.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// Every leaf key.
    pub entries: BTreeMap<KeyPath, Entry>,
    /// Where each table (`[grpc]`, `[plugins."…"]`) was first named.
    pub tables: BTreeMap<KeyPath, Origin>,
}

/// Something in a file berth reads but does not act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// Where it was set.
    pub origin: Origin,
    /// The key or section, as written in TOML.
    pub key: String,
    /// What berth does about it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.key, self.message)
    }
}

/// `plugins."io.containerd.gc.v1.scheduler".pause_threshold`: a path as TOML
/// writes it, quoting segments that are not bare keys.
pub fn display_key(path: &[String]) -> String {
    let bare = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    path.iter()
        .map(|s| if bare(s) { s.clone() } else { format!("{s:?}") })
        .collect::<Vec<_>>()
        .join(".")
}

/// The error for a bad value: file, line and key first.
pub fn bad_value(origin: &Origin, path: &[String], why: impl fmt::Display) -> anyhow::Error {
    anyhow!("config file {}: key {}: {why}", origin, display_key(path))
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Whether `value` is Go's zero value for its type: containerd's merge
/// leaves a default in place when a file sets one of these.
pub fn is_zero(value: &toml::Value) -> bool {
    match value {
        toml::Value::String(s) => s.is_empty(),
        toml::Value::Integer(i) => *i == 0,
        toml::Value::Float(f) => *f == 0.0,
        toml::Value::Boolean(b) => !b,
        toml::Value::Array(a) => a.is_empty(),
        toml::Value::Table(t) => t.is_empty(),
        toml::Value::Datetime(_) => false,
    }
}

impl Document {
    /// Removes `path` and decodes it as a `T`; an error names file, line and key.
    pub fn take<T: DeserializeOwned>(&mut self, path: &[&str]) -> Result<Option<T>> {
        self.take_with(path, |value| {
            value.try_into::<T>().map_err(|e| e.to_string())
        })
    }

    /// Removes `path` and converts it with `convert`; an error names file,
    /// line and key.
    pub fn take_with<T>(
        &mut self,
        path: &[&str],
        convert: impl FnOnce(toml::Value) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        let key: KeyPath = path.iter().map(|s| s.to_string()).collect();
        let Some(entry) = self.entries.remove(&key) else {
            return Ok(None);
        };
        convert(entry.value)
            .map(Some)
            .map_err(|why| bad_value(&entry.origin, &key, why))
    }

    /// Like [`take`](Self::take), but Go's zero value counts as unset, as
    /// it does for containerd's top-level keys.
    pub fn take_nonzero<T: DeserializeOwned>(&mut self, path: &[&str]) -> Result<Option<T>> {
        let key: KeyPath = path.iter().map(|s| s.to_string()).collect();
        if self.entries.get(&key).is_some_and(|e| is_zero(&e.value)) {
            self.entries.remove(&key);
            return Ok(None);
        }
        self.take(path)
    }

    /// Removes every leaf below `prefix`, with its path relative to it.
    pub fn take_below(&mut self, prefix: &[&str]) -> Vec<(KeyPath, Entry)> {
        let prefix: KeyPath = prefix.iter().map(|s| s.to_string()).collect();
        let keys: Vec<KeyPath> = self
            .entries
            .keys()
            .filter(|k| k.len() > prefix.len() && k.starts_with(&prefix))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let entry = self.entries.remove(&k)?;
                Some((k[prefix.len()..].to_vec(), entry))
            })
            .collect()
    }

    /// The first-level names below `prefix` (`plugins` → each plugin).
    pub fn children(&self, prefix: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .keys()
            .map(|k| k.as_slice())
            .chain(self.tables.keys().map(|k| k.as_slice()))
            .filter(|k| k.len() > prefix.len() && k.iter().zip(prefix).all(|(a, b)| a == b))
            .map(|k| k[prefix.len()].clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Where the table at `path` began, or else its first key.
    pub fn table_origin(&self, path: &[String]) -> Option<Origin> {
        self.tables.get(path).cloned().or_else(|| {
            self.entries
                .iter()
                .find(|(k, _)| k.starts_with(path))
                .map(|(_, e)| e.origin.clone())
        })
    }
}

/// Reads a path value: a string, relative paths kept as written.
pub fn path_value(value: toml::Value) -> std::result::Result<PathBuf, String> {
    match value {
        toml::Value::String(s) => Ok(PathBuf::from(s)),
        other => Err(format!(
            "expected a path string, found {}",
            other.type_str()
        )),
    }
}

/// The file a document came from, for messages about the whole file.
pub fn file_origin(file: &Path) -> Origin {
    Origin {
        file: Arc::new(file.to_path_buf()),
        line: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_dots_are_quoted() {
        let path = [
            "plugins",
            "io.containerd.gc.v1.scheduler",
            "pause_threshold",
        ]
        .map(String::from);
        assert_eq!(
            display_key(&path),
            "plugins.\"io.containerd.gc.v1.scheduler\".pause_threshold"
        );
    }

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }
}
