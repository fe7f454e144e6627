//! Reading config files and their `imports`, and merging them as containerd
//! does (`LoadConfig` and `mergeConfig` in containerd 1.6's
//! `services/server/config/config.go`):
//!
//! - the main file is read first, then the files it imports, then theirs
//!   (breadth first); a file already read is skipped, so cycles end;
//! - an import is a path relative to the directory of the file naming it,
//!   or a pattern with `*` (or `?`) expanded in sorted order — relative
//!   patterns resolve against that directory too, as in containerd 2.x;
//! - a later file overrides an earlier one key by key, except that Go's zero
//!   value (`""`, `0`, `false`, `[]`) never overrides, `disabled_plugins`
//!   and `required_plugins` are appended, and each `[plugins."<type>.<id>"]`,
//!   `[proxy_plugins.<name>]` and `[stream_processors.<name>]` section
//!   replaces the earlier one whole (version 3 merges plugin sections key by
//!   key instead, as containerd 2.x does).

use super::keys::{bad_value, is_zero, line_of, Document, Entry, KeyPath, Origin};
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The main file and its imports, merged.
#[derive(Debug, Default)]
pub struct Merged {
    /// Every key, the last file's winning.
    pub doc: Document,
    /// The files read, main first.
    pub files: Vec<PathBuf>,
}

/// Reads `main` and everything it imports.
pub fn load(main: &Path) -> Result<Merged> {
    let mut merged = Merged::default();
    let mut seen = HashSet::new();
    let mut pending = std::collections::VecDeque::from([main.to_path_buf()]);
    let mut sections_whole = true;
    while let Some(path) = pending.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("read config file {}", path.display()))?;
        let mut doc = parse(&text, &path)?;
        let imports = take_imports(&mut doc, &path)?;
        if merged.files.is_empty() {
            sections_whole = version_of(&doc) < 3;
        }
        merge(&mut merged.doc, doc, sections_whole);
        merged.files.push(path);
        pending.extend(imports);
    }
    Ok(merged)
}

/// The `version` a document sets, or 1 as containerd reads a file without one.
pub fn version_of(doc: &Document) -> i64 {
    doc.entries
        .get(&vec!["version".to_string()])
        .and_then(|e| e.value.as_integer())
        .filter(|v| *v != 0)
        .unwrap_or(1)
}

/// Parses one file into its leaves; a syntax error names the file and line.
pub fn parse(text: &str, file: &Path) -> Result<Document> {
    let fail = |err: toml::de::Error| {
        let line = err.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        anyhow::anyhow!(
            "config file {} line {line}: {}",
            file.display(),
            err.message()
        )
    };
    let spans = DeTable::parse(text).map_err(fail)?;
    let values: toml::Table = text.parse().map_err(fail)?;
    let file = Arc::new(file.to_path_buf());
    let mut doc = Document::default();
    flatten(
        spans.get_ref(),
        &values,
        &mut Vec::new(),
        &mut |path, span, value| {
            let origin = Origin {
                file: file.clone(),
                line: line_of(text, span.start),
            };
            match value {
                Some(value) => {
                    doc.entries.insert(path, Entry { value, origin });
                }
                None => {
                    doc.tables.entry(path).or_insert(origin);
                }
            }
        },
    );
    Ok(doc)
}

/// Walks the spanned and the valued parse of one file side by side, calling
/// `visit` with each leaf's value and each table's start (`None`).
fn flatten(
    spans: &DeTable<'_>,
    values: &toml::Table,
    prefix: &mut KeyPath,
    visit: &mut dyn FnMut(KeyPath, std::ops::Range<usize>, Option<toml::Value>),
) {
    for (key, spanned) in spans.iter() {
        let name: &str = key.get_ref();
        let Some(value) = values.get(name) else {
            continue;
        };
        prefix.push(name.to_string());
        match (spanned.get_ref(), value) {
            (DeValue::Table(inner), toml::Value::Table(table)) => {
                visit(prefix.clone(), key.span(), None);
                flatten(inner, table, prefix, visit);
            }
            _ => visit(prefix.clone(), span_of(key, spanned), Some(value.clone())),
        }
        prefix.pop();
    }
}

/// A leaf's key span, or its value's when the key has none (inline tables).
fn span_of(
    key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
) -> std::ops::Range<usize> {
    let span = key.span();
    if span.is_empty() {
        value.span()
    } else {
        span
    }
}

