//! The diff service through Debian's `ctr`: `images import` unpacks
//! through Diff.Apply and the snapshots service; `snapshots diff` writes a
//! layer through Diff.Diff.

use berth_testkit::{busybox_oci_archive, require_ctr, require_root, ArchiveNames, Daemon};

#[test]
fn import_unpacks_through_diff_apply_and_snapshots_diff_writes_a_layer() {
    require_root!();
    require_ctr!();
    let daemon = Daemon::start().expect("start berthd");
    let names = ArchiveNames {
        ref_name: Some("latest".into()),
        image_name: Some("docker.io/library/busybox:diff".into()),
    };
    let archive = busybox_oci_archive(&names).expect("archive");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("busybox.tar");
    std::fs::write(&path, &archive.bytes).expect("write archive");
    let path = path.to_str().expect("utf8");

    daemon.ctr(&["images", "import", path]).assert_success();

    // One layer: its chain ID is its diff ID, committed by the unpack.
    let chain = archive.layer.to_string();
    let ls = daemon.ctr(&["snapshots", "ls"]).assert_success();
    assert!(
        ls.stdout
            .lines()
            .any(|l| l.starts_with(&chain) && l.contains("Committed")),
        "{}",
        ls.stdout
    );

    // A child with one new file diffs to a layer holding just that file.
    daemon
        .ctr(&["snapshots", "prepare", "work", &chain])
        .assert_success();
    let mounts = daemon
        .ctr(&["snapshots", "mounts", "/mnt", "work"])
        .assert_success();
    let upper = mounts
        .stdout
        .split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|o| o.strip_prefix("upperdir="))
        .unwrap_or_else(|| panic!("an overlay upper in {}", mounts.stdout))
        .to_string();
    std::fs::write(std::path::Path::new(&upper).join("hello"), "diff me").expect("write");

    let mut ctr = daemon.ctr_command(None).expect("ctr");
    // `--keep` labels the layer `containerd.io/gc.root`: without it the
    // layer is held only by ctr's lease, and a collection after ctr deletes
    // the lease may take it before the listing below.
    let out = ctr
        .args(["snapshots", "diff", "--keep", "work"])
        .output()
        .expect("ctr snapshots diff");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = list_gzip_tar(&out.stdout);
    assert_eq!(listing.trim(), "hello", "the layer holds just the new file");

    let content = daemon.ctr(&["content", "ls"]).assert_success();
    let labelled = content
        .stdout
        .lines()
        .filter(|l| l.contains("containerd.io/uncompressed="))
        .count();
    assert!(
        content.stdout.contains("containerd.io/gc.root="),
        "the kept layer is a root: {}",
        content.stdout
    );
    assert_eq!(labelled, 2, "imported layer and diff: {}", content.stdout);
}

/// `tar tz` of gzip tar bytes.
fn list_gzip_tar(bytes: &[u8]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("tar")
        .arg("tz")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("feed tar");
    let out = child.wait_with_output().expect("tar");
    assert!(out.status.success(), "tar tz failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
