//! Multi-layer test images and the trees they must unpack to.
//!
//! A [`LayeredImage`] is a list of [`Layer`]s, each a list of [`Entry`]s:
//! directories, files and links with exact modes and owners, and the OCI
//! whiteouts that delete a path (`.wh.NAME`) or make a directory opaque
//! (`.wh..wh..opq`) in an upper layer. [`LayeredImage::archive`] packs it
//! as an OCI layout tar that `ctr images import` takes (layers plain or
//! gzip-compressed), and [`LayeredImage::expected`] applies the layers to
//! an in-memory [`Tree`] with the image-spec's rules, so a test compares
//! what a snapshotter mounted ([`Tree::read`]) with what it must be.
//!
//! [`layered_test_image`] is the standard image of the unpack tests;
//! [`LayeredImage::bulk`] makes big ones (many layers, large files) for
//! tests that must interrupt an unpack.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_image::mediatypes;
use berth_image::spec::{json, Descriptor, Index, Manifest, Platform};
use berth_image::spec::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use berth_image::Digest;

use crate::image_archive::host_arch;

/// One member of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Its path, relative (`etc/app`).
        path: String,
        /// Permission bits (with setuid/setgid/sticky).
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// A regular file.
    File {
        /// Its path, relative.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Its bytes.
        data: Vec<u8>,
        /// Extended attributes (PAX `SCHILY.xattr.*` records).
        xattrs: Vec<(String, Vec<u8>)>,
    },
    /// A symbolic link.
    Symlink {
        /// Its path, relative.
        path: String,
        /// What it points at, as written.
        target: String,
    },
    /// A hard link to a file of the same layer.
    Hardlink {
        /// Its path, relative.
        path: String,
        /// The linked file's path, relative.
        target: String,
    },
    /// A whiteout: deletes `path` (and, for a directory, everything under
    /// it) from the layers below.
    Whiteout {
        /// The path deleted.
        path: String,
    },
    /// Makes directory `path` opaque: what lower layers had in it is gone.
    Opaque {
        /// The directory.
        path: String,
    },
}

impl Entry {
    /// A directory owned by root.
    pub fn dir(path: &str, mode: u32) -> Entry {
        Entry::Dir {
            path: path.into(),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A directory with an owner.
    pub fn dir_owned(path: &str, mode: u32, uid: u32, gid: u32) -> Entry {
        Entry::Dir {
            path: path.into(),
            mode,
            uid,
            gid,
        }
    }

    /// A file owned by root.
    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Entry {
        Entry::file_owned(path, mode, 0, 0, data)
    }

    /// A file with an owner.
    pub fn file_owned(
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        data: impl Into<Vec<u8>>,
    ) -> Entry {
        Entry::File {
            path: path.into(),
            mode,
            uid,
            gid,
            data: data.into(),
            xattrs: Vec::new(),
        }
    }

    /// The same entry with extended attribute `key` = `value` (files only;
    /// other entries are returned unchanged).
    pub fn with_xattr(mut self, key: &str, value: &[u8]) -> Entry {
        if let Entry::File { xattrs, .. } = &mut self {
            xattrs.push((key.into(), value.to_vec()));
        }
        self
    }

    /// A symlink.
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }

    /// A hard link.
    pub fn hardlink(path: &str, target: &str) -> Entry {
        Entry::Hardlink {
            path: path.into(),
            target: target.into(),
        }
    }

    /// A whiteout of `path`.
    pub fn whiteout(path: &str) -> Entry {
        Entry::Whiteout { path: path.into() }
    }

    /// An opaque marker for directory `path`.
    pub fn opaque(path: &str) -> Entry {
        Entry::Opaque { path: path.into() }
    }
}

/// How a layer blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCompression {
    /// A plain tar (`application/vnd.oci.image.layer.v1.tar`).
    #[default]
    None,
    /// gzip (`…tar+gzip`).
    Gzip,
}

/// One layer: entries in archive order.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    /// The members.
    pub entries: Vec<Entry>,
    /// How the blob is stored.
    pub compression: LayerCompression,
}

