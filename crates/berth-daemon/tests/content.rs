//! The content service as clients drive it: Debian's `ctr content …` and
//! the Write stream spoken directly over gRPC, each test against its own
//! private daemon.
//!
//! `BERTH_TESTKIT_DAEMON=containerd cargo test -p berth-daemon --test content`
//! runs the same assertions against Debian's containerd (berth-only checks,
//! such as the files under `--root`, are skipped there).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_testkit::pb::services::v1::content_client::ContentClient;
use berth_testkit::pb::services::v1::{
    InfoRequest, ReadContentRequest, StatusRequest, WriteAction, WriteContentRequest,
    WriteContentResponse,
};
use berth_testkit::{
    block_on, connect, require_ctr, run_with_timeout, testing_containerd, with_namespace,
    CmdOutput, Daemon,
};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A private daemon whose startup garbage collection has run.
///
/// Content nothing references (no image, lease or `gc.root` label) is
/// garbage, as in containerd: a collection removes it. Both daemons collect
/// once shortly after starting and then after deletions, so tests ingest
/// only after that first collection, and label what must outlive a deletion
/// with `containerd.io/gc.root`.
fn daemon() -> Daemon {
    let daemon = Daemon::start().unwrap_or_else(|err| panic!("starting the daemon: {err:#}"));
    for _ in 0..500 {
        if daemon.log().contains("garbage collected") {
            return daemon;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "no startup garbage collection in the log:\n{}",
        daemon.log()
    );
}

/// Labels `digest` as a garbage-collection root in `ns`.
fn gc_root(daemon: &Daemon, ns: &str, digest: &str) {
    daemon
        .ctr_ns(
            ns,
            &["content", "label", digest, "containerd.io/gc.root=test"],
        )
        .assert_success();
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `size` pseudo-random bytes (distinct per `seed`).
fn bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs `ctr [-n NS] ARGS…` with stdin from `input` (through `sh`, so the
/// testkit's timeout applies).
fn ctr_stdin(daemon: &Daemon, ns: &str, input: &Path, args: &[&str]) -> CmdOutput {
    let ctr = daemon.ctr_command(Some(ns)).expect("ctr command");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"f="$1"; shift; exec "$@" < "$f""#)
        .arg("sh")
        .arg(input)
        .arg(ctr.get_program())
        .args(ctr.get_args())
        .args(args);
    run_with_timeout(&mut cmd, TIMEOUT).expect("run ctr")
}

/// Runs `ctr [-n NS] ARGS… | sha256sum` and returns the digest it printed.
fn ctr_sha256(daemon: &Daemon, ns: &str, args: &[&str]) -> String {
    let ctr = daemon.ctr_command(Some(ns)).expect("ctr command");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(r#"set -o pipefail; "$@" | sha256sum"#)
        .arg("bash")
        .arg(ctr.get_program())
        .args(ctr.get_args())
        .args(args);
    let out = run_with_timeout(&mut cmd, TIMEOUT)
        .expect("run ctr")
        .assert_success();
    let hex = out.stdout.split_whitespace().next().unwrap_or_default();
    format!("sha256:{hex}")
}

fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, data).expect("write input file");
    path
}

/// The files under `--root`'s blob directory (berthd's layout).
fn blob_files(daemon: &Daemon) -> Vec<String> {
    let dir = daemon.root().join("content/blobs/sha256");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `ctr content ls` rows as (digest, size, labels): the age column holds
/// spaces ("Less than a second"), so size is the second field and labels
/// the last.
fn ls_rows(daemon: &Daemon, ns: &str) -> Vec<(String, String, String)> {
    let out = daemon.ctr_ns(ns, &["content", "ls"]).assert_success();
    let lines = out.lines();
    assert!(lines[0].starts_with("DIGEST"), "{out}");
    lines[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].to_owned(), f[f.len() - 1].to_owned())
        })
        .collect()
}

