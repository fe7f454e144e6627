use super::*;
use crate::diff::LocalApplier;
use crate::mediatypes;
use crate::push::push;
use crate::remotes::{Pusher, RemoteReader};
use crate::spec::{Index, Manifest};
use crate::testing::{MemContent, MemImages};
use async_trait::async_trait;
use berth_core::content::ContentStore;
use berth_core::mount::Mount;
use berth_core::snapshots::{Info, Kind, Usage};
use berth_core::Digest;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use tokio::io::AsyncReadExt;

const REF: &str = "registry.test/lib/app:v1";

// ---- test images ------------------------------------------------------

/// A gzip layer of `(path, contents)` files (`None` for a directory);
/// (blob, diff ID).
fn layer(entries: &[(&str, Option<&[u8]>)]) -> (Vec<u8>, Digest) {
    let mut builder = ::tar::Builder::new(Vec::new());
    for (path, body) in entries {
        let mut header = ::tar::Header::new_ustar();
        header.set_mtime(1_600_000_000);
        match body {
            Some(body) => {
                header.set_entry_type(::tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(body.len() as u64);
                builder
                    .append_data(&mut header, path, *body)
                    .expect("append");
            }
            None => {
                header.set_entry_type(::tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, &[][..])
                    .expect("append");
            }
        }
    }
    let tar = builder.into_inner().expect("tar");
    let diff_id = Digest::sha256_of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip");
    (gz.finish().expect("gzip"), diff_id)
}

/// Bytes that do not compress, so a layer spans many chunks.
fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The blobs of a test registry repository.
#[derive(Default, Clone)]
struct Blobs(Arc<Mutex<HashMap<Digest, Vec<u8>>>>);

impl Blobs {
    fn put(&self, media_type: &str, bytes: Vec<u8>) -> Descriptor {
        let desc = Descriptor::new(media_type, Digest::sha256_of(&bytes), bytes.len() as i64);
        self.0
            .lock()
            .expect("lock")
            .insert(desc.digest.clone(), bytes);
        desc
    }

    fn get(&self, digest: &Digest) -> Option<Vec<u8>> {
        self.0.lock().expect("lock").get(digest).cloned()
    }
}

/// A three-layer image for `arch`: base files, a layer that deletes one
/// and adds another, and a big file. Returns the manifest descriptor.
fn image(blobs: &Blobs, arch: &str) -> (Descriptor, Vec<Digest>) {
    let big = noise(3 << 20);
    let layers = [
        layer(&[
            ("etc", None),
            ("etc/a", Some(b"a")),
            ("etc/arch", Some(arch.as_bytes())),
        ]),
        layer(&[
            ("etc", None),
            ("etc/.wh.a", Some(b"")),
            ("etc/b", Some(b"b")),
        ]),
        layer(&[("opt", None), ("opt/big", Some(&big))]),
    ];
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.1.clone()).collect();
    let config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    });
    let config = blobs.put(
        mediatypes::OCI_CONFIG,
        serde_json::to_vec(&config).expect("json"),
    );
    let layers = layers
        .into_iter()
        .map(|(blob, _)| blobs.put(mediatypes::OCI_LAYER_GZIP, blob))
        .collect();
    let manifest = Manifest {
        schema_version: 2,
        media_type: mediatypes::OCI_MANIFEST.into(),
        config,
        layers,
        annotations: BTreeMap::new(),
    };
    let desc = blobs.put(
        mediatypes::OCI_MANIFEST,
        serde_json::to_vec(&manifest).expect("json"),
    );
    (desc, diff_ids)
}

/// An index over an amd64 and an arm64 image.
fn multi_arch(blobs: &Blobs) -> Descriptor {
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (mut desc, _) = image(blobs, arch);
        desc.platform = Some(crate::spec::Platform {
            os: "linux".into(),
            architecture: arch.into(),
            ..Default::default()
        });
        manifests.push(desc);
    }
    let index = Index {
        schema_version: 2,
        media_type: mediatypes::OCI_INDEX.into(),
        manifests,
        annotations: BTreeMap::new(),
    };
    blobs.put(
        mediatypes::OCI_INDEX,
        serde_json::to_vec(&index).expect("json"),
    )
}

