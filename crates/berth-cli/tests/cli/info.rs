//! `berth info`: the daemon's page, as a table and as JSON.

use std::path::Path;

use berth_testkit::{busybox_rootfs, require_ctr, require_root, testing_containerd, Daemon};

use crate::{create, daemon, json};

/// The value after `key` on its line of the page.
fn field<'a>(page: &'a str, key: &str) -> &'a str {
    page.lines()
        .find_map(|l| l.trim_start().strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in\n{page}"))
}

/// This host's cgroup layout, read independently of berth.
fn cgroup_mode() -> &'static str {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        "v2"
    } else if root.join("unified/cgroup.controllers").exists() {
        "hybrid"
    } else {
        "v1"
    }
}

/// Runs `sleep` in a task, killed and deleted on drop.
struct Running<'a>(&'a Daemon, &'static str);

impl<'a> Running<'a> {
    fn start(daemon: &'a Daemon, id: &'static str) -> Running<'a> {
        let rootfs = daemon.dir().join("rootfs");
        busybox_rootfs(&rootfs).expect("busybox rootfs");
        let rootfs = rootfs.to_str().expect("utf-8 path");
        daemon
            .ctr(&["run", "-d", "--rootfs", rootfs, id, "/bin/sleep", "600"])
            .assert_success();
        Running(daemon, id)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .try_ctr(None, &["tasks", "kill", "-s", "KILL", self.1]);
        for _ in 0..100 {
            let deleted = self.0.try_ctr(None, &["tasks", "delete", self.1]);
            if deleted.is_ok_and(|o| o.status.success()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.try_ctr(None, &["containers", "delete", self.1]);
    }
}

#[test]
fn info_shows_paths_counts_runtime_and_plugins_as_table_and_json() {
    if testing_containerd() {
        return;
    }
    let daemon = daemon();
    create(&daemon, "info-a", "c1", &[]);
    create(&daemon, "info-b", "c2", &[]);
    let running = (require_root() && require_ctr()).then(|| Running::start(&daemon, "info-task"));

    let out = daemon.berth(&["info"]).assert_success();
    let page = out.stdout.as_str();
    let path = |p: &Path| p.display().to_string();
    assert_eq!(field(page, "Root:"), path(daemon.root()), "{page}");
    assert_eq!(field(page, "State:"), path(daemon.state()), "{page}");
    assert_eq!(
        field(page, "Config file:"),
        path(&daemon.dir().join("config.toml"))
    );
    assert_eq!(field(page, "Metrics:"), "off");
    assert_eq!(field(page, "Snapshotter:"), "overlayfs");
    assert_eq!(field(page, "Runtime:"), "io.containerd.runc.v2");
    assert!(
        field(page, "Shim:").ends_with("containerd-shim-berth-v2"),
        "{page}"
    );
    assert_eq!(
        field(page, "Cgroups:"),
        format!("{} (this host)", cgroup_mode())
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        page.contains(&format!("  Version:      {version}\n")),
        "{page}"
    );
    let (namespaces, containers, running_tasks) = match running {
        Some(_) => ("3", "3", "1 running, 1 in all"),
        None => ("2", "2", "0 running, 0 in all"),
    };
    assert_eq!(field(page, "Namespaces:"), namespaces, "{page}");
    assert_eq!(field(page, "Containers:"), containers, "{page}");
    assert_eq!(field(page, "Tasks:"), running_tasks, "{page}");
    assert!(field(page, "Plugins:").ends_with(" 0 failed"), "{page}");

    let doc = json(&daemon.berth(&["info", "--format", "json"]).assert_success());
    assert_eq!(doc["server"]["root"], path(daemon.root()));
    assert_eq!(
        doc["server"]["config_file"],
        path(&daemon.dir().join("config.toml"))
    );
    assert_eq!(doc["server"]["metrics_address"], "");
    assert_eq!(doc["server"]["version"], version);
    assert_eq!(doc["client"]["version"], version);
    assert_eq!(doc["cgroup_mode"], cgroup_mode());
    assert_eq!(doc["counts"]["containers"].to_string(), containers);
    assert_eq!(doc["counts"]["namespaces"].to_string(), namespaces);
    assert_eq!(doc["plugins"]["failed"], 0);
    assert!(
        doc["plugins"]["ok"].as_u64().is_some_and(|n| n > 10),
        "{doc}"
    );
    assert_eq!(doc["snapshotter"]["name"], "overlayfs");
    assert!(doc["snapshotter"]["disk_usage_bytes"].is_i64(), "{doc}");
    drop(running);
}
