//! Leases, keyed by (namespace, id): containerd's `leaseManager`
//! (`core/metadata/leases.go`): the lease records and the resources each
//! holds. Garbage collection (`gc.rs`) treats a live lease as a root for
//! everything it holds and removes expired leases.

use crate::encoding::{decode, encode, LeaseRecord};
use crate::errors::DbResult;
use crate::model::{Lease, LeaseResource};
use crate::namespaces;
use crate::schema::{self, LEASES, LEASE_RESOURCES, NAMESPACES};
use crate::validation::namespace_required;
use crate::MetadataStore;
use berth_core::{filters::Filter, labels, Digest, Error, Result};
use redb::{ReadableTable, WriteTransaction};
use std::time::SystemTime;

impl MetadataStore {
    /// Creates a lease (creating the namespace implicitly, as containerd
    /// does). `InvalidArgument` for an empty id or bad labels, `AlreadyExists`
    /// (`lease "x": already exists`) if the id is taken.
    ///
    /// Like containerd's lease manager, any non-empty id is accepted: the Go
    /// client's random ids (`<nanos>-<base64url>`) may end in `-` or hold
    /// `_-` runs that the identifier rule would refuse.
    pub fn create_lease(&self, ns: &str, mut lease: Lease) -> Result<Lease> {
        namespace_required(ns)?;
        if lease.id.is_empty() {
            return Err(Error::invalid_argument(
                "lease id must be provided: invalid argument",
            ));
        }
        labels::validate_all(&lease.labels)?;
        lease.created_at = SystemTime::now();
        lease.labels.retain(|_, v| !v.is_empty());
        let bytes = encode(&LeaseRecord::from(&lease))?;
        self.update(|tx| {
            namespaces::ensure(&mut tx.open_table(NAMESPACES).db()?, ns)?;
            let mut table = tx.open_table(LEASES).db()?;
            if table.get((ns, lease.id.as_str())).db()?.is_some() {
                return Err(Error::already_exists(format_args!("lease {:?}", lease.id)));
            }
            table
                .insert((ns, lease.id.as_str()), bytes.as_slice())
                .db()?;
            Ok(())
        })?;
        Ok(lease)
    }

    /// Deletes a lease and its resource list (the resources themselves stay
    /// until garbage collection finds nothing else holds them); `NotFound`
    /// (`lease "x": not found`) if absent.
    pub fn delete_lease(&self, ns: &str, id: &str) -> Result<()> {
        namespace_required(ns)?;
        self.update(|tx| {
            let mut table = tx.open_table(LEASES).db()?;
            let removed = table.remove((ns, id)).db()?.is_some();
            if !removed {
                return Err(Error::not_found(format_args!("lease {id:?}")));
            }
            let mut resources = tx.open_table(LEASE_RESOURCES).db()?;
            let end = schema::after(id);
            resources
                .retain_in((ns, id, "", "")..(ns, end.as_str(), "", ""), |_, _| false)
                .db()?;
            self.mark_dirty();
            Ok(())
        })
    }

    /// Adds a resource to a lease; `NotFound` if the lease does not exist,
    /// `InvalidArgument` for a malformed resource, `NotImplemented` for a
    /// type containerd does not lease.
    pub fn add_lease_resource(
        &self,
        ns: &str,
        lease: &str,
        resource: &LeaseResource,
    ) -> Result<()> {
        namespace_required(ns)?;
        self.update(|tx| add_resource(tx, ns, lease, resource))
    }

    /// Removes a resource from a lease; `NotFound` if the lease does not
    /// exist, then the errors of [`MetadataStore::add_lease_resource`].
    pub fn delete_lease_resource(
        &self,
        ns: &str,
        lease: &str,
        resource: &LeaseResource,
    ) -> Result<()> {
        namespace_required(ns)?;
        self.update(|tx| {
            lease_exists(tx, ns, lease)?;
            check_resource(resource)?;
            let mut resources = tx.open_table(LEASE_RESOURCES).db()?;
            resources
                .remove((ns, lease, resource.kind.as_str(), resource.id.as_str()))
                .db()?;
            self.mark_dirty();
            Ok(())
        })
    }

