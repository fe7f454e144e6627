//! The remotecommand protocol of exec and attach: which streams a session
//! has, how a SPDY client opens them (one stream per `streamType`) or a
//! WebSocket client gets them (channels 0–4: stdin, stdout, stderr, error,
//! resize), terminal sizes, and the final status on the error stream.

use super::conn::{Inbound, Out, Outbound, Writer};
use super::spdy;
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::mpsc;

/// The SPDY subprotocols, most preferred first. v5 differs from v4 only
/// over WebSocket.
pub(crate) const SPDY_PROTOCOLS: [&str; 4] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
];

/// How long a SPDY client has to open its streams (the kubelet's
/// `DefaultStreamCreationTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The WebSocket channels.
const STDIN: usize = 0;
const STDOUT: usize = 1;
const STDERR: usize = 2;
const ERROR: u32 = 3;
const RESIZE: usize = 4;

/// Which streams the request asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub(crate) stdin: bool,
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
    pub(crate) tty: bool,
}

/// A terminal size, as clients send it on the resize stream.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct TerminalSize {
    #[serde(rename = "Width")]
    pub(crate) width: u16,
    #[serde(rename = "Height")]
    pub(crate) height: u16,
}

/// How an exec or attach ended, for the error stream.
#[derive(Debug)]
pub(crate) enum Outcome {
    Success,
    /// The command exited with a non-zero code.
    ExitCode {
        code: i32,
        message: String,
    },
    /// It could not run; the text says why.
    Failed(String),
}

/// A session's streams, whatever the transport.
pub(crate) struct Session {
    pub(crate) stdin: Option<Inbound>,
    pub(crate) stdout: Option<Outbound>,
    pub(crate) stderr: Option<Outbound>,
    pub(crate) resize: Option<mpsc::Receiver<TerminalSize>>,
    status: Option<Outbound>,
    /// v4 and later: the status is JSON (a `metav1.Status`) whatever the
    /// outcome; before, only a failure's message is written.
    json_status: bool,
    writer: Writer,
}

impl Session {
    /// Gathers the streams a SPDY client opens for `options`, negotiated
    /// as `protocol`; `None` if it does not open them in time (the
    /// connection is then closed).
    pub(crate) async fn over_spdy(
        mut conn: spdy::Connection,
        options: Options,
        protocol: &str,
    ) -> Option<Session> {
        let resizable = protocol != "v2.channel.k8s.io";
        let expected = 1
            + usize::from(options.stdin)
            + usize::from(options.stdout)
            + usize::from(options.stderr)
            + usize::from(options.tty && resizable);
        let mut session = Session {
            stdin: None,
            stdout: None,
            stderr: None,
            resize: None,
            status: None,
            json_status: matches!(protocol, "v4.channel.k8s.io" | "v5.channel.k8s.io"),
            writer: conn.writer.clone(),
        };
        let deadline = tokio::time::sleep(STREAM_CREATION_TIMEOUT);
        tokio::pin!(deadline);
        let mut received = 0;
        while received < expected {
            let stream = tokio::select! {
                stream = conn.streams.recv() => stream?,
                () = &mut deadline => {
                    tracing::debug!("streaming: timed out waiting for the client's streams");
                    let _ = session.writer.send(Out::Close).await;
                    return None;
                }
            };
            let out = || Some(Outbound::new(&conn.writer, stream.id));
            match stream.headers.get("streamtype") {
                Some("error") => session.status = out(),
                Some("stdin") => session.stdin = Some(stream.inbound),
                Some("stdout") => session.stdout = out(),
                Some("stderr") => session.stderr = out(),
                Some("resize") => session.resize = Some(sizes(stream.inbound)),
                other => {
                    tracing::debug!(stream_type = ?other, "streaming: unexpected stream");
                    continue;
                }
            }
            received += 1;
        }
        Some(session)
    }

