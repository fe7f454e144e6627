//! Images, leases and garbage collection, driven as users drive containerd:
//! Debian's `ctr` and the gRPC API against a private berthd.
//!
//! Blobs are written the way a pull writes them: under a lease, through the
//! content Write stream, with `containerd.io/gc.ref.content.*` labels on the
//! manifest; then the image names the manifest and the lease goes. Whether
//! garbage collection freed a blob is read from the files under
//! `<root>/content/blobs/sha256`.
//!
//! `BERTH_TESTKIT_DAEMON=containerd cargo test -p berth-daemon --test
//! images_gc` runs the same assertions against Debian's containerd.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_testkit::pb::services::v1::content_client::ContentClient;
use berth_testkit::pb::services::v1::images_client::ImagesClient;
use berth_testkit::pb::services::v1::leases_client::LeasesClient;
use berth_testkit::pb::services::v1::{
    AddResourceRequest, CreateImageRequest, CreateRequest, DeleteImageRequest, DeleteRequest,
    DeleteResourceRequest, GetImageRequest, Image, ListResourcesRequest, Resource, WriteAction,
    WriteContentRequest,
};
use berth_testkit::pb::types::Descriptor;
use berth_testkit::{block_on, connect, require_ctr, testing_containerd, with_namespace, Daemon};
use tonic::transport::Channel;
use tonic::Code;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn daemon() -> Daemon {
    match Daemon::start() {
        Ok(daemon) => daemon,
        Err(err) => panic!("starting the daemon: {err:#}"),
    }
}

fn digest_of(data: &[u8]) -> String {
    berth_core::Digest::sha256_of(data).to_string()
}

/// Where the daemon keeps blob `digest`.
fn blob_path(daemon: &Daemon, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    let berth = daemon.root().join("content/blobs/sha256").join(hex);
    if testing_containerd() {
        return daemon
            .root()
            .join("io.containerd.content.v1.content/blobs/sha256")
            .join(hex);
    }
    berth
}

/// Adds the lease header to a request.
fn leased<T>(mut req: tonic::Request<T>, lease: &str) -> tonic::Request<T> {
    let value = lease.parse().expect("ascii lease id");
    req.metadata_mut().insert("containerd-lease", value);
    req
}

/// Writes `data` as one blob with `labels` (one Commit message carrying the
/// data, as containerd's service accepts), under `lease`.
async fn write_blob(
    channel: Channel,
    ns: &str,
    lease: &str,
    data: &[u8],
    labels: HashMap<String, String>,
) -> String {
    let digest = digest_of(data);
    let req = WriteContentRequest {
        action: WriteAction::Commit as i32,
        r#ref: format!("test-{digest}"),
        total: data.len() as i64,
        expected: digest.clone(),
        offset: 0,
        data: data.to_vec(),
        labels,
    };
    let stream = futures::stream::iter(vec![req]);
    let request = leased(with_namespace(stream, ns).expect("ns"), lease);
    // Content that exists already is `AlreadyExists`, which callers that
    // only want it present (and leased) treat as success, as containerd's
    // `content.WriteBlob` does.
    let mut replies = match ContentClient::new(channel).write(request).await {
        Ok(replies) => replies.into_inner(),
        Err(s) if s.code() == Code::AlreadyExists => return digest,
        Err(s) => panic!("write {digest}: {s:?}"),
    };
    loop {
        match replies.message().await {
            Ok(Some(_)) => {}
            Ok(None) => return digest,
            Err(s) if s.code() == Code::AlreadyExists => return digest,
            Err(s) => panic!("write {digest}: {s:?}"),
        }
    }
}

/// An OCI image for this machine's platform — a config and `layers` (their
/// bytes stand in for tars: nothing unpacks them) under a manifest — written
/// with the labels a pull sets. Returns the manifest's digest and size, and
/// every blob digest, manifest first.
async fn write_image_blobs(
    channel: Channel,
    ns: &str,
    lease: &str,
    name: &str,
    layers: &[&[u8]],
) -> ((String, i64), Vec<String>) {
    let config = serde_json::json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": {"Labels": {"name": name}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| digest_of(l)).collect::<Vec<_>>()},
    })
    .to_string();
    let config_digest = write_blob(
        channel.clone(),
        ns,
        lease,
        config.as_bytes(),
        HashMap::new(),
    )
    .await;
    let mut labels = HashMap::from([(
        "containerd.io/gc.ref.content.config".to_owned(),
        config_digest.clone(),
    )]);
    let mut all = vec![config_digest.clone()];
    let mut descriptors = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let d = write_blob(channel.clone(), ns, lease, layer, HashMap::new()).await;
        labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), d.clone());
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": d,
            "size": layer.len(),
        }));
        all.push(d);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": descriptors,
    })
    .to_string();
    let digest = write_blob(channel, ns, lease, manifest.as_bytes(), labels).await;
    all.insert(0, digest.clone());
    ((digest, manifest.len() as i64), all)
}

