//! Raft RPCs to peers: HTTP POST to `http(s)://<peer>/raft/<rpc>` with codec-encoded bodies and
//! the cluster secret in `x-cluster-secret`; with mutual TLS (`cluster.ca_file`) over HTTPS,
//! showing this node's certificate and trusting only the cluster CA. Every call has a timeout;
//! a peer that cannot be reached is reported `Unreachable`, so openraft backs off instead of
//! spinning.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, StreamAppendResult, VoteRequest, VoteResponse};
use openraft::BasicNode;
use openraft_legacy::network_v1::{
    Adapter, InstallSnapshotError, InstallSnapshotRequest, InstallSnapshotResponse, RaftNetwork,
};
use serde::{de::DeserializeOwned, Serialize};

use super::stream::{self, Conn, Dialer, Opened, StreamError};
use super::{LogId, NodeId, TypeConfig, Vote};
use crate::codec;
use crate::config::PeerTlsConfig;
use crate::tls::TlsError;

/// A vote request as openraft 0.9 sends and reads it. 0.10 added `leadership_transfer`, and the
/// codec writes fields by position, so neither version reads the other's shape: elections in a
/// cluster half-way through a rolling upgrade would fail. This node sends this shape (unless it
/// transfers leadership, which 0.9 nodes do not take part in) and reads both
/// ([`decode_vote_request`]).
#[derive(Serialize, serde::Deserialize)]
pub struct VoteRequestV09 {
    pub vote: Vote,
    pub last_log_id: Option<LogId>,
}

/// A vote request from a peer in either shape: 0.10's first, then 0.9's (the codec's length
/// checks tell them apart: each leaves the other short or with a trailing byte).
pub fn decode_vote_request(bytes: &[u8]) -> Result<VoteRequest<TypeConfig>, codec::CodecError> {
    codec::decode::<VoteRequest<TypeConfig>>(bytes).or_else(|newer| {
        codec::decode::<VoteRequestV09>(bytes)
            .map(|v| VoteRequest { vote: v.vote, last_log_id: v.last_log_id, leadership_transfer: false })
            .map_err(|_| newer)
    })
}

/// Header carrying the shared secret between nodes.
pub const SECRET_HEADER: &str = "x-cluster-secret";
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// An HTTP client for talking to peers, shared by Raft and request forwarding.
#[derive(Clone)]
pub struct PeerClient {
    /// Swapped whole when the certificates are re-read.
    http: Arc<RwLock<reqwest::Client>>,
    secret: String,
    source_ip: Option<std::net::IpAddr>,
    tls: Option<PeerTlsConfig>,
    /// `https` with mutual TLS, else `http`.
    scheme: &'static str,
    /// The TLS client config of append streams (`raft::stream`), re-read with the certificates.
    stream_tls: Arc<RwLock<Option<Arc<rustls::ClientConfig>>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// `connect` is true when the request never reached the peer (nothing was sent).
    #[error("peer {addr} cannot be reached: {reason}")]
    Unreachable { addr: String, reason: String, connect: bool },
    #[error("peer {0} refused the cluster secret (check cluster.secret on both nodes)")]
    Unauthorized(String),
    #[error("peer {0} answered HTTP {1}")]
    Status(String, u16),
    #[error("peer {0} sent an unreadable answer: {1}")]
    Decode(String, String),
}

impl PeerClient {
    /// `source_ip`: the local address connections start from (`None`: the OS chooses);
    /// `tls`: the cluster CA and this node's certificate, for HTTPS between nodes.
    pub fn new(
        secret: &str,
        source_ip: Option<std::net::IpAddr>,
        tls: Option<&PeerTlsConfig>,
    ) -> Result<Self, TlsError> {
        let http = build(source_ip, tls)?;
        Ok(Self {
            http: Arc::new(RwLock::new(http)),
            secret: secret.to_owned(),
            source_ip,
            tls: tls.cloned(),
            scheme: if tls.is_some() { "https" } else { "http" },
            stream_tls: Arc::new(RwLock::new(stream_tls(tls)?)),
        })
    }

