//! `[plugins."<type>.<id>"]`: the sections of the plugins berth has, with
//! containerd's key names and defaults, and what becomes of the others.
//!
//! | section | keys berth acts on |
//! |---|---|
//! | `io.containerd.gc.v1.scheduler` | `pause_threshold`, `deletion_threshold`, `mutation_threshold`, `schedule_delay`, `startup_delay` |
//! | `io.containerd.snapshotter.v1.overlayfs`, `….native` | `root_path` |
//! | `io.containerd.runtime.v2.task` | `shims` (berth's own: a shim binary per runtime name), `builtin_exec` (berth's own: `false` sends every exec of berth's shim to `runc exec`) |
//! | `io.containerd.internal.v1.opt` | `path` |
//! | `io.containerd.grpc.v1.cri` | see `cri.rs` |
//! | `io.containerd.internal.v1.cni` | berth's own: `bin_dirs`, `conf_dir`, `cache_dir`, `timeout_secs`, `default_network.{name,bridge,subnet,subnet6,ipam_data_dir}` |
//!
//! A section for a plugin berth does not have (btrfs, …) is
//! warned about once and ignored, as containerd ignores plugins it lacks.
//! A key of a berth plugin that berth does not act on is warned about
//! unless it holds containerd's default; a key containerd does not know
//! either is always warned about.

use super::containerd::ignored_default;
use super::keys::{bad_value, display_key, path_value, Document, KeyPath, Warning};
use crate::gc::SchedulerConfig;
use anyhow::Result;
use berth_core::goduration as duration;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The GC scheduler's section.
pub const GC: &str = "io.containerd.gc.v1.scheduler";
/// The overlayfs snapshotter's section.
pub const OVERLAYFS: &str = "io.containerd.snapshotter.v1.overlayfs";
/// The native snapshotter's section.
pub const NATIVE: &str = "io.containerd.snapshotter.v1.native";
/// The runtime v2 task manager's section.
pub const TASK: &str = "io.containerd.runtime.v2.task";
/// The opt directory plugin's section.
pub const OPT: &str = "io.containerd.internal.v1.opt";
/// berth's CNI networking section.
pub const CNI: &str = "io.containerd.internal.v1.cni";

/// The settings of the plugins berth has.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfigs {
    /// Garbage collection scheduling.
    pub gc: SchedulerConfig,
    /// The overlayfs snapshotter.
    pub overlayfs: SnapshotterConfig,
    /// The native snapshotter.
    pub native: SnapshotterConfig,
    /// Task runtimes.
    pub task: TaskConfig,
    /// The opt directory.
    pub opt: OptConfig,
    /// CNI networking.
    pub cni: CniConfig,
    /// The CRI plugin.
    pub cri: berth_cri::CriConfig,
}

/// CNI networking for containers that ask for it (`berth run --net cni`).
///
/// ```toml
/// [plugins."io.containerd.internal.v1.cni"]
/// bin_dirs = ["/usr/lib/cni"]
/// conf_dir = "/etc/cni/net.d"
/// [plugins."io.containerd.internal.v1.cni".default_network]
/// bridge = "berth0"
/// subnet = "10.88.0.0/16"
/// subnet6 = "fd88::/64"
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CniConfig {
    /// Plugin directories, searched in order.
    pub bin_dirs: Vec<PathBuf>,
    /// The network configuration directory.
    pub conf_dir: PathBuf,
    /// The result cache (libcni's `results/` goes inside); `<state>/cni`
    /// if unset.
    pub cache_dir: Option<PathBuf>,
    /// The longest one plugin call may take, in seconds.
    pub timeout_secs: u64,
    /// The network used when `conf_dir` holds none.
    pub default_network: DefaultNetworkConfig,
}

/// The default network: a bridge with host-local IPAM, portmap, firewall.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultNetworkConfig {
    /// The network's name.
    pub name: String,
    /// The bridge device.
    pub bridge: String,
    /// The IPv4 subnet.
    pub subnet: String,
    /// An IPv6 subnet; IPv6 is on when set.
    pub subnet6: Option<String>,
    /// host-local's lease directory; `<state>/cni/networks` if unset (the
    /// leases go with the namespaces when the machine reboots).
    pub ipam_data_dir: Option<PathBuf>,
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            conf_dir: "/etc/cni/net.d".into(),
            cache_dir: None,
            timeout_secs: 30,
            default_network: DefaultNetworkConfig::default(),
        }
    }
}

impl Default for DefaultNetworkConfig {
    fn default() -> Self {
        DefaultNetworkConfig {
            name: "berth".into(),
            bridge: "berth0".into(),
            subnet: "10.88.0.0/16".into(),
            subnet6: None,
            ipam_data_dir: None,
        }
    }
}