    /// The channels of a WebSocket session (see [`websocket_channels`]).
    /// As the kubelet does, an empty message on the first channel the
    /// client reads tells it the session is up.
    pub(crate) async fn over_websocket(
        mut inbound: Vec<Option<Inbound>>,
        writer: Writer,
        options: Options,
        json_status: bool,
    ) -> Session {
        let channel = |on: bool, n: usize| on.then(|| Outbound::new(&writer, n as u32));
        let session = Session {
            stdin: inbound[STDIN].take().filter(|_| options.stdin),
            stdout: channel(options.stdout, STDOUT),
            stderr: channel(options.stderr && !options.tty, STDERR),
            resize: inbound[RESIZE].take().map(sizes),
            status: Some(Outbound::new(&writer, ERROR)),
            json_status,
            writer,
        };
        let first = session
            .stdout
            .as_ref()
            .or(session.stderr.as_ref())
            .or(session.status.as_ref());
        if let Some(first) = first {
            first.send_empty().await;
        }
        session
    }

    /// Ends the session: output streams end, the status goes on the error
    /// stream, and the connection closes.
    pub(crate) async fn finish(self, outcome: Outcome) {
        for out in [&self.stdout, &self.stderr].into_iter().flatten() {
            out.finish().await;
        }
        if let Some(status) = &self.status {
            let text = if self.json_status {
                Some(status_json(&outcome))
            } else {
                match &outcome {
                    Outcome::Success => None,
                    Outcome::ExitCode { message, .. } | Outcome::Failed(message) => {
                        Some(message.clone())
                    }
                }
            };
            if let Some(text) = text {
                status.send(text.as_bytes()).await;
            }
            status.finish().await;
        }
        let _ = self.writer.send(Out::Close).await;
    }
}

/// Which WebSocket channels take input: stdin and resize.
pub(crate) fn websocket_channels() -> [bool; 5] {
    [true, false, false, false, true]
}

/// Decodes the resize stream's JSON objects as they arrive.
fn sizes(mut inbound: Inbound) -> mpsc::Receiver<TerminalSize> {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(chunk) = inbound.next().await {
            buf.extend_from_slice(&chunk);
            let mut objects =
                serde_json::Deserializer::from_slice(&buf).into_iter::<TerminalSize>();
            let mut decoded = Vec::new();
            let mut used = 0;
            loop {
                match objects.next() {
                    Some(Ok(size)) => {
                        used = objects.byte_offset();
                        decoded.push(size);
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(_)) => return,
                    None => break,
                }
            }
            buf.drain(..used);
            for size in decoded {
                if tx.send(size).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The `metav1.Status` a v4 client reads: `ExitCode` among the causes of
/// a non-zero exit, as `kubectl exec` reports it.
fn status_json(outcome: &Outcome) -> String {
    let status = match outcome {
        Outcome::Success => serde_json::json!({"metadata": {}, "status": "Success"}),
        Outcome::ExitCode { code, message } => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(message) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {message}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }),
    };
    status.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn sizes_decode_across_chunks() {
        let (tx, rx) = mpsc::channel(4);
        let mut sizes = sizes(Inbound::new(rx));
        tx.send(Bytes::from_static(b"{\"Width\":80,\"Hei"))
            .await
            .expect("ok");
        tx.send(Bytes::from_static(
            b"ght\":24}\n{\"Width\":100,\"Height\":40}\n",
        ))
        .await
        .expect("ok");
        assert_eq!(
            sizes.recv().await,
            Some(TerminalSize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(
            sizes.recv().await,
            Some(TerminalSize {
                width: 100,
                height: 40
            })
        );
        drop(tx);
        assert_eq!(sizes.recv().await, None);
    }

    #[test]
    fn statuses_carry_the_exit_code() {
        let ok: serde_json::Value =
            serde_json::from_str(&status_json(&Outcome::Success)).expect("ok");
        assert_eq!(ok["status"], "Success");
        let exit = Outcome::ExitCode {
            code: 3,
            message: "command terminated with non-zero exit code: exit code 3".into(),
        };
        let failed: serde_json::Value = serde_json::from_str(&status_json(&exit)).expect("ok");
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        let internal: serde_json::Value =
            serde_json::from_str(&status_json(&Outcome::Failed("boom".into()))).expect("ok");
        assert_eq!(internal["code"], 500);
        assert_eq!(internal["reason"], "InternalError");
    }
}