// ---- a test resolver ----------------------------------------------------

/// A blob pushed, with the repositories offered to mount it from.
type Pushed = (Digest, Vec<String>);

/// A repository in memory. A fetch of `break_blob` ends with an error
/// after `break_after` bytes (once per fetch from offset 0).
#[derive(Clone, Default)]
struct TestRemote {
    blobs: Blobs,
    tags: Arc<Mutex<HashMap<String, Descriptor>>>,
    break_blob: Arc<Mutex<Option<(Digest, usize)>>>,
    fetches: Arc<Mutex<Vec<(Digest, u64)>>>,
    mounted: Arc<Mutex<Vec<Pushed>>>,
}

impl TestRemote {
    fn tag(&self, reference: &str, desc: &Descriptor) {
        self.tags
            .lock()
            .expect("lock")
            .insert(reference.into(), desc.clone());
    }
}

#[async_trait]
impl Resolver for TestRemote {
    async fn resolve(&self, reference: &str) -> Result<(String, Descriptor)> {
        let desc = self.tags.lock().expect("lock").get(reference).cloned();
        desc.map(|d| (reference.to_string(), d))
            .ok_or_else(|| Error::not_found(format!("{reference}: not found")))
    }
    async fn fetcher(&self, _: &str) -> Result<Arc<dyn Fetcher>> {
        Ok(Arc::new(self.clone()))
    }
    async fn pusher(&self, reference: &str) -> Result<Arc<dyn Pusher>> {
        Ok(Arc::new(TestPusher {
            remote: self.clone(),
            reference: reference.to_string(),
        }))
    }
}

/// A reader that fails after its bytes.
struct Broken(std::io::Cursor<Vec<u8>>);

impl tokio::io::AsyncRead for Broken {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.0.position() as usize == self.0.get_ref().len() {
            return std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset",
            )));
        }
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

#[async_trait]
impl Fetcher for TestRemote {
    async fn fetch(&self, desc: &Descriptor, offset: u64) -> Result<RemoteReader> {
        self.fetches
            .lock()
            .expect("lock")
            .push((desc.digest.clone(), offset));
        let bytes = self
            .blobs
            .get(&desc.digest)
            .ok_or_else(|| Error::not_found(format!("blob {}", desc.digest)))?;
        let rest = bytes[offset as usize..].to_vec();
        let broken = self.break_blob.lock().expect("lock").clone();
        if let Some((digest, after)) = broken {
            if digest == desc.digest && offset == 0 {
                return Ok(Box::new(Broken(std::io::Cursor::new(
                    rest[..after].to_vec(),
                ))));
            }
        }
        Ok(Box::new(std::io::Cursor::new(rest)))
    }
}

struct TestPusher {
    remote: TestRemote,
    reference: String,
}

#[async_trait]
impl Pusher for TestPusher {
    async fn exists(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.remote.blobs.get(&desc.digest).is_some())
    }
    async fn push(
        &self,
        desc: &Descriptor,
        mount_from: &[String],
        mut content: RemoteReader,
    ) -> Result<()> {
        let mut bytes = Vec::new();
        content.read_to_end(&mut bytes).await?;
        documents::verify(desc, &bytes)?;
        self.remote
            .mounted
            .lock()
            .expect("lock")
            .push((desc.digest.clone(), mount_from.to_vec()));
        self.remote.blobs.put(&desc.media_type, bytes);
        if mediatypes::is_manifest(&desc.media_type) || mediatypes::is_index(&desc.media_type) {
            self.remote.tag(&self.reference, desc);
        }
        Ok(())
    }
}

// ---- a test snapshotter -------------------------------------------------

