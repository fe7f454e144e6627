//! The CRI ImageService against a private berthd and a loopback registry:
//! pull (anonymous and with basic auth), status, list, remove by tag, id
//! and digest, the image filesystem's usage, and images shared with the
//! containerd API in `k8s.io` (`ctr -n k8s.io images …`).

use std::time::Duration;

use base64::Engine;
use berth_client::berth_core::images::ImageStore;
use berth_testkit::{
    block_on, busybox_oci_archive, require_ctr, require_registry, require_root, run_with_timeout,
    ArchiveNames, CriClient, Daemon, Registry,
};
use k8s_cri::v1::{
    AuthConfig, ImageFilter, ImageFsInfoRequest, ImageSpec, ImageStatusRequest,
    ImageStatusResponse, ListImagesRequest, PullImageRequest, RemoveImageRequest,
};

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..ImageSpec::default()
    })
}

async fn pull(
    cri: &mut CriClient,
    image: &str,
    auth: Option<AuthConfig>,
) -> Result<String, tonic::Status> {
    let request = PullImageRequest {
        image: spec(image),
        auth,
        sandbox_config: None,
    };
    Ok(cri.image.pull_image(request).await?.into_inner().image_ref)
}

async fn status(cri: &mut CriClient, image: &str, verbose: bool) -> ImageStatusResponse {
    let request = ImageStatusRequest {
        image: spec(image),
        verbose,
    };
    cri.image
        .image_status(request)
        .await
        .unwrap_or_else(|e| panic!("ImageStatus {image}: {e}"))
        .into_inner()
}

async fn remove(cri: &mut CriClient, image: &str) {
    let request = RemoveImageRequest { image: spec(image) };
    cri.image
        .remove_image(request)
        .await
        .unwrap_or_else(|e| panic!("RemoveImage {image}: {e}"));
}

async fn list(cri: &mut CriClient, filter: Option<&str>) -> Vec<k8s_cri::v1::Image> {
    let request = ListImagesRequest {
        filter: filter.map(|f| ImageFilter { image: spec(f) }),
    };
    cri.image
        .list_images(request)
        .await
        .expect("ListImages")
        .into_inner()
        .images
}

/// The target digest of image record `name` in `k8s.io`.
async fn target_digest(daemon: &Daemon, name: &str) -> String {
    let client = berth_client::Client::connect(daemon.address().display().to_string())
        .await
        .expect("connect")
        .with_namespace("k8s.io");
    let record = client.images().get(name).await.expect("image record");
    record.target.digest.to_string()
}

/// `ctr -n k8s.io images ls -q`.
fn ctr_names(daemon: &Daemon) -> Vec<String> {
    let out = daemon
        .ctr_ns("k8s.io", &["images", "ls", "-q"])
        .assert_success();
    out.lines().iter().map(|l| l.to_string()).collect()
}

#[test]
fn pull_status_list_and_remove_by_tag_id_and_digest() {
    require_root!();
    require_registry!();
    require_ctr!();
    let registry = Registry::start().expect("registry");
    let reference = registry
        .push_busybox("cri/busybox:1")
        .expect("push busybox");
    let repo = reference.trim_end_matches(":1").to_string();
    let daemon = Daemon::start().expect("start daemon");
    block_on(async {
        let mut cri = daemon.cri().await.expect("cri client");
        assert_eq!(
            status(&mut cri, &reference, false).await,
            ImageStatusResponse::default()
        );

        let id = pull(&mut cri, &reference, None).await.expect("PullImage");
        assert!(id.starts_with("sha256:") && id.len() == 71, "image id {id}");
        let digest = target_digest(&daemon, &reference).await;
        let digest_ref = format!("{repo}@{digest}");

        let found = status(&mut cri, &reference, false).await;
        let image = found.image.expect("image");
        assert_eq!(image.id, id);
        assert_eq!(image.repo_tags, [reference.as_str()]);
        assert_eq!(image.repo_digests, [digest_ref.as_str()]);
        assert!(image.size > 100_000, "busybox's size: {}", image.size);
        assert!(!image.pinned);
        assert!(found.info.is_empty(), "no info unless verbose");

        let verbose = status(&mut cri, &reference, true).await;
        let info: serde_json::Value =
            serde_json::from_str(&verbose.info["info"]).expect("info is JSON");
        assert_eq!(info["imageSpec"]["os"], "linux");
        assert_eq!(info["imageSpec"]["config"]["Cmd"][0], "sh");
        assert!(
            info["chainID"]
                .as_str()
                .is_some_and(|c| c.starts_with("sha256:")),
            "{info}"
        );

        // By id, by a short id, by digest: the same image.
        for name in [id.as_str(), &id[7..19], digest_ref.as_str()] {
            let image = status(&mut cri, name, false).await.image;
            assert_eq!(image.map(|i| i.id), Some(id.clone()), "by {name}");
        }

        let listed = list(&mut cri, None).await;
        assert_eq!(
            listed.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            [id.as_str()]
        );
        assert_eq!(list(&mut cri, Some(&digest_ref)).await.len(), 1);
        assert!(list(&mut cri, Some("busybox:nope")).await.is_empty());

        // CRI's records, as the containerd API shows them.
        let mut names = ctr_names(&daemon);
        names.sort();
        let mut want = vec![reference.clone(), digest_ref.clone(), id.clone()];
        want.sort();
        assert_eq!(names, want);
        let labels = daemon.ctr_ns("k8s.io", &["images", "ls"]).assert_success();
        assert_eq!(
            labels
                .stdout
                .matches("io.cri-containerd.image=managed")
                .count(),
            3,
            "{labels}"
        );

        // Removed by tag, id or digest: every record goes.
        for by in [reference.clone(), id.clone(), digest_ref.clone()] {
            remove(&mut cri, &by).await;
            assert_eq!(
                status(&mut cri, &reference, false).await,
                ImageStatusResponse::default(),
                "removed by {by}"
            );
            assert!(ctr_names(&daemon).is_empty(), "removed by {by}");
            assert!(list(&mut cri, None).await.is_empty());
            pull(&mut cri, &reference, None).await.expect("pull again");
        }
        remove(&mut cri, "docker.io/library/never-pulled:1").await;
    })
    .expect("runtime");
}

