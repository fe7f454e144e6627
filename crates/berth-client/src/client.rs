//! The connection: a tonic channel over a unix socket, and the namespace and
//! timeout every request carries.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_core::{namespaces, Error, ErrorKind, Result};
use hyper_util::rt::TokioIo;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Request, Response, Status};

/// Where `berthd` listens unless told otherwise.
pub const DEFAULT_ADDRESS: &str = "/run/berth/berth.sock";

/// A connection to a containerd-compatible daemon.
///
/// Cloning is cheap: clones share one channel (one HTTP/2 connection).
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    namespace: String,
    timeout: Option<Duration>,
    /// The lease every call works under (`containerd-lease`), if any.
    lease: Option<String>,
}

/// Connection options for a [`Client`]; start with [`Client::builder`].
#[derive(Clone, Debug)]
pub struct Builder {
    address: String,
    namespace: String,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
}

impl Builder {
    /// The namespace sent with every call (default: `default`). An empty
    /// namespace sends no header, for services that need none.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The timeout of each call (default: none).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long to wait for the connection to be set up (default: no limit;
    /// a missing socket or a refused connection fails at once anyway).
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects to the daemon.
    ///
    /// Fails with `Unavailable` when nothing listens on the socket.
    pub async fn connect(self) -> Result<Client> {
        let (endpoint, connector, path) = self.endpoint()?;
        let channel = endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|err| connect_error(&path, &err))?;
        Ok(self.client(channel))
    }

    /// A client that dials the socket at its first call (and again after
    /// the connection drops), for a daemon that is not serving yet: the
    /// daemon's own plugins use this to call the daemon's services.
    pub fn connect_lazy(self) -> Result<Client> {
        let (endpoint, connector, _) = self.endpoint()?;
        let channel = endpoint.connect_with_connector_lazy(connector);
        Ok(self.client(channel))
    }

    fn client(self, channel: Channel) -> Client {
        Client {
            channel,
            namespace: self.namespace,
            timeout: self.timeout,
            lease: None,
        }
    }

    #[allow(clippy::type_complexity)]
    fn endpoint(
        &self,
    ) -> Result<(
        Endpoint,
        impl tower::Service<
                Uri,
                Response = TokioIo<tokio::net::UnixStream>,
                Error = std::io::Error,
                Future = impl Send + 'static,
            > + Send
            + Clone
            + 'static,
        PathBuf,
    )> {
        let path = socket_path(&self.address)?;
        // The URI is required by tonic but unused: the connector below
        // ignores it and dials the socket.
        let mut endpoint = Endpoint::from_static("http://[::]:0");
        if let Some(timeout) = self.connect_timeout {
            endpoint = endpoint.connect_timeout(timeout);
        }
        let dial_path = path.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let path = dial_path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        });
        Ok((endpoint, connector, path))
    }
}

impl Client {
    /// Connection options for the daemon at `address`: a socket path, with
    /// or without a `unix://` prefix.
    pub fn builder(address: impl Into<String>) -> Builder {
        Builder {
            address: address.into(),
            namespace: namespaces::DEFAULT.to_string(),
            timeout: None,
            connect_timeout: None,
        }
    }

    /// Connects to the daemon at `address` with the default namespace and no
    /// timeout.
    pub async fn connect(address: impl Into<String>) -> Result<Client> {
        Self::builder(address).connect().await
    }

    /// A client for the same daemon that works in `namespace`.
    pub fn with_namespace(&self, namespace: impl Into<String>) -> Client {
        Client {
            namespace: namespace.into(),
            ..self.clone()
        }
    }

    /// A client for the same daemon whose calls each time out after
    /// `timeout` (`None`: never).
    pub fn with_timeout(&self, timeout: Option<Duration>) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// A client for the same daemon whose calls work under lease `id`
    /// (sent as the `containerd-lease` header, as containerd's
    /// `leases.WithLease` context does): content written and images
    /// created through it are protected until the lease goes. `None`
    /// works outside any lease.
    pub fn with_lease(&self, id: Option<String>) -> Client {
        Client {
            lease: id,
            ..self.clone()
        }
    }

    /// The lease calls work under, if any.
    pub fn lease(&self) -> Option<&str> {
        self.lease.as_deref()
    }