/// A snapshotter's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotterConfig {
    /// Where it keeps its data; unset is `<root>/snapshots/<name>`.
    pub root_path: Option<PathBuf>,
}

/// Task runtimes: which shim binary serves a runtime name (berth's key).
///
/// ```toml
/// [plugins."io.containerd.runtime.v2.task".shims]
/// "io.containerd.runc.v2" = "/usr/bin/containerd-shim-runc-v2"
/// ```
///
/// Names not listed resolve as containerd resolves them;
/// `io.containerd.runc.v2` defaults to berth's own `containerd-shim-berth-v2`
/// next to berthd.
///
/// `builtin_exec = false` (berth's key) makes berth's shim run every exec
/// with `runc exec` rather than start it itself: berthd then passes
/// `BERTH_SHIM_EXEC=runc` to the shims it starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskConfig {
    /// Shim binaries by runtime name.
    pub shims: BTreeMap<String, PathBuf>,
    /// `builtin_exec = false`: execs go to runc.
    pub runc_exec: bool,
}

/// containerd's opt plugin: `<path>/bin` joins `PATH` and `<path>/lib`
/// joins `LD_LIBRARY_PATH`, for shims and runtimes installed there.
#[derive(Debug, Clone, PartialEq)]
pub struct OptConfig {
    /// The opt directory.
    pub path: PathBuf,
}

impl Default for PluginConfigs {
    fn default() -> Self {
        PluginConfigs {
            gc: SchedulerConfig::default(),
            overlayfs: SnapshotterConfig::default(),
            native: SnapshotterConfig::default(),
            task: TaskConfig::default(),
            opt: OptConfig {
                path: "/opt/containerd".into(),
            },
            cni: CniConfig::default(),
            cri: berth_cri::CriConfig::default(),
        }
    }
}

/// Decodes `[plugins]`, leaving nothing of it in `doc`. `known` lists the
/// `type.id` of every plugin berth registers.
pub fn decode(
    doc: &mut Document,
    version: i64,
    known: &[String],
    warnings: &mut Vec<Warning>,
) -> Result<PluginConfigs> {
    normalize_names(doc, version, known)?;
    let mut out = PluginConfigs::default();
    decode_gc(doc, &mut out.gc, warnings)?;
    for (name, config) in [(OVERLAYFS, &mut out.overlayfs), (NATIVE, &mut out.native)] {
        config.root_path = doc
            .take_with(&["plugins", name, "root_path"], path_value)?
            .filter(|p| !p.as_os_str().is_empty());
    }
    for (key, entry) in doc.take_below(&["plugins", TASK, "shims"]) {
        let full: KeyPath = ["plugins", TASK, "shims"]
            .iter()
            .map(|s| s.to_string())
            .chain(key.iter().cloned())
            .collect();
        let path = path_value(entry.value).map_err(|why| bad_value(&entry.origin, &full, why))?;
        out.task.shims.insert(key.join("."), path);
    }
    if let Some(builtin) = doc.take::<bool>(&["plugins", TASK, "builtin_exec"])? {
        out.task.runc_exec = !builtin;
    }
    if let Some(path) = doc.take_with(&["plugins", OPT, "path"], path_value)? {
        out.opt.path = path;
    }
    decode_cni(doc, &mut out.cni)?;
    out.cri = super::cri::decode(doc, warnings)?;
    warn_leftovers(doc, known, warnings);
    Ok(out)
}

fn decode_cni(doc: &mut Document, cni: &mut CniConfig) -> Result<()> {
    if let Some(dirs) = doc.take::<Vec<PathBuf>>(&["plugins", CNI, "bin_dirs"])? {
        cni.bin_dirs = dirs;
    }
    if let Some(dir) = doc.take_with(&["plugins", CNI, "conf_dir"], path_value)? {
        cni.conf_dir = dir;
    }
    cni.cache_dir = doc
        .take_with(&["plugins", CNI, "cache_dir"], path_value)?
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(secs) = doc.take(&["plugins", CNI, "timeout_secs"])? {
        cni.timeout_secs = secs;
    }
    let net = &mut cni.default_network;
    let key = |k: &'static str| ["plugins", CNI, "default_network", k];
    for (k, field) in [
        ("name", &mut net.name),
        ("bridge", &mut net.bridge),
        ("subnet", &mut net.subnet),
    ] {
        if let Some(value) = doc.take::<String>(&key(k))? {
            *field = value;
        }
    }
    net.subnet6 = doc
        .take::<String>(&key("subnet6"))?
        .filter(|s| !s.is_empty());
    net.ipam_data_dir = doc
        .take_with(&key("ipam_data_dir"), path_value)?
        .filter(|p| !p.as_os_str().is_empty());
    Ok(())
}

