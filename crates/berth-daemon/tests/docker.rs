//! Docker Engine on berthd: Debian's `dockerd` 20.10 started with
//! `--containerd <berthd socket>`, driven by the docker CLI as users drive
//! it. dockerd keeps images in its own overlay2 graphdriver and reaches
//! berthd through the containers, tasks and events services (namespace
//! `moby`, runtime `io.containerd.runc.v2`, which berthd serves with its
//! own shim). Containers run with `--network none`: the test engines have
//! no bridge.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::{require_docker, run_with_input, Daemon, Dockerd, Registry};

/// One engine on one berthd, with busybox pulled from a loopback registry.
/// Fields drop in order: dockerd removes its containers and stops before
/// berthd goes, and the registry goes last.
struct Engine {
    docker: Dockerd,
    daemon: Daemon,
    _registry: Registry,
    image: String,
}

fn engine(live_restore: bool) -> Engine {
    let registry = Registry::start().expect("start the registry");
    let image = registry
        .push_busybox("test/busybox:1")
        .expect("push busybox");
    let daemon = Daemon::start().expect("start berthd");
    let docker = Dockerd::builder(&daemon)
        .live_restore(live_restore)
        .start()
        .expect("start dockerd");
    docker.docker(&["pull", &image]).assert_success();
    Engine {
        docker,
        daemon,
        _registry: registry,
        image,
    }
}

