//! A container's OCI spec, built from its CRI config, its pod and its image
//! as containerd 1.6's `containerSpec` and `containerSpecOpts` build it
//! (`pkg/cri/server/container_create_linux.go`, `pkg/cri/opts/spec_linux.go`).
//!
//! The start is berth-oci's default spec without `/run`, the default
//! rlimits and any seccomp or AppArmor profile; then, in containerd's
//! order: the command (CRI command/args over the image's
//! entrypoint/cmd), `PATH`, the working directory, a terminal, `HOSTNAME`
//! and the environment (image first, CRI after), the mounts, masked and
//! read-only paths, devices, capabilities, privileged, no ambient
//! capabilities, `no_new_privs`, a read-only rootfs, resources and the cgroup
//! path, pass-through annotations, the OOM score, the pod's namespaces,
//! supplemental groups and CRI's annotations; last the user (resolved in
//! the image's rootfs), its groups and the seccomp profile, which depends
//! on the final capabilities.

use super::{mounts, resources, security};
use crate::config::{CriConfig, RuntimeHandler};
use crate::image::RunConfig;
use berth_core::{Error, Result};
use berth_oci::spec::Namespace;
use berth_oci::{opts, Spec};
use k8s_cri::v1::{
    ContainerConfig, LinuxContainerSecurityContext, NamespaceMode, PodSandboxConfig,
};
use serde_json::json;
use std::path::Path;

/// containerd's CRI annotation keys (`pkg/cri/annotations`).
pub(crate) mod annotations {
    /// `sandbox` or `container`.
    pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
    /// The pod's id.
    pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
    /// The pod's namespace.
    pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    /// The pod's uid.
    pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
    /// The pod's name.
    pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
    /// The container's name.
    pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
    /// The image's name.
    pub const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
}

/// Everything a container's spec is built from.
pub(crate) struct SpecInput<'a> {
    /// The container's id.
    pub id: &'a str,
    /// Its pod's id.
    pub sandbox_id: &'a str,
    /// The pause process, whose namespaces it joins.
    pub sandbox_pid: u32,
    /// The process whose PID namespace it joins (the pause process unless
    /// the config targets another container).
    pub target_pid: u32,
    /// The CRI config.
    pub config: &'a ContainerConfig,
    /// The pod's CRI config.
    pub sandbox_config: &'a PodSandboxConfig,
    /// The image's run config.
    pub image: &'a RunConfig,
    /// The image's name, for the annotation.
    pub image_name: &'a str,
    /// The pod's files and image volumes, mounted unless a CRI mount has
    /// the same destination.
    pub extra_mounts: &'a [k8s_cri::v1::Mount],
    /// The pod's runtime handler.
    pub handler: &'a RuntimeHandler,
    /// The plugin's settings.
    pub cri: &'a CriConfig,
    /// The OOM score the process gets, already clamped; `None` if the
    /// config has no resources.
    pub oom_score_adj: Option<i64>,
    /// The image's rootfs, mounted, for users and groups.
    pub rootfs: &'a Path,
    /// Whether cgroup v2 alone is mounted (then the container gets a cgroup
    /// namespace).
    pub unified_cgroups: bool,
}