/// Removes `imports` from `doc` and resolves each against `file`'s directory.
fn take_imports(doc: &mut Document, file: &Path) -> Result<Vec<PathBuf>> {
    let key = vec!["imports".to_string()];
    let Some(entry) = doc.entries.remove(&key) else {
        return Ok(Vec::new());
    };
    let patterns: Vec<String> = entry
        .value
        .try_into()
        .map_err(|e: toml::de::Error| bad_value(&entry.origin, &key, e.message()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for pattern in patterns {
        let path = dir.join(&pattern);
        if pattern.contains('*') || pattern.contains('?') {
            let matches = glob(&path)
                .map_err(|e| bad_value(&entry.origin, &key, format!("{pattern}: {e:#}")))?;
            out.extend(matches);
        } else {
            out.push(normalize(&path));
        }
    }
    Ok(out)
}

/// Expands `*` and `?` in any component of `pattern`, sorted.
fn glob(pattern: &Path) -> Result<Vec<PathBuf>> {
    let mut found = vec![PathBuf::new()];
    for component in normalize(pattern).components() {
        let name = component.as_os_str().to_string_lossy();
        if !matches!(component, Component::Normal(_)) || !name.contains(['*', '?']) {
            found.iter_mut().for_each(|p| p.push(component));
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if wildcard_match(&name, &entry.file_name().to_string_lossy()) {
                    next.push(dir.join(entry.file_name()));
                }
            }
        }
        next.sort();
        found = next;
    }
    found.retain(|p| p.exists());
    Ok(found)
}

/// Whether `name` matches `pattern`, where `*` is any run of characters
/// and `?` any one.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Drops `.` and folds `..` lexically, as Go's `filepath.Clean`.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Merges `from` (a later file) into `to`.
pub fn merge(to: &mut Document, from: Document, plugin_sections_whole: bool) {
    for section in whole_sections(&from, plugin_sections_whole) {
        to.entries.retain(|k, _| !k.starts_with(&section));
        to.tables.retain(|k, _| !k.starts_with(&section));
    }
    for (key, entry) in from.entries {
        merge_entry(to, key, entry);
    }
    for (key, origin) in from.tables {
        to.tables.entry(key).or_insert(origin);
    }
}

/// The sections of `from` that replace the earlier ones whole.
fn whole_sections(from: &Document, plugin_sections_whole: bool) -> HashSet<KeyPath> {
    from.entries
        .keys()
        .chain(from.tables.keys())
        .filter(|k| k.len() >= 2)
        .filter(|k| match k[0].as_str() {
            "plugins" => plugin_sections_whole,
            "proxy_plugins" | "stream_processors" => true,
            _ => false,
        })
        .map(|k| k[..2].to_vec())
        .collect()
}

fn merge_entry(to: &mut Document, key: KeyPath, entry: Entry) {
    let in_map = matches!(
        key[0].as_str(),
        "plugins" | "proxy_plugins" | "stream_processors" | "timeouts"
    );
    let appended =
        key.len() == 1 && matches!(key[0].as_str(), "disabled_plugins" | "required_plugins");
    match to.entries.get_mut(&key) {
        Some(old) if appended => {
            if let (toml::Value::Array(old_items), toml::Value::Array(new_items)) =
                (&mut old.value, &entry.value)
            {
                old_items.extend(new_items.iter().cloned());
                old.origin = entry.origin;
            } else {
                *old = entry;
            }
        }
        Some(_) if !in_map && is_zero(&entry.value) => {}
        _ => {
            to.entries.insert(key, entry);
        }
    }
}

/// Refuses a version berth cannot read, naming where it was set.
pub fn check_version(doc: &Document) -> Result<i64> {
    let key = vec!["version".to_string()];
    let Some(entry) = doc.entries.get(&key) else {
        return Ok(1);
    };
    match entry.value.as_integer() {
        Some(0) => Ok(1),
        Some(v @ 1..=3) => Ok(v),
        _ => bail!(bad_value(
            &entry.origin,
            &key,
            format!("version {} is not one berth reads (1, 2 or 3)", entry.value)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str, name: &str) -> Document {
        parse(text, Path::new(name)).expect("parse")
    }

    fn value(doc: &Document, path: &[&str]) -> Option<toml::Value> {
        let key: KeyPath = path.iter().map(|s| s.to_string()).collect();
        doc.entries.get(&key).map(|e| e.value.clone())
    }

    #[test]
    fn leaves_keep_their_lines() {
        let d = doc("version = 2\n\n[grpc]\n  uid = 5\n", "/etc/c.toml");
        let entry = &d.entries[&vec!["grpc".to_string(), "uid".to_string()]];
        assert_eq!(entry.origin.line, 4);
        assert_eq!(entry.origin.file.as_path(), Path::new("/etc/c.toml"));
        assert_eq!(d.tables[&vec!["grpc".to_string()]].line, 3);
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let err = parse("version = 2\n[grpc\n", Path::new("/x.toml")).expect_err("bad toml");
        let msg = format!("{err:#}");
        assert!(msg.contains("/x.toml line 2"), "{msg}");
    }

    #[test]
    fn later_files_override_but_zero_does_not() {
        let mut to = doc("root = \"/a\"\nstate = \"/s\"\n[grpc]\nuid = 3\n", "main");
        let from = doc("root = \"/b\"\nstate = \"\"\n[grpc]\nuid = 0\n", "import");
        merge(&mut to, from, true);
        assert_eq!(value(&to, &["root"]), Some("/b".into()));
        assert_eq!(value(&to, &["state"]), Some("/s".into()));
        assert_eq!(value(&to, &["grpc", "uid"]), Some(3.into()));
    }

    #[test]
    fn plugin_lists_append_and_sections_replace_whole_in_v2() {
        let gc = "plugins.\"io.containerd.gc.v1.scheduler\"";
        let mut to = doc(
            &format!("disabled_plugins = [\"a.b.c.d\"]\n[{gc}]\nmutation_threshold = 5\npause_threshold = 0.1\n"),
            "main",
        );
        let from = doc(
            &format!("disabled_plugins = [\"e.f.g.h\"]\n[{gc}]\nmutation_threshold = 0\n"),
            "import",
        );
        let mut v3 = to.clone();
        merge(&mut to, from.clone(), true);
        let list = value(&to, &["disabled_plugins"]).expect("list");
        assert_eq!(list.as_array().map(Vec::len), Some(2));
        let sched = ["plugins", "io.containerd.gc.v1.scheduler"];
        assert_eq!(
            value(&to, &[sched[0], sched[1], "mutation_threshold"]),
            Some(0.into())
        );
        assert_eq!(value(&to, &[sched[0], sched[1], "pause_threshold"]), None);
        merge(&mut v3, from, false);
        assert_eq!(
            value(&v3, &[sched[0], sched[1], "pause_threshold"]),
            Some(0.1.into())
        );
    }

    #[test]
    fn imports_resolve_relative_to_the_file_and_glob_sorted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("conf.d");
        std::fs::create_dir(&conf).expect("mkdir");
        std::fs::write(conf.join("20-b.toml"), "[grpc]\nuid = 2\n").expect("write");
        std::fs::write(conf.join("10-a.toml"), "[grpc]\nuid = 1\ngid = 7\n").expect("write");
        std::fs::write(conf.join("skip.txt"), "").expect("write");
        std::fs::write(
            dir.path().join("extra.toml"),
            "oom_score = 5\nimports = [\"main.toml\"]\n",
        )
        .expect("write");
        let main = dir.path().join("main.toml");
        std::fs::write(
            &main,
            "version = 2\nimports = [\"conf.d/*.toml\", \"./extra.toml\"]\n",
        )
        .expect("write");
        let merged = load(&main).expect("load");
        let names: Vec<_> = merged
            .files
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .expect("under dir")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "main.toml",
                "conf.d/10-a.toml",
                "conf.d/20-b.toml",
                "extra.toml"
            ]
        );
        assert_eq!(value(&merged.doc, &["grpc", "uid"]), Some(2.into()));
        assert_eq!(value(&merged.doc, &["grpc", "gid"]), Some(7.into()));
        assert_eq!(value(&merged.doc, &["oom_score"]), Some(5.into()));
    }

    #[test]
    fn a_missing_import_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("main.toml");
        std::fs::write(&main, "version = 2\nimports = [\"nope.toml\"]\n").expect("write");
        let err = load(&main).expect_err("missing import");
        assert!(format!("{err:#}").contains("nope.toml"), "{err:#}");
    }

    #[test]
    fn wildcards_match() {
        assert!(wildcard_match("*.toml", "a.toml"));
        assert!(wildcard_match("?-*.toml", "1-x.toml"));
        assert!(!wildcard_match("*.toml", "a.toml.bak"));
        assert!(wildcard_match("*", ""));
    }
}
