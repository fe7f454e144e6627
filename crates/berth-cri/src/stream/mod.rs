//! The streaming server behind Exec, Attach and PortForward: those calls
//! only hand out a URL with a one-time token; the client (the kubelet,
//! or anything speaking its protocols) then connects there over HTTP and
//! upgrades to SPDY/3.1 or WebSocket, as containerd's CRI server and the
//! kubelet's streaming package do.
//!
//! | module | owns |
//! |---|---|
//! | `tokens` | the one-time tokens and the requests they stand for |
//! | `conn` | what both transports share: outgoing messages, byte streams |
//! | `spdy` | SPDY/3.1 framing and a server connection |
//! | `websocket` | the `channel.k8s.io` framings over a WebSocket |
//! | `remotecommand` | exec and attach sessions: streams, resize, status |
//! | `portforward` | port forwarding sessions over either transport |
//! | `tls` | the optional TLS of the listener |

mod conn;
mod idle;
mod portforward;
mod remotecommand;
mod spdy;
mod tls;
mod tokens;
mod websocket;

pub(crate) use conn::{Inbound, Outbound};
pub(crate) use remotecommand::{Outcome, TerminalSize};
pub(crate) use tokens::Pending;

use crate::{Cri, CriConfig};
use berth_core::{Error, Result};
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use remotecommand::{Options, Session};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

/// The SPDY subprotocol of port forwarding.
const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";

/// The listening server and its tokens.
pub(crate) struct StreamServer {
    tokens: tokens::Tokens,
    /// `http://host:port` (or `https://`), with the port actually bound.
    base_url: String,
    /// Bound at plugin start-up, served from [`StreamServer::serve`] on.
    listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// `stream_idle_timeout`; `None` when 0.
    idle_timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl StreamServer {
    /// Binds `stream_server_address:stream_server_port` (an empty address:
    /// the default route's; port 0: any free port), with TLS as
    /// configured. A busy address or a bad TLS setting fails the plugin,
    /// as it fails containerd's.
    pub(crate) fn bind(config: &CriConfig) -> Result<StreamServer> {
        let tls = tls::acceptor(config)?;
        let idle_timeout =
            berth_core::goduration::parse(&config.stream_idle_timeout).map_err(|e| {
                Error::invalid_argument(format!(
                    "stream server: stream_idle_timeout {:?}: {e}",
                    config.stream_idle_timeout
                ))
            })?;
        let host = if config.stream_server_address.is_empty() {
            default_address()
        } else {
            config.stream_server_address.clone()
        };
        let bind = join_host_port(&host, &config.stream_server_port);
        let listener = std::net::TcpListener::bind(&bind).map_err(|e| {
            Error::internal(format!(
                "stream server: listen on {bind} (stream_server_address, stream_server_port): {e}"
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::internal(format!("stream server address: {e}")))?
            .port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(StreamServer {
            tokens: tokens::Tokens::default(),
            base_url: format!("{scheme}://{}", join_host_port(&host, &port.to_string())),
            listener: std::sync::Mutex::new(Some(listener)),
            tls,
            idle_timeout: Some(idle_timeout).filter(|t| !t.is_zero()),
        })
    }

    /// Starts serving streams for `cri` (once; later calls do nothing).
    pub(crate) fn serve(self: &Arc<Self>, cri: Weak<Cri>) -> Result<()> {
        let Some(listener) = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return Ok(());
        };
        let listener = listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener))
            .map_err(|e| Error::internal(format!("stream server: {e}")))?;
        tracing::info!(url = %self.base_url, "CRI stream server listening");
        tokio::spawn(serve(listener, self.tls.clone(), Arc::downgrade(self), cri));
        Ok(())
    }

    /// A URL the client connects to for `request`, valid once, for a
    /// minute.
    pub(crate) fn url(&self, request: Pending) -> Result<String> {
        let kind = request.kind();
        let token = self.tokens.insert(request)?;
        Ok(format!("{}/{kind}/{token}", self.base_url))
    }
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The address of the interface holding the default IPv4 route (what the
/// kubelet's `ResolveBindAddress` picks for an empty address), else
/// loopback.
fn default_address() -> String {
    let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let interface = route.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() > 2 && fields[1] == "00000000").then(|| fields[0].to_string())
    });
    let found = interface.and_then(|name| {
        nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
            let addr = ifa.address?;
            let ip = addr.as_sockaddr_in()?.ip();
            (ifa.interface_name == name).then(|| ip.to_string())
        })
    });
    found.unwrap_or_else(|| "127.0.0.1".to_string())
}

