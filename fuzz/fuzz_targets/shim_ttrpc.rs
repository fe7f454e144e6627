//! ttrpc frames into the shim's Task server: the bytes a client writes on
//! the shim's socket go through the same ttrpc server the shim runs
//! (`crates/berth-shim/src/serve.rs`): frame reader, `Request` decoding,
//! dispatch by service (`containerd.task.v2.Task` and `.v3.Task`) and
//! method, and the method's request message decoding. The handler is the
//! generated `Task` trait's defaults (Unimplemented), so no container is
//! needed: what is fuzzed is everything before the shim's own code.
//!
//! Oracle: the server neither panics nor hangs, and what it writes back
//! is whole response frames, each a `Response` that decodes.
#![no_main]

use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::{create_task, Task};
use libfuzzer_sys::fuzz_target;
use nix::sys::signal::{SigSet, Signal};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::runtime::Runtime;
use ttrpc::asynchronous::transport::Listener;
use ttrpc::asynchronous::Server;
use ttrpc::proto::{Response, MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX, MESSAGE_TYPE_RESPONSE};

/// Answers every method with the trait's default (Unimplemented).
struct DecodeOnly;

#[async_trait::async_trait]
impl Task for DecodeOnly {}

/// The server's current-thread runtime, which runs while an input is
/// sent, the server, which serves until the process ends, and its socket.
/// Kept here, not leaked, so LeakSanitizer sees them reachable.
struct Shim {
    rt: Runtime,
    _server: std::sync::Mutex<Server>,
    socket: PathBuf,
}

static SHIM: LazyLock<Shim> = LazyLock::new(|| {
    // libFuzzer's main does not ignore SIGPIPE as Rust's does, and the
    // server may hang up before the input is written: blocked, the write
    // fails with EPIPE instead. The runtime runs on this thread.
    let mut pipe = SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    pipe.thread_block().expect("block SIGPIPE");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let socket = std::env::temp_dir().join(format!("berth-fuzz-ttrpc-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let server = rt.block_on(async {
        let task = Arc::new(DecodeOnly);
        // As serve.rs registers it: v3 as generated, v2 under its name.
        let mut services = create_task(task.clone());
        if let Some(v3) = create_task(task).remove("containerd.task.v3.Task") {
            services.insert("containerd.task.v2.Task".to_string(), v3);
        }
        let listener = Listener::try_from(listener).expect("listener");
        let mut server = Server::new()
            .add_listener(listener)
            .register_service(services);
        server.start().await.expect("start");
        server
    });
    Shim {
        rt,
        _server: std::sync::Mutex::new(server),
        socket,
    }
});

fuzz_target!(|data: &[u8]| {
    let shim = &*SHIM;
    let answer = shim.rt.block_on(async {
        let stream = UnixStream::connect(&shim.socket).await.expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let send = async {
            // The server may hang up first (a bad header): not an error.
            let _ = writer.write_all(data).await;
            let _ = writer.shutdown().await;
        };
        let receive = async {
            let mut answer = Vec::new();
            let _ = reader.read_to_end(&mut answer).await;
            answer
        };
        tokio::join!(send, receive).1
    });
    check_responses(&answer);
});

/// `answer` must be whole frames, each a response carrying a `Response`.
fn check_responses(mut answer: &[u8]) {
    while !answer.is_empty() {
        assert!(answer.len() >= MESSAGE_HEADER_LENGTH, "a cut header");
        let length = u32::from_be_bytes(answer[..4].try_into().expect("4 bytes")) as usize;
        let kind = answer[8];
        assert_eq!(kind, MESSAGE_TYPE_RESPONSE, "frame type");
        assert!(length <= MESSAGE_LENGTH_MAX, "response of {length} bytes");
        let end = MESSAGE_HEADER_LENGTH + length;
        assert!(answer.len() >= end, "a cut response");
        Response::parse_from_bytes(&answer[MESSAGE_HEADER_LENGTH..end]).expect("a Response");
        answer = &answer[end..];
    }
}
