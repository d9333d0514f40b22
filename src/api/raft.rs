//! `/raft/*`: node-to-node endpoints. Bodies are codec bytes; every request must carry the
//! cluster secret and, with mutual TLS on, come on a connection that showed a certificate of
//! the cluster CA; one without gets 401 and changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest};
use openraft_legacy::network_v1::{ChunkedSnapshotReceiver, InstallSnapshotRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::codec;
use crate::node::{Node, NodeError};
use crate::raft::network::{decode_vote_request, SECRET_HEADER};
use crate::raft::TypeConfig;
use crate::raft::{read_stream, stream};
use crate::state::{Applied, Command};

/// Snapshot chunks are 1 MiB; append batches stay far below this.
const MAX_PEER_BODY: usize = 16 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/raft/append", post(append))
        .route(stream::PATH, post(open_stream))
        .route("/raft/vote", post(vote))
        .route("/raft/pre-vote", post(pre_vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/propose", post(propose))
        .route(read_stream::CALL_PATH, post(read_index))
        .route(read_stream::PATH, post(open_read_stream))
        .layer(DefaultBodyLimit::max(MAX_PEER_BODY))
}

/// A request body from a peer that proved it knows the cluster secret.
struct PeerBody<T>(T);

/// The raw body of such a request, for messages with more than one shape on the wire.
struct PeerBytes(Bytes);

impl FromRequest<AppState> for PeerBytes {
    type Rejection = Response;

    async fn from_request(req: Request, node: &AppState) -> Result<Self, Self::Rejection> {
        authorize(&req, node).map_err(|refused| (StatusCode::UNAUTHORIZED, refused).into_response())?;
        Bytes::from_request(req, node).await.map(PeerBytes).map_err(IntoResponse::into_response)
    }
}

/// A peer call must show a cluster certificate (with mutual TLS on) and the cluster secret;
/// `Err` is why not (answered 401).
fn authorize(req: &Request, node: &AppState) -> Result<(), &'static str> {
    if node.config.cluster.tls.is_some() {
        let connection = req.extensions().get::<super::Connection>().copied();
        if !connection.is_some_and(|c| c.peer_certificate) {
            let remote = connection.map_or_else(|| "unknown".to_owned(), |c| c.remote.to_string());
            tracing::warn!(%remote, path = %req.uri().path(), "refused a peer call without a cluster certificate (mutual TLS is on: cluster.ca_file)");
            return Err("a cluster certificate is required (mutual TLS)");
        }
    }
    let presented = req.headers().get(SECRET_HEADER).map(|v| Sha256::digest(v.as_bytes()));
    let expected = Sha256::digest(node.config.cluster.secret.bytes());
    if presented != Some(expected) {
        return Err("cluster secret missing or wrong");
    }
    Ok(())
}

fn undecodable(e: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("undecodable peer message: {e}")).into_response()
}

impl<T: DeserializeOwned> FromRequest<AppState> for PeerBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, node: &AppState) -> Result<Self, Self::Rejection> {
        let PeerBytes(bytes) = PeerBytes::from_request(req, node).await?;
        codec::decode(&bytes).map(PeerBody).map_err(undecodable)
    }
}

fn reply<T: Serialize>(value: &T) -> Response {
    match codec::encode(value) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn append(State(node): State<Arc<Node>>, PeerBody(rpc): PeerBody<AppendEntriesRequest<TypeConfig>>) -> Response {
    let answer = node.raft.append_entries(rpc).await;
    if matches!(
        answer,
        Ok(AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_) | AppendEntriesResponse::Conflict)
    ) {
        node.heard_from_leader();
    }
    reply(&answer)
}

/// Why a peer's connection does not switch protocol.
enum Refused {
    Credentials(&'static str),
    OtherProtocol(&'static str),
    NotUpgradable,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Credentials(why) => (StatusCode::UNAUTHORIZED, why).into_response(),
            Refused::OtherProtocol(protocol) => {
                (StatusCode::UPGRADE_REQUIRED, [(header::UPGRADE, protocol)], "this route only upgrades")
                    .into_response()
            }
            Refused::NotUpgradable => {
                (StatusCode::BAD_REQUEST, "this connection cannot be upgraded (HTTP/1.1 only)").into_response()
            }
        }
    }
}

