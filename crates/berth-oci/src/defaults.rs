//! containerd 1.6's default Linux spec, checked field by field against what
//! Debian's `ctr c create --rootfs` stores.

use crate::spec::*;

/// The runtime-spec version containerd 1.6 writes.
pub const OCI_VERSION: &str = "1.0.2-dev";
/// containerd's default `PATH`.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// containerd's default capabilities, in its order.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: destination.into(),
        kind: kind.into(),
        source: source.into(),
        options: strings(options),
    }
}

fn default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/run",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
    ]
}

/// The default Linux spec for container `id` in `namespace`: root `rootfs`
/// (relative to the bundle), process `/` as root with no args yet.
pub fn default_spec(namespace: &str, id: &str) -> Spec {
    let caps = strings(DEFAULT_CAPABILITIES);
    let namespaces = ["pid", "ipc", "uts", "mount", "network"]
        .iter()
        .map(|kind| Namespace {
            kind: kind.to_string(),
            path: String::new(),
        })
        .collect();
    Spec {
        version: OCI_VERSION.into(),
        process: Some(Process {
            cwd: "/".into(),
            no_new_privileges: true,
            capabilities: Some(Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps,
                ..Capabilities::default()
            }),
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE".into(),
                hard: 1024,
                soft: 1024,
            }],
            ..Process::default()
        }),
        root: Some(Root {
            path: "rootfs".into(),
            readonly: false,
        }),
        mounts: default_mounts(),
        linux: Some(Linux {
            resources: Some(Resources {
                devices: vec![DeviceRule {
                    allow: false,
                    access: "rwm".into(),
                    ..DeviceRule::default()
                }],
                ..Resources::default()
            }),
            cgroups_path: format!("/{namespace}/{id}"),
            namespaces,
            masked_paths: strings(MASKED_PATHS),
            readonly_paths: strings(READONLY_PATHS),
            ..Linux::default()
        }),
        ..Spec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_serialises_in_go_field_order() {
        let json = String::from_utf8(default_spec("default", "c").to_json()).expect("utf-8");
        let keys = [
            "\"ociVersion\"",
            "\"process\"",
            "\"root\"",
            "\"mounts\"",
            "\"linux\"",
        ];
        let positions: Vec<usize> = keys.iter().map(|k| json.find(k).expect(k)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        let process = [
            "\"user\"",
            "\"cwd\"",
            "\"capabilities\"",
            "\"rlimits\"",
            "\"noNewPrivileges\"",
        ];
        let positions: Vec<usize> = process.iter().map(|k| json.find(k).expect(k)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    }

    #[test]
    fn default_spec_matches_containerd() {
        let spec = default_spec("ns", "web");
        let linux = spec.linux.as_ref().expect("linux");
        assert_eq!(linux.cgroups_path, "/ns/web");
        let kinds: Vec<&str> = linux.namespaces.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(kinds, ["pid", "ipc", "uts", "mount", "network"]);
        assert_eq!(linux.masked_paths.len(), 10);
        assert_eq!(spec.mounts.len(), 7);
        let process = spec.process.as_ref().expect("process");
        assert_eq!(
            process.capabilities.as_ref().expect("caps").bounding.len(),
            14
        );
        assert!(process.no_new_privileges);
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = r#"{"ociVersion":"1.0.2","hooks":{"prestart":[]},"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW"}}}"#;
        let spec = Spec::from_json(text.as_bytes()).expect("parse");
        let back: serde_json::Value = serde_json::from_slice(&spec.to_json()).expect("json");
        assert_eq!(back["hooks"]["prestart"], serde_json::json!([]));
        assert_eq!(back["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
    }
}