#[derive(Clone)]
struct Snap {
    info: Info,
    dir: PathBuf,
    rebase: bool,
}

/// Snapshots as directories: `prepare` copies the parent (like native);
/// with `rebase`, `prepare_rebase` gives an empty overlay upper directory.
struct DirSnapshots {
    root: PathBuf,
    rebase: bool,
    state: Mutex<(usize, HashMap<String, Snap>)>,
}

impl DirSnapshots {
    fn new(root: &Path, rebase: bool) -> Self {
        DirSnapshots {
            root: root.to_path_buf(),
            rebase,
            state: Mutex::new((0, HashMap::new())),
        }
    }

    fn get(&self, key: &str) -> Option<Snap> {
        self.state.lock().expect("lock").1.get(key).cloned()
    }

    fn committed(&self) -> Vec<(String, String)> {
        let state = self.state.lock().expect("lock");
        let mut out: Vec<(String, String)> = state
            .1
            .values()
            .filter(|s| s.info.kind == Kind::Committed)
            .map(|s| (s.info.name.clone(), s.info.parent.clone()))
            .collect();
        out.sort();
        out
    }

    fn actives(&self) -> usize {
        let state = self.state.lock().expect("lock");
        state
            .1
            .values()
            .filter(|s| s.info.kind == Kind::Active)
            .count()
    }

    fn create(&self, key: &str, parent: &str, rebase: bool) -> Result<Vec<Mount>> {
        let mut state = self.state.lock().expect("lock");
        if state.1.contains_key(key) {
            return Err(Error::already_exists(key));
        }
        state.0 += 1;
        let dir = self.root.join(state.0.to_string());
        std::fs::create_dir_all(dir.join("fs"))?;
        std::fs::create_dir_all(dir.join("work"))?;
        if !parent.is_empty() {
            let from = state.1[parent].dir.join("fs/.");
            let ok = std::process::Command::new("cp")
                .arg("-a")
                .arg(from)
                .arg(dir.join("fs"))
                .status()?
                .success();
            assert!(ok, "cp");
        }
        let info = Info {
            kind: Kind::Active,
            name: key.into(),
            parent: parent.into(),
            ..Info::default()
        };
        let snap = Snap { info, dir, rebase };
        let mounts = mounts_of(&snap);
        state.1.insert(key.into(), snap);
        Ok(mounts)
    }

    fn commit_to(&self, name: &str, key: &str, parent: Option<&str>) -> Result<()> {
        let mut state = self.state.lock().expect("lock");
        if state.1.contains_key(name) {
            return Err(Error::already_exists(name));
        }
        let mut snap = state.1.remove(key).ok_or_else(|| Error::not_found(key))?;
        if let Some(parent) = parent {
            assert!(snap.rebase, "commit_rebase of a plain snapshot");
            if !parent.is_empty() {
                assert_eq!(state.1[parent].info.kind, Kind::Committed);
            }
            snap.info.parent = parent.into();
        }
        snap.info.kind = Kind::Committed;
        snap.info.name = name.into();
        state.1.insert(name.into(), snap);
        Ok(())
    }
}

fn mounts_of(snap: &Snap) -> Vec<Mount> {
    let fs = snap.dir.join("fs").to_string_lossy().into_owned();
    if snap.rebase {
        let work = snap.dir.join("work").to_string_lossy().into_owned();
        return vec![Mount {
            mount_type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec![format!("workdir={work}"), format!("upperdir={fs}")],
        }];
    }
    vec![Mount {
        mount_type: "bind".into(),
        source: fs,
        target: String::new(),
        options: vec!["rw".into(), "rbind".into()],
    }]
}