#[test]
fn ctr_content_ingest_ls_get_label_rm() {
    require_ctr!();
    let daemon = daemon();
    let data = b"hello from berth\n";
    let digest = sha256(data);
    let input = write_file(daemon.dir(), "blob", data);
    ctr_stdin(&daemon, "default", &input, &["content", "ingest", "ref-1"]).assert_success();
    assert_eq!(
        ls_rows(&daemon, "default"),
        [(digest.clone(), "17B".into(), "-".into())]
    );
    let quiet = daemon.ctr(&["content", "ls", "-q"]).assert_success();
    assert_eq!(quiet.lines(), [digest.as_str()]);

    let got = daemon.ctr(&["content", "get", &digest]).assert_success();
    assert_eq!(got.stdout.as_bytes(), data);

    let labelled = daemon
        .ctr(&["content", "label", &digest, "a=b"])
        .assert_success();
    assert_eq!(labelled.lines(), ["a=b"]);
    daemon
        .ctr(&["content", "label", &digest, "c=d"])
        .assert_success();
    let labels = ls_rows(&daemon, "default")[0].2.clone();
    let mut parts: Vec<&str> = labels.split(',').collect();
    parts.sort();
    assert_eq!(parts, ["a=b", "c=d"]);
    // A label set to the empty value is removed.
    let cleared = daemon
        .ctr(&["content", "label", &digest, "a="])
        .assert_success();
    assert_eq!(cleared.lines(), ["c=d"]);
    let filtered = daemon
        .ctr(&["content", "ls", "-q", "labels.c==d"])
        .assert_success();
    assert_eq!(filtered.lines(), [digest.as_str()]);
    let none = daemon
        .ctr(&["content", "ls", "-q", "labels.c==x"])
        .assert_success();
    assert!(none.lines().is_empty(), "{none}");

    // Ingesting content that exists is a no-op success.
    ctr_stdin(&daemon, "default", &input, &["content", "ingest", "ref-2"]).assert_success();

    let removed = daemon.ctr(&["content", "rm", &digest]).assert_success();
    assert_eq!(removed.lines(), [digest.as_str()]);
    assert!(ls_rows(&daemon, "default").is_empty());
    daemon
        .ctr(&["content", "get", &digest])
        .assert_failure_containing(&format!("content digest {digest}: not found"));
    if !testing_containerd() {
        assert!(
            blob_files(&daemon).is_empty(),
            "the file goes with its last holder"
        );
    }
}

