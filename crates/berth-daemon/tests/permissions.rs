//! What other local users can see of berthd's files (issue: any local user
//! could read containers' secrets). berthd's root is root's alone, its state
//! directory is traversable but not listable, and everything with a secret in
//! it — the database, content, ingests, snapshots, bundles, FIFOs, shim
//! sockets, logs — is out of an unprivileged user's reach. Each check runs a
//! real program as `nobody` against a private daemon whose directories sit
//! in a world-traversable parent, as `/var/lib` and `/run` are.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_testkit::{
    busybox_oci_archive, require_ctr, require_root, run_with_timeout, ArchiveNames, CmdOutput,
    Daemon,
};

const NOBODY: u32 = 65534;
const SECRET: &str = "hunter2-berth-secret";
const IMAGE: &str = "docker.io/library/busybox:perm";

/// Runs `sh -c script` as `nobody`, with no supplementary groups
/// (util-linux's `setpriv`; a plain setuid would keep root's group 0).
fn as_nobody(script: &str) -> CmdOutput {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args(["--clear-groups", "/bin/busybox", "sh", "-c", script]);
    run_with_timeout(&mut cmd, Duration::from_secs(30)).expect("run as nobody")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Every file below `dir` (as root), for picking a real path to probe.
fn find(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if pred(&path) {
            out.push(path.clone());
        }
        if meta.is_dir() {
            out.extend(find(&path, pred));
        }
    }
    out
}

/// A daemon as an older berth left it: root and state 0755 in a
/// world-traversable directory; berthd is restarted on them.
fn open_installation() -> Daemon {
    let mut daemon = Daemon::start().expect("start berthd");
    daemon.stop().expect("stop berthd");
    chmod(daemon.dir(), 0o755);
    for dir in [daemon.root(), daemon.state()] {
        chmod(dir, 0o755);
    }
    daemon.restart().expect("restart berthd");
    daemon
}

#[test]
fn other_users_cannot_read_containers_secrets() {
    require_root!();
    require_ctr!();
    let daemon = open_installation();
    assert_eq!(mode(daemon.root()), 0o700, "root is fixed at start");
    assert_eq!(mode(daemon.state()), 0o711, "state is fixed at start");

    let archive = busybox_oci_archive(&ArchiveNames {
        ref_name: None,
        image_name: Some(IMAGE.into()),
    })
    .expect("archive");
    let tar = daemon.dir().join("busybox.tar");
    fs::write(&tar, &archive.bytes).expect("write archive");
    daemon
        .ctr(&["images", "import", tar.to_str().expect("utf-8")])
        .assert_success();
    let env = format!("SECRET_TOKEN={SECRET}");
    let script = format!("echo {SECRET} > /secret-file; sleep 300");
    daemon
        .ctr(&[
            "run", "-d", "--env", &env, IMAGE, "perm", "sh", "-c", &script,
        ])
        .assert_success();
    let cleanup = Cleanup(&daemon);

    // The secret is there for root to find: in the database and in the
    // container's upper directory.
    let db = daemon.root().join("metadata.redb");
    let db_bytes = fs::read(&db).expect("read db");
    assert!(
        db_bytes
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the spec with the secret is in {}",
        db.display()
    );
    let upper = wait_for(|| {
        find(&daemon.root().join("snapshots"), &|p| {
            p.ends_with("fs/secret-file")
        })
        .into_iter()
        .next()
    });
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&daemon.root().join("snapshots/overlayfs")), 0o700);
    let tasks = daemon.state().join("io.containerd.runtime.v2.task");
    assert_eq!((mode(&tasks), mode(&tasks.join("default"))), (0o711, 0o711));

    // Paths an attacker would try, each of which exists.
    let blob = find(&daemon.root().join("content/blobs"), &|p| p.is_file())
        .into_iter()
        .next()
        .expect("a content blob");
    let bundle = find(daemon.state(), &|p| {
        p.ends_with("perm") && p.join("config.json").exists()
    })
    .into_iter()
    .next()
    .expect("the task's bundle");
    let log_fifo = bundle.join("log");
    let address = fs::read_to_string(bundle.join("address")).expect("the shim's address");
    let shim_socket = PathBuf::from(address.trim().trim_start_matches("unix://"));
    assert!(shim_socket.exists(), "{} exists", shim_socket.display());
    assert_eq!(mode(&shim_socket), 0o600, "the shim's socket is root's");
    let mut probes: Vec<PathBuf> = vec![
        db.clone(),
        blob,
        daemon.root().join("content/ingest"),
        upper,
        bundle.join("config.json"),
        bundle.join("rootfs/secret-file"),
    ];
    if log_fifo.exists() {
        probes.push(log_fifo);
    }
    for path in &probes {
        assert!(path.exists(), "{} exists", path.display());
        let out = as_nobody(&format!("cat {:?} </dev/null", path));
        assert!(
            !out.success() && out.stderr.contains("Permission denied"),
            "nobody read {}: {out}",
            path.display()
        );
    }
    let listing = as_nobody(&format!("ls {:?} {:?}", daemon.root(), daemon.state()));
    assert!(!listing.success(), "nobody listed root or state: {listing}");
    let grep = as_nobody(&format!("grep -r {SECRET} {:?} 2>/dev/null", daemon.dir()));
    assert!(
        !grep.stdout.contains(SECRET),
        "nobody found the secret: {grep}"
    );

    // Sockets: the API socket and every shim socket refuse `nobody`.
    for sock in [shim_socket.as_path(), daemon.address()] {
        let out = as_nobody(&format!(
            "/usr/bin/python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' {:?}",
            sock
        ));
        assert!(
            !out.success() && out.stderr.contains("Permission denied"),
            "nobody connected to {}: {out}",
            sock.display()
        );
    }
    drop(cleanup);
}

fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(found) = probe() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting");
}

/// Kills and deletes the test's task and container.
struct Cleanup<'a>(&'a Daemon);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .try_ctr(None, &["tasks", "kill", "-s", "KILL", "perm"]);
        for _ in 0..50 {
            match self.0.try_ctr(None, &["tasks", "rm", "-f", "perm"]) {
                Ok(out) if out.success() || out.stderr.contains("not found") => break,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let _ = self.0.try_ctr(None, &["containers", "rm", "perm"]);
    }
}