    /// How append streams reach peers now (with the certificates last read).
    pub fn dialer(&self) -> Dialer {
        let tls = match self.stream_tls.read() {
            Ok(tls) => tls.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Dialer { secret: self.secret.clone(), source_ip: self.source_ip, tls }
    }

    /// Read the certificates again (new connections use them; pooled ones finish as they are).
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        if self.tls.is_none() {
            return Ok(());
        }
        let fresh = build(self.source_ip, self.tls.as_ref())?;
        let fresh_stream = stream_tls(self.tls.as_ref())?;
        match self.http.write() {
            Ok(mut http) => *http = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        match self.stream_tls.write() {
            Ok(mut tls) => *tls = fresh_stream,
            Err(poisoned) => *poisoned.into_inner() = fresh_stream,
        }
        Ok(())
    }

    fn http(&self) -> reqwest::Client {
        match self.http.read() {
            Ok(http) => http.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// `scheme://addr`: how this node reaches the peer at `addr`.
    pub fn base(&self, addr: &str) -> String {
        format!("{}://{addr}", self.scheme)
    }

    /// POST `body` to `http://{addr}{path}` and decode the answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let bytes = codec::encode(body).map_err(|e| PeerError::Decode(addr.into(), e.to_string()))?;
        let response = self
            .http()
            .post(format!("{}{path}", self.base(addr)))
            .header(SECRET_HEADER, &self.secret)
            .header("content-type", "application/octet-stream")
            .timeout(timeout)
            .body(bytes)
            .send()
            .await
            .map_err(|e| PeerError::Unreachable {
                addr: addr.into(),
                reason: e.to_string(),
                connect: e.is_connect(),
            })?;
        match response.status().as_u16() {
            200 => {}
            401 => return Err(PeerError::Unauthorized(addr.into())),
            other => return Err(PeerError::Status(addr.into(), other)),
        }
        let bytes = response.bytes().await.map_err(|e| PeerError::Unreachable {
            addr: addr.into(),
            reason: e.to_string(),
            connect: false,
        })?;
        codec::decode(&bytes).map_err(|e| PeerError::Decode(addr.into(), e.to_string()))
    }
}

impl PeerClient {
    /// Relay an admin HTTP request to another node, returning (status, content type, body).
    pub async fn forward_http(
        &self,
        addr: &str,
        method: reqwest::Method,
        path: &str,
        authorization: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, String, bytes::Bytes), PeerError> {
        let mut request = self
            .http()
            .request(method, format!("{}{path}", self.base(addr)))
            .header("authorization", authorization)
            .timeout(Duration::from_secs(60));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let unreachable = |e: reqwest::Error| PeerError::Unreachable {
            addr: addr.into(),
            reason: e.to_string(),
            connect: e.is_connect(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_owned();
        let bytes = response.bytes().await.map_err(unreachable)?;
        Ok((status, content_type, bytes))
    }
}

fn build(source_ip: Option<std::net::IpAddr>, tls: Option<&PeerTlsConfig>) -> Result<reqwest::Client, TlsError> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .local_address(source_ip)
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(32);
    if let Some(tls) = tls {
        builder = builder.use_preconfigured_tls(crate::tls::peer_client_config(tls)?);
    }
    // Building fails only for a TLS backend the build lacks; the plain client then still works.
    Ok(builder.build().unwrap_or_default())
}

/// The append streams' TLS: the peers' client config, HTTP/1.1 only (the upgrade needs it).
fn stream_tls(tls: Option<&PeerTlsConfig>) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
    let Some(tls) = tls else { return Ok(None) };
    let mut config = crate::tls::peer_client_config(tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// Creates one [`Peer`] per target node.
pub struct Network {
    client: PeerClient,
}

impl Network {
    pub fn new(client: PeerClient) -> Self {
        Self { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    /// The v1 protocol (snapshots in chunks), whose messages 0.9 peers read too, with 0.10's
    /// Pre-Vote beside it ([`PeerLink`]).
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let peer = Peer { target, addr: node.addr.clone(), client: self.client.clone() };
        PeerLink { pre_vote: peer.clone(), v1: peer.into_v2(), conn: Arc::default(), not_offered_until: None }
    }
}

/// After a peer answered that it has no stream route (an older release), how long its
/// one-request-at-a-time calls are used before asking again (it may have been upgraded
/// meanwhile): appends here, read-index asks in `read_stream`.
pub(super) const ASK_STREAM_AGAIN: Duration = Duration::from_secs(10);

/// One peer as openraft 0.10 talks to it: every RPC through the v1 adapter, and Pre-Vote
/// (`/raft/pre-vote`), which the v1 trait does not have.
pub struct PeerLink {
    v1: Adapter<TypeConfig, Peer, tokio::fs::File>,
    pre_vote: Peer,
    /// The append stream's connection between sessions (`raft::stream`).
    conn: Arc<Mutex<Option<Conn>>>,
    /// Set when the peer has no append stream: until then, one append at a time.
    not_offered_until: Option<tokio::time::Instant>,
}

impl PeerLink {
    /// The connection for an append session: the one kept from the last session, or a new one.
    /// `None`: the peer has no append stream (an older release), recently or just now.
    async fn stream_conn(&mut self, option: &RPCOption) -> Result<Option<Conn>, RPCError<TypeConfig>> {
        if self.not_offered_until.is_some_and(|until| tokio::time::Instant::now() < until) {
            return Ok(None);
        }
        if let Some(kept) = self.conn.lock().ok().and_then(|mut conn| conn.take()) {
            return Ok(Some(kept));
        }
        let peer = &self.pre_vote;
        match peer.client.dialer().open(&peer.addr, CONNECT_TIMEOUT.max(option.hard_ttl())).await {
            Ok(Opened::Stream(conn)) => Ok(Some(*conn)),
            Ok(Opened::NotOffered) => {
                tracing::info!(peer = %peer.addr, "the peer has no append stream (an older release): appending one request at a time");
                self.not_offered_until = Some(tokio::time::Instant::now() + ASK_STREAM_AGAIN);
                Ok(None)
            }
            Err(reason) => {
                Err(RPCError::Unreachable(Unreachable::new(&StreamError { peer: peer.addr.clone(), reason })))
            }
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerLink {
    type SnapshotData = tokio::fs::File;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.v1.append_entries(rpc, option).await
    }

    /// Appends pipelined on one connection (`raft::stream`); one at a time through the v1
    /// adapter to a peer without the stream route.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>,
    >
    where
        S: futures_util::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        Box::pin(async move {
            let Some(conn) = self.stream_conn(&option).await? else {
                metrics::counter!("pizza_orders_raft_append_sessions_total", "transport" => "one_at_a_time")
                    .increment(1);
                return RaftNetworkV2::stream_append(&mut self.v1, input, option).await;
            };
            metrics::counter!("pizza_orders_raft_append_sessions_total", "transport" => "pipelined").increment(1);
            let answers =
                stream::session(conn, input, option.hard_ttl(), self.pre_vote.addr.clone(), self.conn.clone());
            Ok(Box::pin(answers) as BoxStream<'s, _>)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.v1.vote(rpc, option).await
    }

    /// A would-be candidate asks whether it could win before it raises its term, so a node
    /// that was cut off (and timed out) cannot depose a healthy leader when it comes back. A
    /// peer that has no such route (an older release, mid-upgrade: 404) counts as granting,
    /// as openraft counts a network without Pre-Vote, so a mixed cluster still elects.
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let peer = &self.pre_vote;
        let answer = peer
            .client
            .call::<_, Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>>(
                &peer.addr,
                "/raft/pre-vote",
                &rpc,
                option.hard_ttl(),
            )
            .await;
        match answer {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            Err(PeerError::Status(_, 404)) => Ok(VoteResponse::new(rpc.vote, None, true)),
            Err(e) => Err(transport_error(&e)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::type_config::alias::SnapshotOf<TypeConfig, Self::SnapshotData>,
        cancel: impl std::future::Future<Output = openraft::error::ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<openraft::raft::SnapshotResponse<TypeConfig>, openraft::error::StreamingError<TypeConfig>> {
        self.v1.full_snapshot(vote, snapshot, cancel, option).await
    }

    async fn transfer_leader(
        &mut self,
        rpc: openraft::raft::TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<openraft::raft::TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.v1.transfer_leader(rpc, option).await
    }

    fn backoff(&self) -> Option<openraft::network::Backoff> {
        self.v1.backoff()
    }
}

#[derive(Clone)]
pub struct Peer {
    target: NodeId,
    addr: String,
    client: PeerClient,
}

impl Peer {
    async fn rpc<Req: Serialize, Resp: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig, RaftError<TypeConfig, E>>> {
        let answer: Result<Resp, RaftError<TypeConfig, E>> =
            self.client.call(&self.addr, path, request, option.hard_ttl()).await.map_err(|e| transport_error(&e))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// A call that got no usable answer, as openraft counts it: unreachable (try again later), or a
/// network error for an answer that did not decode.
fn transport_error<E: std::error::Error>(e: &PeerError) -> RPCError<TypeConfig, E> {
    match e {
        PeerError::Unreachable { .. } | PeerError::Unauthorized(_) | PeerError::Status(..) => {
            RPCError::Unreachable(Unreachable::new(e))
        }
        PeerError::Decode(..) => RPCError::Network(NetworkError::new(e)),
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig, RaftError<TypeConfig>>> {
        self.rpc("/raft/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<TypeConfig>, RPCError<TypeConfig, RaftError<TypeConfig, InstallSnapshotError>>>
    {
        self.rpc("/raft/snapshot", &rpc, &option).await
    }

    /// In 0.9's shape unless it transfers leadership (see [`VoteRequestV09`]).
    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig, RaftError<TypeConfig>>> {
        if rpc.leadership_transfer {
            return self.rpc("/raft/vote", &rpc, &option).await;
        }
        self.rpc("/raft/vote", &VoteRequestV09 { vote: rpc.vote, last_log_id: rpc.last_log_id }, &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::CommittedLeaderId;

    #[test]
    fn a_vote_request_reads_in_the_shape_of_either_openraft_version() {
        let vote = Vote::new(3, 2);
        let last_log_id = Some(LogId::new(CommittedLeaderId { term: 2, node_id: 1 }, 41));
        let from_09 = codec::encode(&VoteRequestV09 { vote, last_log_id }).unwrap();
        let request = decode_vote_request(&from_09).expect("0.9's shape");
        assert_eq!((request.vote, request.last_log_id, request.leadership_transfer), (vote, last_log_id, false));
        let from_010 =
            codec::encode(&VoteRequest::<TypeConfig> { vote, last_log_id, leadership_transfer: true }).unwrap();
        assert!(decode_vote_request(&from_010).expect("0.10's shape").leadership_transfer);
        // Neither shape reads as the other: the fallback is needed, and garbage stays refused.
        assert!(codec::decode::<VoteRequest<TypeConfig>>(&from_09).is_err());
        assert!(codec::decode::<VoteRequestV09>(&from_010).is_err());
        assert!(decode_vote_request(&from_09[..from_09.len() - 1]).is_err());
    }
}