    /// The resources a lease holds, sorted by (type, id); `NotFound` if the
    /// lease does not exist.
    pub fn list_lease_resources(&self, ns: &str, lease: &str) -> Result<Vec<LeaseResource>> {
        namespace_required(ns)?;
        self.view(|tx| {
            let leases = tx.open_table(LEASES).db()?;
            if leases.get((ns, lease)).db()?.is_none() {
                return Err(Error::not_found(format_args!("lease {lease:?}")));
            }
            let resources = tx.open_table(LEASE_RESOURCES).db()?;
            let end = schema::after(lease);
            let mut out = Vec::new();
            for row in resources
                .range((ns, lease, "", "")..(ns, end.as_str(), "", ""))
                .db()?
            {
                let (key, _) = row.db()?;
                let (_, _, kind, id) = key.value();
                out.push(LeaseResource {
                    id: id.to_owned(),
                    kind: kind.to_owned(),
                });
            }
            Ok(out)
        })
    }

    /// Lists the leases of a namespace that pass `filter` (fields `id`,
    /// `labels.KEY`), sorted by id.
    pub fn list_leases(&self, ns: &str, filter: &Filter) -> Result<Vec<Lease>> {
        namespace_required(ns)?;
        self.view(|tx| {
            let table = tx.open_table(LEASES).db()?;
            let end = schema::after(ns);
            let mut out = Vec::new();
            for row in table.range(schema::ns_range(ns, &end)).db()? {
                let (key, value) = row.db()?;
                let lease = decode::<LeaseRecord>(value.value())?.into_lease(key.value().1);
                if filter.matches(&lease) {
                    out.push(lease);
                }
            }
            Ok(out)
        })
    }
}

/// The lease resource type of images (id = image name): containerd leases
/// an image that carries an expiry label.
pub(crate) const RESOURCE_IMAGES: &str = "images";

/// Records `resource` under `lease` inside an open write transaction, so a
/// content commit (or snapshot prepare) and its lease entry land together.
/// `NotFound` if the lease does not exist; then [`check_resource`].
pub(crate) fn add_resource(
    tx: &WriteTransaction,
    ns: &str,
    lease: &str,
    resource: &LeaseResource,
) -> Result<()> {
    lease_exists(tx, ns, lease)?;
    check_resource(resource)?;
    let mut resources = tx.open_table(LEASE_RESOURCES).db()?;
    resources
        .insert(
            (ns, lease, resource.kind.as_str(), resource.id.as_str()),
            (),
        )
        .db()?;
    Ok(())
}

/// Checks a resource's type and id as containerd 1.6 does: `content` and
/// `ingests` take no suffix and content ids must be digests, `snapshots`
/// must name its snapshotter (`snapshots/<name>`) — otherwise
/// `InvalidArgument` — and any other type is `NotImplemented` ("not
/// supported yet"). `images` is known too, as containerd 2 leases images.
fn check_resource(resource: &LeaseResource) -> Result<()> {
    let kind = resource.kind.as_str();
    let (first, rest) = match kind.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (kind, None),
    };
    match first {
        "content" | "ingests" | RESOURCE_IMAGES if rest.is_some() => Err(Error::invalid_argument(
            format!("invalid resource type {kind}: invalid argument"),
        )),
        "content" => Digest::parse(&resource.id).map(drop).map_err(|err| {
            Error::invalid_argument(format!(
                "invalid content resource id {}: {err}: invalid argument",
                resource.id
            ))
        }),
        "snapshots" if rest.is_none_or(|name| name.is_empty() || name.contains('/')) => {
            Err(Error::invalid_argument(format!(
                "invalid snapshot resource type {kind}: invalid argument"
            )))
        }
        "ingests" | "snapshots" | RESOURCE_IMAGES if resource.id.is_empty() => Err(
            Error::invalid_argument("resource id must not be empty: invalid argument"),
        ),
        "ingests" | "snapshots" | RESOURCE_IMAGES => Ok(()),
        _ => Err(Error::not_implemented(format!(
            "resource type {kind} not supported yet: not implemented"
        ))),
    }
}