impl Layer {
    /// A plain layer of `entries`.
    pub fn new(entries: Vec<Entry>) -> Layer {
        Layer {
            entries,
            compression: LayerCompression::None,
        }
    }

    /// The same layer, gzip-compressed.
    pub fn gzip(mut self) -> Layer {
        self.compression = LayerCompression::Gzip;
        self
    }
}

/// An image of several layers.
#[derive(Debug, Clone, Default)]
pub struct LayeredImage {
    /// The layers, lowest first.
    pub layers: Vec<Layer>,
}

/// A packed [`LayeredImage`] and the digests a test checks against.
#[derive(Debug, Clone)]
pub struct LayeredArchive {
    /// The OCI layout tar.
    pub bytes: Vec<u8>,
    /// The manifest's digest.
    pub manifest: Digest,
    /// The config's digest.
    pub config: Digest,
    /// Each layer blob's digest, lowest first.
    pub layers: Vec<Digest>,
    /// Each layer's diff ID (the uncompressed tar's digest).
    pub diff_ids: Vec<Digest>,
    /// The chain ID of each layer: the snapshot names an unpack commits.
    pub chain_ids: Vec<Digest>,
}

impl LayeredArchive {
    /// The top layer's chain ID: the snapshot a container starts from.
    pub fn top_chain_id(&self) -> &Digest {
        self.chain_ids.last().expect("an image has layers")
    }
}

impl LayeredImage {
    /// An image of `layers`.
    pub fn new(layers: Vec<Layer>) -> LayeredImage {
        LayeredImage { layers }
    }

    /// A big image: `layers` gzip layers, each with `files` files of
    /// `file_size` pseudo-random (incompressible) bytes in a directory of
    /// its own, so applying one takes a while.
    pub fn bulk(layers: usize, files: usize, file_size: usize) -> LayeredImage {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let layers = (0..layers)
            .map(|l| {
                let mut entries = vec![Entry::dir(&format!("l{l}"), 0o755)];
                for f in 0..files {
                    let data = noise(&mut seed, file_size);
                    entries.push(Entry::file(&format!("l{l}/f{f}"), 0o644, data));
                }
                Layer::new(entries).gzip()
            })
            .collect();
        LayeredImage { layers }
    }

    /// Packs the image as an OCI layout tar whose index names it
    /// `image_name` (`io.containerd.image.name`) with ref name `latest`.
    pub fn archive(&self, image_name: &str) -> Result<LayeredArchive> {
        let mut blobs = Vec::new();
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        for layer in &self.layers {
            let tar = layer_tar(&layer.entries)?;
            diff_ids.push(Digest::sha256_of(&tar));
            let (media_type, blob) = match layer.compression {
                LayerCompression::None => (mediatypes::OCI_LAYER, tar),
                LayerCompression::Gzip => (mediatypes::OCI_LAYER_GZIP, gzip(&tar)?),
            };
            layer_descs.push(descriptor(media_type, &blob));
            blobs.push(blob);
        }
        let diff_list: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
        let config = format!(
            concat!(
                r#"{{"architecture":"{arch}","config":{{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}},"#,
                r#""os":"linux","rootfs":{{"type":"layers","diff_ids":[{diffs}]}}}}"#
            ),
            arch = host_arch(),
            diffs = diff_list.join(",")
        )
        .into_bytes();
        let manifest = Manifest {
            schema_version: 2,
            media_type: mediatypes::OCI_MANIFEST.into(),
            config: descriptor(mediatypes::OCI_CONFIG, &config),
            layers: layer_descs.clone(),
            annotations: Default::default(),
        };
        let manifest = json::to_vec(&manifest)?;
        let mut entry = descriptor(mediatypes::OCI_MANIFEST, &manifest);
        entry.platform = Some(Platform {
            architecture: host_arch().into(),
            os: "linux".into(),
            ..Platform::default()
        });
        entry
            .annotations
            .insert(ANNOTATION_REF_NAME.into(), "latest".into());
        entry
            .annotations
            .insert(ANNOTATION_IMAGE_NAME.into(), image_name.into());
        let index = json::to_vec(&Index {
            schema_version: 2,
            manifests: vec![entry],
            ..Index::default()
        })?;
        blobs.push(config.clone());
        blobs.push(manifest.clone());
        let bytes = layout_tar(&index, &blobs)?;
        Ok(LayeredArchive {
            bytes,
            manifest: Digest::sha256_of(&manifest),
            config: Digest::sha256_of(&config),
            layers: layer_descs.into_iter().map(|d| d.digest).collect(),
            chain_ids: chain_ids(&diff_ids),
            diff_ids,
        })
    }

