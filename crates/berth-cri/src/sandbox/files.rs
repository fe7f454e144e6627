//! A sandbox's files: `<root>/sandboxes/<id>/` holds the pod's `hostname`,
//! `hosts` and `resolv.conf` (its containers bind-mount them), and
//! `<state>/sandboxes/<id>/shm` is the pod's `/dev/shm`, a tmpfs shared by
//! its containers (unless the pod uses the host's IPC namespace).

use berth_core::{Error, Result};
use k8s_cri::v1::{DnsConfig, PodSandboxConfig};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// containerd's size of a pod's `/dev/shm`: 64 MiB.
const SHM_SIZE: u64 = 64 * 1024 * 1024;
/// The host's `/dev/shm`, used by pods in the host's IPC namespace.
pub const HOST_SHM: &str = "/dev/shm";

/// Where one sandbox's files are.
#[derive(Debug, Clone)]
pub struct SandboxFiles {
    /// `<root>/sandboxes/<id>`.
    pub root: PathBuf,
    /// `<state>/sandboxes/<id>`.
    pub state: PathBuf,
}

impl SandboxFiles {
    /// The directories of sandbox `id` under the plugin's root and state.
    pub fn new(root: &Path, state: &Path, id: &str) -> Self {
        SandboxFiles {
            root: root.join("sandboxes").join(id),
            state: state.join("sandboxes").join(id),
        }
    }

    /// The pod's `hostname` file.
    pub fn hostname(&self) -> PathBuf {
        self.root.join("hostname")
    }

    /// The pod's `hosts` file.
    pub fn hosts(&self) -> PathBuf {
        self.root.join("hosts")
    }

    /// The pod's `resolv.conf`.
    pub fn resolv_conf(&self) -> PathBuf {
        self.root.join("resolv.conf")
    }

    /// The pod's own `/dev/shm` mount point.
    pub fn shm(&self) -> PathBuf {
        self.state.join("shm")
    }

    /// The `/dev/shm` the pod's containers get.
    pub fn shm_for(&self, config: &PodSandboxConfig) -> PathBuf {
        if super::spec::host_ipc(config) {
            PathBuf::from(HOST_SHM)
        } else {
            self.shm()
        }
    }

    /// Writes hostname, hosts and resolv.conf, and mounts the shm tmpfs
    /// (containerd's `setupSandboxFiles`), off the async runtime. On
    /// failure, what was made is left for [`SandboxFiles::remove`].
    pub async fn create(&self, config: &PodSandboxConfig) -> Result<()> {
        let (files, config) = (self.clone(), config.clone());
        blocking(move || files.create_now(&config)).await
    }

    /// Unmounts the shm tmpfs, off the async runtime; not mounted is fine.
    pub async fn unmount_shm(&self) -> Result<()> {
        let files = self.clone();
        blocking(move || files.unmount_shm_now()).await
    }

    /// Unmounts shm and removes both directories, off the async runtime;
    /// absent is fine.
    pub async fn remove(&self) -> Result<()> {
        let files = self.clone();
        blocking(move || files.remove_now()).await
    }

    fn create_now(&self, config: &PodSandboxConfig) -> Result<()> {
        for dir in [&self.root, &self.state] {
            std::fs::create_dir_all(dir).map_err(|e| io("create directory", dir, e))?;
        }
        let hostname = if config.hostname.is_empty() {
            nix::sys::utsname::uname()
                .map_err(|e| Error::internal(format!("get hostname: {e}")))?
                .nodename()
                .to_string_lossy()
                .into_owned()
        } else {
            config.hostname.clone()
        };
        write(&self.hostname(), format!("{hostname}\n").as_bytes())?;
        copy(Path::new("/etc/hosts"), &self.hosts())?;
        match config.dns_config.as_ref().map(resolv_conf) {
            Some(content) if !content.is_empty() => write(&self.resolv_conf(), content.as_bytes())?,
            _ => copy(Path::new("/etc/resolv.conf"), &self.resolv_conf())?,
        }
        if super::spec::host_ipc(config) {
            std::fs::metadata(HOST_SHM).map_err(|e| {
                Error::failed_precondition(format!(
                    "host {HOST_SHM:?} is not available for host ipc: {e}"
                ))
            })?;
        } else {
            self.mount_shm()?;
        }
        Ok(())
    }

