//! Binding the listener, starting the node, and running the HTTP server until a shutdown
//! signal.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::node::{Node, NodeError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("cannot listen on {addr}: {source} (is another process using the port? choose one with --listen)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
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
}

impl Server {
    /// Bind first, so a node listening on port 0 can advertise the port it got.
    pub async fn bind(config: Config) -> Result<Self, StartupError> {
        let addr = config.listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(StartupError::Serve)?;
        let advertise = config.cluster.advertise.clone().unwrap_or_else(|| bound.to_string());
        let node = Node::start(config, advertise).await?;
        Ok(Self { node, listener })
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
        let app = crate::api::around(crate::api::router(self.node.clone()));
        crate::telemetry::spawn_metrics_upkeep();
        let http = &self.node.config.http;
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(http.header_read_timeout_ms))
            .max_buf_size(MAX_HEADER_BYTES);
        let graceful = GracefulShutdown::new();
        // Tell systemd (Type=notify) we are serving; a no-op when not run by systemd.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let service = TowerToHyperService::new(app.clone());
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let connection = graceful.watch(connection.into_owned());
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        drop(self.listener);
        let drain = Duration::from_millis(http.drain_timeout_ms);
        if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
            tracing::warn!(?drain, "connections still busy after the drain timeout were closed");
        }
        self.node.shutdown().await;
        Ok(())
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}
