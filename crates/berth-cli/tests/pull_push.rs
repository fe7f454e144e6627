//! `berth images push` and `pull` against Debian's `docker-registry` on
//! loopback, through the daemon's transfer service: a test image built
//! here is imported, pushed and checked with `skopeo inspect`, pulled back
//! (by berth, and by Debian's `ctr images pull --plain-http`, which pulls
//! client-side through the content, images, diff and snapshots services),
//! pushed to and pulled from a registry that wants basic auth; a corrupted
//! blob fails the pull and leaves no image; a pull that broke off resumes
//! from its partial download.

use std::process::Command;

use berth_client::berth_core::content::{ContentStore, WriterOptions};
use berth_client::Client;
use berth_testkit::{
    busybox_oci_archive, require_ctr, require_registry, ArchiveNames, CmdOutput, Daemon,
    OciArchive, Registry,
};

/// Imports a busybox image named `<registry>/test/busybox:1` into
/// namespace `ns`; returns its name and the archive.
fn seed(daemon: &Daemon, registry: &Registry, ns: &str) -> (String, OciArchive) {
    let base = format!("{}/test/busybox", registry.host());
    let archive = busybox_oci_archive(&ArchiveNames {
        ref_name: Some("1".into()),
        image_name: None,
    })
    .expect("build the busybox archive");
    let path = daemon.dir().join(format!("{ns}.tar"));
    std::fs::write(&path, &archive.bytes).expect("write the archive");
    let path = path.to_str().expect("utf-8");
    daemon
        .berth_ns(
            ns,
            &[
                "images",
                "import",
                "--no-unpack",
                "--base-name",
                &base,
                path,
            ],
        )
        .assert_success();
    (format!("{base}:1"), archive)
}

/// Seeds and pushes the test image, then removes it and lets garbage
/// collection take its blobs, so that a pull must fetch every byte (the
/// content store shares blobs between namespaces, as containerd's does).
fn pushed_and_forgotten(daemon: &Daemon, registry: &Registry) -> (String, OciArchive) {
    let (name, archive) = seed(daemon, registry, "src");
    daemon
        .berth_ns("src", &["images", "push", "--plain-http", &name])
        .assert_success();
    daemon
        .berth_ns("src", &["images", "rm", "--sync", &name])
        .assert_success();
    let left = daemon
        .berth_ns("src", &["content", "ls", "-q"])
        .assert_success();
    assert!(left.stdout.trim().is_empty(), "GC took the blobs: {left}");
    (name, archive)
}

/// The names of namespace `ns`'s images.
fn image_names(daemon: &Daemon, ns: &str) -> Vec<String> {
    let out = daemon
        .berth_ns(ns, &["images", "ls", "-q"])
        .assert_success();
    out.lines().into_iter().map(str::to_owned).collect()
}

/// `skopeo inspect` of `reference` over plain HTTP.
fn skopeo_inspect(reference: &str, creds: Option<&str>) -> CmdOutput {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false"]);
    if let Some(creds) = creds {
        cmd.args(["--creds", creds]);
    }
    cmd.arg(format!("docker://{reference}"));
    berth_testkit::run_with_timeout(&mut cmd, berth_testkit::DEFAULT_COMMAND_TIMEOUT)
        .expect("run skopeo")
}

/// Pull flags: unpack only where snapshots can be mounted (root). The
/// registry is on loopback, which berth reaches over plain HTTP anyway;
/// `--plain-http` skips the HTTPS probe.
fn pull_args<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["images", "pull", "--plain-http"];
    if !nix_is_root() {
        args.push("--no-unpack");
    }
    args.extend_from_slice(extra);
    args.push(name);
    args
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn push_then_pull_with_berth_and_ctr() {
    require_registry!();
    require_ctr!();
    let registry = Registry::start().expect("start docker-registry");
    let daemon = Daemon::start().expect("start berthd");
    let (name, archive) = seed(&daemon, &registry, "src");

    let pushed = daemon
        .berth_ns("src", &["images", "push", "--plain-http", &name])
        .assert_success();
    assert!(pushed.stdout.contains("pushed"), "{pushed}");
    let inspect = skopeo_inspect(&name, None).assert_success();
    assert!(
        inspect.stdout.contains(&archive.manifest.to_string()),
        "skopeo sees the manifest we pushed: {inspect}"
    );
    // Pushing again uploads nothing new.
    let again = daemon
        .berth_ns("src", &["images", "push", "--plain-http", &name])
        .assert_success();
    assert!(
        again
            .stdout
            .contains(&format!("layer-{}: already exists", archive.layer)),
        "{again}"
    );

    // berth pulls it into another namespace, per-blob lines and all.
    let pulled = daemon
        .berth_ns("dst", &pull_args(&name, &[]))
        .assert_success();
    assert!(pulled.stdout.contains("resolving"), "{pulled}");
    assert!(
        pulled
            .stdout
            .contains(&format!("layer-{}: complete", archive.layer)),
        "{pulled}"
    );
    assert!(pulled.stdout.contains("saved"), "{pulled}");
    assert_eq!(image_names(&daemon, "dst"), std::slice::from_ref(&name));
    let check = daemon.ctr_ns("dst", &["images", "check"]).assert_success();
    assert!(check.stdout.contains("complete (2/2)"), "{check}");
    if nix_is_root() {
        assert!(check.stdout.contains("true"), "unpacked: {check}");
    }
    let leases = daemon
        .ctr_ns("dst", &["leases", "ls", "-q"])
        .assert_success();
    assert!(leases.stdout.trim().is_empty(), "no lease left: {leases}");

    // Debian's ctr pulls client-side through berthd's services.
    let ctr = daemon
        .ctr_ns("ctr", &["images", "pull", "--plain-http", &name])
        .assert_success();
    assert!(ctr.stdout.contains("done"), "{ctr}");
    let listed = daemon
        .ctr_ns("ctr", &["images", "ls", "-q"])
        .assert_success();
    assert_eq!(listed.lines(), [name.as_str()]);
    let check = daemon.ctr_ns("ctr", &["images", "check"]).assert_success();
    assert!(check.stdout.contains("complete (2/2)"), "{check}");
}