    fn mount_shm(&self) -> Result<()> {
        let shm = self.shm();
        std::fs::create_dir_all(&shm).map_err(|e| io("create", &shm, e))?;
        let flags = MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        let data = format!("mode=1777,size={SHM_SIZE}");
        mount(Some("shm"), &shm, Some("tmpfs"), flags, Some(data.as_str()))
            .map_err(|e| Error::internal(format!("mount sandbox shm {}: {e}", shm.display())))
    }

    fn unmount_shm_now(&self) -> Result<()> {
        let shm = self.shm();
        match umount2(&shm, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::internal(format!("unmount {}: {e}", shm.display()))),
        }
    }

    fn remove_now(&self) -> Result<()> {
        self.unmount_shm_now()?;
        for dir in [&self.state, &self.root] {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("remove", dir, e))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Runs blocking file and mount work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("sandbox files: {e}")))?
}

/// `resolv.conf` from a pod's DNS config (containerd's `parseDNSOptions`);
/// empty when the config has nothing.
pub fn resolv_conf(dns: &DnsConfig) -> String {
    let mut out = String::new();
    if !dns.searches.is_empty() {
        out += &format!("search {}\n", dns.searches.join(" "));
    }
    for server in &dns.servers {
        out += &format!("nameserver {server}\n");
    }
    if !dns.options.is_empty() {
        out += &format!("options {}\n", dns.options.join(" "));
    }
    out
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("{what} {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| io("write", path, e))?;
    set_mode(path)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    // A host without the file gives the pod an empty one.
    let bytes = match std::fs::read(from) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io("read", from, e)),
    };
    write(to, &bytes)
}

fn set_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| io("chmod", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_config_becomes_resolv_conf() {
        let dns = DnsConfig {
            servers: vec!["10.0.0.10".into(), "10.0.0.11".into()],
            searches: vec!["ns.svc.cluster.local".into(), "cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns),
            "search ns.svc.cluster.local cluster.local\n\
             nameserver 10.0.0.10\nnameserver 10.0.0.11\noptions ndots:5\n"
        );
        assert_eq!(resolv_conf(&DnsConfig::default()), "");
    }

    #[tokio::test]
    async fn files_are_written_and_removed_with_host_ipc() {
        let dir = tempfile::tempdir().expect("test step");
        let files = SandboxFiles::new(&dir.path().join("r"), &dir.path().join("s"), "id1");
        let config = PodSandboxConfig {
            hostname: "pod-a".into(),
            dns_config: Some(DnsConfig {
                servers: vec!["192.0.2.1".into()],
                ..DnsConfig::default()
            }),
            linux: Some(k8s_cri::v1::LinuxPodSandboxConfig {
                security_context: Some(k8s_cri::v1::LinuxSandboxSecurityContext {
                    namespace_options: Some(k8s_cri::v1::NamespaceOption {
                        ipc: k8s_cri::v1::NamespaceMode::Node as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..PodSandboxConfig::default()
        };
        files.create(&config).await.expect("test step");
        assert_eq!(
            std::fs::read_to_string(files.hostname()).expect("test step"),
            "pod-a\n"
        );
        assert_eq!(
            std::fs::read_to_string(files.resolv_conf()).expect("test step"),
            "nameserver 192.0.2.1\n"
        );
        assert!(files.hosts().exists());
        assert_eq!(files.shm_for(&config), PathBuf::from(HOST_SHM));
        files.remove().await.expect("test step");
        assert!(!files.root.exists() && !files.state.exists());
        files.remove().await.expect("test step");
    }
}
