//! `berth images push` and `pull` against Debian's `docker-registry` on
//! loopback, through the daemon's transfer service: a test image built
//! here is imported, pushed and checked with `skopeo inspect`, pulled back
//! (by berth, and by Debian's `ctr images pull --plain-http`, which pulls
//! client-side through the content, images, diff and snapshots services),
//! pushed to and pulled from a registry that wants basic auth; a corrupted
//! blob fails the pull and leaves no image; a pull that broke off resumes
//! from its partial download; a two-platform index is pulled for the host,
//! for one platform or for all; a `--hosts-dir` mirror serves a name.

use std::process::Command;

use berth_client::berth_core::content::{ContentStore, WriterOptions};
use berth_client::berth_image::spec::{
    json, Descriptor, Index, Manifest, Platform, ANNOTATION_REF_NAME,
};
use berth_client::berth_image::tar::{Header, TarWriter};
use berth_client::berth_image::{mediatypes, Digest};
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
    if nix_is_root() {
        // ctr unpacked it through Diff.Apply and the snapshots service.
        assert!(check.stdout.contains("true"), "unpacked: {check}");
    }
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

/// The other architecture of a two-platform index.
fn other_arch() -> &'static str {
    if berth_testkit::host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
}

/// A two-platform OCI archive: the busybox manifest for the host, and one
/// for [`other_arch`] with its own config over the same layer. Returns
/// the archive and the other platform's config digest.
fn multi_platform_archive(archive: &OciArchive) -> (Vec<u8>, Digest) {
    let members = tar_members(&archive.bytes);
    let blob = |d: &Digest| members[&format!("blobs/sha256/{}", d.encoded())].clone();
    let host_manifest = blob(&archive.manifest);
    let host_config = blob(&archive.config);
    let other_config = String::from_utf8(host_config.clone())
        .expect("utf-8 config")
        .replace(
            &format!("\"architecture\":\"{}\"", berth_testkit::host_arch()),
            &format!("\"architecture\":\"{}\"", other_arch()),
        )
        .into_bytes();
    assert_ne!(other_config, host_config, "the config names the host arch");
    let descriptor = |media: &str, bytes: &[u8]| {
        Descriptor::new(media, Digest::sha256_of(bytes), bytes.len() as i64)
    };
    let mut manifest: Manifest = json_parse(&host_manifest);
    manifest.config = descriptor(mediatypes::OCI_CONFIG, &other_config);
    let other_manifest = json::to_vec(&manifest).expect("manifest");
    let entry = |bytes: &[u8], arch: &str| {
        let mut d = descriptor(mediatypes::OCI_MANIFEST, bytes);
        d.platform = Some(Platform {
            architecture: arch.into(),
            os: "linux".into(),
            ..Platform::default()
        });
        d.annotations
            .insert(ANNOTATION_REF_NAME.into(), "multi".into());
        d
    };
    let index = Index {
        schema_version: 2,
        media_type: mediatypes::OCI_INDEX.into(),
        manifests: vec![
            entry(&host_manifest, berth_testkit::host_arch()),
            entry(&other_manifest, other_arch()),
        ],
        ..Index::default()
    };
    // One image: the index, named by the ref name on its entries.
    let index_bytes = json::to_vec(&Index {
        manifests: vec![{
            let bytes = json::to_vec(&index).expect("index");
            let mut d = descriptor(mediatypes::OCI_INDEX, &bytes);
            d.annotations
                .insert(ANNOTATION_REF_NAME.into(), "multi".into());
            d
        }],
        ..index.clone()
    })
    .expect("index.json");
    let nested = json::to_vec(&index).expect("index");
    let layer = blob(&archive.layer);
    let blobs: Vec<&[u8]> = vec![
        &layer,
        &host_config,
        &other_config,
        &host_manifest,
        &other_manifest,
        &nested,
    ];
    let bytes = berth_testkit::block_on(async {
        let mut tar = TarWriter::new(Vec::new());
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        tar.append(
            &Header::file("oci-layout", 0o444, layout.len() as u64),
            layout,
        )
        .await
        .expect("oci-layout");
        for b in &blobs {
            let name = format!("blobs/sha256/{}", Digest::sha256_of(b).encoded());
            tar.append(&Header::file(name, 0o444, b.len() as u64), b)
                .await
                .expect("blob");
        }
        tar.append(
            &Header::file("index.json", 0o644, index_bytes.len() as u64),
            &index_bytes,
        )
        .await
        .expect("index.json");
        tar.finish().await.expect("finish")
    })
    .expect("build the archive");
    (bytes, Digest::sha256_of(&other_config))
}

