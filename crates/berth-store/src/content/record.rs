//! Which namespace holds which blob: rows of the metadata database's
//! `content` table, keyed by (namespace, digest), in the shape of
//! containerd's `core/metadata/content.go` (size, created/updated times,
//! labels), and the lease entries that go with content writes.

use crate::encoding::{decode, encode, Timestamp};
use crate::errors::DbResult;
use crate::leases;
use crate::model::LeaseResource;
use crate::namespaces;
use crate::schema::{self, CONTENT, LEASE_RESOURCES, NAMESPACES};
use crate::MetadataStore;
use berth_core::content::Info;
use berth_core::filters::Filter;
use berth_core::{labels, Digest, Error, ErrorKind, Result};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

/// The lease resource type of committed content (id = digest).
const RESOURCE_CONTENT: &str = "content";
/// The lease resource type of an ingest (id = ref).
const RESOURCE_INGESTS: &str = "ingests";

/// A blob as one namespace holds it: the namespace and digest are the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ContentRecord {
    size: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
    labels: BTreeMap<String, String>,
}

impl ContentRecord {
    fn into_info(self, digest: Digest) -> Info {
        Info {
            digest,
            size: self.size,
            created_at: self.created_at.into(),
            updated_at: self.updated_at.into(),
            labels: self.labels.into_iter().collect::<HashMap<_, _>>(),
        }
    }
}

/// The labels of a `content` row's value (for garbage collection).
pub(crate) fn labels_of(value: &[u8]) -> Result<BTreeMap<String, String>> {
    Ok(decode::<ContentRecord>(value)?.labels)
}

/// A `content` row's value holding `size` and `labels`, for tests that
/// write rows directly.
#[cfg(test)]
pub(crate) fn record_bytes(size: i64, labels: BTreeMap<String, String>) -> Vec<u8> {
    let now = Timestamp::from(SystemTime::now());
    let record = ContentRecord {
        size,
        created_at: now,
        updated_at: now,
        labels,
    };
    encode(&record).expect("a content record encodes")
}

/// What opening a writer found in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenCheck {
    /// The namespace holds the expected digest already (and the lease, if
    /// any, now holds it too).
    Exists,
    /// Go ahead (the lease, if any, now holds the ingest).
    Proceed,
}

/// `content digest D: not found`, containerd's words.
pub(crate) fn not_found(digest: &Digest) -> Error {
    Error::not_found(format_args!("content digest {digest}"))
}

impl MetadataStore {
    /// The info of blob `digest` as namespace `ns` holds it; `NotFound`
    /// (`content digest D: not found`) if `ns` does not hold it.
    pub fn content_info(&self, ns: &str, digest: &Digest) -> Result<Info> {
        self.view(|tx| get(tx, ns, digest)?.ok_or_else(|| not_found(digest)))
    }

    /// The blobs namespace `ns` holds that pass `filter` (fields `digest`,
    /// `labels.KEY`), in digest order.
    pub fn list_content(&self, ns: &str, filter: &Filter) -> Result<Vec<Info>> {
        self.view(|tx| {
            let table = tx.open_table(CONTENT).db()?;
            let end = schema::after(ns);
            let mut out = Vec::new();
            for row in table.range(schema::ns_range(ns, &end)).db()? {
                let (key, value) = row.db()?;
                let Ok(digest) = Digest::parse(key.value().1) else {
                    continue;
                };
                let info = decode::<ContentRecord>(value.value())?.into_info(digest);
                if filter.matches(&info) {
                    out.push(info);
                }
            }
            Ok(out)
        })
    }

    /// Updates the labels of a blob namespace `ns` holds, by field paths
    /// (containerd's rules): none or `labels` replaces them all, `labels.KEY`
    /// sets one (an empty value removes it); anything else is
    /// `InvalidArgument`. Sets updated-at; returns the new info.
    pub fn update_content(&self, ns: &str, info: Info, paths: &[String]) -> Result<Info> {
        self.update(|tx| {
            let mut table = tx.open_table(CONTENT).db()?;
            let key = (ns, info.digest.as_str());
            let mut record = match table.get(key).db()? {
                Some(row) => decode::<ContentRecord>(row.value())?,
                None => return Err(not_found(&info.digest)),
            };
            apply_paths(&mut record.labels, &info, paths)?;
            record.updated_at = SystemTime::now().into();
            table.insert(key, encode(&record)?.as_slice()).db()?;
            Ok(record.into_info(info.digest.clone()))
        })
    }

