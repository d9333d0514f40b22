//! A running node: configuration, token keys, storage, and the replicated write path.
//!
//! Every write goes through [`Node::propose`]: the command joins a batch, which is appended
//! to the Raft log as one entry,
//! committed on a majority, applied by `state::apply` on every replica, and only then
//! answered. Any node accepts writes; a follower forwards them to the leader and returns the
//! leader's answer, so clients never see "not leader". Reads call [`Node::read_barrier`]
//! first: linearizable by default (read index from the leader), or local when stale is fine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::auth::TokenKeys;
use crate::config::Config;
use crate::domain::Timestamp;
use crate::raft::log_store::LogStore;
use crate::raft::network::{Network, PeerClient, PeerError};
use crate::raft::read_stream;
use crate::raft::state_machine::StateMachine;
use crate::raft::{NodeId, Proposal, Raft, RaftMetrics};
use crate::state::disk::DiskSpace;
use crate::state::{Applied, Command, CurrentCatalog, Outcome, SetCatalog, Store, StoreError};

pub mod analytics;
mod checkpoint;
mod lease;
pub mod limits;
mod read_index;
use lease::Lease;
use read_index::ReadIndex;

/// How long a request waits for a leader (an election) before giving up with 503.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// How long a bootstrapping node waits for its seed catalog before it starts serving.
const SEED_WAIT: Duration = Duration::from_secs(10);
/// How long a forwarded write may take on the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("no leader is known yet (election in progress or no quorum); retry shortly")]
    NoLeader,
    #[error("the leader did not answer, so the outcome is unknown; retry with the same Idempotency-Key")]
    OutcomeUnknown,
    #[error("this node is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS between nodes: {0}")]
    Tls(String),
    #[error("cannot start replication: {0}")]
    Raft(String),
    #[error("no catalog is in force yet: the cluster's first leader proposes its configured one; retry shortly")]
    NoCatalog,
    /// The leader's disk is nearly full (its reason, as the leader worded it).
    #[error("{0}")]
    StorageFull(String),
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began (default).
    Linearizable,
    /// This node's current state, which may trail the leader by a few milliseconds.
    Stale,
    /// Reflects every write acknowledged at least this long before the read: answered from
    /// this node's state when it has applied a read index obtained that recently (an edge
    /// replica serving many such reads asks the leader about once per bound), else after a
    /// fresh read-index round.
    Bounded(Duration),
}

pub struct Node {
    pub config: Config,
    pub keys: TokenKeys,
    pub store: Store,
    pub raft: Raft,
    pub id: NodeId,
    pub advertise: String,
    pub peers: PeerClient,
    committed: Arc<AtomicU64>,
    proposals: mpsc::Sender<Pending>,
    submitter: Submitter,
    /// Read indexes confirmed on this node as leader (shared by its reads and its followers').
    read_index_here: ReadIndex,
    /// Read indexes for reads on this node, wherever the leader is.
    read_index: ReadIndex,
    /// The leader's read lease: read indexes without a round while one is recent.
    lease: Arc<Lease>,
    /// The last log index applied to this node's state (its redb transaction committed).
    applied: Arc<AtomicU64>,
    /// Permits for live availability streams (`http.max_streams`).
    pub streams: Arc<Semaphore>,
    /// Rate limits per client address, per user and per user and slot (`[limits]`).
    pub limits: Arc<limits::Limits>,
    /// This node's count of the web UI's beacons, handed to the cluster in batches.
    pub analytics: Arc<analytics::Analytics>,
    /// Free space on the data directory's disk and the reserve kept there.
    pub disk: DiskSpace,
    /// The newest read index learned here, with the instant the round that produced it began:
    /// once applied, this node's state reflects every write acknowledged before that instant.
    fresh: std::sync::Mutex<Option<(Instant, u64)>>,
    /// Set once a shutdown began (`begin_drain`): the node finishes what it has and takes no
    /// new client requests, but still answers its peers.
    draining: Arc<AtomicBool>,
    /// When a leader's append last reached this node (milliseconds since `born`): with
    /// Pre-Vote a follower cut off keeps naming its old leader, so readiness asks this.
    leader_heard_ms: AtomicU64,
    born: Instant,
}