async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    server: Weak<StreamServer>,
    cri: Weak<Cri>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(%err, "stream server: accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(server) = server.upgrade() else {
            return;
        };
        let (tls, cri) = (tls.clone(), cri.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            match tls {
                Some(tls) => match tls.accept(tcp).await {
                    Ok(stream) => http(stream, peer, server, cri).await,
                    Err(err) => tracing::debug!(%peer, %err, "stream server: TLS handshake"),
                },
                None => http(tcp, peer, server, cri).await,
            }
        });
    }
}

async fn http<IO>(io: IO, peer: SocketAddr, server: Arc<StreamServer>, cri: Weak<Cri>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let (server, cri) = (server.clone(), cri.clone());
        async move { Ok::<_, Infallible>(route(&server, cri, request)) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(err) = connection.await {
        tracing::debug!(%peer, %err, "stream server: connection");
    }
}

type Answer = Response<Full<Bytes>>;

/// `GET` or `POST` `/{exec,attach,portforward}/<token>`; anything else,
/// and any unknown, used or expired token, is 404.
fn route(server: &StreamServer, cri: Weak<Cri>, request: Request<Incoming>) -> Answer {
    let path = request.uri().path().trim_start_matches('/');
    let pending = match (request.method(), path.split_once('/')) {
        (&Method::GET | &Method::POST, Some((kind, token))) => server
            .tokens
            .consume(token)
            .filter(|pending| pending.kind() == kind),
        _ => None,
    };
    let (Some(pending), Some(cri)) = (pending, cri.upgrade()) else {
        return text(StatusCode::NOT_FOUND, "404 page not found\n");
    };
    let idle = server.idle_timeout;
    if is_websocket(request.headers()) {
        upgrade_websocket(request, pending, cri, idle)
    } else {
        upgrade_spdy(request, pending, cri, idle)
    }
}

/// An upgraded connection, closed after `idle` without traffic (see
/// [`idle`]).
fn watched(
    io: hyper::upgrade::Upgraded,
    idle: Option<std::time::Duration>,
) -> idle::Idle<TokioIo<hyper::upgrade::Upgraded>> {
    idle::Idle::new(TokioIo::new(io), idle)
}

fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn connection_upgrades(headers: &HeaderMap) -> bool {
    header_values(headers, "connection").any(|v| v.eq_ignore_ascii_case("upgrade"))
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && connection_upgrades(headers)
}

fn switching(headers: &[(&str, String)]) -> Answer {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in headers {
        if let Ok(value) = header::HeaderValue::from_str(value) {
            if let Ok(name) = header::HeaderName::from_bytes(name.as_bytes()) {
                response.headers_mut().append(name, value);
            }
        }
    }
    response
}

/// The SPDY upgrade: the first protocol in the client's
/// `X-Stream-Protocol-Version` list the endpoint speaks, else 403 with
/// what it accepts.
fn upgrade_spdy(
    mut request: Request<Incoming>,
    pending: Pending,
    cri: Arc<Cri>,
    idle: Option<std::time::Duration>,
) -> Answer {
    let headers = request.headers();
    let spdy = header_values(headers, "upgrade").any(|v| v.eq_ignore_ascii_case("SPDY/3.1"));
    if !spdy || !connection_upgrades(headers) {
        return text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request\n",
        );
    }
    let supported: &[&str] = match pending {
        Pending::PortForward(_) => &[PORT_FORWARD_PROTOCOL],
        _ => &remotecommand::SPDY_PROTOCOLS,
    };
    let offered: Vec<String> = header_values(headers, "x-stream-protocol-version")
        .map(str::to_string)
        .collect();
    if offered.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required\n",
        );
    }
    let Some(protocol) = offered
        .iter()
        .find(|p| supported.contains(&p.as_str()))
        .cloned()
    else {
        let mut answer = text(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}\n"
            ),
        );
        for p in supported {
            answer.headers_mut().append(
                "x-accepted-stream-protocol-versions",
                header::HeaderValue::from_static(p),
            );
        }
        return answer;
    };
    let upgraded = hyper::upgrade::on(&mut request);
    let chosen = protocol.clone();
    tokio::spawn(async move {
        let io = match upgraded.await {
            Ok(io) => watched(io, idle),
            Err(err) => return tracing::debug!(%err, "stream server: SPDY upgrade"),
        };
        let conn = spdy::serve(io);
        match pending {
            Pending::PortForward(_) => portforward::over_spdy(conn, &cri, pending).await,
            pending => {
                let options = options(&pending);
                if let Some(session) = Session::over_spdy(conn, options, &chosen).await {
                    run(&cri, pending, session).await;
                }
            }
        }
    });
    switching(&[
        ("connection", "Upgrade".into()),
        ("upgrade", "SPDY/3.1".into()),
        ("x-stream-protocol-version", protocol),
    ])
}

