//! The Read stream: a blob from `offset` for `size` bytes, in chunks.
//!
//! containerd's rules: a negative offset reads from 0; an offset past the
//! end is `OutOfRange` ("read past object length N bytes"); a size of zero
//! or less, or one running past the end, reads to the end. Each message
//! carries its offset. Chunks are read with `pread` on the blocking pool
//! one at a time, as the transport asks for them, so a stream holds at most
//! one chunk (1 MiB) however large the blob.

use super::parse_digest;
use crate::services::grpc;
use berth_api::pb::services::v1::{ReadContentRequest, ReadContentResponse};
use berth_core::{Error, ErrorKind};
use berth_store::content::LocalContent;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use tonic::codegen::BoxStream;
use tonic::Status;

/// The largest chunk one message carries.
const CHUNK: u64 = 1 << 20;

/// Opens the blob and returns the stream of its chunks.
pub(super) async fn stream(
    store: LocalContent,
    req: ReadContentRequest,
) -> Result<BoxStream<ReadContentResponse>, Status> {
    let digest = parse_digest(&req.digest)?;
    let (file, size) =
        grpc(crate::local::blocking(move || store.open_blob_blocking(&digest)).await)?;
    let (start, end) = grpc(range(req.offset, req.size, size))?;
    let file = Arc::new(file);
    let chunks = futures::stream::unfold(start, move |at| {
        let file = file.clone();
        async move {
            if at >= end {
                return None;
            }
            let len = CHUNK.min(end - at);
            let read = crate::local::blocking(move || read_chunk(&file, at, len)).await;
            match read {
                Ok(data) => {
                    let next = at + data.len() as u64;
                    let offset = i64::try_from(at).unwrap_or(i64::MAX);
                    Some((Ok(ReadContentResponse { offset, data }), next))
                }
                // End the stream after the error.
                Err(err) => Some((Err(berth_api::status::to_status(err)), end)),
            }
        }
    });
    Ok(Box::pin(chunks))
}

/// The byte range to send: [start, end).
fn range(offset: i64, size: i64, actual: u64) -> berth_core::Result<(u64, u64)> {
    let start = u64::try_from(offset).unwrap_or(0);
    if start > actual {
        return Err(Error::new(
            ErrorKind::OutOfRange,
            format!("read past object length {actual} bytes"),
        ));
    }
    let end = match u64::try_from(size) {
        Ok(size) if size > 0 => start.saturating_add(size).min(actual),
        _ => actual,
    };
    Ok((start, end))
}

/// Reads `len` bytes at `at`; fewer only if the file ends first.
fn read_chunk(file: &File, at: u64, len: u64) -> berth_core::Result<Vec<u8>> {
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut filled = 0;
    while filled < buf.len() {
        let n = file
            .read_at(&mut buf[filled..], at + filled as u64)
            .map_err(|e| Error::internal(format!("reading blob: {e}")))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_containerds_rules() {
        assert_eq!(range(0, 0, 10).ok(), Some((0, 10)));
        assert_eq!(range(-5, 0, 10).ok(), Some((0, 10)));
        assert_eq!(range(3, 4, 10).ok(), Some((3, 7)));
        assert_eq!(range(3, 100, 10).ok(), Some((3, 10)));
        assert_eq!(range(10, 0, 10).ok(), Some((10, 10)));
        let err = range(11, 0, 10).expect_err("past the end");
        assert_eq!(err.kind(), ErrorKind::OutOfRange);
        assert_eq!(err.message(), "read past object length 10 bytes");
    }
}
