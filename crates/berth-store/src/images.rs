//! Images: a name pointing at a target descriptor (a manifest or an index)
//! in the content store, with labels, keyed by (namespace, name).
//!
//! The rules and messages are containerd's `imageStore`
//! (`core/metadata/images.go`): a name and a valid target (digest, size > 0,
//! media type) are required; labels and annotations with empty values are
//! dropped on write; an update with no field paths replaces the whole record
//! (keeping `created_at`); `labels.KEY` and `annotations.KEY` set one entry.
//!
//! An image is a garbage-collection root (unless labelled
//! `containerd.io/gc.expire` with a time in the past): its target and
//! whatever the target's `containerd.io/gc.ref.*` labels reach stay. An
//! image made under a lease with an expiry label is added to that lease, as
//! containerd's `addImageLease` does, so it lives at least as long as the
//! lease.

use crate::encoding::{decode, encode, Timestamp};
use crate::errors::DbResult;
use crate::gc::LABEL_EXPIRE;
use crate::leases::{add_resource, RESOURCE_IMAGES};
use crate::namespaces;
use crate::schema::{self, IMAGES, LEASE_RESOURCES, NAMESPACES};
use crate::validation::{invalid, namespace_required};
use crate::{LeaseResource, MetadataStore};
use berth_core::filters::{labels_field, Adaptor, Filter};
use berth_core::images::Image;
use berth_core::{labels, Descriptor, Digest, Error, ErrorKind, Result};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

impl MetadataStore {
    /// Creates an image record (creating the namespace implicitly) and
    /// returns it as stored, with `created_at` = `updated_at` = now.
    ///
    /// `InvalidArgument` if the record breaks a rule (see
    /// [`validate_image`]); `AlreadyExists` (`image "x": already exists`)
    /// if the name is taken. Under `lease`, an image labelled
    /// `containerd.io/gc.expire` is also added to the lease (`NotFound` if
    /// the lease does not exist).
    pub fn create_image(&self, ns: &str, image: Image, lease: Option<&str>) -> Result<Image> {
        namespace_required(ns)?;
        let mut image = image;
        validate_image(&image)?;
        image.created_at = SystemTime::now();
        image.updated_at = image.created_at;
        drop_empty_values(&mut image);
        let bytes = encode(&ImageRecord::from(&image))?;
        self.update(|tx| {
            namespaces::ensure(&mut tx.open_table(NAMESPACES).db()?, ns)?;
            add_image_lease(tx, ns, lease, &image)?;
            let mut table = tx.open_table(IMAGES).db()?;
            if table.get((ns, image.name.as_str())).db()?.is_some() {
                return Err(Error::already_exists(format_args!(
                    "image {:?}",
                    image.name
                )));
            }
            table
                .insert((ns, image.name.as_str()), bytes.as_slice())
                .db()?;
            Ok(())
        })?;
        Ok(image)
    }

    /// Gets an image; `NotFound` (`image "x": not found`) if absent.
    pub fn get_image(&self, ns: &str, name: &str) -> Result<Image> {
        namespace_required(ns)?;
        self.view(|tx| {
            let table = tx.open_table(IMAGES).db()?;
            let row = table.get((ns, name)).db()?.ok_or_else(|| not_found(name))?;
            decode::<ImageRecord>(row.value())?.into_image(name)
        })
    }

    /// Lists the images of a namespace that pass `filter` (fields `name`,
    /// `target.digest`, `target.mediatype`, `labels.KEY`, `annotations.KEY`),
    /// sorted by name.
    pub fn list_images(&self, ns: &str, filter: &Filter) -> Result<Vec<Image>> {
        namespace_required(ns)?;
        self.view(|tx| {
            let table = tx.open_table(IMAGES).db()?;
            let end = schema::after(ns);
            let mut out = Vec::new();
            for row in table.range(schema::ns_range(ns, &end)).db()? {
                let (key, value) = row.db()?;
                let image = decode::<ImageRecord>(value.value())?.into_image(key.value().1)?;
                if filter.matches(&ImageFields(&image)) {
                    out.push(image);
                }
            }
            Ok(out)
        })
    }

