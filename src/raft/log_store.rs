//! The Raft log and vote, kept in the node's redb file.
//!
//! Invariants: an entry or vote is on disk (its redb transaction committed with fsync) before
//! openraft hears that it is; entries are keyed by index, so `truncate` and `purge` are key
//! ranges. `committed` is kept in memory and written with the next append: openraft calls
//! `save_committed` on its critical path before every apply, and only uses the saved value
//! to re-apply faster after a restart, where any earlier committed id is as correct.
//!
//! Group commit happens one level up: openraft 0.9 waits for each `append` to be flushed
//! before it takes the next, so batching fsyncs here would gain nothing. Instead the node
//! packs concurrent writes into one log entry (`node::Batcher`), and every `append` is one
//! transaction with one fsync for however many entries openraft hands over.

// The error type is openraft's `StorageError`, fixed by the storage traits.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{de::DeserializeOwned, Serialize};

use super::{storage_error, NodeId, TypeConfig};
use crate::codec;
use crate::state::tables::{RAFT_LOG, RAFT_META};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// The last committed index openraft told us, for `/readyz` and lease reads (0 = none yet).
    committed: Arc<AtomicU64>,
    /// The same as a log id, saved by the next append.
    committed_id: Arc<Mutex<Option<LogId<NodeId>>>>,
    /// How many times the vote changed since start (a leader's read lease is for one vote).
    vote_changes: Arc<AtomicU64>,
}

impl LogStore {
    pub fn new(db: Arc<Database>) -> Self {
        Self { db, committed: Arc::default(), committed_id: Arc::default(), vote_changes: Arc::default() }
    }

    /// The commit index last reported by openraft on this node.
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    /// A counter bumped before every vote change is saved, that is before this node grants a
    /// vote or accepts a new leader.
    pub fn vote_changes(&self) -> Arc<AtomicU64> {
        self.vote_changes.clone()
    }

    fn latest_committed(&self) -> Option<LogId<NodeId>> {
        *self.committed_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keep `committed` as the id the next append saves and as the index readers see.
    fn remember_committed(&self, committed: Option<LogId<NodeId>>) {
        *self.committed_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = committed;
        self.committed.store(committed.map_or(0, |c| c.index), Ordering::SeqCst);
    }

    /// Run blocking redb work off the async reactor.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| storage_error(StorageIOError::write_logs, &e))?
    }

    fn read_meta<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>> {
        let read =
            |e: &dyn std::fmt::Display| storage_error(StorageIOError::read, &std::io::Error::other(e.to_string()));
        let txn = db.begin_read().map_err(|e| read(&e))?;
        let table = txn.open_table(RAFT_META).map_err(|e| read(&e))?;
        let raw = table.get(key).map_err(|e| read(&e))?;
        raw.map(|g| codec::decode(g.value())).transpose().map_err(|e| read(&e))
    }

    fn write_meta<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<()> {
        let write =
            |e: &dyn std::fmt::Display| storage_error(StorageIOError::write, &std::io::Error::other(e.to_string()));
        let bytes = codec::encode(value).map_err(|e| write(&e))?;
        let txn = db.begin_write().map_err(|e| write(&e))?;
        txn.open_table(RAFT_META).map_err(|e| write(&e))?.insert(key, bytes.as_slice()).map_err(|e| write(&e))?;
        txn.commit().map_err(|e| write(&e))
    }
}

fn read_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    storage_error(StorageIOError::read_logs, &std::io::Error::other(e.to_string()))
}

fn write_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    storage_error(StorageIOError::write_logs, &std::io::Error::other(e.to_string()))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let (start, end) = (range.start_bound().cloned(), range.end_bound().cloned());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(read_err)?;
            let table = txn.open_table(RAFT_LOG).map_err(read_err)?;
            let mut entries = Vec::new();
            for item in table.range::<u64>((start, end)).map_err(read_err)? {
                let (_, value) = item.map_err(read_err)?;
                entries.push(codec::decode(value.value()).map_err(read_err)?);
            }
            Ok(entries)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        self.blocking(|db| {
            let last_purged_log_id: Option<LogId<NodeId>> = Self::read_meta(db, LAST_PURGED)?;
            let txn = db.begin_read().map_err(read_err)?;
            let table = txn.open_table(RAFT_LOG).map_err(read_err)?;
            let last = match table.last().map_err(read_err)? {
                Some((_, value)) => Some(codec::decode::<Entry<TypeConfig>>(value.value()).map_err(read_err)?.log_id),
                None => None,
            };
            Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        let vote = *vote;
        self.vote_changes.fetch_add(1, Ordering::SeqCst);
        self.blocking(move |db| Self::write_meta(db, VOTE, &vote)).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.blocking(|db| Self::read_meta(db, VOTE)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        self.remember_committed(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        if let Some(latest) = self.latest_committed() {
            return Ok(Some(latest));
        }
        let committed: Option<LogId<NodeId>> = self.blocking(|db| Self::read_meta(db, COMMITTED)).await?.flatten();
        self.remember_committed(committed);
        Ok(committed)
    }

    /// One durable transaction for the whole batch (and the latest committed id); openraft is
    /// told only after the fsync.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| codec::encode(&e).map(|bytes| (e.log_id.index, bytes)))
            .collect::<std::result::Result<_, _>>()
            .map_err(write_err)?;
        let committed = codec::encode(&self.latest_committed()).map_err(write_err)?;
        let result = self
            .blocking(move |db| {
                // Default durability: the commit returns after the fsync.
                let txn = db.begin_write().map_err(write_err)?;
                {
                    let mut table = txn.open_table(RAFT_LOG).map_err(write_err)?;
                    for (index, bytes) in &encoded {
                        table.insert(*index, bytes.as_slice()).map_err(write_err)?;
                    }
                    txn.open_table(RAFT_META)
                        .map_err(write_err)?
                        .insert(COMMITTED, committed.as_slice())
                        .map_err(write_err)?;
                }
                let started = std::time::Instant::now();
                let committed = txn.commit().map_err(write_err);
                metrics::histogram!("pizza_orders_redb_commit_seconds").record(started.elapsed().as_secs_f64());
                committed
            })
            .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    /// Delete entries at and after `log_id` (a new leader overwrote them).
    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(write_err)?;
            txn.open_table(RAFT_LOG).map_err(write_err)?.retain_in(log_id.index.., |_, _| false).map_err(write_err)?;
            txn.commit().map_err(write_err)
        })
        .await
    }

    /// Delete entries up to and including `log_id` (a snapshot covers them).
    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        self.blocking(move |db| {
            let bytes = codec::encode(&log_id).map_err(write_err)?;
            let txn = db.begin_write().map_err(write_err)?;
            txn.open_table(RAFT_META).map_err(write_err)?.insert(LAST_PURGED, bytes.as_slice()).map_err(write_err)?;
            txn.open_table(RAFT_LOG).map_err(write_err)?.retain_in(..=log_id.index, |_, _| false).map_err(write_err)?;
            txn.commit().map_err(write_err)
        })
        .await
    }
}