#[async_trait]
impl Snapshotter for DirSnapshots {
    async fn stat(&self, key: &str) -> Result<Info> {
        self.get(key)
            .map(|s| s.info)
            .ok_or_else(|| Error::not_found(key))
    }
    async fn update(&self, _: Info, _: &[String]) -> Result<Info> {
        Err(Error::not_implemented("update"))
    }
    async fn usage(&self, _: &str) -> Result<Usage> {
        Err(Error::not_implemented("usage"))
    }
    async fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        self.get(key)
            .map(|s| mounts_of(&s))
            .ok_or_else(|| Error::not_found(key))
    }
    async fn prepare(
        &self,
        key: &str,
        parent: &str,
        _: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create(key, parent, false)
    }
    async fn view(&self, _: &str, _: &str, _: HashMap<String, String>) -> Result<Vec<Mount>> {
        Err(Error::not_implemented("view"))
    }
    async fn commit(&self, name: &str, key: &str, _: HashMap<String, String>) -> Result<()> {
        self.commit_to(name, key, None)
    }
    async fn remove(&self, key: &str) -> Result<()> {
        let snap = self
            .state
            .lock()
            .expect("lock")
            .1
            .remove(key)
            .ok_or_else(|| Error::not_found(key))?;
        std::fs::remove_dir_all(snap.dir)?;
        Ok(())
    }
    async fn walk(&self, _: &[String]) -> Result<Vec<Info>> {
        Ok(Vec::new())
    }
    fn can_rebase(&self) -> bool {
        self.rebase
    }
    async fn prepare_rebase(&self, key: &str, _: HashMap<String, String>) -> Result<Vec<Mount>> {
        assert!(self.rebase);
        self.create(key, "", true)
    }
    async fn commit_rebase(
        &self,
        name: &str,
        key: &str,
        parent: &str,
        _: HashMap<String, String>,
    ) -> Result<()> {
        self.commit_to(name, key, Some(parent))
    }
}

// ---- the tests ----------------------------------------------------------

struct World {
    remote: TestRemote,
    content: MemContent,
    images: MemImages,
    events: Mutex<Vec<ProgressUpdate>>,
}

impl Progress for World {
    fn report(&self, update: ProgressUpdate) {
        self.events.lock().expect("lock").push(update);
    }
}

impl World {
    fn new() -> Self {
        World {
            remote: TestRemote::default(),
            content: MemContent::default(),
            images: MemImages::default(),
            events: Mutex::new(Vec::new()),
        }
    }

    async fn pull(&self, opts: &PullOptions<'_>) -> Result<Image> {
        pull(&self.content, &self.images, &self.remote, REF, opts, self).await
    }

    fn events(&self, event: &str) -> usize {
        self.events
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| e.event == event)
            .count()
    }
}

fn amd64() -> Matcher {
    Matcher::only(&crate::platforms::parse("linux/amd64").expect("platform"))
}

#[tokio::test]
async fn pull_stores_every_blob_with_gc_and_source_labels() {
    let w = World::new();
    let (root, _) = image(&w.remote.blobs, "amd64");
    w.remote.tag(REF, &root);
    let image = w.pull(&PullOptions::default()).await.expect("pull");
    assert_eq!(image.name, REF);
    assert_eq!(image.target.digest, root.digest);
    assert_eq!(w.content.digests().len(), 5);
    let labels = w.content.labels(&root.digest);
    assert_eq!(
        labels.get("containerd.io/distribution.source.registry.test"),
        Some(&"lib/app".to_string())
    );
    assert!(labels.contains_key("containerd.io/gc.ref.content.config"));
    assert!(labels.contains_key("containerd.io/gc.ref.content.l.2"));
    assert_eq!(w.content.ingest_count(), 0);
    assert_eq!(w.events(progress::SAVED), 1);
    assert_eq!(w.events(progress::RESOLVED), 1);

    // A second pull fetches nothing.
    let fetched = w.remote.fetches.lock().expect("lock").len();
    w.pull(&PullOptions::default()).await.expect("pull again");
    assert_eq!(w.remote.fetches.lock().expect("lock").len(), fetched);
}