type Pending = (Command, oneshot::Sender<Result<Applied, NodeError>>);

/// Commands waiting for the batcher; senders wait when it is full (back-pressure).
const PROPOSAL_QUEUE: usize = 8192;

impl NodeError {
    /// The same error for every command of a failed batch.
    pub(crate) fn for_each_command(&self) -> Self {
        match self {
            NodeError::NoLeader => NodeError::NoLeader,
            NodeError::OutcomeUnknown => NodeError::OutcomeUnknown,
            NodeError::ShuttingDown => NodeError::ShuttingDown,
            NodeError::NoCatalog => NodeError::NoCatalog,
            NodeError::StorageFull(reason) => NodeError::StorageFull(reason.clone()),
            other => NodeError::Raft(other.to_string()),
        }
    }
}

/// Publish the data directory's free space every 2 s, and say when writes stop and resume.
async fn watch_disk(disk: DiskSpace) {
    let mut was_full = false;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let probe = disk.clone();
        let Ok(verdict) = tokio::task::spawn_blocking(move || probe.publish()).await else { return };
        if verdict.is_err() != was_full {
            match &verdict {
                Err(reason) => tracing::error!(%reason, "not ready; while this node leads it refuses new writes"),
                Ok(()) => tracing::info!("disk space is back above the reserve: writes resume"),
            }
            was_full = verdict.is_err();
        }
    }
}

/// Gets a batch of commands into the log: here when this node leads, else through the leader.
#[derive(Clone)]
struct Submitter {
    raft: Raft,
    peers: PeerClient,
    id: NodeId,
    /// The leader proposes nothing new while its disk is within the reserve.
    disk: DiskSpace,
}

/// How a leader that refuses for want of disk space says so to the follower that forwarded
/// the write (the answer stays a string, as older nodes send and expect).
pub const STORAGE_FULL_MARK: &str = "storage-full: ";

impl Submitter {
    async fn here(&self, commands: Vec<Command>) -> Result<Vec<Applied>, NodeError> {
        let expected = commands.len();
        if self.raft.metrics().borrow_watched().current_leader == Some(self.id) {
            self.disk.check().map_err(|full| NodeError::StorageFull(full.to_string()))?;
        }
        match self.raft.client_write(Proposal { commands }).await {
            Ok(response) if response.data.len() == expected => Ok(response.data),
            Ok(_) => Err(NodeError::Raft("a proposal produced the wrong number of outcomes".into())),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(NodeError::NoLeader),
            // Appended here but replaced by a new leader's log before it committed (openraft
            // 0.10 says so instead of ForwardToLeader): proposed again through the new leader,
            // where `apply` recognises commands that did commit after all.
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => Err(NodeError::NoLeader),
            Err(RaftError::APIError(e)) => Err(NodeError::Raft(e.to_string())),
            Err(RaftError::Fatal(_)) => Err(NodeError::ShuttingDown),
        }
    }

