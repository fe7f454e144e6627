//! Deleted tasks whose shim has not yet answered Shutdown, recorded on disk.
//!
//! A task Delete answers once the bundle is gone and sends the shim its
//! Shutdown in the background (see `TaskManager::delete`). If the daemon
//! dies in between, nothing else points at that shim any more: no bundle,
//! no record in memory. So before the bundle goes, the shim's address is
//! written to `<tasks dir>/.retiring/<namespace>@<id>` and removed once
//! Shutdown has been answered; a daemon starting up shuts down every shim
//! still listed (`TaskManager::recover`). Namespaces and ids are
//! identifiers, which never contain `@` or start with `.`.

use berth_core::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// The directory of records, below the tasks directory.
const DIR: &str = ".retiring";

/// One retiring shim: its task's namespace and id, and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The task's namespace.
    pub namespace: String,
    /// The task's id.
    pub id: String,
    /// The shim's ttrpc address.
    pub address: String,
}

/// The records of one tasks directory.
#[derive(Debug, Clone)]
pub struct Retiring {
    dir: PathBuf,
}

impl Retiring {
    /// The records kept below `tasks_dir`.
    pub fn new(tasks_dir: &Path) -> Retiring {
        Retiring {
            dir: tasks_dir.join(DIR),
        }
    }

    fn path(&self, namespace: &str, id: &str) -> PathBuf {
        self.dir.join(format!("{namespace}@{id}"))
    }

    /// Records that the shim at `address` serves the deleted task.
    pub fn record(&self, namespace: &str, id: &str, address: &str) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| Error::internal(format!("create {}: {e}", self.dir.display())))?;
        let path = self.path(namespace, id);
        fs::write(&path, address)
            .map_err(|e| Error::internal(format!("write {}: {e}", path.display())))
    }

    /// Forgets the task's record once its shim has shut down.
    pub fn forget(&self, namespace: &str, id: &str) {
        let _ = fs::remove_file(self.path(namespace, id));
    }

    /// Every record, in no particular order.
    pub fn list(&self) -> Vec<Record> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let (namespace, id) = name.split_once('@')?;
                let address = fs::read_to_string(entry.path()).ok()?;
                Some(Record {
                    namespace: namespace.to_string(),
                    id: id.to_string(),
                    address: address.trim().to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_listed_until_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let retiring = Retiring::new(dir.path());
        assert!(retiring.list().is_empty());
        retiring
            .record("ns", "a.b-c", "unix:///run/berth/s/1")
            .expect("record");
        assert_eq!(
            retiring.list(),
            [Record {
                namespace: "ns".into(),
                id: "a.b-c".into(),
                address: "unix:///run/berth/s/1".into()
            }]
        );
        retiring.forget("ns", "a.b-c");
        assert!(retiring.list().is_empty());
    }
}
