//! Replication: openraft 0.10 over the node's redb file.
//!
//! - `log_store`: the Raft log and vote in redb, durable (fsync) before openraft is told so;
//!   one transaction per batch of entries.
//! - `state_machine`: calls the deterministic `state::apply` for committed entries, builds
//!   streamed snapshots from a read transaction and installs them atomically.
//! - `network`: Raft RPCs to peers over HTTP (`/raft/*`, codec bodies, cluster secret).
//! - `stream`: a leader's appends to a follower pipelined on one upgraded connection.
//! - `read_stream`: a follower's read-index asks to its leader on one upgraded connection.

pub mod busy_poll;
#[cfg(feature = "raft-log-eval")]
pub mod log_raftlog;
pub mod log_segments;
pub mod log_store;
pub mod network;
pub mod read_stream;
pub mod state_machine;
pub mod stream;

use openraft::BasicNode;

use serde::{Deserialize, Serialize};

use crate::state::{Applied, Command};

/// One Raft log entry's payload: commands proposed together (group commit). Each is applied
/// on its own, in order; one command's rejection does not affect the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub commands: Vec<Command>,
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proposal of {} commands", self.commands.len())
    }
}

/// What applying one log entry produced: one outcome per command; empty for blank and
/// membership entries.
pub type Response = Vec<Applied>;

openraft::declare_raft_types!(
    /// The Raft type configuration of pizza-orders: commands in, outcomes out, u64 node ids,
    /// snapshots as files.
    pub TypeConfig:
        D = Proposal,
        R = Response,
        NodeId = u64,
        Node = BasicNode,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig, state_machine::StateMachine>;
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;
/// A log id: the leader (term and node) that proposed an entry, and its index.
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// The committed leader id a log id carries (term and node, as in openraft 0.9).
pub type CommittedLeaderId = openraft::type_config::alias::CommittedLeaderIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;

/// Wrap any error as the `io::Error` openraft's storage traits return.
pub(crate) fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Run blocking storage work (a redb commit, an fsync) from async code.
///
/// On the multi-threaded runtime the work runs right here, with `block_in_place` handing this
/// worker's other tasks to another thread: the calling task keeps its thread, so the hot write
/// path (append, then apply) costs no thread wake-ups. Measured on one node, one client: the
/// round trips to the blocking pool were 120 µs of a 540 µs write. Elsewhere (a
/// current-thread runtime, as in some tests) it falls back to the blocking pool.
pub(crate) async fn run_blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => Ok(tokio::task::block_in_place(work)),
        _ => tokio::task::spawn_blocking(work).await.map_err(|e| e.to_string()),
    }
}
