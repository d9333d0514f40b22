//! Product analytics as replicated state: each node counts beacons in memory and proposes one
//! `RecordAnalytics` every few seconds; `apply` adds its counts and merges its visitor sketches
//! here, so every node holds the same figures, and backups and snapshots carry them.
//!
//! Each batch carries its node and a sequence number that grows with every batch of that
//! node: a batch proposed again (a lost answer, a leader change) is applied once. A batch may
//! also carry a retention cutoff; days before it are purged in the same transaction.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use super::apply::Stop;
use super::tables::{ANALYTICS_COUNTS, ANALYTICS_VISITORS};
use super::tx::Tx;
use super::{Outcome, Rejection, StoreError};
use crate::codec;
use crate::domain::{Day, EventKind, Timestamp, VisitorSketch};

/// One node's counts since its last batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticsBatch {
    pub node: u64,
    pub seq: u64,
    pub at: Timestamp,
    /// (day, event, store id or "") → how many.
    pub counts: Vec<(Day, EventKind, String, u64)>,
    /// (day, encoded `VisitorSketch` of that interval's visitors).
    pub visitors: Vec<(Day, Vec<u8>)>,
    /// Days before this one are dropped (`analytics.retention_days` on the proposer).
    pub purge_before: Option<Day>,
}

/// Longest store id a count is kept under (store ids are shorter; a guard for the key size).
const MAX_STORE_KEY: usize = 64;

pub(super) fn record(txn: &Tx, batch: &AnalyticsBatch) -> Result<Outcome, Stop> {
    let mut seqs = txn.analytics_seq()?;
    let last = seqs.get(batch.node)?.map(|g| g.value());
    if last.is_some_and(|last| batch.seq <= last) {
        return Ok(Outcome::Analytics { applied: false });
    }
    // Every sketch is read before anything is written: a bad one refuses the whole batch.
    let mut incoming = Vec::with_capacity(batch.visitors.len());
    for (day, bytes) in &batch.visitors {
        let sketch: VisitorSketch =
            codec::decode(bytes).map_err(|e| Rejection::InvalidAnalytics(format!("visitor sketch: {e}")))?;
        incoming.push((*day, sketch));
    }
    if batch.counts.iter().any(|(_, _, store, _)| store.len() > MAX_STORE_KEY) {
        return Err(Rejection::InvalidAnalytics("a store id is too long".into()).into());
    }
    let mut visitors = txn.analytics_visitors()?;
    let mut merged = Vec::with_capacity(incoming.len());
    for (day, sketch) in &incoming {
        let mut current: VisitorSketch = match visitors.get(day.0)? {
            Some(raw) => codec::decode(raw.value())?,
            None => VisitorSketch::new(),
        };
        current.merge(sketch).map_err(|e| Rejection::InvalidAnalytics(e.to_string()))?;
        // Settles pending inserts, so the encoding is the same on every replica.
        current.count();
        merged.push((*day, codec::encode(&current)?));
    }
    for (day, bytes) in merged {
        visitors.insert(day.0, bytes.as_slice())?;
    }
    let mut counts = txn.analytics_counts()?;
    for (day, event, store, n) in &batch.counts {
        let key = (day.0, event.as_str(), store.as_str());
        let now = counts.get(key)?.map_or(0, |g| g.value());
        counts.insert(key, now.saturating_add(*n))?;
    }
    if let Some(before) = batch.purge_before {
        counts.retain_in((0, "", "")..(before.0, "", ""), |_, _| false)?;
        visitors.retain_in(0..before.0, |_, _| false)?;
    }
    seqs.insert(batch.node, batch.seq)?;
    Ok(Outcome::Analytics { applied: true })
}

/// One day's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DayFigures {
    pub visitors: u64,
    /// event → count over all stores.
    pub events: BTreeMap<&'static str, u64>,
    /// store → event → count (only events that named a store).
    pub stores: BTreeMap<String, BTreeMap<&'static str, u64>>,
}

