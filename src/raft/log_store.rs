//! The Raft log and vote. Entries live in append-only segment files (`raft-log/`, see
//! `log_segments`); the vote, the last purged id and a committed id live in a small redb file
//! (`raft-log.redb`) beside them, written only when they change (elections, purges).
//!
//! Invariants: an entry or vote is on disk (fsync) before openraft hears that it is; entries
//! are purged only after the state that covers them is durable (apply commits without fsync,
//! see `state_machine`), and only after the purge point itself is durable.
//!
//! Why files of their own: the state's redb commits do not wait for the log's fsync nor the
//! log's for theirs, and a segment append is one contiguous write instead of a B-tree's
//! copy-on-write pages.
//!
//! `committed` is kept in memory and saved with each purge: openraft calls `save_committed`
//! on its critical path before every apply, and only uses the saved value to re-apply faster
//! after a restart, where any earlier committed id is as correct.
//!
//! Group commit happens at two levels. The node packs concurrent writes into one log entry
//! (`node::Batcher`); and `append` only writes, handing the fsync to the [`Flusher`] thread,
//! which syncs every append waiting when it starts with one `fdatasync`. openraft 0.10 sends
//! an entry to the followers once `append` returns, so the leader's own fsync runs beside the
//! round trip instead of before it (0.9 awaited the flush first). A follower whose appends come
//! one at a time syncs on the appending thread instead (`LogStore::sync_here`): nothing would
//! share the sync, and its answer leaves without two thread hand-offs.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{de::DeserializeOwned, Serialize};

#[cfg(feature = "raft-log-eval")]
use super::log_raftlog::RaftLogEntries as SegmentLog;
use super::log_segments::SegmentError;
#[cfg(not(feature = "raft-log-eval"))]
use super::log_segments::SegmentLog;
use super::{io_error, Entry, LogId, TypeConfig, Vote};
use crate::codec;
use crate::state::disk::DiskSpace;
use crate::state::tables::{RAFT_LOG, RAFT_META};
use crate::state::{Store, StoreError};

/// The redb file now holds a few small values (and, while an older directory is converted,
/// its log).
const META_CACHE_BYTES: usize = 16 << 20;

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";
/// The last entry index known to be on disk (see `DurableEnd`).
const DURABLE_END: &str = "durable_end";
/// How often `DurableEnd` is saved while appends happen.
const DURABLE_END_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// A follower syncs an append itself only while syncs take less than this (µs): a slower disk
/// would hold the runtime's worker too long (see `LogStore::sync_here`).
const INLINE_SYNC_MAX_US: u64 = 2_000;

type Result<T> = std::io::Result<T>;

#[derive(Clone)]
pub struct LogStore {
    /// Vote, last purged id, committed id.
    db: Arc<Database>,
    entries: Arc<SegmentLog>,
    /// The state's database, made durable before entries it covers are purged.
    state: Store,
    /// The last committed index openraft told us, for `/readyz` and lease reads (0 = none yet).
    committed: Arc<AtomicU64>,
    /// The same as a log id, saved by the next append.
    committed_id: Arc<Mutex<Option<LogId>>>,
    /// How many times the vote changed since start (a leader's read lease is for one vote).
    vote_changes: Arc<AtomicU64>,
    durable_end: Arc<DurableEnd>,
    /// Syncs what `append` wrote and tells openraft (see [`Flusher`]).
    flusher: Arc<Flusher>,
    /// The last log index and the vote's term when the log was opened (see `opened`).
    opened: (u64, u64),
    /// Appends wait while the disk is within the last half of its reserve.
    disk: DiskSpace,
    /// The last purged index when the log was opened (0 = none).
    opened_purged: u64,
    /// This node's id (0: unknown), to tell a leader's entries from this node's own.
    node_id: u64,
}

/// A lower bound of the log's end, saved in `raft-log.redb` about once a second while appends
/// happen and lowered (durably, first) before a truncation. At start, a log that ends before it
/// lost entries that were on disk: a damaged segment, not a torn last write (a torn write can
/// only hit entries appended after the bound was saved). The node refuses to start rather than
/// serve a log with acknowledged entries missing.
#[derive(Default)]
struct DurableEnd {
    /// The last index appended and synced (0 = none).
    latest: AtomicU64,
    /// Held while saving, so a truncation's lower value is never overwritten by an older one.
    saving: Mutex<Option<std::time::Instant>>,
    in_flight: std::sync::atomic::AtomicBool,
}

