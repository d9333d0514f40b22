//! Pipelined replication: a leader's appends to one follower on one long-lived connection, many
//! in flight at once, answered in order (openraft 0.10's `stream_append`).
//!
//! Without it, openraft sends an append, waits for its answer, then sends the next: an entry
//! proposed while the commit index of the one before is still on its way waits a whole round
//! trip, and every append is an HTTP request of its own (reqwest, the peer's router and its
//! middleware). Here the leader opens `POST /raft/stream` with `Upgrade: pizza-raft-append/1`
//! (same port, same mutual TLS and cluster secret as every `/raft/*` call), and the connection
//! then carries length-prefixed `codec` frames:
//!
//! - leader → follower: [`Up::Append`] per request, [`Up::End`] when openraft's request stream
//!   ends (a session; the connection is kept for the next one);
//! - follower → leader: [`Down::Answer`] per request, in order, [`Down::End`] after the last
//!   answer of a session, [`Down::Stopped`] when the follower's Raft stopped.
//!
//! Any other end (a refused append, a timeout, a broken connection) closes the connection and
//! openraft opens another session. A peer without the route (an older release: 404) gets the
//! one-request-at-a-time appends of `network::Peer` instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, Stream, StreamExt};
use hyper_util::rt::TokioIo;
use openraft::error::{NetworkError, RPCError, Unreachable};
use openraft::raft::{AppendEntriesRequest, StreamAppendError, StreamAppendResult};
use serde::{Deserialize, Serialize};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::{Raft, TypeConfig};
use crate::codec;

/// The `Upgrade` token of this protocol; a later incompatible framing gets a new one.
pub const PROTOCOL: &str = "pizza-raft-append/1";
/// The route a leader opens a stream on.
pub const PATH: &str = "/raft/stream";
/// The largest frame either side accepts (an append's entries stay far below it).
const MAX_FRAME: usize = 16 << 20;
/// Appends read off the connection but not yet taken by Raft, per stream.
const PIPELINE: usize = 64;

/// A frame from the leader.
#[derive(Serialize, Deserialize)]
pub enum Up {
    Append(AppendEntriesRequest<TypeConfig>),
    /// No more appends in this session.
    End,
}

/// A frame from the follower.
#[derive(Serialize, Deserialize)]
pub enum Down {
    Answer(StreamAppendResult<TypeConfig>),
    /// The follower's Raft stopped; the connection closes.
    Stopped(String),
    /// Every append of the session is answered; the connection may carry another session.
    End,
}

/// An upgraded connection, either side.
pub type Io = TokioIo<hyper::upgrade::Upgraded>;

/// A connection, framed.
pub struct Conn {
    reader: FramedRead<ReadHalf<Io>, LengthDelimitedCodec>,
    writer: FramedWrite<WriteHalf<Io>, LengthDelimitedCodec>,
}

fn framing() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec()
}

impl Conn {
    pub fn new(io: Io) -> Self {
        let (reader, writer) = tokio::io::split(io);
        Self { reader: FramedRead::new(reader, framing()), writer: FramedWrite::new(writer, framing()) }
    }

    pub(super) async fn send<T: Serialize>(&mut self, frame: &T) -> Result<(), String> {
        let bytes = codec::encode(frame).map_err(|e| e.to_string())?;
        self.writer.send(Bytes::from(bytes)).await.map_err(|e| e.to_string())
    }

    /// The next frame; `Ok(None)` when the peer closed the connection.
    pub(super) async fn receive<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>, String> {
        match self.reader.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(frame)) => codec::decode(&frame).map(Some).map_err(|e| e.to_string()),
        }
    }
}

/// Follower side: feed every session's appends to Raft and send its answers back, until the
/// leader closes the connection. `heard` is called for each append from a current leader.
pub async fn serve(raft: Raft, io: Io, heard: impl Fn() + Send + Sync + 'static) {
    let mut conn = Conn::new(io);
    loop {
        match serve_session(&raft, &mut conn, &heard).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(reason) => {
                tracing::debug!(%reason, "append stream from the leader ended");
                return;
            }
        }
    }
}