    /// Removes blob `digest` from namespace `ns` (and from `lease`, which
    /// held it for this namespace); `NotFound` if `ns` does not hold it. The
    /// file stays: `Content::delete` removes it once nobody holds it.
    pub fn delete_content(&self, ns: &str, digest: &Digest, lease: Option<&str>) -> Result<()> {
        self.update(|tx| {
            let mut table = tx.open_table(CONTENT).db()?;
            if table.remove((ns, digest.as_str())).db()?.is_none() {
                return Err(not_found(digest));
            }
            if let Some(lease) = lease {
                remove_resource(tx, ns, lease, RESOURCE_CONTENT, digest.as_str())?;
            }
            // What the blob referenced may now be garbage.
            self.mark_dirty();
            Ok(())
        })
    }

    /// The namespaces holding blob `digest`, in name order.
    pub fn content_owners(&self, digest: &Digest) -> Result<Vec<String>> {
        self.view(|tx| owners(tx, digest))
    }

    /// Whether namespace `ns` holds blob `digest`, recording the lease's
    /// hold on it in the same transaction that confirms it (so no
    /// collection can take it between the answer and the caller's use).
    /// Without a lease, or for a blob that is absent, this is a read.
    pub(crate) fn content_hold(
        &self,
        ns: &str,
        lease: Option<&str>,
        digest: &Digest,
    ) -> Result<bool> {
        let held = self.view(|tx| Ok(get(tx, ns, digest)?.is_some()))?;
        let Some(lease) = lease.filter(|_| held) else {
            // Absent (the common case) costs a read, not a commit.
            return Ok(held);
        };
        self.update(|tx| {
            let table = tx.open_table(CONTENT).db()?;
            if table.get((ns, digest.as_str())).db()?.is_none() {
                return Ok(false);
            }
            add_resource(tx, ns, lease, RESOURCE_CONTENT, digest.as_str())?;
            Ok(true)
        })
    }