impl DurableEnd {
    fn save(&self, db: &Database) -> Result<()> {
        let mut saved = self.saving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        LogStore::write_meta(db, DURABLE_END, &self.latest.load(Ordering::SeqCst))?;
        *saved = Some(std::time::Instant::now());
        Ok(())
    }

    /// Whether to start a save now; never waits (it is asked on the append path).
    fn due(&self) -> bool {
        if self.in_flight.load(Ordering::SeqCst) {
            return false;
        }
        let Ok(saved) = self.saving.try_lock() else { return false };
        let due = saved.is_none_or(|at| at.elapsed() >= DURABLE_END_EVERY);
        drop(saved);
        due && !self.in_flight.swap(true, Ordering::SeqCst)
    }

    /// Whether the next [`Self::due`] may say yes (read only: the save is the flusher's).
    fn save_due(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst)
            || self.saving.try_lock().map_or(true, |saved| saved.is_none_or(|at| at.elapsed() >= DURABLE_END_EVERY))
    }
}

/// One append waiting for its sync.
struct Flush {
    /// The append's last index (none: an empty append).
    last: Option<u64>,
    callback: IOFlushed<TypeConfig>,
    /// When the append began, for `pizza_orders_raft_append_seconds` (append to durable).
    started: std::time::Instant,
}

/// Syncs appended entries on a thread of its own. openraft 0.10 replicates entries as soon as
/// `append` returns and waits for the callback only to count this node's copy as durable, so
/// the leader's fsync runs beside the followers' round trip instead of before it. Appends are
/// synced in order; all that wait when a sync starts share it (group commit).
struct Flusher {
    /// `None` once dropped: the thread then finishes what is queued and stops.
    jobs: Option<std::sync::mpsc::Sender<Flush>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pace: Arc<Pace>,
}

/// What [`sync_here`] decides from.
#[derive(Clone, Copy, Debug)]
struct SyncAsk {
    /// The entries are another node's (a leader's), and this node knows its own id.
    others_entries: bool,
    /// Appends the flusher has not answered yet.
    pending: u64,
    last_sync_us: u64,
    /// Since the append before this one began.
    since_last_append_us: u64,
    /// The durable end is due to be saved: that is the flusher's work, so it gets this append.
    end_save_due: bool,
}

/// See [`LogStore::sync_here`].
fn sync_here(ask: SyncAsk) -> bool {
    ask.others_entries
        && ask.pending == 0
        && ask.last_sync_us < INLINE_SYNC_MAX_US
        && ask.since_last_append_us > 2 * ask.last_sync_us
        && !ask.end_save_due
}

/// What decides whether a follower syncs an append itself ([`LogStore::sync_here`]).
struct Pace {
    /// Appends handed to the flusher whose callbacks it has not run yet.
    pending: AtomicU64,
    /// How long the last sync took, in µs.
    last_sync_us: AtomicU64,
    /// When the last append began, in µs since `epoch` plus one (0: none yet).
    last_append_us: AtomicU64,
    epoch: std::time::Instant,
}

impl Pace {
    fn new() -> Self {
        Self {
            pending: AtomicU64::new(0),
            last_sync_us: AtomicU64::new(0),
            last_append_us: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }
    }

    /// `at` in µs since `epoch`, from 1: 0 stands for "never" in `last_append_us`.
    fn us_at(&self, at: std::time::Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX).saturating_add(1)
    }
}

