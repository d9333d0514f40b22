//! The Raft log's entries on the `raft-log` crate (drmingdrmer's WAL, written for databend's
//! meta-service), with the same surface as [`super::log_segments::SegmentLog`]: only built with
//! the `raft-log-eval` feature, to measure the two side by side under the same `LogStore`,
//! node and benchmarks (docs/design.md, "The Raft log"). Not shipped.
//!
//! Mapping: one raft-log record per entry, keyed by its index (the payload is the encoded
//! openraft entry, as in the segment files); the vote, purge point and committed id stay in
//! `raft-log.redb` as with the segments. raft-log writes a record before it checks it (an
//! out-of-order append would be on disk and fail every later open), so the checks that
//! `SegmentLog` makes are made here first.

use std::ops::Bound;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::{Config, RaftLog};

use super::log_segments::SegmentError;

type Result<T> = std::result::Result<T, SegmentError>;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Entries;

impl raft_log::Types for Entries {
    type LogId = u64;
    type LogPayload = Vec<u8>;
    /// The vote is not kept here.
    type Vote = u64;
    type Callback = mpsc::SyncSender<std::io::Result<()>>;
    type UserData = ();

    fn log_index(log_id: &u64) -> u64 {
        *log_id
    }

    fn payload_size(payload: &Vec<u8>) -> u64 {
        payload.len() as u64
    }
}

/// The log on raft-log; see the module docs.
pub struct RaftLogEntries {
    dir: String,
    /// `None` only after a failed [`Self::reset`].
    log: Mutex<Option<RaftLog<Entries>>>,
}

type Guard<'a> = MutexGuard<'a, Option<RaftLog<Entries>>>;

fn io_error(dir: &str) -> impl Fn(std::io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io { path: dir.to_owned(), source }
}

impl RaftLogEntries {
    /// Open (or create) the log in `dir`; `purged` and `durable_end` as for `SegmentLog::open`.
    pub fn open(dir: &Path, purged: Option<u64>, durable_end: Option<u64>) -> Result<Self> {
        let name = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(io_error(&name))?;
        let log = RaftLog::<Entries>::open(Arc::new(Self::config(&name))).map_err(io_error(&name))?;
        let this = Self { dir: name, log: Mutex::new(Some(log)) };
        let (last, already) = {
            let mut guard = this.lock();
            let log = this.raft(&mut guard)?;
            (log.log_state().last().copied(), log.log_state().purged().copied())
        };
        if let Some(durable) = durable_end.filter(|&d| last.max(purged).is_none_or(|end| d > end)) {
            return Err(SegmentError::Corrupt {
                path: this.dir.clone(),
                detail: format!("the Raft log ends at {last:?}, but entries up to {durable} were on disk"),
            });
        }
        if let Some(p) = purged.filter(|&p| already.is_none_or(|a| a < p)) {
            this.purge(p)?;
        }
        Ok(this)
    }

