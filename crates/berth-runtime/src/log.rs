//! The shim's log: a FIFO in the bundle that the daemon reads and copies into
//! its own log. It is opened read-write, as containerd's `openShimLog` does,
//! so the open never blocks and the shim never sees a reader-less pipe while
//! the daemon lives (a shim writing to a pipe without readers gets SIGPIPE).

use crate::bundle::Bundle;
use berth_core::{Error, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

/// Opens (creating if needed) the bundle's log FIFO and copies its lines to
/// the daemon's log until the returned task is aborted.
pub fn follow(bundle: &Bundle) -> Result<JoinHandle<()>> {
    bundle.create_log_fifo()?;
    let path = bundle.log_fifo();
    let receiver = tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&path)
        .map_err(|e| Error::internal(format!("open {}: {e}", path.display())))?;
    let (namespace, id) = (bundle.namespace.clone(), bundle.id.clone());
    Ok(tokio::spawn(async move {
        let mut lines = BufReader::new(receiver).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(target: "shim", %namespace, %id, "{line}");
        }
    }))
}
