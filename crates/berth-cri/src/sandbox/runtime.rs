//! A runtime handler's shim options, as containerd's CRI puts them in a
//! container record: for runc shims, the handler's `options` table encoded
//! as `containerd.runc.v1.Options`.

use crate::config::RuntimeHandler;
use berth_core::{Error, Result};
use prost_types::Any;

/// The type URL of runc shim options.
pub const RUNC_OPTIONS_TYPE_URL: &str = "containerd.runc.v1.Options";

/// The runtime types whose options are `containerd.runc.v1.Options`.
const RUNC_TYPES: &[&str] = &["io.containerd.runc.v2", "io.containerd.runc.v1"];

/// The fields of `containerd.runc.v1.Options`: TOML key, field number, kind.
const FIELDS: &[(&str, u32, Kind)] = &[
    ("NoPivotRoot", 1, Kind::Bool),
    ("NoNewKeyring", 2, Kind::Bool),
    ("ShimCgroup", 3, Kind::String),
    ("IoUid", 4, Kind::Uint),
    ("IoGid", 5, Kind::Uint),
    ("BinaryName", 6, Kind::String),
    ("Root", 7, Kind::String),
    ("CriuPath", 8, Kind::String),
    ("SystemdCgroup", 9, Kind::Bool),
    ("CriuImagePath", 10, Kind::String),
    ("CriuWorkPath", 11, Kind::String),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Uint,
    String,
}

/// The handler's options as the record's `runtime.options`; `None` for
/// runtimes whose options berth does not know.
pub fn runtime_options(handler: &RuntimeHandler) -> Result<Option<Any>> {
    if !RUNC_TYPES.contains(&handler.runtime_type.as_str()) {
        return Ok(None);
    }
    let mut value = Vec::new();
    for (key, number, kind) in FIELDS {
        let Some(v) = handler.options.get(*key) else {
            continue;
        };
        let bad =
            || Error::invalid_argument(format!("runtime option {key}: {v} is not a {kind:?}"));
        match kind {
            Kind::Bool => {
                if v.as_bool().ok_or_else(bad)? {
                    varint(&mut value, u64::from(number << 3));
                    varint(&mut value, 1);
                }
            }
            Kind::Uint => {
                let n = v
                    .as_u64()
                    .filter(|n| *n <= u64::from(u32::MAX))
                    .ok_or_else(bad)?;
                if n != 0 {
                    varint(&mut value, u64::from(number << 3));
                    varint(&mut value, n);
                }
            }
            Kind::String => {
                let s = v.as_str().ok_or_else(bad)?;
                if !s.is_empty() {
                    varint(&mut value, u64::from((number << 3) | 2));
                    varint(&mut value, s.len() as u64);
                    value.extend_from_slice(s.as_bytes());
                }
            }
        }
    }
    Ok(Some(Any {
        type_url: RUNC_OPTIONS_TYPE_URL.into(),
        value,
    }))
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_options_are_encoded_field_by_field() {
        let mut handler = RuntimeHandler::default();
        handler.options.insert("SystemdCgroup".into(), true.into());
        handler.options.insert("BinaryName".into(), "crun".into());
        handler.options.insert("IoUid".into(), 300.into());
        handler.options.insert("Unknown".into(), 1.into());
        let any = runtime_options(&handler)
            .expect("test step")
            .expect("test step");
        assert_eq!(any.type_url, RUNC_OPTIONS_TYPE_URL);
        assert_eq!(
            any.value,
            [&[0x20, 0xac, 0x02][..], &[0x32, 4], b"crun", &[0x48, 1],].concat()
        );
        handler.options.insert("SystemdCgroup".into(), "yes".into());
        assert!(runtime_options(&handler).is_err());
        handler.runtime_type = "io.containerd.kata.v2".into();
        assert!(runtime_options(&handler).expect("test step").is_none());
    }

    #[test]
    fn no_options_are_an_empty_message() {
        let any = runtime_options(&RuntimeHandler::default())
            .expect("test step")
            .expect("test step");
        assert!(any.value.is_empty());
    }
}
