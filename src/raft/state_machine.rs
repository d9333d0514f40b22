//! The Raft state machine: committed entries go through the deterministic `state::apply`.
//!
//! Choice: apply commits *lazily* (`Durability::None`). The last applied log id and the
//! membership are written in the same transaction as the state they cover, and the state file
//! is made durable once a second (`checkpoint`), before the log store purges entries, and on
//! shutdown. After a crash the state is therefore some consistent earlier point and openraft
//! re-applies the log (its own file, every append fsynced) from the durable `applied` id.
//! This saves one fsync per batch.
//!
//! Snapshots are streamed from a redb read transaction to a file (`state::snapshot`), never
//! built in memory; installing one replaces every state table in one write transaction.

use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::SnapshotOf;
use openraft::{BasicNode, EntryPayload, OptionalSend, RaftSnapshotBuilder};
use openraft_legacy::network_v1::SnapshotReceiverFactory;
use redb::{Database, Durability, ReadableDatabase, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{io_error, CommittedLeaderId, Entry, LogId, NodeId, Response, TypeConfig};
use crate::codec;
use crate::state::tables::REPLICATION;
use crate::state::{apply_in, snapshot, Tx};

/// Batches up to this many commands are applied on the state-machine task itself, holding the
/// runtime's worker for at most ~1.5 ms (~23 µs a command without fsync, `cargo bench --bench
/// apply`); larger ones (a follower catching up) through `run_blocking`, so heartbeats and
/// requests are not held longer. Handing the worker to another thread for every batch cost
/// more than it saved on a loaded machine: three nodes at 64 connections, limit 8 → 64,
/// 8 372 → 9 524 creates/s and 158 → 141 µs of the nodes' CPU a create (docs/benchmarks.md,
/// "Round three, twelfth stop").
const INLINE_APPLY_COMMANDS: usize = 64;

const APPLIED: &str = "applied";
const MEMBERSHIP: &str = "membership";
const CURRENT_SNAPSHOT: &str = "current.snapshot";
const CURRENT_META: &str = "current.meta";

type Result<T> = std::io::Result<T>;
type Membership = super::StoredMembership;
pub type Meta = super::SnapshotMeta;
type Snapshot = SnapshotOf<TypeConfig, tokio::fs::File>;

#[derive(Clone)]
pub struct StateMachine {
    db: Arc<Database>,
    snapshot_dir: PathBuf,
    /// The file a snapshot from the leader is being received into, removed once installed.
    receiving: Arc<Mutex<Option<PathBuf>>>,
    /// The last applied log index, set once its transaction committed (reads check it before
    /// waiting on openraft's metrics).
    applied: Arc<AtomicU64>,
    /// Where each applied batch's load changes go (live availability); none in tools and tests.
    loads: Option<crate::state::changes::LoadFeed>,
    /// The API's cache of rendered order answers: the answers of the orders a batch wrote are
    /// dropped after it commits and before it counts as applied; none in tools and tests.
    views: Option<Arc<crate::state::views::OrderViews>>,
    /// Told the catalog version of every committed state, so the API knows the catalog in force
    /// without a read transaction; none in tools and tests.
    catalog: Option<Arc<crate::state::CatalogInForce>>,
    /// Held while a snapshot is made current: a build (on its own task, from a read
    /// transaction taken earlier) and an install of the leader's snapshot may finish in either
    /// order, and the older one must not replace the newer.
    publishing: Arc<Mutex<()>>,
}

/// A snapshot's name in logs and file names: the term and index of the last entry it covers.
/// (openraft 0.9 kept a `snapshot_id` in the metadata; 0.10 names a snapshot by what it
/// covers.)
pub fn snapshot_name(meta: &Meta) -> String {
    meta.last_log_id.map_or_else(|| "empty".to_owned(), |l| format!("{}-{}", l.leader_id.term, l.index))
}

/// The snapshot metadata as stored beside the snapshot file.
#[derive(Serialize, Deserialize)]
struct StoredMeta {
    meta: Meta,
}

impl StateMachine {
    pub fn new(db: Arc<Database>, data_dir: &Path) -> std::io::Result<Self> {
        let snapshot_dir = data_dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)?;
        let (applied, _) = Self::read_applied(&db).map_err(|e| std::io::Error::other(e.to_string()))?;
        let applied = Arc::new(AtomicU64::new(applied.map_or(0, |l| l.index)));
        let machine = Self {
            db,
            snapshot_dir,
            receiving: Arc::default(),
            applied,
            loads: None,
            views: None,
            catalog: None,
            publishing: Arc::default(),
        };
        machine.remove_stale_files();
        machine.forget_snapshot_ahead_of_state()?;
        Ok(machine)
    }

    /// Make sure the current snapshot covers the log purged up to `purged` (openraft refuses to
    /// start otherwise, with a panic). A node whose older build let a late snapshot build
    /// replace a newer installed one has a state that does cover it: a snapshot is built from
    /// that state. A state behind the purge cannot be repaired here.
    pub fn cover_purged_log(&self, purged: u64) -> std::result::Result<(), String> {
        let current = self.current_meta().map_err(|e| e.to_string())?;
        let snapshot = current.and_then(|m| m.last_log_id).map_or(0, |l| l.index);
        if snapshot >= purged {
            return Ok(());
        }
        let applied = self.applied.load(Ordering::SeqCst);
        if applied < purged {
            return Err(format!(
                "the Raft log was purged up to {purged}, but the state is at {applied} and the newest \
                 snapshot at {snapshot}: this node's data cannot be used. Stop it, remove its data \
                 directory, start it empty and add it again ('cluster add'): it catches up from the others"
            ));
        }
        tracing::warn!(
            purged,
            snapshot,
            applied,
            "the newest snapshot is behind the purged log; building one from the state"
        );
        self.build().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Publish what each applied batch changed on `feed` (live availability).
    pub fn with_load_feed(mut self, feed: crate::state::changes::LoadFeed) -> Self {
        self.loads = Some(feed);
        self
    }

    /// Tell `catalog` the catalog version of the state now and after every commit.
    pub fn with_catalog(mut self, catalog: Arc<crate::state::CatalogInForce>) -> Self {
        Self::tell_catalog(&self.db, &catalog);
        self.catalog = Some(catalog);
        self
    }

    /// Read the catalog version the committed state holds into `catalog` (or, failing that,
    /// make the API ask the database).
    fn tell_catalog(db: &Database, catalog: &crate::state::CatalogInForce) {
        let read = db
            .begin_read()
            .map_err(|e| e.to_string())
            .and_then(|txn| crate::state::catalog::read_version(&txn).map_err(|e| e.to_string()));
        match read {
            Ok(version) => catalog.committed_version(version),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the catalog version in force; the API reads it per request");
                catalog.forget();
            }
        }
    }

    /// Keep `views` (the API's rendered order answers) current with the state.
    pub fn with_views(mut self, views: Arc<crate::state::views::OrderViews>) -> Self {
        self.views = Some(views);
        self
    }

    /// Earlier builds published a snapshot before the state it was read from was durable;
    /// after a crash in between, the snapshot is ahead of the state and of every committed id
    /// on disk, and openraft would refuse to start (it panics). Its entries are still in the
    /// log (purging makes the state durable first), so the snapshot is dropped and openraft
    /// re-applies them.
    fn forget_snapshot_ahead_of_state(&self) -> std::io::Result<()> {
        let meta = self.current_meta().map_err(|e| std::io::Error::other(e.to_string()))?;
        let snapshot = meta.and_then(|m| m.last_log_id).map_or(0, |l| l.index);
        let applied = self.applied.load(Ordering::SeqCst);
        if snapshot > applied {
            tracing::warn!(snapshot, applied, "the current snapshot is ahead of the durable state; dropping it");
            std::fs::remove_file(self.snapshot_dir.join(CURRENT_META))?;
        }
        Ok(())
    }

    /// The counter of the last log index whose effects reads can see, shared with the node
    /// (not to be confused with `applied_index(txn)`, the index stored in the state).
    pub fn applied_counter(&self) -> Arc<AtomicU64> {
        self.applied.clone()
    }

    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce(&Self) -> Result<T> + Send + 'static) -> Result<T> {
        let this = self.clone();
        super::run_blocking(move || work(&this)).await.map_err(io_error)?
    }

    fn read_applied(db: &Database) -> Result<(Option<LogId>, Membership)> {
        replication_record(&db.begin_read().map_err(io_error)?).map_err(io_error)
    }

    /// Record the last applied log id and, when given, the membership it brought.
    fn write_applied(txn: &WriteTransaction, applied: Option<LogId>, membership: Option<&Membership>) -> Result<()> {
        let mut table = txn.open_table(REPLICATION).map_err(io_error)?;
        table.insert(APPLIED, codec::encode(&applied).map_err(io_error)?.as_slice()).map_err(io_error)?;
        if let Some(membership) = membership {
            table.insert(MEMBERSHIP, codec::encode(membership).map_err(io_error)?.as_slice()).map_err(io_error)?;
        }
        Ok(())
    }

    /// One write transaction for the batch; the membership is rewritten only by a batch that
    /// changes it.
    fn apply_entries(&self, entries: Vec<Entry>) -> Result<Vec<Response>> {
        // Whatever an earlier, failed batch noted on this thread is not news.
        crate::state::changes::take();
        crate::state::changes::take_written_orders();
        let mut membership = None;
        let mut txn = self.db.begin_write().map_err(io_error)?;
        txn.set_durability(Durability::None).map_err(io_error)?;
        let mut responses = Vec::with_capacity(entries.len());
        let mut last = None;
        // The tables stay open for the whole batch (state/tx.rs: reopening them per command
        // cost about 1 µs a table, some twenty per create, on every replica).
        let tables = Tx::new(&txn);
        for entry in entries {
            last = Some(entry.log_id);
            responses.push(match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(proposal) => {
                    // Sized once: collecting through `Result` starts small and doubles, moving
                    // every outcome (each holds its order) four times for a batch of 64.
                    let mut outcomes = Vec::with_capacity(proposal.commands.len());
                    for command in &proposal.commands {
                        outcomes.push(apply_in(&tables, entry.log_id.index, command).map_err(io_error)?);
                    }
                    outcomes
                }
                EntryPayload::Membership(m) => {
                    membership = Some(Membership::new(Some(entry.log_id), m));
                    Vec::new()
                }
            });
        }
        // The catalog version this batch leaves in force (one read of a table already open):
        // the API learns it once the batch is committed.
        let catalog_version = match &self.catalog {
            Some(_) => Some(crate::state::catalog::version(&tables).map_err(io_error)?),
            None => None,
        };
        drop(tables);
        if last.is_some() {
            Self::write_applied(&txn, last, membership.as_ref())?;
        }
        if let Err(e) = txn.commit() {
            if let Some(catalog) = &self.catalog {
                catalog.forget();
            }
            return Err(io_error(e));
        }
        if let (Some(catalog), Some(version)) = (&self.catalog, catalog_version) {
            catalog.committed_version(version);
        }
        let written = crate::state::changes::take_written_orders();
        if let Some(views) = &self.views {
            views.invalidate(&written);
        }
        if let Some(last) = last {
            self.applied.store(last.index, Ordering::SeqCst);
        }
        let changes = crate::state::changes::take();
        if let Some(feed) = &self.loads {
            feed.publish(changes);
        }
        Ok(responses)
    }

    fn snapshot_path(&self) -> PathBuf {
        self.snapshot_dir.join(CURRENT_SNAPSHOT)
    }

    /// Stream the state to a new file, fsync it, then make it the current snapshot.
    fn build(&self) -> Result<Meta> {
        let txn = self.db.begin_read().map_err(io_error)?;
        let (applied, membership) = replication_record(&txn).map_err(io_error)?;
        let started = std::time::Instant::now();
        let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let tmp = self.snapshot_dir.join(format!("building-{nonce}.tmp"));
        let file = std::fs::File::create(&tmp).map_err(io_error)?;
        let mut out = BufWriter::new(file);
        let summary = snapshot::write_state(&txn, &mut out).map_err(io_error)?;
        let file = out.into_inner().map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        // Apply commits lazily: the state this snapshot was read from may not be on disk yet.
        // A snapshot ahead of the durable state would be ahead of the committed id openraft
        // finds after a crash, which it refuses to start with.
        crate::state::make_durable(&self.db).map_err(io_error)?;
        let meta = Meta { last_log_id: applied, last_membership: membership };
        if let Some(newer) = self.publish(&tmp, &meta)? {
            // A snapshot from the leader was installed while this one was being built.
            tracing::info!(built = %snapshot_name(&meta), current = %snapshot_name(&newer), "a newer snapshot is current; the one built is dropped");
            return Ok(newer);
        }
        let took = started.elapsed();
        metrics::histogram!("pizza_orders_raft_snapshot_build_seconds").record(took.as_secs_f64());
        tracing::info!(snapshot = %snapshot_name(&meta), digest = %&summary.digest_hex()[..12], records = summary.records, ms = took.as_millis() as u64, "snapshot built");
        Ok(meta)
    }

    /// Make `file` the current snapshot with `meta`: the meta is written after the file is in
    /// place, both by rename, so a crash leaves the old pair or the new pair. Unless the current
    /// snapshot is newer: then `file` is removed and the current meta returned. (A build that
    /// finished after an install once put an older snapshot back while the log had been purged
    /// up to the installed one; that node could not start again: found by the 30-minute soak.)
    fn publish(&self, file: &Path, meta: &Meta) -> Result<Option<Meta>> {
        let _publishing = self.publishing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(current) = self.current_meta()? {
            if current.last_log_id > meta.last_log_id {
                let _ = std::fs::remove_file(file);
                return Ok(Some(current));
            }
        }
        publish_in(&self.snapshot_dir, file, meta)?;
        Ok(None)
    }

    fn current_meta(&self) -> Result<Option<Meta>> {
        match std::fs::read(self.snapshot_dir.join(CURRENT_META)) {
            Ok(bytes) => Ok(Some(codec::decode::<StoredMeta>(&bytes).map_err(io_error)?.meta)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    /// Replace the state with the snapshot in `path`, atomically, then keep it as current.
    fn install(&self, path: &Path, meta: &Meta) -> Result<()> {
        let mut file = std::fs::File::open(path).map_err(io_error)?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        let txn = self.db.begin_write().map_err(io_error)?;
        let summary = snapshot::install_state(&txn, &mut BufReader::new(file)).map_err(io_error)?;
        Self::write_applied(&txn, meta.last_log_id, Some(&meta.last_membership))?;
        txn.commit().map_err(io_error)?;
        if let Some(catalog) = &self.catalog {
            Self::tell_catalog(&self.db, catalog);
        }
        if let Some(views) = &self.views {
            views.invalidate_all();
        }
        self.applied.store(meta.last_log_id.map_or(0, |l| l.index), Ordering::SeqCst);
        if let Some(feed) = &self.loads {
            feed.publish(crate::state::changes::LoadChanges::everything());
        }
        if let Some(newer) = self.publish(path, meta)? {
            // openraft installs only snapshots past its committed index, so this would mean two
            // installs out of order; the state is now the older one's, so refuse loudly.
            return Err(io_error(format!(
                "installed snapshot {} while {} is current",
                snapshot_name(meta),
                snapshot_name(&newer)
            )));
        }
        tracing::info!(snapshot = %snapshot_name(meta), records = summary.records, "snapshot installed");
        Ok(())
    }
}

/// Make `file` the current snapshot in `dir` with `meta`: the meta is written after the file
/// is in place, both by rename, so a crash leaves the old pair or the new pair.
fn publish_in(dir: &Path, file: &Path, meta: &Meta) -> Result<()> {
    std::fs::rename(file, dir.join(CURRENT_SNAPSHOT)).map_err(io_error)?;
    let tmp_meta = dir.join("meta.tmp");
    let bytes = codec::encode(&StoredMeta { meta: meta.clone() }).map_err(io_error)?;
    std::fs::write(&tmp_meta, bytes).map_err(io_error)?;
    std::fs::File::open(&tmp_meta).and_then(|f| f.sync_all()).map_err(io_error)?;
    std::fs::rename(&tmp_meta, dir.join(CURRENT_META)).map_err(io_error)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_error)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = tokio::fs::File;

    async fn build_snapshot(&mut self) -> Result<Snapshot> {
        let meta = self.blocking(|sm| sm.build()).await.inspect_err(|e| {
            metrics::counter!("pizza_orders_raft_snapshot_failures_total").increment(1);
            tracing::error!(error = %e, "building a snapshot failed");
        })?;
        let file = tokio::fs::File::open(self.snapshot_path()).await.map_err(io_error)?;
        Ok(Snapshot { meta, snapshot: file })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = tokio::fs::File;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership)> {
        self.blocking(|sm| Self::read_applied(&sm.db)).await
    }

    /// Entries arrive as a stream with a responder each (for the proposals this node leads):
    /// the batch is applied in one transaction, then every responder gets its outcome.
    async fn apply<S>(&mut self, mut stream: S) -> Result<()>
    where
        S: Stream<Item = Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut entries = Vec::new();
        let mut responders = Vec::new();
        while let Some(item) = stream.next().await {
            let (entry, responder) = item?;
            entries.push(entry);
            responders.push(responder);
        }
        let commands: usize = entries
            .iter()
            .map(|e| match &e.payload {
                EntryPayload::Normal(p) => p.commands.len(),
                _ => 1,
            })
            .sum();
        let responses = if commands <= INLINE_APPLY_COMMANDS {
            self.apply_entries(entries)?
        } else {
            self.blocking(move |sm| sm.apply_entries(entries)).await?
        };
        for (responder, response) in responders.into_iter().zip(responses) {
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: tokio::fs::File) -> Result<()> {
        let mut file = snapshot;
        tokio::io::AsyncWriteExt::flush(&mut file).await.map_err(io_error)?;
        let std_file = file.into_std().await;
        std_file.sync_all().map_err(io_error)?;
        let path = self.snapshot_dir.join(format!("installing-{}.tmp", snapshot_name(meta)));
        // Copy through the descriptor we were given: it may be a received file or our own.
        let meta = meta.clone();
        self.blocking(move |sm| {
            let mut source = std_file;
            source.seek(SeekFrom::Start(0)).map_err(io_error)?;
            let mut target = std::fs::File::create(&path).map_err(io_error)?;
            std::io::copy(&mut source, &mut target).map_err(io_error)?;
            target.sync_all().map_err(io_error)?;
            sm.install(&path, &meta)?;
            if let Some(received) = sm.receiving.lock().ok().and_then(|mut r| r.take()) {
                let _ = std::fs::remove_file(received);
            }
            Ok(())
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>> {
        let Some(meta) = self.blocking(|sm| sm.current_meta()).await? else {
            return Ok(None);
        };
        let file = tokio::fs::File::open(self.snapshot_path()).await.map_err(io_error)?;
        Ok(Some(Snapshot { meta, snapshot: file }))
    }
}

/// Snapshots from a leader arrive in chunks (the v1 protocol, which 0.9 peers speak too) and
/// are written to a file of their own until the last chunk.
impl SnapshotReceiverFactory<TypeConfig> for StateMachine {
    type SnapshotReceiver = tokio::fs::File;

    async fn begin_receiving_snapshot(&mut self) -> Result<tokio::fs::File> {
        let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = self.snapshot_dir.join(format!("receiving-{nonce}.tmp"));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(io_error)?;
        if let Ok(mut receiving) = self.receiving.lock() {
            if let Some(old) = receiving.replace(path) {
                let _ = std::fs::remove_file(old);
            }
        }
        Ok(file)
    }
}

impl StateMachine {
    /// Received and half-built snapshot files left behind by a crash; called at start-up only.
    fn remove_stale_files(&self) {
        if let Ok(dir) = std::fs::read_dir(&self.snapshot_dir) {
            for entry in dir.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// The applied index and the state digest, read in one transaction.
pub fn digest(db: &Database) -> std::result::Result<(Option<u64>, snapshot::StateSummary), crate::state::StoreError> {
    let txn = db.begin_read()?;
    Ok((applied_index(&txn)?, snapshot::digest(&txn)?))
}

/// The log index of the last entry applied to the state `txn` sees: its revision.
pub fn applied_index(txn: &redb::ReadTransaction) -> std::result::Result<Option<u64>, crate::state::StoreError> {
    Ok(replication_record(txn)?.0.map(|l| l.index))
}

/// The last applied log id and the membership, as the state `txn` sees them.
fn replication_record(
    txn: &redb::ReadTransaction,
) -> std::result::Result<(Option<LogId>, Membership), crate::state::StoreError> {
    let table = txn.open_table(REPLICATION)?;
    let applied = match table.get(APPLIED)? {
        Some(raw) => codec::decode(raw.value())?,
        None => None,
    };
    let membership = match table.get(MEMBERSHIP)? {
        Some(raw) => codec::decode(raw.value())?,
        None => Membership::default(),
    };
    Ok((applied, membership))
}

/// Make a database restored from a backup at `revision` a one-node cluster of `node_id`
/// reachable at `advertise`. Returns the snapshot metadata for [`adopt_snapshot`]; its last log
/// id is where the log starts (`LogStore::record_restored`).
pub fn mark_restored(
    txn: &WriteTransaction,
    node_id: NodeId,
    advertise: &str,
    revision: u64,
) -> std::result::Result<Meta, crate::state::StoreError> {
    let log_id = LogId::new(CommittedLeaderId { term: 0, node_id }, revision);
    let members = std::collections::BTreeMap::from([(node_id, BasicNode::new(advertise))]);
    let voters = vec![members.keys().copied().collect()];
    let members =
        openraft::Membership::new(voters, members).map_err(|e| crate::state::StoreError::Io(e.to_string()))?;
    let membership = Membership::new(Some(log_id), members);
    StateMachine::write_applied(txn, Some(log_id), Some(&membership))
        .map_err(|e| crate::state::StoreError::Io(e.to_string()))?;
    Ok(Meta { last_log_id: Some(log_id), last_membership: membership })
}

/// Keep the state stream in `file` as the node's current snapshot, for members added later.
pub fn adopt_snapshot(data_dir: &Path, file: &Path, meta: &Meta) -> std::result::Result<(), crate::state::StoreError> {
    let dir = data_dir.join("snapshots");
    std::fs::create_dir_all(&dir).map_err(|e| crate::state::StoreError::Io(e.to_string()))?;
    publish_in(&dir, file, meta).map_err(|e| crate::state::StoreError::Io(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Store;

    fn blanks(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        range
            .map(|index| Entry {
                log_id: LogId::new(CommittedLeaderId { term: 1, node_id: 1 }, index),
                payload: EntryPayload::Blank,
            })
            .collect()
    }

    fn copy_dir(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir_all(&target).unwrap();
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    fn open(dir: &Path) -> StateMachine {
        let store = Store::open(dir).expect("open store");
        StateMachine::new(store.shared_database(), dir).expect("state machine")
    }

    #[test]
    fn the_api_learns_the_catalog_in_force_from_every_commit_without_a_read_transaction() {
        use crate::domain::{CatalogDoc, Timestamp};
        use crate::state::{Command, SetCatalog};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let machine =
            StateMachine::new(store.shared_database(), dir.path()).unwrap().with_catalog(store.catalog_in_force());
        assert!(store.catalog().unwrap().is_none(), "no catalog yet");
        let catalog = |capacity: u32| {
            CatalogDoc::from_toml(&format!(
                "[menu]\ncurrency = \"EUR\"\nsizes = {{ small = 800, medium = 1050, large = 1300 }}\n\
                 toppings = {{ extra_cheese = 150 }}\n[[stores]]\nid = \"main\"\nname = \"Main\"\n\
                 time_zone = \"UTC\"\ncapacity = {capacity}\nhours = {{ mon = [\"10:00-20:00\"] }}\n\
                 delivery = {{ everywhere = true }}\n"
            ))
            .unwrap()
        };
        let set = |index: u64, capacity: u32| Entry {
            log_id: LogId::new(CommittedLeaderId { term: 1, node_id: 1 }, index),
            payload: EntryPayload::Normal(crate::raft::Proposal {
                commands: vec![Command::set_catalog(SetCatalog {
                    at: Timestamp::from_millis(1_700_000_000_000),
                    author: "test".into(),
                    expected_version: None,
                    seed: false,
                    catalog: catalog(capacity),
                })],
            }),
        };
        let capacity = |store: &Store| {
            let current = store.catalog().unwrap().expect("a catalog");
            let main = current.catalog.store("main").expect("store main");
            (current.version, main.calendar.capacity_at(Timestamp::from_millis(1_700_000_000_000)))
        };
        machine.apply_entries(vec![set(1, 5)]).unwrap();
        assert_eq!(capacity(&store), (1, 5));
        machine.apply_entries(vec![set(2, 7)]).unwrap();
        assert_eq!(capacity(&store), (2, 7), "the reader follows the next commit");
        // Not told (a failed read of the version): the readers ask the database, still right.
        store.catalog_in_force().forget();
        assert_eq!(capacity(&store), (2, 7));
        machine.apply_entries(blanks(3..=3)).unwrap();
        assert_eq!(capacity(&store), (2, 7));
    }

    #[test]
    fn a_published_snapshot_is_never_ahead_of_the_state_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let machine = open(dir.path());
        machine.apply_entries(blanks(1..=5)).unwrap();
        // Lazily applied and never made durable: only the snapshot build can save it.
        let meta = machine.build().unwrap();
        // What a crash now leaves: the files as they are, without the clean close.
        copy_dir(dir.path(), crashed.path());
        drop(machine);
        let machine = open(crashed.path());
        let applied = machine.applied.load(Ordering::SeqCst);
        assert_eq!(meta.last_log_id.map(|l| l.index), Some(5));
        assert!(applied >= 5, "the state is at {applied}, behind the snapshot at 5");
        assert_eq!(machine.current_meta().unwrap(), Some(meta));
    }

    #[test]
    fn an_older_snapshot_finishing_late_never_replaces_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let machine = open(dir.path());
        let meta_at = |index: u64| Meta {
            last_log_id: Some(LogId::new(CommittedLeaderId { term: 1, node_id: 1 }, index)),
            last_membership: Membership::default(),
        };
        let file = |name: &str| {
            let path = dir.path().join("snapshots").join(name);
            std::fs::write(&path, name.as_bytes()).unwrap();
            path
        };
        // The leader's snapshot at 9 is installed while a build from the state at 5 runs...
        assert!(machine.publish(&file("installed.tmp"), &meta_at(9)).unwrap().is_none());
        // ...and the build finishes last: it is dropped, the installed one stays current.
        let built = file("built.tmp");
        let current = machine.publish(&built, &meta_at(5)).unwrap();
        assert_eq!(current.map(|m| snapshot_name(&m)), Some("1-9".to_owned()));
        assert!(!built.exists(), "the older file was left behind");
        assert_eq!(machine.current_meta().unwrap().map(|m| snapshot_name(&m)), Some("1-9".to_owned()));
        assert_eq!(std::fs::read(machine.snapshot_path()).unwrap(), b"installed.tmp");
        // A newer one still replaces it.
        assert!(machine.publish(&file("newer.tmp"), &meta_at(12)).unwrap().is_none());
        assert_eq!(machine.current_meta().unwrap().map(|m| snapshot_name(&m)), Some("1-12".to_owned()));
    }

    #[test]
    fn a_snapshot_behind_the_purged_log_is_rebuilt_from_the_state_or_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let machine = open(dir.path());
        machine.apply_entries(blanks(1..=5)).unwrap();
        crate::state::make_durable(&machine.db).unwrap();
        assert!(machine.cover_purged_log(0).is_ok());
        assert!(machine.current_meta().unwrap().is_none(), "nothing purged, nothing built");
        machine.cover_purged_log(3).unwrap();
        assert_eq!(machine.current_meta().unwrap().and_then(|m| m.last_log_id).map(|l| l.index), Some(5));
        let refused = machine.cover_purged_log(9).unwrap_err();
        assert!(refused.contains("purged up to 9") && refused.contains("remove its data directory"), "{refused}");
    }

    #[test]
    fn a_snapshot_ahead_of_the_durable_state_is_dropped_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let machine = open(dir.path());
        machine.apply_entries(blanks(1..=3)).unwrap();
        crate::state::make_durable(&machine.db).unwrap();
        let file = dir.path().join("snapshots").join("ahead.tmp");
        std::fs::write(&file, b"").unwrap();
        let ahead = Meta {
            last_log_id: Some(LogId::new(CommittedLeaderId { term: 1, node_id: 1 }, 9)),
            last_membership: Membership::default(),
        };
        machine.publish(&file, &ahead).unwrap();
        drop(machine);

        let machine = open(dir.path());
        assert_eq!(machine.applied.load(Ordering::SeqCst), 3);
        assert!(machine.current_meta().unwrap().is_none(), "a snapshot at 9 over a state at 3 was kept");
    }
}
