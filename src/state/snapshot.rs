//! The whole state as a stream of records: Raft snapshots, state digests and (later) backups
//! all come from here.
//!
//! Layout: records, each `[u32 little-endian length][codec bytes]`. The first is a `Header`,
//! the last an `End` carrying the record count and the SHA-256 of every record before it.
//! Records are written straight from a redb read transaction (one consistent point in time)
//! to the writer, and installed straight from the reader into one write transaction, so
//! neither side holds the data set in memory. Installing verifies the digest before it
//! commits: a truncated or corrupted stream changes nothing.

use std::io::{Read, Write};

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tables::META_WAITLIST_SEQ;
use super::tables::{
    self, ACTIVE, ANALYTICS_COUNTS, ANALYTICS_SEQ, ANALYTICS_VISITORS, CATALOG, CATALOG_HISTORY, IDEMPOTENCY,
    IDEMPOTENCY_EXPIRY, META, META_CATALOG_VERSION, ORDERS, ORDERS_BY_REVISION, ORDER_STEPS, STORES, STORE_SLOT_LOAD,
    STORE_SLOT_ORDERS, USER_ORDERS, WAITING, WAITLIST,
};
use super::StoreError;
use crate::codec::{self, CodecError};

const MAGIC: &str = "pizza-orders-state";
/// A record longer than this is corruption, not data (a catalog of many stores with drawn
/// areas is the largest record).
const MAX_RECORD_BYTES: u32 = 32 << 20;

#[derive(Serialize, Deserialize, Debug)]
enum Record {
    Header {
        magic: String,
        schema_version: u64,
    },
    Order(u128, Vec<u8>),
    UserOrder(String, u128),
    OrderRevision(u64, u128),
    Active(String, u128),
    /// Schema 2 only; streams of that schema are refused at the header.
    SlotLoadV2(i64, u32),
    Idempotency(String, String, Vec<u8>),
    IdempotencyExpiry(i64, String, String),
    End {
        records: u64,
        digest: [u8; 32],
    },
    StoreSlotLoad(String, i64, u32),
    CatalogVersion(u64),
    CatalogHistory(u64, Vec<u8>),
    StoreRow(String, Vec<u8>),
    CatalogRow(String, Vec<u8>),
    WaitlistSeq(u64),
    WaitlistEntry(String, i64, u64, Vec<u8>),
    WaitingUser(String, Vec<u8>),
    /// Schema 4: an order's kitchen steps.
    OrderSteps(u128, Vec<u8>),
    /// Schema 4: analytics counts, visitor sketches and each node's last batch.
    AnalyticsCount(u32, String, String, u64),
    AnalyticsVisitors(u32, Vec<u8>),
    AnalyticsSeq(u64, u64),
}

/// What a stream held: how many records and their digest (hex in the admin API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateSummary {
    pub records: u64,
    pub digest: [u8; 32],
}

impl StateSummary {
    pub fn digest_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

struct RecordWriter<'w, W: Write> {
    out: &'w mut W,
    hasher: Sha256,
    records: u64,
}

impl<W: Write> RecordWriter<'_, W> {
    fn put(&mut self, record: &Record) -> Result<(), StoreError> {
        let bytes = codec::encode(record)?;
        let len = u32::try_from(bytes.len()).map_err(|_| CodecError::Encode("record too large".into()))?;
        self.hasher.update(&bytes);
        self.records += 1;
        self.out.write_all(&len.to_le_bytes()).map_err(io_error)?;
        self.out.write_all(&bytes).map_err(io_error)
    }
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

