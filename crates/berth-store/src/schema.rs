//! The layout of the metadata database: its tables, their keys, and the
//! schema version.
//!
//! berth keeps containerd's model (`core/metadata/buckets.go`) in redb. Where
//! containerd nests buckets (`v1/<namespace>/containers/<id>/…`), berth uses
//! flat tables whose keys *start with the namespace*, so the objects of one
//! namespace are one contiguous key range: listing a namespace, checking it
//! is empty and purging it never touch another namespace's rows.
//!
//! Update this drawing, [`SCHEMA_VERSION`] and the migration in `init` with
//! every layout change.
//!
//! ```text
//! Notes
//!   • ╘══ *x*      a table row per x (the key), in key order
//!   • (ns, …)      a tuple key whose first element is the namespace
//!   • <record>     a value encoded as [format u8][postcard body] (encoding.rs)
//!
//! Schema
//! ├──meta                               &str → u64
//! │  ├──"schema_version" : <u64>        - layout version, SCHEMA_VERSION
//! │  └──"generation" : <u64>            - bumped by every write transaction;
//! │                                       GC compares it to know whether its
//! │                                       lock-free mark is still current
//! ├──namespaces                         &str → <NamespaceRecord>
//! │  ╘══*namespace*                     - one row per namespace, even an empty one
//! │     └──labels : {key: value}        - label values are never empty
//! ├──containers                         (ns, container id) → <ContainerRecord>
//! │  ╘══(*namespace*, *container id*)
//! │     ├──labels : {key: value}        - label values are never empty
//! │     ├──image : <string>             - image name (may be empty)
//! │     ├──runtime_name : <string>      - e.g. io.containerd.runc.v2
//! │     ├──runtime_options : <Any>?     - runtime options, as received
//! │     ├──spec : <Any>?                - OCI runtime spec, as received
//! │     ├──snapshotter : <string>       - snapshotter of the rootfs snapshot
//! │     ├──snapshot_key : <string>      - key of the rootfs snapshot
//! │     ├──created_at, updated_at       - (secs i64, nanos u32) since the epoch
//! │     ├──extensions : {name: <Any>}   - client extensions
//! │     └──sandbox : <string>           - sandbox id (may be empty)
//! ├──images                             (ns, image name) → <ImageRecord>
//! │  ╘══(*namespace*, *image name*)
//! │     ├──labels : {key: value}        - label values are never empty
//! │     ├──media_type : <string>        - target descriptor: media type,
//! │     ├──digest : <string>              digest (`sha256:…`),
//! │     ├──size : <i64>                   size in bytes (> 0)
//! │     ├──annotations : {key: value}     and annotations
//! │     └──created_at, updated_at       - (secs i64, nanos u32) since the epoch
//! ├──content                            (ns, blob digest) → <ContentRecord>
//! │  ╘══(*namespace*, *digest*)         - the blobs a namespace holds; the file
//! │     │                                 is `content/blobs/sha256/<hex>`, one
//! │     │                                 for every namespace (content/mod.rs)
//! │     ├──size : <i64>                 - blob size in bytes
//! │     ├──created_at, updated_at       - (secs i64, nanos u32) since the epoch
//! │     └──labels : {key: value}        - label values are never empty
//! ├──snapshots                          (ns, snapshotter, key) → <SnapshotRecord>
//! │  ╘══(*namespace*, *snapshotter*, *key or name*)
//! │     │                               - the snapshots a namespace owns
//! │     │                                 (snapshots.rs); parent and labels
//! │     │                                 must stay first: GC reads them
//! │     ├──parent : <string>            - the namespaced parent key, or empty
//! │     ├──labels : {key: value}        - e.g. containerd.io/gc.ref.*
//! │     ├──backend_key : <string>       - the key in the snapshotter backend,
//! │     │                                 `<ns>/<unique>/<key>`
//! │     ├──kind : <string>              - Active, View or Committed
//! │     └──created, updated             - (secs i64, nanos u32) since the epoch
//! ├──leases                             (ns, lease id) → <LeaseRecord>
//! │  ╘══(*namespace*, *lease id*)
//! │     ├──created_at                   - (secs i64, nanos u32) since the epoch
//! │     └──labels : {key: value}        - e.g. containerd.io/gc.expire
//! └──lease_resources                    (ns, lease id, type, id) → ()
//!    ╘══(*namespace*, *lease id*, *type*, *resource id*)
//!                                       - what a lease holds: type `content`
//!                                         (id = digest), `ingests` (id = ref),
//!                                         `snapshots/<snapshotter>` (id = key)
//! ```
//!
//! Rules every table follows:
//! - A namespaced row exists only while its namespace's row in `namespaces`
//!   does; creating an object in an unknown namespace creates the namespace
//!   (as containerd does).
//! - Deleting a namespace is refused while `images`, `content`, `containers`
//!   or `snapshots` hold rows for it (containerd's rule); its `leases` rows
//!   go with it. A new table must join one of these two lists in
//!   `namespaces.rs`.

use crate::errors::DbResult;
use berth_core::{Error, ErrorKind, Result};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use std::ops::Range;

