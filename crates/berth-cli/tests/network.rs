//! `berth run --net cni`: berthd attaches a CNI network (Debian's plugins
//! from /usr/lib/cni) between task create and start, publishes ports
//! through portmap and tears it all down when the task is deleted or, for a
//! task that died with its shim, when berthd starts again.
//!
//! Each test owns a bridge and subnet (its berthd's default network, set in
//! the daemon's config), sends traffic only to loopback and to its own
//! containers, and checks that no veth, lease, iptables rule or netns mount
//! is left.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use berth_testkit::{busybox_rootfs, require_root, task_rows, wait_task_status, CmdOutput, Daemon};

struct Net {
    daemon: Daemon,
    bridge: String,
    rootfs: String,
    fifo_dir: String,
    conf: PathBuf,
}

fn net(bridge: &str, subnet: &str) -> Net {
    let conf = tempfile::tempdir().expect("tempdir").keep();
    let config = format!(
        "version = 2\n[plugins.\"io.containerd.internal.v1.cni\"]\n\
         bin_dirs = [\"/usr/lib/cni\"]\nconf_dir = \"{}\"\ntimeout_secs = 20\n\
         [plugins.\"io.containerd.internal.v1.cni\".default_network]\n\
         name = \"{bridge}\"\nbridge = \"{bridge}\"\nsubnet = \"{subnet}\"\n",
        conf.join("net.d").display()
    );
    let daemon = Daemon::builder()
        .config(config)
        .start()
        .unwrap_or_else(|e| panic!("start daemon: {e:#}"));
    let root = daemon.dir().join("rootfs");
    busybox_rootfs(&root).expect("busybox rootfs");
    std::fs::create_dir_all(root.join("www")).expect("www");
    std::fs::write(root.join("www/index.html"), "hello over cni\n").expect("index");
    let fifo_dir = daemon.dir().join("fifo").display().to_string();
    Net {
        daemon,
        bridge: bridge.into(),
        rootfs: root.display().to_string(),
        fifo_dir,
        conf,
    }
}

impl Net {
    fn run(&self, args: &[&str]) -> CmdOutput {
        let mut all = vec!["run", "--fifo-dir", &self.fifo_dir];
        all.extend_from_slice(args);
        self.daemon.berth(&all)
    }

    fn rows(&self) -> Vec<berth_testkit::TaskRow> {
        task_rows(&self.daemon.berth(&["tasks", "ls"]).assert_success())
    }

    /// host-local's leases in berthd's default IPAM directory.
    fn leases(&self) -> Vec<String> {
        let dir = self.daemon.state().join("cni/networks").join(&self.bridge);
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
            .collect()
    }

    fn netns_left(&self) -> Vec<PathBuf> {
        let dir = self.daemon.state().join("netns");
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|ns| std::fs::read_dir(ns.path()).into_iter().flatten().flatten())
            .map(|e| e.path())
            .collect()
    }

    fn veths(&self) -> String {
        sh(&format!(
            "ip -o link show master {} 2>/dev/null",
            self.bridge
        ))
    }

    /// Whether every trace of the test's networks is gone.
    fn is_clean(&self, port: &str) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let state = self.daemon.state().join("netns").display().to_string();
        self.leases().is_empty()
            && self.veths().is_empty()
            && self.netns_left().is_empty()
            && rules(port).is_empty()
            && !mounts.contains(&state)
    }

    /// Asserts that nothing is left, once the daemon's background
    /// teardowns (which run after a task's Delete answers) are over.
    #[track_caller]
    fn assert_clean(&self, port: &str) {
        eventually(|| self.is_clean(port));
        assert_eq!(self.leases(), Vec::<String>::new(), "leases left");
        assert_eq!(self.veths(), "", "veths left");
        assert_eq!(self.netns_left(), Vec::<PathBuf>::new(), "netns left");
        assert_eq!(rules(port), "", "iptables rules left");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let state = self.daemon.state().join("netns").display().to_string();
        assert!(!mounts.contains(&state), "netns mounts left");
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Ok(out) = self.daemon.try_berth(None, &["containers", "ls", "-q"]) {
            for id in out.lines() {
                let _ = self
                    .daemon
                    .try_berth(None, &["tasks", "kill", "-a", "-s", "KILL", id]);
                for _ in 0..50 {
                    let rm = self.daemon.try_berth(None, &["tasks", "rm", "-f", id]);
                    if rm.map_or(true, |o| o.success() || o.stderr.contains("not found")) {
                        break;
                    }
                    thread::sleep(Duration::from_millis(100));
                }
                let _ = self.daemon.try_berth(None, &["containers", "rm", id]);
            }
        }
        for netns in self.netns_left() {
            let _ = Command::new("umount").arg("-l").arg(&netns).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.conf);
    }
}

