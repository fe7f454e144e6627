//! Users and groups resolved from the container's rootfs, as containerd's
//! `WithUser` and `WithAdditionalGIDs` read `/etc/passwd` and `/etc/group`.

use berth_core::{Error, Result};
use std::path::Path;

/// A user resolved in a rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// The user's name, when the rootfs knows it.
    pub name: Option<String>,
    /// Supplementary gids from `/etc/group` (membership by name).
    pub additional_gids: Vec<u32>,
}

struct Entry {
    name: String,
    id: u32,
    gid: u32,
    members: Vec<String>,
}

/// `name:x:uid:gid:…` lines.
fn passwd(rootfs: &Path) -> Vec<Entry> {
    parse(rootfs, "etc/passwd", |f| {
        Some(Entry {
            name: f.first()?.to_string(),
            id: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            members: Vec::new(),
        })
    })
}

/// `name:x:gid:member,member` lines.
fn groups(rootfs: &Path) -> Vec<Entry> {
    parse(rootfs, "etc/group", |f| {
        let gid = f.get(2)?.parse().ok()?;
        Some(Entry {
            name: f.first()?.to_string(),
            id: gid,
            gid,
            members: f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
    })
}

/// The most of `/etc/passwd` or `/etc/group` read.
const MAX_FILE: u64 = 8 << 20;

/// The entries of `file`, read inside `rootfs`: the image controls where
/// its symlinks lead, so they are resolved as if `rootfs` were `/`, and
/// only a regular file is read (none: no entries).
fn parse(rootfs: &Path, file: &str, entry: impl Fn(&[&str]) -> Option<Entry>) -> Vec<Entry> {
    let text = berth_core::rootpath::read_in_root(rootfs, file, MAX_FILE).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| entry(&l.split(':').collect::<Vec<_>>()))
        .collect()
}

fn unknown(what: &str, value: &str) -> Error {
    Error::not_found(format!("no {what} {value:?} in the container's rootfs"))
}

/// Resolves `user` — `name`, `uid`, `name:group`, `uid:gid` — against the
/// rootfs, as containerd does: a numeric uid needs no passwd entry (its gid
/// then defaults to the entry's or 0), a name must exist.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ResolvedUser> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let users = passwd(rootfs);
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => users.iter().find(|e| e.id == uid),
        Err(_) => Some(
            users
                .iter()
                .find(|e| e.name == user_part)
                .ok_or_else(|| unknown("user", user_part))?,
        ),
    };
    let uid = entry
        .map(|e| e.id)
        .or_else(|| user_part.parse().ok())
        .unwrap_or(0);
    let all_groups = groups(rootfs);
    let gid = match group_part {
        None => entry.map(|e| e.gid).unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => all_groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.id)
                .ok_or_else(|| unknown("group", g))?,
        },
    };
    let name = entry.map(|e| e.name.clone());
    let mut additional_gids: Vec<u32> = match &name {
        Some(name) => all_groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name) && g.gid != gid)
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    additional_gids.dedup();
    Ok(ResolvedUser {
        uid,
        gid,
        name,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("etc");
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nweb:x:1000:\naudio:x:29:web,other\nvideo:x:44:web\n",
        )
        .expect("group");
        dir
    }

    #[test]
    fn name_resolves_uid_gid_and_groups() {
        let dir = rootfs();
        let user = resolve_user(dir.path(), "web").expect("resolve");
        assert_eq!((user.uid, user.gid), (1000, 1000));
        assert_eq!(user.additional_gids, vec![29, 44]);
    }

    #[test]
    fn numeric_ids_need_no_entry() {
        let dir = rootfs();
        let user = resolve_user(dir.path(), "4242:7").expect("resolve");
        assert_eq!((user.uid, user.gid, user.name), (4242, 7, None));
    }

    #[test]
    fn named_group_resolves() {
        let dir = rootfs();
        let user = resolve_user(dir.path(), "root:audio").expect("resolve");
        assert_eq!((user.uid, user.gid), (0, 29));
    }

    #[test]
    fn unknown_name_is_not_found() {
        let dir = rootfs();
        assert!(resolve_user(dir.path(), "nobody")
            .expect_err("unknown")
            .is_not_found());
        assert!(resolve_user(dir.path(), "web:nogroup").is_err());
    }

    #[test]
    fn passwd_symlinks_resolve_inside_the_rootfs() {
        let dir = rootfs();
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("passwd"), "evil:x:0:0::/:/bin/sh\n").expect("passwd");
        std::fs::remove_file(dir.path().join("etc/passwd")).expect("rm");
        std::os::unix::fs::symlink(outside.path().join("passwd"), dir.path().join("etc/passwd"))
            .expect("symlink");
        let err = resolve_user(dir.path(), "evil").expect_err("not the host's file");
        assert!(err.is_not_found(), "{err}");
        // A device the image points at is not read (it would never end).
        std::fs::remove_file(dir.path().join("etc/passwd")).expect("rm");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("etc/passwd")).expect("symlink");
        assert!(resolve_user(dir.path(), "nobody").is_err());
        assert_eq!(resolve_user(dir.path(), "7:8").expect("numeric").uid, 7);
    }
}