fn json_parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    serde_json::from_slice(bytes).expect("json")
}

#[test]
fn multi_platform_index_pulls_the_platforms_asked_for() {
    require_registry!();
    let registry = Registry::start().expect("start docker-registry");
    let daemon = Daemon::start().expect("start berthd");
    let archive = busybox_oci_archive(&ArchiveNames::default()).expect("archive");
    let (bytes, other_config) = multi_platform_archive(&archive);
    let path = daemon.dir().join("multi.tar");
    std::fs::write(&path, bytes).expect("write");
    let base = format!("{}/test/multi", registry.host());
    let name = format!("{base}:multi");
    daemon
        .berth_ns(
            "src",
            &[
                "images",
                "import",
                "--no-unpack",
                "--all-platforms",
                "--base-name",
                &base,
                path.to_str().expect("utf-8"),
            ],
        )
        .assert_success();
    daemon
        .berth_ns("src", &["images", "push", "--plain-http", &name])
        .assert_success();
    daemon
        .berth_ns("src", &["images", "rm", "--sync", &name])
        .assert_success();
    let mut raw = Command::new("skopeo");
    raw.args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}"));
    let raw = berth_testkit::run_with_timeout(&mut raw, berth_testkit::DEFAULT_COMMAND_TIMEOUT)
        .expect("skopeo")
        .assert_success();
    assert!(raw.stdout.contains(other_arch()), "both platforms: {raw}");

    let has = |ns: &str, digest: &Digest| {
        let out = daemon
            .berth_ns(ns, &["content", "ls", "-q"])
            .assert_success();
        out.stdout.contains(&digest.to_string())
    };
    // The host's platform by default.
    daemon
        .berth_ns("host", &pull_args(&name, &[]))
        .assert_success();
    assert!(has("host", &archive.config) && !has("host", &other_config));
    // One platform asked for (fetch only: it cannot run here).
    let other = format!("linux/{}", other_arch());
    daemon
        .berth_ns(
            "other",
            &[
                "images",
                "pull",
                "--plain-http",
                "--no-unpack",
                "--platform",
                &other,
                &name,
            ],
        )
        .assert_success();
    assert!(has("other", &other_config) && !has("other", &archive.config));
    // Every platform.
    daemon
        .berth_ns(
            "all",
            &[
                "images",
                "pull",
                "--plain-http",
                "--no-unpack",
                "--all-platforms",
                &name,
            ],
        )
        .assert_success();
    assert!(has("all", &other_config) && has("all", &archive.config));
    assert_eq!(image_names(&daemon, "all"), [name]);
}

