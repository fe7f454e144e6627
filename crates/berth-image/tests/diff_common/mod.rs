//! Layer builders and tree snapshots shared by the diff tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// One tar entry, with raw names so malicious ones can be written.
pub enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Link(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
}

/// A tar of `entries` (mode 0644/0755, uid 0, mtime 1_600_000_000).
pub fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let (name, data): (&str, &[u8]) = match e {
            E::File(n, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                (n, d)
            }
            E::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                (n, b"")
            }
            E::Symlink(n, t) | E::Link(n, t) => {
                let kind = if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                h.set_entry_type(kind);
                h.set_mode(0o777);
                raw_set(&mut h.as_old_mut().linkname, t);
                (n, b"")
            }
            E::Char(n, maj, min) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_device_major(*maj).expect("major");
                h.set_device_minor(*min).expect("minor");
                (n, b"")
            }
            E::Fifo(n) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o600);
                (n, b"")
            }
        };
        raw_set(&mut h.as_old_mut().name, name);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("finish")
}

fn raw_set(field: &mut [u8], value: &str) {
    assert!(value.len() < field.len(), "name too long for a test header");
    field.fill(0);
    field[..value.len()].copy_from_slice(value.as_bytes());
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// Everything under `dir`: relative path → a description of type, mode,
/// owner, size, content digest or link target.
pub fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    for name in names {
        let p = dir.join(&name);
        let md = fs::symlink_metadata(&p).expect("lstat");
        let rel = p
            .strip_prefix(root)
            .expect("under root")
            .display()
            .to_string();
        let ft = md.file_type();
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("symlink {}", fs::read_link(&p).expect("readlink").display())
        } else if ft.is_file() {
            let data = fs::read(&p).expect("read");
            format!("file {}", String::from_utf8_lossy(&data))
        } else if ft.is_char_device() {
            format!("char {}", md.rdev())
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let perm = md.mode() & 0o7777;
        out.insert(rel, format!("{what} {perm:o} {}:{}", md.uid(), md.gid()));
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// True when running as root; otherwise says why the test is skipped (and
/// fails in CI, which runs as root), as berth-testkit's `require_root!`.
pub fn root_or_skip() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(!ci, "this test needs root, and CI must not skip it");
    eprintln!("skipping: needs root");
    false
}

/// The value of xattr `name` on `path` (not following a symlink).
pub fn xattr(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let mut buf = [0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf)?;
    Ok(buf[..n].to_vec())
}