#[tokio::test]
async fn multi_platform_index_picks_the_asked_platform_or_all() {
    let w = World::new();
    let root = multi_arch(&w.remote.blobs);
    w.remote.tag(REF, &root);
    let opts = PullOptions {
        platforms: amd64(),
        ..PullOptions::default()
    };
    w.pull(&opts).await.expect("pull amd64");
    // index + manifest + config + 3 layers
    assert_eq!(w.content.digests().len(), 6);
    let index_labels = w.content.labels(&root.digest);
    assert!(index_labels.contains_key("containerd.io/gc.ref.content.m.0"));
    assert!(!index_labels.contains_key("containerd.io/gc.ref.content.m.1"));

    let opts = PullOptions {
        platforms: Matcher::All,
        ..PullOptions::default()
    };
    w.pull(&opts).await.expect("pull all");
    // Only the base layers differ between the platforms.
    assert_eq!(w.content.digests().len(), 9);
    assert!(w
        .content
        .labels(&root.digest)
        .contains_key("containerd.io/gc.ref.content.m.1"));
}

#[tokio::test]
async fn corrupted_blob_fails_the_pull_naming_it_and_commits_nothing() {
    let w = World::new();
    let (root, _) = image(&w.remote.blobs, "amd64");
    w.remote.tag(REF, &root);
    let manifest: Manifest =
        serde_json::from_slice(&w.remote.blobs.get(&root.digest).expect("manifest")).expect("json");
    let bad = &manifest.layers[2];
    {
        let mut blobs = w.remote.blobs.0.lock().expect("lock");
        let bytes = blobs.get_mut(&bad.digest).expect("layer");
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
    }
    let err = w.pull(&PullOptions::default()).await.expect_err("corrupt");
    assert!(err.to_string().contains(bad.digest.as_str()), "{err}");
    assert!(!w.content.digests().contains(&bad.digest));
    assert!(w.images.names().is_empty());
    assert_eq!(w.content.ingest_count(), 0, "a corrupt ingest is dropped");
}

#[tokio::test]
async fn interrupted_download_resumes_from_its_offset() {
    let w = World::new();
    let (root, _) = image(&w.remote.blobs, "amd64");
    w.remote.tag(REF, &root);
    let manifest: Manifest =
        serde_json::from_slice(&w.remote.blobs.get(&root.digest).expect("manifest")).expect("json");
    let big = manifest.layers[2].clone();
    *w.remote.break_blob.lock().expect("lock") = Some((big.digest.clone(), 1 << 20));
    w.pull(&PullOptions::default()).await.expect("pull");
    assert!(w.content.digests().contains(&big.digest));
    let fetches = w.remote.fetches.lock().expect("lock").clone();
    let of_big: Vec<u64> = fetches
        .iter()
        .filter(|(d, _)| *d == big.digest)
        .map(|(_, o)| *o)
        .collect();
    assert_eq!(of_big, [0, 1 << 20], "picked up at the byte it broke");
}

#[tokio::test]
async fn a_later_pull_continues_a_partial_ingest() {
    let w = World::new();
    let (root, _) = image(&w.remote.blobs, "amd64");
    w.remote.tag(REF, &root);
    let manifest: Manifest =
        serde_json::from_slice(&w.remote.blobs.get(&root.digest).expect("manifest")).expect("json");
    let big = manifest.layers[2].clone();
    let bytes = w.remote.blobs.get(&big.digest).expect("blob");
    // What an earlier, killed pull left behind.
    let mut writer = w
        .content
        .writer(berth_core::content::WriterOptions {
            reference: format!("layer-{}", big.digest),
            total: big.size,
            expected: Some(big.digest.clone()),
        })
        .await
        .expect("writer");
    writer.write(&bytes[..12345]).await.expect("write");
    drop(writer);
    w.pull(&PullOptions::default()).await.expect("pull");
    assert!(w.content.digests().contains(&big.digest));
    let fetches = w.remote.fetches.lock().expect("lock").clone();
    assert!(
        fetches.contains(&(big.digest.clone(), 12345)),
        "{fetches:?}"
    );
    assert!(!fetches.contains(&(big.digest.clone(), 0)));
}

