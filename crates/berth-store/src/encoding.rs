//! How records become bytes in redb values.
//!
//! Every value is `[format: u8][postcard body]`. The leading byte is the
//! record format: decoding refuses a format it does not know instead of
//! misreading it, and a future migration can rewrite records format by
//! format. The stored types (`*Record`) are private to the store and separate
//! from the public model, so the model can change without changing the file.

use crate::model::{Any, Container, Lease, Runtime};
use berth_core::{Error, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The record format this build writes (and the only one it reads).
pub(crate) const RECORD_FORMAT: u8 = 1;

/// Encodes `record` as a format-tagged postcard value.
pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    let mut out = vec![RECORD_FORMAT];
    postcard::to_io(record, &mut out)
        .map_err(|e| Error::internal(format!("metadata: encoding record: {e}")))?;
    Ok(out)
}

/// Decodes a value written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_FORMAT, body)) => postcard::from_bytes(body)
            .map_err(|e| Error::internal(format!("metadata: decoding record: {e}"))),
        Some((format, _)) => Err(Error::internal(format!(
            "metadata: record format {format} is not supported (this build reads {RECORD_FORMAT})"
        ))),
        None => Err(Error::internal("metadata: empty record")),
    }
}

/// A point in time as seconds and nanoseconds since the Unix epoch; negative
/// seconds are before it (protobuf `Timestamp` has the same shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(before) => {
                let d = before.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => Timestamp {
                        secs: -secs,
                        nanos: 0,
                    },
                    n => Timestamp {
                        secs: -secs - 1,
                        nanos: 1_000_000_000 - n,
                    },
                }
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        let nanos = Duration::from_nanos(u64::from(t.nanos));
        if t.secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(t.secs.unsigned_abs()) + nanos
        } else {
            UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + nanos
        }
    }
}

/// A namespace as stored: the name is the key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NamespaceRecord {
    pub(crate) labels: BTreeMap<String, String>,
}

/// A protobuf `Any` as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AnyRecord {
    type_url: String,
    #[serde(with = "bytes")]
    value: Vec<u8>,
}

/// Serde for a `Vec<u8>` as one byte string rather than a sequence of
/// numbers: postcard then writes and reads it with one copy instead of a
/// call per byte, which matters for specs of several KiB in every list.
mod bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;
    use std::fmt;

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

impl From<&Any> for AnyRecord {
    fn from(a: &Any) -> Self {
        AnyRecord {
            type_url: a.type_url.clone(),
            value: a.value.clone(),
        }
    }
}

impl From<AnyRecord> for Any {
    fn from(a: AnyRecord) -> Self {
        Any {
            type_url: a.type_url,
            value: a.value,
        }
    }
}

/// A container as stored: the namespace and id are the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    labels: BTreeMap<String, String>,
    image: String,
    runtime_name: String,
    runtime_options: Option<AnyRecord>,
    spec: Option<AnyRecord>,
    snapshotter: String,
    snapshot_key: String,
    created_at: Timestamp,
    updated_at: Timestamp,
    extensions: BTreeMap<String, AnyRecord>,
    sandbox: String,
}

impl From<&Container> for ContainerRecord {
    fn from(c: &Container) -> Self {
        ContainerRecord {
            labels: c
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            image: c.image.clone(),
            runtime_name: c.runtime.name.clone(),
            runtime_options: c.runtime.options.as_ref().map(AnyRecord::from),
            spec: c.spec.as_ref().map(AnyRecord::from),
            snapshotter: c.snapshotter.clone(),
            snapshot_key: c.snapshot_key.clone(),
            created_at: c.created_at.into(),
            updated_at: c.updated_at.into(),
            extensions: c
                .extensions
                .iter()
                .map(|(k, v)| (k.clone(), AnyRecord::from(v)))
                .collect(),
            sandbox: c.sandbox.clone(),
        }
    }
}

impl ContainerRecord {
    /// The public model of this record, whose key holds `id`.
    pub(crate) fn into_container(self, id: &str) -> Container {
        Container {
            id: id.to_owned(),
            labels: self.labels.into_iter().collect::<HashMap<_, _>>(),
            image: self.image,
            runtime: Runtime {
                name: self.runtime_name,
                options: self.runtime_options.map(Any::from),
            },
            spec: self.spec.map(Any::from),
            snapshotter: self.snapshotter,
            snapshot_key: self.snapshot_key,
            created_at: self.created_at.into(),
            updated_at: self.updated_at.into(),
            extensions: self
                .extensions
                .into_iter()
                .map(|(k, v)| (k, Any::from(v)))
                .collect(),
            sandbox: self.sandbox,
        }
    }
}

/// A lease as stored: the namespace and id are the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    created_at: Timestamp,
    labels: BTreeMap<String, String>,
}

impl From<&Lease> for LeaseRecord {
    fn from(l: &Lease) -> Self {
        LeaseRecord {
            created_at: l.created_at.into(),
            labels: l
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

impl LeaseRecord {
    /// The public model of this record, whose key holds `id`.
    pub(crate) fn into_lease(self, id: &str) -> Lease {
        Lease {
            id: id.to_owned(),
            created_at: self.created_at.into(),
            labels: self.labels.into_iter().collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encoded_record_starts_with_format_byte() {
        let bytes = encode(&NamespaceRecord::default()).unwrap();
        assert_eq!(bytes[0], RECORD_FORMAT);
        assert_eq!(
            decode::<NamespaceRecord>(&bytes).unwrap(),
            NamespaceRecord::default()
        );
    }

    #[test]
    fn unknown_record_format_is_refused() {
        let mut bytes = encode(&NamespaceRecord::default()).unwrap();
        bytes[0] = 99;
        let err = decode::<NamespaceRecord>(&bytes).unwrap_err();
        assert!(err.message().contains("record format 99"), "{err}");
        assert!(decode::<NamespaceRecord>(&[]).is_err());
    }

    #[test]
    fn timestamps_round_trip_both_sides_of_the_epoch() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 250),
            UNIX_EPOCH - Duration::from_secs(7),
        ] {
            assert_eq!(SystemTime::from(Timestamp::from(t)), t);
        }
    }

    #[test]
    fn container_round_trips_through_record() {
        let c = Container {
            id: "web".into(),
            labels: HashMap::from([("a".into(), "b".into())]),
            image: "docker.io/library/busybox:latest".into(),
            runtime: Runtime {
                name: "io.containerd.runc.v2".into(),
                options: Some(Any {
                    type_url: "opts".into(),
                    value: vec![1, 2],
                }),
            },
            spec: Some(Any {
                type_url: "spec".into(),
                value: vec![3],
            }),
            snapshotter: "overlayfs".into(),
            snapshot_key: "web".into(),
            created_at: UNIX_EPOCH + Duration::new(10, 1),
            updated_at: UNIX_EPOCH + Duration::new(20, 2),
            extensions: HashMap::from([("ext".into(), Any::default())]),
            sandbox: "pod".into(),
        };
        let bytes = encode(&ContainerRecord::from(&c)).unwrap();
        let back = decode::<ContainerRecord>(&bytes)
            .unwrap()
            .into_container("web");
        assert_eq!(back, c);
    }
}
