//! The Raft log and vote, kept in their own redb file (`raft-log.redb`) beside the state's.
//!
//! Invariants: an entry or vote is on disk (its redb transaction committed with fsync) before
//! openraft hears that it is; entries are keyed by index, so `truncate` and `purge` are key
//! ranges; entries are purged only after the state that covers them is durable (apply commits
//! without fsync, see `state_machine`).
//!
//! Why a file of its own: a redb commit writes every page dirtied since the last durable
//! commit. Sharing the state's file, each append's fsync also carried the pages of the
//! previous apply (21 page writes per one-order append instead of about 10), and log appends
//! and applies took turns at the one writer lock.
//!
//! `committed` is kept in memory and written with the next append: openraft calls
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
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{de::DeserializeOwned, Serialize};

use super::{storage_error, NodeId, TypeConfig};
use crate::codec;
use crate::state::tables::{RAFT_LOG, RAFT_META};
use crate::state::{Store, StoreError};

/// The log's page cache: replication reads the newest entries, which this holds many times
/// over; without a bound a long log behind a snapshot could take redb's default 1 GiB next to
/// the state's.
const LOG_CACHE_BYTES: usize = 64 << 20;

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// The state's database, made durable before entries it covers are purged.
    state: Store,
    /// The last committed index openraft told us, for `/readyz` and lease reads (0 = none yet).
    committed: Arc<AtomicU64>,
    /// The same as a log id, saved by the next append.
    committed_id: Arc<Mutex<Option<LogId<NodeId>>>>,
    /// How many times the vote changed since start (a leader's read lease is for one vote).
    vote_changes: Arc<AtomicU64>,
}

impl LogStore {
    pub const FILE_NAME: &'static str = "raft-log.redb";

    /// Open (or create) the log in `data_dir`, verifying its pages, and move the log out of the
    /// state's file if an older version kept it there.
    pub fn open(data_dir: &Path, state: Store) -> std::result::Result<Self, StoreError> {
        let db = crate::state::open_database(&data_dir.join(Self::FILE_NAME), Some(LOG_CACHE_BYTES))?;
        let txn = db.begin_write()?;
        txn.open_table(RAFT_LOG)?;
        txn.open_table(RAFT_META)?;
        txn.commit()?;
        move_legacy_log(&db, &state.shared_database())?;
        Ok(Self {
            db: Arc::new(db),
            state,
            committed: Arc::default(),
            committed_id: Arc::default(),
            vote_changes: Arc::default(),
        })
    }

    /// After an offline restore: the log starts after `last_purged`, which the restored state
    /// covers.
    pub fn record_restored(&self, last_purged: LogId<NodeId>) -> std::result::Result<(), StoreError> {
        let bytes = codec::encode(&last_purged)?;
        let txn = self.db.begin_write()?;
        txn.open_table(RAFT_META)?.insert(LAST_PURGED, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
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
        super::run_blocking(move || work(&db))
            .await
            .map_err(|e| storage_error(StorageIOError::write_logs, &std::io::Error::other(e)))?
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

    /// Delete entries up to and including `log_id` (a snapshot covers them), once the state
    /// that applied them is durable: after a crash openraft re-applies from the durable state,
    /// so the entries after it must still be here.
    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let state = self.state.clone();
        self.blocking(move |db| {
            state.make_durable().map_err(write_err)?;
            let bytes = codec::encode(&log_id).map_err(write_err)?;
            let txn = db.begin_write().map_err(write_err)?;
            txn.open_table(RAFT_META).map_err(write_err)?.insert(LAST_PURGED, bytes.as_slice()).map_err(write_err)?;
            txn.open_table(RAFT_LOG).map_err(write_err)?.retain_in(..=log_id.index, |_, _| false).map_err(write_err)?;
            txn.commit().map_err(write_err)
        })
        .await
    }
}

/// Move the log and Raft variables that data format 2 kept in `orders.redb` into the log's
/// own file. The copy is one durable transaction; the old tables are dropped and the format
/// set to 3 only after it: a crash in between leaves both, and the next start just drops the
/// old ones.
fn move_legacy_log(log: &Database, state: &Database) -> std::result::Result<(), StoreError> {
    use crate::state::tables::{DATA_FORMAT, DATA_FORMAT_SHARED_LOG, META, META_SCHEMA_VERSION};
    use redb::TableHandle;
    let (legacy, format) = {
        let txn = state.begin_read()?;
        let tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_string()).collect();
        (tables, txn.open_table(META)?.get(META_SCHEMA_VERSION)?.map(|v| v.value()))
    };
    let has = |name: &str| legacy.iter().any(|t| t == name);
    if format != Some(DATA_FORMAT_SHARED_LOG) && !has(RAFT_LOG.name()) && !has(RAFT_META.name()) {
        return Ok(());
    }
    let log_is_empty = {
        let txn = log.begin_read()?;
        txn.open_table(RAFT_LOG)?.is_empty()? && txn.open_table(RAFT_META)?.is_empty()?
    };
    if log_is_empty {
        let (from, to) = (state.begin_read()?, log.begin_write()?);
        let mut moved = 0u64;
        if has(RAFT_LOG.name()) {
            let mut target = to.open_table(RAFT_LOG)?;
            for item in from.open_table(RAFT_LOG)?.iter()? {
                let (index, entry) = item?;
                target.insert(index.value(), entry.value())?;
                moved += 1;
            }
        }
        if has(RAFT_META.name()) {
            let mut target = to.open_table(RAFT_META)?;
            for item in from.open_table(RAFT_META)?.iter()? {
                let (key, value) = item?;
                target.insert(key.value(), value.value())?;
            }
        }
        to.commit()?;
        tracing::info!(entries = moved, "moved the Raft log out of orders.redb into {}", LogStore::FILE_NAME);
    }
    let txn = state.begin_write()?;
    txn.delete_table(RAFT_LOG)?;
    txn.delete_table(RAFT_META)?;
    txn.open_table(META)?.insert(META_SCHEMA_VERSION, DATA_FORMAT)?;
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tables::{DATA_FORMAT, DATA_FORMAT_SHARED_LOG, META, META_SCHEMA_VERSION};
    use openraft::CommittedLeaderId;