#[tokio::test]
async fn unpack_without_rebase_builds_the_chain_in_order() {
    let w = World::new();
    let (root, diff_ids) = image(&w.remote.blobs, "amd64");
    w.remote.tag(REF, &root);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = DirSnapshots::new(dir.path(), false);
    let content: Arc<dyn ContentStore> = Arc::new(w.content.clone());
    let applier = LocalApplier::new(content, dir.path().join("scratch"));
    for local in [None, Some(dir.path().join("scratch"))] {
        let opts = PullOptions {
            unpack: Some(UnpackTarget {
                snapshotter: &snapshots,
                snapshotter_name: "test",
                applier: &applier,
                local_scratch: local,
                platform: None,
            }),
            ..PullOptions::default()
        };
        w.pull(&opts).await.expect("pull");
    }
    let chains: Vec<Digest> = (1..=3)
        .map(|n| chain_id(&diff_ids[..n]).expect("chain"))
        .collect();
    let committed = snapshots.committed();
    assert_eq!(committed.len(), 3);
    assert!(committed.contains(&(chains[1].to_string(), chains[0].to_string())));
    assert_eq!(snapshots.actives(), 0);
    let top = snapshots
        .get(chains[2].as_str())
        .expect("top")
        .dir
        .join("fs");
    assert!(!top.join("etc/a").exists(), "whiteout removed etc/a");
    assert_eq!(std::fs::read(top.join("etc/b")).expect("b"), b"b");
    assert_eq!(
        std::fs::metadata(top.join("opt/big")).expect("big").len(),
        3 << 20
    );
    let manifest: Manifest =
        serde_json::from_slice(&w.remote.blobs.get(&root.digest).expect("manifest")).expect("json");
    assert_eq!(
        w.content
            .labels(&manifest.config.digest)
            .get("containerd.io/gc.ref.snapshot.test"),
        Some(&chains[2].to_string())
    );
    assert_eq!(
        w.content
            .labels(&manifest.layers[1].digest)
            .get("containerd.io/uncompressed"),
        Some(&diff_ids[1].to_string())
    );
}

#[tokio::test]
async fn unpack_with_rebase_applies_layers_apart_and_chains_them() {
    if !berth_testkit::require_root() {
        return; // overlay whiteouts are device nodes
    }
    let w = World::new();
    let (root, diff_ids) = image(&w.remote.blobs, "amd64");
    w.remote.tag(REF, &root);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = DirSnapshots::new(dir.path(), true);
    let content: Arc<dyn ContentStore> = Arc::new(w.content.clone());
    let applier = LocalApplier::new(content, dir.path().join("scratch"));
    let opts = PullOptions {
        unpack: Some(UnpackTarget {
            snapshotter: &snapshots,
            snapshotter_name: "overlayfs",
            applier: &applier,
            local_scratch: Some(dir.path().join("scratch")),
            platform: None,
        }),
        ..PullOptions::default()
    };
    w.pull(&opts).await.expect("pull");
    let chains: Vec<Digest> = (1..=3)
        .map(|n| chain_id(&diff_ids[..n]).expect("chain"))
        .collect();
    assert_eq!(snapshots.committed(), {
        let mut want = vec![
            (chains[0].to_string(), String::new()),
            (chains[1].to_string(), chains[0].to_string()),
            (chains[2].to_string(), chains[1].to_string()),
        ];
        want.sort();
        want
    });
    // Layer 1's upper holds its own files and an overlay whiteout.
    let upper = snapshots
        .get(chains[1].as_str())
        .expect("l1")
        .dir
        .join("fs");
    use std::os::unix::fs::FileTypeExt;
    let a = std::fs::symlink_metadata(upper.join("etc/a")).expect("whiteout");
    assert!(a.file_type().is_char_device());
    assert!(!upper.join("etc/arch").exists());
    assert_eq!(snapshots.actives(), 0);
}