#[test]
fn image_fs_info_counts_the_unpacked_layers() {
    require_root!();
    require_registry!();
    let registry = Registry::start().expect("registry");
    let reference = registry.push_busybox("cri/fs:1").expect("push busybox");
    let daemon = Daemon::start().expect("start daemon");
    block_on(async {
        let mut cri = daemon.cri().await.expect("cri client");
        let fs_info = |cri: &mut CriClient| {
            let mut image = cri.image.clone();
            async move {
                let response = image
                    .image_fs_info(ImageFsInfoRequest {})
                    .await
                    .expect("ImageFsInfo")
                    .into_inner();
                assert_eq!(response.image_filesystems.len(), 1);
                response.image_filesystems[0].clone()
            }
        };
        let empty = fs_info(&mut cri).await;
        assert_eq!(empty.used_bytes.map(|u| u.value), Some(0));
        let mountpoint = empty.fs_id.expect("fs id").mountpoint;
        assert!(
            std::path::Path::new(&mountpoint).starts_with(daemon.root()),
            "{mountpoint} under {}",
            daemon.root().display()
        );
        assert!(mountpoint.ends_with("overlayfs"), "{mountpoint}");

        pull(&mut cri, &reference, None).await.expect("PullImage");
        let used = fs_info(&mut cri).await;
        let bytes = used.used_bytes.expect("bytes").value;
        let inodes = used.inodes_used.expect("inodes").value;
        assert!(bytes > 500_000, "busybox unpacked: {bytes} bytes");
        assert!(inodes > 10, "busybox unpacked: {inodes} inodes");
        assert!(used.timestamp > 0);
    })
    .expect("runtime");
}

/// Pushes the testkit's busybox to an auth registry as `repo_tag`.
fn push_busybox_with_credentials(registry: &Registry, repo_tag: &str, creds: &str) -> String {
    let archive = busybox_oci_archive(&ArchiveNames {
        ref_name: Some("latest".into()),
        image_name: None,
    })
    .expect("archive");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("busybox.tar");
    std::fs::write(&path, &archive.bytes).expect("write archive");
    let reference = format!("{}/{repo_tag}", registry.host());
    let mut cmd = std::process::Command::new("skopeo");
    cmd.args([
        "copy",
        "-q",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
    ])
    .arg(format!("oci-archive:{}:latest", path.display()))
    .arg(format!("docker://{reference}"));
    run_with_timeout(&mut cmd, Duration::from_secs(120))
        .expect("skopeo")
        .assert_success();
    reference
}

