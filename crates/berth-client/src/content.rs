//! `containerd.services.content.v1.Content`: the daemon's content store,
//! as a [`ContentStore`].
//!
//! [`Content`] implements berth-core's `ContentStore` over gRPC, so code
//! written against the trait — image import and export in `berth-image` —
//! runs unchanged in a client. Reads stream (`Read` is server-streaming and
//! arrives as an `AsyncRead`); writes go over the bidirectional `Write`
//! stream: `STAT` opens (or resumes) the ingest, a large write is cut into
//! `WRITE`s of at most 1 MiB that are pipelined a few chunks ahead of their
//! acknowledgements (the call returns once all are acknowledged), `COMMIT`
//! verifies size and digest on the daemon.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use berth_core::content::{
    ContentReader, ContentStore, ContentWriter, Info, Status, WriterOptions,
};
use berth_core::{Digest, Error, ErrorKind, Result};
use futures::Stream;
use prost_types::FieldMask;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::status_error;
use crate::namespaces::expect;
use crate::pb::services::v1::content_client::ContentClient;
use crate::pb::services::v1::{
    self as api, AbortRequest, DeleteContentRequest, InfoRequest, ListContentRequest,
    ListStatusesRequest, ReadContentRequest, ReadContentResponse, StatusRequest, UpdateRequest,
    WriteAction, WriteContentRequest, WriteContentResponse,
};
use crate::time::{from_timestamp, to_timestamp};
use crate::Client;

/// The largest `WRITE` message: well under gRPC's 4 MiB default limit.
const MAX_CHUNK: usize = 1 << 20;
/// How many `WRITE`s may wait for their acknowledgement.
const WINDOW: usize = 8;

/// The content store, in the client's namespace (and lease); see
/// [`Client::content`].
#[derive(Clone, Debug)]
pub struct Content {
    client: Client,
}

impl Client {
    /// The content store, in the client's namespace and lease.
    pub fn content(&self) -> Content {
        Content {
            client: self.clone(),
        }
    }
}

impl Content {
    fn service(&self) -> ContentClient<tonic::transport::Channel> {
        // Blobs may be large: accept messages as big as the daemon sends.
        ContentClient::new(self.client.channel()).max_decoding_message_size(usize::MAX)
    }

    /// Reads `size` bytes of a blob from `offset` (`size` 0: to the end).
    pub async fn read_range(
        &self,
        digest: &Digest,
        offset: i64,
        size: i64,
    ) -> Result<ContentReader> {
        let request = self.client.request(
            ReadContentRequest {
                digest: digest.to_string(),
                offset,
                size,
            },
            false,
        )?;
        let stream = self
            .service()
            .read(request)
            .await
            .map_err(status_error)?
            .into_inner();
        Ok(Box::pin(ReadStream {
            stream: Box::pin(stream),
            chunk: Vec::new(),
            pos: 0,
        }))
    }
}

fn info_from(info: api::Info) -> Result<Info> {
    Ok(Info {
        digest: Digest::parse(&info.digest)?,
        size: info.size,
        created_at: from_timestamp(info.created_at.as_ref()),
        updated_at: from_timestamp(info.updated_at.as_ref()),
        labels: info.labels,
    })
}

fn status_from(status: api::Status) -> Status {
    Status {
        reference: status.r#ref,
        offset: status.offset,
        total: status.total,
        expected: Digest::parse(&status.expected).ok(),
        started_at: from_timestamp(status.started_at.as_ref()),
        updated_at: from_timestamp(status.updated_at.as_ref()),
    }
}

#[async_trait::async_trait]
impl ContentStore for Content {
    async fn info(&self, digest: &Digest) -> Result<Info> {
        let request = self.client.request(
            InfoRequest {
                digest: digest.to_string(),
            },
            true,
        )?;
        let response = self.client.call(self.service().info(request)).await?;
        info_from(expect(response.info, "info")?)
    }

    async fn update(&self, info: Info, paths: &[String]) -> Result<Info> {
        let update_mask = (!paths.is_empty()).then(|| FieldMask {
            paths: paths.to_vec(),
        });
        let request = self.client.request(
            UpdateRequest {
                info: Some(api::Info {
                    digest: info.digest.to_string(),
                    size: info.size,
                    created_at: Some(to_timestamp(info.created_at)),
                    updated_at: Some(to_timestamp(info.updated_at)),
                    labels: info.labels,
                }),
                update_mask,
            },
            true,
        )?;
        let response = self.client.call(self.service().update(request)).await?;
        info_from(expect(response.info, "update")?)
    }

