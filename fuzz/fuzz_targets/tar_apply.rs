//! Layer application (`berth_image::diff::apply`) with an escape oracle.
//!
//! The first input byte picks the options (bit 0: overlay whiteouts, bit 1:
//! `user.` xattrs), the rest is the layer (tar, gzip or zstd). The layer is
//! applied to a fresh `root/` inside a fixed sentinel tree:
//!
//! ```text
//! $TMPDIR/berth-fuzz-tar/           outside.txt, outside-dir/keep, link-out -> /
//!                        a/         a.txt
//!                        a/b/       sibling.txt, root/ (the target)
//! ```
//!
//! Before and after, everything in the tree except `root/` is recorded
//! (type, mode, owner, size, nlink, mtime, contents, link target): any
//! difference means an entry was written outside the root, through `..`,
//! an absolute path, a symlink or a hardlink. The path is fixed so that
//! seeds can name it; run one `tar_apply` process at a time.
#![no_main]

use berth_image::diff::{apply, ApplyOptions, Whiteouts};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// One recorded entry of the sentinel tree.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    nlink: u64,
    mtime: (i64, i64),
    rdev: u64,
    body: Option<Vec<u8>>,
    link: Option<PathBuf>,
}

static BASE: LazyLock<PathBuf> = LazyLock::new(|| {
    let base = std::env::temp_dir().join("berth-fuzz-tar");
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(base.join("outside-dir")).expect("make the sentinel tree");
    fs::create_dir_all(base.join("a/b")).expect("make the sentinel tree");
    fs::write(base.join("outside.txt"), "outside\n").expect("sentinel");
    fs::write(base.join("outside-dir/keep"), "keep\n").expect("sentinel");
    fs::write(base.join("a/a.txt"), "a\n").expect("sentinel");
    fs::write(base.join("a/b/sibling.txt"), "sibling\n").expect("sentinel");
    std::os::unix::fs::symlink("/", base.join("link-out")).expect("sentinel");
    base
});

fn root() -> PathBuf {
    BASE.join("a/b/root")
}

/// Records `dir` recursively, without following symlinks, skipping `root/`.
fn record(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let meta = fs::symlink_metadata(dir).expect("stat sentinel tree");
    out.insert(dir.to_path_buf(), entry(dir, &meta));
    let mut names: Vec<_> = fs::read_dir(dir)
        .expect("read sentinel tree")
        .map(|e| e.expect("read sentinel entry").path())
        .collect();
    names.sort();
    for path in names {
        if path == skip {
            continue;
        }
        let meta = fs::symlink_metadata(&path).expect("stat sentinel entry");
        if meta.is_dir() {
            record(&path, skip, out);
        } else {
            out.insert(path.clone(), entry(&path, &meta));
        }
    }
}

fn entry(path: &Path, meta: &fs::Metadata) -> Entry {
    let ft = meta.file_type();
    Entry {
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        size: if ft.is_dir() { 0 } else { meta.size() },
        nlink: meta.nlink(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        rdev: meta.rdev(),
        body: ft.is_file().then(|| fs::read(path).expect("read sentinel file")),
        link: ft
            .is_symlink()
            .then(|| fs::read_link(path).expect("read sentinel link")),
    }
}

fn snapshot() -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    record(&BASE, &root(), &mut out);
    out
}

/// Removes what an apply left, whatever modes it set.
fn clear(path: &Path) {
    if fs::symlink_metadata(path).is_err() {
        return;
    }
    if fs::remove_dir_all(path).is_ok() {
        return;
    }
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+rwx"])
        .arg(path)
        .status();
    fs::remove_dir_all(path).expect("remove the apply root");
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, layer)) = data.split_first() else {
        return;
    };
    let root = root();
    clear(&root);
    fs::create_dir(&root).expect("make the apply root");
    let before = snapshot();
    let options = ApplyOptions {
        whiteouts: if flags & 1 == 0 {
            Whiteouts::Remove
        } else {
            Whiteouts::Overlay {
                user_xattr: flags & 2 != 0,
            }
        },
        ..ApplyOptions::default()
    };
    let result = apply(layer, &root, &options);
    let after = snapshot();
    if before != after {
        for (path, was) in &before {
            match after.get(path) {
                None => eprintln!("removed: {}", path.display()),
                Some(now) if now != was => {
                    eprintln!("changed: {}\n  was {was:?}\n  now {now:?}", path.display())
                }
                _ => {}
            }
        }
        for path in after.keys().filter(|p| !before.contains_key(*p)) {
            eprintln!("created: {}", path.display());
        }
        panic!("the layer wrote outside its root (apply returned {result:?})");
    }
    clear(&root);
});