    /// The tree the first `n` layers unpack to.
    pub fn expected_after(&self, n: usize) -> Tree {
        let mut tree = Tree::default();
        for layer in &self.layers[..n] {
            tree.apply(&layer.entries);
        }
        tree
    }

    /// The tree the whole image unpacks to.
    pub fn expected(&self) -> Tree {
        self.expected_after(self.layers.len())
    }
}

/// A `security.capability` value (`vfs_cap_data` revision 2, effective)
/// granting `CAP_NET_BIND_SERVICE`: the one xattr containerd's differ
/// carries into a layer.
pub const CAP_NET_BIND_SERVICE: [u8; 20] = [
    0x01, 0, 0, 0x02, // magic: revision 2 | effective
    0x00, 0x04, 0, 0, // permitted, low word: bit 10
    0, 0, 0, 0, // inheritable, low word
    0, 0, 0, 0, // permitted, high word
    0, 0, 0, 0, // inheritable, high word
];

/// The unpack tests' image: three layers (gzip, gzip, plain) with owners,
/// modes (setuid, sticky, private), extended attributes (`user.*`, a file
/// capability), a symlink and a hard link, files and
/// whole directories deleted by whiteouts, a directory made opaque and a
/// deleted directory made again.
pub fn layered_test_image() -> LayeredImage {
    let base = Layer::new(vec![
        Entry::dir("bin", 0o755),
        Entry::file("bin/tool", 0o4755, "tool v1"),
        Entry::hardlink("bin/tool-hard", "bin/tool"),
        Entry::dir("etc", 0o755),
        Entry::dir_owned("etc/app", 0o750, 1000, 1000),
        Entry::file_owned("etc/app/config", 0o640, 1000, 100, "config v1")
            .with_xattr("user.berth.origin", b"layer 1"),
        Entry::file("etc/keep", 0o644, "kept").with_xattr("user.berth.kept", b"yes"),
        Entry::file("etc/gone", 0o644, "deleted in layer 2"),
        Entry::symlink("etc/link", "app/config"),
        Entry::dir("opt", 0o755),
        Entry::dir_owned("opt/data", 0o775, 0, 50),
        Entry::file("opt/data/a", 0o644, "a from layer 1"),
        Entry::dir("opt/data/sub", 0o755),
        Entry::file("opt/data/sub/c", 0o600, "c from layer 1"),
        Entry::dir("tmp", 0o1777),
        Entry::dir("var", 0o755),
        Entry::dir("var/cache", 0o755),
        Entry::file("var/cache/blob", 0o644, "cache"),
    ])
    .gzip();
    let middle = Layer::new(vec![
        Entry::whiteout("etc/gone"),
        Entry::file_owned("etc/app/config", 0o600, 1001, 1001, "config v2"),
        Entry::dir_owned("opt/data", 0o700, 2000, 2000),
        Entry::opaque("opt/data"),
        Entry::file_owned("opt/data/new", 0o640, 2000, 2000, "new in layer 2"),
        Entry::dir_owned("var/log", 0o700, 33, 33),
        Entry::file_owned("var/log/app.log", 0o600, 33, 33, "log line\n"),
        Entry::whiteout("var/cache"),
    ])
    .gzip();
    let top = Layer::new(vec![
        Entry::whiteout("etc/link"),
        Entry::symlink("etc/link2", "/etc/app/config"),
        Entry::whiteout("var/log"),
        Entry::dir("var/cache", 0o711),
        Entry::file("var/cache/fresh", 0o400, "recreated"),
        Entry::file("bin/tool", 0o4755, "tool v3")
            .with_xattr("security.capability", &CAP_NET_BIND_SERVICE),
        Entry::hardlink("bin/tool-hard", "bin/tool"),
    ]);
    LayeredImage::new(vec![base, middle, top])
}

