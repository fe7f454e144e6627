//! Containers: metadata records of what to run (image, spec, runtime,
//! rootfs snapshot), keyed by (namespace, id). Nothing here runs anything.
//!
//! The rules and messages are containerd's `containerStore`
//! (`core/metadata/containers.go`): validation on create and after every
//! update, store-set timestamps, empty label values dropped on write.

use crate::encoding::{decode, encode, ContainerRecord};
use crate::errors::DbResult;
use crate::fieldpaths;
use crate::model::Container;
use crate::namespaces;
use crate::schema::{self, CONTAINERS, NAMESPACES};
use crate::validation::{invalid, namespace_required, validate_container};
use crate::MetadataStore;
use berth_core::{filters::Filter, Error, Result};
use redb::{ReadableTable, WriteTransaction};
use std::time::SystemTime;

impl MetadataStore {
    /// Creates a container record (creating the namespace implicitly, as
    /// containerd does) and returns it as stored.
    ///
    /// Sets `created_at` and `updated_at` to now. `InvalidArgument`
    /// (`create container failed validation: …`) if the record breaks a
    /// rule; `AlreadyExists` (`container "x": already exists`) if the id is
    /// taken in the namespace.
    pub fn create_container(&self, ns: &str, c: Container) -> Result<Container> {
        namespace_required(ns)?;
        validate_container(&c).map_err(|e| e.context("create container failed validation"))?;
        let mut c = c;
        c.created_at = SystemTime::now();
        c.updated_at = c.created_at;
        c.labels.retain(|_, v| !v.is_empty());
        // Encode before taking the write lock: writers queue behind it.
        let bytes = encode(&ContainerRecord::from(&c))?;
        self.update(|tx| {
            namespaces::ensure(&mut tx.open_table(NAMESPACES).db()?, ns)?;
            let mut table = tx.open_table(CONTAINERS).db()?;
            if table.get((ns, c.id.as_str())).db()?.is_some() {
                return Err(Error::already_exists(format_args!("container {:?}", c.id)));
            }
            table.insert((ns, c.id.as_str()), bytes.as_slice()).db()?;
            Ok(())
        })?;
        Ok(c)
    }

    /// Gets a container; `NotFound` (`container "x" in namespace "ns": not
    /// found`) if absent.
    pub fn get_container(&self, ns: &str, id: &str) -> Result<Container> {
        namespace_required(ns)?;
        self.view(|tx| {
            let table = tx.open_table(CONTAINERS).db()?;
            let row = table.get((ns, id)).db()?.ok_or_else(|| {
                Error::not_found(format_args!("container {id:?} in namespace {ns:?}"))
            })?;
            Ok(decode::<ContainerRecord>(row.value())?.into_container(id))
        })
    }

    /// Lists the containers of a namespace that pass `filter`, sorted by id.
    ///
    /// Reads only the namespace's key range. A namespace that does not exist
    /// has no containers.
    pub fn list_containers(&self, ns: &str, filter: &Filter) -> Result<Vec<Container>> {
        namespace_required(ns)?;
        self.view(|tx| {
            let table = tx.open_table(CONTAINERS).db()?;
            let end = schema::after(ns);
            let mut out = Vec::new();
            for row in table.range(schema::ns_range(ns, &end)).db()? {
                let (key, value) = row.db()?;
                let c = decode::<ContainerRecord>(value.value())?.into_container(key.value().1);
                if filter.matches(&c) {
                    out.push(c);
                }
            }
            Ok(out)
        })
    }