/// The spec for `input`.
pub(crate) fn build(input: &SpecInput<'_>) -> Result<Spec> {
    let config = input.config;
    let security = security_context(config);
    let mut spec = berth_oci::default_spec(crate::NAMESPACE, input.id);
    spec.mounts.retain(|m| m.destination != "/run");
    without_default_security(&mut spec);
    opts::with_root(&mut spec, "rootfs", false);
    opts::with_args(&mut spec, &process_args(config, input.image)?);
    opts::with_default_path_env(&mut spec);
    if !config.working_dir.is_empty() {
        opts::with_cwd(&mut spec, &config.working_dir);
    } else if !input.image.working_dir.is_empty() {
        opts::with_cwd(&mut spec, &input.image.working_dir);
    }
    if config.tty {
        opts::with_tty(&mut spec);
    }
    opts::with_env(&mut spec, &[format!("HOSTNAME={}", hostname(input))]);
    let mut env = input.image.env.clone();
    env.extend(
        config
            .envs
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value)),
    );
    opts::with_env(&mut spec, &env);
    mounts::apply(&mut spec, &config.mounts, input.extra_mounts)?;
    let linux = spec.linux_mut();
    linux.masked_paths = security.masked_paths.clone();
    linux.readonly_paths = security.readonly_paths.clone();
    mounts::apply_devices(&mut spec, &config.devices)?;
    if let Some(caps) = &security.capabilities {
        security::with_capabilities(&mut spec, caps);
    }
    if security.privileged {
        let pod_privileged = input
            .sandbox_config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .is_some_and(|s| s.privileged);
        if !pod_privileged {
            return Err(Error::invalid_argument(
                "no privileged container allowed in sandbox",
            ));
        }
        opts::with_privileged(&mut spec);
        // (containerd's `privileged_without_host_devices` is not a setting
        // berth has yet.)
        mounts::apply_host_devices(&mut spec)?;
    }
    if let Some(caps) = spec.process_mut().capabilities.as_mut() {
        caps.ambient.clear();
    }
    spec.process_mut().no_new_privileges = security.no_new_privs;
    if security.readonly_rootfs {
        opts::with_root(&mut spec, "rootfs", true);
    }
    with_cgroups(&mut spec, input);
    with_passthrough_annotations(&mut spec, input);
    if let Some(adj) = input.oom_score_adj {
        spec.process_mut()
            .extra
            .insert("oomScoreAdj".into(), json!(adj));
    }
    with_pod_namespaces(&mut spec, &security, input);
    if input.unified_cgroups && !security.privileged {
        spec.linux_mut().namespaces.push(Namespace {
            kind: "cgroup".into(),
            path: String::new(),
        });
    }
    with_cri_annotations(&mut spec, input);
    security::with_user(&mut spec, &security, input.rootfs, &input.image.user)?;
    security::with_seccomp(&mut spec, &security)?;
    security::check_apparmor(&security)?;
    Ok(spec)
}

fn security_context(config: &ContainerConfig) -> LinuxContainerSecurityContext {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.clone())
        .unwrap_or_default()
}

/// `WithoutRunMount`'s partner `WithoutDefaultSecuritySettings`: no
/// AppArmor or seccomp profile, no rlimits.
fn without_default_security(spec: &mut Spec) {
    let process = spec.process_mut();
    process.extra.remove("apparmorProfile");
    process.rlimits.clear();
    spec.linux_mut().extra.remove("seccomp");
}

/// containerd's `WithProcessArgs`: a CRI command replaces the image's
/// entrypoint and cmd; CRI args alone replace only the cmd; an image
/// entrypoint of `[""]` counts as none.
pub(crate) fn process_args(config: &ContainerConfig, image: &RunConfig) -> Result<Vec<String>> {
    let mut command = config.command.clone();
    let mut args = config.args.clone();
    if command.is_empty() {
        if args.is_empty() {
            args = image.cmd.clone();
        }
        if !(image.entrypoint.len() == 1 && image.entrypoint[0].is_empty()) {
            command = image.entrypoint.clone();
        }
    }
    if command.is_empty() && args.is_empty() {
        return Err(Error::invalid_argument("no command specified"));
    }
    command.extend(args);
    Ok(command)
}

