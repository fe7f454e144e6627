//! Flow-controlled bytes on a transfer stream (containerd's
//! `core/transfer/streaming/stream.go`), for both ends: the daemon's
//! streaming service and the client library.
//!
//! The receiver grants a window with `WindowUpdate{update}` and the sender
//! sends at most that many bytes of `Data` before waiting for more. The
//! receiver grants [`WINDOW`] bytes whenever less than that is outstanding;
//! the sender puts [`MAX_DATA`] bytes at most in one message. The sender
//! ends the data by closing its side of the stream, which each end does in
//! its own way, so these functions leave it to their callers.

use crate::pb::types::transfer::{Data, WindowUpdate};
use crate::typeurl::{pack, unpack};
use berth_core::{Error, Result};
use prost_types::Any;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most bytes one `Data` message carries (containerd's `maxRead`).
pub const MAX_DATA: usize = 32 * 1024;
/// The window a receiver keeps open (containerd's `windowSize`).
pub const WINDOW: i32 = 2 * MAX_DATA as i32;

/// One end of a stream of `Any` messages.
pub trait MessageStream: Sync {
    /// The stream's id, for errors and logs.
    fn id(&self) -> &str;
    /// Sends a message to the other end.
    fn send(&self, message: Any) -> impl Future<Output = Result<()>> + Send;
    /// The next message; `None` once the other end closed its side.
    fn recv(&self) -> impl Future<Output = Result<Option<Any>>> + Send;
}

/// Sends `reader`'s bytes as `Data` within the windows the other end
/// grants, until `reader` ends; returns how many bytes were sent. The
/// caller then closes its side.
pub async fn send_data(
    stream: &impl MessageStream,
    reader: &mut (impl AsyncRead + Unpin),
) -> Result<u64> {
    let mut buf = vec![0u8; MAX_DATA];
    let mut window: i64 = 0;
    let mut total = 0u64;
    loop {
        while window <= 0 {
            let message = stream.recv().await?.ok_or_else(|| {
                Error::unavailable(format!(
                    "stream {:?}: the receiver went away after {total} bytes",
                    stream.id()
                ))
            })?;
            match unpack::<WindowUpdate>(&message) {
                Some(update) => window += i64::from(update.update),
                None => ignore(stream, &message),
            }
        }
        let max = MAX_DATA.min(usize::try_from(window).unwrap_or(MAX_DATA));
        let n = reader.read(&mut buf[..max]).await?;
        if n == 0 {
            return Ok(total);
        }
        let data = Data {
            data: buf[..n].to_vec(),
        };
        stream.send(pack(&data)).await?;
        window -= n as i64;
        total += n as u64;
    }
}

/// Receives `Data` into `writer` until the other end closes its side,
/// granting windows as they are used; returns how many bytes arrived.
pub async fn receive_data(
    stream: &impl MessageStream,
    writer: &mut (impl AsyncWrite + Unpin),
) -> Result<u64> {
    let mut window: i64 = 0;
    let mut total = 0u64;
    loop {
        // A grant may fail once the sender is done: a daemon ending the
        // call closes the client's sending side too, with data still
        // buffered for it. How the stream ends tells how the transfer went.
        if window < i64::from(WINDOW) {
            let grant = WindowUpdate { update: WINDOW };
            let _ = stream.send(pack(&grant)).await;
            window += i64::from(WINDOW);
        }
        let Some(message) = stream.recv().await? else {
            break;
        };
        match unpack::<Data>(&message) {
            Some(data) => {
                writer.write_all(&data.data).await?;
                window -= data.data.len() as i64;
                total += data.data.len() as u64;
            }
            None => ignore(stream, &message),
        }
    }
    writer.flush().await?;
    Ok(total)
}

fn ignore(stream: &impl MessageStream, message: &Any) {
    tracing::warn!(
        stream = stream.id(),
        type_url = %message.type_url,
        "ignoring unexpected message on a data stream"
    );
}
