//! The Write stream: one ingest session, as containerd's contentserver
//! runs it.
//!
//! The first message names the ref (and may give the total and expected
//! digest); opening the writer takes the ref's lock for the whole session,
//! so a second session on the same ref fails with `Unavailable`. Then every
//! message gets exactly one reply carrying the current offset:
//!
//! - `STAT` reports offset, total, digest so far and the times;
//! - `WRITE` appends its data; an offset other than the current one is
//!   `OutOfRange` ("write @X must occur at current offset Y"), except 0,
//!   which restarts the ingest (containerd truncates);
//! - `COMMIT` writes any data, then commits with the session's total and
//!   expected digest (a later message may set either) and labels, and ends
//!   the session.
//!
//! A message naming an expected digest the namespace holds already aborts
//! the ingest and fails with `AlreadyExists` ("blob with expected digest D
//! exists"). The client closing its side, or vanishing, ends the session;
//! the ingest stays for a later session to resume from its offset.

use crate::convert::timestamp;
use berth_api::pb::services::v1::{WriteAction, WriteContentRequest, WriteContentResponse};
use berth_api::status::to_status;
use berth_core::content::{ContentStore, ContentWriter, WriterOptions};
use berth_core::{Digest, Error};
use berth_store::content::{LocalContent, LocalWriter};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Status, Streaming};

/// Replies buffered ahead of the client: each is small, and the client
/// waits for one per request anyway.
const REPLIES: usize = 4;

/// Runs a Write session over `input`, replying on the returned stream.
pub(super) fn session(
    store: LocalContent,
    input: Streaming<WriteContentRequest>,
) -> BoxStream<WriteContentResponse> {
    let (tx, rx) = mpsc::channel(REPLIES);
    tokio::spawn(async move {
        let mut session = Session {
            store,
            input,
            replies: tx.clone(),
        };
        if let Err(status) = session.run().await {
            if status.code() != tonic::Code::AlreadyExists {
                tracing::debug!(error = %status, "content write failed");
            }
            // The client may be gone; nothing to do then.
            let _ = tx.send(Err(status)).await;
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

struct Session {
    store: LocalContent,
    input: Streaming<WriteContentRequest>,
    replies: mpsc::Sender<Result<WriteContentResponse, Status>>,
}

/// A digest a message names ("" for none).
fn digest(s: &str) -> Result<Option<Digest>, Status> {
    if s.is_empty() {
        return Ok(None);
    }
    Digest::parse(s).map(Some).map_err(to_status)
}

impl Session {
    async fn run(&mut self) -> Result<(), Status> {
        let Some(mut req) = self.input.message().await? else {
            return Ok(());
        };
        if req.r#ref.is_empty() {
            return Err(Status::invalid_argument(
                "first message must have a reference",
            ));
        }
        let reference = req.r#ref.clone();
        let mut total = req.total;
        let mut expected = digest(&req.expected)?;
        let options = WriterOptions {
            reference: reference.clone(),
            total,
            expected: expected.clone(),
        };
        let mut writer = self.store.local_writer(options).await.map_err(to_status)?;
        let mut reply = WriteContentResponse::default();
        loop {
            let status = writer.status();
            reply.action = req.action;
            reply.offset = status.offset;
            if let Some(named) = digest(&req.expected)? {
                // An existing blob goes under the request's lease in the
                // same transaction that finds it (as containerd's metadata
                // store does when a writer opens), so garbage collection
                // cannot take it before the client's image references it.
                if self.store.hold_existing(&named).await.map_err(to_status)? {
                    drop(writer);
                    if let Err(err) = self.store.abort(&reference).await {
                        tracing::debug!(%reference, error = %err, "aborting a write of existing content");
                    }
                    return Err(Status::already_exists(format!(
                        "blob with expected digest {named} exists"
                    )));
                }
                expected = Some(named);
            }
            if req.total > 0 {
                total = req.total;
            }
            let action = WriteAction::try_from(req.action).unwrap_or(WriteAction::Stat);
            match action {
                WriteAction::Stat => {
                    reply.digest = writer.digest().to_string();
                    reply.started_at = timestamp(status.started_at);
                    reply.updated_at = timestamp(status.updated_at);
                    reply.total = total;
                }
                WriteAction::Write | WriteAction::Commit => {
                    if req.offset > 0 && req.offset != status.offset {
                        return Err(Status::out_of_range(format!(
                            "write @{} must occur at current offset {}",
                            req.offset, status.offset
                        )));
                    }
                    if req.offset == 0 && status.offset > 0 {
                        writer.truncate(0).await.map_err(|e| truncate_failed(&e))?;
                        reply.offset = 0;
                    }
                    let data = std::mem::take(&mut req.data);
                    if !data.is_empty() {
                        let n = data.len() as i64;
                        writer.write_owned(data).await.map_err(to_status)?;
                        reply.offset += n;
                    }
                    reply.digest = writer.digest().to_string();
                    if action == WriteAction::Commit {
                        let labels = std::mem::take(&mut req.labels);
                        commit(writer, total, expected, labels).await?;
                        self.reply(reply).await;
                        return Ok(());
                    }
                }
            }
            self.reply(reply.clone()).await;
            req = match self.input.message().await? {
                Some(next) => next,
                None => return Ok(()),
            };
        }
    }

    /// Sends one reply; a client that went away ends the session at its
    /// next read.
    async fn reply(&self, reply: WriteContentResponse) {
        let _ = self.replies.send(Ok(reply)).await;
    }
}

async fn commit(
    writer: LocalWriter,
    total: i64,
    expected: Option<Digest>,
    labels: std::collections::HashMap<String, String>,
) -> Result<(), Status> {
    Box::new(writer)
        .commit(total, expected, labels)
        .await
        .map_err(to_status)
}

fn truncate_failed(err: &Error) -> Status {
    to_status(err.clone().context("truncate failed"))
}
