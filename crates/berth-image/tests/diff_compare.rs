//! `diff::compare`: the layer between two trees, applied to the lower one,
//! gives the upper one back.

mod diff_common;

use berth_core::Digest;
use berth_image::diff::{
    apply, compare, compare_overlay, ApplyOptions, CompareOptions, LayerCompression, Whiteouts,
};
use diff_common::{layer, root_or_skip, tree, E};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn copy_tree(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(ok.success());
}

fn base() -> Vec<u8> {
    layer(&[
        E::Dir("a/"),
        E::File("a/x", b"x"),
        E::File("a/y", b"y"),
        E::Dir("b/"),
        E::Dir("b/deep/"),
        E::File("b/deep/z", b"z"),
        E::Dir("c/"),
        E::File("c/keep", b"old"),
        E::Symlink("c/link", "keep"),
        E::File("same", b"same"),
    ])
}

#[test]
fn compare_then_apply_reproduces_the_upper_tree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lower = tmp.path().join("lower");
    fs::create_dir(&lower).expect("lower");
    apply(&base()[..], &lower, &ApplyOptions::default()).expect("base");
    let upper = tmp.path().join("upper");
    copy_tree(&lower, &upper);

    fs::remove_file(upper.join("a/x")).expect("rm a/x");
    fs::remove_dir_all(upper.join("b")).expect("rm b");
    fs::write(upper.join("c/keep"), "new content").expect("keep");
    fs::remove_file(upper.join("c/link")).expect("rm link");
    std::os::unix::fs::symlink("elsewhere", upper.join("c/link")).expect("link");
    fs::create_dir_all(upper.join("n/m")).expect("n/m");
    fs::write(upper.join("n/m/file"), "f").expect("n/m/file");
    fs::set_permissions(upper.join("a"), fs::Permissions::from_mode(0o700)).expect("chmod");

    let options = CompareOptions {
        compression: LayerCompression::Uncompressed,
    };
    let mut tar = Vec::new();
    let stats = compare(&lower, &upper, &mut tar, &options).expect("compare");
    assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
    assert_eq!(stats.digest, stats.diff_id);
    assert_eq!(stats.size, tar.len() as u64);

    let names = entry_names(&tar);
    assert!(names.contains(&"a/.wh.x".to_string()), "{names:?}");
    assert!(names.contains(&".wh.b".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("same")), "{names:?}");

    let check = tmp.path().join("check");
    copy_tree(&lower, &check);
    apply(&tar[..], &check, &ApplyOptions::default()).expect("apply diff");
    assert_eq!(tree(&check), tree(&upper));

    let mut again = Vec::new();
    compare(&lower, &upper, &mut again, &options).expect("again");
    assert_eq!(again, tar, "the same trees give the same bytes");

    let mut gz = Vec::new();
    let gzs = compare(&lower, &upper, &mut gz, &CompareOptions::default()).expect("gzip");
    assert_eq!(gzs.diff_id, stats.diff_id);
    assert_eq!(gzs.digest, Digest::sha256_of(&gz));
}

fn entry_names(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            String::from_utf8_lossy(&e.path_bytes()).into_owned()
        })
        .collect()
}

#[test]
fn overlay_upper_diff_matches_the_layer_it_came_from() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let lower = tmp.path().join("lower");
    let upper = tmp.path().join("upper");
    fs::create_dir(&lower).expect("lower");
    fs::create_dir(&upper).expect("upper");
    apply(&base()[..], &lower, &ApplyOptions::default()).expect("base");
    let top = layer(&[
        E::File("a/.wh.x", b""),
        E::File(".wh.b", b""),
        E::Dir("c/"),
        E::File("c/.wh..wh..opq", b""),
        E::File("c/fresh", b"fresh"),
    ]);
    let overlay = ApplyOptions {
        whiteouts: Whiteouts::Overlay { user_xattr: false },
        ..ApplyOptions::default()
    };
    apply(&top[..], &upper, &overlay).expect("upper");

    let mut tar = Vec::new();
    compare_overlay(&upper, &mut tar, &CompareOptions::default()).expect("compare");

    let want = tmp.path().join("want");
    let got = tmp.path().join("got");
    copy_tree(&lower, &want);
    copy_tree(&lower, &got);
    apply(&top[..], &want, &ApplyOptions::default()).expect("want");
    apply(&tar[..], &got, &ApplyOptions::default()).expect("got");
    assert_eq!(tree(&got), tree(&want));
    assert!(!got.join("c/keep").exists());
}