/// Waits up to 15 s for `done`: a task's network is torn down in the
/// background after its Delete has answered.
fn eventually(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !done() && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
}

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rules(needle: &str) -> String {
    sh("iptables-save 2>/dev/null")
        .lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The IP column of `berth tasks ls` for `id`.
fn task_ip(n: &Net, id: &str) -> String {
    let out = n.daemon.berth(&["tasks", "ls"]).assert_success();
    let header: Vec<&str> = out.lines()[0].split_whitespace().collect();
    assert_eq!(header, ["TASK", "PID", "STATUS", "IP"], "{}", out.stdout);
    out.lines()
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&id))
        .and_then(|f| f.get(3).map(|s| s.to_string()))
        .unwrap_or_else(|| panic!("no {id} in {}", out.stdout))
}

#[test]
fn run_with_cni_publishes_a_port_and_cleans_up_on_delete() {
    require_root!();
    let n = net("bcni-r1", "10.231.11.0/24");
    let port = "18941";
    n.run(&[
        "-d",
        "--net",
        "cni",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "--dns",
        "192.0.2.53",
        "--hostname",
        "webhost",
        "--rootfs",
        &n.rootfs,
        "web",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ])
    .assert_success();
    let ip = task_ip(&n, "web");
    assert!(ip.starts_with("10.231.11."), "{ip}");
    let info = n
        .daemon
        .berth(&["containers", "info", "web"])
        .assert_success();
    assert!(
        info.stdout
            .contains(&format!("\"io.berth.network.ip\": \"{ip}\"")),
        "{}",
        info.stdout
    );
    assert_eq!(
        berth_testkit::http_get(&format!("{ip}:80")),
        "hello over cni\n"
    );
    assert_eq!(
        berth_testkit::http_get(&format!("127.0.0.1:{port}")),
        "hello over cni\n"
    );

    // A second claim on the port fails clearly and leaves nothing.
    n.run(&[
        "--rm",
        "--net",
        "cni",
        "-p",
        &format!("{port}:80"),
        "--rootfs",
        &n.rootfs,
        "web2",
        "true",
    ])
    .assert_failure_containing(port);
    assert_eq!(n.leases().len(), 1, "only web's lease");

    // The container's files come from the result and the flags.
    let script = format!(
        "cat /etc/resolv.conf /etc/hostname /etc/hosts; busybox hostname; busybox wget -q -O - http://{ip}/"
    );
    let probe = n
        .run(&[
            "--rm",
            "--net",
            "cni",
            "--dns",
            "192.0.2.53",
            "--hostname",
            "probe",
            "--rootfs",
            &n.rootfs,
            "probe",
            "sh",
            "-c",
            &script,
        ])
        .assert_success();
    assert!(
        probe.stdout.contains("nameserver 192.0.2.53\n"),
        "{}",
        probe.stdout
    );
    assert!(probe.stdout.contains("probe\n"), "{}", probe.stdout);
    assert!(
        probe.stdout.contains("\tprobe\n"),
        "hosts names the container: {}",
        probe.stdout
    );
    assert!(
        probe.stdout.contains("hello over cni"),
        "containers reach each other: {}",
        probe.stdout
    );
    eventually(|| n.leases().len() == 1);
    assert_eq!(n.leases().len(), 1, "--rm freed probe's lease");

    // SIGKILL, then delete: the address is freed and nothing is left.
    n.daemon
        .berth(&["tasks", "kill", "-s", "KILL", "web"])
        .assert_success();
    wait_task_status(|| n.rows(), "web", "STOPPED", Duration::from_secs(20));
    n.daemon.berth(&["tasks", "rm", "web"]).assert_success();
    n.assert_clean(port);
    let info = n
        .daemon
        .berth(&["containers", "info", "web"])
        .assert_success();
    assert!(
        !info.stdout.contains("io.berth.network.ip"),
        "{}",
        info.stdout
    );
}

