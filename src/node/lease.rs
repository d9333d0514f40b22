//! The leader's read lease: linearizable reads without a heartbeat round while one is recent.
//!
//! Why it is safe. A voter that heard from the leader refuses every vote request for
//! `election_timeout_max` after that (openraft 0.9's leader lease on the voter side). So once a
//! quorum answered heartbeats sent after instant `T`, no other leader can be elected before
//! `T + election_timeout_max` on the voters' clocks, with two exceptions this module closes:
//! - this node changes its own vote (it may grant one to a candidate with a higher term, and
//!   then the candidate and this node are a quorum): openraft saves every vote change before it
//!   answers, and `LogStore` counts the changes, so a lease is only good for the vote it was
//!   confirmed under;
//! - a voter restarts and forgets whom it heard from: a node does not vote for anyone during
//!   its first `quarantine` (the minimum election timeout) after starting (`/raft/vote`
//!   answers 503).
//!
//! While the lease holds, no write can have been acknowledged that this node has not committed,
//! so its commit index, read *before* the lease is checked, is a valid read index. The lease
//! is half the minimum election timeout, a quarter of the voters' window at the defaults, which
//! leaves room for clocks that run at different rates. Only monotonic clocks are used; clock
//! synchronisation plays no part. A process paused after the check is harmless: the index it
//! read was valid when it read it. A whole machine frozen with its monotonic clock stopped would
//! not be: `raft.lease_reads = false` turns leases off (every read then pays a round).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A lease confirmed for one vote, good until `until`.
#[derive(Clone, Copy)]
struct Held {
    votes: u64,
    until: Instant,
}

/// Taken just before a leadership confirmation round: what the lease will be for if it succeeds.
pub struct Round {
    votes: u64,
    sent_after: Instant,
}

/// A read index this node may use without asking a quorum.
#[derive(Debug, PartialEq, Eq)]
pub struct LeaseRead {
    pub index: u64,
    /// The lease is past half its life: start a round in the background to extend it.
    pub renew: bool,
}

pub struct Lease {
    duration: Option<Duration>,
    started: Instant,
    quarantine: Duration,
    votes: Arc<AtomicU64>,
    committed: Arc<AtomicU64>,
    held: Mutex<Option<Held>>,
    renewing: AtomicBool,
    /// See [`Lease::floor`].
    floor: AtomicU64,
}

impl Lease {
    /// `duration: None` disables leases. `votes` counts vote changes and `committed` is the
    /// commit index, both as the log store keeps them.
    /// `floor`: the last log index at start, which every read index covers until
    /// [`Lease::drop_floor`] (see `LogStore::opened`).
    pub fn new(
        duration: Option<Duration>,
        quarantine: Duration,
        votes: Arc<AtomicU64>,
        committed: Arc<AtomicU64>,
        floor: u64,
    ) -> Self {
        Self {
            duration,
            started: Instant::now(),
            quarantine,
            votes,
            committed,
            held: Mutex::new(None),
            renewing: AtomicBool::new(false),
            floor: AtomicU64::new(floor),
        }
    }

    /// The least index a read index may be: the last log index at start, while this node
    /// has not yet seen another term (0 after).
    pub fn floor(&self) -> u64 {
        self.floor.load(Ordering::SeqCst)
    }

    /// The node is in a term after the one it started in: openraft's own read index (a new
    /// leader's first entry of its term) covers everything committed before.
    pub fn drop_floor(&self) {
        self.floor.store(0, Ordering::SeqCst);
    }

    /// Whether this node may vote yet: not during its first `quarantine` after starting, so a
    /// restarted voter cannot help elect a new leader while the old one's lease may hold.
    pub fn may_vote(&self) -> bool {
        self.duration.is_none() || self.started.elapsed() >= self.quarantine
    }

    /// Call just before sending a leadership confirmation round.
    pub fn begin(&self) -> Round {
        Round { votes: self.votes.load(Ordering::SeqCst), sent_after: Instant::now() }
    }

    /// Call when that round confirmed leadership: the lease runs from when it began, for the
    /// vote it began under, unless the vote changed meanwhile.
    pub fn confirmed(&self, round: Round) {
        let Some(duration) = self.duration else { return };
        if self.votes.load(Ordering::SeqCst) != round.votes {
            return;
        }
        let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresher = held.is_none_or(|h| h.votes != round.votes || h.until < round.sent_after + duration);
        if fresher {
            *held = Some(Held { votes: round.votes, until: round.sent_after + duration });
        }
    }