impl Flush {
    /// Record how long the append took to become durable and tell openraft.
    fn answer(self, synced: &std::result::Result<(), SegmentError>) {
        metrics::histogram!("pizza_orders_raft_append_seconds").record(self.started.elapsed().as_secs_f64());
        self.callback.io_completed(match synced {
            Ok(()) => Ok(()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        });
    }
}

impl Flusher {
    fn start(log: Arc<SegmentLog>, end: Arc<DurableEnd>, db: Arc<Database>) -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel();
        let pace = Arc::new(Pace::new());
        let thread_pace = pace.clone();
        let thread = std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || Self::run(&queue, &log, &end, &db, &thread_pace))?;
        Ok(Self { jobs: Some(jobs), thread: Some(thread), pace })
    }

    fn submit(&self, flush: Flush) {
        self.pace.pending.fetch_add(1, Ordering::SeqCst);
        let refused = match &self.jobs {
            Some(jobs) => jobs.send(flush).err().map(|std::sync::mpsc::SendError(flush)| flush),
            None => Some(flush),
        };
        if let Some(flush) = refused {
            self.pace.pending.fetch_sub(1, Ordering::SeqCst);
            flush.callback.io_completed(Err(std::io::Error::other("the Raft log's sync thread has stopped")));
        }
    }

    /// Sync on the calling thread, timed for [`Pace`]; then raise the durable end.
    fn sync_timed(
        log: &SegmentLog,
        end: &DurableEnd,
        pace: &Pace,
        last: Option<u64>,
    ) -> std::result::Result<(), SegmentError> {
        let syncing = std::time::Instant::now();
        let synced = log.sync();
        let took = u64::try_from(syncing.elapsed().as_micros()).unwrap_or(u64::MAX);
        pace.last_sync_us.store(took, Ordering::SeqCst);
        if synced.is_ok() {
            // A truncation holds `saving` until its entries are gone: entries it removed
            // never raise the bound again.
            let saving = end.saving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            end.latest.fetch_max(last.unwrap_or(0).min(log.last_index().unwrap_or(0)), Ordering::SeqCst);
            drop(saving);
        }
        synced
    }

    /// Until the `Flusher` is dropped (with the last `LogStore` clone).
    fn run(queue: &std::sync::mpsc::Receiver<Flush>, log: &SegmentLog, end: &DurableEnd, db: &Database, pace: &Pace) {
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            batch.extend(queue.try_iter());
            let last = batch.iter().filter_map(|f| f.last).max();
            let synced = Self::sync_timed(log, end, pace, last);
            let done = batch.len() as u64;
            for flush in batch {
                flush.answer(&synced);
            }
            pace.pending.fetch_sub(done, Ordering::SeqCst);
            if let Err(e) = &synced {
                tracing::error!(error = %e, "syncing the Raft log failed");
            } else if end.due() {
                if let Err(e) = end.save(db) {
                    tracing::warn!(error = %e, "could not save the Raft log's durable end");
                }
                end.in_flight.store(false, Ordering::SeqCst);
            }
        }
    }
}

/// The last `LogStore` clone is gone: the queued syncs finish and the thread lets go of the
/// files (a reopen of the same directory must find them closed).
impl Drop for Flusher {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl LogStore {
    /// The vote and purge point.
    pub const FILE_NAME: &'static str = "raft-log.redb";
    /// The entries' segment files.
    pub const SEGMENTS_DIR: &'static str = "raft-log";

    /// Open (or create) the log in `data_dir`, verifying its pages and records, and convert
    /// the layouts older versions wrote (the log inside the state's file, then in redb).
    pub fn open(data_dir: &Path, state: Store) -> std::result::Result<Self, StoreError> {
        let db = crate::state::open_database(&data_dir.join(Self::FILE_NAME), Some(META_CACHE_BYTES))?;
        let txn = db.begin_write()?;
        txn.open_table(RAFT_META)?;
        txn.commit()?;
        move_legacy_log(&db, &state.shared_database())?;
        let purged: Option<LogId> = Self::read_meta(&db, LAST_PURGED).map_err(|e| StoreError::Io(e.to_string()))?;
        let durable_end: Option<u64> = Self::read_meta(&db, DURABLE_END).map_err(|e| StoreError::Io(e.to_string()))?;
        let entries = SegmentLog::open(&data_dir.join(Self::SEGMENTS_DIR), purged.map(|p| p.index), durable_end)
            .map_err(segment_store_error)?;
        move_redb_log(&db, &entries, &state.shared_database())?;
        let end = entries.last_index().or(purged.map(|p| p.index)).unwrap_or(0);
        let vote: Option<Vote> = Self::read_meta(&db, VOTE).map_err(|e| StoreError::Io(e.to_string()))?;
        let term = vote.map_or(0, |v| v.leader_id.term);
        let (db, entries) = (Arc::new(db), Arc::new(entries));
        let durable_end = Arc::new(DurableEnd { latest: AtomicU64::new(end), ..DurableEnd::default() });
        let flusher = Flusher::start(entries.clone(), durable_end.clone(), db.clone())
            .map_err(|e| StoreError::Io(format!("cannot start the Raft log's sync thread: {e}")))?;
        Ok(Self {
            opened: (end, term),
            opened_purged: purged.map_or(0, |p| p.index),
            db,
            entries,
            state,
            committed: Arc::default(),
            committed_id: Arc::default(),
            vote_changes: Arc::default(),
            durable_end,
            flusher: Arc::new(flusher),
            disk: DiskSpace::new(data_dir, 0),
            node_id: 0,
        })
    }