    async fn submit(&self, commands: Vec<Command>) -> Result<Vec<Applied>, NodeError> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            // Straight to the leader a follower knows of: its own Raft may be busy (a slow or
            // full disk holds it in an append) and need not be asked.
            let known = self.raft.metrics().borrow_watched().current_leader;
            if known.is_none_or(|l| l == self.id) {
                match self.here(commands.clone()).await {
                    Err(NodeError::NoLeader) => {}
                    other => return other,
                }
            }
            let metrics = self.raft.metrics().borrow_watched().clone();
            let leader = metrics
                .current_leader
                .filter(|l| *l != self.id)
                .and_then(|l| metrics.membership_config.membership().get_node(&l).map(|n| n.addr.clone()));
            if let Some(addr) = leader {
                let forwarded: Result<Result<Vec<Applied>, String>, PeerError> =
                    self.peers.call(&addr, "/raft/propose", &commands, FORWARD_TIMEOUT).await;
                match forwarded {
                    Ok(Ok(outcomes)) if outcomes.len() == commands.len() => return Ok(outcomes),
                    Ok(Err(refused)) if refused.starts_with(STORAGE_FULL_MARK) => {
                        let reason = refused.trim_start_matches(STORAGE_FULL_MARK);
                        return Err(NodeError::StorageFull(format!("the leader (node {addr}) refused: {reason}")));
                    }
                    // Not the leader there (any more): look again. Should the old leader have
                    // appended the batch after all, `apply` recognises the re-proposed commands.
                    Ok(Err(_)) => {}
                    // The request never left this node: nothing was appended either.
                    Err(PeerError::Unreachable { connect: true, .. }) => {}
                    other => {
                        tracing::warn!(outcome = ?other.err(), "forwarded write has no answer");
                        return Err(NodeError::OutcomeUnknown);
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(NodeError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The batcher: takes every command waiting (up to `max_batch`) as one proposal, with at most
/// `in_flight` proposals on their way at once. While those are being replicated, new commands
/// queue up, so batches grow exactly when load does.
async fn run_batcher(submitter: Submitter, mut queue: mpsc::Receiver<Pending>, max_batch: usize, in_flight: usize) {
    let slots = Arc::new(Semaphore::new(in_flight.max(1)));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let Some(first) = queue.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        metrics::histogram!("pizza_orders_raft_batch_size").record(batch.len() as f64);
        let submitter = submitter.clone();
        crate::raft::busy_poll::touch();
        tokio::spawn(async move {
            let (commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
            let submitted = submitter.submit(commands).await;
            // The linger starts again at the answer: the client's next write comes right after.
            crate::raft::busy_poll::touch();
            match submitted {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.for_each_command()));
                    }
                }
            }
            drop(permit);
        });
    }
}

impl Node {
    /// Open storage, start Raft, and initialise a one-node cluster on first start when
    /// `cluster.bootstrap` is set. `advertise` is how peers reach this node.
    pub async fn start(config: Config, advertise: String) -> Result<Arc<Self>, NodeError> {
        let cache = usize::try_from(config.storage.cache_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        let starting = Instant::now();
        match crate::raft::busy_poll::start(config.busy_poll) {
            crate::raft::busy_poll::Started::Polling(linger) => {
                // Debug: the default, and a one-node start says only a few lines (tests/cli.rs).
                tracing::debug!(
                    linger_us = linger.as_micros() as u64,
                    "a lowest-priority thread polls while writes are on their way (runtime.busy_poll_us)"
                )
            }
            crate::raft::busy_poll::Started::Off => {}
            crate::raft::busy_poll::Started::OffUnderQuota(quota) => {
                tracing::info!(%quota, "no busy polling under a CPU quota (set runtime.busy_poll_us to turn it on)")
            }
            crate::raft::busy_poll::Started::OffNoIdlePriority(reason) => {
                tracing::warn!(%reason, "no busy polling: its thread cannot run at the lowest priority")
            }
        }
        let store = Store::open_with_cache(&config.data_dir, Some(cache))?;
        let store_ms = starting.elapsed().as_millis() as u64;
        let disk = DiskSpace::new(&config.data_dir, config.storage.min_free_mb);
        let log_store = LogStore::open(&config.data_dir, store.clone())?
            .with_disk_space(disk.clone())
            .with_node_id(config.cluster.node_id);
        let log_ms = starting.elapsed().as_millis() as u64 - store_ms;
        convert_to_stores(&config, &store)?;
        let committed = log_store.committed_index();
        let state_machine =
            StateMachine::new(store.shared_database(), &config.data_dir).map_err(|e| NodeError::Raft(e.to_string()))?;
        state_machine.cover_purged_log(log_store.opened_purged()).map_err(NodeError::Raft)?;
        let state_machine = state_machine
            .with_load_feed(store.load_feed())
            .with_views(store.views())
            .with_catalog(store.catalog_in_force());
        let applied = state_machine.applied_counter();
        checkpoint::spawn(store.weak_database(), applied.clone());
        let r = &config.raft;
        let (opened_end, opened_term) = log_store.opened();
        let lease = Arc::new(Lease::new(
            r.lease_reads.then(|| Duration::from_millis(r.election_timeout_min_ms / 2)),
            Duration::from_millis(r.election_timeout_min_ms),
            log_store.vote_changes(),
            committed.clone(),
            opened_end,
        ));
        let peers = PeerClient::new(
            &String::from_utf8_lossy(config.cluster.secret.bytes()),
            config.cluster.source_ip,
            config.cluster.tls.as_ref(),
        )
        .map_err(|e| NodeError::Tls(e.to_string()))?;
        let raft_config = openraft::Config {
            cluster_name: "pizza-orders".into(),
            heartbeat_interval: r.heartbeat_ms,
            election_timeout_min: r.election_timeout_min_ms,
            election_timeout_max: r.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_after_entries),
            max_in_snapshot_log_to_keep: r.entries_kept_after_snapshot,
            max_payload_entries: r.max_payload_entries,
            snapshot_max_chunk_size: 1 << 20,
            broadcast_submitted_on_append: Some(r.replicate_while_syncing),
            // A node back from a partition asks first (`/raft/pre-vote`) instead of raising
            // its term and deposing the leader the others still follow.
            enable_pre_vote: Some(true),
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let id = config.cluster.node_id;
        let before_raft = starting.elapsed().as_millis() as u64;
        let raft = Raft::new(id, Arc::new(raft_config), Network::new(peers.clone()), log_store, state_machine)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        tracing::info!(
            store_ms,
            log_ms,
            raft_ms = starting.elapsed().as_millis() as u64 - before_raft,
            total_ms = starting.elapsed().as_millis() as u64,
            "storage and Raft started"
        );
        if config.cluster.bootstrap && !raft.is_initialized().await.map_err(|e| NodeError::Raft(e.to_string()))? {
            let members = BTreeMap::from([(id, BasicNode::new(&advertise))]);
            raft.initialize(members).await.map_err(|e| NodeError::Raft(e.to_string()))?;
            tracing::info!(node = id, "initialised a one-node cluster");
        }
        let submitter = Submitter { raft: raft.clone(), peers: peers.clone(), id, disk: disk.clone() };
        tokio::spawn(watch_disk(disk.clone()));
        let read_index_here = ReadIndex::spawn({
            let (raft, lease) = (raft.clone(), lease.clone());
            move || confirm_leadership(raft.clone(), lease.clone(), opened_term)
        });
        let read_index = ReadIndex::spawn({
            let asker = Arc::new(tokio::sync::Mutex::new(read_stream::Asker::new(peers.clone())));
            let (raft, here) = (raft.clone(), read_index_here.clone());
            move || find_read_index(raft.clone(), asker.clone(), here.clone(), id)
        });
        let (proposals, queue) = mpsc::channel(PROPOSAL_QUEUE);
        let max_batch = if config.raft.group_commit { config.raft.max_batch } else { 1 };
        tokio::spawn(run_batcher(submitter.clone(), queue, max_batch, config.raft.batches_in_flight));
        let streams = Arc::new(Semaphore::new(config.http.max_streams));
        let limits = Arc::new(limits::Limits::new(&config.limits, config.analytics.beacons_per_second));
        let analytics = Arc::new(analytics::Analytics::new(
            id,
            config.cluster.secret.bytes(),
            config.analytics.clone(),
            Timestamp::now(),
        ));
        tokio::spawn({
            let limits = Arc::downgrade(&limits);
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    let Some(limits) = limits.upgrade() else { return };
                    limits.forget_idle();
                }
            }
        });
        let mut keys = TokenKeys::rotating(&config.token_keys);
        if let Some(oidc) = &config.oidc {
            let verifier = Arc::new(crate::auth::oidc::OidcVerifier::new(oidc.clone()));
            crate::auth::oidc::spawn_uri_reader(&verifier);
            keys = keys.with_oidc(verifier);
        }
        let node = Arc::new(Self {
            keys,
            config,
            store,
            raft,
            id,
            advertise,
            peers,
            committed,
            proposals,
            submitter,
            read_index_here,
            read_index,
            lease,
            applied,
            streams,
            limits,
            analytics,
            disk,
            fresh: std::sync::Mutex::new(None),
            leader_heard_ms: AtomicU64::new(0),
            born: Instant::now(),
            draining: Arc::new(AtomicBool::new(false)),
        });
        tokio::spawn(seed_catalog(Arc::downgrade(&node)));
        if node.config.analytics.enabled {
            analytics::spawn_flusher(Arc::downgrade(&node), Duration::from_millis(node.config.analytics.flush_ms));
        }
        if node.config.cluster.bootstrap {
            node.wait_for_catalog(SEED_WAIT).await;
        }
        Ok(node)
    }