    /// Checks, before a writer opens, whether namespace `ns` holds
    /// `expected` already, and records the lease's hold: on the blob if it
    /// exists (so the caller's lease protects what it was about to write),
    /// on the ingest otherwise. Without a lease this is a read.
    pub(crate) fn content_open_check(
        &self,
        ns: &str,
        lease: Option<&str>,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<OpenCheck> {
        let Some(lease) = lease else {
            return self.view(|tx| match expected {
                Some(d) if get(tx, ns, d)?.is_some() => Ok(OpenCheck::Exists),
                _ => Ok(OpenCheck::Proceed),
            });
        };
        self.update(|tx| {
            let table = tx.open_table(CONTENT).db()?;
            if let Some(d) = expected {
                if table.get((ns, d.as_str())).db()?.is_some() {
                    add_resource(tx, ns, lease, RESOURCE_CONTENT, d.as_str())?;
                    return Ok(OpenCheck::Exists);
                }
            }
            add_resource(tx, ns, lease, RESOURCE_INGESTS, reference)?;
            Ok(OpenCheck::Proceed)
        })
    }

    /// Records a commit: namespace `ns` (created if unknown) holds blob
    /// `digest`; the lease, if any, trades its hold on the ingest for one on
    /// the blob. Returns `false` — with the lease entries still recorded, as
    /// containerd does — when the namespace held the blob already.
    pub(crate) fn content_commit(
        &self,
        ns: &str,
        lease: Option<&str>,
        reference: &str,
        digest: &Digest,
        size: i64,
        labels: &HashMap<String, String>,
    ) -> Result<bool> {
        self.update(|tx| {
            namespaces::ensure(&mut tx.open_table(NAMESPACES).db()?, ns)?;
            let mut table = tx.open_table(CONTENT).db()?;
            let key = (ns, digest.as_str());
            let created = table.get(key).db()?.is_none();
            if created {
                let now = Timestamp::from(SystemTime::now());
                let record = ContentRecord {
                    size,
                    created_at: now,
                    updated_at: now,
                    labels: labels
                        .iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                };
                table.insert(key, encode(&record)?.as_slice()).db()?;
            }
            if let Some(lease) = lease {
                remove_resource(tx, ns, lease, RESOURCE_INGESTS, reference)?;
                add_resource(tx, ns, lease, RESOURCE_CONTENT, digest.as_str())?;
            }
            Ok(created)
        })
    }

    /// Drops the lease's hold on an abandoned ingest.
    pub(crate) fn content_abort(&self, ns: &str, lease: &str, reference: &str) -> Result<()> {
        self.update(|tx| remove_resource(tx, ns, lease, RESOURCE_INGESTS, reference))
    }

    /// For each digest, whether no namespace holds it, in one read.
    pub(crate) fn content_unowned(&self, digests: &[Digest]) -> Result<Vec<bool>> {
        self.view(|tx| {
            digests
                .iter()
                .map(|d| owners(tx, d).map(|o| o.is_empty()))
                .collect()
        })
    }
}

fn get(tx: &ReadTransaction, ns: &str, digest: &Digest) -> Result<Option<Info>> {
    let table = tx.open_table(CONTENT).db()?;
    let row = table.get((ns, digest.as_str())).db()?;
    row.map(|r| Ok(decode::<ContentRecord>(r.value())?.into_info(digest.clone())))
        .transpose()
}

fn owners(tx: &ReadTransaction, digest: &Digest) -> Result<Vec<String>> {
    let namespaces = tx.open_table(NAMESPACES).db()?;
    let content = tx.open_table(CONTENT).db()?;
    let mut out = Vec::new();
    for row in namespaces.iter().db()? {
        let (ns, _) = row.db()?;
        let ns = ns.value();
        if content.get((ns, digest.as_str())).db()?.is_some() {
            out.push(ns.to_owned());
        }
    }
    Ok(out)
}

fn add_resource(tx: &WriteTransaction, ns: &str, lease: &str, kind: &str, id: &str) -> Result<()> {
    let resource = LeaseResource {
        id: id.to_owned(),
        kind: kind.to_owned(),
    };
    leases::add_resource(tx, ns, lease, &resource)
}

/// Removes one lease entry, if present (containerd's `removeContentLease`
/// and `removeIngestLease` ignore a lease that is gone).
fn remove_resource(
    tx: &WriteTransaction,
    ns: &str,
    lease: &str,
    kind: &str,
    id: &str,
) -> Result<()> {
    let mut resources = tx.open_table(LEASE_RESOURCES).db()?;
    resources.remove((ns, lease, kind, id)).db()?;
    Ok(())
}

/// Applies an update's field paths to a blob's labels (containerd's
/// `contentStore.Update`), validating the result.
fn apply_paths(labels: &mut BTreeMap<String, String>, from: &Info, paths: &[String]) -> Result<()> {
    let replace_all = |labels: &mut BTreeMap<String, String>| {
        *labels = from
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    };
    if paths.is_empty() {
        replace_all(labels);
    }
    for path in paths {
        if let Some(key) = path.strip_prefix("labels.") {
            let value = from.labels.get(key).cloned().unwrap_or_default();
            labels.insert(key.to_owned(), value);
        } else if path == "labels" {
            replace_all(labels);
        } else {
            return Err(Error::classed(
                ErrorKind::InvalidArgument,
                format_args!(
                    "cannot update {path:?} field on content info {:?}",
                    from.digest.as_str()
                ),
            ));
        }
    }
    labels.retain(|_, v| !v.is_empty());
    for (k, v) in labels.iter() {
        labels::validate(k, v).map_err(|e| e.context("info.Labels"))?;
    }
    Ok(())
}