    /// The last index purged from the log when it was opened (0: none): the current snapshot
    /// must reach at least this far.
    pub fn opened_purged(&self) -> u64 {
        self.opened_purged
    }

    /// Keep appends out of the last half of the reserve on the data directory's disk.
    pub fn with_disk_space(mut self, disk: DiskSpace) -> Self {
        self.disk = disk;
        self
    }

    /// This node's id: a follower may then sync a leader's entries itself ([`Self::sync_here`]).
    pub fn with_node_id(mut self, id: u64) -> Self {
        self.node_id = id;
        self
    }

    /// Whether this append is synced on the calling thread instead of the [`Flusher`]'s: a
    /// follower's append of a leader's entries, when nothing else waits for a sync, the last
    /// append began more than twice the last sync's time ago (appends are not arriving faster
    /// than they are synced, so there is nothing to share a sync with) and that sync took less
    /// than [`INLINE_SYNC_MAX_US`]. The follower's answer then leaves right after its `fdatasync`,
    /// from the thread that wrote, instead of after two thread hand-offs (the flusher's wake-up
    /// and the runtime's); the leader's own append always goes to the flusher, as its
    /// replication must not wait for its sync.
    fn sync_here(&self, leader: u64, began: std::time::Instant) -> bool {
        let pace = &self.flusher.pace;
        let began_us = pace.us_at(began);
        let previous = pace.last_append_us.swap(began_us, Ordering::SeqCst);
        sync_here(SyncAsk {
            others_entries: self.node_id != 0 && leader != self.node_id,
            pending: pace.pending.load(Ordering::SeqCst),
            last_sync_us: pace.last_sync_us.load(Ordering::SeqCst),
            // 0: no append yet.
            since_last_append_us: if previous == 0 { u64::MAX } else { began_us.saturating_sub(previous) },
            end_save_due: self.durable_end.save_due(),
        })
    }

