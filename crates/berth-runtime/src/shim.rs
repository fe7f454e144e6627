//! A ttrpc connection to one shim, under the task API version it speaks.
//!
//! `containerd-shim-protos` 0.12 generates only `containerd.task.v3.Task`
//! clients, while containerd 1.6's shims (Debian's `containerd-shim-runc-v2`)
//! answer only `containerd.task.v2.Task`. The messages are the same, so calls
//! are made here with the service name chosen per shim: v2 first (or what the
//! shim announced at start), v3 when the shim does not know v2.

use crate::error::{from_ttrpc, is_unknown_service};
use crate::TTRPC_NAMESPACE_HEADER;
use berth_core::{Error, Result};
use containerd_shim_protos::api;
use std::collections::HashMap;
use std::time::Duration;
use ttrpc::r#async::Client;

/// The task API of containerd 1.x shims.
pub const TASK_V2: &str = "containerd.task.v2.Task";
/// The task API of containerd 2.x shims.
pub const TASK_V3: &str = "containerd.task.v3.Task";
/// How long connecting to a shim may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected shim.
#[derive(Clone)]
pub struct ShimClient {
    client: Client,
    service: &'static str,
    namespace: String,
}

impl std::fmt::Debug for ShimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShimClient")
            .field("service", &self.service)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl ShimClient {
    /// Connects to `address` and settles the task API version with a
    /// `Connect` call, which also proves the shim is alive.
    pub async fn connect(
        address: &str,
        namespace: &str,
        id: &str,
        version: Option<u32>,
    ) -> Result<(ShimClient, api::ConnectResponse)> {
        let address = if address.contains("://") {
            address.to_string()
        } else {
            format!("unix://{address}")
        };
        let client = tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(&address))
            .await
            .map_err(|_| Error::unavailable(format!("connect shim {address}: timed out")))?
            .map_err(|e| Error::unavailable(format!("connect shim {address}: {e}")))?;
        let order = match version {
            Some(3) => [TASK_V3, TASK_V2],
            _ => [TASK_V2, TASK_V3],
        };
        let request = api::ConnectRequest {
            id: id.to_string(),
            ..Default::default()
        };
        let mut last = None;
        for service in order {
            let shim = ShimClient {
                client: client.clone(),
                service,
                namespace: namespace.to_string(),
            };
            match shim
                .raw_call::<_, api::ConnectResponse>("Connect", &request, Some(CONNECT_TIMEOUT))
                .await
            {
                Ok(reply) => return Ok((shim, reply)),
                Err(err) if is_unknown_service(&err) => last = Some(err),
                Err(err) => return Err(from_ttrpc(err)),
            }
        }
        Err(last.map(from_ttrpc).unwrap_or_else(|| {
            Error::unavailable(format!("shim {address} speaks no known task API"))
        }))
    }

    /// The task service name this shim answers.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Calls `method` with no deadline.
    pub async fn call<Req, Resp>(&self, method: &str, request: &Req) -> Result<Resp>
    where
        Req: protobuf::Message,
        Resp: protobuf::Message,
    {
        self.raw_call(method, request, None)
            .await
            .map_err(from_ttrpc)
    }

    /// Calls `method` with no deadline, keeping the ttrpc error (to tell a
    /// lost connection from the shim's answer).
    pub(crate) async fn call_ttrpc<Req, Resp>(
        &self,
        method: &str,
        request: &Req,
    ) -> ttrpc::Result<Resp>
    where
        Req: protobuf::Message,
        Resp: protobuf::Message,
    {
        self.raw_call(method, request, None).await
    }

    /// Calls `method` with a deadline.
    pub async fn call_timeout<Req, Resp>(
        &self,
        method: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp>
    where
        Req: protobuf::Message,
        Resp: protobuf::Message,
    {
        self.raw_call(method, request, Some(timeout))
            .await
            .map_err(from_ttrpc)
    }

    async fn raw_call<Req, Resp>(
        &self,
        method: &str,
        req: &Req,
        timeout: Option<Duration>,
    ) -> ttrpc::Result<Resp>
    where
        Req: protobuf::Message,
        Resp: protobuf::Message,
    {
        let mut metadata = HashMap::new();
        metadata.insert(
            TTRPC_NAMESPACE_HEADER.to_string(),
            vec![self.namespace.clone()],
        );
        let ctx = ttrpc::context::Context {
            metadata,
            timeout_nano: timeout
                .map(|t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        };
        let mut cres = Resp::new();
        ttrpc::async_client_request!(self, ctx, req, self.service, method, cres);
    }
}