    /// Wait up to `limit` for a catalog to be in force here: a one-node start is then ready
    /// for orders when it says it listens. Elsewhere `/readyz` tells.
    async fn wait_for_catalog(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if matches!(self.store.catalog(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::warn!("no catalog is in force yet; orders are refused until the leader seeds one");
    }

    /// What this node is, in words: a single node, a member of a cluster of N voters, or not
    /// yet in any cluster.
    pub fn role(&self) -> String {
        let metrics = self.metrics();
        let voters = metrics.membership_config.membership().voter_ids().count();
        match voters {
            0 => "not yet in a cluster (waiting for 'cluster init' or 'cluster add')".to_owned(),
            1 => "single node".to_owned(),
            n => format!("member of a cluster of {n} voters"),
        }
    }

    /// The catalog in force on this node (as fresh as its state).
    pub fn catalog(&self) -> Result<Arc<CurrentCatalog>, NodeError> {
        self.store.catalog()?.ok_or(NodeError::NoCatalog)
    }

    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow_watched().clone()
    }

    /// The commit index this node has learned of.
    pub fn committed_index(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// The current leader's id and address, waiting up to a few seconds for an election.
    pub async fn leader_address(&self) -> Result<(NodeId, String), NodeError> {
        self.leader().await
    }

    /// The address of the current leader, waiting up to [`LEADER_WAIT`] for an election.
    async fn leader(&self) -> Result<(NodeId, String), NodeError> {
        wait_for_leader(&self.raft).await
    }

    /// Replicate `command` and return its outcome once it is committed and applied.
    ///
    /// Concurrent commands are packed into one log entry by the batcher (group commit): one
    /// append and one fsync per node for the whole batch.
    pub async fn propose(&self, command: Command) -> Result<Applied, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.proposals.send((command, reply)).await.map_err(|_| NodeError::ShuttingDown)?;
        answer.await.map_err(|_| NodeError::ShuttingDown)?
    }

    /// Append `commands` as one entry if this node is the leader. `NoLeader` means "not here":
    /// nothing was appended, so the caller may send them elsewhere.
    pub async fn propose_here(&self, commands: Vec<Command>) -> Result<Vec<Applied>, NodeError> {
        self.submitter.here(commands).await
    }

    /// Wait until a read on this node reflects every write acknowledged before now.
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<(), NodeError> {
        match consistency {
            Consistency::Stale => return Ok(()),
            Consistency::Bounded(bound) => {
                let fresh = *self.fresh.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some((began, index)) = fresh {
                    if began.elapsed() <= bound && self.applied.load(Ordering::SeqCst) >= index {
                        return Ok(());
                    }
                }
            }
            Consistency::Linearizable => {}
        }
        let began = Instant::now();
        let index = match self.lease_read_index() {
            Some(index) => index,
            None => self.read_index.get().await?,
        };
        {
            let mut fresh = self.fresh.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if fresh.is_none_or(|(at, _)| at < began) {
                *fresh = Some((began, index));
            }
        }
        if self.applied.load(Ordering::SeqCst) >= index {
            return Ok(());
        }
        self.raft
            .wait(Some(LEADER_WAIT))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|_| NodeError::NoLeader)
    }

