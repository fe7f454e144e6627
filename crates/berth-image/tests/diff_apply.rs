//! `diff::apply`: malicious layers stay inside the target; whiteouts,
//! opaque directories and metadata come out as containerd applies them.

mod diff_common;

use berth_core::{Digest, ErrorKind};
use berth_image::diff::{apply, ApplyOptions, Whiteouts};
use diff_common::{gzip, layer, root_or_skip, tree, xattr, E};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn opts() -> ApplyOptions {
    ApplyOptions::default()
}

/// A temp dir holding `root/` (the target) and `outside/` (a sentinel).
struct Scene {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir(&root).expect("root");
    fs::create_dir(&outside).expect("outside");
    fs::write(outside.join("secret"), "keep").expect("secret");
    fs::create_dir(outside.join("sub")).expect("sub");
    Scene {
        root,
        outside,
        _tmp: tmp,
    }
}

/// Every case builds its layer from the scene's absolute sentinel path.
type Case = (&'static str, fn(&str) -> Vec<u8>, Option<ErrorKind>);

fn malicious_cases() -> Vec<Case> {
    vec![
        (
            "dotdot file",
            |_| layer(&[E::File("../outside/pwned", b"x")]),
            Some(ErrorKind::InvalidArgument),
        ),
        (
            "deep dotdot",
            |_| layer(&[E::File("a/../../../../../outside/pwned", b"x")]),
            Some(ErrorKind::InvalidArgument),
        ),
        (
            "dotdot dir",
            |_| layer(&[E::Dir("../outside/newdir/")]),
            Some(ErrorKind::InvalidArgument),
        ),
        (
            "dotdot symlink name",
            |_| layer(&[E::Symlink("../outside/l", "/")]),
            Some(ErrorKind::InvalidArgument),
        ),
        (
            "hardlink dotdot target",
            |_| layer(&[E::Link("hl", "../outside/secret")]),
            Some(ErrorKind::InvalidArgument),
        ),
        (
            "whiteout dotdot",
            |_| layer(&[E::File("../outside/.wh.secret", b"")]),
            Some(ErrorKind::InvalidArgument),
        ),
        (
            "whiteout of dotdot",
            |_| layer(&[E::File("sub/.wh...", b"")]),
            Some(ErrorKind::InvalidArgument),
        ),
        (
            "relative symlink escape then write through",
            |_| {
                layer(&[
                    E::Symlink("esc", "../outside"),
                    E::File("esc/pwned", b"x"),
                    E::File("esc/secret", b"x"),
                ])
            },
            None,
        ),
        (
            "absolute symlink then write through",
            |out| {
                let out: &'static str = Box::leak(out.to_string().into_boxed_str());
                layer(&[
                    E::Symlink("esc", out),
                    E::File("esc/secret", b"x"),
                    E::Dir("esc/sub/"),
                    E::File("esc/sub/f", b"x"),
                ])
            },
            None,
        ),
        (
            "symlink to root then absolute names",
            |out| {
                let name: &'static str = Box::leak(format!("r{out}/secret").into_boxed_str());
                layer(&[E::Symlink("r", "/"), E::File(name, b"x")])
            },
            None,
        ),
        (
            "symlink chain",
            |out| {
                let out: &'static str = Box::leak(out.to_string().into_boxed_str());
                layer(&[
                    E::Symlink("a", "b"),
                    E::Symlink("b", "../../.."),
                    E::Symlink("c", out),
                    E::File("a/c/secret", b"x"),
                ])
            },
            None,
        ),
        (
            "file over a symlink to outside",
            |out| {
                let target: &'static str = Box::leak(format!("{out}/secret").into_boxed_str());
                layer(&[E::Symlink("s", target), E::File("s", b"x")])
            },
            None,
        ),
        (
            "hardlink absolute target",
            |out| {
                let target: &'static str = Box::leak(format!("{out}/secret").into_boxed_str());
                layer(&[E::Link("hl", target)])
            },
            Some(ErrorKind::InvalidArgument),
        ),
        (
            "hardlink through a symlinked dir",
            |out| {
                let out: &'static str = Box::leak(out.to_string().into_boxed_str());
                layer(&[E::Symlink("d", out), E::Link("hl", "d/secret")])
            },
            Some(ErrorKind::InvalidArgument),
        ),
        (
            "hardlink to a symlink, then write",
            |out| {
                let target: &'static str = Box::leak(format!("{out}/secret").into_boxed_str());
                layer(&[
                    E::Symlink("s", target),
                    E::Link("h", "s"),
                    E::File("h", b"x"),
                ])
            },
            None,
        ),
        (
            "whiteout through a symlink",
            |out| {
                let out: &'static str = Box::leak(out.to_string().into_boxed_str());
                layer(&[E::Symlink("s", out), E::File("s/.wh.secret", b"")])
            },
            None,
        ),
        (
            "opaque through a symlink",
            |out| {
                let out: &'static str = Box::leak(out.to_string().into_boxed_str());
                layer(&[E::Symlink("s", out), E::File("s/.wh..wh..opq", b"")])
            },
            None,
        ),
        (
            "opaque through a relative symlink",
            |_| {
                layer(&[
                    E::Symlink("s", "../outside"),
                    E::File("s/.wh..wh..opq", b""),
                ])
            },
            None,
        ),
    ]
}

#[test]
fn malicious_layers_touch_nothing_outside_the_target() {
    for (name, build, want) in malicious_cases() {
        let s = scene();
        let before = tree(s.outside.parent().expect("parent"));
        let data = build(s.outside.to_str().expect("utf8"));
        let result = apply(&data[..], &s.root, &opts());
        if let Some(kind) = want {
            let err = result.expect_err(name);
            assert_eq!(err.kind(), kind, "{name}: {err}");
            assert!(err.message().contains("layer entry"), "{name}: {err}");
        }
        let mut after = tree(s.outside.parent().expect("parent"));
        after.retain(|k, _| !k.starts_with("root"));
        let mut before = before;
        before.retain(|k, _| !k.starts_with("root"));
        assert_eq!(before, after, "{name}: the sentinel changed");
    }
}

#[test]
fn gzipped_malicious_layer_is_refused_the_same() {
    let s = scene();
    let data = gzip(&layer(&[E::File("../outside/pwned", b"x")]));
    let err = apply(&data[..], &s.root, &opts()).expect_err("escape");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("../outside/pwned"), "{err}");
    assert!(!s.outside.join("pwned").exists());
}

