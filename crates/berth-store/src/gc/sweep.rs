//! Sweeping: removing the rows marking did not reach, inside the one write
//! transaction that also checked the mark is current.
//!
//! Only metadata rows go here. Blob files are removed afterwards, outside
//! the transaction, by the content store (`remove_if_unowned`), for the
//! digests this sweep reports no namespace holds any more; snapshots are
//! reported for their snapshotter to remove.

use super::graph::{Graph, Kind};
use super::{Removed, RemovedSnapshot};
use crate::errors::DbResult;
use crate::schema::{self, CONTENT, IMAGES, LEASES, LEASE_RESOURCES, NAMESPACES, SNAPSHOTS};
use berth_core::{Digest, Result};
use redb::{ReadableTable, WriteTransaction};
use std::collections::BTreeSet;

/// Removes every removable node of `graph` that `marked` leaves out.
pub(crate) fn sweep(tx: &WriteTransaction, graph: &Graph, marked: &[bool]) -> Result<Removed> {
    let mut removed = Removed::default();
    let garbage = graph
        .nodes
        .iter()
        .zip(marked)
        .filter(|(node, marked)| node.removable && !**marked)
        .map(|(node, _)| node);
    let mut content = tx.open_table(CONTENT).db()?;
    let mut snapshots = tx.open_table(SNAPSHOTS).db()?;
    let mut images = tx.open_table(IMAGES).db()?;
    let mut leases = tx.open_table(LEASES).db()?;
    let mut resources = tx.open_table(LEASE_RESOURCES).db()?;
    for node in garbage {
        let (ns, key) = (node.namespace.as_str(), node.key.as_str());
        match node.kind {
            Kind::Content => {
                content.remove((ns, key)).db()?;
                removed.content.push((ns.to_owned(), key.to_owned()));
            }
            Kind::Snapshot => {
                let Some((snapshotter, name)) = key.split_once('/') else {
                    continue;
                };
                snapshots.remove((ns, snapshotter, name)).db()?;
                removed.snapshots.push(RemovedSnapshot {
                    namespace: ns.to_owned(),
                    snapshotter: snapshotter.to_owned(),
                    key: name.to_owned(),
                });
            }
            Kind::Image => {
                images.remove((ns, key)).db()?;
                removed.images.push((ns.to_owned(), key.to_owned()));
            }
            Kind::Lease => {
                leases.remove((ns, key)).db()?;
                let end = schema::after(key);
                resources
                    .retain_in((ns, key, "", "")..(ns, end.as_str(), "", ""), |_, _| false)
                    .db()?;
                removed.leases.push((ns.to_owned(), key.to_owned()));
            }
            // Containers are always roots and never removable.
            Kind::Container => {}
        }
    }
    removed.unowned_blobs = unowned(tx, &content, &removed.content)?;
    Ok(removed)
}

/// The digests among `removed` that no namespace holds any more, so their
/// blob files can go.
fn unowned(
    tx: &WriteTransaction,
    content: &impl ReadableTable<schema::NsKey, &'static [u8]>,
    removed: &[(String, String)],
) -> Result<Vec<Digest>> {
    let candidates: BTreeSet<&str> = removed.iter().map(|(_, d)| d.as_str()).collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut namespaces = Vec::new();
    for row in tx.open_table(NAMESPACES).db()?.iter().db()? {
        namespaces.push(row.db()?.0.value().to_owned());
    }
    let mut out = Vec::new();
    for digest in candidates {
        let mut held = false;
        for ns in &namespaces {
            if content.get((ns.as_str(), digest)).db()?.is_some() {
                held = true;
                break;
            }
        }
        if held {
            continue;
        }
        match Digest::parse(digest) {
            Ok(digest) => out.push(digest),
            Err(err) => tracing::warn!(%digest, error = %err, "content row with a bad digest"),
        }
    }
    Ok(out)
}