    /// The namespace sent with every call.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The per-call timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The underlying channel, for services this crate does not wrap (use
    /// the generated clients in [`crate::pb`]; remember the namespace header).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A request carrying the namespace header and, if `deadline` is set, the
    /// client's timeout as `grpc-timeout`.
    pub(crate) fn request<T>(&self, message: T, deadline: bool) -> Result<Request<T>> {
        let mut request = Request::new(message);
        if !self.namespace.is_empty() {
            let value = MetadataValue::try_from(self.namespace.as_str()).map_err(|_| {
                Error::invalid_argument(format!(
                    "namespace {:?}: not a valid header value",
                    self.namespace
                ))
            })?;
            request
                .metadata_mut()
                .insert(namespaces::GRPC_HEADER, value);
        }
        if let Some(lease) = &self.lease {
            let value = MetadataValue::try_from(lease.as_str()).map_err(|_| {
                Error::invalid_argument(format!("lease {lease:?}: not a valid header value"))
            })?;
            request
                .metadata_mut()
                .insert(berth_api::metadata::LEASE_HEADER, value);
        }
        if let (true, Some(timeout)) = (deadline, self.timeout) {
            request.set_timeout(timeout);
        }
        Ok(request)
    }

    /// Awaits a call under the client's timeout and converts its status.
    pub(crate) async fn call<T>(
        &self,
        call: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Result<T> {
        let Some(timeout) = self.timeout else {
            return call.await.map(Response::into_inner).map_err(status_error);
        };
        let start = Instant::now();
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            // tonic reports its own expiry of `grpc-timeout` as Cancelled.
            Ok(Err(status)) if status.code() == Code::Cancelled && start.elapsed() >= timeout => {
                Err(deadline_exceeded())
            }
            Ok(Err(status)) => Err(status_error(status)),
            Err(_) => Err(deadline_exceeded()),
        }
    }
}

/// The berth error for a status the daemon (or the channel) returned.
pub(crate) fn status_error(status: Status) -> Error {
    berth_api::status::from_status(&status)
}

/// Go's `context.DeadlineExceeded`, which ctr prints the same way.
fn deadline_exceeded() -> Error {
    Error::new(ErrorKind::DeadlineExceeded, "context deadline exceeded")
}

/// The socket path of an address: containerd accepts `unix://PATH` too.
fn socket_path(address: &str) -> Result<PathBuf> {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    if path.is_empty() {
        return Err(Error::invalid_argument("address must not be empty"));
    }
    Ok(PathBuf::from(path))
}

/// A connection failure, naming the socket and its root cause (tonic wraps
/// the io error two or three levels deep).
fn connect_error(path: &Path, err: &(dyn std::error::Error + 'static)) -> Error {
    let mut cause: &(dyn std::error::Error + 'static) = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let kind = match cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) {
        Some(std::io::ErrorKind::PermissionDenied) => ErrorKind::PermissionDenied,
        _ => ErrorKind::Unavailable,
    };
    Error::new(kind, format!("connect {}: {cause}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_strips_unix_scheme() {
        assert_eq!(
            socket_path("unix:///run/x.sock").expect("path"),
            PathBuf::from("/run/x.sock")
        );
        assert_eq!(
            socket_path("/run/x.sock").expect("path"),
            PathBuf::from("/run/x.sock")
        );
        assert!(socket_path("").is_err());
    }

    #[tokio::test]
    async fn connecting_to_a_missing_socket_is_unavailable() {
        let dir = std::env::temp_dir().join(format!("berth-client-{}", std::process::id()));
        let err = Client::connect(dir.join("none.sock").display().to_string())
            .await
            .expect_err("no daemon");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("none.sock"), "{err}");
    }

    #[tokio::test]
    async fn requests_carry_the_namespace_and_timeout() {
        let channel = Endpoint::from_static("http://[::]:0").connect_lazy();
        let client = Client {
            channel,
            namespace: "web".into(),
            timeout: Some(Duration::from_secs(3)),
            lease: None,
        };
        let request = client.request((), true).expect("request");
        let md = request.metadata();
        assert_eq!(
            md.get(namespaces::GRPC_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("web")
        );
        assert!(md.get("grpc-timeout").is_some());
        let no_ns = client
            .with_namespace("")
            .request((), false)
            .expect("request");
        assert!(no_ns.metadata().get(namespaces::GRPC_HEADER).is_none());
        assert!(no_ns.metadata().get("grpc-timeout").is_none());
        assert!(client.with_namespace("a\nb").request((), false).is_err());
        assert!(md.get(berth_api::metadata::LEASE_HEADER).is_none());
        let leased = client
            .with_lease(Some("l1".into()))
            .request((), false)
            .expect("request");
        assert_eq!(
            leased
                .metadata()
                .get(berth_api::metadata::LEASE_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("l1")
        );
    }
}
