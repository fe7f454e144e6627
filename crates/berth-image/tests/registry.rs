//! The registry client against Debian's `docker-registry` on loopback
//! (push, resolve, fetch, mounts, basic auth, hosts.toml, restarts), and
//! against a tiny scripted server for what a real registry will not do
//! (bearer tokens, a server that ignores `Range`, a short body).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use berth_core::{Digest, ErrorKind};
use berth_image::mediatypes;
use berth_image::registry::{RegistryOptions, RegistryResolver};
use berth_image::remotes::{RemoteReader, Resolver};
use berth_image::Descriptor;
use berth_testkit::{require_registry, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Options that ignore the machine's `~/.docker/config.json`.
fn opts() -> RegistryOptions {
    RegistryOptions {
        docker_config: Some(PathBuf::from("/nonexistent/berth-test/config.json")),
        ..RegistryOptions::default()
    }
}

fn reader(bytes: &[u8]) -> RemoteReader {
    Box::new(Cursor::new(bytes.to_vec()))
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, Digest::sha256_of(bytes), bytes.len() as i64)
}

/// A one-layer image: its blobs and manifest, made up from `seed`.
struct TestImage {
    layer: (Descriptor, Vec<u8>),
    config: (Descriptor, Vec<u8>),
    manifest: (Descriptor, Vec<u8>),
}

fn test_image(seed: u8) -> TestImage {
    let layer_bytes: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed)
        .collect();
    let layer = descriptor(mediatypes::OCI_LAYER, &layer_bytes);
    let config_bytes = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        layer.digest
    )
    .into_bytes();
    let config = descriptor(mediatypes::OCI_CONFIG, &config_bytes);
    let manifest_bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mediatypes::OCI_MANIFEST,
        "config": config,
        "layers": [layer],
    }))
    .expect("manifest json");
    let manifest = descriptor(mediatypes::OCI_MANIFEST, &manifest_bytes);
    TestImage {
        layer: (layer, layer_bytes),
        config: (config, config_bytes),
        manifest: (manifest, manifest_bytes),
    }
}

async fn push_image(resolver: &RegistryResolver, reference: &str, image: &TestImage) {
    let pusher = resolver.pusher(reference).await.expect("pusher");
    for (desc, bytes) in [&image.layer, &image.config, &image.manifest] {
        if !pusher.exists(desc).await.expect("exists") {
            pusher
                .push(desc, &[], reader(bytes))
                .await
                .unwrap_or_else(|e| panic!("push {}: {e}", desc.digest));
        }
    }
}

async fn read_all(mut r: RemoteReader) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn push_then_resolve_by_tag_and_digest_and_fetch_with_offset() {
    require_registry!();
    let registry = Registry::start().expect("registry");
    let resolver = RegistryResolver::new(opts()).expect("resolver");
    let image = test_image(1);
    let reference = format!("{}/test/one:v1", registry.host());
    push_image(&resolver, &reference, &image).await;

    let (name, desc) = resolver.resolve(&reference).await.expect("resolve tag");
    assert_eq!(name, reference);
    assert_eq!(desc, image.manifest.0);

    let by_digest = format!("{}/test/one@{}", registry.host(), desc.digest);
    let (name, again) = resolver.resolve(&by_digest).await.expect("resolve digest");
    assert_eq!((name, again), (by_digest.clone(), desc.clone()));

    let fetcher = resolver.fetcher(&reference).await.expect("fetcher");
    let manifest = read_all(fetcher.fetch(&desc, 0).await.expect("fetch manifest"))
        .await
        .expect("read manifest");
    assert_eq!(manifest, image.manifest.1);
    let (layer, bytes) = &image.layer;
    let whole = read_all(fetcher.fetch(layer, 0).await.expect("fetch layer"))
        .await
        .expect("read layer");
    assert_eq!(&whole, bytes);
    let tail = read_all(fetcher.fetch(layer, 123_456).await.expect("fetch tail"))
        .await
        .expect("read tail");
    assert_eq!(tail, bytes[123_456..]);
    let nothing = read_all(
        fetcher
            .fetch(layer, bytes.len() as u64)
            .await
            .expect("at end"),
    )
    .await
    .expect("read nothing");
    assert!(nothing.is_empty());

    let pusher = resolver.pusher(&reference).await.expect("pusher");
    assert!(pusher.exists(layer).await.expect("exists"));
    assert!(pusher.exists(&image.manifest.0).await.expect("exists"));
    let other = test_image(2);
    assert!(!pusher.exists(&other.layer.0).await.expect("exists"));
    assert!(!pusher.exists(&other.manifest.0).await.expect("exists"));
}