#[tokio::test]
async fn failed_unpack_leaves_no_active_snapshot_and_no_image() {
    let w = World::new();
    let (root, _) = image(&w.remote.blobs, "amd64");
    w.remote.tag(REF, &root);
    // Lie about a diff ID: the apply's check fails.
    let manifest: Manifest =
        serde_json::from_slice(&w.remote.blobs.get(&root.digest).expect("manifest")).expect("json");
    let config = w.remote.blobs.get(&manifest.config.digest).expect("config");
    let mut config: serde_json::Value = serde_json::from_slice(&config).expect("json");
    config["rootfs"]["diff_ids"][1] = serde_json::json!(Digest::sha256_of(b"x").to_string());
    let config = w.remote.blobs.put(
        mediatypes::OCI_CONFIG,
        serde_json::to_vec(&config).expect("json"),
    );
    let manifest = Manifest { config, ..manifest };
    let root = w.remote.blobs.put(
        mediatypes::OCI_MANIFEST,
        serde_json::to_vec(&manifest).expect("json"),
    );
    w.remote.tag(REF, &root);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = DirSnapshots::new(dir.path(), false);
    let content: Arc<dyn ContentStore> = Arc::new(w.content.clone());
    let applier = LocalApplier::new(content, dir.path().join("scratch"));
    let opts = PullOptions {
        unpack: Some(UnpackTarget {
            snapshotter: &snapshots,
            snapshotter_name: "test",
            applier: &applier,
            local_scratch: None,
            platform: None,
        }),
        ..PullOptions::default()
    };
    let err = w.pull(&opts).await.expect_err("bad diff id");
    assert!(err.to_string().contains("diff id"), "{err}");
    assert_eq!(snapshots.actives(), 0);
    assert!(w.images.names().is_empty());
}

#[tokio::test]
async fn push_then_pull_round_trips_and_offers_mounts() {
    let source = World::new();
    let root = multi_arch(&source.remote.blobs);
    source.remote.tag(REF, &root);
    let all = PullOptions {
        platforms: Matcher::All,
        ..PullOptions::default()
    };
    source.pull(&all).await.expect("pull");

    // Push into an empty repository on the same host.
    let target = TestRemote::default();
    let to = "registry.test/other/app:v2";
    push(
        &source.content,
        &target,
        to,
        &root,
        &Matcher::All,
        &NoProgress,
    )
    .await
    .expect("push");
    assert_eq!(target.tags.lock().expect("lock")[to], root);
    let mounted = target.mounted.lock().expect("lock").clone();
    assert_eq!(mounted.len(), 9);
    assert!(mounted
        .iter()
        .all(|(_, from)| from == &["lib/app".to_string()]));
    // The index went last.
    assert_eq!(mounted.last().expect("last").0, root.digest);

    // And it pulls back.
    let back = World {
        remote: target,
        ..World::new()
    };
    let image = pull(&back.content, &back.images, &back.remote, to, &all, &back)
        .await
        .expect("pull back");
    assert_eq!(image.target.digest, root.digest);
    assert_eq!(back.content.digests(), source.content.digests());
}

// ---- against Debian's docker-registry ----------------------------------

fn registry_resolver() -> crate::registry::RegistryResolver {
    crate::registry::RegistryResolver::new(crate::registry::RegistryOptions {
        plain_http: true,
        ..Default::default()
    })
    .expect("resolver")
}

