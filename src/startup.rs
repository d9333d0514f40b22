//! Binding the listener, starting the node, and running the HTTP server until a shutdown
//! signal.

mod header_timer;

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::either::Either;

use crate::api::Connection;
use crate::config::Config;
use crate::node::{Node, NodeError};
use crate::tls::{ServerTls, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("cannot listen on {addr}: {source} (is another process using the port? choose one with --listen)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
}

/// Request line and headers may take at most this much buffer; larger gets 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The address a browser on this host can open for `addr`: an unspecified address (0.0.0.0,
/// ::) is reached on loopback.
pub fn browsable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], addr.port())),
        _ => addr,
    }
}

/// A node whose listener is bound and whose Raft is running.
pub struct Server {
    node: Arc<Node>,
    listener: TcpListener,
    /// HTTPS: the certificates in force; `None`: plain HTTP.
    tls: Option<Arc<ServerTls>>,
}

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE: u8 = 0x16;

impl Server {
    /// Bind first, so a node listening on port 0 can advertise the port it got.
    pub async fn bind(config: Config) -> Result<Self, StartupError> {
        let addr = config.listen;
        // Certificates first: a bad one stops the node before it takes the port.
        let tls = match &config.tls {
            Some(api) => Some(Arc::new(ServerTls::load(api.clone(), config.cluster.tls.clone())?)),
            None => None,
        };
        if tls.is_some() && config.cluster.tls.is_none() {
            tracing::info!("HTTPS without mutual TLS (cluster.ca_file unset): fine for one node; a cluster needs cluster.ca_file, cert_file and key_file, as a TLS listener refuses the plain HTTP peers would use");
        }
        let listener = TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(StartupError::Serve)?;
        let advertise = config.cluster.advertise.clone().unwrap_or_else(|| bound.to_string());
        let node = Node::start(config, advertise).await?;
        Ok(Self { node, listener, tls })
    }

    /// `https` when TLS is on, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn local_addr(&self) -> Result<SocketAddr, StartupError> {
        self.listener.local_addr().map_err(StartupError::Serve)
    }

    pub fn node(&self) -> Arc<Node> {
        self.node.clone()
    }

    /// Serve until `shutdown` resolves, let in-flight requests finish (at most
    /// `http.drain_timeout_ms`), then stop Raft.
    ///
    /// hyper directly rather than `axum::serve`, for the header-read timeout: a client that
    /// trickles its headers (slow loris) is disconnected instead of holding a connection.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let hsts = self
            .node
            .config
            .tls
            .as_ref()
            .filter(|t| t.hsts_max_age_s > 0)
            .and_then(|t| axum::http::HeaderValue::from_str(&format!("max-age={}", t.hsts_max_age_s)).ok());
        let hsts = hsts.map(|value| {
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::header::STRICT_TRANSPORT_SECURITY,
                value,
            )
        });
        // The gate is given each connection (`serve`), so a request carries nothing it needs.
        let gate = crate::api::GateLayer::new(self.node.limits.clone(), self.node.draining_flag());
        let app = crate::api::app(self.node.clone());
        crate::telemetry::spawn_metrics_upkeep();
        if let Some(tls) = &self.tls {
            let (tls, peers) = (tls.clone(), self.node.peers.clone());
            crate::tls::spawn_reloader(move |force| {
                if tls.reload(force) {
                    if let Err(e) = peers.reload_tls() {
                        tracing::error!(error = %e, "cannot read the cluster certificates again; peers keep the previous ones");
                    }
                }
            });
        }
        let http = &self.node.config.http;
        let handshake_timeout = Duration::from_millis(http.header_read_timeout_ms);
        let mut builder = Builder::new(TokioExecutor::new());
        // The header-read timer is given per connection (`serve`): `header_timer.rs` says why.
        builder
            .http1()
            .header_read_timeout(Duration::from_millis(http.header_read_timeout_ms))
            .max_buf_size(MAX_HEADER_BYTES)
            // One `write` of head and body copied together, not a `writev` of the two: the
            // answers are small (an order is under 1 KiB), and a follower's reads took ~1 µs
            // less CPU each this way, 1.10x the rate stale and linearizable
            // (`benches/peers/follower-reads-ab.sh`, 2026-12-07).
            .writev(false);
        // One connection: its TLS handshake (if any) and its requests run in a task of its own,
        // bounded like a request's headers, so a slow or silent client holds up nobody else.
        let serve = |stream: TcpStream, remote: SocketAddr, watcher: Watcher| {
            // No Nagle, and keepalive: any connection may become a peer's append stream.
            if let Err(e) = crate::raft::stream::tune(&stream) {
                tracing::debug!(error = %e, "cannot set a connection's TCP options");
            }
            let (app, gate, hsts, mut builder) = (app.clone(), gate.clone(), hsts.clone(), builder.clone());
            builder.http1().timer(header_timer::HeaderTimer::default());
            let tls = self.tls.as_ref().map(|tls| tls.current());
            tokio::spawn(async move {
                let (io, on) = match tls {
                    None => (Either::Left(stream), Connection { remote, peer_certificate: false }),
                    Some(config) => {
                        let Some(stream) = handshake(stream, remote, config, handshake_timeout).await else { return };
                        let peer_certificate = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                        (Either::Right(stream), Connection { remote, peer_certificate })
                    }
                };
                let service = TowerToHyperService::new(
                    tower::ServiceBuilder::new()
                        .layer(tower::util::option_layer(hsts))
                        .layer(gate.for_connection(on))
                        .service(app),
                );
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                if let Err(e) = watcher.watch(connection.into_owned()).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        };
        let accept = |accepted: std::io::Result<(TcpStream, SocketAddr)>| async move {
            match accepted {
                Ok(accepted) => Some(accepted),
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    None
                }
            }
        };
        let graceful = GracefulShutdown::new();
        // Tell systemd (Type=notify) we are serving; a no-op when not run by systemd.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    if let Some((stream, remote)) = accept(accepted).await {
                        serve(stream, remote, graceful.watcher());
                    }
                }
                () = &mut shutdown => break,
            }
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        // The drain: the connections open now finish their requests (each closes after its
        // current one). Meanwhile the listener stays open, because the peers' Raft calls must
        // still reach this node; new client requests are answered 503 (`api::GateLayer`).
        self.node.begin_drain();
        let late = GracefulShutdown::new();
        let drain = Duration::from_millis(http.drain_timeout_ms);
        let mut drained = std::pin::pin!(tokio::time::timeout(drain, graceful.shutdown()));
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    if let Some((stream, remote)) = accept(accepted).await {
                        serve(stream, remote, late.watcher());
                    }
                }
                finished = &mut drained => {
                    if finished.is_err() {
                        tracing::warn!(?drain, "connections still busy after the drain timeout were closed");
                    }
                    break;
                }
            }
        }
        drop(self.listener);
        self.node.shutdown().await;
        // Connections opened during the drain carried peers' calls and refusals only.
        let _ = tokio::time::timeout(Duration::from_secs(1), late.shutdown()).await;
        Ok(())
    }
}

