//! In-memory content and image stores for unit tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use berth_core::content::{
    ContentReader, ContentStore, ContentWriter, Info, Status, WriterOptions,
};
use berth_core::digest::Digester;
use berth_core::images::{Image, ImageStore};
use berth_core::{Digest, Error, Result};

#[derive(Default)]
struct State {
    blobs: HashMap<Digest, (Vec<u8>, HashMap<String, String>)>,
    ingests: HashMap<String, Vec<u8>>,
}

/// A content store in a `HashMap`.
#[derive(Clone, Default)]
pub struct MemContent(Arc<Mutex<State>>);

impl MemContent {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("lock")
    }

    /// The digests held, sorted.
    pub fn digests(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = self.lock().blobs.keys().cloned().collect();
        out.sort();
        out
    }

    /// The labels of a blob.
    pub fn labels(&self, digest: &Digest) -> HashMap<String, String> {
        self.lock()
            .blobs
            .get(digest)
            .map(|b| b.1.clone())
            .unwrap_or_default()
    }

    /// Open ingests.
    pub fn ingest_count(&self) -> usize {
        self.lock().ingests.len()
    }

    /// Stores a blob directly.
    pub fn put(&self, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        self.lock()
            .blobs
            .insert(digest.clone(), (bytes.to_vec(), HashMap::new()));
        digest
    }

    fn info_of(digest: &Digest, blob: &(Vec<u8>, HashMap<String, String>)) -> Info {
        Info {
            digest: digest.clone(),
            size: blob.0.len() as i64,
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
            labels: blob.1.clone(),
        }
    }
}

#[async_trait::async_trait]
impl ContentStore for MemContent {
    async fn info(&self, digest: &Digest) -> Result<Info> {
        let state = self.lock();
        let blob = state
            .blobs
            .get(digest)
            .ok_or_else(|| Error::not_found(format!("content {digest}")))?;
        Ok(Self::info_of(digest, blob))
    }

    async fn update(&self, info: Info, paths: &[String]) -> Result<Info> {
        let mut state = self.lock();
        let blob = state
            .blobs
            .get_mut(&info.digest)
            .ok_or_else(|| Error::not_found(format!("content {}", info.digest)))?;
        for path in paths {
            let key = path.strip_prefix("labels.").unwrap_or(path);
            match info.labels.get(key) {
                Some(v) => blob.1.insert(key.to_string(), v.clone()),
                None => blob.1.remove(key),
            };
        }
        Ok(Self::info_of(&info.digest, blob))
    }

    async fn list(&self, filters: &[String]) -> Result<Vec<Info>> {
        let state = self.lock();
        let wanted: Vec<(String, String)> = filters
            .iter()
            .filter_map(|f| {
                let (k, v) = f.strip_prefix("labels.")?.split_once("==")?;
                Some((k.trim_matches('"').to_string(), v.to_string()))
            })
            .collect();
        Ok(state
            .blobs
            .iter()
            .filter(|(_, b)| {
                filters.is_empty() || wanted.iter().any(|(k, v)| b.1.get(k) == Some(v))
            })
            .map(|(d, b)| Self::info_of(d, b))
            .collect())
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.lock()
            .blobs
            .remove(digest)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(format!("content {digest}")))
    }

    async fn reader(&self, digest: &Digest, offset: u64) -> Result<ContentReader> {
        let state = self.lock();
        let blob = state
            .blobs
            .get(digest)
            .ok_or_else(|| Error::not_found(format!("content {digest}")))?;
        let data = blob.0[offset as usize..].to_vec();
        Ok(Box::pin(std::io::Cursor::new(data)))
    }

    async fn status(&self, reference: &str) -> Result<Status> {
        let state = self.lock();
        let data = state
            .ingests
            .get(reference)
            .ok_or_else(|| Error::not_found(reference))?;
        Ok(status(reference, data.len()))
    }

    async fn list_statuses(&self, _filters: &[String]) -> Result<Vec<Status>> {
        let state = self.lock();
        Ok(state
            .ingests
            .iter()
            .map(|(r, d)| status(r, d.len()))
            .collect())
    }

    async fn abort(&self, reference: &str) -> Result<()> {
        self.lock()
            .ingests
            .remove(reference)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(reference))
    }

    async fn writer(&self, options: WriterOptions) -> Result<Box<dyn ContentWriter>> {
        let mut state = self.lock();
        if let Some(expected) = &options.expected {
            if state.blobs.contains_key(expected) {
                return Err(Error::already_exists(format!("content {expected}")));
            }
        }
        let data = state
            .ingests
            .entry(options.reference.clone())
            .or_default()
            .clone();
        Ok(Box::new(MemWriter {
            store: self.clone(),
            reference: options.reference,
            data,
        }))
    }
}