#[test]
fn devices_are_skipped_when_unprivileged() {
    let s = scene();
    let data = layer(&[E::Char("null", 1, 3), E::Fifo("fifo"), E::File("f", b"x")]);
    let o = ApplyOptions {
        devices: false,
        same_owner: false,
        ..opts()
    };
    let stats = apply(&data[..], &s.root, &o).expect("apply");
    assert_eq!(stats.skipped_devices, 1);
    assert!(!s.root.join("null").exists());
    assert!(s.root.join("fifo").exists());
    assert_eq!(fs::read(s.root.join("f")).expect("f"), b"x");
}

#[test]
fn diff_id_is_the_uncompressed_digest_whatever_the_compression() {
    let tar = layer(&[E::Dir("a/"), E::File("a/b", b"hello")]);
    let want = Digest::sha256_of(&tar);
    let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
    for data in [tar.clone(), gzip(&tar), zst] {
        let s = scene();
        let stats = apply(&data[..], &s.root, &opts()).expect("apply");
        assert_eq!(stats.diff_id, want);
        assert_eq!(stats.size, tar.len() as u64);
        assert_eq!(fs::read(s.root.join("a/b")).expect("a/b"), b"hello");
    }
}

#[test]
fn trailing_bytes_after_the_tar_count_in_the_diff_id() {
    let mut tar = layer(&[E::File("f", b"x")]);
    tar.extend_from_slice(&[0u8; 4096]);
    let s = scene();
    let stats = apply(&tar[..], &s.root, &opts()).expect("apply");
    assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
}