    async fn list(&self, filters: &[String]) -> Result<Vec<Info>> {
        let request = self.client.request(
            ListContentRequest {
                filters: filters.to_vec(),
            },
            false,
        )?;
        let mut stream = self.client.call(self.service().list(request)).await?;
        let mut out = Vec::new();
        while let Some(response) = stream.message().await.map_err(status_error)? {
            for info in response.info {
                out.push(info_from(info)?);
            }
        }
        Ok(out)
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let request = self.client.request(
            DeleteContentRequest {
                digest: digest.to_string(),
            },
            true,
        )?;
        self.client.call(self.service().delete(request)).await
    }

    async fn reader(&self, digest: &Digest, offset: u64) -> Result<ContentReader> {
        let offset =
            i64::try_from(offset).map_err(|_| Error::invalid_argument("offset too large"))?;
        // containerd answers a missing blob only once the stream is read;
        // ask first so `NotFound` comes from here.
        self.info(digest).await?;
        self.read_range(digest, offset, 0).await
    }

    async fn status(&self, reference: &str) -> Result<Status> {
        let request = self.client.request(
            StatusRequest {
                r#ref: reference.to_string(),
            },
            true,
        )?;
        let response = self.client.call(self.service().status(request)).await?;
        Ok(status_from(expect(response.status, "status")?))
    }

    async fn list_statuses(&self, filters: &[String]) -> Result<Vec<Status>> {
        let request = self.client.request(
            ListStatusesRequest {
                filters: filters.to_vec(),
            },
            true,
        )?;
        let response = self
            .client
            .call(self.service().list_statuses(request))
            .await?;
        Ok(response.statuses.into_iter().map(status_from).collect())
    }

    async fn abort(&self, reference: &str) -> Result<()> {
        let request = self.client.request(
            AbortRequest {
                r#ref: reference.to_string(),
            },
            true,
        )?;
        self.client.call(self.service().abort(request)).await
    }

