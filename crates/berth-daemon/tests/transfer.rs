//! The transfer and streaming services over gRPC, driven as containerd's
//! Go client drives them: streams opened with `StreamInit`, archives
//! imported and exported through `Data`/`WindowUpdate` flow control,
//! progress read from a progress stream. Exports are compared byte for
//! byte with Debian's `ctr images export` (which exports client-side).

use std::time::Duration;

use berth_testkit::pb::services::v1::streaming_client::StreamingClient;
use berth_testkit::pb::services::v1::transfer_client::TransferClient;
use berth_testkit::pb::services::v1::{StreamInit, TransferOptions, TransferRequest};
use berth_testkit::pb::types::transfer::{
    Data, ImageExportStream, ImageImportStream, ImageReference, ImageStore, Progress,
    UnpackConfiguration, WindowUpdate,
};
use berth_testkit::{
    busybox_oci_archive, require_ctr, require_root, with_namespace, ArchiveNames, Daemon,
};
use prost::{Message, Name};
use prost_types::Any;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

const NS: &str = "transfer";
const NAME: &str = "docker.io/library/busybox:transfer";

fn pack<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::full_name(),
        value: m.encode_to_vec(),
    }
}

fn unpack<M: Message + Name + Default>(any: &Any) -> Option<M> {
    (any.type_url.rsplit('/').next() == Some(M::full_name().as_str()))
        .then(|| M::decode(any.value.as_slice()).ok())
        .flatten()
}

/// The client's end of a registered stream.
struct Stream {
    tx: Option<mpsc::Sender<Any>>,
    rx: tonic::Streaming<Any>,
}

impl Stream {
    async fn open(channel: &Channel, id: &str) -> Stream {
        let (tx, rx) = mpsc::channel(16);
        tx.send(pack(&StreamInit { id: id.into() }))
            .await
            .expect("init");
        let request = with_namespace(ReceiverStream::new(rx), NS).expect("request");
        let mut rx = StreamingClient::new(channel.clone())
            .stream(request)
            .await
            .expect("Stream")
            .into_inner();
        let ack = rx.message().await.expect("ack").expect("an ack");
        assert_eq!(ack.type_url, "google.protobuf.Empty");
        Stream { tx: Some(tx), rx }
    }

    async fn send(&self, any: Any) {
        let _ = self.tx.as_ref().expect("open").send(any).await;
    }

    /// Sends `bytes` within the daemon's windows, half-closes, then reads
    /// to the end (or stops when the daemon ends the stream first).
    async fn send_all(mut self, bytes: &[u8]) {
        let (mut window, mut sent) = (0i64, 0usize);
        while sent < bytes.len() {
            while window <= 0 {
                // The daemon ends the stream early when it gives up.
                let Ok(Some(m)) = self.rx.message().await else {
                    return;
                };
                window += i64::from(unpack::<WindowUpdate>(&m).expect("WindowUpdate").update);
            }
            let n = (bytes.len() - sent).min(32 * 1024).min(window as usize);
            let data = Data {
                data: bytes[sent..sent + n].to_vec(),
            };
            self.send(pack(&data)).await;
            window -= n as i64;
            sent += n;
        }
        self.tx.take();
        while let Ok(Some(_)) = self.rx.message().await {}
    }

    /// Grants windows and collects `Data` until the daemon ends the stream.
    async fn receive_all(mut self) -> Vec<u8> {
        let (mut window, mut out) = (0i64, Vec::new());
        loop {
            if window < 65536 {
                self.send(pack(&WindowUpdate { update: 65536 })).await;
                window += 65536;
            }
            let Some(m) = self.rx.message().await.expect("recv") else {
                return out;
            };
            let data = unpack::<Data>(&m).expect("Data");
            window -= data.data.len() as i64;
            assert!(window >= 0, "the daemon overran its window");
            out.extend_from_slice(&data.data);
        }
    }

    /// Every progress event until the daemon ends the stream.
    async fn progress(mut self) -> Vec<Progress> {
        let mut out = Vec::new();
        while let Some(m) = self.rx.message().await.expect("recv") {
            out.push(unpack::<Progress>(&m).expect("Progress"));
        }
        out
    }
}