/// This machine's architecture in Go's (and OCI's) words.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn image(name: &str, target: &str, size: i64) -> Image {
    Image {
        name: name.to_owned(),
        target: Some(Descriptor {
            media_type: MANIFEST.to_owned(),
            digest: target.to_owned(),
            size,
            annotations: HashMap::new(),
        }),
        ..Default::default()
    }
}

async fn create_image(channel: Channel, ns: &str, name: &str, target: &str) {
    create_sized_image(channel, ns, name, target, 2).await;
}

async fn create_sized_image(channel: Channel, ns: &str, name: &str, target: &str, size: i64) {
    let req = CreateImageRequest {
        image: Some(image(name, target, size)),
        source_date_epoch: None,
    };
    ImagesClient::new(channel)
        .create(with_namespace(req, ns).expect("ns"))
        .await
        .unwrap_or_else(|s| panic!("create image {name}: {s:?}"));
}

async fn create_lease(channel: Channel, ns: &str, id: &str, labels: &[(&str, &str)]) {
    let req = CreateRequest {
        id: id.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    LeasesClient::new(channel)
        .create(with_namespace(req, ns).expect("ns"))
        .await
        .unwrap_or_else(|s| panic!("create lease {id}: {s:?}"));
}

async fn delete_lease(channel: Channel, ns: &str, id: &str) {
    let req = DeleteRequest {
        id: id.to_owned(),
        sync: true,
    };
    LeasesClient::new(channel)
        .delete(with_namespace(req, ns).expect("ns"))
        .await
        .unwrap_or_else(|s| panic!("delete lease {id}: {s:?}"));
}

/// The blobs of `digests` that are on disk.
fn on_disk(daemon: &Daemon, digests: &[String]) -> Vec<String> {
    digests
        .iter()
        .filter(|d| blob_path(daemon, d).exists())
        .cloned()
        .collect()
}

/// The names `ctr images ls -q` prints, sorted.
fn ctr_image_names(daemon: &Daemon, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["images", "ls", "-q"];
    args.extend_from_slice(filters);
    let out = daemon.ctr(&args).assert_success();
    let mut names: Vec<String> = out.lines().into_iter().map(str::to_owned).collect();
    names.sort();
    names
}

#[test]
fn ctr_images_ls_tag_label_rm() {
    require_ctr!();
    let daemon = daemon();
    let address = daemon.address().to_owned();
    let target = digest_of(b"not stored");
    let t = target.clone();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        create_image(channel, "default", "docker.io/library/a:1", &t).await;
    })
    .expect("runtime");
    assert_eq!(ctr_image_names(&daemon, &[]), ["docker.io/library/a:1"]);

    daemon
        .ctr(&[
            "images",
            "tag",
            "docker.io/library/a:1",
            "docker.io/library/b:1",
        ])
        .assert_success();
    daemon
        .ctr(&[
            "images",
            "tag",
            "docker.io/library/a:1",
            "docker.io/library/b:1",
        ])
        .assert_failure_containing("already exists");
    daemon
        .ctr(&["images", "label", "docker.io/library/b:1", "tier=front"])
        .assert_success();
    assert_eq!(
        ctr_image_names(&daemon, &["labels.tier==front"]),
        ["docker.io/library/b:1"]
    );
    let ls = daemon.ctr(&["images", "ls"]).assert_success();
    let header: Vec<&str> = ls.lines()[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"],
        "{ls}"
    );
    assert!(ls.stdout.contains("tier=front"), "{ls}");
    assert!(ls.stdout.contains(&target), "{ls}");

    daemon
        .ctr(&["images", "rm", "docker.io/library/a:1"])
        .assert_success();
    assert_eq!(ctr_image_names(&daemon, &[]), ["docker.io/library/b:1"]);
    daemon
        .ctr(&["images", "rm", "--sync", "docker.io/library/b:1"])
        .assert_success();
    assert!(ctr_image_names(&daemon, &[]).is_empty());
}

