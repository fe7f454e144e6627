use super::*;
use crate::diff::LocalApplier;
use crate::testing::MemContent;
use berth_core::mount::Mount;
use berth_core::snapshots::{Info, Kind, Usage};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Snapshots by key: their info and directory, plus a counter for names.
type State = (usize, HashMap<String, (Info, PathBuf)>);

/// A snapshotter that copies parents like `native` and keeps its state in
/// memory: enough to watch unpack's calls.
struct FakeSnapshots {
    root: PathBuf,
    state: Mutex<State>,
}

impl FakeSnapshots {
    fn new(root: PathBuf) -> Self {
        FakeSnapshots {
            root,
            state: Mutex::new((0, HashMap::new())),
        }
    }

    fn all(&self) -> Vec<Info> {
        let mut v: Vec<Info> = self
            .state
            .lock()
            .expect("lock")
            .1
            .values()
            .map(|e| e.0.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.state.lock().expect("lock").1[name].1.clone()
    }
}

#[async_trait::async_trait]
impl Snapshotter for FakeSnapshots {
    async fn stat(&self, key: &str) -> Result<Info> {
        let state = self.state.lock().expect("lock");
        state
            .1
            .get(key)
            .map(|e| e.0.clone())
            .ok_or_else(|| Error::not_found(key))
    }
    async fn update(&self, _: Info, _: &[String]) -> Result<Info> {
        Err(Error::not_implemented("update"))
    }
    async fn usage(&self, _: &str) -> Result<Usage> {
        Err(Error::not_implemented("usage"))
    }
    async fn mounts(&self, _: &str) -> Result<Vec<Mount>> {
        Err(Error::not_implemented("mounts"))
    }
    async fn prepare(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        let mut state = self.state.lock().expect("lock");
        if state.1.contains_key(key) {
            return Err(Error::already_exists(key));
        }
        state.0 += 1;
        let dir = self.root.join(state.0.to_string());
        std::fs::create_dir(&dir)?;
        if !parent.is_empty() {
            let from = state.1[parent].1.join(".");
            let ok = std::process::Command::new("cp")
                .arg("-a")
                .arg(from)
                .arg(&dir)
                .status()?;
            assert!(ok.success());
        }
        let info = Info {
            kind: Kind::Active,
            name: key.to_string(),
            parent: parent.to_string(),
            labels,
            ..Info::default()
        };
        state.1.insert(key.to_string(), (info, dir.clone()));
        Ok(vec![Mount {
            mount_type: "bind".into(),
            source: dir.display().to_string(),
            target: String::new(),
            options: vec!["rbind".into(), "rw".into()],
        }])
    }
    async fn view(&self, _: &str, _: &str, _: HashMap<String, String>) -> Result<Vec<Mount>> {
        Err(Error::not_implemented("view"))
    }
    async fn commit(&self, name: &str, key: &str, labels: HashMap<String, String>) -> Result<()> {
        let mut state = self.state.lock().expect("lock");
        if state.1.contains_key(name) {
            return Err(Error::already_exists(name));
        }
        let (mut info, dir) = state.1.remove(key).ok_or_else(|| Error::not_found(key))?;
        info.kind = Kind::Committed;
        info.name = name.to_string();
        info.labels = labels;
        state.1.insert(name.to_string(), (info, dir));
        Ok(())
    }
    async fn remove(&self, key: &str) -> Result<()> {
        let mut state = self.state.lock().expect("lock");
        state
            .1
            .remove(key)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(key))
    }
    async fn walk(&self, _: &[String]) -> Result<Vec<Info>> {
        Ok(self.all())
    }
}

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = ::tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = ::tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// A two-layer image (the second deletes a file); its descriptor and
/// the layers' blob digests and diff IDs.
fn image(content: &MemContent) -> (Descriptor, Vec<Digest>, Vec<Digest>) {
    let tars = [
        tar_of(&[("etc/a", b"a"), ("etc/b", b"b")]),
        tar_of(&[("etc/.wh.a", b""), ("etc/c", b"c")]),
    ];
    let diff_ids: Vec<Digest> = tars.iter().map(|t| Digest::sha256_of(t)).collect();
    let blobs: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
    let digests: Vec<Digest> = blobs.iter().map(|b| content.put(b)).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    })
    .to_string();
    let config_digest = content.put(config.as_bytes());
    let layers: Vec<serde_json::Value> = blobs
        .iter()
        .zip(&digests)
        .map(|(b, d)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": b.len()}))
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    })
    .to_string();
    let m = content.put(manifest.as_bytes());
    let desc = Descriptor::new(
        "application/vnd.oci.image.manifest.v1+json",
        m,
        manifest.len() as i64,
    );
    (desc, digests, diff_ids)
}