    /// An empty log in place of the current one, which holds nothing readable.
    fn reset(&self, guard: &mut Guard<'_>) -> Result<()> {
        // Dropped first: it holds the directory's lock.
        **guard = None;
        let config = Self::config(&self.dir);
        for chunk in RaftLog::<Entries>::load_chunk_ids(&config).map_err(io_error(&self.dir))? {
            let path = config.chunk_path(chunk);
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
        **guard = Some(RaftLog::open(Arc::new(config)).map_err(io_error(&self.dir))?);
        Ok(())
    }

    fn raft<'g>(&self, guard: &'g mut Guard<'_>) -> Result<&'g mut RaftLog<Entries>> {
        guard.as_mut().ok_or_else(|| io_error(&self.dir)(std::io::Error::other("the log could not be reopened")))
    }

    fn config(dir: &str) -> Config {
        Config {
            dir: dir.to_owned(),
            // The same bound on memory as the segment log's reads (which keep no cache).
            log_cache_capacity: Some(64 << 20),
            read_buffer_size: Some(1 << 20),
            // The segment log's 32 MiB segments.
            chunk_max_size: Some(32 << 20),
            ..Config::default()
        }
    }

    fn lock(&self) -> Guard<'_> {
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queue a flush and wait for raft-log's flush thread to sync it.
    fn flush(&self, mut guard: Guard<'_>) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.raft(&mut guard)?.flush(tx).map_err(io_error(&self.dir))?;
        drop(guard);
        match rx.recv() {
            Ok(result) => result.map_err(io_error(&self.dir)),
            Err(_) => Err(io_error(&self.dir)(std::io::Error::other("raft-log's flush thread stopped"))),
        }
    }

    fn readable(log: &RaftLog<Entries>) -> (u64, Option<u64>) {
        let state = log.log_state();
        let first = state.purged().map_or(0, |p| p + 1);
        (first, state.last().copied().filter(|&l| l >= first))
    }

    /// The last entry's index, if the log holds any entry that is not purged.
    pub fn last_index(&self) -> Option<u64> {
        self.lock().as_ref().and_then(|log| Self::readable(log).1)
    }

    /// Payloads of the readable entries in `range`, in order.
    pub fn read(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut guard = self.lock();
        let log = self.raft(&mut guard)?;
        let (first, last) = Self::readable(log);
        let Some(last) = last else { return Ok(Vec::new()) };
        let from = match range.0 {
            Bound::Included(a) => a,
            Bound::Excluded(a) => a.saturating_add(1),
            Bound::Unbounded => first,
        }
        .max(first);
        let to = match range.1 {
            Bound::Included(b) => b.saturating_add(1),
            Bound::Excluded(b) => b,
            Bound::Unbounded => last + 1,
        }
        .min(last + 1);
        if from >= to {
            return Ok(Vec::new());
        }
        log.read(from, to).collect::<std::io::Result<Vec<_>>>().map_err(io_error(&self.dir))
    }

    /// Append entries (consecutive indexes, following the last one) and sync them.
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        let Some(&(first, _)) = entries.first() else { return Ok(()) };
        let mut guard = self.lock();
        let log = self.raft(&mut guard)?;
        if Self::readable(log).1.is_none() && log.log_state().last().is_some_and(|&l| first <= l) {
            // Nothing readable is left and the append starts at or before the purge point (the
            // state was ahead of the log at start, and openraft purged up to it): raft-log
            // keeps its end at the purge point and refuses lower indexes, so start it afresh,
            // as the segment log starts a new segment there.
            self.reset(&mut guard)?;
        }
        let log = self.raft(&mut guard)?;
        let expected_after = log.log_state().last().copied();
        let consecutive = entries.windows(2).all(|w| w[1].0 == w[0].0 + 1);
        if !consecutive || expected_after.is_some_and(|l| first != l + 1) {
            return Err(SegmentError::OutOfOrder { got: first, expected_after });
        }
        log.append(entries.iter().cloned()).map_err(io_error(&self.dir))?;
        self.flush(guard)
    }

    /// `append`: raft-log's flush goes through its own worker, so entries are synced here at
    /// once and [`Self::sync`] has nothing left to do.
    pub fn write(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        self.append(entries)
    }

    /// Nothing: every `write` was synced.
    pub fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// Remove entries at and after `from`, durably.
    pub fn truncate(&self, from: u64) -> Result<()> {
        let mut guard = self.lock();
        let log = self.raft(&mut guard)?;
        let (first, last) = Self::readable(log);
        if last.is_none_or(|l| from > l) {
            return Ok(());
        }
        log.truncate(from.max(first)).map_err(io_error(&self.dir))?;
        self.flush(guard)
    }

    /// Mark entries up to `upto` purged (the caller recorded `upto` durably first); raft-log
    /// deletes whole chunks after the next flush, which is waited for here.
    pub fn purge(&self, upto: u64) -> Result<()> {
        let mut guard = self.lock();
        self.raft(&mut guard)?.purge(upto).map_err(io_error(&self.dir))?;
        self.flush(guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
        range.map(|i| (i, format!("entry {i}").into_bytes())).collect()
    }

    #[test]
    fn appends_reads_truncates_and_purges_like_the_segment_log_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = RaftLogEntries::open(dir.path(), None, None).unwrap();
        assert_eq!(log.last_index(), None);
        log.append(&entries(1..=10)).unwrap();
        assert!(matches!(log.append(&entries(12..=12)), Err(SegmentError::OutOfOrder { .. })));
        assert_eq!(log.read((Bound::Included(3), Bound::Excluded(5))).unwrap(), entries(3..=4));
        log.truncate(8).unwrap();
        assert_eq!(log.last_index(), Some(7));
        log.purge(4).unwrap();
        assert_eq!(log.read((Bound::Unbounded, Bound::Unbounded)).unwrap(), entries(5..=7));
        drop(log);
        let log = RaftLogEntries::open(dir.path(), Some(4), Some(7)).unwrap();
        assert_eq!(log.read((Bound::Unbounded, Bound::Unbounded)).unwrap(), entries(5..=7));
        // A purge past the end (a snapshot installed) leaves no readable entry; appends follow it.
        log.purge(20).unwrap();
        assert_eq!(log.last_index(), None);
        log.append(&entries(21..=22)).unwrap();
        assert_eq!(log.last_index(), Some(22));
        drop(log);
        assert!(RaftLogEntries::open(dir.path(), Some(20), Some(30)).is_err(), "shorter than its durable end");
    }
}
