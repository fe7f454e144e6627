//! The records the metadata database holds, in containerd's terms.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::SystemTime;

/// A protobuf `Any` kept as it arrived: type URL and encoded bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Any {
    /// The type URL, e.g. `types.containerd.io/opencontainers/runtime-spec/1/Spec`.
    pub type_url: String,
    /// The encoded message.
    pub value: Vec<u8>,
}

/// A namespace and its labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// The namespace name (an identifier).
    pub name: String,
    /// The namespace's labels.
    pub labels: HashMap<String, String>,
}

/// The runtime a container's task runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    /// The runtime name, e.g. `io.containerd.runc.v2`.
    pub name: String,
    /// Runtime-specific options.
    pub options: Option<Any>,
}

/// A container record: metadata only, nothing runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// The container id (an identifier), unique in its namespace.
    pub id: String,
    /// The container's labels.
    pub labels: HashMap<String, String>,
    /// The image reference the container was made from (may be empty).
    pub image: String,
    /// The runtime and its options.
    pub runtime: Runtime,
    /// The OCI runtime spec, stored as the `Any` it arrived as.
    pub spec: Option<Any>,
    /// The snapshotter holding the rootfs snapshot.
    pub snapshotter: String,
    /// The key of the rootfs snapshot.
    pub snapshot_key: String,
    /// When the record was created (set by the store).
    pub created_at: SystemTime,
    /// When the record was last updated (set by the store).
    pub updated_at: SystemTime,
    /// Client extensions, by name.
    pub extensions: HashMap<String, Any>,
    /// The sandbox this container belongs to (may be empty).
    pub sandbox: String,
}

impl Default for Container {
    fn default() -> Self {
        Container {
            id: String::new(),
            labels: HashMap::new(),
            image: String::new(),
            runtime: Runtime::default(),
            spec: None,
            snapshotter: String::new(),
            snapshot_key: String::new(),
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
            extensions: HashMap::new(),
            sandbox: String::new(),
        }
    }
}

/// A lease: a named hold on resources that have no other reference yet, so
/// garbage collection leaves them alone while a client works (a pull, a
/// container create). `containerd.io/gc.expire` in its labels bounds its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The lease id (an identifier), unique in its namespace.
    pub id: String,
    /// When the lease was created (set by the store).
    pub created_at: SystemTime,
    /// The lease's labels.
    pub labels: HashMap<String, String>,
}

/// Something a lease holds: containerd's `leases.Resource`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseResource {
    /// The resource id: a digest, an ingest ref or a snapshot key.
    pub id: String,
    /// The type: `content`, `ingests` or `snapshots/<snapshotter>`.
    pub kind: String,
}