    fn data_format(store: &Store) -> Option<u64> {
        let txn = store.shared_database().begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let format = meta.get(META_SCHEMA_VERSION).unwrap().map(|v| v.value());
        format
    }

    fn legacy_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let db = store.shared_database();
        let txn = db.begin_write().unwrap();
        {
            txn.open_table(META).unwrap().insert(META_SCHEMA_VERSION, DATA_FORMAT_SHARED_LOG).unwrap();
            let mut log = txn.open_table(RAFT_LOG).unwrap();
            for index in 1..=3u64 {
                let entry = Entry::<TypeConfig> {
                    log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                    payload: openraft::EntryPayload::Blank,
                };
                log.insert(index, codec::encode(&entry).unwrap().as_slice()).unwrap();
            }
            let vote = Vote::<NodeId>::new_committed(1, 1);
            txn.open_table(RAFT_META).unwrap().insert(VOTE, codec::encode(&vote).unwrap().as_slice()).unwrap();
        }
        txn.commit().unwrap();
        dir
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn state_tables(store: &Store) -> Vec<String> {
        use redb::TableHandle;
        store.shared_database().begin_read().unwrap().list_tables().unwrap().map(|t| t.name().to_string()).collect()
    }

    #[test]
    fn a_log_kept_in_the_state_file_by_an_older_version_is_moved_to_its_own_file() {
        let dir = legacy_dir();
        let store = Store::open(dir.path()).unwrap();
        let mut log = LogStore::open(dir.path(), store.clone()).unwrap();
        let entries = block_on(log.try_get_log_entries(1..=3)).unwrap();
        assert_eq!(entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(block_on(log.read_vote()).unwrap(), Some(Vote::new_committed(1, 1)));
        assert!(!state_tables(&store).iter().any(|t| t.starts_with("raft_")), "{:?}", state_tables(&store));
        // Builds that read format 2 refuse the converted directory instead of starting on an
        // empty log.
        assert_eq!(data_format(&store), Some(DATA_FORMAT));
        drop(log);
        // Opening again is a no-op.
        let mut log = LogStore::open(dir.path(), store).unwrap();
        assert_eq!(block_on(log.try_get_log_entries(..)).unwrap().len(), 3);
    }

    #[test]
    fn a_crash_after_the_copy_drops_the_old_tables_without_copying_twice() {
        let dir = legacy_dir();
        let store = Store::open(dir.path()).unwrap();
        drop(LogStore::open(dir.path(), store.clone()).unwrap());
        // As if the crash came before the old tables were dropped: they are back, holding a
        // stale entry the log file must not take.
        let txn = store.shared_database().begin_write().unwrap();
        txn.open_table(RAFT_LOG).unwrap().insert(9u64, b"stale".as_slice()).unwrap();
        txn.commit().unwrap();
        let mut log = LogStore::open(dir.path(), store.clone()).unwrap();
        let indexes: Vec<u64> = block_on(log.try_get_log_entries(..)).unwrap().iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![1, 2, 3]);
        assert!(!state_tables(&store).iter().any(|t| t.starts_with("raft_")));
    }
}
