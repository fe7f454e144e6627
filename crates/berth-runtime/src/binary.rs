//! Shim binaries: resolving a runtime name to one, and running its `start`
//! and `delete` commands as containerd's `core/runtime/v2/binary.go` does.

use berth_core::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The runtime name berth serves with its own shim unless configured otherwise.
pub const RUNC_V2: &str = "io.containerd.runc.v2";
/// berth's shim binary.
pub const BERTH_SHIM: &str = "containerd-shim-berth-v2";
/// containerd 1.x's legacy runtime (shim v1 API), which berth does not have.
pub const LEGACY_V1_LINUX: &str = "io.containerd.runtime.v1.linux";
/// How long a shim's `start` or `delete` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves runtime names to shim binaries.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// Configured binaries by runtime name; they win over every rule.
    pub overrides: HashMap<String, PathBuf>,
    /// The directory holding berthd, where berth's own shim is looked for.
    pub berth_dir: Option<PathBuf>,
}

impl Resolver {
    /// The shim binary for `runtime`: a configured one; an absolute path as
    /// given; for `io.containerd.runc.v2` berth's shim next to berthd (or on
    /// `PATH`); for any `io.containerd.X.vN`, `containerd-shim-X-vN` on `PATH`.
    pub fn resolve(&self, runtime: &str) -> Result<PathBuf> {
        if let Some(path) = self.overrides.get(runtime) {
            return Ok(path.clone());
        }
        if runtime.starts_with('/') {
            return Ok(PathBuf::from(runtime));
        }
        if runtime == LEGACY_V1_LINUX {
            return Err(Error::not_implemented(format!(
                "runtime {runtime:?} (containerd's legacy shim v1 API) is not supported by berth: use {RUNC_V2:?}"
            )));
        }
        let name = if runtime == RUNC_V2 {
            if let Some(path) = self.berth_dir.as_ref().map(|d| d.join(BERTH_SHIM)) {
                if is_executable(&path) {
                    return Ok(path);
                }
            }
            BERTH_SHIM.to_string()
        } else {
            binary_name(runtime).ok_or_else(|| {
                Error::invalid_argument(format!("invalid runtime name {runtime:?}"))
            })?
        };
        search_path(&name)
            .ok_or_else(|| Error::not_found(format!("runtime {runtime:?} binary {name}")))
    }
}

/// containerd's rule: the last two dot-separated parts name the binary,
/// `io.containerd.runc.v2` → `containerd-shim-runc-v2`.
pub fn binary_name(runtime: &str) -> Option<String> {
    let parts: Vec<&str> = runtime.split('.').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty() || p.contains('/')) {
        return None;
    }
    let (name, version) = (parts[parts.len() - 2], parts[parts.len() - 1]);
    Some(format!("containerd-shim-{name}-{version}"))
}

fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What a shim was started with: its address and, when it says (containerd
/// 2.x's JSON bootstrap), the task API version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The ttrpc address, e.g. `unix:///run/containerd/s/…`.
    pub address: String,
    /// The task API version the shim announced, if it did.
    pub version: Option<u32>,
}

/// Parses a shim's `start` output: a bare address (containerd 1.x shims) or
/// `{"version":3,"address":"unix://…","protocol":"ttrpc"}` (2.x).
pub fn parse_start_output(out: &str) -> Result<Started> {
    let out = out.trim();
    if out.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(out)
            .map_err(|e| Error::internal(format!("shim bootstrap output {out:?}: {e}")))?;
        let address = value["address"].as_str().unwrap_or_default().to_string();
        let version = value["version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok());
        if address.is_empty() {
            return Err(Error::internal(format!(
                "shim bootstrap without address: {out}"
            )));
        }
        return Ok(Started { address, version });
    }
    if out.is_empty() {
        return Err(Error::internal("shim printed no address"));
    }
    Ok(Started {
        address: out.to_string(),
        version: None,
    })
}

/// One shim command line: the flags every runtime v2 shim takes.
#[derive(Debug, Clone)]
pub struct ShimCommand {
    /// The shim binary.
    pub binary: PathBuf,
    /// The namespace.
    pub namespace: String,
    /// The task id.
    pub id: String,
    /// The bundle directory (the command's working directory).
    pub bundle: PathBuf,
    /// The daemon's gRPC socket.
    pub address: PathBuf,
    /// The daemon's ttrpc socket for events (`<address>.ttrpc`).
    pub ttrpc_address: PathBuf,
    /// The binary shims run to publish events (berthd itself).
    pub publish_binary: PathBuf,
    /// Pass `-debug`.
    pub debug: bool,
}

