//! Spec options: each changes a spec the way containerd's namesake in
//! `pkg/oci/spec_opts.go` does. They are plain functions over `&mut Spec`.

use crate::spec::*;
use crate::users::resolve_user;
use crate::DEFAULT_PATH_ENV;
use berth_core::Result;
use std::path::Path;

/// `WithProcessArgs`: the command line.
pub fn with_args(spec: &mut Spec, args: &[String]) {
    spec.process_mut().args = args.to_vec();
}

/// `WithEnv`: sets `KEY=value` entries, replacing earlier values of a key;
/// a bare `KEY` removes it.
pub fn with_env(spec: &mut Spec, env: &[String]) {
    let process = spec.process_mut();
    for entry in env {
        let key = entry.split_once('=').map(|(k, _)| k).unwrap_or(entry);
        process
            .env
            .retain(|e| e.split_once('=').map(|(k, _)| k).unwrap_or(e) != key);
        if entry.contains('=') {
            process.env.push(entry.clone());
        }
    }
}

/// `WithDefaultPathEnv`: `PATH` when none is set.
pub fn with_default_path_env(spec: &mut Spec) {
    let process = spec.process_mut();
    if !process.env.iter().any(|e| e.starts_with("PATH=")) {
        process.env.push(DEFAULT_PATH_ENV.into());
    }
}

/// `WithProcessCwd`.
pub fn with_cwd(spec: &mut Spec, cwd: &str) {
    spec.process_mut().cwd = cwd.into();
}

/// `WithTTY`: a terminal, and `TERM=xterm` as containerd sets.
pub fn with_tty(spec: &mut Spec) {
    spec.process_mut().terminal = true;
    with_env(spec, &["TERM=xterm".into()]);
}

/// `WithHostname`.
pub fn with_hostname(spec: &mut Spec, hostname: &str) {
    spec.hostname = hostname.into();
}

/// `WithRootFSPath` and `WithRootFSReadonly`.
pub fn with_root(spec: &mut Spec, path: &str, readonly: bool) {
    spec.root = Some(Root {
        path: path.into(),
        readonly,
    });
}

/// `WithMounts`: appended after the defaults; a mount on a destination that
/// already has one replaces it.
pub fn with_mounts(spec: &mut Spec, mounts: &[Mount]) {
    for mount in mounts {
        spec.mounts.retain(|m| m.destination != mount.destination);
        spec.mounts.push(mount.clone());
    }
}

/// `WithHostNamespace(network)` plus `WithHostHostsFile` and
/// `WithHostResolvconf`: no network namespace, the host's hosts and DNS files.
pub fn with_host_network(spec: &mut Spec) {
    spec.linux_mut().namespaces.retain(|n| n.kind != "network");
    let bind = |file: &str| Mount {
        destination: file.into(),
        kind: "bind".into(),
        source: file.into(),
        options: vec!["rbind".into(), "ro".into()],
    };
    with_mounts(spec, &[bind("/etc/hosts"), bind("/etc/resolv.conf")]);
}

/// Every capability runc knows (containerd's `WithAllKnownCapabilities`),
/// in bit order.
pub const ALL_CAPABILITIES: &[&str] = berth_core::capabilities::NAMES;

/// The capabilities this process may hand out: those in its bounding set,
/// as containerd's `cap.Current()` gives them (a runtime cannot grant more;
/// on a machine that withholds one, asking for it makes runc fail).
pub fn current_capabilities() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    capabilities_in(bounding.unwrap_or(u64::MAX))
}

/// The names of the capabilities whose bits `mask` sets
/// ([`ALL_CAPABILITIES`] is in bit order).
pub fn capabilities_in(mask: u64) -> Vec<String> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// `WithPrivileged`: every capability this process has in its bounding set
/// (containerd's `WithAllCurrentCapabilities`), no masked or read-only
/// paths, every device allowed, sysfs writable.
pub fn with_privileged(spec: &mut Spec) {
    let caps = current_capabilities();
    spec.process_mut().capabilities = Some(Capabilities {
        bounding: caps.clone(),
        effective: caps.clone(),
        permitted: caps,
        ..Capabilities::default()
    });
    let linux = spec.linux_mut();
    linux.masked_paths.clear();
    linux.readonly_paths.clear();
    spec.resources_mut().devices = vec![DeviceRule {
        allow: true,
        access: "rwm".into(),
        ..DeviceRule::default()
    }];
    for mount in spec.mounts.iter_mut().filter(|m| m.kind == "sysfs") {
        mount.options.retain(|o| o != "ro");
    }
}