/// A registry holding the two-platform test image under `test/app:v1`,
/// pushed by [`push`]; (registry, reference, root).
async fn seeded_registry() -> (berth_testkit::Registry, String, Descriptor) {
    let registry = berth_testkit::Registry::start().expect("registry");
    let source = World::new();
    let root = multi_arch(&source.remote.blobs);
    source.remote.tag(REF, &root);
    let all = PullOptions {
        platforms: Matcher::All,
        ..PullOptions::default()
    };
    source.pull(&all).await.expect("pull from the test remote");
    let reference = format!("{}/test/app:v1", registry.host());
    push(
        &source.content,
        &registry_resolver(),
        &reference,
        &root,
        &Matcher::All,
        &NoProgress,
    )
    .await
    .expect("push to the registry");
    (registry, reference, root)
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_push_then_pull_round_trips() {
    berth_testkit::require_registry!();
    let (_registry, reference, root) = seeded_registry().await;
    let (content, images) = (MemContent::default(), MemImages::default());
    let all = PullOptions {
        platforms: Matcher::All,
        ..PullOptions::default()
    };
    let resolver = registry_resolver();
    let image = pull(&content, &images, &resolver, &reference, &all, &NoProgress)
        .await
        .expect("pull");
    assert_eq!(image.target.digest, root.digest);
    assert_eq!(content.digests().len(), 9);
    let source = content
        .labels(&root.digest)
        .get(&format!(
            "{DISTRIBUTION_SOURCE_PREFIX}{}",
            reference.split('/').next().expect("host")
        ))
        .cloned();
    assert_eq!(source.as_deref(), Some("test/app"));
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_corrupt_blob_fails_without_image_or_blob() {
    berth_testkit::require_registry!();
    let (registry, reference, root) = seeded_registry().await;
    let source = World::new();
    multi_arch(&source.remote.blobs);
    let index: Index =
        serde_json::from_slice(&source.remote.blobs.get(&root.digest).expect("index"))
            .expect("json");
    let amd64_manifest: Manifest = serde_json::from_slice(
        &source
            .remote
            .blobs
            .get(&index.manifests[0].digest)
            .expect("manifest"),
    )
    .expect("json");
    let bad = amd64_manifest.layers[2].digest.clone();
    registry.corrupt_blob(bad.as_str()).expect("corrupt");
    let (content, images) = (MemContent::default(), MemImages::default());
    let opts = PullOptions {
        platforms: amd64(),
        ..PullOptions::default()
    };
    let err = pull(
        &content,
        &images,
        &registry_resolver(),
        &reference,
        &opts,
        &NoProgress,
    )
    .await
    .expect_err("corrupt blob");
    assert!(err.to_string().contains(bad.as_str()), "{err}");
    assert!(!content.digests().contains(&bad));
    assert!(images.names().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_pull_resumes_a_partial_ingest_with_a_range() {
    berth_testkit::require_registry!();
    let (_registry, reference, root) = seeded_registry().await;
    let source = World::new();
    multi_arch(&source.remote.blobs);
    let index: Index =
        serde_json::from_slice(&source.remote.blobs.get(&root.digest).expect("index"))
            .expect("json");
    let manifest: Manifest = serde_json::from_slice(
        &source
            .remote
            .blobs
            .get(&index.manifests[0].digest)
            .expect("manifest"),
    )
    .expect("json");
    let big = &manifest.layers[2];
    let bytes = source.remote.blobs.get(&big.digest).expect("blob");
    let (content, images) = (MemContent::default(), MemImages::default());
    let mut writer = content
        .writer(berth_core::content::WriterOptions {
            reference: format!("layer-{}", big.digest),
            total: big.size,
            expected: Some(big.digest.clone()),
        })
        .await
        .expect("writer");
    writer.write(&bytes[..1 << 20]).await.expect("write");
    drop(writer);
    let opts = PullOptions {
        platforms: amd64(),
        ..PullOptions::default()
    };
    pull(
        &content,
        &images,
        &registry_resolver(),
        &reference,
        &opts,
        &NoProgress,
    )
    .await
    .expect("pull");
    assert!(content.digests().contains(&big.digest));
    assert_eq!(content.ingest_count(), 0);
    assert_eq!(images.names(), [reference]);
}
