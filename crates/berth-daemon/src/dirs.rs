//! The daemon's top-level directories and their modes, as containerd sets
//! them: the persistent root is root's alone (0700, and an existing root is
//! chmodded to 0700 at every start, so an installation made by an older
//! berth is fixed), the state directory is 0711 so that a user-namespaced
//! container's remapped root can traverse it to its bundle's rootfs, and
//! nothing below either is readable by other users unless a plugin says so.

use anyhow::{Context, Result};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The persistent root's mode: metadata, content and snapshots are root's.
pub const ROOT_MODE: u32 = 0o700;
/// The state directory's mode: traversable, not listable.
pub const STATE_MODE: u32 = 0o711;

/// Creates `root` and `state` (and missing parents) and sets their modes.
pub fn prepare(root: &Path, state: &Path) -> Result<()> {
    create_with_mode(root, ROOT_MODE).with_context(|| format!("create root {}", root.display()))?;
    create_with_mode(state, STATE_MODE).with_context(|| format!("create state {}", state.display()))
}

/// Creates `dir` with `mode` if missing, and sets `mode` on it either way.
pub fn create_with_mode(dir: &Path, mode: u32) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").mode() & 0o7777
    }

    #[test]
    fn new_directories_get_containerd_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, state) = (dir.path().join("a/root"), dir.path().join("b/state"));
        prepare(&root, &state).expect("prepare");
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&state), 0o711);
    }

    #[test]
    fn an_existing_open_root_is_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, state) = (dir.path().join("root"), dir.path().join("state"));
        for d in [&root, &state] {
            fs::create_dir(d).expect("mkdir");
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        prepare(&root, &state).expect("prepare");
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&state), 0o711);
    }
}
