//! CRI streaming on a private berthd, driven by a client on the libraries
//! Kubernetes' own clients use (Debian's spdystream and gorilla/websocket,
//! `tests/go-client/src/berth.test/streamclient`): exec with and without a
//! terminal and stdin over SPDY and WebSocket, exit codes in the v4
//! status, attach with `stdin_once`, port forwarding to a busybox `httpd`
//! in the pod, used and expired URLs, a client that drops mid-exec, and
//! the checks Exec, Attach and PortForward make before handing out URLs.

mod support;

use berth_testkit::{require_ctr, require_go_client, require_root, stream_client, Daemon};
use k8s_cri::v1::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::*;

/// Runs the streaming client; its JSON report.
fn client(args: &[&str]) -> Value {
    let out = stream_client(args);
    assert!(out.success(), "streamclient {args:?}: {out}");
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("report {out}: {e}"))
}

/// A v4 status from the report.
fn status(report: &Value) -> Value {
    let text = report["status"].as_str().expect("status text");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("status {text:?}: {e}"))
}

async fn exec_url(cri: &mut Runtime, request: ExecRequest) -> String {
    cri.exec(request).await.expect("Exec").into_inner().url
}

fn exec_request(id: &str, cmd: &[&str], stdin: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    }
}

/// A pod named `name` with one busybox container that only sleeps: its
/// pod and container ids.
async fn idle_pod(cri: &mut Runtime, logs: &std::path::Path, name: &str) -> (String, String) {
    let pod_config = pod_config(logs, name);
    let pod = run_pod(cri, &pod_config).await;
    let config = container_config("idle", "exec sleep 1000");
    let id = run_container(cri, &pod, &pod_config, config).await;
    (pod, id)
}

