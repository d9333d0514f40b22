//! Rendered answers for single orders, kept while the order is unchanged: a read of an order
//! nobody changed since the last read skips the read transaction, the decode and the JSON.
//!
//! Not part of the state: `apply` notes which orders a batch wrote (`changes::order_written`)
//! and the state machine drops those views after the batch commits and before it publishes the
//! batch as applied, so a read that waited for an index (a linearizable read) never finds a view
//! older than that index.
//!
//! The race a cache like this must close: a reader reads the order, a batch changes it and drops
//! its view, then the reader stores what it read, now stale. Each view is stored against a
//! *ticket*, the generation of its shard taken before the read; dropping a view bumps the
//! generation under the shard's lock, and storing checks it under the same lock. A view is
//! therefore stored only if no batch touched its shard since its ticket was taken, and a
//! stored view was read after every batch whose drop came before it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::domain::{OrderId, Timestamp, UserId};

/// One order's rendered answer.
#[derive(Debug)]
pub struct OrderAnswer {
    /// Whose order it is: only they are shown it.
    pub owner: UserId,
    /// The order's version (its ETag).
    pub version: u64,
    /// The rendered body.
    pub body: Bytes,
    /// The answer holds until this time (it says whether the order is still active, which
    /// changes when its slot ends); `None`: until the order changes.
    pub fresh_until: Option<Timestamp>,
}

impl OrderAnswer {
    /// Whether the answer may still be served at `now`.
    pub fn fresh_at(&self, now: Timestamp) -> bool {
        self.fresh_until.is_none_or(|until| now < until)
    }
}

/// Shards of the generation counter: a batch invalidates only the tickets of the shards its
/// orders fall in, so stores by concurrent readers of other orders still succeed.
const SHARDS: usize = 64;

/// Memory the cached answers may take, in bytes (body and bookkeeping): about 50 000 orders.
pub const VIEW_CACHE_BYTES: u64 = 32 << 20;

/// A generation taken before reading an order, to store its answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    shard: usize,
    generation: u64,
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<u128, Arc<OrderAnswer>> for Weigh {
    fn weight(&self, _: &u128, answer: &Arc<OrderAnswer>) -> u64 {
        // The body, the owner and ~96 bytes of entry and Arc overhead.
        (answer.body.len() + answer.owner.as_str().len() + 96) as u64
    }
}

/// The cache of rendered order answers; cheap to share.
pub struct OrderViews {
    answers: quick_cache::sync::Cache<u128, Arc<OrderAnswer>, Weigh>,
    generations: Box<[Mutex<u64>]>,
}

impl Default for OrderViews {
    fn default() -> Self {
        Self::with_capacity(VIEW_CACHE_BYTES)
    }
}

impl OrderViews {
    pub fn with_capacity(bytes: u64) -> Self {
        // quick_cache wants an estimate of the number of items: bodies are ~600 bytes.
        let items = usize::try_from(bytes / 700).unwrap_or(usize::MAX).max(16);
        Self {
            answers: quick_cache::sync::Cache::with_weighter(items, bytes, Weigh),
            generations: (0..SHARDS).map(|_| Mutex::new(0)).collect(),
        }
    }

    fn shard(id: u128) -> usize {
        // Order ids are UUIDv7: the low bits are random.
        (id as usize) % SHARDS
    }

    fn generation(&self, shard: usize) -> std::sync::MutexGuard<'_, u64> {
        // A poisoned lock only means a panic elsewhere while holding it: the counter is intact.
        self.generations[shard].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stored answer for `id`, if any (check [`OrderAnswer::fresh_at`] and the owner).
    pub fn get(&self, id: OrderId) -> Option<Arc<OrderAnswer>> {
        self.answers.get(&id.as_u128())
    }

    /// Take before reading `id` from the database; store what was read with it.
    pub fn ticket(&self, id: OrderId) -> Ticket {
        let shard = Self::shard(id.as_u128());
        Ticket { shard, generation: *self.generation(shard) }
    }

    /// Store `answer` for `id`, read after `ticket` was taken, unless a batch touched its
    /// shard since (then the answer may predate the batch, and the next read renders again).
    /// Returns whether it was stored.
    pub fn store(&self, id: OrderId, ticket: Ticket, answer: Arc<OrderAnswer>) -> bool {
        let current = self.generation(ticket.shard);
        if *current != ticket.generation {
            return false;
        }
        self.answers.insert(id.as_u128(), answer);
        true
    }

    /// Drop the answers of orders a committed batch wrote; called before the batch is
    /// published as applied.
    pub fn invalidate(&self, ids: &[u128]) {
        for &id in ids {
            let shard = Self::shard(id);
            let mut generation = self.generation(shard);
            *generation = generation.wrapping_add(1);
            self.answers.remove(&id);
        }
    }

