//! The native snapshotter (containerd's `plugins/snapshots/native`): every
//! snapshot's `fs` is a full copy of its parent's, so it needs nothing from
//! the filesystem beyond directories. Mounts are bind mounts of the
//! snapshot's own `fs`, read-only for views.

use crate::fsutil;
use crate::local::{Driver, Snapshots};
use berth_core::mount::Mount;
use berth_core::snapshots::Kind;
use berth_core::Result;
use std::path::{Path, PathBuf};

/// The native layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Native;

/// The native snapshotter.
pub type NativeSnapshotter = Snapshots<Native>;

/// Opens the native snapshotter rooted at `root`.
pub fn open(root: &Path) -> Result<NativeSnapshotter> {
    Snapshots::open(root, Native)
}

impl Driver for Native {
    fn create(&self, dir: &Path, _kind: Kind, parent_fs: Option<&Path>) -> std::io::Result<()> {
        let fs = dir.join("fs");
        std::fs::create_dir(&fs)?;
        match parent_fs {
            Some(parent) => fsutil::copy_dir(parent, &fs),
            None => Ok(()),
        }
    }

    fn mounts(&self, dir: &Path, kind: Kind, _parents: &[PathBuf]) -> Vec<Mount> {
        let ro = if kind == Kind::View { "ro" } else { "rw" };
        vec![Mount {
            mount_type: "bind".into(),
            source: dir.join("fs").to_string_lossy().into_owned(),
            target: String::new(),
            options: vec![ro.into(), "rbind".into()],
        }]
    }
}
