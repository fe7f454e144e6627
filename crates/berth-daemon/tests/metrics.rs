//! The Prometheus endpoint (`[metrics] address`): a private berthd serving
//! `GET /v1/metrics`, scraped with `curl` and parsed with Debian's
//! `python3-prometheus-client` (its OpenMetrics parser), while a container
//! runs through Debian's `ctr`.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::{
    busybox_rootfs, require_ctr, require_registry, require_root, testing_containerd, Daemon,
    Registry,
};
use serde_json::Value;

/// Parses an exposition on stdin into JSON: one object per sample, with
/// its family's name and type.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"family": family.name, "type": family.type, "name": s.name,
                    "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The default config with `[metrics]` on a free loopback port and the
/// handling-time histogram on.
fn with_metrics(_: &Path, config: String) -> String {
    let section = "[metrics]\n  address = \"\"\n  grpc_histogram = false\n";
    assert!(config.contains(section), "default config changed: {config}");
    config.replace(
        section,
        &format!(
            "[metrics]\n  address = \"127.0.0.1:{}\"\n  grpc_histogram = true\n",
            free_port()
        ),
    )
}

/// The `[metrics] address` the daemon was given.
fn metrics_address(daemon: &Daemon) -> String {
    let config = std::fs::read_to_string(daemon.dir().join("config.toml")).expect("config");
    let table: toml::Table = config.parse().expect("config toml");
    table["metrics"]["address"]
        .as_str()
        .expect("metrics address")
        .to_string()
}

/// `curl` of `url`: (HTTP status, body).
fn curl(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", url])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.parse().expect("status"), body.to_string())
}

/// Scrapes and parses the endpoint.
fn scrape(address: &str) -> Vec<Value> {
    let (status, body) = curl(&format!("http://{address}/v1/metrics"));
    assert_eq!(status, 200, "{body}");
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(body.as_bytes()).expect("write exposition");
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "the parser rejected the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// The samples named `name` whose labels include every pair of `labels`.
fn find<'a>(samples: &'a [Value], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Value> {
    samples
        .iter()
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .collect()
}

/// The one value of `name` with `labels`.
fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]["value"].as_f64().expect("a number")
}

/// Kills and deletes the container on every path.
struct Cleanup<'a>(&'a Daemon, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .try_ctr(None, &["tasks", "kill", "-s", "KILL", self.1]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let gone = self
                .0
                .try_ctr(None, &["tasks", "delete", self.1])
                .is_ok_and(|o| o.status.success());
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.try_ctr(None, &["containers", "delete", self.1]);
    }
}

#[test]
fn a_running_task_and_grpc_calls_show_in_the_scrape() {
    if !require_root() || !require_ctr() || !require_registry() || testing_containerd() {
        return;
    }
    let registry = Registry::start().expect("start registry");
    let image = registry
        .push_busybox("metrics/busybox:1")
        .expect("push busybox");
    let daemon = Daemon::builder()
        .edit_config(with_metrics)
        .start()
        .unwrap_or_else(|e| panic!("start daemon: {e:#}"));
    let address = metrics_address(&daemon);
    let rootfs = daemon.dir().join("rootfs");
    busybox_rootfs(&rootfs).expect("busybox rootfs");
    let id = "metrics-task";
    let rootfs = rootfs.to_str().expect("utf-8 path");
    daemon
        .ctr(&["run", "-d", "--rootfs", rootfs, id, "/bin/sleep", "600"])
        .assert_success();
    let _cleanup = Cleanup(&daemon, id);
    let missing = daemon.try_ctr(None, &["containers", "info", "no-such-container"]);
    assert!(
        missing.is_ok_and(|o| !o.status.success()),
        "info of a missing container succeeded"
    );

    daemon
        .berth(&["images", "pull", "--plain-http", &image])
        .assert_success();

    let samples = scrape(&address);
    let task = [("container_id", id), ("namespace", "default")];
    assert!(value(&samples, "container_cpu_total_nanoseconds", &task) > 0.0);
    assert!(value(&samples, "container_memory_usage_usage_bytes", &task) > 0.0);
    assert!(value(&samples, "container_memory_rss_bytes", &task) >= 0.0);
    assert_eq!(value(&samples, "container_pids_current", &task), 1.0);
    find(&samples, "container_pids_limit", &task)
        .first()
        .expect("a pids limit series");
    assert!(value(&samples, "berth_shims_alive", &[]) >= 1.0);
    assert_eq!(
        value(&samples, "berth_image_pulls_total", &[("result", "ok")]),
        1.0
    );
    assert!(value(&samples, "berth_image_pull_bytes_total", &[]) > 0.0);
    assert_eq!(
        value(&samples, "berth_image_pull_duration_seconds_count", &[]),
        1.0
    );
    assert!(value(&samples, "berth_gc_runs_total", &[("result", "ok")]) >= 1.0);

    let containers = "containerd.services.containers.v1.Containers";
    let handled = |method: &str, code: &str| {
        let labels = [
            ("grpc_service", containers),
            ("grpc_method", method),
            ("grpc_code", code),
            ("grpc_type", "unary"),
        ];
        value(&samples, "grpc_server_handled_total", &labels)
    };
    assert_eq!(handled("Get", "NotFound"), 1.0);
    assert!(handled("Create", "OK") >= 1.0);
    let create = [("grpc_service", containers), ("grpc_method", "Create")];
    assert!(value(&samples, "grpc_server_started_total", &create) >= 1.0);
    assert!(value(&samples, "grpc_server_msg_received_total", &create) >= 1.0);
    assert!(value(&samples, "grpc_server_msg_sent_total", &create) >= 1.0);
    let histogram = find(&samples, "grpc_server_handling_seconds_count", &create);
    assert_eq!(histogram.len(), 1, "no handling histogram: {histogram:?}");
    assert!(value(&samples, "grpc_server_handling_seconds_count", &create) >= 1.0);

    let (status, _) = curl(&format!("http://{address}/metrics"));
    assert_eq!(status, 404);
}

#[test]
fn a_busy_metrics_address_stops_start_up_naming_it() {
    if testing_containerd() {
        return;
    }
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = busy.local_addr().expect("address").to_string();
    let started = Daemon::builder()
        .config(format!("version = 2\n[metrics]\naddress = {address:?}\n"))
        .ready_timeout(Duration::from_secs(10))
        .start();
    let Err(err) = started else {
        panic!("berthd started on a busy metrics address");
    };
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!("metrics address {address}")) && text.contains("in use"),
        "{text}"
    );
    // It stopped before loading any plugin (the log is at debug level).
    assert!(!text.contains("loaded plugin"), "{text}");
}