/// What one path of a tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// A regular file, by content digest.
    File {
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// The sha256 of its bytes.
        digest: String,
        /// Its `user.*` and `security.capability` extended attributes.
        xattrs: BTreeMap<String, Vec<u8>>,
    },
    /// A symlink.
    Symlink {
        /// Its target.
        target: String,
    },
}

/// A filesystem tree as data: relative path to [`Node`], in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<String, Node>);

impl Tree {
    /// Reads the tree under `root` (not following symlinks). Fails on
    /// anything the model has no node for (devices, sockets, FIFOs): an
    /// unpack of these images makes none.
    pub fn read(root: &Path) -> Result<Tree> {
        let mut tree = Tree::default();
        read_into(root, root, &mut tree)?;
        Ok(tree)
    }

    /// What `self` and `other` disagree on, one line per path; empty when
    /// equal.
    pub fn differences(&self, other: &Tree) -> Vec<String> {
        let mut out = Vec::new();
        for (path, node) in &self.0 {
            match other.0.get(path) {
                None => out.push(format!("{path}: only in the first: {node:?}")),
                Some(o) if o != node => out.push(format!("{path}: {node:?} != {o:?}")),
                Some(_) => {}
            }
        }
        for (path, node) in &other.0 {
            if !self.0.contains_key(path) {
                out.push(format!("{path}: only in the second: {node:?}"));
            }
        }
        out
    }

    fn apply(&mut self, entries: &[Entry]) {
        // A whiteout or an opaque marker hides only what the layers below
        // had; entries of this layer stay, whatever their order.
        let mut added = Vec::new();
        let mut removals = Vec::new();
        let mut opaques = Vec::new();
        for entry in entries {
            match entry {
                Entry::Whiteout { path } => removals.push(path.clone()),
                Entry::Opaque { path } => opaques.push(path.clone()),
                _ => added.push(entry),
            }
        }
        for path in &removals {
            self.remove_under(path, true);
        }
        for path in &opaques {
            self.remove_under(path, false);
        }
        for entry in added {
            self.add(entry);
        }
    }

    /// Removes everything below `path`, and `path` itself if `itself`.
    fn remove_under(&mut self, path: &str, itself: bool) {
        let prefix = format!("{path}/");
        self.0
            .retain(|p, _| !(p.starts_with(&prefix) || (itself && p == path)));
    }

    fn add(&mut self, entry: &Entry) {
        match entry {
            Entry::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                if !matches!(self.0.get(path), Some(Node::Dir { .. })) {
                    self.remove_under(path, true);
                }
                let node = Node::Dir {
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                };
                self.0.insert(path.clone(), node);
            }
            Entry::File {
                path,
                mode,
                uid,
                gid,
                data,
                xattrs,
            } => {
                self.remove_under(path, true);
                let node = Node::File {
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    digest: Digest::sha256_of(data).to_string(),
                    xattrs: xattrs.iter().cloned().collect(),
                };
                self.0.insert(path.clone(), node);
            }
            Entry::Symlink { path, target } => {
                self.remove_under(path, true);
                let node = Node::Symlink {
                    target: target.clone(),
                };
                self.0.insert(path.clone(), node);
            }
            Entry::Hardlink { path, target } => {
                if let Some(node) = self.0.get(target).cloned() {
                    self.remove_under(path, true);
                    self.0.insert(path.clone(), node);
                }
            }
            Entry::Whiteout { .. } | Entry::Opaque { .. } => {}
        }
    }
}