    /// Updates an image by field paths and returns it as stored (keeping
    /// `created_at`, setting `updated_at` to now).
    ///
    /// No paths: the request replaces the record. Paths: `labels`,
    /// `labels.KEY`, `target`, `annotations`, `annotations.KEY`; any other is
    /// `InvalidArgument` (`cannot update "p" field on image "x": invalid
    /// argument`). An empty name is `InvalidArgument` (`image name is
    /// required for update: invalid argument`); a missing image `NotFound`.
    /// The result must pass [`validate_image`].
    pub fn update_image(
        &self,
        ns: &str,
        image: Image,
        paths: &[String],
        lease: Option<&str>,
    ) -> Result<Image> {
        namespace_required(ns)?;
        if image.name.is_empty() {
            return Err(invalid("image name is required for update"));
        }
        self.update(|tx| {
            let mut table = tx.open_table(IMAGES).db()?;
            let stored = match table.get((ns, image.name.as_str())).db()? {
                Some(row) => decode::<ImageRecord>(row.value())?.into_image(&image.name)?,
                None => return Err(not_found(&image.name)),
            };
            let mut updated = apply_paths(stored.clone(), &image, paths)?;
            validate_image(&updated)?;
            updated.created_at = stored.created_at;
            updated.updated_at = SystemTime::now();
            drop_empty_values(&mut updated);
            // An expiry label may have been added: the lease must hold it.
            add_image_lease(tx, ns, lease, &updated)?;
            let bytes = encode(&ImageRecord::from(&updated))?;
            table
                .insert((ns, updated.name.as_str()), bytes.as_slice())
                .db()?;
            Ok(updated)
        })
    }

    /// Deletes an image; `NotFound` (`image "x": not found`) if absent, or
    /// (`image "x" has target D, not T: not found`) if `target` is given
    /// and differs from the image's target digest. Under `lease`, the image
    /// is also dropped from the lease. Marks the store dirty, so the garbage
    /// collector runs soon.
    pub fn delete_image(
        &self,
        ns: &str,
        name: &str,
        target: Option<&Digest>,
        lease: Option<&str>,
    ) -> Result<()> {
        namespace_required(ns)?;
        self.update(|tx| {
            if let Some(lease) = lease {
                let mut resources = tx.open_table(LEASE_RESOURCES).db()?;
                resources.remove((ns, lease, RESOURCE_IMAGES, name)).db()?;
            }
            let mut table = tx.open_table(IMAGES).db()?;
            let removed = table.remove((ns, name)).db()?;
            let Some(row) = removed else {
                return Err(not_found(name));
            };
            if let Some(target) = target {
                let record = decode::<ImageRecord>(row.value())?;
                if record.digest != target.as_str() {
                    return Err(Error::not_found(format_args!(
                        "image {name:?} has target {}, not {target}",
                        record.digest
                    )));
                }
            }
            self.mark_dirty();
            Ok(())
        })
    }
}

/// containerd's `validateImage`, check for check and in the same order: a
/// name, labels within size, then the target (digest, size > 0, media type).
pub fn validate_image(image: &Image) -> Result<()> {
    if image.name.is_empty() {
        return Err(invalid("image name must not be empty"));
    }
    labels::validate_all(&image.labels).map_err(|e| e.context("image.Labels"))?;
    validate_target(&image.target)
}

/// The target checks of [`validate_image`]. The digest itself is valid by
/// construction ([`Digest`]); see [`parse_target_digest`] for the wire.
fn validate_target(target: &Descriptor) -> Result<()> {
    if target.size <= 0 {
        return Err(invalid("Target.Size must be greater than zero"));
    }
    if target.media_type.is_empty() {
        return Err(invalid("Target.MediaType must be set"));
    }
    Ok(())
}

/// Parses a target digest as it arrives on the wire, failing as
/// containerd's `validateTarget` does (`Target.Digest "x" invalid: invalid
/// checksum digest format: invalid argument`).
pub fn parse_target_digest(digest: &str) -> Result<Digest> {
    Digest::parse(digest).map_err(|_| {
        invalid(format_args!(
            "Target.Digest {digest:?} invalid: invalid checksum digest format"
        ))
    })
}

/// Whether an update with `paths` reads the request's target descriptor
/// (media type, digest, size): a full replace or a `target` path. Other
/// updates — `ctr images label` sends only labels — may leave it unset.
pub fn update_reads_target(paths: &[String]) -> bool {
    paths.is_empty() || paths.iter().any(|p| p == "target")
}