/// `WithMemoryLimit`, in bytes.
pub fn with_memory_limit(spec: &mut Spec, bytes: u64) {
    let memory = spec
        .resources_mut()
        .memory
        .get_or_insert_with(Memory::default);
    memory.limit = Some(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// `WithCPUCFS`: `quota` µs of CPU time per `period` µs.
pub fn with_cpu_cfs(spec: &mut Spec, quota: i64, period: u64) {
    let cpu = spec.resources_mut().cpu.get_or_insert_with(Cpu::default);
    cpu.quota = Some(quota);
    cpu.period = Some(period);
}

/// `ctr run --cpus N`: a CFS quota of N CPUs over containerd's 100 ms period.
pub fn with_cpus(spec: &mut Spec, cpus: f64) {
    const PERIOD: u64 = 100_000;
    with_cpu_cfs(spec, (cpus * PERIOD as f64) as i64, PERIOD);
}

/// `WithCPUShares`.
pub fn with_cpu_shares(spec: &mut Spec, shares: u64) {
    spec.resources_mut()
        .cpu
        .get_or_insert_with(Cpu::default)
        .shares = Some(shares);
}

/// `WithUser` plus `WithAdditionalGIDs`: `name`, `uid`, `name:group` or
/// `uid:gid`, resolved against `rootfs`'s `/etc/passwd` and `/etc/group`.
pub fn with_user(spec: &mut Spec, rootfs: &Path, user: &str) -> Result<()> {
    let resolved = resolve_user(rootfs, user)?;
    let process = spec.process_mut();
    process.user.uid = resolved.uid;
    process.user.gid = resolved.gid;
    process.user.additional_gids = resolved.additional_gids;
    Ok(())
}

/// What `WithImageConfig` takes from an image's config.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    /// `Env`.
    pub env: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `User`.
    pub user: String,
}

/// `WithImageConfig`: the image's env (after the default `PATH`), its
/// entrypoint and cmd as args, working directory and user; `args` given by
/// the caller replace the image's cmd (`WithImageConfigArgs`).
pub fn with_image_config(
    spec: &mut Spec,
    rootfs: &Path,
    image: &ImageConfig,
    args: &[String],
) -> Result<()> {
    with_default_path_env(spec);
    with_env(spec, &image.env);
    let cmd = if args.is_empty() {
        &image.cmd
    } else {
        &args.to_vec()
    };
    let mut full = image.entrypoint.clone();
    full.extend(cmd.iter().cloned());
    with_args(spec, &full);
    if !image.working_dir.is_empty() {
        with_cwd(spec, &image.working_dir);
    }
    if !image.user.is_empty() {
        with_user(spec, rootfs, &image.user)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::default_spec;

    fn env(spec: &Spec) -> Vec<String> {
        spec.process.as_ref().expect("process").env.clone()
    }

    #[test]
    fn env_replaces_by_key_and_unsets() {
        let mut spec = default_spec("default", "c");
        with_env(&mut spec, &["A=1".into(), "B=2".into()]);
        with_env(&mut spec, &["A=3".into(), "B".into()]);
        assert_eq!(env(&spec), vec!["A=3".to_string()]);
    }

    #[test]
    fn host_network_drops_the_namespace_and_binds_host_files() {
        let mut spec = default_spec("default", "c");
        with_host_network(&mut spec);
        let linux = spec.linux.as_ref().expect("linux");
        assert!(!linux.namespaces.iter().any(|n| n.kind == "network"));
        assert!(spec
            .mounts
            .iter()
            .any(|m| m.destination == "/etc/resolv.conf"));
    }

    #[test]
    fn privileged_unmasks_and_allows_devices() {
        let mut spec = default_spec("default", "c");
        with_privileged(&mut spec);
        let linux = spec.linux.as_ref().expect("linux");
        assert!(linux.masked_paths.is_empty() && linux.readonly_paths.is_empty());
        let devices = &linux.resources.as_ref().expect("resources").devices;
        assert!(devices[0].allow);
        let sys = spec
            .mounts
            .iter()
            .find(|m| m.destination == "/sys")
            .expect("sys");
        assert!(!sys.options.contains(&"ro".to_string()));
        let caps = spec
            .process
            .as_ref()
            .and_then(|p| p.capabilities.as_ref())
            .expect("caps");
        assert!(caps.bounding.contains(&"CAP_SYS_ADMIN".to_string()));
        assert_eq!(caps.bounding, current_capabilities());
    }

    #[test]
    fn capabilities_follow_the_bounding_mask() {
        assert_eq!(capabilities_in(0b101), ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"]);
        let all = capabilities_in(u64::MAX);
        assert_eq!(all.len(), ALL_CAPABILITIES.len());
        assert_eq!(all[24], "CAP_SYS_RESOURCE");
        assert!(current_capabilities().contains(&"CAP_CHOWN".to_string()));
    }

    #[test]
    fn resources_serialise_as_runtime_spec_json() {
        let mut spec = default_spec("default", "c");
        with_memory_limit(&mut spec, 64 << 20);
        with_cpus(&mut spec, 0.5);
        let json: serde_json::Value = serde_json::from_slice(&spec.to_json()).expect("json");
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(json["linux"]["resources"]["cpu"]["period"], 100_000);
    }

    #[test]
    fn image_config_sets_env_args_cwd_and_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("etc");
        std::fs::write(dir.path().join("etc/passwd"), "app:x:100:101::/:/bin/sh\n")
            .expect("passwd");
        let image = ImageConfig {
            env: vec!["LANG=C".into()],
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into()],
            working_dir: "/srv".into(),
            user: "app".into(),
        };
        let mut spec = default_spec("default", "c");
        with_image_config(&mut spec, dir.path(), &image, &[]).expect("image config");
        let process = spec.process.as_ref().expect("process");
        assert_eq!(process.args, vec!["/entry", "serve"]);
        assert_eq!(
            process.env,
            vec![DEFAULT_PATH_ENV.to_string(), "LANG=C".into()]
        );
        assert_eq!(process.cwd, "/srv");
        assert_eq!((process.user.uid, process.user.gid), (100, 101));

        let mut spec = default_spec("default", "c");
        with_image_config(&mut spec, dir.path(), &image, &["other".into()]).expect("args");
        assert_eq!(
            spec.process.as_ref().expect("process").args,
            vec!["/entry", "other"]
        );
    }

    #[test]
    fn tty_and_readonly_root() {
        let mut spec = default_spec("default", "c");
        with_tty(&mut spec);
        with_root(&mut spec, "/abs/rootfs", true);
        assert!(spec.process.as_ref().expect("process").terminal);
        assert!(env(&spec).contains(&"TERM=xterm".to_string()));
        assert!(spec.root.as_ref().expect("root").readonly);
    }
}
