//! The shim's log: a FIFO in the bundle that the daemon reads and copies into
//! its own log. It is opened read-write, as containerd's `openShimLog` does,
//! so the open never blocks and the shim never sees a reader-less pipe while
//! the daemon lives (a shim writing to a pipe without readers gets SIGPIPE).

use crate::bundle::Bundle;
use berth_core::{Error, Result};
use tokio::task::JoinHandle;

/// A longer line without its newline is logged in pieces.
const MAX_LINE: usize = 64 * 1024;

/// Opens (creating if needed) the bundle's log FIFO and copies its lines to
/// the daemon's log until the returned task is aborted. A shim logs rarely,
/// so the read buffer exists only while a line is being read, not for the
/// whole life of every task.
pub fn follow(bundle: &Bundle) -> Result<JoinHandle<()>> {
    bundle.create_log_fifo()?;
    let path = bundle.log_fifo();
    let receiver = tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&path)
        .map_err(|e| Error::internal(format!("open {}: {e}", path.display())))?;
    let (namespace, id) = (bundle.namespace.clone(), bundle.id.clone());
    Ok(tokio::spawn(copy_lines(receiver, move |line| {
        tracing::info!(target: "shim", %namespace, %id, "{line}");
    })))
}

/// Hands each line read from `receiver` to `emit` until it ends; the read
/// buffer exists only while there is something to read.
async fn copy_lines(receiver: tokio::net::unix::pipe::Receiver, mut emit: impl FnMut(&str)) {
    let mut partial = Vec::new();
    while receiver.readable().await.is_ok() {
        let mut buf = [0u8; 1024];
        let mut ended = false;
        loop {
            match receiver.try_read(&mut buf) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    ended = true;
                    break;
                }
            }
        }
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            emit(&String::from_utf8_lossy(&partial[..end]));
            partial.drain(..=end);
        }
        if ended || partial.len() > MAX_LINE {
            if !partial.is_empty() {
                emit(&String::from_utf8_lossy(&partial));
            }
            partial.clear();
        }
        if ended {
            return;
        }
        partial.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn lines_are_whole_across_writes_and_long_ones_are_cut() {
        let (mut w, r) = tokio::net::unix::pipe::pipe().expect("pipe");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = lines.clone();
        let copy = tokio::spawn(copy_lines(r, move |l| {
            seen.lock().expect("lock").push(l.to_string())
        }));
        w.write_all(b"one\ntw").await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        w.write_all(b"o\n\nthree").await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let long = vec![b'x'; MAX_LINE + 10];
        w.write_all(&long).await.expect("write");
        drop(w);
        copy.await.expect("copy");
        let lines = lines.lock().expect("lock").clone();
        assert_eq!(lines[..3], ["one", "two", ""]);
        // "three" and the long run are one unterminated line, cut once it
        // passes the maximum; what is left comes out when the FIFO ends.
        let rest = &lines[3..];
        assert!(
            rest.len() >= 2,
            "{:?}",
            rest.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(rest.concat(), format!("three{}", "x".repeat(MAX_LINE + 10)));
    }
}