fn read_into(root: &Path, dir: &Path, tree: &mut Tree) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let rel = path
            .strip_prefix(root)
            .context("path under root")?
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path)?;
        let mode = meta.permissions().mode() & 0o7777;
        let (uid, gid) = (meta.uid(), meta.gid());
        let node = if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)?.to_string_lossy().into_owned();
            Node::Symlink { target }
        } else if meta.is_dir() {
            read_into(root, &path, tree)?;
            Node::Dir { mode, uid, gid }
        } else if meta.is_file() {
            let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let digest = Digest::sha256_of(&data).to_string();
            Node::File {
                mode,
                uid,
                gid,
                digest,
                xattrs: read_xattrs(&path)?,
            }
        } else {
            bail!(
                "{}: unexpected file type {:?}",
                path.display(),
                meta.file_type()
            );
        };
        tree.0.insert(rel, node);
    }
    Ok(())
}

/// Whether `a` and `b` under `root` are one inode (a hard link pair).
pub fn same_inode(root: &Path, a: &str, b: &str) -> Result<bool> {
    let ma = fs::symlink_metadata(root.join(a))?;
    let mb = fs::symlink_metadata(root.join(b))?;
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

/// containerd's chain IDs of `diff_ids`: the first is its diff ID, each
/// next one `sha256(parent + " " + diffID)`.
fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => Digest::sha256_of(format!("{parent} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The layer tar of `entries`, with owners and modes in the headers.
fn layer_tar(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(1_700_000_000);
        let (path, body): (String, &[u8]) = match entry {
            Entry::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                header.set_entry_type(tar::EntryType::Directory);
                set_owner(&mut header, *mode, *uid, *gid);
                (format!("{path}/"), &[])
            }
            Entry::File {
                path,
                mode,
                uid,
                gid,
                data,
                xattrs,
            } => {
                if !xattrs.is_empty() {
                    append_pax_xattrs(&mut builder, xattrs)?;
                }
                header.set_entry_type(tar::EntryType::Regular);
                set_owner(&mut header, *mode, *uid, *gid);
                (path.clone(), data)
            }
            Entry::Symlink { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                set_owner(&mut header, 0o777, 0, 0);
                header.set_link_name(target)?;
                (path.clone(), &[])
            }
            Entry::Hardlink { path, target } => {
                header.set_entry_type(tar::EntryType::Link);
                set_owner(&mut header, 0o644, 0, 0);
                header.set_link_name(target)?;
                (path.clone(), &[])
            }
            Entry::Whiteout { path } => {
                header.set_entry_type(tar::EntryType::Regular);
                set_owner(&mut header, 0o644, 0, 0);
                (whiteout_name(path, None), &[])
            }
            Entry::Opaque { path } => {
                header.set_entry_type(tar::EntryType::Regular);
                set_owner(&mut header, 0o644, 0, 0);
                (whiteout_name(path, Some(".wh..opq")), &[])
            }
        };
        header.set_size(body.len() as u64);
        builder
            .append_data(&mut header, &path, body)
            .with_context(|| format!("adding {path} to a layer"))?;
    }
    Ok(builder.into_inner()?)
}

/// A PAX extended header carrying `xattrs` for the entry that follows.
fn append_pax_xattrs(
    builder: &mut tar::Builder<Vec<u8>>,
    xattrs: &[(String, Vec<u8>)],
) -> Result<()> {
    let mut body = Vec::new();
    for (key, value) in xattrs {
        // "LEN SCHILY.xattr.KEY=VALUE\n", LEN counting itself.
        let rest = 1 + "SCHILY.xattr.".len() + key.len() + 1 + value.len() + 1;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(format!("{len} SCHILY.xattr.{key}=").as_bytes());
        body.extend_from_slice(value);
        body.push(b'\n');
    }
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_mode(0o644);
    header.set_size(body.len() as u64);
    builder.append_data(&mut header, "PaxHeaders/xattrs", &body[..])?;
    Ok(())
}

/// The `user.*` and `security.capability` xattrs of `path` (not
/// followed): what a layer may carry and the tests compare; others
/// (SELinux labels, overlay's own) depend on the host.
fn read_xattrs(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let names = match xattr_names(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => {
            return Ok(out)
        }
        Err(e) => return Err(e).with_context(|| format!("listxattr {}", path.display())),
    };
    for name in names {
        if name.starts_with("user.") || name == "security.capability" {
            let value = xattr_value(path, &name)
                .with_context(|| format!("getxattr {name} of {}", path.display()))?;
            out.insert(name, value);
        }
    }
    Ok(out)
}

fn xattr_names(path: &Path) -> std::io::Result<Vec<String>> {
    let size = rustix::fs::llistxattr_query(path)?;
    let mut buf = vec![0u8; size];
    let n = rustix::fs::llistxattr(path, &mut buf[..])?;
    buf.truncate(n);
    Ok(buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect())
}

fn xattr_value(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let size = rustix::fs::lgetxattr_query(path, name)?;
    let mut buf = vec![0u8; size];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..])?;
    buf.truncate(n);
    Ok(buf)
}

