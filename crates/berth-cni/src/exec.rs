//! Running a plugin: the exec protocol of the CNI spec. The command and the
//! container travel in `CNI_*` environment variables, the configuration on
//! stdin; the result (or an error object) comes back on stdout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_core::{Error, ErrorKind, Result};
use tokio::io::AsyncWriteExt;

use crate::result::PluginError;

/// The `CNI_*` environment of one call. Fields left empty are not set
/// (VERSION, STATUS and GC have no container).
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `CNI_COMMAND`: ADD, DEL, CHECK, VERSION, STATUS, GC.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// `CNI_ARGS`, joined as `K=V;K=V`.
    pub args: Vec<(String, String)>,
    /// `CNI_PATH`: where the plugin finds delegates (IPAM).
    pub path: Vec<PathBuf>,
}

/// The first `name` in `dirs` that is a file.
pub fn find_plugin(name: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::invalid_argument(format!(
            "invalid plugin name {name:?}"
        )));
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::not_found(format!(
                "CNI plugin {name:?} in {}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ))
        })
}

/// Runs `plugin` with `stdin`; its stdout on success. A failing plugin's
/// error object becomes the error, whole; one that runs past `timeout` is
/// killed.
pub async fn exec_plugin(
    plugin: &Path,
    invocation: &Invocation,
    stdin: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let mut command = tokio::process::Command::new(plugin);
    command
        .env("CNI_COMMAND", &invocation.command)
        .env(
            "CNI_PATH",
            std::env::join_paths(&invocation.path).unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in [
        ("CNI_CONTAINERID", &invocation.container_id),
        ("CNI_NETNS", &invocation.netns),
        ("CNI_IFNAME", &invocation.if_name),
    ] {
        if !value.is_empty() {
            command.env(key, value);
        }
    }
    if !invocation.args.is_empty() {
        let args: Vec<String> = invocation
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        command.env("CNI_ARGS", args.join(";"));
    }
    let mut child = command
        .spawn()
        .map_err(|e| Error::unavailable(format!("run {}: {e}", plugin.display())))?;
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    let run = async move {
        // A plugin may exit without reading stdin: a broken pipe is no error.
        let _ = input.write_all(&stdin).await;
        drop(input);
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(timeout, run).await {
        Ok(output) => {
            output.map_err(|e| Error::unavailable(format!("wait for {}: {e}", plugin.display())))?
        }
        Err(_) => {
            return Err(Error::new(
                ErrorKind::DeadlineExceeded,
                format!("timed out after {timeout:?}, killed"),
            ))
        }
    };
    if output.status.success() {
        return Ok(output.stdout);
    }
    if let Some(err) = PluginError::parse(&output.stdout) {
        return Err(Error::new(err.kind(), err.to_string()));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    Err(Error::new(
        ErrorKind::Unknown,
        format!(
            "{}: {}",
            output.status,
            [stdout.trim(), stderr.trim()]
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[tokio::test]
    async fn environment_and_stdin_reach_the_plugin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugin = script(
            dir.path(),
            "echo",
            r#"printf '%s|%s|%s|%s|%s|' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS"; cat"#,
        );
        let inv = Invocation {
            command: "ADD".into(),
            container_id: "c1".into(),
            netns: "/n".into(),
            if_name: "eth0".into(),
            args: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
            path: vec![dir.path().into()],
        };
        let out = exec_plugin(&plugin, &inv, b"{}", Duration::from_secs(5))
            .await
            .expect("run");
        assert_eq!(String::from_utf8_lossy(&out), "ADD|c1|/n|eth0|A=1;B=2|{}");
        assert_eq!(
            find_plugin("echo", &[dir.path().into()]).expect("found"),
            plugin
        );
        assert!(find_plugin("nope", &[dir.path().into()])
            .expect_err("missing")
            .is_not_found());
    }

    #[tokio::test]
    async fn errors_and_timeouts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failing = script(
            dir.path(),
            "fail",
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"try later"}'; exit 1"#,
        );
        let err = exec_plugin(
            &failing,
            &Invocation::default(),
            b"",
            Duration::from_secs(5),
        )
        .await
        .expect_err("fails");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.message(), "code 11: busy: try later");
        let crashing = script(dir.path(), "crash", "echo oops >&2; exit 3");
        let err = exec_plugin(
            &crashing,
            &Invocation::default(),
            b"",
            Duration::from_secs(5),
        )
        .await
        .expect_err("fails");
        assert!(err.message().contains("oops"), "{err}");
        let hanging = script(dir.path(), "hang", "exec sleep 30");
        let err = exec_plugin(
            &hanging,
            &Invocation::default(),
            b"",
            Duration::from_millis(200),
        )
        .await
        .expect_err("times out");
        assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    }
}
