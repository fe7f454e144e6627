//! The pause container's OCI spec, as containerd 1.6's
//! `sandboxContainerSpec` and `sandboxContainerSpecOpts` build it: the
//! default spec without `/run` and default security settings, a read-only
//! root, the image's env, cwd and entrypoint, the pod's namespaces, the
//! sandbox's `/dev/shm` and `resolv.conf`, sysctls, CPU shares 2, the OOM
//! score -998, seccomp and user from the security context, and the
//! `io.kubernetes.cri.*` annotations.

use crate::config::{CriConfig, RuntimeHandler};
use crate::image::Image;
use berth_core::{Error, Result};
use berth_oci::spec::{Mount, Namespace};
use berth_oci::{opts, Spec};
use k8s_cri::v1::{
    security_profile::ProfileType, LinuxSandboxSecurityContext, NamespaceMode, PodSandboxConfig,
};
use std::collections::BTreeMap;
use std::path::Path;

/// containerd's OOM score for the pause process.
pub const SANDBOX_OOM_SCORE_ADJ: i64 = -998;
/// containerd's CPU shares for the pause container.
pub const SANDBOX_CPU_SHARES: u64 = 2;

/// The `io.kubernetes.cri.*` annotation keys (containerd's
/// `pkg/cri/annotations`).
pub mod annotations {
    /// `sandbox` or `container`.
    pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
    /// The value of [`CONTAINER_TYPE`] on a pause container.
    pub const CONTAINER_TYPE_SANDBOX: &str = "sandbox";
    /// The sandbox id.
    pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
    /// The pod's name.
    pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
    /// The pod's namespace.
    pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    /// The pod's uid.
    pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
    /// The pod's log directory.
    pub const SANDBOX_LOG_DIR: &str = "io.kubernetes.cri.sandbox-log-directory";
    /// The image the container runs.
    pub const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
    /// The pod's CPU period.
    pub const SANDBOX_CPU_PERIOD: &str = "io.kubernetes.cri.sandbox-cpu-period";
    /// The pod's CPU quota.
    pub const SANDBOX_CPU_QUOTA: &str = "io.kubernetes.cri.sandbox-cpu-quota";
    /// The pod's CPU shares.
    pub const SANDBOX_CPU_SHARES: &str = "io.kubernetes.cri.sandbox-cpu-shares";
    /// The pod's memory limit.
    pub const SANDBOX_MEM: &str = "io.kubernetes.cri.sandbox-memory";
}

/// Everything the pause spec is built from.
#[derive(Debug)]
pub struct SandboxSpec<'a> {
    /// The sandbox id.
    pub id: &'a str,
    /// The pod's config.
    pub config: &'a PodSandboxConfig,
    /// The sandbox image.
    pub image: &'a Image,
    /// The name the image was asked for by (`sandbox_image`).
    pub image_name: &'a str,
    /// The network namespace's path; empty for host networking.
    pub netns_path: &'a str,
    /// The sandbox's `/dev/shm` (its tmpfs, or the host's for host IPC).
    pub shm_path: &'a Path,
    /// The sandbox's `resolv.conf`.
    pub resolv_path: &'a Path,
    /// The runtime handler.
    pub handler: &'a RuntimeHandler,
    /// The plugin's settings.
    pub cri: &'a CriConfig,
    /// The OOM score the pause process gets (-998, clamped).
    pub oom_score_adj: i64,
}

/// The namespace mode of one kind (`Pod` when unset).
pub fn namespace_mode(
    config: &PodSandboxConfig,
    kind: fn(&k8s_cri::v1::NamespaceOption) -> i32,
) -> NamespaceMode {
    security_context(config)
        .and_then(|s| s.namespace_options.as_ref())
        .map(kind)
        .and_then(|m| NamespaceMode::try_from(m).ok())
        .unwrap_or(NamespaceMode::Pod)
}

/// Whether the pod uses the host's network.
pub fn host_network(config: &PodSandboxConfig) -> bool {
    namespace_mode(config, |n| n.network) == NamespaceMode::Node
}

/// Whether the pod uses the host's IPC namespace.
pub fn host_ipc(config: &PodSandboxConfig) -> bool {
    namespace_mode(config, |n| n.ipc) == NamespaceMode::Node
}

/// The pod's security context.
pub fn security_context(config: &PodSandboxConfig) -> Option<&LinuxSandboxSecurityContext> {
    config.linux.as_ref()?.security_context.as_ref()
}

