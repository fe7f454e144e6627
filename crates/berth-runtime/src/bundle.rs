//! A task's bundle: `<state>/io.containerd.runtime.v2.task/<ns>/<id>/`.
//!
//! ```text
//! config.json   the container's OCI spec, as the container record holds it
//! rootfs/       where the shim mounts the rootfs mounts it is given
//! address       the shim's ttrpc address, written by the shim
//! shim-binary-path  the shim binary, so recovery can run its `delete`
//! ```

use berth_core::{Error, Result};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file naming the shim binary that owns the bundle (containerd 1.7's name).
const SHIM_BINARY_FILE: &str = "shim-binary-path";

/// A bundle directory on disk.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The namespace.
    pub namespace: String,
    /// The task (container) id.
    pub id: String,
    /// The bundle directory.
    pub path: PathBuf,
}

fn io(what: &str, path: &Path, err: std::io::Error) -> Error {
    Error::internal(format!("{what} {}: {err}", path.display()))
}

/// For a container with a user namespace, lets its remapped root group
/// (the host gid mapped to container gid 0) traverse the bundle to its
/// rootfs, as containerd does: group `gid`, mode 0710. Others still get
/// nothing.
fn open_to_remapped_root(bundle: &Path, spec: &[u8]) -> Result<()> {
    let Some(gid) = remapped_root_gid(spec) else {
        return Ok(());
    };
    std::os::unix::fs::chown(bundle, None, Some(gid)).map_err(|e| io("chown", bundle, e))?;
    fs::set_permissions(bundle, fs::Permissions::from_mode(0o710))
        .map_err(|e| io("chmod", bundle, e))
}

/// The host gid that the spec's user namespace maps container gid 0 to, if
/// the spec has a mapping for it and it is not 0.
fn remapped_root_gid(spec: &[u8]) -> Option<u32> {
    let spec: serde_json::Value = serde_json::from_slice(spec).ok()?;
    let mappings = spec.get("linux")?.get("gidMappings")?.as_array()?;
    mappings
        .iter()
        .find(|m| m.get("containerID").and_then(|v| v.as_u64()) == Some(0))
        .and_then(|m| m.get("hostID")?.as_u64())
        .and_then(|gid| u32::try_from(gid).ok())
        .filter(|gid| *gid != 0)
}

impl Bundle {
    /// The bundle's path below `tasks_dir` (the runtime's state directory).
    pub fn at(tasks_dir: &Path, namespace: &str, id: &str) -> Bundle {
        Bundle {
            namespace: namespace.to_string(),
            id: id.to_string(),
            path: tasks_dir.join(namespace).join(id),
        }
    }