/// The layout version this build reads and writes (stored in `meta`).
pub const SCHEMA_VERSION: u64 = 1;

/// The `meta` row holding the layout version.
const SCHEMA_VERSION_KEY: &str = "schema_version";

/// The `meta` row counting write transactions.
const GENERATION_KEY: &str = "generation";

/// Database-wide facts, such as the schema version.
pub(crate) const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// Namespaces and their labels, by name.
pub(crate) const NAMESPACES: TableDefinition<'static, &str, &[u8]> =
    TableDefinition::new("namespaces");

/// A key of a table holding one kind of object per namespace: (namespace, name).
pub(crate) type NsKey = (&'static str, &'static str);

/// Container records, by (namespace, id).
pub(crate) const CONTAINERS: TableDefinition<'static, NsKey, &[u8]> =
    TableDefinition::new("containers");

/// Image records, by (namespace, name).
pub(crate) const IMAGES: TableDefinition<'static, NsKey, &[u8]> = TableDefinition::new("images");

/// Content blobs a namespace holds, by (namespace, digest).
pub(crate) const CONTENT: TableDefinition<'static, NsKey, &[u8]> = TableDefinition::new("content");

/// Leases, by (namespace, lease id).
pub(crate) const LEASES: TableDefinition<'static, NsKey, &[u8]> = TableDefinition::new("leases");

/// The resources each lease holds, by (namespace, lease id, type, id).
pub(crate) const LEASE_RESOURCES: TableDefinition<'static, (&str, &str, &str, &str), ()> =
    TableDefinition::new("lease_resources");

/// Snapshots a namespace owns, by (namespace, snapshotter, key). Reserved.
pub(crate) const SNAPSHOTS: TableDefinition<'static, (&str, &str, &str), &[u8]> =
    TableDefinition::new("snapshots");

/// Creates every table and checks (or records) the schema version, in
/// `tx`. Opening every table once here means later read transactions never
/// meet a missing table.
pub(crate) fn init(tx: &WriteTransaction) -> Result<()> {
    let mut meta = tx.open_table(META).db()?;
    let stored = meta.get(SCHEMA_VERSION_KEY).db()?.map(|v| v.value());
    match stored {
        None => {
            meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION).db()?;
        }
        Some(SCHEMA_VERSION) => {}
        // Migrations from older layouts go here once there is more than one.
        Some(v) => {
            return Err(Error::classed(
                ErrorKind::FailedPrecondition,
                format!(
                    "metadata database schema version {v} is not supported \
                     (this build uses version {SCHEMA_VERSION})"
                ),
            ))
        }
    }
    tx.open_table(NAMESPACES).db()?;
    tx.open_table(CONTAINERS).db()?;
    tx.open_table(IMAGES).db()?;
    tx.open_table(CONTENT).db()?;
    tx.open_table(LEASES).db()?;
    tx.open_table(LEASE_RESOURCES).db()?;
    tx.open_table(SNAPSHOTS).db()?;
    Ok(())
}

/// Bumps the database generation inside write transaction `tx`.
pub(crate) fn bump_generation(tx: &WriteTransaction) -> Result<()> {
    let mut meta = tx.open_table(META).db()?;
    let next = generation(&meta)?.wrapping_add(1);
    meta.insert(GENERATION_KEY, next).db()?;
    Ok(())
}

/// The database generation as `meta` holds it (0 before the first write).
pub(crate) fn generation(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64> {
    Ok(meta
        .get(GENERATION_KEY)
        .db()?
        .map(|v| v.value())
        .unwrap_or(0))
}

/// The first string greater than every string that has `ns` as a whole
/// first element: `ns` followed by NUL. Used as an exclusive upper bound.
pub(crate) fn after(ns: &str) -> String {
    format!("{ns}\0")
}

/// The key range of namespace `ns` in a table keyed by [`NsKey`]; `end` is
/// [`after`]`(ns)`.
pub(crate) fn ns_range<'a>(ns: &'a str, end: &'a str) -> Range<(&'a str, &'a str)> {
    (ns, "")..(end, "")
}

/// Whether a table keyed by [`NsKey`] has any row in namespace `ns`.
pub(crate) fn has_rows(table: &impl ReadableTable<NsKey, &'static [u8]>, ns: &str) -> Result<bool> {
    let end = after(ns);
    let mut rows = table.range(ns_range(ns, &end)).db()?;
    Ok(rows.next().transpose().db()?.is_some())
}

/// The snapshotters that hold at least one snapshot of namespace `ns`, in
/// order. Jumps from snapshotter to snapshotter instead of reading every row.
pub(crate) fn snapshotters_in(
    table: &impl ReadableTable<(&'static str, &'static str, &'static str), &'static [u8]>,
    ns: &str,
) -> Result<Vec<String>> {
    let end = after(ns);
    let mut found: Vec<String> = Vec::new();
    loop {
        let from = found.last().map(|s| after(s)).unwrap_or_default();
        let mut rows = table
            .range((ns, from.as_str(), "")..(end.as_str(), "", ""))
            .db()?;
        match rows.next().transpose().db()? {
            Some((key, _)) => found.push(key.value().1.to_owned()),
            None => return Ok(found),
        }
    }
}