/// The TLS handshake of a new connection, or `None` (logged) when it fails. A client speaking
/// plain HTTP to the TLS port is told so in plain HTTP rather than left with a broken stream.
async fn handshake(
    stream: TcpStream,
    remote: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let work = async {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await? == 1 && first[0] != TLS_HANDSHAKE {
            let mut stream = stream;
            stream.write_all(PLAIN_HTTP_ANSWER).await?;
            stream.shutdown().await?;
            return Err(std::io::Error::other(PlainHttp));
        }
        tokio_rustls::TlsAcceptor::from(config).accept(stream).await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) if e.get_ref().is_some_and(|inner| inner.is::<PlainHttp>()) => {
            tracing::debug!(%remote, "plain HTTP on the HTTPS port; answered 400");
            None
        }
        Ok(Err(e)) => {
            let text = e.to_string();
            if text.to_ascii_lowercase().contains("certificate") {
                tracing::warn!(%remote, error = %text, "TLS handshake refused (certificate)");
            } else {
                tracing::debug!(%remote, error = %text, "TLS handshake failed");
            }
            None
        }
        Err(_) => {
            tracing::debug!(%remote, ?timeout, "TLS handshake timed out");
            None
        }
    }
}

const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 49\r\n\r\nThis port speaks HTTPS: use https:// to reach it\n";

/// Marks a connection that began with something other than a TLS handshake.
#[derive(Debug)]
struct PlainHttp;

impl std::fmt::Display for PlainHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("plain HTTP on the HTTPS port")
    }
}

impl std::error::Error for PlainHttp {}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: call it before announcing that the node listens, so a
/// SIGTERM sent right after the announcement drains the node instead of killing it (the
/// default action). Seen in CI: a test's SIGTERM came before the serve loop's first poll.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::interrupt()).ok(), signal(SignalKind::terminate()).ok())
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown requested; finishing requests in flight");
    }
}
