//! Where a shim listens: containerd's hashed socket convention.
//!
//! containerd 1.6 (`runtime/v2/shim/util_unix.go`, `SocketAddress`) puts a
//! shim's socket at `unix:///run/containerd/s/<sha256(daemon address/ns/id)>`:
//! the hash keeps the path short whatever the ids, and hashing the daemon's
//! address keeps two daemons on one host apart. berth keeps the scheme with its
//! own root, `/run/berth/s`.

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The directory holding every berth shim socket.
pub const SOCKET_ROOT: &str = "/run/berth/s";

/// `unix://SOCKET_ROOT/<hex sha256 of "address/namespace/id">`.
pub fn socket_address(daemon_address: &str, namespace: &str, id: &str) -> String {
    let joined = Path::new(daemon_address).join(namespace).join(id);
    let digest = Sha256::digest(joined.as_os_str().as_encoded_bytes());
    let mut out = format!("unix://{SOCKET_ROOT}/");
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The filesystem path of a `unix://` address.
pub fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

/// The socket file a serving shim listens on, removed only while it is
/// still this shim's: a shim that has answered Shutdown may live on briefly
/// while a new shim of the same id binds the same path.
#[derive(Debug, Clone)]
pub struct OwnSocket {
    path: std::path::PathBuf,
    /// (device, inode) of the bound socket.
    identity: Option<(u64, u64)>,
}

impl OwnSocket {
    /// The socket this shim has just bound at `path`.
    pub fn new(path: &Path) -> OwnSocket {
        use std::os::unix::fs::MetadataExt;
        let identity = std::fs::symlink_metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        OwnSocket {
            path: path.to_path_buf(),
            identity,
        }
    }

    /// Unlinks the socket file if it is still the one this shim bound, so
    /// no new client can reach this shim.
    pub fn remove(&self) {
        use std::os::unix::fs::MetadataExt;
        let current = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if current.is_some() && current == self.identity {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_hashed_and_stable() {
        let a = socket_address("/run/berth/berth.sock", "default", "c1");
        assert_eq!(a, socket_address("/run/berth/berth.sock", "default", "c1"));
        assert!(a.starts_with("unix:///run/berth/s/"));
        assert_eq!(socket_path(&a).len(), SOCKET_ROOT.len() + 1 + 64);
        assert_ne!(a, socket_address("/run/berth/berth.sock", "other", "c1"));
        assert_ne!(a, socket_address("/tmp/x.sock", "default", "c1"));
    }

    #[test]
    fn matches_containerd_hash_input() {
        // sha256("/run/containerd/containerd.sock/default/c1"), as Go's
        // filepath.Join(address, ns, id) builds it.
        let digest = Sha256::digest(b"/run/containerd/containerd.sock/default/c1");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let a = socket_address("/run/containerd/containerd.sock", "default", "c1");
        assert!(a.ends_with(&hex));
    }
}
