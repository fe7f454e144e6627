//! The shim crates use rust-protobuf, the daemon's API prost. Where a message
//! is the same proto on both sides (mounts, `Any`, timestamps) it crosses by
//! encoding and decoding bytes.

use berth_core::{Error, Result};
use std::time::SystemTime;

/// A prost message as the equivalent rust-protobuf message.
pub fn to_shim<P: prost::Message, R: protobuf::Message>(message: &P) -> Result<R> {
    R::parse_from_bytes(&message.encode_to_vec())
        .map_err(|err| Error::internal(format!("convert to shim message: {err}")))
}

/// A rust-protobuf message as the equivalent prost message.
pub fn from_shim<R: protobuf::Message, P: prost::Message + Default>(message: &R) -> Result<P> {
    let bytes = message
        .write_to_bytes()
        .map_err(|err| Error::internal(format!("encode shim message: {err}")))?;
    P::decode(bytes.as_slice())
        .map_err(|err| Error::internal(format!("convert from shim message: {err}")))
}

/// A rust-protobuf timestamp as a `SystemTime` (the epoch when unset).
pub(crate) fn timestamp_from_shim(
    ts: &protobuf::MessageField<protobuf::well_known_types::timestamp::Timestamp>,
) -> Option<SystemTime> {
    let ts = ts.as_ref()?;
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}

/// A `SystemTime` as a rust-protobuf timestamp.
pub fn timestamp_to_shim(time: SystemTime) -> protobuf::well_known_types::timestamp::Timestamp {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut ts = protobuf::well_known_types::timestamp::Timestamp::new();
    ts.seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    ts.nanos = i32::try_from(since.subsec_nanos()).unwrap_or(0);
    ts
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::types::mount::Mount as ShimMount;

    #[test]
    fn mounts_cross_both_ways() {
        let mount = berth_api::pb::types::Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec!["lowerdir=/a".into()],
        };
        let shim: ShimMount = to_shim(&mount).expect("to shim");
        assert_eq!(shim.type_, "overlay");
        assert_eq!(shim.options, vec!["lowerdir=/a".to_string()]);
        let back: berth_api::pb::types::Mount = from_shim(&shim).expect("from shim");
        assert_eq!(back, mount);
    }

    #[test]
    fn timestamps_round_trip() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        let ts = protobuf::MessageField::some(timestamp_to_shim(now));
        assert_eq!(timestamp_from_shim(&ts), Some(now));
    }
}
