//! Task events to the daemon, in order.
//!
//! Every event goes through one queue drained by one task, so the daemon
//! sees them in the order the shim produced them (`/tasks/start` before the
//! `/tasks/exit` of the same process). Each is forwarded over the daemon's
//! ttrpc socket (`containerd.services.events.ttrpc.v1.Events/Forward` on
//! `TTRPC_ADDRESS`, or `<address>.ttrpc`); if that cannot be reached, the
//! shim runs `<publish-binary> --address A publish --topic T --namespace NS`
//! with the event's protobuf `Any` on stdin, as containerd's older shims do.
//!
//! When neither reaches the daemon — it crashed or is restarting — the event
//! is tried again after 1, 2, 3, 4 and 5 seconds, as containerd 1.6's shim
//! requeues it (`runtime/v2/shim/publisher.go`), and dropped after that.
//! So a container that exits while the daemon is down is still reported to
//! the daemon, and to clients such as dockerd, once it is back. Later
//! events wait behind the one being retried, which keeps the order.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task::TaskIO;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageFull};
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::EventsClient;
use tokio::sync::{mpsc, oneshot};
use ttrpc::asynchronous::Client;

use crate::monitor::Monitor;

/// Where events go.
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: String,
    /// The daemon's ttrpc socket (no scheme).
    pub ttrpc_address: String,
    /// The daemon's gRPC address, passed to the publish binary.
    pub address: String,
    pub publish_binary: String,
}

/// How often an event the daemon did not take is tried again (containerd's
/// `maxRequeue`), and the delay before the n-th retry is n times this.
const MAX_RETRIES: u32 = 5;
const RETRY_STEP: Duration = Duration::from_secs(1);

/// A queue of events; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<Queued>,
}

/// An event, or a flush marker answered once everything before it is out.
enum Queued {
    Event(&'static str, Any),
    Flush(oneshot::Sender<()>),
}

impl Publisher {
    /// Starts the forwarding task.
    pub fn start(target: Target, monitor: Monitor) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(forward_all(target, monitor, rx));
        Publisher { tx }
    }

    /// Queues `event` under `topic` (`/tasks/exit`…).
    pub fn publish<M: MessageFull>(&self, topic: &'static str, event: &M) {
        let _ = self.tx.send(Queued::Event(topic, pack(event)));
    }

    /// Waits until every event queued so far has been delivered (or failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Queued::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Packs a message with containerd's type URL (its full proto name, no
/// `type.googleapis.com/` prefix).
pub fn pack<M: MessageFull>(msg: &M) -> Any {
    let mut any = Any::new();
    any.type_url = M::descriptor().full_name().to_string();
    any.value = msg.write_to_bytes().unwrap_or_default();
    any
}

/// A protobuf timestamp.
pub fn timestamp(at: SystemTime) -> Timestamp {
    let d = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

/// The `io` field of `/tasks/create`.
pub fn task_io(paths: &crate::io::StdioPaths) -> TaskIO {
    let mut io = TaskIO::new();
    io.stdin = paths.stdin.clone();
    io.stdout = paths.stdout.clone();
    io.stderr = paths.stderr.clone();
    io.terminal = paths.terminal;
    io
}

async fn forward_all(target: Target, monitor: Monitor, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let mut client: Option<EventsClient> = None;
    while let Some(queued) = rx.recv().await {
        let (topic, event) = match queued {
            Queued::Event(topic, event) => (topic, event),
            Queued::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        for retry in 0..=MAX_RETRIES {
            if retry > 0 {
                tokio::time::sleep(RETRY_STEP * retry).await;
            }
            if deliver(&target, &monitor, &mut client, topic, &event).await {
                break;
            }
            if retry == MAX_RETRIES {
                crate::log::line(format_args!(
                    "dropping {topic}: the daemon did not take it after {MAX_RETRIES} retries"
                ));
            }
        }
    }
}

/// One attempt: ttrpc Forward (connecting first if needed), else the
/// publish binary. True when the daemon took the event.
async fn deliver(
    target: &Target,
    monitor: &Monitor,
    client: &mut Option<EventsClient>,
    topic: &str,
    event: &Any,
) -> bool {
    if client.is_none() && !target.ttrpc_address.is_empty() {
        let addr = format!("unix://{}", target.ttrpc_address);
        *client = Client::connect(&addr).await.ok().map(EventsClient::new);
    }
    if let Some(c) = client.as_ref() {
        if forward(c, &target.namespace, topic, event.clone())
            .await
            .is_ok()
        {
            return true;
        }
        *client = None;
    }
    publish_binary(target, monitor, topic, event).await
}

async fn forward(c: &EventsClient, namespace: &str, topic: &str, event: Any) -> ttrpc::Result<()> {
    let mut req = ForwardRequest::new();
    let env = req.envelope.mut_or_insert_default();
    env.timestamp = Some(timestamp(SystemTime::now())).into();
    env.namespace = namespace.to_string();
    env.topic = topic.to_string();
    env.event = Some(event).into();
    let mut ctx = ttrpc::context::with_timeout(5_000_000_000);
    ctx.add("containerd-namespace-ttrpc".into(), namespace.to_string());
    c.forward(ctx, &req).await.map(drop)
}

/// Runs the publish binary; true when it exited 0.
async fn publish_binary(target: &Target, monitor: &Monitor, topic: &str, event: &Any) -> bool {
    if target.publish_binary.is_empty() {
        return false;
    }
    let mut cmd = Command::new(&target.publish_binary);
    if !target.address.is_empty() {
        cmd.args(["--address", &target.address]);
    }
    cmd.args([
        "publish",
        "--topic",
        topic,
        "--namespace",
        &target.namespace,
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let Ok((mut child, exit)) = monitor.spawn(&mut cmd) else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // An Any is small; the pipe buffer holds it without blocking.
        let _ = stdin.write_all(&event.write_to_bytes().unwrap_or_default());
    }
    exit.await.is_ok_and(|exit| exit.status == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::events::task::TaskStart;

    #[test]
    fn events_pack_with_containerd_type_urls() {
        let mut e = TaskStart::new();
        e.container_id = "c".into();
        e.pid = 7;
        let any = pack(&e);
        assert_eq!(any.type_url, "containerd.events.TaskStart");
        assert_eq!(TaskStart::parse_from_bytes(&any.value).expect("decode"), e);
    }
}