/// Stream every table of the state, as seen by `txn`, into `out`.
pub fn write_state(txn: &ReadTransaction, out: &mut impl Write) -> Result<StateSummary, StoreError> {
    let mut w = RecordWriter { out, hasher: Sha256::new(), records: 0 };
    w.put(&Record::Header { magic: MAGIC.into(), schema_version: tables::SCHEMA_VERSION })?;
    for entry in txn.open_table(ORDERS)?.iter()? {
        let (k, v) = entry?;
        w.put(&Record::Order(k.value(), v.value().to_vec()))?;
    }
    for entry in txn.open_table(USER_ORDERS)?.iter()? {
        let (k, _) = entry?;
        let (user, id) = k.value();
        w.put(&Record::UserOrder(user.to_owned(), id))?;
    }
    for entry in txn.open_table(ORDERS_BY_REVISION)?.iter()? {
        let (k, _) = entry?;
        let (revision, id) = k.value();
        w.put(&Record::OrderRevision(revision, id))?;
    }
    for entry in txn.open_table(ACTIVE)?.iter()? {
        let (k, v) = entry?;
        w.put(&Record::Active(k.value().to_owned(), v.value()))?;
    }
    for entry in txn.open_table(STORE_SLOT_LOAD)?.iter()? {
        let (k, v) = entry?;
        let (store, start) = k.value();
        w.put(&Record::StoreSlotLoad(store.to_owned(), start, v.value()))?;
    }
    if let Some(version) = txn.open_table(META)?.get(META_CATALOG_VERSION)? {
        w.put(&Record::CatalogVersion(version.value()))?;
    }
    for entry in txn.open_table(CATALOG_HISTORY)?.iter()? {
        let (k, v) = entry?;
        w.put(&Record::CatalogHistory(k.value(), v.value().to_vec()))?;
    }
    for entry in txn.open_table(STORES)?.iter()? {
        let (k, v) = entry?;
        w.put(&Record::StoreRow(k.value().to_owned(), v.value().to_vec()))?;
    }
    for entry in txn.open_table(CATALOG)?.iter()? {
        let (k, v) = entry?;
        w.put(&Record::CatalogRow(k.value().to_owned(), v.value().to_vec()))?;
    }
    if let Some(seq) = txn.open_table(META)?.get(META_WAITLIST_SEQ)? {
        w.put(&Record::WaitlistSeq(seq.value()))?;
    }
    for entry in txn.open_table(WAITLIST)?.iter()? {
        let (k, v) = entry?;
        let (store, start, seq) = k.value();
        w.put(&Record::WaitlistEntry(store.to_owned(), start, seq, v.value().to_vec()))?;
    }
    for entry in txn.open_table(WAITING)?.iter()? {
        let (k, v) = entry?;
        w.put(&Record::WaitingUser(k.value().to_owned(), v.value().to_vec()))?;
    }
    for entry in txn.open_table(IDEMPOTENCY)?.iter()? {
        let (k, v) = entry?;
        let (user, key) = k.value();
        w.put(&Record::Idempotency(user.to_owned(), key.to_owned(), v.value().to_vec()))?;
    }
    for entry in txn.open_table(IDEMPOTENCY_EXPIRY)?.iter()? {
        let (k, _) = entry?;
        let (at, user, key) = k.value();
        w.put(&Record::IdempotencyExpiry(at, user.to_owned(), key.to_owned()))?;
    }
    for entry in txn.open_table(ORDER_STEPS)?.iter()? {
        let (k, v) = entry?;
        w.put(&Record::OrderSteps(k.value(), v.value().to_vec()))?;
    }
    for entry in txn.open_table(ANALYTICS_COUNTS)?.iter()? {
        let (k, v) = entry?;
        let (day, event, store) = k.value();
        w.put(&Record::AnalyticsCount(day, event.to_owned(), store.to_owned(), v.value()))?;
    }
    for entry in txn.open_table(ANALYTICS_VISITORS)?.iter()? {
        let (k, v) = entry?;
        w.put(&Record::AnalyticsVisitors(k.value(), v.value().to_vec()))?;
    }
    for entry in txn.open_table(ANALYTICS_SEQ)?.iter()? {
        let (k, v) = entry?;
        w.put(&Record::AnalyticsSeq(k.value(), v.value()))?;
    }
    let summary = StateSummary { records: w.records, digest: w.hasher.clone().finalize().into() };
    w.put(&Record::End { records: summary.records, digest: summary.digest })?;
    w.out.flush().map_err(io_error)?;
    Ok(summary)
}

/// The digest of the state as seen by `txn`: equal on two replicas exactly when every table
/// holds the same rows.
pub fn digest(txn: &ReadTransaction) -> Result<StateSummary, StoreError> {
    write_state(txn, &mut std::io::sink())
}

/// Reads a state stream record by record, checking the header, the record count and the
/// checksum; `next` returns `None` only after a verified end record.
struct RecordReader<'r, R: Read> {
    input: &'r mut R,
    hasher: Sha256,
    records: u64,
    orders: u64,
    bytes: u64,
    /// The encoded bytes of the record last returned, for copying a stream verbatim.
    raw: Vec<u8>,
    done: Option<StateSummary>,
}