/// The WebSocket upgrade: the first subprotocol the client offers that
/// the endpoint speaks (none offered: plain binary channels).
fn upgrade_websocket(
    mut request: Request<Incoming>,
    pending: Pending,
    cri: Arc<Cri>,
    idle: Option<std::time::Duration>,
) -> Answer {
    let headers = request.headers();
    let Some(key) = headers
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec())
    else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    let offered: Vec<String> = header_values(headers, "sec-websocket-protocol")
        .map(str::to_string)
        .collect();
    let port_forward = matches!(pending, Pending::PortForward(_));
    let accepts = |p: &str| {
        if port_forward {
            matches!(p, "" | "v4.channel.k8s.io" | "v4.base64.channel.k8s.io")
        } else {
            websocket::framing(p).is_some()
        }
    };
    let chosen = if offered.is_empty() {
        Some(String::new())
    } else {
        offered.iter().find(|p| accepts(p)).cloned()
    };
    let Some(protocol) = chosen else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("requested protocol(s) are not supported: {offered:?}\n"),
        );
    };
    let (framing, json_status) = websocket::framing(&protocol).expect("accepted above");
    let upgraded = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let io = match upgraded.await {
            Ok(io) => watched(io, idle),
            Err(err) => return tracing::debug!(%err, "stream server: WebSocket upgrade"),
        };
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        match pending {
            Pending::PortForward(r) => portforward::over_websocket(ws, framing, &cri, r).await,
            pending => {
                let (inbound, writer) =
                    websocket::serve(ws, framing, &remotecommand::websocket_channels());
                let options = options(&pending);
                let session = Session::over_websocket(inbound, writer, options, json_status).await;
                run(&cri, pending, session).await;
            }
        }
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let mut headers = vec![
        ("connection", "Upgrade".to_string()),
        ("upgrade", "websocket".to_string()),
        ("sec-websocket-accept", accept),
    ];
    if !protocol.is_empty() {
        headers.push(("sec-websocket-protocol", protocol));
    }
    switching(&headers)
}

fn options(pending: &Pending) -> Options {
    let (stdin, stdout, stderr, tty) = match pending {
        Pending::Exec(r) => (r.stdin, r.stdout, r.stderr, r.tty),
        Pending::Attach(r) => (r.stdin, r.stdout, r.stderr, r.tty),
        Pending::PortForward(_) => (false, false, false, false),
    };
    Options {
        stdin,
        stdout,
        stderr: stderr && !tty,
        tty,
    }
}

/// Runs an exec or attach session to its end.
async fn run(cri: &Arc<Cri>, pending: Pending, mut session: Session) {
    let io = crate::container::StreamIo {
        stdin: session.stdin.take(),
        stdout: session.stdout.clone(),
        stderr: session.stderr.clone(),
        resize: session.resize.take(),
    };
    let outcome = match pending {
        Pending::Exec(r) => match cri.exec_streaming(&r, io).await {
            Ok(0) => Outcome::Success,
            Ok(code) => Outcome::ExitCode {
                code,
                message: format!(
                    "command terminated with non-zero exit code: error executing command {}, exit code {code}",
                    go_list(&r.cmd)
                ),
            },
            Err(err) => Outcome::Failed(format!("error executing command in container: {err}")),
        },
        Pending::Attach(r) => match cri.attach(&r, io).await {
            Ok(()) => Outcome::Success,
            Err(err) => Outcome::Failed(format!("error attaching to container: {err}")),
        },
        Pending::PortForward(_) => unreachable!("port forwarding has its own sessions"),
    };
    session.finish(outcome).await;
}

/// A string list as Go's `%v` prints it: `[sh -c exit 3]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}
