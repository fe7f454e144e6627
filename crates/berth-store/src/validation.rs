//! containerd's checks on what a caller may store.
//!
//! The messages are containerd's (`pkg/namespaces/context.go`
//! `NamespaceRequired`, `core/metadata/containers.go` `validateContainer`),
//! so clients that match on them behave the same against berth.

use crate::model::Container;
use berth_core::{identifiers, labels, Error, ErrorKind, Result};

/// Checks the namespace a namespaced call works in: it must be given
/// (`FailedPrecondition`) and be a valid identifier.
pub(crate) fn namespace_required(ns: &str) -> Result<()> {
    if ns.is_empty() {
        return Err(Error::classed(
            ErrorKind::FailedPrecondition,
            "namespace is required",
        ));
    }
    identifiers::validate(ns).map_err(|e| e.context("namespace validation"))
}

/// containerd's `validateContainer`, check for check and in the same order.
pub(crate) fn validate_container(c: &Container) -> Result<()> {
    identifiers::validate(&c.id).map_err(|e| e.context("container.ID"))?;
    if c.extensions.keys().any(String::is_empty) {
        return Err(invalid("container.Extension keys must not be zero-length"));
    }
    // The image has no validation (containerd's neither).
    labels::validate_all(&c.labels).map_err(|e| e.context("containers.Labels"))?;
    if c.runtime.name.is_empty() {
        return Err(invalid("container.Runtime.Name must be set"));
    }
    if c.spec.is_none() {
        return Err(invalid("container.Spec must be set"));
    }
    if !c.snapshot_key.is_empty() && c.snapshotter.is_empty() {
        return Err(invalid(
            "container.Snapshotter must be set if container.SnapshotKey is set",
        ));
    }
    Ok(())
}

/// `{what}: invalid argument`.
pub(crate) fn invalid(what: impl std::fmt::Display) -> Error {
    Error::classed(ErrorKind::InvalidArgument, what)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::Any;
    use crate::testutil::container;

    fn message(c: &Container) -> String {
        validate_container(c).unwrap_err().to_string()
    }

    #[test]
    fn valid_container_passes() {
        validate_container(&container("web")).unwrap();
    }

    #[test]
    fn empty_namespace_is_failed_precondition() {
        let err = namespace_required("").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(err.message(), "namespace is required: failed precondition");
        namespace_required("default").unwrap();
    }

    #[test]
    fn each_rule_has_containerds_message() {
        let mut c = container("web");
        c.extensions.insert(String::new(), Any::default());
        assert_eq!(
            message(&c),
            "container.Extension keys must not be zero-length: invalid argument"
        );

        let mut c = container("web");
        c.runtime.name.clear();
        assert_eq!(
            message(&c),
            "container.Runtime.Name must be set: invalid argument"
        );

        let mut c = container("web");
        c.spec = None;
        assert_eq!(message(&c), "container.Spec must be set: invalid argument");

        let mut c = container("web");
        c.snapshotter.clear();
        assert_eq!(
            message(&c),
            "container.Snapshotter must be set if container.SnapshotKey is set: invalid argument"
        );
        c.snapshot_key.clear();
        validate_container(&c).unwrap();
    }
}