#[test]
fn digest_or_size_mismatch_fails_the_commit_and_leaves_no_blob() {
    require_ctr!();
    let daemon = daemon();
    let input = write_file(daemon.dir(), "blob", b"xyz");
    let wrong = sha256(b"something else");
    let actual = sha256(b"xyz");
    ctr_stdin(
        &daemon,
        "default",
        &input,
        &[
            "content",
            "ingest",
            "--expected-digest",
            &wrong,
            "bad-digest",
        ],
    )
    .assert_failure_containing(&format!(
        "unexpected commit digest {actual}, expected {wrong}: failed precondition"
    ));
    ctr_stdin(
        &daemon,
        "default",
        &input,
        &["content", "ingest", "--expected-size", "2", "bad-size"],
    )
    .assert_failure_containing(r#""bad-size" failed size validation: 3 != 2: failed precondition"#);
    assert!(ls_rows(&daemon, "default").is_empty());
    if !testing_containerd() {
        assert!(blob_files(&daemon).is_empty());
    }
    // The ingests stay, for the client to resume or abort.
    let active = daemon.ctr(&["content", "active"]).assert_success();
    let refs: Vec<&str> = active.lines()[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(refs, ["bad-digest", "bad-size"], "{active}");
}

/// One Write stream, driven message by message.
struct Writer {
    requests: mpsc::Sender<WriteContentRequest>,
    replies: Streaming<WriteContentResponse>,
}

impl Writer {
    /// Opens a Write stream whose first request is a STAT of `reference`,
    /// and returns the stream with its reply. The request goes out before
    /// the call is awaited: containerd sends its response headers only with
    /// the first reply, so awaiting the call first would wait forever.
    async fn stat(
        channel: &Channel,
        ns: &str,
        reference: &str,
        total: i64,
        expected: &str,
    ) -> Result<(Self, WriteContentResponse), Status> {
        let (requests, rx) = mpsc::channel(4);
        let first = WriteContentRequest {
            action: WriteAction::Stat as i32,
            r#ref: reference.into(),
            total,
            expected: expected.into(),
            ..Default::default()
        };
        requests.send(first).await.expect("request stream open");
        let request = with_namespace(ReceiverStream::new(rx), ns).expect("namespace header");
        let mut replies = ContentClient::new(channel.clone())
            .write(request)
            .await?
            .into_inner();
        match replies.message().await? {
            Some(reply) => Ok((Writer { requests, replies }, reply)),
            None => Err(Status::unknown("write stream ended without a reply")),
        }
    }

    async fn send(&mut self, req: WriteContentRequest) -> Result<WriteContentResponse, Status> {
        self.requests.send(req).await.expect("request stream open");
        match self.replies.message().await? {
            Some(reply) => Ok(reply),
            None => Err(Status::unknown("write stream ended without a reply")),
        }
    }

    async fn write(&mut self, offset: i64, data: &[u8]) -> Result<WriteContentResponse, Status> {
        self.send(WriteContentRequest {
            action: WriteAction::Write as i32,
            offset,
            data: data.to_vec(),
            ..Default::default()
        })
        .await
    }

    async fn commit(
        &mut self,
        offset: i64,
        total: i64,
        expected: &str,
    ) -> Result<WriteContentResponse, Status> {
        self.send(WriteContentRequest {
            action: WriteAction::Commit as i32,
            offset,
            total,
            expected: expected.into(),
            ..Default::default()
        })
        .await
    }
}

/// Opens a Write session on `reference`, retrying while the ref is locked
/// (as containerd's `content.OpenWriter` does): a session the client just
/// dropped may take a moment to end on the server.
/// Like [`open_writer`], with the `containerd-lease` header set.
async fn open_leased_writer(
    channel: &Channel,
    ns: &str,
    lease: &str,
    reference: &str,
) -> (Writer, WriteContentResponse) {
    let (requests, rx) = mpsc::channel(4);
    let first = WriteContentRequest {
        action: WriteAction::Stat as i32,
        r#ref: reference.into(),
        ..Default::default()
    };
    requests.send(first).await.expect("request stream open");
    let mut request = with_namespace(ReceiverStream::new(rx), ns).expect("namespace header");
    request
        .metadata_mut()
        .insert("containerd-lease", lease.parse().expect("ascii lease id"));
    let mut replies = ContentClient::new(channel.clone())
        .write(request)
        .await
        .expect("write")
        .into_inner();
    let reply = replies.message().await.expect("stat").expect("a reply");
    (Writer { requests, replies }, reply)
}

async fn open_writer(
    channel: &Channel,
    ns: &str,
    reference: &str,
    total: i64,
    expected: &str,
) -> (Writer, WriteContentResponse) {
    for _ in 0..100 {
        match Writer::stat(channel, ns, reference, total, expected).await {
            Ok(opened) => return opened,
            Err(status) if status.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("stat {reference}: {status:?}"),
        }
    }
    panic!("ref {reference} stayed locked");
}

async fn read_all(channel: &Channel, ns: &str, digest: &str) -> Vec<u8> {
    let req = with_namespace(
        ReadContentRequest {
            digest: digest.into(),
            offset: 0,
            size: 0,
        },
        ns,
    )
    .expect("namespace header");
    let mut stream = ContentClient::new(channel.clone())
        .read(req)
        .await
        .expect("read")
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await.expect("read chunk") {
        assert_eq!(chunk.offset as usize, out.len());
        out.extend_from_slice(&chunk.data);
    }
    out
}

#[test]
fn an_interrupted_write_resumes_from_its_offset() {
    let daemon = daemon();
    let address = daemon.address().to_owned();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let data = bytes(3 << 20, 1);
        let (total, digest) = (data.len() as i64, sha256(&data));
        let half = (1 << 20) + 12345;

        let (mut w, reply) = open_writer(&channel, "default", "resume-me", total, &digest).await;
        assert_eq!(reply.offset, 0);
        assert_eq!(reply.total, total);
        let reply = w.write(0, &data[..half]).await.expect("first half");
        assert_eq!(reply.offset, half as i64);
        drop(w); // the client goes away mid-upload

        let status = ContentClient::new(channel.clone())
            .status(
                with_namespace(
                    StatusRequest {
                        r#ref: "resume-me".into(),
                    },
                    "default",
                )
                .expect("ns"),
            )
            .await
            .expect("status")
            .into_inner()
            .status
            .expect("status in reply");
        assert_eq!((status.offset, status.total), (half as i64, total));

        let (mut w, reply) = open_writer(&channel, "default", "resume-me", total, &digest).await;
        assert_eq!(reply.offset, half as i64, "the new session resumes");
        assert_eq!(
            reply.digest,
            sha256(&data[..half]),
            "digest of what is there"
        );
        let err = w
            .write(half as i64 + 1, &data[half..])
            .await
            .expect_err("a gap");
        assert_eq!(err.code(), Code::OutOfRange);
        assert_eq!(
            err.message(),
            format!("write @{} must occur at current offset {half}", half + 1)
        );

        let (mut w, _) = open_writer(&channel, "default", "resume-me", total, &digest).await;
        for (i, chunk) in data[half..].chunks(1 << 20).enumerate() {
            let at = half + i * (1 << 20);
            let reply = w.write(at as i64, chunk).await.expect("write");
            assert_eq!(reply.offset as usize, at + chunk.len());
        }
        let reply = w.commit(total, total, &digest).await.expect("commit");
        assert_eq!(
            (reply.offset, reply.digest.as_str()),
            (total, digest.as_str())
        );
        assert_eq!(reply.action, WriteAction::Commit as i32);

        let info = ContentClient::new(channel.clone())
            .info(
                with_namespace(
                    InfoRequest {
                        digest: digest.clone(),
                    },
                    "default",
                )
                .expect("ns"),
            )
            .await
            .expect("info")
            .into_inner()
            .info
            .expect("info in reply");
        assert_eq!(info.size, total);
        assert_eq!(read_all(&channel, "default", &digest).await, data);
    })
    .expect("runtime");
}

