//! berthd configured by containerd's own `config.toml`: Debian containerd's
//! `containerd config default` output, a version 3 file with imports, bad
//! values, GC settings, `oom_score`, and `berthd config default|dump` read
//! back by berthd and by containerd.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::{
    berthd_bin, containerd_bin, require_ctr, require_root, testing_containerd, Daemon,
};

/// Debian containerd's default config, with the opt directory moved into
/// `dir` so the test leaves nothing in /opt.
fn containerd_default_config(dir: &Path) -> String {
    let bin = containerd_bin().expect("containerd binary");
    let out = Command::new(bin)
        .args(["config", "default"])
        .output()
        .expect("run containerd config default");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("path = \"/opt/containerd\""), "{text}");
    text.replace(
        "path = \"/opt/containerd\"",
        &format!("path = {:?}", dir.join("opt")),
    )
}

fn berthd(args: &[&str]) -> std::process::Output {
    Command::new(berthd_bin().expect("berthd binary"))
        .args(args)
        .output()
        .expect("run berthd")
}

fn plugin_line<'a>(listing: &'a str, plugin_type: &str, id: &str) -> Option<&'a str> {
    listing.lines().find(|l| {
        let mut cols = l.split_whitespace();
        cols.next() == Some(plugin_type) && cols.next() == Some(id)
    })
}

#[test]
fn debian_containerd_default_config_runs_berthd_with_warnings() {
    require_root!();
    require_ctr!();
    if testing_containerd() {
        return; // berth's warnings.
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::builder()
        .config(containerd_default_config(scratch.path()))
        .start()
        .unwrap_or_else(|e| panic!("start with containerd's default config: {e:#}"));
    let listing = daemon.ctr(&["plugins", "ls"]).assert_success().stdout;
    for (plugin_type, id) in [
        ("io.containerd.gc.v1", "scheduler"),
        ("io.containerd.snapshotter.v1", "overlayfs"),
        ("io.containerd.internal.v1", "opt"),
        ("io.containerd.runtime.v2", "task"),
        ("io.containerd.grpc.v1", "cri"),
    ] {
        let line = plugin_line(&listing, plugin_type, id)
            .unwrap_or_else(|| panic!("{plugin_type} {id} missing:\n{listing}"));
        assert!(line.trim_end().ends_with("ok"), "{line}");
    }
    let log = daemon.log();
    let config = daemon.dir().join("config.toml");
    // The CRI section holds containerd's defaults: berth reads it silently.
    assert!(
        !log.lines()
            .any(|l| l.contains("WARN") && l.contains("grpc.v1.cri")),
        "{log}"
    );
    {
        let section = "io.containerd.snapshotter.v1.btrfs";
        let warning = format!("plugins.\"{section}\": berth has no such plugin: section ignored");
        let line = log
            .lines()
            .find(|l| l.contains("WARN") && l.contains(&warning))
            .unwrap_or_else(|| panic!("no warning {warning:?} in:\n{log}"));
        assert!(
            line.contains(&format!("{} line ", config.display())),
            "{line}"
        );
    }
    assert!(
        scratch.path().join("opt/bin").is_dir(),
        "opt plugin made no bin dir"
    );
}

#[test]
fn an_unknown_key_is_logged_with_file_line_and_key() {
    require_root!();
    if testing_containerd() {
        return;
    }
    let daemon = Daemon::builder()
        .config("version = 2\n\n[grpc]\n  adress = \"/x.sock\"\n")
        .start()
        .unwrap_or_else(|e| panic!("start: {e:#}"));
    let expected = format!(
        "{} line 4: grpc.adress: not a key berth or containerd reads: ignored",
        daemon.dir().join("config.toml").display()
    );
    assert!(daemon.log().contains(&expected), "{}", daemon.log());
}

/// A version 3 main file importing `conf.d/*.toml`: the imported GC setting
/// wins, `config dump` shows it, and the running daemon uses it.
#[test]
fn version_3_file_with_imports_is_merged_and_dumped() {
    require_root!();
    require_ctr!();
    if testing_containerd() {
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let conf_d = scratch.path().join("conf.d");
    std::fs::create_dir(&conf_d).expect("mkdir conf.d");
    std::fs::write(
        conf_d.join("10-gc.toml"),
        "version = 3\n[plugins.'io.containerd.gc.v1.scheduler']\n  mutation_threshold = 7\n  schedule_delay = '250ms'\n",
    )
    .expect("write import");
    std::fs::write(
        conf_d.join("20-cri.toml"),
        "[plugins.'io.containerd.cri.v1.images']\n  snapshotter = 'overlayfs'\n",
    )
    .expect("write import");
    let main = format!(
        "version = 3\nimports = [{:?}]\n\n[plugins.'io.containerd.gc.v1.scheduler']\n  mutation_threshold = 50\n  pause_threshold = 0.05\n",
        conf_d.join("*.toml")
    );
    let main_path = scratch.path().join("config.toml");
    std::fs::write(&main_path, &main).expect("write main");

    let out = berthd(&[
        "--config",
        main_path.to_str().expect("utf-8"),
        "config",
        "dump",
    ]);
    let dump = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(dump.contains("version = 3"), "{dump}");
    assert!(dump.contains("mutation_threshold = 7"), "{dump}");
    assert!(dump.contains("schedule_delay = \"250ms\""), "{dump}");
    // Version 3 merges plugin sections key by key: the main file's value stays.
    assert!(dump.contains("pause_threshold = 0.05"), "{dump}");
    assert!(dump.contains("10-gc.toml"), "imports not listed:\n{dump}");
    assert!(
        stderr.contains(
            "20-cri.toml line 1: plugins.\"io.containerd.cri.v1.images\": berth has no such plugin"
        ),
        "{stderr}"
    );

    let daemon = Daemon::builder()
        .config(main)
        .start()
        .unwrap_or_else(|e| panic!("start: {e:#}"));
    let detail = daemon.ctr(&["plugins", "ls", "-d"]).assert_success().stdout;
    assert!(
        detail
            .lines()
            .any(|l| l.split_whitespace().eq(["MutationThreshold", "7"])),
        "{detail}"
    );
    assert!(
        detail
            .lines()
            .any(|l| l.split_whitespace().eq(["ScheduleDelay", "250ms"])),
        "{detail}"
    );
}

#[test]
fn flags_override_the_file_in_config_dump() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let path = scratch.path().join("config.toml");
    std::fs::write(
        &path,
        "version = 2\nroot = \"/from/file\"\n[debug]\nlevel = \"warn\"\n",
    )
    .expect("write");
    let out = berthd(&[
        "--config",
        path.to_str().expect("utf-8"),
        "--root",
        "/from/flag",
        "config",
        "dump",
    ]);
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dump.contains("root = \"/from/flag\""), "{dump}");
    assert!(dump.contains("level = \"warn\""), "{dump}");
}