    /// After an offline restore: the log starts after `last_purged`, which the restored state
    /// covers.
    pub fn record_restored(&self, last_purged: LogId) -> std::result::Result<(), StoreError> {
        let bytes = codec::encode(&last_purged)?;
        let txn = self.db.begin_write()?;
        txn.open_table(RAFT_META)?.insert(LAST_PURGED, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Delete the log's files from `data_dir` (an offline restore replaces them).
    pub fn remove_files(data_dir: &Path) {
        let _ = std::fs::remove_file(data_dir.join(Self::FILE_NAME));
        let _ = std::fs::remove_dir_all(data_dir.join(Self::SEGMENTS_DIR));
    }

    /// Bytes the log's files in `data_dir` take on disk.
    pub fn disk_bytes(data_dir: &Path) -> u64 {
        let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let segments = std::fs::read_dir(data_dir.join(Self::SEGMENTS_DIR))
            .map(|dir| dir.filter_map(|e| e.ok()).map(|e| len(&e.path())).sum())
            .unwrap_or(0);
        len(&data_dir.join(Self::FILE_NAME)) + segments
    }

    /// The last log index and the vote's term when this log was opened. A leader that restarts
    /// (openraft 0.9 resumes leading under a committed vote of its own) does not know which of
    /// its entries were committed before the crash: the commit index is not saved with every
    /// commit. Its read indexes must cover every entry it had until its term changes.
    pub fn opened(&self) -> (u64, u64) {
        self.opened
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

    fn latest_committed(&self) -> Option<LogId> {
        *self.committed_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keep `committed` as the id the next append saves and as the index readers see.
    fn remember_committed(&self, committed: Option<LogId>) {
        *self.committed_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = committed;
        self.committed.store(committed.map_or(0, |c| c.index), Ordering::SeqCst);
    }

    /// Run blocking redb work off the async reactor.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        super::run_blocking(move || work(&db)).await.map_err(io_error)?
    }

    fn read_meta<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>> {
        let txn = db.begin_read().map_err(io_error)?;
        let table = txn.open_table(RAFT_META).map_err(io_error)?;
        let raw = table.get(key).map_err(io_error)?;
        raw.map(|g| codec::decode(g.value())).transpose().map_err(io_error)
    }

    fn write_meta<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<()> {
        let bytes = codec::encode(value).map_err(io_error)?;
        let txn = db.begin_write().map_err(io_error)?;
        txn.open_table(RAFT_META).map_err(io_error)?.insert(key, bytes.as_slice()).map_err(io_error)?;
        txn.commit().map_err(io_error)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    /// Straight from the segment files: the entries openraft asks for are the newest ones,
    /// in the page cache.
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>> {
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        self.entries
            .read(range)
            .map_err(io_error)?
            .iter()
            .map(|(_, payload)| codec::decode(payload).map_err(io_error))
            .collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>> {
        self.blocking(|db| Self::read_meta(db, VOTE)).await
    }
}

impl LogStore {
    fn last_log_id(&self) -> Result<Option<LogId>> {
        let Some(last) = self.entries.last_index() else { return Ok(None) };
        let entries =
            self.entries.read((std::ops::Bound::Included(last), std::ops::Bound::Included(last))).map_err(io_error)?;
        match entries.first() {
            Some((_, payload)) => Ok(Some(codec::decode::<Entry>(payload).map_err(io_error)?.log_id)),
            None => Ok(None),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.blocking(|db| Self::read_meta(db, LAST_PURGED)).await?;
        let last = self.last_log_id()?;
        Ok(LogState { last_purged_log_id, last_log_id: last.or(last_purged_log_id) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Every entry written before is synced first: openraft counts one watermark for votes and
    /// log writes, so a saved vote tells it the appends before it are durable too (their
    /// callbacks may still be on their way from the flusher).
    async fn save_vote(&mut self, vote: &Vote) -> Result<()> {
        let vote = *vote;
        self.vote_changes.fetch_add(1, Ordering::SeqCst);
        let log = self.entries.clone();
        self.blocking(move |db| {
            log.sync().map_err(io_error)?;
            Self::write_meta(db, VOTE, &vote)
        })
        .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<()> {
        self.remember_committed(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>> {
        if let Some(latest) = self.latest_committed() {
            return Ok(Some(latest));
        }
        let committed: Option<LogId> = self.blocking(|db| Self::read_meta(db, COMMITTED)).await?.flatten();
        self.remember_committed(committed);
        Ok(committed)
    }

    /// One write for the whole batch, then back to openraft, which replicates the entries
    /// while the [`Flusher`] syncs them; openraft hears they are durable only after the fsync.
    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        super::busy_poll::touch();
        let mut leader = self.node_id;
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| {
                leader = e.log_id.leader_id.node_id;
                codec::encode(&e).map(|bytes| (e.log_id.index, bytes))
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(io_error)?;
        let log = self.entries.clone();
        let last = encoded.last().map(|(i, _)| *i);
        let disk = self.disk.clone();
        let started = std::time::Instant::now();
        // The write only copies into the page cache (the fsync is the flusher's): done right
        // here, it costs less than handing the runtime's worker to another thread (measured
        // in docs/design.md, "Pipelined appends"). Only a disk short of room, where the write
        // waits, goes through `run_blocking`.
        let written = if disk.log_has_room() {
            log.write(&encoded).map_err(io_error)
        } else {
            super::run_blocking(move || {
                disk.wait_for_room();
                log.write(&encoded).map_err(io_error)
            })
            .await
            .map_err(io_error)
            .and_then(|r| r)
        };
        match written {
            Ok(()) if self.sync_here(leader, started) => {
                let synced = Flusher::sync_timed(&self.entries, &self.durable_end, &self.flusher.pace, last);
                Flush { last, callback, started }.answer(&synced);
                synced.map_err(|e| {
                    tracing::error!(error = %e, "syncing the Raft log failed");
                    io_error(e)
                })
            }
            Ok(()) => {
                self.flusher.submit(Flush { last, callback, started });
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    /// Delete entries after `last` (a new leader overwrote them; `None`: every entry). The
    /// durable end is lowered first, so the next start does not take the shorter log for a
    /// damaged one.
    async fn truncate_after(&mut self, last: Option<LogId>) -> Result<()> {
        let from = last.map_or(0, |l| l.index + 1);
        tracing::info!(from, "truncating the Raft log: a new leader replaced entries this node had not committed");
        let (log, end) = (self.entries.clone(), self.durable_end.clone());
        self.blocking(move |db| {
            // Held until the entries are gone, so the flusher cannot raise the bound again from
            // the entries being removed (see `Flusher::run`).
            let saving = end.saving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let lowered = end.latest.load(Ordering::SeqCst).min(from.saturating_sub(1));
            end.latest.store(lowered, Ordering::SeqCst);
            LogStore::write_meta(db, DURABLE_END, &lowered)?;
            let truncated = log.truncate(from).map_err(io_error);
            drop(saving);
            truncated
        })
        .await
    }

    /// Delete entries up to and including `log_id` (a snapshot covers them), once the state
    /// that applied them is durable: after a crash openraft re-applies from the durable state,
    /// so the entries after it must still be here. The purge point (and the latest committed
    /// id) are saved before any file goes.
    async fn purge(&mut self, log_id: LogId) -> Result<()> {
        let state = self.state.clone();
        let log = self.entries.clone();
        let committed = codec::encode(&self.latest_committed()).map_err(io_error)?;
        self.blocking(move |db| {
            state.make_durable().map_err(io_error)?;
            let bytes = codec::encode(&log_id).map_err(io_error)?;
            let txn = db.begin_write().map_err(io_error)?;
            {
                let mut meta = txn.open_table(RAFT_META).map_err(io_error)?;
                meta.insert(LAST_PURGED, bytes.as_slice()).map_err(io_error)?;
                meta.insert(COMMITTED, committed.as_slice()).map_err(io_error)?;
            }
            txn.commit().map_err(io_error)?;
            log.purge(log_id.index).map_err(io_error)?;
            tracing::info!(upto = %log_id, "Raft log purged");
            Ok(())
        })
        .await
    }
}

fn segment_store_error(e: SegmentError) -> StoreError {
    match e {
        SegmentError::Io { path, source } => StoreError::DataDir { path, source },
        SegmentError::Corrupt { path, detail } => StoreError::Unreadable { path, reason: detail },
        other => StoreError::Io(other.to_string()),
    }
}

/// Move a log that data format 3 kept in `raft-log.redb` into segment files, then set the
/// format to 4. Resumable: entries already in the segments are not copied again, and the
/// table is dropped only after the copy is on disk.
fn move_redb_log(meta: &Database, log: &SegmentLog, state: &Database) -> std::result::Result<(), StoreError> {
    use crate::state::tables::{DATA_FORMAT_REDB_LOG, DATA_FORMAT_SEGMENT_LOG, META, META_SCHEMA_VERSION};
    use redb::TableHandle;
    let format = state.begin_read()?.open_table(META)?.get(META_SCHEMA_VERSION)?.map(|v| v.value());
    let has_table = meta.begin_read()?.list_tables()?.any(|t| t.name() == RAFT_LOG.name());
    if format != Some(DATA_FORMAT_REDB_LOG) && !has_table {
        return Ok(());
    }
    if has_table {
        let txn = meta.begin_read()?;
        let table = txn.open_table(RAFT_LOG)?;
        let after = log.last_index();
        let mut batch: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut moved = 0u64;
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        for item in table.range::<u64>((start, std::ops::Bound::Unbounded))? {
            let (index, entry) = item?;
            batch.push((index.value(), entry.value().to_vec()));
            if batch.len() == 1024 {
                log.append(&batch).map_err(segment_store_error)?;
                moved += batch.len() as u64;
                batch.clear();
            }
        }
        moved += batch.len() as u64;
        log.append(&batch).map_err(segment_store_error)?;
        drop(table);
        drop(txn);
        let txn = meta.begin_write()?;
        txn.delete_table(RAFT_LOG)?;
        txn.commit()?;
        tracing::info!(
            entries = moved,
            "moved the Raft log out of {} into {}/",
            LogStore::FILE_NAME,
            LogStore::SEGMENTS_DIR
        );
    }
    let txn = state.begin_write()?;
    txn.open_table(META)?.insert(META_SCHEMA_VERSION, DATA_FORMAT_SEGMENT_LOG)?;
    txn.commit()?;
    Ok(())
}

/// Move the log and Raft variables that data format 2 kept in `orders.redb` into the log's
/// own file. The copy is one durable transaction; the old tables are dropped and the format
/// set to 3 only after it: a crash in between leaves both, and the next start just drops the
/// old ones.
fn move_legacy_log(log: &Database, state: &Database) -> std::result::Result<(), StoreError> {
    use crate::state::tables::{DATA_FORMAT_REDB_LOG, DATA_FORMAT_SHARED_LOG, META, META_SCHEMA_VERSION};
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
        let no_entries =
            !txn.list_tables()?.any(|t| t.name() == RAFT_LOG.name()) || txn.open_table(RAFT_LOG)?.is_empty()?;
        no_entries && txn.open_table(RAFT_META)?.is_empty()?
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
    txn.open_table(META)?.insert(META_SCHEMA_VERSION, DATA_FORMAT_REDB_LOG)?;
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::CommittedLeaderId;
    use crate::state::tables::{
        DATA_FORMAT_REDB_LOG, DATA_FORMAT_SEGMENT_LOG, DATA_FORMAT_SHARED_LOG, META, META_SCHEMA_VERSION,
    };

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
                let entry = Entry {
                    log_id: LogId::new(CommittedLeaderId { term: 1, node_id: 1 }, index),
                    payload: openraft::EntryPayload::Blank,
                };
                log.insert(index, codec::encode(&entry).unwrap().as_slice()).unwrap();
            }
            let vote = Vote::new_committed(1, 1);
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
        assert_eq!(data_format(&store), Some(DATA_FORMAT_SEGMENT_LOG));
        drop(log);
        // Opening again is a no-op.
        let mut log = LogStore::open(dir.path(), store).unwrap();
        assert_eq!(block_on(log.try_get_log_entries(..)).unwrap().len(), 3);
    }

    /// A data directory as format 3 left it: entries 1..=5 in `raft-log.redb`, and, as if
    /// the move to segment files had stopped half-way, entries 1..=2 already in a segment.
    fn redb_log_dir(half_moved: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = store.shared_database();
        let txn = state.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(META_SCHEMA_VERSION, DATA_FORMAT_REDB_LOG).unwrap();
        txn.commit().unwrap();
        let db = crate::state::open_database(&dir.path().join(LogStore::FILE_NAME), None).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut log = txn.open_table(RAFT_LOG).unwrap();
            for index in 1..=5u64 {
                log.insert(index, codec::encode(&blank(index)).unwrap().as_slice()).unwrap();
            }
            let vote = Vote::new_committed(2, 1);
            txn.open_table(RAFT_META).unwrap().insert(VOTE, codec::encode(&vote).unwrap().as_slice()).unwrap();
        }
        txn.commit().unwrap();
        if half_moved {
            let segments = SegmentLog::open(&dir.path().join(LogStore::SEGMENTS_DIR), None, None).unwrap();
            let first_two: Vec<_> = (1..=2).map(|i| (i, codec::encode(&blank(i)).unwrap())).collect();
            segments.append(&first_two).unwrap();
        }
        dir
    }

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId { term: 1, node_id: 1 }, index),
            payload: openraft::EntryPayload::Blank,
        }
    }

    #[test]
    fn a_log_kept_in_redb_by_an_older_version_moves_to_segment_files_even_after_a_crash_half_way() {
        for half_moved in [false, true] {
            let dir = redb_log_dir(half_moved);
            let store = Store::open(dir.path()).unwrap();
            let mut log = LogStore::open(dir.path(), store.clone()).unwrap();
            let entries = block_on(log.try_get_log_entries(..)).unwrap();
            assert_eq!(entries, (1..=5).map(blank).collect::<Vec<_>>(), "half moved: {half_moved}");
            assert_eq!(block_on(log.read_vote()).unwrap(), Some(Vote::new_committed(2, 1)));
            assert_eq!(data_format(&store), Some(DATA_FORMAT_SEGMENT_LOG));
            use redb::TableHandle;
            let tables: Vec<String> =
                { log.db.begin_read().unwrap().list_tables().unwrap().map(|t| t.name().to_string()).collect() };
            assert!(!tables.iter().any(|t| t == RAFT_LOG.name()), "{tables:?}");
        }
    }

    #[test]
    fn a_follower_syncs_a_leaders_append_itself_only_when_nothing_would_share_the_sync() {
        let quiet = SyncAsk {
            others_entries: true,
            pending: 0,
            last_sync_us: 200,
            since_last_append_us: 1_000,
            end_save_due: false,
        };
        assert!(sync_here(quiet));
        // The leader's own entries: its replication must not wait for its sync.
        assert!(!sync_here(SyncAsk { others_entries: false, ..quiet }));
        // An earlier append still waits for the flusher: its answer must not come after this one's.
        assert!(!sync_here(SyncAsk { pending: 1, ..quiet }));
        // Appends coming faster than syncs: the flusher shares one sync among them.
        assert!(!sync_here(SyncAsk { since_last_append_us: 400, ..quiet }));
        assert!(sync_here(SyncAsk { since_last_append_us: 401, ..quiet }));
        // A slow disk would hold the runtime's worker too long.
        assert!(!sync_here(SyncAsk { last_sync_us: INLINE_SYNC_MAX_US, since_last_append_us: u64::MAX, ..quiet }));
        // The durable end's save is the flusher's.
        assert!(!sync_here(SyncAsk { end_save_due: true, ..quiet }));
    }

    #[test]
    fn a_followers_own_sync_is_durable_when_append_returns_and_a_leaders_append_is_synced_by_the_flusher() {
        use futures::FutureExt;
        use openraft::type_config::TypeConfigExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let entry = |leader: u64, index: u64| Entry {
            log_id: LogId::new(CommittedLeaderId { term: 1, node_id: leader }, index),
            payload: openraft::EntryPayload::Blank,
        };
        block_on(async {
            let mut log = LogStore::open(dir.path(), store.clone()).unwrap().with_node_id(2);
            // The durable end was just saved, and the last append was long ago.
            log.durable_end.save(&log.db).unwrap();
            let (tx, rx) = TypeConfig::oneshot();
            log.append([entry(1, 1)], IOFlushed::signal(tx)).await.unwrap();
            let answered = rx.now_or_never().expect("answered before append returned");
            assert!(matches!(answered, Ok(Ok(()))), "{answered:?}");
            assert_eq!(log.durable_end.latest.load(Ordering::SeqCst), 1);
            assert_eq!(log.flusher.pace.pending.load(Ordering::SeqCst), 0);
            // This node's own entry (it leads now): synced by the flusher, answered all the same.
            let (tx, rx) = TypeConfig::oneshot();
            log.append([entry(2, 2)], IOFlushed::signal(tx)).await.unwrap();
            assert!(matches!(rx.await, Ok(Ok(()))));
            assert_eq!(log.durable_end.latest.load(Ordering::SeqCst), 2);
            let read = log.try_get_log_entries(1..=2).await.unwrap();
            assert_eq!(read, vec![entry(1, 1), entry(2, 2)]);
        });
        // Both are on disk for the next start.
        let mut log = LogStore::open(dir.path(), store).unwrap();
        assert_eq!(block_on(log.try_get_log_entries(..)).unwrap().len(), 2);
    }

    // Damages a segment file by hand: the format of `log_segments`.
    #[cfg(not(feature = "raft-log-eval"))]
    #[test]
    fn a_log_shorter_than_its_saved_durable_end_is_refused_but_a_truncated_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let put = |log: &LogStore, range: std::ops::RangeInclusive<u64>| {
            let entries: Vec<_> = range.map(|i| (i, codec::encode(&blank(i)).unwrap())).collect();
            log.entries.append(&entries).unwrap();
            log.durable_end.latest.store(entries.last().unwrap().0, Ordering::SeqCst);
            log.durable_end.save(&log.db).unwrap();
        };
        let mut log = LogStore::open(dir.path(), store.clone()).unwrap();
        put(&log, 1..=5);
        block_on(log.truncate_after(Some(LogId::new(CommittedLeaderId { term: 1, node_id: 1 }, 3)))).unwrap();
        drop(log);
        let log = LogStore::open(dir.path(), store.clone()).expect("a truncated log opens");
        put(&log, 4..=6);
        drop(log);
        // Damage entry 5's payload: the chain ends the log at 4, before the saved end 6.
        let record = 16 + codec::encode(&blank(1)).unwrap().len() as u64;
        let segment = dir.path().join(LogStore::SEGMENTS_DIR).join(format!("{:020}.seg", 1));
        let file = std::fs::OpenOptions::new().write(true).open(segment).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &[0xFF], 32 + 4 * record + 17).unwrap();
        let err = LogStore::open(dir.path(), store).err().expect("refused").to_string();
        assert!(err.contains("ends at entry 4, but entries up to 6 were on disk"), "{err}");
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