fn hostname(input: &SpecInput<'_>) -> String {
    if !input.sandbox_config.hostname.is_empty() {
        return input.sandbox_config.hostname.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Resources (`WithResources`) and the cgroup path: `disable_cgroup`
/// clears the path; a pod's cgroup parent puts the container under it
/// (systemd slices as `slice:cri-containerd:id`).
fn with_cgroups(spec: &mut Spec, input: &SpecInput<'_>) {
    if input.cri.disable_cgroup {
        spec.linux_mut().cgroups_path.clear();
        return;
    }
    if let Some(resources) = input
        .config
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
    {
        resources::with_resources(spec, resources);
    }
    let parent = input
        .sandbox_config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.as_str())
        .unwrap_or_default();
    if !parent.is_empty() {
        spec.linux_mut().cgroups_path = resources::cgroups_path(parent, input.id);
    }
}

/// Whether `key` matches `pattern`, where `*` matches any run of
/// characters (containerd matches pass-through annotations with
/// `filepath.Match`).
fn glob_match(pattern: &str, key: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == key,
        Some((head, rest)) => {
            let Some(tail) = key.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

/// The pod and container annotations the runtime handler passes on.
fn with_passthrough_annotations(spec: &mut Spec, input: &SpecInput<'_>) {
    let pairs = [
        (
            &input.sandbox_config.annotations,
            &input.handler.pod_annotations,
        ),
        (
            &input.config.annotations,
            &input.handler.container_annotations,
        ),
    ];
    for (annotations, patterns) in pairs {
        for (key, value) in annotations {
            if patterns.iter().any(|p| glob_match(p, key)) {
                spec.annotations.insert(key.clone(), value.clone());
            }
        }
    }
}

/// `WithPodNamespaces`: the pause process's network, IPC and UTS
/// namespaces, and its PID namespace (or the target container's) unless
/// the container wants its own.
fn with_pod_namespaces(
    spec: &mut Spec,
    security: &LinuxContainerSecurityContext,
    input: &SpecInput<'_>,
) {
    let pid_mode = security
        .namespace_options
        .as_ref()
        .map(|n| n.pid)
        .unwrap_or_default();
    let mut join = vec![
        ("network", input.sandbox_pid, "net"),
        ("ipc", input.sandbox_pid, "ipc"),
        ("uts", input.sandbox_pid, "uts"),
    ];
    if pid_mode != NamespaceMode::Container as i32 {
        join.push(("pid", input.target_pid, "pid"));
    }
    let namespaces = &mut spec.linux_mut().namespaces;
    for (kind, pid, file) in join {
        namespaces.retain(|n| n.kind != kind);
        namespaces.push(Namespace {
            kind: kind.into(),
            path: format!("/proc/{pid}/ns/{file}"),
        });
    }
}

fn with_cri_annotations(spec: &mut Spec, input: &SpecInput<'_>) {
    let pod = input.sandbox_config.metadata.clone().unwrap_or_default();
    let name = input
        .config
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    for (key, value) in [
        (annotations::CONTAINER_TYPE, "container".to_string()),
        (annotations::SANDBOX_ID, input.sandbox_id.to_string()),
        (annotations::SANDBOX_NAMESPACE, pod.namespace),
        (annotations::SANDBOX_UID, pod.uid),
        (annotations::SANDBOX_NAME, pod.name),
        (annotations::CONTAINER_NAME, name),
        (annotations::IMAGE_NAME, input.image_name.to_string()),
    ] {
        spec.annotations.insert(key.into(), value);
    }
}

#[cfg(test)]
#[allow(deprecated)] // the deprecated profile fields are tested too
mod tests {
    use super::*;
    use k8s_cri::v1::security_profile::ProfileType;
    use k8s_cri::v1::{
        Capability, ContainerMetadata, HugepageLimit, Int64Value, KeyValue, LinuxContainerConfig,
        LinuxContainerResources, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
        NamespaceOption, PodSandboxMetadata, SecurityProfile,
    };
    use serde_json::Value;

    struct Fixture {
        rootfs: tempfile::TempDir,
        image: RunConfig,
        sandbox: PodSandboxConfig,
        handler: RuntimeHandler,
        cri: CriConfig,
    }

    impl Fixture {
        fn new() -> Fixture {
            let rootfs = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir(rootfs.path().join("etc")).expect("etc");
            std::fs::write(
                rootfs.path().join("etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/:/bin/sh\n",
            )
            .expect("passwd");
            std::fs::write(
                rootfs.path().join("etc/group"),
                "root:x:0:\nwheel:x:10:root\nweb:x:1000:\naudio:x:29:web\n",
            )
            .expect("group");
            Fixture {
                rootfs,
                image: RunConfig {
                    env: vec!["PATH=/bin".into(), "IMAGE=1".into()],
                    entrypoint: vec!["/entry".into()],
                    cmd: vec!["serve".into()],
                    working_dir: "/srv".into(),
                    user: "web".into(),
                    ..RunConfig::default()
                },
                sandbox: PodSandboxConfig {
                    metadata: Some(PodSandboxMetadata {
                        name: "pod".into(),
                        uid: "uid-1".into(),
                        namespace: "ns".into(),
                        attempt: 0,
                    }),
                    hostname: "podhost".into(),
                    ..PodSandboxConfig::default()
                },
                handler: RuntimeHandler::default(),
                cri: CriConfig::default(),
            }
        }

        fn build(&self, config: &ContainerConfig) -> Result<Spec> {
            build(&SpecInput {
                id: "c1",
                sandbox_id: "s1",
                sandbox_pid: 42,
                target_pid: 42,
                config,
                sandbox_config: &self.sandbox,
                image: &self.image,
                image_name: "docker.io/library/busybox:latest",
                extra_mounts: &[],
                handler: &self.handler,
                cri: &self.cri,
                oom_score_adj: Some(100),
                rootfs: self.rootfs.path(),
                unified_cgroups: false,
            })
        }
    }

    fn config() -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "app".into(),
                attempt: 0,
            }),
            ..ContainerConfig::default()
        }
    }

    fn with_security(security: LinuxContainerSecurityContext) -> ContainerConfig {
        ContainerConfig {
            linux: Some(LinuxContainerConfig {
                security_context: Some(security),
                resources: None,
            }),
            ..config()
        }
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> RunConfig {
        RunConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..RunConfig::default()
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_and_args_merge_with_the_image_as_containerd_merges_them() {
        let img = image(&["/entry"], &["serve"]);
        let run = |command: &[&str], args: &[&str], img: &RunConfig| {
            let config = ContainerConfig {
                command: strings(command),
                args: strings(args),
                ..config()
            };
            process_args(&config, img)
        };
        assert_eq!(run(&[], &[], &img).expect("args"), ["/entry", "serve"]);
        assert_eq!(run(&[], &["x"], &img).expect("args"), ["/entry", "x"]);
        assert_eq!(run(&["sh"], &[], &img).expect("args"), ["sh"]);
        assert_eq!(run(&["sh"], &["-c"], &img).expect("args"), ["sh", "-c"]);
        let blank = image(&[""], &["serve"]);
        assert_eq!(run(&[], &[], &blank).expect("args"), ["serve"]);
        let none = image(&[], &[]);
        let err = run(&[], &[], &none).expect_err("nothing");
        assert_eq!(err.kind(), berth_core::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("no command specified"), "{err}");
    }

    #[test]
    fn env_cwd_user_and_annotations_come_from_image_pod_and_config() {
        let f = Fixture::new();
        let cfg = ContainerConfig {
            envs: vec![KeyValue {
                key: "IMAGE".into(),
                value: "2".into(),
            }],
            ..config()
        };
        let spec = f.build(&cfg).expect("spec");
        let process = spec.process.as_ref().expect("process");
        assert_eq!(process.args, ["/entry", "serve"]);
        assert_eq!(process.cwd, "/srv");
        assert!(process.env.contains(&"HOSTNAME=podhost".to_string()));
        assert!(process.env.contains(&"PATH=/bin".to_string()));
        assert!(process.env.contains(&"IMAGE=2".to_string()));
        assert!(!process.env.contains(&"IMAGE=1".to_string()));
        assert_eq!((process.user.uid, process.user.gid), (1000, 1000));
        // Groups are root's (no CRI user), as containerd looks them up.
        assert_eq!(process.user.additional_gids, vec![10]);
        assert!(process.rlimits.is_empty());
        assert_eq!(process.extra["oomScoreAdj"], 100);
        assert_eq!(spec.root.as_ref().expect("root").path, "rootfs");
        assert!(!spec.mounts.iter().any(|m| m.destination == "/run"));
        let a = &spec.annotations;
        assert_eq!(a[annotations::CONTAINER_TYPE], "container");
        assert_eq!(a[annotations::SANDBOX_ID], "s1");
        assert_eq!(a[annotations::SANDBOX_NAME], "pod");
        assert_eq!(a[annotations::SANDBOX_NAMESPACE], "ns");
        assert_eq!(a[annotations::SANDBOX_UID], "uid-1");
        assert_eq!(a[annotations::CONTAINER_NAME], "app");
        assert_eq!(
            a[annotations::IMAGE_NAME],
            "docker.io/library/busybox:latest"
        );
        let linux = spec.linux.as_ref().expect("linux");
        assert!(linux.extra.get("seccomp").is_none());
        assert_eq!(linux.cgroups_path, "/k8s.io/c1");
    }

    #[test]
    fn run_as_user_group_and_supplemental_groups() {
        let f = Fixture::new();
        let spec = f
            .build(&with_security(LinuxContainerSecurityContext {
                run_as_user: Some(Int64Value { value: 1000 }),
                run_as_group: Some(Int64Value { value: 7 }),
                supplemental_groups: vec![500, 29],
                ..Default::default()
            }))
            .expect("spec");
        let user = &spec.process.as_ref().expect("process").user;
        assert_eq!((user.uid, user.gid), (1000, 7));
        assert_eq!(user.additional_gids, vec![29, 500]);

        let spec = f
            .build(&with_security(LinuxContainerSecurityContext {
                run_as_username: "root".into(),
                ..Default::default()
            }))
            .expect("spec");
        let user = &spec.process.as_ref().expect("process").user;
        assert_eq!(
            (user.uid, user.gid, user.additional_gids.clone()),
            (0, 0, vec![10])
        );

        let err = f
            .build(&with_security(LinuxContainerSecurityContext {
                run_as_group: Some(Int64Value { value: 7 }),
                ..Default::default()
            }))
            .expect_err("group alone");
        assert!(err.to_string().contains("specified without user"), "{err}");
        let err = f
            .build(&with_security(LinuxContainerSecurityContext {
                run_as_username: "nobody".into(),
                ..Default::default()
            }))
            .expect_err("unknown user");
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn namespaces_join_the_pause_process_per_namespace_options() {
        let f = Fixture::new();
        let ns = |spec: &Spec| -> Vec<(String, String)> {
            spec.linux
                .as_ref()
                .expect("linux")
                .namespaces
                .iter()
                .map(|n| (n.kind.clone(), n.path.clone()))
                .collect()
        };
        let spec = f.build(&config()).expect("spec");
        let got = ns(&spec);
        for (kind, file) in [
            ("network", "net"),
            ("ipc", "ipc"),
            ("uts", "uts"),
            ("pid", "pid"),
        ] {
            assert!(
                got.contains(&(kind.to_string(), format!("/proc/42/ns/{file}"))),
                "{kind}: {got:?}"
            );
        }
        assert!(got.contains(&("mount".to_string(), String::new())));
        let spec = f
            .build(&with_security(LinuxContainerSecurityContext {
                namespace_options: Some(NamespaceOption {
                    pid: NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .expect("spec");
        assert!(ns(&spec).contains(&("pid".to_string(), String::new())));
    }

    #[test]
    fn capabilities_add_and_drop_with_all() {
        let f = Fixture::new();
        let caps = |add: &[&str], drop: &[&str]| {
            let spec = f
                .build(&with_security(LinuxContainerSecurityContext {
                    capabilities: Some(Capability {
                        add_capabilities: strings(add),
                        drop_capabilities: strings(drop),
                        ..Default::default()
                    }),
                    ..Default::default()
                }))
                .expect("spec");
            spec.process.expect("process").capabilities.expect("caps")
        };
        let c = caps(&["NET_ADMIN"], &["CHOWN"]);
        assert!(c.bounding.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(c.effective.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.permitted.contains(&"CAP_CHOWN".to_string()));
        assert!(c.permitted.contains(&"CAP_KILL".to_string()));
        let c = caps(&["ALL"], &["CHOWN"]);
        assert!(c.bounding.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!c.bounding.contains(&"CAP_CHOWN".to_string()));
        let c = caps(&["kill"], &["all"]);
        assert_eq!(c.bounding, vec!["CAP_KILL".to_string()]);
        assert!(c.ambient.is_empty());
    }

    #[test]
    fn privileged_needs_a_privileged_pod_and_skips_seccomp() {
        let mut f = Fixture::new();
        let cfg = with_security(LinuxContainerSecurityContext {
            privileged: true,
            seccomp: Some(SecurityProfile::default()),
            masked_paths: strings(&["/proc/kcore"]),
            ..Default::default()
        });
        let err = f.build(&cfg).expect_err("pod not privileged");
        assert!(err.to_string().contains("no privileged container"), "{err}");
        f.sandbox.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                privileged: true,
                ..Default::default()
            }),
            ..Default::default()
        });
        let spec = f.build(&cfg).expect("spec");
        let linux = spec.linux.as_ref().expect("linux");
        assert!(linux.masked_paths.is_empty());
        assert!(linux.extra.get("seccomp").is_none());
        let caps = spec
            .process
            .as_ref()
            .and_then(|p| p.capabilities.as_ref())
            .expect("caps");
        assert!(caps.bounding.contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn security_settings_paths_and_seccomp_profiles() {
        let f = Fixture::new();
        let spec = f
            .build(&with_security(LinuxContainerSecurityContext {
                no_new_privs: true,
                readonly_rootfs: true,
                masked_paths: strings(&["/proc/kcore"]),
                readonly_paths: strings(&["/proc/sys"]),
                seccomp: Some(SecurityProfile {
                    profile_type: ProfileType::RuntimeDefault as i32,
                    localhost_ref: String::new(),
                }),
                ..Default::default()
            }))
            .expect("spec");
        assert!(spec.process.as_ref().expect("process").no_new_privileges);
        assert!(spec.root.as_ref().expect("root").readonly);
        let linux = spec.linux.as_ref().expect("linux");
        assert_eq!(linux.masked_paths, ["/proc/kcore"]);
        assert_eq!(linux.readonly_paths, ["/proc/sys"]);
        assert_eq!(linux.extra["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");

        let profile = f.rootfs.path().join("profile.json");
        std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_LOG"}"#).expect("profile");
        let spec = f
            .build(&with_security(LinuxContainerSecurityContext {
                seccomp_profile_path: format!("localhost/{}", profile.display()),
                ..Default::default()
            }))
            .expect("spec");
        let linux = spec.linux.as_ref().expect("linux");
        assert_eq!(linux.extra["seccomp"]["defaultAction"], "SCMP_ACT_LOG");
        for path in ["unconfined", ""] {
            let spec = f
                .build(&with_security(LinuxContainerSecurityContext {
                    seccomp_profile_path: path.into(),
                    ..Default::default()
                }))
                .expect("spec");
            assert!(spec.linux.expect("linux").extra.get("seccomp").is_none());
        }
        let err = f
            .build(&with_security(LinuxContainerSecurityContext {
                seccomp_profile_path: "bogus".into(),
                ..Default::default()
            }))
            .expect_err("bogus");
        assert!(err.to_string().contains("invalid profile"), "{err}");
        let err = f
            .build(&with_security(LinuxContainerSecurityContext {
                apparmor_profile: "runtime/default".into(),
                ..Default::default()
            }))
            .expect_err("apparmor");
        assert!(
            err.to_string().contains("apparmor is not supported"),
            "{err}"
        );
    }

    #[test]
    fn resources_and_cgroup_parent() {
        let mut f = Fixture::new();
        f.sandbox.linux = Some(LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods/burstable/pod1".into(),
            ..Default::default()
        });
        let cfg = ContainerConfig {
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    cpu_period: 100_000,
                    cpu_quota: 50_000,
                    cpu_shares: 512,
                    memory_limit_in_bytes: 64 << 20,
                    cpuset_cpus: "0".into(),
                    cpuset_mems: "0".into(),
                    hugepage_limits: vec![HugepageLimit {
                        page_size: "2MB".into(),
                        limit: 0,
                    }],
                    ..Default::default()
                }),
                security_context: None,
            }),
            ..config()
        };
        let spec = f.build(&cfg).expect("spec");
        let json: Value = serde_json::from_slice(&spec.to_json()).expect("json");
        let r = &json["linux"]["resources"];
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["cpu"]["cpus"], "0");
        assert_eq!(r["cpu"]["mems"], "0");
        assert_eq!(r["memory"]["limit"], 64 << 20);
        if resources::hugetlb_controller() {
            assert_eq!(r["hugepageLimits"][0]["pageSize"], "2MB");
        } else {
            assert!(r.get("hugepageLimits").is_none());
        }
        assert_eq!(json["linux"]["cgroupsPath"], "/kubepods/burstable/pod1/c1");
        assert_eq!(
            resources::cgroups_path("/kubepods.slice/kubepods-pod1.slice", "c1"),
            "kubepods-pod1.slice:cri-containerd:c1"
        );
    }

    #[test]
    fn handler_passes_matching_annotations_on() {
        let mut f = Fixture::new();
        f.handler.pod_annotations = strings(&["io.example/*"]);
        f.sandbox.annotations = [
            ("io.example/a".to_string(), "1".to_string()),
            ("other".into(), "2".into()),
        ]
        .into();
        let spec = f.build(&config()).expect("spec");
        assert_eq!(spec.annotations["io.example/a"], "1");
        assert!(!spec.annotations.contains_key("other"));
        assert!(glob_match("a*c*", "abxcy"));
        assert!(!glob_match("a*c", "abxcy"));
    }
}
