//! The redb database: opening it (with its schema check) and the reads the API serves.
//!
//! Reads run in a redb read transaction: a consistent snapshot that never blocks the writer.
//! They are short and bounded (a point lookup or a page of at most 100 keys from the page
//! cache), so handlers call them directly instead of paying a thread hand-off per read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable};

use super::tables::{self, META, ORDERS, ORDER_STEPS, STORE_SLOT_LOAD, STORE_SLOT_ORDERS, USER_ORDERS};
use super::{CatalogRecord, StoreError};
use crate::codec;
use crate::domain::{Catalog, Charge, Currency, Order, OrderId, Step, StoreId, Timestamp, UserId};

/// The catalog in force, checked, with its record (version, when, by whom).
#[derive(Debug)]
pub struct CurrentCatalog {
    pub catalog: Catalog,
    pub version: u64,
    pub applied_at: Timestamp,
    pub author: String,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SlotSummary {
    pub placed: u64,
    pub booked: u64,
    pub full: u64,
}

/// Orders and their money in one currency (minor units): see [`Store::revenue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revenue {
    pub currency: Currency,
    pub orders: u64,
    pub net: u64,
    pub tax: u64,
    pub gross: u64,
}

/// Handle on the node's database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    /// The last catalog read, kept while its version is the one in force: checking a catalog
    /// of hundreds of stores per request would cost more than the request.
    catalog: Arc<CatalogInForce>,
    /// What each applied batch changed, for live availability.
    loads: super::changes::LoadFeed,
    /// Rendered answers of single orders, dropped by the state machine as orders change.
    views: Arc<super::views::OrderViews>,
    /// The menus of each catalog version orders were priced under, parsed once (an applied
    /// version never changes).
    priced_by: Arc<quick_cache::sync::Cache<u64, Option<Arc<super::catalog::PricedBy>>>>,
}

/// The catalog in force, kept for the API: the last one read, and the version the state machine
/// last committed. Only the state machine changes the catalog (an applied command, an installed
/// snapshot); once it reports its commits here (`StateMachine::with_catalog`), a reader knows the
/// version in force without a read transaction, and reads the catalog only when it changed.
/// Until then, and after any failure to learn the version, every read asks the database.
#[derive(Default)]
pub struct CatalogInForce {
    /// The version in force, valid while `tracked`.
    version: AtomicU64,
    tracked: AtomicBool,
    current: RwLock<Option<Arc<CurrentCatalog>>>,
}

impl CatalogInForce {
    /// The state machine committed a state whose catalog version is `version` (0: none).
    pub fn committed_version(&self, version: u64) {
        self.version.store(version, Ordering::Release);
        self.tracked.store(true, Ordering::Release);
    }

    /// The version in force is not known here (say, reading it after a commit failed): readers
    /// ask the database again until the next commit tells.
    pub fn forget(&self) {
        self.tracked.store(false, Ordering::Release);
    }

    fn committed(&self) -> Option<u64> {
        // `tracked` first: a version stored before it was set is at least as new.
        self.tracked.load(Ordering::Acquire).then(|| self.version.load(Ordering::Acquire))
    }

    /// The kept catalog, if it is `version`.
    fn kept(&self, version: u64) -> Option<Arc<CurrentCatalog>> {
        let cached = self.current.read().ok()?;
        cached.as_ref().filter(|c| c.version == version).cloned()
    }

    fn keep(&self, current: Arc<CurrentCatalog>) {
        if let Ok(mut cached) = self.current.write() {
            *cached = Some(current);
        }
    }
}

impl Store {
    pub const FILE_NAME: &'static str = "orders.redb";