#[test]
fn a_bad_value_fails_start_up_naming_file_line_and_key() {
    if testing_containerd() {
        return;
    }
    let err = Daemon::builder()
        .config("version = 2\n[plugins.\"io.containerd.gc.v1.scheduler\"]\n  pause_threshold = 0.02\n  startup_delay = \"soon\"\n")
        .ready_timeout(Duration::from_secs(10))
        .start()
        .expect_err("berthd must refuse a bad duration");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(
            "config.toml line 4: key plugins.\"io.containerd.gc.v1.scheduler\".startup_delay"
        ),
        "{msg}"
    );
}

#[test]
fn berthd_config_default_is_read_by_berthd_and_by_containerd() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = berthd(&["config", "default"]);
    assert!(out.status.success());
    let path = scratch.path().join("default.toml");
    std::fs::write(&path, &out.stdout).expect("write");
    let path = path.to_str().expect("utf-8");

    let again = berthd(&["--config", path, "config", "dump"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "",
        "no warnings expected"
    );
    assert_eq!(
        again.stdout, out.stdout,
        "default and dump of the default differ"
    );

    let Ok(containerd) = containerd_bin() else {
        return;
    };
    let checked = Command::new(containerd)
        .args(["--config", path, "config", "dump"])
        .output()
        .expect("run containerd");
    let dump = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(dump.contains("root = \"/var/lib/berth\""), "{dump}");
}

/// `mutation_threshold = 1` collects after a single write: an ingested blob
/// nothing refers to goes at the next tick. With containerd's default (100)
/// the same blob stays.
#[test]
fn gc_mutation_threshold_takes_effect() {
    require_root!();
    require_ctr!();
    if testing_containerd() {
        return;
    }
    let eager =
        "version = 2\n[plugins.\"io.containerd.gc.v1.scheduler\"]\n  mutation_threshold = 1\n";
    let daemon = Daemon::builder()
        .config(eager)
        .start()
        .unwrap_or_else(|e| panic!("start: {e:#}"));
    let digest = ingest(&daemon, b"collect me after one write");
    let deadline = Instant::now() + Duration::from_secs(15);
    while listed(&daemon, &digest) {
        assert!(
            Instant::now() < deadline,
            "blob never collected\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(daemon);

    let daemon = Daemon::start().unwrap_or_else(|e| panic!("start: {e:#}"));
    // Past the collection every start runs (startup_delay, 100 ms).
    std::thread::sleep(Duration::from_millis(500));
    let digest = ingest(&daemon, b"collect me after one write");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        listed(&daemon, &digest),
        "default threshold collected after one write"
    );
}

/// Writes `data` with `ctr content ingest` (no lease, no labels) and
/// returns its digest.
fn ingest(daemon: &Daemon, data: &[u8]) -> String {
    use sha2::Digest;
    let blob = daemon.dir().join("blob");
    std::fs::write(&blob, data).expect("write blob");
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(data));
    let size = data.len().to_string();
    let mut cmd = daemon.ctr_command(None).expect("ctr");
    cmd.args(["content", "ingest", "--expected-size", &size])
        .args(["--expected-digest", &digest, "gc-test"])
        .stdin(std::fs::File::open(&blob).expect("open blob"));
    let out = cmd.output().expect("ctr content ingest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    digest
}

fn listed(daemon: &Daemon, digest: &str) -> bool {
    daemon
        .ctr(&["content", "ls", "-q"])
        .assert_success()
        .stdout
        .contains(digest)
}

#[test]
fn oom_score_is_applied_or_kept_with_a_warning() {
    require_root!();
    if testing_containerd() {
        return;
    }
    let daemon = Daemon::builder()
        .config("version = 2\noom_score = 300\n")
        .start()
        .unwrap_or_else(|e| panic!("start: {e:#}"));
    let pid = daemon.pid().expect("pid");
    let score = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).expect("read score");
    assert_eq!(score.trim(), "300", "{}", daemon.log());
    drop(daemon);

    // Lowering needs CAP_SYS_RESOURCE; without it berthd starts anyway.
    let daemon = Daemon::builder()
        .config("version = 2\noom_score = -999\n")
        .start()
        .unwrap_or_else(|e| panic!("start with a lower score: {e:#}"));
    let pid = daemon.pid().expect("pid");
    let score = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).expect("read score");
    if score.trim() != "-999" {
        assert!(
            daemon.log().contains("cannot set oom_score"),
            "{}",
            daemon.log()
        );
    }
}
