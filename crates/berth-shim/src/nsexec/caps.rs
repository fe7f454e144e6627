//! Linux capabilities by name, and the five sets of an OCI process.

use berth_core::capabilities::NAMES;
use serde_json::Value;

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
pub use berth_core::capabilities::number;

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
