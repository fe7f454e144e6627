//! Linux capabilities by name, and the five sets of an OCI process.

use serde_json::Value;

/// Capability names in kernel order (`include/uapi/linux/capability.h`).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The highest capability the kernel knows (and this table names).
pub fn last_cap() -> u32 {
    let known = (NAMES.len() - 1) as u32;
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map_or(known, |k: u32| k.min(known))
}

/// A capability's number; unknown names are `None` (runc warns about and
/// skips them).
pub fn number(name: &str) -> Option<u32> {
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// An OCI process's capability sets as bit masks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapSets {
    /// From `process.capabilities` (a missing set is empty).
    pub fn from_spec(caps: &Value) -> Self {
        let set = |key: &str| {
            caps[key]
                .as_array()
                .map_or(&[][..], |v| v)
                .iter()
                .filter_map(|n| n.as_str().and_then(number))
                .filter(|&n| n <= last_cap())
                .fold(0u64, |m, n| m | 1 << n)
        };
        CapSets {
            bounding: set("bounding"),
            effective: set("effective"),
            permitted: set("permitted"),
            inheritable: set("inheritable"),
            ambient: set("ambient"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_from_a_spec() {
        let caps = serde_json::json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NO_SUCH"],
            "effective": ["CAP_KILL"],
            "ambient": []
        });
        let s = CapSets::from_spec(&caps);
        assert_eq!(s.bounding, 1 | 1 << 5);
        assert_eq!(s.effective, 1 << 5);
        assert_eq!(s.permitted, 0);
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_NOPE"), None);
    }
}