#[tokio::test]
async fn concurrent_first_requests_to_loopback_all_fall_back_to_http() {
    require_registry!();
    let registry = Registry::start().expect("registry");
    // One resolver, no plain_http: every request starts over TLS, and only
    // one of them is the one that switches the host to HTTP.
    let resolver = RegistryResolver::new(opts()).expect("resolver");
    let pushes = (0..4u8).map(|seed| {
        let resolver = resolver.clone();
        let reference = format!("{}/test/concurrent{seed}:v1", registry.host());
        async move {
            push_image(&resolver, &reference, &test_image(10 + seed)).await;
            resolver.resolve(&reference).await.expect("resolve")
        }
    });
    let resolved = futures::future::join_all(pushes).await;
    assert_eq!(resolved.len(), 4);
}

#[tokio::test]
async fn missing_tag_is_not_found_naming_host_and_reference() {
    require_registry!();
    let registry = Registry::start().expect("registry");
    let resolver = RegistryResolver::new(opts()).expect("resolver");
    let reference = format!("{}/test/missing:nope", registry.host());
    let err = resolver.resolve(&reference).await.expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let text = err.to_string();
    assert!(text.contains(&reference), "{text}");
    assert!(text.contains("404"), "{text}");

    let fetcher = resolver.fetcher(&reference).await.expect("fetcher");
    let blob = test_image(3).layer.0;
    let err = fetcher.fetch(&blob, 0).await.err().expect("missing blob");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(blob.digest.as_str()), "{err}");
    assert!(err.to_string().contains(&registry.host()), "{err}");
}

#[tokio::test]
async fn cross_repository_mount_skips_the_upload() {
    require_registry!();
    let registry = Registry::start().expect("registry");
    let resolver = RegistryResolver::new(opts()).expect("resolver");
    let image = test_image(4);
    push_image(&resolver, &format!("{}/test/a:v1", registry.host()), &image).await;

    let target = format!("{}/test/b:v1", registry.host());
    let pusher = resolver.pusher(&target).await.expect("pusher");
    let (layer, _) = &image.layer;
    assert!(!pusher.exists(layer).await.expect("exists"));
    // Wrong bytes: an upload would fail the digest check, so success means
    // the registry mounted the blob from test/a.
    let from = [format!("{}/test/a", registry.host())];
    pusher
        .push(layer, &from, reader(b"not the layer"))
        .await
        .expect("mount");
    assert!(pusher.exists(layer).await.expect("exists"));
}

#[tokio::test]
async fn basic_auth_registry_needs_credentials() {
    require_registry!();
    let registry = Registry::start_with_htpasswd("alice", "s3cret").expect("registry");
    let reference = format!("{}/test/private:v1", registry.host());

    let anonymous = RegistryResolver::new(opts()).expect("resolver");
    let err = anonymous
        .resolve(&reference)
        .await
        .expect_err("no credentials");
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains(&registry.host()), "{err}");
    assert!(err.to_string().contains("credentials"), "{err}");

    let wrong = RegistryResolver::new(RegistryOptions {
        credentials: Some(("alice".into(), "wrong".into())),
        ..opts()
    })
    .expect("resolver");
    let err = wrong.resolve(&reference).await.expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains("401"), "{err}");

    let alice = RegistryResolver::new(RegistryOptions {
        credentials: Some(("alice".into(), "s3cret".into())),
        ..opts()
    })
    .expect("resolver");
    let image = test_image(5);
    push_image(&alice, &reference, &image).await;
    let (_, desc) = alice.resolve(&reference).await.expect("resolve");
    assert_eq!(desc, image.manifest.0);
}