#[test]
fn images_api_answers_with_containerds_errors() {
    let daemon = daemon();
    let address = daemon.address().to_owned();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let mut images = ImagesClient::new(channel.clone());
        let get = GetImageRequest {
            name: "nope".into(),
        };
        let err = images
            .get(with_namespace(get, "default").expect("ns"))
            .await
            .expect_err("missing image");
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(err.message(), "image \"nope\": not found");

        let target = digest_of(b"x");
        create_image(channel.clone(), "default", "dup", &target).await;
        let dup = CreateImageRequest {
            image: Some(image("dup", &target, 2)),
            source_date_epoch: None,
        };
        let err = images
            .create(with_namespace(dup, "default").expect("ns"))
            .await
            .expect_err("duplicate");
        assert_eq!(err.code(), Code::AlreadyExists);

        let mut no_size = image("sized", &target, 2);
        if let Some(t) = no_size.target.as_mut() {
            t.size = 0;
        }
        let req = CreateImageRequest {
            image: Some(no_size),
            source_date_epoch: None,
        };
        let err = images
            .create(with_namespace(req, "default").expect("ns"))
            .await
            .expect_err("size 0");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message()
                .contains("Target.Size must be greater than zero"),
            "{err:?}"
        );

        if testing_containerd() {
            return; // containerd 1.6 ignores a delete's target (2.x checks it)
        }
        let wrong_target = DeleteImageRequest {
            name: "dup".into(),
            sync: false,
            target: Some(Descriptor {
                digest: digest_of(b"other"),
                ..Default::default()
            }),
        };
        let err = images
            .delete(with_namespace(wrong_target, "default").expect("ns"))
            .await
            .expect_err("target mismatch");
        assert_eq!(err.code(), Code::NotFound);
    })
    .expect("runtime");
}

#[test]
fn ctr_leases_create_ls_rm() {
    require_ctr!();
    let daemon = daemon();
    let out = daemon
        .ctr(&[
            "leases",
            "create",
            "--id",
            "work",
            "--expires",
            "1h",
            "team=a",
        ])
        .assert_success();
    assert!(out.stdout.contains("work"), "{out}");
    let ls = daemon.ctr(&["leases", "ls"]).assert_success();
    let rows: Vec<&str> = ls.lines().into_iter().skip(1).collect();
    assert_eq!(rows.len(), 1, "{ls}");
    assert!(rows[0].starts_with("work"), "{ls}");
    assert!(rows[0].contains("team=a"), "{ls}");
    assert!(rows[0].contains("containerd.io/gc.expire="), "{ls}");
    daemon
        .ctr(&["leases", "rm", "--sync", "work"])
        .assert_success();
    assert!(daemon
        .ctr(&["leases", "ls", "-q"])
        .assert_success()
        .lines()
        .is_empty());
    daemon
        .ctr(&["leases", "rm", "work"])
        .assert_failure_containing("not found");
}

#[test]
fn lease_resources_are_added_listed_and_removed() {
    let daemon = daemon();
    let address = daemon.address().to_owned();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        create_lease(channel.clone(), "default", "l", &[]).await;
        let mut leases = LeasesClient::new(channel);
        let blob = Resource {
            id: digest_of(b"a"),
            r#type: "content".into(),
        };
        let snap = Resource {
            id: "key".into(),
            r#type: "snapshots/overlayfs".into(),
        };
        for resource in [blob.clone(), snap.clone()] {
            let req = AddResourceRequest {
                id: "l".into(),
                resource: Some(resource),
            };
            leases
                .add_resource(with_namespace(req, "default").expect("ns"))
                .await
                .expect("add resource");
        }
        let list = |leases: &mut LeasesClient<Channel>| {
            let req = ListResourcesRequest { id: "l".into() };
            let mut leases = leases.clone();
            async move {
                let mut got = leases
                    .list_resources(with_namespace(req, "default").expect("ns"))
                    .await
                    .expect("list resources")
                    .into_inner()
                    .resources;
                got.sort_by(|a, b| a.r#type.cmp(&b.r#type));
                got
            }
        };
        assert_eq!(list(&mut leases).await, vec![blob.clone(), snap.clone()]);
        let req = DeleteResourceRequest {
            id: "l".into(),
            resource: Some(snap),
        };
        leases
            .delete_resource(with_namespace(req, "default").expect("ns"))
            .await
            .expect("delete resource");
        assert_eq!(list(&mut leases).await, vec![blob.clone()]);
        let req = AddResourceRequest {
            id: "missing".into(),
            resource: Some(blob),
        };
        let err = leases
            .add_resource(with_namespace(req, "default").expect("ns"))
            .await
            .expect_err("no such lease");
        assert_eq!(err.code(), Code::NotFound);
    })
    .expect("runtime");
}

/// Needs the content service: skipped (with a note) while it answers
/// Unimplemented.
fn content_service_ready(daemon: &Daemon) -> bool {
    let address = daemon.address().to_owned();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let req = berth_testkit::pb::services::v1::ListContentRequest::default();
        let mut client = ContentClient::new(channel);
        match client
            .list(with_namespace(req, "default").expect("ns"))
            .await
        {
            Ok(_) => true,
            Err(status) => status.code() != Code::Unimplemented,
        }
    })
    .expect("runtime")
}