    /// On the leader: confirm leadership with a quorum and return the index a linearizable
    /// read must see applied. Concurrent callers share one confirmation round.
    pub async fn read_index_here(&self) -> Result<u64, NodeError> {
        match self.lease_read_index() {
            Some(index) => Ok(index),
            None => self.read_index_here.get().await,
        }
    }

    /// A read index from the leader's lease, if this node leads and its lease holds; renews
    /// the lease in the background once it is half used, so steady reads never wait a round.
    fn lease_read_index(&self) -> Option<u64> {
        let read = self.lease.read_index()?;
        if read.renew && self.lease.start_renewal() {
            let (here, lease) = (self.read_index_here.clone(), self.lease.clone());
            tokio::spawn(async move {
                let _ = here.get().await;
                lease.renewal_done();
            });
        }
        Some(read.index)
    }

    /// A leader's append reached this node (answered, whatever the answer: a stale leader's is
    /// refused by its term before it gets here).
    pub fn heard_from_leader(&self) {
        self.leader_heard_ms.fetch_max(self.uptime_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since a leader's append last reached this node (since its start if none).
    pub fn since_leader_heard_ms(&self) -> u64 {
        self.uptime_ms().saturating_sub(self.leader_heard_ms.load(Ordering::Relaxed))
    }

    fn uptime_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this node may grant votes yet (see `lease`: not just after it started).
    pub fn may_vote(&self) -> bool {
        self.lease.may_vote()
    }

    /// The first step of a graceful stop. The node stops standing for election: while it
    /// drains, its listener may be the last thing it serves, and a follower that stood as
    /// candidate then would raise the term, and its next start would depose a healthy leader
    /// (seen in tests/upgrade.rs: eight terms in one step, from v0.5.0, which still does so).
    /// A leader keeps leading until Raft stops; client requests are refused from now on
    /// (`api::GateLayer`), peers' are not.
    pub fn begin_drain(&self) {
        if !self.draining.swap(true, Ordering::SeqCst) {
            self.raft.runtime_config().elect(false);
        }
    }

    /// Whether a graceful stop has begun (see [`Self::begin_drain`]).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// A handle on the draining flag for the layer that refuses client requests meanwhile.
    pub fn draining_flag(&self) -> Arc<AtomicBool> {
        self.draining.clone()
    }

    /// Stop Raft and make the state durable (a restart then re-applies nothing); storage
    /// closes when the last handle is dropped.
    pub async fn shutdown(&self) {
        // The beacons counted since the last batch: handed over if a leader takes them soon.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.analytics.clone().flush_now(self)).await;
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.make_durable()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the state was not made durable at shutdown; the next start re-applies the log")
            }
            Err(e) => tracing::warn!(error = %e, "the shutdown checkpoint did not run"),
        }
    }
}

