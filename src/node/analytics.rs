//! Counting the web UI's beacons on this node, and handing the counts to the cluster: every
//! `analytics.flush_ms` one `RecordAnalytics` batch with the counts per (day, event, store) and
//! a visitor sketch per day. Beacons are never forwarded one by one; orders never wait for
//! them (a batch is one more command in a group-committed log entry).
//!
//! What a `kill -9` can lose: the beacons this node counted since its last batch left (at most
//! one flush interval), and batches it could not hand over while no leader was reachable
//! (kept in memory, at most [`MAX_QUEUED`]). A batch proposed again after a lost answer is
//! applied once (`seq`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Node;
use crate::codec;
use crate::config::AnalyticsSettings;
use crate::domain::{Day, EventKind, StoreId, Timestamp, VisitorId, VisitorSketch};
use crate::state::analytics::AnalyticsBatch;
use crate::state::Command;

/// Batches kept while none can be handed over (an hour at the default interval).
pub const MAX_QUEUED: usize = 720;

#[derive(Default)]
struct Pending {
    counts: BTreeMap<(Day, EventKind, String), u64>,
    visitors: BTreeMap<Day, VisitorSketch>,
    queued: VecDeque<AnalyticsBatch>,
}

pub struct Analytics {
    node: u64,
    salt: [u8; 32],
    /// Sequence numbers start at this process's start time (ms) shifted up, so they keep
    /// growing across restarts.
    seq: AtomicU64,
    pending: Mutex<Pending>,
    settings: AnalyticsSettings,
}

impl Analytics {
    pub fn new(node: u64, cluster_secret: &[u8], settings: AnalyticsSettings, now: Timestamp) -> Self {
        let salt = Sha256::new().chain_update(b"pizza-orders analytics salt\0").chain_update(cluster_secret).finalize();
        let start = u64::try_from(now.millis()).unwrap_or(0);
        Self {
            node,
            salt: salt.into(),
            seq: AtomicU64::new(start << 20),
            pending: Mutex::new(Pending::default()),
            settings,
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Count one beacon.
    pub fn record(&self, at: Timestamp, event: EventKind, store: Option<&StoreId>, visitor: &VisitorId) {
        let day = Day::of(at);
        let hash = visitor.daily_hash(&self.salt, day);
        let store = store.map_or_else(String::new, |s| s.as_str().to_owned());
        let mut pending = self.pending();
        *pending.counts.entry((day, event, store)).or_default() += 1;
        pending.visitors.entry(day).or_default().insert(hash);
        metrics::counter!("pizza_orders_ui_events_total", "event" => event.as_str()).increment(1);
    }

    /// Close the current interval into a batch (if it counted anything) behind those queued.
    fn close_interval(&self, at: Timestamp) {
        let mut pending = self.pending();
        if pending.counts.is_empty() {
            return;
        }
        let counts = std::mem::take(&mut pending.counts);
        let visitors = std::mem::take(&mut pending.visitors);
        let mut sketches = Vec::with_capacity(visitors.len());
        for (day, mut sketch) in visitors {
            sketch.count();
            match codec::encode(&sketch) {
                Ok(bytes) => sketches.push((day, bytes)),
                Err(e) => tracing::error!(error = %e, "cannot encode a visitor sketch; its visitors are not counted"),
            }
        }
        let retention = self.settings.retention_days;
        let batch = AnalyticsBatch {
            node: self.node,
            seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1,
            at,
            counts: counts.into_iter().map(|((day, event, store), n)| (day, event, store, n)).collect(),
            visitors: sketches,
            purge_before: (retention > 0).then(|| Day::of(at).minus(retention)),
        };
        if pending.queued.len() == MAX_QUEUED {
            pending.queued.pop_front();
            metrics::counter!("pizza_orders_analytics_batches_dropped_total").increment(1);
            tracing::warn!("analytics batches could not be handed over for an hour; the oldest is dropped");
        }
        pending.queued.push_back(batch);
    }

    fn front(&self) -> Option<AnalyticsBatch> {
        self.pending().queued.front().cloned()
    }

    fn handed_over(&self, seq: u64) {
        let mut pending = self.pending();
        if pending.queued.front().is_some_and(|b| b.seq == seq) {
            pending.queued.pop_front();
        }
    }

    /// Hand over what was counted so far (at shutdown).
    pub async fn flush_now(self: Arc<Self>, node: &Node) {
        self.flush(node).await;
    }

    /// Hand every closed interval to the cluster, oldest first; stop at the first failure
    /// (tried again next time, with the same `seq`).
    async fn flush(&self, node: &Node) {
        self.close_interval(Timestamp::now());
        while let Some(batch) = self.front() {
            let seq = batch.seq;
            match node.propose(Command::RecordAnalytics(batch)).await {
                Ok(_) => self.handed_over(seq),
                Err(e) => {
                    tracing::debug!(error = %e, "analytics batch not handed over yet; will retry");
                    return;
                }
            }
        }
    }
}

/// Flush every `flush_ms` while the node lives (and once more at shutdown: `Node::shutdown`).
pub fn spawn_flusher(node: Weak<Node>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(node) = node.upgrade() else { return };
            let analytics: Arc<Analytics> = node.analytics.clone();
            analytics.flush(&node).await;
        }
    });
}