    /// Updates a container by field paths, with containerd's rules (see
    /// `fieldpaths.rs`), and returns it as stored.
    ///
    /// Keeps `created_at`, sets `updated_at` to now. `InvalidArgument` for an
    /// empty id (`must specify a container id: invalid argument`), a path
    /// that cannot be updated (`cannot update "p" field on "x": invalid
    /// argument`), an immutable field changed by a full update
    /// (`container.Snapshotter field is immutable: invalid argument`,
    /// `container.Runtime.Name field is immutable: invalid argument`) or a
    /// result that fails validation (`update failed validation: …`);
    /// `NotFound` (`container "x": not found`) if absent.
    pub fn update_container(&self, ns: &str, c: Container, paths: &[String]) -> Result<Container> {
        namespace_required(ns)?;
        if c.id.is_empty() {
            return Err(invalid("must specify a container id"));
        }
        self.update(|tx| {
            let mut table = tx.open_table(CONTAINERS).db()?;
            let stored = match table.get((ns, c.id.as_str())).db()? {
                Some(row) => decode::<ContainerRecord>(row.value())?,
                None if namespace_known(tx, ns)? => {
                    return Err(Error::not_found(format_args!("container {:?}", c.id)))
                }
                None => {
                    return Err(Error::not_found(format_args!(
                        "cannot update container {:?} in namespace {ns:?}",
                        c.id
                    )))
                }
            };
            let mut updated = stored.into_container(&c.id);
            fieldpaths::apply_to_container(&mut updated, &c, paths)?;
            validate_container(&updated).map_err(|e| e.context("update failed validation"))?;
            updated.updated_at = SystemTime::now();
            updated.labels.retain(|_, v| !v.is_empty());
            let bytes = encode(&ContainerRecord::from(&updated))?;
            table.insert((ns, c.id.as_str()), bytes.as_slice()).db()?;
            Ok(updated)
        })
    }

    /// Deletes a container record; `NotFound` (`container x: not found`,
    /// containerd's text) if absent.
    pub fn delete_container(&self, ns: &str, id: &str) -> Result<()> {
        namespace_required(ns)?;
        self.update(|tx| {
            let mut table = tx.open_table(CONTAINERS).db()?;
            if table.remove((ns, id)).db()?.is_some() {
                // Its snapshot may now be garbage.
                self.mark_dirty();
                return Ok(());
            }
            // containerd formats the id with %v here: no quotes.
            Err(if namespace_known(tx, ns)? {
                Error::not_found(format_args!("container {id}"))
            } else {
                Error::not_found(format_args!(
                    "cannot delete container {id:?} in namespace {ns:?}"
                ))
            })
        })
    }
}