/// Copies the fields named by `paths` from `from` onto `stored`.
fn apply_paths(stored: Image, from: &Image, paths: &[String]) -> Result<Image> {
    if paths.is_empty() {
        return Ok(from.clone());
    }
    let mut out = stored;
    for path in paths {
        if let Some(key) = path.strip_prefix("labels.") {
            let value = from.labels.get(key).cloned().unwrap_or_default();
            out.labels.insert(key.to_owned(), value);
        } else if let Some(key) = path.strip_prefix("annotations.") {
            let value = from.target.annotations.get(key).cloned();
            out.target
                .annotations
                .insert(key.to_owned(), value.unwrap_or_default());
        } else {
            match path.as_str() {
                "labels" => out.labels = from.labels.clone(),
                // The target is replaced as a unit, as containerd does.
                "target" => out.target = from.target.clone(),
                "annotations" => out.target.annotations = from.target.annotations.clone(),
                _ => {
                    return Err(invalid(format_args!(
                        "cannot update {path:?} field on image {:?}",
                        from.name
                    )))
                }
            }
        }
    }
    Ok(out)
}

/// Drops labels and annotations whose value is empty (containerd never
/// writes them).
fn drop_empty_values(image: &mut Image) {
    image.labels.retain(|_, v| !v.is_empty());
    image.target.annotations.retain(|_, v| !v.is_empty());
}

/// containerd's `addImageLease`: under a lease, an image with an expiry
/// label is recorded as a lease resource.
fn add_image_lease(
    tx: &WriteTransaction,
    ns: &str,
    lease: Option<&str>,
    image: &Image,
) -> Result<()> {
    let Some(lease) = lease else { return Ok(()) };
    if !image.labels.contains_key(LABEL_EXPIRE) {
        return Ok(());
    }
    let resource = LeaseResource {
        id: image.name.clone(),
        kind: RESOURCE_IMAGES.to_owned(),
    };
    add_resource(tx, ns, lease, &resource)
}

fn not_found(name: &str) -> Error {
    Error::not_found(format_args!("image {name:?}"))
}

/// An image as stored: the namespace and name are the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: i64,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
}

impl From<&Image> for ImageRecord {
    fn from(image: &Image) -> Self {
        ImageRecord {
            labels: sorted(&image.labels),
            media_type: image.target.media_type.clone(),
            digest: image.target.digest.to_string(),
            size: image.target.size,
            annotations: sorted(&image.target.annotations),
            created_at: image.created_at.into(),
            updated_at: image.updated_at.into(),
        }
    }
}

impl ImageRecord {
    /// The public model of this record, whose key holds `name`.
    pub(crate) fn into_image(self, name: &str) -> Result<Image> {
        let digest = Digest::parse(&self.digest).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("metadata: image {name:?} has a bad target: {e}"),
            )
        })?;
        Ok(Image {
            name: name.to_owned(),
            labels: self.labels.into_iter().collect(),
            target: Descriptor {
                media_type: self.media_type,
                digest,
                size: self.size,
                annotations: self.annotations.into_iter().collect(),
            },
            created_at: self.created_at.into(),
            updated_at: self.updated_at.into(),
        })
    }
}

fn sorted(map: &HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// How filters see an image: containerd's `adaptImage`.
pub struct ImageFields<'a>(pub &'a Image);

