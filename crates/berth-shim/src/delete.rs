//! `delete`: clean up after a shim that died, as the daemon asks.
//!
//! Run in (or with `-bundle`) the bundle directory: force-delete the
//! container with runc (killing whatever is left), unmount the rootfs, and
//! print a protobuf `DeleteResponse` on stdout for the daemon: exit status
//! 137 (SIGKILL) and now, with the init pid from `init.pid`, as
//! containerd-shim-runc-v2 reports it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;

use crate::args::Args;
use crate::events::timestamp;
use crate::runc::RuncConfig;
use crate::service::RUNC_CONFIG_FILE;

/// 128 + SIGKILL: how a task whose shim died is reported.
const KILLED: u32 = 137;

pub fn run(args: &Args) -> Result<(), String> {
    let bundle = match &args.bundle {
        Some(b) => PathBuf::from(b),
        None => std::env::current_dir().map_err(|e| format!("working directory: {e}"))?,
    };
    let config = std::fs::read_to_string(bundle.join(RUNC_CONFIG_FILE))
        .ok()
        .and_then(|t| RuncConfig::decode(&t))
        .unwrap_or_else(|| RuncConfig::default_for(&args.namespace));
    let mut cmd = Command::new(&config.binary);
    cmd.arg("--root").arg(&config.root);
    if config.systemd_cgroup {
        cmd.arg("--systemd-cgroup");
    }
    // Best effort: the container may never have been created.
    let _ = cmd
        .args(["delete", "--force", &args.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Some(spec) = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        crate::cgroup::remove_leftover(&spec);
    }
    crate::rootfs::unmount_all(&bundle.join("rootfs"));
    let address = crate::address::socket_address(&args.address, &args.namespace, &args.id);
    let _ = std::fs::remove_file(crate::address::socket_path(&address));
    let pid = std::fs::read_to_string(bundle.join("init.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let mut r = DeleteResponse::new();
    r.pid = pid;
    r.exit_status = KILLED;
    r.exited_at = Some(timestamp(SystemTime::now())).into();
    let bytes = r.write_to_bytes().map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| format!("writing the response: {e}"))
}
