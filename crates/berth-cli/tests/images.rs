//! `berth images` against a private daemon, with Debian's `ctr` as the
//! reference: importing an OCI archive built from busybox-static and a
//! Docker `save` archive, listing, tagging, labelling, checking, removing,
//! exporting byte for byte as ctr does, re-importing an export, and
//! refusing archives whose paths would leave the store.
//!
//! Run them against containerd with `BERTH_TESTKIT_DAEMON=containerd`.

use std::path::{Path, PathBuf};

use berth_client::berth_image::tar::{EntryKind, Header, TarWriter};
use berth_client::berth_image::Digest;
use berth_testkit::{busybox_oci_archive, require_ctr, ArchiveNames, CmdOutput, Daemon};

const BASE: &str = "docker.io/library/busybox";
const NAME: &str = "docker.io/library/busybox:latest";

/// A private daemon with a content service, or `None` (with a note) while
/// the daemon under test has none yet.
fn daemon() -> Option<Daemon> {
    let daemon = match Daemon::start() {
        Ok(daemon) => daemon,
        Err(err) => panic!("starting the daemon: {err:#}"),
    };
    let probe = daemon.berth(&["content", "ls", "-q"]);
    if !probe.success() && probe.stderr.to_lowercase().contains("not implemented") {
        eprintln!("skipping: the daemon has no content service yet\n{probe}");
        return None;
    }
    Some(daemon)
}