    async fn writer(&self, options: WriterOptions) -> Result<Box<dyn ContentWriter>> {
        if options.reference.is_empty() {
            return Err(Error::invalid_argument(
                "ref must not be empty: invalid argument",
            ));
        }
        // A writer dropped just before holds its ref until the daemon sees
        // its stream end; retry a "locked" ref briefly, as containerd's
        // `content.OpenWriter` does (it retries until its context ends).
        let mut delay = std::time::Duration::from_millis(2);
        loop {
            match self.open_writer(options.clone()).await {
                Err(err) if err.kind() == ErrorKind::Unavailable && delay.as_millis() <= 64 => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
    }
}

impl Content {
    /// Opens the `Write` stream for an ingest and reads its status.
    async fn open_writer(&self, options: WriterOptions) -> Result<Box<dyn ContentWriter>> {
        let (tx, rx) = mpsc::channel(WINDOW + 2);
        let stat = WriteContentRequest {
            action: WriteAction::Stat as i32,
            r#ref: options.reference.clone(),
            total: options.total,
            expected: options
                .expected
                .as_ref()
                .map(Digest::to_string)
                .unwrap_or_default(),
            ..WriteContentRequest::default()
        };
        tx.send(stat)
            .await
            .map_err(|_| Error::internal("write stream closed before it opened"))?;
        let request = self.client.request(ReceiverStream::new(rx), false)?;
        let responses = self
            .service()
            .write(request)
            .await
            .map_err(status_error)?
            .into_inner();
        let mut writer = RemoteWriter {
            tx: Some(tx),
            responses,
            status: Status {
                reference: options.reference,
                offset: 0,
                total: options.total,
                expected: options.expected,
                started_at: std::time::SystemTime::now(),
                updated_at: std::time::SystemTime::now(),
            },
            pending: 0,
        };
        let first = writer.receive().await?;
        writer.absorb(&first);
        Ok(Box::new(writer))
    }
}

/// An ingest over the `Write` stream.
struct RemoteWriter {
    /// Requests to the daemon; dropped to close the stream.
    tx: Option<mpsc::Sender<WriteContentRequest>>,
    responses: tonic::Streaming<WriteContentResponse>,
    status: Status,
    /// `WRITE`s sent whose responses have not been read.
    pending: usize,
}

impl RemoteWriter {
    /// The next response, or the stream's error status.
    async fn receive(&mut self) -> Result<WriteContentResponse> {
        match self.responses.message().await {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(Error::new(
                ErrorKind::Unavailable,
                "the daemon closed the write stream",
            )),
            Err(status) => Err(status_error(status)),
        }
    }

    /// Takes the ingest's state from a `STAT` answer (the answers to
    /// `WRITE`s carry the state from before the write, so the writer keeps
    /// its own offset and time).
    fn absorb(&mut self, response: &WriteContentResponse) {
        if response.action != WriteAction::Stat as i32 {
            return;
        }
        if let Some(ts) = &response.started_at {
            self.status.started_at = from_timestamp(Some(ts));
        }
        if let Some(ts) = &response.updated_at {
            self.status.updated_at = from_timestamp(Some(ts));
        }
        if response.total != 0 {
            self.status.total = response.total;
        }
        self.status.offset = response.offset;
    }

    /// Sends a request; if the daemon already hung up, its error.
    async fn send(&mut self, request: WriteContentRequest) -> Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(request).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        self.tx = None;
        Err(self.receive().await.err().unwrap_or_else(|| {
            Error::new(ErrorKind::Unavailable, "the daemon closed the write stream")
        }))
    }

    /// Reads acknowledgements until at most `keep` are outstanding.
    async fn drain(&mut self, keep: usize) -> Result<()> {
        while self.pending > keep {
            let response = self.receive().await?;
            self.pending -= 1;
            self.absorb(&response);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ContentWriter for RemoteWriter {
    fn status(&self) -> Status {
        self.status.clone()
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        for chunk in data.chunks(MAX_CHUNK) {
            let request = WriteContentRequest {
                action: WriteAction::Write as i32,
                offset: self.status.offset,
                data: chunk.to_vec(),
                ..WriteContentRequest::default()
            };
            self.send(request).await?;
            self.pending += 1;
            self.status.offset += chunk.len() as i64;
            self.drain(WINDOW).await?;
        }
        // A write is done when the daemon has it: a status call or a
        // second writer must see it (the store contract).
        self.drain(0).await?;
        // containerd acknowledges with the status from before the write.
        self.status.updated_at = std::time::SystemTime::now();
        Ok(())
    }

    async fn truncate(&mut self, size: i64) -> Result<()> {
        if size == self.status.offset {
            return Ok(());
        }
        if size != 0 {
            return Err(Error::not_implemented(
                "a remote ingest can only be truncated to 0: not implemented",
            ));
        }
        self.drain(0).await?;
        let request = WriteContentRequest {
            action: WriteAction::Write as i32,
            offset: 0,
            ..WriteContentRequest::default()
        };
        self.send(request).await?;
        let response = self.receive().await?;
        self.absorb(&response);
        self.status.offset = 0;
        Ok(())
    }

    async fn commit(
        mut self: Box<Self>,
        size: i64,
        expected: Option<Digest>,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        self.drain(0).await?;
        let request = WriteContentRequest {
            action: WriteAction::Commit as i32,
            offset: self.status.offset,
            total: size,
            expected: expected.as_ref().map(Digest::to_string).unwrap_or_default(),
            labels,
            ..WriteContentRequest::default()
        };
        self.send(request).await?;
        let response = self.receive().await?;
        self.tx = None;
        if size != 0 && response.offset != size {
            return Err(Error::failed_precondition(format!(
                "unexpected size: {} != {size}: failed precondition",
                response.offset
            )));
        }
        if let Some(expected) = expected {
            if response.digest != expected.as_str() {
                return Err(Error::failed_precondition(format!(
                    "unexpected digest: {} != {expected}: failed precondition",
                    response.digest
                )));
            }
        }
        Ok(())
    }
}

/// A `Read` stream as an `AsyncRead`.
struct ReadStream {
    stream: Pin<Box<tonic::Streaming<ReadContentResponse>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl AsyncRead for ReadStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.pos < self.chunk.len() {
                let n = buf.remaining().min(self.chunk.len() - self.pos);
                let start = self.pos;
                buf.put_slice(&self.chunk[start..start + n]);
                self.pos += n;
                return Poll::Ready(Ok(()));
            }
            match self.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(response))) => {
                    self.chunk = response.data;
                    self.pos = 0;
                }
                Poll::Ready(Some(Err(status))) => {
                    let err = status_error(status);
                    return Poll::Ready(Err(io::Error::other(err.to_string())));
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
