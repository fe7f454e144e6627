//! The overlayfs snapshotter (containerd's `plugins/snapshots/overlay`).
//!
//! A snapshot's own changes are its `fs` directory; an active one also has
//! `work`, overlayfs's scratch directory. Mounts:
//!
//! | snapshot | mount |
//! |---|---|
//! | active or view without parent | `bind` of its own `fs` (`rw` / `ro`) |
//! | view of one committed parent | read-only `bind` of the parent's `fs` |
//! | view of a longer chain | `overlay`, `lowerdir=` the parents, newest first |
//! | active with parents | `overlay` with `upperdir` = `fs`, `workdir` = `work`, `lowerdir` = parents |
//!
//! The kernel copies mount data into one page, so a `lowerdir` list must
//! stay under 4096 bytes. Snapshot directories are named by short numeric
//! ids (`snapshots/17/fs`) rather than by key, which keeps each entry to
//! the root's length plus a few bytes: with the default root
//! (`/var/lib/berth/snapshots/overlayfs`) a chain of ~80 layers fits.
//!
//! Options: `index=off` when the kernel has the `index` feature (as
//! containerd does, so a layer directory can be used by several mounts),
//! and `userxattr` when running inside a user namespace, where overlayfs
//! cannot use `trusted.*` xattrs.

use crate::local::{Driver, Snapshots};
use berth_core::mount::Mount;
use berth_core::snapshots::Kind;
use berth_core::Result;
use std::path::{Path, PathBuf};

/// The overlayfs layout.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// Options added to every overlay mount.
    options: Vec<String>,
}

impl Overlay {
    /// The layout with the options this kernel and process need.
    pub fn detect() -> Self {
        let mut options = Vec::new();
        if Path::new("/sys/module/overlay/parameters/index").exists() {
            options.push("index=off".to_owned());
        }
        if in_user_namespace() {
            options.push("userxattr".to_owned());
        }
        Overlay { options }
    }
}

/// Whether this process runs in a user namespace other than the initial
/// one (whose uid map is the identity over the whole range).
fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

/// The overlayfs snapshotter.
pub type OverlaySnapshotter = Snapshots<Overlay>;

/// Opens the overlayfs snapshotter rooted at `root`.
pub fn open(root: &Path) -> Result<OverlaySnapshotter> {
    Snapshots::open(root, Overlay::detect())
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Driver for Overlay {
    fn create(&self, dir: &Path, kind: Kind, parent_fs: Option<&Path>) -> std::io::Result<()> {
        let fs = dir.join("fs");
        std::fs::create_dir(&fs)?;
        // The new upper directory is the root of the container's view: it
        // takes the parent's owner, as containerd's overlayfs does, so a
        // remapped (user-namespaced) snapshot stays writable by its root.
        if let Some(parent) = parent_fs {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(parent)?;
            std::os::unix::fs::lchown(&fs, Some(meta.uid()), Some(meta.gid()))?;
        }
        if kind == Kind::Active {
            std::fs::create_dir(dir.join("work"))?;
        }
        Ok(())
    }

    fn mounts(&self, dir: &Path, kind: Kind, parents: &[PathBuf]) -> Vec<Mount> {
        let bind = |source: &Path, ro: bool| Mount {
            mount_type: "bind".into(),
            source: path_str(source),
            target: String::new(),
            options: vec![if ro { "ro" } else { "rw" }.into(), "rbind".into()],
        };
        if parents.is_empty() {
            return vec![bind(&dir.join("fs"), kind == Kind::View)];
        }
        let mut options = self.options.clone();
        if kind == Kind::Active {
            options.push(format!("workdir={}", path_str(&dir.join("work"))));
            options.push(format!("upperdir={}", path_str(&dir.join("fs"))));
        } else if parents.len() == 1 {
            return vec![bind(&parents[0], true)];
        }
        let lower: Vec<String> = parents.iter().map(|p| path_str(p)).collect();
        options.push(format!("lowerdir={}", lower.join(":")));
        vec![Mount {
            mount_type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options,
        }]
    }

    /// An `overlay` mount with `upperdir` and `workdir` but no `lowerdir`:
    /// not mountable, but it tells an applier to write the layer straight
    /// into the upper directory with overlay whiteouts, which is all a
    /// layer's directory ever holds whatever its parents turn out to be.
    fn rebase_mounts(&self, dir: &Path) -> Option<Vec<Mount>> {
        let mut options = self.options.clone();
        options.push(format!("workdir={}", path_str(&dir.join("work"))));
        options.push(format!("upperdir={}", path_str(&dir.join("fs"))));
        Some(vec![Mount {
            mount_type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options,
        }])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn overlay() -> Overlay {
        Overlay {
            options: vec!["index=off".into()],
        }
    }

    #[test]
    fn active_with_parents_is_an_overlay_with_lowerdirs_newest_first() {
        let parents = [
            PathBuf::from("/r/snapshots/2/fs"),
            PathBuf::from("/r/snapshots/1/fs"),
        ];
        let m = overlay().mounts(Path::new("/r/snapshots/3"), Kind::Active, &parents);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_type, "overlay");
        assert_eq!(
            m[0].options,
            [
                "index=off",
                "workdir=/r/snapshots/3/work",
                "upperdir=/r/snapshots/3/fs",
                "lowerdir=/r/snapshots/2/fs:/r/snapshots/1/fs"
            ]
        );
    }

    #[test]
    fn single_parent_view_and_parentless_active_are_binds() {
        let parents = [PathBuf::from("/r/snapshots/1/fs")];
        let view = overlay().mounts(Path::new("/r/snapshots/2"), Kind::View, &parents);
        assert_eq!(view[0].mount_type, "bind");
        assert_eq!(view[0].source, "/r/snapshots/1/fs");
        assert_eq!(view[0].options, ["ro", "rbind"]);
        let active = overlay().mounts(Path::new("/r/snapshots/3"), Kind::Active, &[]);
        assert_eq!(active[0].source, "/r/snapshots/3/fs");
        assert_eq!(active[0].options, ["rw", "rbind"]);
    }

    #[test]
    fn a_new_upper_directory_takes_its_parents_owner() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var_os("CI").is_none(), "needs root (chown)");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let parent = dir.path().join("parent");
        std::fs::create_dir(&parent).expect("mkdir");
        std::os::unix::fs::lchown(&parent, Some(1000), Some(1001)).expect("chown");
        let child = dir.path().join("child");
        std::fs::create_dir(&child).expect("mkdir");
        overlay()
            .create(&child, Kind::Active, Some(&parent))
            .expect("create");
        let meta = std::fs::metadata(child.join("fs")).expect("stat");
        assert_eq!((meta.uid(), meta.gid()), (1000, 1001));
    }

    #[test]
    fn multi_parent_view_has_no_upperdir() {
        let parents = [PathBuf::from("/a"), PathBuf::from("/b")];
        let view = overlay().mounts(Path::new("/r/snapshots/4"), Kind::View, &parents);
        assert_eq!(view[0].options, ["index=off", "lowerdir=/a:/b"]);
    }
}