#[tokio::test]
async fn docker_config_auths_are_used() {
    require_registry!();
    let registry = Registry::start_with_htpasswd("bob", "pw").expect("registry");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    // base64("bob:pw")
    let auths = format!(
        r#"{{"auths":{{"{}":{{"auth":"Ym9iOnB3"}}}}}}"#,
        registry.host()
    );
    std::fs::write(&config, auths).expect("write config");
    let resolver = RegistryResolver::new(RegistryOptions {
        docker_config: Some(config),
        ..opts()
    })
    .expect("resolver");
    let reference = format!("{}/test/cfg:v1", registry.host());
    push_image(&resolver, &reference, &test_image(6)).await;
    resolver.resolve(&reference).await.expect("resolve");
}

#[tokio::test]
async fn hosts_toml_mirrors_are_tried_in_order_then_the_server() {
    require_registry!();
    let mirror = Registry::start().expect("mirror");
    let resolver = RegistryResolver::new(opts()).expect("resolver");
    let image = test_image(7);
    push_image(&resolver, &format!("{}/test/m:v1", mirror.host()), &image).await;

    // registry.invalid is never contacted: the live mirror answers first.
    let dead = free_port().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let host_dir = dir.path().join("registry.invalid");
    std::fs::create_dir(&host_dir).expect("mkdir");
    let toml = format!(
        "server = \"https://registry.invalid\"\n\n\
         [host.\"http://127.0.0.1:{dead}\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n\
         [host.\"{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
        mirror.url()
    );
    std::fs::write(host_dir.join("hosts.toml"), toml).expect("write hosts.toml");
    let resolver = RegistryResolver::new(RegistryOptions {
        hosts_dir: Some(dir.path().to_path_buf()),
        max_attempts: 1,
        ..opts()
    })
    .expect("resolver");
    let hosts = resolver.hosts("registry.invalid").expect("hosts");
    let order: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(
        order,
        [
            format!("127.0.0.1:{dead}").as_str(),
            mirror.host().as_str(),
            "registry.invalid"
        ]
    );
    let (_, desc) = resolver
        .resolve("registry.invalid/test/m:v1")
        .await
        .expect("resolve through the mirror");
    assert_eq!(desc, image.manifest.0);
    let fetcher = resolver
        .fetcher("registry.invalid/test/m:v1")
        .await
        .expect("fetcher");
    let layer = read_all(fetcher.fetch(&image.layer.0, 0).await.expect("fetch"))
        .await
        .expect("read");
    assert_eq!(layer, image.layer.1);
}

#[tokio::test]
async fn plain_http_is_used_for_every_unconfigured_host() {
    require_registry!();
    let registry = Registry::start().expect("registry");
    let resolver = RegistryResolver::new(RegistryOptions {
        plain_http: true,
        ..opts()
    })
    .expect("resolver");
    let hosts = resolver.hosts(&registry.host()).expect("hosts");
    assert_eq!(hosts[0].scheme, "http");
    assert!(!hosts[0].http_fallback);
    let reference = format!("{}/test/plain:v1", registry.host());
    let image = test_image(8);
    push_image(&resolver, &reference, &image).await;
    let (_, desc) = resolver.resolve(&reference).await.expect("resolve");
    assert_eq!(desc, image.manifest.0);
}

