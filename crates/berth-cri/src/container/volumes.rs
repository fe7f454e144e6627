//! Image volumes: each `Volumes` path of the image that no CRI mount
//! covers gets a directory `<container root>/volumes/<random id>`, filled
//! with what the image has at that path (containerd's `WithVolumes`
//! copy-up) and bind-mounted there.

use super::mounts::in_cri_mounts;
use berth_core::rootpath::InRootDir;
use berth_core::{Error, Result};
use k8s_cri::v1::Mount;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

/// The mounts for the image's volumes not covered by `cri` mounts.
pub(crate) fn volume_mounts(root_dir: &Path, cri: &[Mount], volumes: &[String]) -> Vec<Mount> {
    volumes
        .iter()
        .filter(|dst| !in_cri_mounts(dst, cri))
        .map(|dst| Mount {
            container_path: dst.clone(),
            host_path: root_dir
                .join("volumes")
                .join(crate::ids::generate())
                .to_string_lossy()
                .into_owned(),
            selinux_relabel: true,
            ..Mount::default()
        })
        .collect()
}

/// Copies what the image (mounted at `rootfs`) has at each volume's
/// path into its host directory, which is created; an empty host
/// directory only, as containerd copies.
pub(crate) fn copy_up(rootfs: &Path, volumes: &[Mount]) -> Result<()> {
    for volume in volumes {
        let host = Path::new(&volume.host_path);
        let io = |e: std::io::Error| {
            Error::internal(format!("copy up volume {}: {e}", volume.container_path))
        };
        std::fs::create_dir_all(host).map_err(io)?;
        // The image's symlinks and `..` stay inside its rootfs.
        let Ok(inside) = InRootDir::open(rootfs, &volume.container_path) else {
            continue;
        };
        if std::fs::read_dir(host).map_err(io)?.next().is_some() {
            continue;
        }
        let meta = inside.metadata().map_err(io)?;
        copy_dir(&inside.path(), host).map_err(io)?;
        std::fs::set_permissions(host, meta.permissions()).map_err(io)?;
    }
    Ok(())
}

/// Copies a tree: directories, files and symlinks, with their modes and
/// owners.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src)?;
        if meta.file_type().is_symlink() {
            symlink(std::fs::read_link(&src)?, &dst)?;
        } else if meta.is_dir() {
            std::fs::create_dir_all(&dst)?;
            copy_dir(&src, &dst)?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode()))?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst)?;
        } else {
            continue;
        }
        let _ = std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_not_covered_by_cri_mounts_are_copied_up() {
        let rootfs = tempfile::tempdir().expect("rootfs");
        let root = tempfile::tempdir().expect("root");
        std::fs::create_dir_all(rootfs.path().join("data/sub")).expect("data");
        std::fs::write(rootfs.path().join("data/sub/file"), "seed").expect("file");
        symlink("sub/file", rootfs.path().join("data/link")).expect("link");
        let cri = [Mount {
            container_path: "/covered".into(),
            host_path: "/tmp".into(),
            ..Mount::default()
        }];
        let volumes = ["/data".to_string(), "/covered".into(), "/absent".into()];
        let mounts = volume_mounts(root.path(), &cri, &volumes);
        assert_eq!(mounts.len(), 2);
        assert!(mounts[0]
            .host_path
            .starts_with(&*root.path().join("volumes").to_string_lossy()));
        copy_up(rootfs.path(), &mounts).expect("copy up");
        let host = Path::new(&mounts[0].host_path);
        assert_eq!(
            std::fs::read_to_string(host.join("sub/file")).expect("read"),
            "seed"
        );
        assert_eq!(
            std::fs::read_link(host.join("link")).expect("link"),
            Path::new("sub/file")
        );
        assert!(Path::new(&mounts[1].host_path).is_dir());
    }

    #[test]
    fn a_volume_cannot_copy_from_outside_the_image() {
        let base = tempfile::tempdir().expect("base");
        let rootfs = base.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).expect("etc");
        let host_secret = base.path().join("hostdir");
        std::fs::create_dir_all(&host_secret).expect("hostdir");
        std::fs::write(host_secret.join("secret"), "host").expect("secret");
        // An absolute symlink out, and `..` in the volume path.
        symlink(&host_secret, rootfs.join("data")).expect("symlink");
        let root = tempfile::tempdir().expect("root");
        let volumes = ["/data".to_string(), "/../hostdir".into()];
        let mounts = volume_mounts(root.path(), &[], &volumes);
        copy_up(&rootfs, &mounts).expect("copy up");
        for mount in &mounts {
            let copied: Vec<_> = std::fs::read_dir(&mount.host_path)
                .expect("volume dir")
                .collect();
            assert!(copied.is_empty(), "{}: {copied:?}", mount.container_path);
        }
    }
}