    /// Drop every answer (a snapshot replaced the state).
    pub fn invalidate_all(&self) {
        let guards: Vec<_> = (0..SHARDS).map(|s| self.generation(s)).collect();
        for mut generation in guards {
            *generation = generation.wrapping_add(1);
        }
        // Every shard's generation moved before the clear: a store racing with it is refused.
        self.answers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(owner: &str, version: u64) -> Arc<OrderAnswer> {
        Arc::new(plain(owner, version))
    }

    fn plain(owner: &str, version: u64) -> OrderAnswer {
        OrderAnswer {
            owner: UserId::parse(owner).expect("user id"),
            version,
            body: Bytes::from(format!("{{\"version\":{version}}}")),
            fresh_until: None,
        }
    }

    fn id(n: u128) -> OrderId {
        OrderId::from_u128(n)
    }

    #[test]
    fn an_answer_read_before_a_change_to_its_order_is_not_stored() {
        let views = OrderViews::default();
        let ticket = views.ticket(id(7));
        // A batch changes order 7 between the read and the store.
        views.invalidate(&[7]);
        assert!(!views.store(id(7), ticket, answer("ann", 1)));
        assert!(views.get(id(7)).is_none());
        // Read again after the change: stored.
        let ticket = views.ticket(id(7));
        assert!(views.store(id(7), ticket, answer("ann", 2)));
        assert_eq!(views.get(id(7)).map(|a| a.version), Some(2));
    }

    #[test]
    fn a_change_drops_its_order_only_and_a_snapshot_drops_all() {
        let views = OrderViews::default();
        for n in [1u128, 2, 65] {
            let ticket = views.ticket(id(n));
            assert!(views.store(id(n), ticket, answer("bob", 1)));
        }
        views.invalidate(&[1]);
        assert!(views.get(id(1)).is_none());
        assert!(views.get(id(2)).is_some(), "another order's answer stays");
        assert!(views.get(id(65)).is_some(), "same shard, another order: stays");
        let ticket = views.ticket(id(3));
        views.invalidate_all();
        assert!(views.answers.is_empty());
        assert!(!views.store(id(3), ticket, answer("bob", 1)), "a read from before the snapshot");
    }

    #[test]
    fn an_answer_that_says_active_expires_with_its_slot() {
        let until = Timestamp::from_millis(1_000);
        let a = OrderAnswer { fresh_until: Some(until), ..plain("cy", 1) };
        assert!(a.fresh_at(Timestamp::from_millis(999)));
        assert!(!a.fresh_at(until));
        assert!(plain("cy", 1).fresh_at(Timestamp::from_millis(i64::MAX)));
    }

    /// A writer thread plays the state machine (commit a new version, drop the view, publish
    /// as applied); reader threads play linearizable reads (wait for nothing, note the
    /// published version, then serve from the cache or read-and-store). No reader is ever
    /// served a version older than one published before its read began.
    #[test]
    fn no_read_after_a_published_change_is_served_the_older_answer() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let views = Arc::new(OrderViews::default());
        let committed = Arc::new(AtomicU64::new(1)); // the database
        let applied = Arc::new(AtomicU64::new(1)); // what reads may rely on
        let stop = Arc::new(AtomicBool::new(false));
        // Reads the cache answered, over all readers: the writer lets them hit now and then, so
        // the race is really run with hits in it (on a loaded machine the readers could
        // otherwise always find the entry just invalidated, and the test would prove nothing).
        let served_hits = Arc::new(AtomicU64::new(0));
        let writer = {
            let (views, committed, applied, stop, served_hits) =
                (views.clone(), committed.clone(), applied.clone(), stop.clone(), served_hits.clone());
            std::thread::spawn(move || {
                for version in 2..=20_000u64 {
                    committed.store(version, Ordering::SeqCst);
                    views.invalidate(&[7]);
                    applied.store(version, Ordering::SeqCst);
                    if version % 64 == 0 {
                        std::thread::yield_now();
                    }
                    if version % 2_000 == 0 {
                        let seen = served_hits.load(Ordering::SeqCst);
                        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
                        while served_hits.load(Ordering::SeqCst) == seen && std::time::Instant::now() < until {
                            std::thread::yield_now();
                        }
                    }
                }
                stop.store(true, Ordering::SeqCst);
            })
        };
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (views, committed, applied, stop, served_hits) =
                    (views.clone(), committed.clone(), applied.clone(), stop.clone(), served_hits.clone());
                std::thread::spawn(move || {
                    let (mut hits, mut reads) = (0u64, 0u64);
                    while !stop.load(Ordering::SeqCst) && reads < 2_000_000 {
                        reads += 1;
                        let floor = applied.load(Ordering::SeqCst);
                        let served = match views.get(id(7)) {
                            Some(answer) => {
                                hits += 1;
                                served_hits.fetch_add(1, Ordering::SeqCst);
                                answer.version
                            }
                            None => {
                                let ticket = views.ticket(id(7));
                                let version = committed.load(Ordering::SeqCst);
                                views.store(id(7), ticket, answer("eve", version));
                                version
                            }
                        };
                        assert!(served >= floor, "served version {served} after {floor} was applied");
                    }
                    hits
                })
            })
            .collect();
        writer.join().expect("writer");
        let hits: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
        assert!(hits > 0, "the cache served some reads");
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let views = OrderViews::with_capacity(64 * 1024);
        for n in 0..10_000u128 {
            let ticket = views.ticket(id(n));
            views.store(id(n), ticket, answer("dee", 1));
        }
        let kept = views.answers.len();
        assert!(kept < 10_000 && kept > 0, "{kept} answers kept");
    }
}