fn lease_exists(tx: &WriteTransaction, ns: &str, lease: &str) -> Result<()> {
    let leases = tx.open_table(LEASES).db()?;
    let found = leases.get((ns, lease)).db()?.is_some();
    if found {
        Ok(())
    } else {
        Err(Error::not_found(format_args!("lease {lease:?}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::testutil::{expect_err, store};
    use crate::Lease;
    use berth_core::{filters::Filter, ErrorKind};
    use std::collections::HashMap;
    use std::time::SystemTime;

    fn lease(id: &str, labels: &[(&str, &str)]) -> Lease {
        Lease {
            id: id.into(),
            created_at: SystemTime::UNIX_EPOCH,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        }
    }

    #[test]
    fn create_list_delete() {
        let (_dir, store) = store();
        let created = store
            .create_lease("ns", lease("l1", &[("a", "b")]))
            .unwrap();
        assert!(created.created_at > SystemTime::UNIX_EPOCH);
        store.create_lease("ns", lease("l2", &[])).unwrap();
        let all = store.list_leases("ns", &Filter::always()).unwrap();
        assert_eq!(
            all.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
            ["l1", "l2"]
        );
        assert_eq!(all[0], created);
        let filtered = store
            .list_leases("ns", &Filter::parse("labels.a==b").unwrap())
            .unwrap();
        assert_eq!(filtered, vec![created]);
        store.delete_lease("ns", "l1").unwrap();
        let err = expect_err(store.delete_lease("ns", "l1"));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), r#"lease "l1": not found"#);
    }

    #[test]
    fn create_makes_the_namespace_and_rejects_duplicates() {
        let (_dir, store) = store();
        store.create_lease("fresh", lease("l", &[])).unwrap();
        assert!(store.get_namespace("fresh").is_ok());
        let err = expect_err(store.create_lease("fresh", lease("l", &[])));
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    }

    #[test]
    fn empty_id_is_invalid_argument_and_go_client_ids_are_fine() {
        let (_dir, store) = store();
        let err = expect_err(store.create_lease("ns", lease("", &[])));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(err.message(), "lease id must be provided: invalid argument");
        store
            .create_lease("ns", lease("643506148-S07-", &[]))
            .unwrap();
        store.create_lease("ns", lease("12-a_-b", &[])).unwrap();
    }

    #[test]
    fn resources_are_listed_and_go_with_the_lease() {
        let (_dir, store) = store();
        store.create_lease("ns", lease("l", &[])).unwrap();
        store.create_lease("ns", lease("l2", &[])).unwrap();
        let blob = crate::LeaseResource {
            id: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            kind: "content".into(),
        };
        let snap = crate::LeaseResource {
            id: "key".into(),
            kind: "snapshots/overlayfs".into(),
        };
        store.add_lease_resource("ns", "l", &blob).unwrap();
        store.add_lease_resource("ns", "l", &snap).unwrap();
        store.add_lease_resource("ns", "l2", &blob).unwrap();
        assert_eq!(
            store.list_lease_resources("ns", "l").unwrap(),
            vec![blob.clone(), snap.clone()]
        );
        store.delete_lease_resource("ns", "l", &snap).unwrap();
        assert_eq!(
            store.list_lease_resources("ns", "l").unwrap(),
            vec![blob.clone()]
        );
        store.delete_lease("ns", "l").unwrap();
        assert_eq!(store.list_lease_resources("ns", "l2").unwrap(), vec![blob]);
        let err = expect_err(store.list_lease_resources("ns", "l"));
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn resources_are_checked_with_containerds_codes_after_the_lease() {
        let (_dir, store) = store();
        store.create_lease("ns", lease("l", &[])).unwrap();
        let resource = |kind: &str, id: &str| crate::LeaseResource {
            id: id.into(),
            kind: kind.into(),
        };
        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let cases = [
            (resource("blobs", "x"), ErrorKind::NotImplemented),
            (resource("content/x", digest), ErrorKind::InvalidArgument),
            (
                resource("content", "not-a-digest"),
                ErrorKind::InvalidArgument,
            ),
            (resource("ingests/x", "r"), ErrorKind::InvalidArgument),
            (resource("snapshots", "k"), ErrorKind::InvalidArgument),
            (resource("snapshots/a/b", "k"), ErrorKind::InvalidArgument),
            (resource("ingests", ""), ErrorKind::InvalidArgument),
        ];
        for (bad, kind) in &cases {
            let err = expect_err(store.add_lease_resource("ns", "l", bad));
            assert_eq!(err.kind(), *kind, "add {bad:?}: {err}");
            let err = expect_err(store.delete_lease_resource("ns", "l", bad));
            assert_eq!(err.kind(), *kind, "delete {bad:?}: {err}");
        }
        let err = expect_err(store.add_lease_resource("ns", "l", &cases[0].0));
        assert_eq!(
            err.message(),
            "resource type blobs not supported yet: not implemented"
        );
        for good in [
            resource("content", digest),
            resource("ingests", "r"),
            resource("snapshots/overlayfs", "k"),
            resource("images", "docker.io/library/busybox:latest"),
        ] {
            store.add_lease_resource("ns", "l", &good).unwrap();
        }
        // The lease is looked up first, as containerd does.
        let err = expect_err(store.add_lease_resource("ns", "nope", &cases[0].0));
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn leases_do_not_keep_a_namespace_alive() {
        let (_dir, store) = store();
        store.create_lease("ns", lease("l", &[])).unwrap();
        store.delete_namespace("ns").unwrap();
        assert!(store
            .list_leases("ns", &Filter::always())
            .unwrap()
            .is_empty());
    }
}