impl Engine {
    /// `docker run -d --network none IMAGE sh -c SCRIPT`, returning the id.
    fn run_detached(&self, extra: &[&str], script: &str) -> String {
        let mut args = vec!["run", "-d", "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&self.image, "sh", "-c", script]);
        let out = self.docker.docker(&args).assert_success();
        out.stdout.trim().to_string()
    }

    fn pid(&self, id: &str) -> u32 {
        let pid = self.docker.inspect(id, "{{.State.Pid}}");
        pid.parse()
            .unwrap_or_else(|_| panic!("pid of {id}: {pid:?}"))
    }

    fn status(&self, id: &str) -> String {
        self.docker.inspect(id, "{{.State.Status}}")
    }

    /// Polls `docker inspect` until `format` renders `want`.
    #[track_caller]
    fn wait_inspect(&self, id: &str, format: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.docker.inspect(id, format);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id}: {format} is {got:?}, waited for {want:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `docker top` (a Tasks.ListPids call through dockerd) until
    /// dockerd's connection to berthd works again.
    #[track_caller]
    fn wait_reconnected(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.docker.docker(&["top", id]);
            if out.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd never reconnected:\n{out}"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The container ids berthd holds in namespace `moby`.
    fn berth_containers(&self) -> Vec<String> {
        let out = self
            .daemon
            .ctr_ns("moby", &["containers", "ls", "-q"])
            .assert_success();
        out.lines().into_iter().map(String::from).collect()
    }

    /// berthd's task list in `moby`: (id, pid, status) rows.
    fn berth_tasks(&self) -> Vec<(String, String, String)> {
        let out = self
            .daemon
            .ctr_ns("moby", &["tasks", "ls"])
            .assert_success();
        out.lines()
            .into_iter()
            .skip(1)
            .filter_map(|line| {
                let mut cols = line.split_whitespace();
                Some((
                    cols.next()?.to_string(),
                    cols.next()?.to_string(),
                    cols.next()?.to_string(),
                ))
            })
            .collect()
    }
}

/// Shell that waits (up to 10 s) until its terminal is 33x120, then prints
/// the size: the CLI resizes the container's terminal only after it started.
const WAIT_SIZE: &str =
    "i=0; until [ \"$(stty size 2>/dev/null)\" = '33 120' ] || [ $i -gt 100 ]; \
                         do sleep 0.1; i=$((i+1)); done; echo size $(stty size)";

/// Runs `docker ARGS` inside a 33x120 pseudo-terminal made by util-linux
/// `script`, typing `input` into it; returns what the terminal showed.
fn docker_in_pty(docker: &Dockerd, args: &[&str], input: &str) -> String {
    let mut base = docker.docker_command();
    base.args(args);
    let line = std::iter::once(base.get_program())
        .chain(base.get_args())
        .map(|word| shell_quote(&word.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let line = format!("stty rows 33 cols 120 && {line}");
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (key, value) in base.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let out =
        run_with_input(&mut script, input.as_bytes(), Duration::from_secs(60)).expect("run script");
    out.assert_success().stdout
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[test]
fn docker_runs_foreground_containers_with_stdin_and_exit_status() {
    require_docker!();
    let e = engine(false);
    let images = e
        .docker
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.assert_success().stdout.contains("test/busybox:1"),
        "pulled image is listed"
    );

    let out = e.docker.docker_with_input(
        &[
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            &e.image,
            "sh",
            "-c",
            "cat; echo done",
        ],
        b"first line\nsecond line\n",
    );
    let out = out.assert_success();
    assert_eq!(out.stdout, "first line\nsecond line\ndone\n", "{out}");

    let out = e.docker.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &e.image,
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(out.code(), Some(7), "{out}");

    // --rm removed both containers, in docker and in berthd.
    let all = e.docker.docker(&["ps", "-aq"]).assert_success();
    assert!(all.lines().is_empty(), "{all}");
    assert!(e.berth_containers().is_empty());
}

#[test]
fn docker_reports_runtime_errors_as_with_containerd() {
    require_docker!();
    let e = engine(false);
    // dockerd turns "executable file not found" naming the command into
    // exit status 127, and shows containerd's wording.
    let out = e
        .docker
        .docker(&["run", "--rm", "--network", "none", &e.image, "no-such-cmd"]);
    assert_eq!(out.code(), Some(127), "{out}");
    assert!(
        out.stderr.contains(
            "failed to create shim task: OCI runtime create failed: runc create failed: \
             unable to start container process: exec: \"no-such-cmd\": executable file not found in $PATH"
        ),
        "{out}"
    );
    assert!(
        !out.stderr.contains("--root"),
        "no runc command line: {out}"
    );

    let id = e.run_detached(&[], "exec sleep 1000");
    let out = e.docker.docker(&["exec", &id, "no-such-cmd"]);
    assert_eq!(out.code(), Some(126), "{out}");
    assert!(
        out.stdout.contains(
            "OCI runtime exec failed: exec failed: unable to start container process: \
             exec: \"no-such-cmd\": executable file not found in $PATH"
        ),
        "{out}"
    );
    assert!(
        !out.stdout.contains("--root"),
        "no runc command line: {out}"
    );
}

#[test]
fn docker_exec_and_logs_follow_a_detached_container() {
    require_docker!();
    let e = engine(false);
    let id = e.run_detached(
        &[],
        "echo started; until [ -f /tmp/go ]; do sleep 0.1; done; echo after-go; exec sleep 1000",
    );
    assert_eq!(e.status(&id), "running");
    let pid = e.pid(&id);
    assert!(pid > 0);

    // berthd holds the container and its task, with the PID docker reports.
    assert!(
        e.berth_containers().contains(&id),
        "{:?}",
        e.berth_containers()
    );
    let tasks = e.berth_tasks();
    assert!(
        tasks
            .iter()
            .any(|(t, p, s)| *t == id && *p == pid.to_string() && s == "RUNNING"),
        "{tasks:?}"
    );

    let mut logs = e.docker.docker_stream(&["logs", "-f", &id]);
    assert!(
        logs.wait_for(|l| l == "started", Duration::from_secs(20))
            .is_some(),
        "{}",
        logs.report()
    );
    // A line written after `logs -f` attached reaches it.
    e.docker
        .docker(&["exec", &id, "touch", "/tmp/go"])
        .assert_success();
    assert!(
        logs.wait_for(|l| l == "after-go", Duration::from_secs(20))
            .is_some(),
        "{}",
        logs.report()
    );

    let out = e
        .docker
        .docker(&["exec", &id, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out\n", "err\n")
    );

    let out = e
        .docker
        .docker_with_input(&["exec", "-i", &id, "sh", "-c", "wc -l"], b"a\nb\nc\n");
    assert_eq!(out.assert_success().stdout.trim(), "3");

    let shown = docker_in_pty(
        &e.docker,
        &[
            "exec",
            "-it",
            &id,
            "sh",
            "-c",
            &format!(
                "test -t 0 && test -t 1 && echo is-a-tty; read line; echo got-$line; {WAIT_SIZE}"
            ),
        ],
        "hello\n",
    );
    assert!(shown.contains("is-a-tty"), "{shown:?}");
    assert!(shown.contains("got-hello"), "{shown:?}");
    // The terminal's size reached the container (Tasks.ResizePty).
    assert!(shown.contains("size 33 120"), "{shown:?}");

    // `run -it`: the container's own terminal, resized once it started.
    let shown = docker_in_pty(
        &e.docker,
        &[
            "run",
            "--rm",
            "-it",
            "--network",
            "none",
            &e.image,
            "sh",
            "-c",
            &format!("read line; echo run-got-$line; {WAIT_SIZE}"),
        ],
        "there\n",
    );
    assert!(shown.contains("run-got-there"), "{shown:?}");
    assert!(shown.contains("size 33 120"), "{shown:?}");
}

#[test]
fn docker_controls_a_container_lifecycle() {
    require_docker!();
    let e = engine(false);
    let id = e.run_detached(&[], "exec sleep 1000");

    e.docker.docker(&["pause", &id]).assert_success();
    assert_eq!(e.status(&id), "paused");
    assert_eq!(e.docker.inspect(&id, "{{.State.Paused}}"), "true");
    let tasks = e.berth_tasks();
    assert!(
        tasks.iter().any(|(t, _, s)| *t == id && s == "PAUSED"),
        "{tasks:?}"
    );
    e.docker.docker(&["unpause", &id]).assert_success();
    assert_eq!(e.status(&id), "running");

    let top = e.docker.docker(&["top", &id]).assert_success();
    assert!(top.stdout.contains("sleep 1000"), "{top}");

    let stats = e
        .docker
        .docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &id])
        .assert_success();
    let used = stats
        .stdout
        .split('/')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(
        !used.is_empty() && !used.starts_with("0B"),
        "memory in use: {stats}"
    );

    // `update` changes the running container's cgroup (Tasks.Update).
    e.docker
        .docker(&["update", "--memory", "64m", "--memory-swap", "128m", &id])
        .assert_success();
    let limit = e
        .docker
        .docker(&[
            "exec",
            &id,
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ])
        .assert_success();
    assert_eq!(limit.stdout.trim(), "67108864", "{limit}");

    // `stop -t 1`: sleep as PID 1 ignores SIGTERM, so the engine kills it.
    e.docker.docker(&["stop", "-t", "1", &id]).assert_success();
    assert_eq!(e.status(&id), "exited");
    assert_eq!(e.docker.inspect(&id, "{{.State.ExitCode}}"), "137");

    // A container that handles SIGTERM exits with its own status.
    let trapper = e.run_detached(&[], "trap 'exit 3' TERM; while true; do sleep 0.1; done");
    e.docker
        .docker(&["stop", "-t", "30", &trapper])
        .assert_success();
    assert_eq!(e.docker.inspect(&trapper, "{{.State.ExitCode}}"), "3");

    // `kill -s HUP` delivers that signal.
    let hup = e.run_detached(&[], "trap 'exit 5' HUP; while true; do sleep 0.1; done");
    e.docker
        .docker(&["kill", "-s", "HUP", &hup])
        .assert_success();
    e.wait_inspect(&hup, "{{.State.Status}}", "exited");
    assert_eq!(e.docker.inspect(&hup, "{{.State.ExitCode}}"), "5");

    // `restart` on a stopped and a running container.
    e.docker
        .docker(&["restart", "-t", "1", &id])
        .assert_success();
    assert_eq!(e.status(&id), "running");
    let first = e.pid(&id);
    e.docker
        .docker(&["restart", "-t", "1", &id])
        .assert_success();
    assert_eq!(e.status(&id), "running");
    assert_ne!(e.pid(&id), first, "restart gives a new process");

    // A container that outgrows its memory limit is reported OOM-killed
    // (the shim's /tasks/oom event).
    let hog = e.run_detached(
        &["--memory", "16m", "--memory-swap", "16m"],
        "x=a; while true; do x=$x$x; done",
    );
    e.wait_inspect(&hog, "{{.State.Status}}", "exited");
    assert_eq!(e.docker.inspect(&hog, "{{.State.OOMKilled}}"), "true");

    // `rm -f` of a running container removes it from berthd too.
    e.docker.docker(&["rm", "-f", &id]).assert_success();
    let out = e.docker.docker(&["inspect", &id]);
    out.assert_failure();
    assert!(!e.berth_containers().contains(&id));
    assert!(!e.berth_tasks().iter().any(|(t, _, _)| *t == id));
}

#[test]
fn docker_restart_policy_brings_a_killed_container_back() {
    require_docker!();
    let e = engine(false);
    let id = e.run_detached(&["--restart", "always"], "exec sleep 1000");
    let pid = e.pid(&id);
    // Killed from the host, not through the engine: only the exit event
    // berthd forwards tells dockerd it died.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the container's process");
    e.wait_inspect(&id, "{{.RestartCount}}", "1");
    e.wait_inspect(&id, "{{.State.Status}}", "running");
    assert_ne!(e.pid(&id), pid);
    e.docker.docker(&["exec", &id, "true"]).assert_success();
}

#[test]
fn docker_containers_survive_a_berthd_crash() {
    require_docker!();
    let mut e = engine(false);
    let id = e.run_detached(&[], "exec sleep 1000");
    let pid = e.pid(&id);

    e.daemon.kill9().expect("kill -9 berthd");
    e.daemon.restart().expect("restart berthd");
    // dockerd's gRPC channel saw the socket refuse connections and backs
    // off before it dials again (as it would with containerd): wait for it.
    e.wait_reconnected(&id);

    assert_eq!(e.status(&id), "running");
    assert_eq!(e.pid(&id), pid, "the container kept its process");
    let tasks = e.berth_tasks();
    assert!(
        tasks
            .iter()
            .any(|(t, p, s)| *t == id && *p == pid.to_string() && s == "RUNNING"),
        "{tasks:?}"
    );
    let out = e
        .docker
        .docker(&["exec", &id, "echo", "still-here"])
        .assert_success();
    assert_eq!(out.stdout, "still-here\n");

    // The engine still controls it: stop reaches the process.
    e.docker.docker(&["stop", "-t", "1", &id]).assert_success();
    assert_eq!(e.status(&id), "exited");
}

#[test]
fn docker_live_restore_keeps_containers_across_a_dockerd_restart() {
    require_docker!();
    let mut e = engine(true);
    let id = e.run_detached(&[], "exec sleep 1000");
    let pid = e.pid(&id);

    e.docker.restart().expect("restart dockerd");

    assert_eq!(e.status(&id), "running");
    assert_eq!(e.pid(&id), pid, "the container kept its process");
    let out = e
        .docker
        .docker(&["exec", &id, "echo", "still-here"])
        .assert_success();
    assert_eq!(out.stdout, "still-here\n");
    e.docker.docker(&["stop", "-t", "1", &id]).assert_success();
    assert_eq!(e.status(&id), "exited");
}

#[test]
fn docker_learns_of_an_exit_that_happened_while_berthd_was_down() {
    require_docker!();
    let mut e = engine(false);
    let id = e.run_detached(&[], "until [ -f /tmp/go ]; do sleep 0.1; done; exit 9");
    let pid = e.pid(&id);

    e.daemon.kill9().expect("kill -9 berthd");
    // The container exits now, while no daemon listens to its shim.
    std::fs::write(format!("/proc/{pid}/root/tmp/go"), "").expect("let the container exit");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "the container did not exit");
        thread::sleep(Duration::from_millis(20));
    }
    // The shim retries the exit event 1, 3, 6, 10 and 15 seconds after its
    // first try, as containerd's does. berthd comes back just after the
    // third retry, so dockerd (whose gRPC reconnect backs off up to 3 s) has
    // subscribed again well before the fourth delivers the event.
    thread::sleep(Duration::from_millis(6300));
    e.daemon.restart().expect("restart berthd");

    e.wait_inspect(&id, "{{.State.Status}}", "exited");
    assert_eq!(e.docker.inspect(&id, "{{.State.ExitCode}}"), "9");
    let tasks = e.berth_tasks();
    assert!(
        !tasks.iter().any(|(t, _, s)| *t == id && s == "RUNNING"),
        "{tasks:?}"
    );
}