/// Convert a data directory of format 4 (one kitchen) to stores. Its old snapshot is of the
/// old format, so it is dropped; the next one is built from the converted state.
fn convert_to_stores(config: &Config, store: &Store) -> Result<(), NodeError> {
    use crate::state::migrate;
    convert_format_4(config, store)?;
    if let Some(indexed) = migrate::convert_to_kitchen(&store.shared_database())? {
        tracing::info!(
            orders = indexed,
            "indexed orders for the kitchen (data format {})",
            crate::state::tables::DATA_FORMAT
        );
    }
    Ok(())
}

fn convert_format_4(config: &Config, store: &Store) -> Result<(), NodeError> {
    use crate::state::migrate;
    let seed_store = config.seed_catalog.stores.iter().find(|s| s.id == migrate::LEGACY_STORE_ID);
    let cutoff_ms = seed_store.map_or(30, |s| s.cutoff_minutes).saturating_mul(60_000);
    if let Some(done) = migrate::convert_to_stores(&store.shared_database(), cutoff_ms)? {
        let snapshots = config.data_dir.join("snapshots");
        if snapshots.exists() {
            std::fs::remove_dir_all(&snapshots).map_err(|source| {
                NodeError::Store(StoreError::DataDir { path: snapshots.display().to_string(), source })
            })?;
        }
        tracing::info!(
            orders = done.orders,
            slots = done.slots,
            store = migrate::LEGACY_STORE_ID,
            "converted the data directory to stores (data format {})",
            crate::state::tables::DATA_FORMAT
        );
    }
    Ok(())
}

