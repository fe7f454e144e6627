//! Reading the metadata tables into a [`Graph`]: containerd's `scanRoots`
//! and `references` (`core/metadata/gc.go`) done in one pass over each
//! table.
//!
//! The same scan runs in a read transaction (the usual, lock-free mark) and
//! in the sweep's write transaction (the fallback when writers keep racing
//! the mark), so it is written against [`Source`], which both implement.

use super::expire::expired;
use super::graph::{Graph, Id, Kind};
use super::labels::{edge, Edge, LABEL_EXPIRE, LABEL_FLAT};
use crate::encoding::{decode, ContainerRecord, LeaseRecord};
use crate::errors::DbResult;
use crate::images::ImageRecord;
use crate::schema::{CONTAINERS, CONTENT, IMAGES, LEASES, LEASE_RESOURCES, SNAPSHOTS};
use berth_core::Result;
use redb::{
    Key, ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, Value,
    WriteTransaction,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

/// A transaction the scan can read tables from.
pub(crate) trait Source {
    /// The table type the transaction opens.
    type Table<'t, K: Key + 'static, V: Value + 'static>: ReadableTable<K, V>
    where
        Self: 't;

    /// Opens a table for reading.
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<'_, K, V>,
    ) -> Result<Self::Table<'_, K, V>>;
}

impl Source for ReadTransaction {
    type Table<'t, K: Key + 'static, V: Value + 'static> = ReadOnlyTable<K, V>;

    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<'_, K, V>,
    ) -> Result<ReadOnlyTable<K, V>> {
        self.open_table(definition).db()
    }
}

impl Source for WriteTransaction {
    type Table<'t, K: Key + 'static, V: Value + 'static> = Table<'t, K, V>;

    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<'_, K, V>,
    ) -> Result<Table<'_, K, V>> {
        self.open_table(definition).db()
    }
}

/// What garbage collection reads from a snapshot row: the snapshot record
/// (owned by the snapshots code) must begin with these two fields, in this
/// order, so the collector can decode the prefix it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub(crate) struct SnapshotRefs {
    /// The parent's key (same snapshotter), empty for none.
    pub(crate) parent: String,
    /// The snapshot's labels.
    pub(crate) labels: BTreeMap<String, String>,
}

/// Builds the graph of everything `tx` holds, as of `now` (for expiry).
pub(crate) fn scan(tx: &impl Source, now: SystemTime) -> Result<Graph> {
    let mut graph = Graph::default();
    let live = leases(tx, now, &mut graph)?;
    lease_resources(tx, &live, &mut graph)?;
    images(tx, now, &mut graph)?;
    content(tx, &mut graph)?;
    containers(tx, &mut graph)?;
    snapshots(tx, &mut graph)?;
    Ok(graph)
}

/// Leases: a live lease is a root; an expired one is only a row to remove.
/// Returns the live leases with whether each is flat.
fn leases(
    tx: &impl Source,
    now: SystemTime,
    graph: &mut Graph,
) -> Result<HashMap<(String, String), bool>> {
    let mut live = HashMap::new();
    for row in tx.table(LEASES)?.iter().db()? {
        let (key, value) = row.db()?;
        let (ns, id) = key.value();
        let lease = decode::<LeaseRecord>(value.value())?.into_lease(id);
        let node = graph.row(Kind::Lease, ns, id);
        let expiry = lease.labels.get(LABEL_EXPIRE);
        if expiry.is_some_and(|at| expired(at, now)) {
            tracing::debug!(namespace = ns, lease = id, "expired lease");
            continue;
        }
        graph.root(node, false);
        let flat = lease.labels.contains_key(LABEL_FLAT);
        live.insert((ns.to_owned(), id.to_owned()), flat);
    }
    Ok(live)
}

