//! The snapshotter's own metadata: which snapshots exist, their ids,
//! parents, kinds and labels (containerd's `core/snapshots/storage`
//! metastore, which is a bolt file).
//!
//! Here it is one JSON file, `metadata.json`, rewritten whole on every
//! change: written to `metadata.json.tmp`, fsynced, renamed over the old
//! file and the directory fsynced. A crash therefore leaves either the old
//! or the new state, never a mix — in particular, never a half-committed
//! snapshot. Snapshotters hold thousands of snapshots at most, so rewriting
//! the file is cheap next to the filesystem work each change does.

use berth_core::snapshots::{Info, Kind, Usage};
use berth_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One snapshot as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The directory id: the snapshot lives in `snapshots/<id>`.
    pub(crate) id: u64,
    /// `Active`, `View` or `Committed`.
    pub(crate) kind: String,
    /// The parent's key, empty for none.
    pub(crate) parent: String,
    /// Labels.
    pub(crate) labels: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub(crate) created: u64,
    /// Nanoseconds since the epoch.
    pub(crate) updated: u64,
    /// Usage measured at commit (committed snapshots never change).
    #[serde(default)]
    pub(crate) usage: Option<(i64, i64)>,
    /// An active snapshot made by `prepare_rebase`: a layer directory
    /// whose parent is chosen when it is committed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) rebase: bool,
}

impl Record {
    pub(crate) fn kind(&self) -> Kind {
        Kind::parse(&self.kind).unwrap_or(Kind::Unknown)
    }

    pub(crate) fn info(&self, name: &str) -> Info {
        Info {
            kind: self.kind(),
            name: name.to_owned(),
            parent: self.parent.clone(),
            labels: self.labels.clone().into_iter().collect(),
            created: from_nanos(self.created),
            updated: from_nanos(self.updated),
        }
    }

    pub(crate) fn usage(&self) -> Option<Usage> {
        self.usage.map(|(size, inodes)| Usage { size, inodes })
    }

    pub(crate) fn set_labels(&mut self, labels: HashMap<String, String>) {
        self.labels = labels.into_iter().collect();
    }
}

/// Everything the snapshotter knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// The next directory id to hand out.
    pub(crate) next_id: u64,
    /// Snapshots by key (or name, once committed).
    pub(crate) snapshots: BTreeMap<String, Record>,
    /// Snapshots being created (their directories filled without the
    /// lock), by key, with their parents and ids: the keys are taken, the
    /// parents cannot be removed and `cleanup` leaves their directories
    /// alone meanwhile. Never saved.
    #[serde(skip)]
    pub(crate) pending: BTreeMap<String, (String, u64)>,
}

impl State {
    /// The record of `key`, or `NotFound` naming it.
    pub(crate) fn get(&self, key: &str) -> Result<&Record> {
        self.snapshots
            .get(key)
            .ok_or_else(|| Error::not_found(format_args!("snapshot {key:?}")))
    }

    /// The ids of `key`'s parents, nearest first.
    pub(crate) fn parent_ids(&self, record: &Record) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        let mut parent = record.parent.clone();
        while !parent.is_empty() {
            let p = self.get(&parent)?;
            ids.push(p.id);
            parent = p.parent.clone();
        }
        Ok(ids)
    }

    /// Whether any snapshot has `key` as its parent.
    pub(crate) fn has_children(&self, key: &str) -> bool {
        self.snapshots.values().any(|r| r.parent == key)
            || self.pending.values().any(|(p, _)| p == key)
    }

    /// Whether `key` is taken by a snapshot or one being created.
    pub(crate) fn taken(&self, key: &str) -> bool {
        self.snapshots.contains_key(key) || self.pending.contains_key(key)
    }
}

/// The metadata file of one snapshotter root.
#[derive(Debug)]
pub(crate) struct MetaStore {
    path: PathBuf,
}

impl MetaStore {
    pub(crate) fn new(root: &Path) -> Self {
        MetaStore {
            path: root.join("metadata.json"),
        }
    }

    /// Reads the state; an absent file is an empty snapshotter.
    pub(crate) fn load(&self) -> Result<State> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::internal(format!("snapshot metadata {}: {e}", self.path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io_error(&self.path, e)),
        }
    }

    /// Replaces the stored state with `state`, atomically and durably.
    pub(crate) fn save(&self, state: &State) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(state)
            .map_err(|e| Error::internal(format!("encoding snapshot metadata: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| io_error(&self.path, e))
    }
}

/// An I/O error naming the path it happened on.
pub(crate) fn io_error(path: &Path, err: std::io::Error) -> Error {
    Error::from(err).context(path.display())
}

/// Now, in nanoseconds since the epoch.
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_nanos(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_loads_back_and_no_temp_file_remains() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::new(dir.path());
        assert_eq!(store.load().unwrap(), State::default());
        let mut state = State {
            next_id: 3,
            ..State::default()
        };
        state.snapshots.insert(
            "k".into(),
            Record {
                id: 2,
                kind: "Active".into(),
                parent: String::new(),
                labels: BTreeMap::new(),
                created: now_nanos(),
                updated: now_nanos(),
                usage: None,
                rebase: false,
            },
        );
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap(), state);
        assert!(!dir.path().join("metadata.json.tmp").exists());
    }
}
