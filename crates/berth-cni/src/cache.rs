//! The result cache: what ADD returned, kept in libcni's format at
//! `<dir>/results/<network>-<container>-<ifname>` so that DEL and CHECK get
//! it back, after a restart too, and other libcni users can read it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use berth_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// libcni's cache record kind.
const KIND: &str = "cniCacheV1";

/// One cached attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    /// Always `cniCacheV1`.
    pub kind: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// The configuration list, base64 (Go encodes `[]byte` so).
    #[serde(with = "b64")]
    pub config: Vec<u8>,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// The network's name.
    pub network_name: String,
    /// `CNI_ARGS` as pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<(String, String)>,
    /// The capability arguments (`portMappings`, …) given to ADD.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub capability_args: Map<String, Value>,
    /// The result ADD returned.
    #[serde(default)]
    pub result: Value,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// The cache directory (libcni's `CacheDir`).
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    /// A cache rooted at `dir` (entries go in `dir/results`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ResultCache { dir: dir.into() }
    }

    fn results(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// The file of one attachment.
    pub fn path(&self, network: &str, container_id: &str, if_name: &str) -> PathBuf {
        self.results()
            .join(format!("{network}-{container_id}-{if_name}"))
    }

    /// Records an attachment (written to a temporary file, then renamed).
    pub fn put(&self, entry: &CacheEntry) -> Result<()> {
        let path = self.path(&entry.network_name, &entry.container_id, &entry.if_name);
        let io = |e: std::io::Error| Error::unavailable(format!("write {}: {e}", path.display()));
        std::fs::create_dir_all(self.results()).map_err(io)?;
        let bytes = serde_json::to_vec(entry).map_err(|e| Error::internal(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// The entry of one attachment, if cached.
    pub fn get(
        &self,
        network: &str,
        container_id: &str,
        if_name: &str,
    ) -> Result<Option<CacheEntry>> {
        read(&self.path(network, container_id, if_name))
    }

    /// Forgets an attachment; absent is fine.
    pub fn remove(&self, network: &str, container_id: &str, if_name: &str) -> Result<()> {
        let path = self.path(network, container_id, if_name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::unavailable(format!(
                "remove {}: {e}",
                path.display()
            ))),
            _ => Ok(()),
        }
    }

    /// Every readable entry (unreadable files are logged and skipped).
    pub fn list(&self) -> Result<Vec<CacheEntry>> {
        let entries = match std::fs::read_dir(self.results()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::unavailable(format!(
                    "read {}: {e}",
                    self.results().display()
                )))
            }
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                continue;
            }
            match read(&path) {
                Ok(Some(e)) => out.push(e),
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "unreadable CNI cache entry"),
            }
        }
        Ok(out)
    }
}

fn read(path: &Path) -> Result<Option<CacheEntry>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::unavailable(format!("read {}: {e}", path.display()))),
    };
    let entry: CacheEntry = serde_json::from_slice(&bytes)
        .map_err(|e| Error::internal(format!("cached result {}: {e}", path.display())))?;
    if entry.kind != KIND {
        return Err(Error::internal(format!(
            "cached result {} has kind {:?}",
            path.display(),
            entry.kind
        )));
    }
    Ok(Some(entry))
}

impl CacheEntry {
    /// A new entry.
    pub fn new(
        network_name: &str,
        container_id: &str,
        if_name: &str,
        config: &[u8],
        cni_args: Vec<(String, String)>,
        capability_args: Map<String, Value>,
        result: Value,
    ) -> Self {
        CacheEntry {
            kind: KIND.into(),
            container_id: container_id.into(),
            config: config.to_vec(),
            if_name: if_name.into(),
            network_name: network_name.into(),
            cni_args,
            capability_args,
            result,
        }
    }

    /// The value of one `CNI_ARGS` key.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.cni_args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Base64 as the cache writes it (for tests and tools).
pub fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_in_libcnis_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ResultCache::new(dir.path());
        let entry = CacheEntry::new(
            "net",
            "c1",
            "eth0",
            b"{\"name\":\"net\"}",
            vec![("IgnoreUnknown".into(), "1".into())],
            Map::new(),
            serde_json::json!({"cniVersion":"1.0.0"}),
        );
        cache.put(&entry).expect("put");
        let file = dir.path().join("results/net-c1-eth0");
        let json: Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
        assert_eq!(json["kind"], "cniCacheV1");
        assert_eq!(json["containerId"], "c1");
        assert_eq!(json["config"], encode(b"{\"name\":\"net\"}"));
        assert_eq!(json["cniArgs"][0][0], "IgnoreUnknown");
        assert_eq!(
            cache.get("net", "c1", "eth0").expect("get"),
            Some(entry.clone())
        );
        assert_eq!(cache.list().expect("list"), vec![entry]);
        cache.remove("net", "c1", "eth0").expect("remove");
        cache.remove("net", "c1", "eth0").expect("remove twice");
        assert_eq!(cache.get("net", "c1", "eth0").expect("get"), None);
    }
}
