//! Entry names made safe: cleaned lexically and kept inside the target.

use berth_core::{Error, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A cleaned entry name, relative to the target: no `.`, no `..`, no empty
/// components. The empty path is the target itself.
pub(crate) type RelPath = PathBuf;

/// Cleans an entry name as Go's `filepath.Clean` would, relative to the
/// target.
///
/// A rooted name (`/etc/passwd`) means the same file under the target, and
/// `..` at its root stays at the root, as in `filepath.Clean`; a relative
/// name whose `..` climbs above the target is refused, naming the entry.
pub(crate) fn clean(name: &[u8]) -> Result<RelPath> {
    if name.contains(&0) {
        return Err(invalid(name, "contains a NUL byte"));
    }
    let rooted = name.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() && !rooted {
                    return Err(invalid(name, "escapes the target directory"));
                }
            }
            other => parts.push(other),
        }
    }
    let mut out = PathBuf::new();
    for part in parts {
        out.push(OsStr::from_bytes(part));
    }
    Ok(out)
}

/// Splits a cleaned, non-empty path into its parent and file name.
pub(crate) fn split(rel: &Path) -> (&Path, &OsStr) {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let base = rel.file_name().unwrap_or(OsStr::new(""));
    (parent, base)
}

/// `layer entry "NAME": WHY`, an invalid argument.
pub(crate) fn invalid(name: &[u8], why: &str) -> Error {
    Error::invalid_argument(format!(
        "layer entry {:?}: {why}",
        String::from_utf8_lossy(name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go_filepath_clean_inside_the_root() {
        for (name, want) in [
            ("a/b/c", "a/b/c"),
            ("./a//b/", "a/b"),
            ("/etc/passwd", "etc/passwd"),
            ("a/../b", "b"),
            ("/../../etc", "etc"),
            (".", ""),
            ("./", ""),
        ] {
            assert_eq!(clean(name.as_bytes()).expect(name), PathBuf::from(want));
        }
    }

    #[test]
    fn clean_refuses_names_that_climb_out() {
        for name in ["..", "../x", "a/../../x", "./../etc/passwd"] {
            let err = clean(name.as_bytes()).expect_err(name);
            assert_eq!(err.kind(), berth_core::ErrorKind::InvalidArgument);
            assert!(err.message().contains(name), "{err}");
        }
    }
}