#[tokio::test]
async fn a_stopped_registry_is_unavailable_until_restarted() {
    require_registry!();
    let mut registry = Registry::start().expect("registry");
    let resolver = RegistryResolver::new(RegistryOptions {
        max_attempts: 2,
        ..opts()
    })
    .expect("resolver");
    let reference = format!("{}/test/restart:v1", registry.host());
    let image = test_image(9);
    push_image(&resolver, &reference, &image).await;

    registry.stop();
    let err = resolver.resolve(&reference).await.expect_err("stopped");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains(&registry.host()), "{err}");

    registry.restart().expect("restart");
    let (_, desc) = resolver.resolve(&reference).await.expect("resolve");
    assert_eq!(desc, image.manifest.0);
    let fetcher = resolver.fetcher(&reference).await.expect("fetcher");
    let tail = read_all(fetcher.fetch(&image.layer.0, 1000).await.expect("fetch"))
        .await
        .expect("read");
    assert_eq!(tail, image.layer.1[1000..]);
}

#[tokio::test]
async fn a_corrupted_blob_is_served_with_other_bytes() {
    require_registry!();
    let registry = Registry::start().expect("registry");
    let resolver = RegistryResolver::new(opts()).expect("resolver");
    let reference = format!("{}/test/corrupt:v1", registry.host());
    let image = test_image(10);
    push_image(&resolver, &reference, &image).await;
    registry
        .corrupt_blob(image.layer.0.digest.as_str())
        .expect("corrupt");
    let fetcher = resolver.fetcher(&reference).await.expect("fetcher");
    let got = read_all(fetcher.fetch(&image.layer.0, 0).await.expect("fetch"))
        .await
        .expect("read");
    assert_eq!(got.len(), image.layer.1.len());
    assert_ne!(Digest::sha256_of(&got), image.layer.0.digest);
}

// ---- a scripted server for bearer tokens, ignored ranges, short bodies ----

async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

/// What the scripted server answers: status, headers, body.
type Reply = (u16, Vec<(String, String)>, Vec<u8>);

struct Request {
    path: String,
    headers: BTreeMap<String, String>,
}