fn decode_gc(
    doc: &mut Document,
    gc: &mut SchedulerConfig,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let key = |k: &'static str| ["plugins", GC, k];
    if let Some(threshold) = doc.entries.get(&owned(&key("pause_threshold"))).cloned() {
        let value: f64 = doc.take(&key("pause_threshold"))?.unwrap_or_default();
        if !(0.0..=0.5).contains(&value) {
            warnings.push(Warning {
                origin: threshold.origin,
                key: display_key(&owned(&key("pause_threshold"))),
                message: format!("{value} is outside 0–0.5: clamped, as containerd does"),
            });
        }
        gc.pause_threshold = value;
    }
    if let Some(n) = doc.take(&key("deletion_threshold"))? {
        gc.deletion_threshold = n;
    }
    if let Some(n) = doc.take(&key("mutation_threshold"))? {
        gc.mutation_threshold = n;
    }
    let as_duration = |v: toml::Value| match v {
        toml::Value::String(s) => duration::parse(&s),
        other => Err(format!(
            "expected a duration string such as \"100ms\", found {}",
            other.type_str()
        )),
    };
    if let Some(d) = doc.take_with(&key("schedule_delay"), as_duration)? {
        gc.schedule_delay = d;
    }
    if let Some(d) = doc.take_with(&key("startup_delay"), as_duration)? {
        gc.startup_delay = d;
    }
    Ok(())
}

fn owned(path: &[&str]) -> KeyPath {
    path.iter().map(|s| s.to_string()).collect()
}

/// Version 1 names plugin sections by id (`[plugins.overlayfs]`); later
/// versions want `type.id`, and a short name there is an error, as in
/// containerd's `ValidateV2`.
fn normalize_names(doc: &mut Document, version: i64, known: &[String]) -> Result<()> {
    for name in doc.children(&["plugins"]) {
        if name.split('.').count() >= 4 {
            continue;
        }
        let path = owned(&["plugins", &name]);
        if version >= 2 {
            // `children` found the name, so it has a table or a key.
            let origin = doc
                .table_origin(&path)
                .expect("a named plugin section has an origin");
            return Err(bad_value(
                &origin,
                &path,
                format!("invalid plugin key URI {name:?}: expect io.containerd.x.vx.<id>"),
            ));
        }
        let Some(uri) = known
            .iter()
            .find(|uri| uri.rsplit('.').next() == Some(name.as_str()))
        else {
            continue;
        };
        for (rest, entry) in doc.take_below(&["plugins", &name]) {
            let mut key = owned(&["plugins", uri]);
            key.extend(rest);
            doc.entries.insert(key, entry);
        }
        if let Some(origin) = doc.tables.remove(&path) {
            doc.tables.insert(owned(&["plugins", uri]), origin);
        }
    }
    Ok(())
}