impl Adaptor for ImageFields<'_> {
    /// Fields: `name`, `target.digest`, `target.mediatype`, `labels.KEY`,
    /// `annotations.KEY` (the target's annotations). Empty values are absent.
    fn field(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        let image = self.0;
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        match (first.as_str(), rest) {
            ("name", _) => non_empty(&image.name),
            ("target", [field, ..]) if field == "digest" => non_empty(image.target.digest.as_str()),
            ("target", [field, ..]) if field == "mediatype" => non_empty(&image.target.media_type),
            ("labels", key) => labels_field(&image.labels, key),
            ("annotations", key) => labels_field(&image.target.annotations, key),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testutil::{expect_err, paths, store};
    use crate::Lease;
    use std::time::{Duration, UNIX_EPOCH};

    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    fn digest(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    fn image(name: &str, n: u8) -> Image {
        Image {
            name: name.to_owned(),
            labels: HashMap::new(),
            target: Descriptor {
                media_type: MANIFEST.to_owned(),
                digest: digest(n),
                size: 100,
                annotations: HashMap::new(),
            },
            created_at: UNIX_EPOCH,
            updated_at: UNIX_EPOCH,
        }
    }

    fn names(list: &[Image]) -> Vec<&str> {
        list.iter().map(|i| i.name.as_str()).collect()
    }

    #[test]
    fn create_get_round_trips_and_sets_timestamps() {
        let (_dir, store) = store();
        let mut img = image("docker.io/library/busybox:latest", 1);
        img.labels.insert("a".into(), "b".into());
        img.labels.insert("empty".into(), String::new());
        img.target.annotations.insert("x".into(), "y".into());
        let created = store.create_image("default", img, None).unwrap();
        assert!(created.created_at > UNIX_EPOCH);
        assert_eq!(created.created_at, created.updated_at);
        assert!(!created.labels.contains_key("empty"));
        let got = store
            .get_image("default", "docker.io/library/busybox:latest")
            .unwrap();
        assert_eq!(got, created);
        assert_eq!(got.target.annotations["x"], "y");
    }

    #[test]
    fn create_makes_the_namespace_and_refuses_duplicates() {
        let (_dir, store) = store();
        store.create_image("fresh", image("a", 1), None).unwrap();
        assert!(store.get_namespace("fresh").is_ok());
        let err = expect_err(store.create_image("fresh", image("a", 2), None));
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(err.message(), r#"image "a": already exists"#);
        store.create_image("other", image("a", 2), None).unwrap();
    }

    #[test]
    fn create_validates_like_containerd() {
        let (_dir, store) = store();
        type Breaker = fn(&mut Image);
        let cases: [(Breaker, &str); 4] = [
            (
                |i| i.name.clear(),
                "image name must not be empty: invalid argument",
            ),
            (
                |i| i.target.size = 0,
                "Target.Size must be greater than zero: invalid argument",
            ),
            (
                |i| i.target.media_type.clear(),
                "Target.MediaType must be set: invalid argument",
            ),
            (
                |i| {
                    i.labels.insert("k".into(), "v".repeat(5000));
                },
                "image.Labels: label key and value length (5001 bytes) greater than \
                 maximum size (4096 bytes), key: k: invalid argument",
            ),
        ];
        for (break_it, message) in cases {
            let mut img = image("a", 1);
            break_it(&mut img);
            let err = expect_err(store.create_image("default", img, None));
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert_eq!(err.message(), message);
        }
        assert!(store.list_namespaces().unwrap().is_empty());
        let err = parse_target_digest("sha256:nope").unwrap_err();
        assert_eq!(
            err.message(),
            r#"Target.Digest "sha256:nope" invalid: invalid checksum digest format: invalid argument"#
        );
    }

    #[test]
    fn get_missing_is_not_found() {
        let (_dir, store) = store();
        let err = expect_err(store.get_image("default", "nope"));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), r#"image "nope": not found"#);
    }

    #[test]
    fn list_filters_by_containerds_fields() {
        let (_dir, store) = store();
        let mut a = image("a", 1);
        a.labels.insert("env".into(), "prod".into());
        let mut b = image("b", 2);
        b.target.media_type = "application/vnd.oci.image.index.v1+json".into();
        b.target.annotations.insert("org.x".into(), "1".into());
        for img in [b, a, image("c", 3)] {
            store.create_image("default", img, None).unwrap();
        }
        store.create_image("default2", image("z", 4), None).unwrap();
        let list = |filters: &[&str]| {
            let filter = Filter::parse_all(filters).unwrap();
            let listed = store.list_images("default", &filter).unwrap();
            names(&listed)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(list(&[]), ["a", "b", "c"]);
        assert_eq!(list(&["name==b"]), ["b"]);
        assert_eq!(list(&["name~=^[ab]$"]), ["a", "b"]);
        assert_eq!(list(&[&format!("target.digest=={}", digest(3))]), ["c"]);
        assert_eq!(
            list(&["target.mediatype==application/vnd.oci.image.index.v1+json"]),
            ["b"]
        );
        assert_eq!(list(&["labels.env==prod"]), ["a"]);
        assert_eq!(list(&["annotations.\"org.x\""]), ["b"]);
        assert_eq!(list(&["labels.env", "name==c"]), ["a", "c"]);
    }

    #[test]
    fn update_without_paths_replaces_the_record() {
        let (_dir, store) = store();
        let mut img = image("a", 1);
        img.labels.insert("old".into(), "1".into());
        let created = store.create_image("default", img, None).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let mut next = image("a", 2);
        next.labels.insert("new".into(), "2".into());
        let updated = store.update_image("default", next, &[], None).unwrap();
        assert_eq!(updated.target.digest, digest(2));
        assert_eq!(updated.labels, HashMap::from([("new".into(), "2".into())]));
        assert_eq!(updated.created_at, created.created_at);
        assert!(updated.updated_at > created.updated_at);
        assert_eq!(store.get_image("default", "a").unwrap(), updated);
    }

    #[test]
    fn update_with_paths_changes_only_those_fields() {
        let (_dir, store) = store();
        let mut img = image("a", 1);
        img.labels.insert("keep".into(), "1".into());
        img.labels.insert("gone".into(), "1".into());
        img.target.annotations.insert("ann".into(), "1".into());
        store.create_image("default", img, None).unwrap();

        let mut req = image("a", 9);
        req.labels.insert("new".into(), "2".into());
        req.target.annotations.insert("ann2".into(), "2".into());
        let updated = store
            .update_image(
                "default",
                req.clone(),
                &paths(&["labels.new", "labels.gone", "annotations.ann2"]),
                None,
            )
            .unwrap();
        assert_eq!(updated.target.digest, digest(1), "target untouched");
        assert_eq!(updated.labels.len(), 2, "{:?}", updated.labels);
        assert_eq!(updated.labels["new"], "2");
        assert_eq!(updated.target.annotations.len(), 2);

        let updated = store
            .update_image("default", req, &paths(&["target"]), None)
            .unwrap();
        assert_eq!(updated.target.digest, digest(9));
        assert_eq!(
            updated.target.annotations,
            HashMap::from([("ann2".into(), "2".into())]),
            "the target is replaced as a unit"
        );
    }

    #[test]
    fn update_errors_match_containerd() {
        let (_dir, store) = store();
        store.create_image("default", image("a", 1), None).unwrap();
        let err = expect_err(store.update_image("default", image("", 1), &[], None));
        assert_eq!(
            err.message(),
            "image name is required for update: invalid argument"
        );
        let err = expect_err(store.update_image("default", image("b", 1), &[], None));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.message(), r#"image "b": not found"#);
        let err = expect_err(store.update_image("default", image("a", 1), &paths(&["name"]), None));
        assert_eq!(
            err.message(),
            r#"cannot update "name" field on image "a": invalid argument"#
        );
        let mut bad = image("a", 1);
        bad.target.size = -1;
        let err = expect_err(store.update_image("default", bad, &paths(&["target"]), None));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(update_reads_target(&[]));
        assert!(update_reads_target(&paths(&["labels.a", "target"])));
        assert!(!update_reads_target(&paths(&["labels.a"])));
    }

    #[test]
    fn delete_removes_and_checks_the_target() {
        let (_dir, store) = store();
        store.create_image("default", image("a", 1), None).unwrap();
        let err = expect_err(store.delete_image("default", "a", Some(&digest(2)), None));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.message(),
            format!(
                "image \"a\" has target {}, not {}: not found",
                digest(1),
                digest(2)
            )
        );
        store
            .delete_image("default", "a", Some(&digest(1)), None)
            .unwrap();
        let err = expect_err(store.delete_image("default", "a", None, None));
        assert_eq!(err.message(), r#"image "a": not found"#);
        assert!(store.get_image("default", "a").unwrap_err().is_not_found());
    }

    #[test]
    fn expiring_image_under_a_lease_joins_the_lease() {
        let (_dir, store) = store();
        let lease = Lease {
            id: "l".into(),
            created_at: UNIX_EPOCH,
            labels: HashMap::new(),
        };
        store.create_lease("default", lease).unwrap();
        store
            .create_image("default", image("plain", 1), Some("l"))
            .unwrap();
        let mut expiring = image("exp", 2);
        expiring
            .labels
            .insert(LABEL_EXPIRE.into(), "2000-01-01T00:00:00Z".into());
        store.create_image("default", expiring, Some("l")).unwrap();
        let held = store.list_lease_resources("default", "l").unwrap();
        assert_eq!(
            held,
            vec![LeaseResource {
                id: "exp".into(),
                kind: RESOURCE_IMAGES.into()
            }]
        );
        store
            .delete_image("default", "exp", None, Some("l"))
            .unwrap();
        assert!(store
            .list_lease_resources("default", "l")
            .unwrap()
            .is_empty());
        // Only an expiring image needs the lease, so only then must it exist.
        store
            .create_image("default", image("x", 3), Some("nope"))
            .unwrap();
        let mut expiring = image("y", 4);
        expiring
            .labels
            .insert(LABEL_EXPIRE.into(), "2000-01-01T00:00:00Z".into());
        let err = expect_err(store.create_image("default", expiring, Some("nope")));
        assert!(err.is_not_found(), "{err}");
    }
}