#[test]
fn wrong_expected_diff_id_fails() {
    let s = scene();
    let tar = layer(&[E::File("f", b"x")]);
    let o = ApplyOptions {
        expected_diff_id: Some(Digest::sha256_of(b"other")),
        ..opts()
    };
    let err = apply(&tar[..], &s.root, &o).expect_err("mismatch");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
}

#[test]
fn truncated_gzip_fails() {
    let s = scene();
    let gz = gzip(&layer(&[E::File("f", &[7u8; 100_000])]));
    let err = apply(&gz[..gz.len() / 2], &s.root, &opts()).expect_err("truncated");
    assert!(
        err.message().contains("decompress") || err.message().contains("layer"),
        "{err}"
    );
}

fn base_layer() -> Vec<u8> {
    layer(&[
        E::Dir("a/"),
        E::File("a/x", b"x"),
        E::File("a/y", b"y"),
        E::Dir("b/"),
        E::File("b/z", b"z"),
        E::Dir("c/"),
        E::Dir("c/d/"),
        E::File("c/d/e", b"e"),
        E::File("c/keep", b"old"),
        E::Dir("o/"),
        E::File("o/lower", b"l"),
    ])
}

fn upper_layer() -> Vec<u8> {
    layer(&[
        E::File("a/.wh.x", b""),
        E::File(".wh.b", b""),
        E::Dir("c/"),
        E::File("c/.wh..wh..opq", b""),
        E::Dir("c/d/"),
        E::File("c/d/f", b"f"),
        E::File("c/keep", b"new"),
        E::File("o/.wh..wh..opq", b""),
        E::File("new", b"n"),
    ])
}

fn expected_merged() -> Vec<&'static str> {
    vec!["a", "a/y", "c", "c/d", "c/d/f", "c/keep", "new", "o"]
}

#[test]
fn whiteouts_and_opaque_dirs_across_layers() {
    let s = scene();
    apply(&base_layer()[..], &s.root, &opts()).expect("base");
    apply(&upper_layer()[..], &s.root, &opts()).expect("upper");
    let t = tree(&s.root);
    assert_eq!(
        t.keys().map(String::as_str).collect::<Vec<_>>(),
        expected_merged()
    );
    assert!(t["c/keep"].starts_with("file new"));
}

#[test]
fn overlay_whiteouts_become_devices_and_xattrs_and_mount_to_the_same_tree() {
    if !root_or_skip() {
        return;
    }
    let s = scene();
    let lower = s.root.join("lower");
    let upper = s.root.join("upper");
    let work = s.root.join("work");
    let merged = s.root.join("merged");
    for d in [&lower, &upper, &work, &merged] {
        fs::create_dir(d).expect("mkdir");
    }
    apply(&base_layer()[..], &lower, &opts()).expect("base");
    let o = ApplyOptions {
        whiteouts: Whiteouts::Overlay { user_xattr: false },
        ..opts()
    };
    apply(&upper_layer()[..], &upper, &o).expect("upper");
    let wh = fs::symlink_metadata(upper.join("a/x")).expect("whiteout");
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    let opq = xattr(&upper.join("o"), "trusted.overlay.opaque");
    assert_eq!(opq.expect("xattr"), b"y");

    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let st = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&merged)
        .status()
        .expect("mount");
    assert!(st.success(), "mount overlay");
    let t = tree(&merged);
    let _ = std::process::Command::new("umount").arg(&merged).status();
    assert_eq!(
        t.keys().map(String::as_str).collect::<Vec<_>>(),
        expected_merged()
    );
}