/// Warns about what is left under `[plugins]` and removes it.
fn warn_leftovers(doc: &mut Document, known: &[String], warnings: &mut Vec<Warning>) {
    for name in doc.children(&["plugins"]) {
        let path = owned(&["plugins", &name]);
        let origin = doc.table_origin(&path);
        let leftovers = doc.take_below(&["plugins", &name]);
        doc.tables.retain(|k, _| !k.starts_with(&path));
        if !known.contains(&name) {
            if let Some(origin) = origin {
                warnings.push(Warning {
                    origin,
                    key: display_key(&path),
                    message: "berth has no such plugin: section ignored".into(),
                });
            }
            continue;
        }
        for (rest, entry) in leftovers {
            let mut full = path.clone();
            full.extend(rest);
            let message = match ignored_default(&full) {
                Some(default) if default == entry.value => continue,
                Some(_) => "berth does not act on this key: ignored",
                None => "not a key of this plugin: ignored",
            };
            warnings.push(Warning {
                origin: entry.origin,
                key: display_key(&full),
                message: message.into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn known() -> Vec<String> {
        [
            GC,
            OVERLAYFS,
            NATIVE,
            TASK,
            OPT,
            CNI,
            "io.containerd.content.v1.content",
        ]
        .map(String::from)
        .to_vec()
    }

    fn decode_text(text: &str) -> Result<(PluginConfigs, Vec<Warning>)> {
        let mut doc = super::super::source::parse(text, Path::new("/c.toml"))?;
        let version = super::super::source::version_of(&doc);
        let mut warnings = Vec::new();
        let out = decode(&mut doc, version, &known(), &mut warnings)?;
        Ok((out, warnings))
    }

    #[test]
    fn gc_settings_are_read() {
        let (out, warnings) = decode_text(
            "version = 2\n[plugins.\"io.containerd.gc.v1.scheduler\"]\npause_threshold = 0.1\n\
             deletion_threshold = 3\nmutation_threshold = 7\nschedule_delay = \"1s\"\nstartup_delay = \"5ms\"\n",
        )
        .expect("decode");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            out.gc,
            SchedulerConfig {
                pause_threshold: 0.1,
                deletion_threshold: 3,
                mutation_threshold: 7,
                schedule_delay: Duration::from_secs(1),
                startup_delay: Duration::from_millis(5),
            }
        );
    }

    #[test]
    fn a_bad_gc_value_names_file_line_and_key() {
        let err = decode_text(
            "version = 2\n[plugins.\"io.containerd.gc.v1.scheduler\"]\n  schedule_delay = \"soon\"\n",
        )
        .expect_err("bad duration");
        let msg = format!("{err:#}");
        assert!(msg.contains("/c.toml line 3"), "{msg}");
        assert!(
            msg.contains("plugins.\"io.containerd.gc.v1.scheduler\".schedule_delay"),
            "{msg}"
        );
        let err = decode_text(
            "version = 2\n[plugins.\"io.containerd.gc.v1.scheduler\"]\nmutation_threshold = -1\n",
        )
        .expect_err("negative");
        assert!(format!("{err:#}").contains("mutation_threshold"), "{err:#}");
    }

    #[test]
    fn unknown_plugins_and_keys_are_warned_about() {
        let (_, warnings) = decode_text(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"x\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = \"/opt/cni/bin\"\n\
             [plugins.\"io.containerd.snapshotter.v1.overlayfs\"]\nupperdir_label = false\nmount_options = [\"x\"]\nroot_pth = \"/x\"\n",
        )
        .expect("decode");
        let text: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:#?}");
        assert!(text[0]
            .contains("line 2: plugins.\"io.containerd.grpc.v1.cri\": berth has no such plugin"));
        assert!(text
            .iter()
            .any(|w| w.contains("mount_options: berth does not act")));
        assert!(text.iter().any(|w| w.contains(
            "line 9: plugins.\"io.containerd.snapshotter.v1.overlayfs\".root_pth: not a key"
        )));
    }

    #[test]
    fn cni_settings_are_read() {
        let (out, warnings) = decode_text(
            "version = 2\n[plugins.\"io.containerd.internal.v1.cni\"]\nconf_dir = \"/c\"\n\
             bin_dirs = [\"/b\"]\ntimeout_secs = 5\n\
             [plugins.\"io.containerd.internal.v1.cni\".default_network]\nbridge = \"b1\"\nsubnet6 = \"fd00::/64\"\n",
        )
        .expect("decode");
        assert_eq!(warnings, vec![]);
        assert_eq!(out.cni.conf_dir, PathBuf::from("/c"));
        assert_eq!(out.cni.bin_dirs, vec![PathBuf::from("/b")]);
        assert_eq!(out.cni.timeout_secs, 5);
        assert_eq!(out.cni.default_network.bridge, "b1");
        assert_eq!(out.cni.default_network.subnet, "10.88.0.0/16");
        assert_eq!(
            out.cni.default_network.subnet6.as_deref(),
            Some("fd00::/64")
        );
    }

    #[test]
    fn shims_and_paths_are_read() {
        let (out, _) = decode_text(
            "version = 2\n[plugins.\"io.containerd.runtime.v2.task\".shims]\n\"io.containerd.runc.v2\" = \"/usr/bin/containerd-shim-runc-v2\"\n\
             [plugins.\"io.containerd.snapshotter.v1.native\"]\nroot_path = \"/n\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\npath = \"/o\"\n",
        )
        .expect("decode");
        assert_eq!(
            out.task.shims["io.containerd.runc.v2"],
            PathBuf::from("/usr/bin/containerd-shim-runc-v2")
        );
        assert_eq!(out.native.root_path, Some(PathBuf::from("/n")));
        assert_eq!(out.overlayfs.root_path, None);
        assert_eq!(out.opt.path, PathBuf::from("/o"));
        assert!(!out.task.runc_exec);
        let (out, warnings) = decode_text(
            "version = 2\n[plugins.\"io.containerd.runtime.v2.task\"]\nbuiltin_exec = false\n",
        )
        .expect("decode");
        assert!(out.task.runc_exec);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn version_1_names_plugins_by_id_and_version_2_refuses_that() {
        let (out, _) =
            decode_text("[plugins.scheduler]\nmutation_threshold = 9\n").expect("v1 decode");
        assert_eq!(out.gc.mutation_threshold, 9);
        let err = decode_text("version = 2\n[plugins.scheduler]\nmutation_threshold = 9\n")
            .expect_err("v2 short name");
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }
}