fn status(reference: &str, len: usize) -> Status {
    Status {
        reference: reference.to_string(),
        offset: len as i64,
        total: 0,
        expected: None,
        started_at: SystemTime::UNIX_EPOCH,
        updated_at: SystemTime::UNIX_EPOCH,
    }
}

struct MemWriter {
    store: MemContent,
    reference: String,
    data: Vec<u8>,
}

#[async_trait::async_trait]
impl ContentWriter for MemWriter {
    fn status(&self) -> Status {
        status(&self.reference, self.data.len())
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.data.extend_from_slice(data);
        self.store
            .lock()
            .ingests
            .insert(self.reference.clone(), self.data.clone());
        Ok(())
    }

    async fn truncate(&mut self, size: i64) -> Result<()> {
        self.data.truncate(size as usize);
        Ok(())
    }

    async fn commit(
        self: Box<Self>,
        size: i64,
        expected: Option<Digest>,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        if size != 0 && size != self.data.len() as i64 {
            return Err(Error::failed_precondition(format!(
                "unexpected commit size {}, expected {size}",
                self.data.len()
            )));
        }
        let mut digester = Digester::new();
        digester.update(&self.data);
        let digest = digester.finish();
        if let Some(expected) = expected {
            if expected != digest {
                return Err(Error::failed_precondition(format!(
                    "unexpected commit digest {digest}, expected {expected}"
                )));
            }
        }
        let mut state = self.store.lock();
        state.ingests.remove(&self.reference);
        if state.blobs.contains_key(&digest) {
            return Err(Error::already_exists(format!("content {digest}")));
        }
        state.blobs.insert(digest, (self.data, labels));
        Ok(())
    }
}

/// An image store in a `HashMap`.
#[derive(Clone, Default)]
pub struct MemImages(Arc<Mutex<HashMap<String, Image>>>);

impl MemImages {
    /// The image names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.0.lock().expect("lock").keys().cloned().collect();
        out.sort();
        out
    }
}

#[async_trait::async_trait]
impl ImageStore for MemImages {
    async fn get(&self, name: &str) -> Result<Image> {
        self.0
            .lock()
            .expect("lock")
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("image {name:?}")))
    }

    async fn list(&self, _filters: &[String]) -> Result<Vec<Image>> {
        let mut out: Vec<Image> = self.0.lock().expect("lock").values().cloned().collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn create(&self, image: Image) -> Result<Image> {
        let mut map = self.0.lock().expect("lock");
        if map.contains_key(&image.name) {
            return Err(Error::already_exists(format!("image {:?}", image.name)));
        }
        map.insert(image.name.clone(), image.clone());
        Ok(image)
    }

    async fn update(&self, image: Image, _paths: &[String]) -> Result<Image> {
        let mut map = self.0.lock().expect("lock");
        let existing = map
            .get_mut(&image.name)
            .ok_or_else(|| Error::not_found(format!("image {:?}", image.name)))?;
        existing.target = image.target;
        Ok(existing.clone())
    }

    async fn delete(&self, name: &str, _sync: bool) -> Result<()> {
        self.0
            .lock()
            .expect("lock")
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(format!("image {name:?}")))
    }
}