#[test]
fn metadata_is_preserved_as_root() {
    if !root_or_skip() {
        return;
    }
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>,
               name: &str,
               kind: tar::EntryType,
               mode: u32,
               uid: u64,
               mtime: u64,
               data: &[u8],
               link: Option<&str>| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid + 1);
        h.set_mtime(mtime);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).expect("link");
        }
        if kind == tar::EntryType::Char {
            h.set_device_major(1).expect("major");
            h.set_device_minor(5).expect("minor");
        }
        b.append_data(&mut h, name, data).expect("append");
    };
    add(
        &mut b,
        "d/",
        tar::EntryType::Directory,
        0o750,
        1000,
        1_000_000_000,
        b"",
        None,
    );
    add(
        &mut b,
        "d/suid",
        tar::EntryType::Regular,
        0o4755,
        1001,
        1_100_000_000,
        b"bin",
        None,
    );
    add(
        &mut b,
        "d/link",
        tar::EntryType::Symlink,
        0o777,
        1002,
        1_200_000_000,
        b"",
        Some("suid"),
    );
    add(
        &mut b,
        "d/hard",
        tar::EntryType::Link,
        0o4755,
        1001,
        1_100_000_000,
        b"",
        Some("d/suid"),
    );
    add(
        &mut b,
        "d/zero",
        tar::EntryType::Char,
        0o640,
        0,
        1_300_000_000,
        b"",
        None,
    );
    // A PAX record carrying an xattr, as containerd writes capabilities.
    b.append_pax_extensions([("SCHILY.xattr.user.test", &b"value"[..])])
        .expect("pax");
    add(
        &mut b,
        "d/attr",
        tar::EntryType::Regular,
        0o600,
        0,
        1_400_000_000,
        b"a",
        None,
    );
    let data = b.into_inner().expect("tar");

    let s = scene();
    apply(&data[..], &s.root, &opts()).expect("apply");
    let md = |p: &str| fs::symlink_metadata(s.root.join(p)).expect(p);
    let d = md("d");
    assert_eq!(
        (d.mode() & 0o7777, d.uid(), d.gid(), d.mtime()),
        (0o750, 1000, 1001, 1_000_000_000)
    );
    let f = md("d/suid");
    assert_eq!(
        (f.mode() & 0o7777, f.uid(), f.gid(), f.mtime()),
        (0o4755, 1001, 1002, 1_100_000_000)
    );
    assert_eq!(f.nlink(), 2);
    assert_eq!(md("d/hard").ino(), f.ino());
    let l = md("d/link");
    assert!(l.file_type().is_symlink());
    assert_eq!((l.uid(), l.mtime()), (1002, 1_200_000_000));
    let c = md("d/zero");
    assert!(c.file_type().is_char_device());
    assert_eq!(
        (c.rdev(), c.mode() & 0o7777),
        (rustix::fs::makedev(1, 5), 0o640)
    );
    let x = xattr(&s.root.join("d/attr"), "user.test").expect("xattr");
    assert_eq!(x, b"value");
}

#[test]
fn existing_files_are_replaced_and_dirs_merged() {
    let s = scene();
    fs::create_dir(s.root.join("dir")).expect("dir");
    fs::write(s.root.join("dir/old"), "o").expect("old");
    fs::create_dir(s.root.join("was_dir")).expect("was_dir");
    fs::write(s.root.join("was_dir/f"), "f").expect("f");
    let data = layer(&[
        E::Dir("dir/"),
        E::File("dir/new", b"n"),
        E::File("was_dir", b"now a file"),
    ]);
    apply(&data[..], &s.root, &opts()).expect("apply");
    assert!(s.root.join("dir/old").exists());
    assert!(s.root.join("dir/new").exists());
    assert_eq!(
        fs::read(s.root.join("was_dir")).expect("file"),
        b"now a file"
    );
    assert!(Path::new(&s.root.join("was_dir")).is_file());
}

#[test]
fn missing_parents_are_created() {
    let s = scene();
    apply(&layer(&[E::File("x/y/z", b"z")])[..], &s.root, &opts()).expect("apply");
    let md = fs::metadata(s.root.join("x/y")).expect("x/y");
    assert!(md.is_dir());
    assert_eq!(md.mode() & 0o777, 0o755);
}