/// The busybox OCI archive (index entry named `latest`) in the daemon's
/// directory.
fn busybox_archive(daemon: &Daemon) -> (PathBuf, berth_testkit::OciArchive) {
    let archive = busybox_oci_archive(&ArchiveNames {
        ref_name: Some("latest".into()),
        image_name: None,
    })
    .expect("build the busybox archive");
    let path = daemon.dir().join("busybox.tar");
    std::fs::write(&path, &archive.bytes).expect("write the archive");
    (path, archive)
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn import_args(path: &Path) -> Vec<&str> {
    vec![
        "images",
        "import",
        "--no-unpack",
        "--base-name",
        BASE,
        s(path),
    ]
}

fn lines(out: &CmdOutput) -> Vec<String> {
    out.lines().into_iter().map(str::to_owned).collect()
}

#[test]
fn ctr_and_berth_import_and_export_alike() {
    if !require_ctr() {
        return;
    }
    let Some(daemon) = daemon() else { return };
    let (path, archive) = busybox_archive(&daemon);
    daemon.ctr_ns("ctr", &import_args(&path)).assert_success();
    let out = daemon
        .berth_ns("berth", &import_args(&path))
        .assert_success();
    assert_eq!(out.stdout, "", "--no-unpack imports quietly, as ctr does");

    // The same image record, listed the same way by both clients.
    let reference = daemon.ctr_ns("ctr", &["images", "ls"]).assert_success();
    assert!(reference.stdout.contains(NAME), "{reference}");
    assert!(reference.stdout.contains("linux/"), "{reference}");
    for ns in ["ctr", "berth"] {
        let by_berth = daemon.berth_ns(ns, &["images", "ls"]).assert_success();
        let by_ctr = daemon.ctr_ns(ns, &["images", "ls"]).assert_success();
        assert_eq!(by_berth.stdout, reference.stdout, "{ns}: {by_berth}");
        assert_eq!(by_ctr.stdout, reference.stdout, "{ns}: {by_ctr}");
        let quiet = daemon
            .berth_ns(ns, &["images", "ls", "-q"])
            .assert_success();
        assert_eq!(lines(&quiet), [NAME]);

        // The image's content is there, with the GC labels ctr sets.
        let content = daemon.berth_ns(ns, &["content", "ls"]).assert_success();
        let manifest_row = content
            .lines()
            .into_iter()
            .find(|l| l.starts_with(archive.manifest.as_str()))
            .unwrap_or_else(|| panic!("{ns}: no manifest blob\n{content}"))
            .to_string();
        assert!(
            manifest_row.contains(&format!(
                "containerd.io/gc.ref.content.config={}",
                archive.config
            )),
            "{ns}: {manifest_row}"
        );
        assert!(
            manifest_row.contains(&format!(
                "containerd.io/gc.ref.content.l.0={}",
                archive.layer
            )),
            "{ns}: {manifest_row}"
        );
        for digest in [&archive.layer, &archive.config] {
            assert!(
                content.stdout.contains(digest.as_str()),
                "{ns}: {digest}\n{content}"
            );
        }
    }

    // Exports are byte-identical whichever client writes them.
    let by_ctr = daemon.dir().join("ctr.tar");
    let by_berth = daemon.dir().join("berth.tar");
    daemon
        .ctr_ns("ctr", &["images", "export", s(&by_ctr), NAME])
        .assert_success();
    daemon
        .berth_ns("berth", &["images", "export", s(&by_berth), NAME])
        .assert_success();
    let exported = std::fs::read(&by_berth).expect("berth's export");
    assert!(
        exported == std::fs::read(&by_ctr).expect("ctr's export"),
        "exports differ"
    );

    // An export re-imports (named by its annotations) and re-exports
    // byte for byte, through berth and through ctr.
    let out = daemon.berth_ns("again", &["images", "import", "--no-unpack", s(&by_berth)]);
    out.assert_success();
    let again = daemon
        .berth_ns("again", &["images", "ls", "-q"])
        .assert_success();
    assert_eq!(lines(&again), [NAME]);
    let second = daemon.dir().join("again.tar");
    daemon
        .berth_ns("again", &["images", "export", s(&second), NAME])
        .assert_success();
    assert!(
        exported == std::fs::read(&second).expect("re-export"),
        "re-export differs"
    );
    daemon
        .ctr_ns(
            "again-ctr",
            &["images", "import", "--no-unpack", s(&by_berth)],
        )
        .assert_success();
    let listed = daemon
        .berth_ns("again-ctr", &["images", "ls", "-q"])
        .assert_success();
    assert_eq!(lines(&listed), [NAME]);
}

#[test]
fn tag_label_check_and_remove_match_ctr() {
    if !require_ctr() {
        return;
    }
    let Some(daemon) = daemon() else { return };
    let (path, _) = busybox_archive(&daemon);
    daemon.berth(&import_args(&path)).assert_success();

    let out = daemon
        .berth(&["images", "tag", NAME, "busybox:copy", "other:1"])
        .assert_success();
    assert_eq!(lines(&out), ["busybox:copy", "other:1"]);
    daemon
        .berth(&["images", "tag", NAME, "busybox:copy"])
        .assert_failure_containing("already exists");
    daemon
        .berth(&["images", "tag", "--force", NAME, "busybox:copy"])
        .assert_success();

    let out = daemon
        .berth(&["images", "label", "busybox:copy", "b=2", "a=1"])
        .assert_success();
    assert_eq!(out.stdout, "a=1,b=2\n");
    let out = daemon
        .berth(&["images", "label", "busybox:copy", "b="])
        .assert_success();
    assert_eq!(out.stdout, "a=1\n");

    let berth_ls = daemon.berth(&["images", "ls"]).assert_success();
    let ctr_ls = daemon.ctr(&["images", "ls"]).assert_success();
    assert_eq!(berth_ls.stdout, ctr_ls.stdout);
    assert!(berth_ls.stdout.contains(" a=1 "), "{berth_ls}");
    let filtered = daemon
        .berth(&["images", "ls", "-q", "labels.a==1"])
        .assert_success();
    assert_eq!(lines(&filtered), ["busybox:copy"]);

    // ctr asks the snapshotter whether the image is unpacked and fails
    // where there is no snapshots service yet; the table is the same.
    let berth_check = daemon.berth(&["images", "check"]).assert_success();
    let ctr_check = daemon.ctr(&["images", "check"]);
    assert_eq!(berth_check.stdout, ctr_check.stdout);
    assert!(
        berth_check.stdout.contains("complete (2/2)"),
        "{berth_check}"
    );

    let out = daemon
        .berth(&["images", "rm", "busybox:copy", "missing:1"])
        .assert_success();
    assert_eq!(out.stdout, "busybox:copy\n");
    assert!(out.stderr.contains("missing:1: image not found"), "{out}");
    let out = daemon
        .berth(&["images", "rm", "--sync", "other:1"])
        .assert_success();
    assert_eq!(out.stdout, "other:1\n");
    let left = daemon.ctr(&["images", "ls", "-q"]).assert_success();
    assert_eq!(lines(&left), [NAME]);
}

/// A Docker `save` archive of a one-file layer.
fn docker_archive() -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut layer = TarWriter::new(Vec::new());
        layer
            .append(&Header::file("hello.txt", 0o644, 6), b"hello\n")
            .await
            .expect("layer");
        let layer = layer.finish().await.expect("layer");
        let config = format!(
            r#"{{"architecture":"{}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            berth_testkit::host_arch(),
            Digest::sha256_of(&layer)
        );
        let manifest = r#"[{"Config":"cfg.json","RepoTags":["hello:1","example.com/team/hello:1"],"Layers":["abc/layer.tar"]}]"#;
        let mut tar = TarWriter::new(Vec::new());
        for (name, body) in [
            ("abc/layer.tar", layer.as_slice()),
            ("cfg.json", config.as_bytes()),
            ("manifest.json", manifest.as_bytes()),
            ("repositories", br#"{"hello":{"1":"abc"}}"#.as_slice()),
        ] {
            tar.append(&Header::file(name, 0o644, body.len() as u64), body)
                .await
                .expect("member");
        }
        tar.finish().await.expect("archive")
    })
}