/// Pids of processes whose command line contains every one of `words`.
fn pids_with(words: &[&str]) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if words.iter().all(|w| args.iter().any(|a| a == w)) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn networks_orphaned_by_a_killed_daemon_are_removed_at_restart() {
    require_root!();
    let mut n = net("bcni-r2", "10.231.12.0/24");
    let port = "18942";
    n.run(&[
        "-d",
        "--net",
        "cni",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "--rootfs",
        &n.rootfs,
        "orphan",
        "sleep",
        "1000",
    ])
    .assert_success();
    let pid = n
        .rows()
        .into_iter()
        .find(|r| r.id == "orphan")
        .expect("task")
        .pid;
    assert_eq!(n.leases().len(), 1);
    // berthd dies, then the shim and the container: nothing will delete
    // the task, so the network is an orphan.
    n.daemon.kill9().expect("kill berthd");
    let address = n.daemon.address().display().to_string();
    let shims = pids_with(&["-id", "orphan", "-address", &address]);
    assert!(!shims.is_empty(), "found the shim");
    for p in shims.into_iter().chain([pid as i32]) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    thread::sleep(Duration::from_millis(300));
    n.daemon.restart().expect("restart berthd");
    n.assert_clean(port);
    assert!(
        n.daemon.log().contains("orphaned network removed"),
        "{}",
        n.daemon.log()
    );
}

#[test]
fn bad_network_requests_are_clear_errors() {
    require_root!();
    let n = net("bcni-r3", "10.231.13.0/24");
    n.run(&[
        "--rm",
        "--net",
        "cni:nosuch",
        "--rootfs",
        &n.rootfs,
        "x",
        "true",
    ])
    .assert_failure_containing("nosuch");
    n.run(&["--rm", "-p", "80:80", "--rootfs", &n.rootfs, "y", "true"])
        .assert_failure_containing("--net cni");
    n.run(&[
        "--rm", "--net", "host", "--cni", "--rootfs", &n.rootfs, "z", "true",
    ])
    .assert_failure_containing("conflict");
    // runc failing after ADD: the network is undone with the task.
    n.run(&[
        "--rm",
        "--net",
        "cni",
        "-p",
        "127.0.0.1:18943:80",
        "--rootfs",
        &n.rootfs,
        "u",
        "/no/such/binary",
    ])
    .assert_failure_containing("/no/such/binary");
    n.assert_clean("18943");
    // An invalid file is the answer (by name) when no valid one exists.
    let conf_dir = n.conf.join("net.d");
    std::fs::create_dir_all(&conf_dir).expect("conf dir");
    std::fs::write(conf_dir.join("10-broken.conflist"), "{\"name\": \"x\"}").expect("write");
    n.run(&["--rm", "--net", "cni", "--rootfs", &n.rootfs, "w", "true"])
        .assert_failure_containing("10-broken.conflist");
    // A plugin missing from the chain: named, with its network and file.
    std::fs::write(
        conf_dir.join("20-missing.conflist"),
        r#"{"cniVersion":"1.0.0","name":"gone","plugins":[{"type":"nosuchplugin"}]}"#,
    )
    .expect("write");
    let out = n
        .run(&[
            "--rm", "--net", "cni:gone", "--rootfs", &n.rootfs, "v", "true",
        ])
        .assert_failure_containing("nosuchplugin");
    assert!(out.stderr.contains("20-missing.conflist"), "{}", out.stderr);
    assert!(out.stderr.contains("\"gone\""), "{}", out.stderr);
    assert!(!out.stderr.contains("cleanup"), "{}", out.stderr);
    assert_eq!(n.netns_left(), Vec::<PathBuf>::new());
    assert_eq!(
        n.daemon
            .berth(&["containers", "ls", "-q"])
            .assert_success()
            .stdout,
        ""
    );
}

#[test]
fn a_hundred_runs_leak_no_veth_lease_rule_or_mount() {
    require_root!();
    let n = net("bcni-r4", "10.231.14.0/24");
    let port = "18944";
    for i in 0..100 {
        let id = format!("cycle{i}");
        n.run(&[
            "--rm",
            "--net",
            "cni",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "--rootfs",
            &n.rootfs,
            &id,
            "true",
        ])
        .assert_success();
    }
    n.assert_clean(port);
    assert_eq!(
        n.daemon
            .berth(&["containers", "ls", "-q"])
            .assert_success()
            .stdout,
        ""
    );
}

