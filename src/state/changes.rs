//! Which slot loads the batch just applied touched: a notification for live availability, not
//! part of the state.
//!
//! `apply` notes every (store, slot) whose load it changes (and "everything" for a catalog,
//! which may change any capacity) in a per-thread record; the state machine, which applies a
//! batch on one thread, takes the record after the batch's commit and publishes it on the
//! store's feed. Nothing here is read by `apply`, so the state stays a pure function of the log.

use std::cell::RefCell;
use std::sync::Arc;

use tokio::sync::broadcast;

/// The loads one applied batch changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadChanges {
    /// Any slot may have changed (a catalog applied, a snapshot installed).
    pub all: bool,
    /// (store id, slot start ms)
    pub slots: Vec<(String, i64)>,
}

impl LoadChanges {
    pub fn is_empty(&self) -> bool {
        !self.all && self.slots.is_empty()
    }

    /// Whether a slot of `store` starting in `[from, to)` (ms) may have changed.
    pub fn touches(&self, store: &str, from: i64, to: i64) -> bool {
        self.all || self.slots.iter().any(|(s, start)| s == store && (from..to).contains(start))
    }

    pub fn everything() -> Self {
        Self { all: true, slots: Vec::new() }
    }
}

thread_local! {
    static TOUCHED: RefCell<LoadChanges> = RefCell::new(LoadChanges::default());
    static WRITTEN: RefCell<Vec<u128>> = const { RefCell::new(Vec::new()) };
}

/// `apply` wrote order `id` (or its kitchen steps): its cached answer must go.
pub(super) fn order_written(id: u128) {
    WRITTEN.with(|w| w.borrow_mut().push(id));
}

/// Take (and clear) the orders this thread's applies wrote since the last call.
pub fn take_written_orders() -> Vec<u128> {
    WRITTEN.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

pub(super) fn touched(store: &str, start: i64) {
    TOUCHED.with(|t| t.borrow_mut().slots.push((store.to_owned(), start)));
}

pub(super) fn touched_all() {
    TOUCHED.with(|t| t.borrow_mut().all = true);
}

/// Take (and clear) what this thread's applies touched since the last call.
pub fn take() -> LoadChanges {
    TOUCHED.with(|t| std::mem::take(&mut *t.borrow_mut()))
}

/// Publishes each applied batch's load changes to whoever listens (live availability streams).
#[derive(Clone)]
pub struct LoadFeed(broadcast::Sender<Arc<LoadChanges>>);

/// Batches a listener may fall behind by before it is told it lagged (and then reads all).
const FEED_CAPACITY: usize = 1024;

impl Default for LoadFeed {
    fn default() -> Self {
        Self(broadcast::channel(FEED_CAPACITY).0)
    }
}

impl LoadFeed {
    pub fn publish(&self, changes: LoadChanges) {
        if !changes.is_empty() {
            // No listener is not an error.
            let _ = self.0.send(Arc::new(changes));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LoadChanges>> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_touches_only_its_store_and_range_and_everything_touches_all() {
        touched("a", 100);
        touched("b", 200);
        let changes = take();
        assert!(changes.touches("a", 100, 101));
        assert!(!changes.touches("a", 101, 300), "another range");
        assert!(!changes.touches("c", 0, i64::MAX), "another store");
        assert!(take().is_empty(), "taking clears the record");
        touched_all();
        assert!(take().touches("z", 0, 1));
    }
}