impl SandboxSpec<'_> {
    /// The spec.
    pub fn build(&self) -> Result<Spec> {
        let mut spec = berth_oci::default_spec(crate::NAMESPACE, self.id);
        spec.mounts.retain(|m| m.destination != "/run");
        without_default_security(&mut spec);
        opts::with_root(&mut spec, "rootfs", true);
        opts::with_env(&mut spec, &self.image.config.env);
        opts::with_hostname(&mut spec, &self.config.hostname);
        if !self.image.config.working_dir.is_empty() {
            opts::with_cwd(&mut spec, &self.image.config.working_dir);
        }
        let run = self
            .image
            .config
            .entrypoint
            .iter()
            .chain(&self.image.config.cmd);
        let args: Vec<String> = run.cloned().collect();
        if args.is_empty() {
            return Err(Error::invalid_argument(format!(
                "invalid empty entrypoint and cmd in image config of {:?}",
                self.image_name
            )));
        }
        opts::with_args(&mut spec, &args);
        self.cgroups(&mut spec);
        self.namespaces(&mut spec);
        self.mounts(&mut spec);
        self.user(&mut spec)?;
        self.sysctls(&mut spec);
        spec.process_mut()
            .extra
            .insert("oomScoreAdj".into(), self.oom_score_adj.into());
        self.seccomp(&mut spec)?;
        self.annotations(&mut spec);
        Ok(spec)
    }

    fn linux(&self) -> Option<&k8s_cri::v1::LinuxPodSandboxConfig> {
        self.config.linux.as_ref()
    }

    fn cgroups(&self, spec: &mut Spec) {
        if self.cri.disable_cgroup {
            let linux = spec.linux_mut();
            linux.cgroups_path.clear();
            linux.resources = None;
            return;
        }
        let parent = self.linux().map(|l| l.cgroup_parent.as_str()).unwrap_or("");
        if !parent.is_empty() {
            spec.linux_mut().cgroups_path = cgroups_path(parent, self.id);
        }
        opts::with_cpu_shares(spec, SANDBOX_CPU_SHARES);
    }

    fn namespaces(&self, spec: &mut Spec) {
        let config = self.config;
        let drop = |spec: &mut Spec, kind: &str| {
            spec.linux_mut().namespaces.retain(|n| n.kind != kind);
        };
        if host_network(config) {
            drop(spec, "network");
            drop(spec, "uts");
            // runc cannot set a hostname without a UTS namespace of its
            // own; the kubelet sends none for host-network pods anyway.
            spec.hostname.clear();
        } else {
            drop(spec, "network");
            spec.linux_mut().namespaces.push(Namespace {
                kind: "network".into(),
                path: self.netns_path.into(),
            });
        }
        if namespace_mode(config, |n| n.pid) == NamespaceMode::Node {
            drop(spec, "pid");
        }
        if host_ipc(config) {
            drop(spec, "ipc");
        }
    }

    fn mounts(&self, spec: &mut Spec) {
        let bind = |source: &Path, destination: &str| Mount {
            destination: destination.into(),
            kind: "bind".into(),
            source: source.display().to_string(),
            options: vec!["rbind".into(), "ro".into()],
        };
        opts::with_mounts(
            spec,
            &[
                bind(self.shm_path, "/dev/shm"),
                bind(self.resolv_path, "/etc/resolv.conf"),
            ],
        );
    }

    fn user(&self, spec: &mut Spec) -> Result<()> {
        let security = security_context(self.config);
        let uid = security
            .and_then(|s| s.run_as_user.as_ref())
            .map(|v| v.value);
        let gid = security
            .and_then(|s| s.run_as_group.as_ref())
            .map(|v| v.value);
        let user = match (uid, gid) {
            (Some(uid), Some(gid)) => format!("{uid}:{gid}"),
            (Some(uid), None) => uid.to_string(),
            (None, Some(_)) => {
                return Err(Error::invalid_argument(
                    "user group \"run_as_group\" is specified without user",
                ))
            }
            (None, None) => self.image.config.user.clone(),
        };
        if !user.is_empty() {
            // The pause container's root is read-only and never mounted
            // here: only numeric users are resolved, as the pause images
            // name theirs.
            opts::with_user(spec, Path::new("/nonexistent"), &user)
                .map_err(|e| e.context(format!("sandbox user {user:?}")))?;
        }
        let groups = security
            .map(|s| s.supplemental_groups.as_slice())
            .unwrap_or(&[]);
        let process = spec.process_mut();
        for group in groups {
            let group = u32::try_from(*group)
                .map_err(|_| Error::invalid_argument(format!("supplemental group {group}")))?;
            if !process.user.additional_gids.contains(&group) {
                process.user.additional_gids.push(group);
            }
        }
        Ok(())
    }

    fn sysctls(&self, spec: &mut Spec) {
        let mut sysctls: BTreeMap<String, String> = self
            .linux()
            .map(|l| l.sysctls.clone().into_iter().collect())
            .unwrap_or_default();
        if !host_network(self.config) {
            if self.cri.enable_unprivileged_ports {
                sysctls
                    .entry("net.ipv4.ip_unprivileged_port_start".into())
                    .or_insert_with(|| "0".into());
            }
            if self.cri.enable_unprivileged_icmp {
                sysctls
                    .entry("net.ipv4.ping_group_range".into())
                    .or_insert_with(|| "0 2147483647".into());
            }
        }
        if !sysctls.is_empty() {
            let value = serde_json::to_value(sysctls).unwrap_or_default();
            spec.linux_mut().extra.insert("sysctl".into(), value);
        }
    }

    fn seccomp(&self, spec: &mut Spec) -> Result<()> {
        let security = security_context(self.config);
        if security.is_some_and(|s| s.privileged) {
            return Ok(());
        }
        let profile = match security.and_then(|s| s.seccomp.as_ref()) {
            Some(p) => match ProfileType::try_from(p.profile_type) {
                Ok(ProfileType::RuntimeDefault) => Seccomp::RuntimeDefault,
                Ok(ProfileType::Unconfined) => Seccomp::Unconfined,
                Ok(ProfileType::Localhost) => Seccomp::Localhost(p.localhost_ref.clone()),
                Err(_) => {
                    return Err(Error::invalid_argument(format!(
                        "unsupported seccomp profile type {}",
                        p.profile_type
                    )))
                }
            },
            // The deprecated field is what older kubelets send.
            #[allow(deprecated)]
            None => Seccomp::from_path(
                security
                    .map(|s| s.seccomp_profile_path.as_str())
                    .unwrap_or(""),
            )?,
        };
        let value = match profile {
            Seccomp::Unconfined => return Ok(()),
            Seccomp::RuntimeDefault => berth_oci::seccomp::default_profile(spec),
            Seccomp::Localhost(path) => {
                let bytes = std::fs::read(&path).map_err(|e| {
                    Error::invalid_argument(format!("cannot load seccomp profile {path:?}: {e}"))
                })?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    Error::invalid_argument(format!("decoding seccomp profile {path:?}: {e}"))
                })?
            }
        };
        spec.linux_mut().extra.insert("seccomp".into(), value);
        Ok(())
    }

    fn annotations(&self, spec: &mut Spec) {
        let config = self.config;
        if let Some(res) = self.linux().and_then(|l| l.resources.as_ref()) {
            for (key, value) in [
                (annotations::SANDBOX_CPU_PERIOD, res.cpu_period),
                (annotations::SANDBOX_CPU_QUOTA, res.cpu_quota),
                (annotations::SANDBOX_CPU_SHARES, res.cpu_shares),
                (annotations::SANDBOX_MEM, res.memory_limit_in_bytes),
            ] {
                spec.annotations.insert(key.into(), value.to_string());
            }
        }
        for (key, value) in
            passthrough_annotations(&config.annotations, &self.handler.pod_annotations)
        {
            spec.annotations.insert(key, value);
        }
        let meta = config.metadata.clone().unwrap_or_default();
        for (key, value) in [
            (
                annotations::CONTAINER_TYPE,
                annotations::CONTAINER_TYPE_SANDBOX,
            ),
            (annotations::SANDBOX_ID, self.id),
            (annotations::SANDBOX_NAMESPACE, &meta.namespace),
            (annotations::SANDBOX_UID, &meta.uid),
            (annotations::SANDBOX_NAME, &meta.name),
            (annotations::SANDBOX_LOG_DIR, &config.log_directory),
            (annotations::IMAGE_NAME, self.image_name),
        ] {
            spec.annotations.insert(key.into(), value.to_string());
        }
    }
}

