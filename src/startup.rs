//! Binding the listener, starting the node, and running the HTTP server until a shutdown
//! signal.

use std::net::SocketAddr;
use std::sync::Arc;

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

    /// Serve until `shutdown` resolves, let in-flight requests finish, then stop Raft.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let app = crate::api::router(self.node.clone());
        let served =
            axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await.map_err(StartupError::Serve);
        self.node.shutdown().await;
        served
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