/// Serves HTTP/1.1 on loopback, one request per connection, answering
/// with `handler`; returns the `host:port`.
async fn serve(handler: impl Fn(Request) -> Reply + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let mut lines = text.lines();
                let path = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .unwrap_or_default()
                    .to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let (status, headers, body) = handler(Request { path, headers });
                let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
                // A handler may declare a length its body does not have.
                if !headers.iter().any(|(k, _)| k == "Content-Length") {
                    out += &format!("Content-Length: {}\r\n", body.len());
                }
                for (k, v) in headers {
                    out += &format!("{k}: {v}\r\n");
                }
                out += "\r\n";
                let _ = stream.write_all(out.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn bearer_tokens_are_fetched_once_and_reused() {
    let blob: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let desc = descriptor(mediatypes::OCI_LAYER, &blob);
    let short = descriptor(mediatypes::OCI_LAYER, b"twenty bytes of data");
    let tokens = Arc::new(AtomicUsize::new(0));
    let (blob2, desc2, short2, tokens2) =
        (blob.clone(), desc.clone(), short.clone(), tokens.clone());
    let addr = serve(move |req| {
        if req.path.starts_with("/token?") {
            tokens2.fetch_add(1, Ordering::SeqCst);
            assert!(req.path.contains("service=test-registry"), "{}", req.path);
            assert!(req.path.contains("scope=repository%3Atest%2Frepo%3Apull"), "{}", req.path);
            return (200, vec![], br#"{"access_token":"t0k3n","expires_in":300}"#.to_vec());
        }
        if req.headers.get("authorization").map(String::as_str) != Some("Bearer t0k3n") {
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="test-registry",scope="repository:test/repo:pull""#,
                host_of(&req)
            );
            return (401, vec![("WWW-Authenticate".into(), challenge)], vec![]);
        }
        if req.path.ends_with(short2.digest.as_str()) {
            return (200, vec![], b"only ten b".to_vec());
        }
        assert!(req.path.ends_with(desc2.digest.as_str()), "{}", req.path);
        // Ignores any Range header: the client must skip on its own.
        (200, vec![], blob2.clone())
    })
    .await;
    let resolver = RegistryResolver::new(RegistryOptions {
        plain_http: true,
        ..opts()
    })
    .expect("resolver");
    let reference = format!("{addr}/test/repo:v1");
    let fetcher = resolver.fetcher(&reference).await.expect("fetcher");
    let all = read_all(fetcher.fetch(&desc, 0).await.expect("fetch"))
        .await
        .expect("read");
    assert_eq!(all, blob);
    let tail = read_all(fetcher.fetch(&desc, 4321).await.expect("fetch tail"))
        .await
        .expect("read tail");
    assert_eq!(tail, blob[4321..]);
    assert_eq!(tokens.load(Ordering::SeqCst), 1, "the token is reused");

    let err = read_all(fetcher.fetch(&short, 0).await.expect("fetch short"))
        .await
        .expect_err("short body");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(err.to_string().contains(short.digest.as_str()), "{err}");
}

/// The address the client used, from its `Host` header (the token realm
/// is on the same server).
fn host_of(req: &Request) -> String {
    req.headers.get("host").cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_challenge_without_a_token_server_is_unauthenticated() {
    let addr = serve(|req| {
        let challenge = format!(
            r#"Bearer realm="http://{}/nowhere",service="x""#,
            host_of(&req)
        );
        if req.path.starts_with("/nowhere") {
            return (403, vec![], vec![]);
        }
        (401, vec![("WWW-Authenticate".into(), challenge)], vec![])
    })
    .await;
    let resolver = RegistryResolver::new(RegistryOptions {
        plain_http: true,
        ..opts()
    })
    .expect("resolver");
    let err = resolver
        .resolve(&format!("{addr}/test/repo:v1"))
        .await
        .expect_err("token refused");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains(&addr), "{err}");
    assert!(err.to_string().contains("fetch token"), "{err}");
}

#[tokio::test]
async fn transient_statuses_are_retried_and_404_is_not() {
    let blob = b"some layer bytes".to_vec();
    let desc = descriptor(mediatypes::OCI_LAYER, &blob);
    let missing = descriptor(mediatypes::OCI_LAYER, b"missing");
    let requests = Arc::new(AtomicUsize::new(0));
    let misses = Arc::new(AtomicUsize::new(0));
    let (blob2, desc2, requests2, misses2) =
        (blob.clone(), desc.clone(), requests.clone(), misses.clone());
    let addr = serve(move |req| {
        if !req.path.ends_with(desc2.digest.as_str()) {
            misses2.fetch_add(1, Ordering::SeqCst);
            return (404, vec![], vec![]);
        }
        match requests2.fetch_add(1, Ordering::SeqCst) {
            0 => (503, vec![], vec![]),
            1 => (429, vec![], vec![]),
            _ => (200, vec![], blob2.clone()),
        }
    })
    .await;
    let resolver = RegistryResolver::new(RegistryOptions {
        plain_http: true,
        initial_backoff: std::time::Duration::from_millis(1),
        ..opts()
    })
    .expect("resolver");
    let fetcher = resolver
        .fetcher(&format!("{addr}/test/retry:v1"))
        .await
        .expect("fetcher");
    let got = read_all(fetcher.fetch(&desc, 0).await.expect("fetch after retries"))
        .await
        .expect("read");
    assert_eq!(got, blob);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    let err = fetcher.fetch(&missing, 0).await.err().expect("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(misses.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_cut_short_fails_the_read_and_resumes_from_an_offset() {
    let blob: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let desc = descriptor(mediatypes::OCI_LAYER, &blob);
    let blob2 = blob.clone();
    let addr = serve(move |req| match req.headers.get("range") {
        // The first answer promises everything and stops half-way.
        None => (
            200,
            vec![("Content-Length".into(), blob2.len().to_string())],
            blob2[..20_000].to_vec(),
        ),
        Some(range) => {
            let start: usize = range
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .expect("range start");
            let content_range = format!("bytes {start}-{}/{}", blob2.len() - 1, blob2.len());
            (
                206,
                vec![("Content-Range".into(), content_range)],
                blob2[start..].to_vec(),
            )
        }
    })
    .await;
    let resolver = RegistryResolver::new(RegistryOptions {
        plain_http: true,
        ..opts()
    })
    .expect("resolver");
    let fetcher = resolver
        .fetcher(&format!("{addr}/test/cut:v1"))
        .await
        .expect("fetcher");
    let mut reader = fetcher.fetch(&desc, 0).await.expect("fetch");
    let mut got = Vec::new();
    let err = reader
        .read_to_end(&mut got)
        .await
        .expect_err("the body is cut");
    assert!(err.to_string().contains(desc.digest.as_str()), "{err}");
    assert!(got.len() <= 20_000);
    let rest = read_all(
        fetcher
            .fetch(&desc, got.len() as u64)
            .await
            .expect("resume"),
    )
    .await
    .expect("read the rest");
    got.extend(rest);
    assert_eq!(got, blob);
}

#[tokio::test]
async fn an_index_is_tagged_and_its_manifests_pushed_by_digest() {
    require_registry!();
    let registry = Registry::start().expect("registry");
    let resolver = RegistryResolver::new(opts()).expect("resolver");
    let (a, b) = (test_image(11), test_image(12));
    let mut platforms = Vec::new();
    for (image, arch) in [(&a, "amd64"), (&b, "arm64")] {
        // Blobs first, then each manifest; the pusher for the index's
        // reference puts them by digest.
        push_image(
            &resolver,
            &format!("{}/test/multi:unused", registry.host()),
            image,
        )
        .await;
        let mut desc = image.manifest.0.clone();
        desc.platform = Some(berth_image::Platform {
            architecture: arch.into(),
            os: "linux".into(),
            ..Default::default()
        });
        platforms.push(desc);
    }
    let index_bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mediatypes::OCI_INDEX,
        "manifests": platforms,
    }))
    .expect("index json");
    let index = descriptor(mediatypes::OCI_INDEX, &index_bytes);
    let reference = format!("{}/test/multi:v2@{}", registry.host(), index.digest);
    let pusher = resolver.pusher(&reference).await.expect("pusher");
    for (desc, bytes) in [&a.manifest, &b.manifest] {
        pusher
            .push(desc, &[], reader(bytes))
            .await
            .expect("push manifest");
    }
    let tag = format!("{}/test/multi:v2", registry.host());
    let err = resolver
        .resolve(&tag)
        .await
        .expect_err("children are not tagged");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    pusher
        .push(&index, &[], reader(&index_bytes))
        .await
        .expect("push index");

    let (_, root) = resolver.resolve(&tag).await.expect("resolve tag");
    assert_eq!(root, index);
    let child = format!("{}/test/multi@{}", registry.host(), b.manifest.0.digest);
    let (_, found) = resolver.resolve(&child).await.expect("resolve child");
    assert_eq!(found, b.manifest.0);
}