fn corrupt(why: &str) -> StoreError {
    StoreError::Snapshot(why.to_owned())
}

impl<'r, R: Read> RecordReader<'r, R> {
    fn new(input: &'r mut R) -> Self {
        Self { input, hasher: Sha256::new(), records: 0, orders: 0, bytes: 0, raw: Vec::new(), done: None }
    }

    fn next(&mut self) -> Result<Option<Record>, StoreError> {
        if self.done.is_some() {
            return Ok(None);
        }
        let bytes = read_record(self.input)?.ok_or_else(|| corrupt("the stream ends before its end record"))?;
        self.bytes += 4 + bytes.len() as u64;
        let record: Record = codec::decode(&bytes)?;
        let first = self.records == 0;
        match &record {
            Record::End { records, digest } => {
                let ours: [u8; 32] = self.hasher.clone().finalize().into();
                if *records != self.records || *digest != ours {
                    return Err(corrupt("the checksum does not match the contents"));
                }
                if read_record(self.input)?.is_some() {
                    return Err(corrupt("data follows the end record"));
                }
                self.raw = bytes;
                self.done = Some(StateSummary { records: self.records, digest: ours });
                return Ok(None);
            }
            Record::Header { magic, schema_version } => {
                if !first || magic != MAGIC {
                    return Err(corrupt("not a pizza-orders state stream"));
                }
                if *schema_version != tables::SCHEMA_VERSION && *schema_version != tables::SCHEMA_VERSION_BEFORE_KITCHEN
                {
                    return Err(StoreError::FormatVersion {
                        path: "(state stream)".into(),
                        found: *schema_version,
                        expected: tables::SCHEMA_VERSION,
                    });
                }
            }
            _ if first => return Err(corrupt("the stream does not start with a header")),
            Record::Order(..) => self.orders += 1,
            _ => {}
        }
        self.hasher.update(&bytes);
        self.records += 1;
        self.raw = bytes;
        Ok(Some(record))
    }
}

/// What a verified stream held, with its order count and encoded size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSummary {
    pub state: StateSummary,
    pub orders: u64,
    pub bytes: u64,
}

/// Copy a state stream from `input` to `out` while verifying it completely.
pub fn copy_verified(input: &mut impl Read, out: &mut impl Write) -> Result<StreamSummary, StoreError> {
    let mut reader = RecordReader::new(input);
    while reader.next()?.is_some() {
        out.write_all(&(reader.raw.len() as u32).to_le_bytes()).map_err(io_error)?;
        out.write_all(&reader.raw).map_err(io_error)?;
    }
    out.write_all(&(reader.raw.len() as u32).to_le_bytes()).map_err(io_error)?;
    out.write_all(&reader.raw).map_err(io_error)?;
    out.flush().map_err(io_error)?;
    let state = reader.done.clone().ok_or_else(|| corrupt("the stream has no end record"))?;
    Ok(StreamSummary { state, orders: reader.orders, bytes: reader.bytes })
}