/// While the state holds no catalog, the leader proposes the one from its configuration. The
/// seed applies only if no catalog exists when it commits, so whichever leader's seed commits
/// first is the catalog of every replica; after that only `catalog apply` changes it.
async fn seed_catalog(node: std::sync::Weak<Node>) {
    let Some(mut metrics) = node.upgrade().map(|n| n.raft.metrics()) else { return };
    loop {
        {
            let Some(node) = node.upgrade() else { return };
            match node.store.catalog() {
                Ok(Some(_)) => return,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the catalog"),
            }
            let leads = metrics.borrow_and_update().current_leader == Some(node.id);
            if leads {
                let command = Command::set_catalog(SetCatalog {
                    at: Timestamp::now(),
                    author: format!("seed from node {}'s configuration", node.id),
                    expected_version: None,
                    seed: true,
                    catalog: node.config.seed_catalog.clone(),
                });
                match node.propose(command).await {
                    Ok(Ok(Outcome::Catalog { version, changed: true })) => {
                        tracing::info!(version, stores = node.config.seed_catalog.stores.len(), "seeded the catalog");
                        return;
                    }
                    Ok(Ok(_)) => return,
                    Ok(Err(rejection)) => tracing::error!(%rejection, "the seed catalog was refused"),
                    Err(e) => tracing::debug!(error = %e, "the seed catalog is not replicated yet; trying again"),
                }
            }
        }
        // A leader change, or a second later (a proposal that failed).
        let _ = tokio::time::timeout(Duration::from_secs(1), metrics.changed()).await;
    }
}

/// The current leader's id and address, waiting up to [`LEADER_WAIT`] for an election.
async fn wait_for_leader(raft: &Raft) -> Result<(NodeId, String), NodeError> {
    let deadline = Instant::now() + LEADER_WAIT;
    let mut metrics = raft.metrics();
    loop {
        {
            let m = metrics.borrow_and_update();
            if let Some(leader) = m.current_leader {
                if let Some(node) = m.membership_config.membership().get_node(&leader) {
                    return Ok((leader, node.addr.clone()));
                }
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(NodeError::NoLeader);
        }
        if matches!(tokio::time::timeout(remaining, metrics.changed()).await, Ok(Err(_))) {
            return Err(NodeError::ShuttingDown);
        }
    }
}

/// One leadership confirmation on this node: a heartbeat round to a quorum, which also
/// starts or extends the read lease.
/// A read index confirmed by a quorum. A leader that restarted into the term it led before
/// (openraft 0.9 resumes under its own committed vote) also waits for every entry it had at
/// start: which of them were committed before the crash it cannot know, and openraft's read
/// index (the term's first entry, from before the crash) may be older than an acknowledged
/// write — found by the fault suite as a stale read on a leader restarted before the others
/// had elected a new one.
async fn confirm_leadership(raft: Raft, lease: Arc<Lease>, opened_term: u64) -> Result<u64, NodeError> {
    let round = lease.begin();
    match raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex).await {
        Ok(read) => {
            if raft.metrics().borrow_watched().current_term != opened_term {
                lease.drop_floor();
            }
            lease.confirmed(round);
            Ok(read.index().max(lease.floor()))
        }
        Err(RaftError::APIError(_)) => Err(NodeError::NoLeader),
        Err(RaftError::Fatal(_)) => Err(NodeError::ShuttingDown),
    }
}

/// A read index from whichever node leads: confirmed here, or asked of the leader.
async fn find_read_index(
    raft: Raft,
    asker: Arc<tokio::sync::Mutex<read_stream::Asker>>,
    here: ReadIndex,
    id: NodeId,
) -> Result<u64, NodeError> {
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        let (leader, addr) = wait_for_leader(&raft).await?;
        if leader == id {
            match here.get().await {
                Err(NodeError::NoLeader) => {}
                other => return other,
            }
        } else {
            // Rounds run one at a time (`ReadIndex`), so the lock is never waited for.
            if let Ok(Ok(index)) = asker.lock().await.ask(&addr, FORWARD_TIMEOUT).await {
                return Ok(index);
            }
        }
        if Instant::now() > deadline {
            return Err(NodeError::NoLeader);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