async fn transfer(
    channel: &Channel,
    source: Any,
    destination: Any,
    progress: &str,
) -> Result<(), tonic::Status> {
    let request = TransferRequest {
        source: Some(source),
        destination: Some(destination),
        options: Some(TransferOptions {
            progress_stream: progress.into(),
        }),
    };
    TransferClient::new(channel.clone())
        .transfer(with_namespace(request, NS).expect("request"))
        .await
        .map(|_| ())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn archive() -> berth_testkit::OciArchive {
    busybox_oci_archive(&ArchiveNames {
        ref_name: Some("transfer".into()),
        image_name: Some(NAME.into()),
    })
    .expect("archive")
}

/// Imports `bytes` through Transfer (ImportStream → ImageStore) and
/// returns the progress events.
async fn import(channel: &Channel, bytes: &[u8], unpack_into: Option<&str>) -> Vec<Progress> {
    let data = Stream::open(channel, "import-1").await;
    let progress = Stream::open(channel, "progress-1").await;
    let source = ImageImportStream {
        stream: "import-1".into(),
        ..ImageImportStream::default()
    };
    let destination = ImageStore {
        unpacks: unpack_into
            .map(|s| {
                vec![UnpackConfiguration {
                    platform: None,
                    snapshotter: s.into(),
                }]
            })
            .unwrap_or_default(),
        ..ImageStore::default()
    };
    let events = tokio::spawn(progress.progress());
    let (result, ()) = tokio::join!(
        transfer(channel, pack(&source), pack(&destination), "progress-1"),
        data.send_all(bytes)
    );
    result.expect("Transfer import");
    events.await.expect("progress")
}

#[test]
fn import_and_export_through_transfer_streams() {
    require_ctr!();
    let daemon = Daemon::start().expect("start berthd");
    let archive = archive();
    let rt = runtime();
    let channel = rt.block_on(daemon.connect()).expect("connect");

    let events = rt.block_on(import(&channel, &archive.bytes, None));
    let saved: Vec<&Progress> = events.iter().filter(|p| p.event == "saved").collect();
    assert_eq!(saved.len(), 1, "{events:?}");
    assert_eq!(saved[0].name, NAME);
    let target = saved[0].desc.as_ref().expect("the image target");
    assert_eq!(target.digest, archive.manifest.to_string());

    let ls = daemon.ctr_ns(NS, &["images", "ls", "-q"]).assert_success();
    assert_eq!(ls.lines(), [NAME]);
    let leases = daemon.ctr_ns(NS, &["leases", "ls", "-q"]).assert_success();
    assert!(
        leases.stdout.trim().is_empty(),
        "the transfer's lease is gone: {leases}"
    );

    // Export through Transfer (ImageStore → ExportStream): the same bytes
    // ctr writes reading the content store itself.
    let exported = rt.block_on(async {
        let data = Stream::open(&channel, "export-1").await;
        let source = ImageStore {
            extra_references: vec![ImageReference {
                name: NAME.into(),
                ..ImageReference::default()
            }],
            ..ImageStore::default()
        };
        let destination = ImageExportStream {
            stream: "export-1".into(),
            ..ImageExportStream::default()
        };
        let (result, bytes) = tokio::join!(
            transfer(&channel, pack(&source), pack(&destination), ""),
            data.receive_all()
        );
        result.expect("Transfer export");
        bytes
    });
    let path = daemon.dir().join("ctr-export.tar");
    daemon
        .ctr_ns(
            NS,
            &["images", "export", path.to_str().expect("utf8"), NAME],
        )
        .assert_success();
    let reference = std::fs::read(&path).expect("ctr's export");
    assert!(exported == reference, "transfer export differs from ctr's");
}

#[test]
fn import_unpacks_as_the_image_store_asks() {
    require_root!();
    require_ctr!();
    let daemon = Daemon::start().expect("start berthd");
    let archive = archive();
    let rt = runtime();
    let channel = rt.block_on(daemon.connect()).expect("connect");
    let events = rt.block_on(import(&channel, &archive.bytes, Some("overlayfs")));
    assert!(events.iter().any(|p| p.event == "unpacked"), "{events:?}");
    // One layer: the chain ID is the diff ID.
    let ls = daemon.ctr_ns(NS, &["snapshots", "ls"]).assert_success();
    let chain = archive.layer.to_string();
    assert!(
        ls.stdout
            .lines()
            .any(|l| l.starts_with(&chain) && l.contains("Committed")),
        "{ls}"
    );
    let check = daemon.ctr_ns(NS, &["images", "check"]).assert_success();
    assert!(check.stdout.contains("true"), "unpacked: {check}");
}

#[test]
fn failures_close_the_streams_and_leave_nothing() {
    require_ctr!();
    let daemon = Daemon::start().expect("start berthd");
    let rt = runtime();
    let channel = rt.block_on(daemon.connect()).expect("connect");
    rt.block_on(async {
        // A stream nobody opened.
        let source = ImageImportStream {
            stream: "nope".into(),
            ..ImageImportStream::default()
        };
        let status = transfer(&channel, pack(&source), pack(&ImageStore::default()), "")
            .await
            .expect_err("no such stream");
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

        // A broken archive: the error comes back, the progress stream and
        // the data stream end.
        let data = Stream::open(&channel, "import-bad").await;
        let progress = Stream::open(&channel, "progress-bad").await;
        let events = tokio::spawn(progress.progress());
        let source = ImageImportStream {
            stream: "import-bad".into(),
            ..ImageImportStream::default()
        };
        let garbage = vec![7u8; 200_000];
        let (result, ()) = tokio::join!(
            transfer(
                &channel,
                pack(&source),
                pack(&ImageStore::default()),
                "progress-bad"
            ),
            data.send_all(&garbage)
        );
        assert!(result.is_err(), "garbage is not an archive");
        tokio::time::timeout(Duration::from_secs(60), events)
            .await
            .expect("the progress stream ends")
            .expect("progress");

        // Two streams may not share an id.
        let _first = Stream::open(&channel, "dup").await;
        let (tx, rx) = mpsc::channel(1);
        tx.send(pack(&StreamInit { id: "dup".into() }))
            .await
            .expect("init");
        let request = with_namespace(ReceiverStream::new(rx), NS).expect("request");
        let second = StreamingClient::new(channel.clone()).stream(request).await;
        let status = match second {
            Err(status) => status,
            Ok(response) => response
                .into_inner()
                .message()
                .await
                .expect_err("a duplicate id is refused"),
        };
        assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");

        // An unknown pair of objects.
        let status = transfer(
            &channel,
            pack(&ImageStore::default()),
            pack(&ImageStore::default()),
            "",
        )
        .await
        .expect_err("store to store");
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    });
    let images = daemon.ctr_ns(NS, &["images", "ls", "-q"]).assert_success();
    assert!(images.stdout.trim().is_empty(), "{images}");
}

/// Polls `check` until it holds (at most a minute): the daemon works on
/// asynchronously after a call ends.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..600 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never happened: {what}");
}

#[test]
fn a_cancelled_transfer_gives_up_its_lease() {
    require_ctr!();
    let daemon = Daemon::start().expect("start berthd");
    let rt = runtime();
    let channel = rt.block_on(daemon.connect()).expect("connect");
    let leases = || {
        daemon
            .ctr_ns(NS, &["leases", "ls", "-q"])
            .assert_success()
            .stdout
            .lines()
            .count()
    };
    // An import whose client never sends a byte: the daemon waits.
    let data = rt.block_on(Stream::open(&channel, "import-stalled"));
    let source = ImageImportStream {
        stream: "import-stalled".into(),
        ..ImageImportStream::default()
    };
    let call = {
        let channel = channel.clone();
        rt.spawn(async move {
            transfer(&channel, pack(&source), pack(&ImageStore::default()), "").await
        })
    };
    eventually("the transfer takes a lease", || leases() == 1);
    call.abort();
    eventually("the cancelled transfer's lease is deleted", || {
        leases() == 0
    });
    drop(data);
}