#[test]
fn a_write_at_offset_zero_restarts_the_ingest() {
    let daemon = daemon();
    let address = daemon.address().to_owned();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let (mut w, _) = open_writer(&channel, "default", "restart", 0, "").await;
        w.write(0, b"garbage!").await.expect("write");
        let reply = w.write(0, b"fresh").await.expect("rewrite");
        assert_eq!((reply.offset, reply.digest), (5, sha256(b"fresh")));
        let reply = w.commit(5, 5, &sha256(b"fresh")).await.expect("commit");
        assert_eq!(reply.digest, sha256(b"fresh"));
    })
    .expect("runtime");
}

#[test]
fn a_second_writer_on_a_ref_is_unavailable() {
    let daemon = daemon();
    let address = daemon.address().to_owned();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let (mut first, _) = open_writer(&channel, "default", "contended", 0, "").await;
        first.write(0, b"abc").await.expect("write");
        let err = Writer::stat(&channel, "default", "contended", 0, "")
            .await
            .map(|_| ())
            .expect_err("locked");
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        assert!(
            err.message().starts_with("ref ") && err.message().contains("locked"),
            "{err:?}"
        );
        // Another namespace's ingest of the same ref is another ingest.
        let (_other, reply) = open_writer(&channel, "elsewhere", "contended", 0, "").await;
        assert_eq!(reply.offset, 0);
        let reply = first.commit(3, 3, "").await.expect("commit");
        assert_eq!(reply.digest, sha256(b"abc"));
        drop(first);
        let (_third, reply) = open_writer(&channel, "default", "contended", 0, "").await;
        assert_eq!(reply.offset, 0, "a committed ref starts afresh");
    })
    .expect("runtime");
}

#[test]
fn writes_under_a_lease_are_its_resources() {
    use berth_testkit::pb::services::v1::leases_client::LeasesClient;
    use berth_testkit::pb::services::v1::{CreateRequest, ListResourcesRequest};
    let daemon = daemon();
    let address = daemon.address().to_owned();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let mut leases = LeasesClient::new(channel.clone());
        let create = CreateRequest {
            id: "pull-1".into(),
            ..Default::default()
        };
        leases
            .create(with_namespace(create, "default").expect("ns"))
            .await
            .expect("create lease");
        let resources = |leases: &mut LeasesClient<Channel>| {
            let req = with_namespace(
                ListResourcesRequest {
                    id: "pull-1".into(),
                },
                "default",
            )
            .expect("ns");
            let mut leases = leases.clone();
            async move {
                let mut got: Vec<(String, String)> = leases
                    .list_resources(req)
                    .await
                    .expect("list resources")
                    .into_inner()
                    .resources
                    .into_iter()
                    .map(|r| (r.r#type, r.id))
                    .collect();
                got.sort();
                got
            }
        };
        let (mut w, _) = open_leased_writer(&channel, "default", "pull-1", "layer-0").await;
        assert_eq!(
            resources(&mut leases).await,
            [("ingests".to_owned(), "layer-0".to_owned())]
        );
        w.write(0, b"leased layer").await.expect("write");
        let digest = sha256(b"leased layer");
        w.commit(12, 12, &digest).await.expect("commit");
        assert_eq!(
            resources(&mut leases).await,
            [("content".to_owned(), digest)]
        );
    })
    .expect("runtime");
}

#[test]
fn ctr_content_active_lists_open_ingests() {
    require_ctr!();
    let daemon = daemon();
    let address = daemon.address().to_owned();
    block_on(async move {
        let channel = connect(&address).await.expect("connect");
        let (mut w, _) = open_writer(&channel, "default", "in-flight", 0, "").await;
        w.write(0, &[7u8; 1000]).await.expect("write");
        let active = daemon.ctr(&["content", "active"]).assert_success();
        let lines = active.lines();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["REF", "SIZE", "AGE"]
        );
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(&row[..2], ["in-flight", "1kB"], "{active}");
        let filtered = daemon
            .ctr(&["content", "active", "ref==other"])
            .assert_success();
        assert_eq!(filtered.lines().len(), 1, "header only:\n{filtered}");
        let elsewhere = daemon
            .ctr_ns("elsewhere", &["content", "active"])
            .assert_success();
        assert_eq!(
            elsewhere.lines().len(),
            1,
            "another namespace sees none:\n{elsewhere}"
        );
    })
    .expect("runtime");
}