/// A hosts directory that sends `name` to `server` with `extra` settings.
fn hosts_dir_for(name: &str, server: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let host_dir = dir.path().join(name);
    std::fs::create_dir(&host_dir).expect("mkdir");
    let toml = format!("server = \"{server}\"\n{extra}");
    std::fs::write(host_dir.join("hosts.toml"), toml).expect("write hosts.toml");
    dir
}

#[tokio::test]
async fn tls_registries_are_verified_against_system_and_configured_cas() {
    require_registry!();
    let registry = Registry::start_tls().expect("registry");
    let image = test_image(13);
    // A localhost name skips verification, as in containerd.
    let local = RegistryResolver::new(opts()).expect("resolver");
    let local_ref = format!("{}/test/tls:v1", registry.host());
    push_image(&local, &local_ref, &image).await;
    assert_eq!(
        local.hosts(&registry.host()).expect("hosts")[0].scheme,
        "https"
    );

    let reference = "tls.invalid/test/tls:v1";
    let plain = hosts_dir_for("tls.invalid", &registry.url(), "");
    let untrusted = RegistryResolver::new(RegistryOptions {
        hosts_dir: Some(plain.path().to_path_buf()),
        ..opts()
    })
    .expect("resolver");
    let err = untrusted.resolve(reference).await.expect_err("unknown CA");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains(&registry.host()), "{err}");

    let ca = registry.ca_file();
    let with_ca = hosts_dir_for(
        "tls.invalid",
        &registry.url(),
        &format!("ca = \"{}\"\n", ca.display()),
    );
    let skip = hosts_dir_for("tls.invalid", &registry.url(), "skip_verify = true\n");
    let trusted = [
        RegistryOptions {
            hosts_dir: Some(with_ca.path().to_path_buf()),
            ..opts()
        },
        RegistryOptions {
            hosts_dir: Some(plain.path().to_path_buf()),
            ca_files: vec![ca.clone()],
            ..opts()
        },
        RegistryOptions {
            hosts_dir: Some(skip.path().to_path_buf()),
            ..opts()
        },
    ];
    for options in trusted {
        let resolver = RegistryResolver::new(options).expect("resolver");
        let (_, desc) = resolver.resolve(reference).await.expect("resolve over TLS");
        assert_eq!(desc, image.manifest.0);
    }
}