#[test]
fn basic_auth_registry_takes_user_credentials() {
    require_registry!();
    let registry = Registry::start_with_htpasswd("alice", "s3cret").expect("start registry");
    let daemon = Daemon::start().expect("start berthd");
    let (name, archive) = seed(&daemon, &registry, "src");

    let denied = daemon.berth_ns("src", &["images", "push", "--plain-http", &name]);
    assert!(!denied.success(), "no credentials: {denied}");
    daemon
        .berth_ns(
            "src",
            &[
                "images",
                "push",
                "--plain-http",
                "--user",
                "alice:s3cret",
                &name,
            ],
        )
        .assert_success();
    let inspect = skopeo_inspect(&name, Some("alice:s3cret")).assert_success();
    assert!(
        inspect.stdout.contains(&archive.manifest.to_string()),
        "{inspect}"
    );

    let denied = daemon.berth_ns("dst", &pull_args(&name, &[]));
    assert!(!denied.success(), "no credentials: {denied}");
    daemon
        .berth_ns("dst", &pull_args(&name, &["--user", "alice:s3cret"]))
        .assert_success();
    assert_eq!(image_names(&daemon, "dst"), [name]);
}

#[test]
fn corrupted_blob_fails_the_pull_and_leaves_no_image() {
    require_registry!();
    let registry = Registry::start().expect("start docker-registry");
    let daemon = Daemon::start().expect("start berthd");
    let (name, archive) = pushed_and_forgotten(&daemon, &registry);
    registry
        .corrupt_blob(&archive.layer.to_string())
        .expect("corrupt the layer");

    let out = daemon.berth_ns("dst", &pull_args(&name, &[]));
    assert!(!out.success(), "a corrupted layer fails the pull: {out}");
    assert!(out.stderr.contains(&archive.layer.to_string()), "{out}");
    assert!(image_names(&daemon, "dst").is_empty());
    let content = daemon
        .berth_ns("dst", &["content", "ls", "-q"])
        .assert_success();
    assert!(
        !content.stdout.contains(&archive.layer.to_string()),
        "the bad layer is not committed: {content}"
    );
}

#[test]
fn a_broken_off_pull_resumes_from_its_partial_download() {
    require_registry!();
    let mut registry = Registry::start().expect("start docker-registry");
    let daemon = Daemon::start().expect("start berthd");
    let (name, archive) = pushed_and_forgotten(&daemon, &registry);

    // The first half of the layer, as a pull that broke off leaves it: an
    // ingest under the pull's ref (containerd's `layer-<digest>`).
    let layer = layer_bytes(&archive);
    let half = layer.len() / 2;
    let reference = format!("layer-{}", archive.layer);
    berth_testkit::block_on(async {
        let client = Client::connect(daemon.address().display().to_string())
            .await
            .expect("connect")
            .with_namespace("dst");
        let content = client.content();
        let mut writer = content
            .writer(WriterOptions {
                reference: reference.clone(),
                total: layer.len() as i64,
                expected: Some(archive.layer.clone()),
            })
            .await
            .expect("writer");
        writer.write(&layer[..half]).await.expect("write half");
        let status = content.status(&reference).await.expect("status");
        assert_eq!(status.offset, half as i64);
    })
    .expect("seed the ingest");

    // With the registry gone the pull fails and keeps what it has.
    registry.stop();
    let out = daemon.berth_ns("dst", &pull_args(&name, &[]));
    assert!(!out.success(), "no registry: {out}");
    assert!(
        out.stderr.contains(&registry.host()),
        "names the host: {out}"
    );
    assert!(image_names(&daemon, "dst").is_empty());
    let active = daemon
        .berth_ns("dst", &["content", "active"])
        .assert_success();
    assert!(active.stdout.contains(&reference), "{active}");

    // Back again: the retried pull continues from the partial download.
    registry.restart().expect("restart the registry");
    let out = daemon
        .berth_ns("dst", &pull_args(&name, &[]))
        .assert_success();
    assert!(
        out.stdout
            .contains(&format!("{reference}: downloading (resuming at")),
        "{out}"
    );
    assert_eq!(image_names(&daemon, "dst"), [name]);
    let active = daemon
        .berth_ns("dst", &["content", "active"])
        .assert_success();
    assert!(!active.stdout.contains(&reference), "{active}");
}

/// The layer blob out of the archive (an OCI layout tar).
fn layer_bytes(archive: &OciArchive) -> Vec<u8> {
    let member = format!("blobs/sha256/{}", archive.layer.encoded());
    let mut tar = tar_members(&archive.bytes);
    tar.remove(&member)
        .unwrap_or_else(|| panic!("{member} in the archive"))
}

/// A plain ustar reader: member name → bytes.
fn tar_members(bytes: &[u8]) -> std::collections::HashMap<String, Vec<u8>> {
    let mut out = std::collections::HashMap::new();
    let mut at = 0;
    while at + 512 <= bytes.len() {
        let header = &bytes[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_string();
        let size_field = String::from_utf8_lossy(&header[124..136]);
        let size =
            usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                .expect("octal size");
        at += 512;
        out.insert(name, bytes[at..at + size].to_vec());
        at += size.div_ceil(512) * 512;
    }
    out
}