/// The number of processes in the container's task (ctr's view).
fn task_processes(daemon: &Daemon, id: &str) -> usize {
    let out = daemon.ctr_ns("k8s.io", &["tasks", "ps", id]);
    assert!(out.success(), "{out}");
    out.stdout
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn exec_attach_and_port_forward_through_spdy_and_websocket_clients() {
    require_root!();
    require_ctr!();
    require_go_client!();
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let pod_config = pod_config(logs.path(), "stream");
        let pod = run_pod(&mut cri, &pod_config).await;
        let web = run_container(
            &mut cri,
            &pod,
            &pod_config,
            container_config(
                "web",
                "mkdir -p /www && echo hello-from-the-pod > /www/index.html && exec httpd -f -p 8080 -h /www",
            ),
        )
        .await;

        // SPDY, v4, stdin and both outputs, a non-zero exit.
        let url = exec_url(
            &mut cri,
            exec_request(
                &web,
                &["sh", "-c", "cat; echo oops >&2; exit 3"],
                true,
                false,
            ),
        )
        .await;
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let report = client(&[
            "-protocols",
            "v4.channel.k8s.io",
            "-stdin",
            "hello\n",
            "exec",
            &url,
        ]);
        assert_eq!(report["http_status"], 101);
        assert_eq!(report["protocol"], "v4.channel.k8s.io");
        assert_eq!(report["stdout"], "hello\n");
        assert_eq!(report["stderr"], "oops\n");
        let s = status(&report);
        assert_eq!(s["status"], "Failure", "{s}");
        assert_eq!(s["reason"], "NonZeroExitCode", "{s}");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode", "{s}");
        assert_eq!(s["details"]["causes"][0]["message"], "3", "{s}");

        // The URL was for one use.
        let again = stream_client(&["exec", &url]);
        assert!(!again.success());
        assert!(again.stdout.contains("\"http_status\":404"), "{again}");

        // SPDY, v5 preferred, success.
        let url = exec_url(
            &mut cri,
            exec_request(&web, &["echo", "five"], false, false),
        )
        .await;
        let report = client(&["exec", &url]);
        assert_eq!(report["protocol"], "v5.channel.k8s.io");
        assert_eq!(report["stdout"], "five\n");
        assert_eq!(status(&report)["status"], "Success");

        // SPDY with a terminal: TERM is set, the size comes from the
        // resize stream.
        let url = exec_url(
            &mut cri,
            exec_request(
                &web,
                &["sh", "-c", "sleep 1; stty size; echo $TERM"],
                false,
                true,
            ),
        )
        .await;
        let report = client(&["-tty", "-resize", "100x40", "exec", &url]);
        assert_eq!(report["stdout"], "40 100\r\nxterm\r\n", "{report}");
        assert_eq!(status(&report)["status"], "Success");

        // WebSocket v4: channels for stdout and stderr, status on 3.
        let url = exec_url(
            &mut cri,
            exec_request(&web, &["sh", "-c", "echo out; echo err >&2"], false, false),
        )
        .await;
        let report = client(&[
            "-transport",
            "websocket",
            "-protocols",
            "v4.channel.k8s.io",
            "exec",
            &url,
        ]);
        assert_eq!(report["http_status"], 101);
        assert_eq!(report["protocol"], "v4.channel.k8s.io");
        assert_eq!(report["stdout"], "out\n");
        assert_eq!(report["stderr"], "err\n");
        assert_eq!(status(&report)["status"], "Success");

        // WebSocket v5: stdin ends with the close signal.
        let url = exec_url(&mut cri, exec_request(&web, &["cat"], true, false)).await;
        let report = client(&[
            "-transport",
            "websocket",
            "-stdin",
            "over websocket\n",
            "exec",
            &url,
        ]);
        assert_eq!(report["protocol"], "v5.channel.k8s.io");
        assert_eq!(report["stdout"], "over websocket\n");
        assert_eq!(status(&report)["status"], "Success");

        // base64.channel.k8s.io: text messages, and (before v4) only a
        // failure's message on the error channel.
        let url = exec_url(
            &mut cri,
            exec_request(&web, &["sh", "-c", "echo b64; exit 2"], false, false),
        )
        .await;
        let report = client(&[
            "-transport",
            "websocket",
            "-protocols",
            "base64.channel.k8s.io",
            "exec",
            &url,
        ]);
        assert_eq!(report["protocol"], "base64.channel.k8s.io");
        assert_eq!(report["stdout"], "b64\n");
        let text = report["status"].as_str().expect("status");
        assert!(text.contains("exit code 2"), "{text}");

        // A protocol the server does not speak is refused with 403.
        let url = exec_url(&mut cri, exec_request(&web, &["true"], false, false)).await;
        let refused = stream_client(&["-protocols", "v9.channel.k8s.io", "exec", &url]);
        assert!(refused.stdout.contains("\"http_status\":403"), "{refused}");

        // Port forwarding to httpd inside the pod's network namespace.
        let forward = PortForwardRequest {
            pod_sandbox_id: pod.clone(),
            port: vec![8080],
        };
        let request = "GET /index.html HTTP/1.0\r\n\r\n";
        for transport in ["spdy", "websocket"] {
            let url = cri
                .port_forward(forward.clone())
                .await
                .expect("PortForward")
                .into_inner()
                .url;
            let report = client(&[
                "-transport",
                transport,
                "-port",
                "8080",
                "-send",
                request,
                "portforward",
                &url,
            ]);
            let data = report["data"].as_str().expect("data");
            assert!(data.starts_with("HTTP/1.1 200 OK"), "{transport}: {report}");
            assert!(data.contains("hello-from-the-pod"), "{transport}: {report}");
            assert_eq!(report["error"], "", "{transport}");
        }
        // A closed port: the error stream says why.
        let url = cri
            .port_forward(PortForwardRequest {
                pod_sandbox_id: pod.clone(),
                port: vec![9],
            })
            .await
            .expect("PortForward")
            .into_inner()
            .url;
        let report = client(&["-port", "9", "-send", "x", "portforward", &url]);
        let error = report["error"].as_str().expect("error");
        assert!(error.contains("failed to dial 9"), "{report}");

        // Attach to a container with stdin_once: the client's input
        // reaches it, and when the input ends, so does the container's.
        let mut config = container_config("cat", "exec cat");
        config.stdin = true;
        config.stdin_once = true;
        let cat = run_container(&mut cri, &pod, &pod_config, config).await;
        let url = cri
            .attach(AttachRequest {
                container_id: cat.clone(),
                stdin: true,
                tty: false,
                stdout: true,
                stderr: true,
            })
            .await
            .expect("Attach")
            .into_inner()
            .url;
        let report = client(&["-stdin", "attached input\n", "attach", &url]);
        assert_eq!(report["stdout"], "attached input\n", "{report}");
        assert_eq!(status(&report)["status"], "Success");
        let exited = wait_exited(&mut cri, &cat).await;
        assert_eq!(exited.exit_code, 0);
        let log = std::fs::read_to_string(logs.path().join("cat/0.log")).expect("log");
        assert!(log.contains("stdout F attached input"), "{log}");

        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

#[test]
fn a_client_that_drops_mid_exec_leaves_nothing_behind() {
    require_root!();
    require_ctr!();
    require_go_client!();
    let daemon = daemon();
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let (pod, id) = idle_pod(&mut cri, logs.path(), "drop").await;
        assert_eq!(task_processes(&daemon, &id), 1);
        let url = exec_url(&mut cri, exec_request(&id, &["cat"], true, false)).await;
        // The client sends, keeps stdin open, and is killed by its own
        // timeout: its connection drops while `cat` still reads.
        let out = stream_client(&[
            "-stdin",
            "x",
            "-stdin-open",
            "60s",
            "-timeout",
            "2s",
            "exec",
            &url,
        ]);
        assert!(!out.success(), "{out}");
        // The exec's stdin ends with the connection; cat exits and the
        // exec is deleted with its FIFOs.
        let deadline = Instant::now() + Duration::from_secs(20);
        while task_processes(&daemon, &id) != 1 {
            assert!(Instant::now() < deadline, "the exec is still running");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let io_dir = daemon
            .state()
            .join("io.containerd.grpc.v1.cri/containers")
            .join(&id)
            .join("io");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<_> = std::fs::read_dir(&io_dir)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            // The container's own FIFO directory stays; the exec's goes.
            if left.len() <= 1 {
                break;
            }
            assert!(Instant::now() < deadline, "FIFOs left: {left:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

#[test]
fn urls_expire_and_requests_are_checked() {
    require_root!();
    require_ctr!();
    require_go_client!();
    let daemon = daemon_from(Daemon::builder().env("BERTH_TEST_STREAM_TOKEN_TTL_MS", "500"));
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let (pod, id) = idle_pod(&mut cri, logs.path(), "checks").await;

        let url = exec_url(&mut cri, exec_request(&id, &["true"], false, false)).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let expired = stream_client(&["exec", &url]);
        assert!(expired.stdout.contains("\"http_status\":404"), "{expired}");
        // A made-up token, and a real one on the wrong endpoint.
        let base = url.rsplit_once("/exec/").expect("exec URL").0.to_string();
        let made_up = stream_client(&["exec", &format!("{base}/exec/AAAAAAAA")]);
        assert!(made_up.stdout.contains("\"http_status\":404"), "{made_up}");
        let url = exec_url(&mut cri, exec_request(&id, &["true"], false, false)).await;
        let wrong = url.replace("/exec/", "/attach/");
        let refused = stream_client(&["attach", &wrong]);
        assert!(refused.stdout.contains("\"http_status\":404"), "{refused}");

        let code = |r: Result<tonic::Response<ExecResponse>, tonic::Status>| {
            r.expect_err("refused").code()
        };
        let mut both = exec_request(&id, &["true"], false, true);
        both.stderr = true;
        assert_eq!(code(cri.exec(both).await), tonic::Code::InvalidArgument);
        let mut none = exec_request(&id, &["true"], false, false);
        none.stdout = false;
        none.stderr = false;
        assert_eq!(code(cri.exec(none).await), tonic::Code::InvalidArgument);
        assert_eq!(
            code(
                cri.exec(exec_request("nope", &["true"], false, false))
                    .await
            ),
            tonic::Code::NotFound
        );
        let err = cri
            .port_forward(PortForwardRequest {
                pod_sandbox_id: "nope".into(),
                port: vec![80],
            })
            .await
            .expect_err("unknown pod");
        assert_eq!(err.code(), tonic::Code::NotFound);

        cri.stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout: 0,
        })
        .await
        .expect("StopContainer");
        let err = cri
            .attach(AttachRequest {
                container_id: id.clone(),
                stdout: true,
                ..AttachRequest::default()
            })
            .await
            .expect_err("attach to a stopped container");
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains("CONTAINER_EXITED"), "{err:?}");
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

/// `config` with `setting` (a `key = value` line) in the CRI plugin's table.
fn with_cri_setting(config: String, setting: &str) -> String {
    let table = "[plugins.\"io.containerd.grpc.v1.cri\"]";
    config.replace(table, &format!("{table}\n    {setting}"))
}

/// `stream_idle_timeout`: a connection with no traffic for that long is
/// closed by the server, over either transport.
#[test]
fn an_idle_stream_is_closed_after_stream_idle_timeout() {
    require_root!();
    require_ctr!();
    require_go_client!();
    let daemon = daemon_from(
        Daemon::builder()
            .edit_config(|_, config| with_cri_setting(config, "stream_idle_timeout = \"2s\"")),
    );
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let (pod, id) = idle_pod(&mut cri, logs.path(), "idle").await;
        for transport in ["spdy", "websocket"] {
            // The exec outlives the client's patience; only the server's
            // idle timeout can end the connection in time.
            let url = exec_url(&mut cri, exec_request(&id, &["sleep", "60"], false, false)).await;
            let out = stream_client(&["-transport", transport, "-timeout", "30s", "exec", &url]);
            assert!(
                !out.stderr.contains("timed out"),
                "{transport}: the server closed nothing: {out}"
            );
            let report: Value = serde_json::from_str(out.stdout.trim()).expect("report");
            assert_eq!(
                report["status"], "",
                "{transport}: no exit to report: {out}"
            );
        }
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}

#[test]
fn tls_streaming_with_a_self_signed_certificate() {
    require_root!();
    require_ctr!();
    require_go_client!();
    let daemon = daemon_from(
        Daemon::builder()
            .edit_config(|_, config| with_cri_setting(config, "enable_tls_streaming = true")),
    );
    let logs = tempfile::tempdir().expect("log dir");
    berth_testkit::block_on(async {
        let mut cri = daemon.cri().await.expect("cri client").runtime;
        let (pod, id) = idle_pod(&mut cri, logs.path(), "tls").await;
        let url = exec_url(
            &mut cri,
            exec_request(&id, &["echo", "secret"], false, false),
        )
        .await;
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        for transport in ["spdy", "websocket"] {
            let url = exec_url(
                &mut cri,
                exec_request(&id, &["echo", transport], false, false),
            )
            .await;
            let report = client(&["-transport", transport, "exec", &url]);
            assert_eq!(report["stdout"], format!("{transport}\n"));
            assert_eq!(status(&report)["status"], "Success");
        }
        // Plain HTTP on the TLS port gets nowhere.
        let plain = stream_client(&["exec", &url.replace("https://", "http://")]);
        assert!(!plain.success(), "{plain}");
        remove_pod(&mut cri, pod).await;
    })
    .expect("runtime");
}