/// What live leases hold becomes a root, flat if the lease is.
fn lease_resources(
    tx: &impl Source,
    live: &HashMap<(String, String), bool>,
    graph: &mut Graph,
) -> Result<()> {
    let mut lease: Option<((String, String), Option<bool>)> = None;
    for row in tx.table(LEASE_RESOURCES)?.iter().db()? {
        let (key, _) = row.db()?;
        let (ns, id, kind, resource) = key.value();
        // Rows come grouped by lease: look each lease up once.
        let current = match &lease {
            Some(((n, i), flat)) if n == ns && i == id => *flat,
            _ => {
                let flat = live.get(&(ns.to_owned(), id.to_owned())).copied();
                lease = Some(((ns.to_owned(), id.to_owned()), flat));
                flat
            }
        };
        let Some(flat) = current else { continue };
        let node = match kind {
            "content" => graph.node(Kind::Content, ns, resource),
            "images" => graph.node(Kind::Image, ns, resource),
            _ => match kind.strip_prefix("snapshots/") {
                Some(snapshotter) => {
                    graph.node(Kind::Snapshot, ns, &format!("{snapshotter}/{resource}"))
                }
                // Ingests are files of the content store, not rows: report
                // which ones stay held, for the daemon's ingest cleanup.
                None if kind == "ingests" => {
                    graph
                        .leased_ingests
                        .push((ns.to_owned(), resource.to_owned()));
                    continue;
                }
                None => continue,
            },
        };
        graph.root(node, flat);
    }
    Ok(())
}

/// Images: roots unless expired; each references its target.
fn images(tx: &impl Source, now: SystemTime, graph: &mut Graph) -> Result<()> {
    for row in tx.table(IMAGES)?.iter().db()? {
        let (key, value) = row.db()?;
        let (ns, name) = key.value();
        let record = decode::<ImageRecord>(value.value())?;
        let node = graph.row(Kind::Image, ns, name);
        let target = graph.node(Kind::Content, ns, &record.digest);
        graph.structural(node, target);
        // containerd ignores gc.root on images: they are roots already.
        labels(graph, ns, node, &record.labels, false);
        match record.labels.get(LABEL_EXPIRE) {
            Some(at) if expired(at, now) => {}
            _ => graph.root(node, false),
        }
    }
    Ok(())
}

/// Content: roots when labelled `gc.root`; label references.
fn content(tx: &impl Source, graph: &mut Graph) -> Result<()> {
    for row in tx.table(CONTENT)?.iter().db()? {
        let (key, value) = row.db()?;
        let (ns, digest) = key.value();
        let node = graph.row(Kind::Content, ns, digest);
        let blob_labels = content_labels(value.value())?;
        labels(graph, ns, node, &blob_labels, true);
    }
    Ok(())
}

/// Containers: always roots; they reference their rootfs snapshot.
fn containers(tx: &impl Source, graph: &mut Graph) -> Result<()> {
    for row in tx.table(CONTAINERS)?.iter().db()? {
        let (key, value) = row.db()?;
        let (ns, id) = key.value();
        let container = decode::<ContainerRecord>(value.value())?.into_container(id);
        let node = graph.node(Kind::Container, ns, id);
        graph.root(node, false);
        if !container.snapshotter.is_empty() {
            let key = format!("{}/{}", container.snapshotter, container.snapshot_key);
            let snapshot = graph.node(Kind::Snapshot, ns, &key);
            graph.reference(node, snapshot);
        }
        labels(graph, ns, node, &container.labels, false);
    }
    Ok(())
}

/// Snapshots: roots when labelled `gc.root`; their parent; label references.
fn snapshots(tx: &impl Source, graph: &mut Graph) -> Result<()> {
    for row in tx.table(SNAPSHOTS)?.iter().db()? {
        let (key, value) = row.db()?;
        let (ns, snapshotter, name) = key.value();
        let refs = decode::<SnapshotRefs>(value.value())?;
        let node = graph.row(Kind::Snapshot, ns, &format!("{snapshotter}/{name}"));
        if !refs.parent.is_empty() {
            let parent = graph.node(
                Kind::Snapshot,
                ns,
                &format!("{snapshotter}/{}", refs.parent),
            );
            graph.structural(node, parent);
        }
        labels(graph, ns, node, &refs.labels, true);
    }
    Ok(())
}

/// Adds the edges `labels` of object `node` stand for; `gc.root` counts
/// only where containerd honours it (`root_allowed`).
fn labels<'a, I>(graph: &mut Graph, ns: &str, node: Id, labels: I, root_allowed: bool)
where
    I: IntoIterator<Item = (&'a String, &'a String)>,
{
    for (key, value) in labels {
        match edge(key, value) {
            Some(Edge::Root) if root_allowed => graph.root(node, false),
            Some(Edge::Ref(kind, target)) => {
                let to = graph.node(kind, ns, &target);
                graph.reference(node, to);
            }
            Some(Edge::BackRef(kind, target)) => {
                let from = graph.node(kind, ns, &target);
                graph.reference(from, node);
            }
            _ => {}
        }
    }
}

/// The labels of a `content` row.
fn content_labels(value: &[u8]) -> Result<BTreeMap<String, String>> {
    crate::content::labels_of(value)
}