/// Replace every state table with the records read from `input`, inside `txn`.
/// The caller commits only if this returns `Ok`: a bad stream changes nothing.
pub fn install_state(txn: &WriteTransaction, input: &mut impl Read) -> Result<StateSummary, StoreError> {
    clear(txn, ORDERS)?;
    clear(txn, USER_ORDERS)?;
    clear(txn, ORDERS_BY_REVISION)?;
    clear(txn, ACTIVE)?;
    clear(txn, STORE_SLOT_LOAD)?;
    clear(txn, IDEMPOTENCY)?;
    clear(txn, IDEMPOTENCY_EXPIRY)?;
    clear(txn, CATALOG_HISTORY)?;
    clear(txn, STORES)?;
    clear(txn, CATALOG)?;
    clear(txn, WAITLIST)?;
    clear(txn, WAITING)?;
    clear(txn, ORDER_STEPS)?;
    clear(txn, STORE_SLOT_ORDERS)?;
    clear(txn, ANALYTICS_COUNTS)?;
    clear(txn, ANALYTICS_VISITORS)?;
    clear(txn, ANALYTICS_SEQ)?;
    txn.open_table(META)?.remove(META_CATALOG_VERSION)?;
    txn.open_table(META)?.remove(META_WAITLIST_SEQ)?;
    let mut orders = txn.open_table(ORDERS)?;
    let mut user_orders = txn.open_table(USER_ORDERS)?;
    let mut by_revision = txn.open_table(ORDERS_BY_REVISION)?;
    let mut active = txn.open_table(ACTIVE)?;
    let mut load = txn.open_table(STORE_SLOT_LOAD)?;
    let mut idempotency = txn.open_table(IDEMPOTENCY)?;
    let mut expiry = txn.open_table(IDEMPOTENCY_EXPIRY)?;
    let mut history = txn.open_table(CATALOG_HISTORY)?;
    let mut stores = txn.open_table(STORES)?;
    let mut catalog = txn.open_table(CATALOG)?;
    let mut meta = txn.open_table(META)?;
    let mut line = txn.open_table(WAITLIST)?;
    let mut waiting = txn.open_table(WAITING)?;
    let mut steps = txn.open_table(ORDER_STEPS)?;
    let mut analytics_counts = txn.open_table(ANALYTICS_COUNTS)?;
    let mut analytics_visitors = txn.open_table(ANALYTICS_VISITORS)?;
    let mut analytics_seq = txn.open_table(ANALYTICS_SEQ)?;
    let mut reader = RecordReader::new(input);
    while let Some(record) = reader.next()? {
        match record {
            Record::Header { .. } | Record::End { .. } => {}
            Record::Order(id, bytes) => {
                orders.insert(id, bytes.as_slice())?;
            }
            Record::UserOrder(user, id) => {
                user_orders.insert((user.as_str(), id), ())?;
            }
            Record::OrderRevision(revision, id) => {
                by_revision.insert((revision, id), ())?;
            }
            Record::Active(user, id) => {
                active.insert(user.as_str(), id)?;
            }
            Record::SlotLoadV2(..) => return Err(corrupt("a schema 2 slot-load record in a newer stream")),
            Record::StoreSlotLoad(store, start, booked) => {
                load.insert((store.as_str(), start), booked)?;
            }
            Record::CatalogVersion(version) => {
                meta.insert(META_CATALOG_VERSION, version)?;
            }
            Record::CatalogHistory(version, bytes) => {
                history.insert(version, bytes.as_slice())?;
            }
            Record::StoreRow(id, bytes) => {
                stores.insert(id.as_str(), bytes.as_slice())?;
            }
            Record::CatalogRow(key, bytes) => {
                catalog.insert(key.as_str(), bytes.as_slice())?;
            }
            Record::WaitlistSeq(seq) => {
                meta.insert(META_WAITLIST_SEQ, seq)?;
            }
            Record::WaitlistEntry(store, start, seq, bytes) => {
                line.insert((store.as_str(), start, seq), bytes.as_slice())?;
            }
            Record::WaitingUser(user, bytes) => {
                waiting.insert(user.as_str(), bytes.as_slice())?;
            }
            Record::Idempotency(user, key, bytes) => {
                idempotency.insert((user.as_str(), key.as_str()), bytes.as_slice())?;
            }
            Record::IdempotencyExpiry(at, user, key) => {
                expiry.insert((at, user.as_str(), key.as_str()), ())?;
            }
            Record::OrderSteps(id, bytes) => {
                steps.insert(id, bytes.as_slice())?;
            }
            Record::AnalyticsCount(day, event, store, count) => {
                analytics_counts.insert((day, event.as_str(), store.as_str()), count)?;
            }
            Record::AnalyticsVisitors(day, bytes) => {
                analytics_visitors.insert(day, bytes.as_slice())?;
            }
            Record::AnalyticsSeq(node, seq) => {
                analytics_seq.insert(node, seq)?;
            }
        }
    }
    let done = reader.done.ok_or_else(|| corrupt("the stream has no end record"))?;
    drop((orders, steps));
    // Derived from the orders, so not in the stream (and schema 3 streams have none).
    super::migrate::rebuild_kitchen_index(txn)?;
    Ok(done)
}

fn clear<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    txn.delete_table(table)?;
    txn.open_table(table)?;
    Ok(())
}

fn read_record(input: &mut impl Read) -> Result<Option<Vec<u8>>, StoreError> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io_error(e)),
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_RECORD_BYTES {
        return Err(StoreError::Snapshot(format!("a record claims {len} bytes")));
    }
    let mut bytes = vec![0u8; len as usize];
    input.read_exact(&mut bytes).map_err(|_| StoreError::Snapshot("the stream is truncated".into()))?;
    Ok(Some(bytes))
}