#[test]
fn docker_archives_import_to_the_digests_ctr_computes() {
    if !require_ctr() {
        return;
    }
    let Some(daemon) = daemon() else { return };
    let path = daemon.dir().join("docker.tar");
    std::fs::write(&path, docker_archive()).expect("write");
    daemon
        .ctr_ns("ctr", &["images", "import", "--no-unpack", s(&path)])
        .assert_success();
    daemon
        .berth_ns("berth", &["images", "import", "--no-unpack", s(&path)])
        .assert_success();
    let by_ctr = daemon.ctr_ns("ctr", &["images", "ls"]).assert_success();
    let by_berth = daemon.ctr_ns("berth", &["images", "ls"]).assert_success();
    // Same names and the same Docker schema 2 manifest digests: berth
    // writes the JSON containerd writes, byte for byte.
    assert_eq!(by_berth.stdout, by_ctr.stdout);
    assert!(
        by_ctr.stdout.contains("docker.io/library/hello:1"),
        "{by_ctr}"
    );
    assert!(
        by_ctr.stdout.contains("example.com/team/hello:1"),
        "{by_ctr}"
    );
    assert!(
        by_ctr
            .stdout
            .contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{by_ctr}"
    );
}

#[test]
fn import_without_matching_platform_is_filtered_out() {
    if !require_ctr() {
        return;
    }
    let Some(daemon) = daemon() else { return };
    let (path, _) = busybox_archive(&daemon);
    let other = if berth_testkit::host_arch() == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let args = [
        "images",
        "import",
        "--no-unpack",
        "--platform",
        other,
        s(&path),
    ];
    daemon
        .berth(&args)
        .assert_failure_containing("image might be filtered out");
    daemon
        .ctr(&args)
        .assert_failure_containing("image might be filtered out");
    let args = [
        "images",
        "import",
        "--no-unpack",
        "--all-platforms",
        "--index-name",
        "idx",
        s(&path),
    ];
    daemon.berth(&args).assert_success();
    let listed = daemon.berth(&["images", "ls", "-q"]).assert_success();
    assert_eq!(lines(&listed).len(), 2, "{listed}");
    assert!(listed.stdout.contains("idx\n"), "{listed}");
}

/// An archive with one hostile member.
fn hostile_archive(header: Header, body: &[u8]) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut tar = TarWriter::new(Vec::new());
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        tar.append(
            &Header::file("oci-layout", 0o444, layout.len() as u64),
            layout,
        )
        .await
        .expect("layout");
        tar.append(&header, body).await.expect("member");
        tar.finish().await.expect("archive")
    })
}

#[test]
fn archives_with_bad_paths_are_refused_without_writing_outside_the_store() {
    let Some(daemon) = daemon() else { return };
    let escaped = daemon.dir().join("escaped");
    let dir_name = daemon
        .dir()
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_string();
    let relative_escape = format!("../../../../../../../../tmp/{dir_name}/escaped");
    let mut hard_link = Header::symlink("blobs/hard", "oci-layout");
    hard_link.kind = EntryKind::HardLink;
    let cases = [
        ("dot-dot", Header::file(relative_escape.as_str(), 0o644, 4)),
        ("absolute", Header::file(s(&escaped), 0o644, 4)),
        (
            "symlink escape",
            Header::symlink("blobs/sha256/link", "../../../../../etc/shadow"),
        ),
        (
            "absolute symlink",
            Header::symlink("blobs/link", "/etc/shadow"),
        ),
        ("hard link", hard_link),
    ];
    for (what, header) in cases {
        let body: &[u8] = if header.size > 0 { b"evil" } else { b"" };
        let path = daemon.dir().join("hostile.tar");
        std::fs::write(&path, hostile_archive(header, body)).expect("write");
        let out = daemon.berth(&["images", "import", "--no-unpack", s(&path)]);
        let out = out.assert_failure_containing("invalid argument");
        assert!(out.stderr.contains("archive member"), "{what}: {out}");
        assert!(
            !escaped.exists(),
            "{what}: a file appeared outside the store"
        );
    }
    let listed = daemon.berth(&["images", "ls", "-q"]).assert_success();
    assert!(listed.stdout.is_empty(), "{listed}");
}