/// The figures of every day in `[from, to]` that has any.
pub fn read_days(txn: &ReadTransaction, from: Day, to: Day) -> Result<BTreeMap<Day, DayFigures>, StoreError> {
    let mut days: BTreeMap<Day, DayFigures> = BTreeMap::new();
    let counts = txn.open_table(ANALYTICS_COUNTS)?;
    for entry in counts.range((from.0, "", "")..(to.0.saturating_add(1), "", ""))? {
        let (key, value) = entry?;
        let (day, event, store) = key.value();
        let Some(event) = EventKind::parse(event) else { continue };
        let figures = days.entry(Day(day)).or_default();
        *figures.events.entry(event.as_str()).or_default() += value.value();
        if !store.is_empty() {
            *figures.stores.entry(store.to_owned()).or_default().entry(event.as_str()).or_default() += value.value();
        }
    }
    let visitors = txn.open_table(ANALYTICS_VISITORS)?;
    for entry in visitors.range(from.0..=to.0)? {
        let (day, raw) = entry?;
        let mut sketch: VisitorSketch = codec::decode(raw.value())?;
        days.entry(Day(day.value())).or_default().visitors = sketch.count();
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Store;

    fn sketch(hashes: std::ops::Range<u64>) -> Vec<u8> {
        let mut s = VisitorSketch::new();
        hashes.for_each(|h| s.insert(h.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        s.count();
        codec::encode(&s).unwrap()
    }

    fn batch(node: u64, seq: u64, day: u32, views: u64, hashes: std::ops::Range<u64>) -> AnalyticsBatch {
        AnalyticsBatch {
            node,
            seq,
            at: Timestamp::from_millis(i64::from(day) * 86_400_000),
            counts: vec![(Day(day), EventKind::PageOpened, String::new(), views)],
            visitors: vec![(Day(day), sketch(hashes))],
            purge_before: None,
        }
    }

    fn apply(store: &Store, b: &AnalyticsBatch) -> Result<Outcome, Rejection> {
        let db = store.shared_database();
        let txn = db.begin_write().unwrap();
        let out = match record(&Tx::new(&txn), b) {
            Ok(o) => Ok(o),
            Err(Stop::Rejected(r)) => Err(r),
            Err(Stop::Store(e)) => panic!("{e}"),
        };
        txn.commit().unwrap();
        out
    }

    #[test]
    fn batches_add_up_once_each_and_old_days_are_purged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(apply(&store, &batch(1, 1, 100, 5, 0..40)), Ok(Outcome::Analytics { applied: true }));
        assert_eq!(apply(&store, &batch(2, 1, 100, 7, 20..60)), Ok(Outcome::Analytics { applied: true }));
        // Node 1's batch proposed again: ignored.
        assert_eq!(apply(&store, &batch(1, 1, 100, 5, 0..40)), Ok(Outcome::Analytics { applied: false }));
        assert_eq!(apply(&store, &batch(1, 2, 101, 1, 0..1)), Ok(Outcome::Analytics { applied: true }));
        let read = |store: &Store| read_days(&store.begin_read().unwrap(), Day(90), Day(110)).unwrap();
        let days = read(&store);
        assert_eq!(days[&Day(100)].events["page_opened"], 12);
        assert_eq!(days[&Day(100)].visitors, 60, "20 visitors seen by both nodes count once");
        assert_eq!(days[&Day(101)].visitors, 1);

        let garbage = AnalyticsBatch { visitors: vec![(Day(101), vec![1, 2, 3])], ..batch(1, 3, 101, 1, 0..1) };
        assert!(matches!(apply(&store, &garbage), Err(Rejection::InvalidAnalytics(_))));
        assert_eq!(read(&store)[&Day(101)].events["page_opened"], 1, "a refused batch changes nothing");

        let purge = AnalyticsBatch { purge_before: Some(Day(101)), ..batch(1, 4, 101, 1, 0..1) };
        apply(&store, &purge).unwrap();
        let days = read(&store);
        assert!(!days.contains_key(&Day(100)));
        assert_eq!(days[&Day(101)].events["page_opened"], 2);
    }
}
