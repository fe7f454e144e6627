//! An entry's metadata — owner, mode, times, xattrs — read from its tar
//! header and set on what was created, owner before mode (a chown clears
//! set-id bits) and times last.

use super::fsops;
use super::PAX_XATTR;
use rustix::fs::{self as rfs, AtFlags, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;

/// What the header says about an entry besides its name and type.
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub times: Timestamps,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    /// Reads the metadata of `entry` (its header and PAX records).
    pub(crate) fn of(entry: &mut tar::Entry<'_, impl Read>) -> io::Result<Meta> {
        let header = entry.header();
        let old = header.as_old();
        let mode = blank_is_zero(&old.mode, header.mode().map(u64::from))? as u32 & 0o7777;
        let uid = blank_is_zero(&old.uid, header.uid())?;
        let gid = blank_is_zero(&old.gid, header.gid())?;
        let uid = u32::try_from(uid).map_err(|_| bad("uid out of range"))?;
        let gid = u32::try_from(gid).map_err(|_| bad("gid out of range"))?;
        let mtime = blank_is_zero(&old.mtime, header.mtime())?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                let Ok(key) = ext.key() else { continue };
                if let Some(name) = key.strip_prefix(PAX_XATTR) {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                } else if key == "mtime" {
                    mtime = pax_time(ext.value_bytes()).unwrap_or(mtime);
                } else if key == "atime" {
                    atime = pax_time(ext.value_bytes());
                }
            }
        }
        // containerd sets atime to the later of the two (`latestTime`).
        let atime = match atime {
            Some(a) if (a.tv_sec, a.tv_nsec) > (mtime.tv_sec, mtime.tv_nsec) => a,
            _ => mtime,
        };
        Ok(Meta {
            mode,
            uid,
            gid,
            times: Timestamps {
                last_access: atime,
                last_modification: mtime,
            },
            xattrs,
        })
    }

    /// Sets owner, xattrs, mode and times on the open file `fd`.
    pub(crate) fn set_fd(&self, fd: BorrowedFd<'_>, same_owner: bool) -> io::Result<()> {
        self.set_fd_keep_times(fd, same_owner)?;
        rfs::futimens(fd, &self.times)?;
        Ok(())
    }

    /// Sets owner, xattrs and mode on the open file `fd`.
    pub(crate) fn set_fd_keep_times(&self, fd: BorrowedFd<'_>, same_owner: bool) -> io::Result<()> {
        if same_owner {
            rfs::fchown(fd, Some(uid(self.uid)), Some(gid(self.gid)))?;
        }
        for (name, value) in &self.xattrs {
            let r = rfs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty());
            tolerate_xattr(r, name, true)?;
        }
        rfs::fchmod(fd, Mode::from_raw_mode(self.mode))?;
        Ok(())
    }

    /// Sets only the owner of `name` in `dir`, not following it.
    pub(crate) fn set_owner_at(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let (u, g) = (Some(uid(self.uid)), Some(gid(self.gid)));
        Ok(rfs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// Sets owner and xattrs (and mode, unless a symlink) on `name` in
    /// `dir`, without following it; times are left to the caller.
    pub(crate) fn set_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        same_owner: bool,
        symlink: bool,
    ) -> io::Result<()> {
        if same_owner {
            let (u, g) = (Some(uid(self.uid)), Some(gid(self.gid)));
            rfs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        if !self.xattrs.is_empty() {
            let path = fsops::fd_path(dir, name);
            for (key, value) in &self.xattrs {
                let r = rfs::lsetxattr(&path, key.as_str(), value, XattrFlags::empty());
                tolerate_xattr(r, key, false)?;
            }
        }
        if !symlink {
            rfs::chmodat(dir, name, Mode::from_raw_mode(self.mode), AtFlags::empty())?;
        }
        Ok(())
    }
}

/// Sets the times of `name` in `dir`, not following a symlink.
pub(crate) fn set_times_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    times: &Timestamps,
) -> io::Result<()> {
    Ok(rfs::utimensat(dir, name, times, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// containerd ignores xattrs the file system does not support, and `user.`
/// xattrs on what cannot carry them (only files and directories can).
fn tolerate_xattr(r: rustix::io::Result<()>, name: &str, file_or_dir: bool) -> io::Result<()> {
    match r {
        Ok(()) | Err(Errno::NOTSUP) => Ok(()),
        Err(Errno::PERM) if !file_or_dir && name.starts_with("user.") => Ok(()),
        Err(e) => Err(io::Error::new(
            io::Error::from(e).kind(),
            format!("set xattr {name}: {e}"),
        )),
    }
}

/// A PAX time: seconds, optionally with a fraction (`1700000000.5`).
fn pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        let n: i64 = digits.parse().ok()?;
        n * 10i64.pow(9 - digits.len() as u32)
    };
    // A negative time with a fraction counts down from the seconds.
    let (tv_sec, tv_nsec) = if secs.starts_with('-') && tv_nsec > 0 {
        (tv_sec - 1, 1_000_000_000 - tv_nsec)
    } else {
        (tv_sec, tv_nsec)
    };
    Some(Timespec { tv_sec, tv_nsec })
}

/// A numeric header field left blank (NULs or spaces) reads as 0, as in
/// Go's `archive/tar`; anything else that does not parse is an error.
fn blank_is_zero(raw: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if raw.iter().all(|&b| b == 0 || b == b' ') {
        Ok(0)
    } else {
        parsed
    }
}

fn uid(raw: u32) -> Uid {
    Uid::from_raw_unchecked(raw)
}

fn gid(raw: u32) -> Gid {
    Gid::from_raw_unchecked(raw)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse_fractions() {
        let t = pax_time(b"1700000000.25").expect("time");
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 250_000_000));
        let t = pax_time(b"12").expect("time");
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        let t = pax_time(b"-1.5").expect("time");
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 500_000_000));
        assert!(pax_time(b"x").is_none());
    }
}