/// One session. `Ok(true)`: it ended cleanly and the connection may carry another.
async fn serve_session(raft: &Raft, conn: &mut Conn, heard: &(impl Fn() + Send + Sync)) -> Result<bool, String> {
    // A session starts with its first frame; the connection's end between sessions is normal.
    let Some(first) = conn.receive::<Up>().await? else { return Ok(false) };
    let (tx, rx) = mpsc::channel::<AppendEntriesRequest<TypeConfig>>(PIPELINE);
    let input = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut answers = std::pin::pin!(raft.stream_append(input));
    let mut tx = Some(tx);
    let mut next = Some(first);
    loop {
        // Appends are taken off the connection only while Raft has room for them, so a slow
        // follower slows its leader's writer (TCP) instead of queueing without bound.
        let room = tx.as_ref().is_some_and(|tx| tx.capacity() > 0);
        if room {
            if let Some(frame) = next.take() {
                match frame {
                    Up::Append(request) => {
                        if !request.entries.is_empty() {
                            super::busy_poll::touch();
                        }
                        if let Some(tx) = &tx {
                            tx.try_send(request).map_err(|_| "Raft stopped taking appends".to_owned())?;
                        }
                    }
                    Up::End => tx = None,
                }
                continue;
            }
        }
        tokio::select! {
            frame = conn.receive::<Up>(), if room => {
                match frame? {
                    Some(frame) => next = Some(frame),
                    None => return Err("the leader closed the connection mid-session".into()),
                }
            }
            answer = answers.next() => match answer {
                None if tx.is_none() => {
                    conn.send(&Down::End).await?;
                    return Ok(true);
                }
                None => return Err("Raft ended the session before the leader did".into()),
                Some(Ok(result)) => {
                    if matches!(result, Ok(_) | Err(StreamAppendError::Conflict(_))) {
                        heard();
                    }
                    let last = result.is_err();
                    conn.send(&Down::Answer(result)).await?;
                    if last {
                        // A refused append ends the session; the leader opens another.
                        return Ok(false);
                    }
                }
                Some(Err(fatal)) => {
                    conn.send(&Down::Stopped(fatal.to_string())).await?;
                    return Ok(false);
                }
            }
        }
    }
}

/// Why a stream could not carry appends.
#[derive(Debug, thiserror::Error)]
#[error("append stream to {peer}: {reason}")]
pub struct StreamError {
    pub peer: String,
    pub reason: String,
}

/// What a session yields to openraft.
pub type Answer = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

/// Leader side: send `input`'s appends on `conn` as they come, each answer back through the
/// returned stream in order. An append unanswered after `ttl` ends the session. After a clean
/// end the connection goes back to `slot` for the next session.
pub fn session<S>(
    conn: Conn,
    input: S,
    ttl: Duration,
    peer: String,
    slot: Arc<Mutex<Option<Conn>>>,
) -> impl Stream<Item = Answer> + Send + 'static
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    let (answers, rx) = mpsc::unbounded_channel();
    tokio::spawn(run_session(conn, input, ttl, peer, slot, answers));
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|a| (a, rx)) })
}

async fn run_session<S>(
    mut conn: Conn,
    mut input: S,
    ttl: Duration,
    peer: String,
    slot: Arc<Mutex<Option<Conn>>>,
    answers: mpsc::UnboundedSender<Answer>,
) where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    let unreachable =
        |reason: String| RPCError::Unreachable(Unreachable::new(&StreamError { peer: peer.clone(), reason }));
    // Send times of the appends not answered yet, oldest first.
    let mut sent: VecDeque<Instant> = VecDeque::new();
    let mut input_open = true;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    loop {
        let deadline = sent.front().map_or(far, |t| *t + ttl);
        let failure = tokio::select! {
            biased;
            // openraft stopped listening (a new payload, leadership lost): drop the connection.
            _ = answers.closed() => return,
            frame = conn.receive::<Down>() => match frame {
                Ok(Some(Down::Answer(result))) => {
                    if sent.pop_front().is_none() {
                        Some(RPCError::Network(NetworkError::new(&StreamError {
                            peer: peer.clone(),
                            reason: "an answer to no append".into(),
                        })))
                    } else {
                        let last = result.is_err();
                        if answers.send(Ok(result)).is_err() || last {
                            return;
                        }
                        None
                    }
                }
                Ok(Some(Down::End)) if !input_open && sent.is_empty() => {
                    if let Ok(mut slot) = slot.lock() {
                        *slot = Some(conn);
                    }
                    return;
                }
                Ok(Some(Down::End)) => Some(unreachable("the follower ended the session early".into())),
                Ok(Some(Down::Stopped(reason))) => Some(unreachable(format!("the follower's Raft stopped: {reason}"))),
                Ok(None) => Some(unreachable("the follower closed the connection".into())),
                Err(reason) => Some(unreachable(reason)),
            },
            request = input.next(), if input_open => {
                let frame = match request {
                    Some(request) => {
                        if request.entries.is_empty() {
                            // A commit index alone. The same commit woke this node's answers to
                            // its clients (apply, then the batcher, then the connection): let
                            // them go out first. Sent before them, the commit woke the followers,
                            // whose applies took the CPU from this leader's answer on a
                            // two-core host (measured in docs/benchmarks.md, "fourteenth stop").
                            tokio::task::yield_now().await;
                        }
                        Up::Append(request)
                    }
                    None => {
                        input_open = false;
                        Up::End
                    }
                };
                let append = matches!(frame, Up::Append(_));
                match conn.send(&frame).await {
                    Ok(()) => {
                        if append {
                            sent.push_back(Instant::now());
                        }
                        None
                    }
                    Err(reason) => Some(unreachable(reason)),
                }
            }
            _ = tokio::time::sleep_until(deadline), if !sent.is_empty() => {
                Some(unreachable(format!("no answer within {} ms", ttl.as_millis())))
            }
        };
        if let Some(error) = failure {
            let _ = answers.send(Err(error));
            return;
        }
    }
}