impl ShimCommand {
    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-namespace")
            .arg(&self.namespace)
            .arg("-address")
            .arg(&self.address)
            .arg("-publish-binary")
            .arg(&self.publish_binary)
            .arg("-id")
            .arg(&self.id);
        if self.debug {
            cmd.arg("-debug");
        }
        cmd.args(extra)
            .current_dir(&self.bundle)
            .env("GOMAXPROCS", "2")
            .env("TTRPC_ADDRESS", &self.ttrpc_address)
            .env("GRPC_ADDRESS", &self.address)
            .env("NAMESPACE", &self.namespace)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `start` with the encoded runtime options on stdin and returns
    /// what the shim printed.
    pub async fn start(&self, options: Option<Vec<u8>>) -> Result<Started> {
        let out = self.run(&["start"], options.unwrap_or_default()).await?;
        parse_start_output(&String::from_utf8_lossy(&out))
    }

    /// Runs `-bundle DIR delete` for a dead shim's cleanup; the reply is the
    /// task API's `DeleteResponse`, encoded, on stdout.
    pub async fn delete(&self) -> Result<containerd_shim_protos::api::DeleteResponse> {
        let bundle = self.bundle.to_string_lossy().into_owned();
        let out = self
            .run(&["-bundle", &bundle, "delete"], Vec::new())
            .await?;
        protobuf::Message::parse_from_bytes(&out)
            .map_err(|e| Error::internal(format!("shim delete output: {e}")))
    }

    async fn run(&self, extra: &[&str], stdin: Vec<u8>) -> Result<Vec<u8>> {
        let what = format!("{} {}", self.binary.display(), extra.join(" "));
        let mut child = self
            .command(extra)
            .spawn()
            .map_err(|e| Error::internal(format!("run {what}: {e}")))?;
        if let Some(mut input) = child.stdin.take() {
            // A shim that does not read its options closes stdin early.
            let _ = input.write_all(&stdin).await;
        }
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| Error::internal(format!("{what}: timed out")))?
            .map_err(|e| Error::internal(format!("{what}: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(Error::internal(format!(
                "{what}: {}: {}",
                output.status,
                stderr.trim()
            )));
        }
        Ok(output.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_v1_runtime_is_refused_clearly() {
        let resolver = Resolver {
            overrides: Default::default(),
            berth_dir: None,
        };
        let err = resolver.resolve(LEGACY_V1_LINUX).expect_err("v1 runtime");
        assert_eq!(err.kind(), berth_core::ErrorKind::NotImplemented);
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn binary_names_follow_containerd() {
        assert_eq!(
            binary_name("io.containerd.runc.v2").as_deref(),
            Some("containerd-shim-runc-v2")
        );
        assert_eq!(
            binary_name("io.containerd.berth.v2").as_deref(),
            Some("containerd-shim-berth-v2")
        );
        assert_eq!(binary_name("runc"), None);
        assert_eq!(binary_name("a/../b.c"), None);
    }

    #[test]
    fn configured_binary_wins() {
        let mut resolver = Resolver::default();
        resolver
            .overrides
            .insert(RUNC_V2.into(), "/usr/bin/containerd-shim-runc-v2".into());
        assert_eq!(
            resolver.resolve(RUNC_V2).expect("resolve"),
            PathBuf::from("/usr/bin/containerd-shim-runc-v2")
        );
    }

    #[test]
    fn berth_shim_next_to_berthd_serves_runc_v2() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let shim = dir.path().join(BERTH_SHIM);
        std::fs::write(&shim, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let resolver = Resolver {
            berth_dir: Some(dir.path().to_path_buf()),
            ..Resolver::default()
        };
        assert_eq!(resolver.resolve(RUNC_V2).expect("resolve"), shim);
    }

    #[test]
    fn unknown_runtime_is_not_found() {
        let err = Resolver::default()
            .resolve("io.containerd.nope-nope.v9")
            .expect_err("missing");
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn start_output_is_an_address_or_json() {
        assert_eq!(
            parse_start_output("unix:///run/s/abc\n").expect("plain"),
            Started {
                address: "unix:///run/s/abc".into(),
                version: None
            }
        );
        let json = r#"{"version":3,"address":"unix:///s","protocol":"ttrpc"}"#;
        assert_eq!(parse_start_output(json).expect("json").version, Some(3));
        assert!(parse_start_output("  ").is_err());
    }
}
