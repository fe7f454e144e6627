//! `containerd.runc.v1.Options`: the runtime options a runc shim takes at
//! task create, from a container record's runtime options.
//!
//! containerd's CRI config spells them as a TOML table with Go's field
//! names (`[…runtimes.runc.options] BinaryName = "…"`);
//! [`RuncOptions::from_config`] reads that form.

use berth_core::{Error, Result};
use prost_types::Any;

/// The options' type URL.
pub const RUNC_OPTIONS_TYPE_URL: &str = "containerd.runc.v1.Options";

/// `containerd.runc.v1.Options` (field numbers from containerd's
/// `api/types/runc/options/oci.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuncOptions {
    /// `NoPivotRoot`.
    #[prost(bool, tag = "1")]
    pub no_pivot_root: bool,
    /// `NoNewKeyring`.
    #[prost(bool, tag = "2")]
    pub no_new_keyring: bool,
    /// `ShimCgroup`: the cgroup the shim moves itself into.
    #[prost(string, tag = "3")]
    pub shim_cgroup: String,
    /// `IoUid`.
    #[prost(uint32, tag = "4")]
    pub io_uid: u32,
    /// `IoGid`.
    #[prost(uint32, tag = "5")]
    pub io_gid: u32,
    /// `BinaryName`: the OCI runtime binary.
    #[prost(string, tag = "6")]
    pub binary_name: String,
    /// `Root`: the runtime's state root.
    #[prost(string, tag = "7")]
    pub root: String,
    /// `SystemdCgroup`.
    #[prost(bool, tag = "9")]
    pub systemd_cgroup: bool,
    /// `CriuImagePath`.
    #[prost(string, tag = "10")]
    pub criu_image_path: String,
    /// `CriuWorkPath`.
    #[prost(string, tag = "11")]
    pub criu_work_path: String,
}

impl RuncOptions {
    /// Options naming only the OCI runtime binary.
    pub fn binary(binary: impl Into<String>) -> Self {
        RuncOptions {
            binary_name: binary.into(),
            ..Default::default()
        }
    }

    /// The options from containerd's config form: a table keyed by Go field
    /// names. Unknown keys (`CriuPath`, removed in containerd 2) are
    /// ignored; a value of the wrong type is `InvalidArgument`.
    pub fn from_config(table: &serde_json::Map<String, serde_json::Value>) -> Result<Self> {
        let mut out = RuncOptions::default();
        for (key, value) in table {
            let bad = || Error::invalid_argument(format!("runc option {key}: unexpected {value}"));
            let string = || value.as_str().map(str::to_string).ok_or_else(bad);
            let boolean = || value.as_bool().ok_or_else(bad);
            let id = || {
                value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(bad)
            };
            match key.as_str() {
                "NoPivotRoot" => out.no_pivot_root = boolean()?,
                "NoNewKeyring" => out.no_new_keyring = boolean()?,
                "ShimCgroup" => out.shim_cgroup = string()?,
                "IoUid" => out.io_uid = id()?,
                "IoGid" => out.io_gid = id()?,
                "BinaryName" => out.binary_name = string()?,
                "Root" => out.root = string()?,
                "SystemdCgroup" => out.systemd_cgroup = boolean()?,
                "CriuImagePath" => out.criu_image_path = string()?,
                "CriuWorkPath" => out.criu_work_path = string()?,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The options as an `Any` for a container record's runtime.
    pub fn to_any(&self) -> Any {
        Any {
            type_url: RUNC_OPTIONS_TYPE_URL.to_string(),
            value: prost::Message::encode_to_vec(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_name_is_field_six() {
        let any = RuncOptions::binary("/usr/bin/crun").to_any();
        assert_eq!(any.type_url, RUNC_OPTIONS_TYPE_URL);
        assert_eq!(&any.value[..2], &[0x32, 13]);
        assert_eq!(&any.value[2..], b"/usr/bin/crun");
        let long = RuncOptions::binary("x".repeat(200)).to_any();
        assert_eq!(&long.value[..3], &[0x32, 0xc8, 0x01]);
    }

    #[test]
    fn containerd_config_names_are_read() {
        let table = serde_json::json!({
            "BinaryName": "/usr/bin/crun",
            "SystemdCgroup": true,
            "IoUid": 1000,
            "CriuPath": "",
        });
        let options =
            RuncOptions::from_config(table.as_object().expect("object")).expect("valid options");
        assert_eq!(options.binary_name, "/usr/bin/crun");
        assert!(options.systemd_cgroup);
        assert_eq!(options.io_uid, 1000);
        let bad = serde_json::json!({ "IoUid": "x" });
        let err =
            RuncOptions::from_config(bad.as_object().expect("object")).expect_err("a string uid");
        assert_eq!(err.kind(), berth_core::ErrorKind::InvalidArgument);
    }
}