    /// Open (or create) the database in `data_dir`, creating every table and checking that the
    /// schema version on disk is the one this build writes.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(data_dir, None)
    }

    /// [`Self::open`] with redb's page cache bounded to `cache_bytes` (`None`: redb's default,
    /// up to 1 GiB): a node's memory then stays flat as the data grows (`storage.cache_mb`).
    pub fn open_with_cache(data_dir: &Path, cache_bytes: Option<usize>) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::DataDir { path: data_dir.display().to_string(), source })?;
        let path = data_dir.join(Self::FILE_NAME);
        let db = open_database(&path, cache_bytes)?;
        let store = Self {
            db: Arc::new(db),
            path,
            catalog: Arc::default(),
            loads: Default::default(),
            views: Arc::default(),
            priced_by: Arc::new(quick_cache::sync::Cache::new(64)),
        };
        store.initialise()?;
        Ok(store)
    }

    fn initialise(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get(tables::META_SCHEMA_VERSION)?.map(|g| g.value());
            match found {
                None => {
                    meta.insert(tables::META_SCHEMA_VERSION, tables::DATA_FORMAT)?;
                }
                // The older formats are converted by `LogStore::open`.
                Some(
                    tables::DATA_FORMAT
                    | tables::DATA_FORMAT_STORES
                    | tables::DATA_FORMAT_SEGMENT_LOG
                    | tables::DATA_FORMAT_REDB_LOG
                    | tables::DATA_FORMAT_SHARED_LOG,
                ) => {}
                Some(found) => {
                    return Err(StoreError::FormatVersion {
                        path: self.path.display().to_string(),
                        found,
                        expected: tables::DATA_FORMAT,
                    })
                }
            }
        }
        tables::create_all(&txn)?;
        txn.commit()?;
        Ok(())
    }

    /// The feed of load changes the state machine publishes after each applied batch.
    pub fn load_feed(&self) -> super::changes::LoadFeed {
        self.loads.clone()
    }

    /// The catalog version in force as the state machine commits it (`StateMachine::with_catalog`).
    pub fn catalog_in_force(&self) -> Arc<CatalogInForce> {
        self.catalog.clone()
    }

    /// The cache of rendered order answers the state machine keeps current.
    pub fn views(&self) -> Arc<super::views::OrderViews> {
        self.views.clone()
    }

    /// [`Self::views`], borrowed (a read needs no handle of its own).
    pub fn order_views(&self) -> &super::views::OrderViews {
        &self.views
    }

    /// A consistent, point-in-time view for bulk reads (backup, export, check).
    pub fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    /// The database handle, for the Raft state machine.
    pub fn shared_database(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// Make every commit so far durable. Apply commits without fsync (the Raft log is the
    /// durable record); this is called once a second, before the log is purged and on shutdown.
    pub fn make_durable(&self) -> Result<(), StoreError> {
        make_durable(&self.db)
    }

    /// A handle that does not keep the file open (for background tasks).
    pub fn weak_database(&self) -> std::sync::Weak<Database> {
        Arc::downgrade(&self.db)
    }

    /// A cheap storage check: a read transaction opens and the schema version is readable.
    pub fn state_digest_cheap(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        txn.open_table(META)?.get(tables::META_SCHEMA_VERSION)?;
        Ok(())
    }

    /// The digest of the state tables and the replication record, from one read transaction.
    pub fn state_digest(&self) -> Result<super::snapshot::StateSummary, StoreError> {
        let txn = self.db.begin_read()?;
        super::snapshot::digest(&txn)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let txn = self.db.begin_read()?;
        let orders = txn.open_table(ORDERS)?;
        let raw = orders.get(id.as_u128())?;
        Ok(raw.map(|g| codec::decode(g.value())).transpose()?)
    }

    /// An order's kitchen steps, oldest first (none while it is placed or cancelled).
    pub fn steps(&self, order: &Order) -> Result<Vec<Step>, StoreError> {
        if !order.status.in_kitchen() {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read()?;
        super::apply::read_steps(&txn.open_table(ORDER_STEPS)?, order.id.as_u128())
    }

    /// The orders of `store` (not cancelled) with slots starting in `[from, to)`, by slot,
    /// each with its kitchen steps; at most `limit`.
    pub fn kitchen_orders(
        &self,
        store: &StoreId,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Order, Vec<Step>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(STORE_SLOT_ORDERS)?;
        let orders = txn.open_table(ORDERS)?;
        let steps = txn.open_table(ORDER_STEPS)?;
        let range = (store.as_str(), from.millis(), 0u128)..(store.as_str(), to.millis(), 0u128);
        let mut found = Vec::new();
        for entry in index.range(range)?.take(limit) {
            let (key, _) = entry?;
            let (_, _, id) = key.value();
            let Some(raw) = orders.get(id)? else { continue };
            let order: Order = codec::decode(raw.value())?;
            found.push((order, super::apply::read_steps(&steps, id)?));
        }
        Ok(found)
    }

    /// A page of `user`'s orders, newest first, strictly older than `before` when given.
    pub fn user_orders(&self, user: &UserId, before: Option<OrderId>, limit: usize) -> Result<Vec<Order>, StoreError> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(USER_ORDERS)?;
        let orders = txn.open_table(ORDERS)?;
        let low = (user.as_str(), 0u128);
        let mut page = Vec::with_capacity(limit.min(100));
        let keys = match before {
            Some(before) => index.range(low..(user.as_str(), before.as_u128()))?,
            None => index.range(low..=(user.as_str(), u128::MAX))?,
        };
        for entry in keys.rev().take(limit) {
            let (key, _) = entry?;
            let (_, id) = key.value();
            if let Some(raw) = orders.get(id)? {
                page.push(codec::decode(raw.value())?);
            }
        }
        Ok(page)
    }

    /// Placed orders, booked slots and full slots (by the capacity in force), from the
    /// slot-load index.
    pub fn slot_summary(&self) -> Result<SlotSummary, StoreError> {
        let catalog = self.catalog()?;
        let txn = self.db.begin_read()?;
        let mut summary = SlotSummary::default();
        for entry in txn.open_table(STORE_SLOT_LOAD)?.iter()? {
            let (key, booked) = entry?;
            let (store, start) = key.value();
            summary.placed += u64::from(booked.value());
            summary.booked += 1;
            let capacity = catalog
                .as_ref()
                .and_then(|c| c.catalog.store(store))
                .map(|s| s.calendar.capacity_at(Timestamp::from_millis(start)));
            if capacity.is_some_and(|c| booked.value() >= c) {
                summary.full += 1;
            }
        }
        Ok(summary)
    }

    /// Orders booked per slot start of `store` for slots starting in `[from, to)`; absent
    /// means zero.
    pub fn slot_loads(
        &self,
        store: &StoreId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<BTreeMap<i64, u32>, StoreError> {
        let txn = self.db.begin_read()?;
        let load = txn.open_table(STORE_SLOT_LOAD)?;
        let mut loads = BTreeMap::new();
        for entry in load.range((store.as_str(), from.millis())..(store.as_str(), to.millis()))? {
            let (key, booked) = entry?;
            loads.insert(key.value().1, booked.value());
        }
        Ok(loads)
    }

    /// The catalog in force, `None` before the first one is applied. Cheap while it does not
    /// change: no read at all once the state machine tells the version, else one read of it.
    pub fn catalog(&self) -> Result<Option<Arc<CurrentCatalog>>, StoreError> {
        // The version the state machine last committed, when it tells: no read transaction
        // (opening one and reading the version was 7.5 % of a `GET /v1/menu`'s CPU).
        if let Some(version) = self.catalog.committed() {
            if version == 0 {
                return Ok(None);
            }
            if let Some(current) = self.catalog.kept(version) {
                return Ok(Some(current));
            }
        }
        let txn = self.db.begin_read()?;
        let version = super::catalog::read_version(&txn)?;
        if version == 0 {
            return Ok(None);
        }
        if let Some(current) = self.catalog.kept(version) {
            return Ok(Some(current));
        }
        let Some(record) = super::catalog::record(&txn, version)? else {
            return Err(StoreError::Io(format!("catalog version {version} is in force but not in the history")));
        };
        let current = Arc::new(current_catalog(record)?);
        self.catalog.keep(current.clone());
        Ok(Some(current))
    }

    /// `user`'s place in a line, if they are waiting (and the line has not lapsed at `now`).
    pub fn waitlist_position(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Option<(super::WaitEntry, u64)>, StoreError> {
        super::waitlist::read_position(&self.db.begin_read()?, user, now)
    }

    /// The catalog applied as `version`, if any.
    pub fn catalog_record(&self, version: u64) -> Result<Option<CatalogRecord>, StoreError> {
        super::catalog::record(&self.db.begin_read()?, version)
    }

    /// Every catalog applied, oldest first.
    pub fn catalog_history(&self) -> Result<Vec<CatalogRecord>, StoreError> {
        super::catalog::history(&self.db.begin_read()?)
    }

    /// The money of every store's orders (not cancelled) whose slots start in `[from, to)`,
    /// per currency, sorted by currency code: never summed across currencies. A store's range of
    /// the kitchen's index is read, so the cost grows with the orders of those days, not all.
    pub fn revenue(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Revenue>, StoreError> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(STORE_SLOT_ORDERS)?;
        let orders = txn.open_table(ORDERS)?;
        let stores: Vec<String> = txn
            .open_table(tables::STORES)?
            .iter()?
            .map(|entry| entry.map(|(id, _)| id.value().to_owned()))
            .collect::<Result<_, _>>()?;
        let mut by_currency: BTreeMap<String, Revenue> = BTreeMap::new();
        for store in &stores {
            let range = (store.as_str(), from.millis(), 0u128)..(store.as_str(), to.millis(), 0u128);
            for entry in index.range(range)? {
                let (key, _) = entry?;
                let Some(raw) = orders.get(key.value().2)? else { continue };
                let order: Order = codec::decode(raw.value())?;
                let charge = self.charge(&order)?;
                let line = by_currency.entry(charge.currency.as_str().to_owned()).or_insert_with(|| Revenue {
                    currency: charge.currency.clone(),
                    orders: 0,
                    net: 0,
                    tax: 0,
                    gross: 0,
                });
                line.orders += 1;
                line.net += charge.net.0;
                line.tax += charge.tax.0;
                line.gross += charge.gross.0;
            }
        }
        Ok(by_currency.into_values().collect())
    }

    /// What `order` costs, split into net and tax, as fixed when it was placed or last changed:
    /// worked out again from the menu of the catalog version it was priced under (which never
    /// changes) and checked against the price it keeps (see [`super::catalog::charge_of`]).
    pub fn charge(&self, order: &Order) -> Result<Charge, StoreError> {
        let version = order.catalog_version;
        if version == 0 {
            return Ok(super::catalog::charge_of(order, None));
        }
        let priced_by = match self.priced_by.get(&version) {
            Some(priced_by) => priced_by,
            None => {
                let priced_by = self.catalog_record(version)?.map(|r| Arc::new(super::catalog::PricedBy::of(&r)));
                self.priced_by.insert(version, priced_by.clone());
                priced_by
            }
        };
        Ok(super::catalog::charge_of(order, priced_by.as_deref()))
    }
}

fn current_catalog(record: CatalogRecord) -> Result<CurrentCatalog, StoreError> {
    let catalog = record
        .catalog
        .check()
        .map_err(|e| StoreError::Codec(codec::CodecError::Malformed(format!("the stored catalog is invalid: {e}"))))?;
    Ok(CurrentCatalog { catalog, version: record.version, applied_at: record.applied_at, author: record.author })
}

/// Commit an empty transaction with fsync: redb then makes every earlier commit durable too.
///
/// With quick repair: the commit records redb's allocator state (and commits in two phases), so
/// a start after a crash loads that state instead of rebuilding it by walking every tree. Apply's
/// commits are not durable, so after a crash the file opens at the last of these checkpoints.
pub fn make_durable(db: &Database) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    txn.commit()?;
    metrics::histogram!("pizza_orders_state_checkpoint_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}

/// Open (or create) the redb file at `path`, verifying every page checksum first. `cache_bytes`
/// bounds redb's page cache (default: redb's own, 1 GiB).
pub(crate) fn open_database(path: &Path, cache_bytes: Option<usize>) -> Result<Database, StoreError> {
    let unreadable = |reason: String| StoreError::Unreadable { path: path.display().to_string(), reason };
    let mut builder = Database::builder();
    if let Some(bytes) = cache_bytes {
        builder.set_cache_size(bytes);
    }
    // Set when redb repairs the file while opening it (after a crash without a checkpoint's
    // recorded allocator state, see `make_durable`): its repair verifies every page checksum.
    let repaired = Arc::new(AtomicBool::new(false));
    builder.set_repair_callback({
        let repaired = repaired.clone();
        move |_| repaired.store(true, Ordering::Relaxed)
    });
    let opening = std::time::Instant::now();
    let mut db = builder.create(path).map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen { path: path.display().to_string() },
        other => unreadable(other.to_string()),
    })?;
    let opened_ms = opening.elapsed().as_millis() as u64;
    if repaired.load(Ordering::Relaxed) {
        tracing::info!(file = %path.display(), ms = opened_ms, "repaired after an unclean stop; every page checksum verified");
        return Ok(db);
    }
    // redb checks page checksums only when it repairs a file; a page damaged on a cleanly
    // closed file, or after a crash that needed no repair, would be read as if it were data.
    // Verify every page once per start (about a second per GB from the page cache). `Ok(false)`
    // means redb rolled back to an older commit to repair it, which may drop acknowledged Raft
    // entries: refuse that too.
    let checking = std::time::Instant::now();
    match db.check_integrity() {
        Ok(true) => {
            // At debug: every start does this; the node's one start-up line has the total.
            tracing::debug!(
                file = %path.display(),
                bytes = std::fs::metadata(path).map_or(0, |m| m.len()),
                open_ms = opened_ms,
                check_ms = checking.elapsed().as_millis() as u64,
                "opened; every page checksum verified"
            );
            Ok(db)
        }
        Ok(false) => Err(unreadable("page checksums did not match (the file is damaged)".into())),
        Err(e) => Err(unreadable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_written_by_another_schema_version_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let txn = store.shared_database().begin_write().unwrap();
        txn.open_table(META).unwrap().insert(tables::META_SCHEMA_VERSION, 99).unwrap();
        txn.commit().unwrap();
        drop(store);
        let err = Store::open(dir.path()).err().expect("refused");
        assert!(matches!(err, StoreError::FormatVersion { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("orders.redb"));
    }
}