#[test]
fn hosts_dir_sends_a_name_to_its_mirror() {
    require_registry!();
    let registry = Registry::start().expect("start docker-registry");
    let daemon = Daemon::start().expect("start berthd");
    let (pushed, archive) = pushed_and_forgotten(&daemon, &registry);
    // A name no resolver knows, served by the loopback registry as its
    // mirror (containerd's hosts.toml), read by the daemon.
    let hosts = daemon.dir().join("certs.d");
    let dir = hosts.join("mirror.invalid");
    std::fs::create_dir_all(&dir).expect("hosts dir");
    std::fs::write(
        dir.join("hosts.toml"),
        format!(
            "server = \"https://mirror.invalid\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            registry.host()
        ),
    )
    .expect("hosts.toml");
    let name = pushed.replacen(&registry.host(), "mirror.invalid", 1);
    let hosts = hosts.to_str().expect("utf-8");
    daemon
        .berth_ns("dst", &pull_args(&name, &["--hosts-dir", hosts]))
        .assert_success();
    assert_eq!(image_names(&daemon, "dst"), std::slice::from_ref(&name));
    let image = daemon.berth_ns("dst", &["images", "ls"]).assert_success();
    assert!(
        image.stdout.contains(&archive.manifest.to_string()),
        "{image}"
    );
    // Without the hosts directory the name goes nowhere.
    let out = daemon.berth_ns("none", &pull_args(&name, &[]));
    assert!(!out.success(), "{out}");
}

/// Kills a child (the CLI) if a test fails before it ended.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_pull_cut_short_by_kill_9_leaves_no_half_image_and_the_next_pull_completes() {
    require_registry!();
    require_ctr!();
    if !nix_is_root() || berth_testkit::testing_containerd() {
        eprintln!("skipping: needs root and berthd (unpacks, kills the daemon)");
        return;
    }
    let registry = Registry::start().expect("start docker-registry");
    let mut daemon = Daemon::start().expect("start berthd");
    // Eight gzip layers of two 4 MiB files: a pull takes long enough for
    // the kill to land inside it.
    let image = berth_testkit::LayeredImage::bulk(8, 2, 4 << 20);
    let name = format!("{}/test/big:1", registry.host());
    let archive = image.archive(&name).expect("archive");
    let path = daemon.dir().join("big.tar");
    std::fs::write(&path, &archive.bytes).expect("write the archive");
    let path = path.to_str().expect("utf-8");
    daemon
        .berth_ns("src", &["images", "import", "--no-unpack", path])
        .assert_success();
    daemon
        .berth_ns("src", &["images", "push", "--plain-http", &name])
        .assert_success();
    daemon
        .berth_ns("src", &["images", "rm", "--sync", &name])
        .assert_success();

    let pull = daemon
        .berth_command(Some("dst"))
        .expect("berth")
        .args(pull_args(&name, &[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("berth images pull");
    let mut pull = KillOnDrop(pull);
    // Kill once the first layer is committed and more are on the way.
    let first = archive.chain_ids[0].to_string();
    let caught = loop {
        let snapshots = daemon.ctr_ns("dst", &["snapshots", "ls"]).stdout;
        if snapshots.contains(&first) {
            break true;
        }
        if pull.0.try_wait().expect("wait").is_some() {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    daemon.kill9().expect("kill -9 berthd");
    assert!(
        caught,
        "the pull ended before the kill: make the image bigger"
    );
    let status = pull.0.wait().expect("wait for berth");
    assert!(!status.success(), "the pull saw the daemon die");

    daemon.restart().expect("restart berthd");
    // No half image: the record is written last.
    assert!(image_names(&daemon, "dst").is_empty());
    // And no lease of the dead transfer: the restart released it, so what
    // it fetched is the collector's, not held for hours (found by the soak).
    let leases = daemon
        .ctr_ns("dst", &["leases", "ls", "-q"])
        .assert_success();
    assert!(leases.stdout.trim().is_empty(), "{leases}");
    // The next pull completes, on top of what was kept.
    daemon
        .berth_ns("dst", &pull_args(&name, &[]))
        .assert_success();
    assert_eq!(image_names(&daemon, "dst"), [name]);
    let check = daemon.ctr_ns("dst", &["images", "check"]).assert_success();
    assert!(check.stdout.contains("complete"), "{check}");
    let snapshots = daemon
        .ctr_ns("dst", &["snapshots", "ls"])
        .assert_success()
        .stdout;
    for chain in &archive.chain_ids {
        assert!(
            snapshots.contains(&chain.to_string()),
            "{chain} in:\n{snapshots}"
        );
    }
    assert!(!snapshots.contains("Active"), "{snapshots}");
}