#[test]
fn pull_with_basic_auth_needs_the_credentials() {
    require_root!();
    require_registry!();
    let registry = Registry::start_with_htpasswd("alice", "s3cret").expect("registry");
    let reference = push_busybox_with_credentials(&registry, "private/busybox:1", "alice:s3cret");
    let daemon = Daemon::start().expect("start daemon");
    block_on(async {
        let mut cri = daemon.cri().await.expect("cri client");
        let err = pull(&mut cri, &reference, None)
            .await
            .expect_err("anonymous");
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        assert!(
            err.message().contains("failed to pull and unpack image"),
            "{err:?}"
        );
        assert!(err.message().contains(&registry.host()), "{err:?}");
        let wrong = AuthConfig {
            username: "alice".into(),
            password: "wrong".into(),
            ..AuthConfig::default()
        };
        let err = pull(&mut cri, &reference, Some(wrong))
            .await
            .expect_err("wrong password");
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        assert!(list(&mut cri, None).await.is_empty());

        // For another server, the credentials are not sent.
        let elsewhere = AuthConfig {
            username: "alice".into(),
            password: "s3cret".into(),
            server_address: "https://registry.example.com".into(),
            ..AuthConfig::default()
        };
        pull(&mut cri, &reference, Some(elsewhere))
            .await
            .expect_err("not this server's");

        let password = AuthConfig {
            username: "alice".into(),
            password: "s3cret".into(),
            server_address: registry.host(),
            ..AuthConfig::default()
        };
        let id = pull(&mut cri, &reference, Some(password))
            .await
            .expect("user and password");
        remove(&mut cri, &id).await;

        let encoded = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode("alice:s3cret"),
            ..AuthConfig::default()
        };
        let again = pull(&mut cri, &reference, Some(encoded))
            .await
            .expect("auth");
        assert_eq!(again, id);
        let image = status(&mut cri, &reference, false)
            .await
            .image
            .expect("image");
        assert_eq!(image.repo_tags, [reference.as_str()]);
    })
    .expect("runtime");
}

#[test]
fn images_are_shared_with_ctr_in_k8s_io() {
    require_root!();
    require_registry!();
    require_ctr!();
    let registry = Registry::start().expect("registry");
    let from_ctr = registry.push_busybox("ctr/busybox:1").expect("push");
    let from_cri = registry.push_busybox("cri/busybox:2").expect("push");
    let daemon = Daemon::start().expect("start daemon");
    daemon
        .ctr_ns("k8s.io", &["images", "pull", "--plain-http", &from_ctr])
        .assert_success();
    block_on(async {
        let mut cri = daemon.cri().await.expect("cri client");
        let image = status(&mut cri, &from_ctr, false)
            .await
            .image
            .expect("ctr's image");
        assert_eq!(image.repo_tags, [from_ctr.as_str()]);
        assert!(image.id.starts_with("sha256:"));
        let listed = list(&mut cri, None).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].repo_tags, [from_ctr.as_str()]);

        // The same content under another name is the same CRI image.
        let id = pull(&mut cri, &from_cri, None).await.expect("PullImage");
        assert_eq!(id, image.id);
        let listed = list(&mut cri, None).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        let mut tags = listed[0].repo_tags.clone();
        tags.sort();
        let mut want = vec![from_ctr.clone(), from_cri.clone()];
        want.sort();
        assert_eq!(tags, want);
    })
    .expect("runtime");
    let names = ctr_names(&daemon);
    assert!(names.contains(&from_cri), "ctr sees CRI's image: {names:?}");
    let check = daemon
        .ctr_ns("k8s.io", &["images", "check"])
        .assert_success();
    assert!(check.stdout.contains(&from_cri), "{check}");
}

/// The CRI section's `registry.config_path`, at `<daemon dir>/certs.d`.
fn with_registry_config_path(dir: &std::path::Path, config: String) -> String {
    let section = "[plugins.\"io.containerd.grpc.v1.cri\".cni]";
    let registry = format!(
        "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n      config_path = {:?}\n    {section}",
        dir.join("certs.d")
    );
    assert!(config.contains(section), "{config}");
    config.replacen(section, &registry, 1)
}

#[test]
fn pulls_go_through_the_mirrors_of_the_registry_config_path() {
    require_root!();
    require_registry!();
    let registry = Registry::start().expect("registry");
    registry
        .push_busybox("cri/busybox:1")
        .expect("push busybox");
    let daemon = Daemon::builder()
        .edit_config(with_registry_config_path)
        .start()
        .expect("start daemon");
    // `mirror.test` is served only by its mirror, the loopback registry;
    // its own server is a closed loopback port, so nothing leaves the
    // machine if the mirror is not used.
    let hosts = daemon.dir().join("certs.d").join("mirror.test");
    std::fs::create_dir_all(&hosts).expect("hosts dir");
    std::fs::write(
        hosts.join("hosts.toml"),
        format!(
            "server = \"http://127.0.0.1:1\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            registry.host()
        ),
    )
    .expect("hosts.toml");
    block_on(async {
        let mut cri = daemon.cri().await.expect("cri client");
        let id = pull(&mut cri, "mirror.test/cri/busybox:1", None)
            .await
            .expect("pulled from the mirror");
        let image = status(&mut cri, &id, false).await.image.expect("image");
        assert_eq!(image.repo_tags, ["mirror.test/cri/busybox:1"]);
        // Without the mirror, only the closed port is left.
        std::fs::write(
            hosts.join("hosts.toml"),
            "server = \"http://127.0.0.1:1\"\n",
        )
        .expect("hosts.toml without mirror");
        let err = pull(&mut cri, "mirror.test/cri/busybox:2", None)
            .await
            .expect_err("no mirror, no pull");
        assert!(err.message().contains("mirror.test"), "{err:?}");
    })
    .expect("runtime");
}