    /// Creates the bundle with `spec` as `config.json`; an existing bundle
    /// directory (left by a crash) is removed first.
    pub fn create(tasks_dir: &Path, namespace: &str, id: &str, spec: &[u8]) -> Result<Bundle> {
        let bundle = Bundle::at(tasks_dir, namespace, id);
        let parent = tasks_dir.join(namespace);
        // 0711 as containerd: a remapped container root must traverse it.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&parent)
            .map_err(|e| io("create", &parent, e))?;
        if bundle.path.exists() {
            fs::remove_dir_all(&bundle.path).map_err(|e| io("remove stale", &bundle.path, e))?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&bundle.path)
            .map_err(|e| io("create", &bundle.path, e))?;
        open_to_remapped_root(&bundle.path, spec)?;
        let rootfs = bundle.rootfs();
        // 0711 as containerd: the container's user must traverse it.
        fs::DirBuilder::new()
            .mode(0o711)
            .create(&rootfs)
            .map_err(|e| io("create", &rootfs, e))?;
        fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o711))
            .map_err(|e| io("chmod", &rootfs, e))?;
        let config = bundle.path.join("config.json");
        fs::write(&config, spec).map_err(|e| io("write", &config, e))?;
        Ok(bundle)
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.path.join("rootfs")
    }

    /// The shim's log FIFO, `<bundle>/log`: containerd 1.x shims open it for
    /// writing as their stderr and fail to start without it.
    pub fn log_fifo(&self) -> PathBuf {
        self.path.join("log")
    }

    /// Creates the log FIFO if it is missing.
    pub fn create_log_fifo(&self) -> Result<()> {
        let path = self.log_fifo();
        match nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
            Err(e) => Err(Error::internal(format!("mkfifo {}: {e}", path.display()))),
        }
    }

    /// Records which shim binary owns the bundle.
    pub fn write_shim_binary(&self, binary: &Path) -> Result<()> {
        let path = self.path.join(SHIM_BINARY_FILE);
        fs::write(&path, binary.as_os_str().as_encoded_bytes()).map_err(|e| io("write", &path, e))
    }

    /// The shim binary recorded in the bundle, if any.
    pub fn shim_binary(&self) -> Option<PathBuf> {
        let text = fs::read_to_string(self.path.join(SHIM_BINARY_FILE)).ok()?;
        Some(PathBuf::from(text.trim()))
    }

    /// The shim's address as the shim wrote it (`unix:///…`).
    pub fn address(&self) -> Result<String> {
        let path = self.path.join("address");
        let text = fs::read_to_string(&path).map_err(|e| io("read", &path, e))?;
        Ok(text.trim().to_string())
    }

    /// Writes the shim's address (shims normally do this themselves).
    pub fn write_address(&self, address: &str) -> Result<()> {
        let path = self.path.join("address");
        fs::write(&path, address).map_err(|e| io("write", &path, e))
    }

    /// Removes the bundle directory. The rootfs must already be unmounted
    /// (the shim does it); a still-mounted rootfs is an error, never deleted
    /// through.
    pub fn delete(&self) -> Result<()> {
        let rootfs = self.rootfs();
        if rootfs.exists() {
            fs::remove_dir(&rootfs).map_err(|e| io("remove", &rootfs, e))?;
        }
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &self.path, e)),
            _ => Ok(()),
        }
    }

    /// Every bundle below `tasks_dir`, by namespace.
    pub fn list(tasks_dir: &Path) -> Vec<Bundle> {
        let mut bundles = Vec::new();
        for ns in read_dir_names(tasks_dir) {
            for id in read_dir_names(&tasks_dir.join(&ns)) {
                bundles.push(Bundle::at(tasks_dir, &ns, &id));
            }
        }
        bundles
    }
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        // Identifiers never start with a dot; `.retiring` is not a namespace.
        .filter(|name| !name.starts_with('.'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remapped_root_group_may_traverse_the_bundle() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "needs root (chown)");
            eprintln!("skipping: needs root (chown)");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = br#"{"linux":{"gidMappings":[{"containerID":0,"hostID":1000,"size":2000}]}}"#;
        let bundle = Bundle::create(dir.path(), "ns", "userns", spec).expect("create");
        let meta = fs::metadata(&bundle.path).expect("stat");
        assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o710, 1000));
        let plain = Bundle::create(dir.path(), "ns", "plain", b"{}").expect("create");
        let meta = fs::metadata(&plain.path).expect("stat");
        assert_eq!(meta.mode() & 0o7777, 0o700);
        let parent = fs::metadata(dir.path().join("ns")).expect("stat");
        assert_eq!(parent.mode() & 0o7777, 0o711);
    }

    #[test]
    fn create_writes_spec_and_rootfs_and_delete_removes_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bundle = Bundle::create(dir.path(), "default", "c1", b"{}").expect("create");
        assert_eq!(
            fs::read(bundle.path.join("config.json")).expect("read"),
            b"{}"
        );
        assert!(bundle.rootfs().is_dir());
        bundle.write_address("unix:///x").expect("address");
        assert_eq!(bundle.address().expect("address"), "unix:///x");
        assert_eq!(Bundle::list(dir.path()).len(), 1);
        bundle.delete().expect("delete");
        assert!(!bundle.path.exists());
        assert!(Bundle::list(dir.path()).is_empty());
    }

    #[test]
    fn create_replaces_a_stale_bundle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Bundle::create(dir.path(), "ns", "c", b"1").expect("create");
        first.write_address("stale").expect("address");
        let second = Bundle::create(dir.path(), "ns", "c", b"2").expect("create");
        assert!(second.address().is_err());
    }
}