/// The seccomp profile a security context asks for.
#[derive(Debug, PartialEq, Eq)]
enum Seccomp {
    Unconfined,
    RuntimeDefault,
    Localhost(String),
}

impl Seccomp {
    /// From the deprecated `seccomp_profile_path`: empty (containerd 1.6's
    /// default for pods) and `unconfined` mean none.
    fn from_path(path: &str) -> Result<Seccomp> {
        match path {
            "" | "unconfined" => Ok(Seccomp::Unconfined),
            "runtime/default" | "docker/default" => Ok(Seccomp::RuntimeDefault),
            p => match p.strip_prefix("localhost/") {
                Some(file) => Ok(Seccomp::Localhost(file.to_string())),
                None => Err(Error::invalid_argument(format!(
                    "unsupported seccomp profile {p:?}"
                ))),
            },
        }
    }
}

/// containerd's `getCgroupsPath`: `slice:cri-containerd:id` under a
/// systemd slice, `<parent>/<id>` otherwise.
pub fn cgroups_path(parent: &str, id: &str) -> String {
    let base = parent
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(parent);
    if base.ends_with(".slice") {
        format!("{base}:cri-containerd:{id}")
    } else {
        format!("{}/{id}", parent.trim_end_matches('/'))
    }
}

/// The pod annotations whose keys match one of the handler's
/// `pod_annotations` patterns (Go's `path.Match`).
pub fn passthrough_annotations<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
    patterns: &[String],
) -> BTreeMap<String, String> {
    annotations
        .into_iter()
        .filter(|(key, _)| patterns.iter().any(|p| glob(p.as_bytes(), key.as_bytes())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `*` (any run without `/`), `?` (one byte but `/`) and literal bytes.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            let mut i = 0;
            loop {
                if glob(rest, &text[i..]) {
                    return true;
                }
                if i == text.len() || text[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        Some((b'?', rest)) => {
            matches!(text.split_first(), Some((c, t)) if *c != b'/' && glob(rest, t))
        }
        Some((p, rest)) => matches!(text.split_first(), Some((c, t)) if c == p && glob(rest, t)),
    }
}

/// containerd's `WithoutDefaultSecuritySettings`: no AppArmor profile, no
/// seccomp, no rlimits.
fn without_default_security(spec: &mut Spec) {
    let process = spec.process_mut();
    process.extra.remove("apparmorProfile");
    process.rlimits.clear();
    spec.linux_mut().extra.remove("seccomp");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::RunConfig;
    use k8s_cri::v1::{
        security_profile, Int64Value, LinuxPodSandboxConfig, NamespaceOption, PodSandboxMetadata,
        SecurityProfile,
    };

    fn pause() -> Image {
        Image {
            id: "sha256:abc".into(),
            config: RunConfig {
                entrypoint: vec!["/pause".into()],
                env: vec!["PATH=/bin".into()],
                user: "65535:65535".into(),
                ..RunConfig::default()
            },
            ..Image::default()
        }
    }

    fn build(config: &PodSandboxConfig, cri: &CriConfig) -> Result<Spec> {
        let image = pause();
        SandboxSpec {
            id: "sb1",
            config,
            image: &image,
            image_name: "pause:x",
            netns_path: "/run/netns/sb1",
            shm_path: Path::new("/state/shm"),
            resolv_path: Path::new("/root/resolv.conf"),
            handler: &RuntimeHandler {
                pod_annotations: vec!["io.example/*".into()],
                ..RuntimeHandler::default()
            },
            cri,
            oom_score_adj: -998,
        }
        .build()
    }

    fn pod() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "p".into(),
                namespace: "ns".into(),
                uid: "u".into(),
                attempt: 0,
            }),
            hostname: "host1".into(),
            log_directory: "/logs".into(),
            annotations: [
                ("io.example/a".to_string(), "1".to_string()),
                ("other".to_string(), "2".to_string()),
            ]
            .into(),
            ..PodSandboxConfig::default()
        }
    }

    #[test]
    fn a_default_pod_gets_containerds_pause_spec() {
        let spec = build(&pod(), &CriConfig::default()).expect("test step");
        let process = spec.process.as_ref().expect("test step");
        assert_eq!(process.args, vec!["/pause"]);
        assert_eq!((process.user.uid, process.user.gid), (65535, 65535));
        assert_eq!(process.extra["oomScoreAdj"], -998);
        assert!(process.rlimits.is_empty());
        assert!(spec.root.as_ref().expect("test step").readonly);
        assert_eq!(spec.hostname, "host1");
        assert!(!spec.mounts.iter().any(|m| m.destination == "/run"));
        let shm = spec
            .mounts
            .iter()
            .find(|m| m.destination == "/dev/shm")
            .expect("test step");
        assert_eq!(shm.source, "/state/shm");
        let linux = spec.linux.as_ref().expect("test step");
        let net = linux
            .namespaces
            .iter()
            .find(|n| n.kind == "network")
            .expect("test step");
        assert_eq!(net.path, "/run/netns/sb1");
        assert!(linux.namespaces.iter().any(|n| n.kind == "pid"));
        assert_eq!(
            linux
                .resources
                .as_ref()
                .expect("test step")
                .cpu
                .as_ref()
                .expect("test step")
                .shares,
            Some(2)
        );
        assert!(
            !linux.extra.contains_key("seccomp"),
            "1.6 leaves pods unconfined by default"
        );
        let a = &spec.annotations;
        assert_eq!(a[annotations::CONTAINER_TYPE], "sandbox");
        assert_eq!(a[annotations::SANDBOX_ID], "sb1");
        assert_eq!(a[annotations::SANDBOX_NAME], "p");
        assert_eq!(a[annotations::SANDBOX_NAMESPACE], "ns");
        assert_eq!(a[annotations::SANDBOX_UID], "u");
        assert_eq!(a[annotations::SANDBOX_LOG_DIR], "/logs");
        assert_eq!(a[annotations::IMAGE_NAME], "pause:x");
        assert_eq!(a["io.example/a"], "1");
        assert!(!a.contains_key("other"));
    }

    #[test]
    fn node_namespaces_security_and_sysctls_shape_the_spec() {
        let mut config = pod();
        config.linux = Some(LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods/besteffort".into(),
            sysctls: [("kernel.shm_rmid_forced".to_string(), "1".to_string())].into(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    pid: NamespaceMode::Node as i32,
                    ipc: NamespaceMode::Node as i32,
                    ..NamespaceOption::default()
                }),
                run_as_user: Some(Int64Value { value: 7 }),
                run_as_group: Some(Int64Value { value: 8 }),
                supplemental_groups: vec![9, 10],
                seccomp: Some(SecurityProfile {
                    profile_type: security_profile::ProfileType::RuntimeDefault as i32,
                    localhost_ref: String::new(),
                }),
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        });
        let cri = CriConfig {
            enable_unprivileged_ports: true,
            ..CriConfig::default()
        };
        let spec = build(&config, &cri).expect("test step");
        let linux = spec.linux.as_ref().expect("test step");
        let kinds: Vec<_> = linux.namespaces.iter().map(|n| n.kind.as_str()).collect();
        for gone in ["network", "uts", "pid", "ipc"] {
            assert!(!kinds.contains(&gone), "{kinds:?}");
        }
        assert_eq!(linux.cgroups_path, "/kubepods/besteffort/sb1");
        // Host networking: no unprivileged-port sysctl.
        assert_eq!(
            linux.extra["sysctl"],
            serde_json::json!({"kernel.shm_rmid_forced": "1"})
        );
        assert!(linux.extra.contains_key("seccomp"));
        let user = &spec.process.as_ref().expect("test step").user;
        assert_eq!((user.uid, user.gid), (7, 8));
        assert_eq!(user.additional_gids, vec![9, 10]);
    }

    #[test]
    fn pod_network_gets_the_unprivileged_sysctls() {
        let cri = CriConfig {
            enable_unprivileged_ports: true,
            enable_unprivileged_icmp: true,
            disable_cgroup: true,
            ..CriConfig::default()
        };
        let spec = build(&pod(), &cri).expect("test step");
        let linux = spec.linux.as_ref().expect("test step");
        assert_eq!(
            linux.extra["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
            "0"
        );
        assert_eq!(
            linux.extra["sysctl"]["net.ipv4.ping_group_range"],
            "0 2147483647"
        );
        assert!(linux.cgroups_path.is_empty());
        assert!(linux.resources.is_none());
    }

    #[test]
    fn group_without_user_and_empty_entrypoint_fail() {
        let mut config = pod();
        config.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                run_as_group: Some(Int64Value { value: 1 }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(build(&config, &CriConfig::default()).is_err());
    }

    #[test]
    fn cgroup_paths_and_globs_follow_containerd() {
        assert_eq!(
            cgroups_path("/kubepods.slice/kubepods-besteffort.slice", "x"),
            "kubepods-besteffort.slice:cri-containerd:x"
        );
        assert_eq!(cgroups_path("/kubepods/", "x"), "/kubepods/x");
        assert!(glob(b"io.example/*", b"io.example/a"));
        assert!(!glob(b"io.example/*", b"io.example/a/b"));
        assert!(glob(b"a?c", b"abc"));
        assert!(glob(b"*", b"anything"));
        assert!(!glob(b"x*", b"y"));
        assert_eq!(
            Seccomp::from_path("localhost/p.json").expect("test step"),
            Seccomp::Localhost("p.json".into())
        );
        assert!(Seccomp::from_path("bogus").is_err());
    }
}