#[tokio::test]
async fn client_certificates_from_hosts_toml_are_presented() {
    require_registry!();
    let registry = Registry::start_mutual_tls().expect("registry");
    let reference = "mtls.invalid/test/mtls:v1";
    let ca = format!("ca = \"{}\"\n", registry.ca_file().display());
    let without = hosts_dir_for("mtls.invalid", &registry.url(), &ca);
    let resolver = RegistryResolver::new(RegistryOptions {
        hosts_dir: Some(without.path().to_path_buf()),
        max_attempts: 1,
        ..opts()
    })
    .expect("resolver");
    let err = resolver
        .resolve(reference)
        .await
        .expect_err("no client cert");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");

    let (cert, key) = registry.client_cert();
    let client = format!(
        "{ca}client = [[\"{}\", \"{}\"]]\n",
        cert.display(),
        key.display()
    );
    let with = hosts_dir_for("mtls.invalid", &registry.url(), &client);
    let resolver = RegistryResolver::new(RegistryOptions {
        hosts_dir: Some(with.path().to_path_buf()),
        ..opts()
    })
    .expect("resolver");
    let image = test_image(14);
    push_image(&resolver, reference, &image).await;
    let (_, desc) = resolver.resolve(reference).await.expect("resolve");
    assert_eq!(desc, image.manifest.0);
}

#[tokio::test]
async fn mirrors_are_asked_with_the_namespace() {
    let blob = b"mirrored bytes".to_vec();
    let desc = descriptor(mediatypes::OCI_LAYER, &blob);
    let blob2 = blob.clone();
    let addr = serve(move |req| {
        if req.path.ends_with("?ns=mirrored.invalid") {
            (200, vec![], blob2.clone())
        } else {
            (400, vec![], req.path.into_bytes())
        }
    })
    .await;
    let dir = hosts_dir_for(
        "mirrored.invalid",
        "https://mirrored.invalid",
        &format!("[host.\"http://{addr}\"]\n  capabilities = [\"pull\"]\n"),
    );
    let resolver = RegistryResolver::new(RegistryOptions {
        hosts_dir: Some(dir.path().to_path_buf()),
        ..opts()
    })
    .expect("resolver");
    let fetcher = resolver
        .fetcher("mirrored.invalid/test/ns:v1")
        .await
        .expect("fetcher");
    let got = read_all(fetcher.fetch(&desc, 0).await.expect("fetch"))
        .await
        .expect("read");
    assert_eq!(got, blob);
}