    /// The read index for a read starting now, if the lease holds.
    pub fn read_index(&self) -> Option<LeaseRead> {
        let duration = self.duration?;
        // The order matters: the index is read first, then the lease is checked at a later
        // instant, so the index was covered by the lease when it was read.
        let index = self.committed.load(Ordering::SeqCst).max(self.floor());
        let votes = self.votes.load(Ordering::SeqCst);
        let now = Instant::now();
        let held = *self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match held {
            Some(h) if h.votes == votes && now < h.until => {
                Some(LeaseRead { index, renew: now + duration / 2 >= h.until })
            }
            _ => None,
        }
    }

    /// Claim the one background renewal; `false` when one is already running.
    pub fn start_renewal(&self) -> bool {
        !self.renewing.swap(true, Ordering::SeqCst)
    }

    pub fn renewal_done(&self) {
        self.renewing.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ms: u64) -> (Lease, Arc<AtomicU64>, Arc<AtomicU64>) {
        let (votes, committed) = (Arc::new(AtomicU64::new(1)), Arc::new(AtomicU64::new(0)));
        let lease =
            Lease::new(Some(Duration::from_millis(ms)), Duration::from_millis(ms), votes.clone(), committed.clone(), 0);
        (lease, votes, committed)
    }

    #[test]
    fn no_lease_before_a_confirmed_round() {
        let (lease, _, _) = lease(1000);
        assert_eq!(lease.read_index(), None);
    }

    #[test]
    fn a_confirmed_round_gives_the_current_commit_index_until_it_expires() {
        let (lease, _, committed) = lease(60);
        committed.store(7, Ordering::SeqCst);
        let round = lease.begin();
        lease.confirmed(round);
        assert_eq!(lease.read_index(), Some(LeaseRead { index: 7, renew: false }));
        committed.store(9, Ordering::SeqCst);
        assert_eq!(lease.read_index().map(|r| r.index), Some(9));
        std::thread::sleep(Duration::from_millis(35));
        assert_eq!(lease.read_index(), Some(LeaseRead { index: 9, renew: true }));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(lease.read_index(), None, "an expired lease must not serve reads");
    }

    #[test]
    fn a_vote_change_ends_the_lease_and_voids_rounds_in_flight() {
        let (lease, votes, _) = lease(1000);
        lease.confirmed(lease.begin());
        votes.fetch_add(1, Ordering::SeqCst);
        assert_eq!(lease.read_index(), None);
        let round = lease.begin();
        votes.fetch_add(1, Ordering::SeqCst);
        lease.confirmed(round);
        assert_eq!(lease.read_index(), None, "a round that straddles a vote change confirms nothing");
    }

    #[test]
    fn the_lease_runs_from_when_the_round_began() {
        let (lease, _, _) = lease(40);
        let round = lease.begin();
        std::thread::sleep(Duration::from_millis(45));
        lease.confirmed(round);
        assert_eq!(lease.read_index(), None, "a slow round must not extend the lease past its start + duration");
    }

    #[test]
    fn disabled_leases_serve_nothing_and_never_delay_votes() {
        let (votes, committed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let lease = Lease::new(None, Duration::from_secs(60), votes, committed, 0);
        lease.confirmed(lease.begin());
        assert_eq!(lease.read_index(), None);
        assert!(lease.may_vote());
    }

    #[test]
    fn a_new_node_does_not_vote_during_its_quarantine() {
        let (lease, _, _) = lease(30);
        assert!(!lease.may_vote());
        std::thread::sleep(Duration::from_millis(35));
        assert!(lease.may_vote());
    }

    #[test]
    fn a_restarted_node_reads_at_least_up_to_the_log_it_had_until_its_term_changes() {
        let (votes, committed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(7)));
        let lease = Lease::new(Some(Duration::from_secs(60)), Duration::ZERO, votes, committed.clone(), 12);
        let round = lease.begin();
        lease.confirmed(round);
        // The commit index known after the crash (7) is older than entries it may have
        // committed before it (up to 12).
        assert_eq!(lease.read_index().map(|r| r.index), Some(12));
        committed.store(15, Ordering::SeqCst);
        assert_eq!(lease.read_index().map(|r| r.index), Some(15));
        committed.store(9, Ordering::SeqCst);
        lease.drop_floor();
        assert_eq!(lease.read_index().map(|r| r.index), Some(9));
    }
}
