//! Undoing mounts a daemon left behind, so a temporary directory can be removed.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};

/// Lazily unmounts every mount point at or below `dir`, deepest first, and
/// returns the ones that could not be unmounted. Best effort: used on cleanup
/// paths, where an error must not hide the test's own failure.
pub fn unmount_under(dir: &Path) -> Vec<(PathBuf, nix::Error)> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let mut points: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|p| p.starts_with(&dir))
        .collect();
    // Children before parents: a longer path is never an ancestor of a shorter one.
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    points.dedup();
    points
        .into_iter()
        .filter_map(|p| umount2(&p, MntFlags::MNT_DETACH).err().map(|e| (p, e)))
        .collect()
}

fn mount_points() -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_octal() {
        assert_eq!(unescape(r"/tmp/a\040b\134c"), "/tmp/a b\\c");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn nothing_mounted_under_a_fresh_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(unmount_under(dir.path()).is_empty());
    }
}