fn matcher() -> Matcher {
    Matcher::only(&crate::platforms::parse("linux/amd64").expect("platform"))
}

#[tokio::test(flavor = "multi_thread")]
async fn unpack_commits_chain_ids_with_labels_and_skips_what_exists() {
    let tmp = tempfile::tempdir().expect("tmp");
    let content = MemContent::default();
    let (desc, blobs, diff_ids) = image(&content);
    let snaps = FakeSnapshots::new(tmp.path().to_path_buf());
    let applier = LocalApplier::new(Arc::new(content.clone()), tmp.path().join("scratch"));
    let unpacker = Unpacker {
        content: &content,
        snapshotter: &snaps,
        snapshotter_name: "native",
        applier: &applier,
    };
    let done = unpacker.unpack(&desc, &matcher()).await.expect("unpack");
    let chain1 = diff_ids[0].clone();
    let chain2 = chain_id(&diff_ids).expect("chain");
    assert_eq!(
        done,
        Unpacked {
            chain_id: chain2.clone(),
            applied: 2
        }
    );

    let all = snaps.all();
    assert_eq!(all.len(), 2, "{all:?}");
    let top = all.iter().find(|i| i.name == chain2.as_str()).expect("top");
    assert_eq!(top.parent, chain1.as_str());
    assert_eq!(top.kind, Kind::Committed);
    assert_eq!(top.labels[SNAPSHOT_REF_LABEL], chain2.as_str());

    let dir = snaps.dir(chain2.as_str());
    assert!(!dir.join("etc/a").exists());
    assert_eq!(std::fs::read(dir.join("etc/c")).expect("c"), b"c");
    for (blob, diff) in blobs.iter().zip(&diff_ids) {
        assert_eq!(content.labels(blob)[UNCOMPRESSED_LABEL], diff.as_str());
    }
    let (_, manifest) = images::manifest(&content, &desc, &matcher())
        .await
        .expect("manifest");
    assert_eq!(
        content.labels(&manifest.config.digest)["containerd.io/gc.ref.snapshot.native"],
        chain2.as_str()
    );

    let again = unpacker.unpack(&desc, &matcher()).await.expect("again");
    assert_eq!(again.applied, 0);
    assert_eq!(snaps.all().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_unpacks_of_one_image_commit_each_layer_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let content = MemContent::default();
    let (desc, _, diff_ids) = image(&content);
    let snaps = FakeSnapshots::new(tmp.path().to_path_buf());
    let applier = LocalApplier::new(Arc::new(content.clone()), tmp.path().join("scratch"));
    let unpacker = Unpacker {
        content: &content,
        snapshotter: &snaps,
        snapshotter_name: "native",
        applier: &applier,
    };
    let m = matcher();
    let (a, b) = tokio::join!(unpacker.unpack(&desc, &m), unpacker.unpack(&desc, &m));
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(a.chain_id, b.chain_id);
    let all = snaps.all();
    assert_eq!(all.len(), 2, "no active snapshot may be left: {all:?}");
    assert!(all.iter().all(|i| i.kind == Kind::Committed));
    assert_eq!(
        all.iter()
            .filter(|i| i.name == diff_ids[0].as_str())
            .count(),
        1
    );
}

#[test]
fn unpack_keys_follow_containerd_and_differ() {
    let d = Digest::sha256_of(b"x");
    let (a, b) = (unpack_key(&d), unpack_key(&d));
    assert!(
        a.starts_with("extract-") && a.ends_with(&format!(" {d}")),
        "{a}"
    );
    assert_ne!(a, b);
}