#[test]
fn deleting_an_image_frees_exactly_its_unshared_blobs() {
    let daemon = daemon();
    if !content_service_ready(&daemon) {
        eprintln!("skipped: the content service is not built yet");
        return;
    }
    let address = daemon.address().to_owned();
    let (a, b) = block_on(async move {
        let channel = connect(&address).await.expect("connect");
        create_lease(channel.clone(), "default", "pull", &[]).await;
        let shared: &[u8] = b"shared layer";
        let (ch, ns) = (channel.clone(), "default");
        let a = write_image_blobs(ch, ns, "pull", "a", &[shared, b"layer only in a"]).await;
        let b = write_image_blobs(channel.clone(), ns, "pull", "b", &[shared]).await;
        create_sized_image(channel.clone(), ns, "a", &a.0 .0, a.0 .1).await;
        create_sized_image(channel.clone(), ns, "b", &b.0 .0, b.0 .1).await;
        delete_lease(channel, ns, "pull").await;
        (a.1, b.1)
    })
    .expect("runtime");
    let mut all = a.clone();
    all.extend(b.iter().cloned());
    all.sort();
    all.dedup();
    assert_eq!(on_disk(&daemon, &all), all, "images hold every blob");
    if berth_testkit::ctr_bin().is_ok() {
        // ctr reads the manifests and configs back through the content API.
        // Until snapshotters exist, ctr's unpack check fails after the
        // content check has printed its table.
        let check = daemon.ctr(&["images", "check"]);
        if !check.success() {
            assert!(
                check.stderr.contains("Snapshots/Stat is not implemented"),
                "{check}"
            );
        }
        let rows: Vec<Vec<&str>> = check
            .lines()
            .into_iter()
            .skip(1)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows.len(), 2, "{check}");
        assert_eq!(rows[0][0], "a", "{check}");
        assert_eq!(&rows[0][3..5], ["complete", "(3/3)"], "{check}");
        assert_eq!(&rows[1][3..5], ["complete", "(2/2)"], "{check}");
    }

    daemon
        .ctr(&["images", "rm", "--sync", "a"])
        .assert_success();
    let unshared: Vec<String> = a.iter().filter(|d| !b.contains(d)).cloned().collect();
    assert_eq!(unshared.len(), 3, "manifest, config and one layer of a");
    assert!(
        on_disk(&daemon, &unshared).is_empty(),
        "a's own blobs are gone"
    );
    assert_eq!(on_disk(&daemon, &b), b, "b and the shared layer stay");

    daemon
        .ctr(&["images", "rm", "--sync", "b"])
        .assert_success();
    assert!(on_disk(&daemon, &all).is_empty());
}

#[test]
fn a_lease_keeps_content_until_it_is_deleted_or_expires() {
    let daemon = daemon();
    if !content_service_ready(&daemon) {
        eprintln!("skipped: the content service is not built yet");
        return;
    }
    let address = daemon.address().to_owned();
    let expiry = "containerd.io/gc.expire";
    let soon = {
        // Two seconds from now, in RFC 3339 (UTC).
        let at = std::time::SystemTime::now() + Duration::from_secs(2);
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after epoch")
            .as_secs();
        rfc3339(secs)
    };
    let (held, expiring) = block_on(async move {
        let channel = connect(&address).await.expect("connect");
        create_lease(channel.clone(), "default", "held", &[]).await;
        create_lease(
            channel.clone(),
            "default",
            "brief",
            &[(expiry, soon.as_str())],
        )
        .await;
        let held = write_blob(channel.clone(), "default", "held", b"held", HashMap::new()).await;
        let expiring = write_blob(
            channel.clone(),
            "default",
            "brief",
            b"brief",
            HashMap::new(),
        )
        .await;
        // Any sync delete runs a collection: both leases still hold.
        create_lease(channel.clone(), "default", "trigger", &[]).await;
        delete_lease(channel, "default", "trigger").await;
        (held, expiring)
    })
    .expect("runtime");
    let both = [held.clone(), expiring.clone()];
    assert_eq!(on_disk(&daemon, &both), both);

    // After the expiry, a collection removes the lease and its blob.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        daemon
            .ctr(&["leases", "create", "--id", "tick"])
            .assert_success();
        daemon
            .ctr(&["leases", "rm", "--sync", "tick"])
            .assert_success();
        if on_disk(&daemon, &both) == [held.clone()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired lease still holds its blob"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let leases = daemon.ctr(&["leases", "ls", "-q"]).assert_success();
    assert_eq!(leases.lines(), ["held"], "{leases}");

    daemon
        .ctr(&["leases", "rm", "--sync", "held"])
        .assert_success();
    assert!(on_disk(&daemon, &both).is_empty());
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}