#[test]
fn namespaces_see_only_their_content_and_share_one_file() {
    require_ctr!();
    let daemon = daemon();
    let data = bytes(100_000, 2);
    let digest = sha256(&data);
    let input = write_file(daemon.dir(), "blob", &data);
    ctr_stdin(&daemon, "a", &input, &["content", "ingest", "r"]).assert_success();
    gc_root(&daemon, "a", &digest);
    assert!(ls_rows(&daemon, "b").is_empty(), "b sees nothing of a's");
    daemon
        .ctr_ns("b", &["content", "get", &digest])
        .assert_failure_containing("not found");
    daemon
        .ctr_ns("b", &["content", "label", &digest, "x=y"])
        .assert_failure_containing("not found");
    ctr_stdin(&daemon, "b", &input, &["content", "ingest", "r"]).assert_success();
    gc_root(&daemon, "b", &digest);
    assert_eq!(ls_rows(&daemon, "b").len(), 1);
    if !testing_containerd() {
        assert_eq!(
            blob_files(&daemon),
            [digest["sha256:".len()..].to_owned()],
            "stored once"
        );
    }
    daemon
        .ctr_ns("a", &["content", "rm", &digest])
        .assert_success();
    assert!(ls_rows(&daemon, "a").is_empty());
    assert_eq!(
        ctr_sha256(&daemon, "b", &["content", "get", &digest]),
        digest
    );
    if !testing_containerd() {
        assert_eq!(blob_files(&daemon).len(), 1, "b still holds it");
    }
    daemon
        .ctr_ns("b", &["content", "rm", &digest])
        .assert_success();
    if !testing_containerd() {
        assert!(blob_files(&daemon).is_empty());
    }
}

#[test]
fn deleting_content_publishes_content_delete() {
    require_ctr!();
    let daemon = daemon();
    let mut events = daemon.ctr_stream(None, &["events"]).expect("ctr events");
    // `ctr events` has no "subscribed" signal: delete until one shows up.
    for attempt in 0..50 {
        let data = format!("probe {attempt}");
        let digest = sha256(data.as_bytes());
        let input = write_file(daemon.dir(), "probe", data.as_bytes());
        ctr_stdin(&daemon, "default", &input, &["content", "ingest", "probe"]).assert_success();
        daemon.ctr(&["content", "rm", &digest]).assert_success();
        let seen = events.wait_for(
            |l| l.contains("/content/delete") && l.contains(&digest),
            Duration::from_millis(300),
        );
        if let Some(line) = seen {
            assert!(line.contains(" default /content/delete "), "{line}");
            return;
        }
    }
    panic!("no /content/delete event:\n{}", events.report());
}

/// VmHWM (peak resident memory) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

#[test]
fn a_large_blob_moves_through_in_bounded_memory() {
    require_ctr!();
    let daemon = daemon();
    let pid = daemon.pid().expect("daemon pid");
    const SIZE: usize = 256 << 20;
    let path = daemon.dir().join("large");
    let mut hasher = Sha256::new();
    {
        let mut file = fs::File::create(&path).expect("create input");
        for i in 0..(SIZE >> 20) {
            let chunk = bytes(1 << 20, 1000 + i as u64);
            hasher.update(&chunk);
            file.write_all(&chunk).expect("write input");
        }
    }
    let digest = format!("sha256:{}", hex(&hasher.finalize()));
    let size = SIZE.to_string();
    ctr_stdin(
        &daemon,
        "default",
        &path,
        &[
            "content",
            "ingest",
            "--expected-size",
            &size,
            "--expected-digest",
            &digest,
            "large",
        ],
    )
    .assert_success();
    assert_eq!(ls_rows(&daemon, "default")[0].1, "268.4MB");
    assert_eq!(
        ctr_sha256(&daemon, "default", &["content", "get", &digest]),
        digest
    );
    let peak_mib = peak_rss_kib(pid) / 1024;
    eprintln!("daemon peak RSS after moving 256 MiB in and out: {peak_mib} MiB");
    assert!(peak_mib < 200, "daemon peak RSS {peak_mib} MiB");
}
