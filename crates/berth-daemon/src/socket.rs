//! The API socket: refuse to steal a live daemon's socket, replace a stale
//! one, and create it 0660 owned by the configured uid/gid (root by default).

use anyhow::{bail, Context, Result};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use tokio::net::UnixListener;

/// Binds the unix socket at `path`.
pub fn bind(path: &Path, uid: u32, gid: u32) -> Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("create socket directory {}", parent.display()))?;
    }
    remove_stale(path)?;
    let listener =
        UnixListener::bind(path).with_context(|| format!("listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))?;
    Ok(listener)
}

/// Removes `path` if it is a socket nobody answers on; fails if a live
/// daemon answers or if the path is something other than a socket.
fn remove_stale(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("stat {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket: refusing to replace it",
            path.display()
        );
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => bail!(
            "another daemon is already serving on {}: refusing to start (stop it first)",
            path.display()
        ),
        Err(err) if err.kind() == ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %path.display(), "removing stale socket");
            std::fs::remove_file(path)
                .with_context(|| format!("remove stale socket {}", path.display()))
        }
        Err(err) => Err(err).with_context(|| format!("probe socket {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid_gid() -> (u32, u32) {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    }

    #[tokio::test]
    async fn socket_is_0660() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run/b.sock");
        let (uid, gid) = uid_gid();
        let _listener = bind(&path, uid, gid).expect("bind");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
    }

    #[tokio::test]
    async fn live_socket_is_refused_and_stale_one_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.sock");
        let (uid, gid) = uid_gid();
        let live = bind(&path, uid, gid).expect("bind");
        let err = bind(&path, uid, gid).expect_err("live socket");
        assert!(err.to_string().contains("already serving"), "{err}");
        drop(live); // the file stays behind: stale now
        assert!(path.exists());
        bind(&path, uid, gid).expect("stale socket replaced");
    }

    #[tokio::test]
    async fn non_socket_is_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.sock");
        std::fs::write(&path, "precious").expect("write");
        let (uid, gid) = uid_gid();
        assert!(bind(&path, uid, gid).is_err());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "precious");
    }
}