#[test]
fn a_task_created_before_a_daemon_kill_keeps_its_network_until_deleted() {
    use berth_client::cio::Io;
    use berth_client::container::NewContainer;
    use berth_client::network::{NetworkConfig, NetworkMode};
    require_root!();
    let mut n = net("bcni-r5", "10.231.15.0/24");
    let port = "18945";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Created, not started: ADD has run, the process waits in runc init.
    runtime.block_on(async {
        let client = berth_client::Client::connect(n.daemon.address().display().to_string())
            .await
            .expect("connect")
            .with_namespace("default");
        let network = NetworkConfig {
            mode: NetworkMode::Cni(None),
            ports: vec![format!("127.0.0.1:{port}:80").parse().expect("port")],
            dns: vec![],
        };
        let container = client
            .new_container(
                "pending",
                NewContainer::from_rootfs(&n.rootfs)
                    .args(["sleep", "1000"])
                    .network(network),
            )
            .await
            .expect("container");
        container.new_task(Io::null()).await.expect("task");
    });
    assert_eq!(n.leases().len(), 1);
    n.daemon.kill9().expect("kill berthd");
    n.daemon.restart().expect("restart berthd");
    // The task was adopted, so its network stays…
    assert_eq!(n.leases().len(), 1, "{}", n.daemon.log());
    assert_eq!(n.netns_left().len(), 1);
    assert!(task_ip(&n, "pending").starts_with("10.231.15."));
    // …until the task is deleted.
    n.daemon
        .berth(&["tasks", "rm", "-f", "pending"])
        .assert_success();
    n.assert_clean(port);
}

/// Debian's `ctr run --cni` runs CNI itself (client-side, go-cni) in the
/// network namespace of the task's pid; berth's part is that pid. ctr reads
/// `/etc/cni/net.d` only (and caches in `/var/lib/cni`), so it runs in a
/// private mount namespace where overlays on `/etc` and `/var/lib` hold this
/// test's network and cache; the host's directories are not touched.
#[test]
fn ctr_run_cni_against_berthd_gets_an_address_and_cleans_up() {
    require_root!();
    berth_testkit::require_ctr!();
    let n = net("bcni-r6", "10.231.16.0/24");
    let work = n.conf.join("ctr");
    for sub in ["up", "work", "varup", "varwork"] {
        std::fs::create_dir_all(work.join(sub)).expect("overlay dirs");
    }
    let ipam = work.join("ipam");
    let conflist = format!(
        r#"{{"cniVersion":"1.0.0","name":"ctrnet","plugins":[{{"type":"bridge","bridge":"bcni-r6","isGateway":true,"ipMasq":true,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.231.16.0/24"}}]],"routes":[{{"dst":"0.0.0.0/0"}}],"dataDir":"{}"}}}},{{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}"#,
        ipam.display()
    );
    std::fs::write(work.join("10-ctrnet.conflist"), conflist).expect("conflist");
    let script = format!(
        "mount -t overlay overlay -o lowerdir=/etc,upperdir={w}/up,workdir={w}/work /etc && \
         mount -t overlay overlay -o lowerdir=/var/lib,upperdir={w}/varup,workdir={w}/varwork /var/lib && \
         mkdir -p /etc/cni/net.d && cp {w}/10-ctrnet.conflist /etc/cni/net.d/ && \
         exec ctr --address {sock} run --cni --rm --rootfs {root} ctrcni /bin/busybox ip -o -4 addr show eth0",
        w = work.display(),
        sock = n.daemon.address().display(),
        root = n.rootfs,
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("inet 10.231.16."), "{stdout}");
    let leases: Vec<_> = std::fs::read_dir(ipam.join("ctrnet"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f != "lock" && !f.starts_with("last_reserved_ip"))
        .collect();
    assert_eq!(leases, Vec::<String>::new(), "ctr's DEL freed the lease");
    assert_eq!(n.veths(), "");
    assert_eq!(
        n.daemon
            .berth(&["containers", "ls", "-q"])
            .assert_success()
            .stdout,
        ""
    );
}