/// The checks before a peer's connection switches to `protocol`: the peer's credentials (as
/// every `/raft/*` call), that it asks for that protocol, and that the connection can switch.
fn accept_upgrade(
    req: &mut Request,
    node: &AppState,
    protocol: &'static str,
) -> Result<hyper::upgrade::OnUpgrade, Refused> {
    authorize(req, node).map_err(Refused::Credentials)?;
    if req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()) != Some(protocol) {
        return Err(Refused::OtherProtocol(protocol));
    }
    req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>().ok_or(Refused::NotUpgradable)
}

fn switching(protocol: &'static str) -> Response {
    (StatusCode::SWITCHING_PROTOCOLS, [(header::CONNECTION, "upgrade"), (header::UPGRADE, protocol)]).into_response()
}

/// A leader's append stream (`raft::stream`): the connection switches to the stream's framing
/// and carries appends until the leader closes it.
async fn open_stream(State(node): State<Arc<Node>>, mut req: Request) -> Response {
    let upgrade = match accept_upgrade(&mut req, &node, stream::PROTOCOL) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    let raft = node.raft.clone();
    let weak = Arc::downgrade(&node);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let heard = move || {
                    if let Some(node) = weak.upgrade() {
                        node.heard_from_leader();
                    }
                };
                stream::serve(raft, hyper_util::rt::TokioIo::new(upgraded), heard).await;
            }
            Err(e) => tracing::debug!(error = %e, "a peer's append stream did not upgrade"),
        }
    });
    switching(stream::PROTOCOL)
}

/// A follower's read-index stream (`raft::read_stream`): each ask on it is answered as
/// `/raft/read-index` answers, until the follower closes it.
async fn open_read_stream(State(node): State<Arc<Node>>, mut req: Request) -> Response {
    let upgrade = match accept_upgrade(&mut req, &node, read_stream::PROTOCOL) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    let weak = Arc::downgrade(&node);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let read_index = move || {
                    let node = weak.upgrade();
                    async move {
                        match node {
                            Some(node) => node.read_index_here().await.map_err(|e| e.to_string()),
                            None => Err(NodeError::ShuttingDown.to_string()),
                        }
                    }
                };
                read_stream::serve(hyper_util::rt::TokioIo::new(upgraded), read_index).await;
            }
            Err(e) => tracing::debug!(error = %e, "a peer's read-index stream did not upgrade"),
        }
    });
    switching(read_stream::PROTOCOL)
}

/// No votes just after a start: a restarted voter has forgotten which leader it heard from,
/// and must not help elect another while that leader's read lease may hold (`node::lease`).
/// Either shape of the request: openraft 0.9's or 0.10's (`decode_vote_request`).
async fn vote(State(node): State<Arc<Node>>, PeerBytes(bytes): PeerBytes) -> Response {
    if !node.may_vote() {
        return (StatusCode::SERVICE_UNAVAILABLE, "just started: not voting yet").into_response();
    }
    match decode_vote_request(&bytes) {
        Ok(rpc) => reply(&node.raft.vote(rpc).await),
        Err(e) => undecodable(e),
    }
}

/// Pre-Vote (openraft 0.10): would this node vote for the asker? Nothing changes here. The
/// same quiet time after a start as for votes.
async fn pre_vote(State(node): State<Arc<Node>>, PeerBody(rpc): PeerBody<VoteRequest<TypeConfig>>) -> Response {
    if !node.may_vote() {
        return (StatusCode::SERVICE_UNAVAILABLE, "just started: not voting yet").into_response();
    }
    reply(&node.raft.pre_vote(rpc).await)
}

async fn snapshot(
    State(node): State<Arc<Node>>,
    PeerBody(rpc): PeerBody<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    reply(&node.raft.install_snapshot(rpc).await)
}

/// A batch of writes forwarded by a follower. `Err` means "not the leader here, nothing
/// appended".
async fn propose(State(node): State<Arc<Node>>, PeerBody(commands): PeerBody<Vec<Command>>) -> Response {
    match node.propose_here(commands).await {
        Ok(outcomes) => reply(&Ok::<Vec<Applied>, String>(outcomes)),
        Err(NodeError::NoLeader) => reply(&Err::<Vec<Applied>, String>("not the leader".into())),
        Err(NodeError::StorageFull(reason)) => {
            reply(&Err::<Vec<Applied>, String>(format!("{}{reason}", crate::node::STORAGE_FULL_MARK)))
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// The leader's read index, for a linearizable read on a follower.
async fn read_index(State(node): State<Arc<Node>>, PeerBody(()): PeerBody<()>) -> Response {
    match node.read_index_here().await {
        Ok(index) => reply(&Ok::<u64, String>(index)),
        Err(e) => reply(&Err::<u64, String>(e.to_string())),
    }
}
