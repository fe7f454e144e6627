//! Just enough tar for image archives, streaming in both directions.
//!
//! [`TarReader`] walks an archive from any `AsyncRead` without buffering
//! entry bodies: each regular file's bytes are read through
//! [`TarReader::body`] straight into the content store, so a layer never
//! sits in memory. It understands POSIX ustar, GNU long names and PAX
//! `path`/`linkpath`/`size` records, and verifies header checksums.
//!
//! [`TarWriter`] writes the ustar headers Go's `archive/tar` writes for a
//! header that sets only name, mode, size, type and link name (zero
//! mtime, uid and gid; empty user and group names) — the headers of
//! containerd's exporter, so an export's bytes depend only on its content.

mod reader;
mod writer;

pub use reader::{EntryBody, TarReader};
pub use writer::TarWriter;

/// The size of a tar block.
pub const BLOCK: usize = 512;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (`0`, NUL, or contiguous `7`).
    Regular,
    /// A hard link (`1`).
    HardLink,
    /// A symbolic link (`2`).
    Symlink,
    /// A directory (`5`).
    Directory,
    /// A character or block device or a FIFO (`3`, `4`, `6`).
    Special,
    /// Any other type flag.
    Other(u8),
}

impl EntryKind {
    /// The kind of a ustar type flag.
    pub fn from_flag(flag: u8) -> EntryKind {
        match flag {
            b'0' | 0 | b'7' => EntryKind::Regular,
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'5' => EntryKind::Directory,
            b'3' | b'4' | b'6' => EntryKind::Special,
            other => EntryKind::Other(other),
        }
    }

    /// The ustar type flag of this kind.
    pub fn flag(self) -> u8 {
        match self {
            EntryKind::Regular => b'0',
            EntryKind::HardLink => b'1',
            EntryKind::Symlink => b'2',
            EntryKind::Directory => b'5',
            EntryKind::Special => b'6',
            EntryKind::Other(flag) => flag,
        }
    }
}

/// One archive member's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The member's path as written in the archive.
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// The body's size in bytes (0 for everything but regular files).
    pub size: u64,
    /// A link's target.
    pub link_name: String,
}

impl Header {
    /// A regular file.
    pub fn file(name: impl Into<String>, mode: u32, size: u64) -> Header {
        Header {
            name: name.into(),
            kind: EntryKind::Regular,
            mode,
            size,
            link_name: String::new(),
        }
    }

    /// A directory.
    pub fn dir(name: impl Into<String>, mode: u32) -> Header {
        Header {
            name: name.into(),
            kind: EntryKind::Directory,
            mode,
            size: 0,
            link_name: String::new(),
        }
    }

    /// A symbolic link to `target`.
    pub fn symlink(name: impl Into<String>, target: impl Into<String>) -> Header {
        Header {
            name: name.into(),
            kind: EntryKind::Symlink,
            mode: 0o777,
            size: 0,
            link_name: target.into(),
        }
    }
}