fn set_owner(header: &mut tar::Header, mode: u32, uid: u32, gid: u32) {
    header.set_mode(mode);
    header.set_uid(u64::from(uid));
    header.set_gid(u64::from(gid));
}

/// `dir/.wh.NAME` for path `dir/NAME`, or `path/.wh.SUFFIX` for a marker.
fn whiteout_name(path: &str, marker: Option<&str>) -> String {
    if let Some(marker) = marker {
        return format!("{path}/.wh.{marker}");
    }
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.wh.{name}"),
        None => format!(".wh.{path}"),
    }
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, Digest::sha256_of(bytes), bytes.len() as i64)
}

/// An OCI layout tar: `oci-layout`, `index.json` and the blobs.
fn layout_tar(index: &[u8], blobs: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, mode: u32, body: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_mode(mode);
        header.set_size(body.len() as u64);
        header.set_entry_type(if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        builder.append_data(&mut header, name, body)?;
        Ok(())
    };
    add("blobs/", 0o755, &[])?;
    add("blobs/sha256/", 0o755, &[])?;
    let mut seen = std::collections::HashSet::new();
    for blob in blobs {
        let digest = Digest::sha256_of(blob);
        if seen.insert(digest.clone()) {
            add(&format!("blobs/sha256/{}", digest.encoded()), 0o444, blob)?;
        }
    }
    add("index.json", 0o644, index)?;
    add("oci-layout", 0o444, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(builder.into_inner()?)
}

/// `len` bytes of xorshift noise, which gzip cannot shrink.
fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_tree_applies_whiteouts_and_opaque_directories() {
        let image = layered_test_image();
        let tree = image.expected();
        let has = |p: &str| tree.0.contains_key(p);
        assert!(!has("etc/gone") && !has("etc/link") && !has("var/log"));
        assert!(has("etc/keep") && has("etc/link2") && has("opt/data/new"));
        assert!(!has("opt/data/a") && !has("opt/data/sub"), "opaque");
        assert!(!has("var/cache/blob") && has("var/cache/fresh"));
        assert_eq!(
            tree.0.get("opt/data"),
            Some(&Node::Dir {
                mode: 0o700,
                uid: 2000,
                gid: 2000
            })
        );
        let after_one = image.expected_after(1);
        assert!(after_one.0.contains_key("opt/data/a"));
    }

    #[test]
    fn archive_has_a_chain_per_layer_and_is_deterministic() {
        let image = layered_test_image();
        let a = image
            .archive("example.com/layered:latest")
            .expect("archive");
        let b = image
            .archive("example.com/layered:latest")
            .expect("archive");
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.chain_ids.len(), 3);
        assert_eq!(a.chain_ids[0], a.diff_ids[0]);
        assert_ne!(a.layers[0], a.diff_ids[0], "gzip layer");
        assert_eq!(a.layers[2], a.diff_ids[2], "plain layer");
    }
}