/// Whether namespace `ns` has a row. containerd words the not-found errors
/// of update and delete differently when the namespace has no containers
/// bucket at all, which is the case of a namespace berth has never seen.
fn namespace_known(tx: &WriteTransaction, ns: &str) -> Result<bool> {
    Ok(tx.open_table(NAMESPACES).db()?.get(ns).db()?.is_some())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::Any;
    use crate::testutil::{container, expect_err, paths, store};
    use berth_core::ErrorKind;
    use std::time::Duration;

    fn all() -> Filter {
        Filter::always()
    }

    fn ids(list: &[Container]) -> Vec<&str> {
        list.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn create_sets_timestamps_and_get_returns_the_record() {
        let (_dir, store) = store();
        let before = SystemTime::now();
        let mut c = container("web");
        c.labels.insert("app".into(), "web".into());
        c.labels.insert("empty".into(), String::new());
        c.extensions.insert("ext".into(), Any::default());
        c.sandbox = "pod".into();
        let created = store.create_container("default", c).unwrap();
        assert!(created.created_at >= before && created.created_at <= SystemTime::now());
        assert_eq!(created.created_at, created.updated_at);
        assert!(
            !created.labels.contains_key("empty"),
            "empty values are dropped"
        );
        assert_eq!(store.get_container("default", "web").unwrap(), created);
    }

    #[test]
    fn create_duplicate_is_already_exists() {
        let (_dir, store) = store();
        store.create_container("default", container("web")).unwrap();
        let err = expect_err(store.create_container("default", container("web")));
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(err.message(), r#"container "web": already exists"#);
        // The same id in another namespace is another container.
        store.create_container("other", container("web")).unwrap();
    }

    #[test]
    fn create_failing_validation_is_invalid_argument() {
        let (_dir, store) = store();
        let mut c = container("web");
        c.runtime.name.clear();
        let err = expect_err(store.create_container("default", c));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            err.message(),
            "create container failed validation: container.Runtime.Name must be set: invalid argument"
        );
        let mut c = container("web");
        c.spec = None;
        let err = expect_err(store.create_container("default", c));
        assert_eq!(
            err.message(),
            "create container failed validation: container.Spec must be set: invalid argument"
        );
        assert!(
            store.list_namespaces().unwrap().is_empty(),
            "nothing written"
        );
    }

    #[test]
    fn create_with_invalid_id_or_label_is_invalid_argument() {
        let (_dir, store) = store();
        for id in ["", "has space", "-dash", "a/b"] {
            let err = expect_err(store.create_container("default", container(id)));
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{id:?}");
            assert!(
                err.message()
                    .starts_with("create container failed validation: container.ID: "),
                "{err}"
            );
        }
        let mut c = container("web");
        c.labels.insert("k".into(), "v".repeat(5000));
        let err = expect_err(store.create_container("default", c));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(
            err.message()
                .starts_with("create container failed validation: containers.Labels: "),
            "{err}"
        );
    }

    #[test]
    fn namespace_must_be_given_and_valid() {
        let (_dir, store) = store();
        let err = expect_err(store.create_container("", container("web")));
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(err.message(), "namespace is required: failed precondition");
        assert!(store.get_container("", "web").is_err());
        assert!(store.list_containers("", &all()).is_err());
        let err = expect_err(store.create_container("bad ns", container("web")));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().starts_with("namespace validation: "), "{err}");
    }

    #[test]
    fn get_missing_is_not_found() {
        let (_dir, store) = store();
        let err = expect_err(store.get_container("default", "web"));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.message(),
            r#"container "web" in namespace "default": not found"#
        );
    }

    #[test]
    fn list_is_sorted_by_id_and_limited_to_the_namespace() {
        let (_dir, store) = store();
        for id in ["b", "a", "c10", "c2"] {
            store.create_container("default", container(id)).unwrap();
        }
        // Namespaces that share a prefix with "default" or sort next to it.
        store.create_container("default2", container("x")).unwrap();
        store.create_container("defaul", container("y")).unwrap();
        let listed = store.list_containers("default", &all()).unwrap();
        assert_eq!(ids(&listed), ["a", "b", "c10", "c2"]);
        assert!(store.list_containers("ghost", &all()).unwrap().is_empty());
    }

    #[test]
    fn list_applies_containerd_filters() {
        let (_dir, store) = store();
        let mut a = container("a");
        a.labels.insert("app".into(), "web".into());
        let mut b = container("b");
        b.labels.insert("app".into(), "db".into());
        b.image = "docker.io/library/redis:7".into();
        let mut c = container("c");
        c.runtime.name = "io.containerd.berth.v2".into();
        for c in [a, b, c] {
            store.create_container("default", c).unwrap();
        }
        let list = |filters: &[&str]| {
            let filter = Filter::parse_all(filters).unwrap();
            let listed = store.list_containers("default", &filter).unwrap();
            ids(&listed)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(list(&["id==b"]), ["b"]);
        assert_eq!(list(&["id!=b"]), ["a", "c"]);
        assert_eq!(list(&["labels.app==web"]), ["a"]);
        assert_eq!(list(&["labels.app"]), ["a", "b"]);
        assert_eq!(list(&["image==docker.io/library/redis:7"]), ["b"]);
        assert_eq!(list(&["runtime.name==io.containerd.berth.v2"]), ["c"]);
        assert_eq!(list(&["labels.app==web", "id==c"]), ["a", "c"]);
        assert_eq!(list(&["labels.app==web,id==b"]), Vec::<String>::new());
    }

    #[test]
    fn update_without_paths_replaces_mutable_fields() {
        let (_dir, store) = store();
        let mut c = container("web");
        c.labels.insert("old".into(), "1".into());
        c.sandbox = "pod".into();
        let created = store.create_container("default", c).unwrap();
        std::thread::sleep(Duration::from_millis(2));

        let mut next = container("web");
        next.labels.insert("new".into(), "2".into());
        next.image = "docker.io/library/alpine:3".into();
        next.snapshot_key = "web-2".into();
        next.spec = Some(Any {
            type_url: "spec".into(),
            value: b"new".to_vec(),
        });
        next.extensions.insert("ext".into(), Any::default());
        next.sandbox = "ignored".into();
        let updated = store
            .update_container("default", next.clone(), &[])
            .unwrap();
        assert_eq!(updated.labels, next.labels);
        assert_eq!(updated.image, next.image);
        assert_eq!(updated.snapshot_key, "web-2");
        assert_eq!(updated.spec, next.spec);
        assert_eq!(updated.extensions, next.extensions);
        assert_eq!(updated.sandbox, "pod", "not updatable");
        assert_eq!(updated.created_at, created.created_at);
        assert!(updated.updated_at > created.updated_at);
        assert_eq!(store.get_container("default", "web").unwrap(), updated);
    }

    #[test]
    fn update_without_paths_refuses_to_change_immutable_fields() {
        let (_dir, store) = store();
        store.create_container("default", container("web")).unwrap();
        let mut c = container("web");
        c.snapshotter = "native".into();
        let err = expect_err(store.update_container("default", c, &[]));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            err.message(),
            "container.Snapshotter field is immutable: invalid argument"
        );
        let mut c = container("web");
        c.runtime.name = "io.containerd.berth.v2".into();
        let err = expect_err(store.update_container("default", c, &[]));
        assert_eq!(
            err.message(),
            "container.Runtime.Name field is immutable: invalid argument"
        );
    }

    #[test]
    fn update_with_paths_changes_only_those_fields() {
        let (_dir, store) = store();
        let mut c = container("web");
        c.labels.insert("a".into(), "1".into());
        c.labels.insert("b".into(), "1".into());
        store.create_container("default", c).unwrap();

        let mut req = container("web");
        req.image = "not-applied".into();
        req.labels.insert("a".into(), "2".into());
        req.labels.insert("c".into(), "3".into());
        let updated = store
            .update_container("default", req, &paths(&["labels.a", "labels.b"]))
            .unwrap();
        assert_eq!(updated.labels.len(), 1, "{:?}", updated.labels);
        assert_eq!(updated.labels["a"], "2");
        assert_eq!(updated.image, "docker.io/library/busybox:latest");
        assert_eq!(store.get_container("default", "web").unwrap(), updated);
    }

    #[test]
    fn update_of_an_immutable_path_is_invalid_argument() {
        let (_dir, store) = store();
        store.create_container("default", container("web")).unwrap();
        let err = expect_err(store.update_container(
            "default",
            container("web"),
            &paths(&["snapshotter"]),
        ));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            err.message(),
            r#"cannot update "snapshotter" field on "web": invalid argument"#
        );
    }

    #[test]
    fn update_failing_validation_changes_nothing() {
        let (_dir, store) = store();
        let created = store.create_container("default", container("web")).unwrap();
        let mut req = container("web");
        req.spec = None;
        req.image = "other".into();
        let err = expect_err(store.update_container("default", req, &paths(&["image", "spec"])));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            err.message(),
            "update failed validation: container.Spec must be set: invalid argument"
        );
        assert_eq!(store.get_container("default", "web").unwrap(), created);
    }

    #[test]
    fn update_missing_is_not_found() {
        let (_dir, store) = store();
        store.create_container("default", container("web")).unwrap();
        let err = expect_err(store.update_container("default", container("nope"), &[]));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), r#"container "nope": not found"#);
        let err = expect_err(store.update_container("ghost", container("nope"), &[]));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.message(),
            r#"cannot update container "nope" in namespace "ghost": not found"#
        );
    }

    #[test]
    fn update_without_id_is_invalid_argument() {
        let (_dir, store) = store();
        let err = expect_err(store.update_container("default", container(""), &[]));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            err.message(),
            "must specify a container id: invalid argument"
        );
    }

    #[test]
    fn delete_removes_the_record() {
        let (_dir, store) = store();
        store.create_container("default", container("web")).unwrap();
        store.create_container("default", container("db")).unwrap();
        store.delete_container("default", "web").unwrap();
        assert!(store
            .get_container("default", "web")
            .unwrap_err()
            .is_not_found());
        assert_eq!(
            ids(&store.list_containers("default", &all()).unwrap()),
            ["db"]
        );
        store.create_container("default", container("web")).unwrap();
    }

    #[test]
    fn delete_missing_is_not_found() {
        let (_dir, store) = store();
        store.create_container("default", container("db")).unwrap();
        let err = expect_err(store.delete_container("default", "web"));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), "container web: not found");
        let err = expect_err(store.delete_container("ghost", "web"));
        assert_eq!(
            err.message(),
            r#"cannot delete container "web" in namespace "ghost": not found"#
        );
    }
}
