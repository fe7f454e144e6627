//! Conversions between containerd's wire messages and berth's records.

use berth_api::pb::services::v1::{
    container, Container as WireContainer, Namespace as WireNamespace,
};
use berth_store::{Any, Container, Namespace, Runtime};
use prost_types::Timestamp;
use std::time::SystemTime;

/// A stored `Any` as a protobuf `Any`.
pub fn any_to_wire(any: Any) -> prost_types::Any {
    prost_types::Any {
        type_url: any.type_url,
        value: any.value,
    }
}

/// A protobuf `Any` as stored.
pub fn any_from_wire(any: prost_types::Any) -> Any {
    Any {
        type_url: any.type_url,
        value: any.value,
    }
}

/// A timestamp on the wire.
pub fn timestamp(time: SystemTime) -> Option<Timestamp> {
    Some(Timestamp::from(time))
}

/// A stored namespace on the wire.
pub fn namespace_to_wire(ns: Namespace) -> WireNamespace {
    WireNamespace {
        name: ns.name,
        labels: ns.labels,
    }
}

/// A wire namespace as stored.
pub fn namespace_from_wire(ns: WireNamespace) -> Namespace {
    Namespace {
        name: ns.name,
        labels: ns.labels,
    }
}

/// A stored container on the wire.
pub fn container_to_wire(c: Container) -> WireContainer {
    WireContainer {
        id: c.id,
        labels: c.labels,
        image: c.image,
        runtime: Some(container::Runtime {
            name: c.runtime.name,
            options: c.runtime.options.map(any_to_wire),
        }),
        spec: c.spec.map(any_to_wire),
        snapshotter: c.snapshotter,
        snapshot_key: c.snapshot_key,
        created_at: timestamp(c.created_at),
        updated_at: timestamp(c.updated_at),
        extensions: c
            .extensions
            .into_iter()
            .map(|(k, v)| (k, any_to_wire(v)))
            .collect(),
        sandbox: c.sandbox,
    }
}

/// A wire container as stored (timestamps are the store's to set).
pub fn container_from_wire(c: WireContainer) -> Container {
    let runtime = c.runtime.unwrap_or_default();
    Container {
        id: c.id,
        labels: c.labels,
        image: c.image,
        runtime: Runtime {
            name: runtime.name,
            options: runtime.options.map(any_from_wire),
        },
        spec: c.spec.map(any_from_wire),
        snapshotter: c.snapshotter,
        snapshot_key: c.snapshot_key,
        extensions: c
            .extensions
            .into_iter()
            .map(|(k, v)| (k, any_from_wire(v)))
            .collect(),
        sandbox: c.sandbox,
        ..Container::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_round_trips_except_timestamps() {
        let wire = WireContainer {
            id: "web".into(),
            labels: [("a".to_string(), "b".to_string())].into(),
            image: "docker.io/library/busybox:latest".into(),
            runtime: Some(container::Runtime {
                name: "io.containerd.runc.v2".into(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                value: b"{}".to_vec(),
            }),
            snapshotter: "overlayfs".into(),
            snapshot_key: "web".into(),
            created_at: timestamp(SystemTime::UNIX_EPOCH),
            updated_at: timestamp(SystemTime::UNIX_EPOCH),
            extensions: Default::default(),
            sandbox: String::new(),
        };
        assert_eq!(container_to_wire(container_from_wire(wire.clone())), wire);
    }
}