/// Socket options for a connection that may carry an append stream, on either side: no Nagle
/// (an answer sent while the previous one is unacknowledged would wait for the peer's delayed
/// ACK), and TCP keepalive, so a connection whose peer vanished without a FIN (a host lost, a
/// partition) ends within about 90 s instead of holding its task and descriptor forever while it
/// waits for the next session.
pub fn tune(tcp: &tokio::net::TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive)
}

/// How a leader reaches a follower's stream route.
#[derive(Clone)]
pub struct Dialer {
    pub secret: String,
    pub source_ip: Option<std::net::IpAddr>,
    /// Mutual TLS between nodes: this node's certificate and the cluster CA (HTTP/1.1 only:
    /// the upgrade needs it).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// What opening a stream found.
pub enum Opened {
    Stream(Box<Conn>),
    /// The peer has no such route (an older release): use the one-request-at-a-time calls.
    NotOffered,
}

impl Dialer {
    /// Open an append stream to `addr` (`host:port`): TCP from `source_ip`, TLS when on, the
    /// upgrade request with the cluster secret. Everything within `timeout`.
    pub async fn open(&self, addr: &str, timeout: Duration) -> Result<Opened, String> {
        self.open_on(addr, PATH, PROTOCOL, timeout).await
    }

    /// Open a connection upgraded to `protocol` on `path` of `addr`, as [`Dialer::open`] does.
    pub async fn open_on(&self, addr: &str, path: &str, protocol: &str, timeout: Duration) -> Result<Opened, String> {
        match tokio::time::timeout(timeout, self.open_now(addr, path, protocol)).await {
            Ok(opened) => opened,
            Err(_) => Err(format!("no stream within {} ms", timeout.as_millis())),
        }
    }

    async fn open_now(&self, addr: &str, path: &str, protocol: &str) -> Result<Opened, String> {
        use hyper::header::{CONNECTION, HOST, UPGRADE};
        use tokio_util::either::Either;

        let target = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| format!("cannot resolve {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr} resolves to no address"))?;
        let socket = if target.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() };
        let socket = socket.map_err(|e| e.to_string())?;
        if let Some(ip) = self.source_ip {
            socket.bind(std::net::SocketAddr::new(ip, 0)).map_err(|e| format!("cannot bind {ip}: {e}"))?;
        }
        let tcp = socket.connect(target).await.map_err(|e| format!("cannot connect: {e}"))?;
        tune(&tcp).map_err(|e| e.to_string())?;
        let io = match &self.tls {
            None => Either::Left(tcp),
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| format!("{host} is not a server name: {e}"))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                Either::Right(tls)
            }
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "a peer stream's HTTP connection ended");
            }
        });
        let request = hyper::Request::post(path)
            .header(HOST, addr)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, protocol)
            .header(super::network::SECRET_HEADER, &self.secret)
            .body(String::new())
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            101 => {}
            404 | 405 => return Ok(Opened::NotOffered),
            401 => return Err("refused the cluster secret or certificate (check cluster.secret on both nodes)".into()),
            other => return Err(format!("answered HTTP {other} to the upgrade")),
        }
        let upgraded = hyper::upgrade::on(response).await.map_err(|e| e.to_string())?;
        Ok(Opened::Stream(Box::new(Conn::new(TokioIo::new(upgraded)))))
    }
}
